"""Tests for the seeded callback generator and the committed example stream."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from deliverystate import InvalidCallback, parse_callback
from deliverystate.simulate import generate_callbacks, simulate_lines

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
