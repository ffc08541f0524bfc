"""PostgresStore: how several machines share state (needs the ``postgres`` extra, psycopg 3).

Each batch is one transaction of five round trips, whatever its size:

1. ``INSERT ... ON CONFLICT DO NOTHING`` a row for every message the batch
   mentions that has none yet (status 0, "nothing known"), so that every
   message has a row to lock; two workers creating the same message queue on
   its primary key instead of racing;
2. ``SELECT ... FOR UPDATE`` those rows in sorted order (so concurrent workers
   queue instead of deadlocking), and load the fingerprints already in history;
3. reconcile in the shared :class:`~deliverystate.batch.Batch`;
4. write every changed state with one ``UPDATE ... FROM unnest(...)`` (the
   table leaves room on its pages so these can be HOT updates, which touch no
   index) and append the history with one ``COPY``.

Arrays travel in binary (``%b``).  Deadlocks and serialization failures
reported by the server retry the whole batch.

Connections come from a small ``psycopg_pool`` pool that checks a connection
before handing it out, so a connection the server dropped (a restart, a
failover, ``pg_terminate_backend``) is replaced by itself instead of failing
every later call.  A batch that meets a broken connection mid-way is retried
once on a fresh one: the store is idempotent (a report applied twice is a
DUPLICATE), so even a batch whose commit was lost in transit can be run again.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._events import MessageState
from .._reconcile import fingerprint
from ..errors import StoreUnavailable
from ._sql import SQLStore, state_from_row
from ._work import Batch

if TYPE_CHECKING:
    import psycopg

__all__ = ["MIGRATIONS", "TABLES", "PostgresStore", "redact"]

TABLES: tuple[str, ...] = (
    # room on each page lets PostgreSQL update a state in place (a HOT update)
    """CREATE TABLE ds_messages (
        message_id TEXT PRIMARY KEY,
        status SMALLINT NOT NULL,
        timestamp_ms BIGINT NOT NULL,
        precedence BIGINT,
        channel TEXT,
        client_message_id TEXT
    ) WITH (fillfactor = 70)""",
    # a report is identified by (message, code, timestamp): the natural key, and the
    # only index history needs; arrival numbers order reports received
    """CREATE TABLE ds_history (
        message_id TEXT NOT NULL,
        status SMALLINT NOT NULL,
        timestamp_ms BIGINT NOT NULL,
        channel TEXT,
        client_message_id TEXT,
        outcome TEXT NOT NULL,
        arrival BIGINT GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (message_id, status, timestamp_ms)
    )""",
    """CREATE TABLE ds_inbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        payload BYTEA NOT NULL,
        received_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE ds_dead_letters (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        payload BYTEA NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        error TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL
    )""",
)

#: Statements that upgrade schema version N to N + 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 -> 2: bodies are bytes, so that a body holding NUL can be kept
    1: (
        "ALTER TABLE ds_inbox ALTER COLUMN payload TYPE BYTEA USING convert_to(payload, 'UTF8')",
        "ALTER TABLE ds_dead_letters ALTER COLUMN payload TYPE BYTEA "
        "USING convert_to(payload, 'UTF8')",
    ),
}

# Per-connection scratch tables: a batch's ids and changed rows go in with COPY
# (far cheaper than binding arrays of thousands of values) and are emptied at
# commit.  ``ARRAY(SELECT ...)`` keeps the planner on the primary key index.
_SCRATCH = (
    "CREATE TEMP TABLE IF NOT EXISTS ds_batch_ids (id TEXT NOT NULL) ON COMMIT DELETE ROWS",
    "CREATE TEMP TABLE IF NOT EXISTS ds_batch_rows (message_id TEXT NOT NULL, "
    "status SMALLINT NOT NULL, ts BIGINT NOT NULL, precedence BIGINT, channel TEXT, "
    "client TEXT) ON COMMIT DELETE ROWS",
)
_COPY_IDS = "COPY ds_batch_ids (id) FROM STDIN"
_BATCH_IDS = "ARRAY(SELECT id FROM ds_batch_ids)"
_CREATE_ROWS = (
    "INSERT INTO ds_messages (message_id, status, timestamp_ms) SELECT id, 0, 0 "
    "FROM ds_batch_ids ORDER BY id ON CONFLICT DO NOTHING"
)
_DROP_EMPTY = f"DELETE FROM ds_messages WHERE message_id = ANY({_BATCH_IDS}) AND status = 0"
_LOCK_ROWS = (
    "SELECT message_id, status, timestamp_ms, channel, client_message_id FROM ds_messages "
    f"WHERE message_id = ANY({_BATCH_IDS}) ORDER BY message_id FOR UPDATE"
)
_SEEN = (
    f"SELECT message_id, status, timestamp_ms FROM ds_history WHERE message_id = ANY({_BATCH_IDS})"
)
_COPY_ROWS = "COPY ds_batch_rows (message_id, status, ts, precedence, channel, client) FROM STDIN"
_UPDATE = (
    "UPDATE ds_messages AS m SET status = v.status, timestamp_ms = v.ts, "
    "precedence = v.precedence, channel = v.channel, client_message_id = v.client "
    "FROM ds_batch_rows AS v WHERE m.message_id = v.message_id"
)
_COPY_HISTORY = (
    "COPY ds_history (message_id, status, timestamp_ms, channel, client_message_id, outcome) "
    "FROM STDIN"
)
_SETUP_LOCK = "SELECT pg_advisory_xact_lock(hashtext('deliverystate schema setup'))"


def redact(dsn: str) -> str:
    """A DSN fit for error messages: the password replaced by ``***``."""
    dsn = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn)


class PostgresStore(SQLStore):
    """Message states, history and dead letters in a PostgreSQL schema.

    ``pool_size`` bounds the connections this store opens (writes from one
    process mostly queue on row locks anyway; reads can run beside them).
    ``timeout`` bounds connecting and waiting for a free connection.
    """

    _param = "%s"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "deliverystate",
        timeout: float = 10.0,
        pool_size: int = 4,
    ) -> None:
        super().__init__()
        try:
            import psycopg  # noqa: PLC0415 - optional extra
            import psycopg_pool  # noqa: PLC0415 - optional extra
        except ImportError as error:
            raise ImportError(
                "PostgresStore needs psycopg 3 and psycopg_pool: "
                "pip install 'deliverystate[postgres]'"
            ) from error
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
            raise ValueError(f"schema must be a plain SQL identifier, not {schema!r}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, not {pool_size}")
        self._psycopg = psycopg
        self._pool_errors: tuple[type[Exception], ...] = (
            psycopg.OperationalError,
            psycopg_pool.PoolTimeout,
            psycopg_pool.PoolClosed,
        )
        self.target = f"{redact(dsn)} (schema {schema})"
        self.schema = schema
        connect_timeout = max(1, int(timeout))
        try:
            # the schema must exist before a pooled connection sets its search_path
            with (
                psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout) as first,
                first.transaction(),
            ):
                first.execute(_SETUP_LOCK)
                first.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        except psycopg.OperationalError as error:
            raise StoreUnavailable(self.target, str(error).strip()) from error
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = (
            psycopg_pool.ConnectionPool(
                dsn,
                min_size=1,
                max_size=pool_size,
                kwargs={
                    "autocommit": True,
                    "connect_timeout": connect_timeout,
                    # names the store's sessions in pg_stat_activity, for operators
                    "application_name": f"deliverystate:{schema}"[:63],
                },
                configure=self._configure,
                check=psycopg_pool.ConnectionPool.check_connection,
                timeout=timeout,
                name=f"deliverystate-{schema}",
                open=False,
            )
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
            with self._transaction() as cursor:
                cursor.execute(_SETUP_LOCK)
                self._setup_schema(cursor, TABLES, MIGRATIONS)
        except BaseException:
            self._pool.close()
            raise

    def _configure(self, connection: psycopg.Connection[Any]) -> None:
        """Prepare a new pooled connection: the schema, and its own scratch tables."""
        connection.execute(f'SET search_path TO "{self.schema}"')
        for statement in _SCRATCH:
            connection.execute(statement)

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()

    def drop_schema(self) -> None:
        """Drop the whole schema and its tables (for tests and for starting over)."""
        with self._pool.connection() as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        try:
            with (
                self._pool.connection() as connection,
                connection.transaction(),
                connection.cursor() as cursor,
            ):
                yield cursor
        except self._pool_errors as error:
            raise StoreUnavailable(self.target, str(error).strip() or repr(error)) from error

    def _retryable(self, error: BaseException | None) -> bool:
        """Whether running the work again may succeed: a deadlock, or a connection that broke."""
        errors = self._psycopg.errors
        if isinstance(error, errors.DeadlockDetected | errors.SerializationFailure):
            return True
        if not isinstance(error, self._psycopg.OperationalError) or isinstance(
            error, self._pool_errors[1:]
        ):
            return False  # a pool that found no connection in time has waited long enough
        # no SQLSTATE, class 08 or an admin shutdown: the connection broke, not the statement
        state = error.sqlstate
        return state is None or state.startswith("08") or state in {"57P01", "57P02", "57P03"}

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def read() -> list[tuple[Any, ...]]:
            try:
                with self._pool.connection() as connection:
                    return connection.execute(sql, params).fetchall()
            except (*self._pool_errors, self._psycopg.Error) as error:
                # a read that fails for any database reason (a dropped table, a damaged
                # page) means the store cannot answer: 503 for the receiver, not a bug
                raise StoreUnavailable(self.target, str(error).strip() or repr(error)) from error

        return self._retry(read)

    def _lock_and_load(
        self, cursor: psycopg.Cursor[Any], ids: list[str]
    ) -> tuple[dict[str, MessageState], dict[str, set[int]]]:
        with cursor.copy(_COPY_IDS) as copy:
            for message_id in ids:
                copy.write_row((message_id,))
        cursor.execute(_CREATE_ROWS)
        cursor.execute(_LOCK_ROWS, binary=True)
        states = {row[0]: state_from_row(row) for row in cursor.fetchall() if row[1] != 0}
        cursor.execute(_SEEN, binary=True)
        seen: dict[str, set[int]] = {}
        for message_id, status, timestamp_ms in cursor.fetchall():
            seen.setdefault(message_id, set()).add(fingerprint(status, timestamp_ms))
        return states, seen

    def _write(self, cursor: psycopg.Cursor[Any], batch: Batch, ids: list[str]) -> None:
        if batch.changed:
            with cursor.copy(_COPY_ROWS) as copy:
                for row in batch.changed_rows():
                    copy.write_row(row)
            cursor.execute(_UPDATE)
        if len(batch.records) < len(ids):  # never expected: every new message gets a state
            cursor.execute(_DROP_EMPTY)
        if batch.recorded:
            # COPY is the fastest bulk insert; it is safe without ON CONFLICT because
            # every history row of a message is written under that message's row lock,
            # after checking the fingerprints already stored.
            with cursor.copy(_COPY_HISTORY) as copy:
                for event, outcome in batch.recorded:
                    copy.write_row(
                        (
                            event.message_id,
                            int(event.status),
                            event.timestamp_ms,
                            event.channel,
                            event.client_message_id,
                            outcome.value,
                        )
                    )

    def _received_at(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.astimezone(timezone.utc)
