"""Bodies ``parse_callback`` must refuse, each with the field its refusal names.

Theory of operation
-------------------
Each body is a valid one (see ``_bodies``) broken in exactly one way, so the
field the parser must name is known before the parser sees it: the body is
not JSON, not UTF-8, not an object, of no known shape, or repeats a key; or
one field of one update is wrong the way callbacks in the field are wrong (a
code newer than the catalog, a code and a name that disagree, seconds where
milliseconds belong, an id no store could keep, a status the channel cannot
carry, a Platform code without a One API meaning, a field of the wrong type:
a list of one value or of two, a nested list, an object or a boolean where
text or a number belongs).  Query parameters carry text only, so their
mapping is never given a wrong type: a field given twice in a query string or
a form is refused by the receiver before the parser sees it.  Only one thing
is broken, because a parser reports the first problem it meets and the order
in which it reads fields is its own business.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from ..callbacks._formats import PLATFORM_NAMES
from ..rules._catalog import Status
from ._bodies import ENCODINGS, Callback, Draft, drafts, encode

__all__ = ["invalid_callback_bodies", "invalid_callbacks"]

#: A broken copy of a draft's fields, and the field (its path) the refusal names.
Broken = tuple[Any, str]

_BAD_IDS = ("", "   ", "a\x00b", "line\nbreak", "x" * 257, "del\x7f", "\ud800-lone")
_BAD_TIMES: tuple[Any, ...] = ("yesterday", "", -5, 1.5, True, 10**30, "1e12", [1, 2])
_OLD_CODES = (7, 19, 42, 99, 142, 255, 1000)
_NAMES = ("DELIVERED", "SENT", "FAILED", "DELIVRD", "BANANA")


#: The fields each shape reads, any of which a wrong type must get refused, named.
_TYPED = {
    "one_api": ("messageId", "clientMessageId", "statusCode", "status", "timestamp", "channel"),
    "platform": ("messageId", "clientMessageId", "statusCode", "status", "timestamp"),
    "legacy": ("apiMsgId", "cliMsgId", "status", "timestamp"),
}


def _wrong_type(draw: st.DrawFn, fields: dict[str, Any], shape: str) -> str:
    """Give one field a value of the wrong type (never unwrapped, never guessed); its name."""
    name = draw(st.sampled_from([n for n in _TYPED[shape] if fields.get(n) is not None]))
    value = fields[name]
    fields[name] = draw(
        st.sampled_from([[value], [value, value], [[value]], [], {"value": value}, True, False])
    )
    return name


def _bad_id(draw: st.DrawFn, query: bool) -> str:
    # a lone surrogate cannot be percent-encoded: a query string never holds one
    return draw(st.sampled_from([i for i in _BAD_IDS if not (query and "\ud800" in i)]))


def _break_update(draw: st.DrawFn, update: dict[str, Any], prefix: str) -> str:
    """Break one field of a One API update; the full path of the field the refusal names."""
    channel = str(update.get("channel", "sms")).strip().lower()
    kind = draw(st.integers(0, 9))
    if kind == 9:
        return prefix + _wrong_type(draw, update, "one_api")
    if kind == 0:
        update["statusCode"] = draw(st.sampled_from(_OLD_CODES))
        update.pop("status", None)
        return prefix + "statusCode"
    if kind == 1:
        update.pop("statusCode", None)
        update["status"] = draw(st.sampled_from(_NAMES))
        return prefix + "status"
    if kind == 2:
        allowed = [s for s in Status if s.allowed_on(channel)]
        code, name = draw(st.lists(st.sampled_from(allowed), min_size=2, max_size=2, unique=True))
        update["statusCode"], update["status"] = int(code), name.name
        return prefix + "statusCode"
    if kind == 3:
        update["messageId"] = _bad_id(draw, query=False)
        return prefix + "messageId"
    if kind == 4:
        update["clientMessageId"] = draw(st.sampled_from(_BAD_IDS[2:]))
        return prefix + "clientMessageId"
    if kind == 5:
        update["timestamp"] = draw(st.sampled_from([update["timestamp"] // 1000, *_BAD_TIMES]))
        return prefix + "timestamp"
    if kind == 6:
        update["channel"] = draw(st.sampled_from(["rcs", "whatsapp/sms", "email", "s m s"]))
        return prefix + "channel"
    # a status the channel cannot carry: SMS routing on WhatsApp, WhatsApp's own on SMS
    other = draw(st.sampled_from(["sms", "whatsapp"]))
    status = draw(st.sampled_from([s for s in Status if not s.allowed_on(other)]))
    update["channel"], update["statusCode"], update["status"] = other, int(status), status.name
    return prefix + "statusCode"


def _one_api(draw: st.DrawFn, fields: dict[str, Any]) -> str:
    event = fields["event"]
    updates = event["messageStatusUpdate"]
    kind = draw(st.integers(0, 9))
    if kind == 0:
        fields["event"] = draw(st.sampled_from(["x", [], 5, None]))
        return "event"
    if kind == 1:  # nothing in the array, and no other event to acknowledge
        fields["event"] = {"messageStatusUpdate": draw(st.sampled_from([[], {}, "x"]))}
        return "event.messageStatusUpdate"
    index = draw(st.integers(0, len(updates) - 1))
    prefix = f"event.messageStatusUpdate[{index}]"
    if kind == 2:
        updates[index] = draw(st.sampled_from(["x", 5, None, []]))
        return prefix
    return _break_update(draw, updates[index], prefix + ".")


def _flat(draw: st.DrawFn, fields: dict[str, Any], query: bool) -> str:
    """Break a Platform body's fields; the field the refusal names."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        fields["messageId"] = _bad_id(draw, query)
        return "messageId"
    if kind == 1:
        fields["statusCode"] = draw(st.sampled_from([13, 15, 0, 99]))
        fields.pop("status", None)
        return "statusCode"
    if kind == 2:
        fields["status"] = draw(st.sampled_from(_NAMES))
        return "status"
    if kind == 3:  # a Platform name with another Platform code
        name = draw(st.sampled_from([n for n in PLATFORM_NAMES if n not in Status.__members__]))
        code = draw(st.sampled_from([c for c in range(1, 15) if c != PLATFORM_NAMES[name]]))
        fields["statusCode"], fields["status"] = code, name
        return "statusCode"
    if kind == 4:  # a WhatsApp status, which a Platform (SMS) callback cannot carry
        status = draw(st.sampled_from([s for s in Status if not s.allowed_on("sms")]))
        fields["statusCode"], fields["status"] = int(status), status.name
        return "statusCode"
    fields["timestamp"] = draw(st.sampled_from([int(fields["timestamp"]) // 1000, "soon", "", -1]))
    return "timestamp"


def _legacy(draw: st.DrawFn, fields: dict[str, Any], query: bool) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        fields["status"] = draw(st.sampled_from(["013", "099", "000", "abc", "", "4.5"]))
        return "status"
    if kind == 1:
        fields["apiMsgId"] = _bad_id(draw, query)
        return "apiMsgId"
    if kind == 2:
        fields["cliMsgId"] = draw(
            st.sampled_from([i for i in _BAD_IDS[2:] if not query or "\ud800" not in i])
        )
        return "cliMsgId"
    # milliseconds where seconds belong, words, or a time before 2000
    seconds = int(fields["timestamp"])
    fields["timestamp"] = draw(
        st.sampled_from([str(seconds * 1000), "yesterday", "-5", "946684799"])
    )
    return "timestamp"


@st.composite
def _field_broken(draw: st.DrawFn) -> Callback:
    """A valid body with one field (of one update) broken, in any encoding."""
    draft = draw(drafts())
    fields = copy.deepcopy(draft.fields)
    encodings = ENCODINGS[:3] if draft.format == "one_api" else ENCODINGS
    encoding = draw(st.sampled_from(encodings))
    query = encoding == "query"
    if draft.format == "one_api":
        field = _one_api(draw, fields)
    elif not query and not draw(st.integers(0, 5)):  # a query string carries text only
        field = _wrong_type(draw, fields, draft.format)
    else:
        field = (_flat if draft.format == "platform" else _legacy)(draw, fields, query)
    return Callback(encode(fields, encoding), draft.format, encoding, field=field)


def _text(draft: Draft, encoding: str) -> str | bytes:
    text = json.dumps(draft.fields)
    return text.encode() if encoding == "bytes" else text


def _truncated(draw: st.DrawFn, draft: Draft, encoding: str) -> Any:
    text = _text(draft, encoding)
    return text[: draw(st.integers(1, len(text) - 1))]


def _not_utf8(draw: st.DrawFn, draft: Draft, encoding: str) -> Any:
    data = json.dumps(draft.fields).encode()
    at = draw(st.integers(0, len(data)))
    return (
        data[:at] + draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\x80"])) + data[at:]
    )


def _not_an_object(draw: st.DrawFn, draft: Draft, encoding: str) -> Any:
    value = draw(st.sampled_from([[], [draft.fields], 4, "callback", None, True]))
    return value if encoding == "mapping" else encode(value, encoding)


def _no_shape(draw: st.DrawFn, draft: Draft, encoding: str) -> Any:
    fields = draw(
        st.sampled_from([{}, {"hello": "world"}, {"text": "hi"}, {"integrationName": "n"}])
    )
    return encode(fields, encoding)


#: Whole-body breakages: what each does to a draft, and the encodings it can take.
_WHOLE: dict[str, tuple[Callable[[st.DrawFn, Draft, str], Any], tuple[str, ...]]] = {
    "truncated": (_truncated, ("bytes", "str")),
    "not UTF-8": (_not_utf8, ("bytes",)),
    "not an object": (_not_an_object, ENCODINGS[:3]),
    "no known shape": (_no_shape, ENCODINGS),
}


@st.composite
def _whole_broken(draw: st.DrawFn) -> Callback:
    """A body that is no callback at all: the refusal names ``body``, or the repeated key."""
    draft = draw(drafts())
    encoding = draw(st.sampled_from(["bytes", "str"]))
    if not draw(st.integers(0, 4)):  # a key given twice: which of two values would count?
        key = draw(st.sampled_from(list(draft.fields)))
        text = json.dumps(draft.fields)
        again = json.dumps(draw(st.sampled_from([draft.fields[key], "x"])))
        doubled = f"{text[:-1]}, {json.dumps(key)}: {again}}}"
        body = doubled.encode() if encoding == "bytes" else doubled
        return Callback(body, draft.format, encoding, field=key)
    kind = draw(st.sampled_from(sorted(_WHOLE)))
    breaker, encodings = _WHOLE[kind]
    encoding = draw(st.sampled_from(encodings))
    return Callback(breaker(draw, draft, encoding), draft.format, encoding, field="body")


def invalid_callbacks() -> st.SearchStrategy[Callback]:
    """A body ``parse_callback`` must refuse, and the field its refusal names (``field``)."""
    return st.one_of(_field_broken(), _whole_broken())


def invalid_callback_bodies() -> st.SearchStrategy[Any]:
    """Bodies ``parse_callback`` must refuse (``InvalidCallback``): :func:`invalid_callbacks`'."""
    return invalid_callbacks().map(lambda callback: callback.body)
