"""The store contract on the project's own stores, and what only the SQL stores do.

``deliverystate.testing.StoreContract`` is the suite every store passes; the
memory, SQLite and PostgreSQL stores run exactly it, as a user's store would.
The PostgreSQL one skips without ``DELIVERYSTATE_TEST_POSTGRES_DSN`` and fails
without it in CI (see ``conftest.postgres_dsn``).
"""

from __future__ import annotations

import sqlite3

import pytest

from deliverystate import (
    MemoryStore,
    Outcome,
    SQLiteStore,
    Status,
    Store,
    StoreUnavailable,
    Tracker,
)
from deliverystate.errors import PolicyMismatch
from deliverystate.postgres import PostgresStore
from deliverystate.rules import FAILURE_WINS
from deliverystate.testing import BASE_MS, StoreContract
from deliverystate.testing._harness import ev

from .conftest import StoreFactory

S = Status


class TestMemoryStore(StoreContract):
    """The memory store (the reference the contract compares stores with) passes the contract."""

    max_examples = 60

    def make_store(self) -> Store:
        """A new memory store; every handle on it is itself."""
        return MemoryStore()


class TestSQLiteStore(StoreContract):
    """The SQLite store passes the contract, each handle a connection to one file."""

    max_examples = 60

    def make_store(self) -> Store:
        """A new SQLite file in the test's directory."""
        return SQLiteStore(self.tmp_path / "state.sqlite3")

    def reopen(self, store: Store) -> Store:
        """Another connection to the same file."""
        return SQLiteStore(self.tmp_path / "state.sqlite3")

    def refuse_rows_about(self, message_id: str) -> bool:
        """A trigger that aborts the insert of the message's history rows (a constraint error)."""
        quoted = message_id.replace("'", "''")
        with sqlite3.connect(self.tmp_path / "state.sqlite3") as connection:
            connection.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON ds_history "
                f"WHEN NEW.message_id = '{quoted}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        return True


class TestPostgresStore(StoreContract):
    """The PostgreSQL store passes the contract, each handle a pool on one fresh schema."""

    max_examples = 60

    def make_store(self) -> Store:
        """A new schema on the test server (conftest's ``pg_schema`` drops it after the test)."""
        self.dsn: str = self.request.getfixturevalue("postgres_dsn")
        self.schema: str = self.request.getfixturevalue("pg_schema")
        return PostgresStore(self.dsn, schema=self.schema)

    def reopen(self, store: Store) -> Store:
        """Another pool on the same schema."""
        return PostgresStore(self.dsn, schema=self.schema)

    def refuse_rows_about(self, message_id: str) -> bool:
        """A trigger that raises a data exception (SQLSTATE 22001) on the message's history rows."""
        import psycopg  # noqa: PLC0415 - the postgres extra

        quoted = message_id.replace("'", "''")
        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute(f'SET search_path TO "{self.schema}"')
            connection.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.message_id = '{quoted}' THEN "
                "RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22001'; END IF; "
                "RETURN NEW; END $$"
            )
            connection.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON ds_history "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        return True


def driver_failure(store: Store) -> Exception:
    """What the store's database driver raises when the disk or the server gives up."""
    if isinstance(store, SQLiteStore):
        return sqlite3.OperationalError("disk I/O error")
    import psycopg  # noqa: PLC0415 - the postgres extra

    return psycopg.OperationalError("server closed the connection unexpectedly")


def test_a_write_that_fails_rolls_the_batch_back(
    open_sql_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the database fails after the writes, the batch leaves no trace, new rows included."""
    store = open_sql_store()
    tracker = Tracker(store)
    tracker.apply(ev("m", S.QUEUED, 0))
    original = type(store)._write  # type: ignore[attr-defined]
    failure = driver_failure(store)

    def write_then_fail(self, *args):  # type: ignore[no-untyped-def]
        original(self, *args)
        raise failure

    monkeypatch.setattr(type(store), "_write", write_then_fail)
    with pytest.raises(StoreUnavailable, match=str(failure)):
        tracker.apply_many([ev("m", S.DEVICE_ACK, 1), ev("n", S.QUEUED, 0)])
    monkeypatch.undo()
    assert store.get("m").status is S.QUEUED  # type: ignore[union-attr]
    assert store.get("n") is None
    assert [state.message_id for state in store.iter_states()] == ["m"]  # type: ignore[attr-defined]
    assert store.history_size() == 1  # type: ignore[attr-defined]


def test_sql_stores_refuse_to_mix_policies(open_sql_store: StoreFactory) -> None:
    """Keys written under one policy are not compared under another until adopted."""
    Tracker(open_sql_store()).apply(ev("p", S.READ, 1))
    other = open_sql_store()
    with pytest.raises(PolicyMismatch, match="delivery wins"):
        Tracker(other, FAILURE_WINS).apply(ev("p", S.EXPIRED, 2))
    other.adopt_policy(FAILURE_WINS)  # type: ignore[attr-defined]
    decision = Tracker(other, FAILURE_WINS).apply(ev("p", S.EXPIRED, 2))
    assert decision.outcome is Outcome.APPLIED
    (key,) = other._read(  # type: ignore[attr-defined]
        other._sql("SELECT precedence FROM ds_messages WHERE message_id = ?"),  # type: ignore[attr-defined]
        ("p",),
    )[0]
    assert key == FAILURE_WINS.key(S.EXPIRED, BASE_MS + 2)
