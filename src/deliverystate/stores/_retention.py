"""Retention for the SQL stores: finding settled messages past a date, and removing them.

Theory of operation
-------------------
A store that only grows is not something an operator can keep.  Pruning
removes messages that are settled (their status is in ``_protocol.SETTLED``:
a failure, READ, or DEVICE_ACK, where an SMS ends) and whose last report is
older than a date, with their history, in two steps so that the write lock is
held briefly and a running receiver is not held up:

1. :meth:`prunable` scans the message table in id order, a page at a time,
   *without* the write lock, and returns the candidates it saw;
2. :meth:`remove` takes the write lock for one group of candidates, checks
   each again (a report may have arrived since: it is then no longer a
   candidate), hands the messages with their history to ``keep`` (the
   archive) *before* anything is deleted, deletes their history rows by
   arrival and their message rows, and commits.

If ``keep`` fails, nothing is deleted.  If the commit fails after ``keep``,
the archive holds messages that were not deleted, which is harmless:
replaying it finds their reports as duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..rules._catalog import Status
from ..rules._reconcile import Outcome
from ..rules._records import SETTLED, Archived, HistoryEntry, Keep
from ._columns import LOCKED_LOCAL, LOCKED_MESSAGE_ID, LOCKED_REPORTS, LOCKED_STATUS
from ._rows import (
    HISTORY_COLUMNS,
    event_from_row,
    report_arrivals,
    report_times,
    state_from_row,
)
from ._sqlbase import SQLBase, count_moves

__all__ = ["SQLRetention"]

#: Settled statuses, as the SQL condition that finds them: built from the set, never
#: written out, so that the SQL and the memory store cannot disagree.
_SETTLED = f"status IN ({', '.join(str(int(status)) for status in sorted(SETTLED))})"


class SQLRetention(SQLBase):
    """``prunable`` and ``remove`` for the SQL stores."""

    def prunable(
        self, before_ms: int, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Settled messages whose last report is before ``before_ms``, scanning ``limit`` rows.

        Scans the messages after ``after`` in id order; returns the candidates
        and where the next scan starts (None when the table is done).
        """
        rows = self._read(
            self._sql(
                f"SELECT message_id, reports FROM ds_messages WHERE {_SETTLED} AND message_id > ? "
                "ORDER BY message_id LIMIT ?"
            ),
            (after or "", limit),
        )
        found = [row[0] for row in rows if max(report_times(row[1]), default=0) < before_ms]
        return found, (rows[-1][0] if len(rows) == limit else None)

    def remove(self, message_ids: Sequence[str], before_ms: int, keep: Keep | None = None) -> int:
        """Remove those of ``message_ids`` that are still settled and old; ``keep`` them first."""

        def attempt() -> int:
            with self._transaction() as cursor:
                doomed = [
                    row
                    for row in self._select_for_update(cursor, sorted(message_ids))
                    if Status.from_code(row[LOCKED_STATUS]) in SETTLED
                    and max(report_times(row[LOCKED_REPORTS]), default=0) < before_ms
                ]
                if not doomed:
                    return 0
                arrivals = [a for row in doomed for a in report_arrivals(row[LOCKED_REPORTS])]
                if keep is not None:
                    keep(self._archived(cursor, doomed, arrivals))
                if arrivals:
                    cursor.execute(
                        f"DELETE FROM ds_history WHERE arrival IN ({self._list(arrivals)})"
                    )
                cursor.executemany(
                    self._sql("DELETE FROM ds_messages WHERE message_id = ?"),
                    [(row[LOCKED_MESSAGE_ID],) for row in doomed],
                )
                moves = count_moves([(row[LOCKED_STATUS], row[LOCKED_LOCAL]) for row in doomed], ())
                self._add_counts(cursor, moves)  # last: see ``_sqlbase.ADD_COUNTS``
            return len(doomed)

        return self._retry(attempt)

    def _archived(
        self, cursor: Any, doomed: list[tuple[Any, ...]], arrivals: list[int]
    ) -> list[Archived]:
        """The doomed messages with every report about them, in arrival order."""
        entries: dict[str, list[HistoryEntry]] = {}
        if arrivals:
            cursor.execute(
                f"SELECT {HISTORY_COLUMNS} FROM ds_history "
                f"WHERE arrival IN ({self._list(arrivals)}) ORDER BY arrival"
            )
            for row in cursor.fetchall():
                event = event_from_row(row)
                entries.setdefault(row[0], []).append(HistoryEntry(event, Outcome(row[5]), row[6]))
        return [
            Archived(state_from_row(row), tuple(entries.get(row[LOCKED_MESSAGE_ID], ())))
            for row in doomed
        ]
