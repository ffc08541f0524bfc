"""The change feed's cost, and how fast the forwarder sends it to a local backend.

Run: ``python bench/feed.py [--quick]``.

1. ``apply_many`` with the feed against the same store opened with
   ``feed=False``: same events, same batches, fresh databases, the two runs
   back to back in alternating order, the median of the rounds' ratios (and
   their range).  Budget: the feed costs at most 25 % (ratio <= 1.25), on
   SQLite and on PostgreSQL (PostgreSQL needs
   ``DELIVERYSTATE_BENCH_POSTGRES_DSN`` or the tests' DSN).
2. Forwarding: ``Forwarder.run(follow_feed=False)`` from an SQLite store to
   a receiver in another process on this machine that verifies every
   signature with ``standardwebhooks`` (as a real backend must) and answers
   204; changes per second, reported (one POST at a time, in order).
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, print_table, simulated_events
from bench.stores import batches, postgres_dsn
from deliverystate import SQLiteStore, StatusEvent, Tracker

#: The feed may make apply_many this much slower at most (docs/design.md section 6).
BUDGET = 1.25


def timed_pair(
    make: Callable[[bool], Any], chunks: list[list[StatusEvent]], repeats: int
) -> tuple[float, float, list[float]]:
    """Median seconds with and without the feed, and each round's ratio of the two.

    Each round times both on fresh databases, back to back, in alternating
    order; the ratio within a round compares runs that met the same disk
    and the same neighbours, so its median is steadier than a ratio of medians.
    """
    times: dict[bool, list[float]] = {True: [], False: []}
    ratios = []
    for round_number in range(repeats):
        order = (True, False) if round_number % 2 == 0 else (False, True)
        for feed in order:
            store = make(feed)
            tracker = Tracker(store)
            start = time.perf_counter()
            for chunk in chunks:
                tracker.apply_many(chunk)
            times[feed].append(time.perf_counter() - start)
            store.close()
        ratios.append(times[True][-1] / times[False][-1])
    return statistics.median(times[True]), statistics.median(times[False]), ratios


def sqlite_maker(workdir: Path) -> Callable[[bool], SQLiteStore]:
    """Fresh SQLite files."""
    return lambda feed: SQLiteStore(workdir / f"{uuid.uuid4().hex}.sqlite3", feed=feed)


def postgres_maker(dsn: str, schemas: list[str]) -> Callable[[bool], Any]:
    """Fresh PostgreSQL schemas (dropped at the end by ``drop_schemas``)."""
    from deliverystate.postgres import PostgresStore  # noqa: PLC0415 - optional

    def make(feed: bool) -> Any:
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        schemas.append(schema)
        return PostgresStore(dsn, schema=schema, feed=feed)

    return make


def drop_schemas(dsn: str, schemas: list[str]) -> None:
    """Remove the benchmark's schemas."""
    import psycopg  # noqa: PLC0415 - optional

    with psycopg.connect(dsn, autocommit=True) as connection:
        for schema in schemas:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    webhook: Any = None

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        """Verify the signature, then 204 (401 if it does not verify)."""
        body = self.rfile.read(int(self.headers["content-length"]))
        try:
            self.webhook.verify(body, dict(self.headers.items()))
            status = 204
        except Exception:
            status = 401
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()


def _receive(port: int, secret: str) -> None:
    from standardwebhooks import Webhook  # noqa: PLC0415 - in the child process

    _Receiver.webhook = Webhook(secret)
    ThreadingHTTPServer(("127.0.0.1", port), _Receiver).serve_forever()


def forwarding_rate(events: list[StatusEvent], workdir: Path) -> tuple[int, float, int]:
    """(changes, changes per second, undeliverable) forwarding a fresh store's whole feed."""
    from deliverystate.forward import Forwarder, ForwardTarget, new_secret  # noqa: PLC0415

    store = SQLiteStore(workdir / "forward.sqlite3")
    Tracker(store).apply_many(events)
    secret = new_secret()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    receiver = multiprocessing.get_context("spawn").Process(
        target=_receive, args=(port, secret), daemon=True
    )
    receiver.start()
    try:
        for _ in range(200):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        forwarder = Forwarder(store, ForwardTarget(f"http://127.0.0.1:{port}/hooks", secret))
        start = time.perf_counter()
        report = forwarder.run(follow_feed=False)
        seconds = time.perf_counter() - start
        forwarder.close()
    finally:
        receiver.terminate()
        store.close()
    changes = report.delivered + report.undeliverable
    return changes, changes / seconds, report.undeliverable


def _row(what: str, events: list[StatusEvent], seconds: float, ratios: list[float]) -> list[str]:
    ratio = statistics.median(ratios)
    return [
        what,
        f"{len(events) / seconds:,.0f}/s",
        f"{ratio:.2f}x the time without ({min(ratios):.2f}-{max(ratios):.2f})",
        f"<= {BUDGET:.2f}x" + ("" if ratio <= BUDGET else " MISSED"),
    ]


def feed_rows(quick: bool) -> tuple[list[list[str]], bool]:
    """The feed's benchmark rows and whether the budgets held."""
    messages, repeats = (3_000, 5) if quick else (30_000, 11)  # --quick: about 10 s
    events = simulated_events(messages)
    workdir = Path(tempfile.mkdtemp(prefix="ds-bench-feed-"))
    rows: list[list[str]] = []
    ok = True
    chunks = batches(events, 1000)
    with_feed, _, ratios = timed_pair(sqlite_maker(workdir), chunks, repeats)
    rows.append(
        _row("SQLiteStore.apply_many with the feed, batches of 1,000", events, with_feed, ratios)
    )
    ok &= statistics.median(ratios) <= BUDGET
    dsn = postgres_dsn()
    if dsn:
        schemas: list[str] = []
        try:
            with_feed, _, ratios = timed_pair(
                postgres_maker(dsn, schemas), batches(events, 5000), repeats
            )
        finally:
            drop_schemas(dsn, schemas)
        rows.append(
            _row(
                "PostgresStore.apply_many with the feed, batches of 5,000",
                events,
                with_feed,
                ratios,
            )
        )
        ok &= statistics.median(ratios) <= BUDGET
    else:
        rows.append(["PostgresStore.apply_many with the feed", "skipped", "", "no DSN set"])
    forwarded = events[: len(events) // (6 if quick else 3)]
    changes, rate, undeliverable = forwarding_rate(forwarded, workdir)
    ok &= undeliverable == 0
    rows.append(
        [
            f"forward to a verifying local receiver ({changes:,} changes)",
            f"{rate:,.0f} changes/s",
            "",
            "reported" + ("" if not undeliverable else f"; {undeliverable} UNDELIVERABLE"),
        ]
    )
    return rows, ok


def main(argv: list[str] | None = None) -> int:
    """Print the feed's table; exit 1 when a budget is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI and smoke runs")
    args = parser.parse_args(argv)
    print(machine())
    rows, ok = feed_rows(args.quick)
    print_table("Change feed", ["measure", "result", "cost", "budget"], rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
