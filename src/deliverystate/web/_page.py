"""The status page: a pure function from what the store said to one HTML document.

Server-rendered, every value escaped with :func:`html.escape`, no script and
nothing loaded from elsewhere (the app sends a strict Content-Security-Policy
with it).  The style is ``page.css`` beside this module, plus the colours of
the three kinds of status taken from ``_render.PALETTE``, so the page and the
diagrams share one legend.
"""

from __future__ import annotations

import functools
import html
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from importlib import resources
from urllib.parse import quote, urlencode

import attrs

from .._catalog import Status
from .._events import MessageState
from .._render import PALETTE, iso
from .._stats import FeedStatus
from ..diagrams import lifecycle_dot, lifecycle_mermaid, render_svg
from ..errors import GraphvizNotFound
from ..stores import HistoryEntry
from ._auth import TOKEN_PARAM

__all__ = ["PageData", "lifecycle_figure", "render_page"]

esc = html.escape


@attrs.frozen
class PageData:
    """Everything the page shows, read from the store before rendering."""

    #: The prefix the app is mounted under ("" at the root).
    root: str
    #: Whether a shared secret protects the receiver (the page warns when not).
    secret_set: bool
    #: The token to carry in links and the search form, when it came in the URL.
    token: str | None
    counts: Mapping[Status, int]
    #: (message id, its state or None) for the recently heard messages, newest first.
    recent: Sequence[tuple[str, MessageState | None]]
    #: The message id searched for, if any, and what was found for it.
    wanted: str | None = None
    found: tuple[MessageState, Sequence[HistoryEntry]] | None = None
    #: The change feed's consumers and what they could not deliver.
    feed: FeedStatus | None = None
    #: Registered messages past their deadline, and messages a sweep expired.
    overdue: int = 0
    local_expiries: int = 0


@functools.cache
def style() -> str:
    """The page's CSS: ``page.css`` and the kinds' colours from the palette."""
    base = resources.files(__package__).joinpath("page.css").read_text(encoding="utf-8")
    kinds = "".join(
        f".{kind.value} {{ background: {c.fill}; border-color: {c.stroke}; color: {c.text}; }}\n"
        f".bar.{kind.value} {{ background: {c.stroke}; }}\n"
        for kind, c in PALETTE.items()
    )
    return base + kinds


@functools.cache
def lifecycle_figure() -> str:
    """The lifecycle diagram: inline SVG, or mermaid text without Graphviz (drawn once)."""
    try:
        svg = render_svg(lifecycle_dot())
    except (GraphvizNotFound, subprocess.CalledProcessError, OSError):
        mermaid = esc(lifecycle_mermaid())
        return (
            '<p class="muted">Graphviz is not installed, so here is the diagram as mermaid '
            f"text.</p><pre>{mermaid}</pre>"
        )
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else f"<pre>{esc(lifecycle_mermaid())}</pre>"


def _badge(status: Status) -> str:
    return f'<span class="badge {status.kind.value}">{esc(status.name)}</span>'


def _link(data: PageData, message_id: str) -> str:
    query = {"message_id": message_id}
    if data.token is not None:
        query[TOKEN_PARAM] = data.token
    return esc(f"{data.root}/?{urlencode(query)}")


def _search_section(data: PageData) -> str:
    token = data.token
    hidden = f'<input type="hidden" name="{TOKEN_PARAM}" value="{esc(token)}">' if token else ""
    parts = [
        '<section id="search"><h2>Find a message</h2>',
        f'<form method="get" action="{esc(data.root)}/" role="search">{hidden}',
        '<input type="search" id="message_id" name="message_id" '
        f'placeholder="message id" value="{esc(data.wanted or "")}" aria-label="message id">',
        '<button type="submit">Search</button></form>',
    ]
    if data.wanted is not None:
        parts.append(_result(data))
    parts.append("</section>")
    return "".join(parts)


def _result(data: PageData) -> str:
    if data.found is None:
        return (
            f'<p id="result" class="not-found">No message <code>{esc(data.wanted or "")}</code> '
            "has been heard of.</p>"
        )
    state, timeline = data.found
    rows = "".join(
        f'<tr><td class="time">{esc(iso(e.event.timestamp_ms))}</td>'
        f"<td>{_badge(e.event.status)}</td>"
        f"<td>{esc(e.outcome.value)}</td><td>{esc(e.event.channel or '')}</td></tr>"
        for e in timeline
    )
    json_href = esc(f"{data.root}/messages/{quote(state.message_id, safe='')}")
    details = [f"since {esc(iso(state.timestamp_ms))} ({esc(state.status.description)})"]
    if state.channel:
        details.append(f"channel {esc(state.channel)}")
    if state.client_message_id:
        details.append(f"client id <code>{esc(state.client_message_id)}</code>")
    return (
        f'<div id="result" class="found"><p><code>{esc(state.message_id)}</code> is '
        f"{_badge(state.status)} {', '.join(details)}."
        f' <a href="{json_href}">As JSON</a></p>'
        "<table><thead><tr><th>provider time (UTC)</th><th>report</th><th>outcome</th>"
        f"<th>channel</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _counts_section(counts: Mapping[Status, int]) -> str:
    total = sum(counts.values())
    rows = "".join(
        f'<tr data-status="{esc(status.name)}"><td>{_badge(status)}</td>'
        f'<td class="num">{int(status)}</td>'
        f'<td class="num count">{counts[status]:,}</td>'
        f'<td class="share"><span class="bar {status.kind.value}" '
        f'style="width: {100 * counts[status] / max(total, 1):.1f}%"></span></td></tr>'
        for status in sorted(counts)
    )
    empty = "" if counts else '<p class="muted">No callback received yet.</p>'
    return (
        '<section id="counts"><h2>Messages by status</h2>'
        '<table><thead><tr><th>status</th><th class="num">code</th>'
        '<th class="num">messages</th><th class="share">share</th></tr></thead>'
        f"<tbody>{rows}</tbody>"
        f'<tfoot><tr><th>total</th><th></th><th class="num" id="total">{total:,}</th>'
        f"<th></th></tr></tfoot></table>{empty}</section>"
    )


def _deadlines_section(data: PageData) -> str:
    """Overdue registered messages and local expiries (only once there are any)."""
    if not (data.overdue or data.local_expiries):
        return ""
    return (
        '<section id="deadlines"><h2>Deadlines</h2><table><tbody>'
        "<tr><td>overdue: registered, past their deadline, nothing final heard</td>"
        f'<td class="num" id="overdue">{data.overdue:,}</td></tr>'
        "<tr><td>expired locally: a sweep closed them at their deadline</td>"
        f'<td class="num" id="local-expiries">{data.local_expiries:,}</td></tr>'
        "</tbody></table>"
        '<p class="muted"><code>deliverystate sweep</code> (or <code>serve --sweep-every '
        "60s</code>) expires the overdue ones; a delivery report that comes later still "
        "wins.</p></section>"
    )


def _recent_section(data: PageData) -> str:
    rows = "".join(
        f'<tr><td class="id"><a href="{_link(data, m)}">{esc(m)}</a></td>'
        f"<td>{_badge(s.status) if s else ''}</td>"
        f'<td class="time">{esc(iso(s.timestamp_ms)) if s else ""}</td></tr>'
        for m, s in data.recent
    )
    empty = (
        "" if data.recent else '<p class="muted">Nothing received since this process started.</p>'
    )
    return (
        '<section id="recent"><h2>Recent messages</h2>'
        '<p class="muted">Last heard by this process, newest first.</p>'
        "<table><thead><tr><th>message id</th><th>status</th><th>provider time (UTC)</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>{empty}</section>"
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
        '<table><thead><tr><th>consumer</th><th class="num">position</th>'
        '<th class="num">behind</th><th class="num">undeliverable</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def render_page(data: PageData, figure: str) -> str:
    """The whole status page for ``data``, with ``figure`` (trusted markup) as the lifecycle."""
    warning = (
        ""
        if data.secret_set
        else '<section class="warning"><strong>No shared secret is set.</strong> Anyone who '
        "can reach this server can post callbacks and read this page.</section>"
    )
    return "".join(
        [
            '<!doctype html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>deliverystate</title><style>{style()}</style></head><body>",
            "<header><h1>deliverystate</h1>",
            "<p>Clickatell delivery callbacks, reconciled</p></header><main>",
            warning,
            _undeliverable_warnings(data.feed),
            _search_section(data),
            _counts_section(data.counts),
            _deadlines_section(data),
            _recent_section(data),
            _feed_section(data.feed),
            '<section id="lifecycle"><h2>Lifecycle</h2>',
            f"<figure>{figure}</figure></section>",
            "</main></body></html>",
        ]
    )
