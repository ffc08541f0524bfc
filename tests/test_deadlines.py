"""Tests for registered sends, deadlines and the sweep (``_deadlines``, the tracker)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings

from deliverystate import (
    MemoryStore,
    Outcome,
    Policy,
    Send,
    SQLiteStore,
    Status,
    StatusEvent,
    Tracker,
    open_store,
)
from deliverystate.cli._commands import cli
from deliverystate.rules import DELIVERY_WINS, FAILURE_WINS, Origin
from deliverystate.rules._time import datetime_from_ms, ms_from_datetime
from deliverystate.testing._scenarios import deadline_scenarios, replay, scenario_ids, settled
from deliverystate.tracking import DEFAULT_WINDOWS
from deliverystate.tracking._deadlines import SWEEP_BATCH
from deliverystate.tracking._stats import delivery_stats
from deliverystate.web._serve import sweep_loop

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
S = Status


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


# --- the property the issue asks for ---------------------------------------------------


@pytest.mark.parametrize("policy", [DELIVERY_WINS, FAILURE_WINS], ids=lambda p: p.name)
@settings(max_examples=400, deadline=None)
@given(scenario=deadline_scenarios())
def test_any_order_and_any_sweeps_reach_the_reference(
    policy: Policy, scenario: tuple[list[Any], int]
) -> None:
    """Registrations, callbacks and sweeps in any order, then a sweep at now: the reference."""
    items, now_ms = scenario
    tracker = Tracker(MemoryStore(), policy)
    replay(items, tracker)
    tracker.sweep(datetime_from_ms(now_ms))
    expected = settled(items, now_ms, policy)
    for message_id in scenario_ids(items):
        assert tracker.get(message_id) == expected.get(message_id)


@settings(max_examples=200, deadline=None)
@given(scenario=deadline_scenarios())
def test_a_second_sweep_changes_nothing(scenario: tuple[list[Any], int]) -> None:
    """Sweeping again at the same now finds nothing due: every expiry was dated at a deadline."""
    items, now_ms = scenario
    tracker = settled(items, now_ms, DELIVERY_WINS)
    before = {m: tracker.get(m) for m in scenario_ids(items)}
    assert tracker.overdue(datetime_from_ms(now_ms)) == []
    assert tracker.sweep(datetime_from_ms(now_ms)).total == 0
    assert {m: tracker.get(m) for m in scenario_ids(items)} == before


# --- registration ----------------------------------------------------------------------


def test_a_registration_is_a_local_queued_report_with_the_channels_deadline() -> None:
    """register() records QUEUED at sent_at, from this side, due sent_at + the channel's window."""
    tracker = Tracker()
    decision = tracker.register("m1", channel="whatsapp", sent_at=at(0), client_message_id="c1")
    assert decision.outcome is Outcome.APPLIED
    state = tracker.get("m1")
    assert state is not None
    assert (state.status, state.timestamp, state.origin) == (S.QUEUED, at(0), Origin.LOCAL)
    assert (state.channel, state.client_message_id) == ("whatsapp", "c1")
    assert state.deadline == at(0) + timedelta(days=31)
    (entry,) = tracker.history("m1")
    assert entry.event.origin is Origin.LOCAL


def test_default_windows_are_three_days_for_sms_and_a_month_for_whatsapp() -> None:
    """The README's justified defaults: 72 hours for SMS, 31 days for WhatsApp."""
    assert {"sms": timedelta(hours=72), "whatsapp": timedelta(days=31)} == DEFAULT_WINDOWS


def test_windows_are_configurable_per_channel_and_checked() -> None:
    """A tracker's window for a channel sets the default deadline; a bad window is refused."""
    tracker = Tracker(windows={"sms": timedelta(minutes=30)})
    tracker.register("m1", channel="sms", sent_at=at(0))
    assert tracker.get("m1").deadline == at(1800)  # type: ignore[union-attr]
    assert tracker.windows["whatsapp"] == timedelta(days=31)
    with pytest.raises(ValueError, match="channel"):
        Tracker(windows={"rcs": timedelta(hours=1)})
    with pytest.raises(ValueError, match="positive"):
        Tracker(windows={"sms": timedelta(0)})


def test_an_explicit_deadline_wins_over_the_window() -> None:
    """deadline= is the message's deadline, whatever the channel's window."""
    tracker = Tracker()
    tracker.register("m1", channel="sms", sent_at=at(0), deadline=at(60))
    assert tracker.get("m1").deadline == at(60)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channel": "rcs"}, "channel must be one of"),
        ({"sent_at": datetime(2026, 3, 1)}, "no timezone"),
        ({"deadline": datetime(2026, 3, 1)}, "no timezone"),
        ({"deadline": T0 - timedelta(seconds=1)}, "before sent_at"),
        ({"client_message_id": "a\x00b"}, "client_message_id .* control character"),
    ],
)
def test_bad_registrations_are_refused_naming_the_problem(
    kwargs: dict[str, Any], message: str
) -> None:
    """A bad channel, a naive time, a deadline before sending or a bad id: a ValueError."""
    arguments: dict[str, Any] = {"channel": "sms", "sent_at": T0} | kwargs
    with pytest.raises(ValueError, match=message):
        Tracker().register("m1", **arguments)


def test_a_registration_commutes_with_a_callback_that_came_first() -> None:
    """SENT_TO_SUPPLIER before or after the registration: the same state, deadline included."""
    sent = StatusEvent("m1", S.SENT_TO_SUPPLIER, at(2), "sms")
    first, second = Tracker(), Tracker()
    first.apply(sent)
    first.register("m1", channel="sms", sent_at=at(0))
    second.register("m1", channel="sms", sent_at=at(0))
    second.apply(sent)
    assert first.get("m1") == second.get("m1")
    assert first.get("m1").deadline == at(0) + timedelta(hours=72)  # type: ignore[union-attr]


def test_clickatells_queued_outranks_the_registration() -> None:
    """Clickatell's own QUEUED report replaces the registration's, even an earlier one."""
    tracker = Tracker()
    tracker.register("m1", channel="sms", sent_at=at(5))
    decision = tracker.apply(StatusEvent("m1", S.QUEUED, at(1), "sms"))
    assert decision.outcome is Outcome.APPLIED
    assert tracker.get("m1").origin is Origin.CLICKATELL  # type: ignore[union-attr]


def test_the_earliest_deadline_holds_whatever_the_order() -> None:
    """Two registrations of one message: the earlier deadline, in either order."""
    early = Send("m1", "sms", at(0), deadline=at(10))
    late = Send("m1", "sms", at(0), deadline=at(20))
    for order in ([early, late], [late, early]):
        tracker = Tracker()
        for send in order:
            tracker.register_many([send])
        assert tracker.get("m1").deadline == at(10)  # type: ignore[union-attr]


def test_a_registration_on_another_channel_is_rejected_and_sets_no_deadline() -> None:
    """A send on WhatsApp for a message Clickatell reported on SMS is rejected with a reason."""
    tracker = Tracker()
    tracker.apply(StatusEvent("m1", S.SENT_TO_SUPPLIER, at(1), "sms"))
    decision = tracker.register("m1", channel="whatsapp", sent_at=at(0))
    assert decision.outcome is Outcome.REJECTED
    assert decision.reason is not None
    assert "sms" in decision.reason
    assert tracker.get("m1").deadline is None  # type: ignore[union-attr]


def test_send_from_json_reads_both_spellings_and_names_bad_fields() -> None:
    """A JSON send takes snake or camel case, ISO or ms times; errors name the field."""
    send = Send.from_json(
        {"messageId": "m1", "channel": " SMS ", "sentAt": ms_from_datetime(T0)}
        | {"clientMessageId": "c", "deadline": "2026-03-02T00:00:00Z"}
    )
    assert send == Send("m1", "sms", T0, "c", at(86400))
    for body, field in [
        ({"channel": "sms", "sent_at": "2026-03-01T00:00:00Z"}, "message_id"),
        ({"message_id": "m", "sent_at": "2026-03-01T00:00:00Z"}, "channel"),
        ({"message_id": "m", "channel": "sms"}, "sent_at"),
        ({"message_id": "m", "channel": "sms", "sent_at": "yesterday"}, "sent_at"),
        ({"message_id": "m", "channel": "sms", "sent_at": "2026-03-01T00:00:00"}, "sent_at"),
    ]:
        with pytest.raises(ValueError, match=field):
            Send.from_json(body)


# --- overdue and the sweep ---------------------------------------------------------------


def test_overdue_lists_registered_messages_in_progress_past_their_deadline() -> None:
    """Only registered, unfinished messages past their deadline, earliest deadline first."""
    tracker = Tracker()
    tracker.register("late", channel="sms", sent_at=at(0), deadline=at(20))
    tracker.register("early", channel="sms", sent_at=at(0), deadline=at(10))
    tracker.register("future", channel="sms", sent_at=at(0), deadline=at(99))
    tracker.register("delivered", channel="sms", sent_at=at(0), deadline=at(5))
    tracker.apply(StatusEvent("delivered", S.DEVICE_ACK, at(3), "sms"))
    tracker.apply(StatusEvent("unregistered", S.SENT_TO_SUPPLIER, at(0), "sms"))
    assert [s.message_id for s in tracker.overdue(at(50))] == ["early", "late"]
    assert [s.message_id for s in tracker.overdue(at(50), limit=1)] == ["early"]
    with pytest.raises(ValueError, match="limit"):
        tracker.overdue(at(50), limit=0)


@pytest.mark.parametrize("policy", [DELIVERY_WINS, FAILURE_WINS], ids=lambda p: p.name)
def test_delivery_after_a_local_expiry_wins_under_both_policies(policy: Policy) -> None:
    """The handset got it: DEVICE_ACK after a local EXPIRED is applied, with either policy."""
    tracker = Tracker(policy=policy)
    tracker.register("m1", channel="sms", sent_at=at(0), deadline=at(10))
    tracker.sweep(at(100))
    decision = tracker.apply(StatusEvent("m1", S.DEVICE_ACK, at(50), "sms"))
    assert decision.outcome is Outcome.APPLIED
    assert tracker.get("m1").status is S.DEVICE_ACK  # type: ignore[union-attr]


def test_clickatells_failure_replaces_a_local_expiry_even_a_later_one() -> None:
    """A real failure dated after the deadline still replaces the local guess (it is the cause)."""
    tracker = Tracker()
    tracker.register("m1", channel="sms", sent_at=at(0), deadline=at(10))
    tracker.sweep(at(100))
    tracker.apply(StatusEvent("m1", S.DELIVERY_FAILURE, at(60), "sms"))
    state = tracker.get("m1")
    assert state is not None
    assert (state.status, state.origin, state.timestamp) == (
        S.DELIVERY_FAILURE,
        Origin.CLICKATELL,
        at(60),
    )


def test_failure_wins_keeps_a_failure_over_a_later_delivery_but_not_a_local_expiry() -> None:
    """FAILURE_WINS: Clickatell's failure beats READ, a local expiry does not beat DEVICE_ACK."""
    tracker = Tracker(policy=FAILURE_WINS)
    tracker.apply(StatusEvent("real", S.DELIVERY_FAILURE, at(1), "sms"))
    tracker.apply(StatusEvent("real", S.DEVICE_ACK, at(2), "sms"))
    assert tracker.get("real").status is S.DELIVERY_FAILURE  # type: ignore[union-attr]
    tracker.register("guess", channel="sms", sent_at=at(0), deadline=at(10))
    tracker.sweep(at(100))
    tracker.apply(StatusEvent("guess", S.DEVICE_ACK, at(50), "sms"))
    assert tracker.get("guess").status is S.DEVICE_ACK  # type: ignore[union-attr]


def test_a_late_progress_report_does_not_reopen_an_expired_message() -> None:
    """SENT_TO_SUPPLIER after a local expiry is stale: nothing final came."""
    tracker = Tracker()
    tracker.register("m1", channel="sms", sent_at=at(0), deadline=at(10))
    tracker.sweep(at(100))
    decision = tracker.apply(StatusEvent("m1", S.SENT_TO_SUPPLIER, at(50), "sms"))
    assert decision.outcome is Outcome.STALE
    assert tracker.overdue(at(1000)) == []


def test_an_earlier_deadline_registered_after_a_sweep_re_dates_the_expiry() -> None:
    """A registration moving the deadline earlier makes the message due again; the expiry moves."""
    tracker = Tracker()
    tracker.register("m1", channel="sms", sent_at=at(0), deadline=at(20))
    tracker.sweep(at(100))
    tracker.register("m1", channel="sms", sent_at=at(0), deadline=at(10))
    assert [s.message_id for s in tracker.overdue(at(100))] == ["m1"]
    tracker.sweep(at(100))
    assert tracker.get("m1").timestamp == at(10)  # type: ignore[union-attr]


def test_a_sweep_pages_through_more_than_one_batch() -> None:
    """More overdue messages than a sweep reads at once are all expired in one call."""
    tracker = Tracker()
    count = SWEEP_BATCH * 2 + 7
    tracker.register_many(
        Send(f"m{i:05}", "sms", at(0), deadline=at(i % 100)) for i in range(count)
    )
    assert tracker.sweep(at(1000)).applied == count
    assert tracker.store.count_local_expiries() == count


# --- stores: 1,000 sends on SQLite and PostgreSQL ------------------------------------------


def thousand_sends(tracker: Tracker) -> dict[str, Any]:
    """The issue's scenario: 1,000 sends, callbacks for some, a sweep, late receipts for a few.

    Returns what is expected of it, from the scenario's own definition.
    """
    sends = [Send(f"s{i:04}", "sms" if i % 2 else "whatsapp", at(i)) for i in range(1000)]
    assert tracker.register_many(sends).applied == 1000
    # Clickatell heard back about some: deliveries, failures, and progress only
    delivered = [f"s{i:04}" for i in range(0, 300)]
    failed = [f"s{i:04}" for i in range(300, 400)]
    progress = [f"s{i:04}" for i in range(400, 500)]
    events = [StatusEvent(m, S.DEVICE_ACK, at(1600), None) for m in delivered]
    events += [StatusEvent(m, S.DELIVERY_FAILURE, at(1600), None) for m in failed]
    events += [StatusEvent(m, S.SENT_TO_SUPPLIER, at(1060), None) for m in progress]
    tracker.apply_many(events)
    # four days later the SMS sends without a final word are overdue, WhatsApp not yet
    now = at(4 * 86400)
    sms_open = [f"s{i:04}" for i in range(400, 1000) if i % 2]
    assert sorted(s.message_id for s in tracker.overdue(now, limit=2000)) == sms_open
    summary = tracker.sweep(now)
    # late receipts: five of the expired were delivered after all, three failed for real
    late_ack, late_fail = sms_open[:5], sms_open[5:8]
    tracker.apply_many(
        [StatusEvent(m, S.DEVICE_ACK, at(5 * 86400), "sms") for m in late_ack]
        + [StatusEvent(m, S.DELIVERY_FAILURE, at(5 * 86400), "sms") for m in late_fail]
    )
    return {
        "summary": summary,
        "now": now,
        "expired": set(sms_open) - set(late_ack) - set(late_fail),
        "late_ack": late_ack,
        "late_fail": late_fail,
        "whatsapp_open": [f"s{i:04}" for i in range(400, 1000) if not i % 2],
    }


def test_a_thousand_sends_on_sqlite_and_postgres(database: str) -> None:
    """1,000 registered sends: states, history sources, counts and the feed, as expected."""
    store = open_store(database)
    try:
        tracker = Tracker(store)
        expected = thousand_sends(tracker)
        assert expected["summary"].applied == 300  # the open SMS sends
        assert store.count_local_expiries() == len(expected["expired"]) == 292
        for message_id in sorted(expected["expired"])[:20]:
            state = tracker.get(message_id)
            assert state is not None
            assert state.origin is Origin.LOCAL
            assert (state.status, state.timestamp) == (S.EXPIRED, state.deadline)
            assert next(e.event.origin for e in tracker.history(message_id)) is Origin.LOCAL
            assert tracker.history(message_id)[-1].event.origin is Origin.LOCAL
        for message_id in expected["late_ack"]:
            assert tracker.get(message_id).status is S.DEVICE_ACK  # type: ignore[union-attr]
        for message_id in expected["late_fail"]:
            state = tracker.get(message_id)
            assert state is not None
            assert (state.status, state.origin) == (S.DELIVERY_FAILURE, Origin.CLICKATELL)
        # nothing is overdue now; WhatsApp sends become overdue after their month
        assert tracker.overdue(expected["now"]) == []
        later = expected["now"] + timedelta(days=40)
        assert store.count_overdue(ms_from_datetime(later)) == 300
        assert sorted(s.message_id for s in tracker.overdue(later, limit=500)) == sorted(
            expected["whatsapp_open"]
        )
        stats = delivery_stats(store, later)
        assert (stats.overdue, stats.local_expiries) == (300, 292)
        # the feed carries the origin of each change
        local = [c for c in store.changes(limit=10_000) if c.status is S.EXPIRED]
        assert len(local) == 300
        assert all(c.origin is Origin.LOCAL for c in local)
        # and every state equals the memory store's, given the same inputs
        memory = Tracker(MemoryStore())
        thousand_sends(memory)
        for i in range(1000):
            assert tracker.get(f"s{i:04}") == memory.get(f"s{i:04}")
    finally:
        store.close()  # type: ignore[attr-defined]


# --- retention, command line, receiver ---------------------------------------------------


def test_prune_and_replay_restore_origin_and_deadline(tmp_path: Path) -> None:
    """A locally expired, registered message pruned to an archive comes back exactly."""
    db = tmp_path / "state.sqlite3"
    tracker = Tracker(SQLiteStore(db))
    tracker.register("m1", channel="sms", sent_at=at(0), deadline=at(10), client_message_id="c")
    tracker.apply(StatusEvent("m1", S.SENT_TO_SUPPLIER, at(1), "sms"))
    tracker.sweep(at(100))
    before, history = tracker.get("m1"), tracker.history("m1")
    archive = tmp_path / "archive.jsonl"
    with archive.open("w", encoding="utf-8") as file:
        assert tracker.prune(at(10**6), archive=file) == 1
    assert tracker.get("m1") is None
    result = CliRunner().invoke(cli, ["replay", str(archive), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert tracker.get("m1") == before
    restored = tracker.history("m1")
    assert [(e.event, e.outcome) for e in restored] == [(e.event, e.outcome) for e in history]


@pytest.fixture
def sends_file(tmp_path: Path) -> Iterator[Path]:
    """A JSON-lines file of three sends, one of them broken."""
    path = tmp_path / "sends.jsonl"
    lines = [
        {"message_id": "a", "channel": "sms", "sent_at": "2026-03-01T00:00:00Z"},
        {"message_id": "b", "channel": "whatsapp", "sent_at": "2026-03-01T00:00:00Z"},
        {"message_id": "c", "channel": "fax", "sent_at": "2026-03-01T00:00:00Z"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def test_register_command_registers_good_lines_and_names_bad_ones(
    tmp_path: Path, sends_file: Path
) -> None:
    """`register FILE` records the valid sends, reports the bad line by number, exits 1."""
    db = str(tmp_path / "state.sqlite3")
    result = CliRunner().invoke(cli, ["register", str(sends_file), "--db", db])
    assert result.exit_code == 1
    assert "registered 2 sends" in result.stdout
    assert "line 3: channel must be one of" in result.stderr
    tracker = Tracker(SQLiteStore(db))
    assert tracker.get("a").deadline == T0 + timedelta(hours=72)  # type: ignore[union-attr]
    assert tracker.get("c") is None


def test_register_command_takes_windows_and_prints_json(tmp_path: Path) -> None:
    """--window sms=1h sets the SMS deadline; --json reports the counts; stdin works."""
    db = str(tmp_path / "state.sqlite3")
    line = json.dumps({"message_id": "a", "channel": "sms", "sent_at": "2026-03-01T00:00:00Z"})
    result = CliRunner().invoke(
        cli, ["register", "-", "--db", db, "--window", "SMS=1h", "--json"], input=line + "\n"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["applied"] == 1
    assert Tracker(SQLiteStore(db)).get("a").deadline == at(3600)  # type: ignore[union-attr]
    bad = CliRunner().invoke(cli, ["register", "-", "--db", db, "--window", "sms"], input="")
    assert bad.exit_code == 2
    assert "CHANNEL=DURATION" in bad.output


def test_register_json_counts_are_ints_beside_the_lists(tmp_path: Path, sends_file: Path) -> None:
    """--json gives rejected and invalid as counts; the rejections and errors as lists."""
    db = str(tmp_path / "state.sqlite3")
    store = SQLiteStore(db)  # b was heard of on SMS: its registration on WhatsApp is rejected
    Tracker(store).apply(StatusEvent("b", Status.SENT_TO_SUPPLIER, T0, "sms"))
    store.close()
    result = CliRunner().invoke(cli, ["register", str(sends_file), "--db", db, "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["applied"], report["rejected"], report["invalid"]) == (1, 1, 1)
    assert [r["message_id"] for r in report["rejections"]] == ["b"]
    assert [e["line"] for e in report["errors"]] == [3]


def test_sweep_command_expires_as_of_now_and_stats_count_it(
    tmp_path: Path, sends_file: Path
) -> None:
    """`sweep --now` expires the overdue SMS; `stats --json` then counts the local expiry."""
    db = str(tmp_path / "state.sqlite3")
    runner = CliRunner()
    runner.invoke(cli, ["register", str(sends_file), "--db", db])
    result = runner.invoke(cli, ["sweep", "--db", db, "--now", "2026-03-05T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "expired 1 overdue messages" in result.stdout
    stats = json.loads(runner.invoke(cli, ["stats", "--db", db, "--json"]).stdout)
    assert stats["local_expiries"] == 1
    show = runner.invoke(cli, ["show", "a", "--db", db])
    assert "local" in show.stdout
    assert "expired locally" in show.stdout
    bad = runner.invoke(cli, ["sweep", "--db", db, "--now", "soon"])
    assert bad.exit_code == 2
    assert "--now" in bad.output


def test_the_serve_sweeper_sweeps_until_stopped(tmp_path: Path) -> None:
    """The loop behind `serve --sweep-every` sweeps at once and again, and stops when told."""
    tracker = Tracker(SQLiteStore(tmp_path / "state.sqlite3"))
    tracker.register("m1", channel="sms", sent_at=datetime.now(timezone.utc) - timedelta(days=9))
    stop = threading.Event()
    thread = threading.Thread(target=sweep_loop, args=(tracker, 0.05, stop))
    thread.start()
    try:
        for _ in range(200):
            if tracker.get("m1").status is S.EXPIRED:  # type: ignore[union-attr]
                break
            threading.Event().wait(0.02)
        assert tracker.get("m1").status is S.EXPIRED  # type: ignore[union-attr]
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_serve_refuses_a_bad_sweep_interval() -> None:
    """`serve --sweep-every soon` is a usage error naming the option, before anything listens."""
    result = CliRunner().invoke(cli, ["serve", "--db", ":memory:", "--sweep-every", "soon"])
    assert result.exit_code == 2
    assert "--sweep-every" in result.output
