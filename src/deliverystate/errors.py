"""Every error deliverystate raises on purpose, in one place.

Expected situations (a stale report, a duplicate, a rejected one) are returned
values, never exceptions.  What is raised is misuse or input that cannot be
used, and each error:

* derives from :class:`DeliveryStateError`, so one ``except`` catches them all;
* also derives from the built-in it resembles (``ValueError`` for bad input,
  ``ConnectionError`` for an unreachable store, ...), so code that already
  catches those keeps working;
* carries its facts as attributes, not only in its message;
* says which HTTP status answers it (``http_status``, like h11's
  ``ProtocolError.error_status_hint``), so the web receiver and the command
  line map errors in one place each instead of one ``except`` per call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .rules._catalog import Status

__all__ = [
    "CursorMovedBack",
    "DeliveryStateError",
    "GraphvizNotFound",
    "IllegalTransition",
    "InvalidCallback",
    "InvalidParameter",
    "NoDatabase",
    "PolicyMismatch",
    "SchemaMismatch",
    "StoreUnavailable",
    "UnknownStatusCode",
]


class DeliveryStateError(Exception):
    """The base of deliverystate's errors; ``http_status`` is the answer a server gives."""

    #: The HTTP status that answers this error (a hint, as in h11).
    http_status: ClassVar[int] = 500


class UnknownStatusCode(DeliveryStateError, ValueError):
    """A status code (or name) that the catalog does not know.

    Raised instead of guessing; ``value`` is what was looked up.
    """

    http_status = 400

    def __init__(self, value: object) -> None:
        super().__init__(f"unknown Clickatell status {value!r}: not in the catalog")
        self.value = value


class InvalidCallback(DeliveryStateError, ValueError):
    """A callback payload that cannot be turned into status events.

    ``field`` names the offending field (a dotted path into the body, or
    ``"body"`` when the body as a whole is unusable) and ``reason`` says what
    is wrong with it; ``value`` is the offending value when there is one.
    """

    http_status = 400

    def __init__(self, field: str, reason: str, value: object = None) -> None:
        super().__init__(f"invalid callback: {field}: {reason}")
        self.field = field
        self.reason = reason
        self.value = value


class InvalidParameter(DeliveryStateError, ValueError):
    """A request's parameter (a list filter, a cursor, a message id to look up) that is unusable.

    ``parameter`` names it as the request spelt it (``cursor``,
    ``client_message_id``, ``message_id``, ...) and ``reason`` is the whole
    sentence saying what is wrong, which names it too.  Answered 400 on every
    store, before any store is asked: bad input is never the store failing.
    """

    http_status = 400

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(reason)
        self.parameter = parameter
        self.reason = reason


class IllegalTransition(DeliveryStateError, ValueError):
    """A strict step that the lifecycle does not allow; the state is left as it was."""

    http_status = 409

    def __init__(self, source: Status, destination: Status, message_id: str | None = None) -> None:
        where = f" for message {message_id!r}" if message_id is not None else ""
        super().__init__(
            f"illegal transition{where}: {source.name} -> {destination.name} "
            f"is not in the lifecycle"
        )
        self.source = source
        self.destination = destination
        self.message_id = message_id


class PolicyMismatch(DeliveryStateError, ValueError):
    """A store's precedence keys were computed by another policy than the tracker's."""

    http_status = 500

    def __init__(self, target: str, stored: str, requested: str) -> None:
        super().__init__(
            f"{target} holds keys of policy {stored!r}; this tracker uses "
            f"{requested!r}. Use one policy for all workers, or call "
            f"store.adopt_policy(policy) once to recompute the keys"
        )
        self.target = target
        self.stored = stored
        self.requested = requested


class CursorMovedBack(DeliveryStateError, ValueError):
    """A consumer's cursor asked to move back: ``commit_cursor`` only moves forwards.

    A cursor says which changes a consumer has handled, and prune keeps the
    changes no cursor has passed; moving one back would claim that handled
    changes were not, and ask for changes that may be gone.  ``consumer`` is
    the cursor's name, ``seq`` what was asked and ``current`` where it stays.
    To read a feed again from the start, drop the cursor (``drop_cursor``).
    """

    http_status = 409

    def __init__(self, consumer: str, seq: int, current: int) -> None:
        super().__init__(
            f"cursor {consumer!r} is at seq {current}; it only moves forwards, not to {seq} "
            "(drop_cursor forgets it, to read the feed again)"
        )
        self.consumer = consumer
        self.seq = seq
        self.current = current


class StoreUnavailable(DeliveryStateError, ConnectionError):
    """The database cannot be reached, opened or written.

    ``target`` names the database (a path, or a DSN without its password) and
    ``reason`` is the driver's explanation.  The batch that was being written,
    if any, was rolled back.
    """

    http_status = 503

    def __init__(self, target: str, reason: str) -> None:
        super().__init__(f"database {target} is unavailable: {reason}")
        self.target = target
        self.reason = reason


class NoDatabase(DeliveryStateError, FileNotFoundError):
    """A store that must exist (a read-only command's) is not there; nothing was created.

    ``target`` names where it was looked for (a path, or a PostgreSQL URL
    without its password and the schema) and ``reason`` says what is
    missing: the file, the schema, or deliverystate's tables in it.
    ``path`` is ``target`` under its first name, from when only SQLite had one.
    """

    http_status = 404

    def __init__(self, target: str, reason: str | None = None) -> None:
        super().__init__(f"no database at {target}" + (f": {reason}" if reason else ""))
        self.target = target
        self.path = target
        self.reason = reason


class SchemaMismatch(DeliveryStateError, RuntimeError):
    """The database's schema version is not the one this deliverystate reads.

    Newer: written by a newer deliverystate, which this one cannot read.
    Older: opened without migrating (a read-only command writes nothing,
    so it does not migrate either); any writing command migrates it.
    """

    http_status = 500

    def __init__(self, target: str, found: int, expected: int) -> None:
        if found > expected:
            advice = (
                f"newer than this deliverystate understands ({expected}); "
                "upgrade deliverystate to open it"
            )
        else:
            advice = (
                f"older than this deliverystate's ({expected}), and a read-only command does "
                "not migrate it; a writing one (serve, replay, register, sweep, prune) does"
            )
        super().__init__(f"database {target} has schema version {found}, {advice}")
        self.target = target
        self.found = found
        self.expected = expected


_INSTALL_HINT = (
    "Graphviz's `dot` program is not on PATH; it is needed to render SVG. "
    "Install it with `apt-get install graphviz` (Debian/Ubuntu), "
    "`brew install graphviz` (macOS) or from https://graphviz.org/download/."
)


class GraphvizNotFound(DeliveryStateError, FileNotFoundError):
    """Graphviz's ``dot`` is not installed; the message says how to install it.

    A ``FileNotFoundError`` because that is what running a missing program
    raises, so callers that already handle it keep working.
    """

    http_status = 500

    def __init__(self, program: str = "dot") -> None:
        super().__init__(_INSTALL_HINT)
        self.program = program
