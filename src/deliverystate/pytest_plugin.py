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
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._tracker import Tracker
from .stores import SQLiteStore

__all__ = ["POSTGRES_DSN_VARIABLE", "postgres_tracker", "sqlite_tracker", "tracker"]

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
    store = SQLiteStore(tmp_path / "deliverystate.sqlite3")
    try:
        yield Tracker(store)
    finally:
        store.close()


@pytest.fixture
def postgres_tracker() -> Iterator[Tracker]:
    """A tracker over a new schema on the server ``DELIVERYSTATE_TEST_POSTGRES_DSN`` names.

    The test is skipped when the variable is not set; the schema is dropped
    after the test.  Needs the ``postgres`` extra (psycopg).
    """
    dsn = os.environ.get(POSTGRES_DSN_VARIABLE)
    if not dsn:
        pytest.skip(
            f"postgres_tracker needs {POSTGRES_DSN_VARIABLE}, a PostgreSQL URL such as "
            "postgresql://postgres@127.0.0.1:5432/test"
        )
    from .stores._postgres import PostgresStore  # noqa: PLC0415 - psycopg is an optional extra

    store = PostgresStore(dsn, schema=f"ds_test_{uuid.uuid4().hex[:12]}")
    try:
        yield Tracker(store)
    finally:
        try:
            store.drop_schema()
        finally:
            store.close()
