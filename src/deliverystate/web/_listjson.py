"""``GET /messages``: the message list as JSON, filtered and paged by keyset.

The same filters as ``deliverystate messages`` (``_listing``), as query
parameters: ``status`` and ``category`` (repeatable), ``failed``, ``overdue``,
``channel``, ``since``, ``until``, ``client_message_id``, ``limit`` (1 to
1,000, default 50) and ``cursor``, the ``next_cursor`` of the previous page.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import attrs
from starlette.datastructures import QueryParams

from ..errors import InvalidParameter
from ..rules._records import MessageQuery
from ..rules._time import shown
from ..tracking._listing import decode_cursor, encode_cursor, message_query
from ..tracking._tracker import Tracker
from ..tracking._wire import listed_json

__all__ = ["KNOWN_PARAMS", "MAX_LIMIT", "ListRequest", "list_messages", "read_list_request"]

#: The largest page ``GET /messages`` gives.
MAX_LIMIT = 1000
_DEFAULT_LIMIT = 50
_TRUE = {"1", "true", "yes", "on"}
#: The parameters a list request may hold (``token`` is the shared secret's).
KNOWN_PARAMS = {
    "status",
    "category",
    "failed",
    "overdue",
    "channel",
    "since",
    "until",
    "client_message_id",
    "limit",
    "cursor",
    "token",
}


def _limit(text: str | None) -> int:
    if text is None or not text.strip():
        return _DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_LIMIT):
        raise InvalidParameter(
            "limit", f"limit {shown(text)} is not a number from 1 to {MAX_LIMIT}"
        )
    return int(text)


def _text(params: QueryParams, name: str) -> str | None:
    """A parameter's value, or None when it is missing or blank (as an empty form field sends)."""
    value = params.get(name)
    return value if value is not None and value.strip() else None


@attrs.frozen
class ListRequest:
    """A list request read from the query string: which messages, how many, after which."""

    query: MessageQuery
    limit: int
    before: tuple[int, str] | None


def read_list_request(params: QueryParams, now: datetime | None = None) -> ListRequest:
    """The list ``params`` ask for; :class:`InvalidParameter` naming the first that is wrong.

    ``params`` come through ``_params.checked_query``, which refused the
    values no store could take; here each is read for what it means.  An
    unknown parameter is refused rather than ignored: a misspelt filter
    would otherwise list every message as if it had matched.  Blank values
    (an empty field of the status page's filter form) mean "no filter".
    """
    unknown = sorted(set(params.keys()) - KNOWN_PARAMS)
    if unknown:
        raise InvalidParameter(
            unknown[0],
            f"unknown parameter {shown(unknown[0])}; known: {', '.join(sorted(KNOWN_PARAMS))}",
        )
    overdue = params.get("overdue", "").lower() in _TRUE
    query = message_query(
        statuses=[v for v in params.getlist("status") if v.strip()],
        categories=[v for v in params.getlist("category") if v.strip()],
        failed=params.get("failed", "").lower() in _TRUE,
        channel=_text(params, "channel"),
        since=_text(params, "since"),
        until=_text(params, "until"),
        overdue_at=(now or datetime.now(timezone.utc)) if overdue else None,
        client_message_id=_text(params, "client_message_id"),
    )
    cursor = _text(params, "cursor")
    return ListRequest(
        query, _limit(params.get("limit")), None if cursor is None else decode_cursor(cursor)
    )


def list_messages(tracker: Tracker, params: QueryParams) -> tuple[int, dict[str, Any]]:
    """The status code and JSON body answering ``GET /messages`` with ``params``."""
    try:
        wanted = read_list_request(params)
    except InvalidParameter as error:
        return error.http_status, {"error": str(error), "parameter": error.parameter}
    page = tracker.messages(wanted.query, limit=wanted.limit, before=wanted.before)
    return 200, {
        "messages": [listed_json(item) for item in page],
        "next_cursor": encode_cursor(page[-1]) if len(page) == wanted.limit else None,
    }
