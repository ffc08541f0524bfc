"""Tracker: the one object an application holds to follow its messages.

It joins the pieces: callback payloads are parsed (``callbacks``), the events
are reconciled by a policy (``policy``/``reconcile``) atomically inside a store
(``store``), and payloads that cannot be parsed go to the store's dead letter
so that they can be re-applied later, e.g. after the catalog learns a code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from .callbacks import InvalidCallback, parse_callback
from .catalog import Status
from .events import MessageState, StatusEvent
from .memory import MemoryStore
from .policy import DELIVERY_WINS, Policy
from .reconcile import Decision
from .store import DeadLetter, HistoryEntry, Store, Summary

__all__ = ["IngestReport", "Receipt", "RetryReport", "Tracker"]


@attrs.frozen
class Receipt:
    """What receiving one body did: it is stored (always, when this exists) and maybe applied.

    ``summary`` is None when applying failed after the body was stored; the
    body then waits in the store's inbox and ``Tracker.drain_inbox`` re-applies
    it.  ``error`` says why applying failed.
    """

    inbox_id: int
    events: tuple[StatusEvent, ...]
    summary: Summary | None
    error: str | None = None


@attrs.frozen
class IngestReport:
    """What a batch of payloads did: outcome counts, and the payloads that could not be parsed.

    ``errors`` pairs each unparseable payload's index in the batch with its error;
    those payloads are in the dead letter.
    """

    summary: Summary
    errors: tuple[tuple[int, InvalidCallback], ...]


@attrs.frozen
class RetryReport:
    """What re-applying the dead letter did: letters now applied, letters still invalid."""

    applied: tuple[DeadLetter, ...]
    still_invalid: tuple[DeadLetter, ...]
    decisions: tuple[Decision, ...]


def payload_text(payload: bytes | str | Mapping[str, Any]) -> str:
    """A payload as text for the dead letter: bytes decoded, mappings as JSON."""
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload).decode("utf-8", errors="backslashreplace")
    if isinstance(payload, str):
        return payload
    try:
        return json.dumps(payload, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        return repr(payload)


class Tracker:
    """Follows the delivery state of messages from their status callbacks.

    ``store`` defaults to a fresh :class:`MemoryStore`; ``policy`` to
    ``DELIVERY_WINS``.  Every process that sees the same callbacks through the
    same policy reaches the same states, whatever the order.
    """

    def __init__(self, store: Store | None = None, policy: Policy | None = None) -> None:
        self.store: Store = store if store is not None else MemoryStore()
        self.policy: Policy = policy if policy is not None else DELIVERY_WINS

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

    def ingest(self, payload: bytes | str | Mapping[str, Any]) -> list[Decision]:
        """Parse a callback body and apply its events.

        A payload that cannot be parsed is put in the dead letter first, then
        :class:`InvalidCallback` is raised: nothing is lost.
        """
        try:
            events = parse_callback(payload)
        except InvalidCallback as error:
            self.store.add_dead_letter(payload_text(payload), str(error))
            raise
        return [self.apply(event) for event in events]

    def ingest_many(self, payloads: Iterable[bytes | str | Mapping[str, Any]]) -> IngestReport:
        """Parse a batch of callback bodies and apply all their events in one store batch.

        Unparseable payloads go to the dead letter and are reported, not raised,
        so one bad body never holds up the others.
        """
        events: list[StatusEvent] = []
        errors: list[tuple[int, InvalidCallback]] = []
        for index, payload in enumerate(payloads):
            try:
                events.extend(parse_callback(payload))
            except InvalidCallback as error:
                self.store.add_dead_letter(payload_text(payload), str(error))
                errors.append((index, error))
        return IngestReport(self.apply_many(events), tuple(errors))

    def receive(self, payload: bytes | str | Mapping[str, Any]) -> Receipt:
        """Take one callback as a webhook must: keep it durably, then apply it.

        Invalid bodies go to the dead letter and raise :class:`InvalidCallback`.
        A valid body is written to the store's inbox first (if that fails, the
        store's error propagates and the caller must not acknowledge); then its
        events are applied and the inbox entry removed in one transaction.  If
        that second step fails, the receipt says so and the body stays in the
        inbox for :meth:`drain_inbox`.
        """
        (result,) = self.receive_many([payload])
        if isinstance(result, InvalidCallback):
            raise result
        return result

    def receive_many(
        self, payloads: Sequence[bytes | str | Mapping[str, Any]]
    ) -> list[Receipt | InvalidCallback]:
        """:meth:`receive` for a group of bodies: two transactions for the whole group.

        Returns, in order, a :class:`Receipt` for each stored body and the
        :class:`InvalidCallback` of each invalid one (already dead-lettered).
        If storing fails, the store's error propagates and none of the valid
        bodies of the group is stored.
        """
        results: list[Receipt | InvalidCallback | None] = []
        valid: list[tuple[int, str, tuple[StatusEvent, ...]]] = []
        for index, payload in enumerate(payloads):
            text = payload_text(payload)
            try:
                events = tuple(parse_callback(payload))
            except InvalidCallback as invalid:
                self.store.add_dead_letter(text, str(invalid))
                results.append(invalid)
                continue
            results.append(None)
            valid.append((index, text, events))
        if valid:
            inbox_ids = self.store.accept([text for _, text, _ in valid])
            items = [(inbox_id, entry[2]) for inbox_id, entry in zip(inbox_ids, valid, strict=True)]
            problem: str | None = None
            try:
                summaries: list[Summary | None] = list(self.store.settle(items, self.policy))
            except Exception as failure:  # the bodies are safe in the inbox: report, not raise
                summaries = [None] * len(items)
                problem = f"{type(failure).__name__}: {failure}"
            for entry, inbox_id, summary in zip(valid, inbox_ids, summaries, strict=True):
                results[entry[0]] = Receipt(inbox_id, entry[2], summary, problem)
        return [result for result in results if result is not None]

    def drain_inbox(self) -> Summary:
        """Apply every body that was accepted but not settled (after a crash or a failure)."""
        items: list[tuple[int, Sequence[StatusEvent]]] = []
        for inbox_id, text in self.store.pending():
            try:
                items.append((inbox_id, parse_callback(text)))
            except InvalidCallback as error:  # parsed once already; the catalog changed since
                self.store.add_dead_letter(text, str(error))
                items.append((inbox_id, []))
        total = Summary()
        for summary in self.store.settle(items, self.policy) if items else []:
            total += summary
        return total

    def dead_letters(self) -> Sequence[DeadLetter]:
        """Payloads that could not be parsed, oldest first."""
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
