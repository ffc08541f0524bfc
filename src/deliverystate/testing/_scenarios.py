"""Deadline scenarios: registrations, callbacks and sweeps about a few messages, in any order.

A scenario's items are ``("register", Send)``, ``("callback", StatusEvent)``
or ``("sweep", now_ms)``; its *now* comes after every report, deadline and
sweep it draws.  Whatever the order of its items, a sweep at now after them
must leave the states of the reference: every registration and callback,
then one sweep at now (see ``deliverystate.tracking._deadlines``).
"""

from __future__ import annotations

import uuid
from typing import Any

import attrs
from hypothesis import strategies as st

from ..rules._catalog import CHANNELS
from ..rules._events import StatusEvent
from ..rules._policy import Policy
from ..rules._time import datetime_from_ms
from ..stores import MemoryStore
from ..tracking._deadlines import Send
from ..tracking._tracker import Tracker
from ._strategies import BASE_MS, events, instants_ms

__all__ = [
    "SCENARIO_NOW_MS",
    "Item",
    "deadline_scenarios",
    "renamed",
    "replay",
    "scenario_ids",
    "settled",
]

#: The "now" of a deadline scenario: after every report and deadline it draws.
SCENARIO_NOW_MS = BASE_MS + 20_000
#: One step of a scenario: ("register", Send), ("callback", StatusEvent) or ("sweep", ms).
Item = tuple[str, Any]


@st.composite
def deadline_scenarios(draw: st.DrawFn) -> tuple[list[Item], int]:
    """Registrations, callbacks and sweeps about a few messages, in one drawn order, and now.

    Messages get zero to two registrations (their deadlines may differ) and
    channel-consistent callbacks; deadlines fall among the callbacks' times so
    that sweeps race with real evidence.
    """
    ids = draw(
        st.lists(
            st.sampled_from([f"msg-{i}" for i in range(4)]), min_size=1, max_size=4, unique=True
        )
    )
    items: list[Item] = []
    for message_id in ids:
        channel = draw(st.sampled_from(CHANNELS))
        client = draw(st.sampled_from([None, f"client-{message_id}"]))
        for _ in range(draw(st.integers(0, 2))):
            sent_ms = draw(instants_ms())
            deadline_ms = sent_ms + draw(st.integers(0, 8)) * 1000
            sent, deadline = datetime_from_ms(sent_ms), datetime_from_ms(deadline_ms)
            items.append(("register", Send(message_id, channel, sent, client, deadline)))
        for _ in range(draw(st.integers(0, 4))):
            items.append(("callback", draw(events([message_id], channel))))
    for _ in range(draw(st.integers(0, 3))):
        items.append(("sweep", draw(st.integers(BASE_MS, SCENARIO_NOW_MS))))
    return list(draw(st.permutations(items))), SCENARIO_NOW_MS


def replay(items: list[Item], tracker: Tracker) -> None:
    """Run a scenario's registrations, callbacks and sweeps in the order given."""
    for kind, item in items:
        if kind == "register":
            tracker.register_many([item])
        elif kind == "callback":
            tracker.apply(item)
        else:
            tracker.sweep(datetime_from_ms(item))


def settled(items: list[Item], now_ms: int, policy: Policy) -> Tracker:
    """The reference: every registration and callback (sweeps dropped), then one sweep at now."""
    tracker = Tracker(MemoryStore(), policy)
    tracker.register_many([item for kind, item in items if kind == "register"])
    tracker.apply_many([item for kind, item in items if kind == "callback"])
    tracker.sweep(datetime_from_ms(now_ms))
    return tracker


def renamed(items: list[Item]) -> list[Item]:
    """The same scenario about messages no other scenario names, so scenarios share a store."""
    prefix = uuid.uuid4().hex[:8] + "-"
    out: list[Item] = []
    for kind, item in items:
        if kind == "register":
            out.append((kind, attrs.evolve(item, message_id=prefix + item.message_id)))
        elif kind == "callback":
            event = StatusEvent.from_ms(
                prefix + item.message_id,
                item.status,
                item.timestamp_ms,
                item.channel,
                item.client_message_id,
            )
            out.append((kind, event))
        else:
            out.append((kind, item))
    return out


def scenario_ids(items: list[Item]) -> set[str]:
    """The messages a scenario is about."""
    return {item.message_id for kind, item in items if kind != "sweep"}
