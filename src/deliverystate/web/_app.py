"""The receiver's routes and endpoints, and ``create_app`` (see the package's documentation).

Errors are answered in one place: :func:`error_response` turns any
:class:`~deliverystate.errors.DeliveryStateError` into a JSON answer with the
error's own ``http_status`` (400 naming the field of an invalid callback, 503
with ``Retry-After`` for an unreachable store, ...), whether it came from the
intake or from a read; anything else is logged and answered with a bare 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .._events import MessageState, ms_from_datetime
from .._receipts import Receipt, payload_text
from .._render import state_json
from .._stats import feed_status
from .._tracker import Tracker
from ..errors import DeliveryStateError, InvalidCallback, StoreUnavailable
from ..stores import HistoryEntry, Summary
from ._auth import TOKEN_PARAM, Guard
from ._intake import IntakeThread
from ._metrics import ReceiverMetrics
from ._page import PageData, lifecycle_figure, render_page
from ._requests import (
    BODY_TIMEOUT_SECONDS,
    FORM,
    JSON,
    MAX_BODY_BYTES,
    BodyDeadline,
    BodyTooLarge,
    fields,
    media_type,
)

__all__ = ["CALLBACK_PATH", "create_app", "error_response"]

#: Where Clickatell posts (or GETs) its status callbacks, relative to the app.
CALLBACK_PATH = "/callbacks/clickatell"

#: Seconds between a failed apply (a 202) and the background re-apply of the inbox.
_REDRAIN_SECONDS = 5.0
#: Seconds Clickatell (or any client) is asked to wait after a 503.
_RETRY_AFTER = "5"
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

logger = logging.getLogger("deliverystate.web")

_NO_SECRET_WARNING = (
    "\n"
    "  WARNING: the deliverystate receiver runs WITHOUT a shared secret.\n"
    "  Anyone who can reach it can post status callbacks and read every\n"
    "  message's state.  Set a token (deliverystate serve --token, or\n"
    "  create_app(tracker, token=...)) and put it in Clickatell's callback URL\n"
    "  as ?token=..., or use HTTP Basic credentials (basic_auth=...).\n"
)


def _error(status_code: int, message: str, **extra: Any) -> JSONResponse:
    """A JSON error answer; the body says what is wrong, never how the code failed."""
    return JSONResponse({"error": message, **extra}, status_code=status_code)


def error_response(error: DeliveryStateError, consequence: str) -> JSONResponse:
    """The answer to one of deliverystate's errors: its ``http_status`` and what it means.

    ``consequence`` completes the message of a 503 ("the callback was not
    stored", "nothing was read"); unavailable stores are logged here.
    """
    if isinstance(error, InvalidCallback):
        return _error(error.http_status, str(error), field=error.field, reason=error.reason)
    if isinstance(error, StoreUnavailable):
        logger.error("answered 503, %s: %s", consequence, error)
        return JSONResponse(
            {"error": f"the store is unavailable; {consequence}, try again later"},
            status_code=error.http_status,
            headers={"Retry-After": _RETRY_AFTER},
        )
    logger.error("answered %d: %s", error.http_status, error)
    return _error(error.http_status, str(error))


def _summary_json(summary: Summary, ignored: int) -> dict[str, Any]:
    return {
        "status": "applied" if summary.total or not ignored else "ignored",
        "events": summary.total,
        "applied": summary.applied,
        "stale": summary.stale,
        "duplicate": summary.duplicate,
        "rejected": len(summary.rejected),
        "ignored": ignored,
    }


def _receipt_response(receipt: Receipt) -> Response:
    """200 applied, 202 kept for later, or 400 when the body went to the dead letter."""
    if receipt.dead_letter is not None:
        logger.error(
            "answered 400, the body is in dead letter %d: %s", receipt.dead_letter.id, receipt.error
        )
        reason = "it could not be applied even on its own; it is kept in the dead letter"
        return _error(400, f"invalid callback: body: {reason}", field="body", reason=reason)
    if receipt.summary is None:
        logger.warning(
            "callback %d stored but not applied (%s); it will be re-applied",
            receipt.inbox_id,
            receipt.error,
        )
        return JSONResponse(
            {
                "status": "stored",
                "events": len(receipt.events),
                "ignored": len(receipt.ignored),
                "inbox_id": receipt.inbox_id,
                "detail": "stored, not applied yet; it will be re-applied",
            },
            status_code=202,
        )
    if receipt.ignored:
        logger.info("callback held events that are not status updates: %s", receipt.ignored)
    return JSONResponse(_summary_json(receipt.summary, len(receipt.ignored)))


class _Receiver:
    """The app's state and endpoints: the tracker, the secret, the recent ids, the re-apply."""

    def __init__(
        self, tracker: Tracker, guard: Guard, recent: int, body_timeout: float, close_store: bool
    ) -> None:
        if recent < 0:
            raise ValueError(f"recent must be >= 0, not {recent}")
        self.tracker = tracker
        self.close_store = close_store
        self.guard = guard
        self.deadline = BodyDeadline(body_timeout)
        self._recent_size = recent
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._redrain = asyncio.Event()
        self._intake = IntakeThread(tracker)
        self.metrics = ReceiverMetrics(tracker.store)

    # --- lifespan ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Warn about a missing secret, apply what a crash left in the inbox, re-apply later."""
        if not self.guard.enabled:
            logger.warning(_NO_SECRET_WARNING)
        self._redrain = asyncio.Event()  # one per run: an Event belongs to the loop it waits on
        await self._drain("start-up")
        tasks = [
            asyncio.create_task(self._redrain_loop()),
            asyncio.create_task(self.deadline.watch()),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await run_in_threadpool(self._intake.stop)
            close = getattr(self.tracker.store, "close", None)
            if self.close_store and callable(close):
                await run_in_threadpool(close)

    async def _drain(self, when: str) -> bool:
        """Re-apply the inbox; a failure is logged and retried later, never fatal."""
        try:
            summary = await run_in_threadpool(self.tracker.drain_inbox)
        except Exception:
            logger.exception("re-applying the inbox at %s failed; will try again", when)
            self._redrain.set()
            return False
        if summary.total:
            logger.warning(
                "re-applied stored callbacks at %s: %d events (%d applied, %d stale, "
                "%d duplicate, %d rejected)",
                when,
                summary.total,
                summary.applied,
                summary.stale,
                summary.duplicate,
                len(summary.rejected),
            )
        return True

    async def _redrain_loop(self) -> None:
        """After a 202, wait a little and re-apply the inbox until that works."""
        while True:
            await self._redrain.wait()
            await asyncio.sleep(_REDRAIN_SECONDS)
            self._redrain.clear()
            await self._drain("a retry")

    # --- callbacks -----------------------------------------------------------------------

    def _denied(self) -> JSONResponse:
        return JSONResponse(
            {"error": "unauthorized: a valid token or Basic credentials are required"},
            status_code=401,
            headers=self.guard.challenge,
        )

    async def callback_get(self, request: Request) -> Response:
        """A Platform or legacy HTTP callback as query parameters."""
        return await self.metrics.timed(self._callback_get, request)

    async def callback_post(self, request: Request) -> Response:
        """A callback as a JSON or form body."""
        return await self.metrics.timed(self._callback_post, request)

    async def _callback_get(self, request: Request) -> Response:
        if not self.guard.allows(request):
            return self._denied()
        return await self._take(fields(request.query_params.multi_items(), drop=TOKEN_PARAM))

    async def _callback_post(self, request: Request) -> Response:
        if not self.guard.allows(request):
            return self._denied()
        media = media_type(request)
        if media not in (JSON, FORM):
            return _error(
                415, f"unsupported content type {media or '(none)'!r}", accepted=[JSON, FORM]
            )
        try:
            body = await self.deadline.read(request)
        except BodyTooLarge:
            return _error(413, "body too large", limit_bytes=MAX_BODY_BYTES)
        except TimeoutError:
            response = _error(
                408, "the body did not arrive in time", timeout_seconds=self.deadline.timeout
            )
            response.headers["Connection"] = "close"
            return response
        except ClientDisconnect:
            return _error(400, "the client went away before sending the whole body")
        if media == JSON:
            return await self._take(body)
        return await self._take_form(body)

    async def _take_form(self, body: bytes) -> Response:
        """A URL-encoded form: its fields, token dropped; a body that is no form is kept."""
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError) as error:
            invalid = InvalidCallback("body", f"not a URL-encoded form ({error})")
            try:
                await run_in_threadpool(
                    self.tracker.store.add_dead_letter, payload_text(body), str(invalid)
                )
            except StoreUnavailable as unavailable:
                return error_response(unavailable, "the callback was not stored")
            return self._refused(invalid)
        return await self._take(fields(pairs, drop=TOKEN_PARAM))

    async def _take(self, payload: bytes | Mapping[str, Any]) -> Response:
        """Store, then apply: the status code says how far that got."""
        try:
            received = await self._intake.submit(payload)
        except InvalidCallback as invalid:
            return self._refused(invalid)
        except DeliveryStateError as error:
            return error_response(error, "the callback was not stored")
        assert isinstance(received, Receipt)
        self.metrics.received(received)
        self._remember(event.message_id for event in received.events)
        if received.summary is None and received.dead_letter is None:
            self._redrain.set()
        return _receipt_response(received)

    def _refused(self, invalid: InvalidCallback) -> JSONResponse:
        """A body that did not parse, already in the dead letter: counted, logged, 400."""
        self.metrics.refused(invalid)
        logger.warning("answered 400, the body is kept in the dead letter: %s", invalid)
        return error_response(invalid, "")

    def _remember(self, message_ids: Iterable[str]) -> None:
        """Keep the most recently heard message ids (runs on the event loop: no lock)."""
        if not self._recent_size:
            return
        for message_id in message_ids:
            self._recent[message_id] = None
            self._recent.move_to_end(message_id)
        while len(self._recent) > self._recent_size:
            self._recent.popitem(last=False)

    # --- reads ---------------------------------------------------------------------------

    async def message(self, request: Request) -> Response:
        """One message's state and timeline as JSON."""
        if not self.guard.allows(request):
            return self._denied()
        message_id = request.path_params["message_id"]
        found = await run_in_threadpool(self._lookup, message_id)
        if found is None:
            return _error(404, "unknown message", message_id=message_id)
        return JSONResponse(state_json(*found))

    def _lookup(self, message_id: str) -> tuple[MessageState, list[HistoryEntry]] | None:
        state = self.tracker.get(message_id)
        if state is None:
            return None
        return state, list(self.tracker.history(message_id))

    async def healthz(self, request: Request) -> Response:
        """200 while the store answers the status page's read; open to probes, reveals nothing.

        It runs the very read the status page runs (counts over every message),
        so a damaged table fails the check instead of only the page.
        """
        try:
            await run_in_threadpool(self.tracker.count_by_status)
        except Exception:
            logger.exception("health check: the store does not answer")
            return _error(503, "the store does not answer")
        return JSONResponse({"status": "ok"})

    async def metrics_text(self, request: Request) -> Response:
        """The metrics for Prometheus (see ``_metrics``), behind the secret like every read."""
        if not self.guard.allows(request):
            return self._denied()
        accept = request.headers.get("accept", "")
        body, content_type = await run_in_threadpool(self.metrics.exposition, accept)
        return Response(body, media_type=content_type)

    async def page(self, request: Request) -> Response:
        """The status page: counts, recent messages, search, lifecycle."""
        if not self.guard.allows(request):
            return self._denied()
        wanted = request.query_params.get("message_id", "").strip() or None
        # keep the token in links only when it came in the URL (header and Basic resend themselves)
        token = request.query_params.get(TOKEN_PARAM) if self.guard.enabled else None
        recent = list(reversed(self._recent))
        data = await run_in_threadpool(
            self._page_data, request.scope.get("root_path", ""), wanted, token, recent
        )
        status = 404 if wanted is not None and data.found is None else 200
        return HTMLResponse(
            render_page(data, lifecycle_figure()), status_code=status, headers=_PAGE_HEADERS
        )

    def _page_data(
        self, root: str, wanted: str | None, token: str | None, recent: list[str]
    ) -> PageData:
        """Everything the page shows, read from the store (in a worker thread)."""
        return PageData(
            root=root,
            secret_set=self.guard.enabled,
            token=token,
            counts=self.tracker.count_by_status(),
            recent=[(m, self.tracker.get(m)) for m in recent],
            wanted=wanted,
            found=self._lookup(wanted) if wanted is not None else None,
            feed=feed_status(self.tracker.store),
            overdue=self.tracker.store.count_overdue(ms_from_datetime(datetime.now(timezone.utc))),
            local_expiries=self.tracker.store.count_local_expiries(),
        )


def _route_path(scope: Scope) -> str:
    """The request path inside this app (without the prefix it is mounted under)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class _CallbackFastPath:
    """Answers ``POST /callbacks/clickatell`` before Starlette's router and its wrappers.

    The callback is the one hot endpoint.  Through the exception middleware,
    the router and the request/response wrappers the app spent ~50 us of CPU
    per callback, ~32 us through this shortcut (measured in-process, 16
    callbacks at a time): about 5 % of a whole callback with uvicorn and
    SQLite.  The handler is the one the route table names; errors still reach
    the app's error handler, which sits outside this middleware.
    """

    def __init__(self, app: ASGIApp, receiver: _Receiver) -> None:
        self.app = app
        self.receiver = receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and _route_path(scope) == CALLBACK_PATH
        ):
            response = await self.receiver.callback_post(Request(scope, receive))
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404 route, 405 method) as JSON like every other answer."""
    if isinstance(exc, HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return _error(500, "internal error")  # pragma: no cover - only HTTPException is routed here


async def _known_error(request: Request, exc: Exception) -> Response:
    """One of deliverystate's errors met by a read: its own answer (503 for a store down)."""
    if isinstance(exc, DeliveryStateError):
        return error_response(exc, "nothing was read")
    return await _server_error(request, exc)  # pragma: no cover - only ours are routed here


async def _server_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged with its traceback here, a bare 500 for the client."""
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error")


def create_app(
    tracker: Tracker,
    *,
    token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    recent: int = 20,
    body_timeout: float = BODY_TIMEOUT_SECONDS,
    close_store: bool = False,
) -> Starlette:
    """The webhook receiver for ``tracker`` as a Starlette ASGI app.

    ``token`` and ``basic_auth`` set the shared secret (off by default: see the
    package's documentation); ``recent`` is how many recently received message
    ids the status page lists; ``body_timeout`` how many seconds a request
    body may take to arrive (408 after that).  The tracker's store is called
    from worker threads, so it must be thread-safe, as every store in this
    package is.  The app's lifespan drains the inbox at start-up and stops the
    intake thread at shutdown (and closes the store, with ``close_store``);
    ``app.state.tracker`` is the tracker, and ``app.state.metrics`` the
    ``prometheus_client`` registry that ``GET /metrics`` answers from (the
    app's own, never the global one).
    """
    receiver = _Receiver(tracker, Guard(token, basic_auth), recent, body_timeout, close_store)
    routes = [
        Route(CALLBACK_PATH, receiver.callback_post, methods=["POST"]),
        Route(CALLBACK_PATH, receiver.callback_get, methods=["GET"]),
        Route("/messages/{message_id:path}", receiver.message, methods=["GET"]),
        Route("/healthz", receiver.healthz, methods=["GET"]),
        Route("/metrics", receiver.metrics_text, methods=["GET"]),
        Route("/", receiver.page, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=receiver.lifespan,
        middleware=[Middleware(_CallbackFastPath, receiver=receiver)],
        exception_handlers={
            HTTPException: _http_error,
            DeliveryStateError: _known_error,
            Exception: _server_error,
        },
    )
    app.state.tracker = tracker
    app.state.metrics = receiver.metrics.registry
    return app
