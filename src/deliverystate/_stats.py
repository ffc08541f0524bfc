"""Delivery statistics of a store: what an operator asks after a campaign.

Counts come from the current states; latencies from the history (the first
report of a message, its first delivery, its first read), so they are only as
complete as the store's history.  Rates are shares of all tracked messages.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from ._catalog import Category, Status
from ._events import ms_from_datetime
from .stores import Milestones, Store

__all__ = ["DeliveryStats", "FeedStatus", "Latency", "delivery_stats", "feed_status"]


@attrs.frozen
class Latency:
    """Median and 95th percentile of a set of durations, in seconds."""

    count: int
    median_s: float
    p95_s: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latency | None:
        """The latency summary of ``seconds``, or None when there is nothing to summarise."""
        if not seconds:
            return None
        if len(seconds) == 1:
            return cls(1, seconds[0], seconds[0])
        p95 = statistics.quantiles(seconds, n=20, method="inclusive")[-1]
        return cls(len(seconds), statistics.median(seconds), p95)


@attrs.frozen
class DeliveryStats:
    """Counts by status and category, delivery and read rates, time to delivery and read."""

    messages: int
    by_status: Mapping[Status, int]
    by_category: Mapping[Category, int]
    delivered: int
    read: int
    time_to_delivery: Latency | None
    time_to_read: Latency | None
    #: Registered messages still in progress past their deadline (a sweep would expire them).
    overdue: int = 0
    #: Messages EXPIRED by a local report (a sweep), not by Clickatell.
    local_expiries: int = 0

    @property
    def delivery_rate(self) -> float | None:
        """Share of messages now DEVICE_ACK or READ."""
        return self.delivered / self.messages if self.messages else None

    @property
    def read_rate(self) -> float | None:
        """Share of messages now READ."""
        return self.read / self.messages if self.messages else None

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary (status and category names as keys)."""

        def latency(value: Latency | None) -> dict[str, float] | None:
            return None if value is None else attrs.asdict(value)

        return {
            "messages": self.messages,
            "by_status": {s.name: n for s, n in sorted(self.by_status.items())},
            "by_category": {c.value: n for c, n in self.by_category.items()},
            "delivered": self.delivered,
            "read": self.read,
            "delivery_rate": self.delivery_rate,
            "read_rate": self.read_rate,
            "time_to_delivery": latency(self.time_to_delivery),
            "time_to_read": latency(self.time_to_read),
            "overdue": self.overdue,
            "local_expiries": self.local_expiries,
        }


def _latencies(milestones: Iterable[Milestones]) -> tuple[list[float], list[float]]:
    to_delivery: list[float] = []
    to_read: list[float] = []
    for m in milestones:
        if m.delivered_ms is not None:
            to_delivery.append((m.delivered_ms - m.first_ms) / 1000)
        if m.read_ms is not None:
            to_read.append((m.read_ms - m.first_ms) / 1000)
    return to_delivery, to_read


def delivery_stats(store: Store, now: datetime | None = None) -> DeliveryStats:
    """Compute the statistics of everything ``store`` tracks; overdue as of ``now`` (the clock)."""
    by_status = dict(store.count_by_status())
    by_category: Counter[Category] = Counter()
    for status, count in by_status.items():
        by_category[status.category] += count
    delivered = sum(n for s, n in by_status.items() if s.is_delivered)
    to_delivery, to_read = _latencies(store.milestones())
    return DeliveryStats(
        sum(by_status.values()),
        by_status,
        dict(by_category),
        delivered,
        by_status.get(Status.READ, 0),
        Latency.of(to_delivery),
        Latency.of(to_read),
        store.count_overdue(ms_from_datetime(now or datetime.now(timezone.utc))),
        store.count_local_expiries(),
    )


@attrs.frozen
class FeedStatus:
    """Where the change feed and its named consumers are, and what could not be delivered."""

    #: The last ``seq`` the feed handed out.
    last_seq: int
    #: Each named consumer's position.
    consumers: Mapping[str, int]
    #: Per consumer, how many changes a forwarder gave up on (kept as undeliverable).
    undeliverable: Mapping[str, int]

    def behind(self, consumer: str) -> int:
        """How many seqs ``consumer`` still has to read."""
        return max(0, self.last_seq - self.consumers.get(consumer, 0))

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "last_seq": self.last_seq,
            "consumers": {
                name: {"position": position, "behind": self.behind(name)}
                for name, position in sorted(self.consumers.items())
            },
            "undeliverable": dict(sorted(self.undeliverable.items())),
        }


def feed_status(store: Store) -> FeedStatus:
    """The change feed's status in ``store``."""
    undeliverable = Counter(entry.consumer for entry in store.undeliverable())
    return FeedStatus(store.last_seq(), dict(store.cursors()), dict(undeliverable))
