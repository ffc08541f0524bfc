"""Tests specific to PostgresStore: several processes, schema versions, failures, DSNs."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

import deliverystate.stores._postgres as postgres_module
import deliverystate.stores._sql as sqlstore_module
from deliverystate import (
    MemoryStore,
    SchemaMismatch,
    Status,
    StatusEvent,
    StoreUnavailable,
    Tracker,
)
from deliverystate.postgres import PostgresStore, redact

from .strategies import BASE_MS
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
    with psycopg.connect(postgres_dsn, autocommit=True) as raw:
        raw.execute(f"UPDATE \"{pg_schema}\".ds_meta SET value = '7' WHERE key = 'schema_version'")
    with pytest.raises(SchemaMismatch) as caught:
        PostgresStore(postgres_dsn, schema=pg_schema)
    assert (caught.value.found, caught.value.expected) == (7, 2)


def test_older_schema_is_migrated(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a version-2 schema with a version-3 library runs the migration once."""
    Tracker(PostgresStore(postgres_dsn, schema=pg_schema)).apply(
        StatusEvent.from_ms("m", 5, BASE_MS, "sms")
    )
    monkeypatch.setattr(sqlstore_module, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(
        postgres_module, "MIGRATIONS", {2: ("ALTER TABLE ds_messages ADD COLUMN note TEXT",)}
    )
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    assert store.schema_version() == 3
    assert store.get("m").status is Status.DEVICE_ACK
    assert store._read("SELECT note FROM ds_messages") == [(None,)]
    assert PostgresStore(postgres_dsn, schema=pg_schema).schema_version() == 3


def test_deadlocks_are_retried(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deadlock reported by the server retries the whole batch instead of failing it."""
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    original = PostgresStore._lock_and_load
    calls = []

    def deadlock_once(self, cursor, ids):  # type: ignore[no-untyped-def]
        calls.append(ids)
        if len(calls) == 1:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return original(self, cursor, ids)

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

    def hold(cursor, ids):  # type: ignore[no-untyped-def]
        loaded = original(cursor, ids)
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


def test_a_version_1_schema_keeps_its_bodies_through_the_migration(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Version 1 kept bodies as text, which cannot hold NUL; version 2 converts them to bytea."""
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    store.accept(['{"waiting": "é"}'])
    store.add_dead_letter("{broken é", "invalid callback: body: not JSON")
    store.close()
    with psycopg.connect(postgres_dsn, autocommit=True) as raw:  # back to version 1's shape
        for table in ("ds_inbox", "ds_dead_letters"):
            raw.execute(
                f'ALTER TABLE "{pg_schema}".{table} ALTER COLUMN payload TYPE TEXT '
                "USING convert_from(payload, 'UTF8')"
            )
        raw.execute(f"UPDATE \"{pg_schema}\".ds_meta SET value = '1' WHERE key = 'schema_version'")
    migrated = PostgresStore(postgres_dsn, schema=pg_schema)
    try:
        assert migrated.schema_version() == 2
        assert [payload for _, payload in migrated.pending()] == ['{"waiting": "é"}']
        assert [d.payload for d in migrated.dead_letters()] == ["{broken é"]
        types = migrated._read(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = %s "
            "AND column_name = 'payload' ORDER BY table_name",
            (pg_schema,),
        )
        assert types == [("bytea",), ("bytea",)]
        # and a NUL, which text refused, is kept now
        assert migrated.add_dead_letter("nul \x00 body", "x").payload == "nul \x00 body"
    finally:
        migrated.close()


def test_sessions_are_named_after_the_schema(postgres_dsn: str, pg_schema: str) -> None:
    """pg_stat_activity shows the store's connections as deliverystate:<schema>."""
    store = PostgresStore(postgres_dsn, schema=pg_schema)
    try:
        rows = store._read("SELECT current_setting('application_name')")
        assert rows == [(f"deliverystate:{pg_schema}",)]
    finally:
        store.close()
