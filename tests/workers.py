"""Code run in worker processes by the multi-process store tests (importable under spawn)."""

from __future__ import annotations

import multiprocessing
import random
from typing import Any

from deliverystate import SQLiteStore, StatusEvent, Store, Tracker
from deliverystate.postgres import PostgresStore
from deliverystate.simulate import simulated_events

__all__ = ["apply_share", "open_location", "run_workers", "simulated_events"]


def open_location(location: dict[str, str]) -> Store:
    """Open the store a test describes as {"kind": ..., ...}."""
    if location["kind"] == "sqlite":
        return SQLiteStore(location["path"])
    return PostgresStore(location["dsn"], schema=location["schema"])


def apply_share(
    location: dict[str, str], events: list[StatusEvent], seed: int, barrier: Any
) -> None:
    """Apply a share of the events in random-sized batches, starting with the other workers."""
    tracker = Tracker(open_location(location))
    rng = random.Random(seed)
    barrier.wait()
    index = 0
    while index < len(events):
        size = rng.choice([1, 1, 5, 20, 50])
        tracker.apply_many(events[index : index + size])
        index += size
    tracker.store.close()  # type: ignore[attr-defined]


def run_workers(location: dict[str, str], events: list[StatusEvent], workers: int = 4) -> None:
    """Apply interleaved shares of ``events`` from ``workers`` processes at once."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    processes = [
        context.Process(target=apply_share, args=(location, events[k::workers], k, barrier))
        for k in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
    codes = [process.exitcode for process in processes]
    assert codes == [0] * workers, f"worker exit codes {codes}"
