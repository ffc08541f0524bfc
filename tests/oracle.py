"""An independent restatement of docs/design.md section 3, used as the tests' oracle.

It is written from the design document, not from ``deliverystate.policy``, so
that tests compare the library against the specification rather than against
itself.  Keys here are tuples; the library packs them into integers.
"""

from __future__ import annotations

from collections.abc import Iterable

from deliverystate import Status, StatusEvent
from deliverystate.rules import Origin

FAILURE_CODES = {20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 60, 61, 80, 81, 82, 83, 84, 100}
FAILURE_CODES |= {130, 131, 132, 133, 134}
# the codes Clickatell's current status table adds to the seed page's
FAILURE_CODES |= {85, 139, 140, 141}

# docs/design.md section 3, "delivery wins"
DELIVERY_WINS_RANK = {1: 0, 2: 1, 3: 1, 4: 2, 5: 4, 6: 5} | dict.fromkeys(FAILURE_CODES, 3)
# "failure wins": failures above READ
FAILURE_WINS_RANK = {1: 0, 2: 1, 3: 1, 4: 2, 5: 3, 6: 4} | dict.fromkeys(FAILURE_CODES, 5)
# Local reports (docs/design.md, "local reports"), in both built-in policies: a local
# EXPIRED ranks above SENT_TO_SUPPLIER and below every delivery and every failure
# Clickatell reports; a registration's QUEUED below Clickatell's QUEUED and above
# UNKNOWN.  Other statuses reported locally rank as Clickatell's.
LOCAL_RANK = {20: 2.5, 2: 0.5}
# ranks whose tie-break is "later timestamp wins, then higher code"
LATEST_RANKS = {1, 0.5}


def oracle_key(
    code: int,
    timestamp_ms: int,
    ranks: dict[int, int] = DELIVERY_WINS_RANK,
    origin: Origin = Origin.CLICKATELL,
) -> tuple[float, int, int]:
    """The precedence of a report as docs/design.md describes it; greater wins."""
    rank: float = ranks[code]
    if origin is Origin.LOCAL:
        rank = LOCAL_RANK.get(code, rank)
    if rank in LATEST_RANKS:
        return (rank, timestamp_ms, code)
    return (rank, -timestamp_ms, -code)


def expected_winner(
    events: Iterable[StatusEvent], ranks: dict[int, int] = DELIVERY_WINS_RANK
) -> tuple[Status, int]:
    """(status, timestamp_ms) of the report that should win among ``events``."""
    best = max(events, key=lambda e: oracle_key(int(e.status), e.timestamp_ms, ranks, e.origin))
    return best.status, best.timestamp_ms
