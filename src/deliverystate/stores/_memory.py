"""MemoryStore: the default store, a dict of compact records guarded by one lock.

Good for tests, for a single process, and as the reference the SQL stores are
checked against.  Each message is kept as a ``batch.Record`` (one integer
holding the precedence key and the channel; client ids in a second
dictionary) and turned into a :class:`MessageState` when asked for, which
keeps a tracked message under 300 bytes, message id included, and out of the
garbage collector's way.  Records
only mean something under the policy that made them, so the store remembers
the first policy it is used with and refuses another (``PolicyMismatch``).

With ``history=True`` (the default) it keeps every report with its outcome and
recognises duplicates by (message id, code, timestamp) even when the repeated
report is not the current winner; with ``history=False`` it keeps only the
records, and a repeat of a report that lost is counted as STALE, not DUPLICATE.
The change feed (``_memfeed``) is kept when history is, unless ``feed`` says
otherwise.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone

from ..errors import PolicyMismatch
from ..rules._catalog import Origin, Status
from ..rules._events import Change, MessageState, StatusEvent
from ..rules._policy import Policy
from ..rules._reconcile import Decision, Outcome
from ..rules._records import (
    SETTLED,
    Archived,
    DeadLetter,
    HistoryEntry,
    Intake,
    Keep,
    Listed,
    MessageQuery,
    Milestones,
    Summary,
)
from ._memfeed import MemoryFeed
from ._work import KEY_MASK, Batch, Record, state_of, status_of

__all__ = ["MemoryStore"]


def _matches(query: MessageQuery, listed: Listed) -> bool:
    """Whether a listed message passes every filter ``query`` sets (as the SQL stores read it)."""
    state, first = listed.state, listed.first_ms
    return (
        (not query.statuses or state.status in query.statuses)
        and (query.channel is None or state.channel == query.channel)
        and (query.since_ms is None or first >= query.since_ms)
        and (query.until_ms is None or first < query.until_ms)
        and (
            query.due_by_ms is None
            or (
                state.is_due
                and state.deadline_ms is not None
                and state.deadline_ms <= query.due_by_ms
            )
        )
        and (query.client_message_id is None or state.client_message_id == query.client_message_id)
    )


class MemoryStore(MemoryFeed):
    """States (and optionally history and the change feed) in process memory; thread-safe."""

    #: What output calls this store, as the SQL stores' ``target`` names theirs.
    target = ":memory:"

    def __init__(self, *, history: bool = True, feed: bool | None = None) -> None:
        super().__init__(feed=history if feed is None else feed)
        self._records: dict[str, Record] = {}
        self._clients: dict[str, str] = {}
        self._deadlines: dict[str, int] = {}
        self._policy: Policy | None = None
        self._keep_history = history
        self._history: dict[str, list[HistoryEntry]] = {}
        self._seen: dict[str, set[int]] = {}
        self._arrivals = 0
        self._dead: dict[int, DeadLetter] = {}
        self._dead_ids = 0
        self._dead_by_payload: dict[str, int] = {}
        self._inbox: dict[int, str] = {}
        self._inbox_ids = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._records)

    def get(self, message_id: str) -> MessageState | None:
        """The current state of a message, or None."""
        record = self._records.get(message_id)
        if record is None or self._policy is None:
            return None
        return state_of(message_id, record, self._policy, self._clients, self._deadlines)

    def _batch(self, policy: Policy) -> Batch:
        """A unit of work over the store's own dictionaries (call with the lock held)."""
        if self._policy is None:
            self._policy = policy
        elif self._policy.fingerprint != policy.fingerprint:
            raise PolicyMismatch("the memory store", self._policy.name, policy.name)
        seen = self._seen if self._keep_history else None
        return Batch(
            self._records,
            self._clients,
            seen,
            policy,
            track_changes=False,
            feed=self.feed,
            deadlines=self._deadlines,
        )

    def _run(self, events: Iterable[StatusEvent], policy: Policy) -> tuple[Batch, list[Decision]]:
        """Apply reports under the lock through the shared unit of work."""
        events = list(events)  # an iterable that fails must fail before anything changes
        with self._lock:
            batch = self._batch(policy)
            decisions = [batch.apply(event) for event in events]
            changes = self._keep(batch)
        self._hooks.call(changes)
        return batch, decisions

    def _keep(self, batch: Batch) -> list[Change]:
        """Keep a batch's history and changes (with the lock held); the changes."""
        for event, outcome in batch.recorded:
            self._arrivals += 1
            self._history.setdefault(event.message_id, []).append(
                HistoryEntry(event, outcome, self._arrivals)
            )
        return self._append_changes(batch)

    def apply(self, event: StatusEvent, policy: Policy) -> Decision:
        """Reconcile one report under the store's lock."""
        return self._run((event,), policy)[1][0]

    def decide_many(self, events: Sequence[StatusEvent], policy: Policy) -> list[Decision]:
        """Reconcile reports under one lock acquisition, a Decision each."""
        return self._run(events, policy)[1]

    def apply_many(self, events: Iterable[StatusEvent], policy: Policy) -> Summary:
        """Reconcile a batch under one lock acquisition, without a Decision per event."""
        events = list(events)  # an iterable that fails must fail before anything changes
        with self._lock:
            batch = self._batch(policy)
            batch.absorb(events)
            changes = self._keep(batch)
        self._hooks.call(changes)
        return batch.summary()

    def register_many(self, sends: Sequence[tuple[StatusEvent, int]], policy: Policy) -> Summary:
        """Apply registered sends' QUEUED reports and deadlines under one lock acquisition."""
        sends = list(sends)
        with self._lock:
            batch = self._batch(policy)
            for event, deadline_ms in sends:
                batch.register(event, deadline_ms)
            changes = self._keep(batch)
        self._hooks.call(changes)
        return batch.summary()

    def restore_many(
        self,
        archived: Sequence[StatusEvent],
        registrations: Sequence[tuple[StatusEvent, int]],
        events: Sequence[StatusEvent],
        policy: Policy,
    ) -> Summary:
        """Restore archived messages (no change in the feed), then apply ``events``, one lock."""
        with self._lock:
            batch = self._batch(policy)
            summary = batch.restore(archived, registrations, events)
            changes = self._keep(batch)
        self._hooks.call(changes)
        return summary

    def overdue(
        self, now_ms: int, limit: int, after: tuple[int, str] | None = None
    ) -> list[MessageState]:
        """Messages due by ``now_ms`` (``MessageState.is_due``), by deadline then id.

        Scans the registered messages: a memory store holds few enough.
        """
        with self._lock:
            policy = self._policy
            if policy is None:
                return []
            found = []
            for message_id, deadline in self._deadlines.items():
                if deadline > now_ms or (after is not None and (deadline, message_id) <= after):
                    continue
                state = state_of(
                    message_id, self._records[message_id], policy, self._clients, self._deadlines
                )
                if state.is_due:
                    found.append(state)
        found.sort(key=lambda state: (state.deadline_ms, state.message_id))
        return found[:limit]

    def messages(
        self, query: MessageQuery, limit: int, before: tuple[int, str] | None = None
    ) -> list[Listed]:
        """Messages ``query`` matches, newest first: a scan of every message, then a sort."""
        with self._lock:
            policy = self._policy
            if policy is None:
                return []
            found = []
            for message_id, record in self._records.items():
                state = state_of(message_id, record, policy, self._clients, self._deadlines)
                entries = self._history.get(message_id)
                first = min((e.event.timestamp_ms for e in entries), default=0) if entries else 0
                listed = Listed(first or state.timestamp_ms, state)
                if _matches(query, listed) and (
                    before is None or (listed.first_ms, message_id) < before
                ):
                    found.append(listed)
        found.sort(key=lambda item: (item.first_ms, item.state.message_id), reverse=True)
        return found[:limit]

    def count_overdue(self, now_ms: int) -> int:
        """How many messages are due by ``now_ms``."""
        return len(self.overdue(now_ms, len(self._deadlines) + 1))

    def count_local_expiries(self) -> int:
        """How many messages are EXPIRED by a local report (a sweep), not by Clickatell."""
        with self._lock:
            policy = self._policy
            if policy is None:
                return 0
            return sum(
                1
                for record in self._records.values()
                if status_of(record, policy) is Status.EXPIRED
                and policy.origin_of(record & KEY_MASK) is Origin.LOCAL
            )

    def intake(
        self,
        bodies: Sequence[tuple[str, Sequence[StatusEvent]]],
        invalid: Sequence[tuple[str, str]],
        policy: Policy,
    ) -> Intake:
        """Keep invalid bodies, apply valid ones: under one lock (memory refuses no row)."""
        groups = [list(events) for _, events in bodies]
        letters = tuple(self.add_dead_letter(text, error) for text, error in invalid)
        with self._lock:
            batch = self._batch(policy)
            summaries = batch.absorb_groups(groups)
            changes = self._keep(batch)
        self._hooks.call(changes)
        return Intake(tuple(summaries), letters)

    def accept(self, payloads: Sequence[str]) -> list[int]:
        """Keep received bodies until they are settled."""
        with self._lock:
            ids = []
            for payload in payloads:
                self._inbox_ids += 1
                self._inbox[self._inbox_ids] = payload
                ids.append(self._inbox_ids)
            return ids

    def settle(
        self, items: Sequence[tuple[int, Sequence[StatusEvent]]], policy: Policy
    ) -> list[Summary]:
        """Apply kept bodies' events and forget the bodies under one lock."""
        groups = [list(events) for _, events in items]
        with self._lock:
            batch = self._batch(policy)
            summaries = batch.absorb_groups(groups)
            changes = self._keep(batch)
            for inbox_id, _ in items:
                self._inbox.pop(inbox_id, None)
        self._hooks.call(changes)
        return summaries

    def pending(self) -> Sequence[tuple[int, str]]:
        """Bodies accepted but not settled, oldest first."""
        with self._lock:
            return sorted(self._inbox.items())

    def count_pending(self) -> int:
        """How many bodies are accepted but not settled."""
        return len(self._inbox)

    def quarantine(self, inbox_id: int, error: str) -> DeadLetter | None:
        """Move a kept body that cannot be applied to the dead letter; None if it is gone."""
        with self._lock:
            payload = self._inbox.pop(inbox_id, None)
        return None if payload is None else self.add_dead_letter(payload, error)

    def ping(self) -> None:
        """A memory store always answers."""

    def _last_report_ms(self, message_id: str, state: MessageState) -> int:
        entries = self._history.get(message_id)
        if not entries:  # no history kept: the winning report is all there is to go by
            return state.timestamp_ms
        return max(entry.event.timestamp_ms for entry in entries)

    def _is_prunable(self, message_id: str, before_ms: int) -> bool:
        state = self.get(message_id)
        return (
            state is not None
            and state.status in SETTLED
            and self._last_report_ms(message_id, state) < before_ms
        )

    def prunable(
        self, before_ms: int, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Settled messages whose last report is before ``before_ms``, scanning in id order."""
        with self._lock:
            ids = sorted(m for m in self._records if after is None or m > after)[:limit]
            found = [m for m in ids if self._is_prunable(m, before_ms)]
        return found, (ids[-1] if len(ids) == limit else None)

    def remove(self, message_ids: Sequence[str], before_ms: int, keep: Keep | None = None) -> int:
        """Remove those messages that are still settled and old, ``keep``-ing them first."""
        with self._lock:
            doomed = [m for m in sorted(set(message_ids)) if self._is_prunable(m, before_ms)]
            if keep is not None and doomed:
                keep(
                    [
                        Archived(
                            state_of(
                                m,
                                self._records[m],
                                self._require_policy(),
                                self._clients,
                                self._deadlines,
                            ),
                            tuple(sorted(self._history.get(m, ()), key=lambda e: e.arrival)),
                        )
                        for m in doomed
                    ]
                )
            for message_id in doomed:
                del self._records[message_id]
                self._clients.pop(message_id, None)
                self._deadlines.pop(message_id, None)
                self._history.pop(message_id, None)
                self._seen.pop(message_id, None)
            return len(doomed)

    def _require_policy(self) -> Policy:
        assert self._policy is not None  # a store holding records has seen a policy
        return self._policy

    def advance(self, event: StatusEvent, policy: Policy) -> MessageState:
        """Strictly step a message; raise ``IllegalTransition`` and change nothing if illegal."""
        with self._lock:
            batch = self._batch(policy)
            state = batch.advance(event)
            changes = self._keep(batch)
        self._hooks.call(changes)
        return state

    def history(self, message_id: str) -> Sequence[HistoryEntry]:
        """The reports about a message by event time, then arrival; empty without history."""
        entries = self._history.get(message_id, [])
        return sorted(entries, key=lambda entry: (entry.event.timestamp_ms, entry.arrival))

    def count_by_status(self) -> Mapping[Status, int]:
        """How many messages are in each status."""
        with self._lock:
            policy = self._policy
            if policy is None:
                return {}
            return dict(Counter(status_of(record, policy) for record in self._records.values()))

    def milestones(self, since_ms: int | None = None) -> Iterable[Milestones]:
        """First report, first delivery and first read of each message, from history."""
        with self._lock:
            timelines = [list(entries) for entries in self._history.values()]
        for entries in timelines:
            if since_ms is not None and min(e.event.timestamp_ms for e in entries) < since_ms:
                continue
            accepted = [e.event for e in entries if e.outcome is not Outcome.REJECTED]
            if not accepted:
                continue
            delivered = [e.timestamp_ms for e in accepted if e.status.is_delivered]
            read = [e.timestamp_ms for e in accepted if e.status is Status.READ]
            yield Milestones(
                accepted[0].message_id,
                min(e.event.timestamp_ms for e in entries),
                min(delivered, default=None),
                min(read, default=None),
                max((e.channel for e in accepted if e.channel), default=None),
            )

    def count_by_channel(
        self, since_ms: int | None = None
    ) -> Mapping[tuple[str | None, Status], int]:
        """How many messages are in each (channel, status), first reported since ``since_ms``."""
        counts: Counter[tuple[str | None, Status]] = Counter()
        for listed in self.messages(MessageQuery(since_ms=since_ms), len(self._records) + 1):
            counts[listed.state.channel, listed.state.status] += 1
        return dict(counts)

    def add_dead_letter(self, payload: str, error: str) -> DeadLetter:
        """Keep a payload that could not be parsed; the same payload is kept once."""
        with self._lock:
            known = self._dead_by_payload.get(payload)
            if known is not None and known in self._dead:
                return self._dead[known]
            self._dead_ids += 1
            letter = DeadLetter(self._dead_ids, payload, error, datetime.now(timezone.utc))
            self._dead[letter.id] = letter
            self._dead_by_payload[payload] = letter.id
            return letter

    def dead_letters(self, newest: int | None = None) -> Sequence[DeadLetter]:
        """The dead letters, oldest first (only the ``newest`` few, if given)."""
        with self._lock:
            letters = list(self._dead.values())
        return letters if newest is None else letters[len(letters) - min(newest, len(letters)) :]

    def count_dead_letters(self) -> int:
        """How many dead letters are kept."""
        return len(self._dead)

    def remove_dead_letter(self, letter_id: int) -> None:
        """Forget a dead letter (after it was re-applied)."""
        with self._lock:
            letter = self._dead.pop(letter_id, None)
            if letter is not None:
                self._dead_by_payload.pop(letter.payload, None)
