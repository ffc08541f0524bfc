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

A row may be for *local* reports (``Origin.LOCAL``): the sends a backend
registers and the expiries a sweep gives overdue messages.  They are guesses
made on this side, not Clickatell's evidence, so the built-in policies rank a
local EXPIRED below every delivery and every failure Clickatell reports and
above the progress statuses (any real outcome replaces a local expiry, and
nothing but a real outcome does), and a registration's QUEUED below
Clickatell's own QUEUED.  A status with no local row ranks its local reports
with Clickatell's.

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

from ._catalog import FAILURES, Origin, Status
from ._time import MAX_TIMESTAMP_MS, TIMESTAMP_BITS

__all__ = [
    "DELIVERY_WINS",
    "FAILURE_WINS",
    "PREVIOUS_TABLES",
    "Policy",
    "PolicyRow",
    "Tie",
]

_CODE_BITS = 8
_TS_BITS = TIMESTAMP_BITS
_TIE_BITS = _TS_BITS + _CODE_BITS
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
    """One rank of a policy table: its statuses, how ties inside it break, whose reports."""

    rank: int
    statuses: tuple[Status, ...] = attrs.field(converter=_sorted_statuses)
    tie: Tie
    origin: Origin = Origin.CLICKATELL


def _check_rows(name: str, rows: tuple[PolicyRow, ...]) -> None:
    seen: dict[tuple[Status, Origin], int] = {}
    ranks = [row.rank for row in rows]
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"policy {name!r}: a rank appears in more than one row")
    for row in rows:
        if not 0 <= row.rank <= _MAX_RANK:
            raise ValueError(f"policy {name!r}: rank {row.rank} outside 0..{_MAX_RANK}")
        for status in row.statuses:
            if (status, row.origin) in seen:
                raise ValueError(
                    f"policy {name!r}: {row.origin.value} {status.name} has ranks "
                    f"{seen[status, row.origin]} and {row.rank}"
                )
            seen[status, row.origin] = row.rank
    seen_statuses = {status for status, origin in seen if origin is Origin.CLICKATELL}
    missing = sorted(s.name for s in Status if s not in seen_statuses)
    if missing:
        raise ValueError(f"policy {name!r}: no rank for {', '.join(missing)}")


@attrs.frozen
class Policy:
    """A precedence table; ``key(status, timestamp_ms, origin)`` orders reports about a message.

    Build one with :meth:`from_table`; ``DELIVERY_WINS`` (the default) and
    ``FAILURE_WINS`` are ready-made.
    """

    name: str
    rows: tuple[PolicyRow, ...]
    # Compiled per status: key = offset[status] + scale[status] * timestamp_ms; for a
    # local report, local_offset and local_scale where the status has a local row.
    offset: Mapping[Status, int] = attrs.field(init=False, repr=False, eq=False)
    scale: Mapping[Status, int] = attrs.field(init=False, repr=False, eq=False)
    local_offset: Mapping[Status, int] = attrs.field(init=False, repr=False, eq=False)
    local_scale: Mapping[Status, int] = attrs.field(init=False, repr=False, eq=False)
    _latest_ranks: frozenset[int] = attrs.field(init=False, repr=False, eq=False)
    _local_ranks: frozenset[int] = attrs.field(init=False, repr=False, eq=False)
    #: A short digest of the table, so a store can tell which policy wrote its keys.
    fingerprint: str = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        _check_rows(self.name, self.rows)
        offset: dict[Status, int] = {}
        scale: dict[Status, int] = {}
        local_offset: dict[Status, int] = {}
        local_scale: dict[Status, int] = {}
        for row in self.rows:
            base = row.rank << _TIE_BITS
            local = row.origin is Origin.LOCAL
            offsets, scales = (local_offset, local_scale) if local else (offset, scale)
            for status in row.statuses:
                if row.tie is Tie.LATEST:
                    offsets[status] = base + int(status)
                    scales[status] = 1 << _CODE_BITS
                else:
                    offsets[status] = (
                        base + (MAX_TIMESTAMP_MS << _CODE_BITS) + _MAX_CODE - int(status)
                    )
                    scales[status] = -(1 << _CODE_BITS)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "local_offset", local_offset)
        object.__setattr__(self, "local_scale", local_scale)
        latest = frozenset(row.rank for row in self.rows if row.tie is Tie.LATEST)
        object.__setattr__(self, "_latest_ranks", latest)
        local_ranks = frozenset(row.rank for row in self.rows if row.origin is Origin.LOCAL)
        object.__setattr__(self, "_local_ranks", local_ranks)
        # a table without local rows keeps the digest it had before local rows existed
        text = ";".join(
            f"{row.rank}:{','.join(str(int(s)) for s in row.statuses)}:{row.tie.name}"
            + (":LOCAL" if row.origin is Origin.LOCAL else "")
            for row in sorted(self.rows, key=lambda row: row.rank)
        )
        object.__setattr__(self, "fingerprint", hashlib.sha256(text.encode()).hexdigest()[:16])

    @classmethod
    def from_table(
        cls,
        name: str,
        table: Iterable[
            tuple[int, Iterable[Status], Tie] | tuple[int, Iterable[Status], Tie, Origin]
        ],
    ) -> Policy:
        """Build a policy from ``(rank, statuses, tie[, origin])`` rows.

        Every status needs one rank for Clickatell's reports; a row with
        ``Origin.LOCAL`` ranks local reports of its statuses apart.
        """
        rows = tuple(PolicyRow(row[0], tuple(row[1]), row[2], *row[3:]) for row in table)
        return cls(name, tuple(sorted(rows, key=lambda row: -row.rank)))

    def rank(self, status: Status, origin: Origin = Origin.CLICKATELL) -> int:
        """The rank of a report of ``status`` from ``origin`` in this policy."""
        return self._offset(status, origin) >> _TIE_BITS

    def _offset(self, status: Status, origin: Origin) -> int:
        if origin is Origin.LOCAL and status in self.local_offset:
            return self.local_offset[status]
        return self.offset[status]

    def ranks_apart(self, status: Status, origin: Origin) -> Origin:
        """``origin`` if this policy tells a report of ``status`` from it apart, else CLICKATELL.

        A local report of a status with no local row is ranked (and, once it
        wins, remembered) as Clickatell's would be.
        """
        if origin is Origin.LOCAL and status in self.local_offset:
            return Origin.LOCAL
        return Origin.CLICKATELL

    def key(self, status: Status, timestamp_ms: int, origin: Origin = Origin.CLICKATELL) -> int:
        """The precedence key of a report; greater keys win."""
        if not 0 <= timestamp_ms <= MAX_TIMESTAMP_MS:
            raise ValueError(f"timestamp {timestamp_ms} ms outside 0..{MAX_TIMESTAMP_MS}")
        if origin is Origin.LOCAL and status in self.local_offset:
            return self.local_offset[status] + self.local_scale[status] * timestamp_ms
        return self.offset[status] + self.scale[status] * timestamp_ms

    def origin_of(self, key: int) -> Origin:
        """Whether a key was made from a local report this policy ranks apart."""
        return Origin.LOCAL if key >> _TIE_BITS in self._local_ranks else Origin.CLICKATELL

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


_LOCAL = Origin.LOCAL

#: The default: delivery evidence beats any failure; the first failure is the cause.
DELIVERY_WINS = Policy.from_table(
    "delivery wins",
    [
        (7, [Status.READ], Tie.EARLIEST),
        (6, [Status.DEVICE_ACK], Tie.EARLIEST),
        (5, FAILURES, Tie.EARLIEST),
        (4, [Status.EXPIRED], Tie.EARLIEST, _LOCAL),
        (3, [Status.SENT_TO_SUPPLIER], Tie.EARLIEST),
        (2, [Status.QUEUED, Status.SCHEDULED], Tie.LATEST),
        (1, [Status.QUEUED], Tie.LATEST, _LOCAL),
        (0, [Status.UNKNOWN], Tie.EARLIEST),
    ],
)

#: The alternative some teams choose: any terminal failure Clickatell reports overrides
#: even a READ.  A local expiry still yields to delivery: it is a guess, not a failure.
FAILURE_WINS = Policy.from_table(
    "failure wins",
    [
        (7, FAILURES, Tie.EARLIEST),
        (6, [Status.READ], Tie.EARLIEST),
        (5, [Status.DEVICE_ACK], Tie.EARLIEST),
        (4, [Status.EXPIRED], Tie.EARLIEST, _LOCAL),
        (3, [Status.SENT_TO_SUPPLIER], Tie.EARLIEST),
        (2, [Status.QUEUED, Status.SCHEDULED], Tie.LATEST),
        (1, [Status.QUEUED], Tie.LATEST, _LOCAL),
        (0, [Status.UNKNOWN], Tie.EARLIEST),
    ],
)

#: The built-in tables as they were before local reports (schema version 4 and
#: earlier): a store written under one of them is re-keyed when it is migrated.
PREVIOUS_TABLES: Mapping[str, Policy] = {
    policy.name: Policy.from_table(
        policy.name,
        [
            (rank, row.statuses, row.tie)
            for rank, row in enumerate(
                sorted(
                    (row for row in policy.rows if row.origin is Origin.CLICKATELL),
                    key=lambda row: row.rank,
                )
            )
        ],
    )
    for policy in (DELIVERY_WINS, FAILURE_WINS)
}
