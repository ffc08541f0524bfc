"""The unit of work every store runs inside its lock or transaction.

Theory of operation
-------------------
A store loads the records of the messages a batch mentions (and, where it
keeps history, the fingerprints of the reports already seen), runs the batch
through :class:`Batch` while it holds its lock, and writes back ``changed``
and ``recorded``.  All stores share this one piece of code, so an SQL store
reaches exactly the states and outcomes the memory store reaches; the rules
themselves live in ``reconcile`` and nowhere else.

A *record* is the compact form of a :class:`MessageState` that the hot path
works on: one integer, ``flags << 56 | precedence key``.  The key packs the
status and timestamp (``Policy.decode`` unpacks them), so comparing a report
with the current state is one integer comparison; the flags hold the channel
(2 bits) and whether a client message id is known (1 bit), the id itself
living in a separate ``clients`` dictionary that is touched only when an id is
first learned or a state is read.  A dictionary of strings to integers is
never traversed by Python's cyclic garbage collector, so a million tracked
messages cost the collector nothing and each costs one int and one dictionary
slot besides its id (see ``bench/run.py`` for what that buys).  Records are
only meaningful with the policy that made them, which is why stores record
their policy.

:meth:`Batch.absorb` is the hot loop: reports that can neither be rejected nor
teach the state anything new are settled by comparing keys; every other report
goes through :meth:`Batch.apply`, which decodes the record and calls
``reconcile.decide``.  The tests hold both paths to the same results.

A fingerprint identifies a report for duplicate detection: (message id,
status code, timestamp, origin), packed per message as ``timestamp_ms << 8 |
code`` (complemented for a local report).

Deadlines (see :meth:`Batch.register`) are kept beside the records, like
client ids, in a ``deadlines`` dictionary holding registered messages only:
reconciliation never reads them.  Local reports (registrations, a sweep's
expiries) are few and always take :meth:`Batch.apply`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from ..rules._catalog import Kind, Origin, Status
from ..rules._events import Change, MessageState, StatusEvent
from ..rules._lifecycle import step
from ..rules._policy import Policy
from ..rules._reconcile import (
    FINGERPRINT_SHIFT,
    Decision,
    Outcome,
    decide,
    fingerprint,
    rejection_reason,
)
from ..rules._records import Summary

__all__ = [
    "KEY_MASK",
    "Batch",
    "FeedEntry",
    "Record",
    "StateRow",
    "change_of",
    "record_of",
    "state_of",
    "status_of",
]

#: A status change noted by a batch, as the feed's row without its seq: message id,
#: previous code (None: a new message), new code, the time of the report that made
#: it, the message's channel and client id as known then, and whether the report
#: was local.  Stores write these as they are (SQLite numbers them itself) and
#: build :class:`Change` objects only for hooks, when there are any (see
#: :func:`change_of`).
FeedEntry = tuple[str, int | None, int, int, str | None, str | None, bool]


def change_of(seq: int, entry: FeedEntry) -> Change:
    """The :class:`Change` numbered ``seq`` that a feed entry stands for."""
    message_id, previous, status, timestamp_ms, channel, client, local = entry
    return Change(
        seq,
        message_id,
        None if previous is None else Status.from_code(previous),
        Status.from_code(status),
        timestamp_ms,
        channel,
        client,
        Origin.LOCAL if local else Origin.CLICKATELL,
    )


#: flags << 56 | precedence key: a message's state, compactly (see the module docstring).
Record = int
#: A message's state as a table row, in the order of ``_columns.COMPUTED``: id,
#: code, timestamp, precedence, channel, client id, whether the winning report is local,
#: deadline, and ``due``: the deadline while a sweep past it has something to do
#: (``MessageState.is_due``), else None.
StateRow = tuple[str, int, int, int, str | None, str | None, int, int | None, int | None]

_FLAG_SHIFT = 56
KEY_MASK = (1 << _FLAG_SHIFT) - 1
_CHANNEL_CODE: dict[str | None, int] = {None: 0, "sms": 1, "whatsapp": 2}
_CHANNEL_OF: tuple[str | None, ...] = (None, "sms", "whatsapp")
_HAS_CLIENT = 4


def record_of(state: MessageState, policy: Policy) -> Record:
    """The compact record of a state under ``policy`` (client id and deadline kept apart)."""
    flags = _CHANNEL_CODE[state.channel] | (_HAS_CLIENT if state.client_message_id else 0)
    return flags << _FLAG_SHIFT | policy.key(state.status, state.timestamp_ms, state.origin)


def status_of(record: Record, policy: Policy) -> Status:
    """The status a record stands for under ``policy``."""
    return policy.decode(record & KEY_MASK)[0]


def state_of(
    message_id: str,
    record: Record,
    policy: Policy,
    clients: dict[str, str],
    deadlines: dict[str, int] | None = None,
) -> MessageState:
    """The state a record (and the client id and deadline beside it) stands for."""
    key = record & KEY_MASK
    status, timestamp_ms = policy.decode(key)
    channel = _CHANNEL_OF[record >> _FLAG_SHIFT & 3]
    deadline = None if deadlines is None else deadlines.get(message_id)
    return MessageState(
        message_id,
        status,
        timestamp_ms,
        channel,
        clients.get(message_id),
        policy.origin_of(key),
        deadline,
    )


class Batch:
    """Applies reports to a working set of records, noting what a store must write.

    ``records``, ``clients`` and ``seen`` are updated in place (the memory
    store passes its own dictionaries).  ``seen=None`` means the store keeps no history; then
    only a repeat of the current winner is recognised as a duplicate.
    ``changed`` lists the records to write back unless ``track_changes`` is
    off (the memory store's dictionary is its storage already).
    ``deadlines`` holds the deadlines of registered messages.  With
    ``feed``, every change of a message's *status* (not a re-dating within a
    status, not a channel learned) is noted in ``feed``, in order, for the
    store to write to its change feed in the same transaction.
    """

    def __init__(
        self,
        records: dict[str, Record],
        clients: dict[str, str],
        seen: dict[str, set[int]] | None,
        policy: Policy,
        *,
        track_changes: bool = True,
        feed: bool = False,
        deadlines: dict[str, int] | None = None,
    ) -> None:
        self.records = records
        self.clients = clients
        self.deadlines: dict[str, int] = {} if deadlines is None else deadlines
        self.seen = seen
        self.policy = policy
        self.changed: dict[str, Record] = {}
        self.feed: list[FeedEntry] | None = [] if feed else None
        self.track_changes = track_changes
        self.recorded: list[tuple[StatusEvent, Outcome]] = []
        self.applied = self.stale = self.duplicate = 0
        self.rejected: list[Decision] = []

    def state(self, message_id: str) -> MessageState | None:
        """The current state of a message in this batch's working set."""
        record = self.records.get(message_id)
        if record is None:
            return None
        return state_of(message_id, record, self.policy, self.clients, self.deadlines)

    def _put(
        self, message_id: str, state: MessageState, previous: Status | None, origin: Origin
    ) -> None:
        if self.feed is not None and state.status is not previous:
            self.feed.append(
                (
                    message_id,
                    None if previous is None else int(previous),
                    int(state.status),
                    state.timestamp_ms,
                    state.channel,
                    state.client_message_id,
                    origin is Origin.LOCAL,
                )
            )
        record = record_of(state, self.policy)
        self.records[message_id] = record
        if state.client_message_id is not None:
            self.clients[message_id] = state.client_message_id
        if state.deadline_ms is not None:
            self.deadlines[message_id] = state.deadline_ms
        if self.track_changes:
            self.changed[message_id] = record

    def register(self, event: StatusEvent, deadline_ms: int) -> Decision:
        """Apply a registered send's QUEUED report and give the message its deadline.

        Of several registrations of one message the earliest deadline holds,
        whatever their order.  A registration the message rejects (it is on
        another channel) sets no deadline.
        """
        decision = self.apply(event)
        if decision.outcome is Outcome.REJECTED:
            return decision
        state = decision.state
        if state.deadline_ms is None or deadline_ms < state.deadline_ms:
            new = attrs.evolve(state, deadline_ms=deadline_ms)
            self._put(event.message_id, new, state.status, event.origin)
            return attrs.evolve(decision, state=new)
        return decision

    def apply(self, event: StatusEvent) -> Decision:
        """Reconcile one report against the working set and tally its outcome."""
        message_id = event.message_id
        state = self.state(message_id)
        seen = None if self.seen is None else self.seen.setdefault(message_id, set())
        mark = fingerprint(event.status, event.timestamp_ms, event.origin)
        repeat = seen is not None and mark in seen
        decision = decide(state, event, self.policy, repeat=repeat)
        if decision.state != state:
            previous = None if state is None else state.status
            self._put(message_id, decision.state, previous, event.origin)
        if seen is not None and not (repeat and decision.outcome is not Outcome.APPLIED):
            seen.add(mark)  # a repeat is kept in history once
            self.recorded.append((event, decision.outcome))
        return self._tally(decision)

    def restore(
        self,
        archived: Sequence[StatusEvent],
        registrations: Sequence[tuple[StatusEvent, int]],
        events: Iterable[StatusEvent] = (),
    ) -> Summary:
        """Put pruned messages back from an archive, then absorb ``events``; the counts.

        Restoring is not news: a message the working set did not hold comes
        back with no entry in ``feed``, so a feed consumer does not hear again
        what it heard before the message was pruned (and the message's next
        change starts where its last one ended).  A message the working set
        does hold (a report after the prune started it afresh) gets its
        changes noted as usual, so that its changes still follow its status.
        The registrations' reports are in ``archived`` already: they are
        counted there, not twice.  ``events`` (callbacks) follow the restored
        messages, so a report that moves one on is a change from its restored
        status.
        """
        fresh = {event.message_id for event in archived} - self.records.keys()
        noted = len(self.feed) if self.feed is not None else 0
        self.absorb(archived)
        counts = self.applied, self.stale, self.duplicate, len(self.rejected)
        for event, deadline_ms in registrations:
            self.register(event, deadline_ms)
        self.applied, self.stale, self.duplicate = counts[:3]
        del self.rejected[counts[3] :]
        if self.feed is not None and fresh:
            self.feed[noted:] = [entry for entry in self.feed[noted:] if entry[0] not in fresh]
        self.absorb(events)
        return self.summary()

    def absorb(self, events: Iterable[StatusEvent]) -> None:  # noqa: PLR0912, PLR0915 - one flat hot loop
        """Apply many reports without building a Decision for each: the hot path.

        FAST PATH, kept equal to :meth:`apply` by ``tests/test_batch.py``: the rule
        lives in ``reconcile.decide``; this loop inlines the two cases that need no
        decision (a report that creates a message, and one that can neither be
        rejected nor teach the state anything), the policy's key formula and the
        fingerprint written out (a call per report would cost a third of the
        loop).  Others, local reports among them, take :meth:`apply`.
        """
        offset, scale = self.policy.offset, self.policy.scale
        records, clients, recorded = self.records, self.clients, self.recorded
        every_seen = self.seen
        # untracked, writing a record "twice" into ``records`` beats a throwaway dictionary
        changed = self.changed if self.track_changes else records
        get, code_of = records.get, _CHANNEL_CODE
        feed, status_code_of = self.feed, self.policy.code_of
        applied = stale = duplicate = 0
        clickatell, shift = Origin.CLICKATELL, FINGERPRINT_SHIFT
        for event in events:
            if event.origin is not clickatell:  # ranked by the policy's local rows
                self.apply(event)
                continue
            message_id = event.message_id
            record = get(message_id)
            status, timestamp_ms = event.status, event.timestamp_ms
            key = offset[status] + scale[status] * timestamp_ms
            client, channel = event.client_message_id, event.channel
            if record is None:
                flags = code_of[channel]
                if client is not None:
                    flags |= _HAS_CLIENT
                    clients[message_id] = client
                records[message_id] = changed[message_id] = flags << _FLAG_SHIFT | key
                applied += 1
                if feed is not None:
                    feed.append((message_id, None, status, timestamp_ms, channel, client, False))
                if every_seen is not None:
                    every_seen.setdefault(message_id, set()).add(timestamp_ms << shift | status)
                    recorded.append((event, Outcome.APPLIED))
                continue
            flags = record >> _FLAG_SHIFT
            if flags & 3 != code_of[channel] or (client is not None and not flags & _HAS_CLIENT):
                self.apply(event)
                continue
            current = record & KEY_MASK
            if every_seen is not None:
                mark = timestamp_ms << shift | status
                seen = every_seen.get(message_id)
                if seen is None:
                    seen = every_seen[message_id] = set()
                if mark in seen:
                    if key <= current:
                        duplicate += 1  # a repeat: not stored twice
                        continue
                else:
                    seen.add(mark)
            if key > current:
                records[message_id] = changed[message_id] = flags << _FLAG_SHIFT | key
                applied += 1
                outcome = Outcome.APPLIED
                if feed is not None and (previous := status_code_of(current)) != status:
                    # a change, not a re-dating; the channel is the record's (checked above)
                    entry = (message_id, previous, status, timestamp_ms, channel)
                    feed.append((*entry, clients.get(message_id), False))
            elif key == current:
                duplicate += 1
                outcome = Outcome.DUPLICATE
            else:
                stale += 1
                outcome = Outcome.STALE
            if every_seen is not None:
                recorded.append((event, outcome))
        self.applied += applied
        self.stale += stale
        self.duplicate += duplicate

    def _tally(self, decision: Decision) -> Decision:
        outcome = decision.outcome
        if outcome is Outcome.APPLIED:
            self.applied += 1
        elif outcome is Outcome.STALE:
            self.stale += 1
        elif outcome is Outcome.DUPLICATE:
            self.duplicate += 1
        else:
            self.rejected.append(decision)
        return decision

    def advance(self, event: StatusEvent) -> MessageState:
        """Strictly step a message; raise and change nothing when the lifecycle forbids it."""
        message_id = event.message_id
        state = self.state(message_id)
        origin = self.policy.ranks_apart(event.status, event.origin)
        if state is None:
            new = MessageState.from_event(event, origin)
        else:
            reason = rejection_reason(state, event)
            if reason is not None:
                raise ValueError(f"cannot advance message {message_id!r}: {reason}")
            step(state.status, event.status, message_id)
            new = MessageState(
                message_id,
                event.status,
                event.timestamp_ms,
                state.channel or event.channel,
                state.client_message_id or event.client_message_id,
                origin,
                state.deadline_ms,
            )
        self._put(message_id, new, None if state is None else state.status, event.origin)
        if self.seen is not None:
            self.seen.setdefault(message_id, set()).add(
                fingerprint(event.status, event.timestamp_ms, event.origin)
            )
            self.recorded.append((event, Outcome.APPLIED))
        self.applied += 1
        return new

    def rows_of(self, message_ids: Iterable[str]) -> list[StateRow]:
        """Messages' records as table rows (see :data:`StateRow`)."""
        decode, clients, records = self.policy.decode, self.clients, self.records
        deadlines, local_of = self.deadlines, self.policy.origin_of
        rows: list[StateRow] = []
        for message_id in message_ids:
            record = records[message_id]
            key = record & KEY_MASK
            status, timestamp_ms = decode(key)
            channel = _CHANNEL_OF[record >> _FLAG_SHIFT & 3]
            deadline = deadlines.get(message_id)
            local = local_of(key) is Origin.LOCAL
            due = None
            if deadline is not None and (
                status.kind is Kind.PROGRESS
                or (local and status is Status.EXPIRED and timestamp_ms > deadline)
            ):  # MessageState.is_due, without building the state
                due = deadline
            rows.append(
                (
                    message_id,
                    int(status),
                    timestamp_ms,
                    key,
                    channel,
                    clients.get(message_id),
                    int(local),
                    deadline,
                    due,
                )
            )
        return rows

    def absorb_groups(self, groups: Sequence[Iterable[StatusEvent]]) -> list[Summary]:
        """Absorb several groups of reports (one per callback body); a summary for each."""
        summaries = []
        for group in groups:
            applied, stale, duplicate = self.applied, self.stale, self.duplicate
            rejected = len(self.rejected)
            self.absorb(group)
            summaries.append(
                Summary(
                    self.applied - applied,
                    self.stale - stale,
                    self.duplicate - duplicate,
                    tuple(self.rejected[rejected:]),
                )
            )
        return summaries

    def summary(self) -> Summary:
        """The outcome counts of everything this batch applied."""
        return Summary(self.applied, self.stale, self.duplicate, tuple(self.rejected))
