"""Reading a request: its media type, its fields, and its body within size and time limits.

A form body may really be JSON: ``curl -d '{...}'`` posts it with the form
content type unless told otherwise, so :func:`is_json` says when the raw body
is one JSON object or array, :func:`is_form` when it is a well-formed form,
and :func:`drop_field` takes the token out of a body that is neither and is
kept as it came.

A receiver must never hold a huge body or a connection forever: the body is
read chunk by chunk and cut at :data:`MAX_BODY_BYTES` whatever
``Content-Length`` said, and a body that has not fully arrived within the
body timeout is cut too (by one watchdog for the whole app, see
:class:`BodyDeadline`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import unquote, unquote_plus

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from ..errors import InvalidCallback

__all__ = [
    "BODY_TIMEOUT_SECONDS",
    "FORM",
    "JSON",
    "MAX_BODY_BYTES",
    "BodyDeadline",
    "BodyTooLarge",
    "drop_field",
    "fields",
    "is_form",
    "is_json",
    "media_type",
    "read_body",
]

#: The largest request body accepted; Clickatell's callbacks are well under 2 KiB.
MAX_BODY_BYTES = 64 * 1024
#: Seconds a request body may take to arrive in full (a callback takes milliseconds).
BODY_TIMEOUT_SECONDS = 10.0
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def _unquoted(part: str, field: str) -> str:
    """A form or query part percent-decoded as UTF-8, strictly: bytes that are no text refused."""
    try:
        return unquote(part.replace("+", " "), errors="strict")
    except UnicodeDecodeError as error:
        raise InvalidCallback(
            field, f"not UTF-8 text once percent-decoded ({error.reason})", part
        ) from None


def fields(raw: bytes, *, drop: str | None = None) -> dict[str, str]:
    """A query string or form body as the mapping the parser takes: one string per field.

    Decoded as ``parse_qsl`` would, but strictly, whichever way the fields
    came, so that the same bytes get the same answer: a byte outside ASCII, an
    escape that is not UTF-8 text (``%ED%A0%80``, a lone surrogate), or a
    field given twice (which of two status codes would count?) is an
    :class:`InvalidCallback` naming the field, or ``body`` when even the
    field's name is no text.  ``drop`` (the token) is left out first.
    """
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as error:
        raise InvalidCallback(
            "body", f"not URL-encoded: byte {raw[error.start]:#04x} at {error.start} is not ASCII"
        ) from None
    found: dict[str, str] = {}
    given: dict[str, int] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        encoded_name, _, encoded_value = pair.partition("=")
        name = _unquoted(encoded_name, "body")
        if name == drop:
            continue
        value = _unquoted(encoded_value, name)
        if name in found:
            given[name] = given.get(name, 1) + 1
        else:
            found[name] = value
    for name, count in given.items():
        raise InvalidCallback(name, f"given {count} times (expected one value)", count)
    return found


def is_json(body: bytes) -> bool:
    """Whether the raw body is one JSON object or array, whatever the content type said.

    No form field name starts with a brace or a bracket, and a form's ``=``
    and ``&`` cannot make such a body parse as JSON, so the two never mix up.
    """
    if body.lstrip()[:1] not in (b"{", b"["):
        return False
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def is_form(body: bytes) -> bool:
    """Whether the raw body is a well-formed form: ``name=value`` pairs joined by ``&``.

    The form parser reads anything (``hello`` becomes a field named hello);
    this says whether what it read is what the sender wrote.  A body opening
    like JSON is not a form, whatever ``=`` its strings hold.
    """
    if body.lstrip()[:1] in (b"{", b"["):
        return False
    return all(b"=" in pair for pair in body.split(b"&") if pair)


def drop_field(body: bytes, name: str) -> bytes:
    """A form body without its ``name=...`` pairs, every other byte as it came.

    For keeping a body in the dead letter as it came, except for the secret:
    the token may travel in the body and must never be stored.
    """
    pairs = body.split(b"&")
    kept = [
        pair
        for pair in pairs
        if unquote_plus(pair.split(b"=", 1)[0].decode("ascii", errors="replace")) != name
    ]
    return body if len(kept) == len(pairs) else b"&".join(kept)


def media_type(request: Request) -> str:
    """The content type without parameters, lower-cased ("" when absent)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


class BodyTooLarge(Exception):
    """The request body passed :data:`MAX_BODY_BYTES`."""


async def read_body(request: Request) -> bytes:
    """The request body, refusing (before reading it) a declared or (while reading) a real excess.

    Stops reading at the first chunk past the limit, so memory stays bounded
    whatever the client sends.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class BodyDeadline:
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
        """:func:`read_body`, or ``TimeoutError`` when it is not done by the deadline."""
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - Starlette always runs requests in a task
            return await read_body(request)
        self._reads[task] = asyncio.get_running_loop().time() + self.timeout
        try:
            return await read_body(request)
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

    async def read_or_answer(self, request: Request) -> bytes | JSONResponse:
        """The body, or the answer to one that did not come whole and in time (413, 408, 400)."""
        try:
            return await self.read(request)
        except BodyTooLarge:
            return _answer(413, "body too large", limit_bytes=MAX_BODY_BYTES)
        except TimeoutError:
            answer = _answer(408, "the body did not arrive in time", timeout_seconds=self.timeout)
            answer.headers["Connection"] = "close"
            return answer
        except ClientDisconnect:
            return _answer(400, "the client went away before sending the whole body")

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
