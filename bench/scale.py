"""Store growth: events/s as a store grows from 10 thousand to millions of tracked messages.

Run: ``python bench/scale.py [--quick] [--stores sqlite,postgres] [--sizes 10000,1000000]``.

A mid-size sender sends a million messages a day and keeps a month of them;
receipts arrive over hours, READs over days.  For each store and each size N
this script loads N messages as a backfill would (random 32-hex ids, sent in
order over time, each with its QUEUED and SENT_TO_SUPPLIER reports, batches
of 10,000), warms the store up, and then applies callbacks in batches of
1,000 (DEVICE_ACK, READ or a failure, later than everything loaded) about:

* the 100k most recently sent messages,
* the 300k most recently sent messages,
* any tracked message, uniformly.

Each figure is events/s over the measured batches, median of the rounds; the
ratio is to the same workload at 10 thousand tracked messages, measured in
the same run.  Budget (docs/design.md section 6): with callbacks about the 300k
most recent messages, 1M tracked at least 0.5 of 10k, on SQLite and on
PostgreSQL (measured right after the load, as a backfill leaves it: nothing
is analyzed or vacuumed by hand in between).  Uniform access and 10M are
reported.  ``--quick`` (CI, about 20 seconds) measures 10k and 100k with
fewer batches and reports their ratio: loading a million messages alone takes
minutes here, so the budget is checked by the full run (or ``--quick --sizes
10000,1000000``).

At each size it also times reading one page of 50 from the message list
(``Store.messages``): the newest, the failed, those sent in the last minute,
one client id, the overdue ones; counting the messages by status and the
local expiries (the status page and every /metrics scrape do); and reading
the status page's delivery figures (``web._figures.read_figures``) over its
last-hour and last-day windows, ending when the last message was sent: the
messages are sent 100 a second, so the hour holds the newest 360,000 and the
day every message.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, print_table
from deliverystate import SQLiteStore, Status, StatusEvent, Tracker
from deliverystate.rules._time import datetime_from_ms
from deliverystate.stores import MessageQuery
from deliverystate.web._figures import read_figures
from deliverystate.web._page import WINDOWS

BUDGET = 0.5
#: The message-list queries timed at each size, and the two counts the status page
#: and every /metrics scrape read (see ``list_timings``).
LIST_QUERIES = (
    "newest",
    "failed",
    "sent in the last minute",
    "client id",
    "overdue",
    "counts by status",
    "local expiries",
)
LOAD_BATCH = 10_000
BATCH = 1_000
T0 = 1_767_225_600_000  # 2026-01-01
#: Workloads: name and how many of the most recent messages callbacks are about (0: all).
WORKLOADS = (("100k most recent", 100_000), ("300k most recent", 300_000), ("uniform", 0))
_LATE = (Status.DEVICE_ACK, Status.READ, Status.DELIVERY_FAILURE, Status.EXPIRED)


def message_id(rng: random.Random) -> str:
    """A Clickatell-like message id: 32 random hex digits."""
    return f"{rng.getrandbits(128):032x}"


def load(tracker: Tracker, ids: list[str]) -> float:
    """Load every message as a backfill (QUEUED, then SENT_TO_SUPPLIER); return seconds."""
    started = time.perf_counter()
    for start in range(0, len(ids), LOAD_BATCH // 2):
        chunk = ids[start : start + LOAD_BATCH // 2]
        events = []
        for offset, mid in enumerate(chunk):
            sent = T0 + (start + offset) * 10  # sent in order, 100 messages a second
            events.append(StatusEvent.from_ms(mid, Status.QUEUED, sent, "sms"))
            events.append(StatusEvent.from_ms(mid, Status.SENT_TO_SUPPLIER, sent + 500, "sms"))
        tracker.apply_many(events)
    return time.perf_counter() - started


def callbacks(
    ids: list[str], window: int, rng: random.Random, now_ms: int
) -> Iterator[list[StatusEvent]]:
    """Batches of late reports about the ``window`` most recent messages (0: any of them)."""
    pool = ids if window <= 0 else ids[-window:]
    while True:
        batch = []
        for _ in range(BATCH):
            now_ms += 1
            status = rng.choice(_LATE)
            batch.append(StatusEvent.from_ms(rng.choice(pool), status, now_ms, "sms"))
        yield batch


def measure(tracker: Tracker, batches: Iterator[list[StatusEvent]], count: int) -> float:
    """Events per second over ``count`` batches."""
    chosen = [next(batches) for _ in range(count)]
    started = time.perf_counter()
    for batch in chosen:
        tracker.apply_many(batch)
    return count * BATCH / (time.perf_counter() - started)


def run_size(
    open_store: Callable[[], Any], size: int, rounds: int, count: int, seed: int
) -> dict[str, Any]:
    """Load ``size`` messages into a fresh store and measure every workload."""
    rng = random.Random(seed)
    ids = [message_id(rng) for _ in range(size)]
    store = open_store()
    try:
        tracker = Tracker(store)
        load_seconds = load(tracker, ids)
        now = T0 + size * 10 + 3_600_000
        results: dict[str, Any] = {"load": size * 2 / load_seconds}
        warm = callbacks(ids, 300_000, rng, now)
        measure(tracker, warm, max(2, count // 4))  # warm caches and statement plans
        now += 10_000_000
        for name, window in WORKLOADS:
            figures = []
            for _ in range(rounds):
                figures.append(measure(tracker, callbacks(ids, window, rng, now), count))
                now += count * BATCH + 1
            results[name] = statistics.median(figures)
        results["list"] = list_timings(store, now)
        results["page"] = page_timings(store, T0 + size * 10)
        return results
    finally:
        store.close()


def list_timings(store: Any, now_ms: int) -> dict[str, float]:
    """Milliseconds (median of 15) to read one page of 50 from the message list, per query,
    and to count the messages by status and the local expiries."""
    failures = frozenset(s for s in Status if s.is_failure)
    queries = {
        "newest": MessageQuery(),
        "failed": MessageQuery(statuses=failures),
        "sent in the last minute": MessageQuery(since_ms=now_ms - 60_000),
        "client id": MessageQuery(client_message_id="no-such-client"),
        "overdue": MessageQuery(due_by_ms=now_ms),
    }
    reads: dict[str, Callable[[], object]] = {
        **{name: functools.partial(store.messages, query, 50) for name, query in queries.items()},
        "counts by status": store.count_by_status,
        "local expiries": store.count_local_expiries,
    }
    timings = {}
    for name, read in reads.items():
        samples = []
        for _ in range(15):
            started = time.perf_counter()
            read()
            samples.append((time.perf_counter() - started) * 1000)
        timings[name] = statistics.median(samples)
    return timings


#: The status page's windows timed at each size.
PAGE_WINDOWS = ("1h", "24h")


def page_timings(store: Any, now_ms: int) -> dict[str, float]:
    """Seconds to read the status page's delivery figures over each window (one read each)."""
    timings = {}
    for window in PAGE_WINDOWS:
        slots, step = WINDOWS[window]
        started = time.perf_counter()
        read_figures(store, datetime_from_ms(now_ms), slots, step)
        timings[window] = time.perf_counter() - started
    return timings


def sqlite_opener(workdir: Path) -> Callable[[], Any]:
    """Open a fresh SQLite file each time."""

    def open_() -> Any:
        return SQLiteStore(workdir / f"{uuid.uuid4().hex}.sqlite3")

    return open_


def postgres_opener(dsn: str, schemas: list[str]) -> Callable[[], Any]:
    """Open a fresh PostgreSQL schema each time."""
    from deliverystate.postgres import PostgresStore  # noqa: PLC0415 - optional

    def open_() -> Any:
        schema = f"scale_{uuid.uuid4().hex[:10]}"
        schemas.append(schema)
        return PostgresStore(dsn, schema=schema)

    return open_


def drop_schemas(dsn: str, schemas: list[str]) -> None:
    """Remove the schemas a run created."""
    import psycopg  # noqa: PLC0415 - optional

    with psycopg.connect(dsn, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def rows_for(store_name: str, results: dict[int, dict[str, Any]]) -> list[list[str]]:
    """Table rows: one per size, events/s per workload with the ratio to the smallest size."""
    base = results[min(results)]
    rows = []
    for size, figures in sorted(results.items()):
        row = [store_name, f"{size:,}", f"{figures['load']:,.0f}"]
        for name, _ in WORKLOADS:
            row.append(f"{figures[name]:,.0f} ({figures[name] / base[name]:.2f})")
        rows.append(row)
    return rows


def verdicts(all_results: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    """The budget per store: 300k most recent at 1M against 10k (other sizes: reported)."""
    lines = []
    for store_name, results in all_results.items():
        if 10_000 not in results or 1_000_000 not in results:
            small, large = min(results), max(results)
            measured = results[large]["300k most recent"] / results[small]["300k most recent"]
            lines.append(
                f"{store_name}: 300k most recent, {large:,} vs {small:,} = {measured:.2f} "
                "(reported; the budget needs 10,000 and 1,000,000)"
                if large > small
                else f"{store_name}: budget not measured (needs 10,000 and 1,000,000)"
            )
            continue
        ratio = results[1_000_000]["300k most recent"] / results[10_000]["300k most recent"]
        verdict = "ok" if ratio >= BUDGET else "MISSED"
        lines.append(
            f"{store_name}: 300k most recent, 1M vs 10k = {ratio:.2f} (>= {BUDGET}) {verdict}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the growth table; exit 1 when a budget is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10k and 100k, fewer batches (CI)")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--sizes", default=None, help="comma-separated message counts")
    args = parser.parse_args(argv)
    default_sizes = "10000,100000" if args.quick else "10000,1000000,10000000"
    sizes = [int(s) for s in (args.sizes or default_sizes).split(",")]
    rounds, count = (3, 5) if args.quick else (5, 30)
    dsn = os.environ.get("DELIVERYSTATE_TEST_POSTGRES_DSN")
    print(
        f"{machine()}; batches of {BATCH:,} events, {count} batches a round, "
        f"medians of {rounds} rounds; ratios to the same workload at {min(sizes):,}"
    )
    all_results: dict[str, dict[int, dict[str, Any]]] = {}
    schemas: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ds-scale-") as workdir:
        for store_name in args.stores.split(","):
            if store_name == "postgres" and not dsn:
                print("postgres: skipped (set DELIVERYSTATE_TEST_POSTGRES_DSN)")
                continue
            opener = (
                sqlite_opener(Path(workdir))
                if store_name == "sqlite"
                else postgres_opener(dsn or "", schemas)
            )
            all_results[store_name] = {
                size: run_size(opener, size, rounds, count, seed=size) for size in sizes
            }
        if schemas and dsn:
            drop_schemas(dsn, schemas)
    header = ["store", "tracked", "load events/s", *(f"{name} (ratio)" for name, _ in WORKLOADS)]
    rows = [row for name, results in all_results.items() for row in rows_for(name, results)]
    print_table("Store growth: events/s applying callbacks", header, rows)
    list_header = ["store", "tracked", *LIST_QUERIES]
    list_rows = [
        [name, f"{size:,}", *(f"{figures['list'][q]:.2f}" for q in LIST_QUERIES)]
        for name, results in all_results.items()
        for size, figures in sorted(results.items())
    ]
    print_table(
        "Message list: ms to read a page of 50, and to count (median of 15)",
        list_header,
        list_rows,
    )
    page_rows = [
        [name, f"{size:,}", *(f"{figures['page'][w]:.2f}" for w in PAGE_WINDOWS)]
        for name, results in all_results.items()
        for size, figures in sorted(results.items())
    ]
    print_table(
        "Status page: s to read the delivery figures (one read; the page keeps them 10 s, "
        "or 10x the read)",
        ["store", "tracked", *(f"last {w}" for w in PAGE_WINDOWS)],
        page_rows,
    )
    lines = verdicts(all_results)
    for line in lines:
        print(line)
    return 1 if any("MISSED" in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
