"""Twilio's status callbacks: a form of ``MessageSid``, ``MessageStatus`` and friends.

Twilio sends no event time (``RawDlrDoneDate``, where there is one, is the
carrier's minute with no zone, which "varies between carrier partners"), so
a report is dated by when the receiver took it: the envelope the receiver
keeps (``_envelope``) records that instant with the body, and parsing the
envelope again, on a retry or a replay, dates the report the same way.
Precedence ranks a message's reports by status first (DELIVERY_WINS), so a
late ``sent`` never undoes ``delivered`` whatever the times; the time only
orders reports of one rank, where the receiver's clock is the best there is.

``MessageStatus`` is read, not the legacy ``SmsStatus`` (they have been seen
to disagree); ``MessageSid`` likewise, ``SmsSid`` only when it is alone.  A
sender beginning ``whatsapp:`` makes the report a WhatsApp one.  The words
and what they mean are ``_providers.TWILIO``; a word not there is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from ..errors import InvalidCallback
from ..rules._events import StatusEvent
from ._fields import checked_ms, read_identifier, read_word
from ._results import ParsedCallback

__all__ = ["read_twilio"]


def _fields(body: str | Mapping[str, str]) -> Mapping[str, str]:
    if isinstance(body, Mapping):
        return body
    try:
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InvalidCallback("body", "Twilio posts a form (x-www-form-urlencoded)") from None
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in found:
            raise InvalidCallback(name, "given twice")
        found[name] = value
    return found


def _alone(fields: Mapping[str, str], name: str, legacy: str) -> Mapping[str, str]:
    """``fields`` with ``name`` read from ``legacy`` when only the legacy field was sent."""
    return fields if fields.get(name) or not fields.get(legacy) else {name: fields[legacy]}


def read_twilio(body: str | Mapping[str, str], received_ms: int | None = None) -> ParsedCallback:
    """The report of a Twilio status callback, dated ``received_ms`` (when it was taken)."""
    fields = _fields(body)
    sid = _alone(fields, "MessageSid", "SmsSid")
    message_id = str(read_identifier(sid, "MessageSid", "", required=True))
    row = read_word("twilio", _alone(fields, "MessageStatus", "SmsStatus"), "MessageStatus")
    if row.status is None:
        return ParsedCallback((), (f"status:{row.word}",), format="twilio")
    if received_ms is None:
        raise InvalidCallback(
            "received_ms", "Twilio sends no time: the report is dated when it was received"
        )
    checked_ms(received_ms, "received_ms")
    sender = fields.get("From", "")
    channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
    event = StatusEvent.from_ms(message_id, row.status, received_ms, channel)
    return ParsedCallback((event,), format="twilio")
