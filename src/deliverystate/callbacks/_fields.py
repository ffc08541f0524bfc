"""Reading one field of a callback body: what each field may hold, and the words of each refusal.

Every reader raises :class:`InvalidCallback` naming the field's full path.
Readers take the path of the object they read from (``prefix``, "" at the
top) and build a field's path only when they raise: most bodies are fine.
The status readers are pure functions of the values they read, which lets the
parser's fast path remember their answers (see ``_parse``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidCallback, UnknownStatusCode
from ..rules._catalog import Status
from ..rules._events import MAX_ID_LENGTH, id_problem
from ..rules._time import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS
from ._formats import LEGACY_STATUS, PLATFORM_NAMES
from ._providers import Word, lookup

__all__ = [
    "checked_ms",
    "flat_status",
    "legacy_status",
    "one_api_status",
    "platform_status",
    "read_code",
    "read_identifier",
    "read_integer",
    "read_name",
    "read_text",
    "read_timestamp_ms",
    "read_word",
    "show",
]


def show(value: object) -> str:
    """A short repr for messages; never fails (a 5,000-digit int cannot be printed)."""
    try:
        text = repr(value)
    except ValueError:
        return f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= 60 else text[:57] + "..."


# ``x.__class__ is dict`` before ``isinstance(x, Mapping)``: decoded JSON is made of
# dicts, and an ABC check costs more than most of a field's parsing.


def read_text(fields: Mapping[str, Any], name: str, prefix: str, *, required: bool) -> str | None:
    """A text field, trimmed; a number is its digits, anything else (a list, a bool) is refused."""
    value = fields.get(name)
    if value.__class__ is str and value and not value[0].isspace() and not value[-1].isspace():
        return value  # the common case, already clean
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidCallback(prefix + name, "missing", value)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidCallback(
            prefix + name, f"expected a string, got {type(value).__name__}", value
        )
    if isinstance(value, int) and value.bit_length() > 4 * MAX_ID_LENGTH:
        raise InvalidCallback(prefix + name, f"longer than {MAX_ID_LENGTH} characters", value)
    return str(value).strip()


def read_identifier(
    fields: Mapping[str, Any], name: str, prefix: str, *, required: bool
) -> str | None:
    """A message id or client message id: text that every store can keep as it is."""
    value = read_text(fields, name, prefix, required=required)
    if value is not None:
        problem = id_problem(value)
        if problem is not None:
            raise InvalidCallback(prefix + name, problem, value)
    return value


def read_integer(value: Any, path: str, what: str) -> int:
    """A whole number from an int, an integral float, or a string of digits."""
    if value.__class__ is int:
        return value
    if isinstance(value, bool):
        raise InvalidCallback(path, f"expected {what}, got a boolean", value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= 20:
            return int(text)
    raise InvalidCallback(path, f"expected {what}, got {show(value)}", value)


def read_timestamp_ms(fields: Mapping[str, Any], prefix: str, *, seconds: bool) -> int:
    path = prefix + "timestamp"
    value = fields.get("timestamp")
    if value is None:
        raise InvalidCallback(path, "missing", value)
    unit = "epoch seconds" if seconds else "milliseconds since the epoch"
    number = read_integer(value, path, f"a whole number of {unit}")
    millis = number * 1000 if seconds else number
    if MIN_TIMESTAMP_MS <= millis <= MAX_TIMESTAMP_MS:
        return millis
    if not 0 <= millis <= MAX_TIMESTAMP_MS:
        raise InvalidCallback(path, f"{show(number)} is not a plausible time in {unit}", value)
    if seconds:
        raise InvalidCallback(path, f"{number} epoch seconds is before 2000-01-01", value)
    raise InvalidCallback(
        path,
        f"{number} is before 2000-01-01 as milliseconds; it looks like epoch seconds "
        "(this format sends milliseconds)",
        value,
    )


def read_code(fields: Mapping[str, Any], prefix: str) -> int | None:
    value = fields.get("statusCode")
    if value is None:
        return None
    return read_integer(value, prefix + "statusCode", "a numeric status code")


def read_name(fields: Mapping[str, Any], prefix: str) -> str | None:
    value = fields.get("status")
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCallback(
            prefix + "status", f"expected a status name, got {type(value).__name__}", value
        )
    return value.strip().upper()


def one_api_status(fields: Mapping[str, Any], prefix: str) -> Status:
    """The status named by a One API update's ``statusCode`` and/or ``status``, which agree."""
    code = read_code(fields, prefix)
    name = read_name(fields, prefix)
    by_code = by_name = None
    if code is not None:
        try:
            by_code = Status.from_code(code)
        except UnknownStatusCode:
            raise InvalidCallback(
                prefix + "statusCode", f"unknown status code {show(code)}", code
            ) from None
    if name is not None:
        try:
            by_name = Status.from_name(name)
        except UnknownStatusCode:
            raise InvalidCallback(prefix + "status", f"unknown status {name!r}", name) from None
    if by_code is None and by_name is None:
        raise InvalidCallback(prefix + "statusCode", "missing (and no status name either)")
    if by_code is not None and by_name is not None and by_code is not by_name:
        raise InvalidCallback(
            prefix + "statusCode",
            f"statusCode {int(by_code)} is {by_code.name} but status says {by_name.name}",
            code,
        )
    result = by_code if by_code is not None else by_name
    assert result is not None
    return result


def platform_status(code: int, field: str) -> Status:
    """A Platform (legacy) status code's One API status."""
    try:
        return LEGACY_STATUS[code]
    except KeyError:
        known = ", ".join(str(c) for c in sorted(LEGACY_STATUS))
        reason = (
            f"Platform status code {show(code)} has no One API equivalent"
            if code == 13
            else f"{show(code)} is not a Platform status code (Platform callbacks number "
            f"statuses {known}; send the One API status name too to use One API codes)"
        )
        raise InvalidCallback(field, reason, code) from None


def flat_status(fields: Mapping[str, Any]) -> Status:
    """The status of a flat body: Platform numbering, unless a One API name says otherwise."""
    code = read_code(fields, "")
    name = read_name(fields, "")
    if name is None:
        if code is None:
            raise InvalidCallback("statusCode", "missing (and no status name either)")
        return platform_status(code, "statusCode")
    platform_code = PLATFORM_NAMES.get(name)
    one_api = Status.__members__.get(name)
    if platform_code is None and one_api is None:
        raise InvalidCallback(
            "status", f"unknown status {name!r}: neither a Platform nor a One API name", name
        )
    readings: set[Status] = set()
    if platform_code is not None and code in (None, platform_code):
        readings.add(platform_status(platform_code, "status"))
    if one_api is not None and code in (None, int(one_api)):
        readings.add(one_api)
    if not readings:
        expected = " or ".join(
            str(c) for c in (platform_code, None if one_api is None else int(one_api)) if c
        )
        raise InvalidCallback(
            "statusCode", f"statusCode {show(code)} contradicts status {name} ({expected})", code
        )
    if len(readings) > 1:  # the name is both a Platform and a One API name, with no code
        raise InvalidCallback("statusCode", f"status {name} is ambiguous without its code")
    return readings.pop()


def legacy_status(raw: Any) -> Status:
    """The One API status of a legacy HTTP ``status`` ("001".."014")."""
    if raw is None:
        raise InvalidCallback("status", "missing")
    number = read_integer(raw, "status", 'a legacy status such as "004"')
    if number not in LEGACY_STATUS:
        raise InvalidCallback("status", f"legacy status {show(raw)} has no One API equivalent", raw)
    return LEGACY_STATUS[number]


def checked_ms(millis: int, path: str, value: object = None) -> int:
    """A time in ms a store can keep (2000-01-01 to the policy key's bound), or refused."""
    if MIN_TIMESTAMP_MS <= millis <= MAX_TIMESTAMP_MS:
        return millis
    raise InvalidCallback(path, "before 2000-01-01 or too far ahead to be a time", value)


def read_word(provider: str, fields: Mapping[str, Any], name: str) -> Word:
    """Another provider's status word, as its table (``_providers``) reads it, or refused."""
    word = read_text(fields, name, "", required=True)
    row = lookup(provider, str(word))
    if row is None:
        raise InvalidCallback(name, f"{show(word)} is not a {provider} status this reads", word)
    return row
