"""Tests for delivery statistics."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from deliverystate import Status, StatusEvent, Tracker
from deliverystate.rules import Category, Kind
from deliverystate.testing import BASE_MS
from deliverystate.tracking import Latency, delivery_stats

S = Status


def ev(message_id: str, status: Status, seconds: float, channel: str = "whatsapp") -> StatusEvent:
    """A report ``seconds`` after the base time."""
    return StatusEvent.from_ms(message_id, status, BASE_MS + int(seconds * 1000), channel)


def test_latency_of_nothing_is_none_and_of_one_value_is_that_value() -> None:
    """Empty samples have no latency; a single sample is its own median, p90 and p95."""
    assert Latency.of([]) is None
    assert Latency.of([4.0]) == Latency(1, 4.0, 4.0, 4.0)


def test_latency_percentiles() -> None:
    """Median and p95 of 1..100 seconds are 50.5 and about 95."""
    latency = Latency.of([float(n) for n in range(1, 101)])
    assert latency is not None
    assert latency.median_s == 50.5
    assert latency.p95_s == pytest.approx(95.05)


def test_stats_of_a_small_campaign() -> None:
    """Counts, rates and latencies of four hand-made messages."""
    tracker = Tracker()
    tracker.apply_many(
        [
            ev("a", S.QUEUED, 0),
            ev("a", S.DEVICE_ACK, 10),
            ev("a", S.READ, 70),
            ev("b", S.QUEUED, 0),
            ev("b", S.READ, 30),  # read without a delivery report: delivered by then
            ev("c", S.QUEUED, 0),
            ev("c", S.EXPIRED, 100),
            ev("d", S.SENT_TO_SUPPLIER, 5),
            ev("d", S.DEVICE_ACK, 25),
            ev("d", S.DEVICE_ACK, 10, "sms"),  # another channel: rejected, not evidence
        ]
    )
    stats = delivery_stats(tracker.store)
    assert stats.messages == 4
    assert stats.by_status == {S.READ: 2, S.EXPIRED: 1, S.DEVICE_ACK: 1}
    assert stats.by_category == {Category.PROGRESS: 3, Category.GENERIC: 1}
    assert (stats.delivered, stats.read) == (3, 2)
    assert stats.delivery_rate == 0.75
    assert stats.read_rate == 0.5
    assert stats.time_to_delivery is not None
    assert stats.time_to_delivery.count == 3
    assert stats.time_to_delivery.median_s == 20.0  # 10, 30 and 20 seconds
    assert stats.time_to_read is not None
    assert stats.time_to_read.count == 2
    assert stats.time_to_read.median_s == 50.0  # 70 and 30 seconds
    data = stats.as_json()
    assert data["by_status"] == {"READ": 2, "EXPIRED": 1, "DEVICE_ACK": 1}
    assert data["time_to_delivery"]["count"] == 3


def test_stats_of_an_empty_store() -> None:
    """An empty store has no rates and no latencies, and no division by zero."""
    stats = delivery_stats(Tracker().store)
    assert stats.messages == 0
    assert stats.delivery_rate is None
    assert stats.time_to_read is None


def test_kinds_channels_since_and_dead_letters() -> None:
    """Delivered is not "in progress"; counts and latency split by channel; --since narrows."""
    tracker = Tracker()
    tracker.apply_many(
        [
            ev("sms-1", S.QUEUED, 0, "sms"),
            ev("sms-1", S.DEVICE_ACK, 10, "sms"),
            ev("sms-2", S.SENT_TO_SUPPLIER, 0, "sms"),
            ev("wa-1", S.QUEUED, 100, "whatsapp"),
            ev("wa-1", S.READ, 160, "whatsapp"),
            ev("wa-2", S.DELIVERY_FAILURE, 200, "whatsapp"),
        ]
    )
    tracker.store.add_dead_letter("{broken", "not JSON")
    stats = delivery_stats(tracker.store)
    assert stats.by_kind == {Kind.PROGRESS: 1, Kind.DELIVERED: 2, Kind.FAILURE: 1}
    assert stats.dead_letters == 1
    sms, whatsapp = stats.by_channel["sms"], stats.by_channel["whatsapp"]
    assert (sms.messages, sms.by_kind) == (2, {Kind.DELIVERED: 1, Kind.PROGRESS: 1})
    assert (whatsapp.messages, whatsapp.delivery_rate) == (2, 0.5)
    assert sms.time_to_delivery is not None
    assert sms.time_to_delivery.median_s == 10.0
    assert whatsapp.time_to_read is not None
    assert whatsapp.time_to_read.median_s == 60.0
    since = datetime.fromtimestamp((BASE_MS + 100_000) / 1000, timezone.utc)
    recent = delivery_stats(tracker.store, since=since)
    assert recent.messages == 2
    assert set(recent.by_channel) == {"whatsapp"}
    data = recent.as_json()
    assert data["by_kind"] == {"in_progress": 0, "delivered": 1, "failed": 1}
    assert data["by_catalog_section"] == {"progress": 1, "generic": 1}
    assert data["since"] == "2026-01-01T00:01:40.000Z"


def test_latency_has_a_ninetieth_percentile() -> None:
    """p90 of 1..100 seconds is 90.1 s (inclusive method), between the median and p95."""
    latency = Latency.of([float(n) for n in range(1, 101)])
    assert latency is not None
    assert latency.p90_s == pytest.approx(90.1)
    assert latency.median_s < latency.p90_s < latency.p95_s
