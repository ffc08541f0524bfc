"""Tests for collector_paused: the collector is off inside, as found after, errors included."""

from __future__ import annotations

import gc
from datetime import datetime, timedelta, timezone

import pytest

from deliverystate import MemoryStore
from deliverystate.tracking._collector import collector_paused
from deliverystate.web._figures import read_figures


@pytest.fixture(autouse=True)
def _collector_back_on() -> object:
    """Whatever a test does, the collector is on again after it."""
    yield None
    gc.enable()


def test_off_inside_and_on_again_after_even_on_an_error() -> None:
    """Inside the block the collector is off; after it, on again, also when the block raises."""
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_turned_off_by_the_caller_stays_off() -> None:
    """A caller that turned the collector off finds it off after the block, not turned on."""
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


class Watched(MemoryStore):
    """A memory store noting whether the collector ran while its milestones were read."""

    def __init__(self) -> None:
        super().__init__()
        self.collecting: list[bool] = []

    def milestones(self, since_ms: int | None = None):  # type: ignore[no-untyped-def]
        self.collecting.append(gc.isenabled())
        return super().milestones(since_ms)


def test_the_status_page_figures_are_read_with_the_collector_off() -> None:
    """read_figures builds its milestones with the collector held off, and turns it back on."""
    gc.enable()
    store = Watched()
    read_figures(store, datetime(2026, 1, 1, tzinfo=timezone.utc), 24, timedelta(hours=1))
    assert store.collecting == [False]
    assert gc.isenabled()
