"""The store contract, part two: history, milestones and the message list."""

from __future__ import annotations

from hypothesis import given

from ..rules._catalog import Status
from ..rules._events import StatusEvent
from ..rules._reconcile import Outcome
from ..rules._records import Listed, MessageQuery
from ..stores import Store
from ..tracking._tracker import Tracker
from ._harness import ContractBase, ev, fresh, reference
from ._strategies import BASE_MS, streams

__all__ = ["HistoryContract"]

S = Status


def _ids(listed: list[Listed]) -> list[str]:
    return [item.state.message_id for item in listed]


def _six_messages(store: Store) -> None:
    """Six messages: two channels, several statuses, first reports one second apart."""
    tracker = Tracker(store)
    tracker.apply_many(
        [
            StatusEvent.from_ms("a", S.QUEUED, BASE_MS + 1000, "sms", "client-a"),
            StatusEvent.from_ms("b", S.DELIVERY_FAILURE, BASE_MS + 2000, "sms"),
            StatusEvent.from_ms("c", S.READ, BASE_MS + 3000, "whatsapp"),
            StatusEvent.from_ms("d", S.SENT_TO_SUPPLIER, BASE_MS + 4000, "whatsapp"),
            StatusEvent.from_ms("e", S.EXPIRED, BASE_MS + 5000, "sms"),
            StatusEvent.from_ms("f", S.DEVICE_ACK, BASE_MS + 6000, None),
        ]
    )


class HistoryContract(ContractBase):
    """What a store remembers: every report with its outcome, in order, and the message list."""

    def test_history_is_the_timeline_without_repeats(self) -> None:
        """History lists each report once, in event-time order, with its outcome and arrival."""
        tracker = self.tracker()
        reports = [ev("h", S.DEVICE_ACK, 500), ev("h", S.QUEUED, 100), ev("h", S.EXPIRED, 900)]
        tracker.apply_many(reports)
        tracker.apply_many(reports)  # a redelivered batch
        tracker.apply(ev("h", S.READ, 700, "whatsapp"))  # wrong channel
        timeline = [(h.event.status, h.outcome) for h in tracker.history("h")]
        assert timeline == [
            (S.QUEUED, Outcome.STALE),
            (S.DEVICE_ACK, Outcome.APPLIED),
            (S.READ, Outcome.REJECTED),
            (S.EXPIRED, Outcome.STALE),
        ], "history must keep every report once, in event-time order, with what it did"
        arrivals = {h.event.status: h.arrival for h in tracker.history("h")}
        assert arrivals[S.DEVICE_ACK] < arrivals[S.QUEUED] < arrivals[S.EXPIRED] < arrivals[S.READ]
        assert list(tracker.history("nobody")) == []

    def test_history_keeps_each_report_as_it_came(self) -> None:
        """A history entry holds the report itself: channel, client id and origin included."""
        tracker = self.tracker()
        report = ev("k", S.SENT_TO_SUPPLIER, 10, "whatsapp", "order-7")
        tracker.apply(report)
        (entry,) = tracker.history("k")
        assert entry.event == report, f"history holds {entry.event!r}, the report was {report!r}"

    def test_every_stream_s_history_is_the_reference_s(self) -> None:
        """For any stream, each message's history is the memory store's: reports and outcomes."""

        @self.examples()
        @given(streams())
        def check(drawn: list[StatusEvent]) -> None:
            events = fresh(drawn)
            tracker, expected = self.tracker(), reference()
            for event in events:
                tracker.apply(event)
                expected.apply(event)
            for message_id in {e.message_id for e in events}:
                got = [(h.event, h.outcome) for h in tracker.history(message_id)]
                want = [(h.event, h.outcome) for h in expected.history(message_id)]
                assert got == want, f"the history of {message_id}"

        check()

    def test_milestones_come_from_accepted_history(self) -> None:
        """First report (any), first delivery (READ counts) and read (accepted reports only)."""
        tracker = self.tracker()
        tracker.apply_many(
            [
                ev("m1", S.DEVICE_ACK, 900),
                ev("m1", S.QUEUED, 100),
                ev("m1", S.READ, 2000, None),
                ev("m2", S.SENT_TO_SUPPLIER, 50),
                ev("m2", S.READ, 400, "whatsapp"),  # rejected: m2 is on SMS
                ev("m2", S.QUEUED, 20, "whatsapp"),  # rejected too, yet its earliest report
                ev("m3", S.READ, 70),
            ]
        )
        got = {
            m.message_id: (m.first_ms, m.delivered_ms, m.read_ms) for m in self.store.milestones()
        }
        assert got == {
            "m1": (BASE_MS + 100, BASE_MS + 900, BASE_MS + 2000),
            "m2": (BASE_MS + 20, None, None),
            "m3": (BASE_MS + 70, BASE_MS + 70, BASE_MS + 70),
        }

    def test_milestones_move_earlier_across_batches_and_never_later(self) -> None:
        """A later batch's earlier delivery or read moves the milestone back; a later one never."""
        tracker = self.tracker()
        tracker.apply_many([ev("a", S.READ, 3000), ev("b", S.QUEUED, 10)])
        tracker.apply_many([ev("a", S.DEVICE_ACK, 1500), ev("a", S.READ, 3500)])
        tracker.apply_many([ev("a", S.READ, 2500), ev("b", S.DEVICE_ACK, 900)])
        tracker.apply_many([ev("a", S.DEVICE_ACK, 1200, "whatsapp"), ev("b", S.READ, 950)])
        got = {
            m.message_id: (m.first_ms, m.delivered_ms, m.read_ms) for m in self.store.milestones()
        }
        assert got == {
            # the rejected WhatsApp report at 1200 is no delivery, yet the earliest report
            "a": (BASE_MS + 1200, BASE_MS + 1500, BASE_MS + 2500),
            "b": (BASE_MS + 10, BASE_MS + 900, BASE_MS + 950),
        }

    def test_milestones_since_a_time_are_those_of_messages_first_reported_then(self) -> None:
        """``milestones(since)`` keeps the messages whose first report is at or after ``since``."""
        tracker = self.tracker()
        tracker.apply_many(
            [
                ev("old", S.QUEUED, 100),
                ev("old", S.DEVICE_ACK, 900),  # delivered inside the window, sent before it
                ev("edge", S.QUEUED, 500),
                ev("edge", S.DEVICE_ACK, 700),
                ev("new", S.SENT_TO_SUPPLIER, 800),
                ev("early", S.DEVICE_ACK, 1000),
                ev("early", S.QUEUED, 200),  # arrives late, but moves the first report back
            ]
        )
        got = {m.message_id: m.first_ms for m in self.store.milestones(BASE_MS + 500)}
        assert got == {"edge": BASE_MS + 500, "new": BASE_MS + 800}, "milestones(since)"
        every = {m.message_id for m in self.store.milestones(None)}
        assert every == {"old", "edge", "new", "early"}, "milestones(None)"

    def test_reads_of_ids_no_store_can_hold_find_nothing(self) -> None:
        """get, history and messages by client id of NUL, a surrogate or 10 KB find nothing."""
        _six_messages(self.store)
        for bad in ("a\x00b", "\ud800", "x" * 10_000):
            assert self.store.get(bad) is None
            assert list(self.store.history(bad)) == []
            assert self.store.messages(MessageQuery(client_message_id=bad), 10) == []

    def test_messages_are_listed_newest_first_and_filtered(self) -> None:
        """Every filter of MessageQuery selects what it says, newest first report first."""
        store = self.store
        _six_messages(store)
        assert _ids(store.messages(MessageQuery(), 10)) == ["f", "e", "d", "c", "b", "a"]
        failures = frozenset(s for s in Status if s.is_failure)
        assert _ids(store.messages(MessageQuery(statuses=failures), 10)) == ["e", "b"]
        assert _ids(store.messages(MessageQuery(channel="whatsapp"), 10)) == ["d", "c"]
        window = MessageQuery(since_ms=BASE_MS + 2000, until_ms=BASE_MS + 5000)
        assert _ids(store.messages(window, 10)) == ["d", "c", "b"]
        assert _ids(store.messages(MessageQuery(client_message_id="client-a"), 10)) == ["a"]
        (listed,) = store.messages(MessageQuery(client_message_id="client-a"), 10)
        assert listed.first_ms == BASE_MS + 1000

    def test_message_pages_follow_each_other_without_gaps_or_repeats(self) -> None:
        """Keyset pages of two, each after the last one seen, give the whole list once."""
        _six_messages(self.store)
        seen: list[str] = []
        before = None
        while page := self.store.messages(MessageQuery(), 2, before):
            seen += _ids(page)
            before = (page[-1].first_ms, page[-1].state.message_id)
        assert seen == ["f", "e", "d", "c", "b", "a"]

    def test_the_list_knows_an_earlier_report_and_a_client_id_learned_late(self) -> None:
        """A report earlier than the first moves the message back; a late client id finds it."""
        tracker = self.tracker()
        tracker.apply(StatusEvent.from_ms("m", S.DEVICE_ACK, BASE_MS + 9000, "sms"))
        tracker.apply(StatusEvent.from_ms("m", S.QUEUED, BASE_MS + 1000, "sms", "late-client"))
        (listed,) = self.store.messages(MessageQuery(client_message_id="late-client"), 10)
        assert (listed.first_ms, listed.state.status) == (BASE_MS + 1000, S.DEVICE_ACK)
        assert self.store.messages(MessageQuery(since_ms=BASE_MS + 2000), 10) == []

    def test_every_stream_is_listed_as_the_reference_lists_it(self) -> None:
        """For any reports, the list holds the memory store's messages and first report times."""

        @self.examples()
        @given(streams())
        def check(drawn: list[StatusEvent]) -> None:
            events = fresh(drawn)
            ids = {e.message_id for e in events}
            expected = reference()
            for tracker in (self.tracker(), expected):
                tracker.apply_many(events)
            listed = self.store.messages(MessageQuery(), 100_000)
            got = {(i.first_ms, i.state) for i in listed if i.state.message_id in ids}
            want = {(i.first_ms, i.state) for i in expected.store.messages(MessageQuery(), 1000)}
            assert got == want

        check()
