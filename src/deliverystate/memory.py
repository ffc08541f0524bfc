"""MemoryStore: the default store, a dict of states guarded by one lock.

Good for tests, for a single process, and as the reference the SQL stores are
checked against.  With ``history=True`` (the default) it keeps every report
with its outcome and recognises duplicates by (message id, code, timestamp)
even when the repeated report is not the current winner; with
``history=False`` it keeps only the states (about 200 bytes a message) and a
repeat of a report that lost is counted as STALE, not DUPLICATE.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone

import attrs

from .catalog import Status
from .events import MessageState, StatusEvent
from .lifecycle import step
from .policy import Policy
from .reconcile import Decision, Outcome, decide, rejection_reason
from .store import DeadLetter, HistoryEntry, Summary

__all__ = ["MemoryStore"]


class MemoryStore:
    """States (and optionally history) in process memory; thread-safe."""

    def __init__(self, *, history: bool = True) -> None:
        self._states: dict[str, MessageState] = {}
        self._keep_history = history
        self._history: dict[str, list[HistoryEntry]] = {}
        self._seen: dict[str, set[int]] = {}
        self._arrivals = 0
        self._dead: dict[int, DeadLetter] = {}
        self._dead_ids = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, message_id: str) -> MessageState | None:
        """The current state of a message, or None."""
        return self._states.get(message_id)

    def _record(self, event: StatusEvent, outcome: Outcome) -> None:
        self._arrivals += 1
        self._history.setdefault(event.message_id, []).append(
            HistoryEntry(event, outcome, self._arrivals)
        )

    def _apply_locked(self, event: StatusEvent, policy: Policy) -> Decision:
        state = self._states.get(event.message_id)
        decision = decide(state, event, policy)
        if decision.state is not state:
            self._states[event.message_id] = decision.state
        if self._keep_history:
            fingerprint = event.timestamp_ms << 8 | event.status
            seen = self._seen.setdefault(event.message_id, set())
            if fingerprint in seen:
                if decision.outcome is Outcome.STALE:
                    # a repeat of a report that is not the current winner (it may
                    # still have taught the state its channel or client id)
                    decision = attrs.evolve(decision, outcome=Outcome.DUPLICATE)
                if decision.outcome is not Outcome.APPLIED:
                    return decision  # repeats are not stored twice
            seen.add(fingerprint)
            self._record(event, decision.outcome)
        return decision

    def apply(self, event: StatusEvent, policy: Policy) -> Decision:
        """Reconcile one report under the store's lock."""
        with self._lock:
            return self._apply_locked(event, policy)

    def apply_many(self, events: Iterable[StatusEvent], policy: Policy) -> Summary:
        """Reconcile a batch under one lock acquisition."""
        if self._keep_history:
            counts: Counter[Outcome] = Counter()
            rejected: list[Decision] = []
            with self._lock:
                for event in events:
                    decision = self._apply_locked(event, policy)
                    counts[decision.outcome] += 1
                    if decision.outcome is Outcome.REJECTED:
                        rejected.append(decision)
            return Summary(
                counts[Outcome.APPLIED],
                counts[Outcome.STALE],
                counts[Outcome.DUPLICATE],
                tuple(rejected),
            )
        return self._apply_many_fast(events, policy)

    def _apply_many_fast(self, events: Iterable[StatusEvent], policy: Policy) -> Summary:
        """The hot loop: integer key comparisons, no Decision per event.

        Reports that could be rejected or that teach the state something new
        (channel, client message id) take the general path through ``decide``.
        """
        offset, scale = policy.offset, policy.scale
        applied = stale = duplicate = 0
        rejected: list[Decision] = []
        with self._lock:
            states = self._states
            get = states.get
            for event in events:
                message_id = event.message_id
                state = get(message_id)
                if state is None:
                    states[message_id] = MessageState.from_event(event)
                    applied += 1
                    continue
                if event.channel != state.channel or (
                    event.client_message_id is not None and state.client_message_id is None
                ):
                    decision = decide(state, event, policy)
                    states[message_id] = decision.state
                    if decision.outcome is Outcome.APPLIED:
                        applied += 1
                    elif decision.outcome is Outcome.STALE:
                        stale += 1
                    elif decision.outcome is Outcome.DUPLICATE:
                        duplicate += 1
                    else:
                        rejected.append(decision)
                    continue
                status = event.status
                new_key = offset[status] + scale[status] * event.timestamp_ms
                old = state.status
                old_key = offset[old] + scale[old] * state.timestamp_ms
                if new_key > old_key:
                    states[message_id] = MessageState(
                        message_id,
                        status,
                        event.timestamp_ms,
                        state.channel,
                        state.client_message_id,
                    )
                    applied += 1
                elif new_key == old_key:
                    duplicate += 1
                else:
                    stale += 1
        return Summary(applied, stale, duplicate, tuple(rejected))

    def advance(self, event: StatusEvent) -> MessageState:
        """Strictly step a message; raise ``IllegalTransition`` and change nothing if illegal."""
        with self._lock:
            state = self._states.get(event.message_id)
            if state is None:
                new = MessageState.from_event(event)
            else:
                reason = rejection_reason(state, event)
                if reason is not None:
                    raise ValueError(f"cannot advance message {event.message_id!r}: {reason}")
                step(state.status, event.status, event.message_id)
                new = MessageState(
                    event.message_id,
                    event.status,
                    event.timestamp_ms,
                    state.channel or event.channel,
                    state.client_message_id or event.client_message_id,
                )
            self._states[event.message_id] = new
            if self._keep_history:
                self._seen.setdefault(event.message_id, set()).add(
                    event.timestamp_ms << 8 | event.status
                )
                self._record(event, Outcome.APPLIED)
            return new

    def history(self, message_id: str) -> Sequence[HistoryEntry]:
        """The reports about a message by event time, then arrival; empty without history."""
        entries = self._history.get(message_id, [])
        return sorted(entries, key=lambda entry: (entry.event.timestamp_ms, entry.arrival))

    def count_by_status(self) -> Mapping[Status, int]:
        """How many messages are in each status."""
        with self._lock:
            return dict(Counter(state.status for state in self._states.values()))

    def add_dead_letter(self, payload: str, error: str) -> DeadLetter:
        """Keep a payload that could not be parsed."""
        with self._lock:
            self._dead_ids += 1
            letter = DeadLetter(self._dead_ids, payload, error, datetime.now(timezone.utc))
            self._dead[letter.id] = letter
            return letter

    def dead_letters(self) -> Sequence[DeadLetter]:
        """The dead letters, oldest first."""
        with self._lock:
            return list(self._dead.values())

    def remove_dead_letter(self, letter_id: int) -> None:
        """Forget a dead letter (after it was re-applied)."""
        with self._lock:
            self._dead.pop(letter_id, None)
