"""The lifecycle: which status may follow which, defined once with ``transitions``.

Theory of operation
-------------------
A message that a backend drives itself moves along a small graph::

    UNKNOWN ──► any other status
    SCHEDULED ──► QUEUED ──► SENT_TO_SUPPLIER ──► DEVICE_ACK ──► READ
    SCHEDULED, QUEUED, SENT_TO_SUPPLIER, UNKNOWN ──► any terminal non-delivery
    READ and every status from 20 up ──► nothing (terminal)

``SUCCESSORS`` below is that graph as plain data, a literal table like h11's
transition dictionary; ``EDGES`` lists its pairs.  At import it is loaded into one
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

from collections.abc import Mapping

from transitions import Machine

from ..errors import IllegalTransition
from ._catalog import FAILURES, Status

__all__ = [
    "ALLOWED",
    "EDGES",
    "MACHINE",
    "SUCCESSORS",
    "build_machine",
    "implied_path",
    "is_allowed",
    "step",
    "trigger_for",
]

_S = Status

#: The lifecycle, written once: each status and the statuses that may directly follow it.
SUCCESSORS: Mapping[Status, tuple[Status, ...]] = {
    _S.UNKNOWN: tuple(s for s in Status if s is not _S.UNKNOWN),
    _S.SCHEDULED: (_S.QUEUED, *FAILURES),
    _S.QUEUED: (_S.SENT_TO_SUPPLIER, *FAILURES),
    _S.SENT_TO_SUPPLIER: (_S.DEVICE_ACK, *FAILURES),
    _S.DEVICE_ACK: (_S.READ,),
    _S.READ: (),
    **dict.fromkeys(FAILURES, ()),
}

#: The same graph as (source, destination) pairs, in code order.
EDGES: tuple[tuple[Status, Status], ...] = tuple(
    (source, destination) for source in Status for destination in sorted(SUCCESSORS[source])
)


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
