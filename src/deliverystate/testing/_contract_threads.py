"""The store contract, part eight: workers in threads, each with its own handle, at once.

Every test here starts its threads together (a barrier) so that they really
overlap, collects what each thread raised, and then checks the store against
a reference that was given the same input in one thread.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from ..callbacks._parse import parse_callback
from ..rules._catalog import Status
from ..rules._events import Change, StatusEvent
from ..rules._records import Summary
from ..simulate import generate_callbacks, simulated_events
from ..stores import MemoryStore, Store
from ..tracking._deadlines import Send
from ..tracking._tracker import Tracker
from ._harness import ContractBase

__all__ = ["ConcurrencyContract", "run_together"]

S = Status
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def run_together(work: Sequence[Callable[[], object]]) -> None:
    """Run each callable in a thread of its own, all released at once; re-raise a failure."""
    barrier = threading.Barrier(len(work))
    failures: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait()
            job()
        except BaseException as failure:  # a thread's failure is the test's failure
            failures.append(failure)

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise AssertionError(f"a worker thread failed: {failures[0]!r}") from failures[0]


def _share(events: list[StatusEvent], worker: int, workers: int) -> list[list[StatusEvent]]:
    """A worker's batches: every ``workers``-th report, a quarter of all again, shuffled, cut up."""
    rng = random.Random(worker)
    mine = events[worker::workers] + rng.sample(events, len(events) // 4)
    rng.shuffle(mine)
    batches, start = [], 0
    while start < len(mine):
        size = rng.randint(1, 5)
        batches.append(mine[start : start + size])
        start += size
    return batches


def _feed_problems(changes: Sequence[Change], store: Store) -> list[str]:
    problems = []
    seqs = [c.seq for c in changes]
    if len(set(seqs)) != len(seqs):
        problems.append("two changes share a seq")
    chains: dict[str, list[Change]] = {}
    for change in changes:
        chains.setdefault(change.message_id, []).append(change)
    for message_id, chain in chains.items():
        if [c.previous for c in chain] != [None, *[c.status for c in chain[:-1]]]:
            problems.append(f"the changes of {message_id} do not follow each other")
        state = store.get(message_id)
        if state is None or chain[-1].status is not state.status:
            problems.append(f"the last change of {message_id} is not its state")
    return problems


class ConcurrencyContract(ContractBase):
    """Workers at once, each with its own handle: no lost update, no report counted twice."""

    #: How many threads the thread tests run at once.
    workers = 4

    def test_workers_in_threads_reach_the_states_of_one_tracker(self) -> None:
        """Threads applying overlapping shares at once: the reference states, history and feed."""
        events = simulated_events(60, seed=11)
        handles = [self.open_again() for _ in range(self.workers)]
        totals: list[int] = []

        def work(worker: int) -> Callable[[], None]:
            def job() -> None:
                tracker = Tracker(handles[worker])
                for batch in _share(events, worker, self.workers):
                    if len(batch) == 1:
                        tracker.apply(batch[0])
                        totals.append(1)
                    else:
                        totals.append(tracker.apply_many(batch).total)

            return job

        run_together([work(k) for k in range(self.workers)])
        expected = Tracker(MemoryStore())
        expected.apply_many(events)
        sent = sum(len(b) for k in range(self.workers) for b in _share(events, k, self.workers))
        assert sum(totals) == sent, "the summaries must count every report once"
        ids = sorted({e.message_id for e in events})
        lost = [m for m in ids if self.store.get(m) != expected.get(m)]
        assert lost == [], f"workers at once lost or misapplied updates to {lost}"
        for message_id in ids:
            distinct = {(e.status, e.timestamp_ms) for e in events if e.message_id == message_id}
            kept = [(h.event.status, h.event.timestamp_ms) for h in self.store.history(message_id)]
            assert sorted(kept) == sorted(distinct), f"the history of {message_id}"
        assert _feed_problems(self.store.changes(limit=100_000), self.store) == []
        assert dict(self.store.count_by_status()) == dict(expected.count_by_status()), (
            "workers at once lost or doubled a move of the counts by status"
        )

    def test_receivers_in_threads_keep_every_body_once(self) -> None:
        """Threads receiving bodies at once: every state applied, every bad body kept once."""
        stream = generate_callbacks(40, seed=23, invalid_rate=0.1)
        bodies = [c.body for c in stream]
        invalid = {c.body for c in stream if not c.valid}
        assert invalid, "the stream holds bad bodies"
        handles = [self.open_again() for _ in range(self.workers)]

        def work(worker: int) -> Callable[[], None]:
            def job() -> None:
                tracker = Tracker(handles[worker])
                mine = bodies[worker :: self.workers] + sorted(invalid)  # bad bodies everywhere
                for start in range(0, len(mine), 3):
                    tracker.receive_many(mine[start : start + 3])

            return job

        run_together([work(k) for k in range(self.workers)])
        expected = Tracker(MemoryStore())
        expected.ingest_many(bodies)
        assert list(self.store.pending()) == [], "received bodies were left in the inbox"
        letters = [d.payload for d in self.store.dead_letters()]
        assert sorted(letters) == sorted(invalid), "each bad body must be kept once"
        ids = {e.message_id for c in stream if c.valid for e in parse_callback(c.body)}
        assert {m: self.store.get(m) for m in ids} == {m: expected.get(m) for m in ids}

    def test_two_sweepers_write_one_expiry(self) -> None:
        """Two trackers sweeping at once: each overdue message expires once, at its deadline."""
        setup = self.tracker()
        setup.register_many(
            Send(f"m{i}", "sms", T0, deadline=T0 + timedelta(seconds=i)) for i in range(50)
        )
        results: list[Summary] = []
        later = T0 + timedelta(seconds=100)

        def sweeper(handle: Store) -> Callable[[], None]:
            return lambda: results.append(Tracker(handle).sweep(later))

        run_together([sweeper(self.open_again()) for _ in range(2)])
        assert sum(r.applied for r in results) == 50, "two sweepers expired a message twice"
        for i in range(50):
            state = setup.get(f"m{i}")
            assert state is not None
            assert (state.status, state.timestamp) == (S.EXPIRED, T0 + timedelta(seconds=i))
            assert len(setup.history(f"m{i}")) == 2
        assert dict(self.store.count_by_status()) == {S.EXPIRED: 50}
        assert self.store.count_local_expiries() == 50
