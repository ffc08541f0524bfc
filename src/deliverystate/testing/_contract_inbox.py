"""The store contract, part four: the intake, the inbox, and bodies that fail alone (poison)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from ..errors import InvalidCallback, StoreUnavailable
from ..rules._catalog import Status
from ..rules._events import StatusEvent
from ..rules._policy import Policy
from ..rules._records import Summary
from ..simulate import callback_body
from ..stores import Store
from ._harness import ContractBase, Faulty, ev

__all__ = ["InboxContract"]

S = Status


def _body(message_id: str, status: Status, offset_ms: int, channel: str = "sms") -> str:
    return json.dumps(callback_body(ev(message_id, status, offset_ms, channel)))


def _status(store: Store, message_id: str) -> Status | None:
    state = store.get(message_id)
    return None if state is None else state.status


def _down(*args: object) -> None:
    raise RuntimeError("connection refused")


def _poisoned(store: Store, tried: list[int]) -> Faulty:
    """``store`` whose ``settle`` fails for any group holding a report about "poison-*".

    Stands for a body the store cannot hold for a reason nobody foresaw.
    ``tried`` receives the size of each group tried.
    """

    def settle(items: Sequence[tuple[int, Sequence[StatusEvent]]], policy: Policy) -> list[Summary]:
        tried.append(len(items))
        if any(e.message_id.startswith("poison") for _, events in items for e in events):
            raise RuntimeError("value too long for the index")
        return store.settle(items, policy)

    return Faulty(store, settle=settle)


class InboxContract(ContractBase):
    """How a store takes bodies in, so that none is lost or holds up another."""

    def test_the_inbox_keeps_bodies_until_settled(self) -> None:
        """An accepted body is pending until settle applies its events and forgets it."""
        store = self.store
        body = _body("in", S.DEVICE_ACK, 3)
        (inbox_id,) = store.accept([body])
        assert list(store.pending()) == [(inbox_id, body)]
        (summary,) = store.settle([(inbox_id, [ev("in", S.DEVICE_ACK, 3)])], self.tracker().policy)
        assert summary.applied == 1
        assert list(store.pending()) == [], "a settled body must leave the inbox"
        state = store.get("in")
        assert state is not None
        assert state.status is S.DEVICE_ACK

    def test_bodies_accepted_together_are_kept_in_order(self) -> None:
        """accept keeps a group of bodies under new ids, and pending lists them oldest first."""
        bodies = [_body(f"o-{i}", S.QUEUED, i) for i in range(3)]
        first = self.store.accept(bodies[:2])
        second = self.store.accept(bodies[2:])
        ids = [*first, *second]
        assert len(set(ids)) == 3, f"inbox ids must be new: {ids}"
        assert list(self.open_again().pending()) == list(zip(ids, bodies, strict=True))

    def test_receive_keeps_nothing_when_the_store_fails_and_a_retry_applies(self) -> None:
        """A failing intake keeps nothing and raises (no 2xx); a retry applies the body."""
        body = _body("rcv", S.READ, 9, "whatsapp")
        with pytest.raises(RuntimeError, match="connection refused"):
            Faulty(self.store, intake=_down).tracker().receive(body)
        assert list(self.store.pending()) == []
        assert list(self.store.dead_letters()) == []
        tracker = self.tracker()
        assert tracker.get("rcv") is None
        receipt = tracker.receive(body)  # Clickatell sends it again
        assert receipt.summary is not None
        assert receipt.summary.applied == 1
        assert _status(self.store, "rcv") is S.READ

    def test_receive_applies_valid_bodies_and_dead_letters_invalid_ones(self) -> None:
        """A good body is applied at once, leaving no inbox entry; a bad one raises and is kept."""
        tracker = self.tracker()
        receipt = tracker.receive(_body("ok", S.QUEUED, 1).encode())
        assert receipt.summary is not None
        assert receipt.summary.applied == 1
        assert receipt.format == "one_api"
        assert list(self.store.pending()) == []
        inbound = tracker.receive({"moMsgId": "in-1", "text": "hi"})  # nothing to keep
        assert (inbound.ignored_kinds, inbound.format) == (
            ("legacy MO",),
            "legacy",
        )
        with pytest.raises(InvalidCallback):
            tracker.receive(b'{"event": {}}')
        assert [d.payload for d in tracker.dead_letters()] == ['{"event": {}}']

    def test_a_group_of_bodies_is_one_commit(self) -> None:
        """receive_many applies valid bodies and dead-letters bad ones in one commit, in order."""
        tracker = self.tracker()
        commits: list[int] = []
        self.store.on_change(lambda changes: commits.append(len(changes)))
        bodies = [
            _body("g1", S.QUEUED, 1),
            "not json",
            _body("g1", S.DEVICE_ACK, 2),
            _body("g1", S.QUEUED, 1),
            _body("g2", S.EXPIRED, 1),
        ]
        results = tracker.receive_many(bodies)
        assert isinstance(results[1], InvalidCallback)
        counts = [
            (r.summary.applied, r.summary.stale, r.summary.duplicate)
            for r in results
            if not isinstance(r, Exception) and r.summary is not None
        ]
        assert counts == [(1, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 0)]
        assert commits == [3], "the group's three changes must be one commit's"
        assert list(self.store.pending()) == []
        state = tracker.get("g1")
        assert state is not None
        assert state.status is S.DEVICE_ACK
        assert [d.payload for d in tracker.dead_letters()] == ["not json"]

    def test_a_body_the_store_refuses_is_dead_lettered_and_its_group_applied(self) -> None:
        """A body whose row the database refuses is rolled back alone and kept; the rest apply."""
        if not self.refuse_rows_about("poison-1"):
            pytest.skip(f"{type(self.store).__name__} has no database that could refuse a row")
        tracker = self.tracker()
        commits: list[int] = []
        self.store.on_change(lambda changes: commits.append(len(changes)))
        poison = _body("poison-1", S.DEVICE_ACK, 1)
        bodies = [_body(f"ok-{i}", S.DEVICE_ACK, i) for i in range(4)]
        results = tracker.receive_many([*bodies[:2], poison, *bodies[2:], "not json"])
        receipts = [r for r in results if not isinstance(r, Exception)]
        assert [r.summary.applied for r in receipts if r.summary is not None] == [1, 1, 1, 1]
        (kept,) = [r for r in receipts if r.dead_letter is not None]
        assert kept.summary is None
        assert kept.dead_letter is not None
        assert "refused by the test" in kept.dead_letter.error
        assert isinstance(results[-1], InvalidCallback)
        assert sorted(d.payload for d in self.store.dead_letters()) == sorted([poison, "not json"])
        assert commits == [4], "the group, poison and all, must be one commit"
        assert all(_status(self.store, f"ok-{i}") is S.DEVICE_ACK for i in range(4))
        assert self.store.get("poison-1") is None
        assert list(self.store.history("poison-1")) == []
        (alone,) = tracker.receive_many([_body("poison-1", S.QUEUED, 0)])
        assert not isinstance(alone, Exception)
        assert alone.dead_letter is not None, "a body refused on its own is kept too"

    def test_every_way_in_applies_a_body_all_or_nothing(self) -> None:
        """A body of two updates, one refused: ingest and retry apply neither, and say so."""
        if not self.refuse_rows_about("poison-2"):
            pytest.skip(f"{type(self.store).__name__} has no database that could refuse a row")
        tracker = self.tracker()
        body = callback_body(ev("fine-2", S.DEVICE_ACK, 2))
        second = callback_body(ev("poison-2", S.DEVICE_ACK, 2))["event"]["messageStatusUpdate"]
        body["event"]["messageStatusUpdate"].extend(second)
        with pytest.raises(Exception, match="refused by the test"):
            tracker.ingest(json.dumps(body))
        assert self.store.get("fine-2") is None, "half a body must not be applied"
        (received,) = tracker.receive_many([json.dumps(body)])
        assert not isinstance(received, Exception)
        assert received.dead_letter is not None
        assert self.store.get("fine-2") is None
        report = tracker.retry_dead_letters()  # the database still refuses it
        assert report.applied == 0
        assert self.store.get("fine-2") is None
        assert [d.payload for d in self.store.dead_letters()] == [json.dumps(body)]

    def test_drain_applies_what_it_can_and_keeps_the_poison(self) -> None:
        """At start-up a poison body in the inbox cannot block the bodies stored with it."""
        bodies = [_body(f"w-{i}", S.READ, i, "whatsapp") for i in range(3)]
        poison = _body("poison-2", S.READ, 9, "whatsapp")
        self.store.accept([bodies[0], poison, bodies[1], bodies[2]])
        tracker = _poisoned(self.store, []).tracker()
        assert tracker.drain_inbox().applied == 3
        assert list(self.store.pending()) == []
        assert [d.payload for d in self.store.dead_letters()] == [poison]
        assert tracker.drain_inbox().total == 0  # and a second drain finds nothing

    def test_while_the_store_does_not_answer_nothing_is_dead_lettered(self) -> None:
        """A failing intake is an outage: every body gets the error, none is kept or lost."""
        tracker = Faulty(self.store, intake=_down).tracker()
        bodies = [_body(f"o-{i}", S.QUEUED, i) for i in range(3)]
        results = tracker.receive_many([*bodies, "not json"])
        assert all(isinstance(r, RuntimeError) for r in results), results
        assert list(self.store.dead_letters()) == []
        assert list(self.store.pending()) == []
        assert all(self.store.get(f"o-{i}") is None for i in range(3))

    def test_a_failing_store_dead_letters_nothing(self) -> None:
        """A store-wide failure (``StoreUnavailable``: a full disk) never makes a body poison.

        The receiver's bodies all get the error (a 503: the client keeps them);
        bodies an older receiver left in the inbox stay there and the drain
        raises.
        """
        store = self.store

        def full(*args: object) -> None:
            raise StoreUnavailable("the store", "database or disk is full")

        left = [_body(f"full-{i}", S.DEVICE_ACK, i) for i in range(3)]
        store.accept(left)
        with pytest.raises(StoreUnavailable):
            Faulty(store, settle=full).tracker().drain_inbox()
        for group in (
            [_body("kept-out", S.QUEUED, 1)],
            [_body(f"out-{i}", S.QUEUED, i) for i in (1, 2)],
        ):
            results = Faulty(store, intake=full).tracker().receive_many(group)
            assert all(isinstance(r, StoreUnavailable) for r in results), results
        assert list(store.dead_letters()) == []
        assert [payload for _, payload in store.pending()] == left
        assert self.tracker().drain_inbox().applied == 3

    def test_a_body_of_other_events_only_is_answered_without_a_write(self) -> None:
        """An inbound moText posted to the status URL is acknowledged: nothing kept or lost."""
        tracker = self.tracker()
        receipt = tracker.receive(json.dumps({"event": {"moText": [{"messageId": "in"}]}}))
        assert (receipt.events, receipt.ignored_kinds) == ((), ("moText",))
        assert receipt.ignored == 1
        assert receipt.summary is not None
        assert receipt.summary.total == 0
        assert list(self.store.pending()) == []
        assert list(tracker.dead_letters()) == []
