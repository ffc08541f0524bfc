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

from ..errors import NoDatabase, PolicyMismatch, SchemaMismatch
from ..rules._events import Change, MessageState, StatusEvent
from ..rules._policy import Policy
from ..rules._reconcile import Decision
from ..rules._records import Summary
from ._columns import LOCKED_REPORTS
from ._hooks import ChangeHook, Hooks
from ._retention import SQLRetention
from ._rows import (
    fingerprints,
    state_from_row,
)
from ._sqlbase import (
    Migration,
    Row,
    Writes,
    precedence_sql,
)
from ._sqlfeed import SQLFeed
from ._sqlintake import SQLIntake
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
#: Version 8 spreads PostgreSQL's counts over slots, one per backend mostly, so that
#: concurrent writers do not queue on the same few counter rows (``_pgschema``).
SCHEMA_VERSION = 8
#: The ``ds_meta`` key whose value is the time of the last ``ping``, written by each ping.
HEARTBEAT = "heartbeat"

T = TypeVar("T")


class SQLStore(SQLIntake, SQLReads, SQLRetention, SQLFeed):
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

        def attempt() -> tuple[T, list[Change]]:
            with self._transaction() as cursor:
                self._check_policy(cursor, policy)
                return self._apply_in(cursor, events, policy, work)

        return self._published(self._retry(attempt))

    def _apply_in(
        self,
        cursor: Any,
        events: Sequence[StatusEvent],
        policy: Policy,
        work: Callable[[Batch, Any], T],
    ) -> tuple[T, list[Change]]:
        """The body of a batch inside an open transaction: lock, load, ``work``, write.

        Returns ``work``'s result and the changes to give the hooks after the
        commit (built only when there are hooks).
        """
        ids = sorted({event.message_id for event in events})
        changes: list[Change] = []
        loaded = self._lock_and_load(cursor, ids, events) if ids else {}
        states = {m: state_from_row(row) for m, row in loaded.items()}
        records = {m: record_of(s, policy) for m, s in states.items()}
        clients = {m: s.client_message_id for m, s in states.items() if s.client_message_id}
        seen = {m: fingerprints(row[LOCKED_REPORTS]) for m, row in loaded.items()}
        deadlines = {m: s.deadline_ms for m, s in states.items() if s.deadline_ms is not None}
        had_client = set(clients)  # the batch learns into ``clients``
        batch = Batch(records, clients, seen, policy, feed=self.feed, deadlines=deadlines)
        result = work(batch, cursor)
        if ids:
            seqs = self._flush(cursor, batch, loaded, ids, had_client)
            if seqs and self._hooks:  # objects for the hooks only, built in here
                feed = batch.feed or []
                changes = [change_of(s, e) for s, e in zip(seqs, feed, strict=True)]
        return result, changes

    def _flush(
        self,
        cursor: Any,
        batch: Batch,
        loaded: dict[str, Row],
        ids: list[str],
        had_client: set[str],
    ) -> Sequence[int]:
        """Number the batch's new reports, write everything; the seqs of its changes."""
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

    def decide_many(self, events: Sequence[StatusEvent], policy: Policy) -> list[Decision]:
        """Reconcile reports in one transaction, all or none, a Decision each."""
        events = list(events)
        return self._run(events, policy, lambda batch, _: [batch.apply(e) for e in events])

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
