"""The webhook receiver: an ASGI app that takes Clickatell's status callbacks over HTTP.

Needs the ``web`` extra (``pip install 'deliverystate[web]'``: Starlette,
uvicorn, and httptools and uvloop, which uvicorn uses when they are there).
Run it as it is with ``deliverystate serve`` (:func:`serve`), or mount the app
from :func:`create_app` inside your own Starlette or FastAPI application.

Theory of operation
-------------------
Clickatell posts each status callback to a URL the customer configures,
retries anything that is not a 2xx, and warns that callbacks may come twice
and out of order.  Order and duplicates are the tracker's business (the state
is a function of the *set* of callbacks seen); the receiver's business is
never to lose one.  So a 2xx is sent only for a body that is durably stored:

1. The shared secret is checked first (401), then the content type (415) and
   the declared length (413).  The body is read chunk by chunk and cut at
   :data:`MAX_BODY_BYTES` whatever ``Content-Length`` said (413), so neither a
   lying header nor a chunked upload can make the process hold a huge body,
   and it must arrive within ``body_timeout`` seconds (408), so a body that
   trickles in cannot hold a connection forever.  Bodies refused at this stage
   are not stored: they were never callbacks.
2. :meth:`Tracker.receive_many` parses the body (callbacks that arrive
   together are handled as one group: one transaction stores them all, one
   applies them all, each still gets its own answer).  One that is not a Clickatell
   callback goes to the dead letter and is answered 400 with the field at
   fault; Clickatell's retries of it land on the same dead letter (the same
   body is kept once).
3. A valid body is written to the store's inbox *before* anything is applied.
   If that write fails the answer is 503 and Clickatell sends it again later.
4. Its events are applied and its inbox entry removed in one transaction:
   200 with the outcome counts.  If that fails the body is still in the inbox,
   so the answer is 202 ("stored, will be applied"), and the app re-applies
   the inbox (:meth:`Tracker.drain_inbox`) a little later in the background,
   and at every start-up, which also picks up bodies left by a crash.  A
   group that fails is applied body by body, and a body that fails on its own
   while the store works is moved to the dead letter (400), so that one
   poison body never holds up the others, now or at the next start-up.
5. Events that are not status updates (an inbound ``moText``, event types
   Clickatell adds later) are counted as ``ignored`` in the 200 and never
   refused: Clickatell retries anything but a 2xx.

Stores are synchronous, so no store call runs on the event loop: callback
writes go to one intake thread, in arrival order and grouped per wake-up, and
reads to Starlette's thread pool.  Re-applying is safe at any moment, even
while requests are in flight: applying a report twice is a DUPLICATE, never a
change of state.

Endpoints
---------
* ``POST /callbacks/clickatell``: a JSON body (One API, or Platform /
  legacy fields) or a URL-encoded form (Platform / legacy fields).
  200 ``{"status": "applied" | "ignored", "events", "applied", "stale",
  "duplicate", "rejected", "ignored"}``; 202 ``{"status": "stored", "events",
  "ignored", "inbox_id", "detail"}``; 400 ``{"error", "field", "reason"}``;
  401; 408; 413; 415; 503 with ``Retry-After``.
* ``GET /callbacks/clickatell``: the Platform or legacy HTTP fields as
  query parameters; the same answers but 408, 413 and 415.
* ``GET /messages/{message_id}``: the state and its timeline as JSON (status
  names and codes, outcomes, ISO 8601 UTC times with milliseconds); 404 for a
  message nobody reported.
* ``GET /``: the status page (counts by status, recent messages, a search box
  that is a plain GET form with ``?message_id=``, the lifecycle diagram as
  inline SVG, or as mermaid text without Graphviz).  Server-rendered, every
  value escaped, no script, nothing loaded from elsewhere (a strict
  Content-Security-Policy says so to the browser).
* ``GET /healthz``: 200 while the store answers the status page's read
  (counts over every message), else 503; never behind the secret, and it
  reveals nothing.

Every answer but the status page is JSON; errors are ``{"error": ...}`` and
never carry a traceback (unexpected failures are logged here, with theirs).

Decisions
---------
* **Form bodies are accepted.**  Clickatell's Platform and legacy HTTP
  callbacks can be POSTed as ``application/x-www-form-urlencoded``; their
  fields become the same mapping as query parameters would.  Everything but
  JSON and forms is 415.  JSON must be UTF-8 (RFC 8259); a ``charset``
  parameter is ignored.
* **The shared secret is off by default: anyone who can reach the URL can
  then post callbacks and read every message's state.**  With ``token`` set, a
  request must carry it as ``?token=...`` (the form Clickatell's callback URL
  can hold) or in the ``X-Deliverystate-Token`` header; with ``basic_auth``
  set, HTTP Basic credentials (``https://user:password@host/...`` in the
  callback URL) are accepted too.  Comparisons take constant time
  (:func:`hmac.compare_digest`).  Once a secret is set it protects the
  callback endpoints *and* the read endpoints (status page, ``/messages``),
  which reveal message ids and delivery outcomes; only ``/healthz`` stays
  open for load balancers.  The ``token`` query parameter is removed before
  the fields are parsed or stored (a ``token`` field of a form body too), so
  the secret never lands in the inbox or the dead letter.  Query strings end
  up in access logs: prefer the header or Basic credentials where you can,
  and :func:`serve` keeps uvicorn's access log off by default.
* **"Recent messages" are recent in this process**: the store has no query
  for them, so the app keeps the last few message ids it received in a
  bounded in-memory list.  Another worker's messages, or those from before a
  restart, are found with the search box.

Mounting
--------
A mounted Starlette app does not get its own lifespan run, so when you mount
the receiver, enter its lifespan from yours (this drains the inbox and starts
the background re-apply)::

    receiver = create_app(tracker, token=os.environ["CALLBACK_TOKEN"])

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with receiver.router.lifespan_context(receiver):
            yield

    app = Starlette(routes=[Mount("/clickatell", receiver)], lifespan=lifespan)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hmac
import html
import json
import logging
import queue
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode

import attrs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .callbacks import InvalidCallback
from .catalog import Status
from .diagrams import GraphvizNotFound, lifecycle_dot, lifecycle_mermaid, render_svg
from .events import MessageState, datetime_from_ms
from .sqlstore import StoreUnavailable
from .store import HistoryEntry, Summary
from .stores import DEFAULT_DB, open_store
from .tracker import Tracker, payload_text

__all__ = [
    "BODY_TIMEOUT_SECONDS",
    "CALLBACK_PATH",
    "MAX_BODY_BYTES",
    "TOKEN_HEADER",
    "TOKEN_PARAM",
    "create_app",
    "http_protocol",
    "serve",
]

#: Where Clickatell posts (or GETs) its status callbacks, relative to the app.
CALLBACK_PATH = "/callbacks/clickatell"
#: The largest request body accepted; Clickatell's callbacks are well under 2 KiB.
MAX_BODY_BYTES = 64 * 1024
#: Seconds a request body may take to arrive in full (a callback takes milliseconds).
BODY_TIMEOUT_SECONDS = 10.0
#: The header that may carry the shared token.
TOKEN_HEADER = "X-Deliverystate-Token"
#: The query parameter that may carry the shared token (never passed to the parser).
TOKEN_PARAM = "token"

_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"
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

logger = logging.getLogger(__name__)

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


def _unavailable(error: StoreUnavailable, consequence: str) -> JSONResponse:
    """503 for a store that cannot be reached: logged here, a retry hint for the client."""
    logger.error("answered 503, %s: %s", consequence, error)
    return JSONResponse(
        {"error": f"the store is unavailable; {consequence}, try again later"},
        status_code=503,
        headers={"Retry-After": _RETRY_AFTER},
    )


def _iso(timestamp_ms: int) -> str:
    """ISO 8601 in UTC with milliseconds, the resolution of Clickatell's timestamps."""
    return datetime_from_ms(timestamp_ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(pairs: Iterable[tuple[str, str]], *, drop: str | None = None) -> dict[str, Any]:
    """Query or form pairs as the mapping the parser takes; a repeated field becomes a list.

    A list is what makes the parser say "expected one value" instead of
    silently picking one of two status codes.
    """
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key == drop:
            continue
        known = fields.get(key)
        if known is None:
            fields[key] = value
        elif isinstance(known, list):
            known.append(value)
        else:
            fields[key] = [known, value]
    return fields


def _media_type(request: Request) -> str:
    """The content type without parameters, lower-cased ("" when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class _BodyTooLarge(Exception):
    """The request body passed :data:`MAX_BODY_BYTES`."""


async def _read_body(request: Request) -> bytes:
    """The request body, refusing (before reading it) a declared or (while reading) a real excess.

    Stops reading at the first chunk past the limit, so memory stays bounded
    whatever the client sends.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class _BodyDeadline:
    """Cuts off request bodies that take longer than ``timeout`` seconds to arrive.

    One watchdog task for the whole app, rather than a timer per request: a
    callback's body nearly always arrives with its headers, and a per-request
    ``asyncio.timeout`` cost about as much as a tenth of the rest of the
    receiver's work on the event loop.  Each read registers its task and
    deadline in a dictionary; the watchdog wakes a few times per ``timeout``
    and cancels the reads past their deadline, which then raise
    ``TimeoutError``.  A read can so run up to ``timeout / 4`` longer than
    ``timeout``.
    """

    def __init__(self, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError(f"body_timeout must be a positive number of seconds: {timeout}")
        self.timeout = timeout
        self._reads: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()

    async def read(self, request: Request) -> bytes:
        """:func:`_read_body`, or ``TimeoutError`` when it is not done by the deadline."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - Starlette always runs requests in a task
            return await _read_body(request)
        self._reads[task] = asyncio.get_running_loop().time() + self.timeout
        try:
            return await _read_body(request)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise  # cancelled by someone else: not ours to swallow
            self._expired.discard(task)
            uncancel = getattr(task, "uncancel", None)  # Python 3.11+
            if uncancel is not None:
                uncancel()
            raise TimeoutError from None
        finally:
            self._reads.pop(task, None)

    async def watch(self) -> None:
        """Cancel the reads past their deadline, until cancelled itself."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.timeout / 4)
            now = loop.time()
            for task, deadline in list(self._reads.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()


class _Guard:
    """The shared secret: a token, Basic credentials, or both (either one then passes)."""

    def __init__(self, token: str | None, basic_auth: tuple[str, str] | None) -> None:
        if token is not None and not token:
            raise ValueError("token must be a non-empty string or None")
        if basic_auth is not None and not all(basic_auth):
            raise ValueError("basic_auth must be a (user, password) pair of non-empty strings")
        self._token = None if token is None else token.encode("utf-8")
        self._basic = (
            None
            if basic_auth is None
            else (basic_auth[0].encode("utf-8"), basic_auth[1].encode("utf-8"))
        )

    @property
    def enabled(self) -> bool:
        """Whether any secret is configured."""
        return self._token is not None or self._basic is not None

    @property
    def challenge(self) -> dict[str, str]:
        """Headers of a 401: a Basic challenge, so a browser asks for the credentials."""
        if self._basic is None:
            return {}
        return {"WWW-Authenticate": 'Basic realm="deliverystate", charset="UTF-8"'}

    def allows(self, request: Request) -> bool:
        """Whether the request may pass; always true without a secret."""
        if not self.enabled:
            return True
        if self._token is not None:
            for offered in (
                request.query_params.get(TOKEN_PARAM),
                request.headers.get(TOKEN_HEADER),
            ):
                if offered is not None and hmac.compare_digest(
                    offered.encode("utf-8"), self._token
                ):
                    return True
        return self._basic is not None and self._basic_matches(request.headers.get("authorization"))

    def _basic_matches(self, header: str | None) -> bool:
        if header is None or self._basic is None:
            return False
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(b":")
        # both comparisons always run, so the time taken does not say which part was wrong
        user_ok = hmac.compare_digest(user, self._basic[0])
        password_ok = hmac.compare_digest(password, self._basic[1])
        return bool(colon) and user_ok and password_ok


_T = TypeVar("_T")
_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]
_Outcome = tuple["asyncio.Future[Any]", Any, "Exception | None"]


class _IntakeThread:
    """One thread that runs the receiver's store writes in arrival order, many per wake-up.

    Why not the shared thread pool: a store call that releases the GIL inside
    SQLite hands the GIL back and forth with the event loop, and a pool adds
    wake-ups per call on both sides while its threads queue on the store's
    lock.  Measured on two cores, SQLite, 16 callbacks in flight (a loop that
    also does some work per request): ~585 us of process CPU per callback
    through ``run_in_threadpool``, ~200-240 us here, against ~176 us when
    ``receive`` runs on the loop itself (which would block it).  This thread
    takes every queued job in one go and wakes the loop once per batch.
    Stores serialise their writes on one lock anyway, so a single writer
    loses no parallelism.
    The thread starts on first use and stops when the app shuts down; each
    thread has its own queue, so a thread that is stopping never takes the
    jobs of the one that replaces it.
    """

    _BATCH = 256

    def __init__(self) -> None:
        self._current: tuple[threading.Thread, queue.SimpleQueue[_Job | None]] | None = None
        self._start_lock = threading.Lock()

    def run(self, call: Callable[[], _T]) -> asyncio.Future[_T]:
        """Queue ``call``; the future resolves on the calling loop with its result or error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._start_lock:
            if self._current is None or not self._current[0].is_alive():
                jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
                thread = threading.Thread(
                    target=self._work, args=(jobs,), name="deliverystate-intake", daemon=True
                )
                thread.start()
                self._current = (thread, jobs)
            self._current[1].put((loop, future, call))
        return future

    def stop(self) -> None:
        """Finish the queued jobs, then end the thread (a later job starts a new one)."""
        with self._start_lock:
            current, self._current = self._current, None
        if current is not None:
            current[1].put(None)
            current[0].join()

    @classmethod
    def _work(cls, jobs: queue.SimpleQueue[_Job | None]) -> None:
        while True:
            batch = [jobs.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < cls._BATCH:
                    batch.append(jobs.get_nowait())
            done: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
            group: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], _Receive]] = []
            for job in [*batch, None]:
                if job is not None and isinstance(job[2], _Receive):
                    group.append((job[0], job[1], job[2]))
                    continue
                if group:  # consecutive callbacks: stored and applied as one group
                    for loop, outcome in _receive_group(group):
                        done.setdefault(loop, []).append(outcome)
                    group = []
                if job is None:
                    continue
                loop, future, call = job
                try:
                    result: _Outcome = (future, call(), None)
                except Exception as error:
                    result = (future, None, error)
                done.setdefault(loop, []).append(result)
            for loop, outcomes in done.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_settle_futures, outcomes)
            if None in batch:
                return


@attrs.frozen
class _Receive:
    """A queued callback body for ``Tracker.receive_many``; grouped with its neighbours."""

    receive_many: Callable[[list[Any]], list[Any]]
    payload: Any

    def __call__(self) -> Any:
        (result,) = self.receive_many([self.payload])
        if isinstance(result, Exception):
            raise result
        return result


def _receive_group(
    group: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], _Receive]],
) -> list[tuple[asyncio.AbstractEventLoop, _Outcome]]:
    """Store and apply a group of bodies in two transactions; one outcome per body.

    An invalid body's outcome is its ``InvalidCallback``; if the group cannot
    be stored at all, every body gets that error (none of them was stored).
    """
    try:
        results = group[0][2].receive_many([job.payload for _, _, job in group])
    except Exception as error:
        return [(loop, (future, None, error)) for loop, future, _ in group]
    outcomes: list[tuple[asyncio.AbstractEventLoop, _Outcome]] = []
    for (loop, future, _), result in zip(group, results, strict=True):
        if isinstance(result, Exception):
            outcomes.append((loop, (future, None, result)))
        else:
            outcomes.append((loop, (future, result, None)))
    return outcomes


def _settle_futures(outcomes: list[_Outcome]) -> None:
    """Hand each job's result or error to its future (on the future's own loop)."""
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


@functools.cache
def _lifecycle_figure() -> str:
    """The lifecycle diagram for the status page: inline SVG, or mermaid text without Graphviz.

    Rendered once per process: it is drawn from constant tables.
    """
    try:
        svg = render_svg(lifecycle_dot())
    except (GraphvizNotFound, subprocess.CalledProcessError, OSError):
        mermaid = html.escape(lifecycle_mermaid())
        return (
            '<p class="muted">Graphviz is not installed, so here is the diagram as mermaid '
            f"text.</p><pre>{mermaid}</pre>"
        )
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else f"<pre>{html.escape(lifecycle_mermaid())}</pre>"


def _state_json(state: MessageState, timeline: Iterable[HistoryEntry]) -> dict[str, Any]:
    """A message's state and timeline as JSON: names, codes, outcomes, ISO 8601 times."""
    return {
        "message_id": state.message_id,
        "status": state.status.name,
        "status_code": int(state.status),
        "description": state.status.description,
        "timestamp": _iso(state.timestamp_ms),
        "channel": state.channel,
        "client_message_id": state.client_message_id,
        "terminal": state.status.is_terminal,
        "delivered": state.status.is_delivered,
        "failed": state.status.is_failure,
        "timeline": [
            {
                "status": entry.event.status.name,
                "status_code": int(entry.event.status),
                "timestamp": _iso(entry.event.timestamp_ms),
                "outcome": entry.outcome.value,
                "channel": entry.event.channel,
                "client_message_id": entry.event.client_message_id,
                "arrival": entry.arrival,
            }
            for entry in timeline
        ],
    }


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


def _css_class(status: Status) -> str:
    """The diagram's colour classes: failure, delivered, progress."""
    if status.is_failure:
        return "failure"
    return "delivered" if status.is_delivered else "progress"


_STYLE = """
:root { color-scheme: light; --line: #d0d5dd; --muted: #475467; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 0; color: #101828; background: #f9fafb; }
header { background: #101828; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
header p { margin: 2px 0 0; color: #d0d5dd; font-size: 13px; }
main { max-width: 1000px; margin: 0 auto; padding: 16px 24px 32px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
          padding: 14px 18px; margin: 16px 0; }
h2 { font-size: 16px; margin: 0 0 10px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid #eaecf0;
         vertical-align: top; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .id { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
            font-size: 13px; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px;
         font-weight: 600; border: 1px solid; white-space: nowrap; }
.failure { background: #fde2e1; border-color: #b42318; color: #7a271a; }
.delivered { background: #dcfae6; border-color: #067647; color: #074d31; }
.progress { background: #eff4ff; border-color: #3538cd; color: #2d31a6; }
.warning { background: #fffaeb; border: 1px solid #dc6803; color: #93370d; }
.muted { color: var(--muted); }
th.share, td.share { width: 40%; }
.bar { display: block; height: 10px; min-width: 3px; border: 0; border-radius: 3px; }
.bar.failure { background: #d92d20; }
.bar.delivered { background: #079455; }
.bar.progress { background: #444ce7; }
tfoot th { font-size: 14px; text-transform: none; color: #101828; }
#result { margin-top: 14px; }
td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
form { display: flex; gap: 8px; }
input[type=search] { flex: 1; font: inherit; padding: 6px 10px; border: 1px solid var(--line);
                     border-radius: 6px; }
button { font: inherit; padding: 6px 16px; border: 0; border-radius: 6px; background: #3538cd;
         color: #fff; cursor: pointer; }
figure { margin: 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
pre { overflow-x: auto; font-size: 12px; }
a { color: #3538cd; }
@media (max-width: 700px) { th.share, td.share { display: none; } }
"""


class _Receiver:
    """The app's state and endpoints: the tracker, the secret, the recent ids, the re-apply."""

    def __init__(self, tracker: Tracker, guard: _Guard, recent: int, body_timeout: float) -> None:
        if recent < 0:
            raise ValueError(f"recent must be >= 0, not {recent}")
        self.tracker = tracker
        self.guard = guard
        self.deadline = _BodyDeadline(body_timeout)
        self._recent_size = recent
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._redrain = asyncio.Event()
        self._intake_thread = _IntakeThread()

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
            await run_in_threadpool(self._intake_thread.stop)

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
        if not self.guard.allows(request):
            return self._denied()
        return await self._intake(_fields(request.query_params.multi_items(), drop=TOKEN_PARAM))

    async def callback_post(self, request: Request) -> Response:
        """A callback as a JSON or form body."""
        if not self.guard.allows(request):
            return self._denied()
        media = _media_type(request)
        if media not in (_JSON, _FORM):
            return _error(
                415,
                f"unsupported content type {media or '(none)'!r}",
                accepted=[_JSON, _FORM],
            )
        try:
            body = await self.deadline.read(request)
        except _BodyTooLarge:
            return _error(413, "body too large", limit_bytes=MAX_BODY_BYTES)
        except TimeoutError:
            response = _error(
                408, "the body did not arrive in time", timeout_seconds=self.deadline.timeout
            )
            response.headers["Connection"] = "close"
            return response
        except ClientDisconnect:
            return _error(400, "the client went away before sending the whole body")
        if media == _JSON:
            return await self._intake(body)
        try:
            fields = _fields(
                parse_qsl(body.decode("ascii"), keep_blank_values=True, errors="strict"),
                drop=TOKEN_PARAM,
            )
        except (UnicodeDecodeError, ValueError) as error:
            reason = f"not a URL-encoded form ({error})"
            try:
                await run_in_threadpool(
                    self.tracker.store.add_dead_letter, payload_text(body), f"body: {reason}"
                )
            except StoreUnavailable as unavailable:
                return _unavailable(unavailable, "the callback was not stored")
            return _error(400, f"invalid callback: body: {reason}", field="body", reason=reason)
        return await self._intake(fields)

    async def _intake(self, payload: bytes | Mapping[str, Any]) -> Response:
        """Store, then apply: the status code says how far that got."""
        try:
            receipt = await self._intake_thread.run(_Receive(self.tracker.receive_many, payload))
        except InvalidCallback as error:
            return _error(400, str(error), field=error.field, reason=error.reason)
        except StoreUnavailable as error:
            return _unavailable(error, "the callback was not stored")
        self._remember(event.message_id for event in receipt.events)
        if receipt.dead_letter is not None:
            reason = "it could not be applied even on its own; it is kept in the dead letter"
            return _error(400, f"invalid callback: body: {reason}", field="body", reason=reason)
        if receipt.summary is None:
            logger.warning(
                "callback %d stored but not applied (%s); it will be re-applied",
                receipt.inbox_id,
                receipt.error,
            )
            self._redrain.set()
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
        return JSONResponse(_state_json(*found))

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

    async def page(self, request: Request) -> Response:
        """The status page: counts, recent messages, search, lifecycle."""
        if not self.guard.allows(request):
            return self._denied()
        wanted = request.query_params.get("message_id", "").strip() or None
        # keep the token in links only when it came in the URL (header and Basic resend themselves)
        token = request.query_params.get(TOKEN_PARAM) if self.guard.enabled else None
        recent = list(reversed(self._recent))
        text, found = await run_in_threadpool(
            self._render_page, request.scope.get("root_path", ""), wanted, token, recent
        )
        status = 404 if wanted is not None and not found else 200
        return HTMLResponse(text, status_code=status, headers=_PAGE_HEADERS)

    def _render_page(
        self, root: str, wanted: str | None, token: str | None, recent: list[str]
    ) -> tuple[str, bool]:
        """The page's HTML, and whether the message searched for (if any) was found."""
        counts = self.tracker.count_by_status()
        found = self._lookup(wanted) if wanted is not None else None
        states = [(m, self.tracker.get(m)) for m in recent]
        figure = _lifecycle_figure()
        esc = html.escape

        def link(message_id: str) -> str:
            query = {"message_id": message_id}
            if token is not None:
                query[TOKEN_PARAM] = token
            return esc(f"{root}/?{urlencode(query)}")

        def badge(status: Status) -> str:
            return f'<span class="badge {_css_class(status)}">{esc(status.name)}</span>'

        parts: list[str] = [
            '<!doctype html><html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>deliverystate</title><style>{_STYLE}</style></head><body>",
            "<header><h1>deliverystate</h1>",
            "<p>Clickatell delivery callbacks, reconciled</p></header><main>",
        ]
        if not self.guard.enabled:
            parts.append(
                '<section class="warning"><strong>No shared secret is set.</strong> Anyone who '
                "can reach this server can post callbacks and read this page.</section>"
            )
        hidden = f'<input type="hidden" name="{TOKEN_PARAM}" value="{esc(token)}">' if token else ""
        parts += [
            '<section id="search"><h2>Find a message</h2>',
            f'<form method="get" action="{esc(root)}/" role="search">{hidden}',
            '<input type="search" id="message_id" name="message_id" '
            f'placeholder="message id" value="{esc(wanted or "")}" aria-label="message id">',
            '<button type="submit">Search</button></form>',
        ]
        if wanted is not None:
            parts.append(self._result_html(wanted, found, root, badge))
        parts.append("</section>")

        total = sum(counts.values())
        rows = "".join(
            f'<tr data-status="{esc(status.name)}"><td>{badge(status)}</td>'
            f'<td class="num">{int(status)}</td>'
            f'<td class="num count">{counts[status]:,}</td>'
            f'<td class="share"><span class="bar {_css_class(status)}" '
            f'style="width: {100 * counts[status] / max(total, 1):.1f}%"></span></td></tr>'
            for status in sorted(counts)
        )
        parts += [
            '<section id="counts"><h2>Messages by status</h2>',
            '<table><thead><tr><th>status</th><th class="num">code</th>',
            '<th class="num">messages</th><th class="share">share</th></tr></thead>',
            f"<tbody>{rows}</tbody>",
            f'<tfoot><tr><th>total</th><th></th><th class="num" id="total">{total:,}</th>'
            "<th></th></tr></tfoot></table>",
        ]
        if not counts:
            parts.append('<p class="muted">No callback received yet.</p>')
        parts.append("</section>")

        recent_rows = "".join(
            f'<tr><td class="id"><a href="{link(m)}">{esc(m)}</a></td>'
            f"<td>{badge(s.status) if s else ''}</td>"
            f'<td class="time">{esc(_iso(s.timestamp_ms)) if s else ""}</td></tr>'
            for m, s in states
        )
        parts += [
            '<section id="recent"><h2>Recent messages</h2>',
            '<p class="muted">Last heard by this process, newest first.</p>',
            "<table><thead><tr><th>message id</th><th>status</th><th>provider time (UTC)</th>"
            f"</tr></thead><tbody>{recent_rows}</tbody></table>",
        ]
        if not states:
            parts.append('<p class="muted">Nothing received since this process started.</p>')
        parts += [
            "</section>",
            '<section id="lifecycle"><h2>Lifecycle</h2>',
            f"<figure>{figure}</figure></section>",
            "</main></body></html>",
        ]
        return "".join(parts), found is not None

    @staticmethod
    def _result_html(
        wanted: str,
        found: tuple[MessageState, list[HistoryEntry]] | None,
        root: str,
        badge: Any,
    ) -> str:
        esc = html.escape
        if found is None:
            return (
                f'<p id="result" class="not-found">No message <code>{esc(wanted)}</code> has '
                "been heard of.</p>"
            )
        state, timeline = found
        rows = "".join(
            f'<tr><td class="time">{esc(_iso(e.event.timestamp_ms))}</td>'
            f"<td>{badge(e.event.status)}</td>"
            f"<td>{esc(e.outcome.value)}</td><td>{esc(e.event.channel or '')}</td></tr>"
            for e in timeline
        )
        json_href = esc(f"{root}/messages/{quote(state.message_id, safe='')}")
        details = [f"since {esc(_iso(state.timestamp_ms))} ({esc(state.status.description)})"]
        if state.channel:
            details.append(f"channel {esc(state.channel)}")
        if state.client_message_id:
            details.append(f"client id <code>{esc(state.client_message_id)}</code>")
        return (
            f'<div id="result" class="found"><p><code>{esc(state.message_id)}</code> is '
            f"{badge(state.status)} {', '.join(details)}."
            f' <a href="{json_href}">As JSON</a></p>'
            "<table><thead><tr><th>provider time (UTC)</th><th>report</th><th>outcome</th>"
            f"<th>channel</th></tr></thead><tbody>{rows}</tbody></table></div>"
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


async def _store_error(request: Request, exc: Exception) -> Response:
    """A read that met an unreachable store: 503, like a callback that could not be stored."""
    if isinstance(exc, StoreUnavailable):
        return _unavailable(exc, "nothing was read")
    return await _server_error(request, exc)  # pragma: no cover - only StoreUnavailable comes here


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
) -> Starlette:
    """The webhook receiver for ``tracker`` as a Starlette ASGI app.

    ``token`` and ``basic_auth`` set the shared secret (off by default: see the
    module's documentation); ``recent`` is how many recently received message
    ids the status page lists; ``body_timeout`` how many seconds a request
    body may take to arrive (408 after that).  The tracker's store is called from worker
    threads, so it must be thread-safe, as every store in this package is.
    The app's lifespan drains the inbox at start-up and stops the intake
    thread at shutdown; ``app.state.tracker`` is the tracker.
    """
    receiver = _Receiver(tracker, _Guard(token, basic_auth), recent, body_timeout)
    routes = [
        Route(CALLBACK_PATH, receiver.callback_post, methods=["POST"]),
        Route(CALLBACK_PATH, receiver.callback_get, methods=["GET"]),
        Route("/messages/{message_id:path}", receiver.message, methods=["GET"]),
        Route("/healthz", receiver.healthz, methods=["GET"]),
        Route("/", receiver.page, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        lifespan=receiver.lifespan,
        middleware=[Middleware(_CallbackFastPath, receiver=receiver)],
        exception_handlers={
            HTTPException: _http_error,
            StoreUnavailable: _store_error,
            Exception: _server_error,
        },
    )
    app.state.tracker = tracker
    return app


def http_protocol() -> Any:
    """The HTTP protocol ``serve`` gives uvicorn: its own, but a huge ``Content-Length`` is 413.

    uvicorn's httptools parser refuses a declared length that does not fit in
    64 bits before the app sees the request, with a plain-text 400; a client
    that declares ``10**20`` bytes is sending a body too large, so this
    protocol answers it as the app answers any body over the limit (a JSON
    413).  Without httptools uvicorn uses h11, which hands such a request to
    the app: ``"auto"`` is then right as it is.
    """
    try:
        import httptools  # noqa: PLC0415 - optional, as in uvicorn
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415
    except ImportError:
        return "auto"

    class Protocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            # called by uvicorn from inside its ``except HttpParserError`` block
            error = sys.exc_info()[1]
            if isinstance(error, httptools.HttpParserError) and "Content-Length" in str(error):
                body = json.dumps({"error": "body too large", "limit_bytes": MAX_BODY_BYTES})
                self.transport.write(
                    b"HTTP/1.1 413 Request Entity Too Large\r\n"
                    b"content-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n".encode()
                    + b"connection: close\r\n\r\n"
                    + body.encode()
                )
                self.transport.close()
                return
            super().send_400_response(msg)

    return Protocol


def serve(
    db: str = DEFAULT_DB,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    *,
    basic_auth: tuple[str, str] | None = None,
    access_log: bool = False,
) -> None:
    """Run the receiver with uvicorn (one worker) on the store named by ``db`` until stopped.

    ``db`` is what :func:`~deliverystate.stores.open_store` takes (an SQLite
    path by default).  Opening it may raise ``StoreUnavailable`` or
    ``SchemaMismatch`` before anything listens.  The access log is off by
    default because a ``?token=`` in a logged URL would leak the secret.
    """
    import uvicorn  # noqa: PLC0415 - only serving needs it; mounting needs Starlette alone

    store = open_store(db)
    try:
        app = create_app(Tracker(store), token=token, basic_auth=basic_auth)
        print(
            f"deliverystate: store {getattr(store, 'target', db)}; Clickatell callback URL "
            f"http://{host}:{port}/callbacks/clickatell, status page http://{host}:{port}/",
            file=sys.stderr,
        )
        uvicorn.run(
            app, host=host, port=port, workers=1, access_log=access_log, http=http_protocol()
        )
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
