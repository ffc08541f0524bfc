"""The status page: a pure function from what the store said to one HTML document.

Server-rendered like every page (see ``_html``): counts by status, each a
link to the filtered list; delivery by channel over a chosen window, with a
chart (``_chart``); the newest messages, deadlines, dead letters and the
change feed as the store holds them, so every worker's page shows the same;
a search box; and the lifecycle diagram.
"""

from __future__ import annotations

import functools
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from datetime import timedelta
from importlib import resources
from urllib.parse import quote

import attrs

from ..diagrams import lifecycle_dot, lifecycle_mermaid, render_svg
from ..errors import GraphvizNotFound
from ..rules._catalog import Kind, Origin, Status
from ..rules._events import MessageState
from ..rules._records import DeadLetter, HistoryEntry, Listed
from ..rules._time import duration, iso, ms_from_datetime
from ..tracking._stats import ChannelStats, DeliveryStats, FeedStatus, Latency
from ..tracking._trend import Trend
from ._chart import trend_figure
from ._html import Links, badge, choices_nav, document, esc, refresh_nav

__all__ = [
    "DEAD_LETTERS_SHOWN",
    "DEFAULT_WINDOW",
    "MESSAGE_HEADINGS",
    "WINDOWS",
    "PageData",
    "lifecycle_figure",
    "message_rows",
    "render_page",
    "source_of",
]

#: The windows the delivery section offers: name -> (slots, length of a slot), or None for
#: every message the store holds (``_figures.read_all_figures`` picks its slots).
WINDOWS: Mapping[str, tuple[int, timedelta] | None] = {
    "1h": (12, timedelta(minutes=5)),
    "24h": (24, timedelta(hours=1)),
    "7d": (28, timedelta(hours=6)),
    "30d": (30, timedelta(days=1)),
    "all": None,
}
DEFAULT_WINDOW = "24h"
#: How many dead letters the page lists (the newest; the CLI shows them all).
DEAD_LETTERS_SHOWN = 10


@attrs.frozen
class PageData:
    """Everything the page shows, read from the store before rendering."""

    #: Builds links under the app's prefix, carrying the token when it came in the URL.
    links: Links
    #: Whether a shared secret protects the receiver (the page warns when not).
    secret_set: bool
    counts: Mapping[Status, int]
    #: The newest messages in the store (by first report), newest first.
    recent: Sequence[Listed]
    #: What was searched for (a message id or a client message id), if anything, and the
    #: message found: by its id, or the one message with that client id.
    wanted: str | None = None
    found: tuple[MessageState, Sequence[HistoryEntry]] | None = None
    #: The messages whose client message id is ``wanted``, when it names several.
    matches: Sequence[Listed] = ()
    #: The change feed's consumers and what they could not deliver.
    feed: FeedStatus | None = None
    #: Registered messages past their deadline, and messages a sweep expired.
    overdue: int = 0
    local_expiries: int = 0
    #: How many bodies wait in the dead letter, and the newest of them.
    dead_letters: int = 0
    dead_letter_sample: Sequence[DeadLetter] = ()
    #: The delivery section's window (a key of ``WINDOWS``), its figures and its chart.
    window: str = DEFAULT_WINDOW
    stats: DeliveryStats | None = None
    trend: Trend | None = None
    #: The auto-refresh period in seconds, if on.
    refresh: int | None = None
    #: When the figures were read (ms since the epoch).
    as_of_ms: int = 0
    #: Why the request's parameters were refused (a 400), if they were: shown by the search.
    refused: str | None = None

    def params(self, **changes: str | None) -> list[tuple[str, str]]:
        """This page's own query parameters, with ``changes`` (None removes one)."""
        current: dict[str, str | None] = {
            "window": None if self.window == DEFAULT_WINDOW else self.window,
            "refresh": None if self.refresh is None else str(self.refresh),
        }
        current.update(changes)
        return [(k, v) for k, v in current.items() if v is not None]


@functools.cache
def lifecycle_figure() -> str:
    """The lifecycle diagram as inline SVG, drawn once.

    Drawn by Graphviz where it is installed; without it, the SVG the package
    ships (``lifecycle.svg``, the copy of ``diagrams/lifecycle.svg`` a test
    keeps equal): a support person should see a picture, never diagram text.
    """
    try:
        svg = render_svg(lifecycle_dot())
    except (GraphvizNotFound, subprocess.CalledProcessError, OSError):
        svg = resources.files(__package__).joinpath("lifecycle.svg").read_text(encoding="utf-8")
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else f"<pre>{esc(lifecycle_mermaid())}</pre>"


def _search_section(data: PageData) -> str:
    parts = [
        '<section id="search"><h2>Find a message</h2>',
        f'<form method="get" action="{esc(data.links.root)}/" role="search">',
        data.links.hidden_token(),
        '<input type="search" id="q" name="q" placeholder="message id or client id" '
        f'value="{esc(data.wanted or "")}" aria-label="message id or client message id">',
        '<button type="submit">Search</button></form>',
    ]
    if data.refused is not None:
        parts.append(f'<p id="result" class="error" role="alert">{esc(data.refused)}</p>')
    elif data.wanted is not None:
        parts.append(_result(data))
    parts.append("</section>")
    return "".join(parts)


def source_of(status: Status, origin: Origin) -> str:
    """Where a report came from, as support staff ask: the provider, or this side (and why).

    "provider": a callback, Clickatell's or another provider's (which one is
    not kept on a report yet); "local": a registered send or a sweep's expiry.
    """
    if origin is Origin.CLICKATELL:
        return "provider"
    if status is Status.EXPIRED:
        return "local: deadline sweep"
    return "local: send registered" if status is Status.QUEUED else "local"


def _result(data: PageData) -> str:
    if data.matches:
        return (
            f'<div id="result" class="matches"><p>{len(data.matches)} messages have the client '
            f"id <code>{esc(data.wanted or '')}</code>:</p>"
            f'<div class="scroll"><table>{MESSAGE_HEADINGS}<tbody>'
            f"{message_rows(data.links, data.matches)}</tbody></table></div>"
            f'<p><a href="{data.links.to("/list", [("client_message_id", data.wanted or "")])}">'
            "All of them in the list</a></p></div>"
        )
    if data.found is None:
        return (
            f'<p id="result" class="not-found">No message <code>{esc(data.wanted or "")}</code> '
            "has been heard of, by message id or client id.</p>"
        )
    state, timeline = data.found
    rows = "".join(
        f'<tr><td class="time">{esc(iso(e.event.timestamp_ms))}</td>'
        f"<td>{badge(e.event.status)}</td>"
        f"<td>{esc(e.outcome.value)}</td><td>{esc(e.event.channel or '')}</td>"
        f"<td>{esc(source_of(e.event.status, e.event.origin))}</td></tr>"
        for e in timeline
    )
    json_href = data.links.to(f"/messages/{quote(state.message_id, safe='')}")
    details = [f"since {esc(iso(state.timestamp_ms))} ({esc(state.status.description)})"]
    if state.channel:
        details.append(f"channel {esc(state.channel)}")
    if state.client_message_id:
        details.append(f"client id <code>{esc(state.client_message_id)}</code>")
    if state.origin is Origin.LOCAL:
        details.append(f"<strong>{esc(source_of(state.status, state.origin))}</strong>")
    return (
        f'<div id="result" class="found"><p><code>{esc(state.message_id)}</code> is '
        f"{badge(state.status)} {', '.join(details)}."
        f' <a href="{json_href}">As JSON</a></p>'
        '<div class="scroll"><table><thead><tr><th>provider time (UTC)</th><th>report</th>'
        f"<th>outcome</th><th>channel</th><th>from</th></tr></thead><tbody>{rows}</tbody></table>"
        "</div></div>"
    )


def _seconds(latency: Latency | None, median: bool) -> str:
    if latency is None:
        return "-"
    return duration(latency.median_s if median else latency.p90_s)


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _channel_row(name: str, stats: ChannelStats) -> str:
    delivered = stats.by_kind.get(Kind.DELIVERED, 0)
    failed = stats.by_kind.get(Kind.FAILURE, 0)
    read = stats.time_to_read.count if stats.time_to_read else 0
    cells = [
        f'<td class="num" data-label="messages">{stats.messages:,}</td>',
        f'<td class="num rate" data-label="delivered">{_share(delivered, stats.messages)}</td>',
        f'<td class="num" data-label="failed">{_share(failed, stats.messages)}</td>',
        f'<td class="num" data-label="read">{_share(read, stats.messages)}</td>',
        *(
            f'<td class="num" data-label="{what} p{50 if median else 90}">'
            f"{_seconds(latency, median)}</td>"
            for what, latency in (
                ("delivery", stats.time_to_delivery),
                ("read", stats.time_to_read),
            )
            for median in (True, False)
        ),
    ]
    return f'<tr data-channel="{esc(name)}"><th scope="row">{esc(name)}</th>{"".join(cells)}</tr>'


def _window_nav(data: PageData) -> str:
    options = [
        (name, "" if name == data.window else data.links.to("/", data.params(window=name)))
        for name in WINDOWS
    ]
    return choices_nav("windows", "window", "Last", options)


def _delivery_section(data: PageData) -> str:
    """Delivery and read rates and latencies per channel, and the chart, over the window."""
    stats = data.stats
    if stats is None:
        return ""
    rows = "".join(_channel_row(n, c) for n, c in sorted(stats.by_channel.items()))
    empty = "" if rows else '<p class="muted">No message was first reported in this window.</p>'
    which = (
        "Every message the store holds"
        if WINDOWS[data.window] is None
        else f"Messages first reported in the last {esc(data.window)}"
    )
    return (
        '<section id="delivery"><div class="heading"><h2>Delivery by channel</h2>'
        f"{_window_nav(data)}</div>"
        f'<p class="muted">{which}, as of '
        f"{esc(iso(data.as_of_ms))}. p50 and p90: the median and the 90th percentile of "
        "the time from the first report.</p>"
        '<div class="scroll"><table id="channels" class="stack"><thead><tr><th>channel</th>'
        '<th class="num">messages</th><th class="num">delivered</th><th class="num">failed</th>'
        '<th class="num">read</th><th class="num">delivery p50</th>'
        '<th class="num">delivery p90</th><th class="num">read p50</th>'
        '<th class="num">read p90</th>'
        f"</tr></thead><tbody>{rows}</tbody></table></div>{empty}"
        f"{_failures(data, stats)}"
        f"{'' if data.trend is None or not rows else trend_figure(data.trend)}</section>"
    )


def _failures(data: PageData, stats: DeliveryStats) -> str:
    """The window's failures by reason, most first, each a link to those messages."""
    failed = sorted(
        ((s, n) for s, n in stats.by_status.items() if s.is_failure and n),
        key=lambda item: (-item[1], int(item[0])),
    )
    if not failed:
        return '<p class="muted" id="no-failures">No message failed in this window.</p>'
    since = [] if stats.since_ms is None else [("since", iso(stats.since_ms))]
    total = sum(n for _, n in failed)
    rows = "".join(
        f'<tr data-status="{esc(status.name)}"><td class="lead"><a href="'
        f'{data.links.to("/list", [("status", status.name), *since])}">{badge(status)}</a></td>'
        f'<td class="lead">{esc(status.description)}</td>'
        f'<td class="num count" data-label="messages">{count:,}</td>'
        f'<td class="num" data-label="share">{count / total:.0%}</td></tr>'
        for status, count in failed
    )
    return (
        f'<h3>Why {total:,} failed</h3><div class="scroll"><table id="failures" class="stack">'
        "<thead><tr>"
        '<th>status</th><th>reason</th><th class="num">messages</th>'
        f'<th class="num">share</th></tr></thead><tbody>{rows}</tbody></table></div>'
    )


def _counts_section(data: PageData) -> str:
    counts = data.counts
    total = sum(counts.values())
    rows = "".join(
        f'<tr data-status="{esc(status.name)}"><td>'
        f'<a href="{data.links.to("/list", [("status", status.name)])}">{badge(status)}</a></td>'
        f'<td class="num">{int(status)}</td>'
        f'<td class="num count">{counts[status]:,}</td>'
        f'<td class="share"><span class="bar {status.kind.value}" '
        f'style="width: {100 * counts[status] / max(total, 1):.1f}%"></span></td></tr>'
        for status in sorted(counts)
    )
    empty = "" if counts else '<p class="muted">No callback received yet.</p>'
    return (
        '<section id="counts"><h2>Messages by status</h2>'
        '<p class="muted">Every message the store tracks; a status opens its list.</p>'
        '<table><thead><tr><th>status</th><th class="num">code</th>'
        '<th class="num">messages</th><th class="share">share</th></tr></thead>'
        f"<tbody>{rows}</tbody>"
        f'<tfoot><tr><th><a href="{data.links.to("/list")}">total</a></th><th></th>'
        f'<th class="num" id="total">{total:,}</th>'
        f"<th></th></tr></tfoot></table>{empty}</section>"
    )


def _deadlines_section(data: PageData) -> str:
    """Overdue registered messages and local expiries (only once there are any)."""
    if not (data.overdue or data.local_expiries):
        return ""
    overdue = data.links.to("/list", [("overdue", "1")])
    return (
        '<section id="deadlines"><h2>Deadlines</h2><table><tbody>'
        f'<tr><td><a href="{overdue}">overdue</a>: registered, past their deadline, '
        "nothing final heard</td>"
        f'<td class="num" id="overdue">{data.overdue:,}</td></tr>'
        "<tr><td>expired locally: a sweep closed them at their deadline</td>"
        f'<td class="num" id="local-expiries">{data.local_expiries:,}</td></tr>'
        "</tbody></table>"
        '<p class="muted"><code>deliverystate sweep</code> (or <code>serve --sweep-every '
        "60s</code>) expires the overdue ones; a delivery report that comes later still "
        "wins.</p></section>"
    )


def _listed_status(state: MessageState) -> str:
    """A listed message's status badge, marked when a local report (a sweep's expiry) set it."""
    if state.origin is Origin.LOCAL:
        return f'{badge(state.status)} <span class="muted local">(local)</span>'
    return badge(state.status)


def message_rows(data_links: Links, listed: Sequence[Listed]) -> str:
    """Table rows for listed messages: id (a link to its timeline), status, client id, times."""
    return "".join(
        f'<tr><td class="id"><a href="{data_links.to("/", [("message_id", m.state.message_id)])}">'
        f"{esc(m.state.message_id)}</a></td><td>{_listed_status(m.state)}</td>"
        f'<td class="id">{esc(m.state.client_message_id or "")}</td>'
        f"<td>{esc(m.state.channel or '')}</td>"
        f'<td class="time opt" title="{esc(iso(m.first_ms))}">{_short(m.first_ms)}</td>'
        f'<td class="time" title="{esc(iso(m.state.timestamp_ms))}">'
        f"{_short(m.state.timestamp_ms)}</td></tr>"
        for m in listed
    )


def _short(timestamp_ms: int) -> str:
    """A time to the second, as a list shows it (the cell's title holds the milliseconds)."""
    return esc(iso(timestamp_ms)[:19].replace("T", " "))


#: The heading of every message table (the first report's column gives way on a phone).
MESSAGE_HEADINGS = (
    "<thead><tr><th>message id</th><th>status</th><th>client id</th><th>channel</th>"
    '<th class="opt">first report (UTC)</th><th>status since (UTC)</th></tr></thead>'
)


def _recent_section(data: PageData) -> str:
    empty = "" if data.recent else '<p class="muted">The store holds no message yet.</p>'
    return (
        '<section id="recent"><div class="heading"><h2>Newest messages</h2>'
        f'<a href="{data.links.to("/list")}">All messages</a></div>'
        '<p class="muted">From the store, newest first report first.</p>'
        f'<div class="scroll"><table>{MESSAGE_HEADINGS}<tbody>'
        f"{message_rows(data.links, data.recent)}</tbody></table></div>{empty}</section>"
    )


def _dead_letter_section(data: PageData) -> str:
    """How many bodies wait in the dead letter, the newest of them, and what to do."""
    rows = "".join(
        f'<tr><td class="num">{letter.id}</td>'
        f'<td class="time">{_short(ms_from_datetime(letter.received_at))}</td>'
        f"<td>{esc(letter.error[:200])}</td>"
        f'<td><code class="body">{esc(letter.payload[:160])}'
        f"{'…' if len(letter.payload) > 160 else ''}</code></td></tr>"
        for letter in data.dead_letter_sample
    )
    if not data.dead_letters:
        return (
            '<section id="dead-letters"><h2>Dead letter</h2><p class="muted">'
            '<span id="dead-letter-count">0</span> bodies: every callback was read.</p></section>'
        )
    return (
        '<section id="dead-letters" class="attention"><h2>Dead letter</h2>'
        f'<p><strong id="dead-letter-count">{data.dead_letters:,}</strong> '
        "callback bodies could not be read and are kept as they came; the newest:</p>"
        '<div class="scroll"><table><thead><tr><th class="num">id</th><th>received (UTC)</th>'
        f"<th>why</th><th>body</th></tr></thead><tbody>{rows}</tbody></table></div>"
        '<p class="muted"><code>deliverystate dead-letter show ID</code> prints one whole; '
        "<code>deliverystate dead-letter retry</code> applies again those that parse now."
        "</p></section>"
    )


def _undeliverable_warnings(feed: FeedStatus | None) -> str:
    """One warning per consumer that could not deliver some changes."""
    if feed is None:
        return ""
    return "".join(
        f'<section class="warning undeliverable"><strong>{count:,} change(s) could not be '
        f"forwarded</strong> as <code>{esc(name)}</code>. They are kept: "
        f"<code>deliverystate forward --name {esc(shlex.quote(name))} --redeliver</code> "
        "sends them again.</section>"
        for name, count in sorted(feed.undeliverable.items())
    )


def _feed_section(feed: FeedStatus | None) -> str:
    """The change feed's consumers: position, how far behind, undeliverable (if any)."""
    if feed is None or not (feed.consumers or feed.undeliverable):
        return ""
    rows = "".join(
        f'<tr><td><code>{esc(name)}</code></td><td class="num">{feed.consumers.get(name, 0):,}</td>'
        f'<td class="num">{feed.behind(name):,}</td>'
        f'<td class="num">{feed.undeliverable.get(name, 0):,}</td></tr>'
        for name in sorted(set(feed.consumers) | set(feed.undeliverable))
    )
    return (
        '<section id="feed"><h2>Change feed</h2>'
        f'<p class="muted">Last change: seq {feed.last_seq:,}.</p>'
        '<div class="scroll"><table><thead><tr><th>consumer</th><th class="num">position</th>'
        '<th class="num">behind</th><th class="num">undeliverable</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def render_page(data: PageData, figure: str) -> str:
    """The whole status page for ``data``, with ``figure`` (trusted markup) as the lifecycle."""
    warning = (
        ""
        if data.secret_set
        else '<section class="warning"><strong>No shared secret is set.</strong> Anyone who '
        "can reach this server can post callbacks and read this page.</section>"
    )
    body = "".join(
        [
            warning,
            _undeliverable_warnings(data.feed),
            _search_section(data),
            _delivery_section(data),
            _counts_section(data),
            _deadlines_section(data),
            _recent_section(data),
            _dead_letter_section(data),
            _feed_section(data.feed),
            '<section id="lifecycle"><h2>Lifecycle</h2>',
            f"<figure>{figure}</figure></section>",
        ]
    )
    nav = refresh_nav(data.links, "/", data.params(), data.refresh)
    return document("deliverystate", body, refresh=data.refresh, nav=nav)
