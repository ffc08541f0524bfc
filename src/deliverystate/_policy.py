"""Precedence policies: which of two reports about a message wins.

Theory of operation
-------------------
Callbacks are evidence, not commands.  Each event gets a *precedence key*
computed from its status and its provider timestamp, and a message's state is
the event with the greatest key seen so far.  Because "greatest" does not care
in which order the candidates were seen, the state is a pure function of the
*set* of callbacks: duplicates, reordering and sharding across workers cannot
change the answer.

A policy is a table of ranks.  Each rank holds some statuses and says how to
break a tie between two events of the same rank:

* ``Tie.EARLIEST``: the earlier timestamp wins, then the lower code (the first
  failure is the cause, later ones are echoes; the first READ dates the read);
* ``Tie.LATEST``: the later timestamp wins, then the higher code (a progress
  report supersedes an older one).

The key is packed into one integer so that stores can compare it where the
data lives (an SQL ``WHERE stored.key < new.key``)::

    key = rank << 52 | tie            tie: 44 bits of timestamp, 8 bits of code

With ``EARLIEST`` the timestamp and code bits are inverted.  The packing is a
bijection on (status, timestamp) within a policy, so equal keys mean the very
same report.  Timestamps are milliseconds since the Unix epoch and must lie in
``[0, 2**44)`` (up to the year 2527); codes are below 256.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping

import attrs

from ._catalog import FAILURES, Status

__all__ = [
    "DELIVERY_WINS",
    "FAILURE_WINS",
    "MAX_TIMESTAMP_MS",
    "Policy",
    "PolicyRow",
    "Tie",
]

_TIE_BITS = 52
_CODE_BITS = 8
_TS_BITS = _TIE_BITS - _CODE_BITS
#: Largest timestamp (ms since the epoch) a key can hold.
MAX_TIMESTAMP_MS = (1 << _TS_BITS) - 1
_MAX_CODE = (1 << _CODE_BITS) - 1
_MAX_RANK = 15


class Tie(enum.Enum):
    """How two events of the same rank are ordered."""

    EARLIEST = "earliest timestamp wins, then lower code"
    LATEST = "later timestamp wins, then higher code"


def _sorted_statuses(statuses: Iterable[Status]) -> tuple[Status, ...]:
    return tuple(sorted(statuses))


@attrs.frozen
class PolicyRow:
    """One rank of a policy table: its statuses and how ties inside it break."""

    rank: int
    statuses: tuple[Status, ...] = attrs.field(converter=_sorted_statuses)
    tie: Tie


def _check_rows(name: str, rows: tuple[PolicyRow, ...]) -> None:
    seen: dict[Status, int] = {}
    ranks = [row.rank for row in rows]
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"policy {name!r}: a rank appears in more than one row")
    for row in rows:
        if not 0 <= row.rank <= _MAX_RANK:
            raise ValueError(f"policy {name!r}: rank {row.rank} outside 0..{_MAX_RANK}")
        for status in row.statuses:
            if status in seen:
                raise ValueError(
                    f"policy {name!r}: {status.name} has ranks {seen[status]} and {row.rank}"
                )
            seen[status] = row.rank
    missing = sorted(s.name for s in Status if s not in seen)
    if missing:
        raise ValueError(f"policy {name!r}: no rank for {', '.join(missing)}")


@attrs.frozen
class Policy:
    """A precedence table; ``key(status, timestamp_ms)`` orders reports about a message.

    Build one with :meth:`from_table`; ``DELIVERY_WINS`` (the default) and
    ``FAILURE_WINS`` are ready-made.
    """

    name: str
    rows: tuple[PolicyRow, ...]
    # Compiled per status: key = offset[status] + scale[status] * timestamp_ms.
    offset: Mapping[Status, int] = attrs.field(init=False, repr=False, eq=False)
    scale: Mapping[Status, int] = attrs.field(init=False, repr=False, eq=False)
    _latest_ranks: frozenset[int] = attrs.field(init=False, repr=False, eq=False)
    #: A short digest of the table, so a store can tell which policy wrote its keys.
    fingerprint: str = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        _check_rows(self.name, self.rows)
        offset: dict[Status, int] = {}
        scale: dict[Status, int] = {}
        for row in self.rows:
            base = row.rank << _TIE_BITS
            for status in row.statuses:
                if row.tie is Tie.LATEST:
                    offset[status] = base + int(status)
                    scale[status] = 1 << _CODE_BITS
                else:
                    offset[status] = (
                        base + (MAX_TIMESTAMP_MS << _CODE_BITS) + _MAX_CODE - int(status)
                    )
                    scale[status] = -(1 << _CODE_BITS)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "scale", scale)
        latest = frozenset(row.rank for row in self.rows if row.tie is Tie.LATEST)
        object.__setattr__(self, "_latest_ranks", latest)
        text = ";".join(
            f"{row.rank}:{','.join(str(int(s)) for s in row.statuses)}:{row.tie.name}"
            for row in sorted(self.rows, key=lambda row: row.rank)
        )
        object.__setattr__(self, "fingerprint", hashlib.sha256(text.encode()).hexdigest()[:16])

    @classmethod
    def from_table(cls, name: str, table: Iterable[tuple[int, Iterable[Status], Tie]]) -> Policy:
        """Build a policy from ``(rank, statuses, tie)`` rows; every status needs one rank."""
        rows = tuple(PolicyRow(rank, tuple(statuses), tie) for rank, statuses, tie in table)
        return cls(name, tuple(sorted(rows, key=lambda row: -row.rank)))

    def rank(self, status: Status) -> int:
        """The rank of ``status`` in this policy."""
        return self.offset[status] >> _TIE_BITS

    def key(self, status: Status, timestamp_ms: int) -> int:
        """The precedence key of a report; greater keys win."""
        if not 0 <= timestamp_ms <= MAX_TIMESTAMP_MS:
            raise ValueError(f"timestamp {timestamp_ms} ms outside 0..{MAX_TIMESTAMP_MS}")
        return self.offset[status] + self.scale[status] * timestamp_ms

    def code_of(self, key: int) -> int:
        """The status code a key was made from (no Status is built: the feed's hot path)."""
        code = key & _MAX_CODE
        return code if key >> _TIE_BITS in self._latest_ranks else _MAX_CODE - code

    def decode(self, key: int) -> tuple[Status, int]:
        """The (status, timestamp_ms) a key was made from: keys are a bijection per policy."""
        tie = key & ((1 << _TIE_BITS) - 1)
        if key >> _TIE_BITS in self._latest_ranks:
            return Status.from_code(tie & _MAX_CODE), tie >> _CODE_BITS
        return Status.from_code(_MAX_CODE - (tie & _MAX_CODE)), MAX_TIMESTAMP_MS - (
            tie >> _CODE_BITS
        )


#: The default: delivery evidence beats any failure; the first failure is the cause.
DELIVERY_WINS = Policy.from_table(
    "delivery wins",
    [
        (5, [Status.READ], Tie.EARLIEST),
        (4, [Status.DEVICE_ACK], Tie.EARLIEST),
        (3, FAILURES, Tie.EARLIEST),
        (2, [Status.SENT_TO_SUPPLIER], Tie.EARLIEST),
        (1, [Status.QUEUED, Status.SCHEDULED], Tie.LATEST),
        (0, [Status.UNKNOWN], Tie.EARLIEST),
    ],
)

#: The alternative some teams choose: any terminal failure overrides even a READ.
FAILURE_WINS = Policy.from_table(
    "failure wins",
    [
        (5, FAILURES, Tie.EARLIEST),
        (4, [Status.READ], Tie.EARLIEST),
        (3, [Status.DEVICE_ACK], Tie.EARLIEST),
        (2, [Status.SENT_TO_SUPPLIER], Tie.EARLIEST),
        (1, [Status.QUEUED, Status.SCHEDULED], Tie.LATEST),
        (0, [Status.UNKNOWN], Tie.EARLIEST),
    ],
)
