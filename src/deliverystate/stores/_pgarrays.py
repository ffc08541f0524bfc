"""A small PostgreSQL batch (a receiver's group) in two round trips: arrays in pipelines.

Theory of operation
-------------------
A big batch (``apply_many``, a replay) sends its ids and rows through
per-connection scratch tables with ``COPY``: for thousands of rows that is
cheaper than binding arrays.  But each ``COPY`` and each statement after it is
a round trip, and a receiver's group of ten callbacks paid about ten of them
(and 20 waits on the socket) for a few rows: most of its CPU on the client.

Up to :data:`ARRAYS_UP_TO` messages a batch goes as arrays, in psycopg's
pipeline mode, which sends several statements before reading any answer:

1. creating the rows of new messages, locking the batch's rows (sorted, as
   the big path does) and drawing arrival numbers for every report the batch
   holds, in one round trip (numbers a batch draws and does not use are gaps,
   as a rollback leaves);
2. the state updates, the removal of rows left without a state, the history,
   the counts' moves and the feed's changes, in one more.

The statements are the big path's, with ``unnest`` of arrays in place of the
scratch tables, so both write the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._columns import COLUMN, KEY, WRITTEN
from ._pgfeed import append_changes
from ._rows import LOCKED_COLUMNS
from ._sqlbase import Row, Writes

if TYPE_CHECKING:
    import psycopg

__all__ = ["ARRAYS_UP_TO", "lock_and_load", "write_arrays"]

#: The most messages a batch may mention to take this path (a receiver's groups are
#: 1-16 callbacks; ``apply_many`` batches are thousands).
ARRAYS_UP_TO = 64
#: The most changes that travel in ``APPEND_CHANGES`` here (``_pgfeed.COPY_FROM``'s rule).
_CHANGES_UP_TO = 256

# Rows travel as one JSON text each statement: psycopg dumps a Python list into an array
# element by element in Python (about 20 us an array, measured), json.dumps in C.
_CREATE_ROWS = (
    "INSERT INTO ds_messages (message_id, status, timestamp_ms, first_ms, client_message_id) "
    "SELECT x->>0, 0, 0, (x->>1)::bigint, x->>2 FROM jsonb_array_elements(%s::jsonb) AS x "
    "ORDER BY 1 ON CONFLICT DO NOTHING"
)
_LOCK_ROWS = (
    f"SELECT {LOCKED_COLUMNS} FROM ds_messages WHERE message_id IN "
    "(SELECT jsonb_array_elements_text(%s::jsonb)) ORDER BY message_id FOR UPDATE"
)
#: How ``_UPDATE`` reads a value of each PostgreSQL type from its JSON text (``_json``).
_FROM_JSON = {
    "TEXT": "{}",
    "SMALLINT": "({})::smallint",
    "BIGINT": "({})::bigint",
    "BYTEA": "decode({}, 'hex')",
}
# Every column a batch writes, by its place in the written row (``_columns.WRITTEN``).
_UPDATE = (
    "UPDATE ds_messages AS m SET "
    + ", ".join(
        f"{name} = {_FROM_JSON[COLUMN[name].postgres].format(f'v->>{at}')}"
        for at, name in enumerate(WRITTEN)
        if name != KEY
    )
    + " FROM jsonb_array_elements(%s::jsonb) AS v "
    + f"WHERE m.{KEY} = v->>{WRITTEN.index(KEY)}"
)
_DROP_EMPTY = (
    "DELETE FROM ds_messages WHERE message_id IN "
    "(SELECT jsonb_array_elements_text(%s::jsonb)) AND status = 0"
)
_HISTORY = (
    "INSERT INTO ds_history (arrival, message_id, status, timestamp_ms, channel, "
    "client_message_id, outcome, local) SELECT (x->>0)::bigint, x->>1, (x->>2)::smallint, "
    "(x->>3)::bigint, x->>4, x->>5, x->>6, (x->>7)::smallint "
    "FROM jsonb_array_elements(%s::jsonb) AS x"
)


def _json(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as the JSON text the statements read (a blob as hex, which ``decode`` reads)."""
    return json.dumps(
        [[v.hex() if isinstance(v, bytes | bytearray) else v for v in row] for row in rows]
    )


def lock_and_load(
    cursor: psycopg.Cursor[Any],
    ids: list[str],
    first: Mapping[str, int],
    client: Mapping[str, str],
    arrivals: tuple[str, int],
) -> tuple[int, list[Row], list[int]]:
    """Create, lock and load the batch's rows and draw ``arrivals`` (statement, count): one trip.

    Returns how many rows were created, the locked rows, the arrival numbers.
    """
    connection = cursor.connection
    created, locked, drawn = connection.cursor(), connection.cursor(), connection.cursor()
    with connection.pipeline():
        created.execute(
            _CREATE_ROWS, (json.dumps([[m, first.get(m), client.get(m)] for m in ids]),)
        )
        locked.execute(_LOCK_ROWS, (json.dumps(ids),), binary=True)
        drawn.execute(arrivals[0], (arrivals[1],), binary=True)
    numbers = sorted(int(row[0]) for row in drawn.fetchall())
    return max(created.rowcount, 0), locked.fetchall(), numbers


def write_arrays(
    cursor: psycopg.Cursor[Any],
    writes: Writes,
    channel: str,
    add_counts: Callable[[psycopg.Cursor[Any], Sequence[tuple[int, int, int]]], None],
) -> Sequence[int] | None:
    """Everything a small batch writes, in one round trip; the seqs of its changes.

    None when the batch has too many changes for ``APPEND_CHANGES`` (the caller
    writes it the big way).
    """
    if len(writes.changes) > _CHANGES_UP_TO:
        return None
    connection = cursor.connection
    with connection.pipeline():
        if writes.rows:
            connection.cursor().execute(_UPDATE, (_json(writes.rows),))
        if writes.unstated:  # created for the batch, given no state
            connection.cursor().execute(_DROP_EMPTY, (json.dumps(writes.unstated),))
        if writes.history:
            connection.cursor().execute(_HISTORY, (json.dumps(writes.history),))
        if writes.counts:
            add_counts(connection.cursor(), writes.counts)
        if writes.changes:
            append_changes(cursor, writes.changes, channel)
    return sorted(int(row[0]) for row in cursor.fetchall()) if writes.changes else ()
