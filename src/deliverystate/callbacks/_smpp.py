"""SMPP delivery receipts: a receipt's text, or Jasmin's HTTP re-post of one.

A receipt's text is SMPP 3.4 Appendix B's *de facto* format, ``id:…
sub:… dlvrd:… submit date:… done date:… stat:… err:… text:…``, met in the
wild with fields missing or out of order, ``Text:`` capitalised and dates of
10, 12 or 14 digits; it is read field by field, never by position.  Jasmin
(an SMPP gateway) re-posts receipts as a form: ``id`` (the id Jasmin's send
answered, so the one a backend knows), ``message_status``,
``level``, ``donedate``, ``err``; at level 1 ``message_status`` is the
centre's answer to the submit (``ESME_ROK``: accepted, anything else:
refused), at levels 2 and 3 a receipt's ``stat``.

Times: ``done date`` has no zone (the centre's clock), read as UTC; with no
date the report is dated when the receiver took it (its envelope's
``received_ms``).  Ids: centres change them between the submit's answer and
the receipt (hex against decimal, case, leading zeros), so an id is
normalised by :func:`normalise_smpp_id`, which a backend applies to the id it
stored to find the message.  The words are ``_providers.SMPP``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone

from ..errors import InvalidCallback
from ..rules._catalog import Status
from ..rules._events import StatusEvent
from ..rules._time import ms_from_datetime
from ._fields import checked_ms, read_identifier, read_word
from ._results import ParsedCallback

__all__ = ["normalise_smpp_id", "read_smpp"]

# "name:value" pairs; a value runs to the next known name (dates hold a space)
_NAMES = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text")
_FIELD = re.compile(r"(?i)\b(" + "|".join(re.escape(n) for n in _NAMES) + r"):")
_DATES = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S", 14: "%Y%m%d%H%M%S"}


def normalise_smpp_id(message_id: str) -> str:
    """An SMPP message id as receipts and submits agree on it.

    Decimal digits are a number (SMPP 3.4 receipts print the id the submit
    answered in hex as decimal), written in lower-case hex; an id with hex
    letters is lower-cased; either loses its leading zeros.  Anything else (a
    gateway's UUID) is only lower-cased.
    """
    text = message_id.strip()
    if text.isdigit():
        return format(int(text), "x")
    if re.fullmatch(r"[0-9A-Fa-f]+", text):
        return text.lower().lstrip("0") or "0"
    return text.lower()


def _receipt_fields(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    marks = list(_FIELD.finditer(text))
    for mark, after in zip(marks, [*marks[1:], None], strict=True):
        name = mark.group(1).lower()
        value = text[mark.end() : after.start() if after else len(text)].strip()
        if name in found:
            raise InvalidCallback(name, "given twice")
        found[name] = value
    return found


def _date(value: str | None, name: str, received_ms: int | None) -> int:
    if not value:
        if received_ms is None:
            raise InvalidCallback(name, "missing, and no time of receipt to date the report by")
        return received_ms
    pattern = _DATES.get(len(value))
    try:
        if pattern is None:
            raise ValueError
        moment = datetime.strptime(value, pattern).replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidCallback(name, f"{value[:20]!r} is no date of 10, 12 or 14 digits") from None
    return checked_ms(ms_from_datetime(moment), name)


def _event(message_id: str | None, status: Status, when: int) -> ParsedCallback:
    normal = {"id": normalise_smpp_id(message_id)} if message_id else {}
    message_id = read_identifier(normal, "id", "", required=True)
    return ParsedCallback(
        (StatusEvent.from_ms(str(message_id), status, when, "sms"),), format="smpp"
    )


def _stat(fields: Mapping[str, str], name: str) -> Status:
    status = read_word("smpp", fields, name).status
    assert status is not None  # every SMPP state is a status
    return status


def read_smpp(body: str | Mapping[str, str], received_ms: int | None = None) -> ParsedCallback:
    """The report of an SMPP receipt's text, or of Jasmin's form for one."""
    if isinstance(body, str):
        fields = _receipt_fields(body)
        if "id" not in fields:
            raise InvalidCallback("id", "not an SMPP receipt (no id:)")
        status = _stat(fields, "stat")
        return _event(
            fields["id"], status, _date(fields.get("done date"), "done date", received_ms)
        )
    word = body.get("message_status")
    if body.get("level") == "1":  # the centre's answer to the submit, not a receipt
        if not word or not word.startswith("ESME_"):
            raise InvalidCallback("message_status", "level 1 carries an ESME_ status")
        status = Status.SENT_TO_SUPPLIER if word == "ESME_ROK" else Status.DELIVERY_FAILURE
    else:
        status = _stat(body, "message_status")
    when = _date(body.get("donedate"), "donedate", received_ms)
    return _event(body.get("id"), status, when)  # Jasmin's id: what its send answered
