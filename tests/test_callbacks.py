"""Tests for parse_callback: the three Clickatell formats and every way a body can be wrong."""

from __future__ import annotations

import contextlib
import json
import pickle
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliverystate import InvalidCallback, MessageState, Status, StatusEvent, parse_callback
from deliverystate.callbacks import (
    LEGACY_STATUS,
    ParsedBatch,
    ParsedCallback,
    read_callback,
    read_many,
)
from deliverystate.callbacks import _decode as json_module
from deliverystate.callbacks import _parse as callbacks_module
from deliverystate.rules import Origin
from deliverystate.simulate import callback_body, simulate_lines
from deliverystate.testing import callback_bodies, events, invalid_callback_bodies
from deliverystate.tracking._wire import archive_line

from .real_bodies import BODIES, RealBody
from .strategies import callback_variants, json_values, mutated_callbacks

TS = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z


@pytest.fixture(autouse=True, scope="module", params=["msgspec", "stdlib"])
def decoder(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs with each JSON decoder: msgspec (the 'fast' extra), the stdlib's."""
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "stdlib":
            patch.setattr(json_module, "FAST_DECODER", None)
        elif json_module.FAST_DECODER is None:
            pytest.skip("msgspec (the 'fast' extra) is not installed")
        yield request.param


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
    """The flat format parses from a JSON body and from query parameters (one string each)."""
    expected = StatusEvent.from_ms("f00d", Status.SENT_TO_SUPPLIER, TS, "sms", "c-9")
    assert parse_callback(json.dumps(FLAT)) == [expected]
    assert parse_callback(dict(parse_qsl(urlencode(FLAT)))) == [expected]


def test_legacy_http_callback() -> None:
    """Legacy fields map onto One API: epoch seconds, cliMsgId, status 004 = DEVICE_ACK."""
    assert parse_callback(LEGACY) == [
        StatusEvent.from_ms("beef", Status.DEVICE_ACK, 1_767_225_600_000, "sms", "c-7")
    ]


@pytest.mark.parametrize("path", ["fast", "full"])
def test_each_body_says_which_format_it_was(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shape, inbound kin and archive lines included, names its format on both paths."""
    if path == "full":
        monkeypatch.setattr(callbacks_module, "_FAST", {})
    event = StatusEvent.from_ms("arch", Status.READ, TS, "sms")
    archived = archive_line(MessageState("arch", Status.READ, TS, "sms"), [(event, "applied", 1)])
    cases: list[tuple[Any, str]] = [
        (one_api(), "one_api"),
        ({"event": {"moText": [{"messageId": "in-1"}]}}, "one_api"),
        (json.dumps(FLAT), "platform"),
        (dict(parse_qsl(urlencode(FLAT))), "platform"),  # as query parameters
        ({"messageId": "in-2", "text": "hello"}, "platform"),  # an inbound reply
        (LEGACY, "legacy"),
        ({"moMsgId": "in-3", "text": "hello"}, "legacy"),  # a legacy inbound message
    ]
    for body, expected in cases:
        assert read_callback(body).format == expected, body
    assert read_callback(archived, archives=True).format == "archive"


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
    """Each legacy status maps as docs/design.md section 4 lists."""
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
        ({k: [v, v] for k, v in FLAT.items()}, "messageId", "got list"),
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


def wrong_types(value: Any) -> list[Any]:
    """Values of the wrong type for a field that holds ``value``: never unwrapped, never guessed."""
    return [[value], [[value]], [value, value], [], {"value": value}, True, False]


_ONE_API_UPDATE = one_api()["event"]["messageStatusUpdate"][0]
WRONGLY_TYPED = (
    [
        (one_api(**{name: bad}), f"event.messageStatusUpdate[0].{name}")
        for name in ("messageId", "clientMessageId", "statusCode", "status", "timestamp", "channel")
        for bad in wrong_types(_ONE_API_UPDATE[name])
    ]
    + [
        (FLAT | {name: bad}, name)
        for name in ("messageId", "clientMessageId", "statusCode", "status", "timestamp")
        for bad in wrong_types(FLAT[name])
    ]
    + [
        (LEGACY | {name: bad}, name)
        for name in ("apiMsgId", "cliMsgId", "status", "timestamp")
        for bad in wrong_types(LEGACY[name])
    ]
)


@pytest.mark.parametrize("as_json", [False, True], ids=["mapping", "json"])
@pytest.mark.parametrize(("payload", "field"), WRONGLY_TYPED)
def test_a_field_of_the_wrong_type_is_refused_naming_it(
    payload: dict[str, Any], field: str, as_json: bool
) -> None:
    """["x"], [["x"]], ["x", "x"], [], {...} or a bool where text or a number belongs: refused."""
    error = error_of(json.dumps(payload) if as_json else payload)
    assert error.field == field
    assert "got" in error.reason or "expected" in error.reason


def test_the_issues_one_element_lists_are_refused() -> None:
    """One-element lists (the issue's "messageId": ["x"], statusCode, timestamp) are refused."""
    for name in ("messageId", "statusCode", "timestamp"):
        text = json.dumps(FLAT | {name: [FLAT[name]]})
        assert error_of(text).field == name
        update = one_api(**{name: [_ONE_API_UPDATE[name]]})
        assert error_of(json.dumps(update)).field == f"event.messageStatusUpdate[0].{name}"
    assert error_of({k: [v] for k, v in LEGACY.items()}).field == "apiMsgId"


def test_deeply_nested_json_is_invalid_not_a_crash() -> None:
    """JSON nested too deep for the decoder is an InvalidCallback, not a RecursionError."""
    assert error_of("[" * 100_000 + "]" * 100_000).field == "body"


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_invalid_callback(payload: bytes) -> None:
    """Random bytes either parse (to events or ignored events) or raise InvalidCallback only."""
    try:
        parsed = read_callback(payload)
    except InvalidCallback:
        return
    assert parsed.events or parsed.ignored


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
@given(events())
def test_one_api_round_trip(event: StatusEvent) -> None:
    """Any valid event written as a One API body parses back to itself."""
    channel = event.channel or "sms"
    if not event.status.allowed_on(channel):
        channel = "whatsapp"
    expected = StatusEvent.from_ms(event.message_id, event.status, event.timestamp_ms, channel)
    assert parse_callback(json.dumps(callback_body(expected))) == [expected]


# --- real bodies from public integrations ------------------------------------------------


@pytest.mark.parametrize("real", BODIES, ids=[body.name for body in BODIES])
def test_real_bodies_parse_as_their_sources_mean_them(real: RealBody) -> None:
    """Each public body gives the statuses Clickatell's tables give it, or is refused by field."""
    if real.refused_field is not None:
        assert error_of(real.body).field == real.refused_field, real.note
        return
    parsed = read_callback(real.body)
    assert [
        (e.message_id, e.status, e.timestamp_ms, e.channel, e.client_message_id)
        for e in parsed.events
    ] == list(real.events), real.note
    assert parsed.ignored == real.ignored


# --- the Platform numbering --------------------------------------------------------------

# Clickatell's legacy HTTP / Platform status codes, written out from their table
# (001 message unknown ... 014 maximum MT limit exceeded) onto One API statuses.
PLATFORM_CODES = [
    (1, Status.UNKNOWN),
    (2, Status.QUEUED),
    (3, Status.SENT_TO_SUPPLIER),  # delivered to gateway
    (4, Status.DEVICE_ACK),  # received by recipient
    (5, Status.DELIVERY_FAILURE),  # error with message
    (6, Status.STOPPED_BY_USER),  # user cancelled message delivery
    (7, Status.DELIVERY_FAILURE),  # error delivering message
    (8, Status.QUEUED),  # OK, message received by gateway
    (9, Status.ROUTING_ERROR),
    (10, Status.EXPIRED),
    (11, Status.SCHEDULED),  # queued for later delivery
    (12, Status.INSUFFICIENT_ACCOUNT_BALANCE),  # out of credit
    (14, Status.VOLUME_LIMIT),  # maximum MT limit exceeded
]


def flat(**fields: Any) -> dict[str, Any]:
    """A Platform body: messageId, timestamp and ``fields`` (None drops a field)."""
    body: dict[str, Any] = {"messageId": "p-1", "timestamp": str(TS)}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(("code", "status"), PLATFORM_CODES)
def test_platform_status_code_alone_uses_the_platform_numbering(code: int, status: Status) -> None:
    """A flat statusCode is a Platform code, as a number or a string (as a query parameter)."""
    for value in (code, str(code)):
        (event,) = parse_callback(flat(statusCode=value))
        assert (event.status, event.channel) == (status, "sms")


def test_the_issues_misreads_are_fixed() -> None:
    """Platform 5 (error with message) is no DEVICE_ACK, and 6 (user cancelled) is no READ."""
    assert parse_callback(flat(statusCode=5))[0].status is Status.DELIVERY_FAILURE
    assert parse_callback(flat(statusCode=6))[0].status is Status.STOPPED_BY_USER


@pytest.mark.parametrize(
    ("name", "code", "status"),
    [
        ("DELIVERED_TO_GATEWAY", 3, Status.SENT_TO_SUPPLIER),
        ("RECEIVED_BY_RECIPIENT", 4, Status.DEVICE_ACK),
        ("MESSAGE_QUEUED", 2, Status.QUEUED),
        ("ERROR_WITH_MESSAGE", 5, Status.DELIVERY_FAILURE),
        ("USER_CANCELLED_MESSAGE_DELIVERY", 6, Status.STOPPED_BY_USER),
        ("ERROR_DELIVERING_MESSAGE", 7, Status.DELIVERY_FAILURE),
        ("ROUTING_ERROR", 9, Status.ROUTING_ERROR),
        ("MESSAGE_EXPIRED", 10, Status.EXPIRED),
        ("OUT_OF_CREDIT", 12, Status.INSUFFICIENT_ACCOUNT_BALANCE),
    ],
)
def test_platform_names_with_and_without_their_code(name: str, code: int, status: Status) -> None:
    """A Platform name with its own code, or alone, gives the code's status."""
    assert parse_callback(flat(statusCode=code, status=name))[0].status is status
    assert parse_callback(flat(status=name.lower()))[0].status is status


@pytest.mark.parametrize(
    ("code", "name", "status"),
    [
        (4, "SENT_TO_SUPPLIER", Status.SENT_TO_SUPPLIER),  # the name says: One API numbering
        (5, "DEVICE_ACK", Status.DEVICE_ACK),
        (23, "DELIVERY_FAILURE", Status.DELIVERY_FAILURE),
        (100, "ROUTING_ERROR", Status.ROUTING_ERROR),  # the One API code of a shared name
    ],
)
def test_one_api_names_in_a_flat_body_bring_their_own_numbering(
    code: int, name: str, status: Status
) -> None:
    """A One API name in a flat body means One API numbering, as the name itself says."""
    assert parse_callback(flat(statusCode=str(code), status=name))[0].status is status


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (5, "RECEIVED_BY_RECIPIENT"),  # a Platform name with another Platform code
        (4, "DEVICE_ACK"),  # Clickatell's FAQ mistake, in a flat body
        (5, "SENT_TO_SUPPLIER"),
        (10, "ROUTING_ERROR"),  # neither the Platform 9 nor the One API 100
    ],
)
def test_a_name_that_contradicts_its_code_is_refused(code: int, name: str) -> None:
    """statusCode and status must tell the same story under one numbering."""
    error = error_of(flat(statusCode=code, status=name))
    assert error.field == "statusCode"
    assert "contradicts" in error.reason


def test_flat_refusals_name_the_reason() -> None:
    """A One API code alone, Platform 13, an unknown name: each refused with its reason."""
    assert "not a Platform status code" in error_of(flat(statusCode=23)).reason
    assert "no One API equivalent" in error_of(flat(statusCode=13)).reason
    assert (
        "no One API equivalent"
        in error_of(flat(status="CLICKATELL_CANCELLED_MESSAGE_DELIVERY")).reason
    )
    unknown = error_of(flat(statusCode=4, status="DELIVERED"))
    assert (unknown.field, "neither a Platform nor a One API name" in unknown.reason) == (
        "status",
        True,
    )


# --- events that are not status updates -------------------------------------------------


def test_other_one_api_events_are_ignored_and_the_updates_applied() -> None:
    """moText and event types added later are counted as ignored; status updates still parse."""
    body = one_api()
    body["event"]["moText"] = [{"messageId": "in-1"}, {"messageId": "in-2"}]
    body["event"]["someFutureEvent"] = {"anything": True}
    parsed = read_callback(json.dumps(body))
    assert [e.message_id for e in parsed.events] == ["a1b2"]
    assert sorted(parsed.ignored) == ["moText", "moText", "someFutureEvent"]
    only_other = read_callback({"event": {"moMedia": [{}]}})
    assert (only_other.events, only_other.ignored) == ((), ("moMedia",))
    assert parse_callback({"event": {"moLocation": [{}]}}) == []


def test_an_event_object_holding_nothing_is_refused() -> None:
    """{"event": {}} and an empty status array alone hold no event at all: refused."""
    assert error_of({"event": {}}).field == "event.messageStatusUpdate"
    assert error_of({"event": {"messageStatusUpdate": []}}).field == "event.messageStatusUpdate"


# --- timestamps --------------------------------------------------------------------------


def test_a_seconds_timestamp_where_milliseconds_belong_is_refused() -> None:
    """1506607698 as milliseconds is January 1970: refused, saying it looks like seconds."""
    for payload, field in [
        (one_api(timestamp=1506607698), "event.messageStatusUpdate[0].timestamp"),
        (flat(statusCode=4, timestamp="1506607698"), "timestamp"),
    ]:
        error = error_of(payload)
        assert error.field == field
        assert "looks like epoch seconds" in error.reason


def test_the_year_2000_is_the_boundary() -> None:
    """2000-01-01T00:00:00.000Z is accepted, one millisecond earlier is not."""
    assert parse_callback(one_api(timestamp=946_684_800_000))[0].timestamp_ms == 946_684_800_000
    assert error_of(one_api(timestamp=946_684_799_999)).reason.startswith("946684799999 is")
    assert "before 2000" in error_of(LEGACY | {"timestamp": "946684799"}).reason


# --- repeated keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"messageId": "m", "statusCode": 6, "statusCode": 23, "timestamp": 1767225600000}',
        '{"event": {"messageStatusUpdate": [{"channel": "sms", "messageId": "m", '
        '"statusCode": 5, "timestamp": 1767225600000, "statusCode": 23}]}}',
    ],
)
def test_a_key_given_twice_is_refused(text: str) -> None:
    """Which of two statusCodes would count? Neither: the body is refused, naming the key."""
    error = error_of(text)
    assert error.field == "statusCode"
    assert "more than once" in error.reason


# --- ids every store can keep ------------------------------------------------------------

BAD_IDS = [
    pytest.param("a\x00b", "control character", id="nul"),
    pytest.param("a\nb", "control character", id="newline"),
    pytest.param("a\x7fb", "control character", id="del"),
    pytest.param("a\x85b", "control character", id="c1"),
    pytest.param("\ud800", "lone surrogate", id="lone-surrogate"),
    pytest.param("x" * 257, "longer than 256", id="257-chars"),
]


@pytest.mark.parametrize(("bad", "words"), BAD_IDS)
def test_unstorable_ids_are_refused_in_every_format(bad: str, words: str) -> None:
    """NUL, control characters, lone surrogates and ids over 256 characters are refused."""
    update = {"channel": "sms", "statusCode": 5, "timestamp": TS}
    bodies = {
        "event.messageStatusUpdate[0].messageId": {
            "event": {"messageStatusUpdate": [update | {"messageId": bad}]}
        },
        "event.messageStatusUpdate[0].clientMessageId": {
            "event": {"messageStatusUpdate": [update | {"messageId": "ok", "clientMessageId": bad}]}
        },
        "messageId": {"statusCode": 4, "timestamp": TS, "messageId": bad},
        "clientMessageId": {
            "statusCode": 4,
            "timestamp": TS,
            "messageId": "ok",
            "clientMessageId": bad,
        },
        "apiMsgId": {"status": "004", "timestamp": "1767225600", "apiMsgId": bad},
        "cliMsgId": {"status": "004", "timestamp": "1767225600", "apiMsgId": "ok", "cliMsgId": bad},
    }
    for field, body in bodies.items():
        # as JSON text the characters travel escaped (\u0000, \ud800), as Clickatell would send them
        for payload in (json.dumps(body), body):
            error = error_of(payload)
            assert (error.field, words in error.reason) == (field, True), payload


def test_ids_of_256_characters_and_of_any_script_are_fine() -> None:
    """The limit is inclusive, and non-ASCII ids are ids like any other."""
    for message_id in ("x" * 256, "é-中-\U0001f600", "a b"):
        assert parse_callback(one_api(messageId=message_id))[0].message_id == message_id


def test_status_event_refuses_unstorable_ids_too() -> None:
    """Built by hand, an event with an id no store can keep is a ValueError."""
    for bad in ("a\x00b", "\ud800", "x" * 257):
        with pytest.raises(ValueError, match="message_id"):
            StatusEvent.from_ms(bad, Status.READ, TS)
        with pytest.raises(ValueError, match="client_message_id"):
            StatusEvent.from_ms("ok", Status.READ, TS, None, bad)


# --- nothing but InvalidCallback ---------------------------------------------------------

HUGE = 10**5000  # str() of this raises ValueError on Python 3.11+


@pytest.mark.parametrize(
    "payload",
    [
        one_api(messageId=HUGE),
        one_api(clientMessageId=HUGE),
        one_api(statusCode=HUGE, status=None),
        one_api(timestamp=HUGE),
        one_api(channel=HUGE),
        flat(statusCode=HUGE),
        flat(messageId=HUGE, statusCode=4),
        LEGACY | {"status": HUGE},
        LEGACY | {"apiMsgId": HUGE},
        {"event": {"messageStatusUpdate": [HUGE]}},
        {"statusCode": HUGE},
    ],
)
def test_huge_integers_in_a_mapping_are_an_invalid_callback(payload: Any) -> None:
    """A mapping holding an integer too large to print raises InvalidCallback, never ValueError."""
    error = error_of(payload)
    assert type(error) is InvalidCallback
    assert error.field
    str(error)  # and the error itself can be printed


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_callbacks(), st.integers(min_value=10**4400, max_value=10**4500))
def test_mutated_mappings_with_huge_integers_raise_only_invalid_callback(
    payload: Any, huge: int
) -> None:
    """Any field of any format replaced by a huge integer: parsed or InvalidCallback."""
    if not isinstance(payload, dict):
        payload = json.loads(payload)
    target = payload
    with contextlib.suppress(LookupError, TypeError):
        target = payload["event"]["messageStatusUpdate"][0]
    if isinstance(target, dict):
        for key in list(target)[:: max(1, len(target) // 3)]:
            target[key] = huge
    with contextlib.suppress(InvalidCallback):
        read_callback(payload)


# --- the fast path -----------------------------------------------------------------------


def outcome_of(read: Callable[[Any], ParsedCallback], payload: Any) -> tuple[Any, ...]:
    """What reading ``payload`` comes to: the events and ignored names, or the refusal."""
    try:
        parsed = read(payload)
    except InvalidCallback as error:
        return ("refused", error.field, error.reason, type(error.value), str(error))
    events = [
        (e.message_id, e.status, e.timestamp_ms, e.channel, e.client_message_id)
        for e in parsed.events
    ]
    return ("parsed", events, parsed.ignored)


def full_parser_outcome(payload: Any) -> tuple[Any, ...]:
    """read_callback as the full parser alone reads it: standard library JSON, no fast path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_module, "FAST_DECODER", None)
        patch.setattr(callbacks_module, "_FAST", {})
        return outcome_of(read_callback, payload)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        callback_variants(), mutated_callbacks(), callback_bodies(), invalid_callback_bodies()
    )
)
def test_the_fast_path_reads_every_body_as_the_full_parser_does(payload: Any) -> None:
    """Clean, nearly clean and broken bodies of every shape: the same events or refusal."""
    assert outcome_of(read_callback, payload) == full_parser_outcome(payload)


def test_clean_bodies_never_reach_the_full_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator's valid bodies of all three shapes are read by the fast path alone."""
    lines = simulate_lines(300, seed=5)
    readable = []
    for line in lines:
        with contextlib.suppress(InvalidCallback):
            readable.append((line, read_callback(line)))
    moved = {}
    for shape in ("One API", "Platform", "legacy HTTP"):
        moved[shape] = callbacks_module._PARSERS[shape]
        monkeypatch.setitem(callbacks_module._PARSERS, shape, None)
    fast = [(line, parsed) for line, parsed in readable if read_or_none(line) == parsed]
    shapes = {callbacks_module._shape(json.loads(line)) for line, _ in fast}
    assert shapes == set(moved)
    assert len(fast) >= 0.95 * len(readable)


def read_or_none(line: str) -> ParsedCallback | None:
    """read_callback's answer, or None where it needed a parser that is not there."""
    try:
        return read_callback(line)
    except (InvalidCallback, TypeError):
        return None


# --- batches -----------------------------------------------------------------------------


def test_read_many_reads_each_body_and_names_the_bad_ones() -> None:
    """Every body's events in order, each refusal with its body's index, ignored events counted."""
    inbound = {"event": {"moText": [{"messageId": "in-1"}]}}
    lines = [*simulate_lines(200, seed=8), json.dumps(inbound)]
    batch = read_many(lines)
    events: list[StatusEvent] = []
    errors: list[tuple[int, str]] = []
    ignored = 0
    for index, line in enumerate(lines):
        try:
            parsed = read_callback(line)
        except InvalidCallback as error:
            errors.append((index, str(error)))
            continue
        events.extend(parsed.events)
        ignored += len(parsed.ignored)
    assert list(batch.events) == events
    assert [(index, str(error)) for index, error in batch.errors] == errors
    assert batch.ignored == ignored
    assert errors
    assert ignored


def test_a_batch_pickles_to_the_same_events_and_errors() -> None:
    """A worker process hands a batch back by pickle: the same events, errors and counts."""
    lines = [*simulate_lines(200, seed=9), '{"messageId": "x", "statusCode": [1, 2]}', "[]"]
    batch = read_many(line.encode() for line in lines)
    again = pickle.loads(pickle.dumps(batch))
    assert again.events == batch.events
    assert all(type(e.status) is Status for e in again.events)
    assert [(i, e.field, e.reason, e.value, str(e)) for i, e in again.errors] == [
        (i, e.field, e.reason, e.value, str(e)) for i, e in batch.errors
    ]
    assert again.ignored == batch.ignored
    assert pickle.loads(pickle.dumps(ParsedBatch(()))) == ParsedBatch(())


def test_archive_lines_are_kept_apart_from_callbacks_and_pickle_so() -> None:
    """read_many puts an archive line's reports in ``restored``, not ``events``; pickle keeps it."""
    queued = StatusEvent.from_ms("arch", Status.QUEUED, TS, "sms", origin=Origin.LOCAL)
    failed = StatusEvent.from_ms("arch", Status.EXPIRED, TS + 9, "sms")
    history = [(queued, "applied", 1), (failed, "applied", 2)]
    state = MessageState("arch", Status.EXPIRED, TS + 9, "sms", deadline_ms=TS + 5)
    lines = [one_api(), archive_line(state, history), one_api()]
    batch = read_many(lines, archives=True)
    assert batch.restored == (queued, failed)
    assert batch.registrations == ((queued, TS + 5),)
    assert batch.events == read_many([one_api(), one_api()]).events
    assert pickle.loads(pickle.dumps(batch)) == batch
