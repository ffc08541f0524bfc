r"""The store protocol: where message states live, and what every store must do.

A store owns reconciliation *where the data lives*.  The tracker hands it
events and a policy; the store applies them atomically (a lock in memory, a
conditional upsert or row lock in SQL), so two workers can never read the same
old state and both write.  That is why the protocol takes whole events and a
policy rather than offering ``get`` and ``put`` to be combined in Python.

A receiver acknowledges a callback only once it is safe: ``intake`` applies
a group of parsed bodies and keeps the invalid ones in the dead letter in one
transaction, so a busy receiver pays for one commit per group, and a 2xx
means the body's reports are applied or the body itself is kept.  Each body
is all or nothing: a body the store refuses on its own (a row the database
will not hold) is rolled back alone, to a savepoint, and kept in the dead
letter with the reason, so it never holds up the others.

The inbox (``accept``, ``settle``, ``pending``, ``quarantine``) is what
receivers before schema 8's one-transaction intake kept bodies in between
two commits; ``Tracker.drain_inbox`` still applies what such a receiver left
there, and a caller that wants to keep bodies now and apply them later may
use it.

Stores also keep what could not be used: every report with its outcome
(history, where the store keeps it) and every payload that could not be parsed
(the dead letter), so nothing is lost and everything can be replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..rules._catalog import Status
from ..rules._events import Change, MessageState, StatusEvent
from ..rules._policy import Policy
from ..rules._reconcile import Decision
from ..rules._records import (
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

__all__ = ["Store"]


@runtime_checkable
class Store(Protocol):
    """What a tracker needs from a store.  Every write method is atomic."""

    def get(self, message_id: str) -> MessageState | None:
        """The current state of a message, or None if no report about it was applied."""

    def apply(self, event: StatusEvent, policy: Policy) -> Decision:
        """Reconcile one report into the store and say what it did."""

    def apply_many(self, events: Iterable[StatusEvent], policy: Policy) -> Summary:
        """Reconcile a batch; cheaper than :meth:`apply` per event, same final states."""

    def decide_many(self, events: Sequence[StatusEvent], policy: Policy) -> list[Decision]:
        """Reconcile one body's reports all together or not at all; a Decision each, in order."""

    def restore_many(
        self,
        archived: Sequence[StatusEvent],
        registrations: Sequence[tuple[StatusEvent, int]],
        events: Sequence[StatusEvent],
        policy: Policy,
    ) -> Summary:
        """Put pruned messages back, then apply ``events``, atomically; the counts of both.

        ``archived`` are the reports of archive lines and ``registrations``
        the deadlines they held.  Restoring is not news: a message the store
        did not hold comes back with its state and history but no change in
        the feed.  ``events`` (callbacks replayed beside the archive) follow
        as :meth:`apply_many` applies them, so a report that moves a restored
        message on is a change like any other.
        """

    def advance(self, event: StatusEvent, policy: Policy) -> MessageState:
        """Strictly step a message along the lifecycle, or raise ``IllegalTransition``."""

    def register_many(self, sends: Sequence[tuple[StatusEvent, int]], policy: Policy) -> Summary:
        """Apply registered sends: each a local QUEUED report and a deadline (ms), atomically.

        Like :meth:`apply_many` for the reports; a message keeps the earliest
        deadline any of its accepted registrations gave it.
        """

    def overdue(
        self, now_ms: int, limit: int, after: tuple[int, str] | None = None
    ) -> list[MessageState]:
        """Up to ``limit`` messages due by ``now_ms`` (``MessageState.is_due``).

        Ordered by deadline then message id, starting after the (deadline,
        id) ``after``, so that a sweep can page through them.
        """

    def count_overdue(self, now_ms: int) -> int:
        """How many messages are due by ``now_ms``."""

    def messages(
        self, query: MessageQuery, limit: int, before: tuple[int, str] | None = None
    ) -> list[Listed]:
        """Up to ``limit`` messages ``query`` matches, newest first.

        Ordered by first report's time, then message id, both descending,
        starting after the (first report's time, id) ``before``: keyset pages.
        """

    def count_local_expiries(self) -> int:
        """How many messages are EXPIRED by a local report (a sweep), not by Clickatell."""

    def history(self, message_id: str) -> Sequence[HistoryEntry]:
        """The reports about a message, ordered by event timestamp then arrival."""

    def count_by_status(self) -> Mapping[Status, int]:
        """How many messages are in each status.

        Every status page and every metrics scrape asks, so it should not read
        every message: the SQL stores keep the counts in a table of their own.
        """

    def count_by_channel(
        self, since_ms: int | None = None
    ) -> Mapping[tuple[str | None, Status], int]:
        """How many messages are in each (channel, status), first reported since ``since_ms``."""

    def milestones(self, since_ms: int | None = None) -> Iterable[Milestones]:
        """For every message with history: first report, first delivery, first read.

        The SQL stores keep all three on the message row as batches are
        applied (schema version 6), so this reads no history: it is one read of
        the messages, the status page's costliest.  With ``since_ms``, only the
        messages first reported at or after it (the messages
        ``count_by_channel(since_ms)`` counts), read through the index on the
        first report's time: the status page asks for the last day of a store
        that may hold a month.
        """

    def add_dead_letter(self, payload: str, error: str) -> DeadLetter:
        """Keep a payload that could not be parsed (or kept in the inbox), with why."""

    def dead_letters(self, newest: int | None = None) -> Sequence[DeadLetter]:
        """The payloads waiting in the dead letter, oldest first; only the ``newest`` few if given.

        ``newest`` lets a status page show the latest bodies without reading a
        dead letter of thousands.
        """

    def count_dead_letters(self) -> int:
        """How many payloads wait in the dead letter, without reading them (a scrape asks)."""

    def remove_dead_letter(self, letter_id: int) -> None:
        """Forget a dead letter, once it has been re-applied."""

    def intake(
        self,
        bodies: Sequence[tuple[str, Sequence[StatusEvent]]],
        invalid: Sequence[tuple[str, str]],
        policy: Policy,
    ) -> Intake:
        """Apply parsed bodies (text, events) and keep invalid ones (text, error): one commit.

        Each body's events apply together or not at all: a body the store
        refuses on its own is kept in the dead letter instead, with the
        reason, and the others apply.  A failing store (``StoreUnavailable``)
        raises and keeps nothing: the caller must not acknowledge any of them.
        """

    def accept(self, payloads: Sequence[str]) -> list[int]:
        """Durably keep received bodies, all or none, before they are applied; their inbox ids."""

    def settle(
        self, items: Sequence[tuple[int, Sequence[StatusEvent]]], policy: Policy
    ) -> list[Summary]:
        """Apply kept bodies' events and forget the bodies, in one atomic step; a summary each."""

    def pending(self) -> Sequence[tuple[int, str]]:
        """Bodies accepted but not settled (the process stopped in between), oldest first."""

    def count_pending(self) -> int:
        """How many bodies :meth:`pending` would give, without reading them."""

    def quarantine(self, inbox_id: int, error: str) -> DeadLetter | None:
        """Move a kept body that cannot be applied to the dead letter, atomically.

        For a body that fails on its own while the store otherwise works, so
        that it cannot hold up the bodies that arrive with it.  None when no
        body has that id any more.
        """

    def ping(self) -> None:
        """Return when the store can take a write transaction; raise ``StoreUnavailable`` if not."""

    def prunable(
        self, before_ms: int, after: str | None, limit: int
    ) -> tuple[list[str], str | None]:
        """Settled messages whose last report is before ``before_ms``, among ``limit`` scanned.

        Settled: in one of :data:`SETTLED` (failed, read, or delivered).  Scans in
        message id order after ``after``, without holding writes up; returns the
        candidates and where to scan next (None: done).
        """

    def remove(self, message_ids: Sequence[str], before_ms: int, keep: Keep | None = None) -> int:
        """Remove those messages that are still settled and older than ``before_ms``, atomically.

        Each is handed, with its history, to ``keep`` before anything is
        deleted; if ``keep`` raises, nothing is.  Returns how many were removed.
        """

    def changes(self, after: int = 0, limit: int = 1000) -> list[Change]:
        """The change feed after ``seq`` ``after``, in ``seq`` order, at most ``limit``."""

    def last_seq(self) -> int:
        """The highest ``seq`` the feed has handed out (0: none yet)."""

    def count_changes(self, after: int = 0, *, final: bool = False) -> int:
        """How many changes the feed holds after ``after`` (with ``final``, to a final status).

        Not ``last_seq() - after``: trimming removes changes, and PostgreSQL
        skips the seqs of a batch that rolled back.
        """

    def cursor(self, name: str) -> int:
        """The last ``seq`` consumer ``name`` committed (0 if it never did)."""

    def cursors(self) -> Mapping[str, int]:
        """Every named consumer's position."""

    def commit_cursor(self, name: str, seq: int) -> None:
        """Durably record that consumer ``name`` has handled the feed up to ``seq``.

        A cursor only moves forwards: raise ``CursorMovedBack`` (a
        ``ValueError``), changing nothing, when it is past ``seq`` already.
        """

    def drop_cursor(self, name: str) -> None:
        """Forget a consumer, so that it no longer holds changes back from pruning."""

    def trim_changes(self, before_ms: int) -> int:
        """Delete changes older than ``before_ms`` that every named consumer has passed."""

    def on_change(self, hook: Callable[[Sequence[Change]], object]) -> Callable[[], None]:
        """Call ``hook`` after each commit with its changes; returns what removes the hook."""

    def add_undeliverable(self, consumer: str, change: Change, error: str) -> None:
        """Keep a change that a forwarder gave up delivering to ``consumer``."""

    def undeliverable(self, consumer: str | None = None) -> Sequence[Undeliverable]:
        """The changes forwarders gave up on, oldest first."""

    def remove_undeliverable(self, consumer: str, seq: int) -> None:
        """Forget an undeliverable change, once it was delivered after all."""
