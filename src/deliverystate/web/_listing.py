"""``GET /messages``: the message list as JSON, filtered and paged by keyset.

The same filters as ``deliverystate messages`` (``_listing``), as query
parameters: ``status`` and ``category`` (repeatable), ``failed``, ``overdue``,
``channel``, ``since``, ``until``, ``client_message_id``, ``limit`` (1 to
1,000, default 50) and ``cursor``, the ``next_cursor`` of the previous page.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from starlette.datastructures import QueryParams

from .._listing import decode_cursor, encode_cursor, message_query
from .._render import listed_json
from .._tracker import Tracker

__all__ = ["MAX_LIMIT", "list_messages"]

#: The largest page ``GET /messages`` gives.
MAX_LIMIT = 1000
_DEFAULT_LIMIT = 50
_TRUE = {"1", "true", "yes", "on"}
_KNOWN = {
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
    if text is None:
        return _DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise ValueError(f"limit {text!r} is not a number from 1 to {MAX_LIMIT}")
    return int(text)


def list_messages(tracker: Tracker, params: QueryParams) -> tuple[int, dict[str, Any]]:
    """The status code and JSON body answering ``GET /messages`` with ``params``.

    An unknown parameter is refused (400) rather than ignored: a misspelt
    filter would otherwise list every message as if it had matched.
    """
    unknown = sorted(set(params.keys()) - _KNOWN)
    if unknown:
        return 400, {"error": f"unknown parameter {unknown[0]!r}", "known": sorted(_KNOWN)}
    try:
        query = message_query(
            statuses=params.getlist("status"),
            categories=params.getlist("category"),
            failed=params.get("failed", "").lower() in _TRUE,
            channel=params.get("channel"),
            since=params.get("since"),
            until=params.get("until"),
            overdue_at=(
                datetime.now(timezone.utc) if params.get("overdue", "").lower() in _TRUE else None
            ),
            client_message_id=params.get("client_message_id"),
        )
        limit = _limit(params.get("limit"))
        cursor = params.get("cursor")
        before = None if cursor is None else decode_cursor(cursor)
    except ValueError as error:
        return 400, {"error": str(error)}
    page = tracker.messages(query, limit=limit, before=before)
    return 200, {
        "messages": [listed_json(item) for item in page],
        "next_cursor": encode_cursor(page[-1]) if len(page) == limit else None,
    }
