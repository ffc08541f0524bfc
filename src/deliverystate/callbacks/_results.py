"""What parsing callback bodies yields: one body's events, and a batch's.

Kept apart from the parser (``_parse``) and its fast path (``_fastpath``),
which both build these.  A :class:`ParsedBatch` pickles compactly, as columns,
because ``deliverystate replay`` parses in a worker process and hands batches
back through a pipe.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ..errors import InvalidCallback
from ..rules._catalog import Origin, Status
from ..rules._events import StatusEvent

__all__ = ["CallbackFormat", "ParsedBatch", "ParsedCallback"]


#: Which shape a body had: One API, Platform (flat, a reply included), legacy HTTP (an
#: inbound legacy message included), or an archive line written by retention.
CallbackFormat = Literal[
    "one_api", "platform", "legacy", "archive", "meta", "smpp", "twilio", "vonage"
]


@attrs.frozen
class ParsedCallback:
    """What one callback body holds: its status updates, and the events it holds besides.

    ``ignored`` names each event that is not a status update (``"moText"``,
    an event type Clickatell added later, an inbound reply), once per event.
    ``format`` is the shape the body was read as, so that a receiver can
    count its traffic by format without parsing anything twice.
    """

    events: tuple[StatusEvent, ...]
    ignored: tuple[str, ...] = ()
    #: Registrations (a local QUEUED and its deadline in ms): only archive lines have them.
    registrations: tuple[tuple[StatusEvent, int], ...] = ()
    format: CallbackFormat = attrs.field(kw_only=True)


@attrs.frozen
class ParsedBatch:
    """What a batch of callback bodies holds, as :func:`read_many` reads it.

    ``events`` are the status events of every callback body that parsed, in
    order; ``errors`` pairs the index of each body that did not with its
    error; ``ignored`` counts the events that are not status updates.
    ``restored`` holds the reports of the archive lines among the bodies
    (see ``_archive``), in order, and ``registrations`` the deadlines they
    restore: a pruned message put back, not news (``Store.restore_many``).

    A batch pickles compactly (its events as five columns), so that a worker
    process can parse bodies and hand the batch back cheaply.
    """

    events: tuple[StatusEvent, ...]
    errors: tuple[tuple[int, InvalidCallback], ...] = ()
    ignored: int = 0
    #: The registrations archive lines restore (see ``_archive``), applied after ``restored``.
    registrations: tuple[tuple[StatusEvent, int], ...] = ()
    #: The reports of the archive lines, applied before ``events`` (see ``Store.restore_many``).
    restored: tuple[StatusEvent, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        errors = [(i, e.field, e.reason, e.value) for i, e in self.errors]
        return (
            _unpickle_batch,
            (
                _columns(self.events),
                errors,
                self.ignored,
                self.registrations,
                _columns(self.restored),
            ),
        )


#: Events as columns: ids, codes, times, channels, client ids, and which are local.
_Columns = tuple[list[str], list[int], list[int], list[str | None], list[str | None], list[int]]


def _columns(events: tuple[StatusEvent, ...]) -> _Columns:
    return (
        [e.message_id for e in events],
        [int(e.status) for e in events],
        [e.timestamp_ms for e in events],
        [e.channel for e in events],
        [e.client_message_id for e in events],
        [i for i, e in enumerate(events) if e.origin is not Origin.CLICKATELL],
    )


def _events(columns: _Columns) -> tuple[StatusEvent, ...]:
    ids, codes, times, channels, clients, local = columns
    statuses = map(_STATUS_OF_CODE.__getitem__, codes)
    events = list(map(StatusEvent._checked, ids, statuses, times, channels, clients))
    for i in local:  # only archive lines hold local reports: rare, rebuilt in full
        e = events[i]
        events[i] = StatusEvent.from_ms(
            e.message_id, e.status, e.timestamp_ms, e.channel, e.client_message_id, Origin.LOCAL
        )
    return tuple(events)


def _unpickle_batch(
    columns: _Columns,
    errors: list[tuple[int, str, str, Any]],
    ignored: int,
    registrations: tuple[tuple[StatusEvent, int], ...],
    restored: _Columns,
) -> ParsedBatch:
    refused = tuple((i, InvalidCallback(*error)) for i, *error in errors)
    return ParsedBatch(_events(columns), refused, ignored, registrations, _events(restored))


_STATUS_OF_CODE = {int(status): status for status in Status}
