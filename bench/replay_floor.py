"""The floor under ``deliverystate replay``: the SQL it runs, without anything else.

A replay into SQLite parses, reconciles and writes.  This records every
statement group a replay sends to its store (each batch's locking read, its
arrival numbers, its upserts, history and change-feed rows; each dead letter)
and then runs only those, in the same transactions and order, into a fresh
file.  No replay into this schema can go faster on the same machine than
that run, so ``bench/run.py`` prints it beside the replay's own figure: it
says how far a budget is from what the store's writes alone allow.

Run ``python bench/replay_floor.py STREAM`` on a stream of callback bodies
(``deliverystate simulate -n 100000 --seed 1 > STREAM``) to see the figure
alone, beside two variants of the schema taking turns with it: 4 KiB pages
instead of 1 KiB, and no change-feed rows.  Neither is what the store does;
they say how far the floor would move if it did.

``lean_floor`` is the floor docs/design.md section 6 names for the replay's
budget (at least a quarter of it): raw ``sqlite3``, no deliverystate code
while the clock runs, one message upsert and one history row per report into
the leanest tables that hold a state and a history (SQLite's default page
size, no secondary index, no AUTOINCREMENT), in transactions of a replay's
batch size, with the store's durability settings (WAL, ``synchronous =
NORMAL``).  It says what this machine's SQLite can do at all, whatever the
schema; the recorded floor above says what today's schema allows.
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from deliverystate import SQLiteStore, Tracker
from deliverystate.callbacks._parse import read_many
from deliverystate.stores import _sqlite
from deliverystate.stores._sqlbase import Writes
from deliverystate.tracking._replay import CHUNK, replay_stream

__all__ = ["LEAN_TABLES", "lean_floor", "lean_reports", "record", "run_recorded"]

#: One recorded store call: a batch's ids and writes, or a dead letter's payload and error.
Recorded = tuple[str, Any, Any]


class _Recording(SQLiteStore):
    """A SQLiteStore that notes each batch's locked ids and writes, and each dead letter."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.calls: list[Recorded] = []
        self._ids: list[str] = []

    def _select_for_update(self, cursor: sqlite3.Cursor, ids: Sequence[str]) -> list[Any]:
        self._ids = list(ids)
        return super()._select_for_update(cursor, ids)

    def _write(self, cursor: sqlite3.Cursor, writes: Writes) -> int:
        self.calls.append(("batch", self._ids, writes))
        return super()._write(cursor, writes)

    def add_dead_letter(self, payload: str, error: str) -> Any:
        self.calls.append(("dead", payload, error))
        return super().add_dead_letter(payload, error)


def record(stream: Path) -> tuple[int, list[Recorded]]:
    """Replay ``stream`` as ``deliverystate replay`` does, untimed: its lines, its store calls."""
    with tempfile.TemporaryDirectory(prefix="ds-bench-floor-") as workdir:
        store = _Recording(str(Path(workdir) / "recorded.sqlite3"))
        try:
            with stream.open("rb") as lines:
                result = replay_stream(lines, Tracker(store))
        finally:
            store.close()
    return result.lines, store.calls


def run_recorded(calls: list[Recorded], db: Path, *, feed: bool = True) -> None:
    """Run the recorded calls' SQL into the SQLite file ``db``, each batch in one transaction.

    Without ``feed``, the batches' change-feed rows are left out.
    """
    store = SQLiteStore(str(db))
    try:
        for kind, first, second in calls:
            if kind == "dead":
                store.add_dead_letter(first, second)
                continue
            with store._transaction() as cursor:
                store._select_for_update(cursor, first)
                store._reserve(cursor, len(second.history))
                store._write(cursor, second if feed else attrs.evolve(second, changes=[]))
    finally:
        store.close()


#: The lean floor's tables: a state per message and a history row per report, nothing more.
LEAN_TABLES = (
    "CREATE TABLE messages (message_id TEXT PRIMARY KEY, status INTEGER NOT NULL, "
    "timestamp_ms INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE history (arrival INTEGER PRIMARY KEY, message_id TEXT NOT NULL, "
    "status INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL)",
)
_LEAN_UPSERT = (
    "INSERT INTO messages (message_id, status, timestamp_ms) VALUES (?, ?, ?) "
    "ON CONFLICT (message_id) DO UPDATE SET status = excluded.status, "
    "timestamp_ms = excluded.timestamp_ms"
)
_LEAN_HISTORY = "INSERT INTO history (message_id, status, timestamp_ms) VALUES (?, ?, ?)"
#: One report as the lean floor writes it: message id, status code, time in ms.
LeanReport = tuple[str, int, int]


def lean_reports(stream: Path) -> list[LeanReport]:
    """The reports of ``stream``'s valid lines, parsed beforehand so the clock sees SQL only."""
    with stream.open("rb") as file:
        bodies = [line.rstrip(b"\r\n") for line in file if line.strip()]
    parsed = read_many(bodies)
    return [(e.message_id, int(e.status), e.timestamp_ms) for e in parsed.events]


def lean_floor(reports: list[LeanReport], db: Path, chunk: int = CHUNK) -> None:
    """Write ``reports`` into a fresh file ``db``: per report one upsert and one history row.

    ``chunk`` reports per transaction, as ``deliverystate replay`` cuts its
    batches; the two statements run as ``executemany`` over each batch.
    """
    conn = sqlite3.connect(str(db), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        for statement in LEAN_TABLES:
            conn.execute(statement)
        for start in range(0, len(reports), chunk):
            batch = reports[start : start + chunk]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_LEAN_UPSERT, batch)
            conn.executemany(_LEAN_HISTORY, batch)
            conn.execute("COMMIT")
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    """Print the replay's SQL alone, two variants and the lean floor, in lines per second."""
    (stream,) = argv
    lines, calls = record(Path(stream))
    reports = lean_reports(Path(stream))
    page = _sqlite._PAGE_SIZE
    variants = {
        "the SQL alone": (page, True),
        "with 4 KiB pages": (4096, True),
        "without the change feed": (page, False),
    }
    lean = "lean floor: one upsert + one history row per report"
    times: dict[str, list[float]] = {name: [] for name in [*variants, lean]}
    for _ in range(3):  # the variants take turns
        for name, (size, feed) in variants.items():
            _sqlite._PAGE_SIZE = size  # a new file's page size
            with tempfile.TemporaryDirectory(prefix="ds-bench-floor-") as workdir:
                start = time.perf_counter()
                run_recorded(calls, Path(workdir) / "floor.sqlite3", feed=feed)
                times[name].append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory(prefix="ds-bench-floor-") as workdir:
            start = time.perf_counter()
            lean_floor(reports, Path(workdir) / "lean.sqlite3")
            times[lean].append(time.perf_counter() - start)
    _sqlite._PAGE_SIZE = page
    print(f"{lines:,} lines")
    for name, seconds in times.items():
        print(f"{name}: {lines / statistics.median(seconds):,.0f} lines/s (median of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
