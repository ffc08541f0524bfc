"""Three PostgreSQL writers about different messages: how often does one wait on a lock?

Run: ``python bench/pgwriters.py [--quick]`` (needs ``DELIVERYSTATE_BENCH_POSTGRES_DSN``
or the tests' DSN variable).

Three writer processes (``multiprocessing``, spawn), each with its own
``PostgresStore`` on one fresh schema, write batches about messages no other
writer mentions, in two shapes, one after the other:

* ``receiver``: groups of 16 callback bodies through ``Tracker.receive_many``,
  as the webhook receiver writes them (keep the bodies, then settle them);
* ``apply_many``: batches of 1,000 parsed events through ``Tracker.apply_many``.

Meanwhile this process samples ``pg_stat_activity`` every few milliseconds for
the schema's sessions (``application_name`` ``deliverystate:<schema>``) and
counts, per writer, the samples in which its backend was in a transaction
(``active`` or ``idle in transaction``) and how many of those it spent waiting
on a heavyweight lock (``wait_event_type = 'Lock'``: an advisory lock, a row,
another transaction, a relation's extension).  Writers are told apart by their
backends' process ids, which each writer reports when it is done.

Budget (docs/design.md section 6, issue 24): no writer waits on a lock in more
than 10 % of its samples.  Exit status 1 when missed.  The events per second
are reported (per writer, and the three together).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, print_table, simulated_events
from bench.stores import postgres_dsn
from deliverystate.simulate import simulate_lines

#: At most this share of a writer's samples may be spent waiting on a lock.
BUDGET = 0.10
WRITERS = 3
#: Seconds between two samples of pg_stat_activity.
SAMPLE_EVERY = 0.005
_SAMPLE = (
    "SELECT pid, state, wait_event_type, wait_event FROM pg_stat_activity "
    "WHERE application_name = %s AND state IN ('active', 'idle in transaction')"
)


@attrs.frozen
class Done:
    """What a writer reports when it is done."""

    writer: int
    events: int
    seconds: float
    pids: frozenset[int]


def _work(dsn: str, schema: str, writer: int, shape: str, messages: int, go: Any, out: Any) -> None:
    """One writer: open the store, wait for the start, write its share, report."""
    from deliverystate import StatusEvent, Tracker  # noqa: PLC0415 - in the child process
    from deliverystate.postgres import PostgresStore  # noqa: PLC0415

    store = PostgresStore(dsn, schema=schema)
    tracker = Tracker(store)
    seed = 1000 * writer + 7  # random 128-bit ids: no two writers share a message
    if shape == "receiver":
        lines = simulate_lines(messages, seed)
        work = [lines[i : i + 16] for i in range(0, len(lines), 16)]
        count = len(lines)
    else:
        events = [
            StatusEvent.from_ms(
                f"w{writer}-{e.message_id}",
                e.status,
                e.timestamp_ms,
                e.channel,
                e.client_message_id,
            )
            for e in simulated_events(messages, seed)
        ]
        work = [events[i : i + 1000] for i in range(0, len(events), 1000)]
        count = len(events)
    go.wait()
    started = time.perf_counter()
    for chunk in work:
        if shape == "receiver":
            tracker.receive_many(chunk)
        else:
            tracker.apply_many(chunk)
    seconds = time.perf_counter() - started
    pids = frozenset(c.info.backend_pid for c in store._pool._pool)
    store.close()
    out.put(Done(writer, count, seconds, pids))


def run_shape(dsn: str, shape: str, messages: int) -> tuple[list[Done], dict[int, Counter[str]]]:
    """Run the writers once on a fresh schema; what each reports, and the samples by pid."""
    import psycopg  # noqa: PLC0415 - optional

    from deliverystate.postgres import PostgresStore  # noqa: PLC0415

    schema = f"bench_w{uuid.uuid4().hex[:10]}"
    PostgresStore(dsn, schema=schema).close()  # created once, before the writers open it
    context = multiprocessing.get_context("spawn")
    go, out = context.Event(), context.Queue()
    processes = [
        context.Process(target=_work, args=(dsn, schema, w, shape, messages, go, out))
        for w in range(WRITERS)
    ]
    samples: dict[int, Counter[str]] = {}
    try:
        for process in processes:
            process.start()
        with psycopg.connect(dsn, autocommit=True) as connection:
            time.sleep(0.5)  # let them open their stores and prepare their work
            go.set()
            done: list[Done] = []
            while len(done) < WRITERS:
                for pid, _, wait_type, wait_event in connection.execute(
                    _SAMPLE, (f"deliverystate:{schema}"[:63],)
                ).fetchall():
                    counted = samples.setdefault(pid, Counter())
                    counted["busy"] += 1
                    if wait_type is not None:
                        counted[f"{wait_type}:{wait_event}"] += 1
                while not out.empty():
                    done.append(out.get())
                if not any(p.is_alive() for p in processes) and out.empty() and len(done) < WRITERS:
                    raise RuntimeError("a writer process died")
                time.sleep(SAMPLE_EVERY)
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        for process in processes:
            process.join(timeout=10)
    return sorted(done, key=lambda d: d.writer), samples


def shape_rows(
    shape: str, done: list[Done], samples: dict[int, Counter[str]]
) -> tuple[list[list[str]], float]:
    """The table's rows for one shape, and the largest share of samples waiting on a lock."""
    rows, worst = [], 0.0
    for writer in done:
        counted: Counter[str] = Counter()
        for pid in writer.pids:
            counted.update(samples.get(pid, Counter()))
        busy = counted.pop("busy", 0)
        locked = sum(n for key, n in counted.items() if key.startswith("Lock:"))
        share = locked / busy if busy else 0.0
        worst = max(worst, share)
        top = (
            ", ".join(f"{key} {n / busy:.0%}" for key, n in counted.most_common(3)) if busy else ""
        )
        rows.append(
            [
                shape,
                f"writer {writer.writer}",
                f"{writer.events / writer.seconds:,.0f}",
                f"{busy}",
                f"{share:.1%}",
                top,
            ]
        )
    events = sum(d.events for d in done)
    wall = max(d.seconds for d in done)
    rows.append([shape, "all three", f"{events / wall:,.0f}", "", f"max {worst:.1%}", ""])
    return rows, worst


def main(argv: list[str] | None = None) -> int:
    """Print the writers' table; exit 1 when a writer waited on a lock too often."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI and smoke runs")
    parser.add_argument("--shape", choices=["receiver", "apply_many"], action="append")
    args = parser.parse_args(argv)
    dsn = postgres_dsn()
    if not dsn:
        print("PostgreSQL: skipped (set DELIVERYSTATE_BENCH_POSTGRES_DSN)")
        return 0
    sizes = (
        {"receiver": 600, "apply_many": 4_000}
        if args.quick
        else {
            "receiver": 2_000,
            "apply_many": 15_000,
        }
    )
    print(f"{machine()}; {WRITERS} writer processes, messages per writer: {sizes}")
    rows: list[list[str]] = []
    worst = 0.0
    for shape in args.shape or ["receiver", "apply_many"]:
        done, samples = run_shape(dsn, shape, sizes[shape])
        shape_rows_, shape_worst = shape_rows(shape, done, samples)
        rows.extend(shape_rows_)
        worst = max(worst, shape_worst)
    ok = worst <= BUDGET
    rows.append(["budget", "max % <= 10", "", "", f"{worst:.1%}", "met" if ok else "MISSED"])
    print_table(
        "Three PostgreSQL writers about different messages (share of in-transaction samples)",
        ["shape", "writer", "events/s", "samples", "waiting on Lock", "top wait events"],
        rows,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
