"""Tests for the receiver's logging: the redacted access log, JSON lines, and ``serve``'s options.

The access log is checked over real HTTP (uvicorn on loopback) and, with the
JSON format, by parsing every line a real ``deliverystate serve`` process
writes to stderr, with one worker and with two.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from deliverystate import SQLiteStore, Tracker
from deliverystate.cli._commands import cli
from deliverystate.postgres import PostgresStore
from deliverystate.web import create_app
from deliverystate.web._logs import (
    ACCESS_LOGGER,
    AccessLog,
    JsonFormatter,
    logging_config,
    redact_query,
    request_target,
)

from .test_web import T0, URL, one_api, post_json, receiver, serving, wait_for
from .test_web_intake import free_port, healthy

#: The shared secret of these tests; "s3cret" must appear in no log line, encoded or not.
SECRET = "s3cret/Zq9"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# --- redaction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        ("token=s3cret", "token=[redacted]"),
        ("a=1&token=s3cret&b=2", "a=1&token=[redacted]&b=2"),
        ("tok%65n=s3cret", "tok%65n=[redacted]"),  # Starlette decodes the name: it is the token
        ("%74%6F%6B%65%6E=s3cret", "%74%6F%6B%65%6E=[redacted]"),
        ("TOKEN=s3cret", "TOKEN=[redacted]"),  # not the app's token, but maybe the secret
        ("a=1;token=s3cret", "a=1;token=[redacted]"),
        ("token=a&token=b", "token=[redacted]&token=[redacted]"),
        ("token", "token=[redacted]"),
        ("token=s3=cret", "token=[redacted]"),
        ("tokens=x&my_token=y&a=token", "tokens=x&my_token=y&a=token"),  # other names: kept
        ("messageId=abc&status=004", "messageId=abc&status=004"),
    ],
)
def test_every_token_value_is_redacted_and_nothing_else(query: str, logged: str) -> None:
    """The value of each parameter named token (however spelt) is replaced; the rest is kept."""
    assert redact_query(query) == logged


@given(
    st.lists(
        st.tuples(st.text(max_size=8), st.text(max_size=8)).filter(
            lambda pair: "t" not in pair[0] and "s3cret" not in "".join(pair).lower()
        ),
        max_size=4,
    ),
    st.sampled_from(["token", "tok%65n", "%74oken", "t%6Fken", "Token", "TOKEN"]),
    st.integers(min_value=0, max_value=4),
    st.booleans(),
)
def test_the_secret_never_survives_redaction(
    others: list[tuple[str, str]], name: str, where: int, encode: bool
) -> None:
    """Whatever surrounds it and however its name is spelt, the secret is not in the line."""
    value = quote(SECRET, safe="") if encode else SECRET
    pairs = [f"{quote(k)}={quote(v)}" for k, v in others]
    pairs.insert(min(where, len(pairs)), f"{name}={value}")
    query = "&".join(pairs)
    if name[0] in "t%":  # a spelling the app itself reads as the token
        assert QueryParams(query).get("token") == SECRET
    assert "s3cret" not in redact_query(query).lower()


def test_the_request_target_is_written_raw_and_on_one_line() -> None:
    """A percent-encoded line break stays encoded; raw control bytes and non-ASCII are escaped."""
    scope: dict[str, Any] = {"raw_path": b"/%0Afake", "path": "/\nfake", "query_string": b""}
    assert request_target(scope) == "/%0Afake"
    scope = {"raw_path": b"/a\r\nb\xc3\xa9", "query_string": b"x=\x1b[31m&token=s3cret"}
    assert request_target(scope) == "/a\\x0d\\x0ab\\xc3\\xa9?x=\\x1b[31m&token=[redacted]"
    assert request_target({"path": "/\ndecoded", "query_string": b""}) == "/\\x0adecoded"


# --- the access log over HTTP ------------------------------------------------------------


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The access lines captured so far."""
    return [r for r in caplog.records if r.name == ACCESS_LOGGER]


def test_each_request_is_logged_with_its_fields_and_never_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Method, redacted path, status, duration and client per request; the secret nowhere."""
    caplog.set_level(logging.INFO, logger="deliverystate")
    store = SQLiteStore(tmp_path / "logs.sqlite3")
    app = AccessLog(create_app(Tracker(store), token=SECRET))
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as client:
        ok = post_json(client, one_api("m", 5, "DEVICE_ACK", T0), params={"token": SECRET})
        refused = post_json(client, one_api("m", 5, "DEVICE_ACK", T0))  # no token: 401
        bad = post_json(client, "{oops", headers={"X-Deliverystate-Token": SECRET})
        wait_for(lambda: len(access_records(caplog)) >= 3)
    store.close()
    assert (ok.status_code, refused.status_code, bad.status_code) == (200, 401, 400)
    lines = {
        (r.method, r.path, r.status, r.client.startswith("127.0.0.1:"))  # type: ignore[attr-defined]
        for r in access_records(caplog)
    }
    assert lines == {
        ("POST", f"{URL}?token=[redacted]", 200, True),
        ("POST", URL, 401, True),
        ("POST", URL, 400, True),
    }
    assert len(access_records(caplog)) == 3
    assert all(r.duration_ms >= 0 for r in access_records(caplog))  # type: ignore[attr-defined]
    assert "s3cret" not in caplog.text.lower()
    (invalid,) = [r for r in caplog.records if r.levelno == logging.WARNING and "400" in r.msg]
    assert "not JSON" in invalid.getMessage()  # an intake error is logged with its reason


def test_a_request_the_app_fails_is_logged_as_500(caplog: pytest.LogCaptureFixture) -> None:
    """When the app raises before answering, the line says 500 and the error goes on up."""
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def ignore(message: Any) -> None:
        """Swallow what the app sends."""

    scope = {"type": "http", "method": "GET", "raw_path": b"/x", "query_string": b""}
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(AccessLog(failing)(scope, ignore, ignore))
    (record,) = access_records(caplog)
    assert (record.status, record.client) == (500, "-")  # type: ignore[attr-defined]


class Poisoned(SQLiteStore):
    """A store whose database refuses any report about a message whose id starts poison-."""

    def _write(self, cursor: Any, writes: Any) -> int:
        if any(row[1].startswith("poison-") for row in writes.history):
            raise sqlite3.IntegrityError("index row size exceeds btree version 4 maximum")
        return super()._write(cursor, writes)


def test_a_poison_body_is_logged_once_with_its_dead_letter(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A body the store refuses on its own is answered 400 and logged in one error line."""
    caplog.set_level(logging.INFO, logger="deliverystate")
    tracker = Tracker(Poisoned(tmp_path / "poisoned.sqlite3"))
    with receiver(tracker) as client:
        answer = post_json(client, one_api("poison-1", 5, "DEVICE_ACK", T0))
    assert answer.status_code == 400
    (letter,) = tracker.dead_letters()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert f"dead letter {letter.id}" in errors[0]
    assert "btree" in errors[0]


# --- formats and levels ------------------------------------------------------------------


def test_a_json_line_is_one_object_with_the_documented_fields() -> None:
    """time (ISO UTC ms), level, logger, message, the access fields, and a traceback in one line."""
    record = logging.LogRecord(
        "deliverystate.access", logging.INFO, "", 0, "%s %d", ("GET", 200), None
    )
    record.__dict__.update(method="GET", path="/x", status=200, duration_ms=1.5, client="-")
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert ISO_MS.match(entry.pop("time"))
    assert entry == {
        "level": "INFO",
        "logger": "deliverystate.access",
        "message": "GET 200",
        "method": "GET",
        "path": "/x",
        "status": 200,
        "duration_ms": 1.5,
        "client": "-",
    }
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        failed = logging.LogRecord("x", logging.ERROR, "", 0, "failed", (), sys.exc_info())
    line = JsonFormatter().format(failed)
    assert "\n" not in line
    assert "ValueError: line one\nline two" in json.loads(line)["exception"]


@pytest.mark.parametrize(
    ("level", "ours", "root"),
    [("debug", "DEBUG", "DEBUG"), ("INFO", "INFO", "WARNING"), ("Warning", "WARNING", "WARNING")],
)
def test_the_level_sets_ours_and_uvicorn_s_loggers_and_libraries_keep_to_warnings(
    level: str, ours: str, root: str
) -> None:
    """--log-level is case-insensitive; other libraries log warnings unless debugging."""
    config = logging_config(level, "json")
    assert config["loggers"]["deliverystate"]["level"] == ours
    assert config["loggers"]["uvicorn"]["level"] == ours
    assert config["root"]["level"] == root
    assert config["loggers"]["uvicorn.access"]["handlers"] == []  # uvicorn's own: never on
    assert config["disable_existing_loggers"] is False


def test_unknown_levels_and_formats_are_refused() -> None:
    """A level or format outside the lists is a ValueError, and a usage error on the CLI."""
    with pytest.raises(ValueError, match="log level"):
        logging_config("verbose")
    with pytest.raises(ValueError, match="log format"):
        logging_config("info", "xml")
    for option in (["--log-level", "verbose"], ["--log-format", "xml"]):
        result = CliRunner().invoke(cli, ["serve", "--db", ":memory:", *option])
        assert result.exit_code == 2, result.output


# --- a real serve process ----------------------------------------------------------------


def serve_and_log(tmp_path: Path, *options: str) -> tuple[list[int], str]:
    """Run ``deliverystate serve`` with ``options``, post and scrape; its answers and stderr."""
    port = free_port()
    log = tmp_path / "serve.log"
    script = Path(sys.executable).parent / "deliverystate"
    db = str(tmp_path / "served.sqlite3")
    command = [str(script), "serve", "--db", db, "--port", str(port), "--token", SECRET]
    with log.open("w") as stderr:
        server = subprocess.Popen([*command, *options], stdout=subprocess.DEVNULL, stderr=stderr)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: healthy(base), seconds=60)
            with httpx.Client(base_url=base, timeout=30, params={"token": SECRET}) as client:
                answers = [
                    post_json(client, one_api("served", 5, "DEVICE_ACK", T0)).status_code,
                    post_json(client, "{oops").status_code,
                    client.get("/metrics").status_code,
                ]
        finally:
            server.terminate()
            server.wait(timeout=60)
    return answers, log.read_text()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_writes_json_lines_only_and_redacts_the_token(tmp_path: Path, workers: str) -> None:
    """Every stderr line of `serve --log-format json` is a JSON object, in every worker too."""
    answers, stderr = serve_and_log(tmp_path, "--log-format", "json", "--workers", workers)
    assert answers == [200, 400, 200]
    entries = [json.loads(line) for line in stderr.splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    access = [e for e in entries if e["logger"] == ACCESS_LOGGER]
    requests = {(e["method"], e["path"], e["status"]) for e in access}
    assert {
        ("POST", f"{URL}?token=[redacted]", 200),
        ("POST", f"{URL}?token=[redacted]", 400),
        ("GET", "/metrics?token=[redacted]", 200),
    } <= requests
    assert all(isinstance(e["duration_ms"], float) and e["client"] for e in access)
    assert "s3cret" not in stderr.lower()
    assert any(e["level"] == "WARNING" and "not JSON" in e["message"] for e in entries)
    assert any(f"{workers} worker(s)" in e["message"] for e in entries)  # the start-up line


def test_serve_without_the_access_log_at_warning_writes_only_warnings(tmp_path: Path) -> None:
    """--no-access-log --log-level WARNING: no request lines, no INFO, the intake error kept."""
    answers, stderr = serve_and_log(tmp_path, "--no-access-log", "--log-level", "WARNING")
    assert answers == [200, 400, 200]
    lines = stderr.splitlines()
    assert not [line for line in lines if " INFO " in line or ACCESS_LOGGER in line]
    (invalid,) = [line for line in lines if "not JSON" in line]
    assert " WARNING deliverystate.web: answered 400" in invalid


def test_pages_metrics_and_logs_never_show_the_store_s_password(
    postgres_dsn: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A store opened with a quoted libpq password: no page, metric or log line shows it.

    The store is closed half-way, so that the 503s and their log lines name it.
    """
    caplog.set_level(logging.DEBUG)
    url = urlsplit(postgres_dsn)
    dsn = (
        f"host={url.hostname} port={url.port or 5432} dbname={url.path.lstrip('/')} "
        f"user={url.username or 'postgres'} password='Pw with spaces'"
    )
    store = PostgresStore(dsn, schema=pg_schema)
    answers: list[httpx.Response] = []
    with (
        serving(AccessLog(create_app(Tracker(store)))) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        answers += [post_json(client, one_api("m", 5, "DEVICE_ACK", T0)), post_json(client, "{")]
        pages = ("/", "/list", "/messages", "/messages/m", "/metrics", "/healthz")
        answers += [client.get(path) for path in pages]
        store.close()  # from here on the store does not answer
        answers += [client.get(path) for path in pages]
        answers.append(post_json(client, one_api("n", 5, "DEVICE_ACK", T0)))
    said = "\n".join(answer.text for answer in answers) + caplog.text
    assert 503 in {answer.status_code for answer in answers}
    assert f"(schema {pg_schema})" in caplog.text  # the errors logged do name the store
    assert "with spaces" not in said
    assert "Pw with" not in said
