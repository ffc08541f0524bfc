"""PostgresStore: how several machines share state (needs the ``postgres`` extra, psycopg 3).

Each batch is one transaction of five round trips, whatever its size:

1. ``INSERT ... ON CONFLICT DO NOTHING`` a row for every message the batch
   mentions that has none yet (status 0, "nothing known"), so that every
   message has a row to lock; two workers creating the same message queue on
   its primary key instead of racing;
2. ``SELECT ... FOR UPDATE`` those rows in sorted order (so concurrent workers
   queue instead of deadlocking), and load the fingerprints already in history;
3. reconcile in the unit of work every store shares (``_work``);
4. write every changed state with one ``UPDATE ... FROM unnest(...)`` (the
   table leaves room on its pages so these can be HOT updates, which touch no
   index), append the history with one ``COPY``, and send the counts' moves
   and the feed's changes together in one round trip (no lock: ``_pgfeed``).

Arrays travel in binary (``%b``).  Deadlocks and serialization failures
reported by the server retry the whole batch.

Connections come from a small ``psycopg_pool`` pool.  A connection the
server dropped (a restart, a failover, ``pg_terminate_backend``) is replaced
by itself instead of failing every later call: the call that meets it fails
on its first statement, which makes the pool check every idle connection
(``_retryable``), and runs again on a fresh one.  The pool does not check a
connection each time it lends one: that cost a round trip per transaction
(60-80 us of 170-270 us for a one-statement transaction, measured) to guard
against what the retry handles anyway.  A batch that meets a broken
connection mid-way is retried the same way: the store is idempotent (a report
applied twice is a DUPLICATE), so even a batch whose commit was lost in
transit can be run again.
While the database refuses connections, a call waits about a second, not the
whole ``timeout``, and the pool retries about once a second (``_pgpool``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import StoreUnavailable
from ..rules._events import StatusEvent
from ._columns import COLUMN, KEY, LOCKED_MESSAGE_ID, LOCKED_STATUS, WRITTEN, column_list
from ._names import redact
from ._pgarrays import ARRAYS_UP_TO, lock_and_load, write_arrays
from ._pgfeed import COPY_FROM, PostgresFeed, append_changes
from ._pgpool import RECONNECT_SECONDS, lent
from ._pgschema import COUNT_SLOTS, FEED_TABLES, MIGRATIONS, TABLES
from ._rows import LOCKED_COLUMNS
from ._sql import SQLStore
from ._sqlbase import Row, Writes

if TYPE_CHECKING:
    import psycopg

__all__ = ["FEED_TABLES", "MIGRATIONS", "TABLES", "PostgresStore", "redact"]

logger = logging.getLogger(__name__)

#: The SQLSTATE classes that refuse a row, not the store (``PostgresStore._store_wide``).
_ROW_REFUSALS = frozenset({"22", "23", "54"})


# Per-connection scratch tables: a batch's ids and changed rows go in with COPY
# (far cheaper than binding arrays of thousands of values) and are emptied at
# commit.  ``ARRAY(SELECT ...)`` keeps the planner on the primary key index.  A
# table's name changes with its columns: a session a pooler keeps across clients
# may hold a table an older release made.  The rows' table has every column of
# ``ds_messages``, in the order a batch writes them, each NOT NULL where the table's is.
_BATCH_ROWS = "ds_batch_rows_v8"
_SCRATCH = (
    "CREATE TEMP TABLE IF NOT EXISTS ds_batch_ids_v6 (id TEXT NOT NULL, first BIGINT, "
    "client TEXT) ON COMMIT DELETE ROWS",
    f"CREATE TEMP TABLE IF NOT EXISTS {_BATCH_ROWS} ("
    + ", ".join(
        f"{c.name} {c.postgres}{' NOT NULL' if c.key or c.not_null else ''}"
        for c in (COLUMN[name] for name in WRITTEN)
    )
    + ") ON COMMIT DELETE ROWS",
)
_COPY_IDS = "COPY ds_batch_ids_v6 (id, first, client) FROM STDIN"
_BATCH_IDS = "ARRAY(SELECT id FROM ds_batch_ids_v6)"
# A new message's row is created with the indexed values its first write will give it
# (its first report's time, its client id as the batch's reports carry them), so that
# the write changes no indexed column and stays a HOT update; where the guess is wrong
# (a report that carried the client id was rejected), the write still corrects it.
_CREATE_ROWS = (
    "INSERT INTO ds_messages (message_id, status, timestamp_ms, first_ms, client_message_id) "
    "SELECT id, 0, 0, first, client FROM ds_batch_ids_v6 ORDER BY id ON CONFLICT DO NOTHING"
)
_DROP_EMPTY = f"DELETE FROM ds_messages WHERE message_id = ANY({_BATCH_IDS}) AND status = 0"
_LOCK_ROWS = (
    f"SELECT {LOCKED_COLUMNS} FROM ds_messages "
    f"WHERE message_id = ANY({_BATCH_IDS}) ORDER BY message_id FOR UPDATE"
)
_COPY_ROWS = f"COPY {_BATCH_ROWS} ({column_list(WRITTEN)}) FROM STDIN"
# The rows to update are found through the primary key whatever the statistics say:
# the scratch table is never analyzed, and right after a backfill ds_messages' own
# statistics may say it is empty; a hash join then scanned the whole table per batch.
_UPDATE = (
    "UPDATE ds_messages AS m SET "
    + ", ".join(f"{name} = v.{name}" for name in WRITTEN if name != KEY)
    + f" FROM {_BATCH_ROWS} AS v WHERE m.{KEY} = v.{KEY}"
)
_COPY_HISTORY = (
    "COPY ds_history (arrival, message_id, status, timestamp_ms, channel, client_message_id, "
    "outcome, local) FROM STDIN"
)
# the sequence is named once (``_ARRIVAL_SEQUENCE``, when the store opens): a call of
# pg_get_serial_sequence per number cost 8x the numbers themselves (25 ms per 5,000)
_ARRIVAL_SEQUENCE = "SELECT pg_get_serial_sequence('ds_history', 'arrival')"
_ARRIVALS = "SELECT nextval({sequence}::regclass) FROM generate_series(1, %s)"
#: ``_sqlbase.ADD_COUNTS`` in one statement, into the slot of this backend (``_pgschema``):
#: computed by the server, so that a connection keeps to its slot.  The moves come sorted
#: by key and each key once, so rows are locked in key order, never one twice.
#: The moves travel as one JSON text (psycopg dumps arrays element by element in Python).
_ADD_COUNTS = (
    "INSERT INTO ds_counts (status, local, slot, n) "
    f"SELECT (x->>0)::smallint, (x->>1)::smallint, pg_backend_pid() %% {COUNT_SLOTS}, "
    "(x->>2)::bigint FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(x, i) "
    "ORDER BY i ON CONFLICT (status, local, slot) DO UPDATE SET n = ds_counts.n + excluded.n"
)
#: Analyze once this many message rows are new since the last time (and a fifth of the table).
_ANALYZE_AFTER = 10_000
_SETUP_LOCK = "SELECT pg_advisory_xact_lock(hashtext('deliverystate schema setup'))"


def _arrivals_statement(cursor: psycopg.Cursor[Any]) -> str:
    """The statement drawing arrival numbers, its sequence named as this schema names it."""
    cursor.execute(_ARRIVAL_SEQUENCE)
    (sequence,) = cursor.fetchone() or ("",)
    return _ARRIVALS.format(sequence="'" + str(sequence).replace("'", "''") + "'")


class PostgresStore(PostgresFeed, SQLStore):
    """Message states, history and dead letters in a PostgreSQL schema.

    ``pool_size`` bounds the connections this store opens (writes from one
    process mostly queue on row locks anyway; reads can run beside them).
    ``timeout`` bounds connecting and waiting for a free connection
    (once an attempt to connect fails, a call stops waiting: ``_pgpool``).
    ``create=False`` opens only what is there: a schema that does not
    exist, or holds no deliverystate tables, raises
    :class:`~deliverystate.errors.NoDatabase` and is not created;
    ``migrate=False`` refuses an older schema instead of migrating it (both
    false: a read-only open, which writes nothing to the schema).  The
    store's ``target`` (what its errors and output call it) is the DSN
    without its password (:func:`redact`) and the schema.
    """

    _param = "%s"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "deliverystate",
        timeout: float = 10.0,
        pool_size: int = 4,
        feed: bool = True,
        create: bool = True,
        migrate: bool = True,
    ) -> None:
        super().__init__(feed=feed)
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
        self._timeout = timeout
        self._pool_errors: tuple[type[Exception], ...] = (
            psycopg.OperationalError,
            psycopg_pool.PoolTimeout,
            psycopg_pool.PoolClosed,
        )
        self.target = f"{redact(dsn)} (schema {schema})"
        self.schema = schema
        #: The NOTIFY channel that wakes this schema's change followers.
        self.channel = f"deliverystate_changes_{schema}"[:63]
        connect_timeout = max(1, int(timeout))
        if create:
            self._create_schema(dsn, connect_timeout)
        self._dsn = dsn
        self._connect_options: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": connect_timeout,
            # names the store's sessions in pg_stat_activity, for operators
            "application_name": f"deliverystate:{schema}"[:63],
        }
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = (
            psycopg_pool.ConnectionPool(
                dsn,
                min_size=1,
                max_size=pool_size,
                kwargs=self._connect_options,
                configure=self._configure,
                timeout=timeout,
                reconnect_timeout=RECONNECT_SECONDS,
                name=f"deliverystate-{schema}",
                open=False,
            )
        )
        self._new_rows = 0
        self._known_rows = 0
        self._written_rows = 0
        self._analyze_lock = threading.Lock()
        #: Arrival numbers a small batch drew with its rows' lock, per thread (``_pgarrays``).
        self._drawn_arrivals = threading.local()
        try:
            self._pool.open(wait=True, timeout=timeout)
            with self._transaction() as cursor:
                cursor.execute(_SETUP_LOCK)
                self._setup_schema(
                    cursor, TABLES + FEED_TABLES, MIGRATIONS, create=create, migrate=migrate
                )
                cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'ds_messages'::regclass")
                (estimate,) = cursor.fetchone() or (0,)
                self._known_rows = max(0, int(estimate))
                self._arrivals = _arrivals_statement(cursor)
                self._name_feed_sequence(cursor)
        except BaseException:
            self._pool.close()
            raise

    def _create_schema(self, dsn: str, connect_timeout: int) -> None:
        """Create the schema: it must exist before a pooled connection sets its search_path."""
        psycopg = self._psycopg
        try:
            with (
                psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout) as first,
                first.transaction(),
            ):
                first.execute(_SETUP_LOCK)
                first.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        except psycopg.OperationalError as error:
            raise self._unavailable(error) from error

    def _unavailable(self, error: Exception) -> StoreUnavailable:
        """The error to raise for a driver's ``error``: libpq may quote the DSN, so redacted."""
        return StoreUnavailable(self.target, redact(str(error).strip() or repr(error)))

    def _missing(self, cursor: psycopg.Cursor[Any]) -> str | None:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
        if cursor.fetchone() is None:
            return f"schema {self.schema} does not exist"
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{self.schema}".ds_meta',))
        (found,) = cursor.fetchone() or (False,)
        return None if found else f"schema {self.schema} holds no deliverystate tables"

    def _configure(self, connection: psycopg.Connection[Any]) -> None:
        """Prepare a new pooled connection: the schema, and its own scratch tables."""
        connection.execute(f'SET search_path TO "{self.schema}"')
        for statement in _SCRATCH:
            connection.execute(statement)

    def close(self) -> None:
        """Close every connection of the pool."""
        self._pool.close()

    def _after_commit(self) -> None:
        """Analyze the tables once many rows are new or changed: no plan on stale statistics.

        Autovacuum analyzes a table after a tenth of it changed, but only some
        time later, and not at all where it is off (as on this project's
        machine); right after a backfill of a million messages the planner
        still thought the table empty and chose plans that scanned it whole
        for every batch (about 2,000 events/s instead of tens of thousands),
        and after a few hundred thousand callbacks it still thought no message
        had failed and read "failed, newest first" by sorting the whole table
        (170 ms a page at a million messages, against 0.5 ms through the
        index once analyzed).  So the store counts the message rows it
        creates and analyzes both tables once they pass ``_ANALYZE_AFTER`` and
        a fifth of the table; and it counts the rows it writes, and analyzes
        the message table once they pass a tenth of it, as autovacuum would.
        """
        with self._analyze_lock:
            threshold = max(_ANALYZE_AFTER, self._known_rows // 5)
            if self._new_rows >= threshold:
                tables: tuple[str, ...] = ("ds_messages", "ds_history")
                self._known_rows += self._new_rows
                self._new_rows = 0
            elif self._written_rows >= max(_ANALYZE_AFTER, self._known_rows // 10):
                tables = ("ds_messages",)
            else:
                return
            self._written_rows = 0
        try:
            with lent(self._pool, self._timeout) as connection:
                for table in tables:
                    # another writer analyzing it already is enough: no queue behind it
                    connection.execute(f"ANALYZE (SKIP_LOCKED) {table}")
        except self._pool_errors as error:  # the next batch will try again
            logger.warning(
                "analyzing %s after many writes failed: %s", self.target, redact(str(error))
            )
            with self._analyze_lock:
                self._new_rows += _ANALYZE_AFTER if len(tables) > 1 else 0
                self._written_rows += _ANALYZE_AFTER

    def drop_schema(self) -> None:
        """Drop the whole schema and its tables (for tests and for starting over)."""
        with lent(self._pool, self._timeout) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        try:
            with (
                lent(self._pool, self._timeout) as connection,
                connection.transaction(),
                connection.cursor() as cursor,
            ):
                yield cursor
        except Exception as error:
            if self._store_wide(error):
                raise self._unavailable(error) from error
            raise

    def _store_wide(self, error: BaseException) -> bool:
        """Whether ``error`` is the store failing (``SQLBase._store_wide``), by its SQLSTATE.

        A data exception (22), an integrity violation (23) or a program limit
        (54, an index row too big) refuses a row; any other server error is the
        store's (a lost connection, an admin shutdown, a full disk, a read-only
        transaction, a role that may not write, too many connections), and so
        are the pool's timeouts.  Without a SQLSTATE, psycopg's own
        ``DataError`` (a NUL in text) and ``IntegrityError`` are a row's;
        anything that is no driver error is not the store's.
        """
        psycopg = self._psycopg
        if not isinstance(error, (*self._pool_errors, psycopg.Error)):
            return False
        state = getattr(error, "sqlstate", None)
        if state is None:
            return not isinstance(error, psycopg.DataError | psycopg.IntegrityError)
        return str(state)[:2] not in _ROW_REFUSALS

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
        broken = state is None or state.startswith("08") or state in {"57P01", "57P02", "57P03"}
        if broken:  # its idle neighbours may be broken too: replaced now, not one call each
            with contextlib.suppress(Exception):
                self._pool.check()
        return broken

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        def read() -> list[tuple[Any, ...]]:
            try:
                with lent(self._pool, self._timeout) as connection:
                    return connection.execute(sql, params).fetchall()
            except (*self._pool_errors, self._psycopg.Error) as error:
                # a read that fails for any database reason (a dropped table, a damaged
                # page) means the store cannot answer: 503 for the receiver, not a bug
                raise self._unavailable(error) from error

        return self._retry(read)

    def _lock_and_load(
        self, cursor: psycopg.Cursor[Any], ids: list[str], events: Sequence[StatusEvent]
    ) -> dict[str, Row]:
        first: dict[str, int] = {}
        client: dict[str, str] = {}
        for event in events:
            message_id, timestamp_ms = event.message_id, event.timestamp_ms
            if timestamp_ms < first.get(message_id, timestamp_ms + 1):
                first[message_id] = timestamp_ms
            if event.client_message_id is not None and message_id not in client:
                client[message_id] = event.client_message_id
        self._drawn_arrivals.numbers = []
        if len(ids) <= ARRAYS_UP_TO:  # a receiver's group: one round trip (``_pgarrays``)
            created, rows, numbers = lock_and_load(
                cursor, ids, first, client, (self._arrivals, len(events))
            )
            self._new_rows += created
            self._drawn_arrivals.numbers = numbers
            return {row[LOCKED_MESSAGE_ID]: row for row in rows if row[LOCKED_STATUS] != 0}
        with cursor.copy(_COPY_IDS) as copy:
            for message_id in ids:
                copy.write_row((message_id, first.get(message_id), client.get(message_id)))
        cursor.execute(_CREATE_ROWS)
        self._new_rows += max(cursor.rowcount, 0)
        cursor.execute(_LOCK_ROWS, binary=True)
        return {row[LOCKED_MESSAGE_ID]: row for row in cursor.fetchall() if row[LOCKED_STATUS] != 0}

    def _fresh_batch(self, cursor: psycopg.Cursor[Any]) -> None:
        """Empty the scratch tables: a second batch in one transaction must not meet the first's."""
        cursor.execute("DELETE FROM ds_batch_ids_v6")
        cursor.execute(f"DELETE FROM {_BATCH_ROWS}")

    def _select_for_update(self, cursor: psycopg.Cursor[Any], ids: Sequence[str]) -> list[Row]:
        cursor.execute(
            f"SELECT {LOCKED_COLUMNS} "
            "FROM ds_messages WHERE message_id = ANY(%s) ORDER BY message_id FOR UPDATE",
            (list(ids),),
            binary=True,
        )
        return cursor.fetchall()

    def _reserve(self, cursor: psycopg.Cursor[Any], count: int) -> list[int]:
        drawn: list[int] = self._drawn_arrivals.numbers
        self._drawn_arrivals.numbers = []
        if count <= len(drawn):  # drawn with the rows' lock (``_pgarrays``)
            return drawn[:count]
        cursor.execute(self._arrivals, (count,), binary=True)
        return sorted(int(row[0]) for row in cursor.fetchall())

    def _write(self, cursor: psycopg.Cursor[Any], writes: Writes) -> Sequence[int]:
        self._written_rows += len(writes.rows)  # counted for analyze (see _after_commit)
        if len(writes.rows) <= ARRAYS_UP_TO:
            seqs = write_arrays(cursor, writes, self.channel, self._add_counts)
            if seqs is not None:
                return seqs
        if writes.rows:
            with cursor.copy(_COPY_ROWS) as copy:
                for row in writes.rows:
                    copy.write_row(row)
            cursor.execute(_UPDATE)
        if writes.unstated:  # created for the batch, given no state
            cursor.execute(_DROP_EMPTY)
        if writes.history:
            # COPY is the fastest bulk insert; every history row of a message is written
            # under that message's row lock, after checking the reports it names
            with cursor.copy(_COPY_HISTORY) as copy:
                for entry in writes.history:
                    copy.write_row(entry)
        # no lock for the feed: each change's seq is drawn under its message's row lock,
        # and readers stop at a horizon (``_pgfeed``)
        if not writes.changes or len(writes.changes) >= COPY_FROM:
            if writes.counts:
                self._add_counts(cursor, writes.counts)
            return (
                self._copy_changes(cursor, writes.changes, self.channel) if writes.changes else ()
            )
        with cursor.connection.pipeline():  # one round trip for both
            if writes.counts:
                self._add_counts(cursor, writes.counts)
            append_changes(cursor, writes.changes, self.channel)
        return sorted(int(row[0]) for row in cursor.fetchall())

    def _add_counts(
        self, cursor: psycopg.Cursor[Any], moves: Sequence[tuple[int, int, int]]
    ) -> None:
        if moves:
            cursor.execute(_ADD_COUNTS, (json.dumps(moves),))

    def _received_at(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.astimezone(timezone.utc)
