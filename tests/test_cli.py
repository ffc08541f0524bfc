"""Tests for the command line, in-process and as the installed entry point."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from deliverystate import Status, StatusEvent, Tracker
from deliverystate.cli import _build, replay_stream

from .strategies import BASE_MS, one_api_body

EXAMPLE = Path(__file__).parent.parent / "examples" / "callbacks.jsonl"


def body(message_id: str, code: int, offset_ms: int, channel: str = "sms") -> str:
    """A One API callback line."""
    event = StatusEvent.from_ms(message_id, code, BASE_MS + offset_ms, channel)
    return json.dumps(one_api_body(event))


STREAM = "\n".join(
    [
        body("a", 5, 50),
        body("a", 2, 10),  # late progress: stale
        body("a", 5, 50),  # duplicate
        "{broken",  # line 4
        body("a", 6, 90, "whatsapp"),  # wrong channel: rejected
        "",
        body("b", 23, 40),
        '{"messageId": "c", "statusCode": "85", "timestamp": "1"}',  # line 8
    ]
)


def run(args: list[str], stdin: str | None = None):  # type: ignore[no-untyped-def]
    """Invoke the command group in-process."""
    return CliRunner().invoke(_build(), args, input=stdin)


def test_replay_counts_outcomes_and_reports_bad_lines(tmp_path: Path) -> None:
    """Replay applies every line, reports bad ones by number and exits 0."""
    path = tmp_path / "callbacks.jsonl"
    path.write_text(STREAM)
    result = run(["replay", str(path)])
    assert result.exit_code == 0, result.output
    assert "line 4: invalid callback: body: not JSON" in result.stderr
    assert "line 8: invalid callback: statusCode: unknown status code 85" in result.stderr
    out = result.stdout
    for label, count in [("applied", 2), ("stale", 1), ("duplicate", 1), ("rejected", 1)]:
        assert f"│ {label:<13} │ {count:>6} │" in out
    assert "│ invalid lines │      2 │" in out
    assert "DEVICE_ACK" in out
    assert "DELIVERY_FAILURE" in out


def test_replay_reads_stdin() -> None:
    """A dash reads callbacks from standard input."""
    result = run(["replay", "-"], stdin=body("x", 4, 0) + "\n")
    assert result.exit_code == 0
    assert "SENT_TO_SUPPLIER" in result.stdout


def test_replay_of_missing_file_fails_with_one_clear_line(tmp_path: Path) -> None:
    """An unreadable file is the one case with a non-zero exit."""
    result = run(["replay", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2
    assert "No such file" in result.stderr


def test_replay_stream_matches_the_tracker_directly() -> None:
    """replay_stream reaches the states a tracker fed the same bodies reaches."""
    lines = EXAMPLE.read_bytes().splitlines(keepends=True)
    replayed, direct = Tracker(), Tracker()
    result = replay_stream(iter(lines), replayed)
    for line in lines:
        with contextlib.suppress(ValueError):
            direct.ingest(line)
    assert replayed.count_by_status() == direct.count_by_status()
    assert result.lines == len(lines)
    assert len(result.errors) == len(direct.dead_letters()) > 0


def test_simulate_writes_the_example(tmp_path: Path) -> None:
    """simulate with the documented arguments reproduces examples/callbacks.jsonl."""
    out = tmp_path / "out.jsonl"
    result = run(["simulate", "--messages", "1200", "--seed", "7", "-o", str(out)])
    assert result.exit_code == 0
    assert out.read_bytes() == EXAMPLE.read_bytes()


def test_help_shows_an_example() -> None:
    """Each command's help carries a usage example."""
    for command in ("replay", "simulate"):
        assert "Example:" in run([command, "--help"]).stdout


def test_installed_entry_point_replays_the_example() -> None:
    """The installed `deliverystate` script runs as a real subprocess."""
    script = shutil.which("deliverystate", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("the deliverystate entry point is not installed next to this Python")
    done = subprocess.run(
        [script, "replay", str(EXAMPLE)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "total" in done.stdout
    assert re.search(r"total\s+│\s+1200 │", done.stdout)
    assert "line " in done.stderr
    assert Status.READ.name in done.stdout
