"""The ``dead-letter`` commands: list, show, retry and purge, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from deliverystate import SQLiteStore, Status, open_store
from deliverystate.cli._commands import cli

from .test_cli import body
from .test_replay import SCRIPT

#: Longer than any table column and than the 200 columns piped output gets, with text that
#: rich would read as markup and characters outside ASCII.
LONG = '{"messageId": "[bold]x[/bold]", "note": "' + "é" * 300 + '", "status": "?"}'


def run(args: list[str]) -> Any:
    """Invoke the command group in-process."""
    return CliRunner().invoke(cli, args)


def named(db: str) -> str:
    """What the commands call ``db``: a PostgreSQL URL's schema is said after it, not in it."""
    base, _, schema = db.partition("?schema=")
    return f"{base} (schema {schema})" if schema else db


def letters(db: str) -> list[tuple[int, str]]:
    """The (id, payload) of every dead letter in ``db``."""
    store = open_store(db, must_exist=True)
    try:
        return [(letter.id, letter.payload) for letter in store.dead_letters()]
    finally:
        getattr(store, "close", lambda: None)()


def status_of(db: str, message_id: str) -> Status | None:
    """The status ``db`` holds for a message, None when it holds none."""
    store = open_store(db, must_exist=True)
    try:
        state = store.get(message_id)
        return None if state is None else state.status
    finally:
        getattr(store, "close", lambda: None)()


@pytest.fixture
def kept(database: str) -> str:
    """A database (SQLite or PostgreSQL) holding three dead letters: short, long, retryable."""
    store = open_store(database)
    try:
        store.add_dead_letter("{broken", "invalid callback: body: not JSON")
        store.add_dead_letter(LONG, "invalid callback: status: unknown status '?'")
        store.add_dead_letter(body("late", 5, 0), "unknown status code 5 (older catalog)")
    finally:
        getattr(store, "close", lambda: None)()
    return database


def test_show_prints_one_letter_whole(kept: str) -> None:
    """show gives the payload exactly as kept, on one line, with its error and arrival time."""
    (ident, payload), *_ = [(i, p) for i, p in letters(kept) if p == LONG]
    result = run(["dead-letter", "show", str(ident), "--db", kept])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"dead letter {ident}, received 20")
    assert lines[1] == "error: invalid callback: status: unknown status '?'"
    assert lines[2] == f"payload ({len(LONG):,} characters):"
    assert lines[3:] == [LONG]
    data = json.loads(run(["dead-letter", "show", str(ident), "--db", kept, "--json"]).stdout)
    assert data["payload"] == payload == LONG
    assert data["id"] == ident
    assert data["received_at"] == lines[0].rsplit(" ", 1)[1]


def test_show_as_a_real_process_writes_the_payload_untouched(tmp_path: Path) -> None:
    """The installed script prints a non-ASCII, bracketed payload byte for byte."""
    db = tmp_path / "dl.sqlite3"
    SQLiteStore(db).add_dead_letter(LONG, "some error")
    assert SCRIPT is not None
    done = subprocess.run(
        [SCRIPT, "dead-letter", "show", "1", "--db", str(db)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode("utf-8").splitlines()[3] == LONG


def test_show_of_an_unknown_id_is_one_line_exit_1(kept: str) -> None:
    """An id that is not in the dead letter: one line naming it, exit status 1."""
    result = run(["dead-letter", "show", "999", "--db", kept])
    assert result.exit_code == 1
    assert result.stderr == f"Error: no dead letter 999 in {named(kept)}\n"
    assert run(["dead-letter", "show", "first", "--db", kept]).exit_code == 2


def test_list_shows_payloads_as_text_and_points_to_show(kept: str) -> None:
    """The list prints a payload's brackets as they are and says how to see a cut one whole."""
    result = run(["dead-letter", "list", "--db", kept])
    assert result.exit_code == 0
    assert "[bold]x[/bold]" in result.stdout
    assert "deliverystate dead-letter show ID" in result.stderr


def test_purge_by_id_removes_those_and_says_how_many(kept: str) -> None:
    """--id twice removes exactly those two; --dry-run before it removed nothing."""
    before = letters(kept)
    chosen = [str(ident) for ident, _ in before[:2]]
    args = ["dead-letter", "purge", "--id", chosen[0], "--id", chosen[1], "--db", kept]
    dry = run([*args, "--dry-run"])
    assert dry.exit_code == 0
    assert dry.stdout.strip() == "would remove 2 of 3 dead letters"
    assert letters(kept) == before
    done = run(args)
    assert done.exit_code == 0
    assert done.stdout.strip() == "removed 2 of 3 dead letters"
    assert letters(kept) == before[2:]


def test_purge_with_an_unknown_id_removes_nothing(kept: str) -> None:
    """One unknown id among known ones: exit 1, one line, every letter still there."""
    before = letters(kept)
    result = run(["dead-letter", "purge", "--id", str(before[0][0]), "--id", "999", "--db", kept])
    assert result.exit_code == 1
    assert result.stderr == f"Error: no dead letter 999 in {named(kept)}\n"
    assert letters(kept) == before


def test_purge_before_a_time_in_the_past_or_future(kept: str) -> None:
    """--before a date before any arrival removes none; one after every arrival removes all."""
    none = run(["dead-letter", "purge", "--before", "2000-01-01", "--db", kept, "--json"])
    assert json.loads(none.stdout) == {
        "db": named(kept),
        "dry_run": False,
        "removed": 0,
        "ids": [],
        "left": 3,
    }
    ids = [ident for ident, _ in letters(kept)]
    every = run(
        ["dead-letter", "purge", "--before", "2999-01-01T00:00:00Z", "--db", kept, "--json"]
    )
    assert json.loads(every.stdout)["ids"] == ids
    assert letters(kept) == []


def test_purge_before_keeps_what_came_later(tmp_path: Path) -> None:
    """Letters dated either side of --before: only the earlier go; with --id, that one too."""
    db = tmp_path / "dated.sqlite3"
    store = SQLiteStore(db)
    for payload in ("old-1", "old-2", "new-1", "new-2"):
        store.add_dead_letter(payload, "e")
    store.close()
    with contextlib.closing(sqlite3.connect(db)) as raw, raw:
        raw.execute("UPDATE ds_dead_letters SET received_at = '2025-06-30 23:59:59'")
        raw.execute(
            "UPDATE ds_dead_letters SET received_at = '2025-07-01 00:00:00' "
            "WHERE CAST(payload AS TEXT) LIKE 'new-%'"
        )
    new_2 = next(ident for ident, payload in letters(str(db)) if payload == "new-2")
    args = ["dead-letter", "purge", "--before", "2025-07-01", "--id", str(new_2), "--db", str(db)]
    result = run(args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "removed 3 of 4 dead letters"
    assert [payload for _, payload in letters(str(db))] == ["new-1"]


def test_purge_needs_an_id_or_a_time(tmp_path: Path) -> None:
    """Neither --id nor --before, or a --before that is no date: usage errors, exit status 2."""
    db = str(tmp_path / "x.sqlite3")
    bare = run(["dead-letter", "purge", "--db", db])
    assert bare.exit_code == 2
    assert "--id ID, --before DATE or both" in bare.stderr
    assert run(["dead-letter", "purge", "--before", "soon", "--db", db]).exit_code == 2
    assert not Path(db).exists()


def test_options_before_the_action_still_apply(kept: str, tmp_path: Path) -> None:
    """dead-letter --db X [--json] still lists, retries or shows X; an option after it wins."""
    listed = run(["dead-letter", "--db", kept, "--json"])
    assert listed.exit_code == 0
    assert [row["payload"] for row in json.loads(listed.stdout)] == [p for _, p in letters(kept)]
    retried = run(["dead-letter", "--db", kept, "retry"])
    assert "re-applied 1 dead letters (1 events); 2 still invalid" in retried.stdout
    assert status_of(kept, "late") is Status.DEVICE_ACK
    ident = letters(kept)[0][0]
    shown = run(["dead-letter", "--db", kept, "--json", "show", str(ident)])
    assert json.loads(shown.stdout)["payload"] == "{broken"
    elsewhere = run(["dead-letter", "--db", kept, "list", "--db", str(tmp_path / "no.sqlite3")])
    assert elsewhere.exit_code == 1  # the option after the action wins
    assert "no database at" in elsewhere.stderr


@pytest.mark.parametrize("action", ["list", "retry", "show", "purge"])
def test_every_action_help_shows_an_example(action: str) -> None:
    """Each dead-letter action's --help carries a usage example."""
    result = run(["dead-letter", action, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout


def add_letters(db: str, *kept: tuple[str, str]) -> None:
    """Keep these (payload, error) pairs in the dead letter of ``db``, in order."""
    store = open_store(db)
    try:
        for payload, error in kept:
            store.add_dead_letter(payload, error)
    finally:
        getattr(store, "close", lambda: None)()


def test_list_limit_shows_the_newest_n_and_says_of_how_many(kept: str) -> None:
    """--limit 2: the two newest letters, oldest of them first; stderr says 2 of 3."""
    result = run(["dead-letter", "list", "--limit", "2", "--db", kept, "--json"])
    assert result.exit_code == 0, result.output
    assert [row["payload"] for row in json.loads(result.stdout)] == [LONG, body("late", 5, 0)]
    assert "the newest 2 of 3 dead letters" in result.stderr
    whole = run(["dead-letter", "list", "--limit", "3", "--db", kept])
    assert "newest" not in whole.stderr
    assert run(["dead-letter", "list", "--limit", "0", "--db", kept]).exit_code == 2


def test_list_group_by_reason_counts_most_frequent_first(kept: str) -> None:
    """--group-by reason: one row per reason (details elided), most frequent first, JSON too."""
    add_letters(
        kept,
        ("oops", "invalid callback: body: not JSON (Expecting value: line 1 column 1 (char 0))"),
        ("[1", "invalid callback: body: not JSON (Expecting ',' delimiter: line 1 column 3)"),
        ('{"x": 1}', "invalid callback: status: unknown status 'Y'"),
    )
    grouped = run(["dead-letter", "list", "--group-by", "reason", "--db", kept, "--json"])
    assert grouped.exit_code == 0, grouped.output
    assert json.loads(grouped.stdout) == [
        {"reason": "body: not JSON", "count": 3},
        {"reason": "status: unknown status '...'", "count": 2},
        {"reason": "unknown status code N", "count": 1},
    ]
    table = run(["dead-letter", "list", "--group-by", "reason", "--db", kept])
    rows = [line for line in table.stdout.splitlines() if "│" in line]
    assert [row.split("│")[1].strip() for row in rows] == [
        "body: not JSON",
        "status: unknown status '...'",
        "unknown status code N",
    ]
    assert [row.split("│")[2].strip() for row in rows] == ["3", "2", "1"]
    newest = run(["dead-letter", "list", "--group-by", "reason", "--limit", "2", "--db", kept])
    assert "body: not JSON" in newest.stdout
    assert "unknown status code N" not in newest.stdout
