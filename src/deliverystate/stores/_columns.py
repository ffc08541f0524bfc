"""The columns of ``ds_messages``, written down once: both SQL stores build from here.

Why
---
The message table's thirteen columns used to be spelled out wherever a store
touched them: two CREATE TABLEs, SQLite's upsert, PostgreSQL's scratch table,
its COPY and its two UPDATEs, the SELECT lists of a state and of a locked row,
and the bare positions (``row[7]``) code read rows by, in three different
orders.  A column added in one place and not another would fail only at run
time, and a position read in another layout's order would fail silently.

So each column is declared here once, with its type on each store and its
constraints (:data:`MESSAGES`, in the table's order); each order in which a
store moves rows is a tuple of those names (:data:`WRITTEN`, :data:`STATE`,
:data:`LOCKED`, :data:`LISTED`); and the positions code reads in those rows are
constants named after their layout and column (``LOCKED_REPORTS``,
``WRITTEN_LOCAL``), so that comparing a locked row with a written one says so.
The positions are numbers beside their layouts (``Final``, so that mypy knows
which element of a typed row each reads), and a test checks each against its
layout.  The stores build their SQL text from these at import time: a batch
reads module constants only, as it read literal ones before.

There are several orders because each has its reason: the table's is its
history (columns were added as schema versions came, and a fresh table is
made in the order a migrated one has); a batch writes what it computed
(:data:`COMPUTED`, ``_work.StateRow``) and then what ``_sqlrows`` adds; a
locked row starts with a state, so that ``_rows.state_from_row`` reads a
locked row and a plain state read alike.

A new schema version changes :data:`MESSAGES` (and the layouts that carry the
new column) and adds a migration to each store's ``MIGRATIONS``;
``tests/test_columns.py`` fails when a migrated table and the spec differ.
The migrations themselves keep their literal SQL: they are what past versions
were, which the spec is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

import attrs

__all__ = [
    "COLUMN",
    "COMPUTED",
    "KEY",
    "LAYOUTS",
    "LISTED",
    "LISTED_FIRST_MS",
    "LOCKED",
    "LOCKED_DELIVERED_MS",
    "LOCKED_FIRST_MS",
    "LOCKED_LOCAL",
    "LOCKED_MESSAGE_ID",
    "LOCKED_READ_MS",
    "LOCKED_REPORTS",
    "LOCKED_STATUS",
    "LOCKED_TIMESTAMP_MS",
    "MESSAGES",
    "STATE",
    "STATE_CHANNEL",
    "STATE_CLIENT_MESSAGE_ID",
    "STATE_DEADLINE_MS",
    "STATE_LOCAL",
    "STATE_MESSAGE_ID",
    "STATE_STATUS",
    "STATE_TIMESTAMP_MS",
    "WRITTEN",
    "WRITTEN_CLIENT_MESSAGE_ID",
    "WRITTEN_LOCAL",
    "WRITTEN_MESSAGE_ID",
    "WRITTEN_STATUS",
    "WRITTEN_TIMESTAMP_MS",
    "Column",
    "column_list",
    "create_messages",
    "placeholders",
]


@attrs.frozen
class Column:
    """One column of ``ds_messages``: its name, its type on each store, its constraints.

    The constraints are the same on both stores; ``default`` is SQL text.
    """

    name: str
    sqlite: str
    postgres: str
    key: bool = False
    not_null: bool = False
    default: str | None = None

    def declaration(self, engine: Literal["sqlite", "postgres"]) -> str:
        """The column as ``engine``'s CREATE TABLE declares it."""
        parts = [self.name, self.sqlite if engine == "sqlite" else self.postgres]
        if self.key:
            parts.append("PRIMARY KEY")
        if self.not_null:
            parts.append("NOT NULL")
        if self.default is not None:
            parts.append(f"DEFAULT {self.default}")
        return " ".join(parts)


#: ``ds_messages``, in the order of the table's columns.  ``reports`` names the
#: message's history rows (see ``_rows``); the ``_ms`` times are milliseconds.
MESSAGES: tuple[Column, ...] = (
    Column("message_id", "TEXT", "TEXT", key=True),
    Column("status", "INTEGER", "SMALLINT", not_null=True),
    Column("timestamp_ms", "INTEGER", "BIGINT", not_null=True),
    Column("precedence", "INTEGER", "BIGINT"),
    Column("channel", "TEXT", "TEXT"),
    Column("client_message_id", "TEXT", "TEXT"),
    Column("reports", "BLOB", "BYTEA"),
    Column("local", "INTEGER", "SMALLINT", not_null=True, default="0"),
    Column("deadline_ms", "INTEGER", "BIGINT"),
    Column("due_ms", "INTEGER", "BIGINT"),
    Column("first_ms", "INTEGER", "BIGINT"),
    Column("delivered_ms", "INTEGER", "BIGINT"),
    Column("read_ms", "INTEGER", "BIGINT"),
)
#: Each column by its name.
COLUMN: dict[str, Column] = {column.name: column for column in MESSAGES}
#: The primary key's column.
(KEY,) = (column.name for column in MESSAGES if column.key)

#: What a batch computes of a message's row, in the order ``_work.StateRow`` has it.
COMPUTED: tuple[str, ...] = (
    "message_id",
    "status",
    "timestamp_ms",
    "precedence",
    "channel",
    "client_message_id",
    "local",
    "deadline_ms",
    "due_ms",
)
#: A message row as a batch writes it (``_sqlbase.MessageRow``): what it computed, then
#: the milestones and the reports blob ``_sqlrows.message_rows`` adds.  Every column.
WRITTEN: tuple[str, ...] = (*COMPUTED, "first_ms", "delivered_ms", "read_ms", "reports")
#: What ``_rows.state_from_row`` reads: a message's state.
STATE: tuple[str, ...] = (
    "message_id",
    "status",
    "timestamp_ms",
    "channel",
    "client_message_id",
    "local",
    "deadline_ms",
)
#: What a batch reads of the rows it locks: the state, the reports blob, and the
#: times of the first report, the first delivery and the first read (``Milestones``).
LOCKED: tuple[str, ...] = (*STATE, "reports", "first_ms", "delivered_ms", "read_ms")
#: What the message list reads: the state and the first report's time.
LISTED: tuple[str, ...] = (*STATE, "first_ms")

# The positions code reads, by layout and column (see the module docstring; checked
# against the layouts by ``tests/test_columns.py``).  Add one where code reads another.
WRITTEN_MESSAGE_ID: Final = 0
WRITTEN_STATUS: Final = 1
WRITTEN_TIMESTAMP_MS: Final = 2
WRITTEN_CLIENT_MESSAGE_ID: Final = 5
WRITTEN_LOCAL: Final = 6
STATE_MESSAGE_ID: Final = 0
STATE_STATUS: Final = 1
STATE_TIMESTAMP_MS: Final = 2
STATE_CHANNEL: Final = 3
STATE_CLIENT_MESSAGE_ID: Final = 4
STATE_LOCAL: Final = 5
STATE_DEADLINE_MS: Final = 6
LOCKED_MESSAGE_ID: Final = 0
LOCKED_STATUS: Final = 1
LOCKED_TIMESTAMP_MS: Final = 2
LOCKED_LOCAL: Final = 5
LOCKED_REPORTS: Final = 7
LOCKED_FIRST_MS: Final = 8
LOCKED_DELIVERED_MS: Final = 9
LOCKED_READ_MS: Final = 10
LISTED_FIRST_MS: Final = 7
#: Each layout by the prefix of its positions' names.
LAYOUTS: dict[str, tuple[str, ...]] = {
    "WRITTEN": WRITTEN,
    "STATE": STATE,
    "LOCKED": LOCKED,
    "LISTED": LISTED,
}


def column_list(names: Sequence[str]) -> str:
    """Column names as the text of an SQL list (a SELECT's, an INSERT's, a COPY's)."""
    unknown = [name for name in names if name not in COLUMN]
    if unknown:
        raise ValueError(f"not columns of ds_messages: {unknown}")
    return ", ".join(names)


def placeholders(count: int, param: str = "?") -> str:
    """``count`` parameter placeholders as the text of an SQL list."""
    return ", ".join([param] * count)


def create_messages(engine: Literal["sqlite", "postgres"], options: str) -> str:
    """``ds_messages``' CREATE TABLE on ``engine``, with ``options`` after its columns."""
    columns = ",\n        ".join(column.declaration(engine) for column in MESSAGES)
    return f"CREATE TABLE ds_messages (\n        {columns}\n    ) {options}"
