"""Tests for the seeded callback generator and the committed example stream."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from deliverystate import InvalidCallback, Status, Tracker, parse_callback
from deliverystate.callbacks import read_many
from deliverystate.simulate import PROVIDERS, generate_callbacks, provider_lines, simulate_lines

EXAMPLE = Path(__file__).parent.parent / "examples" / "callbacks.jsonl"
EXAMPLE_ARGS = {"messages": 1200, "seed": 7}


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    """The generator is deterministic per seed."""
    assert simulate_lines(50, seed=3) == simulate_lines(50, seed=3)
    assert simulate_lines(50, seed=3) != simulate_lines(50, seed=4)


def test_stream_is_realistically_messy() -> None:
    """Both channels, all three formats, batches, duplicates, disorder and invalid lines occur."""
    callbacks = generate_callbacks(1500, seed=11)
    valid = [c for c in callbacks if c.valid]
    assert [c.arrival_ms for c in callbacks] == sorted(c.arrival_ms for c in callbacks)
    events = [e for c in valid for e in parse_callback(c.body)]
    assert {e.channel for e in events} == {"sms", "whatsapp"}
    shapes = Counter(
        "one" if "event" in body else "legacy" if "apiMsgId" in body else "flat"
        for body in (json.loads(c.body) for c in valid)
    )
    assert set(shapes) == {"one", "flat", "legacy"}
    assert any(
        len(json.loads(c.body)["event"]["messageStatusUpdate"]) > 1
        for c in valid
        if '"event"' in c.body
    )
    keys = [(e.message_id, e.status, e.timestamp_ms) for e in events]
    assert len(keys) > len(set(keys)), "expected duplicated callbacks"
    by_message: dict[str, list[int]] = {}
    for event in events:
        by_message.setdefault(event.message_id, []).append(event.timestamp_ms)
    assert any(times != sorted(times) for times in by_message.values()), "expected disorder"
    assert len(by_message) >= 1400


def test_lines_marked_invalid_fail_to_parse() -> None:
    """Every line the generator marks invalid raises InvalidCallback, and some exist."""
    invalid = [c for c in generate_callbacks(3000, seed=5) if not c.valid]
    assert invalid
    for callback in invalid:
        try:
            parse_callback(callback.body)
        except InvalidCallback:
            continue
        raise AssertionError(f"expected {callback.body} to be invalid")


def test_committed_example_is_the_generators_output() -> None:
    """examples/callbacks.jsonl is exactly what `deliverystate simulate -n 1200 --seed 7` writes."""
    expected = "".join(line + "\n" for line in simulate_lines(**EXAMPLE_ARGS))
    assert EXAMPLE.read_text(encoding="utf-8") == expected, (
        "regenerate with: deliverystate simulate --messages 1200 --seed 7 "
        "-o examples/callbacks.jsonl"
    )


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_provider_stream_replays_without_a_refusal_and_is_seeded(provider: str) -> None:
    """Each provider's stream parses whole, reaches deliveries, and a seed gives the same lines."""
    lines = provider_lines(provider, 60, seed=3)
    assert lines == provider_lines(provider, 60, seed=3)
    assert lines != provider_lines(provider, 60, seed=4)
    batch = read_many(lines)
    assert batch.errors == ()
    reached = {event.status for event in batch.events}
    assert {Status.SENT_TO_SUPPLIER, Status.DEVICE_ACK} <= reached
    tracker = Tracker()
    tracker.apply_many(batch.events)
    assert len(tracker.messages(limit=1000)) == len({e.message_id for e in batch.events})


def test_simulate_provider_and_replay_round_trip(tmp_path: Path) -> None:
    """`simulate --provider meta` writes envelopes `replay` applies, every line taken."""
    from click.testing import CliRunner  # noqa: PLC0415 - the cli extra

    from deliverystate.cli._commands import cli  # noqa: PLC0415 - likewise

    stream = tmp_path / "meta.jsonl"
    made = CliRunner().invoke(
        cli, ["simulate", "--provider", "meta", "-n", "40", "-o", str(stream)]
    )
    assert made.exit_code == 0
    db = tmp_path / "meta.sqlite3"
    replayed = CliRunner().invoke(cli, ["replay", str(stream), "--db", str(db), "--json"])
    assert replayed.exit_code == 0, replayed.output
    report = json.loads(replayed.output)
    assert (report["invalid_lines"], report["dead_letters"]) == (0, 0)
    assert report["outcomes"]["applied"] > 40
