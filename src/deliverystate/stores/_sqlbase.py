"""The SQL stores' common ground: the hooks each driver fills in, and retrying work.

``SQLBase`` is what every part of the SQL stores builds on: the batch
protocol and the intake (``_sql``), the reads (``_sqlread``) and retention
(``_retention``).  A driver (``_sqlite``, ``_postgres``) supplies its
transactions, reads and bulk I/O through the abstract hooks below.  The
shared pieces of the schema live here too: the counts' migration, and a
policy's precedence key as SQL with the migration that re-keys old stores.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeVar

import attrs

from ..errors import StoreUnavailable
from ..rules._catalog import Status
from ..rules._events import Change, StatusEvent
from ..rules._policy import DELIVERY_WINS, FAILURE_WINS, PREVIOUS_TABLES, Policy
from ._hooks import Hooks
from ._work import FeedEntry

__all__ = [
    "ADD_COUNTS",
    "BUILT_IN",
    "COUNTS_FROM_MESSAGES",
    "LIST_INDEXES",
    "HistoryRow",
    "MessageRow",
    "Migration",
    "Row",
    "SQLBase",
    "Writes",
    "count_moves",
    "precedence_sql",
    "rekey_previous_tables",
]

Row = tuple[Any, ...]
T = TypeVar("T")
#: One step of a schema migration: SQL text, or a function given the cursor.
Migration = str | Callable[[Any], None]
#: A message row as written, in the order of ``_columns.WRITTEN``: id, status, timestamp,
#: precedence, channel, client id, local, deadline, due (``_work.StateRow``), the times
#: of its first report, first delivery and first read (``Milestones``), reports.
MessageRow = tuple[
    str,
    int,
    int,
    int,
    str | None,
    str | None,
    int,
    int | None,
    int | None,
    int,
    int | None,
    int | None,
    bytes,
]
#: A history row as written: arrival, id, status, timestamp, channel, client id,
#: outcome, local.
HistoryRow = tuple[int, str, int, int, str | None, str | None, str, int]


#: The indexes schema version 5 adds, the same on both SQL stores.  ``ds_messages_due``
#: holds only the messages a sweep has something to do for (see ``_work.StateRow``), so
#: the overdue query reads a few index pages however many messages the store holds; the
#: others serve the message list (``Store.messages``): newest first by the first report's
#: time, and by client message id.  None of these values changes once set (but for an
#: earlier report arriving late, or a deadline registered), so a status update leaves
#: them alone: PostgreSQL compares values and keeps such an update HOT, and SQLite's
#: upsert does not assign the columns at all (``_sqlite._write``).
LIST_INDEXES: tuple[str, ...] = (
    "CREATE INDEX ds_messages_due ON ds_messages (due_ms) WHERE due_ms IS NOT NULL",
    "CREATE INDEX ds_messages_first ON ds_messages (first_ms, message_id)",
    "CREATE INDEX ds_messages_client ON ds_messages (client_message_id) "
    "WHERE client_message_id IS NOT NULL",
)


@attrs.frozen
class Writes:
    """What a batch writes: message rows, history and feed rows to append.

    ``unstated`` lists the batch's messages that have no state after it
    (never expected: a store that creates rows before locking them removes
    those rows again).
    """

    rows: list[MessageRow]
    history: list[HistoryRow]
    changes: list[FeedEntry]
    unstated: list[str]
    #: (client id, first report's time, id) of existing messages whose client id was
    #: learned or whose first report moved earlier: indexed columns, which a store that
    #: rewrites index entries for every column it assigns (SQLite) writes apart.
    learned: list[tuple[str | None, int, str]] = attrs.field(factory=list)
    #: (status, local, how many more) for ``ds_counts``, sorted, none zero (``count_moves``).
    counts: list[tuple[int, int, int]] = attrs.field(factory=list)


# Schema version 7 keeps how many messages are in each (status, local) in ``ds_counts``,
# moved by every write that changes either, so that ``count_by_status`` (the status
# page, every /metrics scrape) reads a few rows instead of every message: at ten
# million messages that scan took seconds.  A batch adds its moves in key order after
# it locked its messages: every batch takes message rows, then counter rows, each in one
# order, and nothing after them it could wait for (PostgreSQL's feed takes no lock since
# schema version 8: ``_pgfeed``), so no two batches can wait for each other in a circle.
# (PostgreSQL spreads each count over slots: ``_pgschema.COUNT_SLOTS``.)
#: Moves the count of each (status, local) by n; the same on both SQL stores.
ADD_COUNTS = (
    "INSERT INTO ds_counts (status, local, n) VALUES (?, ?, ?) "
    "ON CONFLICT (status, local) DO UPDATE SET n = ds_counts.n + excluded.n"
)
#: Fills ``ds_counts`` from the messages (migration to version 7; PostgreSQL's rows
#: land in slot 0, its column's default: see ``_pgschema``).
COUNTS_FROM_MESSAGES = (
    "INSERT INTO ds_counts (status, local, n) "
    "SELECT status, local, COUNT(*) FROM ds_messages GROUP BY status, local"
)


def count_moves(
    before: Iterable[tuple[int, int]], after: Iterable[tuple[int, int]]
) -> list[tuple[int, int, int]]:
    """The moves of ``ds_counts`` when rows keyed ``before`` become rows keyed ``after``.

    Keys are (status, local); a key in both cancels out.  Sorted by key, so
    that every writer takes the counter rows in one order.
    """
    moves: dict[tuple[int, int], int] = {}
    for key in before:
        moves[key] = moves.get(key, 0) - 1
    for key in after:
        moves[key] = moves.get(key, 0) + 1
    return [(status, local, n) for (status, local), n in sorted(moves.items()) if n]


#: How many times work that failed for a passing reason (a deadlock, a dropped
#: connection: see ``SQLBase._retryable``) is tried in all.
_ATTEMPTS = 5


class SQLBase(abc.ABC):
    """The hooks a driver supplies, and what every SQL store part needs of them."""

    target: str
    _param = "?"  # the driver's placeholder
    _hooks: Hooks  # what a commit's changes are handed to (``_sql``)

    # --- hooks -----------------------------------------------------------------------------

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A write transaction holding the store's lock; yields a cursor."""

    @abc.abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a read-only query and return all rows."""

    @abc.abstractmethod
    def _lock_and_load(
        self, cursor: Any, ids: list[str], events: Sequence[StatusEvent]
    ) -> dict[str, Row]:
        """Lock the batch's messages (``ids``, those ``events`` are about); the
        ``LOCKED_COLUMNS`` of those that have a state."""

    @abc.abstractmethod
    def _reserve(self, cursor: Any, count: int) -> list[int]:
        """``count`` new history arrival numbers, increasing, never handed out before."""

    @abc.abstractmethod
    def _write(self, cursor: Any, writes: Writes) -> Sequence[int]:
        """Write a batch's changed message rows, and append its history and feed rows.

        Returns the seqs of the batch's changes, in the order of ``writes.changes``
        (increasing; consecutive on SQLite, not always on PostgreSQL).
        """

    @abc.abstractmethod
    def _missing(self, cursor: Any) -> str | None:
        """What is missing for this store to hold a deliverystate database, or None.

        Only reads: a read-only open asks it before anything that could write.
        """

    def _meta(self, cursor: Any, key: str) -> str | None:
        cursor.execute(self._sql("SELECT value FROM ds_meta WHERE key = ?"), (key,))
        row = cursor.fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, cursor: Any, key: str, value: str) -> None:
        cursor.execute(
            self._sql(
                "INSERT INTO ds_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            (key, value),
        )

    @abc.abstractmethod
    def _store_wide(self, error: BaseException) -> bool:
        """Whether the driver's ``error`` says the store is failing, not that it refuses a row.

        The driver's ``_transaction`` raises the store-wide ones as
        ``StoreUnavailable`` (503, the body kept where it was) and lets the others
        through: only a body the store refuses on its own may reach the dead letter.
        Full disk, read-only file, I/O error, lost connection: store-wide; a value
        the row cannot hold (a constraint, a value too big or of the wrong type): not.
        """

    def _add_counts(self, cursor: Any, moves: Sequence[tuple[int, int, int]]) -> None:
        """Move ``ds_counts`` by ``moves``, a write's last step (see ``ADD_COUNTS``)."""
        cursor.executemany(self._sql(ADD_COUNTS), moves)

    def _room(self, cursor: Any) -> None:  # noqa: B027 - a hook most stores leave empty
        """Raise the driver's error unless a write would find room (``ping``; SQLite's pages)."""

    def _after_commit(self) -> None:  # noqa: B027 - a hook most stores leave empty
        """Called after each batch commits (PostgreSQL analyzes after bulk loads)."""

    @abc.abstractmethod
    def _received_at(self, value: Any) -> datetime:
        """A dead letter's arrival time as the driver returns it, as an aware datetime."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def _retryable(self, error: BaseException | None) -> bool:
        """Whether work that failed with ``error`` (the driver's) may succeed if run again."""
        return False

    def _retry(self, work: Callable[[], T]) -> T:
        """Run ``work``; run it again while it fails for a passing reason.

        Safe for every write of this store: applying a report twice is a
        DUPLICATE, keeping a body twice settles it twice to the same state.
        """
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return work()
            except StoreUnavailable as error:
                if attempt == _ATTEMPTS or not self._retryable(error.__cause__):
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _published(self, done: tuple[T, list[Change]]) -> T:
        """A committed batch's result, once its changes went to the hooks (followers wake)."""
        result, changes = done
        self._after_commit()
        self._hooks.call(changes)
        return result

    def __enter__(self) -> SQLBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sql(self, text: str) -> str:
        return text.replace("?", self._param)

    @staticmethod
    def _list(numbers: Iterable[int]) -> str:
        """Integers as the text of an SQL list (only ever integers the store itself made)."""
        return ", ".join(str(int(number)) for number in numbers)

    @abc.abstractmethod
    def _select_for_update(self, cursor: Any, ids: Sequence[str]) -> list[Row]:
        """Lock messages and return their ``LOCKED_COLUMNS`` (``_rows``), as rows."""


#: The built-in policies by name (a store records which one wrote its keys).
BUILT_IN = {policy.name: policy for policy in (DELIVERY_WINS, FAILURE_WINS)}


def precedence_sql(policy: Policy) -> str:
    """An SQL expression computing a message row's precedence key under ``policy``.

    Generated from the policy's own integers, never from user text.
    """

    def cases(offset: Mapping[Status, int], scale: Mapping[Status, int]) -> str:
        whens = " ".join(
            f"WHEN {int(s)} THEN {offset[s]} + ({scale[s]}) * timestamp_ms" for s in offset
        )
        return f"CASE status {whens} END"

    provider = cases(policy.offset, policy.scale)
    if not policy.local_offset:
        return provider
    local = cases(policy.local_offset, policy.local_scale)
    codes = ", ".join(str(int(s)) for s in policy.local_offset)
    return f"CASE WHEN local = 1 AND status IN ({codes}) THEN {local} ELSE {provider} END"


def rekey_previous_tables(cursor: Any) -> None:
    """Migration to version 5: a store written under a built-in policy as it was is re-keyed.

    The built-in tables gained ranks for local reports, which moved the
    others; a store that recorded one of the former tables gets the current
    one's keys (every report before version 5 is Clickatell's).  A store under
    a policy of its own keeps it: a table without local rows did not change.
    """
    cursor.execute("SELECT value FROM ds_meta WHERE key = 'policy'")
    row = cursor.fetchone()
    if row is None:
        return
    for name, previous in PREVIOUS_TABLES.items():
        if row[0] == previous.fingerprint:
            current = BUILT_IN[name]
            cursor.execute(f"UPDATE ds_messages SET precedence = {precedence_sql(current)}")
            cursor.execute(
                f"UPDATE ds_meta SET value = '{current.fingerprint}' WHERE key = 'policy'"
            )
