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

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import attrs

from ._archive import archived_events, is_archive
from ._catalog import CHANNELS, Origin, Status
from ._events import MAX_ID_LENGTH, StatusEvent
from ._fields import (
    flat_status,
    legacy_status,
    one_api_status,
    read_identifier,
    read_text,
    read_timestamp_ms,
    show,
    single_value,
)
from ._formats import MIN_TIMESTAMP_MS
from ._json import decode_body
from ._policy import MAX_TIMESTAMP_MS
from .errors import InvalidCallback

__all__ = [
    "CallbackFormat",
    "ParsedBatch",
    "ParsedCallback",
    "parse_callback",
    "read_callback",
    "read_many",
]


#: Which shape a body had: One API, Platform (flat, a reply included), legacy HTTP (an
#: inbound legacy message included), or an archive line written by retention.
CallbackFormat = Literal["one_api", "platform", "legacy", "archive"]


@attrs.frozen
class ParsedCallback:
    """What one callback body holds: its status updates, and the events it holds besides.

    ``ignored`` names each event that is not a status update (``"moText"``,
    an event type Clickatell added later, an inbound reply), once per event.
    ``format`` is the shape the body was read as, so that a receiver can
    count its traffic by format without parsing anything twice.
    """

    events: tuple[StatusEvent, ...]
    ignored: tuple[str, ...] = ()
    #: Registrations (a local QUEUED and its deadline in ms): only archive lines have them.
    registrations: tuple[tuple[StatusEvent, int], ...] = ()
    format: CallbackFormat = attrs.field(kw_only=True)


@attrs.frozen
class ParsedBatch:
    """What a batch of callback bodies holds, as :func:`read_many` reads it.

    ``events`` are the status events of every body that parsed, in order;
    ``errors`` pairs the index of each body that did not with its error;
    ``ignored`` counts the events that are not status updates.

    A batch pickles compactly (its events as five columns), so that a worker
    process can parse bodies and hand the batch back cheaply.
    """

    events: tuple[StatusEvent, ...]
    errors: tuple[tuple[int, InvalidCallback], ...] = ()
    ignored: int = 0
    #: The registrations archive lines restore (see ``_archive``), applied after ``events``.
    registrations: tuple[tuple[StatusEvent, int], ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        events = self.events
        columns = (
            [e.message_id for e in events],
            [int(e.status) for e in events],
            [e.timestamp_ms for e in events],
            [e.channel for e in events],
            [e.client_message_id for e in events],
        )
        local = [i for i, e in enumerate(events) if e.origin is not Origin.CLICKATELL]
        errors = [(i, e.field, e.reason, e.value) for i, e in self.errors]
        return (_unpickle_batch, (columns, local, errors, self.ignored, self.registrations))


def _unpickle_batch(
    columns: tuple[list[str], list[int], list[int], list[str | None], list[str | None]],
    local: list[int],
    errors: list[tuple[int, str, str, Any]],
    ignored: int,
    registrations: tuple[tuple[StatusEvent, int], ...],
) -> ParsedBatch:
    ids, codes, times, channels, clients = columns
    statuses = map(_STATUS_OF_CODE.__getitem__, codes)
    events = list(map(StatusEvent._checked, ids, statuses, times, channels, clients))
    for i in local:  # only archive lines hold local reports: rare, rebuilt in full
        e = events[i]
        events[i] = StatusEvent.from_ms(
            e.message_id, e.status, e.timestamp_ms, e.channel, e.client_message_id, Origin.LOCAL
        )
    refused = tuple((i, InvalidCallback(*error)) for i, *error in errors)
    return ParsedBatch(tuple(events), refused, ignored, registrations)


_CHANNEL = {channel: channel for channel in CHANNELS}
_STATUS_OF_CODE = {int(status): status for status in Status}
_ONE_API = "One API"
_FLAT = "Platform"
_LEGACY = "legacy HTTP"
_REPLY = "Platform reply"
_LEGACY_MO = "legacy MO"
_STATUS_UPDATE = "messageStatusUpdate"


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
        return ParsedCallback((), ignored, format="one_api")
    if not isinstance(updates, list) or not (updates or ignored):
        raise InvalidCallback(
            "event.messageStatusUpdate", "expected a non-empty array of status updates", updates
        )
    events = []
    for index, update in enumerate(updates):
        prefix = f"event.messageStatusUpdate[{index}]."
        if update.__class__ is not dict and not isinstance(update, Mapping):
            raise InvalidCallback(prefix.rstrip("."), "expected an object", update)
        channel = read_text(update, "channel", prefix, required=False)
        if channel is not None:
            # the catalog's own string, so millions of states share one object
            channel = _CHANNEL.get(channel.lower(), channel.lower())
            if channel not in CHANNELS:
                raise InvalidCallback(
                    prefix + "channel",
                    f"unknown channel {show(channel)}; known: {', '.join(CHANNELS)}",
                )
        message_id = read_identifier(update, "messageId", prefix, required=True)
        assert message_id is not None
        events.append(
            _event(
                message_id,
                one_api_status(update, prefix),
                read_timestamp_ms(update, prefix, seconds=False),
                channel,
                read_identifier(update, "clientMessageId", prefix, required=False),
                prefix,
            )
        )
    return ParsedCallback(tuple(events), ignored, format="one_api")


def _sms_report(
    body: Mapping[str, Any], id_field: str, client_field: str, status: Status, shape: CallbackFormat
) -> ParsedCallback:
    """The one SMS report of a flat (Platform or legacy) body, once its status is known.

    Legacy HTTP timestamps are epoch seconds, Platform ones milliseconds.
    """
    message_id = read_identifier(body, id_field, "", required=True)
    assert message_id is not None
    event = _event(
        message_id,
        status,
        read_timestamp_ms(body, "", seconds=shape == "legacy"),
        "sms",
        read_identifier(body, client_field, "", required=False),
        "",
    )
    return ParsedCallback((event,), format=shape)


def _flat(body: Mapping[str, Any]) -> ParsedCallback:
    read_identifier(body, "messageId", "", required=True)  # a missing id is named before the status
    return _sms_report(body, "messageId", "clientMessageId", flat_status(body), "platform")


def _legacy(body: Mapping[str, Any]) -> ParsedCallback:
    read_identifier(body, "apiMsgId", "", required=True)
    status = legacy_status(single_value(body, "status", ""))
    return _sms_report(body, "apiMsgId", "cliMsgId", status, "legacy")


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
    return ParsedCallback((), (_REPLY,), format="platform")


def _legacy_mo(_: Mapping[str, Any]) -> ParsedCallback:
    return ParsedCallback((), (_LEGACY_MO,), format="legacy")


_PARSERS = {
    _ONE_API: _one_api,
    _FLAT: _flat,
    _LEGACY: _legacy,
    _REPLY: _reply,
    _LEGACY_MO: _legacy_mo,
}


# --- the fast path -----------------------------------------------------------------------
#
# Most bodies are clean: ids of printable ASCII, a known channel, a code and name the
# parser has met before, an integer (or digit string) timestamp in range.  For those, the
# functions below build the events directly; for anything else they answer None and the
# full parser above reads the body, so every refusal and its words come from one place.
# ``tests/test_callbacks.py`` holds the two paths to the same results on random bodies.

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


def _fast_one_api(body: dict[str, Any]) -> ParsedCallback | None:
    event = body["event"]
    if event.__class__ is not dict or len(event) != 1:
        return None
    updates = event.get(_STATUS_UPDATE)
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
            channel = _CHANNEL.get(channel) or _CHANNEL.get(channel.strip().lower())
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


def _fast_flat(body: dict[str, Any]) -> ParsedCallback | None:
    get = body.get
    status = _status(_flat_reading, get("statusCode"), get("status"))
    made = _clean_event(
        get("messageId"), status, get("timestamp"), 1, "sms", get("clientMessageId")
    )
    return None if made is None else ParsedCallback((made,), format="platform")


def _fast_legacy(body: dict[str, Any]) -> ParsedCallback | None:
    get = body.get
    status = _status(_legacy_reading, get("status"), None)
    made = _clean_event(get("apiMsgId"), status, get("timestamp"), 1000, "sms", get("cliMsgId"))
    return None if made is None else ParsedCallback((made,), format="legacy")


_FAST: dict[str, Callable[[dict[str, Any]], ParsedCallback | None]] = {
    _ONE_API: _fast_one_api,
    _FLAT: _fast_flat,
    _LEGACY: _fast_legacy,
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
    body = decode_body(payload)
    # JSON objects have string keys; a mapping handed in by a caller may not
    if (body.__class__ is not dict or not isinstance(payload, bytes | str)) and not all(
        isinstance(key, str) for key in body
    ):
        raise InvalidCallback("body", "field names must be strings")
    try:
        if archives and is_archive(body):
            events, registrations = archived_events(body)
            return ParsedCallback(events, registrations=registrations, format="archive")
        shape = _shape(body)
        fast = _FAST.get(shape) if body.__class__ is dict else None
        parsed = None if fast is None else fast(body)  # type: ignore[arg-type]
        return _PARSERS[shape](body) if parsed is None else parsed
    except InvalidCallback:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        # a value no field check foresaw (say, an int too large to print): still refused
        # with a name, never a bare error from deep inside
        raise InvalidCallback("body", f"unusable value ({type(error).__name__})") from None


def read_many(
    payloads: Iterable[bytes | str | Mapping[str, Any]], *, archives: bool = False
) -> ParsedBatch:
    """Parse a batch of callback bodies: every event in order, and each body's refusal.

    A body that cannot be parsed does not stop the others: its index and
    :class:`InvalidCallback` are in ``errors``.  Nothing else is raised.
    ``archives`` is passed to :func:`read_callback`.
    """
    events: list[StatusEvent] = []
    errors: list[tuple[int, InvalidCallback]] = []
    registrations: list[tuple[StatusEvent, int]] = []
    ignored = 0
    for index, payload in enumerate(payloads):
        try:
            parsed = read_callback(payload, archives=archives)
        except InvalidCallback as error:
            errors.append((index, error))
            continue
        events.extend(parsed.events)
        if parsed.ignored:
            ignored += len(parsed.ignored)
        if parsed.registrations:
            registrations.extend(parsed.registrations)
    return ParsedBatch(tuple(events), tuple(errors), ignored, tuple(registrations))


def parse_callback(payload: bytes | str | Mapping[str, Any]) -> list[StatusEvent]:
    """Parse one callback body (or query parameters) into status events.

    Raises :class:`InvalidCallback`, naming the field, for anything that is not
    a well-formed Clickatell callback.  A body holding no status update (an
    inbound ``moText`` posted to the same URL) gives an empty list: see
    :func:`read_callback` for what it held instead.
    """
    return list(read_callback(payload).events)
