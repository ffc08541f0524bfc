"""Reading an SQL store: states, histories, counts and milestones, outside any write lock."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from ..rules._catalog import Status
from ..rules._events import MessageState, id_problem
from ..rules._reconcile import Outcome
from ..rules._records import HistoryEntry, Listed, MessageQuery, Milestones
from ._columns import LISTED, LISTED_FIRST_MS, column_list
from ._rows import (
    HISTORY_COLUMNS,
    STATE_COLUMNS,
    event_from_row,
    report_arrivals,
    state_from_row,
)
from ._sqlbase import SQLBase

__all__ = ["SQLReads"]

#: What the message list reads of each message (``_columns.LISTED``).
_LISTED = column_list(LISTED)


class SQLReads(SQLBase):
    """The read side of the SQL stores (every query here is a plain read)."""

    def get(self, message_id: str) -> MessageState | None:
        """The current state of a message, or None (also for an id no store could hold)."""
        if id_problem(message_id) is not None:
            return None
        rows = self._read(
            self._sql(f"SELECT {STATE_COLUMNS} FROM ds_messages WHERE message_id = ?"),
            (message_id,),
        )
        return state_from_row(rows[0]) if rows else None

    def history(self, message_id: str) -> Sequence[HistoryEntry]:
        """The reports about a message, by event timestamp then arrival."""
        if id_problem(message_id) is not None:
            return []
        found = self._read(
            self._sql("SELECT reports FROM ds_messages WHERE message_id = ?"), (message_id,)
        )
        arrivals = report_arrivals(found[0][0]) if found else []
        if not arrivals:
            return []
        rows = self._read(
            f"SELECT {HISTORY_COLUMNS} FROM ds_history "
            f"WHERE arrival IN ({self._list(arrivals)}) ORDER BY timestamp_ms, arrival"
        )
        return [HistoryEntry(event_from_row(row), Outcome(row[5]), row[6]) for row in rows]

    def count_by_status(self) -> Mapping[Status, int]:
        """How many messages are in each status: a few rows of ``ds_counts``, never a scan.

        Summed: PostgreSQL keeps each (status, local) in several slots (``_pgschema``).
        """
        rows = self._read("SELECT status, SUM(n) FROM ds_counts GROUP BY status")
        return {Status.from_code(row[0]): int(row[1]) for row in rows if row[1]}

    def _where_first_since(self, since_ms: int | None) -> tuple[str, tuple[int, ...]]:
        """A WHERE clause and its parameters for messages first reported since ``since_ms``."""
        if since_ms is None:
            return "", ()
        return f"WHERE {self._first_since(since_ms)}", (since_ms,)

    def _first_since(self, since_ms: int) -> str:
        """The condition "first reported at or after ``since_ms``" (one ``?``).

        A store whose planner would walk the first-report index even when the
        window holds most messages (one random row lookup per message, ten
        times a scan's cost) overrides this to scan instead.
        """
        return "first_ms >= ?"

    def milestones(self, since_ms: int | None = None) -> Iterable[Milestones]:
        """First report, first delivery and first read of each message.

        All three are on the message row, written with each batch (schema
        version 6): the figures over a window are one read of the messages
        first reported in it, the history not read at all (reading its
        delivery and read reports was most of the status page's time at a
        million messages).
        """
        where, params = self._where_first_since(since_ms)
        rows = self._read(
            self._sql(
                "SELECT message_id, first_ms, delivered_ms, read_ms, channel "
                f"FROM ds_messages {where}"
            ),
            params,
        )
        return (
            Milestones(m, first, delivered, read, channel)
            for m, first, delivered, read, channel in rows
            if first is not None
        )

    def count_by_channel(
        self, since_ms: int | None = None
    ) -> Mapping[tuple[str | None, Status], int]:
        """How many messages are in each (channel, status), first reported since ``since_ms``."""
        where, params = self._where_first_since(since_ms)
        rows = self._read(
            self._sql(
                f"SELECT channel, status, COUNT(*) FROM ds_messages {where} "
                "GROUP BY channel, status"
            ),
            params,
        )
        return {(row[0], Status.from_code(row[1])): int(row[2]) for row in rows}

    def iter_states(self) -> Iterator[MessageState]:
        """Every message's state, ordered by message id."""
        rows = self._read(f"SELECT {STATE_COLUMNS} FROM ds_messages ORDER BY message_id")
        return (state_from_row(row) for row in rows)

    def overdue(
        self, now_ms: int, limit: int, after: tuple[int, str] | None = None
    ) -> list[MessageState]:
        """Messages due by ``now_ms``, by deadline then id, after ``after`` (keyset).

        Reads the partial index on ``due_ms``, which holds only the messages a
        sweep has something to do for, so the cost does not grow with the
        messages the store has closed.
        """
        where = "due_ms IS NOT NULL AND due_ms <= ?"
        params: tuple[object, ...] = (now_ms,)
        if after is not None:
            where += " AND (due_ms, message_id) > (?, ?)"
            params += after
        rows = self._read(
            self._sql(
                f"SELECT {STATE_COLUMNS} FROM ds_messages WHERE {where} "
                "ORDER BY due_ms, message_id LIMIT ?"
            ),
            (*params, limit),
        )
        return [state_from_row(row) for row in rows]

    def messages(
        self, query: MessageQuery, limit: int, before: tuple[int, str] | None = None
    ) -> list[Listed]:
        """Messages ``query`` matches, newest first, read through the list indexes.

        None for a client message id no message could have (as ``get`` for
        such an id): PostgreSQL would refuse to compare a NUL, a driver to
        send a lone surrogate, where the other store answers "none".
        """
        if query.client_message_id is not None and id_problem(query.client_message_id):
            return []
        where, params = ["first_ms IS NOT NULL"], []
        if query.statuses:
            where.append(f"status IN ({self._list(int(s) for s in query.statuses)})")
        for clause, value in (
            ("channel = ?", query.channel),
            ("first_ms >= ?", query.since_ms),
            ("first_ms < ?", query.until_ms),
            ("due_ms IS NOT NULL AND due_ms <= ?", query.due_by_ms),
            ("client_message_id = ?", query.client_message_id),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        if before is not None:
            where.append("(first_ms, message_id) < (?, ?)")
            params.extend(before)
        rows = self._read(
            self._sql(
                f"SELECT {_LISTED} FROM ds_messages WHERE {' AND '.join(where)} "
                "ORDER BY first_ms DESC, message_id DESC LIMIT ?"
            ),
            (*params, limit),
        )
        return [Listed(int(row[LISTED_FIRST_MS]), state_from_row(row)) for row in rows]

    def count_overdue(self, now_ms: int) -> int:
        """How many messages are due by ``now_ms`` (the partial index alone answers)."""
        sql = "SELECT COUNT(*) FROM ds_messages WHERE due_ms IS NOT NULL AND due_ms <= ?"
        return int(self._read(self._sql(sql), (now_ms,))[0][0])

    def count_local_expiries(self) -> int:
        """How many messages are EXPIRED by a local report (a sweep), not by Clickatell."""
        sql = (  # a sum: PostgreSQL keeps a key's count in several slots (``_pgschema``)
            "SELECT COALESCE(SUM(n), 0) FROM ds_counts "
            f"WHERE local = 1 AND status = {int(Status.EXPIRED)}"
        )
        return int(self._read(sql)[0][0])

    def history_size(self) -> int:
        """How many history rows the store holds."""
        return int(self._read("SELECT COUNT(*) FROM ds_history")[0][0])
