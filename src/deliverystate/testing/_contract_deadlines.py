"""The store contract, part seven: registered sends, deadlines and the sweep."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given

from ..rules._catalog import Origin, Status
from ..rules._events import StatusEvent
from ..rules._reconcile import Outcome
from ..rules._records import MessageQuery
from ..rules._time import datetime_from_ms
from ..tracking._deadlines import Send
from ._harness import ContractBase, added
from ._scenarios import Item, deadline_scenarios, renamed, replay, scenario_ids, settled

__all__ = ["DeadlineContract"]

S = Status
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class DeadlineContract(ContractBase):
    """Deadlines: registrations are reports with a deadline, sweeps expire what is overdue."""

    def test_any_order_of_registrations_callbacks_and_sweeps_reaches_the_reference(self) -> None:
        """Registrations, callbacks and sweeps in any order, then a sweep at now: the reference."""

        @self.examples()
        @given(deadline_scenarios())
        def check(scenario: tuple[list[Item], int]) -> None:
            drawn, now_ms = scenario
            items = renamed(drawn)
            tracker = self.tracker()
            counts, expiries = tracker.count_by_status(), self.store.count_local_expiries()
            replay(items, tracker)
            tracker.sweep(datetime_from_ms(now_ms))
            expected = settled(items, now_ms, tracker.policy)
            for message_id in scenario_ids(items):
                assert tracker.get(message_id) == expected.get(message_id), (
                    f"the state of {message_id}"
                )
            # the store outlives each example (its ids are new): what this one added
            assert added(counts, tracker.count_by_status()) == dict(expected.count_by_status())
            local_expiries = self.store.count_local_expiries() - expiries
            assert local_expiries == expected.store.count_local_expiries(), "local expiries"

        check()

    def test_a_registration_is_a_local_queued_report_with_a_deadline(self) -> None:
        """register() keeps QUEUED at sent_at, from this side, due at the deadline given."""
        tracker = self.tracker()
        decision = tracker.register(
            "m1", channel="whatsapp", sent_at=at(0), client_message_id="c1", deadline=at(60)
        )
        assert decision.outcome is Outcome.APPLIED
        state = tracker.get("m1")
        assert state is not None
        assert (state.status, state.timestamp, state.origin) == (S.QUEUED, at(0), Origin.LOCAL)
        assert (state.channel, state.client_message_id, state.deadline) == (
            "whatsapp",
            "c1",
            at(60),
        )
        (entry,) = tracker.history("m1")
        assert entry.event.origin is Origin.LOCAL, "history must keep a report's origin"

    def test_the_earliest_deadline_holds_whatever_the_order(self) -> None:
        """Two registrations of one message: the earlier deadline, in either order."""
        tracker = self.tracker()
        early, late = (Send(m, "sms", at(0), deadline=at(10)) for m in ("a", "b"))
        tracker.register_many([Send("a", "sms", at(0), deadline=at(20))])
        tracker.register_many([early])
        tracker.register_many([late])
        tracker.register_many([Send("b", "sms", at(0), deadline=at(20))])
        assert [tracker.get(m).deadline for m in "ab"] == [at(10), at(10)]  # type: ignore[union-attr]

    def test_overdue_pages_by_deadline_then_id_and_counts(self) -> None:
        """overdue() lists registered messages in progress past their deadline, in pages."""
        tracker = self.tracker()
        tracker.register_many(Send(f"d{i}", "sms", at(0), deadline=at(i % 3)) for i in range(6))
        tracker.register("future", channel="sms", sent_at=at(0), deadline=at(99))
        tracker.register("done", channel="sms", sent_at=at(0), deadline=at(1))
        tracker.apply(StatusEvent("done", S.DEVICE_ACK, at(0.5), "sms"))
        tracker.apply(StatusEvent("unregistered", S.SENT_TO_SUPPLIER, at(0), "sms"))
        now = _ms(at(50))
        assert self.store.count_overdue(now) == 6
        pages: list[list[str]] = []
        after: tuple[int, str] | None = None
        while page := self.store.overdue(now, 4, after):
            pages.append([s.message_id for s in page])
            last = page[-1]
            assert last.deadline_ms is not None, f"{last.message_id} is overdue without a deadline"
            after = (last.deadline_ms, last.message_id)
        assert pages == [["d0", "d3", "d1", "d4"], ["d2", "d5"]]
        due = self.store.messages(MessageQuery(due_by_ms=now), 10)
        assert sorted(item.state.message_id for item in due) == [f"d{i}" for i in range(6)]
        assert self.store.messages(MessageQuery(due_by_ms=_ms(at(0)) - 1), 10) == []
        assert self.store.count_overdue(_ms(at(1))) == 4  # deadlines at 0 s and 1 s

    def test_a_sweep_expires_at_the_deadline_and_counts_as_local(self) -> None:
        """A local EXPIRED dated at the deadline, not at the sweep's clock; a second adds none."""
        tracker = self.tracker()
        tracker.register("m1", channel="sms", sent_at=at(0), deadline=at(10))
        tracker.apply(StatusEvent("m1", S.SENT_TO_SUPPLIER, at(1), "sms"))
        assert tracker.sweep(at(5)).total == 0  # not due yet
        assert tracker.sweep(at(1000)).applied == 1
        state = tracker.get("m1")
        assert state is not None
        assert (state.status, state.timestamp, state.origin) == (S.EXPIRED, at(10), Origin.LOCAL)
        assert tracker.sweep(at(5000)).total == 0
        assert self.store.count_local_expiries() == 1
        sources = [(e.event.status, e.event.origin) for e in tracker.history("m1")]
        assert sources == [
            (S.QUEUED, Origin.LOCAL),
            (S.SENT_TO_SUPPLIER, Origin.CLICKATELL),
            (S.EXPIRED, Origin.LOCAL),
        ], "history must keep each report's origin"
        tracker.apply(StatusEvent("m1", S.DEVICE_ACK, at(50), "sms"))  # the handset had it
        assert self.store.count_local_expiries() == 0
        (change,) = [c for c in tracker.changes() if c.status is S.EXPIRED]
        assert change.origin is Origin.LOCAL, "the feed must carry a change's origin"

    def test_a_registration_on_another_channel_is_rejected_and_sets_no_deadline(self) -> None:
        """A send on WhatsApp for a message Clickatell reported on SMS is rejected."""
        tracker = self.tracker()
        tracker.apply(StatusEvent("m1", S.SENT_TO_SUPPLIER, at(1), "sms"))
        decision = tracker.register("m1", channel="whatsapp", sent_at=at(0))
        assert decision.outcome is Outcome.REJECTED
        state = tracker.get("m1")
        assert state is not None
        assert state.deadline is None
