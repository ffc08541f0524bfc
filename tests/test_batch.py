"""The unit of work: ``Batch.absorb``, the inlined fast path, equals ``Batch.apply``.

Both are run on fresh working sets with the same reports; the records, the
client ids, the history they note for the store and the outcome counts must
be identical, with and without history, under both ready-made policies.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deliverystate import Outcome, Policy, StatusEvent
from deliverystate.rules import DELIVERY_WINS, FAILURE_WINS
from deliverystate.stores._work import Batch, state_of
from deliverystate.testing import events, streams


def run(events: list[StatusEvent], policy: Policy, *, history: bool, fast: bool) -> Batch:
    """A fresh batch given ``events`` through ``absorb`` (fast) or ``apply`` one by one."""
    batch = Batch({}, {}, {} if history else None, policy)
    if fast:
        batch.absorb(events)
    else:
        for event in events:
            batch.apply(event)
    return batch


def observed(batch: Batch) -> tuple[object, ...]:
    """Everything a store reads back from a batch."""
    summary = batch.summary()
    return (
        batch.records,
        batch.clients,
        batch.changed,
        batch.recorded,
        (summary.applied, summary.stale, summary.duplicate),
        [(d.event, d.reason) for d in summary.rejections],
    )


@settings(max_examples=500)
@given(
    st.one_of(streams(), st.lists(events(), max_size=40)),
    st.sampled_from([DELIVERY_WINS, FAILURE_WINS]),
    st.booleans(),
)
def test_absorb_equals_apply_one_by_one(
    events: list[StatusEvent], policy: Policy, history: bool
) -> None:
    """Same records, client ids, changes, history and counts from the fast path as from apply."""
    assert observed(run(events, policy, history=history, fast=True)) == observed(
        run(events, policy, history=history, fast=False)
    )


@settings(max_examples=200)
@given(streams())
def test_a_repeat_is_kept_once_and_counted_as_duplicate(events: list[StatusEvent]) -> None:
    """Given every report twice, history holds each report once and the repeats are duplicates."""
    once = run(events, DELIVERY_WINS, history=True, fast=False)
    twice = run(events + events, DELIVERY_WINS, history=True, fast=True)
    rejected = len(once.summary().rejections)
    assert twice.recorded == once.recorded
    assert len(twice.summary().rejections) == 2 * rejected
    assert twice.summary().duplicate == once.summary().duplicate + len(events) - rejected


def test_records_read_back_as_the_states_they_were_made_from() -> None:
    """A record, with the client id kept beside it, decodes to the very state."""
    event = StatusEvent.from_ms("m", 5, 1_767_225_600_000, "whatsapp", "order-1")
    batch = run([event], DELIVERY_WINS, history=False, fast=True)
    state = state_of("m", batch.records["m"], DELIVERY_WINS, batch.clients)
    assert (state.status, state.timestamp_ms, state.channel, state.client_message_id) == (
        event.status,
        event.timestamp_ms,
        "whatsapp",
        "order-1",
    )


@pytest.mark.parametrize("fast", [True, False])
def test_outcomes_are_the_ones_decide_gives(fast: bool) -> None:
    """A late progress report is STALE, a repeat of it DUPLICATE, a READ after it APPLIED."""
    t = 1_767_225_600_000
    events = [
        StatusEvent.from_ms("m", 5, t + 10, "sms"),
        StatusEvent.from_ms("m", 2, t, "sms"),
        StatusEvent.from_ms("m", 2, t, "sms"),
        StatusEvent.from_ms("m", 6, t + 20, "sms"),
    ]
    batch = run(events, DELIVERY_WINS, history=True, fast=fast)
    assert [outcome for _, outcome in batch.recorded] == [
        Outcome.APPLIED,
        Outcome.STALE,
        Outcome.APPLIED,
    ]
    summary = batch.summary()
    assert (summary.applied, summary.stale, summary.duplicate) == (2, 1, 1)
