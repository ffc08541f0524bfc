"""The unit of work every store runs inside its lock or transaction.

A store loads the current states (and, where it keeps history, the
fingerprints of the reports already seen) of the messages a batch mentions,
runs the batch through :class:`Batch` while it holds the lock, and writes back
``changed`` and ``recorded``.  All stores share this one piece of code, so an
SQL store reaches exactly the states and outcomes the memory store reaches:
the rules live in ``reconcile`` and nowhere else.

A fingerprint identifies a report for duplicate detection: (message id,
status code, timestamp), packed per message as ``timestamp_ms << 8 | code``.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from .events import MessageState, StatusEvent
from .lifecycle import step
from .policy import Policy
from .reconcile import Decision, Outcome, decide, rejection_reason
from .store import Summary

__all__ = ["Batch", "fingerprint"]


def fingerprint(status: int, timestamp_ms: int) -> int:
    """The per-message identity of a report: same code and timestamp, same report."""
    return timestamp_ms << 8 | status


class Batch:
    """Applies reports to a working set of states, recording what a store must write.

    ``states`` and ``seen`` are updated in place (the memory store passes its
    own dictionaries); ``seen=None`` means the store keeps no history, and then
    only a repeat of the current winner is recognised as a duplicate.
    """

    def __init__(
        self,
        states: dict[str, MessageState],
        seen: dict[str, set[int]] | None,
        policy: Policy | None = None,
    ) -> None:
        self.states = states
        self.seen = seen
        self.policy = policy
        self.changed: dict[str, MessageState] = {}
        self.recorded: list[tuple[StatusEvent, Outcome]] = []
        self.applied = self.stale = self.duplicate = 0
        self.rejected: list[Decision] = []

    def apply(self, event: StatusEvent) -> Decision:
        """Reconcile one report against the working set and tally its outcome."""
        assert self.policy is not None, "a Batch that applies reports needs a policy"
        message_id = event.message_id
        state = self.states.get(message_id)
        decision = decide(state, event, self.policy)
        if decision.state is not state:
            self.states[message_id] = self.changed[message_id] = decision.state
        if self.seen is not None:
            mark = fingerprint(event.status, event.timestamp_ms)
            seen = self.seen.setdefault(message_id, set())
            if mark in seen:
                if decision.outcome is Outcome.STALE:
                    # a repeat of a report that is not the current winner (it may
                    # still have taught the state its channel or client id)
                    decision = attrs.evolve(decision, outcome=Outcome.DUPLICATE)
                if decision.outcome is not Outcome.APPLIED:
                    return self._tally(decision)  # repeats are not stored twice
            seen.add(mark)
            self.recorded.append((event, decision.outcome))
        return self._tally(decision)

    def absorb(self, events: Iterable[StatusEvent]) -> None:  # noqa: PLR0912 - one flat hot loop
        """Apply many reports without building a Decision for each: the hot path.

        Same states, outcomes and history as calling :meth:`apply` on each
        report (the tests hold it to that).  Reports that create a message
        take a short path; reports that could be rejected or that teach the
        state something new (channel, client message id) take :meth:`apply`.
        """
        assert self.policy is not None, "a Batch that applies reports needs a policy"
        offset, scale = self.policy.offset, self.policy.scale
        states, changed, every_seen, recorded = self.states, self.changed, self.seen, self.recorded
        applied = stale = duplicate = 0
        for event in events:
            message_id = event.message_id
            state = states.get(message_id)
            if state is None:
                states[message_id] = changed[message_id] = MessageState.from_event(event)
                applied += 1
                if every_seen is not None:
                    every_seen.setdefault(message_id, set()).add(
                        event.timestamp_ms << 8 | event.status
                    )
                    recorded.append((event, Outcome.APPLIED))
                continue
            if event.channel != state.channel or (
                event.client_message_id is not None and state.client_message_id is None
            ):
                self.apply(event)
                continue
            status, timestamp_ms = event.status, event.timestamp_ms
            new_key = offset[status] + scale[status] * timestamp_ms
            old = state.status
            old_key = offset[old] + scale[old] * state.timestamp_ms
            if every_seen is not None:
                mark = timestamp_ms << 8 | status
                seen = every_seen.get(message_id)
                if seen is None:
                    seen = every_seen[message_id] = set()
                if mark in seen:
                    if new_key <= old_key:
                        duplicate += 1  # a repeat: not stored twice
                        continue
                else:
                    seen.add(mark)
            if new_key > old_key:
                states[message_id] = changed[message_id] = MessageState(
                    message_id, status, timestamp_ms, state.channel, state.client_message_id
                )
                applied += 1
                outcome = Outcome.APPLIED
            elif new_key == old_key:
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
        state = self.states.get(message_id)
        if state is None:
            new = MessageState.from_event(event)
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
            )
        self.states[message_id] = self.changed[message_id] = new
        if self.seen is not None:
            self.seen.setdefault(message_id, set()).add(
                fingerprint(event.status, event.timestamp_ms)
            )
            self.recorded.append((event, Outcome.APPLIED))
        self.applied += 1
        return new

    def summary(self) -> Summary:
        """The outcome counts of everything this batch applied."""
        return Summary(self.applied, self.stale, self.duplicate, tuple(self.rejected))
