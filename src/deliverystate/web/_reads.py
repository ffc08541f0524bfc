"""The receiver's read endpoints: a message, the list, health, metrics and the status page.

A mixin of the app's ``_Receiver`` (``_app``), which holds the tracker, the
secret's guard, the metrics and the recently heard ids these methods read;
kept apart so that each module stays one idea: ``_app`` takes callbacks in,
this answers questions about them.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..errors import InvalidParameter
from ..rules._events import MessageState, id_problem
from ..rules._records import HistoryEntry, MessageQuery
from ..rules._time import ms_from_datetime
from ..tracking._stats import feed_status
from ..tracking._tracker import Tracker
from ..tracking._wire import state_json
from ._auth import TOKEN_PARAM, Guard
from ._figures import FigureCache
from ._html import Links, read_refresh, sign_in_page
from ._listjson import list_messages, read_list_request
from ._listpage import ListPage, render_list
from ._metrics import ReceiverMetrics
from ._page import (
    DEAD_LETTERS_SHOWN,
    DEFAULT_WINDOW,
    WINDOWS,
    PageData,
    lifecycle_figure,
    render_page,
)
from ._params import checked_query, path_message_id, refusal

__all__ = ["ReadEndpoints", "json_error"]

logger = logging.getLogger("deliverystate.web")

#: Seconds ``/healthz`` answers 503 after a callback met a failing store (answered 503):
#: the ``Retry-After`` that 503 asked for.
FAILED_RECENTLY = 5.0
#: How many messages with one client id the page lists (the list page has them all).
SEARCH_MATCHES = 50

#: Headers of the status page: it loads nothing from anywhere, and no other site may frame it.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def json_error(status_code: int, message: str, **extra: Any) -> JSONResponse:
    """A JSON error answer; the body says what is wrong, never how the code failed."""
    return JSONResponse({"error": message, **extra}, status_code=status_code)


class ReadEndpoints:
    """The read side of the receiver; the class that mixes it in sets these attributes."""

    tracker: Tracker
    guard: Guard
    metrics: ReceiverMetrics
    #: How many of the newest messages the status page lists.
    recent_size: int
    #: When (``time.monotonic()``) a callback last met a failing store (``-inf``: never).
    store_failed_at: float
    _figures: FigureCache

    def _denied(self) -> JSONResponse:
        return JSONResponse(
            {"error": "unauthorized: a valid token or Basic credentials are required"},
            status_code=401,
            headers=self.guard.challenge,
        )

    async def message(self, request: Request) -> Response:
        """One message's state and timeline as JSON."""
        if not self.guard.allows(request):
            return self._denied()
        try:
            message_id = path_message_id(request)
        except InvalidParameter as error:
            return refusal(error)
        found = await run_in_threadpool(self._lookup, message_id)
        if found is None:
            return json_error(404, "unknown message", message_id=message_id)
        return JSONResponse(state_json(*found))

    async def messages(self, request: Request) -> Response:
        """The message list as JSON, filtered and paged (see ``_listing``)."""
        if not self.guard.allows(request):
            return self._denied()
        try:
            params = checked_query(request)
        except InvalidParameter as error:
            return refusal(error)
        status, body = await run_in_threadpool(list_messages, self.tracker, params)
        return JSONResponse(body, status_code=status)

    def _search(self, wanted: str | None) -> dict[str, Any]:
        """The page's search: a message by its id, else by its client id (a list if several)."""
        if wanted is None:
            return {}
        found = self._lookup(wanted)
        if found is None and id_problem(wanted) is None:
            query = MessageQuery(client_message_id=wanted)
            matches = self.tracker.messages(query, limit=SEARCH_MATCHES)
            if len(matches) == 1:
                found = self._lookup(matches[0].state.message_id)
            elif matches:
                return {"wanted": wanted, "matches": matches}
        return {"wanted": wanted, "found": found}

    def _lookup(self, message_id: str) -> tuple[MessageState, list[HistoryEntry]] | None:
        state = self.tracker.get(message_id)
        if state is None:
            return None
        return state, list(self.tracker.history(message_id))

    async def healthz(self, request: Request) -> Response:
        """200 while the store takes callbacks and serves the page; open to probes, reveals nothing.

        It writes as a callback does (``Store.ping`` commits a heartbeat, and on
        SQLite checks that the file has room), so it answers 503 when callbacks
        would: a full disk or a read-only store, which reads alone never showed.
        Then it runs the page's own reads of the messages, its delivery figures
        aside (see ``_probe``), so a store that cannot serve the page fails too.
        And for ``FAILED_RECENTLY`` seconds after a callback met a failing store
        it says 503 without asking: on a disk given back a few KiB at a time, a
        heartbeat may fit where the callback did not.
        """
        since = time.monotonic() - self.store_failed_at
        if since < FAILED_RECENTLY:
            logger.error("health check: a callback met a failing store %.1f s ago", since)
            return json_error(503, "the store does not answer")
        try:
            await run_in_threadpool(self._probe)
        except Exception:
            logger.exception("health check: the store does not answer")
            return json_error(503, "the store does not answer")
        return JSONResponse({"status": "ok"})

    async def metrics_text(self, request: Request) -> Response:
        """The metrics for Prometheus (see ``_metrics``), behind the secret like every read."""
        if not self.guard.allows(request):
            return self._denied()
        accept = request.headers.get("accept", "")
        body, content_type = await run_in_threadpool(self.metrics.exposition, accept)
        return Response(body, media_type=content_type)

    def _sign_in(self, request: Request, path: str) -> Response:
        """A page refused for want of the token: a form asking for it, or Basic's challenge."""
        if self.guard.wants_token:
            params = list(request.query_params.multi_items())
            wrong = TOKEN_PARAM in request.query_params
            links = Links(request.scope.get("root_path", ""))
            return HTMLResponse(
                sign_in_page(links, path, params, wrong),
                status_code=401,
                headers={**_PAGE_HEADERS, **self.guard.challenge},
            )
        return self._denied()

    def _links(self, request: Request) -> Links:
        # keep the token in links only when it came in the URL (header and Basic resend themselves)
        token = request.query_params.get(TOKEN_PARAM) if self.guard.enabled else None
        return Links(request.scope.get("root_path", ""), token)

    async def page(self, request: Request) -> Response:
        """The status page: delivery by channel, counts, newest messages, dead letter, search."""
        if not self.guard.allows(request):
            return self._sign_in(request, "/")
        try:
            params, refused = checked_query(request), None
        except InvalidParameter as error:  # the page as it is, saying what was wrong
            params, refused = QueryParams(), error
        # one box for a message id or a client id (``q``); ``message_id``: links to one message
        wanted = (params.get("q") or params.get("message_id", "")).strip() or None
        window = params.get("window", DEFAULT_WINDOW)
        window = window if window in WINDOWS else DEFAULT_WINDOW
        refresh = read_refresh(params.get("refresh"))
        data = await run_in_threadpool(
            self._page_data, self._links(request), wanted, window, refresh
        )
        status = 404 if wanted is not None and data.found is None and not data.matches else 200
        if refused is not None:
            data, status = attrs.evolve(data, refused=str(refused)), refused.http_status
        return HTMLResponse(
            render_page(data, lifecycle_figure()), status_code=status, headers=_PAGE_HEADERS
        )

    async def list_page(self, request: Request) -> Response:
        """The message list as a page: the filter form and a page of messages (``_listpage``)."""
        if not self.guard.allows(request):
            return self._sign_in(request, "/list")
        links = self._links(request)
        params = [(k, v) for k, v in request.query_params.multi_items() if k != TOKEN_PARAM]
        refresh = read_refresh(request.query_params.get("refresh"))
        try:
            checked = checked_query(request).multi_items()
            filters = QueryParams([(k, v) for k, v in checked if k not in (TOKEN_PARAM, "refresh")])
            wanted = read_list_request(filters)
        except InvalidParameter as error:
            page = ListPage(links, params, error=str(error), refresh=refresh)
            return HTMLResponse(render_list(page), status_code=400, headers=_PAGE_HEADERS)
        found = await run_in_threadpool(
            self.tracker.messages, wanted.query, limit=wanted.limit, before=wanted.before
        )
        page = ListPage(links, params, found, wanted.limit, refresh=refresh)
        return HTMLResponse(render_list(page), headers=_PAGE_HEADERS)

    def _probe(self) -> None:
        """The status page's reads of the messages but its figures: the counts by status (a few
        rows of the store's counts) and the newest messages (each row read).  A few rows
        whatever the store holds: probes come every few seconds, and until the counts were
        kept (schema version 7) this read every message, seconds at ten million.  The ping
        first: it rewrites one row, ~20 us on SQLite and ~0.4 ms on PostgreSQL (a commit),
        beside ~60 us and ~0.2 ms for the reads (measured, 2,000 messages)."""
        self.tracker.store.ping()
        self.tracker.count_by_status()
        self.tracker.messages(MessageQuery(), limit=self.recent_size)

    def _page_data(
        self, links: Links, wanted: str | None, window: str, refresh: int | None
    ) -> PageData:
        """Everything the page shows, read from the store (in a worker thread)."""
        store = self.tracker.store
        now = datetime.now(timezone.utc)
        figures = self._figures.get(window, now)
        return PageData(
            links=links,
            secret_set=self.guard.enabled,
            counts=self.tracker.count_by_status(),
            recent=self.tracker.messages(MessageQuery(), limit=self.recent_size),
            **self._search(wanted),
            feed=feed_status(store),
            overdue=store.count_overdue(ms_from_datetime(now)),
            local_expiries=store.count_local_expiries(),
            dead_letters=store.count_dead_letters(),
            dead_letter_sample=list(reversed(store.dead_letters(newest=DEAD_LETTERS_SHOWN))),
            window=window,
            stats=figures.stats,
            trend=figures.trend,
            refresh=refresh,
            as_of_ms=figures.as_of_ms,
        )
