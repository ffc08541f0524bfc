"""A seeded generator of realistic Clickatell callback streams.

Real callback traffic is messy: reports arrive after random delays (so out of
order), some are sent twice, WhatsApp READ receipts may come hours later, a
late expiry can follow a delivery, Clickatell batches One API updates, SMS
traffic mixes the One API, Platform (with its own 1..14 numbering) and legacy
HTTP formats, an inbound reply is now and then posted to the same URL, and now
and then a body is broken.  ``generate_callbacks`` produces such a stream, one
JSON body per line, deterministically from a seed, so users can test their
integration and benchmarks have input of any size.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import attrs

from .callbacks._envelope import wrap
from .callbacks._formats import LEGACY_STATUS, PLATFORM_NAMES
from .callbacks._parse import parse_callback
from .callbacks._providers import PROVIDERS, word_for
from .callbacks._smpp import normalise_smpp_id
from .errors import InvalidCallback
from .rules._catalog import Status
from .rules._events import StatusEvent

__all__ = [
    "FORMATS",
    "PROVIDERS",
    "SimulatedCallback",
    "callback_body",
    "generate_callbacks",
    "provider_body",
    "provider_lines",
    "simulate_lines",
    "simulated_events",
]

T = TypeVar("T")
_BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_SMS_FAILURES = (
    Status.DELIVERY_FAILURE,
    Status.EXPIRED,
    Status.ROUTING_ERROR,
    Status.RECIPIENT_DOES_NOT_EXIST,
)
_WHATSAPP_FAILURES = (
    Status.DELIVERY_FAILURE,
    Status.EXPIRED,
    Status.WHATSAPP_RE_ENGAGEMENT_REQUIRED,
    Status.WHATSAPP_SPAM_RATE_LIMIT_REACHED,
    Status.RECIPIENT_DOES_NOT_EXIST,
)
_EARLY_FAILURES = (Status.INSUFFICIENT_ACCOUNT_BALANCE, Status.VOLUME_LIMIT_DAILY)

# The Platform / legacy code a sender sees for a One API status: the lowest code the
# parser's table maps to it, and that code's first Platform name (both derived, so
# the generator cannot drift from the parser).
_PLATFORM_CODE: dict[Status, int] = {}
for _code, _status in sorted(LEGACY_STATUS.items()):
    _PLATFORM_CODE.setdefault(_status, _code)
_PLATFORM_NAME: dict[int, str] = {}
for _name, _code in PLATFORM_NAMES.items():
    _PLATFORM_NAME.setdefault(_code, _name)


@attrs.frozen
class SimulatedCallback:
    """One line of the stream: when it arrives and the body Clickatell sends."""

    arrival_ms: int
    body: str
    valid: bool = True


@attrs.frozen
class _Report:
    message_id: str
    client_message_id: str
    channel: str
    fmt: str
    status: Status
    timestamp_ms: int


def _path(rng: random.Random, channel: str) -> list[tuple[Status, int]]:
    """The statuses one message really went through, with offsets in ms from its start."""
    steps: list[tuple[Status, int]] = []
    t = 0
    if rng.random() < 0.05:
        steps.append((Status.SCHEDULED, t))
        t += rng.randint(60_000, 3_600_000)
    steps.append((Status.QUEUED, t))
    if rng.random() < 0.02:
        steps.append((rng.choice(_EARLY_FAILURES), t + rng.randint(50, 500)))
        return steps
    t += rng.randint(100, 2_000)
    steps.append((Status.SENT_TO_SUPPLIER, t))
    fate = rng.random()
    failures = _SMS_FAILURES if channel == "sms" else _WHATSAPP_FAILURES
    if fate < 0.80:
        t += rng.randint(500, 30_000)
        steps.append((Status.DEVICE_ACK, t))
        if channel == "whatsapp" and rng.random() < 0.6:
            steps.append((Status.READ, t + rng.randint(2_000, 7_200_000)))
        if rng.random() < 0.03:  # multi-device WhatsApp or a late expiry
            steps.append((rng.choice(failures), t + rng.randint(1_000, 600_000)))
    elif fate < 0.95:
        steps.append((rng.choice(failures), t + rng.randint(1_000, 120_000)))
    return steps  # else: never heard of again after SENT_TO_SUPPLIER


#: The body formats :func:`callback_body` writes.
FORMATS = ("one_api", "platform", "legacy")
_INTEGRATION = {
    "integrationId": "2f1c0e2e9e6b4f4f8a3d6c5b4a392817",
    "integrationName": "notifications",
}


def _update(event: StatusEvent, channel: str) -> dict[str, Any]:
    """One ``messageStatusUpdate`` entry; ``channel`` as it is to be spelled."""
    return {
        "channel": channel,
        "messageId": event.message_id,
        "clientMessageId": event.client_message_id,
        "status": event.status.name,
        "statusCode": int(event.status),
        "timestamp": event.timestamp_ms,
    }


def _envelope(updates: list[dict[str, Any]]) -> dict[str, Any]:
    return {**_INTEGRATION, "event": {"messageStatusUpdate": updates}}


def callback_body(event: StatusEvent, fmt: str = "one_api") -> dict[str, Any]:
    """The body Clickatell posts for ``event``, as a mapping ready for ``json.dumps``.

    ``fmt`` is one of :data:`FORMATS`: a One API status update (the channel
    is the event's, or one the status can occur on), a Platform callback
    (Platform code and name, milliseconds) or a legacy HTTP callback (legacy
    code, whole seconds).  Platform and legacy are SMS only and carry only the
    statuses their numbering has; ``ValueError`` says so otherwise.
    """
    if fmt == "one_api":
        channel = event.channel or ("sms" if event.status.allowed_on("sms") else "whatsapp")
        return _envelope([_update(event, channel)])
    if fmt not in FORMATS:
        raise ValueError(f"unknown callback format {fmt!r}; expected one of {', '.join(FORMATS)}")
    code = _PLATFORM_CODE.get(event.status)
    if event.channel not in (None, "sms") or code is None:
        raise ValueError(f"a {fmt} callback cannot carry {event.status.name} on {event.channel}")
    if fmt == "platform":
        name = _PLATFORM_NAME[code]
        return {
            "integrationName": "notifications",
            "messageId": event.message_id,
            "requestId": event.message_id[:16],
            "clientMessageId": event.client_message_id,
            "to": "2799900" + event.message_id[-4:],
            "from": "27999000000",
            "statusCode": code,
            "status": name,
            "statusDescription": name.replace("_", " ").capitalize(),
            "timestamp": str(event.timestamp_ms),
        }
    return {
        "api_id": "3512345",
        "apiMsgId": event.message_id,
        "cliMsgId": event.client_message_id,
        "to": "2799900" + event.message_id[-4:],
        "from": "27999000000",
        "timestamp": str(event.timestamp_ms // 1000),
        "status": f"{code:03d}",
        "charge": "0.8",
    }


def _event_of(report: _Report) -> StatusEvent:
    return StatusEvent.from_ms(
        report.message_id,
        report.status,
        report.timestamp_ms,
        report.channel,
        report.client_message_id,
    )


def _one_api_body(reports: list[_Report], rng: random.Random) -> dict[str, Any]:
    """A One API body of one or more updates, channels sometimes spelled loosely."""
    return _envelope(
        [
            _update(_event_of(r), r.channel if rng.random() < 0.9 else f" {r.channel.upper()} ")
            for r in reports
        ]
    )


def _body(report: _Report, rng: random.Random) -> dict[str, Any]:
    if report.fmt == "one":
        return _one_api_body([report], rng)
    return callback_body(_event_of(report), "platform" if report.fmt == "flat" else "legacy")


def _reply(report: _Report, rng: random.Random) -> dict[str, Any]:
    """An inbound WhatsApp reply posted to the status URL, as Clickatell allows."""
    return {
        **_INTEGRATION,
        "event": {
            "moText": [
                {
                    "channel": "whatsapp",
                    "messageId": f"{rng.getrandbits(128):032x}",
                    "relatedMessageId": report.message_id,
                    "relatedClientMessageId": report.client_message_id,
                    "from": "2799900" + report.message_id[-4:],
                    "to": "27999000000",
                    "timestamp": report.timestamp_ms + rng.randint(1_000, 60_000),
                    "content": "Thanks!",
                    "charset": "UTF-8",
                }
            ]
        },
    }


def _invalid(rng: random.Random, message_id: str) -> str:
    """A broken body of a kind seen in the field."""
    kind = rng.randrange(6)
    good = _one_api_body([_Report(message_id, "x", "sms", "one", Status.DEVICE_ACK, _BASE_MS)], rng)
    update = good["event"]["messageStatusUpdate"][0]
    if kind == 0:  # a code newer than the catalog
        update["statusCode"], update["status"] = 142, "WHATSAPP_TEMPLATE_FORMATTING_POLICY_VIOLATED"
    elif kind == 5:
        update["timestamp"] = _BASE_MS // 1000  # seconds where milliseconds belong
    elif kind == 1:
        update["statusCode"] = 4  # the FAQ's disagreeing example: 4 with DEVICE_ACK
    elif kind == 2:
        del update["messageId"]
    elif kind == 3:
        update["timestamp"] = "yesterday"
    else:
        return json.dumps(good)[:-7]  # truncated in transit
    return json.dumps(good)


def _reports(count: int, rng: random.Random) -> Iterator[_Report]:
    for index in range(count):
        message_id = f"{rng.getrandbits(128):032x}"
        channel = "whatsapp" if rng.random() < 0.4 else "sms"
        fmt = "one"
        if channel == "sms":
            fmt = rng.choices(("one", "flat", "legacy"), weights=(60, 25, 15))[0]
        start = _BASE_MS + index * 250 + rng.randint(0, 5_000)
        client_id = f"order-{index:07d}"
        for status, offset in _path(rng, channel):
            if fmt != "one" and status not in _PLATFORM_CODE:
                continue
            yield _Report(message_id, client_id, channel, fmt, status, start + offset)


def _delay(rng: random.Random) -> int:
    if rng.random() < 0.05:
        return rng.randint(30_000, 900_000)  # a retried or stuck callback
    return int(rng.expovariate(1 / 3_000))


def _arrivals(
    reports: Iterable[tuple[int, T]], rng: random.Random, duplicate_rate: float
) -> list[tuple[int, T]]:
    """Each report at its time plus a delay, some twice (a retry), in order of arrival."""
    pending: list[tuple[int, T]] = []
    for timestamp_ms, report in reports:
        pending.append((timestamp_ms + _delay(rng), report))
        if rng.random() < duplicate_rate:
            pending.append((timestamp_ms + _delay(rng) + rng.randint(0, 60_000), report))
    pending.sort(key=lambda item: item[0])
    return pending


def generate_callbacks(
    messages: int,
    seed: int = 0,
    *,
    duplicate_rate: float = 0.08,
    invalid_rate: float = 0.004,
    batch_rate: float = 0.1,
) -> list[SimulatedCallback]:
    """A callback stream for ``messages`` messages, ordered by arrival time."""
    if messages < 0:
        raise ValueError(f"messages must be >= 0, not {messages}")
    rng = random.Random(seed)
    reports = ((report.timestamp_ms, report) for report in _reports(messages, rng))
    pending = _arrivals(reports, rng, duplicate_rate)
    out: list[SimulatedCallback] = []
    index = 0
    while index < len(pending):
        arrival, report = pending[index]
        index += 1
        if report.fmt == "one":
            batch = [report]
            while (
                index < len(pending)
                and pending[index][1].fmt == "one"
                and rng.random() < batch_rate
                and len(batch) < 5
            ):
                batch.append(pending[index][1])
                index += 1
            out.append(SimulatedCallback(arrival, json.dumps(_one_api_body(batch, rng))))
        else:
            out.append(SimulatedCallback(arrival, json.dumps(_body(report, rng))))
        if report.channel == "whatsapp" and report.status is Status.READ and rng.random() < 0.05:
            out.append(SimulatedCallback(arrival, json.dumps(_reply(report, rng))))
        if rng.random() < invalid_rate:
            out.append(SimulatedCallback(arrival, _invalid(rng, report.message_id), valid=False))
    return out


def simulate_lines(messages: int, seed: int = 0) -> list[str]:
    """Just the bodies of :func:`generate_callbacks`, one JSON document per line."""
    return [callback.body for callback in generate_callbacks(messages, seed)]


def simulated_events(messages: int, seed: int = 0) -> list[StatusEvent]:
    """The parsed events of the valid callbacks of a stream, in arrival order."""
    events: list[StatusEvent] = []
    for callback in generate_callbacks(messages, seed):
        try:
            events.extend(parse_callback(callback.body))
        except InvalidCallback:
            continue
    return events


def provider_body(
    provider: str, event: StatusEvent, word: str | None = None
) -> str | dict[str, str]:
    """The body ``provider`` posts for ``event``: JSON text, a receipt's text or a form's fields.

    ``word`` is the provider's word for the status (its usual one by default);
    the shapes are the ones the providers document (docs/design.md, "Other
    providers").  Twilio's form carries no time: its envelope does.
    """
    said = word or word_for(_known(provider), event.status)
    if said is None:
        raise ValueError(f"{provider} has no word for {event.status.name}")
    seconds, client = event.timestamp_ms // 1000, event.client_message_id
    if provider == "meta":
        status = {"id": event.message_id, "status": said, "timestamp": str(seconds)}
        if client is not None:
            status["biz_opaque_callback_data"] = client
        value = {"messaging_product": "whatsapp", "statuses": [status]}
        entry = {"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}
        return json.dumps({"object": "whatsapp_business_account", "entry": [entry]})
    if provider == "twilio":
        sender = "whatsapp:+15557122661" if event.channel == "whatsapp" else "+15557122661"
        return {"MessageSid": event.message_id, "MessageStatus": said, "From": sender}
    if provider == "vonage":
        stamp = event.timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = {"message_uuid": event.message_id, "status": said, "timestamp": stamp}
        return json.dumps({**body, "channel": event.channel or "sms", "client_ref": client})
    if provider == "smpp":
        done = event.timestamp.strftime("%y%m%d%H%M")
        return f"id:{event.message_id} sub:001 dlvrd:001 done date:{done} stat:{said} err:000"
    raise AssertionError(f"no body writer for {provider!r}")  # a table without a writer


def provider_lines(provider: str, messages: int, seed: int = 0) -> list[str]:
    """A seeded stream of ``provider``'s callbacks, as the envelopes ``replay`` reads.

    The same messages' lives as :func:`generate_callbacks` (delays, duplicates,
    late failures), each report in the provider's words; a status the provider
    has no word for is not sent, and a failure it cannot name is its usual
    failure.  Meta is WhatsApp only; SMPP is SMS with hex ids.
    """
    rng = random.Random(seed)
    failure = word_for(_known(provider), Status.DELIVERY_FAILURE)
    said: list[tuple[int, tuple[StatusEvent, str]]] = []
    for report in _reports(messages, rng):
        channel = "whatsapp" if provider == "meta" else report.channel
        if provider == "smpp":
            channel = "sms"
        word = word_for(provider, report.status) or (failure if report.status.is_failure else None)
        if word is None:
            continue
        message_id = report.message_id
        if provider == "smpp":
            message_id = normalise_smpp_id(message_id)
        event = StatusEvent.from_ms(
            message_id, Status.DELIVERY_FAILURE if word == failure else report.status,
            report.timestamp_ms, channel, report.client_message_id,
        )  # fmt: skip
        said.append((report.timestamp_ms, (event, word)))
    return [
        json.dumps(wrap(provider, provider_body(provider, event, word), arrival))
        for arrival, (event, word) in _arrivals(said, rng, 0.08)
    ]


def _known(provider: str) -> str:
    """``provider``, if it is one of :data:`PROVIDERS` (a ``ValueError`` naming them if not)."""
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}: one of {', '.join(sorted(PROVIDERS))}")
    return provider
