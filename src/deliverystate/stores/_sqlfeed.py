"""The change feed of the SQL stores: reading it, consumers' positions, undeliverable changes.

Every status change is written to ``ds_changes`` in the transaction that makes
it (see ``_sql``), numbered by ``seq`` in commit order.  Consumers read it in
``seq`` order after a position they keep in ``ds_cursors`` under their own
name, and move the position once they have handled what they read: so a
consumer that stops at any moment resumes where it left off, at least once
and in order.  A change a forwarder gave up on is copied, whole, to
``ds_undeliverable``, where operators see it and from where it can be resent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import CursorMovedBack
from ..rules._catalog import Origin, Status
from ..rules._events import Change
from ..rules._records import Undeliverable
from ._rows import storable_text
from ._sqlbase import Row, SQLBase
from ._work import change_of

__all__ = ["SQLFeed", "change_from_row", "change_row"]

#: A cursor moved to a seq, never back (no row changes when it is past it).
_COMMIT = (
    "INSERT INTO ds_cursors (name, seq, updated_at) VALUES (?, ?, CURRENT_TIMESTAMP) "
    "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at "
    "WHERE excluded.seq >= ds_cursors.seq"
)
#: The codes of the final statuses, as SQL (from the catalog's own integers).
_FINAL_CODES = ", ".join(str(int(status)) for status in Status if status.is_terminal)
_COLUMNS = "seq, message_id, previous, status, timestamp_ms, channel, client_message_id, local"


def change_row(
    change: Change,
) -> tuple[int, str, int | None, int, int, str | None, str | None, int]:
    """A change as its feed row (the columns of ``_COLUMNS``)."""
    previous = None if change.previous is None else int(change.previous)
    return (
        change.seq,
        change.message_id,
        previous,
        int(change.status),
        change.timestamp_ms,
        change.channel,
        change.client_message_id,
        int(change.origin is Origin.LOCAL),
    )


def change_from_row(row: Row) -> Change:
    """A feed row (the columns of ``_COLUMNS``) as its change."""
    entry = (row[1], row[2], row[3], int(row[4]), row[5], row[6], bool(row[7]))
    return change_of(int(row[0]), entry)


class SQLFeed(SQLBase):
    """The feed, cursor and undeliverable methods of the SQL stores."""

    def changes(self, after: int = 0, limit: int = 1000) -> list[Change]:
        """The changes with ``seq`` above ``after``, in ``seq`` order, at most ``limit``."""
        rows = self._read(
            self._sql(f"SELECT {_COLUMNS} FROM ds_changes WHERE seq > ? ORDER BY seq LIMIT ?"),
            (after, limit),
        )
        return [change_from_row(row) for row in rows]

    def last_seq(self) -> int:
        """The highest ``seq`` in the feed (0 when nothing was ever written to it)."""
        return int(self._read("SELECT COALESCE(MAX(seq), 0) FROM ds_changes")[0][0])

    def count_changes(self, after: int = 0, *, final: bool = False) -> int:
        """How many changes the feed holds after ``after`` (with ``final``, to a final status)."""
        only = f" AND status IN ({_FINAL_CODES})" if final else ""
        sql = self._sql(f"SELECT COUNT(*) FROM ds_changes WHERE seq > ?{only}")
        return int(self._read(sql, (after,))[0][0])

    def cursor(self, name: str) -> int:
        """Where consumer ``name`` is: the last ``seq`` it committed (0 if never)."""
        rows = self._read(self._sql("SELECT seq FROM ds_cursors WHERE name = ?"), (name,))
        return int(rows[0][0]) if rows else 0

    def cursors(self) -> Mapping[str, int]:
        """Every named consumer's position."""
        return {row[0]: int(row[1]) for row in self._read("SELECT name, seq FROM ds_cursors")}

    def commit_cursor(self, name: str, seq: int) -> None:
        """Record that consumer ``name`` has handled every change up to ``seq``.

        Raises :class:`CursorMovedBack`, and keeps the cursor, if it is past
        ``seq``: the upsert moves it only forwards, so two writers cannot
        race it back either.
        """

        def attempt() -> int | None:
            with self._transaction() as cursor:
                cursor.execute(self._sql(_COMMIT), (name, seq))
                if cursor.rowcount:
                    return None
                cursor.execute(self._sql("SELECT seq FROM ds_cursors WHERE name = ?"), (name,))
                return int(cursor.fetchone()[0])

        current = self._retry(attempt)
        if current is not None:
            raise CursorMovedBack(name, seq, current)

    def drop_cursor(self, name: str) -> None:
        """Forget consumer ``name`` (it no longer holds changes back from pruning)."""
        self._execute("DELETE FROM ds_cursors WHERE name = ?", (name,))

    def trim_changes(self, before_ms: int) -> int:
        """Delete changes older than ``before_ms`` that every named consumer has passed.

        The last change is always kept: SQLite numbers a change one above the
        highest seq in the table, so that number must never go down.
        """
        return self._execute(
            "DELETE FROM ds_changes WHERE timestamp_ms < ? "
            "AND seq <= COALESCE((SELECT MIN(seq) FROM ds_cursors), seq) "
            "AND seq < (SELECT MAX(seq) FROM ds_changes)",
            (before_ms,),
        )

    def add_undeliverable(self, consumer: str, change: Change, error: str) -> None:
        """Keep a change that ``consumer`` could not be given (once per consumer and change)."""
        self._execute(
            f"INSERT INTO ds_undeliverable (consumer, {_COLUMNS}, error, failed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP) "
            "ON CONFLICT (consumer, seq) DO UPDATE SET error = excluded.error, "
            "failed_at = excluded.failed_at",
            (consumer, *change_row(change), storable_text(error)),
        )

    def undeliverable(self, consumer: str | None = None) -> Sequence[Undeliverable]:
        """The changes forwarders gave up on (``consumer``'s only, if given), oldest first."""
        where, params = ("WHERE consumer = ?", (consumer,)) if consumer is not None else ("", ())
        rows = self._read(
            self._sql(
                f"SELECT consumer, {_COLUMNS}, error, failed_at FROM ds_undeliverable "
                f"{where} ORDER BY failed_at, consumer, seq"
            ),
            params,
        )
        return [
            Undeliverable(row[0], change_from_row(row[1:9]), row[9], self._received_at(row[10]))
            for row in rows
        ]

    def remove_undeliverable(self, consumer: str, seq: int) -> None:
        """Forget an undeliverable change (it was delivered after all)."""
        self._execute(
            "DELETE FROM ds_undeliverable WHERE consumer = ? AND seq = ?", (consumer, seq)
        )

    def _execute(self, sql: str, params: Sequence[Any]) -> int:
        """One statement in its own transaction, retried like every write; rows it touched."""

        def attempt() -> int:
            with self._transaction() as cursor:
                cursor.execute(self._sql(sql), params)
                return int(cursor.rowcount)

        return self._retry(attempt)
