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
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..rules._records import (
    SETTLED,
    Archived,
    DeadLetter,
    HistoryEntry,
    Intake,
    Keep,
    Listed,
    MessageQuery,
    Milestones,
    Summary,
    Undeliverable,
)
from ._memory import MemoryStore
from ._names import redact, store_name
from ._protocol import Store
from ._sqlite import DEFAULT_DB, SQLiteStore

__all__ = [
    "DEFAULT_DB",
    "SETTLED",
    "Archived",
    "DeadLetter",
    "HistoryEntry",
    "Intake",
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
    "redact",
    "store_name",
]

_POSTGRES = ("postgresql://", "postgres://")


def open_store(
    location: str | os.PathLike[str] = DEFAULT_DB,
    *,
    must_exist: bool = False,
    read_only: bool = False,
) -> Store:
    """Open the store named by ``location``: ``:memory:``, a PostgreSQL URL or an SQLite path.

    With ``must_exist`` nothing is created: a path without a file, a schema
    that does not exist, or one without deliverystate's tables, raises
    :class:`NoDatabase` (a command that works on what is there has nothing to
    do).  ``read_only`` (a read-only command's open) implies it and writes
    nothing at all: an older schema raises ``SchemaMismatch`` instead of
    being migrated.  Errors name the store without its password
    (:func:`redact`).  Opening may also raise ``StoreUnavailable``, or
    ``ImportError`` for a PostgreSQL URL without the ``postgres`` extra.
    """
    text = os.fspath(location)
    exists = must_exist or read_only
    # ``postgresql://...?schema=name`` picks the schema (default ``deliverystate``)
    if text == ":memory:":
        return MemoryStore()
    if text.startswith(_POSTGRES):
        from ._postgres import PostgresStore  # noqa: PLC0415 - psycopg is an optional extra

        dsn, schema = _schema_of(text)
        if schema is None:
            return PostgresStore(dsn, create=not exists, migrate=not read_only)
        return PostgresStore(dsn, schema=schema, create=not exists, migrate=not read_only)
    return SQLiteStore(text, create=not exists, migrate=not read_only)


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
