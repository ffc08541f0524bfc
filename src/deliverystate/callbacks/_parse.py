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
field given twice, a field of the wrong type, a code that cannot occur on the
event's channel, or a body in none of the shapes raises :class:`InvalidCallback`,
which names the field.  Each field holds one value of its own type whichever
way the body came: a list (even of one value), an object or a boolean where
text or a number belongs is refused, never unwrapped.  Query parameters and
forms are handed over as one string per field; the receiver refuses a field
given twice there, and escapes that are not UTF-8, before the parser sees them.
A payload with one bad update in a batch is refused whole, so that replaying
it from the dead letter later is all-or-nothing.  Nothing but
``InvalidCallback`` ever escapes :func:`parse_callback`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from ..errors import InvalidCallback
from ..rules._catalog import CHANNELS, Status
from ..rules._events import StatusEvent
from ..rules._time import ms_from_datetime
from ._archive import archived_events, is_archive
from ._decode import decode_body
from ._envelope import is_envelope, open_envelope, read_provider
from ._fastpath import CHANNEL_NAMES, STATUS_UPDATE, fast_flat, fast_legacy, fast_one_api
from ._fields import (
    flat_status,
    legacy_status,
    one_api_status,
    read_identifier,
    read_text,
    read_timestamp_ms,
    show,
)
from ._results import CallbackFormat, ParsedBatch, ParsedCallback

__all__ = [
    "CallbackFormat",
    "ParsedBatch",
    "ParsedCallback",
    "parse_callback",
    "read_callback",
    "read_many",
]


_ONE_API = "One API"
_FLAT = "Platform"
_LEGACY = "legacy HTTP"
_REPLY = "Platform reply"
_LEGACY_MO = "legacy MO"


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
    if len(event) == 1 and STATUS_UPDATE in event:
        return ()  # the usual body: nothing else to count
    ignored: list[str] = []
    for name, value in event.items():
        if name != STATUS_UPDATE:
            ignored.extend([name] * (len(value) if isinstance(value, list) else 1))
    return tuple(ignored)


def _one_api(body: Mapping[str, Any]) -> ParsedCallback:
    event = body.get("event")
    if event.__class__ is not dict and not isinstance(event, Mapping):
        raise InvalidCallback("event", "expected an object holding messageStatusUpdate", event)
    ignored = _other_events(event)
    updates = event.get(STATUS_UPDATE)
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
            channel = CHANNEL_NAMES.get(channel.lower(), channel.lower())
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
    status = legacy_status(body.get("status"))
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


_FAST: dict[str, Callable[[dict[str, Any]], ParsedCallback | None]] = {
    _ONE_API: fast_one_api,
    _FLAT: fast_flat,
    _LEGACY: fast_legacy,
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
        if is_envelope(body):  # another provider's body, kept as an envelope (``_envelope``)
            return open_envelope(body)
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
    ``archives`` is passed to :func:`read_callback`; the reports of archive
    lines are kept apart, in ``restored``, since restoring is not news.
    """
    events: list[StatusEvent] = []
    restored: list[StatusEvent] = []
    errors: list[tuple[int, InvalidCallback]] = []
    registrations: list[tuple[StatusEvent, int]] = []
    ignored = 0
    for index, payload in enumerate(payloads):
        try:
            parsed = read_callback(payload, archives=archives)
        except InvalidCallback as error:
            errors.append((index, error))
            continue
        if parsed.format == "archive":
            restored.extend(parsed.events)
            registrations.extend(parsed.registrations)
            continue
        events.extend(parsed.events)
        if parsed.ignored:
            ignored += len(parsed.ignored)
    return ParsedBatch(tuple(events), tuple(errors), ignored, tuple(registrations), tuple(restored))


def parse_callback(
    payload: bytes | str | Mapping[str, Any],
    provider: str = "clickatell",
    *,
    received_at: datetime | None = None,
) -> list[StatusEvent]:
    """Parse one callback body (or query parameters) into status events.

    Raises :class:`InvalidCallback`, naming the field, for anything that is not
    a well-formed callback of ``provider``.  A body holding no status update (an
    inbound ``moText`` posted to the same URL) gives an empty list: see
    :func:`read_callback` for what it held instead.  ``provider`` is
    ``"clickatell"`` (the default) or another provider (``"meta"``,
    ``"twilio"``: ``callbacks._providers``); ``received_at`` dates the
    reports of a provider that sends no time (Twilio), and is required there.
    """
    if provider == "clickatell":
        return list(read_callback(payload).events)
    received_ms = None if received_at is None else ms_from_datetime(received_at)
    return list(read_provider(provider, payload, received_ms).events)
