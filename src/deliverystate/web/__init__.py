"""The webhook receiver: an ASGI app that takes Clickatell's status callbacks over HTTP.

Needs the ``web`` extra (``pip install 'deliverystate[web]'``: Starlette,
uvicorn, prometheus_client, and httptools and uvloop, which uvicorn uses when
they are there).
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
   together are handled as one group, each still getting its own answer).
   One that is not a Clickatell callback is answered 400 with the field at
   fault; Clickatell's retries of it land on the same dead letter (the same
   body is kept once).
3. One transaction keeps the group's invalid bodies in the dead letter and
   applies the valid ones (``Store.intake``): 200 with the outcome counts,
   sent after that commit.  A body the database refuses on its own is rolled
   back alone, to a savepoint, and kept in the dead letter in the same
   commit (400), so one poison body never holds up the others.
4. A store that fails as a whole (a full disk, a read-only file, a lost
   connection: ``StoreUnavailable``) fails the transaction: nothing is kept,
   nothing goes to the dead letter, and every callback of the group is
   answered 503 with ``Retry-After``; Clickatell sends them again.
5. Events that are not status updates (an inbound ``moText``, event types
   Clickatell adds later) are counted as ``ignored`` in the 200 and never
   refused: Clickatell retries anything but a 2xx.

Before any of this, ``serve`` guards the connections themselves (its HTTP
protocol, ``_protocol``): a client has :data:`HEADER_TIMEOUT_SECONDS` to send
a request's head or is closed (408 if it began one), and each worker keeps at
most ``max_connections`` open (:class:`ConnectionLimits`): past it a
connection stalled in its head is closed to make room, or the newcomer is
answered 503 with ``Retry-After``.  An app mounted elsewhere relies on its own
server for this.

Stores are synchronous, so no store call runs on the event loop: callback
writes go to one intake thread (``_intake``), in arrival order and grouped per
wake-up, and reads to Starlette's thread pool.  Applying a callback twice (a
retry after a 503 whose commit did happen) is safe: a report applied twice is
a DUPLICATE, never a change of state.

Endpoints
---------
* ``POST /callbacks/clickatell``: a JSON body (One API, or Platform /
  legacy fields) or a URL-encoded form (Platform / legacy fields).
  200 ``{"status": "applied" | "ignored", "events", "applied", "stale",
  "duplicate", "rejected", "ignored"}``; 400 ``{"error", "field", "reason"}``;
  401; 408; 413; 415; 503 with ``Retry-After``.
* ``GET /callbacks/clickatell``: the Platform or legacy HTTP fields as
  query parameters; the same answers but 408, 413 and 415.
* ``GET /messages/{message_id}``: the state and its timeline as JSON (status
  names and codes, outcomes, ISO 8601 UTC times with milliseconds); 404 for a
  message nobody reported, 400 for an id no message can have.
* ``GET /``: the status page: delivery and read rates and p50/p90 latencies
  per channel over a window (``?window=1h|24h|7d|30d``) with a chart over
  time (inline SVG); counts by status, each a link to its list; the store's
  newest messages; deadlines; the dead letter (count and newest bodies); the
  change feed's consumers; a search box (a plain GET form with
  ``?message_id=``); the lifecycle diagram (inline SVG, or mermaid text
  without Graphviz).  ``?refresh=10`` or ``60`` reloads it by itself.
  Server-rendered, every value escaped, no script, nothing loaded from
  elsewhere (a strict Content-Security-Policy says so to the browser).
* ``GET /list``: the message list as a page, with a filter form and "next
  page" links; the same parameters as ``GET /messages``.
* ``GET /healthz``: 200 while the store takes a write (``Store.ping``
  commits a heartbeat) and answers the status page's reads (the counts by
  status and the newest messages: a few rows), else 503, as for five seconds
  after a callback met a failing store; never behind the secret, and it
  reveals nothing.
* ``GET /metrics``: Prometheus metrics (the text format, or OpenMetrics when
  the scraper asks for it): callback events by format and outcome, invalid
  bodies, answer times, and gauges read from the store at scrape time (see
  ``_metrics``).  Behind the secret like every other read.

Every answer but the status page and the metrics is JSON; errors are
``{"error": ...}`` and never carry a traceback (unexpected failures are
logged here, with theirs).  A read's parameter that no store could take (a
NUL or other control character, bytes that are not UTF-8, over 256
characters, a cursor this server did not give out) is 400
``{"error", "parameter"}`` on every store, before any store is asked
(``_params``); the pages show it above their form instead.

Decisions
---------
* **Form bodies are accepted.**  Clickatell's Platform and legacy HTTP
  callbacks can be POSTed as ``application/x-www-form-urlencoded``; their
  fields become the same mapping as query parameters would.  A "form" body
  that is one JSON object or array is read as JSON (``curl -d '{...}'`` sends
  JSON so); one that is neither JSON nor a well-formed form, and no valid
  callback, is kept in the dead letter as it came (less the token).
  Everything but JSON and forms is 415.  JSON must be UTF-8 (RFC 8259); a
  ``charset`` parameter is ignored.
* **The shared secret is off by default: anyone who can reach the URL can
  then post callbacks and read every message's state.**  With ``token`` set, a
  request must carry it as ``?token=...`` (the form Clickatell's callback URL
  can hold) or in the ``X-Deliverystate-Token`` header; with ``basic_auth``
  set, HTTP Basic credentials (``https://user:password@host/...`` in the
  callback URL) are accepted too.  Comparisons take constant time
  (:func:`hmac.compare_digest`).  Once a secret is set it protects the
  callback endpoints *and* the read endpoints (status page, ``/messages``,
  ``/metrics``), which reveal message ids and delivery outcomes; only
  ``/healthz`` stays open for load balancers.  The ``token`` query parameter
  is removed before the fields are parsed or stored (a ``token`` field of a
  form body too), so the secret never lands in the inbox or the dead letter.
  Query strings end up in access logs: prefer the header or Basic
  credentials where you can.  The access log of :func:`serve` writes
  ``token=[redacted]`` in place of the value; uvicorn's own access log, which
  would write it out, is always off (see ``_logs``).
* **Every figure on the page comes from the store**, so every worker (and a
  restarted one) shows the same page.  The delivery figures read every
  message first reported in the window (its row: the first delivery and read
  are kept on it, so no history is read); they are kept for
  ``_figures.FIGURES_TTL_SECONDS`` (10 s) per window, so pages left on
  auto-refresh share one read, and the page says when they were read.
* **Pages ask for the token with a form.**  With a token configured, a page
  opened without it answers 401 with a small form that GETs the same page
  with ``?token=`` (its other parameters kept), and the page's links carry
  the token on.  With only Basic credentials configured, the browser's own
  prompt asks.  JSON endpoints answer a JSON 401 either way.

Mounting
--------
The app's lifespan applies, once at start-up, what a receiver of an older
version left in the store's inbox (:meth:`Tracker.drain_inbox`), and stops the
intake thread at shutdown.  A mounted Starlette app does not get its own
lifespan run, so when you mount the receiver, enter its lifespan from yours
(docs/operations.md, "Mounting the receiver in your app", has the whole
recipe)::

    receiver = create_app(tracker, token=os.environ["CALLBACK_TOKEN"])

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with receiver.router.lifespan_context(receiver):
            yield

    app = Starlette(routes=[Mount("/clickatell", receiver)], lifespan=lifespan)

Modules
-------
``_app`` (routes, the receiver's endpoints, ``create_app``), ``_intake`` (the
intake thread), ``_auth`` (the shared secret), ``_requests`` (reading bodies
within size and time limits), ``_metrics`` (``GET /metrics``), ``_page`` (the
status page, a pure function), ``_serve`` (uvicorn) and ``_logs`` (its
logging and access log).
"""

from __future__ import annotations

from ._app import CALLBACK_PATH, create_app
from ._auth import TOKEN_HEADER, TOKEN_PARAM
from ._protocol import HEADER_TIMEOUT_SECONDS, ConnectionLimits
from ._requests import BODY_TIMEOUT_SECONDS, MAX_BODY_BYTES
from ._serve import http_protocol, serve

__all__ = [
    "BODY_TIMEOUT_SECONDS",
    "CALLBACK_PATH",
    "HEADER_TIMEOUT_SECONDS",
    "MAX_BODY_BYTES",
    "TOKEN_HEADER",
    "TOKEN_PARAM",
    "ConnectionLimits",
    "create_app",
    "http_protocol",
    "serve",
]
