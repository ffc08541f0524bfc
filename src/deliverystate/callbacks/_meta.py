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
from ..rules._events import StatusEvent
from ._decode import decode_body
from ._fields import read_identifier, read_timestamp_ms, read_word
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


def _status(item: Mapping[str, Any], ignored: list[str]) -> StatusEvent | None:
    message_id = read_identifier(item, "id", "", required=True)
    row = read_word("meta", item, "status")
    if row.status is None:
        ignored.append(f"status:{row.word}")
        return None
    client = read_identifier(item, "biz_opaque_callback_data", "", required=False)
    when = read_timestamp_ms(item, "", seconds=True)
    return StatusEvent.from_ms(str(message_id), row.status, when, "whatsapp", client)


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
