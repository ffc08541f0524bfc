"""Vonage's callbacks: the SMS API's delivery receipts and the Messages API's status webhooks.

Both come to ``/callbacks/vonage``; the fields tell them apart.  An SMS API
receipt (GET query, form or JSON) names its message ``messageId``, a
Messages API status (JSON) ``message_uuid``.  ``client-ref`` and
``client_ref`` (the sender's reference) are the client message id.

Times: a Messages status has ``timestamp``, ISO 8601 in UTC.  A receipt has
``scts``, the carrier's minute, which captured receipts show hours away from
UTC, so it orders nothing; it is dated by ``timestamp`` (Unix seconds, sent
when signatures are on) or else ``message-timestamp`` (``YYYY-MM-DD
HH:MM:SS``, when Vonage began to push it, read as UTC).  A long SMS gets a
receipt per part, each with its part's ``messageId``: each part is tracked
as a message of its own, and ``client-ref`` links them.  The words are
``_providers.VONAGE``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..errors import InvalidCallback
from ..rules._catalog import CHANNELS
from ..rules._events import StatusEvent
from ..rules._time import ms_from_datetime, parse_time
from ._decode import decode_body
from ._fields import checked_ms, read_identifier, read_text, read_timestamp_ms, read_word
from ._results import ParsedCallback

__all__ = ["read_vonage"]


def _receipt_time(body: Mapping[str, Any]) -> int:
    if body.get("timestamp") not in (None, ""):
        return read_timestamp_ms(body, "", seconds=True)
    pushed = read_text(body, "message-timestamp", "", required=True)
    try:
        moment = datetime.strptime(str(pushed), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidCallback("message-timestamp", "expected YYYY-MM-DD HH:MM:SS") from None
    return checked_ms(ms_from_datetime(moment), "message-timestamp")


def read_vonage(body: str | Mapping[str, str], received_ms: int | None = None) -> ParsedCallback:
    """The report of a Vonage receipt or status (``received_ms`` is not needed)."""
    del received_ms  # both carry a time of their own
    data = decode_body(body)
    row = read_word("vonage", data, "status")
    assert row.status is not None  # every Vonage word is a status
    if "message_uuid" in data:  # the Messages API
        message_id = read_identifier(data, "message_uuid", "", required=True)
        stamp = read_text(data, "timestamp", "", required=True)
        try:
            when = ms_from_datetime(parse_time(str(stamp), "timestamp", zone_required=True))
        except ValueError as error:
            raise InvalidCallback("timestamp", str(error)) from None
        channel = read_text(data, "channel", "", required=False)
        event = StatusEvent.from_ms(
            str(message_id), row.status, checked_ms(when, "timestamp"),
            channel if channel in CHANNELS else None,
            read_identifier(data, "client_ref", "", required=False),
        )  # fmt: skip
        return ParsedCallback((event,), format="vonage")
    message_id = read_identifier(data, "messageId", "", required=True)
    event = StatusEvent.from_ms(
        str(message_id), row.status, _receipt_time(data), "sms",
        read_identifier(data, "client-ref", "", required=False),
    )  # fmt: skip
    return ParsedCallback((event,), format="vonage")
