"""The change feed, on every store: what is written, in what order, and who has read it."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deliverystate import (
    Change,
    MemoryStore,
    SQLiteStore,
    Status,
    StatusEvent,
    Tracker,
)
from deliverystate.postgres import PostgresStore

from .conftest import StoreFactory
from .oracle import expected_winner
from .strategies import BASE_MS, consistent_events
from .test_store import SLOW, ev, fresh

S = Status


def oracle_chains(events: Sequence[StatusEvent]) -> dict[str, list[tuple[Status, int]]]:
    """Per message, the (status, time) of each change, from the oracle's running winner."""
    chains: dict[str, list[tuple[Status, int]]] = {}
    seen: dict[str, list[StatusEvent]] = {}
    for event in events:
        so_far = seen.setdefault(event.message_id, [])
        so_far.append(event)
        status, timestamp_ms = expected_winner(so_far)
        chain = chains.setdefault(event.message_id, [])
        if not chain or chain[-1][0] is not status:
            chain.append((status, timestamp_ms))
    return chains


def chains_of(changes: Sequence[Change]) -> dict[str, list[tuple[Status, int]]]:
    """Per message, the (status, time) of each change the feed holds, in seq order."""
    chains: dict[str, list[tuple[Status, int]]] = {}
    for change in changes:
        chains.setdefault(change.message_id, []).append((change.status, change.timestamp_ms))
    return chains


def applied_in_chunks(tracker: Tracker, events: list[StatusEvent], cuts: list[int]) -> None:
    """Apply ``events`` in batches cut at ``cuts``; a batch of one goes through ``apply``."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(events)}), len(events)]
    for start, end in itertools.pairwise(bounds):
        if end - start == 1:
            tracker.apply(events[start])
        else:
            tracker.apply_many(events[start:end])


@SLOW
@given(data=st.data())
def test_each_message_s_changes_follow_the_oracle_s_running_winner(
    open_store: StoreFactory, data: st.DataObject
) -> None:
    """In any order and batching, the feed holds one change each time the winner's status moves."""
    events = fresh(data.draw(consistent_events(max_size=25)))
    order = data.draw(st.permutations(events))
    cuts = data.draw(st.lists(st.integers(0, len(events)), max_size=5))
    tracker = Tracker(open_store())
    start = tracker.store.last_seq()
    applied_in_chunks(tracker, order, cuts)
    changes = tracker.changes(after=start, limit=10_000)
    assert chains_of(changes) == oracle_chains(order)
    seqs = [change.seq for change in changes]
    assert seqs == sorted(set(seqs))  # strictly increasing
    for message_id, mine in _by_message(changes).items():
        # each change starts where the one before it ended, and the last is the state's
        # status (its time may since have been re-dated within that status)
        assert [c.previous for c in mine] == [None, *[c.status for c in mine[:-1]]]
        state = tracker.get(message_id)
        assert state is not None
        assert mine[-1].status is state.status


def _by_message(changes: Sequence[Change]) -> dict[str, list[Change]]:
    found: dict[str, list[Change]] = {}
    for change in changes:
        found.setdefault(change.message_id, []).append(change)
    return found


@SLOW
@given(data=st.data())
def test_duplicate_and_stale_reports_add_no_change(
    open_store: StoreFactory, data: st.DataObject
) -> None:
    """Replaying the same reports again, in any order, leaves the feed as it was."""
    events = fresh(data.draw(consistent_events(max_size=20)))
    tracker = Tracker(open_store())
    tracker.apply_many(events)
    before = tracker.store.last_seq()
    for event in data.draw(st.permutations(events)):
        tracker.apply(event)
    tracker.apply_many(events)
    assert tracker.changes(after=before) == []


def test_a_change_carries_the_message_s_channel_client_id_and_report_time(
    open_store: StoreFactory,
) -> None:
    """Fields of a change: previous status, time (aware UTC), channel and client message id."""
    tracker = Tracker(open_store())
    start = tracker.store.last_seq()
    tracker.apply(StatusEvent.from_ms("f-1", S.QUEUED, BASE_MS, None, "order-7"))
    tracker.apply(StatusEvent.from_ms("f-1", S.DEVICE_ACK, BASE_MS + 2500, "whatsapp"))
    first, second = tracker.changes(after=start)
    assert (first.previous, first.status, first.client_message_id) == (None, S.QUEUED, "order-7")
    assert (second.previous, second.status, second.channel) == (S.QUEUED, S.DEVICE_ACK, "whatsapp")
    assert second.client_message_id == "order-7"
    assert second.timestamp == datetime(2026, 1, 1, 0, 0, 2, 500_000, tzinfo=timezone.utc)
    assert second.is_final is False
    assert second.seq > first.seq


def test_re_dating_a_status_or_learning_a_channel_is_no_change(open_store: StoreFactory) -> None:
    """A later QUEUED only re-dates the state; a channel learned alone is no change either."""
    tracker = Tracker(open_store())
    start = tracker.store.last_seq()
    tracker.apply(ev("f-2", S.QUEUED, 0, None))
    tracker.apply(ev("f-2", S.QUEUED, 5000, None))
    tracker.apply(ev("f-2", S.QUEUED, 5000, "sms"))
    assert tracker.get("f-2").timestamp_ms == BASE_MS + 5000  # type: ignore[union-attr]
    assert [(c.previous, c.status) for c in tracker.changes(after=start)] == [(None, S.QUEUED)]


def test_changes_are_read_in_pages(open_store: StoreFactory) -> None:
    """``after`` and ``limit`` page through the feed in seq order."""
    tracker = Tracker(open_store())
    start = tracker.store.last_seq()
    tracker.apply_many([ev(f"p-{i}", S.QUEUED, i) for i in range(7)])
    pages, after = [], start
    while page := tracker.changes(after=after, limit=3):
        pages.append([c.message_id for c in page])
        after = page[-1].seq
    assert pages == [["p-0", "p-1", "p-2"], ["p-3", "p-4", "p-5"], ["p-6"]]
    assert tracker.store.last_seq() == after


def test_named_cursors_are_kept_in_the_store(open_store: StoreFactory) -> None:
    """A consumer's position survives reopening the store; unknown consumers are at 0."""
    tracker = Tracker(open_store())
    assert tracker.cursor("billing") == 0
    tracker.commit_cursor("billing", 41)
    tracker.commit_cursor("billing", 42)
    tracker.commit_cursor("crm", 7)
    again = Tracker(open_store())
    assert again.cursor("billing") == 42
    assert dict(again.store.cursors()) == {"billing": 42, "crm": 7}
    again.store.drop_cursor("crm")
    assert dict(again.store.cursors()) == {"billing": 42}


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda t: t.cursor(""), ValueError, "1 to 200 printable"),
        (lambda t: t.cursor("a\nb"), ValueError, "printable"),
        (lambda t: t.cursor(7), TypeError, "is a str"),
        (lambda t: t.commit_cursor("x", -1), ValueError, "seq is 0 or more"),
        (lambda t: t.commit_cursor("x", True), TypeError, "seq is an int"),
        (lambda t: t.changes(after=-5), ValueError, "after is 0 or more"),
        (lambda t: t.changes(limit=0), ValueError, "limit is 1 or more"),
    ],
)
def test_feed_arguments_are_checked(call, error, words) -> None:  # type: ignore[no-untyped-def]
    """A bad consumer name, position or limit is refused with an error that names it."""
    with pytest.raises(error, match=words):
        call(Tracker())


def test_hooks_get_each_commit_s_changes_after_it(open_store: StoreFactory) -> None:
    """``on_change`` sees every commit's changes in order, as the feed has them."""
    tracker = Tracker(open_store())
    start = tracker.store.last_seq()
    seen: list[list[Change]] = []
    remove = tracker.on_change(lambda changes: seen.append(list(changes)))
    tracker.apply_many([ev("h-1", S.QUEUED, 0), ev("h-2", S.QUEUED, 0), ev("h-1", S.READ, 9)])
    tracker.apply(ev("h-2", S.EXPIRED, 50))
    tracker.apply(ev("h-2", S.EXPIRED, 50))  # a duplicate: no commit hands a hook nothing
    assert seen == [tracker.changes(after=start)[:3], tracker.changes(after=start)[3:]]
    remove()
    tracker.apply(ev("h-3", S.QUEUED, 0))
    assert len(seen) == 2


def test_a_failing_hook_is_logged_and_undoes_nothing(
    open_store: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises does not undo the commit, nor keep the next hook from running."""
    tracker = Tracker(open_store())
    later: list[int] = []

    def broken(changes: Sequence[Change]) -> None:
        raise RuntimeError("the backend is down")

    tracker.on_change(broken)
    tracker.on_change(lambda changes: later.append(len(changes)))
    with caplog.at_level(logging.ERROR, logger="deliverystate.stores"):
        decision = tracker.apply(ev("h-9", S.DEVICE_ACK, 0))
    assert decision.outcome.value == "applied"
    assert tracker.get("h-9").status is S.DEVICE_ACK  # type: ignore[union-attr]
    assert later == [1]
    assert "a change hook failed" in caplog.text
    assert "the backend is down" in caplog.text


def test_trimming_keeps_what_a_named_consumer_has_not_passed(open_store: StoreFactory) -> None:
    """``trim_changes`` drops old changes that every consumer has read, and only those."""
    tracker = Tracker(open_store())
    store = tracker.store
    start = store.last_seq()
    tracker.apply_many([ev(f"t-{i}", S.QUEUED, i) for i in range(6)])
    tracker.apply(ev("t-late", S.QUEUED, 10**9))  # newer than the date below
    seqs = [c.seq for c in tracker.changes(after=start)]
    tracker.commit_cursor("slow", seqs[1])
    tracker.commit_cursor("fast", seqs[4])
    store.trim_changes(BASE_MS + 10**6)
    left = [c.seq for c in tracker.changes(after=start)]
    assert left == seqs[2:]  # the slow consumer still needs the rest
    store.drop_cursor("slow")
    store.drop_cursor("fast")
    store.trim_changes(BASE_MS + 10**6)
    assert [c.message_id for c in tracker.changes(after=start)] == ["t-late"]


def test_prune_trims_the_feed_behind_its_consumers(open_store: StoreFactory) -> None:
    """Tracker.prune removes old changes too, except those a consumer has not yet read."""
    tracker = Tracker(open_store())
    start = tracker.store.last_seq()
    tracker.apply_many([ev("old-a", S.QUEUED, 0), ev("old-a", S.READ, 5)])
    tracker.apply_many([ev("old-b", S.QUEUED, 0), ev("old-b", S.EXPIRED, 5)])
    seqs = [c.seq for c in tracker.changes(after=start)]
    tracker.commit_cursor("reader", seqs[1])
    assert tracker.prune(datetime(2027, 1, 1, tzinfo=timezone.utc)) == 2
    assert [c.message_id for c in tracker.changes(after=start)] == ["old-b", "old-b"]
    tracker.store.drop_cursor("reader")


def test_undeliverable_changes_are_kept_per_consumer(open_store: StoreFactory) -> None:
    """A change a forwarder gave up on is kept with its error until it is removed."""
    tracker = Tracker(open_store())
    start = tracker.store.last_seq()
    tracker.apply(ev("u-1", S.DELIVERY_FAILURE, 0))
    (change,) = tracker.changes(after=start)
    store = tracker.store
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


@pytest.mark.parametrize("kind", ["memory-lean", "sqlite"])
def test_a_store_can_be_opened_without_a_feed(kind: str, tmp_path: object) -> None:
    """``feed=False`` (and a memory store without history) writes no changes."""
    store = (
        MemoryStore(history=False)
        if kind == "memory-lean"
        else SQLiteStore(f"{tmp_path}/nofeed.sqlite3", feed=False)
    )
    tracker = Tracker(store)
    tracker.apply_many([ev("n-1", S.QUEUED, 0), ev("n-1", S.READ, 5)])
    assert tracker.get("n-1").status is S.READ  # type: ignore[union-attr]
    assert tracker.changes() == []


def test_postgres_followers_never_miss_a_change_committed_out_of_seq_order(
    postgres_dsn: str, pg_schema: str
) -> None:
    """A batch numbered after a slow one commits after it: a follower never skips a change."""
    slow_store, fast_store, reader = (PostgresStore(postgres_dsn, schema=pg_schema) for _ in "abc")
    try:
        for store in (slow_store, fast_store):  # the policy is recorded: nothing else to wait on
            Tracker(store).apply(ev(f"warm-{id(store)}", S.QUEUED, 0))
        start = reader.last_seq()
        with psycopg.connect(postgres_dsn, autocommit=True) as raw:
            # the slow batch sits in its transaction, seq in hand, for a second
            raw.execute(
                f"""CREATE FUNCTION "{pg_schema}".slow_feed() RETURNS trigger LANGUAGE plpgsql
                AS $$ BEGIN
                    IF NEW.message_id LIKE 'slow-%' THEN PERFORM pg_sleep(1); END IF;
                    RETURN NEW;
                END $$"""
            )
            raw.execute(
                f'CREATE TRIGGER slow AFTER INSERT ON "{pg_schema}".ds_changes '
                f'FOR EACH ROW EXECUTE FUNCTION "{pg_schema}".slow_feed()'
            )
        slow = threading.Thread(target=Tracker(slow_store).apply, args=(ev("slow-1", S.QUEUED, 0),))
        fast = threading.Thread(target=Tracker(fast_store).apply, args=(ev("fast-1", S.QUEUED, 0),))
        slow.start()
        time.sleep(0.3)
        fast.start()
        time.sleep(0.4)  # the fast batch has committed by now, unless it waits for the slow one
        seen = reader.changes(after=start)
        after = seen[-1].seq if seen else start
        slow.join()
        fast.join()
        seen += reader.changes(after=after)
        assert [c.message_id for c in seen] == ["slow-1", "fast-1"]
        assert seen == reader.changes(after=start)
    finally:
        for store in (slow_store, fast_store, reader):
            store.close()


def test_postgres_followers_see_every_change_of_busy_writers(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Three writers and a follower reading as they go: the follower sees each change once."""
    stores = [PostgresStore(postgres_dsn, schema=pg_schema) for _ in range(4)]
    stop = threading.Event()
    seen: list[int] = []

    def follow() -> None:
        after = 0
        while True:
            done = stop.is_set()
            for change in stores[0].changes(after=after, limit=500):
                seen.append(change.seq)
                after = change.seq
            if done:
                return

    def write(worker: int) -> None:
        tracker = Tracker(stores[worker])
        for batch in range(30):
            tracker.apply_many(
                [ev(f"w{worker}-{batch}-{i}", S.QUEUED, i) for i in range(20)]
                + [ev(f"shared-{i}", S.SENT_TO_SUPPLIER, worker * 100 + batch) for i in range(3)]
            )

    follower = threading.Thread(target=follow)
    follower.start()
    writers = [threading.Thread(target=write, args=(w,)) for w in range(1, 4)]
    try:
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
    finally:
        stop.set()
        follower.join()
    try:
        everything = [c.seq for c in stores[0].changes(limit=100_000)]
        assert len(everything) >= 3 * 30 * 20
        assert seen == everything  # each change once, none skipped, in order
    finally:
        for store in stores:
            store.close()
