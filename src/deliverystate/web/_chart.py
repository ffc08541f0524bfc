"""The status page's chart: delivery over time as inline SVG, drawn on the server.

Two panels share the time axis: the share of each channel's messages
delivered so far (a line per channel, 0 to 100 %, broken across slots that
sent nothing; each point's area grows with its slot's messages, so one
message does not weigh like eight hundred), and below it how many messages
were first reported in each slot (a bar per slot, stacked by channel).
Every point carries a ``<title>`` (the browser shows it on hover) with the
slot's figures, and the same figures follow as a table in a ``<details>``
for screen readers and for copying.  No script, nothing loaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..rules._time import datetime_from_ms, duration, iso
from ..tracking._trend import Slot, Trend
from ._html import esc

__all__ = ["CHANNEL_COLOURS", "trend_figure"]

#: Line and bar colours per channel (anything else is drawn grey).
CHANNEL_COLOURS = {"sms": "#3538cd", "whatsapp": "#079455"}
_OTHER = "#667085"
_WIDTH, _LEFT, _RIGHT = 640, 56, 12
_RATE_TOP, _RATE_HEIGHT = 12, 120
_BARS_TOP, _BARS_HEIGHT = 156, 44
_HEIGHT = 226


def _colour(channel: str) -> str:
    return CHANNEL_COLOURS.get(channel, _OTHER)


def _label(ms: int, step_ms: int) -> str:
    return datetime_from_ms(ms).strftime("%H:%M" if step_ms < 86_400_000 // 2 else "%m-%d")


def _describe(channel: str, slot: Slot, step_ms: int) -> str:
    rate = "no messages" if slot.delivery_rate is None else f"{slot.delivery_rate:.0%} delivered"
    latency = (
        ""
        if slot.to_delivery is None
        else f", median {duration(slot.to_delivery.median_s)}, "
        f"p90 {duration(slot.to_delivery.p90_s)} to delivery"
    )
    return (
        f"{channel}, {iso(slot.start_ms)} + {duration(step_ms / 1000)}: "
        f"{slot.messages:,} messages, {rate}{latency}"
    )


def _x(trend: Trend, index: float) -> float:
    slots = len(next(iter(trend.channels.values())))
    return _LEFT + (_WIDTH - _LEFT - _RIGHT) * (index + 0.5) / slots


def _rate_panel(trend: Trend) -> list[str]:
    parts = []
    for percent in (0, 50, 100):
        y = _RATE_TOP + _RATE_HEIGHT * (1 - percent / 100)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{percent}%</text>"
        )
    peak = max((s.messages for slots in trend.channels.values() for s in slots), default=1)
    for channel, slots in trend.channels.items():
        colour = _colour(channel)
        for run in _runs(slots):  # a line through slots that sent something, broken by gaps
            if len(run) > 1:
                path = " ".join(f"{_x(trend, i):.1f},{_rate_y(slots[i]):.1f}" for i in run)
                parts.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>'
                )
        parts.extend(
            f'<circle class="point" data-channel="{esc(channel)}" data-messages="{s.messages}" '
            f'cx="{_x(trend, i):.1f}" cy="{_rate_y(s):.1f}" r="{_radius(s.messages, peak):.1f}" '
            f'fill="{colour}"><title>{esc(_describe(channel, s, trend.step_ms))}</title></circle>'
            for i, s in enumerate(slots)
            if s.messages
        )
    return parts


def _rate_y(slot: Slot) -> float:
    return _RATE_TOP + _RATE_HEIGHT * (1 - (slot.delivery_rate or 0.0))


def _radius(messages: int, peak: int) -> float:
    """A point's radius: its area grows with its slot's messages (1.5 to 6 px)."""
    return 1.5 + 4.5 * math.sqrt(messages / max(peak, 1))


def _runs(slots: Sequence[Slot]) -> list[list[int]]:
    """The indices of consecutive slots that hold messages, run by run."""
    runs: list[list[int]] = [[]]
    for index, slot in enumerate(slots):
        if slot.messages:
            runs[-1].append(index)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _bars_panel(trend: Trend) -> list[str]:
    peak = max(trend.peak, 1)
    slots = len(next(iter(trend.channels.values())))
    width = (_WIDTH - _LEFT - _RIGHT) / slots * 0.7
    parts = [
        f'<text class="axis" x="{_LEFT - 6}" y="{_BARS_TOP + 14}" text-anchor="end">{peak:,}</text>'
    ]
    for index in range(slots):
        bottom = float(_BARS_TOP + _BARS_HEIGHT)
        for channel, channel_slots in trend.channels.items():
            count = channel_slots[index].messages
            if not count:
                continue
            height = _BARS_HEIGHT * count / peak
            bottom -= height
            parts.append(
                f'<rect x="{_x(trend, index) - width / 2:.1f}" y="{bottom:.1f}" '
                f'width="{width:.1f}" height="{height:.1f}" fill="{_colour(channel)}" '
                f'opacity="0.55"><title>{esc(channel)}: {count:,} messages</title></rect>'
            )
    ticks = range(0, slots, max(1, slots // 6))
    parts.extend(
        f'<text class="axis" x="{_x(trend, i):.1f}" y="{_HEIGHT - 8}" text-anchor="middle">'
        f"{esc(_label(trend.start_ms + i * trend.step_ms, trend.step_ms))}</text>"
        for i in ticks
    )
    return parts


def _figures_table(trend: Trend) -> str:
    rows = []
    for channel, slots in trend.channels.items():
        for slot in slots:
            if not slot.messages:
                continue
            rate = "" if slot.delivery_rate is None else f"{slot.delivery_rate:.1%}"
            median = "" if slot.to_delivery is None else duration(slot.to_delivery.median_s)
            rows.append(
                f'<tr><td class="time">{esc(iso(slot.start_ms))}</td><td>{esc(channel)}</td>'
                f'<td class="num">{slot.messages:,}</td><td class="num">{rate}</td>'
                f'<td class="num">{median}</td></tr>'
            )
    return (
        '<details><summary>The figures behind the chart</summary><div class="scroll"><table>'
        "<thead><tr><th>slot start (UTC)</th><th>channel</th><th class=num>messages</th>"
        "<th class=num>delivered</th><th class=num>median to delivery</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></details>"
    )


def _legend(channels: Sequence[str]) -> str:
    return "".join(
        f'<span class="key"><span class="swatch" style="background: {_colour(c)}"></span>'
        f"{esc(c)}</span>"
        for c in channels
    )


def trend_figure(trend: Trend) -> str:
    """The chart, its legend and its figures as HTML (an empty note when there is nothing)."""
    if not trend.channels or trend.peak == 0:
        return '<p class="muted" id="trend-empty">No message was first reported in this window.</p>'
    title = (
        f"Share delivered and messages per {duration(trend.step_ms / 1000)}, "
        f"{iso(trend.start_ms)} to {iso(trend.end_ms)}"
    )
    svg = "".join(
        [
            f'<svg id="trend" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
            f'aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg">',
            f"<title>{esc(title)}</title>",
            *_rate_panel(trend),
            *_bars_panel(trend),
            "</svg>",
        ]
    )
    return (
        f'<figure class="chart">{svg}<figcaption>{_legend(list(trend.channels))}'
        "<span class=muted>line: share delivered so far, broken where nothing was sent; a "
        "point's size and the bars: messages first reported (recent slots are still filling "
        "in)</span></figcaption></figure>" + _figures_table(trend)
    )
