"""Tests for precedence policies: the design's tables, their keys and their validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deliverystate import Policy, Status
from deliverystate.rules import DELIVERY_WINS, FAILURE_WINS, Origin, Tie
from deliverystate.rules._time import MAX_TIMESTAMP_MS
from deliverystate.testing import instants_ms, statuses

from .oracle import DELIVERY_WINS_RANK, FAILURE_WINS_RANK, oracle_key

S = Status


@pytest.mark.parametrize(
    ("policy", "ranks"), [(DELIVERY_WINS, DELIVERY_WINS_RANK), (FAILURE_WINS, FAILURE_WINS_RANK)]
)
def test_ranks_match_design_table(policy: Policy, ranks: dict[int, int]) -> None:
    """Every report, Clickatell's or local, ranks where the design puts it among the others."""
    reports = [(s, o) for s in Status for o in Origin]
    for a, a_origin in reports:
        for b, b_origin in reports:
            mine = policy.rank(a, a_origin) - policy.rank(b, b_origin)
            spec = (
                oracle_key(int(a), 0, ranks, a_origin)[0]
                - oracle_key(int(b), 0, ranks, b_origin)[0]
            )
            assert (mine > 0) - (mine < 0) == (spec > 0) - (spec < 0), (a, a_origin, b, b_origin)


@settings(max_examples=500)
@given(statuses(), instants_ms(), statuses(), instants_ms())
def test_delivery_wins_orders_like_the_design(a: Status, ta: int, b: Status, tb: int) -> None:
    """Comparing packed keys gives the same order as the design's (rank, tie-break)."""
    packed = (DELIVERY_WINS.key(a, ta) > DELIVERY_WINS.key(b, tb)) - (
        DELIVERY_WINS.key(a, ta) < DELIVERY_WINS.key(b, tb)
    )
    spec = (oracle_key(a, ta) > oracle_key(b, tb)) - (oracle_key(a, ta) < oracle_key(b, tb))
    assert packed == spec


@settings(max_examples=500)
@given(statuses(), instants_ms(), statuses(), instants_ms())
def test_failure_wins_orders_like_the_design(a: Status, ta: int, b: Status, tb: int) -> None:
    """The failure-wins table orders reports as its design row says."""
    ka, kb = FAILURE_WINS.key(a, ta), FAILURE_WINS.key(b, tb)
    oa, ob = oracle_key(a, ta, FAILURE_WINS_RANK), oracle_key(b, tb, FAILURE_WINS_RANK)
    assert (ka > kb) == (oa > ob)
    assert (ka == kb) == (oa == ob)


def test_tie_breaks_inside_a_rank() -> None:
    """Failures: earliest then lower code; QUEUED/SCHEDULED: later then higher code."""
    key = DELIVERY_WINS.key
    assert key(S.EXPIRED, 1000) > key(S.DELIVERY_FAILURE, 2000)
    assert key(S.EXPIRED, 1000) > key(S.DELIVERY_FAILURE, 1000)
    assert key(S.QUEUED, 2000) > key(S.SCHEDULED, 1000)
    assert key(S.SCHEDULED, 1000) > key(S.QUEUED, 1000)
    assert key(S.READ, 1000) > key(S.READ, 2000)
    assert key(S.UNKNOWN, MAX_TIMESTAMP_MS) < key(S.QUEUED, 0)


@given(statuses(), st.integers(0, MAX_TIMESTAMP_MS), statuses(), st.integers(0, MAX_TIMESTAMP_MS))
def test_keys_are_distinct_for_distinct_reports(a: Status, ta: int, b: Status, tb: int) -> None:
    """Two reports share a key only when they have the same status and timestamp."""
    assert (DELIVERY_WINS.key(a, ta) == DELIVERY_WINS.key(b, tb)) == ((a, ta) == (b, tb))


def test_key_fits_a_signed_64_bit_column() -> None:
    """The greatest possible key fits in an SQL BIGINT."""
    largest = max(DELIVERY_WINS.key(s, t) for s in Status for t in (0, MAX_TIMESTAMP_MS))
    assert 0 <= largest < 2**63


def test_key_refuses_timestamps_out_of_range() -> None:
    """Timestamps before 1970 or beyond the packed range are a ValueError."""
    with pytest.raises(ValueError, match="outside"):
        DELIVERY_WINS.key(S.QUEUED, -1)
    with pytest.raises(ValueError, match="outside"):
        DELIVERY_WINS.key(S.QUEUED, MAX_TIMESTAMP_MS + 1)


def test_custom_policy_from_table() -> None:
    """A user table builds a policy whose ranks and ties are the ones given."""
    rest = [s for s in Status if s not in {S.READ, S.DEVICE_ACK}]
    custom = Policy.from_table(
        "ack is final",
        [(2, [S.DEVICE_ACK], Tie.EARLIEST), (1, [S.READ], Tie.EARLIEST), (0, rest, Tie.LATEST)],
    )
    assert custom.rank(S.DEVICE_ACK) == 2
    assert custom.key(S.DEVICE_ACK, 5000) > custom.key(S.READ, 1000)
    assert custom.key(S.EXPIRED, 2000) > custom.key(S.QUEUED, 1000)


def test_custom_policy_must_rank_every_status() -> None:
    """A table that leaves statuses out names them in the error."""
    with pytest.raises(ValueError, match=r"no rank for .*DEVICE_ACK"):
        Policy.from_table("partial", [(1, [S.READ], Tie.EARLIEST)])


def test_custom_policy_rejects_a_status_in_two_ranks() -> None:
    """A status given two ranks is refused."""
    everything = list(Status)
    with pytest.raises(ValueError, match="READ has ranks"):
        Policy.from_table("twice", [(1, everything, Tie.LATEST), (2, [S.READ], Tie.LATEST)])


def test_custom_policy_rejects_out_of_range_and_repeated_ranks() -> None:
    """Ranks outside 0..15, or a rank used twice, are refused."""
    with pytest.raises(ValueError, match="rank 16"):
        Policy.from_table("big", [(16, list(Status), Tie.LATEST)])
    half = len(Status) // 2
    with pytest.raises(ValueError, match="more than one row"):
        Policy.from_table(
            "repeat",
            [(1, list(Status)[:half], Tie.LATEST), (1, list(Status)[half:], Tie.EARLIEST)],
        )


@settings(max_examples=500)
@given(statuses(), st.integers(0, MAX_TIMESTAMP_MS), st.sampled_from([DELIVERY_WINS, FAILURE_WINS]))
def test_decode_inverts_key(status: Status, timestamp_ms: int, policy: Policy) -> None:
    """A key decodes back to the status and timestamp it was made from."""
    assert policy.decode(policy.key(status, timestamp_ms)) == (status, timestamp_ms)
