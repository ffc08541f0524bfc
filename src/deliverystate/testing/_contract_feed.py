"""The store contract, part six: the change feed, its cursors, hooks and undeliverable changes."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ..errors import CursorMovedBack
from ..rules._catalog import Status
from ..rules._events import Change, StatusEvent
from ..tracking._tracker import Tracker
from ._harness import ContractBase, ev, fresh, reference
from ._strategies import BASE_MS, streams

__all__ = ["FeedContract", "running_winners"]

S = Status


def running_winners(
    tracker: Tracker, events: Sequence[StatusEvent]
) -> dict[str, list[tuple[Status, int]]]:
    """Per message, each (status, time) its state moves to as ``tracker`` is given ``events``."""
    chains: dict[str, list[tuple[Status, int]]] = {}
    for event in events:
        state = tracker.apply(event).state
        chain = chains.setdefault(event.message_id, [])
        if not chain or chain[-1][0] is not state.status:
            chain.append((state.status, state.timestamp_ms))
    return chains


def _by_message(changes: Sequence[Change]) -> dict[str, list[Change]]:
    found: dict[str, list[Change]] = {}
    for change in changes:
        found.setdefault(change.message_id, []).append(change)
    return found


def _applied_in_chunks(tracker: Tracker, events: list[StatusEvent], cuts: list[int]) -> None:
    """Apply ``events`` in batches cut at ``cuts``; a batch of one goes through ``apply``."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(events)}), len(events)]
    for start, end in itertools.pairwise(bounds):
        if end - start == 1:
            tracker.apply(events[start])
        else:
            tracker.apply_many(events[start:end])


class FeedContract(ContractBase):
    """The change feed: one change each time a status moves, in seq order, followed by cursors."""

    def test_each_message_s_changes_follow_its_running_winner(self) -> None:
        """In any order and batching, one change each time the winning report's status moves."""

        @self.examples()
        @given(st.data())
        def check(data: st.DataObject) -> None:
            order = fresh(data.draw(streams(), label="reports"))
            cuts = data.draw(st.lists(st.integers(0, len(order)), max_size=5), label="cuts")
            tracker = self.tracker()
            start = self.store.last_seq()
            _applied_in_chunks(tracker, order, cuts)
            changes = tracker.changes(after=start, limit=10_000)
            got = {
                m: [(c.status, c.timestamp_ms) for c in mine]
                for m, mine in _by_message(changes).items()
            }
            assert got == running_winners(reference(), order), "the feed's changes per message"
            seqs = [change.seq for change in changes]
            assert seqs == sorted(set(seqs)), f"seqs must increase strictly: {seqs}"
            for message_id, mine in _by_message(changes).items():
                assert [c.previous for c in mine] == [None, *[c.status for c in mine[:-1]]], (
                    f"each change of {message_id} must start where the one before it ended"
                )
                state = tracker.get(message_id)
                assert state is not None
                assert mine[-1].status is state.status

        check()

    def test_duplicate_and_stale_reports_add_no_change(self) -> None:
        """Replaying the same reports again, in any order, leaves the feed as it was."""

        @self.examples()
        @given(st.data())
        def check(data: st.DataObject) -> None:
            events = fresh(data.draw(streams(), label="reports"))
            tracker = self.tracker()
            tracker.apply_many(events)
            before = self.store.last_seq()
            for event in data.draw(st.permutations(events), label="replayed"):
                tracker.apply(event)
            tracker.apply_many(events)
            assert tracker.changes(after=before) == [], "a replayed report made a change"

        check()

    def test_a_change_carries_the_message_s_channel_client_id_and_report_time(self) -> None:
        """Fields of a change: previous status, time (aware UTC), channel and client message id."""
        tracker = self.tracker()
        tracker.apply(StatusEvent.from_ms("f-1", S.QUEUED, BASE_MS, None, "order-7"))
        tracker.apply(StatusEvent.from_ms("f-1", S.DEVICE_ACK, BASE_MS + 2500, "whatsapp"))
        first, second = tracker.changes()
        assert (first.previous, first.status, first.client_message_id) == (
            None,
            S.QUEUED,
            "order-7",
        )
        assert (second.previous, second.status, second.channel) == (
            S.QUEUED,
            S.DEVICE_ACK,
            "whatsapp",
        )
        assert second.client_message_id == "order-7"
        assert second.timestamp == datetime(2026, 1, 1, 0, 0, 2, 500_000, tzinfo=timezone.utc)
        assert second.is_final is False
        assert second.seq > first.seq
        assert self.store.last_seq() == second.seq

    def test_re_dating_a_status_or_learning_a_channel_is_no_change(self) -> None:
        """A later QUEUED only re-dates the state; a channel learned alone is no change either."""
        tracker = self.tracker()
        tracker.apply(ev("f-2", S.QUEUED, 0, None))
        tracker.apply(ev("f-2", S.QUEUED, 5000, None))
        tracker.apply(ev("f-2", S.QUEUED, 5000, "sms"))
        state = tracker.get("f-2")
        assert state is not None
        assert state.timestamp_ms == BASE_MS + 5000
        assert [(c.previous, c.status) for c in tracker.changes()] == [(None, S.QUEUED)]

    def test_changes_are_read_in_pages(self) -> None:
        """``after`` and ``limit`` page through the feed in seq order."""
        tracker = self.tracker()
        tracker.apply_many([ev(f"p-{i}", S.QUEUED, i) for i in range(7)])
        pages, after = [], 0
        while page := tracker.changes(after=after, limit=3):
            pages.append([c.message_id for c in page])
            after = page[-1].seq
        assert pages == [["p-0", "p-1", "p-2"], ["p-3", "p-4", "p-5"], ["p-6"]]
        assert self.store.last_seq() == after

    def test_named_cursors_are_kept_in_the_store(self) -> None:
        """A consumer's position survives reopening the store; unknown consumers are at 0."""
        tracker = self.tracker()
        assert tracker.cursor("billing") == 0
        tracker.commit_cursor("billing", 41)
        tracker.commit_cursor("billing", 42)
        tracker.commit_cursor("crm", 7)
        again = Tracker(self.open_again())
        assert again.cursor("billing") == 42
        assert dict(again.store.cursors()) == {"billing": 42, "crm": 7}
        again.store.drop_cursor("crm")
        assert dict(again.store.cursors()) == {"billing": 42}

    def test_a_cursor_never_moves_back(self) -> None:
        """commit_cursor refuses a seq below the cursor (CursorMovedBack) and keeps it."""
        tracker = self.tracker()
        tracker.commit_cursor("billing", 42)
        tracker.commit_cursor("billing", 42)  # committing the same position again is fine
        with pytest.raises(CursorMovedBack) as refused:
            tracker.commit_cursor("billing", 41)
        assert isinstance(refused.value, ValueError)
        assert (refused.value.consumer, refused.value.seq, refused.value.current) == (
            "billing",
            41,
            42,
        )
        assert Tracker(self.open_again()).cursor("billing") == 42
        self.store.drop_cursor("billing")  # the way to read the feed again
        tracker.commit_cursor("billing", 3)
        assert tracker.cursor("billing") == 3

    def test_hooks_get_each_commit_s_changes_after_it(self) -> None:
        """``on_change`` sees every commit's changes in order, as the feed has them."""
        tracker = self.tracker()
        seen: list[list[Change]] = []
        remove = tracker.on_change(lambda changes: seen.append(list(changes)))
        tracker.apply_many([ev("h-1", S.QUEUED, 0), ev("h-2", S.QUEUED, 0), ev("h-1", S.READ, 9)])
        tracker.apply(ev("h-2", S.EXPIRED, 50))
        tracker.apply(ev("h-2", S.EXPIRED, 50))  # a duplicate: no commit hands a hook nothing
        assert seen == [tracker.changes()[:3], tracker.changes()[3:]]
        remove()
        tracker.apply(ev("h-3", S.QUEUED, 0))
        assert len(seen) == 2, "a removed hook was called"

    def test_a_failing_hook_is_logged_and_undoes_nothing(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises does not undo the commit, nor keep the next hook from running."""
        tracker = self.tracker()
        later: list[int] = []

        def broken(changes: Sequence[Change]) -> None:
            raise RuntimeError("the backend is down")

        tracker.on_change(broken)
        tracker.on_change(lambda changes: later.append(len(changes)))
        with caplog.at_level(logging.ERROR):
            decision = tracker.apply(ev("h-9", S.DEVICE_ACK, 0))
        assert decision.outcome.value == "applied"
        state = tracker.get("h-9")
        assert state is not None
        assert state.status is S.DEVICE_ACK
        assert later == [1], "a failing hook kept the next one from running"
        assert "the backend is down" in caplog.text, "a failing hook must be logged, not swallowed"

    def test_trimming_keeps_what_a_named_consumer_has_not_passed(self) -> None:
        """``trim_changes`` drops old changes that every consumer has read, and only those."""
        tracker = self.tracker()
        store = self.store
        tracker.apply_many([ev(f"t-{i}", S.QUEUED, i) for i in range(6)])
        tracker.apply(ev("t-late", S.QUEUED, 10**9))  # newer than the date below
        seqs = [c.seq for c in tracker.changes()]
        tracker.commit_cursor("slow", seqs[1])
        tracker.commit_cursor("fast", seqs[4])
        store.trim_changes(BASE_MS + 10**6)
        assert [c.seq for c in tracker.changes()] == seqs[2:], "the slow consumer needs the rest"
        store.drop_cursor("slow")
        store.drop_cursor("fast")
        store.trim_changes(BASE_MS + 10**6)
        assert [c.message_id for c in tracker.changes()] == ["t-late"]

    def test_changes_are_counted_as_the_feed_holds_them(self) -> None:
        """count_changes counts the changes kept after a seq (final ones alone if asked)."""
        tracker = self.tracker()
        tracker.apply_many([ev("c-1", S.QUEUED, 0), ev("c-2", S.QUEUED, 0), ev("c-1", S.READ, 5)])
        tracker.apply(ev("c-late", S.QUEUED, 10**9))  # newer than the date below
        first, second, _, late = (c.seq for c in tracker.changes())
        store = self.store
        assert store.count_changes() == 4
        assert store.count_changes(second) == 2
        assert store.count_changes(first, final=True) == 1
        assert store.count_changes(late) == 0
        store.trim_changes(BASE_MS + 10**6)  # no consumer: the three old changes go
        assert store.count_changes() == 1, "counted changes the feed no longer holds"
        assert store.count_changes(final=True) == 0
        assert store.last_seq() == late

    def test_prune_trims_the_feed_behind_its_consumers(self) -> None:
        """Tracker.prune removes old changes too, except those a consumer has not yet read."""
        tracker = self.tracker()
        tracker.apply_many([ev("old-a", S.QUEUED, 0), ev("old-a", S.READ, 5)])
        tracker.apply_many([ev("old-b", S.QUEUED, 0), ev("old-b", S.EXPIRED, 5)])
        seqs = [c.seq for c in tracker.changes()]
        tracker.commit_cursor("reader", seqs[1])
        assert tracker.prune(datetime(2027, 1, 1, tzinfo=timezone.utc)) == 2
        assert [c.message_id for c in tracker.changes()] == ["old-b", "old-b"]

    def test_undeliverable_changes_are_kept_per_consumer(self) -> None:
        """A change a forwarder gave up on is kept with its error until it is removed."""
        tracker = self.tracker()
        tracker.apply(ev("u-1", S.DELIVERY_FAILURE, 0))
        (change,) = tracker.changes()
        store = self.store
        store.add_undeliverable("crm", change, "HTTP 500 from https://crm.example/hook")
        store.add_undeliverable("crm", change, "HTTP 503 from https://crm.example/hook")
        store.add_undeliverable("billing", change, "timed out")
        crm = store.undeliverable("crm")
        assert [(u.consumer, u.change, u.error) for u in crm] == [
            ("crm", change, "HTTP 503 from https://crm.example/hook")
        ]
        assert crm[0].failed_at.tzinfo is not None
        assert sorted(u.consumer for u in store.undeliverable()) == ["billing", "crm"]
        store.remove_undeliverable("crm", change.seq)
        assert [u.consumer for u in store.undeliverable()] == ["billing"]
