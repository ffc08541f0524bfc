"""Tests specific to MemoryStore: its compact records and its policy."""

from __future__ import annotations

import pytest

from deliverystate import MemoryStore, Status, StatusEvent, Tracker
from deliverystate.errors import PolicyMismatch
from deliverystate.rules import DELIVERY_WINS, FAILURE_WINS
from deliverystate.testing import BASE_MS


def test_records_decode_to_the_states_applied() -> None:
    """What get() returns is the state the reports made, rebuilt from the compact record."""
    store = MemoryStore(history=False)
    Tracker(store).apply_many(
        [
            StatusEvent.from_ms("m", 2, BASE_MS, "sms", "c-1"),
            StatusEvent.from_ms("m", 5, BASE_MS + 7, "sms"),
        ]
    )
    state = store.get("m")
    assert state is not None
    assert (state.status, state.timestamp_ms, state.channel, state.client_message_id) == (
        Status.DEVICE_ACK,
        BASE_MS + 7,
        "sms",
        "c-1",
    )
    assert len(store) == 1


def test_a_store_refuses_a_second_policy() -> None:
    """Records made under delivery wins are not compared under failure wins."""
    store = MemoryStore()
    Tracker(store, DELIVERY_WINS).apply(StatusEvent.from_ms("m", 6, BASE_MS))
    with pytest.raises(PolicyMismatch, match="failure wins"):
        Tracker(store, FAILURE_WINS).apply(StatusEvent.from_ms("m", 20, BASE_MS + 1))
    assert store.get("m").status is Status.READ


def test_an_unused_store_is_empty() -> None:
    """Before any report the store answers None and empty counts."""
    store = MemoryStore()
    assert store.get("m") is None
    assert store.count_by_status() == {}
