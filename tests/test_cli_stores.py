"""How every command opens and names its store: never with its password, and a read creates nothing.

The password test runs every command of the group (enumerated from click, so
that a new command fails it until it is added here) against the test
PostgreSQL server with a password in the URL, which trust authentication
ignores, and looks for the password in everything printed and logged.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import click
import httpx
import psycopg
import pytest
from click.testing import CliRunner

from deliverystate import SQLiteStore, Tracker
from deliverystate.cli._commands import cli
from deliverystate.forward import new_secret
from deliverystate.simulate import simulate_lines
from deliverystate.stores import _sql as sqlstore_module

from .test_forward import SCRIPT, sink_at
from .test_web import wait_for
from .test_web_intake import free_port

#: '@', ':' and '/' must be percent-encoded in a URL; some redactions stopped at them.
PASSWORD = "S3cr@t:Pw/x"
ENCODED = quote(PASSWORD, safe="")
#: The forms a leak could take, and a prefix of both, for a password cut short.
LEAKS = (PASSWORD, ENCODED, "S3cr")


def with_password(dsn: str, schema: str, port: int | None = None) -> str:
    """The test server's URL with PASSWORD in its user information and its query."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    if port is not None:
        host = f"{host.partition(':')[0]}:{port}"
    netloc = f"{parts.username or 'postgres'}:{ENCODED}@{host}"
    return urlunsplit(parts._replace(netloc=netloc, query=f"password={ENCODED}&schema={schema}"))


def leaked(text: str) -> list[str]:
    """The forms of the password in ``text``, read across rich's wrapping and box drawing."""
    flat = re.sub(r"[\s\u2500-\u257f]", "", text)
    return [form for form in LEAKS if form in flat]


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command of ``group`` and of its sub-groups, as the words that invoke it."""
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*prefix, name))


def resolve(args: list[str]) -> tuple[tuple[str, ...], click.Command]:
    """The command ``args`` invoke, and the words naming it."""
    path: list[str] = []
    command: click.Command = cli
    for word in args:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command = command.commands[word]
        path.append(word)
    return tuple(path), command


def run(args: list[str], url: str) -> Any:
    """Invoke ``args`` in-process, with ``--db url`` when the command takes --db, env either way."""
    _, command = resolve(args)
    takes_db = any(param.name == "db" for param in command.params)
    return CliRunner().invoke(
        cli, [*args, "--db", url] if takes_db else args, env={"DELIVERYSTATE_DB": url}
    )


def schema_exists(dsn: str, schema: str) -> bool:
    """Whether PostgreSQL has a schema of that name (pg_namespace)."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        row = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        return row.fetchone() is not None


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, str]:
    """A callback stream with one line that is not JSON, and two sends to register."""
    stream = tmp_path / "stream.jsonl"
    stream.write_text("\n".join([*simulate_lines(15, seed=3), "{broken"]) + "\n")
    sends = tmp_path / "sends.jsonl"
    sends.write_text(
        "\n".join(
            json.dumps({"message_id": f"reg-{n}", "channel": "sms", "sent_at": "2026-01-01T00:00Z"})
            for n in range(2)
        )
        + "\n"
    )
    return {"stream": str(stream), "sends": str(sends)}


def serve_and_read(url: str, tmp_path: Path) -> str:
    """``deliverystate serve`` on ``url``: what it printed and served until stopped."""
    port, log = free_port(), tmp_path / "serve.log"
    assert SCRIPT is not None
    base, answers = f"http://127.0.0.1:{port}", []
    with log.open("w") as output:
        serving = subprocess.Popen(
            [SCRIPT, "serve", "--db", url, "--port", str(port), "--access-log"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: _answers(f"{base}/healthz"), seconds=30)
            for path in ("/", "/messages", "/messages?status=READ", "/metrics", "/healthz"):
                answers.append(httpx.get(base + path, timeout=10).text)
        finally:
            serving.terminate()
            serving.wait(timeout=30)
    return log.read_text() + "\n".join(answers)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_no_command_prints_the_postgres_password(
    postgres_dsn: str, pg_schema: str, inputs: dict[str, str], tmp_path: Path, caplog: Any
) -> None:
    """Every command, its errors and hints included, names the store without its password."""
    caplog.set_level(logging.DEBUG)
    url = with_password(postgres_dsn, pg_schema)
    secret, record = new_secret(), tmp_path / "got.jsonl"
    with sink_at(record, secret) as (_, hook):
        invocations = [
            ["codes"],
            ["diagram", "--format", "mermaid"],
            ["simulate", "-n", "3"],
            ["replay", inputs["stream"]],  # one invalid line: the dead letter hint
            ["replay", inputs["stream"], "--json"],
            ["register", inputs["sends"]],
            ["register", inputs["sends"], "--json"],
            ["sweep", "--now", "2030-01-01T00:00:00Z"],
            ["sweep", "--json"],
            ["stats"],
            ["stats", "--json"],
            ["show", "reg-0"],
            ["show", "no-such-message"],
            ["messages"],
            ["messages", "--status", "READ", "--format", "json"],
            ["changes", "--json"],
            ["forward", "--to", hook, "--secret", secret, "--once"],
            ["dead-letter"],
            ["dead-letter", "list"],
            ["dead-letter", "show", "1"],
            ["dead-letter", "show", "999"],
            ["dead-letter", "purge", "--id", "999"],
            ["dead-letter", "purge", "--before", "2000-01-01", "--json"],
            ["dead-letter", "retry", "--json"],
            ["prune", "--before", "2000-01-01"],
            ["prune", "--before", "2000-01-01", "--dry-run", "--json"],
        ]
        printed = {" ".join(args): run(args, url) for args in invocations}
    missing = f"t_{uuid.uuid4().hex[:12]}"
    unreachable = with_password(postgres_dsn, pg_schema, port=free_port())
    try:
        printed["stats (no such schema)"] = run(["stats"], with_password(postgres_dsn, missing))
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{missing}" CASCADE')
    printed["replay (server unreachable)"] = run(["replay", inputs["stream"]], unreachable)
    printed["serve"] = serve_and_read(url, tmp_path)
    for what, result in printed.items():
        text = result if isinstance(result, str) else result.output + str(result.exception or "")
        assert not leaked(text), f"{what} printed the password: {text}"
    assert not leaked(caplog.text)
    covered = {resolve(args)[0] for args in invocations} | {("serve",)}
    assert set(command_paths(cli)) <= covered, "a command this test does not run"
    assert printed["replay " + inputs["stream"]].exit_code == 3
    assert printed["show no-such-message"].exit_code == 1
    assert "no database at" in printed["stats (no such schema)"].stderr
    assert "is unavailable" in printed["replay (server unreachable)"].stderr
    assert "***" in printed["stats"].stdout  # the store is named, its password masked


READ_ONLY = [
    ["stats"],
    ["show", "some-message"],
    ["messages"],
    ["changes"],
    ["dead-letter"],
    ["dead-letter", "list"],
    ["dead-letter", "show", "1"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_read_only_command_creates_no_postgres_schema(postgres_dsn: str, args: list[str]) -> None:
    """Against a schema that does not exist: exit 1 naming it, and it still does not exist."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        result = run(args, with_password(postgres_dsn, schema))
        assert result.exit_code == 1, result.output
        assert f"no database at {urlsplit(postgres_dsn).scheme}://" in result.stderr
        assert f"schema {schema} does not exist" in result.stderr
        assert not leaked(result.output)
        assert not schema_exists(postgres_dsn, schema)
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_read_only_command_creates_no_tables_in_an_empty_postgres_schema(
    postgres_dsn: str, pg_schema: str
) -> None:
    """A schema that exists but holds no deliverystate tables is refused and left empty."""
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{pg_schema}"')
    for args in READ_ONLY:
        result = run(args, with_password(postgres_dsn, pg_schema))
        assert result.exit_code == 1, (args, result.output)
        assert "holds no deliverystate tables" in result.stderr
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        tables = connection.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (pg_schema,),
        ).fetchall()
    assert tables == []


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_read_only_command_creates_no_sqlite_file(tmp_path: Path, args: list[str]) -> None:
    """Against a path without a file: exit 1 naming it, and no file is there afterwards."""
    path = tmp_path / "absent.sqlite3"
    result = run(args, str(path))
    assert result.exit_code == 1, result.output
    assert f"no database at {path}: no such file" in result.stderr
    assert sorted(tmp_path.iterdir()) == []


def test_a_read_only_command_creates_no_tables_in_an_empty_sqlite_file(tmp_path: Path) -> None:
    """An empty file (or another program's database) is refused and left byte for byte."""
    path = tmp_path / "empty.sqlite3"
    path.touch()
    for args in READ_ONLY:
        result = run(args, str(path))
        assert result.exit_code == 1, (args, result.output)
        assert f"no database at {path}: the file holds no deliverystate tables" in result.stderr
    assert path.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite3"]


def test_codes_reads_no_database_at_all(tmp_path: Path) -> None:
    """codes answers from the catalog: the environment's missing --db is neither read nor made."""
    path = tmp_path / "absent.sqlite3"
    result = run(["codes"], str(path))
    assert result.exit_code == 0
    assert not path.exists()


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_read_only_command_does_not_migrate_an_older_schema(
    tmp_path: Path, args: list[str]
) -> None:
    """An older schema is refused with what migrates it, and left at its version."""
    path = tmp_path / "old.sqlite3"
    SQLiteStore(path).close()
    older = sqlstore_module.SCHEMA_VERSION - 1
    with sqlite3.connect(path) as raw:
        raw.execute(f"UPDATE ds_meta SET value = '{older}' WHERE key = 'schema_version'")
    result = run(args, str(path))
    assert result.exit_code == 1, result.output
    assert f"has schema version {older}, older than" in result.stderr
    assert "a writing one (serve, replay, register, sweep, prune) does" in result.stderr
    with sqlite3.connect(path) as raw:
        (found,) = raw.execute("SELECT value FROM ds_meta WHERE key = 'schema_version'").fetchone()
    assert int(found) == older


def test_a_read_only_command_reads_an_existing_store(tmp_path: Path) -> None:
    """The read-only open still reads what is there (stats counts it)."""
    path = tmp_path / "state.sqlite3"
    with SQLiteStore(path) as store:
        Tracker(store).ingest_many(simulate_lines(5, seed=1))
    result = run(["stats", "--json"], str(path))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["messages"] == 5
    assert os.path.exists(path)
