"""The store contract: the same suite runs against MemoryStore, SQLiteStore and PostgresStore."""

from __future__ import annotations

import io
import json
import pickle
import sqlite3
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliverystate import (
    FAILURE_WINS,
    IllegalTransition,
    InvalidCallback,
    MemoryStore,
    Outcome,
    PolicyMismatch,
    SQLiteStore,
    Status,
    StatusEvent,
    Store,
    StoreUnavailable,
    Tracker,
    read_many,
)
from deliverystate.cli import replay_stream
from deliverystate.simulate import callback_body, generate_callbacks, simulate_lines
from deliverystate.stores import Listed, MessageQuery

from .conftest import StoreFactory
from .strategies import BASE_MS, consistent_events

S = Status
SLOW = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def fresh(events: list[StatusEvent]) -> list[StatusEvent]:
    """The same reports about message ids no earlier example used, so examples share a store."""
    prefix = uuid.uuid4().hex[:8]
    return [
        StatusEvent.from_ms(
            f"{prefix}-{e.message_id}", e.status, e.timestamp_ms, e.channel, e.client_message_id
        )
        for e in events
    ]


def ev(message_id: str, status: Status, offset_ms: int, channel: str | None = "sms") -> StatusEvent:
    """A report ``offset_ms`` after the base time."""
    return StatusEvent.from_ms(message_id, status, BASE_MS + offset_ms, channel)


def test_store_satisfies_the_protocol(open_store: StoreFactory) -> None:
    """Every store is a Store."""
    assert isinstance(open_store(), Store)


@SLOW
@given(data=st.data())
def test_per_event_outcomes_match_the_memory_store(
    open_store: StoreFactory, data: st.DataObject
) -> None:
    """Applying reports one by one gives the memory store's decisions, event for event."""
    events = fresh(data.draw(consistent_events(max_size=20)))
    tracker, reference = Tracker(open_store()), Tracker(MemoryStore())
    for event in events:
        got, want = tracker.apply(event), reference.apply(event)
        assert (got.outcome, got.state, got.implied) == (want.outcome, want.state, want.implied)


@SLOW
@given(data=st.data())
def test_batches_reach_the_memory_stores_states(
    open_store: StoreFactory, data: st.DataObject
) -> None:
    """Any split of a shuffled, repeated stream into batches ends in the reference states."""
    events = fresh(data.draw(consistent_events(max_size=40)))
    stream = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events)))))
    reference = Tracker(MemoryStore())
    reference.apply_many(events)
    tracker = Tracker(open_store())
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    total = 0
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        total += tracker.apply_many(stream[start:stop]).total
    assert total == len(stream)
    for message_id in {e.message_id for e in events}:
        assert tracker.get(message_id) == reference.get(message_id)
        distinct = {(e.status, e.timestamp_ms) for e in events if e.message_id == message_id}
        assert len(tracker.history(message_id)) == len(distinct)


def test_history_is_the_timeline_without_repeats(open_store: StoreFactory) -> None:
    """History lists each report once, in event-time order, with its outcome and arrival."""
    tracker = Tracker(open_store())
    reports = [ev("h", S.DEVICE_ACK, 500), ev("h", S.QUEUED, 100), ev("h", S.EXPIRED, 900)]
    tracker.apply_many(reports)
    tracker.apply_many(reports)  # a redelivered batch
    tracker.apply(ev("h", S.READ, 700, "whatsapp"))  # wrong channel
    timeline = [(h.event.status, h.outcome) for h in tracker.history("h")]
    assert timeline == [
        (S.QUEUED, Outcome.STALE),
        (S.DEVICE_ACK, Outcome.APPLIED),
        (S.READ, Outcome.REJECTED),
        (S.EXPIRED, Outcome.STALE),
    ]
    arrivals = {h.event.status: h.arrival for h in tracker.history("h")}
    assert arrivals[S.DEVICE_ACK] < arrivals[S.QUEUED] < arrivals[S.EXPIRED] < arrivals[S.READ]
    assert tracker.history("nobody") == []


def test_summary_counts_each_outcome(open_store: StoreFactory) -> None:
    """A batch's summary counts applied, stale, duplicate and rejected reports."""
    tracker = Tracker(open_store())
    summary = tracker.apply_many(
        [
            ev("s", S.SENT_TO_SUPPLIER, 10),
            ev("s", S.DEVICE_ACK, 20),
            ev("s", S.QUEUED, 5),
            ev("s", S.DEVICE_ACK, 20),
            ev("s", S.READ, 30, "whatsapp"),
        ]
    )
    assert (summary.applied, summary.stale, summary.duplicate) == (2, 1, 1)
    assert [d.event.status for d in summary.rejected] == [S.READ]


def test_states_survive_reopening(open_store: StoreFactory) -> None:
    """A second connection to the same place sees what the first wrote."""
    Tracker(open_store()).apply(ev("r", S.DEVICE_ACK, 1))
    state = open_store().get("r")
    assert state is not None
    assert (state.status, state.channel) == (S.DEVICE_ACK, "sms")


def test_count_by_status(open_store: StoreFactory) -> None:
    """Counts group messages by current status."""
    tracker = Tracker(open_store())
    tracker.apply_many([ev("a", S.READ, 1), ev("b", S.READ, 1), ev("c", S.EXPIRED, 1)])
    assert tracker.count_by_status() == {S.READ: 2, S.EXPIRED: 1}


def test_advance_is_strict_and_atomic(open_store: StoreFactory) -> None:
    """Legal steps are written; an illegal one raises and leaves state and history alone."""
    tracker = Tracker(open_store())
    tracker.store.advance(ev("adv", S.QUEUED, 0), tracker.policy)
    tracker.store.advance(ev("adv", S.SENT_TO_SUPPLIER, 10), tracker.policy)
    before = (tracker.get("adv"), list(tracker.history("adv")))
    with pytest.raises(IllegalTransition):
        tracker.store.advance(ev("adv", S.SCHEDULED, 20), tracker.policy)
    assert (tracker.get("adv"), list(tracker.history("adv"))) == before
    assert tracker.get("adv").status is S.SENT_TO_SUPPLIER


def test_failed_batch_leaves_nothing_behind(open_store: StoreFactory) -> None:
    """A batch whose input fails half-way changes no state and writes no history."""
    tracker = Tracker(open_store())
    tracker.apply(ev("f", S.QUEUED, 0))

    def broken():  # type: ignore[no-untyped-def]
        yield ev("f", S.DEVICE_ACK, 10)
        yield ev("g", S.QUEUED, 10)
        raise OSError("the input went away")

    with pytest.raises(OSError, match="went away"):
        tracker.apply_many(broken())
    assert tracker.get("f").status is S.QUEUED
    assert tracker.get("g") is None
    assert len(tracker.history("f")) == 1


def driver_failure(store: Store) -> Exception:
    """What the store's database driver raises when the disk or the server gives up."""
    if isinstance(store, SQLiteStore):
        return sqlite3.OperationalError("disk I/O error")
    import psycopg  # noqa: PLC0415 - the postgres extra

    return psycopg.OperationalError("server closed the connection unexpectedly")


def test_a_write_that_fails_rolls_the_batch_back(
    open_sql_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the database fails after the writes, the batch leaves no trace, new rows included."""
    store = open_sql_store()
    tracker = Tracker(store)
    tracker.apply(ev("m", S.QUEUED, 0))
    original = type(store)._write
    failure = driver_failure(store)

    def write_then_fail(self, *args):  # type: ignore[no-untyped-def]
        original(self, *args)
        raise failure

    monkeypatch.setattr(type(store), "_write", write_then_fail)
    with pytest.raises(StoreUnavailable, match=str(failure)):
        tracker.apply_many([ev("m", S.DEVICE_ACK, 1), ev("n", S.QUEUED, 0)])
    monkeypatch.undo()
    assert store.get("m").status is S.QUEUED
    assert store.get("n") is None
    assert [state.message_id for state in store.iter_states()] == ["m"]  # type: ignore[attr-defined]
    assert store.history_size() == 1  # type: ignore[attr-defined]


def test_dead_letters_are_kept_once_and_replayable(open_store: StoreFactory) -> None:
    """Bad bodies are stored once with their error; retry applies what now parses."""
    tracker = Tracker(open_store())
    for _ in range(2):
        with pytest.raises(InvalidCallback):
            tracker.ingest(b"{not json")
    (letter,) = tracker.dead_letters()
    assert letter.payload == "{not json"
    assert "not JSON" in letter.error
    assert letter.received_at.utcoffset() is not None
    good = callback_body(ev("dl", S.DEVICE_ACK, 5))
    tracker.store.add_dead_letter(json.dumps(good), "unknown status code 5 (old catalog)")
    report = tracker.retry_dead_letters()
    assert len(report.applied) == 1
    assert [x.payload for x in report.still_invalid] == ["{not json"]
    assert tracker.get("dl").status is S.DEVICE_ACK
    assert [x.payload for x in tracker.dead_letters()] == ["{not json"]


def test_ingest_many_applies_good_bodies_and_keeps_bad_ones(open_store: StoreFactory) -> None:
    """One bad body in a batch is dead-lettered; the others are applied."""
    tracker = Tracker(open_store())
    bodies = [json.dumps(callback_body(ev("im", S.QUEUED, 1))), "nope", b"{}"]
    report = tracker.ingest_many(bodies)
    assert report.summary.applied == 1
    assert [index for index, _ in report.errors] == [1, 2]
    assert len(tracker.dead_letters()) == 2


def test_bodies_parsed_elsewhere_are_ingested_alike(open_store: StoreFactory) -> None:
    """ingest_parsed with read_many's batch (even pickled) does what ingest_many does."""
    bodies = simulate_lines(150, seed=12)
    direct, elsewhere = Tracker(MemoryStore()), Tracker(open_store())
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


def test_sql_stores_refuse_to_mix_policies(open_sql_store: StoreFactory) -> None:
    """Keys written under one policy are not compared under another until adopted."""
    Tracker(open_sql_store()).apply(ev("p", S.READ, 1))
    other = open_sql_store()
    with pytest.raises(PolicyMismatch, match="delivery wins"):
        Tracker(other, FAILURE_WINS).apply(ev("p", S.EXPIRED, 2))
    other.adopt_policy(FAILURE_WINS)  # type: ignore[attr-defined]
    decision = Tracker(other, FAILURE_WINS).apply(ev("p", S.EXPIRED, 2))
    assert decision.outcome is Outcome.APPLIED
    (key,) = other._read(  # type: ignore[attr-defined]
        other._sql("SELECT precedence FROM ds_messages WHERE message_id = ?"),  # type: ignore[attr-defined]
        ("p",),
    )[0]
    assert key == FAILURE_WINS.key(S.EXPIRED, BASE_MS + 2)


def test_inbox_keeps_bodies_until_settled(open_store: StoreFactory) -> None:
    """An accepted body is pending until settle applies its events and forgets it."""
    store = open_store()
    body = json.dumps(callback_body(ev("in", S.DEVICE_ACK, 3)))
    (inbox_id,) = store.accept([body])
    assert store.pending() == [(inbox_id, body)]
    (summary,) = store.settle([(inbox_id, [ev("in", S.DEVICE_ACK, 3)])], Tracker().policy)
    assert summary.applied == 1
    assert store.pending() == []
    assert store.get("in").status is S.DEVICE_ACK


def test_receive_keeps_a_body_whose_apply_failed_and_drains_it(
    open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the store goes away after the body was stored, the body waits and is applied later."""
    store = open_store()
    tracker = Tracker(store)
    body = json.dumps(callback_body(ev("rcv", S.READ, 9, "whatsapp")))

    def broken(*args: object) -> None:
        raise RuntimeError("database went away mid-batch")

    monkeypatch.setattr(store, "settle", broken)
    monkeypatch.setattr(store, "ping", broken)
    receipt = tracker.receive(body)
    assert receipt.summary is None
    assert "went away" in (receipt.error or "")
    assert receipt.format == "one_api"
    monkeypatch.undo()
    assert [payload for _, payload in store.pending()] == [body]
    assert tracker.get("rcv") is None
    assert tracker.drain_inbox().applied == 1
    assert tracker.get("rcv").status is S.READ
    assert store.pending() == []


def test_receive_applies_valid_bodies_and_dead_letters_invalid_ones(
    open_store: StoreFactory,
) -> None:
    """A good body is applied at once and leaves no inbox entry; a bad one raises and is kept.

    Each receipt names the format its body was read as.
    """
    tracker = Tracker(open_store())
    receipt = tracker.receive(json.dumps(callback_body(ev("ok", S.QUEUED, 1))).encode())
    assert receipt.summary is not None
    assert receipt.summary.applied == 1
    assert receipt.format == "one_api"
    assert tracker.store.pending() == []
    inbound = tracker.receive({"moMsgId": "in-1", "text": "hi"})  # nothing to keep
    assert (inbound.inbox_id, inbound.ignored, inbound.format) == (None, ("legacy MO",), "legacy")
    with pytest.raises(InvalidCallback):
        tracker.receive(b'{"event": {}}')
    assert [d.payload for d in tracker.dead_letters()] == ['{"event": {}}']


def test_milestones_come_from_accepted_history(open_store: StoreFactory) -> None:
    """First report, first delivery (READ counts) and first read, rejected reports ignored."""
    tracker = Tracker(open_store())
    tracker.apply_many(
        [
            ev("m1", S.DEVICE_ACK, 900),
            ev("m1", S.QUEUED, 100),
            ev("m1", S.READ, 2000, None),
            ev("m2", S.SENT_TO_SUPPLIER, 50),
            ev("m2", S.READ, 400, "whatsapp"),  # rejected: m2 is on SMS
            ev("m3", S.READ, 70),
        ]
    )
    got = {
        m.message_id: (m.first_ms, m.delivered_ms, m.read_ms) for m in tracker.store.milestones()
    }
    assert got == {
        "m1": (BASE_MS + 100, BASE_MS + 900, BASE_MS + 2000),
        "m2": (BASE_MS + 50, None, None),
        "m3": (BASE_MS + 70, BASE_MS + 70, BASE_MS + 70),
    }


def test_milestones_since_a_time_are_those_of_the_messages_first_reported_then(
    open_store: StoreFactory,
) -> None:
    """``milestones(since)`` keeps the messages whose first report is at or after ``since``."""
    tracker = Tracker(open_store())
    tracker.apply_many(
        [
            ev("old", S.QUEUED, 100),
            ev("old", S.DEVICE_ACK, 900),  # delivered inside the window, sent before it
            ev("edge", S.QUEUED, 500),
            ev("edge", S.DEVICE_ACK, 700),
            ev("new", S.SENT_TO_SUPPLIER, 800),
            ev("early", S.DEVICE_ACK, 1000),
            ev("early", S.QUEUED, 200),  # arrives late, but moves the first report back
        ]
    )
    got = {m.message_id: m.first_ms for m in tracker.store.milestones(BASE_MS + 500)}
    assert got == {"edge": BASE_MS + 500, "new": BASE_MS + 800}
    assert {m.message_id for m in tracker.store.milestones(None)} == {"old", "edge", "new", "early"}


def test_a_group_of_bodies_is_stored_and_settled_together(open_store: StoreFactory) -> None:
    """receive_many stores valid bodies, dead-letters bad ones, and reports each in order."""
    tracker = Tracker(open_store())
    bodies = [
        json.dumps(callback_body(ev("g1", S.QUEUED, 1))),
        "not json",
        json.dumps(callback_body(ev("g1", S.DEVICE_ACK, 2))),
        json.dumps(callback_body(ev("g1", S.QUEUED, 1))),
        json.dumps(callback_body(ev("g2", S.EXPIRED, 1))),
    ]
    results = tracker.receive_many(bodies)
    assert isinstance(results[1], InvalidCallback)
    receipts = [r for r in results if not isinstance(r, InvalidCallback)]
    counts = [(r.summary.applied, r.summary.stale, r.summary.duplicate) for r in receipts]  # type: ignore[union-attr]
    assert counts == [(1, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 0)]
    assert len({r.inbox_id for r in receipts}) == 4
    assert tracker.store.pending() == []
    assert tracker.get("g1").status is S.DEVICE_ACK
    assert [d.payload for d in tracker.dead_letters()] == ["not json"]


# --- one bad body never blocks the others -----------------------------------------------


def poison_settle(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make ``store.settle`` fail for any group holding a report about "poison-*".

    Stands for a body the store cannot hold (the ids the parser refuses are the
    known cases; this is the unknown one).  Returns the sizes of the groups tried.
    """
    real = store.settle
    tried: list[int] = []

    def settle(items, policy):  # type: ignore[no-untyped-def]
        tried.append(len(items))
        if any(e.message_id.startswith("poison") for _, events in items for e in events):
            raise RuntimeError("value too long for the index")
        return real(items, policy)

    monkeypatch.setattr(store, "settle", settle)
    return tried


def test_a_poison_body_goes_to_the_dead_letter_and_its_group_is_applied(
    open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a group fails, its bodies are applied one by one; the one that fails alone is kept."""
    store = open_store()
    tracker = Tracker(store)
    tried = poison_settle(store, monkeypatch)
    poison = json.dumps(callback_body(ev("poison-1", S.DEVICE_ACK, 1)))
    bodies = [json.dumps(callback_body(ev(f"ok-{i}", S.DEVICE_ACK, i))) for i in range(4)]
    results = tracker.receive_many([*bodies[:2], poison, *bodies[2:]])
    assert [r.summary.applied for r in results if r.dead_letter is None] == [1, 1, 1, 1]  # type: ignore[union-attr]
    (kept,) = [r for r in results if r.dead_letter is not None]  # type: ignore[union-attr]
    assert kept.summary is None
    assert "value too long" in kept.dead_letter.error
    assert [d.payload for d in tracker.dead_letters()] == [poison]
    assert store.pending() == []
    assert all(tracker.get(f"ok-{i}").status is S.DEVICE_ACK for i in range(4))
    assert tracker.get("poison-1") is None
    # the group once, every body alone, and the poison body once more before it was kept
    assert tried == [5, 1, 1, 1, 1, 1, 1]


def test_drain_applies_what_it_can_and_keeps_the_poison(
    open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start-up a poison body in the inbox cannot block the bodies stored with it."""
    store = open_store()
    tracker = Tracker(store)
    bodies = [json.dumps(callback_body(ev(f"w-{i}", S.READ, i, "whatsapp"))) for i in range(3)]
    poison = json.dumps(callback_body(ev("poison-2", S.READ, 9, "whatsapp")))
    store.accept([bodies[0], poison, bodies[1], bodies[2]])
    poison_settle(store, monkeypatch)
    assert tracker.drain_inbox().applied == 3
    assert store.pending() == []
    assert [d.payload for d in tracker.dead_letters()] == [poison]
    assert tracker.drain_inbox().total == 0  # and a second drain finds nothing


def test_while_the_store_does_not_answer_nothing_is_dead_lettered(
    open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing settle with a failing ping is an outage: every body waits in the inbox."""
    store = open_store()
    tracker = Tracker(store)

    def down(*args: object) -> None:
        raise RuntimeError("connection refused")

    monkeypatch.setattr(store, "settle", down)
    monkeypatch.setattr(store, "ping", down)
    bodies = [json.dumps(callback_body(ev(f"o-{i}", S.QUEUED, i))) for i in range(3)]
    results = tracker.receive_many(bodies)
    assert all(r.summary is None and r.dead_letter is None for r in results)  # type: ignore[union-attr]
    with pytest.raises(RuntimeError):
        tracker.drain_inbox()
    monkeypatch.undo()
    assert tracker.dead_letters() == []
    assert [payload for _, payload in store.pending()] == bodies
    assert tracker.drain_inbox().applied == 3


def test_a_body_the_inbox_refuses_alone_is_dead_lettered_and_the_rest_kept(
    open_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """accept is isolated too: the body the inbox refuses on its own goes to the dead letter."""
    store = open_store()
    tracker = Tracker(store)
    real = store.accept

    def accept(payloads):  # type: ignore[no-untyped-def]
        if any("poison" in p for p in payloads):
            raise RuntimeError("cannot store this body")
        return real(payloads)

    monkeypatch.setattr(store, "accept", accept)
    poison = json.dumps(callback_body(ev("poison-3", S.QUEUED, 1)))
    good = json.dumps(callback_body(ev("fine", S.QUEUED, 1)))
    first, second = tracker.receive_many([poison, good])
    assert first.dead_letter is not None  # type: ignore[union-attr]
    assert second.summary.applied == 1  # type: ignore[union-attr]
    assert [d.payload for d in tracker.dead_letters()] == [poison]
    assert store.pending() == []


def test_a_body_of_other_events_only_is_answered_without_the_inbox(
    open_store: StoreFactory,
) -> None:
    """An inbound moText posted to the status URL is acknowledged: nothing kept, nothing lost."""
    store = open_store()
    tracker = Tracker(store)
    receipt = tracker.receive(json.dumps({"event": {"moText": [{"messageId": "in"}]}}))
    assert (receipt.inbox_id, receipt.events, receipt.ignored) == (None, (), ("moText",))
    assert receipt.summary is not None
    assert receipt.summary.total == 0
    assert store.pending() == []
    assert tracker.dead_letters() == []


def test_bodies_holding_nul_and_lone_surrogates_are_kept_exactly(open_store: StoreFactory) -> None:
    """Any text reaches the dead letter and the inbox and comes back unchanged (bytes inside)."""
    store = open_store()
    for text in ('{"messageId": "a\x00b"', "\ud800 not json", "plain \x00 nul", "é中\U0001f600"):
        letter = store.add_dead_letter(text, f"error about {text}")
        assert letter.payload == text
        (inbox_id,) = store.accept([text])
        assert (inbox_id, text) in store.pending()
        assert store.quarantine(inbox_id, "bad\x00error").payload == text  # type: ignore[union-attr]
    assert [d.payload for d in store.dead_letters()][:1] == ['{"messageId": "a\x00b"']
    assert store.pending() == []


def test_reads_of_ids_no_store_can_hold_find_nothing(open_store: StoreFactory) -> None:
    """get and history of an id with NUL, a lone surrogate or 10 KB answer None and []."""
    store = open_store()
    for bad in ("a\x00b", "\ud800", "x" * 10_000):
        assert store.get(bad) is None
        assert list(store.history(bad)) == []


# --- retention ---------------------------------------------------------------------------

DAY_MS = 86_400_000


def retention_stream() -> list[str]:
    """A realistic stream: 300 messages over a day, final or still on their way."""
    return [c.body for c in generate_callbacks(300, seed=61) if c.valid]


def states_and_histories(store: Store, ids: set[str]) -> dict[str, object]:
    """Per message: its state and its history as (event, outcome) in order."""
    return {
        m: (store.get(m), [(e.event, e.outcome) for e in store.history(m)]) for m in sorted(ids)
    }


def test_prune_removes_only_old_final_messages_and_replay_of_the_archive_restores_them(
    open_store: StoreFactory,
) -> None:
    """Pruned with an archive, then the archive replayed: identical states and histories."""
    store = open_store()
    tracker = Tracker(store)
    tracker.ingest_many(retention_stream())
    everything = {s.message_id for s in iter_all(store)}
    before_prune = states_and_histories(store, everything)
    cut = datetime.fromtimestamp((BASE_MS + DAY_MS // 3) / 1000, tz=timezone.utc)
    final_and_old = {
        m
        for m in everything
        if store.get(m).status.is_terminal  # type: ignore[union-attr]
        and max(e.event.timestamp_ms for e in store.history(m)) < BASE_MS + DAY_MS // 3
    }
    assert 0 < len(final_and_old) < len(everything)
    assert tracker.prune(cut, dry_run=True) == len(final_and_old)
    archive = io.StringIO()
    assert tracker.prune(cut, archive=archive) == len(final_and_old)
    kept = {s.message_id for s in iter_all(store)}
    assert kept == everything - final_and_old
    assert all(not store.get(m).status.is_terminal or m in kept for m in kept)  # type: ignore[union-attr]
    assert all(store.get(m) is None and list(store.history(m)) == [] for m in final_and_old)
    lines = archive.getvalue().splitlines()
    assert len(lines) == len(final_and_old)
    assert tracker.prune(cut) == 0  # nothing left to prune
    replay_stream((line.encode() for line in lines), tracker)
    assert states_and_histories(store, everything) == before_prune


def test_messages_in_progress_are_never_pruned(open_store: StoreFactory) -> None:
    """However old, a message that is not final stays, and so does a recent final one."""
    tracker = Tracker(open_store())
    tracker.apply_many([ev("slow", S.SENT_TO_SUPPLIER, 0), ev("done", S.DELIVERY_FAILURE, 0)])
    tracker.apply(ev("fresh", S.DEVICE_ACK, 10 * DAY_MS))
    tracker.apply(ev("fresh", S.READ, 10 * DAY_MS + 5))
    later = datetime.fromtimestamp((BASE_MS + 5 * DAY_MS) / 1000, tz=timezone.utc)
    assert tracker.prune(later) == 1
    assert tracker.get("done") is None
    assert tracker.get("slow") is not None
    assert tracker.get("fresh") is not None


def test_a_report_that_arrives_before_removal_keeps_the_message(
    open_store: StoreFactory,
) -> None:
    """remove() checks again under the lock: a message newly active is not removed."""
    store = open_store()
    tracker = Tracker(store)
    tracker.apply(ev("late", S.EXPIRED, 0))
    found, _ = store.prunable(BASE_MS + DAY_MS, None, 100)
    assert found == ["late"]
    tracker.apply(ev("late", S.DEVICE_ACK, 2 * DAY_MS))  # the handset had it after all
    assert store.remove(found, BASE_MS + DAY_MS) == 0
    assert tracker.get("late").status is S.DEVICE_ACK


def test_an_archive_that_cannot_be_written_leaves_the_messages(open_store: StoreFactory) -> None:
    """If keeping a group fails, nothing of it is deleted."""
    store = open_store()
    tracker = Tracker(store)
    tracker.apply(ev("kept", S.EXPIRED, 0))

    def full(messages: object) -> None:
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space"):
        store.remove(["kept"], BASE_MS + DAY_MS, full)
    assert tracker.get("kept").status is S.EXPIRED
    assert len(tracker.history("kept")) == 1


def iter_all(store: Store) -> list[Any]:
    """Every state in a store (the memory store through its records)."""
    if isinstance(store, MemoryStore):
        return [store.get(m) for m in list(store._records)]  # type: ignore[misc]
    return list(store.iter_states())  # type: ignore[attr-defined]


# --- the message list (Store.messages) --------------------------------------------------


def _listing_fixture(store: Store) -> Tracker:
    """Six messages: two channels, several statuses, first reports one second apart."""
    tracker = Tracker(store)
    tracker.apply_many(
        [
            StatusEvent.from_ms("a", S.QUEUED, BASE_MS + 1000, "sms", "client-a"),
            StatusEvent.from_ms("b", S.DELIVERY_FAILURE, BASE_MS + 2000, "sms"),
            StatusEvent.from_ms("c", S.READ, BASE_MS + 3000, "whatsapp"),
            StatusEvent.from_ms("d", S.SENT_TO_SUPPLIER, BASE_MS + 4000, "whatsapp"),
            StatusEvent.from_ms("e", S.EXPIRED, BASE_MS + 5000, "sms"),
            StatusEvent.from_ms("f", S.DEVICE_ACK, BASE_MS + 6000, None),
        ]
    )
    return tracker


def _ids(listed: list[Listed]) -> list[str]:
    return [item.state.message_id for item in listed]


def test_messages_are_listed_newest_first_and_filtered(open_store: StoreFactory) -> None:
    """Every filter of MessageQuery selects what it says, newest first report first."""
    store = open_store()
    _listing_fixture(store)
    assert _ids(store.messages(MessageQuery(), 10)) == ["f", "e", "d", "c", "b", "a"]
    failures = frozenset(s for s in Status if s.is_failure)
    assert _ids(store.messages(MessageQuery(statuses=failures), 10)) == ["e", "b"]
    assert _ids(store.messages(MessageQuery(channel="whatsapp"), 10)) == ["d", "c"]
    window = MessageQuery(since_ms=BASE_MS + 2000, until_ms=BASE_MS + 5000)
    assert _ids(store.messages(window, 10)) == ["d", "c", "b"]
    assert _ids(store.messages(MessageQuery(client_message_id="client-a"), 10)) == ["a"]
    (listed,) = store.messages(MessageQuery(client_message_id="client-a"), 10)
    assert listed.first_ms == BASE_MS + 1000


def test_message_pages_follow_each_other_without_gaps_or_repeats(open_store: StoreFactory) -> None:
    """Keyset pages of two, each after the last one seen, give the whole list once."""
    store = open_store()
    _listing_fixture(store)
    seen: list[str] = []
    before = None
    while page := store.messages(MessageQuery(), 2, before):
        seen += _ids(page)
        before = (page[-1].first_ms, page[-1].state.message_id)
    assert seen == ["f", "e", "d", "c", "b", "a"]


def test_the_list_knows_an_earlier_report_and_a_client_id_learned_late(
    open_store: StoreFactory,
) -> None:
    """A report earlier than the first moves the message back; a late client id finds it."""
    store = open_store()
    tracker = Tracker(store)
    tracker.apply(StatusEvent.from_ms("m", S.DEVICE_ACK, BASE_MS + 9000, "sms"))
    tracker.apply(StatusEvent.from_ms("m", S.QUEUED, BASE_MS + 1000, "sms", "late-client"))
    (listed,) = store.messages(MessageQuery(client_message_id="late-client"), 10)
    assert (listed.first_ms, listed.state.status) == (BASE_MS + 1000, S.DEVICE_ACK)
    assert store.messages(MessageQuery(since_ms=BASE_MS + 2000), 10) == []


def test_overdue_messages_are_listed_by_due_time(open_store: StoreFactory) -> None:
    """due_by_ms keeps the registered messages in progress past their deadline."""
    store = open_store()
    tracker = Tracker(store)
    sent = datetime.fromtimestamp(BASE_MS / 1000, timezone.utc)
    tracker.register("due", channel="sms", sent_at=sent)
    tracker.register("done", channel="sms", sent_at=sent)
    tracker.apply(StatusEvent.from_ms("done", S.DEVICE_ACK, BASE_MS + 5, "sms"))
    later = BASE_MS + 4 * 86_400_000
    assert _ids(store.messages(MessageQuery(due_by_ms=later), 10)) == ["due"]
    assert store.messages(MessageQuery(due_by_ms=BASE_MS), 10) == []


@SLOW
@given(events=consistent_events())
def test_every_store_lists_what_the_memory_store_lists(events: list[StatusEvent]) -> None:
    """For any reports, the SQLite list holds the memory store's messages and first times."""
    memory, sqlite_store = MemoryStore(), SQLiteStore(":memory:")
    for store in (memory, sqlite_store):
        Tracker(store).apply_many(events)
    query = MessageQuery()
    assert {(i.first_ms, i.state) for i in sqlite_store.messages(query, 100)} == {
        (i.first_ms, i.state) for i in memory.messages(query, 100)
    }
    sqlite_store.close()
