"""Time, written once: milliseconds and datetimes, the one UTC spelling, reading times, the bounds.

Clickatell's timestamps are milliseconds since the Unix epoch, and so is
every time the engine keeps: integers compare fast and sort the same in every
store.  People and programs see them through this module only, so every JSON
output, table and log line spells a time the same way: ISO 8601 in UTC with
milliseconds and a ``Z`` (:func:`iso`).  Times people type (filters, files of
sends) are read by :func:`parse_time`, which accepts ``Z`` or an offset.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = [
    "MAX_TIMESTAMP_MS",
    "MIN_TIMESTAMP_MS",
    "TIMESTAMP_BITS",
    "datetime_from_ms",
    "duration",
    "iso",
    "iso_datetime",
    "ms_from_datetime",
    "parse_time",
    "shown",
    "table_time",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: The bits of a timestamp the policy's integer key holds (``rules._policy``).
TIMESTAMP_BITS = 44
#: Largest timestamp (ms since the epoch) a key can hold: the year 2527.
MAX_TIMESTAMP_MS = (1 << TIMESTAMP_BITS) - 1
#: 2000-01-01T00:00:00Z in milliseconds: a "millisecond" timestamp before it is
#: a seconds value (1506607698 is 1970-01-18 as milliseconds, 2017 as seconds).
MIN_TIMESTAMP_MS = 946_684_800_000
_SHOWN = 40


def ms_from_datetime(moment: datetime) -> int:
    """Milliseconds since the Unix epoch of a timezone-aware ``datetime``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp {moment!r} has no timezone; use an aware datetime")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def datetime_from_ms(timestamp_ms: int) -> datetime:
    """The UTC ``datetime`` for milliseconds since the Unix epoch."""
    return _EPOCH + timedelta(milliseconds=timestamp_ms)


def iso(timestamp_ms: int) -> str:
    """ISO 8601 in UTC with milliseconds (the resolution of Clickatell's timestamps), ``Z``."""
    return datetime_from_ms(timestamp_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_datetime(moment: datetime) -> str:
    """An aware ``datetime`` in the one spelling of :func:`iso` (converted to UTC first)."""
    return iso(ms_from_datetime(moment))


def table_time(timestamp_ms: int) -> str:
    """A compact UTC time for tables: ``2026-01-01 00:00:05.250``."""
    return datetime_from_ms(timestamp_ms).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def duration(seconds: float) -> str:
    """A duration as people read it: seconds up to two minutes, minutes up to two hours, hours."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def parse_time(text: str, name: str, *, zone_required: bool = False) -> datetime:
    """A date or an ISO 8601 time; ``ValueError`` naming ``name`` if it is neither.

    Without a zone it is UTC, unless ``zone_required`` (a file of sends,
    where a zone left out is more likely a mistake than a choice).
    """
    try:
        # Python 3.10's fromisoformat does not read a trailing Z
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{name} {shown(text)} is not a date or an ISO 8601 time "
            "(2026-01-01, 2026-01-01T12:00Z)"
        ) from None
    if moment.tzinfo is not None:
        return moment
    if zone_required:
        raise ValueError(f"{name} {shown(text)} has no timezone (add Z or +00:00)")
    return moment.replace(tzinfo=timezone.utc)


def shown(text: str) -> str:
    """``text`` quoted for an error message, cut to its first 40 characters."""
    return repr(text) if len(text) <= _SHOWN else f"{text[:_SHOWN]!r}..."
