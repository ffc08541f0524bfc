"""A callback body's JSON, decoded fast when it can be and exactly as the standard library would.

Theory of operation
-------------------
The rules are the standard library's: ``json`` decides what is JSON, what a
number becomes and what a refusal says, and a key given twice in one object is
refused (which of two ``statusCode``\\ s would count?), naming the key.  Its
decoder needs a Python hook per object to see repeated keys, which makes it
the largest single cost of parsing a callback.

With the ``fast`` extra installed, msgspec decodes first.  Its result is used
only when it is an object and the body holds exactly as many ``:`` characters
as the decoded objects hold members, all together.  Every member of every
object in the text is written with one ``:``, and a ``:`` can appear nowhere
else but inside a string; a key given twice leaves its object with fewer
members than colons.  So equal counts prove there is no repeated key, and any
doubt (a colon inside a string, a repeated key, anything msgspec refuses, a
body that is not an object) sends the body to the standard library, which
decides it as before: the fast decoder never accepts a body the standard
library refuses, and never decides differently what a body means.  (orjson is
not used: it silently turns integers beyond 64 bits into floats.)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidCallback

__all__ = ["FAST_DECODER", "decode_body", "members", "stdlib_body"]


def _msgspec() -> Callable[[bytes | str], Any] | None:
    try:
        import msgspec  # noqa: PLC0415 - the optional 'fast' extra
    except ImportError:
        return None
    return msgspec.json.Decoder().decode


#: The fast decoder (msgspec's, from the ``fast`` extra), or None when it is not installed.
FAST_DECODER: Callable[[bytes | str], Any] | None = _msgspec()


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (which one would count?)."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return result


# built once: json.loads(text, object_pairs_hook=...) builds a decoder per call, which
# costs more than the whole decoding of a callback
_JSON = json.JSONDecoder(object_pairs_hook=_unique_keys)


def members(value: Any) -> int:
    """How many members the objects in a decoded JSON object or array hold, all together."""
    if value.__class__ is dict:
        count = len(value)
        items = value.values()
    else:
        count = 0
        items = value
    for item in items:
        kind = item.__class__
        if kind is dict or kind is list:
            count += members(item)
    return count


def stdlib_body(payload: bytes | str) -> Any:
    """A body decoded by the standard library alone: the rules, and every refusal's words."""
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidCallback(
                "body", f"not UTF-8 ({error.reason} at byte {error.start})"
            ) from None
    try:
        return _JSON.decode(payload)
    except _RepeatedKey as repeated:
        raise InvalidCallback(
            repeated.key, "given more than once in one JSON object", repeated.key
        ) from None
    except (ValueError, RecursionError) as error:
        raise InvalidCallback("body", f"not JSON ({error})") from None


def _fast(payload: bytes | str) -> dict[str, Any] | None:
    """The body as the fast decoder reads it, when that is provably the standard library's."""
    decode = FAST_DECODER
    if decode is None:
        return None
    try:
        value = decode(payload)
        if value.__class__ is not dict:
            return None
        # in UTF-8 the byte of ":" is never part of another character
        colons = payload.count(":") if isinstance(payload, str) else payload.count(b":")
        return value if colons == members(value) else None
    except Exception:  # whatever it refuses, the standard library decides, in its own words
        return None


def decode_body(payload: object) -> Mapping[str, Any]:
    """Turn bytes, str or a mapping into a mapping of field -> value."""
    if isinstance(payload, bytes | bytearray | memoryview | str):
        if not isinstance(payload, bytes | str):
            payload = bytes(payload)
        fast = _fast(payload)
        payload = stdlib_body(payload) if fast is None else fast
    if payload.__class__ is not dict and not isinstance(payload, Mapping):
        raise InvalidCallback(
            "body", f"expected a JSON object or query parameters, got {type(payload).__name__}"
        )
    return payload
