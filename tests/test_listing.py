"""The list's filters and cursors (_listing): a cursor is taken back only as it was given out."""

from __future__ import annotations

import base64

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from deliverystate import MessageState, Status
from deliverystate.errors import InvalidParameter
from deliverystate.stores import Listed
from deliverystate.tracking._listing import decode_cursor, encode_cursor, message_query

#: The latest time an event may carry (2527), as the issue's time bounds say, written out.
LATEST_MS = 2**44 - 1


def b64(raw: bytes) -> str:
    """``raw`` as a cursor is spelt: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: Ids a message may have: up to 256 characters of text, no control character, no surrogate.
ids = st.text(
    st.characters(blacklist_categories=["Cc", "Cs"]),  # Cc: C0, DEL and C1
    min_size=1,
    max_size=256,
)


@given(first_ms=st.integers(0, LATEST_MS), message_id=ids)
@example(first_ms=LATEST_MS, message_id="\U0010ffff" * 256)
def test_every_cursor_given_out_is_taken_back(first_ms: int, message_id: str) -> None:
    """decode_cursor(encode_cursor(x)) is x's (time, id), for the longest id and time too."""
    listed = Listed(first_ms, MessageState(message_id, Status.QUEUED, first_ms))
    assert decode_cursor(encode_cursor(listed)) == (first_ms, message_id)


@given(st.text(max_size=60) | st.binary(max_size=60).map(b64))
@example(b64(b"17592186044416:x"))  # one past the latest time
@example(b64(b"9223372036854775808:x"))
@example(b64(b"0:" + b"x" * 257))
def test_any_other_text_is_refused_as_the_cursor_parameter(text: str) -> None:
    """Arbitrary text or base64 is a cursor given out (it re-encodes as it came) or refused."""
    try:
        first_ms, message_id = decode_cursor(text)
    except InvalidParameter as error:
        refused: InvalidParameter | None = error
    else:
        refused = None
        listed = Listed(first_ms, MessageState(message_id, Status.QUEUED, first_ms))
        assert encode_cursor(listed) == text
    if refused is not None:
        assert refused.parameter == "cursor"
        assert "is not one this server gave out" in str(refused)


@pytest.mark.parametrize(
    ("filters", "parameter"),
    [
        ({"client_message_id": "a\x00b"}, "client_message_id"),
        ({"client_message_id": "\ud800"}, "client_message_id"),
        ({"client_message_id": "x" * 257}, "client_message_id"),
        ({"statuses": ["DELIVERED"]}, "status"),
        ({"categories": ["nope"]}, "category"),
        ({"channel": "fax"}, "channel"),
        ({"since": "tomorrow"}, "since"),
        ({"until": "x" * 10_000}, "until"),
    ],
)
def test_a_filter_that_cannot_be_used_is_invalid_naming_it(
    filters: dict[str, object], parameter: str
) -> None:
    """message_query says which filter is wrong (a ValueError still) and quotes it short."""
    with pytest.raises(InvalidParameter) as raised:
        message_query(**filters)  # type: ignore[arg-type]
    assert raised.value.parameter == parameter
    assert isinstance(raised.value, ValueError)
    assert len(str(raised.value)) < 200
