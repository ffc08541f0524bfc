"""SQLiteStore: the embedded default, one file shared safely by several processes.

The database runs in WAL mode, so readers never wait for the writer; each
batch takes SQLite's write lock with ``BEGIN IMMEDIATE`` before it reads the
states it will compare against, which is what makes concurrent workers safe
(see ``_sql`` for the whole protocol).  A writer that finds the lock taken
waits up to ``timeout`` seconds.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from ..errors import NoDatabase, StoreUnavailable
from ..rules._catalog import Status
from ..rules._events import StatusEvent
from ..rules._reconcile import fingerprint
from ..rules._records import Keep
from ._columns import KEY, LOCKED_MESSAGE_ID, WRITTEN, column_list, create_messages, placeholders
from ._rows import LOCKED_COLUMNS, MILESTONE_REPORTS, pack_reports, report_times
from ._sql import SQLStore
from ._sqlbase import (
    ADD_COUNTS,
    COUNTS_FROM_MESSAGES,
    LIST_INDEXES,
    Migration,
    Row,
    Writes,
    rekey_previous_tables,
)
from ._sqlrows import append_rows, grouped_insert

__all__ = ["DEFAULT_DB", "FEED_TABLES", "MIGRATIONS", "TABLES", "SQLiteStore", "is_store_wide"]

#: Where the command line, the receiver and ``SQLiteStore()`` keep state unless told otherwise.
DEFAULT_DB = "deliverystate.sqlite3"

#: How many messages are in each (status, local): see ``_sqlbase.ADD_COUNTS`` (version 7).
_COUNTS_TABLE = """CREATE TABLE ds_counts (
    status INTEGER NOT NULL,
    local INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (status, local)
) WITHOUT ROWID"""

TABLES: tuple[str, ...] = (
    # clustered by message id (its columns: ``_columns.MESSAGES``)
    create_messages("sqlite", "WITHOUT ROWID"),
    *LIST_INDEXES,
    # appended in arrival order; AUTOINCREMENT: an arrival number is never handed out twice
    """CREATE TABLE ds_history (
        arrival INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        channel TEXT,
        client_message_id TEXT,
        outcome TEXT NOT NULL,
        local INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE ds_inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        payload BLOB NOT NULL,
        received_at TEXT NOT NULL
    )""",
    """CREATE TABLE ds_dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        payload BLOB NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        error TEXT NOT NULL,
        received_at TEXT NOT NULL
    )""",
    _COUNTS_TABLE,
)
#: The change feed (version 4): every status change in commit order, the named
#: consumers' positions in it, and what a forwarder gave up delivering.
FEED_TABLES: tuple[str, ...] = (
    """CREATE TABLE ds_changes (
        seq INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        previous INTEGER,
        status INTEGER NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        channel TEXT,
        client_message_id TEXT,
        local INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE ds_cursors (
        name TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE ds_undeliverable (
        consumer TEXT NOT NULL,
        seq INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        previous INTEGER,
        status INTEGER NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        channel TEXT,
        client_message_id TEXT,
        local INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL,
        failed_at TEXT NOT NULL,
        PRIMARY KEY (consumer, seq)
    )""",
)


def _name_history_in_messages(cursor: sqlite3.Cursor) -> None:
    """Version 3: write each message's (fingerprint, arrival) pairs into its row."""
    cursor.execute(
        "SELECT message_id, status, timestamp_ms, arrival FROM ds_history "
        "ORDER BY message_id, arrival"
    )
    blobs: dict[str, list[tuple[int, int]]] = {}
    for message_id, status, timestamp_ms, arrival in cursor.fetchall():
        blobs.setdefault(message_id, []).append((fingerprint(status, timestamp_ms), arrival))
    cursor.executemany(
        "UPDATE ds_messages SET reports = ? WHERE message_id = ?",
        [(pack_reports(pairs), message_id) for message_id, pairs in blobs.items()],
    )


#: The column version 5 adds to the feed's tables (version 4 made them without it).
_LOCAL_COLUMN = ",\n        local INTEGER NOT NULL DEFAULT 0"


def _date_first_reports(cursor: sqlite3.Cursor) -> None:
    """Version 5: each message's first report time, from the reports its row names."""
    cursor.execute("SELECT message_id, timestamp_ms, reports FROM ds_messages")
    cursor.executemany(
        "UPDATE ds_messages SET first_ms = ? WHERE message_id = ?",
        [(min(report_times(blob), default=ts), m) for m, ts, blob in cursor.fetchall()],
    )


def _date_milestones(cursor: sqlite3.Cursor) -> None:
    """Version 6: each message's first delivery and read, from its accepted reports."""
    cursor.execute(MILESTONE_REPORTS)
    delivered: dict[str, int] = {}
    read: dict[str, int] = {}
    for message_id, status, timestamp_ms in cursor.fetchall():
        delivered[message_id] = min(delivered.get(message_id, timestamp_ms), timestamp_ms)
        if status == Status.READ:
            read[message_id] = min(read.get(message_id, timestamp_ms), timestamp_ms)
    cursor.executemany(
        "UPDATE ds_messages SET delivered_ms = ?, read_ms = ? WHERE message_id = ?",
        [(ms, read.get(m), m) for m, ms in delivered.items()],
    )


#: Steps that upgrade schema version N to N + 1.
MIGRATIONS: dict[int, tuple[Migration, ...]] = {
    # 1 -> 2: bodies are bytes.  A TEXT column keeps BLOB values as they are, so the
    # columns stay; the rows written as text become bytes like every new one.
    1: (
        "UPDATE ds_inbox SET payload = CAST(payload AS BLOB) WHERE typeof(payload) = 'text'",
        "UPDATE ds_dead_letters SET payload = CAST(payload AS BLOB) WHERE typeof(payload) = 'text'",
    ),
    # 2 -> 3: history loses its unique index (duplicates are found through the
    # message row) and becomes AUTOINCREMENT; each message row names its history
    2: (
        "ALTER TABLE ds_messages ADD COLUMN reports BLOB",
        """CREATE TABLE ds_history_v3 (
            arrival INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id TEXT NOT NULL,
            status INTEGER NOT NULL,
            timestamp_ms INTEGER NOT NULL,
            channel TEXT,
            client_message_id TEXT,
            outcome TEXT NOT NULL
        )""",
        "INSERT INTO ds_history_v3 SELECT arrival, message_id, status, timestamp_ms, channel, "
        "client_message_id, outcome FROM ds_history ORDER BY arrival",
        "DROP TABLE ds_history",
        "ALTER TABLE ds_history_v3 RENAME TO ds_history",
        _name_history_in_messages,
    ),
    # 3 -> 4: the change feed starts empty: changes made before it are not in it
    3: tuple(table.replace(_LOCAL_COLUMN, "") for table in FEED_TABLES),
    # 4 -> 5: registrations and local reports (deadlines, the origin of each report)
    4: (
        "ALTER TABLE ds_messages ADD COLUMN local INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE ds_messages ADD COLUMN deadline_ms INTEGER",
        "ALTER TABLE ds_messages ADD COLUMN due_ms INTEGER",
        "ALTER TABLE ds_messages ADD COLUMN first_ms INTEGER",
        _date_first_reports,
        *LIST_INDEXES,
        "ALTER TABLE ds_history ADD COLUMN local INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE ds_changes ADD COLUMN local INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE ds_undeliverable ADD COLUMN local INTEGER NOT NULL DEFAULT 0",
        rekey_previous_tables,
    ),
    # 5 -> 6: each message's first delivery and read on its row
    5: (
        "ALTER TABLE ds_messages ADD COLUMN delivered_ms INTEGER",
        "ALTER TABLE ds_messages ADD COLUMN read_ms INTEGER",
        _date_milestones,
    ),
    # 6 -> 7: how many messages are in each status, kept as the messages change
    6: (_COUNTS_TABLE, COUNTS_FROM_MESSAGES),
    # 7 -> 8: nothing here.  PostgreSQL spread its counts over slots so that concurrent
    # writers do not queue on the same rows; SQLite has one writer at a time (its
    # database-wide write lock), which slots could not help, so its table stays.
    7: (),
}

# Every column, as a batch writes them (``_columns.WRITTEN``).  An existing row keeps its
# client id and first report's time here: SQLite rewrites the index entries of every
# column an UPDATE assigns, changed or not (measured: +65 % on a raw upsert), so the few
# rows where they do change are written apart (``_LEARNED``).
_WRITTEN_APART = ("client_message_id", "first_ms")
_UPSERT = (
    f"INSERT INTO ds_messages ({column_list(WRITTEN)}) VALUES ({placeholders(len(WRITTEN))}) "
    f"ON CONFLICT ({KEY}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in WRITTEN if c not in (KEY, *_WRITTEN_APART))
)
#: Fewer messages in a window than this are always read through the first-report index.
_SCAN_FROM = 10_000
_LEARNED = "UPDATE ds_messages SET client_message_id = ?, first_ms = ? WHERE message_id = ?"
_HISTORY = (
    "INSERT INTO ds_history (arrival, message_id, status, timestamp_ms, channel, "
    "client_message_id, outcome, local) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# Sizing, measured with bench/scale.py at 10 thousand and 1 million tracked messages,
# callbacks about the 300k most recent (batches of 1,000).  A status change rewrites
# its message's page, so at a million messages a batch dirties about one page per
# report, and each dirty page is written to the WAL and again at the checkpoint, so
# the bytes per page decide: in raw updates of 130-byte rows at 1M, 1 KiB pages took
# 90-97k rows/s, 2 KiB 49-78k, 4 KiB less.  (A message row over about 230 bytes, a
# long client id or a long history, spills onto an overflow page at this size and
# costs a second page per update; typical rows are 130-160 bytes.)  A checkpoint
# every 16 MiB of WAL instead of every 1,000 pages (which at 1M meant one per batch,
# each with its fsync) was worth about a third; and the cache holds the recent
# messages' pages (64 MiB by default, ``cache_mb``; SQLite's default is 2 MiB).
_PAGE_SIZE = 1024
_CHECKPOINT_BYTES = 16 << 20

#: The last arrival number handed out, deleted rows included (AUTOINCREMENT's record).
_LAST_ARRIVAL = (
    "SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'ds_history'), 0), "
    "COALESCE((SELECT max(arrival) FROM ds_history), 0))"
)
# Changes are numbered by SQLite (max(seq) + 1: the write lock is held, and trimming
# never deletes the last change, so no number comes back; no AUTOINCREMENT, which
# would cost an update of its bookkeeping row for every change)
_CHANGES = (
    "INSERT INTO ds_changes (message_id, previous, status, timestamp_ms, channel, "
    "client_message_id, local) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_LAST_CHANGE = "SELECT max(seq) FROM ds_changes"
#: Rows appended by one statement: history and feed rows ``_GROUP`` to an INSERT cost
#: about 0.6 of one INSERT a row (measured, raw sqlite3, 320k of each, 40k a transaction:
#: 2.4-2.6 against 4.0 us of CPU a history and feed row pair at 64-124 rows a statement),
#: the per-statement work (and AUTOINCREMENT's bookkeeping row, updated at the end of each
#: statement) shared out.  Upserts are not grouped: grouped ones measured slower.  Under
#: 999 parameters, the limit of SQLite builds before 3.32.
_GROUP = 120
_HISTORIES = grouped_insert(_HISTORY, _GROUP)
_MANY_CHANGES = grouped_insert(_CHANGES, _GROUP)


#: SQLite's primary result codes that refuse one row, not the store: a constraint, a
#: value too big, of the wrong type, or a parameter out of range.  Every other code says
#: the store is failing: full (the disk, or ``max_page_count``), read-only, I/O error,
#: cannot open, busy or locked past the timeout, corrupt, out of memory.
_ROW_REFUSALS = frozenset({19, 18, 20, 25})  # SQLITE_CONSTRAINT, _TOOBIG, _MISMATCH, _RANGE
#: How many pages a write must still find (free, or by growing the file) for ``ping`` to
#: pass: about what one callback's batch adds at worst (a leaf of each table and index).
_ROOM_PAGES = 8


def is_store_wide(error: sqlite3.Error) -> bool:
    """Whether SQLite's ``error`` says the store is failing rather than refusing a row.

    By its result code (``sqlite_errorcode``, Python 3.11+), else by its class:
    ``IntegrityError`` and ``DataError`` are a row's; any other error the
    module raises (a closed connection, a disk I/O error) is the store's.
    """
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:
        return not isinstance(error, sqlite3.IntegrityError | sqlite3.DataError)
    return code & 0xFF not in _ROW_REFUSALS


class SQLiteStore(SQLStore):
    """Message states, history and dead letters in one SQLite file.

    ``timeout`` is how long a writer waits for another process's lock;
    ``cache_mb`` how much of the file this connection keeps in memory.
    ``create=False`` opens only what is there: a path without a file, or a
    file without deliverystate's tables, raises
    :class:`~deliverystate.errors.NoDatabase` and is left as it was;
    ``migrate=False`` refuses an older schema instead of migrating it (both
    false: a read-only open, which writes nothing).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_DB,
        *,
        timeout: float = 30.0,
        cache_mb: int = 64,
        feed: bool = True,
        create: bool = True,
        migrate: bool = True,
    ) -> None:
        super().__init__(feed=feed)
        if cache_mb < 1:
            raise ValueError(f"cache_mb must be at least 1, not {cache_mb}")
        self.path = os.fspath(path)
        #: The name errors and output give this store (a path holds no password).
        self.target = self.path
        self._lock = threading.RLock()
        if not create and (self.path == ":memory:" or not os.path.exists(self.path)):
            raise NoDatabase(self.target, "no such file")
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            # before the pragmas: switching a file to WAL writes to it
            missing = None if create else self._missing(self._conn.cursor())
            if missing is not None:
                self._conn.close()
                raise NoDatabase(self.target, missing)
            # only a new, empty file takes a page size and a vacuum mode; an existing one
            # keeps its own.  Incremental: pages that retention frees go back to the disk
            self._conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            self._conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and self.path != ":memory:":
                raise StoreUnavailable(self.target, "cannot switch the database to WAL mode")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute(f"PRAGMA cache_size = -{cache_mb * 1024}")
            self._page_size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            self._conn.execute(
                f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_BYTES // self._page_size}"
            )
        except sqlite3.Error as error:
            raise StoreUnavailable(self.target, str(error)) from error
        with self._transaction() as cursor:
            self._setup_schema(
                cursor, TABLES + FEED_TABLES, MIGRATIONS, create=create, migrate=migrate
            )

    def _missing(self, cursor: sqlite3.Cursor) -> str | None:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ds_meta'")
        return None if cursor.fetchone() else "the file holds no deliverystate tables"

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            try:
                cursor = self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise StoreUnavailable(self.target, str(error)) from error
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException as error:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error) and is_store_wide(error):
                    raise StoreUnavailable(self.target, str(error)) from error
                raise

    def _store_wide(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.Error) and is_store_wide(error)

    def _room(self, cursor: sqlite3.Cursor) -> None:
        """Claim ``_ROOM_PAGES`` pages and give them back: SQLITE_FULL if the file may not grow.

        A full disk fails the heartbeat's commit (the WAL cannot grow); a file at
        its ``max_page_count`` takes that commit (the heartbeat rewrites a page
        in place) yet has no page for a new row, which only claiming pages shows.
        Rolled back to a savepoint, so nothing of it reaches the disk.
        """
        cursor.execute("SAVEPOINT ds_room")  # a failure rolls the whole transaction back
        cursor.execute(
            "INSERT INTO ds_meta (key, value) VALUES ('room', zeroblob(?))",
            (self._page_size * _ROOM_PAGES,),
        )
        cursor.execute("ROLLBACK TO ds_room")
        cursor.execute("RELEASE ds_room")

    def _first_since(self, since_ms: int) -> str:
        """Scan the messages instead of the first-report index when the window holds many.

        SQLite keeps no statistics here, so its planner walks the index for
        any range, and each message found costs a lookup of its row at a
        random place: at a million messages in the window, 6 s against 0.7 s
        for a scan of the table (measured).  Two counts through the index
        (cheap: the index holds what they count) decide; ``+first_ms`` is
        SQLite's way of saying "not by index".
        """
        inside = self._read("SELECT COUNT(*) FROM ds_messages WHERE first_ms >= ?", (since_ms,))
        if inside[0][0] < _SCAN_FROM:
            return "first_ms >= ?"
        total = self._read("SELECT COUNT(*) FROM ds_messages")[0][0]
        return "+first_ms >= ?" if inside[0][0] * 10 > total else "first_ms >= ?"

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise StoreUnavailable(self.target, str(error)) from error

    def _lock_and_load(
        self, cursor: sqlite3.Cursor, ids: list[str], events: Sequence[StatusEvent]
    ) -> dict[str, Row]:
        # BEGIN IMMEDIATE already holds the database's write lock
        return {row[LOCKED_MESSAGE_ID]: row for row in self._select_for_update(cursor, ids)}

    def _select_for_update(self, cursor: sqlite3.Cursor, ids: Sequence[str]) -> list[Row]:
        # BEGIN IMMEDIATE already holds the database's write lock
        cursor.execute(
            f"SELECT {LOCKED_COLUMNS} "
            "FROM ds_messages WHERE message_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(ids)),),
        )
        return cursor.fetchall()

    def _reserve(self, cursor: sqlite3.Cursor, count: int) -> list[int]:
        # the write lock is held: nobody else hands out numbers until this batch commits
        cursor.execute(_LAST_ARRIVAL)
        last = int(cursor.fetchone()[0])
        return list(range(last + 1, last + 1 + count))

    def _write(self, cursor: sqlite3.Cursor, writes: Writes) -> Sequence[int]:
        if writes.rows:
            cursor.executemany(_UPSERT, writes.rows)
        if writes.learned:
            cursor.executemany(_LEARNED, writes.learned)
        if writes.history:
            append_rows(cursor, _HISTORY, _HISTORIES, _GROUP, writes.history)
        first = 0
        if writes.changes:
            append_rows(cursor, _CHANGES, _MANY_CHANGES, _GROUP, writes.changes)
            cursor.execute(_LAST_CHANGE)
            first = int(cursor.fetchone()[0]) - len(writes.changes) + 1
        if writes.counts:
            cursor.executemany(ADD_COUNTS, writes.counts)
        return range(first, first + len(writes.changes)) if first else ()

    def remove(self, message_ids: Sequence[str], before_ms: int, keep: Keep | None = None) -> int:
        """Remove old settled messages (see ``_retention``), then give their pages back."""
        removed = super().remove(message_ids, before_ms, keep)
        if removed:
            self._give_pages_back()
        return removed

    def trim_changes(self, before_ms: int) -> int:
        """Trim the change feed (see ``_sqlfeed``), then give its pages back."""
        removed = super().trim_changes(before_ms)
        if removed:
            self._give_pages_back()
        return removed

    def _give_pages_back(self) -> None:
        with self._lock:
            try:  # a database made before incremental vacuum was the default: no-op
                # it frees one page per step, and execute() steps once: a script
                # steps it to the end
                self._conn.executescript("PRAGMA incremental_vacuum;")
            except sqlite3.Error as error:
                raise StoreUnavailable(self.target, str(error)) from error

    def _received_at(self, value: Any) -> datetime:
        return datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc)
