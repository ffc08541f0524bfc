"""Tests for ``deliverystate messages`` and ``show`` by client message id (cli/_messages)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from deliverystate import MemoryStore, SQLiteStore, Status, StatusEvent, Store, Tracker, open_store
from deliverystate.cli._commands import cli
from deliverystate.testing import BASE_MS
from deliverystate.tracking._listing import every_listed, message_query

from .oracle import FAILURE_CODES
from .test_forward import SCRIPT

S = Status


def run(args: list[str]) -> Any:
    """Invoke the command group in-process."""
    return CliRunner().invoke(cli, args)


@pytest.fixture
def db(tmp_path: Path) -> str:
    """Five messages: SMS and WhatsApp, delivered, read, failed and in progress."""
    path = tmp_path / "list.sqlite3"
    store = SQLiteStore(path)
    Tracker(store).apply_many(
        [
            StatusEvent.from_ms("m1", S.QUEUED, BASE_MS + 1000, "sms", "order-1"),
            StatusEvent.from_ms("m1", S.DEVICE_ACK, BASE_MS + 9000, "sms"),
            StatusEvent.from_ms("m2", S.READ, BASE_MS + 2000, "whatsapp", "order-2"),
            StatusEvent.from_ms("m3", S.DELIVERY_FAILURE, BASE_MS + 3000, "sms"),
            StatusEvent.from_ms("m4", S.SENT_TO_SUPPLIER, BASE_MS + 86_400_000, "whatsapp"),
            StatusEvent.from_ms("m5", S.EXPIRED, BASE_MS + 4000, "whatsapp"),
        ]
    )
    store.close()
    return str(path)


def listed(result: Any) -> list[str]:
    """The message ids of a --format jsonl listing, in order."""
    assert result.exit_code == 0, result.output
    return [json.loads(line)["message_id"] for line in result.output.splitlines()]


def test_messages_are_listed_newest_first(db: str) -> None:
    """Without filters every message is listed, newest first report first, as a table."""
    assert listed(run(["messages", "--db", db, "--format", "jsonl"])) == [
        "m4",
        "m5",
        "m3",
        "m2",
        "m1",
    ]
    table = run(["messages", "--db", db])
    assert table.exit_code == 0
    assert "m4" in table.output
    assert "DELIVERY_FAILURE" in table.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--failed"], ["m5", "m3"]),
        (["--status", "read", "--status", "5"], ["m2", "m1"]),
        (["--channel", "WhatsApp"], ["m4", "m5", "m2"]),
        (["--failed", "--channel", "sms"], ["m3"]),
        (["--category", "progress"], ["m4", "m2", "m1"]),
        (["--since", "2026-01-02"], ["m4"]),
        (["--until", "2026-01-01T00:00:02.500Z"], ["m2", "m1"]),
        (["--limit", "2"], ["m4", "m5"]),
    ],
)
def test_each_filter_selects_what_it_says(db: str, args: list[str], expected: list[str]) -> None:
    """Statuses by name or code, failures, channel, category, time bounds and the limit."""
    assert listed(run(["messages", "--db", db, "--format", "jsonl", *args])) == expected


def test_json_and_csv_exports_carry_the_history(db: str) -> None:
    """--format json holds each message's timeline; csv with --history a row per report."""
    result = run(["messages", "--db", db, "--format", "json", "--history", "--status", "5"])
    (message,) = json.loads(result.output)
    assert [r["status"] for r in message["timeline"]] == ["QUEUED", "DEVICE_ACK"]
    assert message["first_report"] == "2026-01-01T00:00:01.000Z"
    rows = list(
        csv.DictReader(
            io.StringIO(run(["messages", "--db", db, "--format", "csv", "--history"]).output)
        )
    )
    assert len(rows) == 6  # six reports about five messages
    assert {r["report_status"] for r in rows if r["message_id"] == "m1"} == {"QUEUED", "DEVICE_ACK"}


def test_bad_filters_are_one_line_usage_errors(db: str) -> None:
    """An unknown status or an unreadable time: exit 2 naming the problem."""
    bad = run(["messages", "--db", db, "--status", "DELIVERED"])
    assert bad.exit_code == 2
    assert "'DELIVERED' is neither a status name nor a code" in bad.output
    late = run(["messages", "--db", db, "--since", "yesterday"])
    assert late.exit_code == 2
    assert "since 'yesterday'" in late.output


def test_show_finds_a_message_by_its_client_message_id(db: str) -> None:
    """show order-2 shows m2: the sender's own reference works as well as Clickatell's id."""
    result = run(["show", "order-2", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["message_id"] == "m2"
    missing = run(["show", "order-9", "--db", db])
    assert missing.exit_code == 1
    assert "by id or client id" in missing.output


def test_messages_runs_as_a_real_command(db: str) -> None:
    """The installed command lists, exports CSV on stdout, and exits 0."""
    assert SCRIPT is not None
    done = subprocess.run(
        [SCRIPT, "messages", "--db", db, "--failed", "--format", "csv"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert [row["message_id"] for row in csv.DictReader(io.StringIO(done.stdout))] == ["m5", "m3"]


def test_a_mistyped_status_suggests_the_nearest_name_and_lists_them_all(db: str) -> None:
    """--status EXPRIED: exit 2, 'Did you mean EXPIRED?', then every valid status name."""
    result = run(["messages", "--db", db, "--status", "EXPRIED"])
    assert result.exit_code == 2
    assert "Did you mean EXPIRED?" in result.output
    listed_names = result.output.split("Valid names:", 1)[1]
    assert all(status.name in listed_names for status in Status)
    assert "Did you mean" not in run(["messages", "--db", db, "--status", "zzzzzz"]).output


ORACLE_IN_PROGRESS = {int(s) for s in Status if int(s) not in FAILURE_CODES} - {5, 6}


def every_status(store: Store) -> None:
    """One message per status of the catalog, each with a client id of its code's parity."""
    Tracker(store).apply_many(
        [
            StatusEvent.from_ms(f"s{int(s)}", s, BASE_MS + int(s), None, f"c{int(s) % 2}")
            for s in Status
        ]
    )


def test_in_progress_and_client_id_select_on_both_sql_stores(database: str) -> None:
    """--in-progress: neither delivered, read nor failed; --client-id: that sender reference."""
    store = open_store(database)
    every_status(store)
    store.close()  # type: ignore[attr-defined]
    args = ["messages", "--db", database, "--format", "jsonl"]
    in_progress = listed(run([*args, "--in-progress"]))
    assert {int(m[1:]) for m in in_progress} == ORACLE_IN_PROGRESS
    odd = listed(run([*args, "--client-id", "c1", "--in-progress"]))
    assert {int(m[1:]) for m in odd} == {c for c in ORACLE_IN_PROGRESS if c % 2}
    assert listed(run([*args, "--client-id", "nobody"])) == []


def test_in_progress_and_client_id_select_on_the_memory_store() -> None:
    """The same query, built as messages builds it, on the memory store."""
    store = MemoryStore()
    every_status(store)
    query = message_query(in_progress=True, client_message_id="c0")
    found = {int(item.state.message_id[1:]) for item in every_listed(store, query)}
    assert found == {c for c in ORACLE_IN_PROGRESS if c % 2 == 0}


@pytest.mark.parametrize("bad", ["a\x00b", "\udced\udca0\udc80", "x" * 300, "tab\there"])
def test_an_id_no_message_can_have_is_a_usage_error_on_every_store(database: str, bad: str) -> None:
    """show ID or messages --client-id ID: exit 2 saying why; no traceback, no "unavailable"."""
    # \udced\udca0\udc80 is how Python hands over show $'\xed\xa0\x80' (surrogateescape)
    store = open_store(database)
    Tracker(store).apply(StatusEvent.from_ms("m1", S.QUEUED, BASE_MS, "sms", "order-1"))
    getattr(store, "close", lambda: None)()
    for args, named in [
        (["show", bad], "MESSAGE_ID"),
        (["messages", "--client-id", bad], "client-id"),
    ]:
        result = run([*args, "--db", database])
        assert result.exit_code == 2, result.output
        assert named in result.output
        assert "no message has such an id" in result.output
        assert "Traceback" not in result.output
        assert "unavailable" not in result.output
