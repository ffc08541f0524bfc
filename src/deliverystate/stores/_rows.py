"""How the SQL stores write things down: bodies as bytes, a message's reports as one blob.

Theory of operation
-------------------
Two encodings live here, shared by SQLite and PostgreSQL:

* **Bodies** (inbox, dead letter) are kept as UTF-8 bytes, lone surrogates and
  NULs included, because text columns refuse some strings (PostgreSQL refuses
  NUL; every driver refuses a lone surrogate) and a body the store cannot keep
  must not be lost.
* **A message's reports**: every history row a message has is named in its
  message row, as a blob of big-endian 64-bit pairs (fingerprint, arrival).
  The fingerprint (``timestamp_ms << 8 | code``, complemented for a local
  report: see ``reconcile.fingerprint``) is what duplicate detection
  needs; the arrival is the history row's key.  So recognising a repeat and
  finding a message's history read the one row the batch locks anyway, and
  the history table needs no index but its arrival key: it is appended to in
  arrival order, and a batch dirties a few pages at its end instead of one
  random page of a unique index per report (measured at a million tracked
  messages, that index was half the pages every commit wrote).  PostgreSQL's
  ``int8send`` writes the same big-endian bytes, so a migration can build the
  blob in SQL.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..rules._catalog import Origin, Status
from ..rules._events import MessageState, StatusEvent
from ..rules._reconcile import fingerprint_time
from ._columns import (
    LOCKED,
    STATE,
    STATE_CHANNEL,
    STATE_CLIENT_MESSAGE_ID,
    STATE_DEADLINE_MS,
    STATE_LOCAL,
    STATE_MESSAGE_ID,
    STATE_STATUS,
    STATE_TIMESTAMP_MS,
    column_list,
)

__all__ = [
    "HISTORY_COLUMNS",
    "LOCKED_COLUMNS",
    "MILESTONE_REPORTS",
    "STATE_COLUMNS",
    "digest",
    "event_from_row",
    "fingerprints",
    "pack_flat",
    "pack_reports",
    "payload_bytes",
    "payload_str",
    "report_arrivals",
    "report_times",
    "state_from_row",
    "storable_text",
]

_PAIR = struct.Struct(">qq")


#: The columns :func:`state_from_row` reads, in its order (``_columns.STATE``).
STATE_COLUMNS = column_list(STATE)
#: The columns a batch reads of the rows it locks (``_columns.LOCKED``): a state first.
LOCKED_COLUMNS = column_list(LOCKED)


def state_from_row(row: tuple[Any, ...]) -> MessageState:
    """A state from the :data:`STATE_COLUMNS` a row starts with (a locked row's do too)."""
    return MessageState(
        row[STATE_MESSAGE_ID],
        Status.from_code(row[STATE_STATUS]),
        row[STATE_TIMESTAMP_MS],
        row[STATE_CHANNEL],
        row[STATE_CLIENT_MESSAGE_ID],
        Origin.LOCAL if row[STATE_LOCAL] else Origin.CLICKATELL,
        row[STATE_DEADLINE_MS],
    )


#: The history rows that are milestones (``Milestones``): accepted DEVICE_ACK and READ
#: reports, as the version 6 migrations read them.
MILESTONE_REPORTS = (
    "SELECT message_id, status, timestamp_ms FROM ds_history "
    f"WHERE status IN ({int(Status.DEVICE_ACK)}, {int(Status.READ)}) AND outcome <> 'rejected'"
)


#: The history columns :func:`event_from_row` reads; outcome and arrival follow the event's.
HISTORY_COLUMNS = (
    "message_id, status, timestamp_ms, channel, client_message_id, outcome, arrival, local"
)


def event_from_row(row: tuple[Any, ...]) -> StatusEvent:
    """A report from the :data:`HISTORY_COLUMNS` of a history row."""
    origin = Origin.LOCAL if row[7] else Origin.CLICKATELL
    return StatusEvent.from_ms(row[0], row[1], row[2], row[3], row[4], origin)


def pack_reports(pairs: Iterable[tuple[int, int]]) -> bytes:
    """(fingerprint, arrival) pairs as a reports blob."""
    return b"".join(_PAIR.pack(fp, arrival) for fp, arrival in pairs)


def pack_flat(values: Sequence[int], start: int = 0) -> bytes:
    """``values[start:]``, fingerprints and arrivals in turn, as a reports blob.

    What :func:`pack_reports` makes of the same pairs, by one ``struct`` call:
    a batch's writes pack one blob per message they touch.
    """
    count = len(values) - start
    pack = _PACKS.get(count)
    if pack is None:
        pack = struct.Struct(f">{count}q").pack
        if len(_PACKS) < 256:  # a long-lived store meets few lengths
            _PACKS[count] = pack
    return pack(*values[start:]) if start else pack(*values)


_PACKS: dict[int, Callable[..., bytes]] = {}


def _pairs(blob: bytes | memoryview | None) -> Iterable[tuple[int, int]]:
    return _PAIR.iter_unpack(bytes(blob)) if blob else ()


def fingerprints(blob: bytes | memoryview | None) -> set[int]:
    """The fingerprints of the reports a blob names."""
    return {fp for fp, _ in _pairs(blob)}


def report_times(blob: bytes | memoryview | None) -> list[int]:
    """The event times (ms) of the reports a blob names (a local report's is complemented)."""
    return [fingerprint_time(fp) for fp, _ in _pairs(blob)]


def report_arrivals(blob: bytes | memoryview | None) -> list[int]:
    """The history rows (arrival numbers) a blob names, in the order they were written."""
    return [arrival for _, arrival in _pairs(blob)]


def digest(payload: str) -> str:
    """The identity of a dead-letter payload, so the same body is kept once."""
    return hashlib.sha256(payload_bytes(payload)).hexdigest()


def payload_bytes(payload: str) -> bytes:
    """A body as the bytes a store keeps: UTF-8, lone surrogates and NULs included."""
    return payload.encode("utf-8", "surrogatepass")


def payload_str(value: Any) -> str:
    """A kept body back as text (rows written before schema version 2 are text already)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "surrogatepass")
    return str(value)


def storable_text(text: str) -> str:
    """An error message fit for a text column: NULs and lone surrogates escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
