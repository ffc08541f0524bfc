"""How a store is named wherever it is printed: never with its password.

A PostgreSQL location carries its password in one of several places, and
every one of them ends up in a title, an error, a log line or a JSON field
unless it is taken out first.  :func:`redact` takes it out of any location
text the store can be given (run it on anything that may name a database);
:func:`store_name` names an opened store.  The built-in stores keep only a
redacted name (their ``target``, the name their errors carry), so a caller
that names a store by the store, not by the ``--db`` text it was opened
from, cannot print a password.

Redacted (the password becomes ``***``):

* a URL's user information, ``postgresql://user:secret@host/db`` and
  ``postgres://...``, whatever the password holds (``@``, ``:``, ``/``,
  percent-encoded or not): everything from the first ``:`` of the user
  information to the ``@`` before the host;
* a ``password=`` (or ``sslpassword=``) query parameter of a URL;
* a ``password=`` key of a libpq ``key=value`` DSN, quoted (``'a b\\'c'``) or not.

When it cannot tell where a password ends, it hides more rather than less.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._protocol import Store

__all__ = ["MASK", "redact", "store_name"]

#: What a password is replaced by.
MASK = "***"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# a query parameter naming a password (``password``, ``sslpassword``), up to the next one
_QUERY_SECRET = re.compile(r"([?&][A-Za-z_]*password=)[^&#]*", re.IGNORECASE)
# a libpq key=value password: a quoted value (with backslash escapes) or up to white space
_KEY_SECRET = re.compile(
    r"(\b[A-Za-z_]*password\s*=\s*)(?:'(?:[^'\\]|\\.)*(?:'|$)|\S+)", re.IGNORECASE
)


def redact(location: str) -> str:
    """``location`` (an SQLite path, a URL, a libpq DSN) with every password as ``***``."""
    scheme = _SCHEME.match(location)
    if scheme is None:
        return _KEY_SECRET.sub(rf"\1{MASK}", location)
    head, rest = location[: scheme.end()], location[scheme.end() :]
    return head + _QUERY_SECRET.sub(rf"\1{MASK}", _without_userinfo_password(rest))


def _without_userinfo_password(rest: str) -> str:
    """A URL after ``scheme://`` with the password of its user information masked.

    The user information ends at the last ``@`` before the path, query or
    fragment; a password holding an unencoded ``/``, ``?`` or ``#`` puts
    that ``@`` later, so without one there it is the last ``@`` of all.
    """
    authority_end = len(rest)
    for separator in "/?#":
        found = rest.find(separator)
        if found != -1:
            authority_end = min(authority_end, found)
    at = rest.rfind("@", 0, authority_end)
    if at == -1:
        at = rest.rfind("@")
    if at == -1:
        return rest
    user, colon, _password = rest[:at].partition(":")
    if not colon or any(c in user for c in "/?#"):
        return rest
    return f"{user}:{MASK}{rest[at:]}"


def store_name(store: Store) -> str:
    """What to call ``store`` in output: its ``target``, redacted again, else its class.

    The built-in stores' ``target`` is already redacted; redacting it again
    keeps a store of another author that names itself by its raw URL from
    printing a password either.
    """
    target = getattr(store, "target", None)
    return redact(target) if isinstance(target, str) else f"a {type(store).__name__}"
