"""Running the receiver: ``serve`` (uvicorn, one or more workers) and the HTTP protocol it uses.

With one worker ``serve`` runs the app it builds in this process.  With
several, uvicorn starts worker processes that each build their own app (and
open their own store) from :func:`app_from_environment`, configured through
environment variables that ``serve`` sets; every store in this package is
safe for several processes (SQLite serialises writers on its lock, PostgreSQL
on row locks), and the result does not depend on which worker takes which
callback.

Logging is configured once (``_logs.logging_config``) and handed to uvicorn,
which applies it again in each worker; the access log (``_logs.AccessLog``,
never uvicorn's own) is switched on in workers by an environment variable
like the rest of their configuration.
"""

from __future__ import annotations

import logging
import logging.config
import os
import threading
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp

from ..stores import DEFAULT_DB, Store, open_store, redact, store_name
from ..tracking._tracker import Tracker
from ._app import create_app
from ._logs import AccessLog, logging_config
from ._protocol import ConnectionLimits, GuardedProtocol
from ._providers import provider_settings

if TYPE_CHECKING:
    from ..forward import Forwarder, ForwardTarget

__all__ = ["app_from_environment", "http_protocol", "serve", "sweep_loop"]

logger = logging.getLogger(__name__)

#: The environment variables ``serve`` hands its worker processes.
_ENV_DB = "DELIVERYSTATE_SERVE_DB"
_ENV_TOKEN = "DELIVERYSTATE_SERVE_TOKEN"
_ENV_BASIC = "DELIVERYSTATE_SERVE_BASIC"
_ENV_ACCESS_LOG = "DELIVERYSTATE_SERVE_ACCESS_LOG"
#: How long ``serve`` waits at shutdown for the forwarder to finish the change in hand.
_FORWARDER_STOP_SECONDS = 5.0


def http_protocol() -> Any:
    """The HTTP protocol ``serve`` gives uvicorn: its own, guarded (see ``_protocol``).

    A client that does not send its request head within the header timeout
    is closed, connections are capped per process, and a ``Content-Length``
    past 64 bits (which uvicorn's httptools parser refuses with a plain-text
    400 before the app sees it) is the app's JSON 413.  Without httptools
    uvicorn uses h11, unguarded: ``"auto"`` is then all there is (the 'web'
    extra installs httptools).
    """
    return GuardedProtocol if GuardedProtocol is not None else "auto"


def app_from_environment() -> ASGIApp:
    """The receiver a uvicorn worker process builds, from the variables ``serve`` set."""
    basic = os.environ.get(_ENV_BASIC)
    credentials = tuple(basic.split(":", 1)) if basic else None
    app = create_app(
        Tracker(open_store(os.environ.get(_ENV_DB, DEFAULT_DB))),
        token=os.environ.get(_ENV_TOKEN) or None,
        basic_auth=credentials,  # type: ignore[arg-type]
        close_store=True,
        **provider_settings(os.environ),
    )
    return AccessLog(app) if os.environ.get(_ENV_ACCESS_LOG) == "1" else app


def serve(
    db: str = DEFAULT_DB,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    *,
    basic_auth: tuple[str, str] | None = None,
    access_log: bool = True,
    workers: int = 1,
    forward: ForwardTarget | None = None,
    sweep_every: float | None = None,
    log_level: str = "info",
    log_format: str = "text",
    limits: ConnectionLimits | None = None,
) -> None:
    """Run the receiver with uvicorn on the store named by ``db`` until stopped.

    ``db`` is what :func:`~deliverystate.stores.open_store` takes (an SQLite
    path by default).  Opening it may raise ``StoreUnavailable`` or
    ``SchemaMismatch`` before anything listens.  ``workers`` processes share
    the port (uvicorn's own workers); each opens the store itself.  The access
    log writes a line per request with any ``?token=`` value redacted
    (uvicorn's own, which would write it, is off).  ``log_level`` (debug,
    info, warning, error) and ``log_format`` (text, json: one JSON object a
    line) configure every logger on stderr, in every worker; logging is
    configured for the whole process, root logger included, as a server's
    entry point does.  With ``forward``, this process also forwards the
    change feed to that target (one forwarder, however many workers; see
    ``deliverystate.forward``), in a thread that stops with the server.
    With ``sweep_every`` (seconds), this process also sweeps the store that
    often (``Tracker.sweep``), in another such thread: one sweeper however
    many workers, and a second one elsewhere would only write duplicates.
    ``limits`` bound how long a client may take over a request's head and
    how many connections a worker keeps (:class:`ConnectionLimits`).
    """
    import uvicorn  # noqa: PLC0415 - only serving needs it; mounting needs Starlette alone

    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if workers > 1 and db == ":memory:":
        raise ValueError("several workers cannot share a :memory: store; use a file or a URL")
    limits = limits if limits is not None else ConnectionLimits()
    os.environ.update(limits.environment())  # read by the protocol, in every worker
    log_config = logging_config(log_level, log_format)
    logging.config.dictConfig(log_config)  # before the first line below, so it is in the format
    store = _open_announced(db, host, port, workers, limits)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "access_log": False,  # uvicorn's: it writes the query string, token and all
        "log_config": log_config,
    }
    # the forwarder shares this process's store: with one worker the app's own
    # (a :memory: store is then forwarded too), else one the workers do not use
    forwarding = _start_forwarder(store, forward) if forward is not None else None
    sweeping = _start_sweeper(store, sweep_every) if sweep_every is not None else None
    shared = forwarding is not None or sweeping is not None  # the store outlives the app
    try:
        if workers == 1:
            app = create_app(
                Tracker(store), token=token, basic_auth=basic_auth, close_store=not shared,
                **provider_settings(os.environ),
            )  # fmt: skip
            uvicorn.run(AccessLog(app) if access_log else app, http=http_protocol(), **options)
        else:
            if not shared:
                _close(store)  # each worker opens its own
            _run_workers(db, token, basic_auth, workers, access_log, options)
    finally:
        if sweeping is not None:
            stop, sweeper = sweeping
            stop.set()
            sweeper.join(timeout=_FORWARDER_STOP_SECONDS)
        if forwarding is not None:
            forwarder, thread = forwarding
            forwarder.stop()
            thread.join(timeout=_FORWARDER_STOP_SECONDS)
            forwarder.close()
        if shared:
            _close(store)


def _open_announced(db: str, host: str, port: int, workers: int, limits: ConnectionLimits) -> Store:
    """The store, opened before listening (a bad db is one clear error), and the start-up lines."""
    store = open_store(db)
    base = f"http://{host}:{port}"
    where = f"Clickatell callback URL {base}/callbacks/clickatell, status page {base}/"
    logger.info("store %s; %d worker(s); %s", store_name(store), workers, where)
    logger.info(
        "request heads must arrive within %gs; at most %d connections per worker",
        limits.header_timeout,
        limits.max_connections,
    )
    if getattr(store, "created", False):  # a mistyped --db would start afresh unnoticed
        logger.warning("created a new, empty database: %s", store_name(store))
    return store


def _close(store: Store) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _start_forwarder(store: Store, target: ForwardTarget) -> tuple[Forwarder, threading.Thread]:
    from ..forward import Forwarder, own_retry_logs  # noqa: PLC0415 - the 'forward' extra

    own_retry_logs()  # the forwarder logs each retry, naming the change: not stamina too
    forwarder = Forwarder(store, target)
    thread = forwarder.start()
    logger.info("forwarding changes to %s as %r", redact(target.url), target.name)
    return forwarder, thread


def sweep_loop(tracker: Tracker, every: float, stop: threading.Event) -> None:
    """Sweep every ``every`` seconds until ``stop`` is set; a failed sweep is logged, not fatal.

    The first sweep runs at once: a receiver that was down past some
    deadlines catches up when it starts.
    """
    while True:
        try:
            summary = tracker.sweep()
        except Exception:  # a store that is down now may answer next time
            logger.exception("sweeping for overdue messages failed; trying again in %ss", every)
        else:
            if summary.applied:
                logger.warning("expired %d overdue message(s) locally", summary.applied)
        if stop.wait(every):
            return


def _start_sweeper(store: Store, every: float) -> tuple[threading.Event, threading.Thread]:
    if every <= 0:
        raise ValueError(f"sweep_every must be positive, not {every}")
    stop = threading.Event()
    thread = threading.Thread(
        target=sweep_loop, args=(Tracker(store), every, stop), name="deliverystate-sweep"
    )
    thread.daemon = True
    thread.start()
    logger.info("sweeping for overdue messages every %gs", every)
    return stop, thread


def _run_workers(
    db: str,
    token: str | None,
    basic_auth: tuple[str, str] | None,
    workers: int,
    access_log: bool,
    options: dict[str, Any],
) -> None:
    import uvicorn  # noqa: PLC0415 - only serving needs it; mounting needs Starlette alone

    os.environ[_ENV_DB] = db
    os.environ[_ENV_TOKEN] = token or ""
    os.environ[_ENV_BASIC] = ":".join(basic_auth) if basic_auth else ""
    os.environ[_ENV_ACCESS_LOG] = "1" if access_log else "0"
    uvicorn.run(
        "deliverystate.web._serve:app_from_environment",
        factory=True,
        workers=workers,
        http="deliverystate.web._protocol:GuardedProtocol" if GuardedProtocol else "auto",
        **options,
    )
