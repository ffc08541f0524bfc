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
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TypeVar

from ..errors import InvalidParameter
from ..rules._catalog import CHANNELS, Category, Kind, Status
from ..rules._events import MAX_ID_LENGTH, id_problem
from ..rules._records import Listed, MessageQuery
from ..rules._time import MAX_TIMESTAMP_MS, ms_from_datetime, parse_time, shown
from ..stores import Store

__all__ = [
    "MAX_CURSOR_LENGTH",
    "PAGE",
    "decode_cursor",
    "encode_cursor",
    "every_listed",
    "message_query",
    "parse_status",
]

#: Messages read from the store per page when a whole list is streamed.
PAGE = 1000
#: The longest cursor :func:`encode_cursor` writes: base64 of the longest time, ``:``, and
#: the longest id in UTF-8 (up to 4 bytes a character).
MAX_CURSOR_LENGTH = -(-(len(str(MAX_TIMESTAMP_MS)) + 1 + 4 * MAX_ID_LENGTH) // 3) * 4
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
#: How much of a bad value an error message quotes.
_T = TypeVar("_T")


def _ms(text: str, name: str) -> int:
    """The time ``text`` names, in ms; :class:`InvalidParameter` naming ``name`` if none."""
    return _named(name, lambda text: ms_from_datetime(parse_time(text, name)), text)


def parse_status(text: str) -> Status:
    """A status from its name (any case) or its code; ``ValueError`` naming it otherwise."""
    value = text.strip()
    try:
        return Status.from_code(int(value)) if value.isdigit() else Status[value.upper()]
    except (KeyError, ValueError):
        raise ValueError(f"status {shown(text)} is neither a status name nor a code") from None


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
    ``in_progress`` together select the union of what each names.  A filter
    that cannot be read is an :class:`InvalidParameter` naming it; so is a
    client message id no message could have (see ``id_problem``), which one
    store would find nothing for and another could not even look up.
    """
    wanted = {_named("status", parse_status, text) for text in statuses}
    for text in categories:
        category = _named("category", _category, text)
        wanted |= {s for s in Status if s.category is category}
    if failed:
        wanted |= {s for s in Status if s.is_failure}
    if in_progress:
        wanted |= {s for s in Status if s.kind is Kind.PROGRESS}
    if channel is not None and channel.strip().lower() not in CHANNELS:
        raise InvalidParameter(
            "channel", f"channel {shown(channel)} is not one of {', '.join(CHANNELS)}"
        )
    if client_message_id is not None:
        problem = id_problem(client_message_id)
        if problem is not None:
            raise InvalidParameter("client_message_id", f"client_message_id: {problem}")
    return MessageQuery(
        statuses=frozenset(wanted),
        channel=None if channel is None else channel.strip().lower(),
        since_ms=None if since is None else _ms(since, "since"),
        until_ms=None if until is None else _ms(until, "until"),
        due_by_ms=None if overdue_at is None else ms_from_datetime(overdue_at),
        client_message_id=client_message_id,
    )


def _category(text: str) -> Category:
    try:
        return Category(text.strip().lower())
    except ValueError:
        names = ", ".join(c.value for c in Category)
        raise ValueError(f"category {shown(text)} is not one of {names}") from None


def _named(parameter: str, read: Callable[[str], _T], text: str) -> _T:
    """``read(text)``, its ``ValueError`` an :class:`InvalidParameter` naming ``parameter``."""
    try:
        return read(text)
    except ValueError as error:
        raise InvalidParameter(parameter, str(error)) from None


def _encode(first_ms: int, message_id: str) -> str:
    text = f"{first_ms}:{message_id}"
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode().rstrip("=")


def encode_cursor(listed: Listed) -> str:
    """The cursor of the page that follows ``listed`` (the last message of a page)."""
    return _encode(listed.first_ms, listed.state.message_id)


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The (first report's time, message id) a cursor stands for; :class:`InvalidParameter` if none.

    Checked whole, since a cursor comes back from the client and goes to the
    store: base64url text no longer than a cursor can be, UTF-8 without lone
    surrogates, a time within what an event may carry (not merely any
    integer: SQLite refuses one past 64 bits), an id a message could have
    (``id_problem``), and the very text :func:`encode_cursor` would write for
    them, so that every cursor this server did not give out is refused alike.
    """
    refused = InvalidParameter("cursor", f"cursor {shown(cursor)} is not one this server gave out")
    if len(cursor) > MAX_CURSOR_LENGTH or not _BASE64URL.fullmatch(cursor):
        raise refused
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise refused from None
    first, _, message_id = text.partition(":")
    if not (first.isascii() and first.isdigit() and len(first) <= len(str(MAX_TIMESTAMP_MS))):
        raise refused
    first_ms = int(first)
    if first_ms > MAX_TIMESTAMP_MS or not message_id or id_problem(message_id) is not None:
        raise refused
    if _encode(first_ms, message_id) != cursor:
        raise refused
    return first_ms, message_id


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
