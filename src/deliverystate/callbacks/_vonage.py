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
from ..rules._events import StatusEvent, id_problem
from ..rules._time import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, ms_from_datetime, parse_time
from ._decode import decode_body
from ._providers import lookup
from ._results import ParsedCallback

__all__ = ["read_vonage"]


def _text(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InvalidCallback(name, "missing")
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InvalidCallback(name, f"must be text, not {type(value).__name__}")
    return str(value)


def _id(body: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = _text(body, name, required=required)
    if value is not None and id_problem(value) is not None:
        raise InvalidCallback(name, str(id_problem(value)))
    return value


def _in_range(ms: int, name: str) -> int:
    if not MIN_TIMESTAMP_MS <= ms <= MAX_TIMESTAMP_MS:
        raise InvalidCallback(name, "before 2000 or too far ahead")
    return ms


def _receipt_time(body: Mapping[str, Any]) -> int:
    seconds = _text(body, "timestamp", required=False)
    if seconds is not None:
        if not seconds.isdigit():
            raise InvalidCallback("timestamp", f"{seconds[:40]!r} is not Unix seconds")
        return _in_range(int(seconds) * 1000, "timestamp")
    pushed = _text(body, "message-timestamp")
    try:
        moment = datetime.strptime(str(pushed), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidCallback("message-timestamp", "expected YYYY-MM-DD HH:MM:SS") from None
    return _in_range(ms_from_datetime(moment), "message-timestamp")


def _word(body: Mapping[str, Any]) -> Any:
    word = _text(body, "status")
    row = lookup("vonage", str(word))
    if row is None:
        raise InvalidCallback("status", f"{str(word)[:40]!r} is not a Vonage status this reads")
    return row


def read_vonage(body: str | Mapping[str, str], received_ms: int | None = None) -> ParsedCallback:
    """The report of a Vonage receipt or status (``received_ms`` is not needed)."""
    del received_ms  # both carry a time of their own
    data = decode_body(body)
    row = _word(data)
    if "message_uuid" in data:  # the Messages API
        message_id = _id(data, "message_uuid")
        stamp = _text(data, "timestamp")
        try:
            when = ms_from_datetime(parse_time(str(stamp), "timestamp", zone_required=True))
        except ValueError as error:
            raise InvalidCallback("timestamp", str(error)) from None
        channel = _text(data, "channel", required=False)
        channel = channel if channel in CHANNELS else None
        event = StatusEvent.from_ms(
            str(message_id), row.status, _in_range(when, "timestamp"), channel,
            _id(data, "client_ref", required=False),
        )  # fmt: skip
        return ParsedCallback((event,), format="vonage")
    message_id = _id(data, "messageId")
    event = StatusEvent.from_ms(
        str(message_id), row.status, _receipt_time(data), "sms",
        _id(data, "client-ref", required=False),
    )  # fmt: skip
    return ParsedCallback((event,), format="vonage")
