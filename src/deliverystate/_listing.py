"""Listing messages: the filters an operator types, turned into a store query, and pages.

The command line (``deliverystate messages``) and the receiver (``GET
/messages``) take the same filters as text; :func:`message_query` turns them
into a :class:`~deliverystate.stores.MessageQuery`, refusing what it cannot
read with a ``ValueError`` that names the filter.  Lists are newest first by
the time of a message's first report and paged by keyset: a page's cursor is
the (first report's time, message id) of its last message, so a page never
repeats or skips a message however many arrive meanwhile.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone

from ._catalog import CHANNELS, Category, Kind, Status
from ._events import ms_from_datetime
from .stores import Listed, MessageQuery, Store

__all__ = [
    "PAGE",
    "decode_cursor",
    "encode_cursor",
    "every_listed",
    "message_query",
    "parse_status",
    "parse_time",
]

#: Messages read from the store per page when a whole list is streamed.
PAGE = 1000


def parse_status(text: str) -> Status:
    """A status from its name (any case) or its code; ``ValueError`` naming it otherwise."""
    value = text.strip()
    try:
        return Status.from_code(int(value)) if value.isdigit() else Status[value.upper()]
    except (KeyError, ValueError):
        raise ValueError(f"status {text!r} is neither a status name nor a code") from None


def parse_time(text: str, name: str, *, zone_required: bool = False) -> datetime:
    """A date or an ISO 8601 time; ``ValueError`` naming ``name`` if it is neither.

    Without a zone it is UTC, unless ``zone_required`` (a file of sends,
    where a zone left out is more likely a mistake than a choice).
    """
    try:
        # Python 3.10's fromisoformat does not read a trailing Z
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{name} {text!r} is not a date or an ISO 8601 time (2026-01-01, 2026-01-01T12:00Z)"
        ) from None
    if moment.tzinfo is not None:
        return moment
    if zone_required:
        raise ValueError(f"{name} {text!r} has no timezone (add Z or +00:00)")
    return moment.replace(tzinfo=timezone.utc)


def message_query(
    *,
    statuses: Iterable[str] = (),
    categories: Iterable[str] = (),
    failed: bool = False,
    in_progress: bool = False,
    channel: str | None = None,
    since: str | None = None,
    until: str | None = None,
    overdue_at: datetime | None = None,
    client_message_id: str | None = None,
) -> MessageQuery:
    """The store query for filters given as text; several statuses or categories add up.

    ``failed`` adds every failure status, ``in_progress`` every status of a
    message still on its way (neither delivered, read nor failed: the
    catalog's :attr:`Kind.PROGRESS`).  Statuses, categories, ``failed`` and
    ``in_progress`` together select the union of what each names.
    """
    wanted = {parse_status(text) for text in statuses}
    for text in categories:
        try:
            category = Category(text.strip().lower())
        except ValueError:
            names = ", ".join(c.value for c in Category)
            raise ValueError(f"category {text!r} is not one of {names}") from None
        wanted |= {s for s in Status if s.category is category}
    if failed:
        wanted |= {s for s in Status if s.is_failure}
    if in_progress:
        wanted |= {s for s in Status if s.kind is Kind.PROGRESS}
    if channel is not None and channel.strip().lower() not in CHANNELS:
        raise ValueError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    return MessageQuery(
        statuses=frozenset(wanted),
        channel=None if channel is None else channel.strip().lower(),
        since_ms=None if since is None else ms_from_datetime(parse_time(since, "since")),
        until_ms=None if until is None else ms_from_datetime(parse_time(until, "until")),
        due_by_ms=None if overdue_at is None else ms_from_datetime(overdue_at),
        client_message_id=client_message_id,
    )


def encode_cursor(listed: Listed) -> str:
    """The cursor of the page that follows ``listed`` (the last message of a page)."""
    text = f"{listed.first_ms}:{listed.state.message_id}"
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (first report's time, message id) a cursor stands for; ``ValueError`` if it is none."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        first, _, message_id = raw.decode("utf-8", "surrogatepass").partition(":")
        if not message_id:
            raise ValueError(cursor)
        return int(first), message_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError(f"cursor {cursor[:40]!r} is not one this server gave out") from None


def every_listed(store: Store, query: MessageQuery, limit: int | None = None) -> Iterator[Listed]:
    """Every message ``query`` matches (at most ``limit``), newest first, a page at a time."""
    before: tuple[int, str] | None = None
    left = limit
    while left is None or left > 0:
        size = PAGE if left is None else min(PAGE, left)
        page = store.messages(query, size, before)
        yield from page
        if len(page) < size:
            return
        before = (page[-1].first_ms, page[-1].state.message_id)
        if left is not None:
            left -= len(page)
