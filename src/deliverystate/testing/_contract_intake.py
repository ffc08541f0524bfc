"""The store contract, part three: bodies that cannot be parsed (the dead letter) and batches."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given

from ..callbacks._parse import read_many
from ..errors import InvalidCallback
from ..rules._catalog import Status
from ..simulate import callback_body, simulate_lines
from ..stores import MemoryStore
from ..tracking._receipts import payload_text
from ..tracking._tracker import Tracker
from ._bodies import Callback, callbacks
from ._harness import ContractBase, ev
from ._invalid import invalid_callbacks

__all__ = ["IntakeContract"]

S = Status


class IntakeContract(ContractBase):
    """What a store keeps of callback bodies: the bad ones verbatim, the good ones applied."""

    def test_dead_letters_are_kept_once_and_replayable(self) -> None:
        """Bad bodies are stored once with their error; retry applies what now parses."""
        tracker = self.tracker()
        for _ in range(2):
            with pytest.raises(InvalidCallback):
                tracker.ingest(b"{not json")
        letters = list(tracker.dead_letters())
        assert [x.payload for x in letters] == ["{not json"], "one letter per distinct body"
        assert "not JSON" in letters[0].error
        assert letters[0].received_at.utcoffset() is not None, "received_at is timezone-aware"
        good = callback_body(ev("dl", S.DEVICE_ACK, 5))
        self.store.add_dead_letter(json.dumps(good), "unknown status code 5 (old catalog)")
        report = tracker.retry_dead_letters()
        assert (report.applied, len(report.applied_letters)) == (1, 1)
        assert [x.payload for x in report.invalid_letters] == ["{not json"]
        assert report.still_invalid == 1
        state = tracker.get("dl")
        assert state is not None
        assert state.status is S.DEVICE_ACK
        assert [x.payload for x in tracker.dead_letters()] == ["{not json"]

    def test_counts_and_the_newest_dead_letters_agree_with_the_full_reads(self) -> None:
        """count_dead_letters, count_pending and dead_letters(newest=n) say what the lists say."""
        store = self.store
        assert (store.count_dead_letters(), store.count_pending()) == (0, 0)
        assert list(store.dead_letters(newest=3)) == []
        for n in range(5):
            store.add_dead_letter(f"bad body {n}", f"error {n}")
        store.add_dead_letter("bad body 0", "error 0")  # kept once
        kept = store.accept(["a kept body", "another"])
        everything = list(store.dead_letters())
        assert store.count_dead_letters() == len(everything) == 5
        assert store.count_pending() == len(store.pending()) == 2
        assert list(store.dead_letters(newest=3)) == everything[-3:], "the 3 newest, oldest first"
        assert list(store.dead_letters(newest=10)) == everything
        assert list(store.dead_letters(newest=0)) == []
        store.remove_dead_letter(everything[-1].id)
        store.quarantine(kept[0], "cannot be applied")
        assert (store.count_dead_letters(), store.count_pending()) == (5, 1)
        assert [d.payload for d in store.dead_letters(newest=1)] == ["a kept body"]

    def test_every_invalid_body_is_kept_as_it_came_with_its_error(self) -> None:
        """Any body the parser refuses is in the dead letter, verbatim, with the refusal."""

        @self.examples()
        @given(invalid_callbacks())
        def check(callback: Callback) -> None:
            tracker = self.tracker()
            with pytest.raises(InvalidCallback) as refused:
                tracker.ingest(callback.body)
            text = payload_text(callback.body)
            kept = [d for d in tracker.dead_letters() if d.payload == text]
            assert kept, f"the dead letter lost {text!r}"
            assert any(d.error == str(refused.value) for d in kept), (
                f"the dead letter holds {text!r} without its error {str(refused.value)!r}"
            )

        check()

    def test_ingest_many_applies_good_bodies_and_keeps_bad_ones(self) -> None:
        """One bad body in a batch is dead-lettered; the others are applied."""
        tracker = self.tracker()
        bodies: list[str | bytes] = [
            json.dumps(callback_body(ev("im", S.QUEUED, 1))),
            "nope",
            b"{}",
        ]
        report = tracker.ingest_many(bodies)
        assert report.summary.applied == 1
        assert [index for index, _ in report.errors] == [1, 2]
        assert len(tracker.dead_letters()) == 2

    def test_bodies_parsed_elsewhere_are_ingested_alike(self) -> None:
        """ingest_parsed with read_many's batch (even pickled) does what ingest_many does."""
        bodies = simulate_lines(150, seed=12)
        direct, elsewhere = Tracker(MemoryStore()), self.tracker()
        expected = direct.ingest_many(bodies)
        report = elsewhere.ingest_parsed(bodies, pickle.loads(pickle.dumps(read_many(bodies))))
        assert report.summary == expected.summary
        assert [(i, str(e)) for i, e in report.errors] == [(i, str(e)) for i, e in expected.errors]
        assert report.ignored == expected.ignored
        ids = {event.message_id for event in read_many(bodies).events}
        assert {m: elsewhere.get(m) for m in ids} == {m: direct.get(m) for m in ids}
        assert [(d.payload, d.error) for d in elsewhere.dead_letters()] == [
            (d.payload, d.error) for d in direct.dead_letters()
        ]

    def test_every_valid_body_reaches_the_states_it_means(self) -> None:
        """Any body Clickatell could send, received, leaves the states its events make."""
        tracker, expected = self.tracker(), Tracker(MemoryStore())  # both see every body

        @self.examples()
        @given(callbacks())
        def check(callback: Callback) -> None:
            receipt = tracker.receive(callback.body)
            expected.apply_many(callback.events)
            assert receipt.events == callback.events
            for event in callback.events:
                assert tracker.get(event.message_id) == expected.get(event.message_id), (
                    f"the state of {event.message_id} after {callback.body!r}"
                )
            assert list(self.store.pending()) == [], "a received body must leave the inbox"

        check()

    def test_bodies_holding_nul_and_lone_surrogates_are_kept_exactly(self) -> None:
        """Any text reaches the dead letter and the inbox and comes back unchanged."""
        store = self.store
        texts = ('{"messageId": "a\x00b"', "\ud800 not json", "plain \x00 nul", "é中\U0001f600")
        for text in texts:
            letter = store.add_dead_letter(text, f"error about {text}")
            assert letter.payload == text, (
                f"the dead letter changed {text!r} into {letter.payload!r}"
            )
            (inbox_id,) = store.accept([text])
            assert (inbox_id, text) in list(store.pending()), f"the inbox lost or changed {text!r}"
            moved = store.quarantine(inbox_id, "bad\x00error")
            assert moved is not None
            assert moved.payload == text
        assert [d.payload for d in store.dead_letters()][:1] == ['{"messageId": "a\x00b"']
        assert list(store.pending()) == []
