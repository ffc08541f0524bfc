"""Tests for the event and state records."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import pytest

from deliverystate import MessageState, Status, StatusEvent
from deliverystate.rules._events import check_seq
from deliverystate.rules._time import datetime_from_ms, ms_from_datetime


def test_timestamp_is_truncated_to_milliseconds_and_kept_as_integer() -> None:
    """A datetime with microseconds is stored at millisecond resolution."""
    moment = datetime(2026, 1, 1, 12, 0, 0, 123_999, tzinfo=timezone.utc)
    event = StatusEvent("m", Status.QUEUED, moment)
    assert event.timestamp == moment.replace(microsecond=123_000)
    assert event.timestamp_ms == 1_767_268_800_123


def test_other_time_zones_are_converted_to_utc() -> None:
    """An aware timestamp in another zone becomes the same instant in UTC."""
    moment = datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    event = StatusEvent("m", Status.QUEUED, moment)
    assert event.timestamp.utcoffset() == timedelta(0)
    assert event.timestamp == moment


def test_naive_timestamp_is_refused() -> None:
    """A timestamp without a timezone is ambiguous and raises ValueError."""
    with pytest.raises(ValueError, match="no timezone"):
        StatusEvent("m", Status.QUEUED, datetime(2026, 1, 1))


@pytest.mark.parametrize("timestamp", [1_767_225_600_000, 1_767_225_600.0, "2026-01-01"])
def test_a_timestamp_that_is_not_a_datetime_is_a_type_error_naming_from_ms(
    timestamp: object,
) -> None:
    """Epoch milliseconds (or seconds, or text) given to the constructor point to from_ms."""
    with pytest.raises(TypeError, match=r"not (int|float|str)\b.*StatusEvent\.from_ms\(") as error:
        StatusEvent("m", Status.DEVICE_ACK, timestamp, "sms")  # type: ignore[arg-type]
    assert "timezone-aware datetime" in str(error.value)
    assert StatusEvent.from_ms("m", Status.DEVICE_ACK, 1_767_225_600_000, "sms").timestamp == (
        datetime(2026, 1, 1, tzinfo=timezone.utc)
    )


def test_from_ms_round_trips() -> None:
    """An event built from milliseconds equals one built from the datetime."""
    a = StatusEvent.from_ms("m", 5, 1_767_225_600_042, "sms", "c")
    b = StatusEvent("m", Status.DEVICE_ACK, datetime_from_ms(1_767_225_600_042), "sms", "c")
    assert a == b
    assert a.status is Status.DEVICE_ACK
    assert ms_from_datetime(a.timestamp) == 1_767_225_600_042


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"message_id": ""}, "message_id"),
        ({"channel": "rcs"}, "channel"),
        ({"status": 100, "channel": "whatsapp"}, "ROUTING_ERROR cannot occur"),
        ({"status": 131, "channel": "sms"}, "cannot occur"),
        ({"timestamp_ms": -5}, "outside"),
    ],
)
def test_invalid_events_raise_value_error(kwargs: dict[str, object], message: str) -> None:
    """Events that cannot exist are refused at construction with a message naming why."""
    fields: dict[str, object] = {
        "message_id": "m",
        "status": 2,
        "timestamp_ms": 1000,
        "channel": None,
    } | kwargs
    with pytest.raises(ValueError, match=message):
        StatusEvent.from_ms(**fields)  # type: ignore[arg-type]


def test_unknown_status_code_is_refused() -> None:
    """An integer status outside the catalog is refused."""
    with pytest.raises(ValueError, match="142"):
        StatusEvent.from_ms("m", 142, 1000)


def test_events_are_frozen_and_hashable() -> None:
    """Events are immutable values usable in sets."""
    event = StatusEvent.from_ms("m", 2, 1000)
    with pytest.raises(AttributeError):
        event.message_id = "other"  # type: ignore[misc]
    assert len({event, StatusEvent.from_ms("m", 2, 1000)}) == 1


def test_state_from_event_and_its_datetime() -> None:
    """A state made from one event carries its status, time, channel and client id."""
    event = StatusEvent.from_ms("m", 4, 1_767_225_600_500, "whatsapp", "c-1")
    state = MessageState.from_event(event)
    assert (state.status, state.channel, state.client_message_id) == (
        Status.SENT_TO_SUPPLIER,
        "whatsapp",
        "c-1",
    )
    assert state.timestamp == datetime(2026, 1, 1, 0, 0, 0, 500_000, tzinfo=timezone.utc)


def test_the_datetime_is_made_from_the_integer_when_read() -> None:
    """Only the milliseconds are stored; ``timestamp`` is the same instant, made on demand."""
    event = StatusEvent.from_ms("m", Status.QUEUED, 1_767_225_600_123, "sms")
    assert event.timestamp == datetime(2026, 1, 1, 0, 0, 0, 123_000, tzinfo=timezone.utc)
    assert event.timestamp.tzinfo is timezone.utc
    assert "timestamp=datetime.datetime(2026, 1, 1, 0, 0, 0, 123000" in repr(event)
    with pytest.raises(AttributeError):
        event.timestamp = datetime(2026, 1, 2, tzinfo=timezone.utc)  # type: ignore[misc]


def test_equality_and_hashing_follow_every_field_but_not_how_the_event_was_built() -> None:
    """Equal fields make equal events with equal hashes, whichever constructor made them."""
    by_ms = StatusEvent.from_ms("m", 5, 1_767_225_600_042, "sms", "c")
    by_datetime = StatusEvent("m", Status.DEVICE_ACK, by_ms.timestamp, "sms", "c")
    checked = StatusEvent._checked("m", Status.DEVICE_ACK, 1_767_225_600_042, "sms", "c")
    assert by_ms == by_datetime == checked
    assert len({by_ms, by_datetime, checked}) == 1
    for other in (
        StatusEvent.from_ms("n", 5, 1_767_225_600_042, "sms", "c"),
        StatusEvent.from_ms("m", 6, 1_767_225_600_042, "sms", "c"),
        StatusEvent.from_ms("m", 5, 1_767_225_600_043, "sms", "c"),
        StatusEvent.from_ms("m", 5, 1_767_225_600_042, None, "c"),
        StatusEvent.from_ms("m", 5, 1_767_225_600_042, "sms", None),
    ):
        assert other != by_ms


def test_events_pickle_and_come_back_equal() -> None:
    """An event survives pickling (a worker process hands events over that way)."""
    event = StatusEvent.from_ms("m", 5, 1_767_225_600_042, "whatsapp", "c")
    again = pickle.loads(pickle.dumps(event))
    assert again == event
    assert again.timestamp == event.timestamp


def test_a_seq_is_from_0_to_the_largest_64_bit_integer() -> None:
    """check_seq takes 0 and 2**63 - 1, and refuses -1 and 2**63 (past what a store holds)."""
    assert check_seq(0) == 0
    assert check_seq(2**63 - 1) == 2**63 - 1
    with pytest.raises(ValueError, match="0 or more"):
        check_seq(-1)
    with pytest.raises(ValueError, match="at most 9223372036854775807"):
        check_seq(2**63)
