"""The HTML pages' common parts: the document shell, links that keep the token, badges, sign-in.

Every page is server-rendered with each value escaped by :func:`html.escape`,
runs no script and loads nothing from elsewhere (the app sends a strict
Content-Security-Policy with it).  The style is ``page.css`` beside this
module plus the colours of the three kinds of status from
``diagrams.PALETTE``, so the pages and the diagrams share one legend.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable
from importlib import resources
from urllib.parse import urlencode

import attrs

from ..diagrams import PALETTE
from ..rules._catalog import Status
from ._auth import TOKEN_PARAM

__all__ = [
    "REFRESH_CHOICES",
    "Links",
    "badge",
    "choices_nav",
    "document",
    "esc",
    "read_refresh",
    "refresh_nav",
    "sign_in_page",
]

esc = html.escape

#: Auto-refresh periods the pages offer, in seconds (None: off).
REFRESH_CHOICES: tuple[int | None, ...] = (None, 10, 60)


@functools.cache
def style() -> str:
    """The pages' CSS: ``page.css`` and the kinds' colours from the palette."""
    base = resources.files(__package__).joinpath("page.css").read_text(encoding="utf-8")
    kinds = "".join(
        f".{kind.value} {{ background: {c.fill}; border-color: {c.stroke}; color: {c.text}; }}\n"
        f".bar.{kind.value} {{ background: {c.stroke}; }}\n"
        for kind, c in PALETTE.items()
    )
    return base + kinds


def badge(status: Status) -> str:
    """A status as a coloured pill: the colour says in progress, delivered or failed."""
    return f'<span class="badge {status.kind.value}">{esc(status.name)}</span>'


@attrs.frozen
class Links:
    """Builds the pages' links under the app's prefix, carrying the token when it came in the URL.

    A token sent as a header or Basic credentials resends itself; one typed
    into the sign-in form arrives in the query string and is lost on the next
    click unless every link carries it on.
    """

    root: str
    token: str | None = None

    def to(self, path: str, params: Iterable[tuple[str, str]] = ()) -> str:
        """The escaped ``href`` of ``path`` (relative to the app) with ``params``."""
        query = [(k, v) for k, v in params if k != TOKEN_PARAM]
        if self.token is not None:
            query.append((TOKEN_PARAM, self.token))
        suffix = f"?{urlencode(query)}" if query else ""
        return esc(f"{self.root}{path}{suffix}")

    def hidden_token(self) -> str:
        """The token as a hidden form field, so a form's GET keeps it too."""
        if self.token is None:
            return ""
        return f'<input type="hidden" name="{TOKEN_PARAM}" value="{esc(self.token)}">'


def document(title: str, body: str, *, refresh: int | None = None, nav: str = "") -> str:
    """A whole page: head (style, viewport, optional refresh), the header bar and ``body``.

    Auto-refresh is a ``<meta http-equiv="refresh">``: the page runs no script.
    """
    meta_refresh = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return "".join(
        [
            '<!doctype html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            meta_refresh,
            f"<title>{esc(title)}</title><style>{style()}</style></head><body>",
            '<header><div class="brand"><h1>deliverystate</h1>',
            "<p>Clickatell delivery callbacks, reconciled</p></div>",
            f"{nav}</header><main>{body}</main></body></html>",
        ]
    )


def choices_nav(kind: str, label: str, caption: str, options: Iterable[tuple[str, str]]) -> str:
    """A row of choices, each ``(text, escaped href)``; an empty href marks the current one."""
    items = [
        f'<a href="{href}">{esc(text)}</a>'
        if href
        else f'<strong aria-current="true">{esc(text)}</strong>'
        for text, href in options
    ]
    return f'<nav class="{kind}" aria-label="{label}">{caption} {" · ".join(items)}</nav>'


def refresh_nav(links: Links, path: str, params: list[tuple[str, str]], current: int | None) -> str:
    """The auto-refresh toggle: a link per choice, the current one marked."""
    kept = [(k, v) for k, v in params if k != "refresh"]
    options = [
        (
            "off" if seconds is None else f"{seconds} s",
            ""
            if seconds == current
            else links.to(path, kept if seconds is None else [*kept, ("refresh", str(seconds))]),
        )
        for seconds in REFRESH_CHOICES
    ]
    return choices_nav("refresh", "auto-refresh", "Auto-refresh:", options)


def read_refresh(text: str | None) -> int | None:
    """The refresh period a ``refresh`` parameter asks for (one of the choices), else None."""
    if text is None or not text.isdigit():
        return None
    seconds = int(text)
    return seconds if seconds in REFRESH_CHOICES else None


def sign_in_page(links: Links, path: str, params: list[tuple[str, str]], wrong: bool) -> str:
    """The page a browser gets without the shared token: a small form that asks for it.

    The other query parameters ride along as hidden fields, so a bookmarked
    filtered list opens as that list once the token is given.
    """
    kept = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
        for k, v in params
        if k != TOKEN_PARAM
    )
    message = (
        '<p class="error" role="alert">That token is not the one this server was started with.</p>'
        if wrong
        else ""
    )
    body = (
        '<section id="sign-in"><h2>This receiver is protected</h2>'
        "<p>Enter the shared token it was started with (<code>serve --token</code> or "
        "<code>DELIVERYSTATE_TOKEN</code>).</p>"
        f"{message}"
        f'<form method="get" action="{esc(links.root)}{esc(path)}">{kept}'
        f'<input type="password" name="{TOKEN_PARAM}" id="token" autocomplete="current-password" '
        'aria-label="token" placeholder="token" required>'
        '<button type="submit">Open</button></form></section>'
    )
    return document("deliverystate: sign in", body)
