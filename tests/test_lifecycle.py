"""Tests for the lifecycle graph, its transitions machine and the compiled table."""

from __future__ import annotations

import itertools

import pytest
from transitions import MachineError

from deliverystate import Status
from deliverystate.errors import IllegalTransition
from deliverystate.rules import implied_path, is_allowed, step
from deliverystate.rules._lifecycle import ALLOWED, MACHINE, _validate, build_machine, trigger_for

S = Status
CHAIN = [S.SCHEDULED, S.QUEUED, S.SENT_TO_SUPPLIER, S.DEVICE_ACK, S.READ]


def design_allows(src: Status, dst: Status) -> bool:
    """docs/design.md section 2, restated independently of the library's EDGES."""
    if src is S.UNKNOWN:
        return dst is not S.UNKNOWN
    if int(src) >= 20 or src is S.READ:
        return False
    if src in CHAIN and dst in CHAIN and CHAIN.index(dst) == CHAIN.index(src) + 1:
        return True
    return src in {S.SCHEDULED, S.QUEUED, S.SENT_TO_SUPPLIER} and int(dst) >= 20


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(Status, Status)))
def test_is_allowed_matches_design(src: Status, dst: Status) -> None:
    """is_allowed answers the design's lifecycle for every (state, status) pair."""
    assert is_allowed(src, dst) == design_allows(src, dst)


class Model:
    """A bare model object for driving the transitions machine."""

    state: Status


def test_compiled_table_agrees_with_machine_on_every_pair() -> None:
    """Firing the machine's trigger succeeds exactly where the compiled table allows it."""
    model = Model()
    machine = build_machine(model)
    for src, dst in itertools.product(Status, Status):
        machine.set_state(src, model)
        trigger = getattr(model, trigger_for(dst), None)  # no edge ever enters UNKNOWN
        try:
            if trigger is None:
                raise MachineError("no trigger")
            trigger()
        except MachineError:
            fired = False
        else:
            fired = True
            assert model.state is dst
        assert fired == (dst in ALLOWED[src]), (src, dst)


def test_import_machine_has_one_state_per_status() -> None:
    """The import-time machine has exactly the catalog's statuses as states."""
    assert set(MACHINE.states) == {s.name for s in Status}


def test_terminals_have_no_exits() -> None:
    """READ and every status from 20 up allow nothing after them."""
    for status in Status:
        if status.is_terminal:
            assert not ALLOWED[status]


def test_step_returns_destination_when_allowed() -> None:
    """A legal strict step returns the new status."""
    assert step(S.QUEUED, S.SENT_TO_SUPPLIER) is S.SENT_TO_SUPPLIER


def test_step_raises_illegal_transition_with_fields() -> None:
    """An illegal strict step raises IllegalTransition, a ValueError naming both ends."""
    with pytest.raises(IllegalTransition) as caught:
        step(S.READ, S.EXPIRED, "m-1")
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.source, error.destination, error.message_id) == (S.READ, S.EXPIRED, "m-1")
    assert "READ -> EXPIRED" in str(error)
    assert "m-1" in str(error)


def test_implied_path_for_read_while_queued() -> None:
    """A READ while QUEUED implies SENT_TO_SUPPLIER and DEVICE_ACK, in order."""
    assert implied_path(S.QUEUED, S.READ) == (S.SENT_TO_SUPPLIER, S.DEVICE_ACK)
    assert implied_path(S.SCHEDULED, S.DEVICE_ACK) == (S.QUEUED, S.SENT_TO_SUPPLIER)


def test_implied_path_is_empty_for_direct_or_impossible_jumps() -> None:
    """Direct edges, same status and off-graph jumps imply nothing."""
    assert implied_path(S.QUEUED, S.SENT_TO_SUPPLIER) == ()
    assert implied_path(S.EXPIRED, S.DEVICE_ACK) == ()
    assert implied_path(S.READ, S.READ) == ()


def test_validation_refuses_exits_from_terminals() -> None:
    """A lifecycle with an exit from a terminal status is refused."""
    leaking = dict(ALLOWED)
    leaking[S.EXPIRED] = frozenset({S.DEVICE_ACK})
    with pytest.raises(RuntimeError, match="EXPIRED"):
        _validate(leaking)


def test_validation_refuses_unreachable_statuses() -> None:
    """A lifecycle where a status cannot be reached from UNKNOWN is refused."""
    cut = {src: frozenset(d for d in dsts if d is not S.READ) for src, dsts in ALLOWED.items()}
    with pytest.raises(RuntimeError, match="READ"):
        _validate(cut)
