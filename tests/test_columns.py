"""The column spec of ``ds_messages`` (``stores._columns``) against the tables the stores make.

A fresh table is made from the spec; a migrated one by the migrations, written
by hand: both must be what the spec says, in its order, so that a spec edited
without a migration (or a migration without the spec) fails here.
"""

from __future__ import annotations

import contextlib
import sqlite3
import types
from pathlib import Path
from typing import Any, get_args

import psycopg
import pytest

from deliverystate import SQLiteStore
from deliverystate.postgres import PostgresStore
from deliverystate.stores import _columns
from deliverystate.stores._columns import COMPUTED, LAYOUTS, MESSAGES, WRITTEN
from deliverystate.stores._sqlbase import MessageRow
from deliverystate.stores._work import StateRow

from . import old_schemas

#: The Python type a row holds for each SQL type of the spec.
PYTHON_TYPES = {"TEXT": str, "INTEGER": int, "BLOB": bytes}


def spec_columns() -> list[tuple[str, str, bool, str | None, bool]]:
    """The spec's columns as (name, type, nullable, default, key), types as SQLite's."""
    return [(c.name, c.sqlite, not (c.key or c.not_null), c.default, c.key) for c in MESSAGES]


@pytest.mark.parametrize("version", ["fresh", "version-1"])
def test_an_sqlite_table_has_the_spec_columns_in_order(tmp_path: Path, version: str) -> None:
    """A fresh SQLite table and one migrated from version 1 have the spec's columns, in order."""
    path = tmp_path / "state.sqlite3"
    if version == "version-1":
        with contextlib.closing(sqlite3.connect(path)) as raw, raw:
            raw.execute("CREATE TABLE ds_meta (key TEXT PRIMARY KEY, value TEXT)")
            for ddl in old_schemas.SQLITE_V1:
                raw.execute(ddl)
            old_schemas.fill(raw.cursor(), "?", v1=True)
    SQLiteStore(path).close()
    with contextlib.closing(sqlite3.connect(path)) as raw:
        info = raw.execute("PRAGMA table_info(ds_messages)").fetchall()
    found = [
        (name, kind, not notnull, default, bool(pk))
        for _cid, name, kind, notnull, default, pk in info
    ]
    assert found == spec_columns()


@pytest.mark.parametrize("version", ["fresh", "version-1"])
def test_a_postgres_table_has_the_spec_columns_in_order(
    postgres_dsn: str, pg_schema: str, version: str
) -> None:
    """A fresh PostgreSQL table and one migrated from version 1 have the spec's columns in order."""
    if version == "version-1":
        with psycopg.connect(postgres_dsn, autocommit=True) as raw, raw.transaction():
            raw.execute(f'CREATE SCHEMA "{pg_schema}"')
            raw.execute(f'SET search_path TO "{pg_schema}"')
            raw.execute("CREATE TABLE ds_meta (key TEXT PRIMARY KEY, value TEXT)")
            for ddl in old_schemas.POSTGRES_V1:
                raw.execute(ddl)
            old_schemas.fill(raw.cursor(), "%s", v1=True)
    PostgresStore(postgres_dsn, schema=pg_schema).close()
    with psycopg.connect(postgres_dsn) as raw:
        columns = raw.execute(
            "SELECT column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = 'ds_messages' ORDER BY ordinal_position",
            (pg_schema,),
        ).fetchall()
        key = raw.execute(
            "SELECT a.attname FROM pg_constraint AS c JOIN pg_attribute AS a "
            "ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
            "WHERE c.conrelid = %s::regclass AND c.contype = 'p'",
            (f'"{pg_schema}".ds_messages',),
        ).fetchall()
    found = [(name, kind, nullable == "YES", default) for name, kind, nullable, default in columns]
    assert found == [
        (c.name, c.postgres.lower(), not (c.key or c.not_null), c.default) for c in MESSAGES
    ]
    assert key == [(c.name,) for c in MESSAGES if c.key]


def test_every_position_names_its_column_in_its_layout() -> None:
    """Each position constant (``LOCKED_REPORTS``...) is where its layout keeps its column."""
    positions = {
        name: value
        for name, value in vars(_columns).items()
        if name.partition("_")[0] in LAYOUTS and isinstance(value, int)
    }
    assert len(positions) >= len(LAYOUTS)  # the check sees them
    misplaced = {
        name: LAYOUTS[name.partition("_")[0]][value : value + 1]
        for name, value in positions.items()
        if LAYOUTS[name.partition("_")[0]][value : value + 1] != (name.partition("_")[2].lower(),)
    }
    assert misplaced == {}


def test_the_layouts_name_columns_of_the_table() -> None:
    """A written row holds every column once; the other layouts name columns, each once."""
    table = [c.name for c in MESSAGES]
    assert sorted(WRITTEN) == sorted(table)
    assert WRITTEN[: len(COMPUTED)] == COMPUTED
    for name, layout in LAYOUTS.items():
        assert len(set(layout)) == len(layout), name
        assert set(layout) <= set(table), name
    assert LAYOUTS["LOCKED"][: len(LAYOUTS["STATE"])] == LAYOUTS["STATE"]
    assert LAYOUTS["LISTED"][: len(LAYOUTS["STATE"])] == LAYOUTS["STATE"]


def members(hint: Any) -> set[Any]:
    """The types a row element's hint admits (``int | None``: int and NoneType)."""
    return set(get_args(hint)) if isinstance(hint, types.UnionType) else {hint}


def test_the_row_types_hold_each_written_column() -> None:
    """``MessageRow`` has an element per written column, of its type; ``StateRow`` starts it."""
    hints = get_args(MessageRow)
    assert len(hints) == len(WRITTEN)
    for name, hint in zip(WRITTEN, hints, strict=True):
        column = _columns.COLUMN[name]
        assert PYTHON_TYPES[column.sqlite] in members(hint), name
        assert members(hint) <= {PYTHON_TYPES[column.sqlite], type(None)}, name
        if column.key or column.not_null:
            assert type(None) not in members(hint), name
    assert get_args(StateRow) == hints[: len(COMPUTED)]
