"""Tests for the command line, in-process and as the installed entry point."""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from deliverystate import (
    InvalidCallback,
    Outcome,
    SQLiteStore,
    Status,
    StatusEvent,
    Tracker,
    parse_callback,
)
from deliverystate.cli import replay_stream
from deliverystate.cli._commands import cli
from deliverystate.simulate import callback_body, generate_callbacks
from deliverystate.testing import BASE_MS

EXAMPLE = Path(__file__).parent.parent / "examples" / "callbacks.jsonl"
EXAMPLE_LINES = [line for line in EXAMPLE.read_text(encoding="utf-8").splitlines() if line]


def invalid_example_lines() -> list[str]:
    """The example's lines that do not parse, found by trying each one."""
    bad = []
    for line in EXAMPLE_LINES:
        try:
            parse_callback(line)
        except InvalidCallback:
            bad.append(line)
    return bad


BAD = invalid_example_lines()


def body(message_id: str, code: int, offset_ms: int, channel: str = "sms") -> str:
    """A One API callback line."""
    event = StatusEvent.from_ms(message_id, code, BASE_MS + offset_ms, channel)
    return json.dumps(callback_body(event))


STREAM = "\n".join(
    [
        body("a", 5, 50),
        body("a", 2, 10),  # late progress: stale
        body("a", 5, 50),  # duplicate
        "{broken",  # line 4
        body("a", 6, 90, "whatsapp"),  # wrong channel: rejected
        "",
        body("b", 23, 40),
        '{"messageId": "c", "statusCode": "142", "status": "WHATSAPP_NEW", "timestamp": "1"}',
    ]
)


def run(args: list[str], stdin: str | None = None):  # type: ignore[no-untyped-def]
    """Invoke the command group in-process."""
    return CliRunner().invoke(cli, args, input=stdin)


def test_replay_counts_outcomes_and_reports_bad_lines(tmp_path: Path) -> None:
    """Replay applies every good line, reports bad ones by number and exits 3 for them."""
    path = tmp_path / "callbacks.jsonl"
    path.write_text(STREAM)
    result = run(["replay", str(path), "--db", str(tmp_path / "s.sqlite3")])
    assert result.exit_code == 3, result.output
    assert "2 of 8 lines were invalid" in result.stderr
    assert f"{path}:4: invalid callback: body: not JSON" in result.stderr
    assert f"{path}:8: invalid callback: status: unknown status 'WHATSAPP_NEW'" in result.stderr
    out = result.stdout
    for label, count in [
        ("applied", 2),
        ("stale", 1),
        ("duplicate", 1),
        ("rejected", 1),
        ("invalid lines", 2),
        ("ignored events", 0),
    ]:
        assert re.search(rf"│ {label} +│ +{count} │", out), label
    assert "DEVICE_ACK" in out
    assert "DELIVERY_FAILURE" in out


def test_replay_reads_stdin() -> None:
    """A dash reads callbacks from standard input."""
    result = run(["replay", "-", "--db", ":memory:"], stdin=body("x", 4, 0) + "\n")
    assert result.exit_code == 0
    assert "SENT_TO_SUPPLIER" in result.stdout


def test_replay_of_missing_file_fails_with_one_clear_line(tmp_path: Path) -> None:
    """An unreadable file is a usage error: exit status 2 and one line."""
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
    assert len(result.errors) == len(invalid_example_lines()) > 0
    # the dead letter keeps each distinct body once
    assert len(direct.dead_letters()) == len(set(invalid_example_lines()))


def test_simulate_writes_the_example(tmp_path: Path) -> None:
    """simulate with the documented arguments reproduces examples/callbacks.jsonl."""
    out = tmp_path / "out.jsonl"
    result = run(["simulate", "--messages", "1200", "--seed", "7", "-o", str(out)])
    assert result.exit_code == 0
    assert out.read_bytes() == EXAMPLE.read_bytes()


def test_installed_entry_point_replays_the_example(tmp_path: Path) -> None:
    """The installed `deliverystate` script runs as a real subprocess."""
    script = shutil.which("deliverystate", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("the deliverystate entry point is not installed next to this Python")
    done = subprocess.run(
        [script, "replay", str(EXAMPLE), "--db", str(tmp_path / "e.sqlite3")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr  # the example holds a few broken bodies
    assert "total" in done.stdout
    assert re.search(r"total\s+│\s+1200 │", done.stdout)
    assert f"{EXAMPLE}:" in done.stderr
    assert Status.READ.name in done.stdout


def test_replay_into_sqlite_is_idempotent_and_keeps_bad_lines(tmp_path: Path) -> None:
    """Replaying the same file twice into one database changes nothing the second time."""
    db = str(tmp_path / "state.sqlite3")
    first = run(["replay", str(EXAMPLE), "--db", db])
    second = run(["replay", str(EXAMPLE), "--db", db])
    assert first.exit_code == second.exit_code == 3  # the example's broken bodies, twice
    assert re.search(r"│ applied +│ +0 │", second.stdout)
    events = sum(len(parse_callback(line)) for line in EXAMPLE_LINES if line not in BAD)
    assert re.search(rf"│ duplicate +│ +{events} │", second.stdout)
    assert len(SQLiteStore(db).dead_letters()) == len(set(BAD))


def test_dead_letter_list_and_retry(tmp_path: Path) -> None:
    """The dead-letter command lists kept bodies and re-applies those that now parse."""
    db = tmp_path / "dl.sqlite3"
    store = SQLiteStore(db)
    store.add_dead_letter("{broken", "invalid callback: body: not JSON")
    store.add_dead_letter(body("late", 5, 0), "unknown status code 5 (older catalog)")
    listed = run(["dead-letter", "list", "--db", str(db)])
    assert listed.exit_code == 0
    assert "{broken" in listed.stdout
    assert "older catalog" in listed.stdout
    retried = run(["dead-letter", "retry", "--db", str(db)])
    assert "re-applied 1 dead letters (1 events); 1 still invalid" in retried.stdout
    assert SQLiteStore(db).get("late").status is Status.DEVICE_ACK


def test_unusable_database_is_one_clear_line(tmp_path: Path) -> None:
    """A database that cannot be opened gives one line and no traceback."""
    result = run(["replay", str(EXAMPLE), "--db", str(tmp_path / "no" / "such" / "x.db")])
    assert result.exit_code == 1
    assert "unable to open database file" in result.stderr
    assert "Traceback" not in result.output


def history_rows(db: Path) -> int:
    """How many history rows a replay has committed so far (0 before the file exists)."""
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as reader:
        try:
            return int(reader.execute("SELECT count(*) FROM ds_history").fetchone()[0])
        except sqlite3.OperationalError:  # schema not created yet
            return 0


def test_killed_replays_converge(tmp_path: Path) -> None:
    """A replay killed with SIGKILL at random points, then run again, reaches the same states."""
    stream = tmp_path / "stream.jsonl"
    callbacks = generate_callbacks(3000, seed=99)
    stream.write_text("".join(c.body + "\n" for c in callbacks))
    db = tmp_path / "killed.sqlite3"
    script = shutil.which("deliverystate", path=str(Path(sys.executable).parent))
    assert script is not None
    command = [script, "replay", str(stream), "--db", str(db), "--chunk", "50"]
    rng = random.Random(5)
    killed_mid_run = 0
    for _ in range(4):
        # kill once the replay has committed a random amount more than last time
        target = history_rows(db) + rng.randint(200, 2500)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and history_rows(db) < target:
            time.sleep(0.002)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed_mid_run += 1
        process.wait(timeout=60)
    assert killed_mid_run >= 2, "the kills should land while the replay is running"
    done = subprocess.run(command, capture_output=True, timeout=300, check=False)
    assert done.returncode == 3  # the stream's broken bodies
    reference = Tracker()
    events = []
    for callback in callbacks:
        with contextlib.suppress(InvalidCallback):
            events.extend(parse_callback(callback.body))
    reference.apply_many(events)
    store = SQLiteStore(db)
    states = {s.message_id: s for s in store.iter_states()}
    assert states == {e.message_id: reference.get(e.message_id) for e in events}
    assert store.history_size() == len({(e.message_id, e.status, e.timestamp_ms) for e in events})
    assert len(store.dead_letters()) == len({c.body for c in callbacks if not c.valid})


@pytest.fixture
def replayed(tmp_path: Path) -> str:
    """A database holding the replayed example stream."""
    db = str(tmp_path / "example.sqlite3")
    assert run(["replay", str(EXAMPLE), "--db", db]).exit_code == 3  # its broken bodies
    return db


def test_codes_table_and_filters() -> None:
    """codes lists the catalog; --channel and --category filter it."""
    result = run(["codes"])
    assert result.exit_code == 0
    assert "MEDIA_REJECTED_BY_SUPPLIER" in result.stdout
    assert "Channel supplier rejected media file" in result.stdout
    sms = run(["codes", "--channel", "sms", "--json"])
    names = {row["name"] for row in json.loads(sms.stdout)}
    assert "ROUTING_ERROR" in names
    assert not any(name.startswith("WHATSAPP_") for name in names)
    media = json.loads(run(["codes", "--category", "media", "--json"]).stdout)
    assert [row["code"] for row in media] == [80, 81, 82, 83, 84, 85]
    assert [row["source"] for row in media] == ["seed"] * 5 + ["current"]
    assert all(row["terminal"] and row["failure"] for row in media)


def test_replay_json_summary(tmp_path: Path) -> None:
    """replay --json prints counts that add up to the lines read."""
    result = run(["replay", str(EXAMPLE), "--db", str(tmp_path / "j.sqlite3"), "--json"])
    data = json.loads(result.stdout)
    assert data["lines"] == len(EXAMPLE_LINES)
    assert data["invalid_lines"] == len(invalid_example_lines())
    assert data["ignored_events"] == sum('"moText"' in line for line in EXAMPLE_LINES) > 0
    assert sum(data["final_status"].values()) == 1200
    assert data["outcomes"]["applied"] + data["outcomes"]["stale"] > 0


def test_show_prints_the_timeline_in_event_order(replayed: str) -> None:
    """show lists a message's reports by event time with outcomes and arrival order."""
    store = SQLiteStore(replayed)
    message = next(s for s in store.iter_states() if len(store.history(s.message_id)) >= 3)
    result = run(["show", message.message_id, "--db", replayed])
    assert result.exit_code == 0
    assert f"Final state: {message.status.name}" in result.stdout
    data = json.loads(run(["show", message.message_id, "--db", replayed, "--json"]).stdout)
    times = [entry["timestamp"] for entry in data["timeline"]]
    assert times == sorted(times)
    assert data["status"] == message.status.name
    assert {entry["outcome"] for entry in data["timeline"]} <= {o.value for o in Outcome}


def test_show_unknown_message_is_one_clear_line(replayed: str) -> None:
    """An unknown message id exits 1 with one line."""
    result = run(["show", "no-such-id", "--db", replayed])
    assert result.exit_code == 1
    assert "no message 'no-such-id'" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["show x", "stats", "dead-letter list"])
def test_read_commands_refuse_a_missing_database(tmp_path: Path, command: str) -> None:
    """show, stats and dead-letter on a missing file explain and do not create it."""
    db = tmp_path / "absent.sqlite3"
    result = run([*command.split(), "--db", str(db)])
    assert result.exit_code == 1
    assert f"no database at {db}" in result.stderr
    assert "Traceback" not in result.output
    assert not db.exists()


def test_stats_matches_an_independent_count(replayed: str) -> None:
    """stats --json agrees with counts and latencies computed here from the states and history."""
    data = json.loads(run(["stats", "--db", replayed, "--json"]).stdout)
    store = SQLiteStore(replayed)
    states = list(store.iter_states())
    delivered = [s for s in states if s.status.name in {"DEVICE_ACK", "READ"}]
    assert data["messages"] == len(states) == 1200
    assert data["delivered"] == len(delivered)
    assert data["delivery_rate"] == pytest.approx(len(delivered) / len(states))
    assert data["by_catalog_section"]["sms"] == sum(
        s.status.name == "ROUTING_ERROR" for s in states
    )
    waits = []
    for state in delivered:
        timeline = [h for h in store.history(state.message_id) if h.outcome is not Outcome.REJECTED]
        first = min(h.event.timestamp_ms for h in timeline)
        acks = [
            h.event.timestamp_ms for h in timeline if h.event.status.name in {"DEVICE_ACK", "READ"}
        ]
        waits.append((min(acks) - first) / 1000)
    assert data["time_to_delivery"]["count"] == len(waits)
    assert data["time_to_delivery"]["median_s"] == pytest.approx(statistics.median(waits))
    table = run(["stats", "--db", replayed]).stdout
    assert "delivery rate" in table
    assert "first report -> read" in table


@pytest.mark.parametrize(
    ("fmt", "marker"),
    [("mermaid", "stateDiagram-v2"), ("dot", "digraph"), ("markdown", "| rank |")],
)
def test_diagram_text_formats(fmt: str, marker: str) -> None:
    """Text diagrams need nothing installed and go to stdout."""
    result = run(["diagram", "--format", fmt])
    assert result.exit_code == 0
    assert marker in result.stdout


def test_diagram_channel_and_output_file(tmp_path: Path) -> None:
    """--channel restricts the drawing and -o writes the file."""
    out = tmp_path / "wa.mmd"
    assert run(["diagram", "--channel", "whatsapp", "-o", str(out)]).exit_code == 0
    text = out.read_text()
    assert "WHATSAPP_HSM_NOT_AVAILABLE" in text
    assert "ROUTING_ERROR" not in text


def test_diagram_svg_without_graphviz_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no dot on PATH, --format svg exits 1 naming the package to install."""
    monkeypatch.setenv("PATH", "")
    result = run(["diagram", "--format", "svg"])
    assert result.exit_code == 1
    assert "apt-get install graphviz" in result.stderr


@pytest.mark.graphviz
def test_diagram_svg_with_graphviz() -> None:
    """--format svg renders an SVG document with Graphviz."""
    result = run(["diagram", "--format", "svg", "--channel", "sms"])
    assert result.exit_code == 0
    assert "<svg" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["diagram", "--format", "png"],
        ["diagram", "--channel", "rcs"],
        ["codes", "--category", "nope"],
        ["simulate", "--messages", "-3"],
        ["dead-letter", "purge"],
        ["show"],
        ["replay"],
        ["serve", "--basic", "no-colon"],
        ["serve", "--port", "70000"],
        ["frobnicate"],
    ],
)
def test_unusable_arguments_exit_2_with_one_clear_line(args: list[str]) -> None:
    """Bad arguments exit with status 2 and an Error line, no traceback."""
    result = run(args)
    assert result.exit_code == 2
    assert "Error:" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "command",
    ["codes", "replay", "show", "stats", "diagram", "dead-letter", "simulate", "serve"],
)
def test_every_command_help_shows_an_example(command: str) -> None:
    """Every command's --help carries a usage example."""
    result = run([command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout


def test_replay_stream_reports_progress_in_bytes() -> None:
    """The progress callback receives every byte of the input, batch by batch."""
    data = EXAMPLE.read_bytes()
    seen: list[int] = []
    replay_stream(iter(data.splitlines(keepends=True)), Tracker(), chunk=500, progress=seen.append)
    assert sum(seen) == len(data)
    assert len(seen) == -(-len(EXAMPLE_LINES) // 500)


def test_serve_runs_the_receiver_as_a_real_process(tmp_path: Path) -> None:
    """`deliverystate serve` listens, stores a posted callback and answers for the message."""
    script = shutil.which("deliverystate", path=str(Path(sys.executable).parent))
    assert script is not None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    db = tmp_path / "served.sqlite3"
    server = subprocess.Popen(
        [script, "serve", "--db", str(db), "--port", str(port), "--token", "s3cret"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        request = urllib.request.Request(
            f"{base}/callbacks/clickatell?token=s3cret",
            data=body("served", 5, 0).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"{base}/messages/served?token=s3cret", timeout=10) as reply:
            assert json.load(reply)["status"] == "DEVICE_ACK"
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert SQLiteStore(db).get("served").status is Status.DEVICE_ACK


# --- prune -------------------------------------------------------------------------------


def all_states_and_histories(db: str) -> dict[str, object]:
    """Every message of an SQLite file with its state and (event, outcome) history."""
    with contextlib.closing(SQLiteStore(db)) as store:
        return {
            s.message_id: (s, [(e.event, e.outcome) for e in store.history(s.message_id)])
            for s in store.iter_states()
        }


def test_prune_dry_run_archive_and_replay_round_trip(replayed: str, tmp_path: Path) -> None:
    """--dry-run counts; prune appends the archive; replaying it restores states and histories."""
    before = all_states_and_histories(replayed)
    dry = run(
        ["prune", "--db", replayed, "--before", "2026-01-01T00:03:00Z", "--dry-run", "--json"]
    )
    assert dry.exit_code == 0, dry.output
    would = json.loads(dry.stdout)["removed"]
    assert 0 < would < len(before)
    assert all_states_and_histories(replayed) == before  # a dry run changes nothing
    archive = tmp_path / "archive.jsonl"
    done = run(
        ["prune", "--db", replayed, "--before", "2026-01-01T00:03:00", "--archive", str(archive)]
    )
    assert done.exit_code == 0, done.output
    assert f"removed {would:,} of {len(before):,} messages" in done.stdout
    assert f"archived to {archive}" in done.stdout
    lines = archive.read_text(encoding="utf-8").splitlines()
    assert len(lines) == would
    remaining = all_states_and_histories(replayed)
    assert len(remaining) == len(before) - would
    assert all(
        not s.status.is_terminal or s.timestamp_ms >= BASE_MS + 180_000
        for s, _ in remaining.values()
    )
    restored = run(["replay", str(archive), "--db", replayed, "--json"])
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.stdout)["invalid_lines"] == 0
    assert all_states_and_histories(replayed) == before


def test_prune_removes_delivered_sms_of_january_when_pruning_to_june(tmp_path: Path) -> None:
    """Issue 22: SMS end at DEVICE_ACK; --dry-run counts them and prune leaves none of January."""
    day = 86_400_000
    january = [  # 30 SMS sent in January, each acknowledged by the handset within minutes
        body(f"jan-{n}", code, n * day // 2 + step * 60_000)
        for n in range(30)
        for step, code in enumerate((2, 4, 5))
    ]
    stuck = [body("jan-stuck", 2, 0), body("jan-stuck", 4, 60_000)]  # never heard of again
    june = [body(f"jun-{n}", code, 165 * day + n) for n in range(5) for code in (2, 4, 5)]
    stream = tmp_path / "stream.jsonl"
    stream.write_text("\n".join(january + stuck + june) + "\n", encoding="utf-8")
    db = str(tmp_path / "sms.sqlite3")
    assert run(["replay", str(stream), "--db", db]).exit_code == 0
    dry = run(["prune", "--db", db, "--before", "2026-06-01", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert (json.loads(dry.stdout)["removed"], json.loads(dry.stdout)["tracked_before"]) == (30, 36)
    done = run(["prune", "--db", db, "--before", "2026-06-01"])
    assert done.exit_code == 0, done.output
    assert "removed 30 of 36 messages (settled, last report before 2026-06-01" in done.stdout
    with contextlib.closing(SQLiteStore(db)) as store:
        left = {state.message_id: state.status for state in store.iter_states()}
    assert left == {"jan-stuck": Status.SENT_TO_SUPPLIER} | {
        f"jun-{n}": Status.DEVICE_ACK for n in range(5)
    }


def test_prune_gives_the_pages_back_to_the_disk(tmp_path: Path) -> None:
    """A new SQLite file vacuums incrementally: after a big prune it is smaller, no free pages."""
    db = tmp_path / "big.sqlite3"
    stream = tmp_path / "stream.jsonl"
    stream.write_text("\n".join(c.body for c in generate_callbacks(3000, seed=5)) + "\n")
    assert run(["replay", str(stream), "--db", str(db)]).exit_code == 3  # its broken bodies
    with contextlib.closing(sqlite3.connect(db)) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = raw.execute("PRAGMA page_count").fetchone()[0]
    size = db.stat().st_size
    pruned = run(["prune", "--db", str(db), "--before", "2030-01-01", "--json"])
    share = json.loads(pruned.stdout)["removed"] / 3000  # the final ones, about a third
    with contextlib.closing(sqlite3.connect(db)) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        assert raw.execute("PRAGMA freelist_count").fetchone()[0] == 0
        left = raw.execute("PRAGMA page_count").fetchone()[0]
    assert share > 0.25
    # the file shrank by about the pruned share (their feed went too, so more)
    assert left < pages * (1 - share * 0.8)
    assert db.stat().st_size < size * (1 - share * 0.8)


def test_prune_refuses_a_date_it_cannot_read_and_a_missing_database(tmp_path: Path) -> None:
    """--before must be a date or ISO time; a read-only run never creates a database."""
    bad = run(["prune", "--db", str(tmp_path / "x.sqlite3"), "--before", "last tuesday"])
    assert bad.exit_code == 2
    assert "not a date" in bad.output
    missing = run(["prune", "--db", str(tmp_path / "none.sqlite3"), "--before", "2026-01-01"])
    assert missing.exit_code == 1
    assert "no database" in missing.output
    assert not (tmp_path / "none.sqlite3").exists()


# --- small things an operator trips on ------------------------------------------------


def test_codes_fit_an_80_column_terminal() -> None:
    """On 80 columns the catalog table stays within them and shows every name whole."""
    from rich.console import Console  # noqa: PLC0415 - only this test renders by hand

    from deliverystate.cli._tables import codes_table  # noqa: PLC0415

    console = Console(width=80, record=True, file=io.StringIO())
    console.print(codes_table(list(Status)))
    text = console.export_text()
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80
    for status in Status:
        assert status.name in text


def _options(command: click.Command, path: str) -> Iterator[tuple[str, click.Parameter]]:
    """Every parameter of ``command`` and its sub-commands, with the command's path."""
    for param in command.params:
        yield path, param
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _options(sub, f"{path} {name}")


def test_every_option_has_help_text() -> None:
    """`--help` explains every option of every command (arguments are named in the usage)."""
    missing = [
        f"{path} {param.opts[0]}"
        for path, param in _options(cli, "deliverystate")
        if isinstance(param, click.Option) and not param.help and param.opts[0] != "--help"
    ]
    assert missing == []


def test_choices_take_any_case() -> None:
    """--channel SMS and --category GENERIC work like their lower-case spelling."""
    result = CliRunner().invoke(cli, ["codes", "--channel", "SMS", "--category", "GENERIC"])
    assert result.exit_code == 0, result.output
    assert "DELIVERY_FAILURE" in result.output
    assert "WHATSAPP_SPAM_RATE_LIMIT_REACHED" not in result.output


def test_diagram_takes_its_format_from_the_file_name(tmp_path: Path) -> None:
    """-o x.dot writes dot, -o x.md markdown; an unknown extension asks for --format."""
    runner = CliRunner()
    assert runner.invoke(cli, ["diagram", "-o", str(tmp_path / "x.dot")]).exit_code == 0
    assert "digraph lifecycle {" in (tmp_path / "x.dot").read_text(encoding="utf-8")
    assert runner.invoke(cli, ["diagram", "-o", str(tmp_path / "x.md")]).exit_code == 0
    assert "| code | name |" in (tmp_path / "x.md").read_text(encoding="utf-8")
    unknown = runner.invoke(cli, ["diagram", "-o", str(tmp_path / "x.txt")])
    assert unknown.exit_code == 2
    assert "give --format" in unknown.output


def test_diagram_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    """-o into a folder that does not exist: exit 1 and one line naming it, no traceback."""
    result = CliRunner().invoke(cli, ["diagram", "-o", str(tmp_path / "nope" / "x.mmd")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert "does not exist" in result.output
