"""How states are shown to people and programs: times, JSON shapes, the colour of each kind.

The command line, the web receiver and the diagrams all show the same things;
they take them from here, so that a message's JSON, its times and its colours
cannot differ between them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ._catalog import Kind
from ._events import Change, MessageState, datetime_from_ms
from .stores import HistoryEntry, Listed

__all__ = [
    "PALETTE",
    "Colours",
    "change_json",
    "duration",
    "iso",
    "listed_json",
    "state_json",
    "table_time",
]


@attrs.frozen
class Colours:
    """The colours a kind of status is drawn in: background, border (and bar), text."""

    fill: str
    stroke: str
    text: str


#: One legend everywhere: red for failures, green for deliveries, blue for the rest.
PALETTE: Mapping[Kind, Colours] = {
    Kind.FAILURE: Colours("#fde2e1", "#b42318", "#7a271a"),
    Kind.DELIVERED: Colours("#dcfae6", "#067647", "#074d31"),
    Kind.PROGRESS: Colours("#eff4ff", "#3538cd", "#2d31a6"),
}


def duration(seconds: float) -> str:
    """A duration as people read it: seconds up to two minutes, minutes up to two hours, hours."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def iso(timestamp_ms: int) -> str:
    """ISO 8601 in UTC with milliseconds (the resolution of Clickatell's timestamps), ``Z``."""
    return datetime_from_ms(timestamp_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def table_time(timestamp_ms: int) -> str:
    """A compact UTC time for tables: ``2026-01-01 00:00:05.250``."""
    return datetime_from_ms(timestamp_ms).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def state_json(state: MessageState, timeline: Iterable[HistoryEntry]) -> dict[str, Any]:
    """A message's state and timeline as JSON: names, codes, outcomes, ISO 8601 times."""
    return {
        "message_id": state.message_id,
        "status": state.status.name,
        "status_code": int(state.status),
        "description": state.status.description,
        "timestamp": iso(state.timestamp_ms),
        "channel": state.channel,
        "client_message_id": state.client_message_id,
        "origin": state.origin.value,
        "deadline": None if state.deadline_ms is None else iso(state.deadline_ms),
        "terminal": state.status.is_terminal,
        "delivered": state.status.is_delivered,
        "failed": state.status.is_failure,
        "timeline": [
            {
                "status": entry.event.status.name,
                "status_code": int(entry.event.status),
                "timestamp": iso(entry.event.timestamp_ms),
                "outcome": entry.outcome.value,
                "channel": entry.event.channel,
                "client_message_id": entry.event.client_message_id,
                "origin": entry.event.origin.value,
                "arrival": entry.arrival,
            }
            for entry in timeline
        ],
    }


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
    return {
        "seq": change.seq,
        "message_id": change.message_id,
        "status": change.status.name,
        "status_code": int(change.status),
        "previous": None if previous is None else previous.name,
        "previous_code": None if previous is None else int(previous),
        "timestamp": iso(change.timestamp_ms),
        "channel": change.channel,
        "client_message_id": change.client_message_id,
        "origin": change.origin.value,
        "description": change.status.description,
        "final": change.is_final,
        "delivered": change.status.is_delivered,
        "failed": change.status.is_failure,
    }
