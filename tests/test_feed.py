"""The change feed beyond the store contract: the oracle, arguments, PostgreSQL's commit order.

What every store's feed does (changes, cursors, hooks, trimming, undeliverable
changes) is part of ``deliverystate.testing.StoreContract``, run on each
store by ``tests/test_store.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from hypothesis import given, settings

from deliverystate import (
    MemoryStore,
    SQLiteStore,
    Status,
    StatusEvent,
    Tracker,
)
from deliverystate.postgres import PostgresStore
from deliverystate.testing import streams
from deliverystate.testing._contract_feed import running_winners
from deliverystate.testing._harness import ev

from .oracle import expected_winner

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


@settings(max_examples=200, deadline=None)
@given(streams())
def test_the_reference_s_running_winner_is_the_oracle_s(events: list[StatusEvent]) -> None:
    """The memory store's feed moves as the specification's winner does.

    The store contract holds every store's feed to the memory store's (the
    reference); this holds the reference to docs/design.md section 3.
    """
    tracker = Tracker(MemoryStore())
    for event in events:
        tracker.apply(event)
    chains: dict[str, list[tuple[Status, int]]] = {}
    for change in tracker.changes(limit=10_000):
        chains.setdefault(change.message_id, []).append((change.status, change.timestamp_ms))
    assert chains == oracle_chains(events)
    assert running_winners(Tracker(MemoryStore()), events) == oracle_chains(events)


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


def test_a_change_says_whether_it_is_local() -> None:
    """is_local: a registration's and a sweep's changes are local, a callback's is not."""
    tracker = Tracker(MemoryStore(), windows={"sms": timedelta(hours=1)})
    sent = datetime(2026, 1, 1, tzinfo=timezone.utc)
    tracker.register("swept", channel="sms", sent_at=sent)
    tracker.register("heard", channel="sms", sent_at=sent)
    tracker.apply(StatusEvent("heard", S.DEVICE_ACK, sent + timedelta(seconds=9), "sms"))
    assert tracker.sweep(sent + timedelta(hours=2)).applied == 1
    got = [(c.message_id, c.status, c.is_local) for c in tracker.changes()]
    assert got == [
        ("swept", S.QUEUED, True),
        ("heard", S.QUEUED, True),
        ("heard", S.DEVICE_ACK, False),
        ("swept", S.EXPIRED, True),
    ]
