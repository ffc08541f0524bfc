"""Shared fixtures: the PostgreSQL test server, fresh schemas, and SQL stores on one place.

The store contract itself is ``deliverystate.testing.StoreContract``, run on
each store by ``tests/test_store.py``; the plugin's fixtures (``tracker``,
``sqlite_tracker``, ``postgres_tracker``) come from ``deliverystate.pytest_plugin``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from deliverystate import SQLiteStore, Store
from deliverystate.postgres import PostgresStore
from deliverystate.pytest_plugin import POSTGRES_DSN_VARIABLE

POSTGRES_ENV = POSTGRES_DSN_VARIABLE


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The DSN of the test PostgreSQL server; skip locally without one, fail in CI."""
    dsn = os.environ.get(POSTGRES_ENV)
    if not dsn:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} must be set in CI: the PostgreSQL tests may not skip")
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV}, e.g. postgresql://postgres@127.0.0.1:5432/test"
        )
    return dsn


StoreFactory = Callable[[], Store]


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Iterator[object]:
    """Run the tests in one process per core (pytest-xdist) unless ``-n`` says otherwise.

    Most of the suite's time is spent waiting on servers, subprocesses and
    PostgreSQL, so ``python -m pytest`` alone (the README's test command) runs
    as ``-n auto --dist loadgroup``.  ``-n 0`` or ``-p no:xdist`` runs it in
    this one process, for a debugger; tests that must not overlap share an
    ``xdist_group``.  A wrapper, so this runs before xdist reads the options.
    """
    distributing = config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput")
    if distributing and config.option.numprocesses is None:
        config.option.numprocesses = "auto"
        if config.option.dist == "no":
            config.option.dist = "loadgroup"
    return (yield)


@pytest.fixture
def pg_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh PostgreSQL schema name, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _factory(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    opened: list[SQLiteStore | PostgresStore] = []
    if kind == "sqlite":
        path = tmp_path / "state.sqlite3"

        def factory() -> Store:
            store = SQLiteStore(path)
            opened.append(store)
            return store

    else:
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("pg_schema")

        def factory() -> Store:
            store = PostgresStore(dsn, schema=schema)
            opened.append(store)
            return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def open_sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory opening SQL stores that all share one place (one file or schema)."""
    yield from _factory(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the end-to-end test keeps state: an SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "forward.sqlite3")
    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("pg_schema")
    return f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
