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

__all__ = [
    "ALL_SLOTS",
    "FIGURES_TTL_SECONDS",
    "FigureCache",
    "Figures",
    "read_all_figures",
    "read_figures",
]

#: How long the figures of one window are reused, at least.
FIGURES_TTL_SECONDS = 10.0
#: ... and at least this many times as long as reading them took.
_COST_FACTOR = 10.0
#: The "all" window's chart: at most this many slots, each of the first of these steps that
#: spans the store's messages (so a simulation dated months ago still shows as a chart).
ALL_SLOTS = 30
_ALL_STEPS_MS = tuple(hours * 3_600_000 for hours in (1, 6, 24, 7 * 24, 30 * 24, 365 * 24))


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


def read_all_figures(store: Store, now: datetime) -> Figures:
    """The figures of every message the store holds, charted over as many slots as they span."""
    now_ms = ms_from_datetime(now)
    with collector_paused():
        milestones = list(store.milestones(None))
        firsts = [m.first_ms for m in milestones] or [now_ms]
        first_ms, end_ms = min(firsts), max(now_ms, *firsts) + 1
        span_ms = end_ms - first_ms
        step_ms = next(
            (ms for ms in _ALL_STEPS_MS if ms * ALL_SLOTS >= span_ms), -(-span_ms // ALL_SLOTS)
        )
        start_ms = first_ms // step_ms * step_ms
        slots = max(1, -(-(end_ms - start_ms) // step_ms))
        stats = delivery_stats(store, now, None, milestones)
        return Figures(stats, delivery_trend(milestones, start_ms, step_ms, slots), now_ms)


class FigureCache:
    """Figures per window, each reused for ``ttl`` seconds (thread-safe; one read at a time)."""

    def __init__(
        self,
        store: Store,
        windows: Mapping[str, tuple[int, timedelta] | None],
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
            spec = self._windows[window]
            started = self._clock()
            if spec is None:  # every message the store holds
                figures = read_all_figures(self._store, now)
            else:
                figures = read_figures(self._store, now, *spec)
            took = self._clock() - started
            self._kept[window] = (started + took + max(self._ttl, _COST_FACTOR * took), figures)
            return figures
