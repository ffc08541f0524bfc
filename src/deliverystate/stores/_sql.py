"""What the SQL stores share: schema versioning, errors, and the batch protocol.

Theory of operation
-------------------
A batch runs in one database transaction:

1. lock the rows of every message the batch mentions (SQLite: ``BEGIN
   IMMEDIATE`` takes the database's write lock; PostgreSQL: ``SELECT ... FOR
   UPDATE`` in sorted order, after creating the rows of new messages, so that
   two workers queue on a message instead of racing or deadlocking);
2. load those messages' states and the reports their rows name (``_rows``);
3. run the reports through :class:`~deliverystate.stores._work.Batch`, the
   same code the memory store runs, so the rules live in one place;
4. number the new reports, append them to history, write the changed rows
   (with the reports they now name) in bulk, and commit.

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

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from .._events import Change, MessageState, StatusEvent
from .._policy import Policy
from .._reconcile import Decision
from ..errors import NoDatabase, PolicyMismatch, SchemaMismatch
from ._hooks import ChangeHook, Hooks
from ._protocol import DeadLetter, Summary
from ._retention import SQLRetention
from ._rows import (
    digest,
    fingerprints,
    payload_bytes,
    payload_str,
    state_from_row,
    storable_text,
)
from ._sqlbase import (
    Migration,
    Row,
    Writes,
    precedence_sql,
)
from ._sqlfeed import SQLFeed
from ._sqlread import SQLReads
from ._sqlrows import history_rows, message_rows
from ._work import Batch, change_of, record_of

__all__ = ["HEARTBEAT", "SCHEMA_VERSION", "SQLStore"]

#: The schema this version of deliverystate writes.  Bump it together with an
#: entry in each store's ``MIGRATIONS`` that upgrades the previous version.
#: Version 2 keeps inbox and dead-letter bodies as bytes, so that any body
#: (a NUL, a lone surrogate) can be kept exactly.  Version 3 names each
#: message's history rows in its own row (see ``_rows``), so that history is
#: appended in arrival order with no index but its key.  Version 4 adds the
#: change feed (``_sqlfeed``).  Version 5 adds registrations and local reports:
#: each message's deadline (and ``due_ms``, indexed, for the sweep) and whether
#: its winning report is local; history and the feed say which reports are.  Version 6
#: keeps each message's first delivery and first read on its row (``delivered_ms``,
#: ``read_ms``), so that the status page's figures read the message table alone.
#: Version 7 keeps how many messages are in each status (``ds_counts``), so that
#: counting them reads a few rows, not every message (``_sqlbase.ADD_COUNTS``).
SCHEMA_VERSION = 7
#: The ``ds_meta`` key whose value is the time of the last ``ping``, written by each ping.
HEARTBEAT = "heartbeat"

T = TypeVar("T")
# where a locked row (``_rows.LOCKED_COLUMNS``) keeps its reports blob
_REPORTS_AT = 7


class SQLStore(SQLReads, SQLRetention, SQLFeed):
    """Shared behaviour of the SQL stores; subclasses supply connection, locking and bulk I/O."""

    def __init__(self, *, feed: bool = True) -> None:
        self._policy_checked: str | None = None
        #: Whether status changes are written to the change feed.
        self.feed = feed
        #: Whether opening this store created its tables (a new file or schema): ``serve``
        #: says so, since a mistyped --db otherwise starts an empty database unnoticed.
        self.created = False
        self._hooks = Hooks()

    def on_change(self, hook: ChangeHook) -> Callable[[], None]:
        """Call ``hook`` after each commit of this store with that commit's changes."""
        return self._hooks.add(hook)

    # --- schema ----------------------------------------------------------------------------

    def _setup_schema(
        self,
        cursor: Any,
        tables: Sequence[str],
        migrations: Mapping[int, Sequence[Migration]],
        *,
        create: bool = True,
        migrate: bool = True,
    ) -> None:
        """Create a fresh schema, migrate an older one, or refuse a newer one.

        Without ``create`` a place without deliverystate's tables raises
        :class:`NoDatabase` and is left as it was; without ``migrate`` (a
        read-only open, which writes nothing) so does an older schema, as
        :class:`SchemaMismatch`.
        """
        missing = None if create else self._missing(cursor)
        if create:
            cursor.execute("CREATE TABLE IF NOT EXISTS ds_meta (key TEXT PRIMARY KEY, value TEXT)")
        found = None if missing else self._meta(cursor, "schema_version")
        if found is None and not create:
            raise NoDatabase(self.target, missing or "it records no schema version")
        if found is None:
            for statement in tables:
                cursor.execute(statement)
            self._set_meta(cursor, "schema_version", str(SCHEMA_VERSION))
            self.created = True
            return
        version = int(found)
        if version > SCHEMA_VERSION or (version < SCHEMA_VERSION and not migrate):
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
        with self._transaction() as cursor:
            cursor.execute(f"UPDATE ds_messages SET precedence = {precedence_sql(policy)}")
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

        def attempt() -> tuple[T, list[Change]]:
            changes: list[Change] = []
            with self._transaction() as cursor:
                self._check_policy(cursor, policy)
                loaded = self._lock_and_load(cursor, ids, events) if ids else {}
                states = {m: state_from_row(row) for m, row in loaded.items()}
                records = {m: record_of(s, policy) for m, s in states.items()}
                clients = {m: s.client_message_id for m, s in states.items() if s.client_message_id}
                seen = {m: fingerprints(row[_REPORTS_AT]) for m, row in loaded.items()}
                deadlines = {
                    m: s.deadline_ms for m, s in states.items() if s.deadline_ms is not None
                }
                had_client = set(clients)  # the batch learns into ``clients``
                batch = Batch(records, clients, seen, policy, feed=self.feed, deadlines=deadlines)
                result = work(batch, cursor)
                if ids:
                    first = self._flush(cursor, batch, loaded, ids, had_client)
                    if first and self._hooks:  # objects for the hooks only, built in here
                        feed = batch.feed or []
                        changes = [change_of(first + i, e) for i, e in enumerate(feed)]
            return result, changes

        result, changes = self._retry(attempt)
        self._after_commit()
        self._hooks.call(changes)
        return result

    def _flush(
        self,
        cursor: Any,
        batch: Batch,
        loaded: dict[str, Row],
        ids: list[str],
        had_client: set[str],
    ) -> int:
        """Number the batch's new reports, write everything; the seq of its first change."""
        recorded = batch.recorded
        arrivals = self._reserve(cursor, len(recorded)) if recorded else []
        history, news = history_rows(recorded, arrivals)
        # in key order: each row's B-tree path is mostly the previous row's, already in cache
        touched = sorted(batch.changed.keys() | news.keys())
        rows, learned, moves = message_rows(batch.rows_of(touched), loaded, news, had_client)
        unstated = [m for m in ids if m not in batch.records]
        feed = batch.feed or []
        return self._write(cursor, Writes(rows, history, feed, unstated, learned, moves))

    def apply(self, event: StatusEvent, policy: Policy) -> Decision:
        """Reconcile one report in one transaction."""
        return self._run((event,), policy, lambda batch, _: batch.apply(event))

    def apply_many(self, events: Iterable[StatusEvent], policy: Policy) -> Summary:
        """Reconcile a batch in one transaction with a constant number of round trips."""
        return self.restore_many((), (), list(events), policy)  # nothing to restore

    def register_many(self, sends: Sequence[tuple[StatusEvent, int]], policy: Policy) -> Summary:
        """Apply registered sends' QUEUED reports and deadlines in one transaction."""
        sends = list(sends)

        def work(batch: Batch, _: Any) -> Summary:
            for event, deadline_ms in sends:
                batch.register(event, deadline_ms)
            return batch.summary()

        return self._run([event for event, _ in sends], policy, work)

    def restore_many(
        self,
        archived: Sequence[StatusEvent],
        registrations: Sequence[tuple[StatusEvent, int]],
        events: Sequence[StatusEvent],
        policy: Policy,
    ) -> Summary:
        """Restore archived messages (no change in the feed), then apply ``events``: one commit."""
        return self._run(
            [*archived, *events], policy, lambda b, _: b.restore(archived, registrations, events)
        )

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

    def count_pending(self) -> int:
        """How many bodies are accepted but not settled."""
        return int(self._read("SELECT COUNT(*) FROM ds_inbox")[0][0])

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
        """Write and commit the heartbeat: raises ``StoreUnavailable`` unless writes work.

        A read (what this did before) answers on a full disk, a read-only file
        or a role that may not write, while every callback fails; so the ping
        writes as a callback does: it commits the time of the ping to ``ds_meta``
        (its ``heartbeat`` row, a few bytes rewritten in place) and asks the
        driver whether a write would find room (``_room``).  ``/healthz`` and the
        receiver's choice between an outage and a poison body both rest on it.
        """
        beat = datetime.now(timezone.utc).isoformat(timespec="milliseconds")

        def attempt() -> None:
            with self._transaction() as cursor:
                self._set_meta(cursor, HEARTBEAT, beat)
                self._room(cursor)

        self._retry(attempt)

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

    def dead_letters(self, newest: int | None = None) -> Sequence[DeadLetter]:
        """The dead letters, oldest first (only the ``newest`` few, if given)."""
        columns = "SELECT id, payload, error, received_at FROM ds_dead_letters"
        if newest is None:
            rows = self._read(f"{columns} ORDER BY id")
        else:
            rows = self._read(self._sql(f"{columns} ORDER BY id DESC LIMIT ?"), (max(newest, 0),))
            rows.reverse()
        return [self._letter(row) for row in rows]

    def count_dead_letters(self) -> int:
        """How many dead letters are kept."""
        return int(self._read("SELECT COUNT(*) FROM ds_dead_letters")[0][0])

    def remove_dead_letter(self, letter_id: int) -> None:
        """Forget a dead letter (after it was re-applied)."""
        with self._transaction() as cursor:
            cursor.execute(self._sql("DELETE FROM ds_dead_letters WHERE id = ?"), (letter_id,))
