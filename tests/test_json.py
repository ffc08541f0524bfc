"""Tests for decoding a body's JSON: the fast decoder decides what the standard library does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliverystate import InvalidCallback
from deliverystate.callbacks import _decode as json_module
from deliverystate.callbacks._decode import decode_body, members

msgspec = pytest.importorskip("msgspec", reason="the fast decoder comes with the 'fast' extra")


@pytest.fixture
def fast_only(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The fast decoder, recording each body whose value it supplied."""
    decoded: list[object] = []
    real = msgspec.json.Decoder().decode

    def recording(payload: bytes | str) -> Any:
        decoded.append(payload)
        return real(payload)

    monkeypatch.setattr(json_module, "FAST_DECODER", recording)
    return decoded


def outcome(payload: bytes | str, fast: bool) -> tuple[Any, ...]:
    """What decoding ``payload`` comes to, with or without the fast decoder, comparably."""
    saved = json_module.FAST_DECODER
    json_module.FAST_DECODER = msgspec.json.Decoder().decode if fast else None
    try:
        return ("value", exact(decode_body(payload)))
    except InvalidCallback as error:
        return ("refused", error.field, error.reason, exact(error.value), str(error))
    finally:
        json_module.FAST_DECODER = saved


def exact(value: Any) -> Any:
    """``value`` with every type and float bit made visible (-0.0 is not 0.0, 1 is not 1.0)."""
    if isinstance(value, dict):
        return ("object", [(key, exact(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("array", [exact(item) for item in value])
    return (type(value).__name__, repr(value))


# --- JSON text, written token by token so that keys can repeat --------------------------

KEYS = st.sampled_from(["a", "b", "statusCode", "a:b", "", "é", "\ud800", ":", "messageId"])
NUMBERS = st.sampled_from(
    [
        "0",
        "-0",
        "1",
        "-12",
        "0.5",
        "-0.0",
        "1e3",
        "1E-400",
        "1e400",
        "-1e400",
        "5e-324",
        "1.7976931348623157e309",
        "123456789012345678901234567890",
        "-9223372036854775809",
        "18446744073709551616",
        "1767225600123",
        "NaN",
        "Infinity",
        "-Infinity",
    ]
)
SPACE = st.sampled_from(["", "", " ", "\n", "\t", "\r", "  "])
# not JSON anywhere: spliced into a body now and then
NOT_JSON = st.sampled_from(["\x0c", "\u00a0", "01", "1.", ".5", "tru", "x", "}", ",1", "\x00"])


def string_token(text: str, ascii_only: bool) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)


scalars = st.one_of(
    NUMBERS,
    st.sampled_from(["true", "false", "null", '"a\\"b"', '"\\u003a"', '"x\\u0000y"']),
    st.builds(string_token, st.text(max_size=6), st.booleans()),
    st.builds(string_token, st.sampled_from(["a:b", "12:00", "\ud800", "é"]), st.booleans()),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


@st.composite
def objects(draw: st.DrawFn, children: st.SearchStrategy[str]) -> str:
    pairs = draw(st.lists(st.tuples(KEYS, children), max_size=5))
    sep = draw(SPACE)
    ascii_only = draw(st.booleans())
    inner = ",".join(f"{sep}{string_token(k, ascii_only)}{sep}:{sep}{v}" for k, v in pairs)
    return "{" + inner + sep + "}"


@st.composite
def arrays(draw: st.DrawFn, children: st.SearchStrategy[str]) -> str:
    sep = draw(SPACE)
    return "[" + ",".join(sep + v for v in draw(st.lists(children, max_size=4))) + sep + "]"


values = st.recursive(scalars, lambda children: objects(children) | arrays(children), max_leaves=25)


@st.composite
def bodies(draw: st.DrawFn) -> str:
    """JSON-ish text, mostly an object at the top (where the fast decoder is used)."""
    text = draw(SPACE) + draw(objects(values) if draw(st.integers(0, 9)) else values) + draw(SPACE)
    if not draw(st.integers(0, 4)):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(NOT_JSON) + text[at:]
    return text


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(bodies(), st.booleans())
def test_fast_and_standard_decoders_agree(text: str, as_bytes: bool) -> None:
    """Repeated keys, colons in strings, big numbers, bad text: the same value or refusal."""
    payload: bytes | str = text.encode("utf-8", "surrogatepass") if as_bytes else text
    assert outcome(payload, fast=True) == outcome(payload, fast=False)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"a": 1, "a": 1}', "a"),
        ('{"event": {"messageStatusUpdate": [{"x": 1, "y": 2, "x": 3}]}}', "x"),
        ('{"list": [{"k": 1}, {"k": 2, "k": 2}]}', "k"),
        ('{"outer": {"k": 1, "k": {"k": 2}}}', "k"),
        ('{"a:b": 1, "a:b": 2}', "a:b"),
    ],
)
def test_a_repeated_key_anywhere_is_refused(text: str, key: str, fast_only: list[object]) -> None:
    """A key given twice in one object, at any depth, is refused naming the key."""
    for payload in (text, text.encode()):
        with pytest.raises(InvalidCallback) as caught:
            decode_body(payload)
        assert (caught.value.field, caught.value.value) == (key, key)
        assert "more than once" in caught.value.reason
    assert fast_only  # the fast decoder ran, and its answer was not taken


def test_the_same_key_in_different_objects_is_no_repeat(fast_only: list[object]) -> None:
    """{"k": {"k": ...}} and [{"k"}, {"k"}] repeat nothing: the fast decoder's value is used."""
    text = '{"k": {"k": 1}, "l": [{"k": 2}, {"k": 3}]}'
    assert decode_body(text) == {"k": {"k": 1}, "l": [{"k": 2}, {"k": 3}]}
    assert members(json.loads(text)) == 5 == text.count(":")


def test_big_integers_stay_integers(fast_only: list[object]) -> None:
    """Integers beyond 64 bits are ints, as the standard library makes them (orjson would not)."""
    assert decode_body('{"timestamp": 123456789012345678901234567890}') == {
        "timestamp": 123456789012345678901234567890
    }


def test_what_only_the_standard_library_reads_is_still_read(fast_only: list[object]) -> None:
    """NaN, 1e400, a lone surrogate escape: msgspec refuses them, the standard library decides."""
    body = decode_body('{"a": NaN, "b": 1e400, "c": "\\ud800"}')
    assert body["b"] == float("inf")
    assert body["c"] == "\ud800"
    assert body["a"] != body["a"]


def test_without_the_fast_decoder_the_standard_library_decides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With msgspec missing (FAST_DECODER None), bodies decode and repeated keys are refused."""
    monkeypatch.setattr(json_module, "FAST_DECODER", None)
    assert decode_body(b'{"a": [1, {"b": 2}]}') == {"a": [1, {"b": 2}]}
    with pytest.raises(InvalidCallback, match="more than once"):
        decode_body('{"a": 1, "a": 2}')


def test_the_fast_decoder_is_msgspec_when_installed() -> None:
    """With the 'fast' extra installed, bodies are decoded by msgspec first."""
    assert json_module.FAST_DECODER is not None
    assert json_module._msgspec() is not None
