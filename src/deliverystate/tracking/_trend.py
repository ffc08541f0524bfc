"""Delivery over time: per channel and time slot, how many messages went out and how they did.

The status page draws this as its chart.  A message counts in the slot of its
first report (the moment it entered Clickatell's queue as far as we know), and
"delivered" and "read" are what has happened to it *so far*: the newest slots
are always still filling in, which the page says beside the chart.  The
figures come from the same milestones as ``delivery_stats``, so the chart and
the table beside it cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from ..rules._records import Milestones
from ._stats import UNKNOWN_CHANNEL, Latency

__all__ = ["Slot", "Trend", "delivery_trend"]


@attrs.frozen
class Slot:
    """The messages of one channel first reported in one time slot."""

    start_ms: int
    messages: int
    delivered: int
    read: int
    #: Time from first report to first delivery of the slot's delivered messages.
    to_delivery: Latency | None

    @property
    def delivery_rate(self) -> float | None:
        """Share of the slot's messages delivered so far (None for an empty slot)."""
        return self.delivered / self.messages if self.messages else None


@attrs.frozen
class Trend:
    """Equal time slots from ``start_ms`` (``step_ms`` each), per channel."""

    start_ms: int
    step_ms: int
    #: Per channel name, one slot per step, oldest first (every channel the same length).
    channels: Mapping[str, Sequence[Slot]]

    @property
    def end_ms(self) -> int:
        """Where the last slot ends."""
        length = len(next(iter(self.channels.values()), ()))
        return self.start_ms + self.step_ms * length

    @property
    def peak(self) -> int:
        """The most messages one slot holds, every channel together (0 when empty)."""
        totals = zip(*self.channels.values(), strict=True)
        return max((sum(s.messages for s in slot) for slot in totals), default=0)


def delivery_trend(
    milestones: Iterable[Milestones], start_ms: int, step_ms: int, slots: int
) -> Trend:
    """``slots`` slots of ``step_ms`` from ``start_ms``; messages outside them are left out."""
    if step_ms <= 0 or slots <= 0:
        raise ValueError(f"step_ms and slots must be positive, not {step_ms} and {slots}")
    found: dict[str, list[tuple[list[float], int, int]]] = {}
    for m in milestones:
        index = (m.first_ms - start_ms) // step_ms
        if not 0 <= index < slots:
            continue
        name = m.channel or UNKNOWN_CHANNEL
        channel = found.get(name)
        if channel is None:
            channel = found[name] = [([], 0, 0) for _ in range(slots)]
        to_delivery, count, read = channel[index]
        if m.delivered_ms is not None:
            to_delivery.append((m.delivered_ms - m.first_ms) / 1000)
        channel[index] = (to_delivery, count + 1, read + (m.read_ms is not None))
    return Trend(
        start_ms,
        step_ms,
        {
            name: tuple(
                Slot(start_ms + i * step_ms, count, len(times), read, Latency.of(times))
                for i, (times, count, read) in enumerate(channel)
            )
            for name, channel in sorted(found.items())
        },
    )
