"""The store contract, part one: reconciliation, outcome by outcome and against the reference."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ..errors import IllegalTransition, PolicyMismatch
from ..rules._catalog import Status
from ..rules._events import StatusEvent
from ..rules._policy import DELIVERY_WINS, FAILURE_WINS, Policy
from ..rules._reconcile import Outcome
from ..rules._records import MessageQuery
from ..stores import Store
from ._harness import ContractBase, added, ev, fresh, reference
from ._strategies import BASE_MS, streams

__all__ = ["ReconcileContract"]

S = Status
O = Outcome  # noqa: E741 - one letter, as S is for Status


def _protocol_methods() -> list[str]:
    return sorted(
        name
        for name, value in vars(Store).items()
        if not name.startswith("_") and inspect.isfunction(value)
    )


class ReconcileContract(ContractBase):
    """What a store does with reports: the outcomes the rules give, atomically, durably."""

    def test_the_store_has_every_method_of_the_protocol(self) -> None:
        """The store is a ``Store``: every method the protocol names is there."""
        missing = [
            name for name in _protocol_methods() if not callable(getattr(self.store, name, None))
        ]
        assert missing == [], f"the store lacks Store methods: {', '.join(missing)}"
        assert isinstance(self.store, Store)

    def test_a_new_store_holds_nothing(self) -> None:
        """make_store gives an empty store: no state, history, letter, inbox body or change."""
        store = self.store
        now_ms = BASE_MS + 10**9
        found = {
            "a state": store.get("msg-0"),
            "history": list(store.history("msg-0")),
            "counts": dict(store.count_by_status()),
            "dead letters": list(store.dead_letters()),
            "inbox bodies": list(store.pending()),
            "changes": store.changes(),
            "a feed position": store.last_seq(),
            "cursors": dict(store.cursors()),
            "messages": store.messages(MessageQuery(), 10),
            "overdue messages": store.count_overdue(now_ms),
            "milestones": list(store.milestones()),
        }
        empty: dict[str, object] = {
            "a state": None,
            "history": [],
            "counts": {},
            "dead letters": [],
            "inbox bodies": [],
            "changes": [],
            "a feed position": 0,
            "cursors": {},
            "messages": [],
            "overdue messages": 0,
            "milestones": [],
        }
        held = {what: value for what, value in found.items() if value != empty[what]}
        assert held == {}, f"make_store must give an empty store for each test; it held {held}"

    def test_late_duplicate_and_impossible_reports_change_nothing(self) -> None:
        """Each report has the outcome docs/design.md section 3 gives; only APPLIED ones count."""
        tracker = self.tracker()
        story: list[tuple[StatusEvent, Outcome, Status]] = [
            (ev("m", S.QUEUED, 0), O.APPLIED, S.QUEUED),
            (ev("m", S.DEVICE_ACK, 10_000), O.APPLIED, S.DEVICE_ACK),
            (ev("m", S.SENT_TO_SUPPLIER, 5_000), O.STALE, S.DEVICE_ACK),  # late progress
            (ev("m", S.SENT_TO_SUPPLIER, 40_000), O.STALE, S.DEVICE_ACK),  # later, but outranked
            (ev("m", S.EXPIRED, 20_000), O.STALE, S.DEVICE_ACK),  # a late expiry: delivery wins
            (ev("m", S.DEVICE_ACK, 10_000), O.DUPLICATE, S.DEVICE_ACK),
            (ev("m", S.READ, 30_000, "whatsapp"), O.REJECTED, S.DEVICE_ACK),  # another channel
            (ev("m", S.READ, 30_000), O.APPLIED, S.READ),
            (ev("m", S.QUEUED, 50_000), O.STALE, S.READ),
        ]
        for event, outcome, status in story:
            decision = tracker.apply(event)
            state = tracker.get("m")
            assert (decision.outcome, state and state.status) == (outcome, status), (
                f"{event!r} must be {outcome.value} and leave the message {status.name}; "
                f"the store said {decision.outcome.value} and left {state and state.status.name}"
            )
        state = tracker.get("m")
        assert state is not None
        assert state.timestamp_ms == BASE_MS + 30_000, "the state is dated by the report that won"

    @pytest.mark.parametrize("policy", [DELIVERY_WINS, FAILURE_WINS], ids=lambda p: p.name)
    def test_each_report_s_outcome_is_the_reference_s(self, policy: Policy) -> None:
        """Reports applied one by one: the memory store's decisions, event for event."""

        @self.examples()
        @given(streams())
        def check(drawn: list[StatusEvent]) -> None:
            tracker, expected = self.tracker(policy), reference(policy)
            for event in fresh(drawn):
                got, want = tracker.apply(event), expected.apply(event)
                assert (got.outcome, got.state, got.implied) == (
                    want.outcome,
                    want.state,
                    want.implied,
                ), (
                    f"{event!r}: the store decided {got.outcome.value} -> {got.state!r}, "
                    f"the rules say {want.outcome.value} -> {want.state!r}"
                )

        check()

    def test_any_order_repetition_and_batching_reach_the_same_states(self) -> None:
        """A shuffled, repeated stream cut into batches ends in the reference states and history."""

        @self.examples()
        @given(st.data())
        def check(data: st.DataObject) -> None:
            events = fresh(data.draw(streams(), label="reports"))
            repeats = (
                data.draw(st.lists(st.sampled_from(events)), label="repeats") if events else []
            )
            stream = data.draw(st.permutations(events + repeats), label="arrival order")
            cuts = sorted(
                data.draw(st.lists(st.integers(0, len(stream)), max_size=4), label="cuts")
            )
            expected = reference()
            expected.apply_many(events)
            tracker = self.tracker()
            counts = tracker.count_by_status()  # the store outlives each example
            total = 0
            for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
                total += tracker.apply_many(stream[start:stop]).total
            assert total == len(stream), f"the summaries count {total} reports of {len(stream)}"
            for message_id in {e.message_id for e in events}:
                assert tracker.get(message_id) == expected.get(message_id), (
                    f"the state of {message_id}"
                )
                distinct = {
                    (e.status, e.timestamp_ms) for e in events if e.message_id == message_id
                }
                kept = [(h.event.status, h.event.timestamp_ms) for h in tracker.history(message_id)]
                assert sorted(kept) == sorted(distinct), (
                    f"the history of {message_id} must hold each distinct report once: "
                    f"expected {len(distinct)}, it holds {len(kept)}"
                )
            assert added(counts, tracker.count_by_status()) == dict(expected.count_by_status()), (
                "the counts by status"
            )

        check()

    def test_a_batch_s_summary_counts_each_outcome(self) -> None:
        """A batch's summary counts applied, stale, duplicate and rejected reports."""
        summary = self.tracker().apply_many(
            [
                ev("s", S.SENT_TO_SUPPLIER, 10),
                ev("s", S.DEVICE_ACK, 20),
                ev("s", S.QUEUED, 5),
                ev("s", S.DEVICE_ACK, 20),
                ev("s", S.READ, 30, "whatsapp"),
            ]
        )
        assert (summary.applied, summary.stale, summary.duplicate) == (2, 1, 1)
        assert [d.event.status for d in summary.rejections] == [S.READ]
        assert summary.rejected == 1
        assert summary.rejections[0].reason, "a rejection says why"

    def test_counts_group_messages_by_status_and_channel(self) -> None:
        """count_by_status and count_by_channel count messages (not reports) by their state."""
        tracker = self.tracker()
        tracker.apply_many(
            [
                ev("a", S.QUEUED, 1),
                ev("a", S.READ, 2),
                ev("b", S.READ, 1, "whatsapp"),
                ev("c", S.EXPIRED, 1),
                ev("d", S.EXPIRED, 5_000, None),
            ]
        )
        assert dict(tracker.count_by_status()) == {S.READ: 2, S.EXPIRED: 2}
        assert dict(self.store.count_by_channel()) == {
            ("sms", S.READ): 1,
            ("whatsapp", S.READ): 1,
            ("sms", S.EXPIRED): 1,
            (None, S.EXPIRED): 1,
        }
        assert dict(self.store.count_by_channel(since_ms=BASE_MS + 1_000)) == {(None, S.EXPIRED): 1}

    def test_advance_is_strict_and_atomic(self) -> None:
        """Legal steps are written; an illegal one raises and leaves state and history alone."""
        tracker = self.tracker()
        self.store.advance(ev("adv", S.QUEUED, 0), tracker.policy)
        self.store.advance(ev("adv", S.SENT_TO_SUPPLIER, 10), tracker.policy)
        before = (tracker.get("adv"), list(tracker.history("adv")))
        with pytest.raises(IllegalTransition):
            self.store.advance(ev("adv", S.SCHEDULED, 20), tracker.policy)
        assert (tracker.get("adv"), list(tracker.history("adv"))) == before
        state = tracker.get("adv")
        assert state is not None
        assert state.status is S.SENT_TO_SUPPLIER

    def test_a_batch_whose_input_fails_leaves_nothing_behind(self) -> None:
        """A batch whose input fails half-way changes no state and writes no history."""
        tracker = self.tracker()
        tracker.apply(ev("f", S.QUEUED, 0))

        def broken() -> Iterator[StatusEvent]:
            yield ev("f", S.DEVICE_ACK, 10)
            yield ev("g", S.QUEUED, 10)
            raise OSError("the input went away")

        with pytest.raises(OSError, match="went away"):
            tracker.apply_many(broken())
        state = tracker.get("f")
        assert state is not None
        assert state.status is S.QUEUED, "a failed batch must not change a state"
        assert tracker.get("g") is None, "a failed batch must not create a message"
        assert len(tracker.history("f")) == 1, "a failed batch must not write history"

    def test_states_survive_reopening(self) -> None:
        """A second handle on the same store sees what the first wrote."""
        self.tracker().apply(ev("r", S.DEVICE_ACK, 1, "sms", "c-1"))
        state = self.open_again().get("r")
        assert state is not None, "a second handle does not see the message"
        assert (state.status, state.channel, state.client_message_id) == (
            S.DEVICE_ACK,
            "sms",
            "c-1",
        )
        assert state.timestamp == datetime.fromtimestamp((BASE_MS + 1) / 1000, timezone.utc)

    def test_keys_are_never_compared_under_a_second_policy(self) -> None:
        """A store written under one policy refuses another (PolicyMismatch) and stays as it was."""
        self.tracker(DELIVERY_WINS).apply(ev("p", S.READ, 1))
        with pytest.raises(PolicyMismatch):
            self.tracker(FAILURE_WINS).apply(ev("p", S.EXPIRED, 2))
        state = self.tracker().get("p")
        assert state is not None
        assert state.status is S.READ
