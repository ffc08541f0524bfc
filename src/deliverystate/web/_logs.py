"""Logging for ``serve``: an access log that never writes the token, as text or JSON lines.

Theory of operation
-------------------
``serve`` hands one configuration (:func:`logging_config`) to
:func:`logging.config.dictConfig` and to uvicorn's ``log_config``, so that
deliverystate's own loggers, uvicorn's and every library's go to one handler
on stderr in one format, in the process that starts and in every worker
uvicorn spawns (uvicorn applies ``log_config`` again in each worker).

The access log is :class:`AccessLog`, an ASGI wrapper around the app, not
uvicorn's own access log, which stays off: uvicorn writes the request line
with its query string, and the query string is where Clickatell's callback
URL carries the shared secret (``?token=...``).  This one writes, once the
app has answered, the method, the path with the value of every ``token``
parameter replaced by ``[redacted]`` (:func:`redact_query`), the status, the
time taken and the client's address.

Decisions
---------
* **The path is the raw request target**, never the percent-decoded path,
  with anything but printable ASCII escaped (``\\x0a``), so that no request
  can write a line break, or anything that looks like one, into the log.
* **A parameter is redacted whenever it could be the token**: its name is
  percent- and plus-decoded as Starlette decodes it (``%74oken=`` is
  ``token=``), and compared stripped and in any case; parameters are split on
  ``&`` (what the app splits on) and on ``;`` (what some proxies split on).
* **Libraries keep to their warnings**: ``--log-level`` sets deliverystate's
  and uvicorn's loggers; the root logger, which every other library's
  records reach (httpx writes a line per request at INFO), is set to the
  same level but never below WARNING, unless the level is DEBUG.
* **JSON lines are flat** (:class:`JsonFormatter`): ``time`` (ISO 8601 UTC,
  milliseconds), ``level``, ``logger``, ``message``, and for access lines
  ``method``, ``path``, ``status``, ``duration_ms`` and ``client``; a
  traceback is one more field, ``exception``, so even it stays on one line.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..rules._time import iso_datetime
from ._auth import TOKEN_PARAM

__all__ = [
    "ACCESS_FIELDS",
    "ACCESS_LOGGER",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "AccessLog",
    "JsonFormatter",
    "logging_config",
    "redact_query",
    "request_target",
]

#: The logger access lines are written to.
ACCESS_LOGGER = "deliverystate.access"
#: The fields an access line carries besides its message (``extra`` of its record).
ACCESS_FIELDS = ("method", "path", "status", "duration_ms", "client")
#: What ``--log-level`` accepts.
LOG_LEVELS = ("debug", "info", "warning", "error")
#: What ``--log-format`` accepts.
LOG_FORMATS = ("text", "json")
_REDACTED = "[redacted]"
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_SEPARATORS = re.compile(r"([&;])")
_CONTROL = {code: f"\\x{code:02x}" for code in (*range(32), 127)}

access_logger = logging.getLogger(ACCESS_LOGGER)


def _printable(text: str) -> str:
    """``text`` with control characters and anything past ASCII escaped."""
    if text.isascii() and text.isprintable():  # nearly always: nothing to escape
        return text
    return text.translate(_CONTROL).encode("ascii", "backslashreplace").decode("ascii")


def redact_query(query: str) -> str:
    """``query`` with the value of every ``token`` parameter replaced by ``[redacted]``.

    Names are compared decoded, stripped and in any case: ``TOKEN=`` is not
    the app's token, but its value may well be the secret.
    """
    if "%" not in query and TOKEN_PARAM not in query.lower():  # the usual case: no token
        return query
    parts = _SEPARATORS.split(query)
    for index in range(0, len(parts), 2):  # the odd indexes hold the separators
        name = parts[index].partition("=")[0]
        if unquote_plus(name).strip().lower() == TOKEN_PARAM:
            parts[index] = f"{name}={_REDACTED}"
    return "".join(parts)


def request_target(scope: Scope) -> str:
    """The request's path and query as received, token redacted, safe to write on one line."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope.get("path", ""))
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        path = f"{path}?{redact_query(query)}"
    return _printable(path)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return "-"
    host, port = client
    return _printable(f"{host}:{port}")


class AccessLog:
    """Wraps an ASGI app: one access line per HTTP request, once the app has answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not access_logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what uvicorn answers when the app fails before it answered

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            _log_request(scope, status, time.perf_counter() - started)


def _log_request(scope: Scope, status: int, seconds: float) -> None:
    method = _printable(str(scope.get("method", "")))
    target = request_target(scope)
    client = _client(scope)
    duration_ms = round(seconds * 1000, 3)
    access_logger.info(
        '%s - "%s %s HTTP/%s" %d %.1f ms',
        client,
        method,
        target,
        _printable(str(scope.get("http_version", "1.1"))),
        status,
        duration_ms,
        extra={
            "method": method,
            "path": target,
            "status": status,
            "duration_ms": duration_ms,
            "client": client,
        },
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and an access line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON; a traceback becomes the ``exception`` field."""
        when = datetime.fromtimestamp(record.created, timezone.utc)
        entry: dict[str, Any] = {
            "time": iso_datetime(when),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ACCESS_FIELDS:
            if field in record.__dict__:
                entry[field] = record.__dict__[field]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def logging_config(level: str = "info", log_format: str = "text") -> dict[str, Any]:
    """The ``dictConfig`` of ``serve`` and its workers: one stderr handler, in one format.

    ``level`` is one of :data:`LOG_LEVELS` (any case), ``log_format`` one of
    :data:`LOG_FORMATS`; anything else is a ``ValueError``.  Loggers that
    exist already are kept (``disable_existing_loggers`` is false).
    """
    name = level.lower()
    if name not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    chosen = name.upper()
    root = chosen if name in ("debug", "error") else "WARNING"
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": _TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"deliverystate": formatter},
        "handlers": {
            "deliverystate": {
                "class": "logging.StreamHandler",
                "formatter": "deliverystate",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "deliverystate": {"handlers": ["deliverystate"], "level": chosen, "propagate": False},
            "uvicorn": {"handlers": ["deliverystate"], "level": chosen, "propagate": False},
            "uvicorn.error": {"level": chosen},
            # uvicorn's own access log would write the token: it stays off (see above)
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": ["deliverystate"], "level": root},
    }
