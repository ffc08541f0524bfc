"""The JSON programs read: one spelling of time in every output, and the shapes' keys in order.

Every command that prints JSON (and the receiver's JSON endpoints) is run
against a store holding messages, registered sends, a sweep's expiries and
dead letters, and every string in what it prints that starts like a date must
be ISO 8601 in UTC with milliseconds and a ``Z``: the one spelling
``rules._time.iso`` writes (issue 25 counted 3 times with ``+00:00`` among
592 with ``Z``).  Human-readable tables are not looked at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from deliverystate import Status, StatusEvent, Tracker, open_store
from deliverystate.cli._commands import cli
from deliverystate.rules._events import Change, MessageState
from deliverystate.rules._reconcile import Outcome
from deliverystate.rules._records import HistoryEntry
from deliverystate.simulate import simulate_lines
from deliverystate.testing import BASE_MS
from deliverystate.tracking._wire import archive_line, change_json, state_json

from .test_cli_stores import command_paths, resolve
from .test_web import receiver

#: The one spelling: 2026-01-01T00:00:05.250Z.
ONE_SPELLING = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
#: A string that starts like a date or a time is held to it.
LOOKS_LIKE_TIME = re.compile(r"\d{4}-\d\d-\d\d")

SENDS = [
    # a zone other than UTC, and a deadline with microseconds: both come out in UTC, in ms
    {"message_id": "reg-1", "channel": "sms", "sent_at": "2026-01-01T13:00:00+01:00"},
    {
        "message_id": "reg-2",
        "channel": "whatsapp",
        "sent_at": "2026-01-01T12:00:00Z",
        "deadline": "2026-01-02T12:00:00.123456+00:00",
        "client_message_id": "order-2",
    },
]


def times_in(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every (path, string) in a JSON value whose string starts like a date."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from times_in(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from times_in(item, f"{where}[{index}]")
    elif isinstance(value, str) and LOOKS_LIKE_TIME.match(value):
        yield where, value


def json_of(text: str) -> list[Any]:
    """The JSON documents of a command's output: one document, or one a line (JSON lines)."""
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def filled(database: str, tmp_path: Path) -> str:
    """A store with callbacks, dead letters, registered sends and a sweep's expiries."""
    stream = tmp_path / "stream.jsonl"
    lines = [*simulate_lines(40, 5), "{broken", '{"messageId": "x", "status": "?"}']
    stream.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sends = tmp_path / "sends.jsonl"
    sends.write_text("".join(json.dumps(send) + "\n" for send in SENDS), encoding="utf-8")
    for args in (["replay", str(stream)], ["register", str(sends)]):
        done = CliRunner().invoke(cli, [*args, "--db", database])
        assert done.exit_code in (0, 3), done.output
    return database


def json_commands(db: str, tmp_path: Path) -> list[list[str]]:
    """Every command that prints JSON, with what makes it print times, against ``db``."""
    stream, sends = str(tmp_path / "stream.jsonl"), str(tmp_path / "sends.jsonl")
    archive = str(tmp_path / "archive.jsonl")
    commands = [
        ["codes", "--json"],
        ["replay", stream, "--json"],
        ["register", sends, "--json"],
        ["sweep", "--now", "2026-03-01T02:00:00+02:00", "--json"],
        ["sweep", "--json"],  # now: the clock, with its microseconds
        ["stats", "--json"],
        ["stats", "--since", "2025-12-31T23:00:00-01:00", "--json"],
        ["show", "reg-2", "--json"],
        ["show", "order-2", "--json"],
        ["messages", "--format", "json", "--history", "--limit", "500"],
        ["messages", "--format", "jsonl", "--history"],
        ["changes", "--json"],
        ["dead-letter", "--json"],
        ["dead-letter", "list", "--json"],
        ["dead-letter", "list", "--group-by", "reason", "--json"],
        ["dead-letter", "show", "1", "--json"],
        ["dead-letter", "purge", "--before", "2000-01-01", "--dry-run", "--json"],
        ["dead-letter", "retry", "--json"],
        ["prune", "--before", "2026-06-01T01:30:00+01:00", "--dry-run", "--json"],
        ["prune", "--before", "2030-01-01", "--archive", archive, "--json"],
    ]
    return [args if args[0] == "codes" else [*args, "--db", db] for args in commands]


def test_every_json_output_spells_time_one_way(filled: str, tmp_path: Path) -> None:
    """Every time every --json command prints is UTC, milliseconds, Z; prune's archive too."""
    found: dict[str, list[tuple[str, str]]] = {}
    invocations = json_commands(filled, tmp_path)
    for args in invocations:
        done = CliRunner().invoke(cli, args)
        # replay's stream holds invalid lines: exit status 3
        assert done.exit_code == (3 if args[0] == "replay" else 0), (args, done.output)
        documents = json_of(done.stdout)
        label = " ".join(args[: args.index("--db")] if "--db" in args else args)
        found[label] = [t for d in documents for t in times_in(d)]
    archived = Path(tmp_path / "archive.jsonl").read_text(encoding="utf-8").splitlines()
    assert archived
    found["archive"] = [t for line in archived for t in times_in(json.loads(line))]
    wrong = {
        what: [t for t in times if not ONE_SPELLING.fullmatch(t[1])]
        for what, times in found.items()
    }
    assert {what: times for what, times in wrong.items() if times} == {}
    # not vacuous: each command known to print times printed some
    for prefix in (
        "sweep",
        "stats --since",
        "show",
        "messages",
        "changes",
        "dead-letter list --json",
        "dead-letter show",
        "prune",
        "archive",
    ):
        printed = [times for label, times in found.items() if label.startswith(prefix)]
        assert printed, prefix
        assert all(printed), prefix
    # every command with JSON output is run above
    with_json = {
        path
        for path in command_paths(cli)
        if any(
            "--json" in p.opts for p in resolve(list(path))[1].params if isinstance(p, click.Option)
        )
    }
    assert with_json <= {resolve(args)[0] for args in invocations}


def test_the_times_of_sweep_and_prune_are_those_asked_in_utc(filled: str) -> None:
    """--now and --before given with an offset come back as the same instant in UTC."""
    swept = CliRunner().invoke(
        cli, ["sweep", "--now", "2026-03-01T02:00:00+02:00", "--db", filled, "--json"]
    )
    assert json.loads(swept.stdout)["now"] == "2026-03-01T00:00:00.000Z"
    pruned = CliRunner().invoke(
        cli,
        ["prune", "--before", "2026-06-01T01:30:00+01:00", "--dry-run", "--db", filled, "--json"],
    )
    assert json.loads(pruned.stdout)["before"] == "2026-06-01T00:30:00.000Z"
    registered = json.loads(
        CliRunner().invoke(cli, ["show", "reg-2", "--db", filled, "--json"]).stdout
    )
    assert registered["deadline"] == "2026-01-02T12:00:00.123Z"
    show = json.loads(CliRunner().invoke(cli, ["show", "reg-1", "--db", filled, "--json"]).stdout)
    assert show["timeline"][0]["timestamp"] == "2026-01-01T12:00:00.000Z"


def test_the_receivers_json_spells_time_one_way(filled: str) -> None:
    """GET /messages, GET /messages/{id} and a callback's answer: the same spelling."""
    store = open_store(filled, must_exist=True)
    try:
        with receiver(Tracker(store)) as client:
            answers = [
                client.get("/messages", params={"limit": "200"}),
                client.get("/messages/reg-2"),
                client.get("/messages/reg-1"),
            ]
    finally:
        getattr(store, "close", lambda: None)()
    times = [t for answer in answers for t in times_in(answer.json())]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert times
    assert [t for t in times if not ONE_SPELLING.fullmatch(t[1])] == []


def test_the_shapes_keep_their_keys_in_order() -> None:
    """State, timeline entry, change, archive line: the keys programs read, in today's order."""
    event = StatusEvent.from_ms("m", Status.SENT_TO_SUPPLIER, BASE_MS, "sms", "c")
    state = MessageState("m", Status.DEVICE_ACK, BASE_MS + 5, "sms", "c", deadline_ms=BASE_MS + 9)
    shown = state_json(state, [HistoryEntry(event, Outcome.APPLIED, 1)])
    assert list(shown) == [
        "message_id",
        "status",
        "status_code",
        "description",
        "timestamp",
        "channel",
        "client_message_id",
        "origin",
        "deadline",
        "terminal",
        "delivered",
        "failed",
        "timeline",
    ]
    assert list(shown["timeline"][0]) == [
        "status",
        "status_code",
        "timestamp",
        "outcome",
        "channel",
        "client_message_id",
        "origin",
        "arrival",
    ]
    change = Change(3, "m", Status.SENT_TO_SUPPLIER, Status.DEVICE_ACK, BASE_MS, "sms", "c")
    assert list(change_json(change)) == [
        "seq",
        "message_id",
        "status",
        "status_code",
        "previous",
        "previous_code",
        "timestamp",
        "channel",
        "client_message_id",
        "origin",
        "description",
        "final",
        "delivered",
        "failed",
    ]
    line = json.loads(archive_line(state, [(event, "applied", 1)]))
    assert list(line) == ["deliverystate", "version", "message_id", "state", "history"]
    assert list(line["state"]) == [
        "status",
        "status_code",
        "timestamp",
        "timestamp_ms",
        "channel",
        "client_message_id",
        "origin",
        "deadline_ms",
    ]
    assert list(line["history"][0]) == [
        "status",
        "status_code",
        "timestamp",
        "timestamp_ms",
        "channel",
        "client_message_id",
        "origin",
        "outcome",
        "arrival",
    ]
