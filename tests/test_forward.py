"""Forwarding the change feed as signed webhooks, against a receiver that verifies signatures.

The receiver (``tests/sink.py``) checks every request with the
``standardwebhooks`` package, so a signature our side got wrong is a 401.
The end-to-end test runs ``deliverystate forward`` as a child process on
SQLite and on PostgreSQL while the receiver is down, flaky, killed and
restarted, and the forwarder itself is killed with SIGKILL and restarted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from deliverystate import Change, MemoryStore, SQLiteStore, Status, StatusEvent, Tracker, open_store
from deliverystate.forward import (
    EVENT_TYPE,
    DeliveryFailed,
    Forwarder,
    ForwardTarget,
    new_secret,
    webhook_body,
    webhook_id,
)
from deliverystate.simulate import simulate_lines
from deliverystate.testing import BASE_MS

from . import sink
from .test_web import wait_for
from .test_web_intake import free_port

S = Status
SCRIPT = shutil.which("deliverystate", path=str(Path(sys.executable).parent))


def ev(message_id: str, status: Status, offset_ms: int) -> StatusEvent:
    """A report ``offset_ms`` after the base time, on SMS."""
    return StatusEvent.from_ms(message_id, status, BASE_MS + offset_ms, "sms")


@contextlib.contextmanager
def sink_at(record: Path, secret: str, **options: Any) -> Iterator[tuple[sink.Sink, str]]:
    """A receiver in this process; yields it and its URL."""
    port = free_port()
    server = sink.start(port, secret, record, **options)
    try:
        yield server, f"http://127.0.0.1:{port}/hooks"
    finally:
        server.shutdown()
        server.server_close()


def quick(store: Any, target: ForwardTarget) -> Forwarder:
    """A forwarder that backs off for milliseconds, not minutes."""
    return Forwarder(store, target, timeout=5, wait_initial=0.01, wait_max=0.05)


def test_changes_arrive_signed_in_order_with_stable_ids(tmp_path: Path) -> None:
    """Each change is POSTed once, verifiable with standardwebhooks, in seq order."""
    secret = new_secret()
    tracker = Tracker(MemoryStore())
    tracker.apply_many([ev("a", S.QUEUED, 0), ev("b", S.QUEUED, 1), ev("a", S.DEVICE_ACK, 9)])
    with sink_at(tmp_path / "got.jsonl", secret) as (server, url):
        forwarder = quick(tracker.store, ForwardTarget(url, secret))
        report = forwarder.run(follow_feed=False)
        forwarder.close()
    got = sink.deliveries(tmp_path / "got.jsonl")
    changes = tracker.changes()
    assert server.bad_signatures == 0
    assert [(g["seq"], g["message_id"], g["status"]) for g in got] == [
        (c.seq, c.message_id, c.status.name) for c in changes
    ]
    assert [g["id"] for g in got] == [webhook_id(c) for c in changes]
    assert {g["type"] for g in got} == {EVENT_TYPE}
    assert got[2]["previous"] == "QUEUED"
    assert got[2]["previous_code"] == 2
    assert got[2]["timestamp"] == "2026-01-01T00:00:00.009Z"
    assert (report.delivered, report.skipped, report.undeliverable) == (3, 0, 0)
    assert tracker.cursor("forward") == changes[-1].seq == report.position


def test_a_receiver_with_another_secret_refuses_and_the_change_is_kept(tmp_path: Path) -> None:
    """Signed with the wrong key, every POST is a 401; past the horizon it is undeliverable."""
    tracker = Tracker(MemoryStore())
    tracker.apply(ev("wrong-key", S.READ, 0))
    with sink_at(tmp_path / "got.jsonl", new_secret()) as (server, url):
        forwarder = quick(tracker.store, ForwardTarget(url, new_secret(), horizon=0.3))
        report = forwarder.run(follow_feed=False)
        forwarder.close()
    assert server.bad_signatures >= 2  # retried before giving up
    assert report.undeliverable == 1
    (kept,) = tracker.store.undeliverable("forward")
    assert kept.change == tracker.changes()[0]
    assert kept.error.startswith(f"HTTP 401 from {url}")
    assert tracker.cursor("forward") == kept.change.seq  # the forwarder moved on


def test_a_failing_message_does_not_hold_the_others_back_for_ever(tmp_path: Path) -> None:
    """One message's changes fail until the horizon; the rest arrive; redeliver sends it later."""
    secret = new_secret()
    tracker = Tracker(MemoryStore())
    tracker.apply_many(
        [
            *(ev("ok-1", S.QUEUED, 0), ev("poison-1", S.QUEUED, 1), ev("ok-2", S.READ, 2)),
            ev("poison-1", S.DELIVERY_FAILURE, 5),
        ]
    )
    record = tmp_path / "got.jsonl"
    with sink_at(record, secret, fail_prefix="poison-") as (_, url):
        forwarder = quick(tracker.store, ForwardTarget(url, secret, horizon=0.2))
        report = forwarder.run(follow_feed=False)
        forwarder.close()
    assert [g["message_id"] for g in sink.deliveries(record)] == ["ok-1", "ok-2"]
    assert report.undeliverable == 2
    kept = tracker.store.undeliverable()
    assert [(u.change.message_id, u.change.status) for u in kept] == [
        ("poison-1", S.QUEUED),
        ("poison-1", S.DELIVERY_FAILURE),
    ]
    assert "HTTP 503" in kept[0].error
    with sink_at(record, secret) as (_, url):
        forwarder = quick(tracker.store, ForwardTarget(url, secret))
        again = forwarder.redeliver()
        forwarder.close()
    assert (again.delivered, again.undeliverable) == (2, 0)
    assert tracker.store.undeliverable() == []
    got = [(g["message_id"], g["status"]) for g in sink.deliveries(record)]
    assert got[-2:] == [("poison-1", "QUEUED"), ("poison-1", "DELIVERY_FAILURE")]


def test_only_final_passes_progress_by(tmp_path: Path) -> None:
    """``only_final`` sends READ and failures, and moves the cursor past the rest."""
    secret = new_secret()
    tracker = Tracker(MemoryStore())
    tracker.apply_many(
        [
            *(ev("f-1", S.QUEUED, 0), ev("f-1", S.DEVICE_ACK, 1), ev("f-1", S.READ, 2)),
            *(ev("f-2", S.QUEUED, 0), ev("f-2", S.EXPIRED, 3)),
        ]
    )
    with sink_at(tmp_path / "got.jsonl", secret) as (_, url):
        forwarder = quick(tracker.store, ForwardTarget(url, secret, only_final=True))
        report = forwarder.run(follow_feed=False)
        forwarder.close()
    got = sink.deliveries(tmp_path / "got.jsonl")
    assert [(g["message_id"], g["status"], g["final"]) for g in got] == [
        ("f-1", "READ", True),
        ("f-2", "EXPIRED", True),
    ]
    assert (report.delivered, report.skipped) == (2, 3)
    assert tracker.cursor("forward") == tracker.store.last_seq()


def test_a_forwarder_stopped_while_the_backend_is_down_gives_nothing_up(tmp_path: Path) -> None:
    """Stopping during retries keeps the change pending: not undeliverable, cursor not moved."""
    tracker = Tracker(MemoryStore())
    tracker.apply(ev("down", S.READ, 0))
    url = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens
    forwarder = quick(tracker.store, ForwardTarget(url, new_secret()))
    thread = threading.Thread(target=forwarder.run)
    thread.start()
    time.sleep(0.3)
    forwarder.stop()
    thread.join(timeout=10)
    forwarder.close()
    assert not thread.is_alive()
    assert tracker.store.undeliverable() == []
    assert tracker.cursor("forward") == 0


def test_a_following_forwarder_sends_changes_as_they_are_committed(tmp_path: Path) -> None:
    """run() follows the feed: changes committed later are sent without a restart."""
    secret = new_secret()
    store = SQLiteStore(tmp_path / "follow.sqlite3")
    tracker = Tracker(store)
    record = tmp_path / "got.jsonl"
    with sink_at(record, secret) as (_, url):
        forwarder = quick(store, ForwardTarget(url, secret, name="live"))
        thread = forwarder.start()
        tracker.apply(ev("later-1", S.QUEUED, 0))
        wait_for(lambda: len(sink.deliveries(record)) == 1)
        tracker.apply_many([ev("later-1", S.READ, 5), ev("later-2", S.QUEUED, 6)])
        wait_for(lambda: len(sink.deliveries(record)) == 3)
        forwarder.stop()
        thread.join(timeout=10)
        forwarder.close()
    assert tracker.cursor("live") == store.last_seq()
    store.close()


def test_retry_after_is_honoured_up_to_the_longest_wait() -> None:
    """A 429/503's Retry-After sets the next pause (capped); a stop ends the retries."""
    target = ForwardTarget("http://127.0.0.1:9/x", new_secret())
    forwarder = Forwarder(MemoryStore(), target, wait_max=30)
    try:
        assert forwarder._backoff(DeliveryFailed("u", 429, "", 7.0)) == 7.0
        assert forwarder._backoff(DeliveryFailed("u", 503, "", 300.0)) == 30
        assert forwarder._backoff(DeliveryFailed("u", 500, "", None)) is True
        assert forwarder._backoff(httpx.ConnectError("refused")) is True
        assert forwarder._backoff(ValueError("a bug")) is False  # not retried: it is raised
        forwarder.stop()
        assert forwarder._backoff(DeliveryFailed("u", 500, "", None)) is False
    finally:
        forwarder.close()


def test_webhook_ids_name_the_change_not_the_attempt() -> None:
    """The id is the same for the same change, written again under another seq, and only then."""
    change = Change(7, "m", S.QUEUED, S.READ, BASE_MS, "sms", None)
    assert webhook_id(change) == webhook_id(Change(7, "m", S.QUEUED, S.READ, BASE_MS, "sms"))
    # the same change written twice: another seq, another previous status, the same id
    assert webhook_id(change) == webhook_id(Change(3_357, "m", None, S.READ, BASE_MS, "sms"))
    assert webhook_id(change).startswith("ds_")
    others = [
        Change(7, "other", S.QUEUED, S.READ, BASE_MS),
        Change(7, "m", S.QUEUED, S.DEVICE_ACK, BASE_MS),
        Change(7, "m", S.QUEUED, S.READ, BASE_MS + 1),
    ]
    assert len({webhook_id(c) for c in [change, *others]}) == 4
    body = json.loads(webhook_body(change))
    assert body["type"] == EVENT_TYPE
    assert body["data"]["status_code"] == 6


def test_a_change_written_twice_to_the_feed_is_sent_under_one_id(tmp_path: Path) -> None:
    """Pruned, then started afresh by a retry of its last report: both changes share an id."""
    secret = new_secret()
    tracker = Tracker(MemoryStore())
    tracker.apply_many([ev("twice", S.QUEUED, 0), ev("twice", S.DELIVERY_FAILURE, 5)])
    tracker.commit_cursor("forward", 0)  # the forwarder has sent nothing yet: prune keeps it
    assert tracker.prune(datetime(2027, 1, 1, tzinfo=timezone.utc)) == 1
    tracker.apply(ev("twice", S.DELIVERY_FAILURE, 5))  # Clickatell retried the callback
    *_, first, again = tracker.changes()
    assert (first.previous, again.previous, first.seq < again.seq) == (S.QUEUED, None, True)
    with sink_at(tmp_path / "got.jsonl", secret) as (_, url):
        forwarder = quick(tracker.store, ForwardTarget(url, secret))
        forwarder.run(follow_feed=False)
        forwarder.close()
    got = [g for g in sink.deliveries(tmp_path / "got.jsonl") if g["status"] != "QUEUED"]
    assert [g["seq"] for g in got] == [first.seq, again.seq]
    assert got[0]["id"] == got[1]["id"], "a receiver would bill this failure twice"


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (("ftp://backend/x", new_secret()), "http:// or https:// URL"),
        (("https://backend/x", "not a secret"), "Standard Webhooks secret"),
        (("https://backend/x", "whsec_c2hvcnQ="), "at least 16 bytes"),
        (("https://backend/x", new_secret(), ""), "consumer name"),
        (("https://backend/x", new_secret(), "n", False, 0), "more than 0 seconds"),
    ],
)
def test_a_bad_target_is_refused_up_front(arguments: tuple[Any, ...], words: str) -> None:
    """A wrong URL, secret, name or horizon is a ValueError that says what is wrong."""
    with pytest.raises(ValueError, match=words):
        ForwardTarget(*arguments)


# --- end to end: child processes, outages and kills ------------------------------------


def start_sink(port: int, secret: str, record: Path, *options: str) -> subprocess.Popen[bytes]:
    """The receiver as a child process; returns once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.sink", str(port), secret, str(record), *options],
        cwd=Path(__file__).parent.parent,
    )
    wait_for(lambda: _listening(port), seconds=30)
    return process


def _listening(port: int) -> bool:
    with contextlib.suppress(httpx.TransportError):
        httpx.post(f"http://127.0.0.1:{port}/", content=b"{}", timeout=1)
        return True
    return False


def start_forwarder(db: str, url: str, secret: str) -> subprocess.Popen[bytes]:
    """``deliverystate forward`` as a child process, backing off for at most 0.2 s."""
    assert SCRIPT is not None
    return subprocess.Popen(
        [SCRIPT, "forward", "--db", db, "--to", url, "--max-wait", "0.2s"],
        env={**os.environ, "DELIVERYSTATE_FORWARD_SECRET": secret},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL: no clean-up, no last commit."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_every_change_arrives_in_order_through_outages_and_kills(
    database: str, tmp_path: Path
) -> None:
    """Receiver down, flaky, killed; forwarder killed twice: each change arrives, in order."""
    secret, record, port = new_secret(), tmp_path / "got.jsonl", free_port()
    url = f"http://127.0.0.1:{port}/hooks"
    lines = simulate_lines(300, seed=12)
    store = open_store(database)
    tracker = Tracker(store)
    tracker.ingest_many(lines[: len(lines) // 3])
    forwarder = start_forwarder(database, url, secret)
    receiver: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(1.0)  # the receiver is down: refused connections, retried
        receiver = start_sink(port, secret, record, "--fail-rate", "0.2")
        wait_for(lambda: len(sink.deliveries(record)) >= 50, seconds=60)
        kill(receiver)  # mid-stream, and more changes arrive while it is gone
        tracker.ingest_many(lines[len(lines) // 3 : 2 * len(lines) // 3])
        time.sleep(0.5)
        kill(forwarder)  # while it retries a change: that change must not count as sent
        receiver = start_sink(port, secret, record, "--fail-rate", "0.2")
        forwarder = start_forwarder(database, url, secret)
        wait_for(lambda: len(sink.deliveries(record)) >= 150, seconds=60)
        kill(forwarder)  # mid-stream: what it sent since its last commit is sent again
        tracker.ingest_many(lines[2 * len(lines) // 3 :])
        forwarder = start_forwarder(database, url, secret)
        every = {c.seq: c for c in _all_changes(tracker)}
        wait_for(lambda: {g["seq"] for g in sink.deliveries(record)} >= set(every), seconds=60)
        wait_for(lambda: tracker.cursor("forward") == max(every), seconds=30)
    finally:
        for process in (forwarder, receiver):
            if process is not None and process.poll() is None:
                kill(process)
    got = sink.deliveries(record)
    assert {g["seq"] for g in got} == set(every)  # every change, nothing else
    assert len(got) >= len(every)  # at least once: a repeat after the forwarder's kill is fine
    for g in got:  # each delivery is exactly the change of its seq, under the change's id
        change = every[g["seq"]]
        assert (g["message_id"], g["status"], g["id"]) == (
            change.message_id,
            change.status.name,
            webhook_id(change),
        )
    # a receiver that drops repeats by webhook-id sees each message's changes in order,
    # and ends at the state the store holds
    first_seen: dict[str, list[int]] = {}
    seen_ids: set[str] = set()
    for g in got:
        if g["id"] not in seen_ids:
            seen_ids.add(g["id"])
            first_seen.setdefault(g["message_id"], []).append(g["seq"])
    for message_id, seqs in first_seen.items():
        assert seqs == sorted(seqs), message_id
        state = tracker.get(message_id)
        assert state is not None
        assert every[seqs[-1]].status is state.status
    assert tracker.cursor("forward") == max(every)
    close = getattr(store, "close", None)
    if close is not None:
        close()


def _all_changes(tracker: Tracker) -> list[Change]:
    found, after = [], 0
    while page := tracker.changes(after=after, limit=1000):
        found.extend(page)
        after = page[-1].seq
    return found
