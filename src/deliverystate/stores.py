"""Choosing a store from one string, as the command line and the web receiver do.

``:memory:`` is a :class:`MemoryStore`; ``postgresql://...`` (or
``postgres://...``) a :class:`PostgresStore`; anything else is the path of a
:class:`SQLiteStore` file.
"""

from __future__ import annotations

import os

from .memory import MemoryStore
from .sqlite import SQLiteStore
from .store import Store

__all__ = ["DEFAULT_DB", "open_store"]

#: Where the command line keeps state unless told otherwise.
DEFAULT_DB = "deliverystate.sqlite3"


def open_store(location: str | os.PathLike[str] = DEFAULT_DB) -> Store:
    """Open the store named by ``location``: ``:memory:``, a PostgreSQL URL or an SQLite path."""
    text = os.fspath(location)
    if text == ":memory:":
        return MemoryStore()
    if text.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore  # noqa: PLC0415 - psycopg is an optional extra

        return PostgresStore(text)
    return SQLiteStore(text)
