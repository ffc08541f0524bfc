"""``GET /list``: the message list as a page, with the same filters and cursors as ``/messages``.

The status page's links land here (a status, "overdue", "all messages"); the
filter form above the table sends the same parameters ``GET /messages``
reads (``_listing``), so a list seen here is one click from its JSON, and a
bad filter is shown on the page above the form instead of as a JSON error.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from ..rules._catalog import CHANNELS, Status
from ..rules._records import Listed
from ..tracking._listing import encode_cursor
from ._html import Links, document, esc, refresh_nav
from ._page import MESSAGE_HEADINGS, message_rows

__all__ = ["ListPage", "render_list"]


@attrs.frozen
class ListPage:
    """What the list page shows: the request's parameters, and its page or what was wrong."""

    links: Links
    #: The query parameters as they came (the token left out), in order.
    params: Sequence[tuple[str, str]]
    found: Sequence[Listed] = ()
    limit: int = 50
    error: str | None = None
    refresh: int | None = None

    def value(self, name: str) -> str:
        """The first value of a parameter ("" when it is missing)."""
        return next((v for k, v in self.params if k == name), "")

    def without(self, *names: str) -> list[tuple[str, str]]:
        """The parameters, less ``names``."""
        return [(k, v) for k, v in self.params if k not in names]


def _select(name: str, label: str, options: Sequence[str], current: str) -> str:
    choices = "".join(
        f'<option value="{esc(o)}"{" selected" if o.lower() == current.lower() else ""}>'
        f"{esc(o or 'any')}</option>"
        for o in ("", *options)
    )
    return f'<label>{esc(label)} <select name="{name}">{choices}</select></label>'


def _checkbox(name: str, label: str, checked: bool) -> str:
    mark = " checked" if checked else ""
    box = f'<input type="checkbox" name="{name}" value="1"{mark}>'
    return f'<label class="check">{box} {label}</label>'


def _filters(page: ListPage) -> str:
    statuses = [s.name for s in sorted(Status)]
    return "".join(
        [
            '<form id="filters" class="filters" method="get" '
            f'action="{esc(page.links.root)}/list">',
            page.links.hidden_token(),
            _select("status", "status", statuses, page.value("status")),
            _select("channel", "channel", list(CHANNELS), page.value("channel")),
            _checkbox("failed", "failed", page.value("failed") == "1"),
            _checkbox("overdue", "overdue", page.value("overdue") == "1"),
            '<label>since <input type="text" name="since" placeholder="2026-12-01" '
            f'value="{esc(page.value("since"))}" size="12"></label>',
            '<label>until <input type="text" name="until" placeholder="2026-12-02T12:00Z" '
            f'value="{esc(page.value("until"))}" size="12"></label>',
            '<button type="submit">Filter</button></form>',
        ]
    )


def _pager(page: ListPage) -> str:
    links = []
    if page.value("cursor"):
        links.append(f'<a href="{page.links.to("/list", page.without("cursor"))}">First page</a>')
    if len(page.found) == page.limit:
        after = [*page.without("cursor"), ("cursor", encode_cursor(page.found[-1]))]
        href = page.links.to("/list", after)
        links.append(f'<a id="next" rel="next" href="{href}">Next page</a>')
    as_json = page.links.to("/messages", page.without("refresh"))
    links.append(f'<a href="{as_json}">As JSON</a>')
    return f'<nav class="pager">{" · ".join(links)}</nav>'


def render_list(page: ListPage) -> str:
    """The list page: the filter form, then the messages (or what was wrong with the filters)."""
    if page.error is not None:
        result = f'<p class="error" role="alert" id="list-error">{esc(page.error)}</p>'
    elif not page.found:
        result = '<p class="muted" id="list-empty">No message matches these filters.</p>'
    else:
        result = (
            f'<p class="muted">{len(page.found):,} messages on this page, newest first report '
            f'first.</p><div class="scroll"><table id="list">{MESSAGE_HEADINGS}<tbody>'
            f"{message_rows(page.links, page.found)}</tbody></table></div>{_pager(page)}"
        )
    body = (
        f'<section id="messages"><div class="heading"><h2>Messages</h2>'
        f'<a href="{page.links.to("/")}">Status page</a></div>'
        f"{_filters(page)}{result}</section>"
    )
    nav = refresh_nav(page.links, "/list", list(page.params), page.refresh)
    return document("deliverystate: messages", body, refresh=page.refresh, nav=nav)
