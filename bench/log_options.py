"""What the reports blob and the second feed table cost a batch of writes (raw sqlite3).

Issue 24 asked whether the store should drop each message's reports blob (the
fingerprints and arrivals of its history rows, rewritten with the row on
every update) and keep the change feed in the history table itself (a log
row that says whether it changed the state, instead of a row in a second
table).  This measures each on its own, with no project code: batches of
2,000 reports (three a message, QUEUED, SENT_TO_SUPPLIER, DEVICE_ACK, spread
over the following batches as a replay meets them) written as the store's
schema writes them today, and as that schema with one thing changed, the
variants taking turns, medians of three:

* ``lean``: one message upsert and one history row a report, nothing else
  (the floor of the replay budget);
* ``today``: the store's rows (13 message columns with the blob, three
  secondary indexes, history, the feed's row for each change, the counts);
* ``no blob``: today's without the blob.  Duplicate detection then needs the
  message's past reports from somewhere else:
* ``no blob, history index``: from an index on ``ds_history (message_id)``,
  read for the batch's messages (what dropping the blob really costs);
* ``one log``: history rows carry ``previous`` and ``changed``, no second table;
* ``one log, no blob, history index``: both.

Run ``python bench/log_options.py [--messages N] [--pages 1024,4096]``.
The figures include the Python that builds the rows, the same for every
variant; they are for deciding, not budgets.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, print_table

VARIANTS = (
    "lean",
    "today",
    "no blob",
    "no blob, history index",
    "one log",
    "one log, no blob, history index",
)
_BATCH = 2000
_MESSAGE = (
    "CREATE TABLE m (message_id TEXT PRIMARY KEY, status INT NOT NULL, ts INT NOT NULL, "
    "prec INT, channel TEXT, client TEXT, local INT NOT NULL DEFAULT 0, deadline INT, due INT, "
    "first INT, delivered INT, readms INT{blob}) WITHOUT ROWID"
)
_INDEXES = (
    "CREATE INDEX m_due ON m(due) WHERE due IS NOT NULL",
    "CREATE INDEX m_first ON m(first, message_id)",
    "CREATE INDEX m_client ON m(client) WHERE client IS NOT NULL",
)
_HISTORY = (
    "CREATE TABLE h (arrival INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL, "
    "status INT NOT NULL, ts INT NOT NULL, channel TEXT, client TEXT, outcome TEXT NOT NULL, "
    "local INT NOT NULL DEFAULT 0{log})"
)
_CHANGES = (
    "CREATE TABLE ch (seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL, previous INT, "
    "status INT NOT NULL, ts INT NOT NULL, channel TEXT, client TEXT, local INT NOT NULL DEFAULT 0)"
)
_COUNTS = (
    "CREATE TABLE counts (status INT NOT NULL, local INT NOT NULL, n INT NOT NULL, "
    "PRIMARY KEY (status, local)) WITHOUT ROWID"
)


def reports(messages: int) -> list[tuple[str, int, int]]:
    """Three reports a message, in the order a replay of a live stream meets them."""
    rng = random.Random(1)
    out = []
    for index in range(messages):
        message_id = f"{rng.getrandbits(128):032x}"
        for step, code in enumerate((2, 4, 5)):
            out.append((message_id, code, 1_767_225_600_000 + index * 10 + step * 1000))
    out.sort(key=lambda report: report[2] + rng.randrange(0, 5000))
    return out


def _connect(path: Path, variant: str, page: int) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in (f"page_size={page}", "journal_mode=WAL", "synchronous=NORMAL"):
        connection.execute(f"PRAGMA {pragma}")
    connection.execute("PRAGMA cache_size=-65536")
    blob = "" if "no blob" in variant or variant == "lean" else ", reports BLOB"
    connection.execute(_MESSAGE.format(blob=blob))
    if variant != "lean":
        for index in _INDEXES:
            connection.execute(index)
    log = ", previous INT, changed INT NOT NULL DEFAULT 0" if "one log" in variant else ""
    connection.execute(_HISTORY.format(log=log))
    if "history index" in variant:
        connection.execute("CREATE INDEX h_message ON h(message_id)")
    connection.execute(_CHANGES)
    connection.execute(_COUNTS)
    return connection


def _batch(
    connection: sqlite3.Connection,
    variant: str,
    chunk: list[tuple[str, int, int]],
    state: dict[str, int],
    arrival: int,
) -> int:
    """Write one batch as ``variant`` does, in one transaction; the last arrival number."""
    blob = "no blob" not in variant and variant != "lean"
    one_log = "one log" in variant
    connection.execute("BEGIN IMMEDIATE")
    ids = json.dumps(list({report[0] for report in chunk}))
    columns = "message_id, status" + (", reports" if blob else "")
    loaded = {
        row[0]: row
        for row in connection.execute(
            f"SELECT {columns} FROM m WHERE message_id IN (SELECT value FROM json_each(?))", (ids,)
        )
    }
    if "history index" in variant:  # the fingerprints the blob would have held
        connection.execute(
            "SELECT message_id, status, ts, local FROM h "
            "WHERE message_id IN (SELECT value FROM json_each(?))",
            (ids,),
        ).fetchall()
    upserts: list[tuple[object, ...]] = []
    history: list[tuple[object, ...]] = []
    changes: list[tuple[object, ...]] = []
    blobs: dict[str, bytes] = {}
    for message_id, code, ts in chunk:
        arrival += 1
        previous = state.get(message_id)
        changed = previous is None or code > previous
        if changed:
            state[message_id] = code
        if variant == "lean":
            upserts.append((message_id, state[message_id], ts))
            history.append((arrival, message_id, code, ts))
            continue
        outcome = "applied" if changed else "stale"
        log = (previous, int(changed)) if one_log else ()
        history.append((arrival, message_id, code, ts, "sms", None, outcome, 0, *log))
        if changed and not one_log:
            changes.append((message_id, previous, code, ts, "sms", None, 0))
        row: tuple[object, ...] = (message_id, state[message_id], ts, ts, "sms", None, 0)
        row += (None, None, ts, ts if code == 5 else None, None)
        if blob:
            old = loaded.get(message_id)
            kept = blobs.get(message_id, bytes(old[2]) if old is not None and old[2] else b"")
            blobs[message_id] = kept + struct.pack(">qq", ts << 8 | code, arrival)
            row += (blobs[message_id],)
        upserts.append(row)
    _write(connection, variant, upserts, history, changes)
    connection.execute("COMMIT")
    return arrival


def _write(
    connection: sqlite3.Connection,
    variant: str,
    upserts: list[tuple[object, ...]],
    history: list[tuple[object, ...]],
    changes: list[tuple[object, ...]],
) -> None:
    if variant == "lean":
        connection.executemany(
            "INSERT INTO m (message_id, status, ts) VALUES (?, ?, ?) ON CONFLICT (message_id) "
            "DO UPDATE SET status = excluded.status, ts = excluded.ts",
            upserts,
        )
        connection.executemany(
            "INSERT INTO h (arrival, message_id, status, ts, outcome) VALUES (?, ?, ?, ?, 'a')",
            history,
        )
        return
    blob = len(upserts[0]) == 13
    columns = "message_id, status, ts, prec, channel, client, local, deadline, due, first, "
    columns += "delivered, readms" + (", reports" if blob else "")
    sets = (
        "status = excluded.status, ts = excluded.ts, prec = excluded.prec, "
        "channel = excluded.channel, local = excluded.local, deadline = excluded.deadline, "
        "due = excluded.due, delivered = excluded.delivered, readms = excluded.readms"
    ) + (", reports = excluded.reports" if blob else "")
    marks = ", ".join("?" * len(upserts[0]))
    connection.executemany(
        f"INSERT INTO m ({columns}) VALUES ({marks}) ON CONFLICT (message_id) DO UPDATE SET {sets}",
        upserts,
    )
    connection.executemany(f"INSERT INTO h VALUES ({', '.join('?' * len(history[0]))})", history)
    if changes:
        connection.executemany(
            "INSERT INTO ch (message_id, previous, status, ts, channel, client, local) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            changes,
        )
        connection.execute("SELECT max(seq) FROM ch").fetchone()
    connection.executemany(
        "INSERT INTO counts VALUES (?, ?, ?) ON CONFLICT (status, local) "
        "DO UPDATE SET n = counts.n + excluded.n",
        [(2, 0, 1), (4, 0, 1), (5, 0, 1)],
    )


def run(variant: str, page: int, stream: list[tuple[str, int, int]]) -> float:
    """Reports per second for ``variant`` written into a fresh file with ``page``-byte pages."""
    with tempfile.TemporaryDirectory(prefix="ds-log-options-") as workdir:
        connection = _connect(Path(workdir) / "x.sqlite3", variant, page)
        state: dict[str, int] = {}
        arrival = 0
        start = time.perf_counter()
        for at in range(0, len(stream), _BATCH):
            arrival = _batch(connection, variant, stream[at : at + _BATCH], state, arrival)
        seconds = time.perf_counter() - start
        connection.close()
    return len(stream) / seconds


def main(argv: list[str] | None = None) -> int:
    """Print one table per page size: each variant's reports/s and its ratio to today's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--pages", default="1024,4096")
    args = parser.parse_args(argv)
    stream = reports(args.messages)
    print(f"{machine()}; {len(stream):,} reports about {args.messages:,} messages; medians of 3")
    for page in (int(size) for size in args.pages.split(",")):
        rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for _ in range(3):
            for variant in VARIANTS:  # taking turns
                rates[variant].append(run(variant, page, stream))
        today = statistics.median(rates["today"])
        rows = [
            [
                variant,
                f"{statistics.median(r) / 1000:,.1f} k/s",
                f"{statistics.median(r) / today:.2f}",
            ]
            for variant, r in rates.items()
        ]
        print_table(f"{page}-byte pages", ["variant", "reports/s", "of today"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
