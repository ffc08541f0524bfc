"""deliverystate's pytest plugin: a fresh tracker per test, in memory, SQLite or PostgreSQL.

Registered as a ``pytest11`` entry point (named ``deliverystate``), so pytest
loads it wherever deliverystate is installed; ``pytest -p no:deliverystate``
switches it off.  It needs neither Hypothesis nor the ``testing`` extra, and
imports psycopg only when ``postgres_tracker`` is used.  It also has pytest
rewrite the asserts of ``deliverystate.testing``, so that a store failing the
store contract shows the values that differ.

Fixtures, each fresh for every test:

* ``tracker``: a :class:`~deliverystate.Tracker` over a new ``MemoryStore``;
* ``sqlite_tracker``: over a new SQLite file in the test's ``tmp_path``;
* ``postgres_tracker``: over a new schema on the PostgreSQL server that
  ``DELIVERYSTATE_TEST_POSTGRES_DSN`` names, dropped after the test (the
  ``postgres`` extra); the test is skipped, naming the variable, when the
  variable is not set.

For Hypothesis's ``@given`` tests there is ``make_tracker`` instead, a
:class:`TrackerFactory`: ``with make_tracker("sqlite") as tracker:`` gives a
fresh tracker for each generated example and cleans it up when the block
ends.  The three fixtures above are function-scoped, so they would be shared
by every example of a test; Hypothesis's ``function_scoped_fixture`` health
check refuses them for that reason, and ``make_tracker`` is session-scoped so
that it passes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest

from .rules._policy import Policy
from .stores import SQLiteStore
from .tracking._tracker import Tracker

__all__ = [
    "POSTGRES_DSN_VARIABLE",
    "TRACKER_KINDS",
    "TrackerFactory",
    "make_tracker",
    "postgres_tracker",
    "sqlite_tracker",
    "tracker",
]

#: The environment variable naming the PostgreSQL server ``postgres_tracker`` uses.
POSTGRES_DSN_VARIABLE = "DELIVERYSTATE_TEST_POSTGRES_DSN"

pytest.register_assert_rewrite("deliverystate.testing")


@pytest.fixture
def tracker() -> Tracker:
    """A tracker over a new, empty ``MemoryStore`` (policy: delivery wins)."""
    return Tracker()


@pytest.fixture
def sqlite_tracker(tmp_path: Path) -> Iterator[Tracker]:
    """A tracker over a new SQLite file in ``tmp_path``, closed after the test."""
    with _sqlite_tracker(tmp_path / "deliverystate.sqlite3", None) as made:
        yield made


@pytest.fixture
def postgres_tracker() -> Iterator[Tracker]:
    """A tracker over a new schema on the server ``DELIVERYSTATE_TEST_POSTGRES_DSN`` names.

    The test is skipped when the variable is not set; the schema is dropped
    after the test.  Needs the ``postgres`` extra (psycopg).
    """
    with _postgres_tracker("postgres_tracker", None) as made:
        yield made


#: The stores ``make_tracker`` can put a tracker on.
TRACKER_KINDS = ("memory", "sqlite", "postgres")


@attrs.frozen
class TrackerFactory:
    """What the ``make_tracker`` fixture is: fresh trackers on demand, one per ``with`` block.

    Made once per session, so that ``@given`` tests may use it; each call
    makes a new store, which the end of its ``with`` block closes and removes
    (the SQLite file deleted, the PostgreSQL schema dropped), so that a
    hundred examples leave neither files nor open connections behind.
    """

    #: Where the SQLite trackers keep their files, one uniquely named file each.
    directory: Path

    @contextmanager
    def __call__(self, kind: str = "memory", policy: Policy | None = None) -> Iterator[Tracker]:
        """A tracker over a new, empty store of ``kind`` (one of :data:`TRACKER_KINDS`).

        ``postgres`` skips the test, naming the variable, when
        ``DELIVERYSTATE_TEST_POSTGRES_DSN`` is not set.
        """
        if kind == "memory":
            yield Tracker(policy=policy)
        elif kind == "sqlite":
            path = self.directory / f"{uuid.uuid4().hex}.sqlite3"
            try:
                with _sqlite_tracker(path, policy) as made:
                    yield made
            finally:
                for leftover in self.directory.glob(f"{path.name}*"):  # -wal, -shm too
                    leftover.unlink(missing_ok=True)
        elif kind == "postgres":
            with _postgres_tracker("make_tracker('postgres')", policy) as made:
                yield made
        else:
            raise ValueError(f"kind must be one of {', '.join(TRACKER_KINDS)}, not {kind!r}")


@pytest.fixture(scope="session")
def make_tracker(tmp_path_factory: pytest.TempPathFactory) -> TrackerFactory:
    """A :class:`TrackerFactory`: ``with make_tracker(kind) as tracker:``, fresh each time.

    Session-scoped, so that Hypothesis's ``@given`` tests may use it (a
    function-scoped fixture would be shared by all of a test's examples).
    """
    return TrackerFactory(tmp_path_factory.mktemp("make_tracker"))


@contextmanager
def _sqlite_tracker(path: Path, policy: Policy | None) -> Iterator[Tracker]:
    store = SQLiteStore(path)
    try:
        yield Tracker(store, policy)
    finally:
        store.close()


@contextmanager
def _postgres_tracker(who: str, policy: Policy | None) -> Iterator[Tracker]:
    """A tracker over a new schema, dropped afterwards; skips, naming ``who``, without a server."""
    dsn = os.environ.get(POSTGRES_DSN_VARIABLE)
    if not dsn:
        pytest.skip(
            f"{who} needs {POSTGRES_DSN_VARIABLE}, a PostgreSQL URL such as "
            "postgresql://postgres@127.0.0.1:5432/test"
        )
    from .stores._postgres import PostgresStore  # noqa: PLC0415 - psycopg is an optional extra

    store = PostgresStore(dsn, schema=f"ds_test_{uuid.uuid4().hex[:12]}")
    try:
        yield Tracker(store, policy)
    finally:
        try:
            store.drop_schema()
        finally:
            store.close()
