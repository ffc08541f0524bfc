"""Tests for reconcile: what one report does to a message's state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from deliverystate import MessageState, Outcome, Status, StatusEvent
from deliverystate.rules import DELIVERY_WINS, FAILURE_WINS, Origin, reconcile
from deliverystate.rules._reconcile import decide, fingerprint, fingerprint_time
from deliverystate.rules._time import MAX_TIMESTAMP_MS
from deliverystate.testing import BASE_MS, streams
from deliverystate.testing import events as reports

from .oracle import expected_winner

S = Status
T0 = BASE_MS


def ev(status: Status, seconds: int, channel: str | None = "sms", **kw: str) -> StatusEvent:
    """A report about message m-1, ``seconds`` after T0."""
    return StatusEvent.from_ms("m-1", status, T0 + seconds * 1000, channel, **kw)


def fold(events: list[StatusEvent], policy=DELIVERY_WINS) -> MessageState | None:  # type: ignore[no-untyped-def]
    """Apply reports one after another with reconcile alone."""
    state = None
    for event in events:
        state, _ = reconcile(state, event, policy)
    return state


def test_first_report_creates_the_state() -> None:
    """The first report about a message is applied as it is."""
    state, outcome = reconcile(None, ev(S.QUEUED, 0), DELIVERY_WINS)
    assert outcome is Outcome.APPLIED
    assert (state.status, state.timestamp_ms, state.channel) == (S.QUEUED, T0, "sms")


def test_late_expiry_after_delivery_is_stale() -> None:
    """A delivery is a fact a later EXPIRED cannot undo (delivery wins)."""
    state = fold([ev(S.DEVICE_ACK, 10)])
    after, outcome = reconcile(state, ev(S.EXPIRED, 20), DELIVERY_WINS)
    assert outcome is Outcome.STALE
    assert after.status is S.DEVICE_ACK


def test_failure_wins_policy_lets_failure_override_read() -> None:
    """Under failure wins, a failure after READ is applied."""
    state = fold([ev(S.READ, 10)], FAILURE_WINS)
    after, outcome = reconcile(state, ev(S.DELIVERY_FAILURE, 20), FAILURE_WINS)
    assert outcome is Outcome.APPLIED
    assert after.status is S.DELIVERY_FAILURE


def test_progress_after_terminal_is_stale() -> None:
    """A SENT_TO_SUPPLIER that arrives after a failure is simply late."""
    state = fold([ev(S.DELIVERY_FAILURE, 30)])
    after, outcome = reconcile(state, ev(S.SENT_TO_SUPPLIER, 10), DELIVERY_WINS)
    assert outcome is Outcome.STALE
    assert after == state


def test_first_failure_is_the_cause() -> None:
    """Between two failures the earlier one wins, whatever the arrival order."""
    assert fold([ev(S.EXPIRED, 50), ev(S.DELIVERY_FAILURE, 40)]).status is S.DELIVERY_FAILURE
    assert fold([ev(S.DELIVERY_FAILURE, 40), ev(S.EXPIRED, 50)]).status is S.DELIVERY_FAILURE


def test_equal_time_failures_break_ties_by_lower_code() -> None:
    """Two failures at the same instant: the lower code wins."""
    assert fold([ev(S.EXPIRED, 5), ev(S.ROUTING_ERROR, 5)]).status is S.EXPIRED
    assert fold([ev(S.ROUTING_ERROR, 5), ev(S.EXPIRED, 5)]).status is S.EXPIRED


def test_later_queued_or_scheduled_wins() -> None:
    """Among QUEUED and SCHEDULED the later report wins, then the higher code."""
    assert fold([ev(S.QUEUED, 9), ev(S.SCHEDULED, 1)]).status is S.QUEUED
    assert fold([ev(S.QUEUED, 1), ev(S.SCHEDULED, 1)]).status is S.SCHEDULED


def test_earliest_read_dates_the_state() -> None:
    """Two READ receipts: the state keeps the earlier time."""
    state = fold([ev(S.READ, 90), ev(S.READ, 60)])
    assert state.timestamp_ms == T0 + 60_000


def test_unknown_never_overwrites() -> None:
    """UNKNOWN loses against every other status, even a much older one."""
    state = fold([ev(S.QUEUED, 0)])
    after, outcome = reconcile(state, ev(S.UNKNOWN, 999), DELIVERY_WINS)
    assert outcome is Outcome.STALE
    assert after.status is S.QUEUED


def test_read_while_queued_jumps_and_records_implied_steps() -> None:
    """READ while QUEUED is applied and the skipped steps are listed."""
    queued = fold([ev(S.QUEUED, 0, "whatsapp")])
    decision = decide(queued, ev(S.READ, 30, "whatsapp"), DELIVERY_WINS)
    assert decision.outcome is Outcome.APPLIED
    assert decision.state.status is S.READ
    assert decision.implied == (S.SENT_TO_SUPPLIER, S.DEVICE_ACK)


def test_same_report_twice_is_duplicate() -> None:
    """The very same (status, timestamp) again is a DUPLICATE and changes nothing."""
    state = fold([ev(S.DEVICE_ACK, 3)])
    after, outcome = reconcile(state, ev(S.DEVICE_ACK, 3), DELIVERY_WINS)
    assert outcome is Outcome.DUPLICATE
    assert after == state


def test_report_from_another_channel_is_rejected() -> None:
    """A message known to be on SMS rejects a WhatsApp report, with a reason."""
    state = fold([ev(S.QUEUED, 0, "sms")])
    decision = decide(state, ev(S.READ, 5, "whatsapp"), DELIVERY_WINS)
    assert decision.outcome is Outcome.REJECTED
    assert decision.state == state
    assert "'sms'" in decision.reason
    assert "'whatsapp'" in decision.reason


def test_status_impossible_on_the_known_channel_is_rejected() -> None:
    """A channel-less ROUTING_ERROR report for a WhatsApp message is rejected."""
    state = fold([ev(S.QUEUED, 0, "whatsapp")])
    decision = decide(state, ev(S.ROUTING_ERROR, 5, None), DELIVERY_WINS)
    assert decision.outcome is Outcome.REJECTED
    assert "ROUTING_ERROR" in decision.reason


def test_channel_report_contradicting_the_current_status_is_rejected() -> None:
    """A message in ROUTING_ERROR (SMS only) rejects a WhatsApp report."""
    state = fold([ev(S.ROUTING_ERROR, 0, None)])
    after, outcome = reconcile(state, ev(S.DEVICE_ACK, 5, "whatsapp"), DELIVERY_WINS)
    assert outcome is Outcome.REJECTED
    assert after == state


def test_channel_and_client_id_are_learned_from_stale_reports() -> None:
    """A stale report still teaches the state its channel and client message id."""
    state = fold([ev(S.DEVICE_ACK, 9, None)])
    after, outcome = reconcile(state, ev(S.QUEUED, 1, "sms", client_message_id="c"), DELIVERY_WINS)
    assert outcome is Outcome.STALE
    assert (after.status, after.channel, after.client_message_id) == (S.DEVICE_ACK, "sms", "c")


@settings(max_examples=500)
@given(streams())
def test_fold_reaches_the_designs_winner(events: list[StatusEvent]) -> None:
    """Folding any consistent reports ends in the report the design says should win."""
    by_message: dict[str, list[StatusEvent]] = {}
    for event in events:
        by_message.setdefault(event.message_id, []).append(event)
    for message_events in by_message.values():
        state = fold(message_events)
        assert (state.status, state.timestamp_ms) == expected_winner(message_events)


@settings(max_examples=500)
@given(st.data())
def test_reconcile_is_idempotent(data: st.DataObject) -> None:
    """Applying a report to the state it produced changes nothing."""
    channel = data.draw(st.sampled_from([None, "sms", "whatsapp"]))
    prefix = data.draw(st.lists(reports(["m-1"], channel), max_size=6))
    event = data.draw(reports(["m-1"], channel))
    once, _ = reconcile(fold(prefix), event, DELIVERY_WINS)
    twice, outcome = reconcile(once, event, DELIVERY_WINS)
    assert twice == once
    assert outcome in {Outcome.DUPLICATE, Outcome.STALE}


@given(
    st.sampled_from(list(Status)),
    st.integers(0, MAX_TIMESTAMP_MS),
    st.integers(0, MAX_TIMESTAMP_MS),
    st.sampled_from(list(Origin)),
)
def test_a_fingerprint_gives_back_its_time_and_tells_reports_apart(
    status: Status, first_ms: int, second_ms: int, origin: Origin
) -> None:
    """fingerprint_time inverts fingerprint; code, time and origin each change the fingerprint."""
    mark = fingerprint(status, first_ms, origin)
    assert fingerprint_time(mark) == first_ms
    other_origin = Origin.LOCAL if origin is Origin.CLICKATELL else Origin.CLICKATELL
    assert fingerprint(status, first_ms, other_origin) != mark
    if second_ms != first_ms:
        assert fingerprint(status, second_ms, origin) != mark
    for code in Status:
        if code is not status:
            assert fingerprint(code, first_ms, origin) != mark
