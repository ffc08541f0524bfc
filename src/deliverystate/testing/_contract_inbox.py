"""The store contract, part four: the inbox, and bodies that fail on their own (poison)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from .._catalog import Status
from .._events import StatusEvent
from .._policy import Policy
from ..errors import InvalidCallback
from ..simulate import callback_body
from ..stores import Store, Summary
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
    """How a store keeps bodies until they are applied, so that none is lost or blocks another."""

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

    def test_receive_keeps_a_body_whose_apply_failed_and_drains_it(self) -> None:
        """If the store goes away after the body was stored, the body waits and is applied later."""
        body = _body("rcv", S.READ, 9, "whatsapp")
        receipt = Faulty(self.store, settle=_down, ping=_down).tracker().receive(body)
        assert receipt.summary is None
        assert "connection refused" in (receipt.error or "")
        assert receipt.format == "one_api"
        assert [payload for _, payload in self.store.pending()] == [body]
        tracker = self.tracker()
        assert tracker.get("rcv") is None
        assert tracker.drain_inbox().applied == 1
        state = tracker.get("rcv")
        assert state is not None
        assert state.status is S.READ
        assert list(self.store.pending()) == []

    def test_receive_applies_valid_bodies_and_dead_letters_invalid_ones(self) -> None:
        """A good body is applied at once, leaving no inbox entry; a bad one raises and is kept."""
        tracker = self.tracker()
        receipt = tracker.receive(_body("ok", S.QUEUED, 1).encode())
        assert receipt.summary is not None
        assert receipt.summary.applied == 1
        assert receipt.format == "one_api"
        assert list(self.store.pending()) == []
        inbound = tracker.receive({"moMsgId": "in-1", "text": "hi"})  # nothing to keep
        assert (inbound.inbox_id, inbound.ignored_kinds, inbound.format) == (
            None,
            ("legacy MO",),
            "legacy",
        )
        with pytest.raises(InvalidCallback):
            tracker.receive(b'{"event": {}}')
        assert [d.payload for d in tracker.dead_letters()] == ['{"event": {}}']

    def test_a_group_of_bodies_is_stored_and_settled_together(self) -> None:
        """receive_many stores valid bodies, dead-letters bad ones, and reports each in order."""
        tracker = self.tracker()
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
        assert len({r.inbox_id for r in results if not isinstance(r, Exception)}) == 4
        assert list(self.store.pending()) == []
        state = tracker.get("g1")
        assert state is not None
        assert state.status is S.DEVICE_ACK
        assert [d.payload for d in tracker.dead_letters()] == ["not json"]

    def test_a_poison_body_goes_to_the_dead_letter_and_its_group_is_applied(self) -> None:
        """When a group fails, its bodies are applied one by one; one that fails alone is kept."""
        tried: list[int] = []
        tracker = _poisoned(self.store, tried).tracker()
        poison = _body("poison-1", S.DEVICE_ACK, 1)
        bodies = [_body(f"ok-{i}", S.DEVICE_ACK, i) for i in range(4)]
        results = tracker.receive_many([*bodies[:2], poison, *bodies[2:]])
        receipts = [r for r in results if not isinstance(r, Exception)]
        assert [r.summary.applied for r in receipts if r.summary is not None] == [1, 1, 1, 1]
        (kept,) = [r for r in receipts if r.dead_letter is not None]
        assert kept.summary is None
        assert kept.dead_letter is not None
        assert "value too long" in kept.dead_letter.error
        assert [d.payload for d in self.store.dead_letters()] == [poison]
        assert list(self.store.pending()) == []
        assert all(_status(self.store, f"ok-{i}") is S.DEVICE_ACK for i in range(4))
        assert self.store.get("poison-1") is None
        # the group once, every body alone, and the poison body once more before it was kept
        assert tried == [5, 1, 1, 1, 1, 1, 1]

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
        """A failing settle with a failing ping is an outage: every body waits in the inbox."""
        tracker = Faulty(self.store, settle=_down, ping=_down).tracker()
        bodies = [_body(f"o-{i}", S.QUEUED, i) for i in range(3)]
        results = tracker.receive_many(bodies)
        assert all(
            not isinstance(r, Exception) and r.summary is None and r.dead_letter is None
            for r in results
        )
        with pytest.raises(RuntimeError):
            tracker.drain_inbox()
        assert list(self.store.dead_letters()) == []
        assert [payload for _, payload in self.store.pending()] == bodies
        assert self.tracker().drain_inbox().applied == 3

    def test_a_body_the_inbox_refuses_alone_is_dead_lettered_and_the_rest_kept(self) -> None:
        """accept is isolated too: the body the inbox refuses on its own goes to the dead letter."""
        store = self.store

        def accept(payloads: Sequence[str]) -> list[int]:
            if any("poison" in p for p in payloads):
                raise RuntimeError("cannot store this body")
            return store.accept(payloads)

        tracker = Faulty(store, accept=accept).tracker()
        poison = _body("poison-3", S.QUEUED, 1)
        first, second = tracker.receive_many([poison, _body("fine", S.QUEUED, 1)])
        assert not isinstance(first, Exception)
        assert first.dead_letter is not None
        assert not isinstance(second, Exception)
        assert second.summary is not None
        assert second.summary.applied == 1
        assert [d.payload for d in store.dead_letters()] == [poison]
        assert list(store.pending()) == []

    def test_a_body_of_other_events_only_is_answered_without_the_inbox(self) -> None:
        """An inbound moText posted to the status URL is acknowledged: nothing kept or lost."""
        tracker = self.tracker()
        receipt = tracker.receive(json.dumps({"event": {"moText": [{"messageId": "in"}]}}))
        assert (receipt.inbox_id, receipt.events, receipt.ignored_kinds) == (None, (), ("moText",))
        assert receipt.ignored == 1
        assert receipt.summary is not None
        assert receipt.summary.total == 0
        assert list(self.store.pending()) == []
        assert list(tracker.dead_letters()) == []
