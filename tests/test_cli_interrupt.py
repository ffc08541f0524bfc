"""Ctrl-C on every long-running command, and serve's word on a new database, as real processes.

Each command runs as the installed script in a process group of its own, as a
terminal runs a foreground command; once it is under way the group gets
SIGINT, as Ctrl-C sends it.  The command must exit 130 with a line on
stderr saying so, and no traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from .test_cli import body
from .test_replay import SCRIPT

#: A secret the forward command accepts (any base64 after whsec_).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def holds(db: Path, message_id: str) -> bool:
    """Whether the SQLite file ``db`` has a row for ``message_id`` (read without the library)."""
    if not db.exists():
        return False
    try:
        with sqlite3.connect(db) as raw:
            found = raw.execute("SELECT 1 FROM ds_messages WHERE message_id = ?", (message_id,))
            return found.fetchone() is not None
    except sqlite3.OperationalError:  # the tables are still being made
        return False


class Running:
    """A command started in its own process group, its stdout and stderr kept in files."""

    def __init__(self, args: list[str], folder: Path, stdin: bytes | None = None) -> None:
        assert SCRIPT is not None
        self.out, self.err = folder / f"{uuid.uuid4().hex}.out", folder / f"{uuid.uuid4().hex}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [SCRIPT, *args],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                start_new_session=True,
                # Ctrl-C as a shell gives a foreground command: a test run started in the
                # background of a non-interactive shell would pass SIGINT down ignored
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
            )
        assert self.process.stdin is not None
        if stdin is not None:
            self.process.stdin.write(stdin)
            self.process.stdin.flush()  # and left open: the command waits for more

    def stderr(self) -> str:
        """What the command wrote on stderr so far."""
        return self.err.read_text(encoding="utf-8", errors="replace")

    def wait_until(self, ready: Callable[[], bool], timeout: float = 60) -> None:
        """Wait until ``ready()``; fail with stderr if the command ended or took too long."""
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.process.poll() is None, f"ended early: {self.stderr()}"
            assert time.monotonic() < deadline, f"never ready: {self.stderr()}"
            time.sleep(0.1)

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: SIGINT to the whole group; the exit status and all of stderr."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            status = self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:  # pragma: no cover - only when the test fails
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            assert self.process.stdin is not None
            self.process.stdin.close()
        return status, self.stderr()


@pytest.fixture
def fed(tmp_path: Path) -> Path:
    """An SQLite database holding two messages (so two changes in its feed)."""
    db = tmp_path / "fed.sqlite3"
    lines = f"{body('a', 5, 0)}\n{body('b', 4, 10)}\n".encode()
    assert SCRIPT is not None
    subprocess.run([SCRIPT, "replay", "-", "--db", str(db)], input=lines, check=True, timeout=120)
    return db


def assert_interrupted(status: int, stderr: str, said: str = "interrupted") -> None:
    """Exit 130, the given words on stderr, and no traceback."""
    assert status == 130, stderr
    assert said in stderr, stderr
    assert "Traceback" not in stderr, stderr
    assert "Aborted!" not in stderr, stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_serve_with_130(tmp_path: Path, workers: str) -> None:
    """serve, with the sweeper beside it, one worker or several: Ctrl-C shuts the receiver
    down, says so, exits 130."""
    db = tmp_path / "served.sqlite3"
    args = ["serve", "--db", str(db), "--port", str(free_port()), "--sweep-every", "1s"]
    args += ["--workers", workers]
    running = Running(args, tmp_path)
    # every worker started: a SIGINT to a worker still importing is Python's, not serve's
    running.wait_until(
        lambda: running.stderr().count("Application startup complete") == int(workers)
    )
    assert_interrupted(*running.interrupt(), "interrupted: the receiver stopped")


def test_ctrl_c_stops_forward_with_130_and_says_where_the_cursor_is(
    fed: Path, tmp_path: Path
) -> None:
    """forward retrying a backend that is down: Ctrl-C names the cursor's position, exits 130."""
    target = f"http://127.0.0.1:{free_port()}/hooks"
    args = ["forward", "--db", str(fed), "--to", target, "--secret", SECRET]
    running = Running(args, tmp_path)
    running.wait_until(lambda: "Ctrl-C stops" in running.stderr())
    time.sleep(0.5)  # into its first attempts
    assert_interrupted(*running.interrupt(), "interrupted: cursor 'forward' is committed at 0")


def test_ctrl_c_stops_changes_follow_with_130(fed: Path, tmp_path: Path) -> None:
    """changes --follow, waiting for more after printing the feed: Ctrl-C exits 130."""
    running = Running(["changes", "--db", str(fed), "--follow"], tmp_path)
    running.wait_until(lambda: len(running.out.read_text().splitlines()) == 2)
    assert_interrupted(*running.interrupt())


def test_ctrl_c_stops_replay_of_stdin_with_130(tmp_path: Path) -> None:
    """replay - with more to come on stdin: Ctrl-C says what is committed, exits 130."""
    db = tmp_path / "replayed.sqlite3"
    first = f"{body('a', 5, 0)}\n".encode()
    running = Running(["replay", "-", "--db", str(db), "--chunk", "1"], tmp_path, first)
    running.wait_until(lambda: holds(db, "a"))
    assert_interrupted(*running.interrupt(), "interrupted: <stdin> is committed up to line 1")


def test_ctrl_c_stops_register_of_stdin_with_130(tmp_path: Path) -> None:
    """register - waiting on stdin: Ctrl-C exits 130 (click alone said Aborted! and 1)."""
    db = tmp_path / "registered.sqlite3"
    running = Running(["register", "-", "--db", str(db)], tmp_path, b"")
    running.wait_until(db.exists)
    time.sleep(0.5)  # past opening the store, reading stdin
    assert_interrupted(*running.interrupt())


def test_serve_says_when_it_creates_a_new_sqlite_database(tmp_path: Path) -> None:
    """A --db that did not exist is named on stderr as new; the second start is quiet."""
    db = tmp_path / "fresh.sqlite3"
    for start in ("first", "second"):
        running = Running(["serve", "--db", str(db), "--port", str(free_port())], tmp_path)
        running.wait_until(lambda r=running: "Uvicorn running on" in r.stderr())  # type: ignore[misc]
        said = running.interrupt()[1]
        created = f"created a new, empty database: {db}" in said
        assert created is (start == "first"), said


def test_serve_says_when_it_creates_a_new_postgres_schema(postgres_dsn: str) -> None:
    """A schema that did not exist: stderr names it (the URL redacted), once."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = f"{postgres_dsn}{'&' if '?' in postgres_dsn else '?'}schema={schema}"
    try:
        for start in ("first", "second"):
            folder = Path(os.environ.get("TMPDIR", "/tmp"))
            running = Running(["serve", "--db", url, "--port", str(free_port())], folder)
            running.wait_until(lambda r=running: "Uvicorn running on" in r.stderr())  # type: ignore[misc]
            said = running.interrupt()[1]
            created = "created a new, empty database: " in said and f"(schema {schema})" in said
            assert created is (start == "first"), said
    finally:
        import psycopg  # noqa: PLC0415 - the postgres extra, as conftest uses it

        with psycopg.connect(postgres_dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
