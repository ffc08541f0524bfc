"""Tracker: the one object an application holds to follow its messages.

It joins the pieces: callback payloads are parsed (``callbacks``), the events
are reconciled by a policy (``policy``/``reconcile``) atomically inside a store
(``store``), and payloads that cannot be parsed go to the store's dead letter
so that they can be re-applied later, e.g. after the catalog learns a code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import IO

from ._callbacks import ParsedBatch, ParsedCallback, parse_callback, read_callback, read_many
from ._catalog import Status
from ._deadlines import Send, check_windows, overdue, registrations, sweep
from ._events import Change, MessageState, StatusEvent, check_consumer, check_seq
from ._policy import DELIVERY_WINS, Policy
from ._prune import prune
from ._receipts import IngestReport, Payload, Receipt, Received, RetryReport, payload_text
from ._reconcile import Decision, Outcome
from .errors import InvalidCallback, PolicyMismatch
from .stores import (
    DeadLetter,
    HistoryEntry,
    Listed,
    MemoryStore,
    MessageQuery,
    Store,
    Summary,
)

__all__ = ["Tracker"]

logger = logging.getLogger(__name__)

#: Bodies re-applied per transaction by :meth:`Tracker.drain_inbox`.
_DRAIN_CHUNK = 500


def _receipt(
    parsed: ParsedCallback,
    inbox_id: int | None,
    summary: Summary | None,
    error: str | None = None,
    dead_letter: DeadLetter | None = None,
) -> Receipt:
    """A parsed body's receipt: its events, what it ignored and its format carried over."""
    return Receipt(
        inbox_id, parsed.events, summary, error, parsed.ignored, dead_letter, parsed.format
    )


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
        """Parse a callback body and apply its events, one at a time.

        A payload that cannot be parsed is put in the dead letter first, then
        :class:`InvalidCallback` is raised.  A valid body is kept nowhere: if
        applying fails, the store's error propagates and the body is lost
        unless the caller still has it.  For scripts and tests; a webhook calls
        :meth:`receive`, which keeps the body before it applies it.
        """
        try:
            events = parse_callback(payload)
        except InvalidCallback as error:
            self.store.add_dead_letter(payload_text(payload), str(error))
            raise
        return [self.apply(event) for event in events]

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
        for index, error in parsed.errors:
            self.store.add_dead_letter(payload_text(payloads[index]), str(error))
        if parsed.restored or parsed.registrations:
            summary = self.store.restore_many(
                parsed.restored, parsed.registrations, parsed.events, self.policy
            )
        else:
            summary = self.apply_many(parsed.events)
        return IngestReport(summary, parsed.errors, parsed.ignored)

    def receive(self, payload: Payload) -> Receipt:
        """Take one callback as a webhook must: keep it durably, then apply it.

        Invalid bodies go to the dead letter and raise :class:`InvalidCallback`.
        A valid body is written to the store's inbox first (if that fails, the
        store's error propagates and the caller must not acknowledge); then its
        events are applied and the inbox entry removed in one transaction.  If
        that second step fails, the receipt says so (``summary`` None, answer
        202) and the body stays in the inbox for :meth:`drain_inbox`, which the
        caller runs at start-up and a few seconds later (``create_app``'s
        lifespan does both).  A body that fails even on its own while the
        store works is moved to the dead letter instead (``dead_letter``, 400).
        """
        (result,) = self.receive_many([payload])
        if isinstance(result, Exception):
            raise result
        return result

    def receive_many(self, payloads: Sequence[Payload]) -> list[Received]:
        """:meth:`receive` for a group of bodies: two transactions for the whole group.

        Returns one result per body, in order: a :class:`Receipt` for a body
        that was kept; the :class:`InvalidCallback` of an invalid body (kept in
        the dead letter); the store's error for a body that could not be kept
        at all.  No body can hold up another: when the group's transaction
        fails, its bodies are kept and applied one by one, and a body that
        fails on its own while the store works goes to the dead letter.
        """
        results: list[Received | None] = [None] * len(payloads)
        valid: list[tuple[int, str, ParsedCallback]] = []
        for index, payload in enumerate(payloads):
            text = payload_text(payload)
            try:
                parsed = read_callback(payload)
            except InvalidCallback as invalid:
                results[index] = self._dead_letter(text, invalid)
                continue
            if not parsed.events:  # nothing to apply: nothing to keep either
                results[index] = _receipt(parsed, None, Summary())
                continue
            valid.append((index, text, parsed))
        kept = self._accept([text for _, text, _ in valid])
        stored: list[tuple[int, int, ParsedCallback]] = []
        for (index, _, parsed), inbox_id in zip(valid, kept, strict=True):
            if isinstance(inbox_id, int):
                stored.append((index, inbox_id, parsed))
            elif isinstance(inbox_id, DeadLetter):
                results[index] = _receipt(parsed, None, None, inbox_id.error, inbox_id)
            else:
                results[index] = inbox_id
        settled = self._settle([(inbox_id, parsed.events) for _, inbox_id, parsed in stored])
        for (index, inbox_id, parsed), outcome in zip(stored, settled, strict=True):
            if isinstance(outcome, Summary):
                results[index] = _receipt(parsed, inbox_id, outcome)
            elif isinstance(outcome, DeadLetter):
                results[index] = _receipt(parsed, inbox_id, None, outcome.error, outcome)
            else:
                results[index] = _receipt(parsed, inbox_id, None, _describe(outcome))
        return [result for result in results if result is not None]

    def _dead_letter(self, text: str, invalid: InvalidCallback) -> Exception:
        """Keep an invalid body; its error, or the store's when even that failed."""
        try:
            self.store.add_dead_letter(text, str(invalid))
        except PolicyMismatch:
            raise
        except Exception as failure:
            logger.error("an invalid callback could not be kept: %s", _describe(failure))
            return failure
        return invalid

    def _answers(self) -> bool:
        """Whether the store takes a write transaction right now."""
        try:
            self.store.ping()
        except Exception:
            return False
        return True

    def _accept(self, texts: list[str]) -> list[int | DeadLetter | Exception]:
        """Keep bodies in the inbox: together, or one by one when together fails."""
        if not texts:
            return []
        try:
            return list(self.store.accept(texts))
        except Exception as failure:
            if len(texts) == 1 and not self._answers():
                return [failure]
            group_error: Exception = failure
        if not self._answers():
            return [group_error] * len(texts)
        results: list[int | DeadLetter | Exception] = []
        for text in texts:
            try:
                results.extend(self.store.accept([text]))
            except Exception as failure:
                results.append(self._unkeepable(text, failure))
        return results

    def _unkeepable(self, text: str, failure: Exception) -> DeadLetter | Exception:
        """A body the inbox refuses on its own: into the dead letter if the store works."""
        if not self._answers():
            return failure
        try:
            letter = self.store.add_dead_letter(text, f"could not be kept: {_describe(failure)}")
        except Exception as second:
            return second
        logger.error("a callback the inbox refused is in dead letter %d", letter.id)
        return letter

    def _settle(
        self, items: list[tuple[int, tuple[StatusEvent, ...]]]
    ) -> list[Summary | DeadLetter | Exception]:
        """Apply kept bodies: together, or one by one when together fails.

        A body is poison when it fails on its own twice while the store
        answers :meth:`Store.ping` in between: it is moved to the dead letter.
        While the store does not answer, nothing is tried one by one and every
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
        logger.warning(
            "applying %d stored callbacks together failed (%s); trying them one by one",
            len(items),
            _describe(group_error),
        )
        if not self._answers():
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
            if not self._answers():
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
        """Apply every body that was accepted but not settled (after a crash or a failure).

        Whoever calls :meth:`receive` calls this: at start-up, for what a crash
        left between keeping a body and applying it, and a few seconds after a
        receipt without a ``summary`` (a 202).  ``deliverystate.web.create_app``'s
        lifespan does both; an app of one's own must, or those bodies wait.
        Safe at any time and from any worker: a report applied twice is a
        DUPLICATE.  Bodies are applied in groups; a body that cannot be applied on its own
        goes to the dead letter, so one bad body never blocks the rest.  If the
        store stops answering, the first such error is raised and the bodies
        not yet applied stay in the inbox for the next drain.
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
        """Re-parse every dead letter; apply and forget those that now parse."""
        applied: list[DeadLetter] = []
        still_invalid: list[DeadLetter] = []
        decisions: list[Decision] = []
        for letter in self.store.dead_letters():
            try:
                events = parse_callback(letter.payload)
            except InvalidCallback:
                still_invalid.append(letter)
                continue
            decisions.extend(self.apply(event) for event in events)
            self.store.remove_dead_letter(letter.id)
            applied.append(letter)
        return RetryReport(tuple(applied), tuple(still_invalid), tuple(decisions))
