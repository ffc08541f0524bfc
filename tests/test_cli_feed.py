"""The change feed's commands: ``changes``, ``forward``, and ``serve --forward-to``."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from deliverystate import SQLiteStore, Status, StatusEvent, Tracker, open_store
from deliverystate.cli._commands import cli
from deliverystate.cli._feed import parse_duration
from deliverystate.forward import new_secret
from deliverystate.simulate import callback_body, simulate_lines
from deliverystate.testing import BASE_MS

from . import sink
from .test_forward import SCRIPT, kill, sink_at
from .test_web import wait_for
from .test_web_intake import free_port

S = Status


def run(args: list[str], **env: str) -> Any:
    """Invoke the command group in-process."""
    return CliRunner().invoke(cli, args, env=env or None)


def ev(message_id: str, status: Status, offset_ms: int) -> StatusEvent:
    """A report ``offset_ms`` after the base time, on SMS."""
    return StatusEvent.from_ms(message_id, status, BASE_MS + offset_ms, "sms")


@pytest.fixture
def db(tmp_path: Path) -> str:
    """An SQLite database holding three changes of two messages."""
    path = tmp_path / "feed.sqlite3"
    store = SQLiteStore(path)
    Tracker(store).apply_many([ev("a", S.QUEUED, 0), ev("b", S.QUEUED, 1), ev("a", S.READ, 2500)])
    store.close()
    return str(path)


def test_changes_prints_one_json_object_per_line(db: str) -> None:
    """--json: seq, names and codes, ISO 8601 times; --after and --only final filter."""
    result = run(["changes", "--db", db, "--json"])
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(c["seq"], c["message_id"], c["status"]) for c in lines] == [
        (1, "a", "QUEUED"),
        (2, "b", "QUEUED"),
        (3, "a", "READ"),
    ]
    assert lines[2] | {"description": None} == {
        "seq": 3,
        "message_id": "a",
        "status": "READ",
        "status_code": 6,
        "previous": "QUEUED",
        "previous_code": 2,
        "timestamp": "2026-01-01T00:00:02.500Z",
        "channel": "sms",
        "client_message_id": None,
        "origin": "clickatell",
        "description": None,
        "final": True,
        "delivered": True,
        "failed": False,
    }
    after = run(["changes", "--db", db, "--json", "--after", "1"])
    assert [json.loads(line)["seq"] for line in after.output.splitlines()] == [2, 3]
    final = run(["changes", "--db", db, "--json", "--only", "final"])
    assert [json.loads(line)["seq"] for line in final.output.splitlines()] == [3]


def test_changes_reads_as_lines_for_people(db: str) -> None:
    """Without --json: seq, time, message, previous -> new status, channel."""
    result = run(["changes", "--db", db])
    assert result.output.splitlines() == [
        "       1  2026-01-01 00:00:00.000  a  - -> QUEUED  sms",
        "       2  2026-01-01 00:00:00.001  b  - -> QUEUED  sms",
        "       3  2026-01-01 00:00:02.500  a  QUEUED -> READ  sms",
    ]


def test_changes_of_a_missing_database_is_one_clear_error(tmp_path: Path) -> None:
    """No database file: exit 1 and a line naming it, and no file is created."""
    missing = tmp_path / "nothing.sqlite3"
    result = run(["changes", "--db", str(missing)])
    assert result.exit_code == 1
    assert "nothing.sqlite3" in result.output
    assert not missing.exists()


def test_changes_follow_prints_new_changes_as_they_commit(database: str) -> None:
    """--follow waits for changes and prints each as it is committed (SQLite and PostgreSQL)."""
    store = open_store(database)
    tracker = Tracker(store)
    tracker.apply(ev("before", S.QUEUED, 0))
    assert SCRIPT is not None
    follower = subprocess.Popen(
        [SCRIPT, "changes", "--db", database, "--follow", "--json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert json.loads(follower.stdout.readline())["message_id"] == "before"
        for number in range(3):
            tracker.apply(ev(f"later-{number}", S.DEVICE_ACK, number))
            got = json.loads(follower.stdout.readline())
            assert (got["message_id"], got["status"]) == (f"later-{number}", "DEVICE_ACK")
    finally:
        kill(follower)
        getattr(store, "close", lambda: None)()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--to", "http://127.0.0.1:9/x"], "--to and --secret go together"),
        (["--to", "http://127.0.0.1:9/x", "--secret", "hunter2"], "Standard Webhooks secret"),
        (["--to", "mailto:ops@example.com", "--secret", new_secret()], "http:// or https://"),
        (["--horizon", "soon"], "not a duration"),
    ],
)
def test_forward_refuses_bad_options_with_a_usage_error(
    db: str, args: list[str], words: str
) -> None:
    """A missing or malformed option exits 2 with a line saying what is wrong."""
    result = run(["forward", "--db", db, *args])
    assert result.exit_code == 2
    assert words in result.output


def test_forward_new_secret_prints_a_usable_secret() -> None:
    """--new-secret prints whsec_ and 32 random bytes, new each time."""
    first, second = (run(["forward", "--new-secret"]).output.strip() for _ in range(2))
    assert first.startswith("whsec_")
    assert first != second


def test_durations_read_as_operators_write_them() -> None:
    """90, 30s, 15m, 24h and 7d are seconds; anything else is refused."""
    assert [parse_duration(t) for t in ("90", "30s", "1.5m", "24h", "7d")] == [
        90,
        30,
        90,
        86400,
        604800,
    ]
    for bad in ("", "0", "-5m", "3 weeks", "1e3"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


def test_forward_once_keeps_what_fails_and_stats_shows_it(db: str, tmp_path: Path) -> None:
    """--once exits 1 if a change became undeliverable; stats and --redeliver see it."""
    secret = new_secret()
    record = tmp_path / "got.jsonl"
    common = ["forward", "--db", db, "--secret", secret, "--max-wait", "0.05s", "--once"]
    with sink_at(record, secret, fail_prefix="a") as (_, url):
        result = run([*common, "--to", url, "--horizon", "0.3s"])
    assert result.exit_code == 1
    assert "forwarded 1, passed over 0, undeliverable 2; cursor 'forward' at 3" in result.output
    assert [g["message_id"] for g in sink.deliveries(record)] == ["b"]
    stats = run(["stats", "--db", db])
    assert "Change feed (last seq 3)" in stats.output
    assert "2 change(s) could not be forwarded as 'forward'" in stats.output
    as_json = json.loads(run(["stats", "--db", db, "--json"]).stdout)
    assert as_json["feed"] == {
        "last_seq": 3,
        "consumers": {"forward": {"position": 3, "behind": 0}},
        "undeliverable": {"forward": 2},
    }
    with sink_at(record, secret) as (_, url):
        again = run(["forward", "--db", db, "--secret", secret, "--to", url, "--redeliver"])
    assert again.exit_code == 0
    assert "redelivered 2 changes; 0 still undeliverable" in again.output
    assert [g["message_id"] for g in sink.deliveries(record)] == ["b", "a", "a"]
    assert "could not be forwarded" not in run(["stats", "--db", db]).output


def test_forwarding_after_replaying_a_prune_archive_sends_nothing_again(
    database: str, tmp_path: Path
) -> None:
    """forward --once, prune --archive, replay the archive, forward --once: nothing is resent."""
    secret, record = new_secret(), tmp_path / "got.jsonl"
    callbacks, archive = tmp_path / "callbacks.jsonl", tmp_path / "a.jsonl"
    callbacks.write_text("\n".join(simulate_lines(150, seed=22)) + "\n", encoding="utf-8")
    run(["replay", str(callbacks), "--db", database])
    with sink_at(record, secret) as (server, url):
        forward = ["forward", "--db", database, "--to", url, "--secret", secret, "--once"]
        assert run(forward).exit_code == 0
        sent = sink.deliveries(record)
        prune = ["prune", "--db", database, "--before", "2027-01-01", "--archive", str(archive)]
        assert run(prune).exit_code == 0
        # parsed by a worker process, in batches: the restored reports cross a pipe too
        replay = ["replay", str(archive), "--db", database, "--chunk", "20", "--workers", "1"]
        assert run(replay).exit_code == 0
        again = run(forward)
    assert again.exit_code == 0
    assert len(archive.read_text(encoding="utf-8").splitlines()) > 50
    assert len(sent) > 150
    assert sink.deliveries(record) == sent, "changes forwarded again after the archive's replay"
    assert "forwarded 0," in again.output
    assert server.bad_signatures == 0


def test_forward_says_how_many_changes_wait_as_the_feed_holds_them(db: str, tmp_path: Path) -> None:
    """The 'waiting' count is what the feed holds after the cursor, not last seq minus cursor."""
    secret = new_secret()
    with sink_at(tmp_path / "got.jsonl", secret) as (_, url):
        forward = ["forward", "--db", db, "--to", url, "--secret", secret, "--once"]
        final = run([*forward, "--name", "final", "--only", "final"])
        # a is READ and old: pruned, and the changes no consumer holds trimmed (the last stays)
        assert run(["prune", "--db", db, "--before", "2027-01-01"]).exit_code == 0
        trimmed = run(forward)
    assert "from seq 0 (1 waiting, final only)" in final.output  # of the 3, one is final
    assert "from seq 0 (1 waiting)" in trimmed.output  # seqs 1 and 2 are gone
    assert "forwarded 1," in trimmed.output


def test_forward_logs_its_retries_through_logging(db: str, tmp_path: Path) -> None:
    """Each retry is one log line naming the change and the error; stamina prints nothing."""
    secret = new_secret()
    assert SCRIPT is not None
    with sink_at(tmp_path / "got.jsonl", secret, fail_prefix="b") as (_, url):
        done = subprocess.run(
            [SCRIPT, "forward", "--db", db, "--to", url, "--once", "--horizon", "0.3s"],
            env={**os.environ, "DELIVERYSTATE_FORWARD_SECRET": secret},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert "stamina" not in done.stderr, done.stderr
    retries = [line for line in done.stderr.splitlines() if "not delivered" in line]
    assert retries, done.stderr
    assert all(
        " WARNING deliverystate.forward: change 2 (b QUEUED) not delivered: HTTP 503 from " in line
        for line in retries
    ), retries
    assert " WARNING deliverystate.forward: gave up on change 2 (b QUEUED)" in done.stderr


def test_serve_forwards_what_it_receives(tmp_path: Path) -> None:
    """serve --forward-to: callbacks posted over HTTP reach the backend; the page says so."""
    secret, record, port = new_secret(), tmp_path / "got.jsonl", free_port()
    db, log = tmp_path / "served.sqlite3", tmp_path / "serve.log"
    assert SCRIPT is not None
    with sink_at(record, secret) as (server, url), log.open("w") as stderr:
        serving = subprocess.Popen(
            [SCRIPT, "serve", "--db", str(db), "--port", str(port), "--forward-to", url],
            env={**os.environ, "DELIVERYSTATE_FORWARD_SECRET": secret},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _answers(f"{base}/healthz"), seconds=30)
            for status, offset in ((S.QUEUED, 0), (S.SENT_TO_SUPPLIER, 100), (S.READ, 900)):
                body = callback_body(ev("served-1", status, offset))
                answer = httpx.post(f"{base}/callbacks/clickatell", json=body)
                assert answer.status_code == 200, answer.text
            wait_for(lambda: len(sink.deliveries(record)) == 3, seconds=30)
            page = httpx.get(f"{base}/").text
        finally:
            serving.terminate()
            serving.wait(timeout=30)
    assert server.bad_signatures == 0
    assert [g["status"] for g in sink.deliveries(record)] == ["QUEUED", "SENT_TO_SUPPLIER", "READ"]
    assert '<section id="feed"><h2>Change feed</h2>' in page
    said = log.read_text()
    assert f"forwarding changes to {url} as 'forward'" in said
    assert "Traceback" not in said  # stopped cleanly, forwarder and all


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_serve_refuses_a_forward_secret_without_a_target(tmp_path: Path) -> None:
    """--forward-secret alone is a usage error, not a receiver that silently forwards nothing."""
    result = run(["serve", "--db", str(tmp_path / "x.sqlite3"), "--forward-secret", new_secret()])
    assert result.exit_code == 2
    assert "--forward-to and --forward-secret go together" in result.output


def test_a_follower_is_woken_by_postgres_at_commit(postgres_dsn: str, pg_schema: str) -> None:
    """PostgresStore.listen(): a commit elsewhere wakes the waiter; without one it times out."""
    from deliverystate.postgres import PostgresStore  # noqa: PLC0415

    writer = PostgresStore(postgres_dsn, schema=pg_schema)
    reader = PostgresStore(postgres_dsn, schema=pg_schema)
    try:
        with reader.listen() as wait:
            assert wait(0.1) is True  # the first wait connects: read what may have been missed
            started = time.monotonic()
            assert wait(0.3) is False
            assert time.monotonic() - started >= 0.25
            Tracker(writer).apply(ev("wake", S.QUEUED, 0))
            started = time.monotonic()
            assert wait(10) is True
            assert time.monotonic() - started < 5
    finally:
        writer.close()
        reader.close()
