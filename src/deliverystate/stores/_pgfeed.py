"""PostgreSQL's change feed without a lock: writers append, readers stop at a safe horizon.

Theory of operation
-------------------
Until schema version 8 every batch took one advisory lock before it numbered
its changes and held it to its commit, so that seqs were handed out in commit
order and a follower that had read change N would never later find one below
N.  Every writer queued on that lock, behind each other's commit (its flush to
disk most of all): three writers about different messages waited on it in
9-18 % of the samples ``bench/pgwriters.py`` took (the most waiting writer).

Now a batch draws each change's seq from the sequence as it inserts it
(``APPEND_CHANGES``; a big batch draws them all, then COPYs: ``COPY_FROM``),
with no lock, so seqs are no longer in commit order: a
batch can draw 10, another 11 and commit first.  A reader therefore returns
only the changes up to a *horizon* below which nothing can appear any more
(the technique of PgQ, Skytools' queue: read up to what every transaction
still running cannot change).  ``horizon`` finds one in three steps:

1. read how far the sequence has been drawn, ``L`` (no seq above it exists yet);
2. then list the transactions this schema's sessions are running
   (``pg_stat_activity``: every store names its sessions after its schema);
3. wait until each of those has ended.

A batch that drew a seq at or below ``L`` drew it before step 1, and had its
transaction id before that (it locked its messages' rows, which takes one;
``APPEND_CHANGES`` even asks for it first), so at step 2 it had either ended, or was
running and is among those step 3 waits for.  After step 3, every change with
a seq at or below ``L`` is committed or will never be, and a read made
afterwards sees all of them, for good: ``L`` is a horizon.  (A snapshot's list
of running transactions, ``pg_current_snapshot``, is not enough: it leaves out
those with ids above the newest that has ended; a first version relied on it,
and the follower test caught it missing changes.)  A reader asks for a new
horizon only once it has read up to the last one.

The changes of one message stay in the order they were made: a batch draws a
message's seqs while it holds that message's row lock (``_postgres``), and the
next batch about the message takes that lock only after this one committed,
so it draws higher seqs.  (Transaction ids do not give that order: a batch can
get its id before another, yet write a message after the other committed it.)

Step 3 waits for this schema's sessions only, whose transactions take
milliseconds; one kept open (a prune's archive written to a slow disk, an
operator's ``BEGIN`` under the store's name) would hold readers up, so a
reader waits at most ``WAIT_SECONDS`` and otherwise stops at the last horizon
it established (a store keeps it: a horizon stays one forever); a follower
then sees the new changes once that transaction ends, and misses none.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..rules._events import Change
from ._names import redact
from ._sqlfeed import SQLFeed, change_from_row
from ._work import FeedEntry

if TYPE_CHECKING:
    import psycopg

__all__ = ["APPEND_CHANGES", "COPY_FROM", "WAIT_SECONDS", "PostgresFeed", "append_changes"]

#: How long a reader waits for the transactions running when it looked (step 3).
WAIT_SECONDS = 2.0
# Appends a batch's changes, each numbered by the sequence as it is inserted, in the
# batch's order; asks for the transaction's id first (see the module's docstring); wakes
# the followers at commit (pg_notify); returns the seqs.
APPEND_CHANGES = (
    "WITH xact AS MATERIALIZED (SELECT pg_current_xact_id() AS id), "
    "appended AS (INSERT INTO ds_changes (message_id, previous, status, timestamp_ms, "
    "channel, client_message_id, local) SELECT c.x->>0, (c.x->>1)::smallint, "
    "(c.x->>2)::smallint, (c.x->>3)::bigint, c.x->>4, c.x->>5, (c.x->>6)::smallint "
    "FROM xact, jsonb_array_elements(%(changes)s::jsonb) WITH ORDINALITY AS c(x, i) "
    "ORDER BY c.i RETURNING seq), "
    "notified AS MATERIALIZED (SELECT pg_notify(%(channel)s, '') FROM xact) "
    "SELECT seq FROM appended, notified"
)
#: From this many changes a batch draws its seqs first and COPYs its changes: nextval per
#: row costs about 5 us (3,000 changes: 29 ms drawn then copied, 38 ms in
#: ``APPEND_CHANGES``); below it, the one statement saves the round trips.
COPY_FROM = 64
# the same order as ``APPEND_CHANGES``: the transaction has its id (its messages' rows are
# locked), then draws; the seqs come back increasing and are given in the batch's order
_DRAW = "SELECT nextval({sequence}::regclass) FROM generate_series(1, %s)"
_COPY_CHANGES = (
    "COPY ds_changes (seq, message_id, previous, status, timestamp_ms, channel, "
    "client_message_id, local) FROM STDIN"
)
_SEQUENCE = "SELECT pg_get_serial_sequence('ds_changes', 'seq')"
_DRAWN = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {sequence}"
# the transactions this schema's sessions are running (each store names its sessions
# ``deliverystate:<schema>``), ours aside; the same query tells when they have ended (a
# session's transaction id is cleared as it stops counting as running for new snapshots).
# Every role sees every session's transaction id, even one that may not see its query
# (checked on PostgreSQL 15 with a role of no privileges).
_RUNNING = (
    "SELECT backend_xid::text FROM pg_stat_activity WHERE application_name = %s "
    "AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
)
_COLUMNS = "seq, message_id, previous, status, timestamp_ms, channel, client_message_id, local"


def append_changes(cursor: psycopg.Cursor[Any], changes: Sequence[FeedEntry], channel: str) -> None:
    """Send ``APPEND_CHANGES`` for a batch's changes (its result: their seqs)."""
    rows = [
        (message_id, previous, int(status), at, on, client, int(local))
        for message_id, previous, status, at, on, client, local in changes
    ]
    # one JSON text: psycopg dumps arrays element by element in Python
    cursor.execute(APPEND_CHANGES, {"changes": json.dumps(rows), "channel": channel})


logger = logging.getLogger("deliverystate.stores._postgres")


class PostgresFeed(SQLFeed):
    """``changes`` and ``last_seq`` read up to the horizon (see the module's docstring)."""

    schema: str
    channel: str
    _psycopg: Any
    _dsn: str
    _connect_options: dict[str, Any]
    _drawn = ""  # step 1 (``_DRAWN``), the sequence named as this schema names it
    _draw = ""  # ``_DRAW``, the same way
    _safe = 0  # the highest horizon established so far
    _safe_lock = threading.Lock()

    def _name_feed_sequence(self, cursor: psycopg.Cursor[Any]) -> None:
        """Name the feed's sequence once (as this schema names it), when the store opens."""
        cursor.execute(_SEQUENCE)
        (sequence,) = cursor.fetchone() or ("",)
        # the name comes quoted where it must be, from the server itself
        self._drawn = _DRAWN.format(sequence=sequence)
        self._draw = _DRAW.format(sequence="'" + str(sequence).replace("'", "''") + "'")
        self._safe_lock = threading.Lock()

    def _copy_changes(
        self, cursor: psycopg.Cursor[Any], changes: Sequence[FeedEntry], channel: str
    ) -> list[int]:
        """Draw a big batch's seqs, then COPY its changes (``COPY_FROM``); the seqs."""
        cursor.execute(self._draw, (len(changes),), binary=True)
        seqs = sorted(int(row[0]) for row in cursor.fetchall())
        with cursor.copy(_COPY_CHANGES) as copy:
            for seq, (message_id, previous, status, at, chan, client, local) in zip(
                seqs, changes, strict=True
            ):
                copy.write_row(
                    (seq, message_id, previous, int(status), at, chan, client, int(local))
                )
        cursor.execute("SELECT pg_notify(%s, '')", (channel,))
        return seqs

    def horizon(self) -> int:
        """A seq at or below which the feed holds every change it will ever hold."""
        ((drawn,),) = self._read(self._drawn)  # step 1
        name = (f"deliverystate:{self.schema}"[:63],)
        running = {row[0] for row in self._read(_RUNNING, name)}  # step 2: a later statement
        deadline = time.monotonic() + WAIT_SECONDS
        pause = 0.0005
        while running:  # step 3
            if time.monotonic() > deadline:
                return self._safe
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            running &= {row[0] for row in self._read(_RUNNING, name)}
        with self._safe_lock:
            self._safe = max(self._safe, int(drawn))
            return self._safe

    def changes(self, after: int = 0, limit: int = 1000) -> list[Change]:
        """The changes with ``seq`` above ``after``, up to the horizon, in ``seq`` order."""
        horizon = self._safe if after < self._safe else self.horizon()
        if horizon <= after:
            return []
        rows = self._read(
            f"SELECT {_COLUMNS} FROM ds_changes WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT %s",
            (after, horizon, limit),
        )
        return [change_from_row(row) for row in rows]

    def last_seq(self) -> int:
        """The highest ``seq`` in the feed up to the horizon (0 when there is none)."""
        sql = "SELECT COALESCE(MAX(seq), 0) FROM ds_changes WHERE seq <= %s"
        return int(self._read(sql, (self.horizon(),))[0][0])

    @contextmanager
    def listen(self) -> Iterator[Callable[[float], bool]]:
        """A ``wait(timeout)`` that returns True once changes may have been committed.

        It LISTENs on a connection of its own (a follower waits for hours: it
        must not hold a pooled one) for the NOTIFY each feed write sends at
        commit.  A dropped connection is opened again on the next wait, which
        then says True so that the follower reads what it may have missed.
        """
        psycopg = self._psycopg
        connection: Any = None

        def wait(timeout: float) -> bool:
            nonlocal connection
            try:
                if connection is None or connection.closed:
                    connection = psycopg.connect(self._dsn, **self._connect_options)
                    connection.execute(f'LISTEN "{self.channel}"')
                    return True
                return any(True for _ in connection.notifies(timeout=timeout, stop_after=1))
            except psycopg.OperationalError as error:
                logger.warning(
                    "listening for changes on %s failed: %s", self.target, redact(str(error))
                )
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(min(timeout, 1.0))
                return True

        try:
            yield wait
        finally:
            if connection is not None:
                connection.close()
