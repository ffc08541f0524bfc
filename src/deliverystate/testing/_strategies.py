"""Hypothesis strategies for reports: statuses, events, one message's history, many messages.

Theory of operation
-------------------
Statuses come from the catalog itself, so a strategy never draws a code the
library does not know, nor one the channel cannot carry.  Timestamps come from
a narrow window after :data:`BASE_MS` (a few dozen instants, one second
apart), so that two reports about a message often share an instant and the
policy's tie-breaks are exercised rather than left to chance.

A *history* is what Clickatell really sends about one message: a lifecycle
that happened (SCHEDULED, QUEUED, SENT_TO_SUPPLIER, then a delivery, a read,
a failure or silence), then the mess of the wire around it: reports sent
twice, late and conflicting failures (multi-device WhatsApp, a late expiry),
the odd stray report of any status the channel allows, all in an arrival
order drawn at random.  Every report of a history agrees about the channel or
leaves it out, as real reports do; reports that contradict each other about
the channel are the business of :func:`events`.  Hypothesis shrinks a history
towards its plain lifecycle in order, so a failing example reads as a story.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hypothesis import strategies as st

from ..callbacks._providers import PROVIDERS, Word
from ..callbacks._smpp import normalise_smpp_id
from ..rules._catalog import CHANNELS, Status
from ..rules._events import StatusEvent
from ..rules._time import datetime_from_ms
from ..simulate import provider_body

__all__ = [
    "ANY",
    "BASE_MS",
    "ProviderCallback",
    "events",
    "histories",
    "instants_ms",
    "provider_callbacks",
    "statuses",
    "streams",
]

#: 2026-01-01T00:00:00Z in milliseconds: every drawn timestamp is within a minute after it.
BASE_MS = 1_767_225_600_000
#: The ``channel`` of :func:`events` and :func:`histories` that leaves the channel to the draw.
ANY = "any"
_POOL = tuple(f"msg-{index}" for index in range(4))
_DELIVERED = (Status.DEVICE_ACK, Status.READ)
#: Failures Clickatell reports early, before the message reached a supplier.
_EARLY_FAILURES = (
    Status.INSUFFICIENT_ACCOUNT_BALANCE,
    Status.VOLUME_LIMIT_DAILY,
    Status.STOPPED_BY_ADMIN,
)


def instants_ms(seconds: int = 12) -> st.SearchStrategy[int]:
    """Timestamps (ms) on whole seconds from ``BASE_MS`` to ``seconds`` later: ties are common."""
    return st.integers(0, seconds).map(lambda step: BASE_MS + step * 1000)


def _check_channel(channel: str | None, *, allow_any: bool) -> None:
    known = (*CHANNELS, None, ANY) if allow_any else (*CHANNELS, None)
    if channel not in known:
        raise ValueError(f"channel must be one of {', '.join(map(repr, known))}, not {channel!r}")


def statuses(channel: str | None = None) -> st.SearchStrategy[Status]:
    """Statuses of the catalog that can occur on ``channel`` (every status when None).

    Shrinks towards the lowest codes (UNKNOWN, QUEUED, ...).
    """
    _check_channel(channel, allow_any=False)
    return st.sampled_from([status for status in Status if status.allowed_on(channel)])


def _ids(message_ids: Sequence[str] | st.SearchStrategy[str] | None) -> st.SearchStrategy[str]:
    if message_ids is None:
        return st.sampled_from(_POOL)
    if isinstance(message_ids, st.SearchStrategy):
        return message_ids
    if isinstance(message_ids, str) or not message_ids:
        raise ValueError("message_ids is a non-empty sequence of ids or a strategy of ids")
    return st.sampled_from(list(message_ids))


@st.composite
def _event(
    draw: st.DrawFn, ids: st.SearchStrategy[str], channel: str | None, seconds: int
) -> StatusEvent:
    message_id = draw(ids)
    if channel == ANY:
        named = draw(st.sampled_from([None, *CHANNELS]))
    elif channel is None:
        named = None
    else:
        named = draw(st.sampled_from([channel, None]))  # a report may leave the channel out
    status = draw(statuses(channel if channel != ANY else named))
    client = draw(st.sampled_from([None, f"client-{message_id}"]))
    return StatusEvent.from_ms(message_id, status, draw(instants_ms(seconds)), named, client)


def events(
    message_ids: Sequence[str] | st.SearchStrategy[str] | None = None,
    channel: str | None = ANY,
) -> st.SearchStrategy[StatusEvent]:
    """One status report, as a callback would carry it.

    ``message_ids``: the ids to draw from (a sequence or a strategy; default
    four ids, ``msg-0`` .. ``msg-3``, so that reports meet).  ``channel``:
    ``"sms"`` or ``"whatsapp"`` draws reports about messages on that channel,
    each naming it or leaving it out; None draws reports that name no
    channel (any status); ``ANY`` (the default) draws the channel of each
    report on its own, so that reports about one message may contradict each
    other (the store rejects the latecomers: see :func:`streams` for reports
    that agree).  The client message id is absent or ``client-<message id>``.
    """
    _check_channel(channel, allow_any=True)
    return _event(_ids(message_ids), channel, 12)


def _lifecycle(draw: st.DrawFn, channel: str | None) -> list[tuple[Status, int]]:
    """The statuses one message really went through, with their seconds after BASE_MS."""
    second = draw(st.integers(0, 3))
    path: list[tuple[Status, int]] = []
    if draw(st.integers(0, 9)) == 0:
        path.append((Status.SCHEDULED, second))
        second += draw(st.integers(1, 5))
    path.append((Status.QUEUED, second))
    if draw(st.integers(0, 19)) == 0:
        path.append((draw(st.sampled_from(_EARLY_FAILURES)), second + draw(st.integers(0, 2))))
        return path
    second += draw(st.integers(0, 3))
    path.append((Status.SENT_TO_SUPPLIER, second))
    failures = [s for s in Status if s.is_failure and s.allowed_on(channel)]
    fate = draw(st.sampled_from(["delivered", "delivered", "failed", "silent"]))
    if fate == "delivered":
        second += draw(st.integers(0, 3))
        path.append((Status.DEVICE_ACK, second))
        if channel != "sms" and draw(st.booleans()):
            path.append((Status.READ, second + draw(st.integers(0, 5))))
    elif fate == "failed":
        path.append((draw(st.sampled_from(failures)), second + draw(st.integers(0, 3))))
    return path


@st.composite
def _history(
    draw: st.DrawFn, message_id: str | None, channel: str | None, max_strays: int
) -> list[StatusEvent]:
    if message_id is None:
        message_id = draw(st.sampled_from(_POOL))
    if channel == ANY:
        channel = draw(st.sampled_from([*CHANNELS, None]))
    client = draw(st.sampled_from([None, f"client-{message_id}"]))
    path = _lifecycle(draw, channel)
    last = max(second for _, second in path)
    failures = [s for s in Status if s.is_failure and s.allowed_on(channel)]
    # late failures (a late expiry, multi-device WhatsApp) conflict with what happened
    for _ in range(draw(st.integers(0, 2))):
        path.append((draw(st.sampled_from(failures)), last + draw(st.integers(0, 8))))
    # the odd stray report: any status the channel allows, at any instant
    for _ in range(draw(st.integers(0, max_strays))):
        path.append((draw(statuses(channel)), draw(st.integers(0, 24))))
    reports = [
        StatusEvent.from_ms(
            message_id,
            status,
            BASE_MS + second * 1000,
            channel if channel is None or draw(st.integers(0, 4)) else None,
            client if draw(st.integers(0, 3)) else None,
        )
        for status, second in path
    ]
    repeats = draw(st.lists(st.sampled_from(reports), max_size=3))
    return list(draw(st.permutations(reports + repeats)))


def histories(
    message_id: str | None = None, channel: str | None = ANY, *, max_strays: int = 2
) -> st.SearchStrategy[list[StatusEvent]]:
    """The reports about one message, in the order they arrive.

    A realistic lifecycle (see the module's docstring), then duplicated,
    reordered, with up to two late failures that conflict with it and up to
    ``max_strays`` stray reports of any status the channel allows.
    ``message_id`` defaults to one of ``msg-0`` .. ``msg-3``; ``channel`` is
    the message's channel (``"sms"``, ``"whatsapp"``, None for a message
    whose reports never name one, or ``ANY`` to draw one of those three).
    """
    _check_channel(channel, allow_any=True)
    return _history(message_id, channel, max_strays)


@st.composite
def _stream(draw: st.DrawFn, min_messages: int, max_messages: int) -> list[StatusEvent]:
    count = draw(st.integers(min_messages, max_messages))
    reports: list[StatusEvent] = []
    for index in range(count):
        reports += draw(histories(f"msg-{index}", ANY))
    return list(draw(st.permutations(reports)))


def streams(min_messages: int = 1, max_messages: int = 4) -> st.SearchStrategy[list[StatusEvent]]:
    """The reports about several messages (``msg-0``, ``msg-1``, ...), interleaved as they arrive.

    Each message has a :func:`histories` history on SMS, on WhatsApp or on
    a channel its reports never name; the histories are shuffled together.
    """
    if not 0 <= min_messages <= max_messages:
        raise ValueError(
            f"0 <= min_messages <= max_messages, not {min_messages} and {max_messages}"
        )
    return _stream(min_messages, max_messages)


#: One message's callback from another provider: its body, and when it was received.
ProviderCallback = tuple[str | dict[str, str], datetime]


def provider_callbacks(
    provider: str, message_id: str = "msg-0", max_size: int = 6
) -> st.SearchStrategy[list[ProviderCallback]]:
    """One message's callbacks from ``provider`` (``"meta"``, ``"twilio"``, ...), any order.

    Each is ``(body, received_at)``, for ``parse_callback(body, provider,
    received_at=received_at)`` or a POST to ``/callbacks/{provider}``: every
    status the provider has a word for, at times within a minute, repeats
    included, so that code built on this one can be property-tested against
    each provider's words and its lack of order.
    """
    words = [w for w in PROVIDERS[provider] if w.status is not None]
    channel = "sms" if provider == "smpp" else "whatsapp"
    name = normalise_smpp_id(message_id) if provider == "smpp" else message_id

    def callback(word: Word, offset_ms: int, delay_ms: int) -> ProviderCallback:
        assert word.status is not None
        event = StatusEvent.from_ms(name, word.status, BASE_MS + offset_ms, channel)
        body = provider_body(provider, event, word.word)
        return body, datetime_from_ms(BASE_MS + offset_ms + delay_ms)

    one = st.builds(callback, st.sampled_from(words), st.integers(0, 59_000), st.integers(0, 5_000))
    return st.lists(one, min_size=1, max_size=max_size)
