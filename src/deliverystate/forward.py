"""``deliverystate.forward``: the change feed, POSTed to a backend as signed webhooks.

Needs the ``forward`` extra (httpx, standardwebhooks, stamina).

Theory of operation
-------------------
A :class:`Forwarder` is a named consumer of the change feed.  It reads the
feed after its cursor, POSTs each change to the backend as JSON signed per the
Standard Webhooks specification (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``), one at a time and in ``seq`` order (so in order per
message), and commits its cursor only after the backend answered 2xx:

* at least once: a forwarder killed at any moment resumes from its cursor,
  and may send again the changes it sent since its last commit (at most
  ``COMMIT_EVERY``, or half a second's worth); the ``webhook-id`` of a change
  is made from the change itself (see :func:`webhook_id`), so the backend
  drops the repeats, even of a change the feed holds twice;
* a backend that is down or answers anything but 2xx is retried with
  exponential backoff and jitter (``stamina``), honouring ``Retry-After``,
  until ``horizon`` seconds have passed since the first attempt; then the
  change is kept as *undeliverable* (``Store.undeliverable``; shown by
  ``stats`` and the status page, sent again by :meth:`Forwarder.redeliver`)
  and the forwarder moves on.  Nothing is dropped silently.

The horizon is counted by the running process: a forwarder restarted while a
change is failing starts counting again.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
import json
import logging
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

try:
    import httpx
    import stamina
    from stamina.instrumentation import (
        PrometheusOnRetryHook,
        RetryHookFactory,
        set_on_retry_hooks,
    )
    from standardwebhooks import Webhook
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"forwarding needs the 'forward' extra ({error.name} is missing): "
        "pip install 'deliverystate[forward]'"
    ) from error

from .rules._events import Change, check_consumer
from .rules._time import iso
from .stores import Store
from .tracking._follow import follow
from .tracking._wire import change_json

__all__ = [
    "COMMIT_EVERY",
    "DEFAULT_HORIZON",
    "DEFAULT_NAME",
    "EVENT_TYPE",
    "DeliveryFailed",
    "ForwardReport",
    "ForwardTarget",
    "Forwarder",
    "check_secret",
    "new_secret",
    "own_retry_logs",
    "webhook_body",
    "webhook_id",
]

logger = logging.getLogger(__name__)

#: The consumer name a forwarder keeps its cursor under unless told otherwise.
DEFAULT_NAME = "forward"
#: Seconds a change is retried before it is recorded as undeliverable: a day, as
#: GOV.UK Notify and Svix retry for hours to days.
DEFAULT_HORIZON = 24 * 3600.0
#: The webhook ``type`` of every change.
EVENT_TYPE = "message.status_changed"
#: Delivered changes after which the cursor is committed (also every half second).
COMMIT_EVERY = 100
_COMMIT_SECONDS = 0.5
#: Seconds each undeliverable change is retried for by ``redeliver``.
_REDELIVER_HORIZON = 10.0
#: Where each change is counted in ``Forwarder._totals``.
_DELIVERED, _SKIPPED, _GAVE_UP = 0, 1, 2
#: The name stamina's instrumentation (its Prometheus counter) knows the retries by.
_RETRIED = "deliverystate.forward"
#: How much of a failing answer's body an error keeps.
_BODY_EXCERPT = 200


def own_retry_logs() -> None:
    """Leave the logging of retries to the forwarder: stamina's own logging hook off.

    stamina logs each retry it schedules as a bare ``stamina.retry_scheduled``
    line (its details only in the record's extra fields), beside the
    forwarder's own line, which names the change and the error.  A program
    that runs a forwarder and owns its logging (``deliverystate forward``,
    ``serve --forward-to``) calls this once; stamina's Prometheus counter
    stays on where ``prometheus_client`` is installed.  It sets stamina's
    process-wide hooks, so a library embedding a forwarder leaves that choice
    to its application.
    """
    hooks: list[RetryHookFactory] = []
    if importlib.util.find_spec("prometheus_client") is not None:
        hooks.append(PrometheusOnRetryHook)
    set_on_retry_hooks(hooks)


def new_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(secret: str) -> Webhook:
    """The signer for ``secret``, or ``ValueError`` saying what a secret must look like."""
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ValueError(
            "the secret must be a Standard Webhooks secret: 'whsec_' and at least 16 bytes in "
            "base64 (deliverystate forward --new-secret prints one)"
        )
    return Webhook(secret)


def webhook_id(change: Change) -> str:
    """The change's ``webhook-id``: one per change, however often it is sent or written.

    Derived from what the change is, the message, its new status and the
    time of the report that made it (not from ``seq``, nor ``previous``): a
    change written to the feed twice (a message pruned, then started afresh
    by a late retry of the same report) keeps its id, so a receiver that
    drops repeats by ``webhook-id`` drops it too.  Two different changes of a
    message differ in status or time, so in id.  ``ds_`` and 128 bits of
    SHA-256 in hex.
    """
    what = json.dumps([change.message_id, int(change.status), change.timestamp_ms])
    return "ds_" + hashlib.sha256(what.encode()).hexdigest()[:32]


def webhook_body(change: Change) -> bytes:
    """The JSON a change is sent as: ``type``, ``timestamp`` and the change as ``data``."""
    payload = {
        "type": EVENT_TYPE,
        "timestamp": iso(change.timestamp_ms),
        "data": change_json(change),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class DeliveryFailed(Exception):
    """The backend answered a change with something other than 2xx."""

    def __init__(self, url: str, status: int, body: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status} from {url}: {body[:_BODY_EXCERPT]}".rstrip(": "))
        self.url = url
        self.status = status
        self.retry_after = retry_after


class _Stopped(Exception):
    """The forwarder was asked to stop while a change was failing."""


@attrs.frozen
class ForwardReport:
    """What a forwarder did: changes delivered, passed over, given up on; where its cursor is."""

    delivered: int
    skipped: int
    undeliverable: int
    position: int


def _check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")) or len(url) < len("http://x"):
        raise ValueError(f"the target must be an http:// or https:// URL, not {url!r}")
    return url


def _check_horizon(horizon: float) -> float:
    if not horizon > 0:
        raise ValueError(f"the horizon must be more than 0 seconds, not {horizon}")
    return float(horizon)


@attrs.frozen
class ForwardTarget:
    """Where and how to forward: the backend's URL and secret, the consumer name, filters.

    Checked when made, so that a bad URL or secret is refused before anything
    runs.  ``only_final`` sends only changes to a final status; ``horizon``
    is how many seconds a change is retried before it is kept as undeliverable.
    """

    url: str = attrs.field(converter=_check_url)
    secret: str = attrs.field(repr=False)
    name: str = attrs.field(default=DEFAULT_NAME, converter=check_consumer)
    only_final: bool = False
    horizon: float = attrs.field(default=DEFAULT_HORIZON, converter=_check_horizon)

    @secret.validator
    def _valid_secret(self, _: object, secret: str) -> None:
        check_secret(secret)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


class Forwarder:
    """Sends a store's change feed to a :class:`ForwardTarget`, as the target's consumer name.

    ``timeout`` bounds each HTTP attempt; ``wait_initial`` and ``wait_max``
    the backoff between attempts (seconds).
    """

    def __init__(
        self,
        store: Store,
        target: ForwardTarget,
        *,
        timeout: float = 10.0,
        wait_initial: float = 0.5,
        wait_max: float = 60.0,
    ) -> None:
        self.store = store
        self.target = target
        self.url = target.url
        self.name = target.name
        self.horizon = target.horizon
        self._signer = check_secret(target.secret)
        self._waits = (min(wait_initial, wait_max), wait_max)
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._stop = threading.Event()
        self._totals = [0, 0, 0]  # delivered, skipped, undeliverable, by this forwarder

    @property
    def report(self) -> ForwardReport:
        """What this forwarder has done so far, and where its cursor is."""
        delivered, skipped, undeliverable = self._totals
        return ForwardReport(delivered, skipped, undeliverable, self.store.cursor(self.name))

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def stop(self) -> None:
        """Ask :meth:`run` to return (after the change in hand, or its next retry)."""
        self._stop.set()

    def send(self, change: Change) -> None:
        """POST one change once; ``DeliveryFailed`` or ``httpx.TransportError`` if not 2xx."""
        body = webhook_body(change)
        message_id = webhook_id(change)
        now = datetime.now(timezone.utc)
        headers = {
            "content-type": "application/json",
            "user-agent": "deliverystate-forward",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(message_id, now, body.decode()),
        }
        response = self._client.post(self.url, content=body, headers=headers)
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(
                self.url, response.status_code, response.text.strip(), _retry_after(response)
            )

    def _backoff(self, error: BaseException) -> bool | float:
        """stamina's hook: retry any failure (after ``Retry-After`` if given) unless stopping."""
        if self._stop.is_set():
            return False
        if isinstance(error, DeliveryFailed) and error.retry_after is not None:
            return min(error.retry_after, self._waits[1])
        return isinstance(error, DeliveryFailed | httpx.TransportError)

    def _retrying(self, change: Change, error: BaseException) -> bool | float:
        """:meth:`_backoff`, and a line in the log for each attempt that will be retried."""
        backoff = self._backoff(error)
        if backoff is not False:
            pause = "" if backoff is True else f" in {float(backoff):g} s (Retry-After)"
            logger.warning(
                "change %s (%s %s) not delivered: %s; trying again%s",
                change.seq,
                change.message_id,
                change.status.name,
                error,
                pause,
                extra={"seq": change.seq, "message_id": change.message_id, "error": str(error)},
            )
        return backoff

    def deliver(self, change: Change, horizon: float | None = None) -> str | None:
        """Send a change, retrying until the horizon; None once sent, else the last error.

        Each failed attempt that will be retried is logged (``deliverystate.forward``,
        WARNING), saying which change and why.
        """
        try:
            for attempt in stamina.retry_context(
                on=functools.partial(self._retrying, change),
                attempts=None,
                timeout=self.horizon if horizon is None else horizon,
                wait_initial=self._waits[0],
                wait_max=self._waits[1],
                name=_RETRIED,
            ):
                with attempt:
                    self.send(change)
        except (DeliveryFailed, httpx.TransportError) as error:
            if self._stop.is_set():
                raise _Stopped from error
            return str(error) or type(error).__name__
        return None

    def _give_up(self, change: Change, error: str) -> None:
        self.store.add_undeliverable(self.name, change, error)
        logger.warning(
            "gave up on change %s (%s %s) after %.0f s: %s; kept as undeliverable",
            change.seq,
            change.message_id,
            change.status.name,
            self.horizon,
            error,
        )

    def forward(self, changes: Sequence[Change]) -> int:
        """Deliver a page of changes in order, committing the cursor as they are handled.

        Returns the position reached: the page's last ``seq``, or less if the
        forwarder was stopped while a change was failing.
        """
        position = committed = self.store.cursor(self.name)
        last_commit, uncommitted = time.monotonic(), 0
        try:
            for change in changes:
                if change.seq <= position:
                    continue  # already handled (a page read before a commit)
                outcome = self._handle(change)
                self._totals[outcome] += 1
                position, uncommitted = change.seq, uncommitted + 1
                if (
                    outcome == _GAVE_UP
                    or uncommitted >= COMMIT_EVERY
                    or time.monotonic() - last_commit >= _COMMIT_SECONDS
                ):
                    self.store.commit_cursor(self.name, position)
                    committed, uncommitted, last_commit = position, 0, time.monotonic()
        except _Stopped:
            pass
        finally:
            if position != committed:
                self.store.commit_cursor(self.name, position)
        return position

    def _handle(self, change: Change) -> int:
        """Send (or pass by) one change; which of the totals it counts in."""
        if self.target.only_final and not change.is_final:
            return _SKIPPED
        error = self.deliver(change)
        if error is None:
            return _DELIVERED
        self._give_up(change, error)
        return _GAVE_UP

    def run(self, *, follow_feed: bool = True) -> ForwardReport:
        """Forward from the cursor: until :meth:`stop` (``follow_feed``) or the feed's end."""
        if follow_feed:
            pages: Any = follow(self.store, self.store.cursor(self.name), stop=self._stop)
        else:
            pages = iter(lambda: self.store.changes(self.store.cursor(self.name)), [])
        for page in pages:
            if self.forward(page) < page[-1].seq or self._stop.is_set():
                break
        return self.report

    def start(self) -> threading.Thread:
        """Run :meth:`run` in a daemon thread (what ``serve --forward-to`` does)."""
        thread = threading.Thread(target=self.run, name=f"forward {self.name}", daemon=True)
        thread.start()
        return thread

    def redeliver(self) -> ForwardReport:
        """Try every undeliverable change of this consumer once more; forget those delivered."""
        delivered = failed = 0
        for entry in self.store.undeliverable(self.name):
            error = self.deliver(entry.change, min(self.horizon, _REDELIVER_HORIZON))
            if error is None:
                self.store.remove_undeliverable(self.name, entry.change.seq)
                delivered += 1
            else:
                self.store.add_undeliverable(self.name, entry.change, error)  # the latest error
                failed += 1
        return ForwardReport(delivered, 0, failed, self.store.cursor(self.name))
