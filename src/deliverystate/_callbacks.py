"""Parsing Clickatell status callbacks into :class:`StatusEvent` records.

Theory of operation
-------------------
Clickatell posts status callbacks in three shapes, recognised by their fields:

1. **One API** (SMS and WhatsApp): ``{"integrationId", "integrationName",
   "event": {"messageStatusUpdate": [{channel, timestamp, statusCode, status,
   messageId, clientMessageId}, ...]}}``.  The array is iterated (Clickatell
   may batch); unknown extra fields are ignored; ``channel`` is trimmed and
   lower-cased.  The ``event`` object may hold other event types (an inbound
   ``moText`` posted to the same URL, types Clickatell adds later): they are
   *ignored*, never refused, because Clickatell retries every answer that is
   not a 2xx.  Timestamps are milliseconds.
2. **Platform** (flat): ``integrationName, messageId, requestId,
   clientMessageId, to, from, statusCode, status, statusDescription,
   timestamp`` as a JSON body or as query parameters, values possibly strings.
   Its ``statusCode`` uses the *Platform numbering*, the legacy HTTP API's
   1..14 (3 delivered to gateway, 4 received by recipient, 5 error with
   message, ...), and is mapped through :data:`LEGACY_STATUS` like a legacy
   status.  Its ``status`` names are Platform names (``PLATFORM_NAMES``);
   a One API name in a flat body (``"statusCode": 4, "status":
   "SENT_TO_SUPPLIER"``) says by itself that the One API numbering is meant,
   and is read that way.  A name that contradicts its code is refused.
   A flat body without a status but with ``text`` is an inbound reply, ignored.
3. **Legacy HTTP**: ``apiMsgId, cliMsgId, timestamp`` (epoch *seconds*) and a
   three-digit ``status`` mapped by :data:`LEGACY_STATUS`.  A legacy inbound
   message (``moMsgId`` and ``text``, no status) is ignored.

Nothing is guessed.  A ``statusCode`` and a ``status`` that disagree, a code
outside the catalog, a missing message id, an id no store could keep (see
``events.id_problem``), a timestamp that is not a whole number in range or
that reads as before 2000 (a seconds value where milliseconds belong), a
field given twice, a code that cannot occur on the event's channel, or a body
in none of the shapes raises :class:`InvalidCallback`, which names the field.
A payload with one bad update in a batch is refused whole, so that replaying
it from the dead letter later is all-or-nothing.  Nothing but
``InvalidCallback`` ever escapes :func:`parse_callback`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from ._archive import archived_events, is_archive
from ._catalog import CHANNELS, Status
from ._events import MAX_ID_LENGTH, StatusEvent, id_problem
from ._formats import LEGACY_STATUS, MIN_TIMESTAMP_MS, PLATFORM_NAMES
from ._policy import MAX_TIMESTAMP_MS
from .errors import InvalidCallback, UnknownStatusCode

__all__ = [
    "ParsedCallback",
    "parse_callback",
    "read_callback",
]


@attrs.frozen
class ParsedCallback:
    """What one callback body holds: its status updates, and the events it holds besides.

    ``ignored`` names each event that is not a status update (``"moText"``,
    an event type Clickatell added later, an inbound reply), once per event.
    """

    events: tuple[StatusEvent, ...]
    ignored: tuple[str, ...] = ()


_CHANNEL = {channel: channel for channel in CHANNELS}
_ONE_API = "One API"
_FLAT = "Platform"
_LEGACY = "legacy HTTP"
_REPLY = "Platform reply"
_LEGACY_MO = "legacy MO"
_STATUS_UPDATE = "messageStatusUpdate"


def _show(value: object) -> str:
    """A short repr for messages; never fails (a 5,000-digit int cannot be printed)."""
    try:
        text = repr(value)
    except ValueError:
        return f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= 60 else text[:57] + "..."


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (which one would count?)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return result


# built once: json.loads(text, object_pairs_hook=...) builds a decoder per call, which
# costs more than the whole decoding of a callback
_JSON = json.JSONDecoder(object_pairs_hook=_unique_keys)


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
            payload = _JSON.decode(payload)
        except _RepeatedKey as repeated:
            raise InvalidCallback(
                repeated.key, "given more than once in one JSON object", repeated.key
            ) from None
        except (ValueError, RecursionError) as error:
            raise InvalidCallback("body", f"not JSON ({error})") from None
    if payload.__class__ is not dict and not isinstance(payload, Mapping):
        raise InvalidCallback(
            "body", f"expected a JSON object or query parameters, got {type(payload).__name__}"
        )
    return payload


# ``x.__class__ is dict`` before ``isinstance(x, Mapping)``: decoded JSON is made of
# dicts, and an ABC check costs more than most of a field's parsing.
#
# Field helpers take the path of the object they read from (``prefix``, "" at the top)
# and build a field's full path only when they raise: most bodies are fine.


def _single(fields: Mapping[str, Any], name: str, prefix: str) -> Any:
    """A field's value; query parameters may arrive as one-element lists."""
    value = fields.get(name)
    if value.__class__ is list or isinstance(value, list | tuple):
        if len(value) != 1:
            raise InvalidCallback(prefix + name, f"expected one value, got {len(value)}", value)
        value = value[0]
    return value


def _text(fields: Mapping[str, Any], name: str, prefix: str, *, required: bool) -> str | None:
    value = _single(fields, name, prefix)
    if value.__class__ is str and value and not value[0].isspace() and not value[-1].isspace():
        return value  # the common case, already clean
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidCallback(prefix + name, "missing", value)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidCallback(
            prefix + name, f"expected a string, got {type(value).__name__}", value
        )
    if isinstance(value, int) and value.bit_length() > 4 * MAX_ID_LENGTH:
        raise InvalidCallback(prefix + name, f"longer than {MAX_ID_LENGTH} characters", value)
    return str(value).strip()


def _identifier(fields: Mapping[str, Any], name: str, prefix: str, *, required: bool) -> str | None:
    """A message id or client message id: text that every store can keep as it is."""
    value = _text(fields, name, prefix, required=required)
    if value is not None:
        problem = id_problem(value)
        if problem is not None:
            raise InvalidCallback(prefix + name, problem, value)
    return value


def _integer(value: Any, path: str, what: str) -> int:
    """A whole number from an int, an integral float, or a string of digits."""
    if value.__class__ is int:
        return value
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
    raise InvalidCallback(path, f"expected {what}, got {_show(value)}", value)


def _timestamp_ms(fields: Mapping[str, Any], prefix: str, *, seconds: bool) -> int:
    path = prefix + "timestamp"
    value = _single(fields, "timestamp", prefix)
    if value is None:
        raise InvalidCallback(path, "missing", value)
    unit = "epoch seconds" if seconds else "milliseconds since the epoch"
    number = _integer(value, path, f"a whole number of {unit}")
    millis = number * 1000 if seconds else number
    if MIN_TIMESTAMP_MS <= millis <= MAX_TIMESTAMP_MS:
        return millis
    if not 0 <= millis <= MAX_TIMESTAMP_MS:
        raise InvalidCallback(path, f"{_show(number)} is not a plausible time in {unit}", value)
    if seconds:
        raise InvalidCallback(path, f"{number} epoch seconds is before 2000-01-01", value)
    raise InvalidCallback(
        path,
        f"{number} is before 2000-01-01 as milliseconds; it looks like epoch seconds "
        "(this format sends milliseconds)",
        value,
    )


def _code(fields: Mapping[str, Any], prefix: str) -> int | None:
    value = _single(fields, "statusCode", prefix)
    if value is None:
        return None
    return _integer(value, prefix + "statusCode", "a numeric status code")


def _name(fields: Mapping[str, Any], prefix: str) -> str | None:
    value = _single(fields, "status", prefix)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCallback(prefix + "status", "expected a status name", value)
    return value.strip().upper()


def _one_api_status(fields: Mapping[str, Any], prefix: str) -> Status:
    """The status named by a One API update's ``statusCode`` and/or ``status``, which agree."""
    code = _code(fields, prefix)
    name = _name(fields, prefix)
    by_code = by_name = None
    if code is not None:
        try:
            by_code = Status.from_code(code)
        except UnknownStatusCode:
            raise InvalidCallback(
                prefix + "statusCode", f"unknown status code {_show(code)}", code
            ) from None
    if name is not None:
        try:
            by_name = Status.from_name(name)
        except UnknownStatusCode:
            raise InvalidCallback(prefix + "status", f"unknown status {name!r}", name) from None
    if by_code is None and by_name is None:
        raise InvalidCallback(prefix + "statusCode", "missing (and no status name either)")
    if by_code is not None and by_name is not None and by_code is not by_name:
        raise InvalidCallback(
            prefix + "statusCode",
            f"statusCode {int(by_code)} is {by_code.name} but status says {by_name.name}",
            code,
        )
    result = by_code if by_code is not None else by_name
    assert result is not None
    return result


def _platform_status(code: int, field: str) -> Status:
    """A Platform (legacy) status code's One API status."""
    try:
        return LEGACY_STATUS[code]
    except KeyError:
        known = ", ".join(str(c) for c in sorted(LEGACY_STATUS))
        reason = (
            f"Platform status code {_show(code)} has no One API equivalent"
            if code == 13
            else f"{_show(code)} is not a Platform status code (Platform callbacks number "
            f"statuses {known}; send the One API status name too to use One API codes)"
        )
        raise InvalidCallback(field, reason, code) from None


def _flat_status(fields: Mapping[str, Any]) -> Status:
    """The status of a flat body: Platform numbering, unless a One API name says otherwise."""
    code = _code(fields, "")
    name = _name(fields, "")
    if name is None:
        if code is None:
            raise InvalidCallback("statusCode", "missing (and no status name either)")
        return _platform_status(code, "statusCode")
    platform_code = PLATFORM_NAMES.get(name)
    one_api = Status.__members__.get(name)
    if platform_code is None and one_api is None:
        raise InvalidCallback(
            "status", f"unknown status {name!r}: neither a Platform nor a One API name", name
        )
    readings: set[Status] = set()
    if platform_code is not None and code in (None, platform_code):
        readings.add(_platform_status(platform_code, "status"))
    if one_api is not None and code in (None, int(one_api)):
        readings.add(one_api)
    if not readings:
        expected = " or ".join(
            str(c) for c in (platform_code, None if one_api is None else int(one_api)) if c
        )
        raise InvalidCallback(
            "statusCode", f"statusCode {_show(code)} contradicts status {name} ({expected})", code
        )
    if len(readings) > 1:  # the name is both a Platform and a One API name, with no code
        raise InvalidCallback("statusCode", f"status {name} is ambiguous without its code")
    return readings.pop()


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
    # every field was checked above, as StatusEvent would check it
    return StatusEvent._checked(message_id, status, timestamp_ms, channel, client_message_id)


def _other_events(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The names of the events that are not status updates, once per event."""
    if len(event) == 1 and _STATUS_UPDATE in event:
        return ()  # the usual body: nothing else to count
    ignored: list[str] = []
    for name, value in event.items():
        if name != _STATUS_UPDATE:
            ignored.extend([name] * (len(value) if isinstance(value, list) else 1))
    return tuple(ignored)


def _one_api(body: Mapping[str, Any]) -> ParsedCallback:
    event = body.get("event")
    if event.__class__ is not dict and not isinstance(event, Mapping):
        raise InvalidCallback("event", "expected an object holding messageStatusUpdate", event)
    ignored = _other_events(event)
    updates = event.get(_STATUS_UPDATE)
    if updates is None and ignored:
        return ParsedCallback((), ignored)
    if not isinstance(updates, list) or not (updates or ignored):
        raise InvalidCallback(
            "event.messageStatusUpdate", "expected a non-empty array of status updates", updates
        )
    events = []
    for index, update in enumerate(updates):
        prefix = f"event.messageStatusUpdate[{index}]."
        if update.__class__ is not dict and not isinstance(update, Mapping):
            raise InvalidCallback(prefix.rstrip("."), "expected an object", update)
        channel = _text(update, "channel", prefix, required=False)
        if channel is not None:
            # the catalog's own string, so millions of states share one object
            channel = _CHANNEL.get(channel.lower(), channel.lower())
            if channel not in CHANNELS:
                raise InvalidCallback(
                    prefix + "channel",
                    f"unknown channel {_show(channel)}; known: {', '.join(CHANNELS)}",
                )
        message_id = _identifier(update, "messageId", prefix, required=True)
        assert message_id is not None
        events.append(
            _event(
                message_id,
                _one_api_status(update, prefix),
                _timestamp_ms(update, prefix, seconds=False),
                channel,
                _identifier(update, "clientMessageId", prefix, required=False),
                prefix,
            )
        )
    return ParsedCallback(tuple(events), ignored)


def _sms_report(
    body: Mapping[str, Any], id_field: str, client_field: str, status: Status, *, seconds: bool
) -> ParsedCallback:
    """The one SMS report of a flat (Platform or legacy) body, once its status is known."""
    message_id = _identifier(body, id_field, "", required=True)
    assert message_id is not None
    event = _event(
        message_id,
        status,
        _timestamp_ms(body, "", seconds=seconds),
        "sms",
        _identifier(body, client_field, "", required=False),
        "",
    )
    return ParsedCallback((event,))


def _flat(body: Mapping[str, Any]) -> ParsedCallback:
    _identifier(body, "messageId", "", required=True)  # a missing id is named before the status
    return _sms_report(body, "messageId", "clientMessageId", _flat_status(body), seconds=False)


def _legacy(body: Mapping[str, Any]) -> ParsedCallback:
    _identifier(body, "apiMsgId", "", required=True)
    raw = _single(body, "status", "")
    if raw is None:
        raise InvalidCallback("status", "missing")
    code = _integer(raw, "status", 'a legacy status such as "004"')
    if code not in LEGACY_STATUS:
        raise InvalidCallback(
            "status", f"legacy status {_show(raw)} has no One API equivalent", raw
        )
    return _sms_report(body, "apiMsgId", "cliMsgId", LEGACY_STATUS[code], seconds=True)


def _shape(body: Mapping[str, Any]) -> str:
    if "event" in body:
        return _ONE_API
    has_status = "status" in body or "statusCode" in body
    if "apiMsgId" in body or ("api_id" in body and "moMsgId" not in body):
        return _LEGACY
    if "moMsgId" in body and not has_status:
        return _LEGACY_MO
    if "messageId" in body or "statusCode" in body:
        return _FLAT if has_status or "text" not in body else _REPLY
    raise InvalidCallback(
        "body",
        "not a Clickatell callback: expected a One API body (event.messageStatusUpdate), "
        "a Platform body (messageId, statusCode) or a legacy HTTP one (apiMsgId, status)",
    )


def _reply(_: Mapping[str, Any]) -> ParsedCallback:
    return ParsedCallback((), (_REPLY,))


def _legacy_mo(_: Mapping[str, Any]) -> ParsedCallback:
    return ParsedCallback((), (_LEGACY_MO,))


_PARSERS = {
    _ONE_API: _one_api,
    _FLAT: _flat,
    _LEGACY: _legacy,
    _REPLY: _reply,
    _LEGACY_MO: _legacy_mo,
}


def read_callback(
    payload: bytes | str | Mapping[str, Any], *, archives: bool = False
) -> ParsedCallback:
    """Parse one callback body (or query parameters): its status updates and what it ignored.

    Raises :class:`InvalidCallback`, naming the field, for anything that is
    not a well-formed Clickatell callback; nothing else escapes.  A body that
    holds only events other than status updates (an inbound message) has no
    status events and is not an error.  With ``archives`` an archive line
    written by retention (see ``_archive``) is read too, as its reports.
    """
    body = _decode(payload)
    # JSON objects have string keys; a mapping handed in by a caller may not
    if (body.__class__ is not dict or not isinstance(payload, bytes | str)) and not all(
        isinstance(key, str) for key in body
    ):
        raise InvalidCallback("body", "field names must be strings")
    try:
        if archives and is_archive(body):
            return ParsedCallback(archived_events(body))
        return _PARSERS[_shape(body)](body)
    except InvalidCallback:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        # a value no field check foresaw (say, an int too large to print): still refused
        # with a name, never a bare error from deep inside
        raise InvalidCallback("body", f"unusable value ({type(error).__name__})") from None


def parse_callback(payload: bytes | str | Mapping[str, Any]) -> list[StatusEvent]:
    """Parse one callback body (or query parameters) into status events.

    Raises :class:`InvalidCallback`, naming the field, for anything that is not
    a well-formed Clickatell callback.  A body holding no status update (an
    inbound ``moText`` posted to the same URL) gives an empty list: see
    :func:`read_callback` for what it held instead.
    """
    return list(read_callback(payload).events)
