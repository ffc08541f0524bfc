"""SQL store benchmarks: batch apply against raw SQL baselines on the same schema.

Run: ``python bench/stores.py [--quick]``.  Every figure is the median of
several runs on a fresh database; ratios compare two things measured in the
same process run, never against a number written down earlier.

* SQLiteStore.apply_many against a raw ``executemany`` conditional upsert
  (``ON CONFLICT ... DO UPDATE ... WHERE excluded.precedence > precedence``)
  plus the history insert, on the same schema and the same batches: the
  difference is what deliverystate adds (duplicate detection, channel rules,
  outcomes).  Target: at least 0.6.
* PostgresStore.apply_many against a raw ``unnest`` upsert plus the history
  insert on the same server, taking turns with it: at least 0.8 (and at least
  the 80 k events/s of 27 November in an A/B against it: ``bench/ab.py``).
  Needs ``DELIVERYSTATE_BENCH_POSTGRES_DSN`` (or the tests' DSN variable).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    alternating_seconds,
    machine,
    median_seconds,
    print_table,
    simulated_events,
)
from deliverystate import SQLiteStore, StatusEvent, Tracker
from deliverystate.rules import DELIVERY_WINS

_SQLITE_UPSERT = (
    "INSERT INTO ds_messages (message_id, status, timestamp_ms, precedence, channel, "
    "client_message_id) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO UPDATE SET "
    "status = excluded.status, timestamp_ms = excluded.timestamp_ms, "
    "precedence = excluded.precedence, channel = coalesce(channel, excluded.channel), "
    "client_message_id = coalesce(client_message_id, excluded.client_message_id) "
    "WHERE excluded.precedence > ds_messages.precedence"
)
_SQLITE_HISTORY = (
    "INSERT INTO ds_history (message_id, status, timestamp_ms, channel, "
    "client_message_id, outcome) VALUES (?, ?, ?, ?, ?, 'applied')"
)


def batches(events: list[StatusEvent], size: int) -> list[list[StatusEvent]]:
    """The events cut into consecutive batches."""
    return [events[i : i + size] for i in range(0, len(events), size)]


def sqlite_figures(events: list[StatusEvent], batch: int, repeats: int) -> dict[str, float]:
    """Median seconds for SQLiteStore and the raw baselines on fresh files."""
    chunks = batches(events, batch)
    key = DELIVERY_WINS.key
    workdir = Path(tempfile.mkdtemp(prefix="ds-bench-"))
    state: dict[str, object] = {}

    def fresh() -> None:
        path = workdir / f"{uuid.uuid4().hex}.sqlite3"
        state["store"] = SQLiteStore(path)

    def ours() -> None:
        tracker = Tracker(state["store"])  # type: ignore[arg-type]
        for chunk in chunks:
            tracker.apply_many(chunk)

    def raw(with_history: bool) -> Callable[[], None]:
        def run() -> None:
            conn = state["store"]._conn  # type: ignore[attr-defined]
            for chunk in chunks:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    _SQLITE_UPSERT,
                    [
                        (
                            e.message_id,
                            int(e.status),
                            e.timestamp_ms,
                            key(e.status, e.timestamp_ms),
                            e.channel,
                            e.client_message_id,
                        )
                        for e in chunk
                    ],
                )
                if with_history:
                    conn.executemany(
                        _SQLITE_HISTORY,
                        [
                            (
                                e.message_id,
                                int(e.status),
                                e.timestamp_ms,
                                e.channel,
                                e.client_message_id,
                            )
                            for e in chunk
                        ],
                    )
                conn.execute("COMMIT")

        return run

    return {
        "ours": median_seconds(ours, repeats, fresh),
        "raw_history": median_seconds(raw(True), repeats, fresh),
        "raw_states": median_seconds(raw(False), repeats, fresh),
    }


def postgres_figures(
    dsn: str, events: list[StatusEvent], batch: int, repeats: int
) -> dict[str, float]:
    """Median seconds for PostgresStore and a raw unnest upsert baseline, fresh schemas."""
    import psycopg  # noqa: PLC0415 - optional

    from deliverystate.postgres import PostgresStore  # noqa: PLC0415

    chunks = batches(events, batch)
    key = DELIVERY_WINS.key
    state: dict[str, object] = {}
    schemas: list[str] = []

    def fresh() -> None:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        schemas.append(schema)
        state["store"] = PostgresStore(dsn, schema=schema)

    def ours() -> None:
        tracker = Tracker(state["store"])  # type: ignore[arg-type]
        for chunk in chunks:
            tracker.apply_many(chunk)

    def raw() -> None:
        # a connection of the store's own pool: same server, schema and session settings
        with state["store"]._pool.connection() as conn:  # type: ignore[attr-defined]
            raw_batches(conn)

    def raw_batches(conn: psycopg.Connection[object]) -> None:
        for chunk in chunks:
            best: dict[str, StatusEvent] = {}
            for e in chunk:  # one row per message: ON CONFLICT cannot touch a row twice
                old = best.get(e.message_id)
                if old is None or key(e.status, e.timestamp_ms) > key(old.status, old.timestamp_ms):
                    best[e.message_id] = e
            rows = list(best.values())
            with conn.transaction():
                conn.execute(
                    "INSERT INTO ds_messages AS m (message_id, status, timestamp_ms, precedence, "
                    "channel, client_message_id) SELECT * FROM unnest(%s::text[], %s::smallint[], "
                    "%s::bigint[], %s::bigint[], %s::text[], %s::text[]) ON CONFLICT (message_id) "
                    "DO UPDATE SET status = excluded.status, timestamp_ms = excluded.timestamp_ms, "
                    "precedence = excluded.precedence WHERE excluded.precedence > m.precedence",
                    (
                        [e.message_id for e in rows],
                        [int(e.status) for e in rows],
                        [e.timestamp_ms for e in rows],
                        [key(e.status, e.timestamp_ms) for e in rows],
                        [e.channel for e in rows],
                        [e.client_message_id for e in rows],
                    ),
                )
                conn.execute(
                    "INSERT INTO ds_history (message_id, status, timestamp_ms, channel, "
                    "client_message_id, outcome) SELECT *, 'applied' FROM unnest(%s::text[], "
                    "%s::smallint[], %s::bigint[], %s::text[], %s::text[]) ON CONFLICT DO NOTHING",
                    (
                        [e.message_id for e in chunk],
                        [int(e.status) for e in chunk],
                        [e.timestamp_ms for e in chunk],
                        [e.channel for e in chunk],
                        [e.client_message_id for e in chunk],
                    ),
                )

    try:  # taking turns: a busy spell of the shared server slows both alike
        times = alternating_seconds({"ours": ours, "raw": raw}, repeats, fresh)
        return {name: statistics.median(seconds) for name, seconds in times.items()}
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def postgres_dsn() -> str | None:
    """The DSN to benchmark PostgreSQL against, if one is configured."""
    return os.environ.get("DELIVERYSTATE_BENCH_POSTGRES_DSN") or os.environ.get(
        "DELIVERYSTATE_TEST_POSTGRES_DSN"
    )


def main(argv: list[str] | None = None) -> int:
    """Print the store benchmark table; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI and smoke runs")
    args = parser.parse_args(argv)
    messages, repeats = (3_000, 3) if args.quick else (30_000, 5)
    events = simulated_events(messages)
    print(f"{machine()}; {len(events):,} events for {messages:,} messages; medians of {repeats}")
    rows: list[list[str]] = []
    ok = True
    sq = sqlite_figures(events, 1000, repeats)
    ratio = sq["raw_history"] / sq["ours"]
    ok &= ratio >= 0.6
    rows.append(
        ["SQLiteStore.apply_many (batches of 1,000)", f"{len(events) / sq['ours']:,.0f}", "", ""]
    )
    rows.append(
        [
            "raw executemany upsert + history, same schema",
            f"{len(events) / sq['raw_history']:,.0f}",
            f"{ratio:.2f}",
            ">= 0.60",
        ]
    )
    rows.append(
        [
            "raw executemany upsert, states only",
            f"{len(events) / sq['raw_states']:,.0f}",
            f"{sq['raw_states'] / sq['ours']:.2f}",
            "(for reference)",
        ]
    )
    dsn = postgres_dsn()
    if dsn:
        pg = postgres_figures(dsn, events, 5000, repeats)
        throughput = len(events) / pg["ours"]
        ok &= pg["raw"] / pg["ours"] >= 0.8
        rows.append(["PostgresStore.apply_many (batches of 5,000)", f"{throughput:,.0f}", "", ""])
        rows.append(
            [
                "raw unnest upsert + history, same schema",
                f"{len(events) / pg['raw']:,.0f}",
                f"{pg['raw'] / pg['ours']:.2f}",
                ">= 0.80",
            ]
        )
    else:
        print("PostgreSQL: skipped (set DELIVERYSTATE_BENCH_POSTGRES_DSN)")
    print_table(
        "Store batch apply",
        ["what", "events/s", "ours / baseline speed", "target"],
        rows,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
