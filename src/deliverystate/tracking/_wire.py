"""The JSON shapes programs read: states, changes, archive lines, dead letters, summaries.

The command line, the web receiver, the forwarder and retention all print,
send or write these shapes; they take them from here, so that a message's
JSON cannot differ between them.  A timeline entry, an archive line's state
and history entries, a message's state and a change all carry a report: its
status by name and code, its time, channel, client message id and origin.
:func:`report_json` writes those fields once, and each shape adds its own.

Each shape keeps the order its keys have always been printed in (a program
may compare lines, a person reads them): the ``_*_KEYS`` tuples say it, and
:func:`_in_order` lays the fields out by them.  Every time is spelt by
``rules._time`` (ISO 8601, UTC, milliseconds, ``Z``), whatever the command.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from ..callbacks._archive import ARCHIVE_KEY, ARCHIVE_VERSION
from ..rules._catalog import Origin, Status
from ..rules._events import Change, MessageState, StatusEvent
from ..rules._records import DeadLetter, HistoryEntry, Listed, Summary
from ..rules._time import iso, iso_datetime
from ._receipts import RetryReport

__all__ = [
    "archive_line",
    "change_json",
    "dead_letter_json",
    "listed_json",
    "receipt_json",
    "register_json",
    "report_json",
    "retry_json",
    "state_json",
    "summary_json",
    "sweep_json",
]

_STATE_KEYS = (
    "message_id",
    "status",
    "status_code",
    "description",
    "timestamp",
    "channel",
    "client_message_id",
    "origin",
    "deadline",
    "terminal",
    "delivered",
    "failed",
    "timeline",
)
_TIMELINE_KEYS = (
    "status",
    "status_code",
    "timestamp",
    "outcome",
    "channel",
    "client_message_id",
    "origin",
    "arrival",
)
_CHANGE_KEYS = (
    "seq",
    "message_id",
    "status",
    "status_code",
    "previous",
    "previous_code",
    "timestamp",
    "channel",
    "client_message_id",
    "origin",
    "description",
    "final",
    "delivered",
    "failed",
)
#: An archive line's report fields, in its state and its history entries alike: the time in
#: milliseconds too (replay reads those, ``callbacks._archive``).
_ARCHIVED_KEYS = (
    "status",
    "status_code",
    "timestamp",
    "timestamp_ms",
    "channel",
    "client_message_id",
    "origin",
)
_ARCHIVE_STATE_KEYS = (*_ARCHIVED_KEYS, "deadline_ms")
_ARCHIVE_ENTRY_KEYS = (*_ARCHIVED_KEYS, "outcome", "arrival")


class _Report(Protocol):
    """What a report, a state and a change have in common: what :func:`report_json` writes."""

    @property
    def status(self) -> Status: ...

    @property
    def timestamp_ms(self) -> int: ...

    @property
    def channel(self) -> str | None: ...

    @property
    def client_message_id(self) -> str | None: ...

    @property
    def origin(self) -> Origin: ...


def _in_order(keys: tuple[str, ...], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` laid out in the order of ``keys``; a field ``keys`` does not name is left out."""
    return {key: fields[key] for key in keys}


def report_json(report: _Report) -> dict[str, Any]:
    """The fields every shape has for a report: status by name and code, time, channel, ids."""
    return {
        "status": report.status.name,
        "status_code": int(report.status),
        "timestamp": iso(report.timestamp_ms),
        "channel": report.channel,
        "client_message_id": report.client_message_id,
        "origin": report.origin.value,
    }


def _verdict(status: Status) -> dict[str, Any]:
    """What a status means, as a state and a change both say it."""
    return {
        "description": status.description,
        "delivered": status.is_delivered,
        "failed": status.is_failure,
    }


def _entry(event: StatusEvent, outcome: str, arrival: int, keys: tuple[str, ...]) -> dict[str, Any]:
    """A report as received (a timeline's or an archive's entry): what it did, when it came."""
    extra = {"timestamp_ms": event.timestamp_ms, "outcome": outcome, "arrival": arrival}
    return _in_order(keys, report_json(event) | extra)


def state_json(state: MessageState, timeline: Iterable[HistoryEntry]) -> dict[str, Any]:
    """A message's state and timeline as JSON: names, codes, outcomes, ISO 8601 times."""
    deadline = None if state.deadline_ms is None else iso(state.deadline_ms)
    entries = [
        _entry(entry.event, entry.outcome.value, entry.arrival, _TIMELINE_KEYS)
        for entry in timeline
    ]
    own = {"message_id": state.message_id, "deadline": deadline, "timeline": entries}
    terminal = {"terminal": state.status.is_terminal}
    return _in_order(_STATE_KEYS, report_json(state) | _verdict(state.status) | own | terminal)


def listed_json(listed: Listed, timeline: Iterable[HistoryEntry] | None = None) -> dict[str, Any]:
    """A listed message as JSON: its state (with its timeline when given) and first report."""
    data = state_json(listed.state, timeline or ())
    if timeline is None:
        del data["timeline"]
    return {"first_report": iso(listed.first_ms), **data}


def change_json(change: Change) -> dict[str, Any]:
    """A change of the feed as JSON: ``seq``, the message, both statuses by name and code.

    The shape ``deliverystate changes --json`` prints and the forwarder sends
    as a webhook's ``data``.
    """
    previous = change.previous
    own = {
        "seq": change.seq,
        "message_id": change.message_id,
        "previous": None if previous is None else previous.name,
        "previous_code": None if previous is None else int(previous),
        "final": change.is_final,
    }
    return _in_order(_CHANGE_KEYS, report_json(change) | _verdict(change.status) | own)


def archive_line(state: MessageState, history: Iterable[tuple[StatusEvent, str, int]]) -> str:
    """One archive line (``callbacks._archive`` reads it): ``state`` and its history.

    ``history`` is ``(event, outcome, arrival)`` in arrival order.
    """
    own = {"timestamp_ms": state.timestamp_ms, "deadline_ms": state.deadline_ms}
    return json.dumps(
        {
            ARCHIVE_KEY: "archive",
            "version": ARCHIVE_VERSION,
            "message_id": state.message_id,
            "state": _in_order(_ARCHIVE_STATE_KEYS, report_json(state) | own),
            "history": [_entry(*entry, _ARCHIVE_ENTRY_KEYS) for entry in history],
        },
        ensure_ascii=False,
    )


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter: its id, when it came (to the millisecond), its error and its payload."""
    return {
        "id": letter.id,
        "received_at": iso_datetime(letter.received_at),
        "error": letter.error,
        "payload": letter.payload,
    }


def summary_json(summary: Summary) -> dict[str, int]:
    """A batch's events counted by outcome: applied, stale, duplicate, rejected."""
    return {
        "applied": summary.applied,
        "stale": summary.stale,
        "duplicate": summary.duplicate,
        "rejected": summary.rejected,
    }


def receipt_json(summary: Summary, ignored: int) -> dict[str, Any]:
    """The receiver's answer to a callback it took: its events by outcome, and those ignored."""
    status = "applied" if summary.total or not ignored else "ignored"
    counts = summary_json(summary)
    return {"status": status, "events": summary.total} | counts | {"ignored": ignored}


def register_json(db: str, total: Summary, errors: Sequence[tuple[int, str]]) -> dict[str, Any]:
    """What ``register`` did in the store ``db``: sends by outcome, lines it could not read."""
    rejections = [{"message_id": d.event.message_id, "reason": d.reason} for d in total.rejections]
    return (
        {"db": db, "registered": total.total}
        | summary_json(total)
        | {"rejections": rejections, "invalid": len(errors)}
        | {"errors": [{"line": number, "error": error} for number, error in errors]}
    )


def sweep_json(db: str, now: datetime, summary: Summary) -> dict[str, Any]:
    """What ``sweep`` did in the store named ``db`` as of ``now``: messages it expired."""
    return {"db": db, "now": iso_datetime(now), "expired": summary.applied} | {
        "stale": summary.stale,
        "duplicate": summary.duplicate,
    }


def retry_json(report: RetryReport) -> dict[str, int]:
    """What retrying the dead letter did: letters applied, their events, letters still invalid."""
    return {
        "applied": report.applied,
        "events": len(report.decisions),
        "still_invalid": report.still_invalid,
    }
