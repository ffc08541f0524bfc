"""The rows a SQL store writes for a batch: history rows, message rows, counter moves.

``SQLStore._flush`` (see ``_sql``) hands a batch's recorded reports and
touched records here, once the reports have their arrival numbers, and
writes what comes back.  Both SQL stores write the same rows.  This is a
replay's hot path, run for every report: one pass each, no call per report
that can be avoided (measured with ``bench/run.py``'s replay row).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from ..rules._catalog import Origin, Status
from ..rules._events import StatusEvent
from ..rules._reconcile import FINGERPRINT_SHIFT, Outcome
from ._columns import (
    LOCKED_DELIVERED_MS,
    LOCKED_FIRST_MS,
    LOCKED_LOCAL,
    LOCKED_READ_MS,
    LOCKED_REPORTS,
    LOCKED_STATUS,
    LOCKED_TIMESTAMP_MS,
    WRITTEN_CLIENT_MESSAGE_ID,
    WRITTEN_LOCAL,
    WRITTEN_MESSAGE_ID,
    WRITTEN_STATUS,
    WRITTEN_TIMESTAMP_MS,
)
from ._rows import pack_flat, report_times
from ._sqlbase import HistoryRow, MessageRow, Row, count_moves
from ._work import StateRow

__all__ = ["append_rows", "grouped_insert", "history_rows", "message_rows"]

_CLICKATELL = Origin.CLICKATELL
# an enum's ``.value`` is a descriptor call: a dictionary lookup is a fifth of its cost
_OUTCOME_VALUE = {outcome: outcome.value for outcome in Outcome}
#: The reports that are milestones (``Milestones``): a READ is a delivery too.
_DELIVERY_CODES = (int(Status.DEVICE_ACK), int(Status.READ))
_READ_CODE = int(Status.READ)
_REJECTED = Outcome.REJECTED


def _earlier(kept: int | None, new: int | None) -> int | None:
    """The earlier of two optional times."""
    if kept is None:
        return new
    return kept if new is None or kept <= new else new


def _first_ms(row: Row) -> int:
    """A locked row's first report time: its column, or (never expected) from its reports."""
    first = row[LOCKED_FIRST_MS]
    if first is not None:
        return int(first)
    return min(report_times(row[LOCKED_REPORTS]), default=row[LOCKED_TIMESTAMP_MS])


#: What a batch's reports add to one message: [earliest time, earliest accepted delivery
#: (or read) time or None, earliest accepted read time or None, then each report's
#: fingerprint and arrival number in turn], for :func:`message_rows`.
_News = list[Any]


def history_rows(
    recorded: Sequence[tuple[StatusEvent, Outcome]], arrivals: Sequence[int]
) -> tuple[list[HistoryRow], dict[str, _News]]:
    """The history rows of a batch's new reports, and what they add to each message.

    HOT PATH (a replay runs it for every report): one pass, no call per
    report but the row's ``int(status)``; the reports blob's pairs are kept
    flat so that each message's are packed by one ``struct`` call.
    """
    history: list[HistoryRow] = []
    append = history.append
    news: dict[str, _News] = {}
    get = news.get
    outcome_value, delivery_codes = _OUTCOME_VALUE, _DELIVERY_CODES
    for (event, outcome), arrival in zip(recorded, arrivals, strict=True):
        message_id, code, timestamp_ms = event.message_id, int(event.status), event.timestamp_ms
        mark = timestamp_ms << FINGERPRINT_SHIFT | code  # reconcile.fingerprint, inlined
        local = 0
        if event.origin is not _CLICKATELL:
            local, mark = 1, ~mark
        append(
            (
                arrival,
                message_id,
                code,
                timestamp_ms,
                event.channel,
                event.client_message_id,
                outcome_value[outcome],
                local,
            )
        )
        new = get(message_id)
        if new is None:
            new = news[message_id] = [timestamp_ms, None, None, mark, arrival]
        else:
            if timestamp_ms < new[0]:  # noqa: PLR1730 - a call per report costs more
                new[0] = timestamp_ms
            new += (mark, arrival)
        if code in delivery_codes and outcome is not _REJECTED:
            if new[1] is None or timestamp_ms < new[1]:
                new[1] = timestamp_ms
            if code == _READ_CODE and (new[2] is None or timestamp_ms < new[2]):
                new[2] = timestamp_ms
    return history, news


def message_rows(
    state_rows: Iterable[StateRow],
    loaded: dict[str, Row],
    news: dict[str, _News],
    had_client: set[str],
) -> tuple[list[MessageRow], list[tuple[str | None, int, str]], list[tuple[int, int, int]]]:
    """The message rows to write (milestones and reports blob added), ``learned``, count moves.

    ``state_rows`` are what the batch computed (``_columns.COMPUTED``), ``loaded``
    the rows it locked (``_columns.LOCKED``); the rows made are ``_columns.WRITTEN``.
    """
    rows: list[MessageRow] = []
    learned: list[tuple[str | None, int, str]] = []
    left: list[tuple[int, int]] = []  # the (status, local) keys of ``ds_counts`` rows leave
    joined: list[tuple[int, int]] = []  # ... and join
    old_of, new_of = loaded.get, news.get
    for row in state_rows:
        message_id = row[WRITTEN_MESSAGE_ID]
        old, new = old_of(message_id), new_of(message_id)
        if old is None:
            joined.append((row[WRITTEN_STATUS], row[WRITTEN_LOCAL]))
            first = row[WRITTEN_TIMESTAMP_MS]
            if new is None:
                rows.append((*row, first, None, None, b""))
                continue
            rows.append((*row, min(first, new[0]), new[1], new[2], pack_flat(new, 3)))
            continue
        if old[LOCKED_STATUS] != row[WRITTEN_STATUS] or old[LOCKED_LOCAL] != row[WRITTEN_LOCAL]:
            joined.append((row[WRITTEN_STATUS], row[WRITTEN_LOCAL]))
            left.append((old[LOCKED_STATUS], old[LOCKED_LOCAL]))
        first = _first_ms(old)
        blob = old[LOCKED_REPORTS]
        blob = bytes(blob) if blob else b""
        delivered, read = old[LOCKED_DELIVERED_MS], old[LOCKED_READ_MS]
        new_first = first
        if new is not None:
            if new[0] < first:
                new_first = new[0]
            blob += pack_flat(new, 3)
            delivered, read = _earlier(delivered, new[1]), _earlier(read, new[2])
        client = row[WRITTEN_CLIENT_MESSAGE_ID]
        if new_first != first or (client is not None and message_id not in had_client):
            learned.append((client, new_first, message_id))
        rows.append((*row, new_first, delivered, read, blob))
    return rows, learned, count_moves(left, joined)


def grouped_insert(statement: str, group: int) -> str:
    """An INSERT of one row (``... VALUES (?, ...)``) as an INSERT of ``group`` rows."""
    head, row = statement.split(" VALUES ")
    return f"{head} VALUES {', '.join([row] * group)}"


def append_rows(
    cursor: Any, one: str, grouped: str, group: int, rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` in order: ``group`` a statement (``grouped``), the rest one a statement."""
    whole = len(rows) - len(rows) % group
    if whole:
        flat = list(itertools.chain.from_iterable(rows[:whole]))
        width = len(rows[0]) * group
        cursor.executemany(grouped, [flat[i : i + width] for i in range(0, len(flat), width)])
    if whole < len(rows):
        cursor.executemany(one, rows[whole:])
