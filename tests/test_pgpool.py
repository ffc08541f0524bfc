"""How PostgresStore waits for a connection: briefly while the database refuses them.

The outage is played by a proxy in front of the shared server
(:mod:`tests.tcpproxy`); the server itself is never stopped.  The receiver's
side of it (503 and Retry-After over HTTP, nothing acknowledged lost) is in
``test_web_intake``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import psycopg.conninfo
import pytest

from deliverystate import StoreUnavailable
from deliverystate.postgres import PostgresStore

from .tcpproxy import Proxy, proxy_to


@pytest.fixture
def behind_proxy(postgres_dsn: str, pg_schema: str) -> Iterator[tuple[PostgresStore, Proxy]]:
    """A store (default timeout, 10 s) whose every connection goes through a proxy."""
    address = psycopg.conninfo.conninfo_to_dict(postgres_dsn)
    with proxy_to(str(address.get("host")), int(address.get("port", 5432))) as proxy:
        dsn = psycopg.conninfo.make_conninfo(postgres_dsn, host="127.0.0.1", port=str(proxy.port))
        store = PostgresStore(dsn, schema=pg_schema)
        try:
            yield store, proxy
        finally:
            store.close()


def timed_read(store: PostgresStore) -> tuple[float, Exception | None]:
    """How long one read took, and the error it raised if any."""
    started = time.monotonic()
    try:
        store.get("m-1")
    except StoreUnavailable as error:
        return time.monotonic() - started, error
    return time.monotonic() - started, None


def test_a_read_while_the_database_refuses_connections_fails_within_about_a_second(
    behind_proxy: tuple[PostgresStore, Proxy],
) -> None:
    """Refused connections end a call's wait (StoreUnavailable in ~1 s, not the 10 s timeout)."""
    store, proxy = behind_proxy
    assert timed_read(store)[1] is None
    proxy.down()
    reads = [timed_read(store) for _ in range(6)]
    assert all(isinstance(error, StoreUnavailable) for _, error in reads), reads
    assert max(took for took, _ in reads) <= 2.0, reads


def test_the_first_read_after_the_database_is_back_succeeds_within_a_second(
    behind_proxy: tuple[PostgresStore, Proxy],
) -> None:
    """No backoff left to sit out: the first call after an outage gets a connection at once."""
    store, proxy = behind_proxy
    proxy.down()
    outage_ends = time.monotonic() + 5
    while time.monotonic() < outage_ends:
        timed_read(store)
        time.sleep(0.2)
    proxy.up()
    took, error = timed_read(store)
    assert error is None
    assert took <= 1.0


def test_killed_connections_do_not_fail_a_call_while_the_database_is_up(
    behind_proxy: tuple[PostgresStore, Proxy], postgres_dsn: str, pg_schema: str
) -> None:
    """A lost connection is not a refused one: the call waits for a new connection and reads."""
    store, _ = behind_proxy
    for _ in range(3):
        assert timed_read(store)[1] is None
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (f"deliverystate:{pg_schema}",),
        )
    took, error = timed_read(store)
    assert error is None
    assert took <= 1.0
