"""Tracker: the one object an application holds to follow its messages.

It joins the pieces: callback payloads are parsed (``deliverystate.callbacks``),
the events are reconciled by a policy (``deliverystate.rules``) atomically
inside a store (``deliverystate.stores``), and payloads that cannot be parsed
go to the store's dead letter so that they can be re-applied later, e.g. after
the catalog learns a code.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import IO

from ..callbacks._parse import ParsedBatch, ParsedCallback, parse_callback, read_callback, read_many
from ..errors import InvalidCallback, PolicyMismatch, StoreUnavailable
from ..rules._catalog import Status
from ..rules._events import Change, MessageState, StatusEvent, check_consumer, check_seq
from ..rules._policy import DELIVERY_WINS, Policy
from ..rules._reconcile import Decision, Outcome
from ..rules._records import DeadLetter, HistoryEntry, Listed, MessageQuery, Summary
from ..stores import MemoryStore, Store
from ._deadlines import Send, check_windows, overdue, registrations, sweep
from ._prune import prune
from ._receipts import IngestReport, Payload, Receipt, Received, RetryReport, payload_text

__all__ = ["Tracker"]

logger = logging.getLogger(__name__)

#: Bodies re-applied per transaction by :meth:`Tracker.drain_inbox`.
_DRAIN_CHUNK = 500


def _receipt(
    parsed: ParsedCallback,
    summary: Summary | None,
    error: str | None = None,
    dead_letter: DeadLetter | None = None,
) -> Receipt:
    """A parsed body's receipt: its events, what it ignored and its format carried over."""
    return Receipt(parsed.events, summary, error, parsed.ignored, dead_letter, parsed.format)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Tracker:
    """Follows the delivery state of messages from their status callbacks.

    ``store`` defaults to a fresh :class:`MemoryStore`; ``policy`` to
    ``DELIVERY_WINS``.  Every process that sees the same callbacks through the
    same policy reaches the same states, whatever the order.
    """

    def __init__(
        self,
        store: Store | None = None,
        policy: Policy | None = None,
        *,
        windows: Mapping[str, timedelta] | None = None,
    ) -> None:
        self.store: Store = store if store is not None else MemoryStore()
        self.policy: Policy = policy if policy is not None else DELIVERY_WINS
        #: How long after sending each channel's messages may hear back (``_deadlines``).
        self.windows: Mapping[str, timedelta] = check_windows(windows)

    def register(
        self,
        message_id: str,
        *,
        channel: str,
        sent_at: datetime,
        client_message_id: str | None = None,
        deadline: datetime | None = None,
    ) -> Decision:
        """Record a send right after Clickatell accepted it: a local QUEUED at ``sent_at``.

        It commutes with the callbacks (one that came first gives the same
        final state); the message is overdue from ``deadline``, by default
        ``sent_at`` plus the channel's window (:attr:`windows`).  Raises
        ``ValueError`` naming a bad argument.
        """
        send = Send(message_id, channel, sent_at, client_message_id, deadline)
        ((event, deadline_ms),) = registrations([send], self.windows)
        summary = self.store.register_many([(event, deadline_ms)], self.policy)
        if summary.rejections:
            return summary.rejections[0]
        state = self.store.get(message_id)
        assert state is not None  # an accepted registration always leaves a state
        outcome = next(o for o in Outcome if summary.count(o))
        return Decision(outcome, state, event)

    def register_many(self, sends: Iterable[Send]) -> Summary:
        """Record many sends in one store batch; counts of outcomes of their QUEUED reports."""
        return self.store.register_many(registrations(sends, self.windows), self.policy)

    def messages(
        self,
        query: MessageQuery | None = None,
        *,
        limit: int = 50,
        before: tuple[int, str] | None = None,
    ) -> list[Listed]:
        """Messages ``query`` matches (every message without one), newest first.

        Newest by the time of a message's first report (about when it was
        sent); ``before`` is the (first report's time, id) of the last message
        of the previous page.  See ``MessageQuery`` for the filters.
        """
        return self.store.messages(query or MessageQuery(), limit, before)

    def overdue(self, now: datetime | None = None, limit: int = 1000) -> list[MessageState]:
        """Messages still in progress whose deadline is past ``now`` (default: the clock).

        Earliest deadline first, at most ``limit``.
        """
        return overdue(self.store, now, limit)

    def sweep(self, now: datetime | None = None) -> Summary:
        """Give every overdue message a local EXPIRED report dated at its deadline.

        Dated at the deadline, not at ``now``: two sweepers, or a sweep run
        twice, reach the same states (the second report is a duplicate), and
        real evidence that comes later is reconciled as usual (under the
        default policy a DEVICE_ACK after a local expiry wins).
        """
        return sweep(self.store, self.policy, now)

    def apply(self, event: StatusEvent) -> Decision:
        """Reconcile one report; the decision says whether it was applied, stale, etc."""
        return self.store.apply(event, self.policy)

    def apply_many(self, events: Iterable[StatusEvent]) -> Summary:
        """Reconcile a batch of reports; returns counts of outcomes."""
        return self.store.apply_many(events, self.policy)

    def get(self, message_id: str) -> MessageState | None:
        """The current state of a message, or None if nothing was heard about it."""
        return self.store.get(message_id)

    def history(self, message_id: str) -> Sequence[HistoryEntry]:
        """Every report about a message with its outcome, in event-time order."""
        return self.store.history(message_id)

    def count_by_status(self) -> Mapping[Status, int]:
        """How many messages are in each status."""
        return self.store.count_by_status()

    def advance(
        self,
        message_id: str,
        status: Status,
        *,
        timestamp: datetime | None = None,
        channel: str | None = None,
        client_message_id: str | None = None,
    ) -> MessageState:
        """Strictly step a message the backend drives itself.

        Raises ``IllegalTransition`` (and changes nothing) when the lifecycle
        does not allow ``status`` after the message's current status.
        """
        event = StatusEvent(
            message_id,
            status,
            timestamp if timestamp is not None else datetime.now(timezone.utc),
            channel,
            client_message_id,
        )
        return self.store.advance(event, self.policy)

    def ingest(self, payload: Payload) -> list[Decision]:
        """Parse a callback body and apply its events in one transaction, a Decision each.

        A payload that cannot be parsed is put in the dead letter first, then
        :class:`InvalidCallback` is raised.  A valid body's events apply all
        together or not at all, but the body is kept nowhere when they fail:
        the store's error propagates and the body is lost unless the caller
        still has it.  For scripts and tests; a webhook calls :meth:`receive`,
        which keeps a body the store refuses in the dead letter.
        """
        try:
            events = parse_callback(payload)
        except InvalidCallback as error:
            self.store.add_dead_letter(payload_text(payload), str(error))
            raise
        return self.store.decide_many(events, self.policy) if events else []

    def ingest_many(self, payloads: Iterable[Payload], *, archives: bool = False) -> IngestReport:
        """Parse a batch of callback bodies and apply all their events in one store batch.

        Unparseable payloads go to the dead letter and are reported, not raised,
        so one bad body never holds up the others.  With ``archives``, archive
        lines written by :meth:`prune` are read too (``replay`` restores them,
        with no change in the feed: see :meth:`ingest_parsed`).
        """
        bodies = payloads if isinstance(payloads, Sequence) else list(payloads)
        return self.ingest_parsed(bodies, read_many(bodies, archives=archives))

    def ingest_parsed(self, payloads: Sequence[Payload], parsed: ParsedBatch) -> IngestReport:
        """:meth:`ingest_many` for bodies parsed beforehand by :func:`read_many`.

        For a caller that parses elsewhere (``deliverystate replay`` parses in a
        worker process while this one applies): the bodies ``parsed.errors``
        names go to the dead letter, then every event is applied in one store
        batch.  Archive lines' messages are restored first, without a change in
        the feed (``Store.restore_many``); the callbacks' reports follow them.
        """
        if parsed.errors:  # every bad body kept in one transaction
            self.store.intake(
                [],
                [(payload_text(payloads[i]), str(error)) for i, error in parsed.errors],
                self.policy,
            )
        if parsed.restored or parsed.registrations:
            summary = self.store.restore_many(
                parsed.restored, parsed.registrations, parsed.events, self.policy
            )
        else:
            summary = self.apply_many(parsed.events)
        return IngestReport(summary, parsed.errors, parsed.ignored)

    def receive(self, payload: Payload) -> Receipt:
        """Take one callback as a webhook must: applied, or kept, before it is acknowledged.

        Invalid bodies go to the dead letter and raise :class:`InvalidCallback`.
        A valid body's events are applied in one transaction, all or none; a
        body the store refuses on its own while it works (a row the database
        will not hold) is kept in the dead letter instead (the receipt's
        ``dead_letter``, a 400).  When the store fails as a whole
        (``StoreUnavailable``: a full disk, a read-only file, a lost
        connection) the error is raised, nothing is kept, and the caller must
        not acknowledge: Clickatell sends the callback again.
        """
        (result,) = self.receive_many([payload])
        if isinstance(result, Exception):
            raise result
        return result

    def receive_many(self, payloads: Sequence[Payload]) -> list[Received]:
        """:meth:`receive` for a group of bodies: one transaction for the whole group.

        Returns one result per body, in order: a :class:`Receipt` for a body
        that was applied or kept in the dead letter; the :class:`InvalidCallback`
        of an invalid body (kept in the dead letter); the store's error, for
        every body of the group, when the transaction failed (nothing was
        kept: the caller must not acknowledge them).  No body can hold up
        another: a body the store refuses is rolled back alone and kept in the
        dead letter, in the same transaction (``Store.intake``).
        """
        results: list[Received | None] = [None] * len(payloads)
        valid: list[tuple[int, str, ParsedCallback]] = []
        invalid: list[tuple[int, str, InvalidCallback]] = []
        for index, payload in enumerate(payloads):
            text = payload_text(payload)
            try:
                parsed = read_callback(payload)
            except InvalidCallback as refusal:
                invalid.append((index, text, refusal))
                continue
            if not parsed.events:  # nothing to apply: nothing to keep either
                results[index] = _receipt(parsed, Summary())
            else:
                valid.append((index, text, parsed))
        if valid or invalid:
            try:
                taken = self.store.intake(
                    [(text, parsed.events) for _, text, parsed in valid],
                    [(text, str(error)) for _, text, error in invalid],
                    self.policy,
                )
            except PolicyMismatch:
                raise
            except Exception as failure:
                logger.error(
                    "%d callbacks could not be kept: %s",
                    len(valid) + len(invalid),
                    _describe(failure),
                )
                for index, _, _ in [*valid, *invalid]:
                    results[index] = failure
                return [result for result in results if result is not None]
            for (index, _, parsed), outcome in zip(valid, taken.bodies, strict=True):
                if isinstance(outcome, DeadLetter):
                    logger.error(
                        "a callback the store refused is in dead letter %d: %s",
                        outcome.id,
                        outcome.error,
                    )
                    results[index] = _receipt(parsed, None, outcome.error, outcome)
                else:
                    results[index] = _receipt(parsed, outcome)
            for index, _, why in invalid:
                results[index] = why
        return [result for result in results if result is not None]

    def _answers(self) -> bool:
        """Whether the store takes a write transaction right now."""
        with contextlib.suppress(Exception):
            self.store.ping()
            return True
        return False

    def _settle(
        self, items: list[tuple[int, tuple[StatusEvent, ...]]]
    ) -> list[Summary | DeadLetter | Exception]:
        """Apply kept bodies: together, or one by one when together fails.

        A body is poison when it fails on its own twice, never with
        ``StoreUnavailable``, while the store answers :meth:`Store.ping` in
        between: it is moved to the dead letter.  While the store fails (that
        error, or a ping that fails), nothing is tried one by one and every
        body stays in the inbox.
        """
        if not items:
            return []
        try:
            return list(self.store.settle(items, self.policy))
        except PolicyMismatch:
            raise
        except Exception as failure:
            group_error: Exception = failure
        store_wide = isinstance(group_error, StoreUnavailable)
        logger.warning(
            "applying %d stored callbacks together failed (%s); %s",
            len(items),
            _describe(group_error),
            "they wait in the inbox" if store_wide else "trying them one by one",
        )
        if store_wide or not self._answers():
            return [group_error] * len(items)
        return [self._settle_alone(item) for item in items]

    def _settle_alone(
        self, item: tuple[int, tuple[StatusEvent, ...]]
    ) -> Summary | DeadLetter | Exception:
        error: Exception | None = None
        for _ in range(2):
            try:
                return self.store.settle([item], self.policy)[0]
            except PolicyMismatch:
                raise
            except Exception as failure:
                error = failure
            if isinstance(error, StoreUnavailable) or not self._answers():
                return error
        assert error is not None
        try:
            letter = self.store.quarantine(item[0], f"could not be applied: {_describe(error)}")
        except Exception as failure:
            return failure
        if letter is None:  # settled meanwhile by another worker
            return Summary()
        logger.error(
            "stored callback %d fails on its own (%s); moved to dead letter %d",
            item[0],
            _describe(error),
            letter.id,
        )
        return letter

    def drain_inbox(self) -> Summary:
        """Apply every body kept in the inbox and not settled yet.

        :meth:`receive` no longer keeps bodies there (it applies each in the
        commit that answers it), but a receiver before schema 8 did, and a
        crash or an outage could leave bodies behind; ``Store.accept`` keeps
        them too for a caller that applies later.  ``create_app``'s lifespan
        calls this at start-up.  Safe at any time and from any worker: a report
        applied twice is a DUPLICATE.  Bodies are applied in groups; a body that
        cannot be applied on its own goes to the dead letter, so one bad body
        never blocks the rest.  If the store stops answering, the first such
        error is raised and the bodies not yet applied stay for the next drain.
        """
        items: list[tuple[int, tuple[StatusEvent, ...]]] = []
        for inbox_id, text in self.store.pending():
            try:
                items.append((inbox_id, read_callback(text).events))
            except InvalidCallback as error:  # parsed once already; the catalog changed since
                self.store.quarantine(inbox_id, str(error))
        total = Summary()
        for start in range(0, len(items), _DRAIN_CHUNK):
            for outcome in self._settle(items[start : start + _DRAIN_CHUNK]):
                if isinstance(outcome, Summary):
                    total += outcome
                elif isinstance(outcome, Exception):
                    raise outcome
        return total

    def prune(
        self,
        before: datetime,
        *,
        archive: IO[str] | None = None,
        dry_run: bool = False,
        progress: Callable[[int, int], object] | None = None,
    ) -> int:
        """Remove settled messages whose last report is before ``before``, with their history.

        Settled: failed, read, or delivered (DEVICE_ACK, where an SMS ends); a
        message still on its way is never removed.  A report that arrives
        after its message was removed starts it afresh.  With ``archive``, each
        removed message is first written to it as one JSON line (its state and
        full history); ``deliverystate replay`` of that file restores them.
        Works in small groups, so it is safe while a receiver runs.  Returns
        how many messages were removed (with ``dry_run``: would be).
        """
        return prune(self.store, before, archive=archive, dry_run=dry_run, progress=progress)

    def changes(self, after: int = 0, limit: int = 1000) -> list[Change]:
        """The change feed after ``seq`` ``after``, in ``seq`` order: at most ``limit`` changes.

        Every decision that changes a message's status is in the feed,
        written in the same transaction as the new state.
        """
        if check_seq(limit, "limit") == 0:
            raise ValueError("limit is 1 or more, not 0")
        return self.store.changes(check_seq(after, "after"), limit)

    def cursor(self, name: str) -> int:
        """The last ``seq`` consumer ``name`` committed (0 if it never did)."""
        return self.store.cursor(check_consumer(name))

    def commit_cursor(self, name: str, seq: int) -> None:
        """Record that consumer ``name`` has handled every change up to ``seq``.

        Commit only after the changes are handled: a consumer that stops then
        resumes from its cursor and sees each change at least once.  A cursor
        only moves forwards: a ``seq`` below it raises ``CursorMovedBack`` and
        leaves it where it is (``store.drop_cursor`` forgets it, to start over).
        """
        self.store.commit_cursor(check_consumer(name), check_seq(seq))

    def on_change(self, callback: Callable[[Sequence[Change]], object]) -> Callable[[], None]:
        """Call ``callback`` in this process after each commit with its changes, in order.

        An exception in ``callback`` is logged and neither undoes nor blocks
        the commit.  Returns a function that removes the callback.
        """
        return self.store.on_change(callback)

    def dead_letters(self) -> Sequence[DeadLetter]:
        """Payloads that could not be parsed, kept or applied, oldest first."""
        return self.store.dead_letters()

    def retry_dead_letters(self) -> RetryReport:
        """Re-parse every dead letter; apply and forget those that now parse.

        Each body's events apply in one transaction, all or none, before its
        dead letter is forgotten.  A body the store still refuses (a row its
        database will not hold) stays, counted with ``still_invalid``; a failing
        store raises ``StoreUnavailable`` and leaves the rest for the next retry.
        """
        applied: list[DeadLetter] = []
        still_invalid: list[DeadLetter] = []
        decisions: list[Decision] = []
        for letter in self.store.dead_letters():
            try:
                events = parse_callback(letter.payload)
            except InvalidCallback:
                still_invalid.append(letter)
                continue
            if events:  # one transaction per body, all or none
                try:
                    decisions.extend(self.store.decide_many(events, self.policy))
                except (StoreUnavailable, PolicyMismatch):
                    raise
                except Exception as error:  # the store still refuses it: it stays
                    logger.error("dead letter %d is still refused: %s", letter.id, error)
                    still_invalid.append(letter)
                    continue
            self.store.remove_dead_letter(letter.id)
            applied.append(letter)
        return RetryReport(tuple(applied), tuple(still_invalid), tuple(decisions))
