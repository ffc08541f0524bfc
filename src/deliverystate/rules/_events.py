"""The records that flow through the engine: a status report and a message's state.

Both are small frozen attrs classes.  Timestamps have millisecond resolution,
as Clickatell's callbacks do; each record keeps the integer milliseconds and
makes the ``datetime`` only when it is asked for, so that the hot path
compares integers and never builds one.
"""

from __future__ import annotations

import re
from datetime import datetime

import attrs

from ._catalog import CHANNELS, Kind, Origin, Status
from ._time import MAX_TIMESTAMP_MS, datetime_from_ms, ms_from_datetime

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_SEQ",
    "Change",
    "MessageState",
    "StatusEvent",
    "check_consumer",
    "check_seq",
    "id_problem",
]

#: The longest message id (or client message id) accepted, in characters.  Clickatell's
#: ids are 32 hex digits; a client message id is the sender's own reference.
MAX_ID_LENGTH = 256
# C0 controls (NUL included), DEL, C1 controls and lone surrogates: none of them can be a
# reference, some cannot be stored at all (PostgreSQL refuses NUL in text, every driver
# refuses a lone surrogate) and a NUL silently cuts an id short in SQLite's json_each.
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a message id or client message id, or None when it can.

    Ids must be storable by every store, unchanged: at most :data:`MAX_ID_LENGTH`
    characters, no control characters and no lone surrogates.
    """
    if len(value) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters ({len(value)})"
    bad = _UNSTORABLE.search(value)
    if bad is not None:
        char = bad.group()
        kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        return f"contains {kind} ({char!r} at position {bad.start()})"
    return None


def _check_ms(timestamp_ms: int) -> int:
    if not 0 <= timestamp_ms <= MAX_TIMESTAMP_MS:
        raise ValueError(
            f"timestamp {timestamp_ms} ms is outside the supported range "
            f"(1970-01-01 up to the year 2527)"
        )
    return timestamp_ms


def _not_a_datetime(timestamp: object) -> str:
    """Why a ``StatusEvent`` refuses ``timestamp``, and the constructor that takes integers.

    An integer is not taken as milliseconds here: seconds (``time.time()``)
    would pass unnoticed as a date in January 1970, so the unit is named by
    calling ``from_ms``.
    """
    shown = f" ({timestamp!r})" if isinstance(timestamp, int | float) else ""
    return (
        f"StatusEvent's timestamp is a timezone-aware datetime, not "
        f"{type(timestamp).__name__}{shown}; for milliseconds since the epoch (as callbacks "
        "carry them) use StatusEvent.from_ms(message_id, status, timestamp_ms, channel)"
    )


@attrs.frozen(init=False, repr=False)
class StatusEvent:
    """One status report about one message, as a provider sent it.

    ``timestamp`` is the provider's event time (timezone-aware, UTC, truncated
    to milliseconds); ``timestamp_ms`` is the same instant as an integer.  An
    event whose status cannot occur on its own channel is invalid input and
    raises ``ValueError`` here rather than being silently reconciled.  The
    constructor takes a ``datetime``; :meth:`from_ms` takes epoch
    milliseconds, and an integer handed to the constructor is a ``TypeError``
    that says so (it could as well be seconds).

    Only the integer is stored: ``timestamp`` is made from it when it is read,
    because most events (a replay's, a receiver's) are compared and stored by
    their integer alone and building a ``datetime`` for each cost as much as
    parsing the rest of the callback.  Two events are equal when their
    message id, status, instant, channel, client message id and origin are.

    ``origin`` says who made the report: Clickatell (every callback), or this
    side (``Origin.LOCAL``: a registered send, a sweep's expiry).
    """

    message_id: str
    status: Status
    timestamp_ms: int
    channel: str | None = None
    client_message_id: str | None = None
    origin: Origin = Origin.CLICKATELL

    def __init__(
        self,
        message_id: str,
        status: Status | int,
        timestamp: datetime,
        channel: str | None = None,
        client_message_id: str | None = None,
        origin: Origin = Origin.CLICKATELL,
    ) -> None:
        if not isinstance(timestamp, datetime):
            raise TypeError(_not_a_datetime(timestamp))
        self._init(
            message_id,
            status,
            _check_ms(ms_from_datetime(timestamp)),
            channel,
            client_message_id,
            origin,
        )

    @property
    def timestamp(self) -> datetime:
        """The provider's event time, as an aware UTC ``datetime`` (millisecond resolution)."""
        return datetime_from_ms(self.timestamp_ms)

    def __repr__(self) -> str:
        local = ", origin=Origin.LOCAL" if self.origin is Origin.LOCAL else ""
        return (
            f"StatusEvent(message_id={self.message_id!r}, status={self.status!r}, "
            f"timestamp={self.timestamp!r}, channel={self.channel!r}, "
            f"client_message_id={self.client_message_id!r}{local})"
        )

    def _init(
        self,
        message_id: str,
        status: Status | int,
        timestamp_ms: int,
        channel: str | None,
        client_message_id: str | None,
        origin: Origin = Origin.CLICKATELL,
    ) -> None:
        if not isinstance(message_id, str) or not message_id:
            raise ValueError(f"message_id must be a non-empty string, not {message_id!r}")
        problem = id_problem(message_id)
        if problem is not None:
            raise ValueError(f"message_id {message_id[:40]!r} {problem}")
        if client_message_id is not None:
            if not isinstance(client_message_id, str):
                raise ValueError(f"client_message_id must be a string, not {client_message_id!r}")
            problem = id_problem(client_message_id)
            if problem is not None:
                raise ValueError(f"client_message_id {client_message_id[:40]!r} {problem}")
        if channel is not None and channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS} or None, not {channel!r}")
        status = status if isinstance(status, Status) else Status.from_code(status)
        if not status.allowed_on(channel):
            raise ValueError(f"status {status.name} cannot occur on channel {channel!r}")
        if not isinstance(origin, Origin):
            raise ValueError(f"origin must be an Origin, not {origin!r}")
        self.__attrs_init__(message_id, status, timestamp_ms, channel, client_message_id, origin)

    @classmethod
    def _checked(
        cls,
        message_id: str,
        status: Status,
        timestamp_ms: int,
        channel: str | None,
        client_message_id: str | None,
    ) -> StatusEvent:
        """An event whose every field the caller has already checked (the callback parser).

        Skips the checks :meth:`from_ms` makes, which on the parser's hot path
        would run a second time, and attrs' generated ``__init__``, which costs
        twice what setting the five slots directly does.
        """
        event = _new(cls)
        _set_id(event, message_id)
        _set_status(event, status)
        _set_ms(event, timestamp_ms)
        _set_channel(event, channel)
        _set_client(event, client_message_id)
        _set_origin(event, _CLICKATELL)
        return event

    @classmethod
    def from_ms(
        cls,
        message_id: str,
        status: Status | int,
        timestamp_ms: int,
        channel: str | None = None,
        client_message_id: str | None = None,
        origin: Origin = Origin.CLICKATELL,
    ) -> StatusEvent:
        """Build an event from integer milliseconds, as callbacks carry them."""
        event = cls.__new__(cls)
        event._init(message_id, status, _check_ms(timestamp_ms), channel, client_message_id, origin)
        return event


# a frozen attrs class refuses its own setattr; these build an event without it.  Each
# slot's own descriptor sets it without looking the name up: a replay builds every event
# twice (parsed in a worker, rebuilt here from its columns), and this is a third cheaper
_new = object.__new__
_set_id, _set_status, _set_ms, _set_channel, _set_client, _set_origin = (
    StatusEvent.__dict__[name].__set__
    for name in (
        "message_id",
        "status",
        "timestamp_ms",
        "channel",
        "client_message_id",
        "origin",
    )
)
_CLICKATELL = Origin.CLICKATELL


@attrs.frozen
class MessageState:
    """What is known about one message: the report that currently wins.

    ``status``, ``timestamp_ms`` and ``origin`` come from the winning report
    (``origin`` is LOCAL only where the policy ranks local reports of that
    status apart: a sweep's expiry, a registration not yet confirmed);
    ``channel`` and ``client_message_id`` from the first report that carried
    them; ``deadline_ms`` from the registrations of the send (the earliest,
    so that it does not depend on their order), None for a message never
    registered.
    """

    message_id: str
    status: Status
    timestamp_ms: int
    channel: str | None = None
    client_message_id: str | None = None
    origin: Origin = Origin.CLICKATELL
    deadline_ms: int | None = None

    @property
    def timestamp(self) -> datetime:
        """The provider time of the winning report, as an aware UTC ``datetime``."""
        return datetime_from_ms(self.timestamp_ms)

    @property
    def deadline(self) -> datetime | None:
        """When the message is overdue if nothing final was heard by then (None: no deadline)."""
        return None if self.deadline_ms is None else datetime_from_ms(self.deadline_ms)

    @property
    def is_due(self) -> bool:
        """Whether a sweep past the deadline has something to do for this message.

        A message still in progress is; so is one a sweep expired at a later
        deadline than the one it has now (a registration with an earlier
        deadline arrived since), so that the expiry ends up dated at the
        earliest deadline whatever the order.
        """
        if self.deadline_ms is None:
            return False
        if self.status.kind is Kind.PROGRESS:
            return True
        return (
            self.origin is Origin.LOCAL
            and self.status is Status.EXPIRED
            and self.timestamp_ms > self.deadline_ms
        )

    @classmethod
    def from_event(cls, event: StatusEvent, origin: Origin | None = None) -> MessageState:
        """The state of a message of which ``event`` is the only report so far.

        ``origin`` overrides the event's (a policy that does not rank the
        event's status apart when local remembers it as Clickatell's).
        """
        return cls(
            event.message_id,
            event.status,
            event.timestamp_ms,
            event.channel,
            event.client_message_id,
            event.origin if origin is None else origin,
        )


@attrs.frozen
class Change:
    """One change of a message's status, as the change feed records it.

    ``seq`` orders the feed (strictly increasing per store); ``previous`` is
    None for a message's first status; ``timestamp_ms`` (and ``timestamp``) is
    the provider's time of the report that made the change; ``channel`` and
    ``client_message_id`` are the message's as far as they are known;
    ``origin`` is the report's (LOCAL: a sweep's expiry or a registration).  A
    report that only re-dates a status, or only teaches the channel, is no
    change.
    """

    seq: int
    message_id: str
    previous: Status | None
    status: Status
    timestamp_ms: int
    channel: str | None = None
    client_message_id: str | None = None
    origin: Origin = Origin.CLICKATELL

    @property
    def timestamp(self) -> datetime:
        """The time of the report that made the change, as an aware UTC ``datetime``."""
        return datetime_from_ms(self.timestamp_ms)

    @property
    def is_final(self) -> bool:
        """Whether the message's new status is terminal (READ or a failure)."""
        return self.status.is_terminal

    @property
    def is_local(self) -> bool:
        """Whether this side made the change (a sweep's expiry, a registration), not the provider.

        A consumer that bills or alerts on failures usually treats a local
        EXPIRED (no callback came by the deadline) apart from Clickatell's.
        """
        return self.origin is Origin.LOCAL


#: The longest name a change consumer may have.
MAX_CONSUMER_LENGTH = 200
#: The largest feed position (or count) a store can hold: a 64-bit signed integer.
MAX_SEQ = 2**63 - 1


def check_consumer(name: object) -> str:
    """A consumer name as given, or ``ValueError`` naming what is wrong with it.

    Names are kept in the store and shown to operators: printable text,
    1 to 200 characters.
    """
    if not isinstance(name, str):
        raise TypeError(f"a consumer name is a str, not {type(name).__name__}")
    if not 0 < len(name) <= MAX_CONSUMER_LENGTH or not name.isprintable():
        raise ValueError(
            f"a consumer name is 1 to {MAX_CONSUMER_LENGTH} printable characters, not {name!r}"
        )
    return name


def check_seq(seq: object, what: str = "seq") -> int:
    """A feed position as given, or an error naming what is wrong with it.

    At most :data:`MAX_SEQ`: past it SQLite refuses the number (OverflowError)
    where PostgreSQL compares it, and the stores would answer differently.
    """
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise TypeError(f"{what} is an int, not {type(seq).__name__}")
    if seq < 0:
        raise ValueError(f"{what} is 0 or more, not {seq}")
    if seq > MAX_SEQ:
        raise ValueError(f"{what} is at most {MAX_SEQ} (a 64-bit integer), not {seq}")
    return seq
