"""Tests specific to PostgresStore: several processes, schema versions, failures, DSNs."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest

import deliverystate.stores._postgres as postgres_module
import deliverystate.stores._sql as sqlstore_module
from deliverystate import (
    Change,
    MemoryStore,
    Status,
    StatusEvent,
    StoreUnavailable,
    Tracker,
    open_store,
)
from deliverystate.errors import NoDatabase, SchemaMismatch
from deliverystate.postgres import PostgresStore, redact
from deliverystate.testing import BASE_MS

from . import old_schemas
from .test_sqlite import check_migrated
from .workers import run_workers, simulated_events


def test_four_processes_end_where_one_memory_tracker_ends(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Interleaved shares applied by 4 processes to one database give the single-tracker states."""
    events = simulated_events(500, seed=22)
    PostgresStore(postgres_dsn, schema=pg_schema).close()
    run_workers({"kind": "postgres", "dsn": postgres_dsn, "schema": pg_schema}, events)
    reference = Tracker(MemoryStore())
    reference.apply_many(events)
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    ids = {e.message_id for e in events}
    assert {s.message_id: s for s in store.iter_states()} == {i: reference.get(i) for i in ids}
    assert store.history_size() == len({(e.message_id, e.status, e.timestamp_ms) for e in events})
    store.close()


def test_unreachable_server_is_one_clear_error_without_the_password() -> None:
    """A refused connection raises StoreUnavailable naming the server, password redacted."""
    with pytest.raises(StoreUnavailable) as caught:
        PostgresStore("postgresql://postgres:s3cret@127.0.0.1:1/test", timeout=2)
    message = str(caught.value)
    assert "127.0.0.1" in message
    assert "s3cret" not in message
    assert isinstance(caught.value, ConnectionError)


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("host=h user=u password=pw dbname=d", "host=h user=u password=*** dbname=d"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_redact_hides_passwords(dsn: str, expected: str) -> None:
    """Passwords in URL and key=value DSNs are replaced before they reach a message."""
    assert redact(dsn) == expected


def test_schema_name_must_be_an_identifier(postgres_dsn: str) -> None:
    """A schema name that is not a plain identifier is refused before any SQL runs."""
    with pytest.raises(ValueError, match="identifier"):
        PostgresStore(postgres_dsn, schema='x"; DROP TABLE y; --')


def test_newer_schema_is_refused(postgres_dsn: str, pg_schema: str) -> None:
    """A schema written by a newer version is refused, naming both versions."""
    PostgresStore(postgres_dsn, schema=pg_schema).close()
    newer = sqlstore_module.SCHEMA_VERSION + 1
    with psycopg.connect(postgres_dsn, autocommit=True) as raw:
        raw.execute(
            f"UPDATE \"{pg_schema}\".ds_meta SET value = '{newer}' WHERE key = 'schema_version'"
        )
    with pytest.raises(SchemaMismatch) as caught:
        PostgresStore(postgres_dsn, schema=pg_schema)
    assert (caught.value.found, caught.value.expected) == (newer, sqlstore_module.SCHEMA_VERSION)


def test_older_schema_is_migrated(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a schema one version old runs that version's migration, once."""
    Tracker(PostgresStore(postgres_dsn, schema=pg_schema)).apply(
        StatusEvent.from_ms("m", 5, BASE_MS, "sms")
    )
    current = sqlstore_module.SCHEMA_VERSION
    monkeypatch.setattr(sqlstore_module, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(
        postgres_module, "MIGRATIONS", {current: ("ALTER TABLE ds_messages ADD COLUMN note TEXT",)}
    )
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    assert store.schema_version() == current + 1
    assert store.get("m").status is Status.DEVICE_ACK
    assert store._read("SELECT note FROM ds_messages") == [(None,)]
    assert PostgresStore(postgres_dsn, schema=pg_schema).schema_version() == current + 1


def test_a_store_that_must_exist_creates_nothing_and_a_reader_migrates_nothing(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create=False: no schema is made; an older one migrates unless migrate=False refuses it."""
    with pytest.raises(NoDatabase, match=f"schema {pg_schema} does not exist"):
        PostgresStore(postgres_dsn, schema=pg_schema, create=False)
    version = f'SELECT value FROM "{pg_schema}".ds_meta WHERE key = %s'
    with psycopg.connect(postgres_dsn, autocommit=True) as raw:
        found = raw.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (pg_schema,))
        assert found.fetchall() == []
        PostgresStore(postgres_dsn, schema=pg_schema).close()
        current = sqlstore_module.SCHEMA_VERSION
        monkeypatch.setattr(sqlstore_module, "SCHEMA_VERSION", current + 1)
        migration = {current: ("ALTER TABLE ds_messages ADD COLUMN note TEXT",)}
        monkeypatch.setattr(postgres_module, "MIGRATIONS", migration)
        with pytest.raises(SchemaMismatch, match="older than"):
            PostgresStore(postgres_dsn, schema=pg_schema, create=False, migrate=False)
        assert raw.execute(version, ("schema_version",)).fetchall() == [(str(current),)]
        PostgresStore(postgres_dsn, schema=pg_schema, create=False).close()
        assert raw.execute(version, ("schema_version",)).fetchall() == [(str(current + 1),)]


def test_deadlocks_are_retried(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deadlock reported by the server retries the whole batch instead of failing it."""
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    original = PostgresStore._lock_and_load
    calls = []

    def deadlock_once(self, cursor, ids, events):  # type: ignore[no-untyped-def]
        calls.append(ids)
        if len(calls) == 1:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return original(self, cursor, ids, events)

    monkeypatch.setattr(PostgresStore, "_lock_and_load", deadlock_once)
    summary = Tracker(store).apply_many([StatusEvent.from_ms("m", 5, BASE_MS, "sms")])
    assert summary.applied == 1
    assert len(calls) == 2
    assert store.history_size() == 1


def test_a_second_worker_waits_for_the_batch_holding_the_message(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker applying to a message another batch holds waits, then builds on its result."""
    first = PostgresStore(postgres_dsn, schema=pg_schema)
    second = Tracker(PostgresStore(postgres_dsn, schema=pg_schema))
    second.apply(StatusEvent.from_ms("other", 2, BASE_MS, "sms"))  # records the policy first
    locked, finished = threading.Event(), []
    original = first._lock_and_load

    def hold(cursor, ids, events):  # type: ignore[no-untyped-def]
        loaded = original(cursor, ids, events)
        locked.set()
        time.sleep(0.5)  # the second worker tries now, and must wait
        return loaded

    monkeypatch.setattr(first, "_lock_and_load", hold)
    worker = threading.Thread(
        target=lambda: finished.append(
            Tracker(first).apply(StatusEvent.from_ms("x", 2, BASE_MS, "sms"))
        )
    )
    worker.start()
    assert locked.wait(10)
    started = time.monotonic()
    decision = second.apply(StatusEvent.from_ms("x", 4, BASE_MS + 10, "sms"))
    waited = time.monotonic() - started
    worker.join(10)
    assert finished[0].outcome.value == "applied"
    assert decision.outcome.value == "applied"
    assert decision.state.status is Status.SENT_TO_SUPPLIER
    assert waited > 0.2
    assert [h.outcome.value for h in first.history("x")] == ["applied", "applied"]


def test_sessions_are_named_after_the_schema(postgres_dsn: str, pg_schema: str) -> None:
    """pg_stat_activity shows the store's connections as deliverystate:<schema>."""
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    try:
        rows = store._read("SELECT current_setting('application_name')")
        assert rows == [(f"deliverystate:{pg_schema}",)]
    finally:
        store.close()


@pytest.mark.parametrize("v1", [True, False], ids=["version-1", "version-2"])
def test_an_old_schema_is_migrated_with_its_states_history_and_bodies(
    postgres_dsn: str, pg_schema: str, v1: bool
) -> None:
    """A schema an older release wrote opens with its states, history and bodies intact."""
    with psycopg.connect(postgres_dsn, autocommit=True) as raw, raw.transaction():
        raw.execute(f'CREATE SCHEMA "{pg_schema}"')
        raw.execute(f'SET search_path TO "{pg_schema}"')
        raw.execute("CREATE TABLE ds_meta (key TEXT PRIMARY KEY, value TEXT)")
        for ddl in old_schemas.POSTGRES_V1 if v1 else old_schemas.POSTGRES_V2:
            raw.execute(ddl)
        old_schemas.fill(raw.cursor(), "%s", v1=v1)
    check_migrated(PostgresStore(postgres_dsn, schema=pg_schema))
    # arrival numbers keep growing from the old ones
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    try:
        entries = store.history("old-1")
        arrivals = [e.arrival for e in entries]
        assert len(set(arrivals)) == len(arrivals)
        (read,) = [e for e in entries if e.event.status is Status.READ]
        assert read.arrival > len(old_schemas.HISTORY)  # after every old report
    finally:
        store.close()


def test_version_7_counts_move_to_slot_0_and_keep_counting(
    postgres_dsn: str, pg_schema: str
) -> None:
    """7 -> 8: the counts a version 7 schema kept stay right, and later batches add to them."""
    events = simulated_events(200, seed=24)
    half = len(events) // 2
    Tracker(PostgresStore(postgres_dsn, schema=pg_schema)).apply_many(events[:half])
    with psycopg.connect(postgres_dsn, autocommit=True) as raw, raw.transaction():
        raw.execute(f'SET search_path TO "{pg_schema}"')  # the counts as version 7 kept them
        raw.execute("DROP TABLE ds_counts")
        raw.execute(old_schemas.POSTGRES_V7_COUNTS)
        raw.execute(
            "INSERT INTO ds_counts SELECT status, local, COUNT(*) FROM ds_messages "
            "GROUP BY status, local"
        )
        raw.execute("UPDATE ds_meta SET value = '7' WHERE key = 'schema_version'")
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    try:
        assert store.schema_version() == 8
        assert store._read("SELECT DISTINCT slot FROM ds_counts") == [(0,)]
        key = (
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'ds_counts'::regclass AND contype = 'p'"
        )
        assert store._read(key) == [("PRIMARY KEY (status, local, slot)",)]
        for part in (events[:half], events[half:]):
            Tracker(store).apply_many(part)
            states = Counter(state.status for state in store.iter_states())
            assert dict(store.count_by_status()) == states
    finally:
        store.close()


def test_a_url_names_its_schema_and_keeps_its_other_parameters(
    postgres_dsn: str, pg_schema: str
) -> None:
    """open_store takes ?schema= from a PostgreSQL URL and passes the rest to psycopg."""
    separator = "&" if "?" in postgres_dsn else "?"
    store = open_store(f"{postgres_dsn}{separator}connect_timeout=5&schema={pg_schema}")
    try:
        assert store.schema == pg_schema  # type: ignore[attr-defined]
        Tracker(store).apply(StatusEvent.from_ms("in-schema", 5, BASE_MS, "sms"))
        assert store._read("SELECT current_schema()") == [(pg_schema,)]  # type: ignore[attr-defined]
    finally:
        store.close()  # type: ignore[attr-defined]


def test_a_new_messages_row_is_created_with_its_indexed_values(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New messages' placeholder rows already hold their first time and client id (a HOT write)."""
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    placeholders: list[tuple[object, ...]] = []
    original = PostgresStore._write

    def look_first(self, cursor, writes):  # type: ignore[no-untyped-def]
        cursor.execute(
            "SELECT message_id, first_ms, client_message_id FROM ds_messages ORDER BY message_id"
        )
        placeholders.extend(cursor.fetchall())
        return original(self, cursor, writes)

    monkeypatch.setattr(PostgresStore, "_write", look_first)
    Tracker(store).apply_many(
        [
            StatusEvent.from_ms("a", Status.DEVICE_ACK, BASE_MS + 50, "sms", "ref-a"),
            StatusEvent.from_ms("a", Status.QUEUED, BASE_MS + 10, "sms"),
            StatusEvent.from_ms("b", Status.SENT_TO_SUPPLIER, BASE_MS + 20, "whatsapp"),
            StatusEvent.from_ms("b", Status.QUEUED, BASE_MS + 30, "whatsapp", "ref-b"),
        ]
    )
    final = store._read(
        "SELECT message_id, first_ms, client_message_id FROM ds_messages ORDER BY message_id"
    )
    assert placeholders == final == [("a", BASE_MS + 10, "ref-a"), ("b", BASE_MS + 20, "ref-b")]


def test_many_status_changes_are_analyzed_so_plans_see_them(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows changed by a tenth of the table get analyzed: the planner learns messages failed."""
    monkeypatch.setattr(postgres_module, "_ANALYZE_AFTER", 50)
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    tracker = Tracker(store)
    ids = [f"m{n:04}" for n in range(200)]
    tracker.apply_many([StatusEvent.from_ms(m, Status.QUEUED, BASE_MS, "sms") for m in ids])

    def common_statuses() -> str:
        rows = store._read(
            "SELECT most_common_vals::text FROM pg_stats WHERE schemaname = %s "
            "AND tablename = 'ds_messages' AND attname = 'status'",
            (pg_schema,),
        )
        return str(rows[0][0]) if rows else ""

    # analyzed after the load: every message QUEUED
    assert common_statuses() == "{" + str(int(Status.QUEUED)) + "}"
    failed = Status.DELIVERY_FAILURE
    tracker.apply_many([StatusEvent.from_ms(m, failed, BASE_MS + 9, "sms") for m in ids[:150]])
    assert str(int(failed)) in common_statuses().strip("{}").split(",")


def test_server_failures_are_store_wide_and_a_refused_row_is_not(
    postgres_dsn: str, pg_schema: str
) -> None:
    """A lost connection, a full disk, read-only, no privilege: the store's; bad data: the row's."""
    import psycopg_pool  # noqa: PLC0415 - the postgres extra, as psycopg

    errors = psycopg.errors
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    store_wide = [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        errors.AdminShutdown(),
        errors.DiskFull(),
        errors.IoError(),
        errors.ReadOnlySqlTransaction(),
        errors.InsufficientPrivilege(),
        errors.TooManyConnections(),
        errors.UndefinedTable(),
        psycopg_pool.PoolTimeout("no connection in time"),
    ]
    refused_rows = [
        psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
        errors.NumericValueOutOfRange(),
        errors.UniqueViolation(),
        errors.ProgramLimitExceeded(),  # an index row too big
        OverflowError("int too big to convert"),
    ]
    try:
        assert [store._store_wide(e) for e in store_wide] == [True] * len(store_wide)
        assert [store._store_wide(e) for e in refused_rows] == [False] * len(refused_rows)
    finally:
        store.close()


def test_writes_in_a_read_only_session_are_store_unavailable_not_a_driver_error(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Read-only sessions (default_transaction_read_only): accept, ping raise StoreUnavailable."""
    PostgresStore(postgres_dsn, schema=pg_schema).close()

    class ReadOnlySessions(PostgresStore):
        def _configure(self, connection: Any) -> None:
            super()._configure(connection)
            connection.execute("SET default_transaction_read_only = on")

    store = ReadOnlySessions(postgres_dsn, schema=pg_schema, create=False)
    try:
        for write in (lambda: store.accept(["{}"]), store.ping):
            with pytest.raises(StoreUnavailable, match="read-only transaction"):
                write()
    finally:
        store.close()


def test_a_follower_misses_no_change_of_three_concurrent_writers(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Three writers, one follower: it sees the whole feed once, in seq order, each chain whole."""
    PostgresStore(postgres_dsn, schema=pg_schema).close()
    shares = [
        [
            StatusEvent.from_ms(f"w{w}-{e.message_id}", e.status, e.timestamp_ms, e.channel)
            for e in simulated_events(150, seed=240 + w)
        ]
        for w in range(3)
    ]
    done = threading.Event()
    failures: list[BaseException] = []

    def write(events: list[StatusEvent], seed: int) -> None:
        store = PostgresStore(postgres_dsn, schema=pg_schema)
        try:
            tracker, rng, index = Tracker(store), random.Random(seed), 0
            while index < len(events):
                size = rng.choice([1, 2, 5, 20, 200])  # 200: big enough to COPY
                tracker.apply_many(events[index : index + size])
                index += size
        except BaseException as error:  # reported by the test's thread
            failures.append(error)
        finally:
            store.close()

    writers = [threading.Thread(target=write, args=(s, k)) for k, s in enumerate(shares)]
    follower = Tracker(PostgresStore(postgres_dsn, schema=pg_schema))
    seen: list[Change] = []
    for thread in writers:
        thread.start()
    while not done.is_set():
        if not any(thread.is_alive() for thread in writers):
            done.set()  # one more read after the last commit
        read = follower.changes(after=seen[-1].seq if seen else 0, limit=50)
        seen.extend(read)
    for thread in writers:
        thread.join()
    assert not failures
    while read := follower.changes(after=seen[-1].seq, limit=1000):
        seen.extend(read)  # a missed change would sit below the cursor, not here
    feed = follower.changes(after=0, limit=100_000)
    assert len(feed) > 600  # enough changes for the writers to overlap
    assert [c.seq for c in seen] == [c.seq for c in feed]  # each once, in seq order
    status: dict[str, Status] = {}
    for change in seen:
        assert change.previous == status.get(change.message_id), change
        status[change.message_id] = change.status
    follower.store.close()  # type: ignore[attr-defined]
