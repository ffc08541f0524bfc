"""Archive lines read back: a pruned message, its state and every report, as one JSON line.

Theory of operation
-------------------
Retention (``Tracker.prune``) writes each message it removes as one line
(``tracking._wire.archive_line``; this module reads it)::

    {"deliverystate": "archive", "version": 1, "message_id": "...",
     "state": {"status": "READ", "status_code": 6, "timestamp": "...Z",
               "timestamp_ms": ..., "channel": "whatsapp", "client_message_id": ...,
               "origin": "clickatell", "deadline_ms": ...},
     "history": [{"status": "QUEUED", "status_code": 2, "timestamp": "...Z",
                  "timestamp_ms": ..., "channel": ..., "client_message_id": ...,
                  "origin": "local", "outcome": "applied", "arrival": 17}, ...]}

with the history in arrival order.  ``origin`` says whose report it was (a
registration and a sweep's expiry are ``local``); ``deadline_ms`` is the
message's deadline (null when it was never registered), restored by
registering the message's first local QUEUED again with it.

``deliverystate replay`` reads such lines beside callbacks (only there: the
receiver refuses them, they are not
Clickatell's) and applies the reports in that order, which rebuilds the
message: the same state and the same history (outcomes included; arrival
numbers are the store's own and are new).  The one thing replay cannot
rebuild is a strict ``advance`` that the precedence rules would not have
made; its report is reconciled like any other.

Restoring is not news: a message the store no longer held comes back with
no change in the change feed (``Store.restore_many``), so a consumer that
read its changes before the prune is not sent them again.  In a replay
batch the archive lines are applied before the callbacks beside them, so a
callback that moves a restored message on is one change, from its restored
status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidCallback
from ..rules._catalog import Origin, Status
from ..rules._events import StatusEvent

__all__ = ["ARCHIVE_KEY", "ARCHIVE_VERSION", "archived_events", "is_archive"]

#: The key that marks an archive line, with the value ``"archive"``.
ARCHIVE_KEY = "deliverystate"
#: The version of the line this module reads and ``tracking._wire.archive_line`` writes.
ARCHIVE_VERSION = 1


def _learned(message_id: str, state: object, events: list[StatusEvent]) -> list[StatusEvent]:
    """The state's own report again, when it knows a channel or client id no report carries.

    History keeps a duplicate report once, so a channel (or client message id)
    that a message learned from a repeat of a report is on its state but in
    no history entry.  Replaying the state's winning report with them is a
    duplicate, as the repeat was: it adds no history and teaches the state
    what it knew (found by the store contract's prune-and-restore property).
    """
    if not isinstance(state, Mapping):
        return []
    channel, client = state.get("channel"), state.get("client_message_id")
    known = {(e.channel, e.client_message_id) for e in events}
    if (channel is None or channel in {c for c, _ in known}) and (
        client is None or client in {k for _, k in known}
    ):
        return []
    try:
        return [
            StatusEvent.from_ms(
                message_id,
                state["status_code"],
                state["timestamp_ms"],
                channel,
                client,
                Origin(state.get("origin", Origin.CLICKATELL.value)),
            )
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidCallback("state", f"not a state ({error})", state) from None


def is_archive(body: Mapping[str, Any]) -> bool:
    """Whether a decoded body is an archive line."""
    return body.get(ARCHIVE_KEY) == "archive"


def archived_events(
    body: Mapping[str, Any],
) -> tuple[tuple[StatusEvent, ...], tuple[tuple[StatusEvent, int], ...]]:
    """The reports of an archive line, in the order they arrived, and its registration.

    The registration (the first local QUEUED with the message's deadline) is
    empty for a message that had no deadline.
    """
    if body.get("version") != ARCHIVE_VERSION:
        raise InvalidCallback("version", f"archive version {body.get('version')!r} is not 1")
    message_id = body.get("message_id")
    history = body.get("history")
    if not isinstance(message_id, str) or not isinstance(history, list):
        raise InvalidCallback("history", "an archive line needs message_id and a history list")
    events = []
    for index, entry in enumerate(history):
        if not isinstance(entry, Mapping):
            raise InvalidCallback(f"history[{index}]", "expected an object", entry)
        try:
            events.append(
                StatusEvent.from_ms(
                    message_id,
                    entry["status_code"],
                    entry["timestamp_ms"],
                    entry.get("channel"),
                    entry.get("client_message_id"),
                    Origin(entry.get("origin", Origin.CLICKATELL.value)),
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidCallback(f"history[{index}]", f"not a report ({error})", entry) from None
    state = body.get("state")
    events.extend(_learned(message_id, state, events))
    deadline = state.get("deadline_ms") if isinstance(state, Mapping) else None
    if deadline is None:
        return tuple(events), ()
    if isinstance(deadline, bool) or not isinstance(deadline, int):
        raise InvalidCallback("state.deadline_ms", "a deadline is integer milliseconds", deadline)
    registered = next(
        (e for e in events if e.origin is Origin.LOCAL and e.status is Status.QUEUED), None
    )
    if registered is None:
        raise InvalidCallback("history", "a deadline without the registration that set it")
    return tuple(events), ((registered, deadline),)
