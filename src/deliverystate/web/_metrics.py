"""The receiver's metrics: what ``GET /metrics`` answers, in the Prometheus text format.

Theory of operation
-------------------
Two kinds of numbers, read two ways:

* **What this process answered**, counted on the event loop as each callback
  is answered: the events of each body by format and outcome, invalid bodies
  by the field at fault, and how long each callback took, by status code.
  They live in a :class:`~prometheus_client.CollectorRegistry` of the app's
  own, never in prometheus_client's global one, so that several apps in one
  process (tests, a host app mounting two receivers) count apart.  They start
  at zero with the process.
* **What the store holds**, read from the store at scrape time by a custom
  collector: messages by status, bodies waiting in the inbox, dead letters,
  the change feed's last ``seq`` and how far behind each named consumer (a
  ``serve --forward-to`` forwarder, a ``deliverystate changes`` reader) is.
  Every process sharing the store reports the same values.

Metrics
-------
``deliverystate_callback_events_total{format, outcome}``
    ``format`` is ``one_api``, ``platform``, ``legacy`` or ``unknown`` (a body
    that did not parse).  Events, not bodies, because outcomes belong to
    events (a One API body with three updates may apply one and find two
    stale): ``applied``, ``stale``, ``duplicate``, ``rejected`` as applying
    decided, and ``ignored`` for events that are not status updates.  ``invalid`` counts
    *bodies*, one per body answered 400: a body that did not parse
    (``unknown``), or one that parsed but could not be applied even on its
    own and went to the dead letter (its own format).
``deliverystate_invalid_callbacks_total{field}``
    Bodies answered 400, by the field at fault reduced to a fixed set of names
    (see :func:`field_label`): the reasons themselves are unbounded text.
``deliverystate_callback_duration_seconds{code}``
    A histogram of the seconds from the callback endpoint being called to its
    answer being ready, by HTTP status code (so its ``_count`` counts answers
    by code: 503s, 401s, 413s...).  Both methods of the callback endpoint.
``deliverystate_messages{status}``
    Messages by current status, read from the store at scrape time; every
    catalog status is listed, 0 where no message has it.
``deliverystate_inbox_bodies``, ``deliverystate_dead_letters``
    Bodies an older receiver left in the inbox (applied at start-up), and
    bodies in the dead letter.
``deliverystate_feed_last_seq``, ``deliverystate_feed_behind{consumer}``
    The change feed's last ``seq``, and how many changes each named consumer
    still has to read: the forwarder's lag.
``deliverystate_feed_undeliverable{consumer}``
    The changes a forwarder gave up on (kept as undeliverable).
``deliverystate_store_up``
    1 when the store answered this scrape's reads, else 0.

Decisions
---------
* **A store that does not answer does not fail the scrape**: the counters are
  answered as usual, the store's gauges are left out and
  ``deliverystate_store_up`` is 0.  A failed scrape would hide the counters
  (503s, invalid bodies) that show what is going on.
* **The store's gauges are plain reads.**  The inbox depth and the dead letter
  count are ``store.count_pending()`` and ``store.count_dead_letters()``:
  counts, so a dead letter of thousands of large bodies is not read at each
  scrape.  The counts by status are the store's kept counts (a few rows
  since schema version 7; before, one ``GROUP BY`` over every message), as
  ``/healthz`` and the status page read them.  The scrape runs in a worker
  thread, never on the event loop.
* **With several workers each one counts what it answered**, and a scrape
  reaches whichever worker takes the connection: the counters are that
  worker's own, and may step back when the next scrape reaches another
  (Prometheus reads that as a counter reset), while the store's gauges are
  the same from every worker.  Run one worker where the counters matter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidCallback
from ..rules._catalog import Status
from ..stores import Store
from ..tracking._receipts import Receipt
from ..tracking._stats import feed_status

__all__ = ["BUCKETS", "FORMATS", "OUTCOMES", "ReceiverMetrics", "field_label"]

logger = logging.getLogger("deliverystate.web")

#: The ``format`` label's values: Clickatell's three shapes, the other providers, and bodies
#: that did not parse.
FORMATS = ("one_api", "platform", "legacy", "meta", "twilio", "vonage", "smpp", "unknown")
#: The ``outcome`` label's values (``invalid`` counts bodies, the others events).
OUTCOMES = ("applied", "stale", "duplicate", "rejected", "stored", "ignored", "invalid")
#: Seconds: a callback is answered in milliseconds; a body may take up to 10 s to arrive.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Every field name the parser can blame, without its path; anything else counts as "other".
_FIELDS = frozenset(
    {
        "body",
        "event",
        "messageStatusUpdate",
        "channel",
        "messageId",
        "clientMessageId",
        "statusCode",
        "status",
        "timestamp",
        "apiMsgId",
        "cliMsgId",
    }
)


def field_label(field: str) -> str:
    """The ``field`` label of an invalid body: the last name of the path, without an index.

    ``event.messageStatusUpdate[3].statusCode`` is ``statusCode``; a name the
    parser does not use is ``other``, so the label has a fixed set of values
    whatever a body holds.
    """
    name = field.rsplit(".", 1)[-1].split("[", 1)[0]
    return name if name in _FIELDS else "other"


class ReceiverMetrics:
    """The counters one receiver keeps and the gauges it reads from its store, in its own registry.

    The counting methods run on the event loop and only add to counters
    (prometheus_client's are thread-safe); :meth:`exposition` reads the store
    and belongs in a worker thread.
    """

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        events = Counter(
            "deliverystate_callback_events",
            "Events of the callbacks answered, by the body's format and the event's outcome "
            "(invalid counts bodies answered 400)",
            ["format", "outcome"],
            registry=self.registry,
        )
        self._counter = events
        # every series that can occur exists from the first scrape, so that rate() sees a 0
        self._events = {(f, o): events.labels(f, o) for f in FORMATS[:-1] for o in OUTCOMES}
        self._events["unknown", "invalid"] = events.labels("unknown", "invalid")
        invalid = Counter(
            "deliverystate_invalid_callbacks",
            "Callback bodies answered 400, by the field at fault (its last name)",
            ["field"],
            registry=self.registry,
        )
        self._invalid = {name: invalid.labels(name) for name in (*sorted(_FIELDS), "other")}
        self._seconds = Histogram(
            "deliverystate_callback_duration_seconds",
            "Seconds from a callback request to its answer, by HTTP status code",
            ["code"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._by_code: dict[int, Histogram] = {}
        self.registry.register(_StoreGauges(store))

    def received(self, receipt: Receipt) -> None:
        """Count what a body that parsed came to: its events' outcomes, or one invalid body."""
        shape = receipt.format if receipt.format in FORMATS else "unknown"
        summary = receipt.summary
        if receipt.dead_letter is not None or summary is None:
            self._count(shape, "invalid", 1)
            self._invalid["body"].inc()
            return
        self._count(shape, "applied", summary.applied)
        self._count(shape, "stale", summary.stale)
        self._count(shape, "duplicate", summary.duplicate)
        self._count(shape, "rejected", summary.rejected)
        self._count(shape, "ignored", receipt.ignored)

    def refused(self, error: InvalidCallback) -> None:
        """Count a body that did not parse (kept in the dead letter, answered 400)."""
        self._count("unknown", "invalid", 1)
        self._invalid[field_label(error.field)].inc()

    async def timed(
        self, handler: Callable[[Request], Awaitable[Response]], request: Request
    ) -> Response:
        """``handler``'s answer to ``request``, its time and status code observed."""
        started = time.perf_counter()
        try:
            response = await handler(request)
        except Exception:  # the app's error handler answers it with a 500
            self.answered(500, time.perf_counter() - started)
            raise
        self.answered(response.status_code, time.perf_counter() - started)
        return response

    def answered(self, code: int, seconds: float) -> None:
        """Observe how long the callback endpoint took to answer with ``code``."""
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self._seconds.labels(str(code))
        child.observe(seconds)

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The metrics and their content type: Prometheus text, or OpenMetrics when accepted.

        Reads the store: call it from a worker thread.
        """
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type

    def _count(self, shape: str, outcome: str, amount: int) -> None:
        if amount:
            child = self._events.get((shape, outcome))
            if child is None:  # a receipt made elsewhere, without a format
                child = self._events[shape, outcome] = self._counter.labels(shape, outcome)
            child.inc(amount)


class _StoreGauges:
    """A custom collector: gauges read from the store at scrape time."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def describe(self) -> Iterable[Metric]:
        """The families, empty: registering must not read the store."""
        return _families()

    def collect(self) -> Iterable[Metric]:
        """Read the store; leave its gauges out (``store_up`` 0) when it does not answer."""
        store = self._store
        try:
            counts = store.count_by_status()
            inbox = store.count_pending()
            dead = store.count_dead_letters()
            feed = feed_status(store)
        except Exception as error:
            logger.warning(
                "metrics: the store does not answer (%s); its gauges are left out", error
            )
            (up, *_) = _families()
            up.add_metric([], 0)
            return [up]
        up, messages, inbox_bodies, dead_letters, last_seq, behind, undeliverable = _families()
        up.add_metric([], 1)
        for status in Status:
            messages.add_metric([status.name], counts.get(status, 0))
        inbox_bodies.add_metric([], inbox)
        dead_letters.add_metric([], dead)
        last_seq.add_metric([], feed.last_seq)
        for consumer in sorted(feed.consumers):
            behind.add_metric([consumer], feed.behind(consumer))
        for consumer, count in sorted(feed.undeliverable.items()):
            undeliverable.add_metric([consumer], count)
        return [up, messages, inbox_bodies, dead_letters, last_seq, behind, undeliverable]


def _families() -> list[GaugeMetricFamily]:
    """The store's gauges, without values."""
    return [
        GaugeMetricFamily(
            "deliverystate_store_up", "1 when the store answered this scrape's reads, else 0"
        ),
        GaugeMetricFamily(
            "deliverystate_messages", "Messages tracked, by current status", labels=["status"]
        ),
        GaugeMetricFamily(
            "deliverystate_inbox_bodies", "Callback bodies stored but not applied yet"
        ),
        GaugeMetricFamily("deliverystate_dead_letters", "Bodies kept in the dead letter"),
        GaugeMetricFamily("deliverystate_feed_last_seq", "The change feed's last seq"),
        GaugeMetricFamily(
            "deliverystate_feed_behind",
            "Changes a named feed consumer (a forwarder) has still to read",
            labels=["consumer"],
        ),
        GaugeMetricFamily(
            "deliverystate_feed_undeliverable",
            "Changes a forwarder gave up on, kept as undeliverable",
            labels=["consumer"],
        ),
    ]
