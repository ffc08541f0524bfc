"""The lifecycle: which status may follow which, defined once with ``transitions``.

Theory of operation
-------------------
A message that a backend drives itself moves along a small graph::

    UNKNOWN ──► any other status
    SCHEDULED ──► QUEUED ──► SENT_TO_SUPPLIER ──► DEVICE_ACK ──► READ
    SCHEDULED, QUEUED, SENT_TO_SUPPLIER, UNKNOWN ──► any terminal non-delivery
    READ and every status from 20 up ──► nothing (terminal)

``EDGES`` below is that graph as plain data.  At import it is loaded into one
``transitions.Machine`` (states are the :class:`Status` members, one trigger
per destination status), the machine is validated (no exit from a terminal,
every status reachable from UNKNOWN) and then compiled into ``ALLOWED``, a
frozen lookup table.  The machine is what diagrams draw and what the tests
compare the table against; the hot path only ever reads the table, because a
``Machine`` or ``add_model`` per message costs about half a millisecond and
tens of KiB.

Callbacks are *not* checked against this graph: they are evidence, reconciled
by a precedence policy (see ``policy``).  Strict stepping (:func:`step`) is for
a backend that advances its own messages and wants misuse to be loud.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from transitions import Machine

from .catalog import Status

__all__ = [
    "ALLOWED",
    "EDGES",
    "MACHINE",
    "IllegalTransition",
    "build_machine",
    "implied_path",
    "is_allowed",
    "step",
    "trigger_for",
]

_PROGRESS_CHAIN = (
    Status.SCHEDULED,
    Status.QUEUED,
    Status.SENT_TO_SUPPLIER,
    Status.DEVICE_ACK,
    Status.READ,
)
_NON_DELIVERIES = tuple(s for s in Status if s.is_failure)
_CAN_FAIL = (Status.UNKNOWN, Status.SCHEDULED, Status.QUEUED, Status.SENT_TO_SUPPLIER)

#: The lifecycle graph as (source, destination) pairs: the one definition.
EDGES: tuple[tuple[Status, Status], ...] = (
    tuple((Status.UNKNOWN, dst) for dst in Status if dst is not Status.UNKNOWN)
    + tuple(itertools.pairwise(_PROGRESS_CHAIN))
    + tuple((src, dst) for src in _CAN_FAIL if src is not Status.UNKNOWN for dst in _NON_DELIVERIES)
)


class IllegalTransition(ValueError):
    """A strict step that the lifecycle does not allow; the state is left as it was."""

    def __init__(self, source: Status, destination: Status, message_id: str | None = None) -> None:
        where = f" for message {message_id!r}" if message_id is not None else ""
        super().__init__(
            f"illegal transition{where}: {source.name} -> {destination.name} "
            f"is not in the lifecycle"
        )
        self.source = source
        self.destination = destination
        self.message_id = message_id


def trigger_for(destination: Status) -> str:
    """The name of the machine trigger that moves a message to ``destination``."""
    return f"to_{destination.name}"


def build_machine(model: object | None = None) -> Machine:
    """Build a ``transitions`` machine from ``EDGES``.

    Only the import-time machine, tests and diagram export call this; never
    call it per message.
    """
    machine = Machine(
        model=model,
        states=list(Status),
        initial=Status.UNKNOWN,
        auto_transitions=False,
        ignore_invalid_triggers=False,
    )
    for src, dst in EDGES:
        machine.add_transition(trigger_for(dst), src, dst)
    return machine


def _compile(machine: Machine) -> Mapping[Status, frozenset[Status]]:
    """Read the allowed successors of each status back out of the machine."""
    table: dict[Status, frozenset[Status]] = {}
    for src in Status:
        table[src] = frozenset(
            Status[str(transition.dest)] for transition in machine.get_transitions(source=src)
        )
    return table


def _validate(table: Mapping[Status, frozenset[Status]]) -> None:
    """Refuse to import a lifecycle with exits from terminals or unreachable states."""
    leaks = {
        src.name: sorted(dst.name for dst in dsts)
        for src, dsts in table.items()
        if src.is_terminal and dsts
    }
    if leaks:
        raise RuntimeError(f"lifecycle has exits from terminal statuses: {leaks}")
    seen, frontier = {Status.UNKNOWN}, [Status.UNKNOWN]
    while frontier:
        for dst in table[frontier.pop()]:
            if dst not in seen:
                seen.add(dst)
                frontier.append(dst)
    unreachable = sorted(s.name for s in Status if s not in seen)
    if unreachable:
        raise RuntimeError(f"lifecycle statuses unreachable from UNKNOWN: {unreachable}")


#: The machine built once at import: used by diagrams and by the equivalence tests.
MACHINE: Machine = build_machine()

#: Compiled lookup table: status -> statuses that may directly follow it.
ALLOWED: Mapping[Status, frozenset[Status]] = _compile(MACHINE)
_validate(ALLOWED)


def _shortest_paths() -> Mapping[tuple[Status, Status], tuple[Status, ...]]:
    """For every reachable pair, the statuses strictly between them on a shortest path."""
    paths: dict[tuple[Status, Status], tuple[Status, ...]] = {}
    for src in Status:
        previous: dict[Status, Status] = {}
        frontier = [src]
        while frontier:
            nxt: list[Status] = []
            for node in frontier:
                for dst in sorted(ALLOWED[node]):
                    if dst not in previous and dst is not src:
                        previous[dst] = node
                        nxt.append(dst)
            frontier = nxt
        for dst, before in previous.items():
            between: list[Status] = []
            node = before
            while node is not src:
                between.append(node)
                node = previous[node]
            paths[(src, dst)] = tuple(reversed(between))
    return paths


_PATHS = _shortest_paths()


def is_allowed(source: Status, destination: Status) -> bool:
    """Whether the lifecycle lets ``destination`` directly follow ``source``."""
    return destination in ALLOWED[source]


def step(source: Status, destination: Status, message_id: str | None = None) -> Status:
    """Strictly step from ``source`` to ``destination``, or raise :class:`IllegalTransition`."""
    if destination not in ALLOWED[source]:
        raise IllegalTransition(source, destination, message_id)
    return destination


def implied_path(source: Status, destination: Status) -> tuple[Status, ...]:
    """The statuses a jump from ``source`` to ``destination`` skipped over.

    A READ while QUEUED implies SENT_TO_SUPPLIER and DEVICE_ACK happened; this
    returns them in lifecycle order.  Empty for a direct edge, for the same
    status, and when no lifecycle path leads there (a delivery overriding a
    failure under the precedence policy implies nothing).
    """
    return _PATHS.get((source, destination), ())
