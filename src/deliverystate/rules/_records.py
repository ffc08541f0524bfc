"""What stores hold and hand back: plain records, importable without loading any store.

The tracker, the command line and the web pages pass these around; keeping
them here rather than beside the store protocol means reading a
:class:`Summary` or a :class:`DeadLetter` does not import SQLite, and a store
of one's own builds them without depending on ours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import attrs

from ._catalog import Kind, Status
from ._events import Change, MessageState, StatusEvent
from ._reconcile import Decision, Outcome

__all__ = [
    "SETTLED",
    "Archived",
    "DeadLetter",
    "HistoryEntry",
    "Intake",
    "Keep",
    "Listed",
    "MessageQuery",
    "Milestones",
    "Summary",
    "Undeliverable",
    "length_of",
]


@attrs.frozen
class HistoryEntry:
    """One report as it was received: the event, what it did, and its arrival number."""

    event: StatusEvent
    outcome: Outcome
    arrival: int


@attrs.frozen
class Milestones:
    """When a message was first reported, first delivered and first read (ms since the epoch).

    ``first_ms`` is the time of its earliest report, as the message list
    orders by; the delivery and read times come from the accepted reports
    only (a rejected report is no evidence about this message), and
    ``delivered_ms`` counts a READ as a delivery too, since a read message was
    delivered at the latest when it was read.
    """

    message_id: str
    first_ms: int
    delivered_ms: int | None
    read_ms: int | None
    #: The channel the accepted reports name (None when none of them does).
    channel: str | None = None


@attrs.frozen
class DeadLetter:
    """A payload that could not be parsed, kept or applied, verbatim, with its error and arrival.

    Bodies that parse but that the inbox refuses, or that fail to apply even on
    their own while the store works, are kept here too (``Store.quarantine``),
    so that one poison body never holds up the others.
    """

    id: int
    payload: str
    error: str
    received_at: datetime


@attrs.frozen
class Undeliverable:
    """A change a forwarder gave up delivering to its consumer, kept to be seen and resent."""

    consumer: str
    change: Change
    error: str
    failed_at: datetime


def length_of(field: str) -> int:
    """An attrs default: the length of the record's own ``field``, a count kept beside its list.

    For an ``init=False`` field, so that the count can never disagree with
    the list it counts.
    """
    return attrs.Factory(lambda record: len(getattr(record, field)), takes_self=True)


@attrs.frozen
class Summary:
    """Counts of outcomes for a batch, and the rejected decisions in full.

    Every field named like an outcome is an int (a webhook may serialise the
    counts as they are); the decisions are ``rejections``, and ``rejected``
    is how many there are, made from them.
    """

    applied: int = 0
    stale: int = 0
    duplicate: int = 0
    rejections: tuple[Decision, ...] = ()
    rejected: int = attrs.field(init=False, default=length_of("rejections"))

    @property
    def total(self) -> int:
        """How many events the batch held."""
        return self.applied + self.stale + self.duplicate + self.rejected

    def count(self, outcome: Outcome) -> int:
        """How many events of the batch had ``outcome``."""
        return int(getattr(self, outcome.value))

    def __add__(self, other: Summary) -> Summary:
        return Summary(
            self.applied + other.applied,
            self.stale + other.stale,
            self.duplicate + other.duplicate,
            self.rejections + other.rejections,
        )


@attrs.frozen
class Intake:
    """What :meth:`Store.intake` did with a group of bodies, in the order it was given them.

    ``bodies`` holds, per valid body, its :class:`Summary`, or the
    :class:`DeadLetter` it was kept in when the store refused it on its own;
    ``letters`` the dead letter of each invalid body.
    """

    bodies: tuple[Summary | DeadLetter, ...]
    letters: tuple[DeadLetter, ...] = ()


@attrs.frozen
class MessageQuery:
    """Which messages a list asks for; every field left empty matches every message.

    ``since_ms`` and ``until_ms`` bound the time of a message's first report
    (about when it was sent), ``due_by_ms`` keeps the messages overdue at that
    time (``MessageState.is_due``), ``statuses`` the messages in one of them.
    """

    statuses: frozenset[Status] = frozenset()
    channel: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    due_by_ms: int | None = None
    client_message_id: str | None = None


@attrs.frozen
class Listed:
    """A message in a list: its state, and its first report's time, which orders the list."""

    first_ms: int
    state: MessageState


#: The statuses retention may remove a message in: every status that is not still
#: on its way (a failure, READ, and DEVICE_ACK).  DEVICE_ACK is where an SMS ends
#: (SMS has no read receipts), so a rule of terminal statuses only would keep every
#: delivered SMS for ever.  A READ that comes after its DEVICE_ACK message was pruned
#: starts the message afresh; replaying the archive merges the two.  Every store
#: selects by this set (the SQL stores build their condition from it), so the rule
#: is written once.
SETTLED: frozenset[Status] = frozenset(s for s in Status if s.kind is not Kind.PROGRESS)


@attrs.frozen
class Archived:
    """A message as retention removed it: its last state and every report about it."""

    state: MessageState
    history: tuple[HistoryEntry, ...]


#: What retention hands removed messages to before deleting them (an archive writer).
Keep = Callable[[Sequence[Archived]], None]
