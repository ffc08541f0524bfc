"""Tests for the receiver's request reading: query strings and forms decoded strictly."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deliverystate import InvalidCallback
from deliverystate.web._requests import fields

# text with no lone surrogates: what a query string can carry once UTF-8 encoded
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


@given(st.dictionaries(_TEXT.filter(lambda name: name != "token"), _TEXT, max_size=6))
def test_valid_text_reads_back_as_the_standard_library_reads_it(pairs: dict[str, str]) -> None:
    """Fields urlencode writes come back as written, as parse_qsl(errors='strict') reads them."""
    raw = urlencode(pairs)
    assert fields(raw.encode(), drop="token") == pairs
    assert fields(raw.encode()) == dict(parse_qsl(raw, keep_blank_values=True, errors="strict"))


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"messageId=%ED%A0%80&statusCode=4", "messageId"),  # a lone surrogate's bytes
        (b"statusCode=4&cliMsgId=a%FFb", "cliMsgId"),
        (b"status=%C3", "status"),  # a character cut short
        (b"%ED%A0%80=1&messageId=m", "body"),  # the name itself is no text: no field to name
        ("messageId=é".encode(), "body"),  # raw bytes outside ASCII: not URL-encoded
    ],
)
def test_bytes_that_are_no_text_are_refused_naming_the_field(raw: bytes, field: str) -> None:
    """Never read as U+FFFD: an escape that is not UTF-8 is an InvalidCallback naming its field."""
    with pytest.raises(InvalidCallback) as caught:
        fields(raw)
    assert caught.value.field == field


def test_a_field_given_twice_is_refused_naming_it_and_how_often() -> None:
    """Even with the same value each time: which of two status codes would count?"""
    with pytest.raises(InvalidCallback) as caught:
        fields(b"messageId=m&statusCode=4&statusCode=4&statusCode=5")
    assert (caught.value.field, caught.value.reason) == (
        "statusCode",
        "given 3 times (expected one value)",
    )


def test_the_dropped_field_may_be_anything_and_is_left_out() -> None:
    """The token is left out before any check: twice, or with bytes that are no text."""
    assert fields(b"token=a&messageId=m&token=%ED%A0%80", drop="token") == {"messageId": "m"}


def test_pairs_are_read_as_parse_qsl_reads_them() -> None:
    """'+' is a space, a part without '=' is an empty field, empty parts are skipped."""
    raw = "a=x+y%2Bz&&stray&b=c=d&=e"
    assert fields(raw.encode()) == dict(parse_qsl(raw, keep_blank_values=True))
    assert fields(raw.encode()) == {"a": "x y+z", "stray": "", "b": "c=d", "": "e"}
