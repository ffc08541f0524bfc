"""Hypothesis strategies that fuzz the parser, beyond those deliverystate.testing ships.

The strategies of reports and of callback bodies (``statuses``, ``events``,
``histories``, ``streams``, ``callback_bodies``, ``invalid_callback_bodies``)
are ``deliverystate.testing``'s, and the tests use them from there, as users
do.  What stays here is the parser's own fuzzing: JSON values of any shape,
and bodies near the parser's edges, whose fields are replaced or removed so
that they may be valid or not (no one can say which without parsing them).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from deliverystate import Status
from deliverystate.simulate import callback_body
from deliverystate.testing import BASE_MS, events

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)  # huge integers have tests of their own
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)

_FIELD_NAMES = st.sampled_from(
    [
        "event",
        "messageStatusUpdate",
        "channel",
        "timestamp",
        "statusCode",
        "status",
        "messageId",
        "clientMessageId",
        "apiMsgId",
        "api_id",
        "cliMsgId",
        "integrationId",
    ]
)
# values that sit near the edges of what the parser accepts
_TRICKY = st.one_of(
    json_values,
    st.sampled_from(["", " ", "sms", " WhatsApp ", "rcs", "004", "4", "-1", "1e3", "\uff11\uff12"]),
    st.integers(-(2**70), 2**70),
    st.sampled_from([s.name for s in Status] + [int(s) for s in Status]),
)


@st.composite
def mutated_callbacks(draw: st.DrawFn) -> Any:
    """A valid callback body of any of the three formats with fields replaced or removed."""
    event = draw(events())
    body: dict[str, Any]
    fmt = draw(st.sampled_from(["one", "flat", "legacy"]))
    if fmt == "one":
        body = callback_body(event)
        target = body["event"]["messageStatusUpdate"][0]
    elif fmt == "flat":
        body = {
            "messageId": event.message_id,
            "statusCode": str(int(event.status)),
            "status": event.status.name,
            "timestamp": str(event.timestamp_ms),
        }
        target = body
    else:
        body = {"apiMsgId": event.message_id, "status": "004", "timestamp": "1767225600"}
        target = body
    for _ in range(draw(st.integers(1, 3))):
        name = draw(_FIELD_NAMES)
        if draw(st.booleans()):
            target.pop(name, None)
        else:
            target[name] = draw(_TRICKY)
    return json.dumps(body) if draw(st.booleans()) else body


# --- bodies near the parser's fast path: clean, or off by one detail ---------------------

_IDS = st.sampled_from(
    ["abc123", "a b", " abc", "abc ", "x" * 256, "x" * 257, "é-1", "a\x00b", "a\tb", "", 5, None]
)
_CLIENTS = st.sampled_from([None, "", "c-1", " c", "c-é", 7, "c\x7f", ["c-1"]])
_CHANNEL_VALUES = st.sampled_from(
    [None, "sms", "whatsapp", " SMS ", "WhatsApp", " whatsapp\n", "rcs", "", " ", 1, ["sms"]]
)
_CODES = st.one_of(
    st.sampled_from([None, 13, 142, 0, -1, True, 4.0, "4", " 4", "04", "x", 10**30, ["4"]]),
    st.sampled_from([int(s) for s in Status]),
    st.integers(1, 14),
)
_NAMES = st.one_of(
    st.sampled_from([None, "DELIVERED", "queued", " READ ", "OK", 4, ["READ"], ""]),
    st.sampled_from([s.name for s in Status]),
    st.sampled_from(
        ["DELIVERED_TO_GATEWAY", "RECEIVED_BY_RECIPIENT", "ERROR_WITH_MESSAGE", "MESSAGE_EXPIRED"]
    ),
)
_TIMES = st.one_of(
    st.integers(BASE_MS - 10**6, BASE_MS + 10**6),
    st.integers(BASE_MS - 10**6, BASE_MS + 10**6).map(str),
    st.sampled_from(
        [None, 1_767_225_600, "1767225600", -5, 1.5, True, " 1767225600000", "1e12", 10**30, "٣"]
    ),
)


@st.composite
def callback_variants(draw: st.DrawFn) -> Any:
    """A body of any of the three shapes, with every field drawn clean or nearly so."""
    fmt = draw(st.sampled_from(["one", "flat", "legacy"]))
    body: dict[str, Any]
    if fmt == "one":
        updates = [
            {
                "channel": draw(_CHANNEL_VALUES),
                "messageId": draw(_IDS),
                "clientMessageId": draw(_CLIENTS),
                "statusCode": draw(_CODES),
                "status": draw(_NAMES),
                "timestamp": draw(_TIMES),
            }
            for _ in range(draw(st.integers(1, 3)))
        ]
        event: dict[str, Any] = {"messageStatusUpdate": updates}
        if not draw(st.integers(0, 5)):
            event["moText"] = [{"messageId": "in-1"}]
        body = {"integrationId": "i", "event": event}
    elif fmt == "flat":
        body = {
            "messageId": draw(_IDS),
            "clientMessageId": draw(_CLIENTS),
            "statusCode": draw(_CODES),
            "status": draw(_NAMES),
            "timestamp": draw(_TIMES),
        }
    else:
        body = {
            "api_id": "1",
            "apiMsgId": draw(_IDS),
            "cliMsgId": draw(_CLIENTS),
            "status": draw(st.one_of(_CODES, st.sampled_from(["001", "004", "013", "014"]))),
            "timestamp": draw(_TIMES),
        }
    for target in [body, *body.get("event", {}).get("messageStatusUpdate", [])]:
        for key in [k for k, v in target.items() if v is None and draw(st.booleans())]:
            del target[key]  # absent, rather than null
    return json.dumps(body) if draw(st.booleans()) else body
