"""The callback parser's fast path: clean bodies read straight into events.

Theory of operation
-------------------
Most bodies are clean: ids of printable ASCII, a known channel, a code and name the
parser has met before, an integer (or digit string) timestamp in range.  For those, the
functions below build the events directly; for anything else they answer None and the
full parser (``_parse``) reads the body, so every refusal and its words come from
one place.  ``tests/test_callbacks.py`` holds the two paths to the same results on random
bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..rules._catalog import CHANNELS, Status
from ..rules._events import MAX_ID_LENGTH, StatusEvent
from ..rules._time import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS
from ._fields import flat_status, legacy_status, one_api_status
from ._results import ParsedCallback

__all__ = ["CHANNEL_NAMES", "STATUS_UPDATE", "fast_flat", "fast_legacy", "fast_one_api"]

#: The channels by name, so that a body's channel string is replaced by the one shared copy.
CHANNEL_NAMES = {channel: channel for channel in CHANNELS}
#: The One API event that carries status updates.
STATUS_UPDATE = "messageStatusUpdate"
_SCALAR = (int, str, type(None))
_StatusReader = Callable[[Any, Any], Status]
_remembered: dict[tuple[_StatusReader, Any, Any], Status] = {}


def _status(read: _StatusReader, code: Any, name: Any) -> Status | None:
    """``read(code, name)`` remembered, for scalar values; None where it refuses."""
    if code.__class__ not in _SCALAR or name.__class__ not in _SCALAR:
        return None  # a list, a float, a bool: the full parser reads it
    key = (read, code, name)  # exact classes only, so True and 1.0 never meet 1
    status = _remembered.get(key)
    if status is None:
        try:
            status = read(code, name)
        except Exception:  # the full parser raises it again, with the field's path
            return None
        if len(_remembered) < 4096:  # the readers are pure: remembering them is exact
            _remembered[key] = status
    return status


def _one_api_reading(code: Any, name: Any) -> Status:
    return one_api_status({"statusCode": code, "status": name}, "")


def _flat_reading(code: Any, name: Any) -> Status:
    return flat_status({"statusCode": code, "status": name})


def _legacy_reading(raw: Any, _: Any) -> Status:
    return legacy_status(raw)


def _clean_id(value: Any) -> bool:
    """Whether ``value`` is an id that every check would pass unchanged (printable ASCII)."""
    return (
        value.__class__ is str
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isascii()
        and value.isprintable()
        and value[0] != " "
        and value[-1] != " "
    )


def _clean_ms(value: Any, scale: int) -> int | None:
    """A plausible timestamp in milliseconds from an int or a string of digits, or None."""
    if value.__class__ is str and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    elif value.__class__ is not int:
        return None
    value *= scale
    return value if MIN_TIMESTAMP_MS <= value <= MAX_TIMESTAMP_MS else None


def _clean_event(
    message_id: Any, status: Status | None, timestamp: Any, scale: int, channel: Any, client: Any
) -> StatusEvent | None:
    if (
        status is None
        or not status.allowed_on(channel)
        or not _clean_id(message_id)
        or (client is not None and not _clean_id(client))
    ):
        return None
    timestamp_ms = _clean_ms(timestamp, scale)
    if timestamp_ms is None:
        return None
    return StatusEvent._checked(message_id, status, timestamp_ms, channel, client)


def fast_one_api(body: dict[str, Any]) -> ParsedCallback | None:
    event = body["event"]
    if event.__class__ is not dict or len(event) != 1:
        return None
    updates = event.get(STATUS_UPDATE)
    if updates.__class__ is not list or not updates:
        return None
    events = []
    for update in updates:
        if update.__class__ is not dict:
            return None
        channel = update.get("channel")
        if channel is not None:
            if channel.__class__ is not str:
                return None
            # trimmed and lower-cased as the full parser does (" WhatsApp " is "whatsapp")
            channel = CHANNEL_NAMES.get(channel) or CHANNEL_NAMES.get(channel.strip().lower())
            if channel is None:
                return None
        get = update.get
        made = _clean_event(
            get("messageId"),
            _status(_one_api_reading, get("statusCode"), get("status")),
            get("timestamp"),
            1,
            channel,
            get("clientMessageId"),
        )
        if made is None:
            return None
        events.append(made)
    return ParsedCallback(tuple(events), format="one_api")


def fast_flat(body: dict[str, Any]) -> ParsedCallback | None:
    get = body.get
    status = _status(_flat_reading, get("statusCode"), get("status"))
    made = _clean_event(
        get("messageId"), status, get("timestamp"), 1, "sms", get("clientMessageId")
    )
    return None if made is None else ParsedCallback((made,), format="platform")


def fast_legacy(body: dict[str, Any]) -> ParsedCallback | None:
    get = body.get
    status = _status(_legacy_reading, get("status"), None)
    made = _clean_event(get("apiMsgId"), status, get("timestamp"), 1000, "sms", get("cliMsgId"))
    return None if made is None else ParsedCallback((made,), format="legacy")
