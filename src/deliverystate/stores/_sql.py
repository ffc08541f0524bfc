"""What the SQL stores share: schema versioning, errors, and the batch protocol.

Theory of operation
-------------------
A batch runs in one database transaction:

1. lock the rows of every message the batch mentions (SQLite: ``BEGIN
   IMMEDIATE`` takes the database's write lock; PostgreSQL: ``SELECT ... FOR
   UPDATE`` in sorted order, after creating the rows of new messages, so that
   two workers queue on a message instead of racing or deadlocking);
2. load those messages' states and the fingerprints of their reports already
   in history;
3. run the reports through :class:`~deliverystate.batch.Batch`, the same code
   the memory store runs, so the rules live in one place;
4. write the changed states and the new history rows in bulk, and commit.

So the comparison of precedence happens while the rows are locked: no other
worker can read the old state in between, and whichever worker wins a race the
result is the same, because it is a function of the set of reports.  A batch
costs a constant number of round trips, not one per event.  Any failure rolls
the whole batch back: no partial state is left behind.

Every state row also keeps its ``precedence`` key (see ``policy``), so SQL
users can compare reports in the database; the policy that wrote the keys is
recorded, and a store refuses to mix policies until :meth:`adopt_policy`
recomputes them.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeVar

from .._catalog import Status
from .._events import MessageState, StatusEvent, id_problem
from .._policy import Policy
from .._reconcile import Decision, Outcome
from ..errors import PolicyMismatch, SchemaMismatch, StoreUnavailable
from ._protocol import DeadLetter, HistoryEntry, Milestones, Summary
from ._rows import (
    digest,
    fingerprints,
    pack_reports,
    payload_bytes,
    payload_str,
    report_arrivals,
    state_from_row,
    storable_text,
)
from ._work import Batch, record_of

__all__ = ["SCHEMA_VERSION", "Migration", "SQLStore"]

#: The schema this version of deliverystate writes.  Bump it together with an
#: entry in each store's ``MIGRATIONS`` that upgrades the previous version.
#: Version 2 keeps inbox and dead-letter bodies as bytes, so that any body
#: (a NUL, a lone surrogate) can be kept exactly.  Version 3 names each
#: message's history rows in its own row (see ``_rows``), so that history is
#: appended in arrival order with no index but its key.
SCHEMA_VERSION = 3

Row = tuple[Any, ...]
T = TypeVar("T")
#: One step of a schema migration: SQL text, or a function given the cursor.
Migration = str | Callable[[Any], None]
#: A message row as written: id, status, timestamp, precedence, channel, client id, reports.
MessageRow = tuple[str, int, int, int, str | None, str | None, bytes]
#: A history row as written: arrival, id, status, timestamp, channel, client id, outcome.
HistoryRow = tuple[int, str, int, int, str | None, str | None, str]

#: How many times work that failed for a passing reason (a deadlock, a dropped
#: connection: see ``SQLStore._retryable``) is tried in all.
_ATTEMPTS = 5


class SQLStore(abc.ABC):
    """Shared behaviour of the SQL stores; subclasses supply connection, locking and bulk I/O."""

    target: str
    _param = "?"  # the driver's placeholder

    def __init__(self) -> None:
        self._policy_checked: str | None = None

    # --- hooks -----------------------------------------------------------------------------

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A write transaction holding the store's lock; yields a cursor."""

    @abc.abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a read-only query and return all rows."""

    @abc.abstractmethod
    def _lock_and_load(self, cursor: Any, ids: list[str]) -> dict[str, tuple[MessageState, Any]]:
        """Lock the batch's messages; the state and reports blob of those that have one."""

    @abc.abstractmethod
    def _reserve_arrivals(self, cursor: Any, count: int) -> list[int]:
        """``count`` new history arrival numbers, increasing, never handed out before."""

    @abc.abstractmethod
    def _write(
        self,
        cursor: Any,
        rows: list[MessageRow],
        history: list[HistoryRow],
        unstated: list[str],
    ) -> None:
        """Write changed message rows and append history rows.

        ``unstated`` lists the batch's messages that have no state after it
        (never expected: a store that creates rows before locking them removes
        those rows again).
        """

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

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sql(self, text: str) -> str:
        return text.replace("?", self._param)

    @staticmethod
    def _list(numbers: Iterable[int]) -> str:
        """Integers as the text of an SQL list (only ever integers the store itself made)."""
        return ", ".join(str(int(number)) for number in numbers)

    # --- schema ----------------------------------------------------------------------------

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

    def _setup_schema(
        self, cursor: Any, tables: Sequence[str], migrations: Mapping[int, Sequence[Migration]]
    ) -> None:
        """Create a fresh schema, migrate an older one, or refuse a newer one."""
        cursor.execute("CREATE TABLE IF NOT EXISTS ds_meta (key TEXT PRIMARY KEY, value TEXT)")
        found = self._meta(cursor, "schema_version")
        if found is None:
            for statement in tables:
                cursor.execute(statement)
            self._set_meta(cursor, "schema_version", str(SCHEMA_VERSION))
            return
        version = int(found)
        if version > SCHEMA_VERSION:
            raise SchemaMismatch(self.target, version, SCHEMA_VERSION)
        while version < SCHEMA_VERSION:
            for step in migrations[version]:
                if isinstance(step, str):
                    cursor.execute(step)
                else:
                    step(cursor)
            version += 1
            self._set_meta(cursor, "schema_version", str(version))

    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        return int(
            self._read(self._sql("SELECT value FROM ds_meta WHERE key = ?"), ("schema_version",))[
                0
            ][0]
        )

    # --- policy ----------------------------------------------------------------------------

    def _check_policy(self, cursor: Any, policy: Policy) -> None:
        if self._policy_checked == policy.fingerprint:
            return
        stored = self._meta(cursor, "policy")
        if stored is None:
            self._set_meta(cursor, "policy", policy.fingerprint)
            self._set_meta(cursor, "policy_name", policy.name)
        elif stored != policy.fingerprint:
            name = self._meta(cursor, "policy_name") or stored
            raise PolicyMismatch(f"database {self.target}", name, policy.name)
        self._policy_checked = policy.fingerprint

    def adopt_policy(self, policy: Policy) -> None:
        """Recompute every stored precedence key under ``policy`` and record it."""
        # the CASE is generated from the policy's own integers, never from user text
        cases = " ".join(
            f"WHEN {int(s)} THEN {policy.offset[s]} + ({policy.scale[s]}) * timestamp_ms"
            for s in Status
        )
        with self._transaction() as cursor:
            cursor.execute(f"UPDATE ds_messages SET precedence = CASE status {cases} END")
            self._set_meta(cursor, "policy", policy.fingerprint)
            self._set_meta(cursor, "policy_name", policy.name)
        self._policy_checked = policy.fingerprint

    # --- the batch protocol ----------------------------------------------------------------

    def _run(
        self, events: Sequence[StatusEvent], policy: Policy, work: Callable[[Batch, Any], T]
    ) -> T:
        """Lock the messages ``events`` mention, run ``work(batch, cursor)``, write, commit.

        ``work`` also runs when there are no events (a settle of empty bodies
        still forgets them), inside the same transaction.
        """
        ids = sorted({event.message_id for event in events})

        def attempt() -> T:
            with self._transaction() as cursor:
                self._check_policy(cursor, policy)
                loaded = self._lock_and_load(cursor, ids) if ids else {}
                records = {m: record_of(state, policy) for m, (state, _) in loaded.items()}
                clients = {
                    m: s.client_message_id for m, (s, _) in loaded.items() if s.client_message_id
                }
                seen = {m: fingerprints(blob) for m, (_, blob) in loaded.items()}
                batch = Batch(records, clients, seen, policy)
                result = work(batch, cursor)
                if ids:
                    self._flush(cursor, batch, {m: blob for m, (_, blob) in loaded.items()}, ids)
            return result

        result = self._retry(attempt)
        self._after_commit()
        return result

    def _flush(self, cursor: Any, batch: Batch, blobs: dict[str, Any], ids: list[str]) -> None:
        """Give the batch's new reports arrival numbers, then write rows and history."""
        recorded = batch.recorded
        arrivals = self._reserve_arrivals(cursor, len(recorded)) if recorded else []
        history: list[HistoryRow] = []
        added: dict[str, list[tuple[int, int]]] = {}
        for (event, outcome), arrival in zip(recorded, arrivals, strict=True):
            message_id, code, timestamp_ms = event.message_id, int(event.status), event.timestamp_ms
            history.append(
                (
                    arrival,
                    message_id,
                    code,
                    timestamp_ms,
                    event.channel,
                    event.client_message_id,
                    outcome.value,
                )
            )
            added.setdefault(message_id, []).append((timestamp_ms << 8 | code, arrival))
        # in key order: each row's B-tree path is mostly the previous row's, already in cache
        touched = sorted(batch.changed.keys() | added.keys())
        rows: list[MessageRow] = [
            (*row, bytes(blobs.get(row[0]) or b"") + pack_reports(added.get(row[0], ())))
            for row in batch.rows_of(touched)
        ]
        self._write(cursor, rows, history, [m for m in ids if m not in batch.records])

    def apply(self, event: StatusEvent, policy: Policy) -> Decision:
        """Reconcile one report in one transaction."""
        return self._run((event,), policy, lambda batch, _: batch.apply(event))

    def apply_many(self, events: Iterable[StatusEvent], policy: Policy) -> Summary:
        """Reconcile a batch in one transaction with a constant number of round trips."""
        events = list(events)

        def work(batch: Batch, _: Any) -> Summary:
            batch.absorb(events)
            return batch.summary()

        return self._run(events, policy, work)

    def advance(self, event: StatusEvent, policy: Policy) -> MessageState:
        """Strictly step a message along the lifecycle; ``IllegalTransition`` rolls back."""
        return self._run((event,), policy, lambda batch, _: batch.advance(event))

    def accept(self, payloads: Sequence[str]) -> list[int]:
        """Durably keep received bodies (one transaction, all or none); their inbox ids."""

        def attempt() -> list[int]:
            ids = []
            with self._transaction() as cursor:
                for payload in payloads:
                    cursor.execute(
                        self._sql(
                            "INSERT INTO ds_inbox (payload, received_at) "
                            "VALUES (?, CURRENT_TIMESTAMP) RETURNING id"
                        ),
                        (payload_bytes(payload),),
                    )
                    ids.append(int(cursor.fetchone()[0]))
            return ids

        return self._retry(attempt)

    def settle(
        self, items: Sequence[tuple[int, Sequence[StatusEvent]]], policy: Policy
    ) -> list[Summary]:
        """Apply kept bodies' events and delete the bodies in the same transaction."""
        groups = [list(events) for _, events in items]

        def work(batch: Batch, cursor: Any) -> list[Summary]:
            summaries = batch.absorb_groups(groups)
            cursor.executemany(
                self._sql("DELETE FROM ds_inbox WHERE id = ?"), [(i,) for i, _ in items]
            )
            return summaries

        return self._run([event for group in groups for event in group], policy, work)

    def pending(self) -> Sequence[tuple[int, str]]:
        """Bodies accepted but not settled, oldest first."""
        return [
            (int(r[0]), payload_str(r[1]))
            for r in self._read("SELECT id, payload FROM ds_inbox ORDER BY id")
        ]

    def quarantine(self, inbox_id: int, error: str) -> DeadLetter | None:
        """Move a kept body that cannot be applied to the dead letter, in one transaction.

        None when no body has that inbox id (it was settled meanwhile).
        """

        def attempt() -> DeadLetter | None:
            with self._transaction() as cursor:
                cursor.execute(self._sql("SELECT payload FROM ds_inbox WHERE id = ?"), (inbox_id,))
                row = cursor.fetchone()
                if row is None:
                    return None
                letter = self._keep_dead_letter(cursor, payload_str(row[0]), error)
                cursor.execute(self._sql("DELETE FROM ds_inbox WHERE id = ?"), (inbox_id,))
            return letter

        return self._retry(attempt)

    def ping(self) -> None:
        """Take the write lock and read: raises ``StoreUnavailable`` unless the store works."""

        def attempt() -> None:
            with self._transaction() as cursor:
                cursor.execute("SELECT COUNT(*) FROM ds_meta")
                cursor.fetchone()

        self._retry(attempt)

    # --- reads -----------------------------------------------------------------------------

    def get(self, message_id: str) -> MessageState | None:
        """The current state of a message, or None (also for an id no store could hold)."""
        if id_problem(message_id) is not None:
            return None
        rows = self._read(
            self._sql(
                "SELECT message_id, status, timestamp_ms, channel, client_message_id "
                "FROM ds_messages WHERE message_id = ?"
            ),
            (message_id,),
        )
        return state_from_row(rows[0]) if rows else None

    def history(self, message_id: str) -> Sequence[HistoryEntry]:
        """The reports about a message, by event timestamp then arrival."""
        if id_problem(message_id) is not None:
            return []
        found = self._read(
            self._sql("SELECT reports FROM ds_messages WHERE message_id = ?"), (message_id,)
        )
        arrivals = report_arrivals(found[0][0]) if found else []
        if not arrivals:
            return []
        rows = self._read(
            "SELECT message_id, status, timestamp_ms, channel, client_message_id, outcome, "
            f"arrival FROM ds_history WHERE arrival IN ({self._list(arrivals)}) "
            "ORDER BY timestamp_ms, arrival"
        )
        return [
            HistoryEntry(
                StatusEvent.from_ms(row[0], row[1], row[2], row[3], row[4]),
                Outcome(row[5]),
                row[6],
            )
            for row in rows
        ]

    def count_by_status(self) -> Mapping[Status, int]:
        """How many messages are in each status."""
        rows = self._read("SELECT status, COUNT(*) FROM ds_messages GROUP BY status")
        return {Status.from_code(row[0]): int(row[1]) for row in rows}

    def milestones(self) -> Iterable[Milestones]:
        """First report, first delivery and first read of each message, from history."""
        rows = self._read(
            "SELECT message_id, MIN(timestamp_ms), "
            f"MIN(CASE WHEN status IN ({int(Status.DEVICE_ACK)}, {int(Status.READ)}) "
            "THEN timestamp_ms END), "
            f"MIN(CASE WHEN status = {int(Status.READ)} THEN timestamp_ms END) "
            "FROM ds_history WHERE outcome <> 'rejected' GROUP BY message_id"
        )
        return (Milestones(row[0], row[1], row[2], row[3]) for row in rows)

    def iter_states(self) -> Iterator[MessageState]:
        """Every message's state, ordered by message id."""
        rows = self._read(
            "SELECT message_id, status, timestamp_ms, channel, client_message_id "
            "FROM ds_messages ORDER BY message_id"
        )
        return (state_from_row(row) for row in rows)

    def history_size(self) -> int:
        """How many history rows the store holds."""
        return int(self._read("SELECT COUNT(*) FROM ds_history")[0][0])

    # --- dead letter -----------------------------------------------------------------------

    def add_dead_letter(self, payload: str, error: str) -> DeadLetter:
        """Keep a payload that could not be parsed; the same payload is kept once."""

        def attempt() -> DeadLetter:
            with self._transaction() as cursor:
                return self._keep_dead_letter(cursor, payload, error)

        return self._retry(attempt)

    def _keep_dead_letter(self, cursor: Any, payload: str, error: str) -> DeadLetter:
        key = digest(payload)
        cursor.execute(
            self._sql(
                "INSERT INTO ds_dead_letters (payload, digest, error, received_at) "
                "VALUES (?, ?, ?, CURRENT_TIMESTAMP) ON CONFLICT (digest) DO NOTHING"
            ),
            (payload_bytes(payload), key, storable_text(error)),
        )
        cursor.execute(
            self._sql(
                "SELECT id, payload, error, received_at FROM ds_dead_letters WHERE digest = ?"
            ),
            (key,),
        )
        return self._letter(cursor.fetchone())

    def _letter(self, row: Row) -> DeadLetter:
        return DeadLetter(int(row[0]), payload_str(row[1]), row[2], self._received_at(row[3]))

    def dead_letters(self) -> Sequence[DeadLetter]:
        """The dead letters, oldest first."""
        rows = self._read("SELECT id, payload, error, received_at FROM ds_dead_letters ORDER BY id")
        return [self._letter(row) for row in rows]

    def remove_dead_letter(self, letter_id: int) -> None:
        """Forget a dead letter (after it was re-applied)."""
        with self._transaction() as cursor:
            cursor.execute(self._sql("DELETE FROM ds_dead_letters WHERE id = ?"), (letter_id,))
