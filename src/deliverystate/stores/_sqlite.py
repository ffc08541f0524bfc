"""SQLiteStore: the embedded default, one file shared safely by several processes.

The database runs in WAL mode, so readers never wait for the writer; each
batch takes SQLite's write lock with ``BEGIN IMMEDIATE`` before it reads the
states it will compare against, which is what makes concurrent workers safe
(see ``sqlstore`` for the whole protocol).  A writer that finds the lock taken
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

from .._events import MessageState
from .._reconcile import fingerprint
from ..errors import StoreUnavailable
from ._sql import SQLStore, state_from_row
from ._work import Batch

__all__ = ["DEFAULT_DB", "MIGRATIONS", "TABLES", "SQLiteStore"]

#: Where the command line, the receiver and ``SQLiteStore()`` keep state unless told otherwise.
DEFAULT_DB = "deliverystate.sqlite3"

TABLES: tuple[str, ...] = (
    """CREATE TABLE ds_messages (
        message_id TEXT PRIMARY KEY,
        status INTEGER NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        precedence INTEGER,
        channel TEXT,
        client_message_id TEXT
    ) WITHOUT ROWID""",
    """CREATE TABLE ds_history (
        arrival INTEGER PRIMARY KEY,  -- history is never deleted, so rowids only grow
        message_id TEXT NOT NULL,
        status INTEGER NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        channel TEXT,
        client_message_id TEXT,
        outcome TEXT NOT NULL,
        UNIQUE (message_id, status, timestamp_ms)
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
)

#: Statements that upgrade schema version N to N + 1.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 -> 2: bodies are bytes.  A TEXT column keeps BLOB values as they are, so the
    # columns stay; the rows written as text become bytes like every new one.
    1: (
        "UPDATE ds_inbox SET payload = CAST(payload AS BLOB) WHERE typeof(payload) = 'text'",
        "UPDATE ds_dead_letters SET payload = CAST(payload AS BLOB) WHERE typeof(payload) = 'text'",
    ),
}

_UPSERT = (
    "INSERT INTO ds_messages (message_id, status, timestamp_ms, precedence, channel, "
    "client_message_id) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO UPDATE SET "
    "status = excluded.status, timestamp_ms = excluded.timestamp_ms, "
    "precedence = excluded.precedence, channel = excluded.channel, "
    "client_message_id = excluded.client_message_id"
)
_HISTORY = (
    "INSERT OR IGNORE INTO ds_history (message_id, status, timestamp_ms, channel, "
    "client_message_id, outcome) VALUES (?, ?, ?, ?, ?, ?)"
)


class SQLiteStore(SQLStore):
    """Message states, history and dead letters in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_DB, *, timeout: float = 30.0) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.target = self.path
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and self.path != ":memory:":
                raise StoreUnavailable(self.target, "cannot switch the database to WAL mode")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as error:
            raise StoreUnavailable(self.target, str(error)) from error
        with self._transaction() as cursor:
            self._setup_schema(cursor, TABLES, MIGRATIONS)

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
                if isinstance(error, sqlite3.Error):
                    raise StoreUnavailable(self.target, str(error)) from error
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise StoreUnavailable(self.target, str(error)) from error

    def _lock_and_load(
        self, cursor: sqlite3.Cursor, ids: list[str]
    ) -> tuple[dict[str, MessageState], dict[str, set[int]]]:
        # BEGIN IMMEDIATE already holds the database's write lock
        wanted = json.dumps(ids)
        cursor.execute(
            "SELECT message_id, status, timestamp_ms, channel, client_message_id FROM ds_messages "
            "WHERE message_id IN (SELECT value FROM json_each(?))",
            (wanted,),
        )
        states = {row[0]: state_from_row(row) for row in cursor.fetchall()}
        cursor.execute(
            "SELECT message_id, status, timestamp_ms FROM ds_history "
            "WHERE message_id IN (SELECT value FROM json_each(?))",
            (wanted,),
        )
        seen: dict[str, set[int]] = {}
        for message_id, status, timestamp_ms in cursor.fetchall():
            seen.setdefault(message_id, set()).add(fingerprint(status, timestamp_ms))
        return states, seen

    def _write(self, cursor: sqlite3.Cursor, batch: Batch, ids: list[str]) -> None:
        if batch.changed:
            cursor.executemany(_UPSERT, batch.changed_rows())
        if batch.recorded:
            cursor.executemany(
                _HISTORY,
                [
                    (
                        e.message_id,
                        int(e.status),
                        e.timestamp_ms,
                        e.channel,
                        e.client_message_id,
                        outcome.value,
                    )
                    for e, outcome in batch.recorded
                ],
            )

    def _received_at(self, value: Any) -> datetime:
        return datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc)
