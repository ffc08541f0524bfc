"""Meta's WhatsApp Cloud API status webhooks: ``entry[].changes[].value.statuses[]``.

One POST may hold several entries, changes and statuses, about several
messages; each status is a report, its ``id`` (``wamid.…``) the message id
and its ``biz_opaque_callback_data`` (the sender's own tracker, echoed) the
client message id.  Meta sends the time in Unix *seconds*, as a string, so
two reports of one status within a second tie on time and are told apart by
rank and code, as the policy says.  What is no status of an outbound message
(inbound ``messages``, a change-level ``errors`` list, another ``field``, an
On-Premises word) is ignored, never refused: Meta retries what is not
answered 2xx.  Anything malformed is an :class:`InvalidCallback` naming the
field.  The words and what they mean are ``_providers.META``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidCallback
from ..rules._events import StatusEvent, id_problem
from ..rules._time import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS
from ._decode import decode_body
from ._providers import lookup
from ._results import ParsedCallback

__all__ = ["read_meta"]

_OBJECT = "whatsapp_business_account"


def _list(container: Mapping[str, Any], name: str) -> list[Any]:
    value = container.get(name, [])
    if not isinstance(value, list):
        raise InvalidCallback(name, f"must be a list, not {type(value).__name__}")
    return value


def _object(value: object, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidCallback(name, f"must be an object, not {type(value).__name__}")
    return value


def _seconds(value: object) -> int:
    """Meta's timestamp (Unix seconds, a string or a number) in milliseconds."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidCallback("timestamp", "must be Unix seconds, as a string or an integer")
    text = str(value).strip()
    if not text.isdigit():
        raise InvalidCallback("timestamp", f"{text[:40]!r} is not a whole number of seconds")
    ms = int(text) * 1000
    if not MIN_TIMESTAMP_MS <= ms <= MAX_TIMESTAMP_MS:
        raise InvalidCallback("timestamp", f"{text} seconds is before 2000 or too far ahead")
    return ms


def _status(item: Mapping[str, Any], ignored: list[str]) -> StatusEvent | None:
    message_id = item.get("id")
    if not isinstance(message_id, str) or not message_id:
        raise InvalidCallback("id", "a status needs its message's id (wamid)")
    problem = id_problem(message_id)
    if problem is not None:
        raise InvalidCallback("id", problem)
    word = item.get("status")
    if not isinstance(word, str):
        raise InvalidCallback("status", "missing, or not a string")
    row = lookup("meta", word)
    if row is None:
        raise InvalidCallback("status", f"{word[:40]!r} is not a Meta status this release reads")
    if row.status is None:
        ignored.append(f"status:{row.word}")
        return None
    client = item.get("biz_opaque_callback_data")
    if client is not None and (not isinstance(client, str) or id_problem(client)):
        raise InvalidCallback("biz_opaque_callback_data", "must be text a store can keep")
    if "timestamp" not in item:
        raise InvalidCallback("timestamp", "missing: Meta's statuses carry their time")
    return StatusEvent.from_ms(
        message_id, row.status, _seconds(item["timestamp"]), "whatsapp", client
    )


def read_meta(body: str | Mapping[str, str], received_ms: int | None = None) -> ParsedCallback:
    """The reports of a Meta webhook body (JSON text); ``received_ms`` is not needed."""
    del received_ms  # Meta's statuses carry their own time
    data = decode_body(body)
    if data.get("object") != _OBJECT:
        raise InvalidCallback("object", f"expected {_OBJECT!r}, not {data.get('object')!r}")
    events: list[StatusEvent] = []
    ignored: list[str] = []
    for entry in _list(data, "entry"):
        for item in _list(_object(entry, "entry"), "changes"):
            change = _object(item, "changes")
            if change.get("field", "messages") != "messages":
                ignored.append(f"field:{change.get('field')}")
                continue
            value = _object(change.get("value"), "value")
            for status in _list(value, "statuses"):
                event = _status(_object(status, "statuses"), ignored)
                if event is not None:
                    events.append(event)
            ignored.extend("message" for _ in _list(value, "messages"))
            ignored.extend("error" for _ in _list(value, "errors"))
    return ParsedCallback(tuple(events), tuple(ignored), format="meta")
