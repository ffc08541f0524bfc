"""Reconciliation: what one status report does to a message's state.

Theory of operation
-------------------
``reconcile(state, event, policy)`` is a pure function (no I/O, no clock).
It first asks whether the report is *possible* for this message: a message
whose channel is known rejects a report from another channel, or a status
that cannot occur on that channel (``REJECTED``; the state is unchanged).
Otherwise it compares precedence keys (see ``policy``):

* greater key: the report wins, ``APPLIED``;
* equal key: the very same report was already the winner, ``DUPLICATE``;
* smaller key: the report is late or outranked, ``STALE`` (kept in history by
  stores that keep history, state unchanged) -- unless the very same report
  (same message, code and timestamp: the same :func:`fingerprint`) was seen
  before, which a store that keeps history knows and passes as ``repeat``:
  then it is a ``DUPLICATE`` too.

An accepted report also teaches the message its channel and client message id
when the state did not know them yet, whatever its outcome; so the final
state is a function of the set of reports whenever those reports agree about
the channel.  Reports that contradict each other about the channel cannot all
be true; the first one seen fixes the channel and the others are rejected.
"""

from __future__ import annotations

import enum

import attrs

from ._catalog import Origin, Status
from ._events import MessageState, StatusEvent
from ._lifecycle import implied_path
from ._policy import Policy

__all__ = [
    "FINGERPRINT_SHIFT",
    "Decision",
    "Outcome",
    "decide",
    "fingerprint",
    "fingerprint_time",
    "reconcile",
    "rejection_reason",
]


class Outcome(enum.Enum):
    """What applying one report did."""

    APPLIED = "applied"
    STALE = "stale"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@attrs.frozen
class Decision:
    """The result of applying one report: its outcome and the state after it.

    ``implied`` lists the lifecycle steps a jump skipped (QUEUED -> READ
    implies SENT_TO_SUPPLIER and DEVICE_ACK); ``reason`` explains a rejection.
    """

    outcome: Outcome
    state: MessageState
    event: StatusEvent
    implied: tuple[Status, ...] = ()
    reason: str | None = None


#: A fingerprint keeps the status code in its low 8 bits, the timestamp above them.
#: The stores' hot loops write :func:`fingerprint` out with this shift (a call per
#: report costs a third of such a loop); ``tests/test_batch.py`` and
#: ``tests/test_reconcile.py`` hold them equal to it.
FINGERPRINT_SHIFT = 8


def fingerprint(status: int, timestamp_ms: int, origin: Origin = Origin.CLICKATELL) -> int:
    """The identity of a report within its message: same code, timestamp and origin.

    Clickatell's reports are ``timestamp_ms << 8 | code``; a local report is
    the bitwise complement of that (a negative number), so the two never meet.
    """
    mark = timestamp_ms << FINGERPRINT_SHIFT | status
    return mark if origin is Origin.CLICKATELL else ~mark


def fingerprint_time(mark: int) -> int:
    """The timestamp (ms) of the report a :func:`fingerprint` identifies, whatever its origin."""
    return (mark if mark >= 0 else ~mark) >> FINGERPRINT_SHIFT


def rejection_reason(state: MessageState, event: StatusEvent) -> str | None:
    """Why ``event`` is impossible for the message in ``state``, or None if it is possible."""
    known = state.channel
    if known is not None:
        if event.channel is not None and event.channel != known:
            return f"message is on channel {known!r}, report is from {event.channel!r}"
        if not event.status.allowed_on(known):
            return f"status {event.status.name} cannot occur on channel {known!r}"
    elif event.channel is not None and not state.status.allowed_on(event.channel):
        return f"message is in {state.status.name}, which cannot occur on channel {event.channel!r}"
    return None


def _learn(state: MessageState, event: StatusEvent) -> MessageState:
    """Fill in the channel and client message id the state did not know yet."""
    if (state.channel is None and event.channel is not None) or (
        state.client_message_id is None and event.client_message_id is not None
    ):
        return attrs.evolve(
            state,
            channel=state.channel or event.channel,
            client_message_id=state.client_message_id or event.client_message_id,
        )
    return state


def reconcile(
    state: MessageState | None, event: StatusEvent, policy: Policy, *, repeat: bool = False
) -> tuple[MessageState, Outcome]:
    """Apply one report to a message's state; return the new state and the outcome.

    ``repeat`` says this very report was seen before (by a store that keeps
    history): an outranked repeat is then a DUPLICATE rather than STALE.
    """
    if state is None:
        origin = policy.ranks_apart(event.status, event.origin)
        return MessageState.from_event(event, origin), Outcome.APPLIED
    if state.message_id != event.message_id:
        raise ValueError(
            f"report for message {event.message_id!r} applied to message {state.message_id!r}"
        )
    if rejection_reason(state, event) is not None:
        return state, Outcome.REJECTED
    new_key = policy.key(event.status, event.timestamp_ms, event.origin)
    old_key = policy.key(state.status, state.timestamp_ms, state.origin)
    if new_key > old_key:
        return (
            MessageState(
                state.message_id,
                event.status,
                event.timestamp_ms,
                state.channel or event.channel,
                state.client_message_id or event.client_message_id,
                policy.ranks_apart(event.status, event.origin),
                state.deadline_ms,
            ),
            Outcome.APPLIED,
        )
    # an outranked report may still teach the state its channel or client id
    duplicate = new_key == old_key or repeat
    return _learn(state, event), Outcome.DUPLICATE if duplicate else Outcome.STALE


def decide(
    state: MessageState | None, event: StatusEvent, policy: Policy, *, repeat: bool = False
) -> Decision:
    """Like :func:`reconcile`, with the implied steps and rejection reason spelled out."""
    new_state, outcome = reconcile(state, event, policy, repeat=repeat)
    if outcome is Outcome.REJECTED:
        assert state is not None
        return Decision(outcome, new_state, event, reason=rejection_reason(state, event))
    implied = (
        implied_path(state.status, new_state.status)
        if outcome is Outcome.APPLIED and state is not None
        else ()
    )
    return Decision(outcome, new_state, event, implied)
