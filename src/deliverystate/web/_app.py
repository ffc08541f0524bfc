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
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..callbacks._parse import read_callback
from ..errors import DeliveryStateError, InvalidCallback, StoreUnavailable
from ..tracking._receipts import Receipt, payload_text
from ..tracking._tracker import Tracker
from ..tracking._wire import receipt_json
from ._auth import TOKEN_PARAM, Guard
from ._figures import FigureCache
from ._intake import IntakeThread
from ._metrics import ReceiverMetrics
from ._page import WINDOWS
from ._providers import ProviderEndpoints
from ._reads import ReadEndpoints, json_error
from ._requests import (
    BODY_TIMEOUT_SECONDS,
    FORM,
    JSON,
    BodyDeadline,
    drop_field,
    fields,
    is_form,
    is_json,
    media_type,
)
from ._signatures import ProviderSignature

__all__ = ["CALLBACK_PATH", "create_app", "error_response"]

#: Where Clickatell posts (or GETs) its status callbacks, relative to the app.
CALLBACK_PATH = "/callbacks/clickatell"

#: Seconds Clickatell (or any client) is asked to wait after a 503.
_RETRY_AFTER = "5"
logger = logging.getLogger("deliverystate.web")

_NO_SECRET_WARNING = (
    "\n"
    "  WARNING: the deliverystate receiver runs WITHOUT a shared secret.\n"
    "  Anyone who can reach it can post status callbacks and read every\n"
    "  message's state.  Set a token (deliverystate serve --token, or\n"
    "  create_app(tracker, token=...)) and put it in Clickatell's callback URL\n"
    "  as ?token=..., or use HTTP Basic credentials (basic_auth=...).\n"
)


def error_response(error: DeliveryStateError, consequence: str) -> JSONResponse:
    """The answer to one of deliverystate's errors: its ``http_status`` and what it means.

    ``consequence`` completes the message of a 503 ("the callback was not
    stored", "nothing was read"); unavailable stores are logged here.
    """
    if isinstance(error, InvalidCallback):
        return json_error(error.http_status, str(error), field=error.field, reason=error.reason)
    if isinstance(error, StoreUnavailable):
        logger.error("answered 503, %s: %s", consequence, error)
        return JSONResponse(
            {"error": f"the store is unavailable; {consequence}, try again later"},
            status_code=error.http_status,
            headers={"Retry-After": _RETRY_AFTER},
        )
    logger.error("answered %d: %s", error.http_status, error)
    return json_error(error.http_status, str(error))


def _receipt_response(receipt: Receipt) -> Response:
    """200 applied, or 400 when the store refused the body and it went to the dead letter."""
    if receipt.dead_letter is not None or receipt.summary is None:
        # the tracker has logged why and where it is kept, once: not said again here
        reason = "the store refused it even on its own; it is kept in the dead letter"
        return json_error(400, f"invalid callback: body: {reason}", field="body", reason=reason)
    if receipt.ignored:
        logger.info("callback held events that are not status updates: %s", receipt.ignored_kinds)
    return JSONResponse(receipt_json(receipt.summary, receipt.ignored))


def _json_refusal(body: bytes) -> InvalidCallback | None:
    """Why a body that opens like JSON is not JSON, in the JSON reader's words."""
    try:
        read_callback(body)
    except InvalidCallback as error:
        return error
    return None  # pragma: no cover - is_json took every body that parses


class _Receiver(ReadEndpoints):
    """The app's state and endpoints: the tracker, the secret, the page's figures, the intake."""

    def __init__(
        self, tracker: Tracker, guard: Guard, recent: int, body_timeout: float, close_store: bool
    ) -> None:
        if recent < 0:
            raise ValueError(f"recent must be >= 0, not {recent}")
        self.tracker = tracker
        self.close_store = close_store
        self.guard = guard
        self.deadline = BodyDeadline(body_timeout)
        self.recent_size = recent
        self.store_failed_at = float("-inf")
        self._figures = FigureCache(tracker.store, WINDOWS)
        self._intake = IntakeThread(tracker)
        self.metrics = ReceiverMetrics(tracker.store)

    # --- lifespan ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Warn about a missing secret, apply what an older receiver left in the inbox."""
        if not self.guard.enabled:
            logger.warning(_NO_SECRET_WARNING)
        await self._drain("start-up")
        tasks = [asyncio.create_task(self.deadline.watch())]
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
        """Apply what an older receiver left in the inbox; a failure is logged, never fatal.

        Receivers before schema 8 kept each body in the inbox before applying
        it; a body they left there (a crash, a failed apply) is applied at
        start-up.  This receiver applies each body in the commit that keeps it.
        """
        try:
            summary = await run_in_threadpool(self.tracker.drain_inbox)
        except Exception:
            logger.exception("applying the bodies left in the inbox at %s failed", when)
            return False
        if summary.total:
            logger.warning(
                "applied callbacks left in the inbox at %s: %d events (%d applied, %d stale, "
                "%d duplicate, %d rejected)",
                when,
                summary.total,
                summary.applied,
                summary.stale,
                summary.duplicate,
                summary.rejected,
            )
        return True

    # --- callbacks -----------------------------------------------------------------------

    async def callback_get(self, request: Request) -> Response:
        """A Platform or legacy HTTP callback as query parameters."""
        return await self.metrics.timed(self._callback_get, request)

    async def callback_post(self, request: Request) -> Response:
        """A callback as a JSON or form body."""
        return await self.metrics.timed(self._callback_post, request)

    async def _callback_get(self, request: Request) -> Response:
        if not self.guard.allows(request):
            return self._denied()
        query: bytes = request.scope.get("query_string", b"")
        try:
            found = fields(query, drop=TOKEN_PARAM)
        except (
            InvalidCallback
        ) as invalid:  # kept as it came (still percent-encoded), less the token
            return await self._keep(drop_field(query, TOKEN_PARAM), invalid)
        return await self._take(found)

    async def _callback_post(self, request: Request) -> Response:
        if not self.guard.allows(request):
            return self._denied()
        media = media_type(request)
        if media not in (JSON, FORM):
            return json_error(
                415, f"unsupported content type {media or '(none)'!r}", accepted=[JSON, FORM]
            )
        body = await self.deadline.read_or_answer(request)
        if not isinstance(body, bytes):
            return body
        if media == JSON:
            return await self._take(body)
        return await self._take_form(body)

    async def _take_form(self, body: bytes) -> Response:
        """A body posted as a form: JSON when it is JSON, else a form's fields, token dropped.

        ``curl -d '{...}'`` posts JSON as a form, so one JSON object or array
        is taken as JSON.  A well-formed form is taken as its fields, as ever:
        kept as those fields when they are no valid callback, which
        ``retry_dead_letters`` can read again (after a catalog update, say).
        Anything else that is no valid callback (text, broken JSON, bytes that
        are no text, a field given twice) is kept as it came, less the token,
        rather than as the fields a form parser made of it; one that looks
        like JSON is answered with its JSON error.
        """
        if is_json(body):
            return await self._take(body)
        try:
            form = fields(body, drop=TOKEN_PARAM)
            if not is_form(body):  # stray text beside a valid callback is taken, as ever
                read_callback(form)
        except InvalidCallback as invalid:  # not ASCII, an escape that is no text, a field twice
            meant_json = _json_refusal(body) if body.lstrip()[:1] in (b"{", b"[") else None
            return await self._keep(drop_field(body, TOKEN_PARAM), meant_json or invalid)
        return await self._take(form)

    async def _keep(self, body: bytes, invalid: InvalidCallback) -> Response:
        """Keep a body that is no callback in the dead letter, as it came; answer 400 (or 503)."""
        try:
            await run_in_threadpool(
                self.tracker.store.add_dead_letter, payload_text(body), str(invalid)
            )
        except StoreUnavailable as unavailable:
            self.store_failed_at = time.monotonic()
            return error_response(unavailable, "the callback was not stored")
        return self._refused(invalid)

    async def _take(self, payload: bytes | Mapping[str, Any]) -> Response:
        """Store, then apply: the status code says how far that got."""
        try:
            received = await self._intake.submit(payload)
        except InvalidCallback as invalid:
            return self._refused(invalid)
        except DeliveryStateError as error:
            if isinstance(error, StoreUnavailable):
                self.store_failed_at = time.monotonic()
            return error_response(error, "the callback was not stored")
        assert isinstance(received, Receipt)
        self.metrics.received(received)
        return _receipt_response(received)

    def _refused(self, invalid: InvalidCallback) -> JSONResponse:
        """A body that did not parse, already in the dead letter: counted, logged, 400."""
        self.metrics.refused(invalid)
        logger.warning("answered 400, the body is kept in the dead letter: %s", invalid)
        return error_response(invalid, "")


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
    return json_error(500, "internal error")  # pragma: no cover - only HTTPException is routed here


async def _known_error(request: Request, exc: Exception) -> Response:
    """One of deliverystate's errors met by a read: its own answer (503 for a store down)."""
    if isinstance(exc, DeliveryStateError):
        return error_response(exc, "nothing was read")
    return await _server_error(request, exc)  # pragma: no cover - only ours are routed here


async def _server_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged with its traceback here, a bare 500 for the client."""
    logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return json_error(500, "internal error")


def create_app(
    tracker: Tracker,
    *,
    token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    recent: int = 20,
    body_timeout: float = BODY_TIMEOUT_SECONDS,
    close_store: bool = False,
    signatures: Mapping[str, ProviderSignature] | None = None,
    meta_verify_token: str | None = None,
) -> Starlette:
    """The webhook receiver for ``tracker`` as a Starlette ASGI app.

    ``token`` and ``basic_auth`` set the shared secret (off by default: see the
    package's documentation); ``recent`` is how many of the store's newest
    messages the status page lists; ``body_timeout`` how many seconds a request
    body may take to arrive (408 after that).  The tracker's store is called
    from worker threads, so it must be thread-safe, as every store in this
    package is.  The app's lifespan drains the inbox at start-up and stops the
    intake thread at shutdown (and closes the store, with ``close_store``);
    ``app.state.tracker`` is the tracker, and ``app.state.metrics`` the
    ``prometheus_client`` registry that ``GET /metrics`` answers from (the
    app's own, never the global one).  The other providers post to
    ``/callbacks/{provider}`` (``_providers``): ``signatures`` maps a provider
    to the check its requests must pass, and ``meta_verify_token`` answers
    Meta's subscription check.
    """
    receiver = _Receiver(tracker, Guard(token, basic_auth), recent, body_timeout, close_store)
    providers = ProviderEndpoints(receiver, signatures or {}, meta_verify_token)
    routes = [
        Route(CALLBACK_PATH, receiver.callback_post, methods=["POST"]),
        Route(CALLBACK_PATH, receiver.callback_get, methods=["GET"]),
        Route("/callbacks/meta", providers.meta_handshake, methods=["GET"]),
        Route("/callbacks/{provider}", providers.post, methods=["POST"]),
        Route("/messages", receiver.messages, methods=["GET"]),
        Route("/messages/{message_id:path}", receiver.message, methods=["GET"]),
        Route("/healthz", receiver.healthz, methods=["GET"]),
        Route("/metrics", receiver.metrics_text, methods=["GET"]),
        Route("/list", receiver.list_page, methods=["GET"]),
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
