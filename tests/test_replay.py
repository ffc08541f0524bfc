"""Tests for replay_stream: its worker processes (same results, in order, safe to stop), where
--max-invalid stops, the result a caller reads as it goes, and how bad lines are described."""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from deliverystate import InvalidCallback, SQLiteStore, Tracker, parse_callback
from deliverystate.callbacks import read_many
from deliverystate.cli import replay_stream
from deliverystate.simulate import simulate_lines
from deliverystate.tracking._replay import ReplayResult, _Batch, _parsed, opens_json, reason_of

from .test_cli import history_rows

SCRIPT = shutil.which("deliverystate", path=str(Path(sys.executable).parent))


def replayed(lines: list[bytes], db: Path, workers: int, chunk: int) -> tuple[object, ...]:
    """Everything a replay into a fresh SQLite file produced, comparably."""
    tracker = Tracker(SQLiteStore(db))
    sizes: list[int] = []
    result = replay_stream(iter(lines), tracker, chunk, sizes.append, workers)
    store = tracker.store
    assert isinstance(store, SQLiteStore)
    return (
        result.as_json(),
        result.errors,
        sizes,
        list(store.iter_states()),
        store.history_size(),
        [(letter.payload, letter.error) for letter in store.dead_letters()],
    )


@pytest.mark.parametrize(("workers", "chunk"), [(1, 97), (2, 250), (1, 100_000)])
def test_workers_change_nothing_but_who_parses(tmp_path: Path, workers: int, chunk: int) -> None:
    """Counts, bad lines with their numbers, progress, states, history and dead letters agree."""
    lines = [line.encode() + b"\n" for line in simulate_lines(400, seed=21)]
    lines[5:5] = [b"\n", b"   \r\n", b"{broken\n"]
    alone = replayed(lines, tmp_path / "alone.sqlite3", 0, chunk)
    assert alone[1]  # there are bad lines, with their numbers
    assert replayed(lines, tmp_path / "workers.sqlite3", workers, chunk) == alone


@pytest.mark.parametrize(("workers", "chunk"), [(0, 1), (0, 7), (1, 40), (0, 100_000)])
def test_max_invalid_stops_at_the_same_line_however_it_runs(
    tmp_path: Path, workers: int, chunk: int
) -> None:
    """The fourth bad line ends a max_invalid=3 replay; what it applied is that prefix, no more."""
    lines = [line.encode() + b"\n" for line in simulate_lines(300, seed=8)]
    for at in (10, 400, 401, 700):  # beside the stream's own broken bodies, late enough for workers
        lines.insert(at, b'{"messageId": "bad %d", \n' % at)
    numbers = [n for n, line in enumerate(lines, start=1) if not _parses(line)]
    assert len(numbers) > 4
    assert numbers[3] > 80
    stopped, prefix = SQLiteStore(tmp_path / "stopped.sqlite3"), SQLiteStore(tmp_path / "p.sqlite3")
    result = replay_stream(iter(lines), Tracker(stopped), chunk, None, workers, max_invalid=3)
    assert result.stopped_at == result.lines == numbers[3]
    assert [n for n, _ in result.errors] == numbers[:4]
    replay_stream(iter(lines[: numbers[3]]), Tracker(prefix))
    assert list(stopped.iter_states()) == list(prefix.iter_states())
    assert stopped.history_size() == prefix.history_size()
    kept = [letter.payload for letter in stopped.dead_letters()]
    assert kept == [letter.payload for letter in prefix.dead_letters()]
    assert set(kept) == {lines[n - 1].decode().rstrip("\n") for n in numbers[:4]}


def _parses(line: bytes) -> bool:
    try:
        parse_callback(line)
    except InvalidCallback:
        return False
    return True


def test_max_invalid_not_exceeded_reads_to_the_end() -> None:
    """As many bad lines as allowed: the whole stream is read and nothing says it stopped."""
    lines = [b"{bad\n", b"\n", b"{worse\n"]
    result = replay_stream(iter(lines), Tracker(), chunk=1, max_invalid=2)
    assert (result.lines, result.stopped_at, len(result.errors)) == (3, None, 2)


def test_a_given_result_counts_each_batch_once_it_is_applied() -> None:
    """The caller's result grows batch by batch, as progress sees it, and is the one returned."""
    lines = [line.encode() + b"\n" for line in simulate_lines(40, seed=3)]
    result = ReplayResult()
    seen: list[int] = []
    returned = replay_stream(
        iter(lines), Tracker(), 25, lambda _: seen.append(result.lines), 0, result=result
    )
    assert returned is result
    assert seen == [min(n, len(lines)) for n in range(25, len(lines) + 25, 25)]


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_held_off_per_batch_and_left_as_found(enabled: bool) -> None:
    """Each batch is applied with the cyclic collector off; between batches and after, as found."""
    lines = [line.encode() + b"\n" for line in simulate_lines(40, seed=3)]
    tracker = Tracker()
    during: list[bool] = []
    between: list[bool] = []
    tracker.store.on_change(lambda _: during.append(gc.isenabled()))
    (gc.enable if enabled else gc.disable)()
    try:
        replay_stream(iter(lines), tracker, 25, lambda _: between.append(gc.isenabled()))
        after = gc.isenabled()
    finally:
        gc.enable()
    assert during
    assert not any(during)
    assert between == [enabled] * len(between)
    assert after is enabled


@pytest.mark.parametrize(
    ("line", "opens"),
    [
        (b"{", True),
        (b"  [  \r", True),
        (b'{"event": {', True),
        (b'{"messageId": "x",', True),
        (b'[{"a": 1}, ', True),
        (b"{broken", False),  # fails at its second character, not for want of more
        (b'{"messageId": "x"}', False),  # whole JSON: a bad body, not a part of one
        (b'{"messageId": "cut sho', False),  # cut inside a string: a lost tail
        (b"}", False),
        (b"plain text {", False),
        (b"\xff{", False),
    ],
)
def test_opens_json(line: bytes, opens: bool) -> None:
    """A line opens a multi-line JSON body when it is JSON that stops short at its very end."""
    assert opens_json(line) is opens


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            "invalid callback: body: not JSON (Expecting value: line 1 column 1 (char 0))",
            "body: not JSON",
        ),
        (
            "invalid callback: event.messageStatusUpdate[12].status: unknown status 'NEW'",
            "event.messageStatusUpdate[N].status: unknown status '...'",
        ),
        (
            "invalid callback: timestamp: 1767225600 is before 2000-01-01 as milliseconds",
            "timestamp: N is before 2000-01-01 as milliseconds",
        ),
        (
            "invalid callback: messageId: longer than 256 characters",
            "messageId: longer than N characters",
        ),
    ],
)
def test_reason_of_keeps_the_cause_and_drops_what_varies(message: str, reason: str) -> None:
    """Lines failing for one cause get one reason, whatever their values and positions."""
    assert reason_of(message) == reason


def test_a_batch_whose_worker_died_is_parsed_here() -> None:
    """A worker lost mid-replay costs time, never a batch: its batches are parsed here."""
    bodies = [line.encode() for line in simulate_lines(20, seed=2)]
    broken: Future[object] = Future()
    broken.set_exception(BrokenProcessPool("a worker died"))
    batch = _Batch(1, len(bodies), list(range(1, len(bodies) + 1)), bodies, 0)
    expected = read_many(bodies)
    for future in (broken, None):
        parsed = _parsed(batch, future)[1]  # type: ignore[arg-type]
        assert parsed.events == expected.events
        assert [(i, str(e)) for i, e in parsed.errors] == [(i, str(e)) for i, e in expected.errors]


def group_alive(group: int) -> bool:
    """Whether any process of a process group is still running."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def gone_within(group: int, seconds: float) -> bool:
    """Whether every process of ``group`` ends within ``seconds``."""
    deadline = time.monotonic() + seconds
    while group_alive(group):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def long_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stream long enough that a replay is still running when it is stopped."""
    path = tmp_path_factory.mktemp("stream") / "long.jsonl"
    path.write_text("".join(line + "\n" for line in simulate_lines(15_000, seed=4)))
    return path


def replay_command(stream: Path, db: Path) -> list[str]:
    """`deliverystate replay` with one worker and small batches."""
    assert SCRIPT is not None
    return [SCRIPT, "replay", str(stream), "--db", str(db), "--chunk", "300", "--workers", "1"]


def workers_in(group: int) -> list[int]:
    """The parsing workers (multiprocessing's spawned children) in a process group."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) != group:
                continue
            if b"spawn_main" in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
    return found


def wait_for_a_worker(process: subprocess.Popen[bytes], db: Path, rows: int) -> None:
    """Wait until the replay has a worker and has committed ``rows`` history rows."""
    deadline = time.monotonic() + 60
    while history_rows(db) < rows or not workers_in(process.pid):
        assert process.poll() is None, "the replay ended before it could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.005)


def assert_committed_as_said(said: str, stream: Path, db: Path) -> None:
    """Every report of the lines a Ctrl-C'd replay says are committed is in the store."""
    match = re.search(
        rf"interrupted: {re.escape(str(stream))} is committed up to line ([\d,]+)", said
    )
    assert match is not None, said
    committed = int(match[1].replace(",", ""))
    assert committed > 0
    wanted = set()
    for line in stream.read_text().splitlines()[:committed]:
        with contextlib.suppress(InvalidCallback):
            wanted |= {(e.message_id, e.status, e.timestamp_ms) for e in parse_callback(line)}
    store = SQLiteStore(db)
    held = {
        (h.event.message_id, h.event.status, h.event.timestamp_ms)
        for message_id in {m for m, _, _ in wanted}
        for h in store.history(message_id)
    }
    assert wanted <= held


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers through /proc")
@pytest.mark.parametrize(
    ("how", "rows"),
    [(signal.SIGINT, 1500), (signal.SIGINT, 6000), (signal.SIGKILL, 3000)],
    ids=["ctrl-c-early", "ctrl-c", "sigkill"],
)
def test_a_stopped_replay_leaves_no_worker_and_converges(
    long_stream: Path, tmp_path: Path, how: signal.Signals, rows: int
) -> None:
    """Ctrl-C (to the whole group, as a terminal sends it) or SIGKILL: no process is left over,
    and replaying again reaches the states of one uninterrupted replay."""
    db = tmp_path / "stopped.sqlite3"
    # a process group of its own, as a terminal gives a command; stderr kept for a traceback
    command = replay_command(long_stream, db)
    err = (tmp_path / "stderr").open("wb")
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=err,
        start_new_session=True,
        # Ctrl-C as a shell gives a foreground command: a test run started in the
        # background of a non-interactive shell would pass SIGINT down ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    wait_for_a_worker(process, db, rows)
    if how is signal.SIGINT:
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert gone_within(process.pid, 10), "a worker outlived the replay"
    err.close()
    if how is signal.SIGINT:
        said = (tmp_path / "stderr").read_text()
        assert process.returncode == 130, said
        assert "Traceback" not in said
        assert_committed_as_said(said, long_stream, db)
    again = subprocess.run(command, check=False, capture_output=True, timeout=300)
    assert again.returncode == 3, again.stderr  # the stream's broken bodies, nothing else
    reference = Tracker()
    for line in long_stream.read_text().splitlines():
        with contextlib.suppress(InvalidCallback):
            reference.apply_many(parse_callback(line))
    store = SQLiteStore(db)
    assert {s.message_id: s for s in store.iter_states()} == {
        s.message_id: reference.get(s.message_id) for s in store.iter_states()
    }
    assert sum(reference.count_by_status().values()) == sum(store.count_by_status().values())
