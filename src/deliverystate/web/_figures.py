"""The status page's delivery figures, read at most every few seconds per window.

They are the costly part of the page: one pass over every message first
reported in the window (``Store.milestones(since)``: the SQL stores read each
message's row, where its first delivery and first read are kept since schema
version 6, not its history), which at a million messages in the window is
seconds of work (``bench/scale.py`` times it).  A page left on auto-refresh in
several browsers would repeat that pass for each; the cache answers them all
from one read until it is ``ttl`` seconds old, or ten times as long as the
read took, whichever is longer, so that however the page is used, reading the
figures never takes more than a tenth of one core from the callbacks the same
process receives.  The page says when the figures were read.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import attrs

from ..rules._time import datetime_from_ms, ms_from_datetime
from ..stores import Store
from ..tracking._collector import collector_paused
from ..tracking._stats import DeliveryStats, delivery_stats
from ..tracking._trend import Trend, delivery_trend

__all__ = ["FIGURES_TTL_SECONDS", "FigureCache", "Figures", "read_figures"]

#: How long the figures of one window are reused, at least.
FIGURES_TTL_SECONDS = 10.0
#: ... and at least this many times as long as reading them took.
_COST_FACTOR = 10.0


@attrs.frozen
class Figures:
    """Delivery statistics and the chart's slots over one window, and when they were read."""

    stats: DeliveryStats
    trend: Trend
    as_of_ms: int


def read_figures(store: Store, now: datetime, slots: int, step: timedelta) -> Figures:
    """The figures of the ``slots`` whole slots of ``step`` that end at or after ``now``.

    Slots are aligned to multiples of ``step`` (whole hours for a day), so
    that refreshing the page moves the chart a slot at a time, not a little
    every time.
    """
    now_ms = ms_from_datetime(now)
    step_ms = int(step.total_seconds() * 1000)
    end_ms = math.ceil(now_ms / step_ms) * step_ms
    start_ms = end_ms - slots * step_ms
    with collector_paused():  # a million milestones: see ``_collector``
        milestones = list(store.milestones(start_ms))
        stats = delivery_stats(store, now, datetime_from_ms(start_ms), milestones)
        return Figures(stats, delivery_trend(milestones, start_ms, step_ms, slots), now_ms)


class FigureCache:
    """Figures per window, each reused for ``ttl`` seconds (thread-safe; one read at a time)."""

    def __init__(
        self,
        store: Store,
        windows: Mapping[str, tuple[int, timedelta]],
        ttl: float = FIGURES_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._windows = windows
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        #: per window: until when (clock) the figures are reused, and the figures
        self._kept: dict[str, tuple[float, Figures]] = {}

    def get(self, window: str, now: datetime) -> Figures:
        """The figures of ``window`` (a key of the windows): fresh, or kept while they may be."""
        with self._lock:
            kept = self._kept.get(window)
            if kept is not None and self._clock() < kept[0]:
                return kept[1]
            slots, step = self._windows[window]
            started = self._clock()
            figures = read_figures(self._store, now, slots, step)
            took = self._clock() - started
            self._kept[window] = (started + took + max(self._ttl, _COST_FACTOR * took), figures)
            return figures
