"""Where message states live: the store protocol, the stores, and choosing one from a string.

A store owns reconciliation where the data lives (see ``_protocol`` for the
contract and ``_work`` for the unit of work all stores share):

* :class:`MemoryStore`: a dictionary of compact records; tests, one process;
* :class:`SQLiteStore`: one file, the embedded default, safe for several processes;
* :class:`PostgresStore`: several machines (the ``postgres`` extra; imported
  only when used, so that psycopg stays optional).

:func:`open_store` picks one from the string the command line and the
receiver take: ``:memory:``, a ``postgresql://`` URL, or an SQLite path.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import NoDatabase
from ._memory import MemoryStore
from ._protocol import (
    SETTLED,
    Archived,
    DeadLetter,
    HistoryEntry,
    Keep,
    Listed,
    MessageQuery,
    Milestones,
    Store,
    Summary,
    Undeliverable,
)
from ._sqlite import DEFAULT_DB, SQLiteStore

__all__ = [
    "DEFAULT_DB",
    "SETTLED",
    "Archived",
    "DeadLetter",
    "HistoryEntry",
    "Keep",
    "Listed",
    "MemoryStore",
    "MessageQuery",
    "Milestones",
    "SQLiteStore",
    "Store",
    "Summary",
    "Undeliverable",
    "open_store",
]

_POSTGRES = ("postgresql://", "postgres://")


def open_store(location: str | os.PathLike[str] = DEFAULT_DB, *, must_exist: bool = False) -> Store:
    """Open the store named by ``location``: ``:memory:``, a PostgreSQL URL or an SQLite path.

    With ``must_exist`` an SQLite path that holds no file raises
    :class:`NoDatabase` instead of creating an empty database (a read-only
    command has nothing to read there).  Opening may raise
    ``StoreUnavailable``, ``SchemaMismatch``, or ``ImportError`` for a
    PostgreSQL URL without the ``postgres`` extra.
    """
    text = os.fspath(location)
    # ``postgresql://...?schema=name`` picks the schema (default ``deliverystate``)
    if text == ":memory:":
        return MemoryStore()
    if text.startswith(_POSTGRES):
        from ._postgres import PostgresStore  # noqa: PLC0415 - psycopg is an optional extra

        dsn, schema = _schema_of(text)
        return PostgresStore(dsn) if schema is None else PostgresStore(dsn, schema=schema)
    if must_exist and not Path(text).exists():
        raise NoDatabase(text)
    return SQLiteStore(text)


def _schema_of(url: str) -> tuple[str, str | None]:
    """A PostgreSQL URL without its ``schema=`` query parameter, and that parameter.

    psycopg refuses query parameters it does not know, so the store's own one
    is taken out before connecting: ``postgresql://app@db/notify?schema=ds``.
    """
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in pairs if key == "schema"]
    if not schemas:
        return url, None
    rest = urlencode([(key, value) for key, value in pairs if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schemas[-1]


def __getattr__(name: str) -> object:
    """``stores.PostgresStore`` without importing psycopg until it is used."""
    if name == "PostgresStore":
        from ._postgres import PostgresStore  # noqa: PLC0415 - psycopg is an optional extra

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
