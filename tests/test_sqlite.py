"""Tests specific to SQLiteStore: files, processes, schema versions and failures."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import deliverystate.stores._sql as sqlstore_module
import deliverystate.stores._sqlite as sqlite_module
from deliverystate import (
    InvalidCallback,
    MemoryStore,
    SQLiteStore,
    Status,
    StatusEvent,
    StoreUnavailable,
    Tracker,
)
from deliverystate.errors import SchemaMismatch
from deliverystate.rules import DELIVERY_WINS, Origin
from deliverystate.simulate import callback_body
from deliverystate.testing import BASE_MS

from . import old_schemas
from .confined import ConfinedStore
from .workers import run_workers, simulated_events


def test_four_processes_end_where_one_memory_tracker_ends(tmp_path: Path) -> None:
    """Interleaved shares applied by 4 processes to one file give the single-tracker states."""
    events = simulated_events(500, seed=21)
    path = tmp_path / "shared.sqlite3"
    SQLiteStore(path).close()
    run_workers({"kind": "sqlite", "path": str(path)}, events)
    reference = Tracker(MemoryStore())
    reference.apply_many(events)
    store = SQLiteStore(path)
    ids = {e.message_id for e in events}
    assert {s.message_id: s for s in store.iter_states()} == {i: reference.get(i) for i in ids}
    assert store.history_size() == len({(e.message_id, e.status, e.timestamp_ms) for e in events})


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    """The file is switched to WAL so readers never wait for the writer."""
    SQLiteStore(tmp_path / "w.sqlite3").close()
    with sqlite3.connect(tmp_path / "w.sqlite3") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unopenable_path_is_one_clear_error(tmp_path: Path) -> None:
    """A file in a missing directory raises StoreUnavailable (a ConnectionError) naming it."""
    target = tmp_path / "missing" / "x.sqlite3"
    with pytest.raises(StoreUnavailable) as caught:
        SQLiteStore(target)
    assert isinstance(caught.value, ConnectionError)
    assert str(target) in str(caught.value)
    assert caught.value.target == str(target)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    """Opening a text file as the store raises StoreUnavailable, not a driver error."""
    target = tmp_path / "notes.txt"
    target.write_text("hello, this is not sqlite" * 100)
    with pytest.raises(StoreUnavailable, match="not a database"):
        SQLiteStore(target)


def test_newer_schema_is_refused_with_both_versions(tmp_path: Path) -> None:
    """A database written by a newer version is refused, naming both versions."""
    path = tmp_path / "new.sqlite3"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE ds_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaMismatch) as caught:
        SQLiteStore(path)
    assert (caught.value.found, caught.value.expected) == (99, sqlstore_module.SCHEMA_VERSION)
    assert "upgrade deliverystate" in str(caught.value)


def test_older_schema_is_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a database one version old runs that version's migration, once."""
    path = tmp_path / "old.sqlite3"
    Tracker(SQLiteStore(path)).apply(StatusEvent.from_ms("m", 5, BASE_MS, "sms"))
    current = sqlstore_module.SCHEMA_VERSION
    monkeypatch.setattr(sqlstore_module, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(
        sqlite_module, "MIGRATIONS", {current: ("ALTER TABLE ds_messages ADD COLUMN note TEXT",)}
    )
    store = SQLiteStore(path)
    assert store.schema_version() == current + 1
    assert store.get("m").status is Status.DEVICE_ACK
    with sqlite3.connect(path) as raw:
        columns = [row[1] for row in raw.execute("PRAGMA table_info(ds_messages)")]
    assert "note" in columns
    assert SQLiteStore(path).schema_version() == current + 1  # reopening does not migrate again


def test_context_manager_closes(tmp_path: Path) -> None:
    """Using the store in a with-block closes its connection."""
    with SQLiteStore(tmp_path / "c.sqlite3") as store:
        store.apply(StatusEvent.from_ms("m", 2, BASE_MS), Tracker().policy)
    with pytest.raises(sqlite3.ProgrammingError):
        store._conn.execute("SELECT 1")


def test_a_nul_in_an_id_can_no_longer_bypass_precedence(tmp_path: Path) -> None:
    """Regression: json_each cut "a\\x00b" short, so READ then QUEUED ended QUEUED.

    Such an id is now refused before it reaches any store: as a callback (kept in
    the dead letter) and as a hand-built event.
    """
    tracker = Tracker(SQLiteStore(tmp_path / "nul.sqlite3"))
    read = json.dumps(callback_body(StatusEvent.from_ms("a", Status.READ, BASE_MS, "whatsapp")))
    queued = json.dumps(callback_body(StatusEvent.from_ms("a", Status.QUEUED, BASE_MS - 1)))
    for body in (read, queued):
        with pytest.raises(InvalidCallback, match="control character"):
            tracker.ingest(body.replace('"a"', '"a\\u0000b"'))
    assert tracker.get("a\x00b") is None
    assert tracker.get("a") is None
    assert len(tracker.dead_letters()) == 2
    with pytest.raises(ValueError, match="control character"):
        StatusEvent.from_ms("a\x00b", Status.READ, BASE_MS)
    # an id that merely starts the same is its own message, untouched
    tracker.ingest(read)
    assert tracker.get("a").status is Status.READ  # type: ignore[union-attr]


@pytest.mark.parametrize("v1", [True, False], ids=["version-1", "version-2"])
def test_an_old_database_is_migrated_with_its_states_history_and_bodies(
    tmp_path: Path, v1: bool
) -> None:
    """A database an older release wrote opens with its states, history and bodies intact."""
    path = tmp_path / "old.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as raw, raw:
        raw.execute("CREATE TABLE ds_meta (key TEXT PRIMARY KEY, value TEXT)")
        for ddl in old_schemas.SQLITE_V1:
            raw.execute(ddl)
        old_schemas.fill(raw.cursor(), "?", v1=v1)
    check_migrated(SQLiteStore(path))


def check_migrated(store: Any) -> None:
    """The old content reads back the same, and duplicates of it are still recognised."""
    tracker = Tracker(store)
    try:
        assert store.schema_version() == sqlstore_module.SCHEMA_VERSION
        for message_id, (status, timestamp_ms) in old_schemas.STATES.items():
            state = store.get(message_id)
            assert (state.status, state.timestamp_ms) == (status, timestamp_ms)
            assert (state.origin, state.deadline_ms) == (Origin.CLICKATELL, None)
        # the keys the old default wrote are re-keyed under today's default
        keys = dict(store._read("SELECT message_id, precedence FROM ds_messages"))
        assert keys == {m: DELIVERY_WINS.key(s, ts) for m, (s, ts) in old_schemas.STATES.items()}
        timeline = [
            (e.event.message_id, e.event.status, e.event.timestamp_ms - BASE_MS, e.outcome.value)
            for m in old_schemas.STATES
            for e in store.history(m)
        ]
        assert sorted(timeline) == sorted(old_schemas.HISTORY)
        # first delivery and read, written onto the rows from the old history (version 6)
        marks = {m.message_id: (m.first_ms, m.delivered_ms, m.read_ms) for m in store.milestones()}
        assert marks == {
            "old-1": (BASE_MS, BASE_MS + 900, None),
            "old-2": (BASE_MS + 10, None, None),
        }
        # the counts by status, counted from the old rows (version 7)
        assert dict(store.count_by_status()) == {Status.DEVICE_ACK: 1, Status.EXPIRED: 1}
        assert [payload for _, payload in store.pending()] == [old_schemas.INBOX]
        assert [d.payload for d in store.dead_letters()] == [old_schemas.DEAD]
        # a report the old history holds is a duplicate; a new one is applied after it
        again = tracker.apply(StatusEvent.from_ms("old-1", Status.SENT_TO_SUPPLIER, BASE_MS + 400))
        assert again.outcome.value == "duplicate"
        read = tracker.apply(StatusEvent.from_ms("old-1", Status.READ, BASE_MS + 5000, "sms"))
        assert read.outcome.value == "applied"
        assert [e.outcome.value for e in store.history("old-1")][-1] == "applied"
        assert len(store.history("old-1")) == 4
        (old_1,) = [m for m in store.milestones() if m.message_id == "old-1"]
        assert (old_1.delivered_ms, old_1.read_ms) == (BASE_MS + 900, BASE_MS + 5000)
        assert dict(store.count_by_status()) == {Status.READ: 1, Status.EXPIRED: 1}
        # the change feed starts at the upgrade: the READ is its first change
        (change,) = store.changes()
        old_status = old_schemas.STATES["old-1"][0]
        assert (change.message_id, change.previous, change.status) == (
            "old-1",
            old_status,
            Status.READ,
        )
    finally:
        store.close()


def test_the_overdue_queries_search_the_partial_index(tmp_path: Path) -> None:
    """overdue() and count_overdue() search the due index, never scan the message table."""
    store = SQLiteStore(tmp_path / "state.sqlite3")
    statements: list[str] = []
    try:
        store._conn.set_trace_callback(statements.append)
        store.overdue(BASE_MS, 10, (BASE_MS - 1, "m"))
        store.count_overdue(BASE_MS)
        store._conn.set_trace_callback(None)
        queries = [sql for sql in statements if "due_ms" in sql]
        assert len(queries) == 2
        for sql in queries:
            plan = " ".join(str(row[-1]) for row in store._read("EXPLAIN QUERY PLAN " + sql))
            assert plan.startswith("SEARCH ds_messages USING"), plan
            assert "INDEX ds_messages_due" in plan, plan
    finally:
        store.close()


def test_a_wide_window_is_scanned_a_narrow_one_read_by_index_with_the_same_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Window reads pick a scan or the index by how many messages they hold; both agree."""
    monkeypatch.setattr(sqlite_module, "_SCAN_FROM", 10)
    events = []
    for index in range(200):
        at = BASE_MS + index * 1000
        channel = "sms" if index % 3 else "whatsapp"
        events.append(StatusEvent.from_ms(f"w{index:03d}", Status.QUEUED, at, channel))
        if index % 4:
            events.append(
                StatusEvent.from_ms(f"w{index:03d}", Status.DEVICE_ACK, at + 700, channel)
            )
    memory = MemoryStore()
    Tracker(memory).apply_many(events)
    with SQLiteStore(tmp_path / "window.sqlite3") as store:
        Tracker(store).apply_many(events)
        wide, narrow = BASE_MS + 10_000, BASE_MS + 195_000
        assert store._first_since(wide).startswith("+")  # 190 of 200 inside: a scan
        assert not store._first_since(narrow).startswith("+")  # 5 inside: the index
        assert not store._first_since(BASE_MS + 185_000).startswith("+")  # 15: under a tenth
        for since in (wide, narrow, None):
            assert set(store.milestones(since)) == set(memory.milestones(since))
            assert store.count_by_channel(since) == memory.count_by_channel(since)


def test_a_full_or_read_only_file_is_store_wide_and_a_refused_row_is_not(tmp_path: Path) -> None:
    """SQLITE_FULL, SQLITE_READONLY, a closed connection: the store's; a constraint: the row's."""
    raw = sqlite3.connect(tmp_path / "raw.sqlite3", isolation_level=None)
    raw.execute("CREATE TABLE t (x UNIQUE NOT NULL)")
    raw.execute("INSERT INTO t VALUES (1)")

    def error_of(sql: str) -> sqlite3.Error:
        with pytest.raises(sqlite3.Error) as caught:
            raw.execute(sql)
        return caught.value

    unique, no_value = error_of("INSERT INTO t VALUES (1)"), error_of("INSERT INTO t VALUES (NULL)")
    raw.execute("PRAGMA max_page_count = 1")  # no more than the file has now
    full = error_of("INSERT INTO t VALUES (zeroblob(100000))")
    raw.execute("PRAGMA max_page_count = 4294967294")
    raw.execute("PRAGMA query_only = ON")
    read_only = error_of("INSERT INTO t VALUES (2)")
    raw.close()
    closed = error_of("SELECT 1")
    assert [sqlite_module.is_store_wide(e) for e in (full, read_only, closed)] == [True] * 3
    assert [sqlite_module.is_store_wide(e) for e in (unique, no_value)] == [False] * 2


def test_ping_writes_so_a_file_that_may_not_grow_or_be_written_fails_it(tmp_path: Path) -> None:
    """ping commits a heartbeat and claims pages: StoreUnavailable on a full or read-only file."""
    store = ConfinedStore(tmp_path / "ping.sqlite3")
    before = datetime.now(timezone.utc)
    store.ping()
    store.confine()
    with pytest.raises(StoreUnavailable, match="full"):
        store.ping()
    store.free()
    store.read_only(True)
    with pytest.raises(StoreUnavailable, match="readonly"):
        store.ping()
    store.read_only(False)
    store.ping()
    store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "ping.sqlite3")) as raw:
        (beat,) = raw.execute("SELECT value FROM ds_meta WHERE key = 'heartbeat'").fetchone()
        assert raw.execute("SELECT count(*) FROM ds_meta WHERE key = 'room'").fetchone() == (0,)
    assert before <= datetime.fromisoformat(beat) <= datetime.now(timezone.utc)
