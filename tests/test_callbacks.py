"""Tests for parse_callback: the three Clickatell formats and every way a body can be wrong."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliverystate import LEGACY_STATUS, InvalidCallback, Status, StatusEvent, parse_callback

from .strategies import any_event, json_values, mutated_callbacks, one_api_body

TS = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z


def one_api(**update: Any) -> dict[str, Any]:
    """A One API body with one update; keyword arguments replace or (None) drop fields."""
    fields: dict[str, Any] = {
        "channel": "whatsapp",
        "timestamp": TS,
        "statusCode": 5,
        "status": "DEVICE_ACK",
        "messageId": "a1b2",
        "clientMessageId": "order-1",
    }
    for name, value in update.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return {
        "integrationId": "i-1",
        "integrationName": "n",
        "event": {"messageStatusUpdate": [fields]},
    }


FLAT = {
    "integrationName": "n",
    "messageId": "f00d",
    "requestId": "r-1",
    "clientMessageId": "c-9",
    "to": "27999000001",
    "from": "27999000000",
    "statusCode": "4",
    "status": "SENT_TO_SUPPLIER",
    "statusDescription": "Sent to supplier",
    "timestamp": str(TS),
}
LEGACY = {
    "api_id": "3512345",
    "apiMsgId": "beef",
    "cliMsgId": "c-7",
    "to": "27999000001",
    "from": "27999000000",
    "timestamp": "1767225600",
    "status": "004",
    "charge": "0.8",
}


def error_of(payload: Any) -> InvalidCallback:
    """The InvalidCallback that parsing ``payload`` raises."""
    with pytest.raises(InvalidCallback) as caught:
        parse_callback(payload)
    return caught.value


def test_one_api_body_as_bytes_str_and_mapping() -> None:
    """A One API body parses the same from bytes, str and a decoded mapping."""
    body = one_api()
    expected = [
        StatusEvent(
            "a1b2",
            Status.DEVICE_ACK,
            datetime(2026, 1, 1, 0, 0, 0, 123_000, tzinfo=timezone.utc),
            "whatsapp",
            "order-1",
        )
    ]
    assert parse_callback(body) == expected
    assert parse_callback(json.dumps(body)) == expected
    assert parse_callback(json.dumps(body).encode()) == expected


def test_one_api_batch_is_iterated_and_extra_fields_ignored() -> None:
    """Every update of a batched body becomes an event; unknown fields are ignored."""
    body = one_api(extra={"nested": True})
    first = body["event"]["messageStatusUpdate"][0]
    second = dict(first, messageId="zz", statusCode=6, status="READ")
    body["event"]["messageStatusUpdate"].append(second)
    body["somethingNew"] = 1
    events = parse_callback(body)
    assert [(e.message_id, e.status) for e in events] == [
        ("a1b2", Status.DEVICE_ACK),
        ("zz", Status.READ),
    ]


def test_channel_is_trimmed_and_lower_cased() -> None:
    """ " WhatsApp " is read as "whatsapp"."""
    assert parse_callback(one_api(channel=" WhatsApp "))[0].channel == "whatsapp"


def test_status_code_alone_or_status_name_alone_is_enough() -> None:
    """Either statusCode or status identifies the status when the other is absent."""
    assert parse_callback(one_api(status=None))[0].status is Status.DEVICE_ACK
    assert parse_callback(one_api(statusCode=None))[0].status is Status.DEVICE_ACK
    assert parse_callback(one_api(statusCode="5"))[0].status is Status.DEVICE_ACK


def test_flat_platform_sms_body_and_query_parameters() -> None:
    """The flat format parses from a JSON body and from (list-valued) query parameters."""
    expected = StatusEvent.from_ms("f00d", Status.SENT_TO_SUPPLIER, TS, "sms", "c-9")
    assert parse_callback(json.dumps(FLAT)) == [expected]
    assert parse_callback({k: [v] for k, v in FLAT.items()}) == [expected]


def test_legacy_http_callback() -> None:
    """Legacy fields map onto One API: epoch seconds, cliMsgId, status 004 = DEVICE_ACK."""
    assert parse_callback(LEGACY) == [
        StatusEvent.from_ms("beef", Status.DEVICE_ACK, 1_767_225_600_000, "sms", "c-7")
    ]


@pytest.mark.parametrize(
    ("legacy", "status"),
    [
        ("001", "UNKNOWN"),
        ("002", "QUEUED"),
        ("003", "SENT_TO_SUPPLIER"),
        ("004", "DEVICE_ACK"),
        ("005", "DELIVERY_FAILURE"),
        ("006", "STOPPED_BY_USER"),
        ("007", "DELIVERY_FAILURE"),
        ("008", "QUEUED"),
        ("009", "ROUTING_ERROR"),
        ("010", "EXPIRED"),
        ("011", "SCHEDULED"),
        ("012", "INSUFFICIENT_ACCOUNT_BALANCE"),
        ("014", "VOLUME_LIMIT"),
    ],
)
def test_legacy_status_table(legacy: str, status: str) -> None:
    """Each legacy status maps as DESIGN.md section 4 lists."""
    assert parse_callback(LEGACY | {"status": legacy})[0].status.name == status


def test_legacy_table_has_the_designs_thirteen_codes() -> None:
    """013 is the one legacy code with no mapping."""
    assert sorted(LEGACY_STATUS) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14]


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        (one_api(statusCode=4), "event.messageStatusUpdate[0].statusCode", "DEVICE_ACK"),
        (one_api(statusCode=142, status=None), "event.messageStatusUpdate[0].statusCode", "142"),
        (one_api(status="DELIVERED"), "event.messageStatusUpdate[0].status", "DELIVERED"),
        (one_api(messageId=None), "event.messageStatusUpdate[0].messageId", "missing"),
        (one_api(messageId="  "), "event.messageStatusUpdate[0].messageId", "missing"),
        (one_api(timestamp="yesterday"), "event.messageStatusUpdate[0].timestamp", "yesterday"),
        (one_api(timestamp=None), "event.messageStatusUpdate[0].timestamp", "missing"),
        (one_api(timestamp=-5), "event.messageStatusUpdate[0].timestamp", "plausible"),
        (one_api(timestamp=1.5), "event.messageStatusUpdate[0].timestamp", "whole number"),
        (one_api(timestamp=True), "event.messageStatusUpdate[0].timestamp", "boolean"),
        (
            one_api(statusCode=None, status=None),
            "event.messageStatusUpdate[0].statusCode",
            "missing",
        ),
        (
            one_api(statusCode=100, status="ROUTING_ERROR"),
            "event.messageStatusUpdate[0].statusCode",
            "cannot occur on channel 'whatsapp'",
        ),
        (one_api(channel="rcs"), "event.messageStatusUpdate[0].channel", "unknown channel"),
        ({"event": {"messageStatusUpdate": []}}, "event.messageStatusUpdate", "non-empty"),
        ({"event": "x"}, "event", "expected an object"),
        ({"event": {"messageStatusUpdate": ["x"]}}, "event.messageStatusUpdate[0]", "object"),
        (FLAT | {"statusCode": "5"}, "statusCode", "SENT_TO_SUPPLIER"),
        (FLAT | {"timestamp": "12:00"}, "timestamp", "12:00"),
        ({k: v for k, v in FLAT.items() if k != "messageId"}, "messageId", "missing"),
        ({k: [v, v] for k, v in FLAT.items()}, "messageId", "one value"),
        (
            FLAT | {"statusCode": "130", "status": "WHATSAPP_ACCOUNT_PAYMENT_ISSUE"},
            "statusCode",
            "cannot occur on channel",
        ),
        (LEGACY | {"status": "013"}, "status", "no One API equivalent"),
        (LEGACY | {"status": "OK"}, "status", "legacy status"),
        (LEGACY | {"timestamp": "soon"}, "timestamp", "epoch seconds"),
        ({"hello": "world"}, "body", "not a Clickatell callback"),
        ("[1, 2]", "body", "got list"),
        ("{not json", "body", "not JSON"),
        (b"\xff\xfe", "body", "not UTF-8"),
        (42, "body", "got int"),
    ],
)
def test_invalid_payloads_name_the_field(payload: Any, field: str, words: str) -> None:
    """Every kind of bad body raises InvalidCallback naming the offending field."""
    error = error_of(payload)
    assert isinstance(error, ValueError)
    assert error.field == field
    assert words in str(error)
    assert field in str(error)


def test_deeply_nested_json_is_invalid_not_a_crash() -> None:
    """JSON nested too deep for the decoder is an InvalidCallback, not a RecursionError."""
    assert error_of("[" * 100_000 + "]" * 100_000).field == "body"


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_invalid_callback(payload: bytes) -> None:
    """Random bytes either parse or raise InvalidCallback, never anything else."""
    try:
        events = parse_callback(payload)
    except InvalidCallback:
        return
    assert events


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_raises_only_invalid_callback(value: Any) -> None:
    """Any JSON value, as text or decoded, parses or raises InvalidCallback only."""
    for payload in (json.dumps(value), value):
        with contextlib.suppress(InvalidCallback):
            parse_callback(payload)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_callbacks())
def test_mutated_callbacks_raise_only_invalid_callback(payload: Any) -> None:
    """Valid bodies with fields removed or replaced parse or raise InvalidCallback only."""
    try:
        events = parse_callback(payload)
    except InvalidCallback as error:
        failure = error
    else:
        assert all(isinstance(event, StatusEvent) for event in events)
        return
    assert failure.field


@settings(max_examples=500)
@given(any_event())
def test_one_api_round_trip(event: StatusEvent) -> None:
    """Any valid event written as a One API body parses back to itself."""
    channel = event.channel or "sms"
    if not event.status.allowed_on(channel):
        channel = "whatsapp"
    expected = StatusEvent.from_ms(event.message_id, event.status, event.timestamp_ms, channel)
    assert parse_callback(json.dumps(one_api_body(expected))) == [expected]
