"""How bodies come into the SQL stores: the intake, the dead letter, and the inbox.

Theory of operation
-------------------
A receiver hands :meth:`SQLIntake.intake` a group of parsed bodies and the
invalid ones beside them; one transaction keeps the invalid bodies in the
dead letter and applies the valid ones, all their reports in one batch, and
the receiver answers each request after that commit.  So a callback costs one
commit shared with the others of its group, and a 2xx always means "applied"
or "kept".

A body the database refuses (a row it will not hold: a constraint, a value
of the wrong size or type) fails the whole group, whose transaction rolls
back.  The group is then taken again in a new transaction that applies its
bodies one by one, each in a savepoint of its own, and keeps a body that
fails on its own in the dead letter with the reason, in that same commit.
(The first transaction takes no savepoint: on SQLite two statements, on
PostgreSQL two round trips, for every group, to save a rare retry.)

A failing store (a full disk, a lost connection: the driver's store-wide
errors) is never taken for a refused body: it fails the whole transaction,
nothing is kept, and the caller answers 503 so that Clickatell sends the
callbacks again.

The inbox (``accept``, ``settle``, ``pending``, ``quarantine``) kept bodies
between two commits before schema 8; ``Tracker.drain_inbox`` applies what
an older receiver left there.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import PolicyMismatch, StoreUnavailable
from ..rules._events import Change, StatusEvent
from ..rules._policy import Policy
from ..rules._records import DeadLetter, Intake, Summary
from ._rows import digest, payload_bytes, payload_str, storable_text
from ._sqlbase import Row, SQLBase
from ._work import Batch

__all__ = ["SQLIntake", "describe"]

T = TypeVar("T")


def describe(error: BaseException) -> str:
    """An error as a dead letter's reason names it: its type and its message."""
    return f"{type(error).__name__}: {error}"


def _refused(error: BaseException) -> str:
    """The reason a dead letter gives for a body the store refused on its own."""
    return f"could not be applied: {describe(error)}"


def _absorb(groups: list[list[StatusEvent]]) -> Callable[[Batch, Any], list[Summary]]:
    return lambda batch, _: batch.absorb_groups(groups)


class SQLIntake(SQLBase):
    """The intake, dead-letter and inbox methods of the SQL stores."""

    @abc.abstractmethod
    def _check_policy(self, cursor: Any, policy: Policy) -> None:
        """Record ``policy`` in a new store; refuse one that differs from the recorded one."""

    @abc.abstractmethod
    def _apply_in(
        self,
        cursor: Any,
        events: Sequence[StatusEvent],
        policy: Policy,
        work: Callable[[Batch, Any], T],
    ) -> tuple[T, list[Change]]:
        """Lock, load, run ``work`` and write, inside an open transaction (``_sql``)."""

    @abc.abstractmethod
    def _run(
        self, events: Sequence[StatusEvent], policy: Policy, work: Callable[[Batch, Any], T]
    ) -> T:
        """A batch in a transaction of its own, retried and committed (``_sql``)."""

    def _fresh_batch(self, cursor: Any) -> None:
        """Forget what an earlier batch of this transaction left behind (PostgreSQL's scratch)."""

    @contextmanager
    def _savepoint(self, cursor: Any) -> Iterator[None]:
        """Run the block in a savepoint: an error rolls back the block alone, and is raised."""
        cursor.execute("SAVEPOINT ds_body")
        try:
            yield
        except BaseException:
            cursor.execute("ROLLBACK TO SAVEPOINT ds_body")
            cursor.execute("RELEASE SAVEPOINT ds_body")
            raise
        cursor.execute("RELEASE SAVEPOINT ds_body")

    def intake(
        self,
        bodies: Sequence[tuple[str, Sequence[StatusEvent]]],
        invalid: Sequence[tuple[str, str]],
        policy: Policy,
    ) -> Intake:
        """Keep invalid bodies and apply valid ones in one commit (see the module's docstring)."""
        groups = [list(events) for _, events in bodies]

        def attempt(isolate: bool) -> tuple[Intake, list[Change]]:
            with self._transaction() as cursor:
                self._check_policy(cursor, policy)
                letters = tuple(self._keep_dead_letter(cursor, t, e) for t, e in invalid)
                if not groups:
                    return Intake((), letters), []
                if isolate:
                    outcomes, changes = self._one_by_one(cursor, bodies, groups, policy)
                    return Intake(outcomes, letters), changes
                events = [event for group in groups for event in group]
                summaries, changes = self._apply_in(cursor, events, policy, _absorb(groups))
                return Intake(tuple(summaries), letters), changes

        try:  # no savepoint on the way every group takes: it costs two statements
            done = self._retry(lambda: attempt(False))
        except (StoreUnavailable, PolicyMismatch):
            raise
        except Exception:  # the database refused the group: again, each body alone
            done = self._retry(lambda: attempt(True))
        return self._published(done)

    def _one_by_one(
        self,
        cursor: Any,
        bodies: Sequence[tuple[str, Sequence[StatusEvent]]],
        groups: list[list[StatusEvent]],
        policy: Policy,
    ) -> tuple[tuple[Summary | DeadLetter, ...], list[Change]]:
        """Apply each body in a savepoint of its own; one refused alone goes to the dead letter."""
        outcomes: list[Summary | DeadLetter] = []
        changes: list[Change] = []
        for (text, _), group in zip(bodies, groups, strict=True):
            self._fresh_batch(cursor)
            try:
                with self._savepoint(cursor):
                    (summary,), more = self._apply_in(cursor, group, policy, _absorb([group]))
            except Exception as error:
                if self._store_wide(error):
                    raise
                outcomes.append(self._keep_dead_letter(cursor, text, _refused(error)))
                continue
            outcomes.append(summary)
            changes.extend(more)
        return tuple(outcomes), changes

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
