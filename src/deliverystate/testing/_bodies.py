"""Callback bodies Clickatell could send, each with the events it means.

Theory of operation
-------------------
A drawn body starts as events: a message id of Clickatell's shape (32 hex
digits), a status the format can carry on the channel, a time around
:data:`BASE_MS` (whole seconds for legacy HTTP, which counts in seconds).
It is then written the way the format writes it, with the liberties real
traffic takes: One API batches of several updates, the channel spelled
``" SMS "`` or left out, a client message id absent or null, fields nobody
reads, an inbound ``moText`` posted in the same body; Platform codes as
numbers or digit strings, a Platform name or a One API name with One API
numbering; legacy three-digit codes and epoch seconds.  Last it is encoded:
UTF-8 bytes, text, the decoded mapping, or (Platform and legacy only, which
Clickatell also sends as GET parameters or a form) the mapping a query string
decodes to, one string per field as the receiver hands it to the parser
(``dict(urllib.parse.parse_qsl(query))``, never ``parse_qs``'s lists, which the
parser refuses); ``urllib.parse.urlencode(body)`` turns it back into the query
string itself.

The events a body means are built beside it from the drawn values, never by
parsing it: that is what lets a test hold ``parse_callback`` (or a user's
endpoint) to them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import attrs
from hypothesis import strategies as st

from ..callbacks._formats import LEGACY_STATUS, PLATFORM_NAMES
from ..rules._catalog import CHANNELS, Status
from ..rules._events import StatusEvent
from ._strategies import BASE_MS, statuses

__all__ = [
    "ENCODINGS",
    "FORMATS",
    "Callback",
    "Draft",
    "callback_bodies",
    "callbacks",
    "check_format",
    "drafts",
    "encode",
]

#: The body formats: Clickatell's One API, its Platform (flat) callbacks, legacy HTTP.
FORMATS = ("one_api", "platform", "legacy")
#: How a body is handed to ``parse_callback``; ``query`` is for Platform and legacy only.
ENCODINGS = ("bytes", "str", "mapping", "query")
Body = bytes | str | Mapping[str, Any]

_DAY_MS = 86_400_000
#: A few message ids that recur, so that bodies drawn together meet on one message.
_RECURRING = tuple(
    f"{(index * 0x9E3779B97F4A7C15_F39CC0605CEDC835) % 2**128:032x}" for index in range(1, 9)
)
_MESSAGE_IDS = st.one_of(
    st.sampled_from(_RECURRING), st.integers(0, 2**128 - 1).map(lambda n: f"{n:032x}")
)
_CLIENT_IDS = st.one_of(
    st.sampled_from(["order-7", "2993b6b548000a80989a20549e7558a5", "otp:5521", "réf-été-中"]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/#-]{0,38}[A-Za-z0-9]", fullmatch=True),
)
_PLATFORM_CODES = tuple(sorted(LEGACY_STATUS))


@attrs.frozen
class Callback:
    """A drawn body and what it means: its events, or the field its refusal names.

    ``body`` is what is handed to ``parse_callback``: bytes, text or a
    mapping for a valid body, as ``encoding`` says (an invalid body "as a
    mapping" may be any decoded JSON value: a list, a number).  ``format`` is
    the format it was written in (an invalid body's, before it was broken).
    ``events`` are the status events ``parse_callback`` must return for a
    valid body, in order; ``ignored`` the events that are not status updates
    (``"moText"``).  For a body from :func:`invalid_callbacks`, ``field`` is
    the field its :class:`InvalidCallback` names (``"body"`` when it is not a
    callback at all).
    """

    body: Any
    format: str
    encoding: str
    events: tuple[StatusEvent, ...] = ()
    ignored: tuple[str, ...] = ()
    field: str | None = None


@attrs.frozen
class Draft:
    """A body before it is encoded: its fields (to break, for invalid bodies) and its events."""

    format: str
    fields: dict[str, Any]
    events: tuple[StatusEvent, ...]
    ignored: tuple[str, ...] = ()


def check_format(format: str | None) -> None:
    """Refuse a format that is not one of :data:`FORMATS` (None: any)."""
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} or None, not {format!r}")


def _time_ms(draw: st.DrawFn, whole_seconds: bool) -> int:
    offset = draw(st.integers(-30 * _DAY_MS, 30 * _DAY_MS))
    return BASE_MS + (offset // 1000 * 1000 if whole_seconds else offset)


def _update(draw: st.DrawFn) -> tuple[dict[str, Any], StatusEvent]:
    """One ``messageStatusUpdate`` entry and its event."""
    channel = draw(st.sampled_from(CHANNELS))
    status = draw(statuses(channel))
    message_id = draw(_MESSAGE_IDS)
    client = draw(st.one_of(st.none(), _CLIENT_IDS))
    timestamp_ms = _time_ms(draw, whole_seconds=False)
    spelled = draw(
        st.sampled_from([channel, channel, channel.upper(), f" {channel.title()} ", None])
    )
    fields: dict[str, Any] = {"messageId": message_id, "timestamp": timestamp_ms}
    if spelled is not None:
        fields["channel"] = spelled
    naming = draw(st.sampled_from(["both", "both", "both", "code", "name"]))
    if naming != "name":
        fields["statusCode"] = int(status)
    if naming != "code":
        fields["status"] = status.name
    if client is not None or draw(st.booleans()):
        fields["clientMessageId"] = client  # null, or the sender's reference
    if not draw(st.integers(0, 4)):
        fields["statusDescription"] = status.description  # a field nobody reads
    order = draw(st.permutations(list(fields)))
    event_channel = None if spelled is None else channel
    event = StatusEvent.from_ms(message_id, status, timestamp_ms, event_channel, client)
    return {name: fields[name] for name in order}, event


def _one_api(draw: st.DrawFn) -> Draft:
    updates, events = zip(*(_update(draw) for _ in range(draw(st.integers(1, 4)))), strict=True)
    event: dict[str, Any] = {"messageStatusUpdate": list(updates)}
    ignored: tuple[str, ...] = ()
    if not draw(st.integers(0, 7)):  # an inbound reply posted in the same body
        event["moText"] = [
            {"channel": "whatsapp", "messageId": draw(_MESSAGE_IDS), "content": "ok"}
        ]
        ignored = ("moText",)
    fields = {
        "integrationId": "fa8090815f05d5ed015f0b5b56080cd2",
        "integrationName": draw(st.sampled_from(["notifications", "My integration"])),
        "event": event,
    }
    return Draft("one_api", fields, tuple(events), ignored)


def _platform(draw: st.DrawFn) -> Draft:
    if draw(st.integers(0, 5)):
        code = draw(st.sampled_from(_PLATFORM_CODES))
        status = LEGACY_STATUS[code]
        names = [name for name, number in PLATFORM_NAMES.items() if number == code]
        name: str | None = draw(st.sampled_from(names))
        if name not in Status.__members__ and not draw(st.integers(0, 4)):
            name = None  # the code alone (a name that is also a One API name needs its code)
    else:  # a One API name says One API numbering is meant
        status = draw(statuses("sms"))
        code, name = int(status), status.name
    message_id = draw(_MESSAGE_IDS)
    client = draw(st.one_of(st.none(), _CLIENT_IDS))
    timestamp_ms = _time_ms(draw, whole_seconds=False)
    as_text = draw(st.booleans())
    fields: dict[str, Any] = {
        "integrationName": "notifications",
        "messageId": message_id,
        "requestId": message_id[:16],
        "clientMessageId": client,
        "to": "27999000001",
        "from": "27999000000",
        "statusCode": str(code) if as_text else code,
        "status": name,
        "statusDescription": status.description,
        "timestamp": str(timestamp_ms) if as_text else timestamp_ms,
    }
    fields = {key: value for key, value in fields.items() if value is not None}
    event = StatusEvent.from_ms(message_id, status, timestamp_ms, "sms", client)
    return Draft("platform", fields, (event,))


def _legacy(draw: st.DrawFn) -> Draft:
    code = draw(st.sampled_from(_PLATFORM_CODES))
    message_id = draw(_MESSAGE_IDS)
    client = draw(st.one_of(st.none(), _CLIENT_IDS))
    timestamp_ms = _time_ms(draw, whole_seconds=True)
    fields: dict[str, Any] = {
        "api_id": "3512345",
        "apiMsgId": message_id,
        "cliMsgId": client,
        "to": "27999000001",
        "from": "27999000000",
        "timestamp": str(timestamp_ms // 1000),
        "status": f"{code:03d}",
        "charge": "0.8",
    }
    fields = {key: value for key, value in fields.items() if value is not None}
    event = StatusEvent.from_ms(message_id, LEGACY_STATUS[code], timestamp_ms, "sms", client)
    return Draft("legacy", fields, (event,))


_WRITERS = {"one_api": _one_api, "platform": _platform, "legacy": _legacy}


@st.composite
def _draft(draw: st.DrawFn, format: str | None) -> Draft:
    chosen = format if format is not None else draw(st.sampled_from(FORMATS))
    return _WRITERS[chosen](draw)


def drafts(format: str | None = None) -> st.SearchStrategy[Draft]:
    """A valid body of ``format`` (any when None), not yet encoded."""
    check_format(format)
    return _draft(format)


def encode(fields: Any, encoding: str, *, indent: int | None = None) -> Body:
    """A body's fields as ``encoding`` writes them (see :data:`ENCODINGS`)."""
    if encoding == "mapping":
        return fields  # type: ignore[no-any-return]
    if encoding == "query":
        return dict(parse_qsl(urlencode(fields), keep_blank_values=True, errors="strict"))
    text = json.dumps(fields, indent=indent, ensure_ascii=indent is None)
    return text.encode() if encoding == "bytes" else text


@st.composite
def _callback(draw: st.DrawFn, format: str | None) -> Callback:
    draft = draw(drafts(format))
    encodings = ENCODINGS if draft.format != "one_api" else ENCODINGS[:3]
    encoding = draw(st.sampled_from(encodings))
    body = encode(draft.fields, encoding, indent=draw(st.sampled_from([None, 2])))
    return Callback(body, draft.format, encoding, draft.events, draft.ignored)


def callbacks(format: str | None = None) -> st.SearchStrategy[Callback]:
    """A body Clickatell could send, with the events it means (see :class:`Callback`).

    ``format`` is one of :data:`FORMATS`; None draws any.  The body is
    encoded as UTF-8 JSON bytes, JSON text, the decoded mapping, or (Platform
    and legacy only) the mapping of its query string.
    """
    check_format(format)
    return _callback(format)


def callback_bodies(format: str | None = None) -> st.SearchStrategy[Body]:
    """Bodies Clickatell could send, which ``parse_callback`` accepts: :func:`callbacks`' bodies."""
    check_format(format)
    return callbacks(format).map(lambda callback: callback.body)
