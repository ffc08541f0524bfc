"""Reading the read routes' parameters strictly: every value that may reach a store is checked here.

A query parameter or a path's message id goes to the store as text (a
filter, a cursor, an id to look up), and the stores do not take the same
text: PostgreSQL refuses a NUL that SQLite compares, every driver refuses a
lone surrogate, SQLite refuses an integer past 64 bits.  So every value of
``/messages``, ``/list``, ``/`` and ``/messages/{id}`` is read here before any
store is asked, with one rule for all of them, and an unusable one is an
:class:`~deliverystate.errors.InvalidParameter` naming it, answered 400 on
every store and never logged as the store failing:

* the percent-encoded bytes must be UTF-8 text: Starlette would turn the
  bytes of a lone surrogate (``%ED%A0%80``) into replacement characters, a
  different value from the one sent;
* the text must be what a message id may be (``id_problem``: at most 256
  characters, no control character, no lone surrogate); no filter's, time's
  or limit's valid spelling comes near that.

Two parameters are left to their readers: ``cursor``, which
``decode_cursor`` checks whole (it is base64 of a time and an id, longer than
an id), and ``token``, which only the guard compares and no store sees.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import InvalidParameter
from ..rules._events import id_problem
from ._auth import TOKEN_PARAM

__all__ = ["checked_query", "path_message_id", "refusal"]

#: Parameters whose values are checked by what reads them, not by the id rule.
_READ_ELSEWHERE = frozenset({"cursor", TOKEN_PARAM})
_BAD_NAME = "not UTF-8 text, or holds a control character, or is over 256 characters"


def _decoded(raw: bytes) -> str | None:
    """Percent-decoded ``raw`` (``+`` a space) as UTF-8 text, or None when it is none."""
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _check(name: str, value: str | None) -> str:
    """``value`` when a store can take it as text; :class:`InvalidParameter` naming ``name``."""
    if value is None:
        raise InvalidParameter(
            name, f"{name} is not UTF-8 text (its percent-encoded bytes are no characters)"
        )
    if name not in _READ_ELSEWHERE:
        problem = id_problem(value)
        if problem is not None:
            raise InvalidParameter(name, f"{name}: {problem}")
    return value


def checked_query(request: Request) -> QueryParams:
    """The request's query parameters, each name and value valid text a store can take.

    Read from the raw query string (``a=1&b=2``, ``+`` a space), in order; a
    name that is no such text is refused as the parameter ``query``.
    """
    pairs = []
    for chunk in request.scope.get("query_string", b"").split(b"&"):
        if not chunk:
            continue
        raw_name, _, raw_value = chunk.partition(b"=")
        name = _decoded(raw_name)
        if name is None or id_problem(name) is not None:
            raise InvalidParameter("query", f"the query holds a parameter name that is {_BAD_NAME}")
        pairs.append((name, _check(name, _decoded(raw_value))))
    return QueryParams(pairs)


def path_message_id(request: Request) -> str:
    """The message id in the path of ``/messages/{id}``, checked like a query's ``message_id``."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and _decoded(raw) is None:
        _check("message_id", None)
    return _check("message_id", str(request.path_params["message_id"]))


def refusal(error: InvalidParameter) -> JSONResponse:
    """The JSON answer to an unusable parameter: 400, what is wrong, and which parameter."""
    return JSONResponse(
        {"error": str(error), "parameter": error.parameter}, status_code=error.http_status
    )
