"""Tests for Tracker: order independence, idempotence, monotone keys, dead letters, advance."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import deliverystate.tracking._tracker as tracker_module
from deliverystate import (
    InvalidCallback,
    MemoryStore,
    Outcome,
    Status,
    StatusEvent,
    Tracker,
    parse_callback,
)
from deliverystate.errors import IllegalTransition
from deliverystate.rules import DELIVERY_WINS
from deliverystate.simulate import callback_body
from deliverystate.testing import BASE_MS, instants_ms, streams
from deliverystate.testing import events as reports

from .oracle import expected_winner, oracle_key

S = Status


def states(tracker: Tracker, events: list[StatusEvent]) -> dict[str, object]:
    """The tracker's state of every message mentioned in ``events``."""
    return {e.message_id: tracker.get(e.message_id) for e in events}


def make_tracker(history: bool) -> Tracker:
    """A tracker over a fresh memory store."""
    return Tracker(MemoryStore(history=history))


@settings(max_examples=500)
@given(st.data(), st.booleans())
def test_any_permutation_duplication_and_split_gives_same_states(
    data: st.DataObject, history: bool
) -> None:
    """Reordering, repeating and splitting reports across workers never changes the result."""
    events = data.draw(streams())
    reference = make_tracker(history)
    for event in events:
        reference.apply(event)
    shuffled = data.draw(st.permutations(events))
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=10))
    mixed = data.draw(st.permutations(shuffled + repeats))
    shared = MemoryStore(history=history)
    workers = [Tracker(shared), Tracker(shared)]
    cut = data.draw(st.integers(0, len(mixed)))
    for index, chunk in enumerate((mixed[:cut], mixed[cut:])):
        workers[index].apply_many(chunk)
    assert states(workers[0], events) == states(reference, events)
    for message_id in {e.message_id for e in events}:
        mine = [e for e in events if e.message_id == message_id]
        state = reference.get(message_id)
        assert (state.status, state.timestamp_ms) == expected_winner(mine)


@settings(max_examples=500)
@given(streams(), st.booleans())
def test_apply_many_equals_apply_one_by_one(events: list[StatusEvent], history: bool) -> None:
    """The batch path and the per-event path reach the same states and outcome counts."""
    single, batch = make_tracker(history), make_tracker(history)
    outcomes = [single.apply(e).outcome for e in events]
    summary = batch.apply_many(events)
    assert states(single, events) == states(batch, events)
    assert summary.applied == outcomes.count(Outcome.APPLIED)
    assert summary.stale == outcomes.count(Outcome.STALE)
    assert summary.duplicate == outcomes.count(Outcome.DUPLICATE)
    assert summary.total == len(events)


@settings(max_examples=500)
@given(streams(), st.booleans())
def test_applying_an_event_twice_equals_once(events: list[StatusEvent], history: bool) -> None:
    """Idempotence: a report applied twice in a row leaves what one application left."""
    once, twice = make_tracker(history), make_tracker(history)
    for event in events:
        once.apply(event)
        twice.apply(event)
        second = twice.apply(event)
        assert second.outcome in {Outcome.DUPLICATE, Outcome.STALE}
        if history:
            assert second.outcome is Outcome.DUPLICATE
    assert states(once, events) == states(twice, events)


@settings(max_examples=500)
@given(streams())
def test_precedence_key_never_decreases(events: list[StatusEvent]) -> None:
    """Whatever arrives, the winning report's key only goes up."""
    tracker = Tracker()
    last: dict[str, tuple[int, int, int]] = {}
    for event in events:
        state = tracker.apply(event).state
        key = oracle_key(int(state.status), state.timestamp_ms)
        assert key >= last.get(event.message_id, key)
        last[event.message_id] = key


@settings(max_examples=100, deadline=None)
@given(streams(min_messages=4, max_messages=8))
def test_threads_sharing_a_store_agree_with_one_tracker(events: list[StatusEvent]) -> None:
    """Four threads applying interleaved shares end where one tracker ends."""
    reference = Tracker()
    reference.apply_many(events)
    shared = Tracker()
    threads = [
        threading.Thread(target=lambda k=k: [shared.apply_many([e]) for e in events[k::4]])
        for k in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert states(shared, events) == states(reference, events)


def test_ten_line_embedding() -> None:
    """ingest parses and applies callbacks; the state and history read back as documented."""
    tracker = Tracker()
    tracker.ingest(json.dumps(callback_body(StatusEvent.from_ms("m1", 5, BASE_MS + 9, "sms"))))
    decisions = tracker.ingest(callback_body(StatusEvent.from_ms("m1", 20, BASE_MS + 99, "sms")))
    assert decisions[0].outcome is Outcome.STALE
    state = tracker.get("m1")
    assert state is not None
    assert state.status is S.DEVICE_ACK
    assert [h.outcome for h in tracker.history("m1")] == [Outcome.APPLIED, Outcome.STALE]
    assert tracker.get("never-seen") is None


def test_history_is_ordered_by_event_time_with_arrival_numbers() -> None:
    """History lists reports by provider time; arrival numbers keep the receive order."""
    tracker = Tracker()
    late, early = (StatusEvent.from_ms("m", s, BASE_MS + t, "sms") for s, t in [(5, 50), (4, 10)])
    tracker.apply(late)
    tracker.apply(early)
    tracker.apply(late)  # duplicate: not stored twice
    entries = tracker.history("m")
    assert [(h.event.status, h.outcome, h.arrival) for h in entries] == [
        (S.SENT_TO_SUPPLIER, Outcome.STALE, 2),
        (S.DEVICE_ACK, Outcome.APPLIED, 1),
    ]


def test_rejected_reports_are_kept_in_history_and_summary() -> None:
    """A report from the wrong channel is rejected but not lost."""
    tracker = Tracker()
    tracker.apply(StatusEvent.from_ms("m", 2, BASE_MS, "sms"))
    wrong = StatusEvent.from_ms("m", 6, BASE_MS + 5, "whatsapp")
    summary = tracker.apply_many([wrong])
    assert len(summary.rejections) == 1
    assert summary.rejections[0].event == wrong
    assert summary.count(Outcome.REJECTED) == 1
    assert tracker.history("m")[-1].outcome is Outcome.REJECTED
    assert tracker.get("m").status is S.QUEUED


def test_fast_batch_path_keeps_rejections() -> None:
    """Without history the batch path still returns rejected decisions with reasons."""
    tracker = Tracker(MemoryStore(history=False))
    summary = tracker.apply_many(
        [
            StatusEvent.from_ms("m", 2, BASE_MS, "sms"),
            StatusEvent.from_ms("m", 6, BASE_MS, "whatsapp"),
        ]
    )
    assert (summary.applied, len(summary.rejections)) == (1, 1)
    assert "whatsapp" in (summary.rejections[0].reason or "")
    assert tracker.history("m") == []


def test_invalid_payload_goes_to_dead_letter_and_raises() -> None:
    """An unparseable body is stored verbatim with its error, then InvalidCallback is raised."""
    tracker = Tracker()
    with pytest.raises(InvalidCallback, match="statusCode"):
        tracker.ingest(b'{"messageId": "x", "statusCode": "85", "timestamp": "1767225600000"}')
    (letter,) = tracker.dead_letters()
    assert letter.payload == '{"messageId": "x", "statusCode": "85", "timestamp": "1767225600000"}'
    assert "85 is not a Platform status code" in letter.error
    assert letter.received_at.tzinfo is not None


def test_dead_letters_are_replayed_once_the_parser_accepts_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A payload refused by an older catalog is applied by retry once the code is known."""

    def old_catalog(payload: object) -> list[StatusEvent]:
        events = parse_callback(payload)  # type: ignore[arg-type]
        if any(e.status is S.WHATSAPP_HSM_NOT_AVAILABLE for e in events):
            raise InvalidCallback("statusCode", "unknown status code 134")
        return events

    body = callback_body(StatusEvent.from_ms("m", 134, BASE_MS, "whatsapp"))
    tracker = Tracker()
    monkeypatch.setattr(tracker_module, "parse_callback", old_catalog)
    with pytest.raises(InvalidCallback):
        tracker.ingest(body)
    with pytest.raises(InvalidCallback):
        tracker.ingest("garbage")
    assert tracker.get("m") is None
    monkeypatch.undo()
    report = tracker.retry_dead_letters()
    assert len(report.applied_letters) == 1
    assert [letter.payload for letter in report.invalid_letters] == ["garbage"]
    assert tracker.get("m").status is S.WHATSAPP_HSM_NOT_AVAILABLE
    assert [letter.payload for letter in tracker.dead_letters()] == ["garbage"]


def test_advance_follows_the_lifecycle() -> None:
    """Strict stepping accepts lifecycle edges and raises IllegalTransition off the graph."""
    tracker = Tracker()
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    tracker.advance("m", S.QUEUED, timestamp=at, channel="sms")
    tracker.advance("m", S.SENT_TO_SUPPLIER, timestamp=at)
    before = tracker.get("m")
    with pytest.raises(IllegalTransition) as caught:
        tracker.advance("m", S.READ, timestamp=at)
    assert caught.value.message_id == "m"
    assert tracker.get("m") == before
    assert tracker.advance("m", S.EXPIRED).status is S.EXPIRED


def test_advance_refuses_another_channel() -> None:
    """Strict stepping with a contradicting channel is a ValueError and changes nothing."""
    tracker = Tracker()
    tracker.advance("m", S.QUEUED, channel="sms")
    with pytest.raises(ValueError, match="channel"):
        tracker.advance("m", S.SENT_TO_SUPPLIER, channel="whatsapp")
    assert tracker.get("m").status is S.QUEUED


def test_count_by_status() -> None:
    """Counts group messages by their current status."""
    tracker = Tracker()
    tracker.apply_many(
        [
            StatusEvent.from_ms("a", 5, BASE_MS),
            StatusEvent.from_ms("b", 5, BASE_MS),
            StatusEvent.from_ms("c", 2, BASE_MS),
        ]
    )
    assert tracker.count_by_status() == {S.DEVICE_ACK: 2, S.QUEUED: 1}


def test_default_policy_is_delivery_wins() -> None:
    """A tracker built without arguments uses delivery wins and a memory store."""
    tracker = Tracker()
    assert tracker.policy is DELIVERY_WINS
    assert isinstance(tracker.store, MemoryStore)


class TrackerAgainstModel(RuleBasedStateMachine):
    """Drives a Tracker with random reports and checks it against a plain model."""

    @initialize(history=st.booleans())
    def setup(self, history: bool) -> None:
        self.history = history
        self.tracker = make_tracker(history)
        self.channel_of = {"m-0": "sms", "m-1": "whatsapp", "m-2": None}
        self.accepted: dict[str, list[StatusEvent]] = {}
        self.known_channel: dict[str, str | None] = {}
        self.seen: set[tuple[str, int, int]] = set()

    def expected_outcome(self, event: StatusEvent) -> Outcome:
        """What the design says applying ``event`` now should do."""
        mine = self.accepted.get(event.message_id, [])
        if not mine:
            return Outcome.APPLIED
        known = self.known_channel.get(event.message_id)
        current, _ = expected_winner(mine)
        if known is not None and (
            event.channel not in (None, known) or not event.status.allowed_on(known)
        ):
            return Outcome.REJECTED
        if known is None and event.channel is not None and not current.allowed_on(event.channel):
            return Outcome.REJECTED
        before = expected_winner(mine)
        if expected_winner([*mine, event]) != before:
            return Outcome.APPLIED
        if (event.status, event.timestamp_ms) == before:
            return Outcome.DUPLICATE
        fingerprint = (event.message_id, int(event.status), event.timestamp_ms)
        return Outcome.DUPLICATE if self.history and fingerprint in self.seen else Outcome.STALE

    def record(self, event: StatusEvent, outcome: Outcome) -> None:
        self.seen.add((event.message_id, int(event.status), event.timestamp_ms))
        if outcome is not Outcome.REJECTED:
            self.accepted.setdefault(event.message_id, []).append(event)
            if self.known_channel.get(event.message_id) is None:
                self.known_channel[event.message_id] = event.channel

    @rule(data=st.data(), message=st.sampled_from(["m-0", "m-1", "m-2"]))
    def apply_consistent(self, data: st.DataObject, message: str) -> None:
        """Apply a report consistent with the message's channel."""
        event = data.draw(reports([message], self.channel_of[message]))
        expected = self.expected_outcome(event)
        decision = self.tracker.apply(event)
        assert decision.outcome is expected
        self.record(event, decision.outcome)

    @rule(
        message=st.sampled_from(["m-0", "m-1"]),
        ts=instants_ms(),
        status=st.sampled_from([S.DEVICE_ACK, S.READ, S.EXPIRED]),
    )
    def apply_from_wrong_channel(self, message: str, ts: int, status: Status) -> None:
        """A report from the other channel is rejected once the channel is known."""
        other = "whatsapp" if self.channel_of[message] == "sms" else "sms"
        event = StatusEvent.from_ms(message, status, ts, other)
        expected = self.expected_outcome(event)
        decision = self.tracker.apply(event)
        assert decision.outcome is expected
        self.record(event, decision.outcome)

    @invariant()
    def states_match_model(self) -> None:
        for message, events in self.accepted.items():
            state = self.tracker.get(message)
            assert state is not None
            assert (state.status, state.timestamp_ms) == expected_winner(events)
            assert state.channel == self.known_channel.get(message)


TrackerAgainstModel.TestCase.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None
)
test_tracker_against_model = TrackerAgainstModel.TestCase


def test_a_mapping_with_a_huge_integer_reaches_the_dead_letter() -> None:
    """Even a body no JSON encoder can print is kept, described, when it is invalid."""
    tracker = Tracker()
    with pytest.raises(InvalidCallback):
        tracker.ingest({"messageId": 10**5000, "statusCode": 4, 1: "mixed keys"})
    (letter,) = tracker.dead_letters()
    assert "an integer of 16610 bits" in letter.payload
