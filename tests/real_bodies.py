"""Callback bodies from public sources, with what each must parse to.

Every body here is copied from a public integration, test suite or Clickatell
page (the ``source`` says which) rather than made by ``simulate``, so that the
parser is held to what Clickatell and the integrations in the field actually
send.  Where a real body cannot be used as it is, the change is stated in
``note`` and the unchanged body is kept beside it (usually with the error it
gets).  Expected statuses are written out by hand from Clickatell's tables:
the One API status table, and the legacy HTTP / Platform 1..14 table
(001 message unknown, 002 queued, 003 delivered to gateway, 004 received by
recipient, 005 error with message, ...).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import attrs

from deliverystate import Status


@attrs.frozen
class RealBody:
    """A callback body, where it comes from, and what it must parse to."""

    name: str
    source: str
    body: Any  # str (JSON text) or the mapping a query string / form gives
    #: (message id, status, timestamp ms, channel, client message id) per event
    events: tuple[tuple[str, Status, int, str | None, str | None], ...] = ()
    ignored: tuple[str, ...] = ()
    #: the field an InvalidCallback must name, when the body is refused
    refused_field: str | None = None
    note: str = ""


def query(text: str) -> dict[str, str]:
    """A query string as the receiver hands it to the parser (one string per field)."""
    return dict(parse_qsl(text, keep_blank_values=True, errors="strict"))


COURIER = "nyaruka/courier (RapidPro), handlers/clickatell/testdata/incoming.json"
COURIER_LEGACY = "nyaruka/courier, handlers/clickatell/clickatell_test.go (legacy-API era version)"

BODIES: tuple[RealBody, ...] = (
    # --- One API ---------------------------------------------------------------------
    RealBody(
        "one-api-moText",
        "Clickatell, One API received message callback sample, "
        "https://www.clickatell.com/developers/api-documentation/one-api-received-message-callback/",
        """{
  "integrationId": "fa8090815f05d5ed015f0b5b56080cd2",
  "integrationName": "My integration",
  "event": {
    "moText": [
      {
        "channel": "whatsapp",
        "messageId": "3a89680503414383af44dcd0e4e5f184",
        "relatedMessageId": "d33eef0838a121f71069a4cc8d55c19e",
        "relatedClientMessageId": "d33eef0838a121f71069a4cc8d55c19e",
        "from": "2799900001",
        "to": "2799900002",
        "timestamp": 1506607698000,
        "content": "Text Content of the reply message",
        "charset": "UTF-8"
      }
    ]
  }
}""",
        ignored=("moText",),
        note="an inbound message posted to the status URL: acknowledged and ignored",
    ),
    RealBody(
        "one-api-faq-status-sample",
        "Clickatell technical FAQ, 'Which parameter in the callback payload will match to "
        "the apiMessageId in the send message response?', docs.clickatell.com/technical-faq/"
        "one_api/which-parameter-in-the-callback-payload-will-match-to-the-apimessageid-in-"
        "the-send-message-response/ (typographic quotes normalised)",
        """{
  "integrationId": "fa8090815f05d5ed015f0b5b56080cd2",
  "integrationName": "My integration",
  "event": {
    "messageStatusUpdate": [
      {
        "channel": "whatsapp/sms",
        "timestamp": 1506607698860,
        "statusCode": 4,
        "status": "DEVICE_ACK",
        "messageId": "77fb29998253415fa5d66971d519d362",
        "clientMessageId": "2993b6b548000a80989a20549e7558a5"
      }
    ]
  }
}""",
        refused_field="event.messageStatusUpdate[0].channel",
        note="the sample's channel is a placeholder ('whatsapp/sms'), and its code 4 "
        "(SENT_TO_SUPPLIER) contradicts its name DEVICE_ACK: refused, never guessed",
    ),
    RealBody(
        "one-api-faq-status-sample-on-whatsapp",
        "the FAQ sample above with its placeholder channel set to 'whatsapp'",
        """{"integrationId": "fa8090815f05d5ed015f0b5b56080cd2",
  "integrationName": "My integration", "event": {"messageStatusUpdate": [{"channel": "whatsapp",
  "timestamp": 1506607698860, "statusCode": 4, "status": "DEVICE_ACK",
  "messageId": "77fb29998253415fa5d66971d519d362",
  "clientMessageId": "2993b6b548000a80989a20549e7558a5"}]}}""",
        refused_field="event.messageStatusUpdate[0].statusCode",
        note="code 4 with DEVICE_ACK: the contradiction alone is refused",
    ),
    RealBody(
        "one-api-faq-status-seconds",
        "the FAQ sample's moment written in seconds (1506607698), the mistake the intake "
        "issue reports",
        """{"event": {"messageStatusUpdate": [{"channel": "sms", "timestamp": 1506607698,
  "statusCode": 5, "status": "DEVICE_ACK", "messageId": "77fb29998253415fa5d66971d519d362"}]}}""",
        refused_field="event.messageStatusUpdate[0].timestamp",
        note="seconds where milliseconds belong would date the report in January 1970",
    ),
    # --- Platform (flat) -------------------------------------------------------------
    RealBody(
        "courier-platform-failed-status",
        f"{COURIER}, test 'Valid Failed status report'",
        '{"messageId": "msg1", "statusCode": 5}',
        refused_field="timestamp",
        note="courier's test body carries no timestamp (courier does not read it); without "
        "one a report cannot be ordered, so it is refused and kept",
    ),
    RealBody(
        "courier-platform-failed-status-with-time",
        f"{COURIER}, test 'Valid Failed status report', with the timestamp Clickatell's "
        "Platform callback documents (a string of milliseconds) added",
        '{"messageId": "msg1", "statusCode": 5, "timestamp": "1516217711000"}',
        events=(("msg1", Status.DELIVERY_FAILURE, 1_516_217_711_000, "sms", None),),
        note="Platform 5 is 'error with message' (courier: failed), not One API 5 DEVICE_ACK",
    ),
    RealBody(
        "courier-platform-delivered-status-with-time",
        f"{COURIER}, test 'Valid Delivered status report', timestamp added as above",
        '{"messageId": "msg1", "statusCode": 4, "timestamp": "1516217711000"}',
        events=(("msg1", Status.DEVICE_ACK, 1_516_217_711_000, "sms", None),),
        note="Platform 4 is 'received by recipient': the handset has it (courier files it "
        "under sent), not One API 4 SENT_TO_SUPPLIER",
    ),
    RealBody(
        "courier-platform-unexpected-status",
        f"{COURIER}, test 'Unexpected status report'",
        '{"messageId": "msg1", "statusCode": -1, "timestamp": "1516217711000"}',
        refused_field="statusCode",
        note="courier answers 400 'unknown status', and so do we (timestamp added as above)",
    ),
    RealBody(
        "courier-platform-reply",
        f"{COURIER}, test 'Valid Receive' (a Platform two-way reply)",
        """{
            "messageId": "1234",
            "fromNumber": "250788383383",
            "timestamp": 1516217711000,
            "text": "Hello World!",
            "charset": "UTF-8"
        }""",
        ignored=("Platform reply",),
        note="an inbound reply posted to the status URL: acknowledged and ignored",
    ),
    # --- legacy HTTP -----------------------------------------------------------------
    RealBody(
        "clickatell-http-api-callback-example",
        "Clickatell HTTP API guide's MT callback example, as quoted in a public Rails "
        "controller (app/controllers/connect_controller.rb of a napt.mobi app)",
        query(
            "api_id=12345&apiMsgId=996f364775e24b8432f45d77da8eca47&cliMsgId=abc123"
            "&timestamp=1218007814&to=279995631564&from=27833001171&status=003&charge=0.300000"
        ),
        events=(
            (
                "996f364775e24b8432f45d77da8eca47",
                Status.SENT_TO_SUPPLIER,
                1_218_007_814_000,
                "sms",
                "abc123",
            ),
        ),
        note="003 'delivered to gateway'; the comment wraps 'charge=0.300 000' over a line",
    ),
    RealBody(
        "courier-legacy-delivered",
        f"{COURIER_LEGACY}, statusDeliveredValidAPIID",
        query("api_id=12345&apiMsgId=id1234&status=004"),
        refused_field="timestamp",
        note="courier's test URL has no timestamp; Clickatell's callbacks always carry one",
    ),
    RealBody(
        "courier-legacy-unexpected",
        f"{COURIER_LEGACY}, statusUnexpected, with a timestamp added",
        query("apiMsgId=id1234&status=020&timestamp=1218007814"),
        refused_field="status",
        note="courier answers 400 'unknown status 020', and so do we",
    ),
    RealBody(
        "courier-legacy-mo",
        f"{COURIER_LEGACY}, receiveValidMessage",
        query(
            "to=%2B250788123123&moMsgId=id1234&from=250788383383"
            "&timestamp=2012-10-10+10%3A10%3A10&text=Hello+World"
        ),
        ignored=("legacy MO",),
        note="an inbound legacy message posted to the status URL: acknowledged and ignored",
    ),
    RealBody(
        "kolypto-legacy-mo-real",
        "kolypto/py-smsframework-clickatell, tests/clickatell_test.py, test_receive_message, "
        "'Message 2: real, non-unicode'",
        query(
            "api_id=3460000&from=380660000000&to=491700000000&timestamp=2014-01-29+02%3A08%3A30"
            "&text=Hi%2C+man&charset=ISO-8859-1&udh=&moMsgId=c6b1e0eb9d6b8d549621235aaf089a26"
        ),
        ignored=("legacy MO",),
    ),
    RealBody(
        "hcl-legacy-mo",
        "HCL-TECH-SOFTWARE/volt-mx-docs, source/Foundry/engagement_api_guide/Content/"
        "REST_API__SMS/Clickatell_Inbound_Format.md",
        query(
            "api_id=3523864&from=919676026708&timestamp=2015-02-04+09%3A30%3A36"
            "&text=Test+clicks+tell+103+2-4-2015&charset=ISO-8859-1&udh="
            "&moMsgId=d2b66016178dda7c3b4a701056797755&to=447860024227"
        ),
        ignored=("legacy MO",),
    ),
)
