"""The HTTP protocol ``serve`` gives uvicorn: its httptools protocol, guarded against slow clients.

uvicorn reads a request's headers with no time limit: its keep-alive timer
runs only between requests and the first byte of the next one cancels it, so
a client that sends ``GET / HTTP/1.1\\r\\nHost: x\\r\\n`` and stalls holds its
connection, and a file descriptor, forever; a few thousand such clients use
up the descriptors and real callbacks are refused.  The app's own body
deadline (``_requests.BodyDeadline``) cannot help: the app never sees a
request whose headers have not arrived.  So the protocol itself:

* gives each connection ``header_timeout`` seconds, from when it is ready
  for a request (accepted, or its last response sent), to deliver the whole
  request head; past that it is closed (with a 408 if it had begun one);
* keeps at most ``max_connections`` connections per process: a connection
  past the cap closes the one that has waited longest for its request head,
  if that one has waited over a second (a real client sends its head in the
  packet after the handshake), and is otherwise answered 503 with
  ``Retry-After``, or closed if its head does not come within that second.
  At most a quarter of the cap may wait so at once (a flood closes the
  longest-waiting first), so descriptors stay below 1.25 times the cap.

The connections waiting for a request head are kept, per server, in dicts
ordered by when they started waiting: expiring and evicting are so a look at
their first entries, by one timer per server (a few times a second while any
connection waits) rather than one per connection.
Reaching the cap and closing stalled connections are logged as warnings, at
most once a minute each, with counts.

uvicorn's internals this relies on (``connection_made``,
``on_headers_complete``, ``on_response_complete``, the per-connection
``app``, ``server_state.connections``) are pinned by tests over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import typing
import weakref
from typing import Any

import attrs
from starlette.types import Receive, Scope, Send

from ._requests import MAX_BODY_BYTES

__all__ = [
    "HEADER_TIMEOUT_SECONDS",
    "ConnectionLimits",
    "GuardedProtocol",
    "default_max_connections",
]

logger = logging.getLogger(__name__)

#: Seconds a client has to send a request's whole head (request line and headers).
HEADER_TIMEOUT_SECONDS = 15.0
#: Environment variables that carry the limits to ``serve``'s worker processes.
ENV_HEADER_TIMEOUT = "DELIVERYSTATE_SERVE_HEADER_TIMEOUT"
ENV_MAX_CONNECTIONS = "DELIVERYSTATE_SERVE_MAX_CONNECTIONS"
#: How long a connection must have waited for its head before a newcomer may evict it,
#: and how long a newcomer refused at the cap has to send its head (then it gets a 503).
_GRACE_SECONDS = 1.0
#: Seconds between two looks for connections past their deadline.
_TICK_SECONDS = 0.25
#: Seconds between two warnings of the same kind.
_LOG_EVERY_SECONDS = 60.0
_RETRY_AFTER = "5"


def default_max_connections() -> int:
    """Half this process's open-file limit, at most 1,000 (the rest is for the store and logs).

    Connections past the cap still take descriptors (up to a quarter of the
    cap, for up to a second each), so the cap must leave room below the
    limit, as must the store.
    """
    try:
        import resource  # noqa: PLC0415 - POSIX only

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError):  # pragma: no cover - not POSIX
        return 1000
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 1000
    return max(16, min(1000, soft // 2))


def _positive_number(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, not {value}")


@attrs.frozen
class ConnectionLimits:
    """How long a client may take over its request head, and how many connections are kept."""

    header_timeout: float = attrs.field(default=HEADER_TIMEOUT_SECONDS, validator=_positive_number)
    max_connections: int = attrs.field(factory=default_max_connections, validator=_positive_number)

    @classmethod
    def from_environment(cls) -> ConnectionLimits:
        """The limits ``serve`` set in the environment, the defaults for those it did not."""
        timeout = os.environ.get(ENV_HEADER_TIMEOUT)
        cap = os.environ.get(ENV_MAX_CONNECTIONS)
        return cls(
            header_timeout=float(timeout) if timeout else HEADER_TIMEOUT_SECONDS,
            max_connections=int(cap) if cap else default_max_connections(),
        )

    def environment(self) -> dict[str, str]:
        """The variables :meth:`from_environment` reads back as these limits."""
        return {
            ENV_HEADER_TIMEOUT: repr(self.header_timeout),
            ENV_MAX_CONNECTIONS: str(self.max_connections),
        }


class _Connection(typing.Protocol):
    """What the gate uses of a connection (a :class:`GuardedProtocol`)."""

    loop: asyncio.AbstractEventLoop
    connections: set[Any]

    def give_up(self) -> None: ...


class _Tally:
    """A warning written at once, then at most once a minute, with what happened meanwhile."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.counts: dict[str, int] = {}
        self.logged_at: float | None = None

    def note(self, now: float, what: str, *args: Any) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        if self.logged_at is None or now - self.logged_at >= _LOG_EVERY_SECONDS:
            self.logged_at = now
            counts = ", ".join(f"{n} {key}" for key, n in sorted(self.counts.items()))
            logger.warning(self.message, *args, counts)
            self.counts.clear()


class _Gate:
    """One server's limits, its connections waiting for a request head, and its warnings."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        #: connection -> loop time it started waiting (insertion order is that order):
        #: those served, and those past the cap (each answered 503 if its head comes soon)
        self.waiting: dict[_Connection, float] = {}
        self.refused: dict[_Connection, float] = {}
        #: how many refused connections may wait at once: the cap plus these bound descriptors
        self.room = max(1, limits.max_connections // 4)
        self.timer: asyncio.TimerHandle | None = None
        self.at_cap = _Tally(
            "connection limit reached: %d connections open (--max-connections %d); new "
            "ones evict those stalled over 1s in their request head, else get 503 (%s)"
        )
        self.stalled = _Tally(
            "closed connections that sent no complete request head within %gs "
            "(--header-timeout) (%s)"
        )

    def wait(self, connection: _Connection) -> None:
        """Start the connection's head deadline (again, after an answer on a kept connection)."""
        self.waiting.pop(connection, None)
        self.waiting[connection] = connection.loop.time()
        self._watch(connection.loop)

    def forget(self, connection: _Connection) -> None:
        """The connection's head arrived, or it is closed: no deadline."""
        self.waiting.pop(connection, None)
        self.refused.pop(connection, None)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.timer is None:
            self.timer = loop.call_later(_TICK_SECONDS, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self.timer = None
        now = loop.time()
        for stalled in _older(self.waiting, now - self.limits.header_timeout):
            self.stalled.note(now, "closed", self.limits.header_timeout)
            stalled.give_up()
        for late in _older(self.refused, now - _GRACE_SECONDS):
            late.give_up()
        if self.waiting or self.refused:
            self._watch(loop)

    def admit(self, connection: _Connection) -> bool:
        """Whether a new connection is served: it is under the cap, or a stalled one made room."""
        open_now = len(connection.connections)
        if open_now - len(self.refused) <= self.limits.max_connections:
            return True
        now = connection.loop.time()
        cap = self.limits.max_connections
        oldest = next(iter(self.waiting.items()), None)
        if oldest is not None and now - oldest[1] >= _GRACE_SECONDS:
            self.at_cap.note(now, "evicted", open_now, cap)
            oldest[0].give_up()
            return True
        self.at_cap.note(now, "refused", open_now, cap)
        if len(self.refused) >= self.room:  # a flood: the longest-refused one goes now
            next(iter(self.refused)).give_up()
        self.refused[connection] = now
        self._watch(connection.loop)
        return False


def _older(connections: dict[_Connection, float], than: float) -> list[_Connection]:
    """The connections (first in a dict ordered by time) that started waiting before ``than``."""
    found = []
    for connection, since in connections.items():
        if since > than:
            break
        found.append(connection)
    return found


#: Each uvicorn server's gate (several in one process when tests run servers side by side).
_gates: weakref.WeakKeyDictionary[Any, _Gate] = weakref.WeakKeyDictionary()


def _gate(server_state: Any) -> _Gate:
    gate = _gates.get(server_state)
    if gate is None:
        gate = _gates[server_state] = _Gate(ConnectionLimits.from_environment())
    return gate


_REFUSED = {"error": "too many connections; try again later"}


def _raw_response(status: bytes, payload: dict[str, Any]) -> bytes:
    """A whole JSON answer that closes the connection, for the protocol to write itself."""
    body = json.dumps(payload).encode()
    retry = b"retry-after: " + _RETRY_AFTER.encode() + b"\r\n" if status[:1] == b"5" else b""
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\n"
        + retry
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


async def _over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer to a request on a connection past the cap: 503, try again soon."""
    body = json.dumps(_REFUSED).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", _RETRY_AFTER.encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


try:  # uvicorn uses httptools when it is installed (the 'web' extra installs it)
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - depends on the installed extras
    GuardedProtocol: Any = None
else:

    class GuardedProtocol(HttpToolsProtocol):  # type: ignore[no-redef]
        """uvicorn's httptools protocol with a head deadline, a connection cap, and a 413."""

        _gate: _Gate
        _begun = False
        _refused = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._gate = _gate(self.server_state)
            if self._gate.admit(self):
                self._gate.wait(self)
            else:  # 503 if its head comes soon (uvicorn then reads the body and closes)
                self.app = _over_capacity
                self._refused = True

        def connection_lost(self, exc: Exception | None) -> None:
            self._gate.forget(self)
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            self._begun = True
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._begun = False
            self._gate.forget(self)
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and not self.pipeline:
                self._gate.wait(self)  # uvicorn's keep-alive timer runs too

        def give_up(self) -> None:
            """Close a connection stalled before its request head (with a 408 if it began one)."""
            self._gate.forget(self)
            if self.transport.is_closing():
                return
            if self._refused:
                self.transport.write(_raw_response(b"503 Service Unavailable", _REFUSED))
            elif self._begun:
                timeout = self._gate.limits.header_timeout
                payload = {"error": "the request head did not arrive in time"}
                self.transport.write(
                    _raw_response(b"408 Request Timeout", {**payload, "timeout_seconds": timeout})
                )
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            """A declared length past 64 bits is a body too large: the app's 413, not a 400."""
            # called by uvicorn from inside its ``except HttpParserError`` block
            error = sys.exc_info()[1]
            if isinstance(error, httptools.HttpParserError) and "Content-Length" in str(error):
                payload = {"error": "body too large", "limit_bytes": MAX_BODY_BYTES}
                self.transport.write(_raw_response(b"413 Request Entity Too Large", payload))
                self.transport.close()
                return
            super().send_400_response(msg)
