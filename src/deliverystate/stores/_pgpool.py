"""How PostgresStore waits for a pooled connection: briefly while the database is away.

psycopg_pool alone makes an outage slow twice over.  A call that finds no
working connection waits the pool's whole ``timeout`` (10 s here), and the
receiver's intake asks twice per group (keep, then ping), so callbacks waited
20-40 s for their 503.  And the pool retries a lost connection with a backoff
that doubles up to ``reconnect_timeout`` (five minutes by default), so after
a 15 s outage its next attempt was up to 16 s away: the first 2xx came
13-18 s after the database was back.  Here:

* :func:`lent` waits for a connection in slices of :data:`WAIT_SLICE` and
  gives up as soon as an attempt to connect failed while it waited (the
  pool's ``connections_errors`` moved): the database refuses connections,
  and a 503 with Retry-After now is the honest answer.  Only a busy pool
  makes a call wait up to ``timeout``.
* The pool gives up a lost connection after :data:`RECONNECT_SECONDS` of
  attempts (at about 1 s, then 1 s later); a call that then finds no
  connection makes the pool attempt one at once (the pool grows on demand).
  So attempts are at most about a second apart while calls come, and the
  first call after the database accepts connections again gets one within
  about a second.  A connection attempt per call would do the same but would
  let a burst of callbacks open a burst of connections.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = ["RECONNECT_SECONDS", "WAIT_SLICE", "lent"]

#: Seconds a call waits for a pooled connection at a time before it looks whether an
#: attempt to connect failed meanwhile.
WAIT_SLICE = 0.25
#: Seconds the pool retries a lost connection (psycopg_pool's ``reconnect_timeout``).
RECONNECT_SECONDS = 2.0


@contextmanager
def lent(
    pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]], timeout: float
) -> Iterator[psycopg.Connection[Any]]:
    """A connection as ``pool.connection()`` lends it, but waited for as :func:`_wait` says."""
    connection = _wait(pool, timeout)
    try:
        with connection:
            yield connection
    finally:
        pool.putconn(connection)


def _wait(
    pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]], timeout: float
) -> psycopg.Connection[Any]:
    """A connection from ``pool``; ``PoolTimeout`` once an attempt to connect failed.

    Also ``PoolTimeout`` after ``timeout`` seconds of a pool that is only
    busy.  A lost connection (``connections_lost``: one that failed the
    pool's check) does not end the wait, the database may well be up (a
    killed backend); it makes the pool check its idle connections at once,
    so that the call does not meet the other dead ones one slice at a time.
    """
    import psycopg_pool  # noqa: PLC0415 - optional extra

    started = time.monotonic()
    seen = pool.get_stats()
    while True:
        left = timeout - (time.monotonic() - started)
        try:
            return pool.getconn(timeout=max(min(WAIT_SLICE, left), 0.001))
        except psycopg_pool.PoolTimeout:
            stats = pool.get_stats()
        waited = time.monotonic() - started
        if stats.get("connections_errors", 0) != seen.get("connections_errors", 0):
            raise psycopg_pool.PoolTimeout(
                f"no connection: an attempt to connect failed (waited {waited:.1f} s)"
            ) from None
        if waited >= timeout:
            raise psycopg_pool.PoolTimeout(f"no free connection within {timeout:g} s") from None
        if stats.get("connections_lost", 0) != seen.get("connections_lost", 0):
            pool.check()
        seen = stats
