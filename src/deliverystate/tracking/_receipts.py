"""What the tracker's intake returns: receipts and reports, and a body kept as text.

``Tracker.receive`` answers with a :class:`Receipt`, ``ingest_many`` with an
:class:`IngestReport`, ``retry_dead_letters`` with a :class:`RetryReport`;
:func:`payload_text` is how any body a caller hands over becomes the text the
dead letter keeps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from ..callbacks._parse import CallbackFormat
from ..errors import InvalidCallback
from ..rules._events import StatusEvent
from ..rules._reconcile import Decision
from ..rules._records import DeadLetter, Summary, length_of

__all__ = [
    "IngestReport",
    "Payload",
    "Receipt",
    "Received",
    "RetryReport",
    "payload_text",
]

#: A callback body as a caller may hand it over.
Payload = bytes | str | Mapping[str, Any]


@attrs.frozen
class Receipt:
    """What receiving one body did: it was applied, or kept in the dead letter.

    ``summary`` is the outcome of applying the body's status updates, in the
    commit that answered it.  It is None when the store refused the body on
    its own (a row its database will not hold): ``dead_letter`` is then the
    dead letter it was kept in, in that same commit, and ``error`` says why,
    so that one body cannot hold up the bodies that arrive with it.
    ``ignored_kinds`` names the events of the body that are not status updates
    (an inbound ``moText``, an event type Clickatell added later) and
    ``ignored`` counts them, as ``IngestReport.ignored`` does; a body holding
    nothing else is answered without a write.  ``format`` is the shape the
    body was read as (None for a receipt that was not made from a parsed
    body), for the receiver's metrics.
    """

    events: tuple[StatusEvent, ...]
    summary: Summary | None
    error: str | None = None
    ignored_kinds: tuple[str, ...] = ()
    dead_letter: DeadLetter | None = None
    format: CallbackFormat | None = None
    ignored: int = attrs.field(init=False, default=length_of("ignored_kinds"))


#: What one body of :meth:`Tracker.receive_many` came to: a receipt, the
#: ``InvalidCallback`` of a body that is in the dead letter, or the store's error
#: for a body that could not be kept (the caller must not acknowledge it).
Received = Receipt | Exception


@attrs.frozen
class IngestReport:
    """What a batch of payloads did: outcome counts, and the payloads that could not be parsed.

    ``errors`` pairs each unparseable payload's index in the batch with its error;
    those payloads are in the dead letter.  ``ignored`` counts the events that are
    not status updates (inbound messages, newer event types).
    """

    summary: Summary
    errors: tuple[tuple[int, InvalidCallback], ...]
    ignored: int = 0


@attrs.frozen
class RetryReport:
    """What re-applying the dead letter did: letters now applied, letters still invalid.

    ``applied_letters`` and ``invalid_letters`` are the letters themselves,
    ``applied`` and ``still_invalid`` how many there are of each.
    """

    applied_letters: tuple[DeadLetter, ...]
    invalid_letters: tuple[DeadLetter, ...]
    decisions: tuple[Decision, ...]
    applied: int = attrs.field(init=False, default=length_of("applied_letters"))
    still_invalid: int = attrs.field(init=False, default=length_of("invalid_letters"))


def payload_text(payload: bytes | str | Mapping[str, Any]) -> str:
    """A payload as text for the dead letter: bytes decoded, mappings as JSON.

    Never fails: whatever a caller hands over must reach the dead letter.
    """
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload).decode("utf-8", errors="backslashreplace")
    if isinstance(payload, str):
        return payload
    try:
        return json.dumps(payload, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        pass
    try:
        return json.dumps(_printable(payload, 0), default=repr)
    except (TypeError, ValueError, RecursionError):
        return f"<unprintable {type(payload).__name__}>"


def _printable(value: Any, depth: int) -> Any:
    """``value`` with what JSON cannot write replaced by a description of it."""
    if depth > 50:
        return "<nested too deep>"
    if isinstance(value, Mapping):
        return {str(key): _printable(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(item, depth + 1) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10_000:
        return f"<an integer of {value.bit_length()} bits>"
    return value
