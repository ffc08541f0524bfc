"""Sends the backend registers, their deadlines, and the sweep that closes overdue ones.

Theory of operation
-------------------
A registration (``Tracker.register``) is evidence like any callback: a
*local* QUEUED report at the time of sending, so it commutes with the
callbacks (one that arrives before the registration, the usual race, gives
the same final state as one that arrives after).  It also gives the message a
deadline: ``sent_at`` plus its channel's window unless the backend names one.
Of several registrations of a message the earliest deadline holds, so the
deadline is a function of the set of registrations, not of their order.

A message is *due* (``MessageState.is_due``) when it has a deadline and is
still in progress (UNKNOWN, QUEUED, SCHEDULED, SENT_TO_SUPPLIER): delivered
and failed messages heard back.  :func:`sweep` gives each message due by
``now`` a local EXPIRED report dated *at its deadline*, never at the clock of
the sweep, so two sweepers, or a sweep repeated, write the very same report
(the second is a duplicate).  The policy ranks a local EXPIRED below every
delivery and failure Clickatell reports and above the progress statuses, so
later real evidence replaces it and nothing else does.  Hence, whatever the
order of registrations, callbacks and sweeps, once a sweep at ``now`` has run
after the last of them the states are those of "every registration and
callback, then one sweep at ``now``": the tests check exactly that.  (A
message a sweep expired at one deadline that a later registration moved
earlier is due again, and the next sweep re-dates the expiry to the earlier
deadline.)

Deadlines come from registrations only: a message known from callbacks alone
has none, and no sweep closes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from ..rules._catalog import CHANNELS, Origin, Status
from ..rules._events import MessageState, StatusEvent, id_problem
from ..rules._policy import Policy
from ..rules._records import Summary
from ..rules._time import ms_from_datetime, parse_time
from ..stores import Store

__all__ = [
    "DEFAULT_WINDOWS",
    "SWEEP_BATCH",
    "Send",
    "check_windows",
    "overdue",
    "registrations",
    "sweep",
]

#: How long after sending a message may still hear back, per channel.  SMS: Clickatell
#: holds an SMS it cannot route for its validity period (24 hours by default) and
#: carriers retry a handset that is off for up to about three days, after which
#: Vonage, for one, marks the message EXPIRED itself: 72 hours.  WhatsApp: Meta
#: retries an undelivered message for its time-to-live, 30 days by default for
#: utility and marketing templates, and then reports it failed: 31 days, so that
#: a local expiry stands only for a report that never came.
DEFAULT_WINDOWS: Mapping[str, timedelta] = {
    "sms": timedelta(hours=72),
    "whatsapp": timedelta(days=31),
}

#: Overdue messages a sweep reads and expires per transaction.
SWEEP_BATCH = 1000


def check_windows(windows: Mapping[str, timedelta] | None) -> dict[str, timedelta]:
    """The default windows overridden by ``windows``; ``ValueError`` naming a bad entry."""
    merged = dict(DEFAULT_WINDOWS)
    for channel, window in (windows or {}).items():
        if channel not in CHANNELS:
            raise ValueError(f"a window is for a channel in {CHANNELS}, not {channel!r}")
        if not isinstance(window, timedelta) or window <= timedelta(0):
            raise ValueError(f"the {channel} window must be a positive timedelta, not {window!r}")
        merged[channel] = window
    return merged


def _aware(field: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{field} is a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} {value!r} has no timezone; use an aware datetime")
    return value


def _check_sent_at(send: Send, attribute: attrs.Attribute[Any], value: datetime) -> None:
    _aware("sent_at", value)


def _check_deadline(send: Send, attribute: attrs.Attribute[Any], value: datetime | None) -> None:
    if value is not None and _aware("deadline", value) < send.sent_at:
        raise ValueError(
            f"deadline {value.isoformat()} is before sent_at {send.sent_at.isoformat()}"
        )


def _check_id(send: Send, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None and attribute.name == "client_message_id":
        return
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string, not {value!r}")
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(f"{attribute.name} {value[:40]!r} {problem}")


def _check_channel(send: Send, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, not {value!r}")


@attrs.frozen
class Send:
    """A message the backend sent: what :meth:`Tracker.register` records.

    ``deadline`` None means ``sent_at`` plus the channel's window.
    """

    message_id: str = attrs.field(validator=_check_id)
    channel: str = attrs.field(validator=_check_channel)
    sent_at: datetime = attrs.field(validator=_check_sent_at)
    client_message_id: str | None = attrs.field(default=None, validator=_check_id)
    deadline: datetime | None = attrs.field(default=None, validator=_check_deadline)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Send:
        """A send from one JSON object (a line of ``deliverystate register``).

        ``message_id`` (or ``messageId``), ``channel``, ``sent_at`` and the
        optional ``client_message_id`` (``clientMessageId``) and ``deadline``;
        times are ISO 8601 with a timezone or milliseconds since the epoch.
        Raises ``ValueError`` naming the field that is wrong.
        """
        if not isinstance(body, Mapping):
            raise ValueError(f"a send is a JSON object, not {type(body).__name__}")
        message_id = body.get("message_id", body.get("messageId"))
        if not isinstance(message_id, str) or not message_id:
            raise ValueError(f"message_id: a non-empty string is required, not {message_id!r}")
        channel = body.get("channel")
        client = body.get("client_message_id", body.get("clientMessageId"))
        if client is not None and not isinstance(client, str):
            raise ValueError(f"client_message_id: a string, not {client!r}")
        if not isinstance(channel, str):
            raise ValueError(f"channel: one of {CHANNELS} is required, not {channel!r}")
        deadline = body.get("deadline")
        return cls(
            message_id,
            channel.strip().lower(),
            _time("sent_at", body.get("sent_at", body.get("sentAt"))),
            client,
            None if deadline is None else _time("deadline", deadline),
        )


def _time(field: str, value: object) -> datetime:
    """A time from ISO 8601 text (with a timezone) or integer milliseconds since the epoch."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{field}: a time is required, not {value!r}")
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, timezone.utc)
    if isinstance(value, str):
        return parse_time(value, f"{field}:", zone_required=True)
    raise ValueError(f"{field}: ISO 8601 text or milliseconds, not {value!r}")


def registrations(
    sends: Iterable[Send], windows: Mapping[str, timedelta]
) -> list[tuple[StatusEvent, int]]:
    """Each send as its local QUEUED report and its deadline in milliseconds."""
    found = []
    for send in sends:
        event = StatusEvent(
            send.message_id,
            Status.QUEUED,
            send.sent_at,
            send.channel,
            send.client_message_id,
            Origin.LOCAL,
        )
        deadline = (
            send.deadline if send.deadline is not None else send.sent_at + windows[send.channel]
        )
        found.append((event, ms_from_datetime(deadline)))
    return found


def _now_ms(now: datetime | None) -> int:
    return ms_from_datetime(datetime.now(timezone.utc) if now is None else _aware("now", now))


def overdue(store: Store, now: datetime | None, limit: int) -> list[MessageState]:
    """Up to ``limit`` messages due by ``now`` (default: the clock), by deadline then id."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, not {limit!r}")
    return store.overdue(_now_ms(now), limit)


def sweep(store: Store, policy: Policy, now: datetime | None) -> Summary:
    """Give every message due by ``now`` a local EXPIRED dated at its deadline."""
    now_ms = _now_ms(now)
    total = Summary()
    after: tuple[int, str] | None = None
    while True:
        page = store.overdue(now_ms, SWEEP_BATCH, after)
        if not page:
            return total
        events = []
        for state in page:
            assert state.deadline_ms is not None  # only messages with a deadline are due
            events.append(
                StatusEvent.from_ms(
                    state.message_id,
                    Status.EXPIRED,
                    state.deadline_ms,
                    state.channel,
                    None,
                    Origin.LOCAL,
                )
            )
        total += store.apply_many(events, policy)
        last = page[-1]
        assert last.deadline_ms is not None
        after = (last.deadline_ms, last.message_id)
        if len(page) < SWEEP_BATCH:
            return total
