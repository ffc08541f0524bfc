"""Parsing Clickatell status callbacks into :class:`StatusEvent` records.

Theory of operation
-------------------
Clickatell posts status callbacks in three shapes, recognised by their fields:

1. **One API** (SMS and WhatsApp): ``{"integrationId", "integrationName",
   "event": {"messageStatusUpdate": [{channel, timestamp, statusCode, status,
   messageId, clientMessageId}, ...]}}``.  The array is iterated (Clickatell
   may batch); unknown extra fields are ignored; ``channel`` is trimmed and
   lower-cased.
2. **Platform SMS** (flat): ``messageId, statusCode, status, timestamp, ...``
   as a JSON body or as GET query parameters, every value a string.
3. **Legacy HTTP**: ``apiMsgId, cliMsgId, timestamp`` (epoch *seconds*) and a
   three-digit ``status`` mapped onto One API codes by ``LEGACY_STATUS``.

Nothing is guessed.  A ``statusCode`` and a ``status`` that disagree, a code
outside the catalog, a missing message id, a timestamp that is not a whole
number of milliseconds in range, a code that cannot occur on the event's
channel, or a body in none of the shapes raises :class:`InvalidCallback`,
which names the field.  A payload with one bad update in a batch is refused
whole, so that replaying it from the dead letter later is all-or-nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .catalog import CHANNELS, Status, UnknownStatusCode
from .events import StatusEvent
from .policy import MAX_TIMESTAMP_MS

__all__ = [
    "LEGACY_STATUS",
    "InvalidCallback",
    "parse_callback",
]

#: Legacy HTTP API status ("001".."014") -> One API status.  013 ("cancelled by
#: Clickatell") has no agreed One API equivalent and is refused, not guessed.
LEGACY_STATUS: Mapping[int, Status] = {
    1: Status.UNKNOWN,
    2: Status.QUEUED,
    3: Status.SENT_TO_SUPPLIER,
    4: Status.DEVICE_ACK,
    5: Status.DELIVERY_FAILURE,
    6: Status.STOPPED_BY_USER,
    7: Status.DELIVERY_FAILURE,
    8: Status.QUEUED,
    9: Status.ROUTING_ERROR,
    10: Status.EXPIRED,
    11: Status.SCHEDULED,
    12: Status.INSUFFICIENT_ACCOUNT_BALANCE,
    14: Status.VOLUME_LIMIT,
}


class InvalidCallback(ValueError):
    """A callback payload that cannot be turned into status events.

    ``field`` names the offending field (a dotted path into the body, or
    ``"body"`` when the body as a whole is unusable) and ``reason`` says what
    is wrong with it; ``value`` is the offending value when there is one.
    """

    def __init__(self, field: str, reason: str, value: object = None) -> None:
        super().__init__(f"invalid callback: {field}: {reason}")
        self.field = field
        self.reason = reason
        self.value = value


_CHANNEL = {channel: channel for channel in CHANNELS}
_ONE_API = "One API"
_FLAT = "Platform SMS"
_LEGACY = "legacy HTTP"


def _decode(payload: object) -> Mapping[str, Any]:
    """Turn bytes, str or a mapping into a mapping of field -> value."""
    if isinstance(payload, bytes | bytearray | memoryview):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidCallback(
                "body", f"not UTF-8 ({error.reason} at byte {error.start})"
            ) from None
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError) as error:
            raise InvalidCallback("body", f"not JSON ({error})") from None
    if not isinstance(payload, Mapping):
        raise InvalidCallback(
            "body", f"expected a JSON object or query parameters, got {type(payload).__name__}"
        )
    return payload


def _single(fields: Mapping[str, Any], name: str, path: str) -> Any:
    """A field's value; query parameters may arrive as one-element lists."""
    value = fields.get(name)
    if isinstance(value, list | tuple):
        if len(value) != 1:
            raise InvalidCallback(path, f"expected one value, got {len(value)}", value)
        value = value[0]
    return value


def _text(fields: Mapping[str, Any], name: str, path: str, *, required: bool) -> str | None:
    value = _single(fields, name, path)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidCallback(path, "missing", value)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidCallback(path, f"expected a string, got {type(value).__name__}", value)
    return str(value).strip()


def _integer(value: Any, path: str, what: str) -> int:
    """A whole number from an int, an integral float, or a string of digits."""
    if isinstance(value, bool):
        raise InvalidCallback(path, f"expected {what}, got a boolean", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 20:
            return int(text)
    raise InvalidCallback(path, f"expected {what}, got {value!r}", value)


def _timestamp_ms(fields: Mapping[str, Any], path: str, *, seconds: bool) -> int:
    value = _single(fields, "timestamp", path)
    if value is None:
        raise InvalidCallback(path, "missing", value)
    unit = "epoch seconds" if seconds else "milliseconds since the epoch"
    number = _integer(value, path, f"a whole number of {unit}")
    millis = number * 1000 if seconds else number
    if not 0 <= millis <= MAX_TIMESTAMP_MS:
        raise InvalidCallback(path, f"{number} is not a plausible time in {unit}", value)
    return millis


def _status(fields: Mapping[str, Any], prefix: str) -> Status:
    """The status named by ``statusCode`` and/or ``status``, which must agree."""
    code_value = _single(fields, "statusCode", prefix + "statusCode")
    name_value = _single(fields, "status", prefix + "status")
    by_code = by_name = None
    if code_value is not None:
        code = _integer(code_value, prefix + "statusCode", "a numeric status code")
        try:
            by_code = Status.from_code(code)
        except UnknownStatusCode:
            raise InvalidCallback(
                prefix + "statusCode", f"unknown status code {code}", code_value
            ) from None
    if name_value is not None:
        if not isinstance(name_value, str):
            raise InvalidCallback(prefix + "status", "expected a status name", name_value)
        try:
            by_name = Status.from_name(name_value.strip().upper())
        except UnknownStatusCode:
            raise InvalidCallback(
                prefix + "status", f"unknown status {name_value!r}", name_value
            ) from None
    if by_code is None and by_name is None:
        raise InvalidCallback(prefix + "statusCode", "missing (and no status name either)")
    if by_code is not None and by_name is not None and by_code is not by_name:
        raise InvalidCallback(
            prefix + "statusCode",
            f"statusCode {int(by_code)} is {by_code.name} but status says {by_name.name}",
            code_value,
        )
    result = by_code if by_code is not None else by_name
    assert result is not None
    return result


def _event(
    message_id: str,
    status: Status,
    timestamp_ms: int,
    channel: str | None,
    client_message_id: str | None,
    prefix: str,
) -> StatusEvent:
    if not status.allowed_on(channel):
        raise InvalidCallback(
            prefix + "statusCode",
            f"{status.name} cannot occur on channel {channel!r}",
            int(status),
        )
    return StatusEvent.from_ms(message_id, status, timestamp_ms, channel, client_message_id)


def _one_api(body: Mapping[str, Any]) -> list[StatusEvent]:
    event = body.get("event")
    if not isinstance(event, Mapping):
        raise InvalidCallback("event", "expected an object holding messageStatusUpdate", event)
    updates = event.get("messageStatusUpdate")
    if not isinstance(updates, list) or not updates:
        raise InvalidCallback(
            "event.messageStatusUpdate", "expected a non-empty array of status updates", updates
        )
    events = []
    for index, update in enumerate(updates):
        prefix = f"event.messageStatusUpdate[{index}]."
        if not isinstance(update, Mapping):
            raise InvalidCallback(prefix.rstrip("."), "expected an object", update)
        channel = _text(update, "channel", prefix + "channel", required=False)
        if channel is not None:
            # the catalog's own string, so millions of states share one object
            channel = _CHANNEL.get(channel.lower(), channel.lower())
            if channel not in CHANNELS:
                raise InvalidCallback(
                    prefix + "channel", f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}"
                )
        message_id = _text(update, "messageId", prefix + "messageId", required=True)
        assert message_id is not None
        events.append(
            _event(
                message_id,
                _status(update, prefix),
                _timestamp_ms(update, prefix + "timestamp", seconds=False),
                channel,
                _text(update, "clientMessageId", prefix + "clientMessageId", required=False),
                prefix,
            )
        )
    return events


def _flat(body: Mapping[str, Any]) -> list[StatusEvent]:
    message_id = _text(body, "messageId", "messageId", required=True)
    assert message_id is not None
    return [
        _event(
            message_id,
            _status(body, ""),
            _timestamp_ms(body, "timestamp", seconds=False),
            "sms",
            _text(body, "clientMessageId", "clientMessageId", required=False),
            "",
        )
    ]


def _legacy(body: Mapping[str, Any]) -> list[StatusEvent]:
    message_id = _text(body, "apiMsgId", "apiMsgId", required=True)
    assert message_id is not None
    raw = _single(body, "status", "status")
    if raw is None:
        raise InvalidCallback("status", "missing")
    code = _integer(raw, "status", 'a legacy status such as "004"')
    if code not in LEGACY_STATUS:
        raise InvalidCallback("status", f"legacy status {raw!r} has no One API equivalent", raw)
    status = LEGACY_STATUS[code]
    return [
        StatusEvent.from_ms(
            message_id,
            status,
            _timestamp_ms(body, "timestamp", seconds=True),
            "sms",
            _text(body, "cliMsgId", "cliMsgId", required=False),
        )
    ]


def _shape(body: Mapping[str, Any]) -> str:
    if "event" in body:
        return _ONE_API
    if "apiMsgId" in body or "api_id" in body:
        return _LEGACY
    if "messageId" in body or "statusCode" in body:
        return _FLAT
    raise InvalidCallback(
        "body",
        "not a Clickatell callback: expected a One API body (event.messageStatusUpdate), "
        "a Platform SMS body (messageId, statusCode) or a legacy HTTP one (apiMsgId, status)",
    )


_PARSERS = {_ONE_API: _one_api, _FLAT: _flat, _LEGACY: _legacy}


def parse_callback(payload: bytes | str | Mapping[str, Any]) -> list[StatusEvent]:
    """Parse one callback body (or query parameters) into status events.

    Raises :class:`InvalidCallback`, naming the field, for anything that is not
    a well-formed Clickatell status callback.  Returns at least one event.
    """
    body = _decode(payload)
    if not all(isinstance(key, str) for key in body):
        raise InvalidCallback("body", "field names must be strings")
    return _PARSERS[_shape(body)](body)
