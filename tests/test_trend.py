"""Tests for delivery over time: which slot a message counts in, and what the slot says of it."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deliverystate import Status, StatusEvent, Tracker
from deliverystate.rules._time import datetime_from_ms
from deliverystate.stores import Milestones
from deliverystate.tracking import delivery_stats
from deliverystate.tracking._trend import delivery_trend

from .strategies import BASE_MS

MINUTE = 60_000


def m(
    name: str,
    first_min: float,
    delivered_s: float | None = None,
    channel: str | None = "sms",
    read_s: float | None = None,
) -> Milestones:
    """Milestones of a message first reported ``first_min`` minutes after the base time."""
    first = BASE_MS + int(first_min * MINUTE)
    return Milestones(
        name,
        first,
        None if delivered_s is None else first + int(delivered_s * 1000),
        None if read_s is None else first + int(read_s * 1000),
        channel,
    )


def test_messages_count_in_the_slot_of_their_first_report() -> None:
    """Three 10-minute slots: each message lands in its own, outside ones are left out."""
    trend = delivery_trend(
        [
            m("early", -1, 5),  # before the first slot
            m("a", 0, 4),  # first instant of slot 0
            m("b", 9.99, None),  # last instant of slot 0
            m("c", 10, 8, read_s=60),
            m("d", 25, 2, channel="whatsapp"),
            m("late", 30, 1),  # where the last slot ends: outside
        ],
        BASE_MS,
        10 * MINUTE,
        3,
    )
    sms = trend.channels["sms"]
    assert [(s.messages, s.delivered, s.read) for s in sms] == [(2, 1, 0), (1, 1, 1), (0, 0, 0)]
    assert sms[0].delivery_rate == 0.5
    assert sms[2].delivery_rate is None
    assert sms[0].to_delivery is not None
    assert sms[0].to_delivery.median_s == 4.0
    whatsapp = trend.channels["whatsapp"]
    assert [s.messages for s in whatsapp] == [0, 0, 1]
    assert [s.start_ms for s in whatsapp] == [BASE_MS, BASE_MS + 10 * MINUTE, BASE_MS + 20 * MINUTE]
    assert trend.end_ms == BASE_MS + 30 * MINUTE
    assert trend.peak == 2


def test_a_message_without_a_channel_counts_as_unknown() -> None:
    """Reports that never named a channel are charted apart, as the statistics name them."""
    trend = delivery_trend([m("x", 1, 3, channel=None)], BASE_MS, MINUTE * 5, 1)
    assert list(trend.channels) == ["unknown"]


@pytest.mark.parametrize(("step", "slots"), [(0, 3), (MINUTE, 0), (-MINUTE, 2)])
def test_slots_must_have_a_length_and_a_number(step: int, slots: int) -> None:
    """A zero or negative slot length or count is a mistake, refused by name."""
    with pytest.raises(ValueError, match="step_ms and slots must be positive"):
        delivery_trend([], BASE_MS, step, slots)


milestone_lists = st.lists(
    st.builds(
        m,
        st.text("abcdef", min_size=1, max_size=4),
        st.floats(-30, 150, allow_nan=False),
        st.none() | st.floats(0, 600, allow_nan=False),
        st.sampled_from(["sms", "whatsapp", None]),
    ),
    max_size=40,
)


@given(milestone_lists, st.integers(1, 30), st.integers(1, 12))
def test_slots_add_up_to_the_messages_inside_the_window(
    milestones: list[Milestones], step_min: int, slots: int
) -> None:
    """Summed over slots and channels, messages and deliveries are those first reported inside."""
    step = step_min * MINUTE
    trend = delivery_trend(milestones, BASE_MS, step, slots)
    inside = [x for x in milestones if BASE_MS <= x.first_ms < BASE_MS + step * slots]
    every = [s for channel in trend.channels.values() for s in channel]
    assert sum(s.messages for s in every) == len(inside)
    assert sum(s.delivered for s in every) == sum(x.delivered_ms is not None for x in inside)
    for channel, channel_slots in trend.channels.items():
        assert len(channel_slots) == slots
        for index, slot in enumerate(channel_slots):
            mine = [
                (x.delivered_ms - x.first_ms) / 1000
                for x in inside
                if (x.channel or "unknown") == channel
                and (x.first_ms - BASE_MS) // step == index
                and x.delivered_ms is not None
            ]
            assert (slot.to_delivery.median_s if slot.to_delivery else None) == (
                statistics.median(mine) if mine else None
            )


def test_the_trend_and_the_statistics_agree_on_a_tracked_window() -> None:
    """From one store's milestones, the chart's totals are the table's per-channel counts."""
    tracker = Tracker()
    for index in range(12):
        channel = "sms" if index % 2 else "whatsapp"
        at = BASE_MS + index * 7 * MINUTE
        events = [StatusEvent.from_ms(f"m{index}", Status.QUEUED, at, channel)]
        if index % 3:
            events.append(StatusEvent.from_ms(f"m{index}", Status.DEVICE_ACK, at + 9000, channel))
        tracker.apply_many(events)
    start = BASE_MS + 20 * MINUTE
    milestones = list(tracker.store.milestones(start))
    stats = delivery_stats(tracker.store, since=datetime_from_ms(start), milestones=milestones)
    trend = delivery_trend(milestones, start, 30 * MINUTE, 4)
    for channel, slots in trend.channels.items():
        assert sum(s.messages for s in slots) == stats.by_channel[channel].messages
        delivered = stats.by_channel[channel].time_to_delivery
        assert sum(s.delivered for s in slots) == (delivered.count if delivered else 0)
