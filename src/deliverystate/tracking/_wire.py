"""The JSON shapes programs read: a message's state, a listed message, a change of the feed.

The command line, the web receiver and the forwarder all print or send the
same shapes; they take them from here, so that a message's JSON cannot differ
between them.  Times are spelt by ``rules._time.iso``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..rules._events import Change, MessageState
from ..rules._records import HistoryEntry, Listed
from ..rules._time import iso

__all__ = [
    "change_json",
    "listed_json",
    "state_json",
]


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
