"""deliverystate's performance, measured in one process run against its baselines.

Run ``python bench/run.py`` (full sizes) or ``python bench/run.py --quick``
(every row and ratio at smaller sizes, about 20 seconds on two cores).  Every
figure is a median of several runs, and every ratio compares two things
measured in this same run, so a busy machine slows both sides alike.  Nothing
here asserts timings in unit tests; the script prints a table and exits 1 when
a budget of docs/design.md section 6 is missed.

1. ``Tracker.apply_many`` (memory store, no history) against a bare
   dict-lookup reducer doing the same precedence comparison on the same parsed
   events and keeping the same shape of data, one int per message: at least
   0.5 of its speed.  Python's cyclic garbage collector runs, as it does in
   production, for both; neither keeps a container per message for it to walk.
2. The same against one ``transitions`` Machine per message (the obvious
   design): at least 100x faster.
3. ``Tracker.apply`` one event at a time, a Decision each: reported.
4. Memory per tracked message in the memory store, message ids included, with
   1,000,000 messages: at most 300 bytes.
5. Cost per event with 10 thousand against 1 million tracked messages, for
   live traffic (callbacks about recently sent messages while older ones sit
   in the store) and with uniform access over every tracked message: reported.
   Both measure the CPU's caches more than this code; the growth budget of
   docs/design.md section 6 is measured on the stores (``bench/scale.py``).
6. ``parse_callback`` on One API bodies: reported.  ``replay`` end to end
   into a fresh SQLite file, as ``deliverystate replay FILE`` runs it, on the
   stream ``deliverystate simulate -n 100000 --seed 1`` writes (10,000
   messages with ``--quick``), against the same replay done the plain way in
   the same run (one process, the standard library's JSON, ``ingest_many``
   per 2,000 lines): at least 100,000 callbacks per second, and at least 0.25
   of a lean raw-sqlite3 floor taking turns with it (one message upsert and
   one history row per report, no project code: ``bench/replay_floor.py``).
7. SQLiteStore and PostgresStore batch apply against their raw baselines
   (see ``bench/stores.py``).
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from bench import replay_floor, stores
from bench.common import (
    alternating_seconds,
    machine,
    median_seconds,
    print_table,
    simulated_events,
    spread,
)
from deliverystate import MemoryStore, Status, StatusEvent, Tracker, parse_callback
from deliverystate.rules import DELIVERY_WINS
from deliverystate.rules._lifecycle import EDGES, trigger_for
from deliverystate.simulate import simulate_lines


def bare_reducer(events: list[StatusEvent]) -> dict[str, int]:
    """The baseline: one int per message, its precedence key; the greatest key wins.

    The key packs the status and the timestamp, as the memory store's records
    do, so both sides keep the same shape of data: an int per message, which
    the cyclic garbage collector never walks.  (A tuple per message would make
    the collector walk every state, a cost the store was designed away from.)
    """
    offset, scale = DELIVERY_WINS.offset, DELIVERY_WINS.scale
    states: dict[str, int] = {}
    get = states.get
    for event in events:
        status = event.status
        key = offset[status] + scale[status] * event.timestamp_ms
        current = get(event.message_id)
        if current is None or key > current:
            states[event.message_id] = key
    return states


class _Message:
    """A model object for the one-Machine-per-message baseline."""

    state: Any


def machine_per_message(events: list[StatusEvent]) -> dict[str, _Message]:
    """The obvious design: a transitions Machine per message, stepping along the lifecycle.

    It only ever moves forward along legal edges (a late or impossible report is
    ignored), which is less than reconciliation does; it is the cost floor of
    that design, not a competitor in correctness.
    """
    from transitions import Machine, MachineError  # noqa: PLC0415

    transitions = [
        {"trigger": trigger_for(dst), "source": src.name, "dest": dst.name} for src, dst in EDGES
    ]
    names = [s.name for s in Status]
    messages: dict[str, _Message] = {}
    for event in events:
        model = messages.get(event.message_id)
        if model is None:
            model = messages[event.message_id] = _Message()
            Machine(model=model, states=names, transitions=transitions, initial="UNKNOWN")
        trigger = getattr(model, trigger_for(event.status), None)
        if trigger is not None:
            with contextlib.suppress(MachineError):
                trigger()
    return messages


def distinct_messages(count: int) -> list[StatusEvent]:
    """One QUEUED report for each of ``count`` messages with realistic 32-hex-digit ids."""
    base = 1_767_225_600_000
    return [
        StatusEvent.from_ms(f"{n:032x}", Status.QUEUED, base + n, "sms", f"order-{n:07d}")
        for n in range(count)
    ]


def bytes_per_message(count: int) -> float:
    """Memory held by a memory store tracking ``count`` messages, per message.

    Everything the store keeps alive is counted: its dict, the states, the
    message id and client id strings, the timestamps.  The events themselves
    are dropped before measuring.
    """
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = MemoryStore(history=False)
    events = distinct_messages(count)
    Tracker(store).apply_many(events)
    del events
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(store) == count
    return (after - before) / count


def per_event_cost(tracked: int, updates: list[StatusEvent], repeats: int) -> float:
    """Seconds per event for ``updates`` applied to a store already tracking ``tracked``.

    The store is filled and the filling events dropped and collected before
    the clock starts, so only the store itself is alive besides the updates.
    """
    store: dict[str, MemoryStore] = {}

    def setup() -> None:
        store.clear()
        gc.collect()
        filled = MemoryStore(history=False)
        Tracker(filled).apply_many(distinct_messages(tracked))
        store["s"] = filled
        gc.collect()

    def run() -> None:
        Tracker(store["s"]).apply_many(updates)

    return median_seconds(run, repeats, setup) / len(updates)


def scaling_updates(tracked: int, count: int) -> list[StatusEvent]:
    """Reports spread uniformly over ``tracked`` existing messages, as live traffic is."""
    base = 1_767_225_600_000
    step = max(1, tracked // count)
    statuses = (Status.SENT_TO_SUPPLIER, Status.DEVICE_ACK, Status.READ)
    return [
        StatusEvent.from_ms(
            f"{(n * step) % tracked:032x}", statuses[n % 3], base + 10_000 + n, "sms"
        )
        for n in range(count)
    ]


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - one section per measurement
    """Measure everything, print the table, exit 1 when a budget is missed."""
    parser = argparse.ArgumentParser(description="deliverystate benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about 20 s")
    args = parser.parse_args(argv)
    quick = args.quick
    messages = 20_000 if quick else 100_000
    repeats = 3 if quick else 5
    big = 100_000 if quick else 1_000_000
    events = simulated_events(messages, seed=3)
    print(machine())
    print(f"input: {len(events):,} parsed events for {messages:,} simulated messages")
    rows: list[list[str]] = []
    verdicts: list[bool] = []

    def row(what: str, rate: str, ratio: str, target: str, ok: bool | None = None) -> None:
        if ok is not None:
            verdicts.append(ok)
            target = f"{target} {'ok' if ok else 'MISSED'}"
        rows.append([what, rate, ratio, target])

    def per_second(seconds: float, count: int) -> str:
        return f"{count / seconds:,.0f}/s"

    # 1-3: in-memory reconciliation; the garbage collector runs for both sides
    reconciled = alternating_seconds(
        {
            "ours": lambda: Tracker(MemoryStore(history=False)).apply_many(events),
            "bare": lambda: bare_reducer(events),
        },
        repeats,
    )
    ours, bare = (statistics.median(reconciled[side]) for side in ("ours", "bare"))
    row("Tracker.apply_many, memory store", spread(len(events), reconciled["ours"]), "", "")
    row(
        "  bare dict reducer, an int per message (GC on for both)",
        spread(len(events), reconciled["bare"]),
        f"{bare / ours:.2f}",
        ">= 0.50",
        bare / ours >= 0.5,
    )
    sample = events[: len(events) // (400 if quick else 20)]  # a Machine each: slow
    machines = median_seconds(lambda: machine_per_message(sample), 1 if quick else 3)
    speedup = (machines / len(sample)) / (ours / len(events))
    row(
        "  one transitions Machine per message",
        per_second(machines, len(sample)),
        f"{speedup:,.0f}x",
        ">= 100x",
        speedup >= 100,
    )
    one = median_seconds(lambda: _apply_each(events), repeats)
    row(
        "Tracker.apply, one Decision per event",
        per_second(one, len(events)),
        f"{ours / one:.2f}",
        "(reported)",
    )

    # 4: memory
    size = bytes_per_message(big)
    row(f"memory per tracked message ({big:,})", f"{size:,.0f} B", "", "<= 300 B", size <= 300)

    # 5: flat cost.  Live traffic is about recently sent messages, so the same
    # stream of new messages' callbacks is applied to a store already tracking
    # 10 thousand or N older messages; uniform random access over all of them is
    # the worst case for CPU caches.  Both are reported: what they measure is
    # mostly the CPU's caches, not this code (the growth budget is bench/scale.py's).
    live = events[: 50_000 if quick else 100_000]
    small_cost = per_event_cost(10_000, live, repeats)
    big_cost = per_event_cost(big, live, repeats)
    row(
        f"cost per event, 10,000 vs {big:,} tracked",
        f"{small_cost * 1e9:,.0f} vs {big_cost * 1e9:,.0f} ns",
        f"{big_cost / small_cost:.2f}x",
        "(reported: CPU caches)",
    )
    spread_small = per_event_cost(10_000, scaling_updates(10_000, 50_000), repeats)
    spread_big = per_event_cost(big, scaling_updates(big, 50_000), repeats)
    row(
        "  same, uniform access over all tracked",
        f"{spread_small * 1e9:,.0f} vs {spread_big * 1e9:,.0f} ns",
        f"{spread_big / spread_small:.2f}x",
        "(reported: CPU cache misses)",
    )

    # 6: parsing and replay
    lines = simulate_lines(messages // 4, seed=4)
    bodies = [line for line in lines if line.startswith('{"integrationId"')]
    parse = median_seconds(lambda: [_parse_or_none(body) for body in bodies], repeats)
    row("parse_callback, One API bodies", per_second(parse, len(bodies)), "", "(reported)")
    count, replayed = replay_figures(10_000 if quick else 100_000, repeats)
    ratio = statistics.median(replayed["plain"]) / statistics.median(replayed["ours"])
    rate = count / statistics.median(replayed["ours"])
    row(
        f"deliverystate replay FILE, fresh SQLite ({count:,} lines)",
        spread(count, replayed["ours"]),
        f"{ratio:.2f}x",
        ">= 100,000/s",
        rate >= 100_000,
    )
    row(
        "  baseline: 1 process, stdlib JSON, 2,000 lines a batch",
        spread(count, replayed["plain"]),
        "",
        "",
    )
    row(
        "  floor: the replay's SQL alone, rerun into a fresh file",
        spread(count, replayed["floor"]),
        f"{statistics.median(replayed['floor']) / statistics.median(replayed['ours']):.2f}",
        "(no replay can beat it)",
    )
    lean = statistics.median(replayed["lean"]) / statistics.median(replayed["ours"])
    row(
        "  lean floor: raw sqlite3, one upsert + one history row a report",
        spread(count, replayed["lean"]),
        f"{lean:.2f}",
        ">= 0.25",
        lean >= 0.25,
    )

    # 7: stores
    count = min(len(events), 15_000 if quick else 100_000)
    sq = stores.sqlite_figures(events[:count], 1000, repeats)
    row("SQLiteStore.apply_many, batches of 1,000", per_second(sq["ours"], count), "", "")
    ratio = sq["raw_history"] / sq["ours"]
    row(
        "  raw executemany upsert + history",
        per_second(sq["raw_history"], count),
        f"{ratio:.2f}",
        ">= 0.60",
        ratio >= 0.6,
    )
    dsn = stores.postgres_dsn()
    if dsn:
        pg = stores.postgres_figures(dsn, events[:count], 5000, repeats)
        ratio = pg["raw"] / pg["ours"]
        row(
            "PostgresStore.apply_many, batches of 5,000",
            per_second(pg["ours"], count),
            f"{ratio:.2f} of raw unnest ({per_second(pg['raw'], count)})",
            ">= 0.80 (and 80 k/s: bench/ab.py)",
            ratio >= 0.8,
        )
    else:
        row("PostgresStore.apply_many", "skipped", "", "set DELIVERYSTATE_BENCH_POSTGRES_DSN")

    print_table(
        "deliverystate benchmarks", ["measure", "result", "ours / baseline", "budget"], rows
    )
    return 0 if all(verdicts) else 1


def replay_figures(messages: int, repeats: int) -> tuple[int, dict[str, list[float]]]:
    """Lines in the simulated stream, and the times of replaying it both ways, taking turns.

    The stream is what ``deliverystate simulate -n MESSAGES --seed 1`` writes.
    ``ours`` runs ``deliverystate replay STREAM --db DB`` as a user would (its
    default batch size and parsing worker); ``plain`` runs the baseline,
    ``bench/plain_replay.py``, as a process of its own too.  Every replay goes
    into a fresh SQLite file.  ``floor`` runs only the SQL such a replay sends
    its store, recorded once beforehand (``bench/replay_floor.py``), in this
    process: the fastest any replay into this schema could be here.  ``lean``
    runs the lean raw-sqlite3 floor of docs/design.md section 6
    (``replay_floor.lean_floor``: one upsert and one history row per report,
    no project code), in this process too; the budget asks for a quarter of it.
    """
    workdir = Path(tempfile.mkdtemp(prefix="ds-bench-replay-"))
    stream = workdir / "stream.jsonl"
    stream.write_text("".join(line + "\n" for line in simulate_lines(messages, seed=1)))
    db = workdir / "replayed.sqlite3"
    script = shutil.which("deliverystate", path=str(Path(sys.executable).parent))
    cli = (
        [script] if script else [sys.executable, "-c", "from deliverystate.cli import main; main()"]
    )
    plain = [sys.executable, str(Path(__file__).parent / "plain_replay.py"), str(stream), str(db)]

    def forget() -> None:  # untimed: the previous run's database goes
        for path in workdir.glob(f"{db.name}*"):
            path.unlink()

    def run(command: list[str], *, ok: tuple[int, ...] = (0,)) -> None:
        done = subprocess.run(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
        )
        if done.returncode not in ok:
            raise subprocess.CalledProcessError(done.returncode, command)

    try:
        count, calls = replay_floor.record(stream)
        reports = replay_floor.lean_reports(stream)
        times = alternating_seconds(
            {
                # exit status 3: the stream holds a few broken bodies on purpose
                "ours": lambda: run([*cli, "replay", str(stream), "--db", str(db)], ok=(0, 3)),
                "plain": lambda: run(plain),
                "floor": lambda: replay_floor.run_recorded(calls, db),
                "lean": lambda: replay_floor.lean_floor(reports, db),
            },
            repeats,
            forget,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return count, times


def _apply_each(events: list[StatusEvent]) -> None:
    tracker = Tracker(MemoryStore(history=False))
    apply = tracker.apply
    for event in events:
        apply(event)


def _parse_or_none(body: str) -> object:
    try:
        return parse_callback(body)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
