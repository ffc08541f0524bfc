"""Other providers' callbacks: Meta's WhatsApp Cloud API and Twilio, mapped onto one lifecycle.

The bodies follow the shapes their providers document, with values of our own:
Meta's status webhook as on developers.facebook.com (".../whatsapp/webhooks/
reference/messages/status/", the META-st key of shared/providers/providers.md)
and the MIT-licensed fixture of david-lev/pywa@0bcf2f1
(tests/data/updates/message_status.json); Twilio's status callback form as on
twilio.com/docs/messaging/guides/track-outbound-message-status (TW-track).
What each word must mean is restated below from docs/design.md's "Other
providers", so the tests hold the code to the design, not to itself.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deliverystate import InvalidCallback, Status, StatusEvent, Tracker, parse_callback
from deliverystate.callbacks._providers import PROVIDERS, table_markdown
from deliverystate.callbacks._smpp import normalise_smpp_id
from deliverystate.testing import assert_converges

from .oracle import expected_winner

S = Status
T = 1_698_266_945  # 2023-10-25T20:49:05Z, the seconds of the pywa fixture's "sent"
RECEIVED = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)

#: What docs/design.md says each word means (restated, not read from the code).
META_MEANS = {
    "sent": S.SENT_TO_SUPPLIER,
    "delivered": S.DEVICE_ACK,
    "read": S.READ,
    "played": S.READ,
    "failed": S.DELIVERY_FAILURE,
}
TWILIO_MEANS = {
    "accepted": S.QUEUED,
    "scheduled": S.SCHEDULED,
    "queued": S.QUEUED,
    "sending": S.QUEUED,
    "sent": S.SENT_TO_SUPPLIER,
    "delivered": S.DEVICE_ACK,
    "read": S.READ,
    "undelivered": S.DELIVERY_FAILURE,
    "failed": S.DELIVERY_FAILURE,
    "canceled": S.STOPPED_BY_USER,
}


def meta_status(
    word: str, seconds: int | str = T, message_id: str = "wamid.HBgLMTU1NTAxMjM0NTY3", **extra: Any
) -> dict[str, Any]:
    """One item of ``statuses[]``, as Meta documents it."""
    return {
        "id": message_id,
        "status": word,
        "timestamp": str(seconds),
        "recipient_id": "15550123456",
        **extra,
    }


def meta_body(*statuses: dict[str, Any], **value: Any) -> str:
    """A Meta webhook body (``object``, ``entry[].changes[].value``) holding ``statuses``."""
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": "106540352242922",
                                },
                                "statuses": list(statuses),
                                **value,
                            },
                        }
                    ],
                }
            ],
        }
    )


def twilio_form(
    word: str, sid: str = "SM1f0e8ae6ade43cb3c0ce4525424e404f", **extra: str
) -> dict[str, str]:
    """A Twilio status callback's fields, as TW-track lists them."""
    return {
        "AccountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "From": "+15557122661",
        "To": "+15558675310",
        "ApiVersion": "2010-04-01",
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": word,
        "SmsStatus": word,
        **extra,
    }


def reports_of(words: dict[str, Status], spread: int) -> st.SearchStrategy[list[tuple[str, int]]]:
    """One message's reports: one to six words, each with an offset up to ``spread``."""
    return st.lists(
        st.tuples(st.sampled_from(sorted(words)), st.integers(0, spread)), max_size=6, min_size=1
    )


def moment(ms: int) -> datetime:
    """The aware UTC datetime of ``ms``."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def ends_where_precedence_says(events: list[StatusEvent], expected: list[StatusEvent]) -> None:
    """Every order of ``events``, each twice, converges, on the winner the oracle names."""
    assert_converges(events * 2, exhaustive_up_to=4, samples=20)
    tracker = Tracker()
    tracker.apply_many(events)
    state = tracker.get(events[0].message_id)
    assert state is not None
    assert (state.status, state.timestamp_ms) == expected_winner(expected)


@pytest.mark.parametrize("word", sorted(META_MEANS))
def test_each_meta_word_means_what_the_design_says(word: str) -> None:
    """sent, delivered, read, played and failed land on their lifecycle status, WhatsApp, in ms."""
    (event,) = parse_callback(meta_body(meta_status(word)), "meta")
    assert event == StatusEvent.from_ms(
        "wamid.HBgLMTU1NTAxMjM0NTY3", META_MEANS[word], T * 1000, "whatsapp"
    )


def test_a_meta_failure_and_a_tracker_echo() -> None:
    """A failed status with errors[] is DELIVERY_FAILURE; the echoed tracker is the client id."""
    errors = [
        {"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"}
    ]
    failed = meta_status("failed", errors=errors, biz_opaque_callback_data="order-77")
    (event,) = parse_callback(meta_body(failed), "meta")
    assert (event.status, event.client_message_id) == (S.DELIVERY_FAILURE, "order-77")


def test_one_meta_body_may_report_on_several_messages_and_ignore_the_rest() -> None:
    """Every status of every change is read; inbound messages and old words are ignored."""
    body = meta_body(
        meta_status("delivered", T, "wamid.A"),
        meta_status("read", T + 5, "wamid.B"),
        meta_status("deleted", T, "wamid.C"),
        messages=[{"from": "15550123456", "id": "wamid.IN", "type": "text"}],
    )
    events = parse_callback(body, "meta")
    assert [(e.message_id, e.status) for e in events] == [
        ("wamid.A", S.DEVICE_ACK),
        ("wamid.B", S.READ),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (meta_body(meta_status("seen")), "status"),
        (meta_body({"id": "wamid.A", "timestamp": str(T)}), "status"),
        (meta_body({"id": "wamid.A", "status": "sent"}), "timestamp"),
        (meta_body(meta_status("sent", "yesterday")), "timestamp"),
        (meta_body(meta_status("sent", 86_400)), "timestamp"),  # 1970: seconds are not ms
        (meta_body({"status": "sent", "timestamp": str(T)}), "id"),
        (json.dumps({"object": "page", "entry": []}), "object"),
        (meta_body(meta_status("sent"), statuses="sent"), "statuses"),
    ],
)
def test_a_meta_body_that_cannot_be_read_names_its_field(body: str, field: str) -> None:
    """An unknown word, a missing status or time, a seconds value too small, a wrong object."""
    with pytest.raises(InvalidCallback) as refused:
        parse_callback(body, "meta")
    assert refused.value.field == field


@pytest.mark.parametrize("word", sorted(TWILIO_MEANS))
def test_each_twilio_word_means_what_the_design_says(word: str) -> None:
    """Every documented word lands on its status, dated by when the callback was received."""
    (event,) = parse_callback(twilio_form(word), "twilio", received_at=RECEIVED)
    expected = StatusEvent(
        "SM1f0e8ae6ade43cb3c0ce4525424e404f", TWILIO_MEANS[word], RECEIVED, "sms"
    )
    assert event == expected


def test_twilio_whatsapp_reads_and_failures() -> None:
    """A whatsapp: sender makes a WhatsApp report; undelivered with ErrorCode is a failure."""
    form = twilio_form("read", From="whatsapp:+15557122661", EventType="READ")
    (read,) = parse_callback(form, "twilio", received_at=RECEIVED)
    assert (read.status, read.channel) == (S.READ, "whatsapp")
    failed = twilio_form("undelivered", ErrorCode="30003", ErrorMessage="Unreachable destination")
    (event,) = parse_callback(failed, "twilio", received_at=RECEIVED)
    assert event.status is S.DELIVERY_FAILURE


def test_a_twilio_form_may_come_as_its_bytes_and_message_status_wins() -> None:
    """The urlencoded body reads like its fields; MessageStatus is read when SmsStatus differs."""
    body = b"MessageSid=SMa&SmsSid=SMa&MessageStatus=delivered&SmsStatus=sent&From=%2B15557122661"
    (event,) = parse_callback(body, "twilio", received_at=RECEIVED)
    assert (event.message_id, event.status) == ("SMa", S.DEVICE_ACK)
    assert parse_callback(twilio_form("received"), "twilio", received_at=RECEIVED) == []


@pytest.mark.parametrize(
    ("form", "field"),
    [
        (twilio_form("partially_delivered"), "MessageStatus"),
        (twilio_form("delivrd"), "MessageStatus"),
        ({"MessageSid": "SMa"}, "MessageStatus"),
        ({"MessageStatus": "sent"}, "MessageSid"),
        (b"MessageSid=SMa&MessageSid=SMb&MessageStatus=sent", "MessageSid"),
    ],
)
def test_a_twilio_callback_that_cannot_be_read_names_its_field(form: Any, field: str) -> None:
    """No documented meaning, a typo, a missing status or id, a field twice: refused by name."""
    with pytest.raises(InvalidCallback) as refused:
        parse_callback(form, "twilio", received_at=RECEIVED)
    assert refused.value.field == field


def test_a_twilio_report_without_a_receipt_time_is_refused_not_dated_now() -> None:
    """Twilio sends no time; without received_at the parser says so instead of reading a clock."""
    with pytest.raises(InvalidCallback) as refused:
        parse_callback(twilio_form("sent"), "twilio")
    assert refused.value.field == "received_ms"


def test_an_unknown_provider_name_is_misuse() -> None:
    """A provider name is code, not input: a ValueError naming the ones there are."""
    with pytest.raises(ValueError, match="meta, smpp, twilio, vonage"):
        parse_callback("{}", "nexmo")


@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(META_MEANS)), st.integers(0, 3_600)),
        min_size=1,
        max_size=6,
    )
)
def test_any_order_and_repetition_of_meta_reports_ends_where_precedence_says(
    reports: list[tuple[str, int]],
) -> None:
    """Property: one message's Meta reports, delivered in any order and twice, reach one state."""
    events = [
        e
        for word, dt in reports
        for e in parse_callback(meta_body(meta_status(word, T + dt)), "meta")
    ]
    expected = [
        StatusEvent.from_ms("w", META_MEANS[w], (T + dt) * 1000, "whatsapp") for w, dt in reports
    ]
    ends_where_precedence_says(events, expected)


@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(TWILIO_MEANS)), st.integers(0, 3_600_000)),
        min_size=1,
        max_size=6,
    )
)
def test_any_order_and_repetition_of_twilio_reports_ends_where_precedence_says(
    reports: list[tuple[str, int]],
) -> None:
    """Property: Twilio reports, dated by receipt, reach one state whatever their order."""
    base = int(RECEIVED.timestamp() * 1000)
    events = [
        e
        for word, dt in reports
        for e in parse_callback(
            twilio_form(word),
            "twilio",
            received_at=datetime.fromtimestamp((base + dt) / 1000, timezone.utc),
        )
    ]
    expected = [StatusEvent.from_ms("t", TWILIO_MEANS[w], base + dt, "sms") for w, dt in reports]
    ends_where_precedence_says(events, expected)


def test_design_md_shows_each_provider_s_table_as_the_code_has_it() -> None:
    """docs/design.md's "Other providers" tables are generated from the code's tables."""
    design = (Path(__file__).parent.parent / "docs" / "design.md").read_text(encoding="utf-8")
    for provider in PROVIDERS:
        assert table_markdown(provider) in design, f"regenerate {provider}'s table in design.md"


#: Vonage and SMPP, restated from docs/design.md's "Other providers".
VONAGE_MEANS = {
    "accepted": S.SENT_TO_SUPPLIER,
    "buffered": S.SENT_TO_SUPPLIER,
    "submitted": S.SENT_TO_SUPPLIER,
    "delivered": S.DEVICE_ACK,
    "read": S.READ,
    "expired": S.EXPIRED,
    "failed": S.DELIVERY_FAILURE,
    "rejected": S.DELIVERY_FAILURE,
    "undeliverable": S.DELIVERY_FAILURE,
    "unknown": S.UNKNOWN,
}
SMPP_MEANS = {
    "SCHEDLD": S.SCHEDULED,
    "ENROUTE": S.SENT_TO_SUPPLIER,
    "ACCEPTD": S.SENT_TO_SUPPLIER,
    "DELIVRD": S.DEVICE_ACK,
    "EXPIRED": S.EXPIRED,
    "DELETED": S.STOPPED_BY_ADMIN,
    "SKIPPED": S.STOPPED_BY_ADMIN,
    "UNDELIV": S.DELIVERY_FAILURE,
    "REJECTD": S.DELIVERY_FAILURE,
    "UNKNOWN": S.UNKNOWN,
}
PUSHED = "2026-03-01 12:00:05"  # message-timestamp, read as UTC
PUSHED_MS = int(datetime(2026, 3, 1, 12, 0, 5, tzinfo=timezone.utc).timestamp() * 1000)


def vonage_receipt(word: str, **extra: str) -> dict[str, str]:
    """An SMS API delivery receipt's fields, as Vonage's API specification (VN-spec) lists them."""
    return {
        "msisdn": "447700900000",
        "to": "AcmeInc",
        "network-code": "12345",
        "messageId": "0A0000001234567B",
        "price": "0.03330000",
        "status": word,
        "scts": "2603011300",  # an hour off: never used for ordering
        "err-code": "0",
        "api-key": "abcd1234",
        "message-timestamp": PUSHED,
        **extra,
    }


def vonage_status(word: str, channel: str = "whatsapp", **extra: Any) -> str:
    """A Messages API status webhook body, as VN-msg and Vonage's Java SDK tests show it."""
    return json.dumps(
        {
            "message_uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
            "to": "447700900000",
            "from": "447700900001",
            "timestamp": "2026-03-01T12:00:05.250Z",
            "status": word,
            "channel": channel,
            **extra,
        }
    )


@pytest.mark.parametrize("word", sorted(VONAGE_MEANS))
def test_each_vonage_word_means_what_the_design_says(word: str) -> None:
    """A receipt's word and a status's word land on the design's status, on their own clock."""
    (receipt,) = parse_callback(vonage_receipt(word), "vonage")
    assert receipt == StatusEvent.from_ms("0A0000001234567B", VONAGE_MEANS[word], PUSHED_MS, "sms")
    (status,) = parse_callback(vonage_status(word), "vonage")
    assert (status.status, status.timestamp_ms) == (VONAGE_MEANS[word], PUSHED_MS + 250)


def test_vonage_times_channels_and_references() -> None:
    """A signed receipt's seconds win; client-ref links parts; a Viber status has no channel."""
    signed = vonage_receipt("delivered", timestamp="1772366400", **{"client-ref": "order-9"})
    (event,) = parse_callback(signed, "vonage")
    assert (event.timestamp_ms, event.client_message_id) == (1_772_366_400_000, "order-9")
    (viber,) = parse_callback(vonage_status("read", "viber", client_ref="order-9"), "vonage")
    assert (viber.channel, viber.client_message_id) == (None, "order-9")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (vonage_receipt("delivrd"), "status"),
        ({k: v for k, v in vonage_receipt("failed").items() if k != "messageId"}, "messageId"),
        (vonage_receipt("failed", **{"message-timestamp": "01/03/2026"}), "message-timestamp"),
        (vonage_status("read", timestamp="2026-03-01T12:00:05"), "timestamp"),
        (vonage_status("read", status=None), "status"),
    ],
)
def test_a_vonage_callback_that_cannot_be_read_names_its_field(body: Any, field: str) -> None:
    """An unknown word, no id, a push time in another format, a time with no zone, no status."""
    with pytest.raises(InvalidCallback) as refused:
        parse_callback(body, "vonage")
    assert refused.value.field == field


def smpp_receipt(stat: str, message_id: str = "0059113978", done: str = "1305231016") -> str:
    """A receipt's text in SMPP 3.4 Appendix B's format (SMPP-fmt)."""
    return (
        f"id:{message_id} sub:001 dlvrd:001 submit date:1305231015 done date:{done} "
        f"stat:{stat} err:000 text:Hello world"
    )


@pytest.mark.parametrize("stat", sorted(SMPP_MEANS))
def test_each_smpp_state_means_what_the_design_says(stat: str) -> None:
    """Every receipt state lands on its status, dated by its done date read as UTC."""
    (event,) = parse_callback(smpp_receipt(stat), "smpp")
    done = int(datetime(2013, 5, 23, 10, 16, tzinfo=timezone.utc).timestamp() * 1000)
    assert event == StatusEvent.from_ms("38601fa", SMPP_MEANS[stat], done, "sms")


@pytest.mark.parametrize(
    ("in_receipt", "at_submit"),
    [
        ("0059113978", "38601fa"),  # decimal in the text, hex in the TLV (cloudhopper-smpp)
        ("0489708364", "1d305b4c"),  # the same, python-smpplib's test
        ("ABC123", "abc123"),  # case changed (jookies/jasmin#643)
        ("000abc123", "abc123"),  # leading zeros (jookies/jasmin#916)
    ],
)
def test_smpp_ids_are_normalised_to_what_the_submit_answered(
    in_receipt: str, at_submit: str
) -> None:
    """A receipt's id and the submit's id meet after normalise_smpp_id, whichever way each came."""
    (event,) = parse_callback(smpp_receipt("DELIVRD", in_receipt), "smpp")
    assert event.message_id == normalise_smpp_id(at_submit)


def test_smpp_receipts_as_met_in_the_wild() -> None:
    """Fields missing or out of order, Text: capitalised, 12- and 14-digit dates all read."""
    for text in (
        "id:1d305b4c stat:DELIVRD done date:130523101600 err:000",
        "stat:DELIVRD id:1d305b4c submit date:20130523101500 done date:20130523101600 Text:hi",
    ):
        (event,) = parse_callback(text, "smpp")
        assert (event.message_id, event.status) == ("1d305b4c", S.DEVICE_ACK)


def test_an_smpp_receipt_without_a_date_is_dated_by_its_receipt_time() -> None:
    """No done date: received_at dates it; without that either, the field is named."""
    text = "id:1d305b4c stat:ENROUTE err:000"
    (event,) = parse_callback(text, "smpp", received_at=RECEIVED)
    assert event.timestamp == RECEIVED
    with pytest.raises(InvalidCallback) as refused:
        parse_callback(text, "smpp")
    assert refused.value.field == "done date"


def test_jasmin_http_receipts() -> None:
    """Level 3 carries the receipt's state; level 1 the centre's ESME_ answer to the submit."""
    jasmin = {"id": "5a1d6b3e-7c2f-4f63-9f6e-2d1c0b9a8e7f", "id_smsc": "1d305b4c", "err": "000"}
    (delivered,) = parse_callback(
        {**jasmin, "message_status": "DELIVRD", "level": "3", "donedate": "2603011200"}, "smpp"
    )
    assert (delivered.message_id, delivered.status) == (jasmin["id"], S.DEVICE_ACK)
    accepted = {**jasmin, "message_status": "ESME_ROK", "level": "1"}
    refused = {**jasmin, "message_status": "ESME_RINVDSTADR", "level": "1"}
    (ok,) = parse_callback(accepted, "smpp", received_at=RECEIVED)
    (bad,) = parse_callback(refused, "smpp", received_at=RECEIVED)
    assert (ok.status, bad.status) == (S.SENT_TO_SUPPLIER, S.DELIVERY_FAILURE)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (smpp_receipt("DELIVERED"), "stat"),
        ("stat:DELIVRD done date:1305231016", "id"),
        (smpp_receipt("DELIVRD", done="2013-05-23"), "done date"),
        ("id:1 id:2 stat:DELIVRD done date:1305231016", "id"),
    ],
)
def test_an_smpp_receipt_that_cannot_be_read_names_its_field(body: str, field: str) -> None:
    """An unknown state, no id, a date of the wrong shape, an id given twice."""
    with pytest.raises(InvalidCallback) as refused:
        parse_callback(body, "smpp")
    assert refused.value.field == field


@given(reports_of(VONAGE_MEANS, 3_600))
def test_any_order_and_repetition_of_vonage_statuses_ends_where_precedence_says(
    reports: list[tuple[str, int]],
) -> None:
    """Property: Vonage statuses, in any order and twice, reach the state the oracle names."""
    base = PUSHED_MS
    bodies = [
        vonage_status(word, timestamp=moment(base + dt * 1000).isoformat()) for word, dt in reports
    ]
    events = [e for body in bodies for e in parse_callback(body, "vonage")]
    expected = [
        StatusEvent.from_ms("v", VONAGE_MEANS[w], base + dt * 1000, "whatsapp") for w, dt in reports
    ]
    ends_where_precedence_says(events, expected)


@given(reports_of(SMPP_MEANS, 59))
def test_any_order_and_repetition_of_smpp_receipts_ends_where_precedence_says(
    reports: list[tuple[str, int]],
) -> None:
    """Property: SMPP receipts (minute dates), in any order and twice, reach one state."""
    bodies = [smpp_receipt(stat, done=f"13052310{dt:02d}") for stat, dt in reports]
    events = [e for body in bodies for e in parse_callback(body, "smpp")]
    base = int(datetime(2013, 5, 23, 10, 0, tzinfo=timezone.utc).timestamp() * 1000)
    expected = [
        StatusEvent.from_ms("s", SMPP_MEANS[w], base + dt * 60_000, "sms") for w, dt in reports
    ]
    ends_where_precedence_says(events, expected)
