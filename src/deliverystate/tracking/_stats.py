"""Delivery statistics of a store: what an operator asks after a campaign.

Counts come from the current states; latencies from each message's milestones
(``Store.milestones``: its first report, its first delivery, its first read,
which the SQL stores keep on the message row since schema version 6, so no
history is read), so they cover the messages the store still holds.  Rates
are shares of all tracked messages.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from ..rules._catalog import Category, Kind, Status
from ..rules._records import Milestones
from ..rules._time import iso, ms_from_datetime
from ..stores import Store

__all__ = [
    "UNKNOWN_CHANNEL",
    "ChannelStats",
    "DeliveryStats",
    "FeedStatus",
    "Latency",
    "delivery_stats",
    "feed_status",
]


@attrs.frozen
class Latency:
    """Median, 90th and 95th percentiles of a set of durations, in seconds."""

    count: int
    median_s: float
    p95_s: float
    p90_s: float = 0.0

    @classmethod
    def of(cls, seconds: list[float]) -> Latency | None:
        """The latency summary of ``seconds``, or None when there is nothing to summarise."""
        if not seconds:
            return None
        if len(seconds) == 1:
            return cls(1, seconds[0], seconds[0], seconds[0])
        cuts = statistics.quantiles(seconds, n=20, method="inclusive")
        return cls(len(seconds), statistics.median(seconds), cuts[-1], cuts[17])


@attrs.frozen
class ChannelStats:
    """One channel's messages: how many, by kind, and how fast they were delivered and read."""

    messages: int
    by_kind: Mapping[Kind, int]
    time_to_delivery: Latency | None
    time_to_read: Latency | None

    @property
    def delivery_rate(self) -> float | None:
        """Share of the channel's messages now DEVICE_ACK or READ."""
        return self.by_kind.get(Kind.DELIVERED, 0) / self.messages if self.messages else None

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "messages": self.messages,
            "in_progress": self.by_kind.get(Kind.PROGRESS, 0),
            "delivered": self.by_kind.get(Kind.DELIVERED, 0),
            "failed": self.by_kind.get(Kind.FAILURE, 0),
            "delivery_rate": self.delivery_rate,
            "time_to_delivery": _latency_json(self.time_to_delivery),
            "time_to_read": _latency_json(self.time_to_read),
        }


def _latency_json(value: Latency | None) -> dict[str, float] | None:
    return None if value is None else attrs.asdict(value)


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
    #: Callback bodies waiting in the dead letter.
    dead_letters: int = 0
    #: Per channel ("unknown" for messages whose reports never named one).
    by_channel: Mapping[str, ChannelStats] = attrs.field(factory=dict)
    #: Only messages first reported at or after this time (ms), when set.
    since_ms: int | None = None

    @property
    def by_kind(self) -> dict[Kind, int]:
        """Messages in progress, delivered and failed (DEVICE_ACK and READ are delivered,
        whatever section of Clickatell's catalog lists them in)."""
        kinds: Counter[Kind] = Counter()
        for status, count in self.by_status.items():
            kinds[status.kind] += count
        return dict(kinds)

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

        latency = _latency_json
        kinds = self.by_kind
        return {
            "messages": self.messages,
            "since": None if self.since_ms is None else iso(self.since_ms),
            "by_status": {s.name: n for s, n in sorted(self.by_status.items())},
            "by_kind": {
                "in_progress": kinds.get(Kind.PROGRESS, 0),
                "delivered": kinds.get(Kind.DELIVERED, 0),
                "failed": kinds.get(Kind.FAILURE, 0),
            },
            "by_catalog_section": {c.value: n for c, n in self.by_category.items()},
            "by_channel": {name: c.as_json() for name, c in sorted(self.by_channel.items())},
            "dead_letters": self.dead_letters,
            "delivered": self.delivered,
            "read": self.read,
            "delivery_rate": self.delivery_rate,
            "read_rate": self.read_rate,
            "time_to_delivery": latency(self.time_to_delivery),
            "time_to_read": latency(self.time_to_read),
            "overdue": self.overdue,
            "local_expiries": self.local_expiries,
        }


#: The name ``by_channel`` gives messages whose reports never named a channel.
UNKNOWN_CHANNEL = "unknown"


def _latencies(
    milestones: Iterable[Milestones],
) -> dict[str | None, tuple[list[float], list[float]]]:
    """Seconds to delivery and to read, per channel (None: every channel together)."""
    found: dict[str | None, tuple[list[float], list[float]]] = {None: ([], [])}
    for m in milestones:
        for key in (None, m.channel or UNKNOWN_CHANNEL):
            to_delivery, to_read = found.setdefault(key, ([], []))
            if m.delivered_ms is not None:
                to_delivery.append((m.delivered_ms - m.first_ms) / 1000)
            if m.read_ms is not None:
                to_read.append((m.read_ms - m.first_ms) / 1000)
    return found


def delivery_stats(
    store: Store,
    now: datetime | None = None,
    since: datetime | None = None,
    milestones: Iterable[Milestones] | None = None,
) -> DeliveryStats:
    """The statistics of what ``store`` tracks (first reported since ``since``, if given).

    Overdue is counted as of ``now`` (the clock by default), over every message.
    ``milestones`` are ``store.milestones(since)`` when the caller has already
    read them (the status page reads them once for these figures and its chart).
    """
    since_ms = None if since is None else ms_from_datetime(since)
    by_channel_status = store.count_by_channel(since_ms)
    by_status: Counter[Status] = Counter()
    by_category: Counter[Category] = Counter()
    channel_kinds: dict[str, Counter[Kind]] = {}
    for (channel, status), count in by_channel_status.items():
        by_status[status] += count
        by_category[status.category] += count
        channel_kinds.setdefault(channel or UNKNOWN_CHANNEL, Counter())[status.kind] += count
    latencies = _latencies(store.milestones(since_ms) if milestones is None else milestones)
    by_channel = {
        name: ChannelStats(
            sum(kinds.values()),
            dict(kinds),
            Latency.of(latencies.get(name, ([], []))[0]),
            Latency.of(latencies.get(name, ([], []))[1]),
        )
        for name, kinds in channel_kinds.items()
    }
    to_delivery, to_read = latencies[None]
    return DeliveryStats(
        sum(by_status.values()),
        dict(by_status),
        dict(by_category),
        sum(n for s, n in by_status.items() if s.is_delivered),
        by_status.get(Status.READ, 0),
        Latency.of(to_delivery),
        Latency.of(to_read),
        store.count_overdue(ms_from_datetime(now or datetime.now(timezone.utc))),
        store.count_local_expiries(),
        store.count_dead_letters(),
        by_channel,
        since_ms,
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
