"""What SQLite's layout options would buy a replay on today's rows, at 10 thousand and 1 million.

The store's SQLite schema makes three choices that each cost writes: 1 KiB
pages (chosen for updates at a million messages), ``AUTOINCREMENT`` on
``ds_history`` (an arrival number is never handed out twice), and three
secondary indexes on ``ds_messages`` (the due sweep, the first-report window,
the client id lookup).  This measures each alone, in raw ``sqlite3``: the SQL
a replay of the stream sends its store is recorded once (``replay_floor``),
then run into files that already track N other messages (random ids, one
history row each, filled untimed), as the store's schema and as that schema
with one choice changed, the variants taking turns.  Nothing is changed in
the store; the figures are for deciding whether to.

Run ``python bench/schema_options.py STREAM [N ...]`` (default N: 10000 and
1000000) on ``deliverystate simulate -n 100000 --seed 1 > STREAM``.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import replay_floor
from deliverystate.stores import _sqlite
from deliverystate.stores._sqlrows import append_rows

__all__ = ["VARIANTS", "fill", "run_variant"]

#: name -> (page size, AUTOINCREMENT on ds_history, secondary indexes)
VARIANTS: dict[str, tuple[int, bool, bool]] = {
    "today (1 KiB, AUTOINCREMENT, 3 indexes)": (1024, True, True),
    "4 KiB pages": (4096, True, True),
    "no AUTOINCREMENT": (1024, False, True),
    "no secondary indexes": (1024, True, False),
}
_FILLER_HISTORY = (
    "INSERT INTO ds_history (arrival, message_id, status, timestamp_ms, channel, "
    "client_message_id, outcome, local) VALUES (?, ?, 6, ?, 'sms', ?, 'applied', 0)"
)
_FILLER_MESSAGE = (
    "INSERT INTO ds_messages (message_id, status, timestamp_ms, precedence, channel, "
    "client_message_id, local, first_ms, delivered_ms, read_ms, reports) "
    "VALUES (?, 6, ?, ?, 'sms', ?, 0, ?, ?, ?, ?)"
)


def _tables(autoincrement: bool, indexes: bool) -> list[str]:
    tables = [
        *_sqlite.TABLES,
        *_sqlite.FEED_TABLES,
        "CREATE TABLE ds_meta (key TEXT PRIMARY KEY, value TEXT)",
    ]
    if not autoincrement:
        tables = [
            t.replace("arrival INTEGER PRIMARY KEY AUTOINCREMENT", "arrival INTEGER PRIMARY KEY")
            for t in tables
        ]
    if not indexes:
        tables = [t for t in tables if not t.startswith("CREATE INDEX")]
    return tables


def _connect(db: Path) -> sqlite3.Connection:
    """The store's connection settings (WAL, NORMAL, 64 MiB cache, 16 MiB checkpoints)."""
    conn = sqlite3.connect(str(db), isolation_level=None)
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute(f"PRAGMA wal_autocheckpoint = {(16 << 20) // page}")
    return conn


def fill(db: Path, variant: tuple[int, bool, bool], tracked: int) -> None:
    """A file of ``variant``'s layout already tracking ``tracked`` messages (random ids)."""
    page, autoincrement, indexes = variant
    conn = sqlite3.connect(str(db), isolation_level=None)
    conn.execute(f"PRAGMA page_size = {page}")
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.close()
    conn = _connect(db)
    for statement in _tables(autoincrement, indexes):
        conn.execute(statement)
    rng = random.Random(7)
    base = 1_700_000_000_000
    step = 50_000
    for start in range(0, tracked, step):
        ids = [f"{rng.getrandbits(128):032x}" for _ in range(min(step, tracked - start))]
        conn.execute("BEGIN")
        history = [
            (start + i + 1, m, base + start + i, f"order-{start + i:07d}")
            for i, m in enumerate(ids)
        ]
        conn.executemany(_FILLER_HISTORY, history)
        conn.executemany(
            _FILLER_MESSAGE,
            [
                (m, t, t, client, t, t, t, ((t << 8 | 6) << 64 | arrival).to_bytes(16, "big"))
                for arrival, m, t, client in history
            ],
        )
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def run_variant(calls: list[replay_floor.Recorded], db: Path, offset: int) -> None:
    """The recorded batches' SQL into ``db``, arrival numbers moved past the filler's."""
    conn = _connect(db)
    try:
        for kind, _, writes in calls:
            if kind != "batch":
                continue
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_sqlite._UPSERT, writes.rows)
            if writes.learned:
                conn.executemany(_sqlite._LEARNED, writes.learned)
            history = [(a + offset, *r) for a, *r in writes.history]
            # as the store appends them: _GROUP rows a statement
            group = _sqlite._GROUP
            append_rows(conn, _sqlite._HISTORY, _sqlite._HISTORIES, group, history)
            append_rows(conn, _sqlite._CHANGES, _sqlite._MANY_CHANGES, group, writes.changes)
            conn.execute(_sqlite._LAST_CHANGE).fetchone()
            if writes.counts:
                conn.executemany(_sqlite.ADD_COUNTS, writes.counts)
            conn.execute("COMMIT")
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    """Each variant's lines/s at each size, medians of three, the variants taking turns.

    The CPU time beside each (this process's) is the steadier figure on a shared machine.
    """
    stream, *sizes = argv
    lines, calls = replay_floor.record(Path(stream))
    workdir = Path(tempfile.mkdtemp(prefix="ds-bench-schema-"))
    try:
        for tracked in [int(n) for n in sizes] or [10_000, 1_000_000]:
            filled = {}
            for name, variant in VARIANTS.items():
                filled[name] = workdir / f"filled-{len(filled)}.sqlite3"
                fill(filled[name], variant, tracked)
            times: dict[str, list[float]] = {name: [] for name in VARIANTS}
            cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
            for _ in range(3):
                for name in VARIANTS:
                    db = workdir / "run.sqlite3"
                    for path in workdir.glob("run.sqlite3*"):
                        path.unlink()
                    shutil.copyfile(filled[name], db)
                    start, used = time.perf_counter(), time.process_time()
                    run_variant(calls, db, tracked)
                    times[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - used)
            today = statistics.median(next(iter(times.values())))
            today_cpu = statistics.median(next(iter(cpu.values())))
            print(f"{tracked:,} messages tracked before a replay of {lines:,} lines")
            for name, seconds in times.items():
                rate = lines / statistics.median(seconds)
                ratio = today / statistics.median(seconds)
                used = statistics.median(cpu[name])
                print(
                    f"  {name:42s} {rate:9,.0f} lines/s  {ratio:.2f}x today's; "
                    f"CPU {used:.2f} s, {today_cpu / used:.2f}x"
                )
            for path in filled.values():
                path.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
