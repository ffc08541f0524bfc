"""Shared fixtures: the PostgreSQL test server, fresh schemas, SQL stores on one place, and
the optional system programs (Graphviz's ``dot``, Chromium).

Whatever a test needs from outside Python goes through :func:`skip_or_fail`:
missing on a developer's machine, the test is skipped with the reason; missing
in CI (``CI`` set), it fails, since CI provides it and its tests must run there.

The store contract itself is ``deliverystate.testing.StoreContract``, run on
each store by ``tests/test_store.py``; the plugin's fixtures (``tracker``,
``sqlite_tracker``, ``postgres_tracker``) come from ``deliverystate.pytest_plugin``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

from deliverystate import SQLiteStore, Store
from deliverystate.postgres import PostgresStore
from deliverystate.pytest_plugin import POSTGRES_DSN_VARIABLE

POSTGRES_ENV = POSTGRES_DSN_VARIABLE


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test for want of ``reason``'s requirement; in CI (``CI`` set), fail instead.

    CI installs every optional tool and runs a PostgreSQL server, so a test
    skipped there would be a test that silently stopped running.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI provides it, so this test may not skip there")
    pytest.skip(reason)


def system_program(name: str, what: str, install: str) -> str:
    """The path of the program ``name`` on PATH, or skip (fail in CI) saying how to get it."""
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"needs {what} ({name!r} is not on PATH; {install})")
    return path


#: Marker -> the system program its tests need: (program, what it is, how to install it).
SYSTEM_PROGRAMS = {
    "graphviz": ("dot", "Graphviz", "apt-get install graphviz / brew install graphviz"),
    "chromium": ("chromium", "Chromium", "apt-get install chromium"),
}


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


def pytest_configure(config: pytest.Config) -> None:
    """Register a marker per optional system program (``pytest -m graphviz`` runs its tests)."""
    for marker, (program, what, _) in SYSTEM_PROGRAMS.items():
        config.addinivalue_line(
            "markers",
            f"{marker}: the test runs {what}'s {program!r}; skipped without it, failed in CI",
        )


@pytest.fixture(autouse=True)
def _system_programs(request: pytest.FixtureRequest) -> None:
    """Skip (or, in CI, fail) a test marked as needing a system program that is missing."""
    for marker, needed in SYSTEM_PROGRAMS.items():
        if request.node.get_closest_marker(marker) is not None:
            system_program(*needed)


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The DSN of the test PostgreSQL server; skip locally without one, fail in CI."""
    dsn = os.environ.get(POSTGRES_ENV)
    if not dsn:
        skip_or_fail(
            f"PostgreSQL tests need {POSTGRES_ENV}, e.g. postgresql://postgres@127.0.0.1:5432/test"
        )
    return dsn


StoreFactory = Callable[[], Store]


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
