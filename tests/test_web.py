"""Tests for the webhook receiver: real HTTP against uvicorn on loopback, plus ASGI-level fuzzing.

Expected states, codes and timestamps are written out by hand from the
design's rules (or computed by an in-memory ``Tracker`` fed the same bodies),
never read back from the receiver's own helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import queue
import random
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount

from deliverystate import (
    MemoryStore,
    SQLiteStore,
    Status,
    StatusEvent,
    StoreUnavailable,
    Tracker,
    web,
)
from deliverystate.simulate import callback_body, generate_callbacks
from deliverystate.web import create_app

from .strategies import json_values, mutated_callbacks

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00.000Z
LIMIT = 64 * 1024  # the limit, written out rather than read from the module
URL = "/callbacks/clickatell"


def one_api(
    message_id: str,
    code: int,
    name: str,
    ms: int,
    channel: str = "sms",
    client: str | None = "order-1",
) -> dict[str, Any]:
    """The One API body ``simulate`` writes, with this report's fields written in as given.

    The fields go in unchecked, so a test can make the body contradict itself
    (a code with another code's name), carry an id no store can keep, or a
    seconds timestamp, on top of a body that is otherwise Clickatell's own.
    """
    body = callback_body(StatusEvent.from_ms("m", Status.QUEUED, 0, channel))
    body["event"]["messageStatusUpdate"][0].update(
        messageId=message_id, statusCode=code, status=name, timestamp=ms, clientMessageId=client
    )
    return body


def post_json(client: httpx.Client, body: Any, **kwargs: Any) -> httpx.Response:
    """POST ``body`` as JSON text exactly as serialised here."""
    text = body if isinstance(body, str) else json.dumps(body)
    headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
    return client.post(URL, content=text.encode(), headers=headers, **kwargs)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        http=web.http_protocol(),  # the protocol serve() runs
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@contextlib.contextmanager
def receiver(tracker: Tracker, **options: Any) -> Iterator[httpx.Client]:
    """A receiver over ``tracker`` on loopback, and a client bound to it."""
    with (
        serving(create_app(tracker, **options)) as base,
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        yield client


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[Tracker]:
    """A tracker over a fresh SQLite file: the store ``deliverystate serve`` uses."""
    store = SQLiteStore(tmp_path / "web.sqlite3")
    yield Tracker(store)
    store.close()


Start = Callable[..., httpx.Client]


@pytest.fixture
def start(tracker: Tracker) -> Iterator[Start]:
    """Start the receiver over real HTTP; returns an httpx client bound to it."""
    with contextlib.ExitStack() as stack:

        def start_(app_tracker: Tracker | None = None, **options: Any) -> httpx.Client:
            app = create_app(app_tracker or tracker, **options)
            base = stack.enter_context(serving(app))
            return stack.enter_context(httpx.Client(base_url=base, timeout=30))

        yield start_


def wait_for(check: Callable[[], bool], seconds: float = 10) -> None:
    """Poll ``check`` until it holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.02)


# --- the happy paths ---------------------------------------------------------------------


def test_one_api_post_is_applied_and_served_with_names_outcomes_and_iso_times(
    start: Start,
) -> None:
    """POSTed One API callbacks come back from /messages with names, outcomes and ISO times."""
    client = start()
    first = post_json(client, one_api("wa-1", 2, "QUEUED", T0 + 1000, "whatsapp"))
    read = post_json(client, one_api("wa-1", 6, "READ", T0 + 5250, "whatsapp"))
    late = post_json(client, one_api("wa-1", 4, "SENT_TO_SUPPLIER", T0 + 2000, "whatsapp"))
    again = post_json(client, one_api("wa-1", 6, "READ", T0 + 5250, "whatsapp"))
    assert [r.status_code for r in (first, read, late, again)] == [200, 200, 200, 200]
    assert first.json()["applied"] == 1
    assert late.json()["stale"] == 1
    assert again.json()["duplicate"] == 1
    answer = client.get("/messages/wa-1")
    assert answer.status_code == 200
    state = answer.json()
    assert (state["status"], state["status_code"]) == ("READ", 6)
    assert state["timestamp"] == "2026-01-01T00:00:05.250Z"
    assert (state["channel"], state["client_message_id"]) == ("whatsapp", "order-1")
    assert [(e["timestamp"], e["status"], e["outcome"]) for e in state["timeline"]] == [
        ("2026-01-01T00:00:01.000Z", "QUEUED", "applied"),
        ("2026-01-01T00:00:02.000Z", "SENT_TO_SUPPLIER", "stale"),
        ("2026-01-01T00:00:05.250Z", "READ", "applied"),
    ]


def test_flat_callback_as_query_parameters(start: Start) -> None:
    """A Platform SMS callback sent as GET query parameters is applied as an SMS report."""
    client = start()
    params = {
        "integrationName": "notifications",
        "messageId": "flat-1",
        "requestId": "req",
        "clientMessageId": "order-7",
        "to": "27999000001",
        "from": "27999000000",
        "statusCode": "4",
        "status": "SENT_TO_SUPPLIER",
        "statusDescription": "Sent to supplier",
        "timestamp": str(T0 + 7),
    }
    response = client.get(URL, params=params)
    assert response.status_code == 200, response.text
    state = client.get("/messages/flat-1").json()
    assert (state["status"], state["channel"], state["client_message_id"]) == (
        "SENT_TO_SUPPLIER",
        "sms",
        "order-7",
    )
    assert state["timestamp"] == "2026-01-01T00:00:00.007Z"


def test_legacy_callback_as_query_parameters(start: Start) -> None:
    """A legacy HTTP callback (status 004, epoch seconds) becomes DEVICE_ACK at that second."""
    client = start()
    params = {
        "api_id": "3512345",
        "apiMsgId": "legacy-1",
        "cliMsgId": "order-9",
        "to": "27999000001",
        "from": "27999000000",
        "timestamp": "1767225601",
        "status": "004",
        "charge": "0.8",
    }
    assert client.get(URL, params=params).status_code == 200
    state = client.get("/messages/legacy-1").json()
    assert (state["status"], state["status_code"], state["timestamp"]) == (
        "DEVICE_ACK",
        5,
        "2026-01-01T00:00:01.000Z",
    )
    assert state["client_message_id"] == "order-9"


def test_form_encoded_flat_callback_is_accepted(start: Start) -> None:
    """A Platform SMS callback POSTed as a URL-encoded form is applied like its query form."""
    client = start()
    form = {"messageId": "form-1", "statusCode": "7", "timestamp": str(T0 + 9)}  # error delivering
    response = client.post(URL, data=form)
    assert response.status_code == 200, response.text
    assert client.get("/messages/form-1").json()["status"] == "DELIVERY_FAILURE"


def test_json_with_a_charset_and_a_chunked_body_is_accepted(start: Start) -> None:
    """A charset parameter and chunked transfer (no Content-Length) are fine under the limit."""
    client = start()
    text = json.dumps(one_api("chunky", 5, "DEVICE_ACK", T0)).encode()

    def chunks() -> Iterator[bytes]:
        for index in range(0, len(text), 7):
            yield text[index : index + 7]

    response = client.post(
        URL, content=chunks(), headers={"content-type": "Application/JSON; charset=UTF-8"}
    )
    assert response.status_code == 200, response.text
    assert "content-length" not in response.request.headers
    assert client.get("/messages/chunky").json()["status"] == "DEVICE_ACK"


def test_unknown_message_is_404(start: Start) -> None:
    """A message nobody reported is a 404 with a JSON error, not an empty state."""
    client = start()
    response = client.get("/messages/nobody")
    assert response.status_code == 404
    assert response.json()["message_id"] == "nobody"


def test_healthz_answers_and_reports_an_unreachable_store(
    start: Start, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/healthz is 200 while the store answers and 503 when it does not."""
    client = start()
    assert client.get("/healthz").status_code == 200

    def down(*args: object) -> None:
        raise StoreUnavailable("web.sqlite3", "disk I/O error")

    monkeypatch.setattr(tracker.store, "count_by_status", down)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "Traceback" not in response.text


def test_reads_from_an_unreachable_store_are_503(
    start: Start, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/messages and the status page answer 503 (JSON, no traceback) when the store is down."""
    client = start()

    def down(*args: object) -> None:
        raise StoreUnavailable("web.sqlite3", "disk I/O error")

    monkeypatch.setattr(tracker.store, "get", down)
    monkeypatch.setattr(tracker.store, "count_by_status", down)
    for path in ("/messages/anything", "/"):
        response = client.get(path)
        assert response.status_code == 503
        assert response.json()["error"]
        assert "Traceback" not in response.text


def test_an_unexpected_failure_is_a_bare_500_without_details(
    start: Start, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug inside the tracker becomes a JSON 500 that reveals nothing of it."""
    client = start()

    def bug(payloads: object) -> None:
        raise RuntimeError("internal detail: /srv/secret/path")

    monkeypatch.setattr(tracker, "receive_many", bug)
    response = post_json(client, one_api("bug", 5, "DEVICE_ACK", T0))
    assert response.status_code == 500
    assert response.json() == {"error": "internal error"}
    assert "secret" not in response.text
    assert "Traceback" not in response.text


# --- bad input ---------------------------------------------------------------------------

_BAD_BODIES = [
    pytest.param(
        json.dumps(one_api("bad-1", 4, "DEVICE_ACK", T0)),
        "event.messageStatusUpdate[0].statusCode",
        id="code-and-name-disagree",
    ),
    pytest.param(
        json.dumps(one_api("bad-2", 142, "WHATSAPP_TEMPLATE_FORMATTING_POLICY_VIOLATED", T0)),
        "event.messageStatusUpdate[0].statusCode",
        id="unknown-code",
    ),
    pytest.param(
        json.dumps(
            {
                "event": {
                    "messageStatusUpdate": [{"statusCode": 5, "timestamp": T0, "channel": "sms"}]
                }
            }
        ),
        "event.messageStatusUpdate[0].messageId",
        id="no-message-id",
    ),
    pytest.param(
        '{"messageId": "bad-3", "statusCode": "5", "timestamp": "yesterday"}',
        "timestamp",
        id="flat-bad-timestamp",
    ),
    pytest.param(json.dumps(one_api("bad-4", 5, "DEVICE_ACK", T0))[:-7], "body", id="truncated"),
    pytest.param("[1, 2, 3]", "body", id="json-array"),
    pytest.param("", "body", id="empty"),
]


@pytest.mark.parametrize(("text", "field"), _BAD_BODIES)
def test_invalid_body_is_400_naming_the_field_and_kept_in_the_dead_letter(
    start: Start, tracker: Tracker, text: str, field: str
) -> None:
    """An unusable body gets a JSON 400 naming the field, and the body waits in the dead letter."""
    client = start()
    response = post_json(client, text)
    assert response.status_code == 400
    answer = response.json()
    assert answer["field"] == field
    assert answer["reason"]
    assert "Traceback" not in response.text
    assert [letter.payload for letter in tracker.dead_letters()] == [text]
    assert tracker.store.pending() == []


def test_repeated_query_field_is_400_not_a_guess(start: Start, tracker: Tracker) -> None:
    """Two values for one field are refused ("expected one value"), not silently picked."""
    client = start()
    query = urlencode(
        [("messageId", "twice"), ("statusCode", "4"), ("statusCode", "5"), ("timestamp", T0)]
    )
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert response.json()["field"] == "statusCode"
    assert "one value" in response.json()["reason"]
    assert tracker.get("twice") is None
    assert len(tracker.dead_letters()) == 1


def test_form_body_that_is_not_ascii_is_400_and_kept(start: Start, tracker: Tracker) -> None:
    """Raw non-ASCII bytes cannot be a URL-encoded form: 400 on the body, and it is kept."""
    client = start()
    response = client.post(
        URL,
        content=b"messageId=\xff\xfe&statusCode=5",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["field"] == "body"
    assert len(tracker.dead_letters()) == 1


def padded(message_id: str, size: int) -> bytes:
    """A valid One API body padded with trailing spaces to exactly ``size`` bytes."""
    text = json.dumps(one_api(message_id, 5, "DEVICE_ACK", T0)).encode()
    return text + b" " * (size - len(text))


def test_body_limit_is_64_kib_by_content_length(start: Start, tracker: Tracker) -> None:
    """A body of exactly 64 KiB is taken; one byte more is 413 and nothing is stored."""
    client = start()
    headers = {"content-type": "application/json"}
    at_limit = client.post(URL, content=padded("at-limit", LIMIT), headers=headers)
    assert at_limit.status_code == 200, at_limit.text
    over = client.post(URL, content=padded("over-limit", LIMIT + 1), headers=headers)
    assert over.status_code == 413
    assert over.json()["error"]
    assert tracker.get("over-limit") is None
    assert tracker.dead_letters() == []
    assert tracker.store.pending() == []


def test_chunked_body_over_the_limit_is_cut_at_64_kib(start: Start, tracker: Tracker) -> None:
    """A chunked upload without Content-Length is refused with 413 once it passes 64 KiB."""
    client = start()

    def endless_json() -> Iterator[bytes]:
        yield b'{"messageId": "huge", "statusCode": "5", "timestamp": "1", "pad": "'
        for _ in range(256):  # 2 MiB in all
            yield b"x" * 8192
        yield b'"}'

    response = client.post(
        URL, content=endless_json(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert tracker.get("huge") is None
    assert tracker.dead_letters() == []
    # the connection and the server are still usable
    assert client.get("/healthz").status_code == 200


def test_a_lying_content_length_does_not_make_the_app_read_on() -> None:
    """With a small declared length and an endless body, the app stops reading past 64 KiB."""
    app = create_app(Tracker())
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 8192, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": URL,
        "raw_path": URL.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert pulled <= LIMIT // 8192 + 1


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "multipart/form-data; boundary=x", "application/jsonx", "text/json"],
)
def test_wrong_content_type_is_415_and_not_stored(
    start: Start, tracker: Tracker, content_type: str | None
) -> None:
    """Only JSON and URL-encoded forms are callbacks; anything else is 415 and is not kept."""
    client = start()
    headers = {} if content_type is None else {"content-type": content_type}
    body = json.dumps(one_api("typed", 5, "DEVICE_ACK", T0)).encode()
    request = client.build_request("POST", URL, content=body, headers=headers)
    if content_type is None:
        request.headers.pop("content-type", None)
    assert request.headers.get("content-type") == content_type
    response = client.send(request)
    assert response.status_code == 415
    assert response.json()["error"]
    assert tracker.get("typed") is None
    assert tracker.dead_letters() == []


# --- the shared secret -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "headers", "expected"),
    [
        ({}, {}, 401),
        ({"token": "wrong"}, {}, 401),
        ({}, {"X-Deliverystate-Token": "wrong"}, 401),
        ({}, {"X-Deliverystate-Token": ""}, 401),
        ({"token": "s3cret-tok"}, {}, 200),
        ({}, {"X-Deliverystate-Token": "s3cret-tok"}, 200),
    ],
)
def test_token_is_required_on_callbacks_when_set(
    start: Start, tracker: Tracker, query: dict[str, str], headers: dict[str, str], expected: int
) -> None:
    """With a token set, a callback without the right token is 401 and changes nothing."""
    client = start(token="s3cret-tok")
    body = json.dumps(one_api("guarded", 5, "DEVICE_ACK", T0)).encode()
    response = client.post(
        URL, params=query, content=body, headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == expected
    assert (tracker.get("guarded") is not None) == (expected == 200)
    if expected == 401:
        assert tracker.dead_letters() == []


def test_token_protects_reads_but_not_healthz(start: Start) -> None:
    """The status page and /messages need the token too; /healthz stays open for probes."""
    client = start(token="s3cret-tok")
    assert client.get("/").status_code == 401
    assert client.get("/messages/x").status_code == 401
    assert client.get(URL, params={"messageId": "q"}).status_code == 401
    assert client.get("/healthz").status_code == 200
    assert client.get("/", params={"token": "s3cret-tok"}).status_code == 200
    assert (
        client.get("/messages/x", headers={"X-Deliverystate-Token": "s3cret-tok"}).status_code
        == 404
    )


def test_token_never_reaches_the_parser_or_the_dead_letter(start: Start, tracker: Tracker) -> None:
    """The token query parameter is stripped before the fields are parsed and stored."""
    client = start(token="s3cret-tok")
    good = client.get(
        URL, params={"token": "s3cret-tok", "messageId": "q1", "statusCode": "5", "timestamp": T0}
    )
    assert good.status_code == 200
    bad = client.get(URL, params={"token": "s3cret-tok", "messageId": "q2", "statusCode": "85"})
    assert bad.status_code == 400
    (letter,) = tracker.dead_letters()
    assert "q2" in letter.payload
    assert "s3cret-tok" not in letter.payload


def test_basic_credentials_in_the_callback_url(start: Start, tracker: Tracker) -> None:
    """Basic credentials (as in https://user:pass@host/...) pass; wrong ones get a 401 challenge."""
    client = start(basic_auth=("clickatell", "pa:ss wörd"))
    body = json.dumps(one_api("basic", 5, "DEVICE_ACK", T0)).encode()
    headers = {"content-type": "application/json"}
    refused = client.post(URL, content=body, headers=headers, auth=("clickatell", "nope"))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    assert client.post(URL, content=body, headers=headers).status_code == 401
    garbled = client.post(
        URL, content=body, headers={**headers, "authorization": "Basic !!not-base64!!"}
    )
    assert garbled.status_code == 401
    assert tracker.get("basic") is None
    host = str(client.base_url).removeprefix("http://")
    with httpx.Client(base_url=f"http://clickatell:pa%3Ass%20w%C3%B6rd@{host}") as in_url:
        accepted = in_url.post(URL, content=body, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert tracker.get("basic") is not None


def test_secrets_are_compared_in_constant_time(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both the token and the Basic credentials go through hmac.compare_digest."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    client = start(token="tok-1", basic_auth=("user", "pw"))
    assert client.get("/", params={"token": "tok-2"}).status_code == 401
    assert (b"tok-2", b"tok-1") in calls
    assert client.get("/", auth=("user", "pw")).status_code == 200
    assert (b"pw", b"pw") in calls


# --- durable intake ----------------------------------------------------------------------


def test_a_body_the_store_cannot_keep_is_503_never_2xx(
    start: Start, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the intake's commit fails, the answer is 503 and nothing is applied."""
    client = start()

    def full(*args: object) -> int:
        raise StoreUnavailable("web.sqlite3", "database or disk is full")

    monkeypatch.setattr(tracker.store, "intake", full)
    monkeypatch.setattr(tracker.store, "add_dead_letter", full)
    response = post_json(client, one_api("unstored", 5, "DEVICE_ACK", T0))
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert "Traceback" not in response.text
    assert tracker.get("unstored") is None


def test_a_dead_letter_the_store_cannot_keep_is_503_not_400(
    start: Start, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 400 promises the body is in the dead letter; if it cannot be kept, it is 503."""
    client = start()

    def full(*args: object) -> None:
        raise StoreUnavailable("web.sqlite3", "database or disk is full")

    monkeypatch.setattr(tracker.store, "add_dead_letter", full)
    monkeypatch.setattr(tracker.store, "intake", full)
    assert post_json(client, "{broken").status_code == 503
    assert post_json(client, {"event": {}}).status_code == 503


def test_a_store_failing_mid_batch_is_503_keeps_nothing_and_the_retry_applies(
    start: Start, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write failing inside the intake's transaction is 503; nothing is kept; a retry applies."""
    client = start()
    text = json.dumps(one_api("retried", 6, "READ", T0, "whatsapp"))

    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as failing:
        failing.setattr(tracker.store, "_write", broken)
        response = post_json(client, text)
    assert response.status_code == 503
    assert "disk I/O" not in response.text  # the store's error stays in the log
    assert tracker.store.pending() == []
    assert tracker.dead_letters() == []
    assert tracker.get("retried") is None
    assert post_json(client, text).status_code == 200  # Clickatell's retry
    assert client.get("/messages/retried").json()["status"] == "READ"


def test_start_up_applies_bodies_a_crash_left_in_the_inbox(start: Start, tracker: Tracker) -> None:
    """Bodies accepted but never settled (a crash in between) are applied when the app starts."""
    text = json.dumps(one_api("orphan", 23, "DELIVERY_FAILURE", T0 + 3))
    tracker.store.accept([text])
    client = start()
    state = client.get("/messages/orphan").json()
    assert (state["status"], state["timestamp"]) == ("DELIVERY_FAILURE", "2026-01-01T00:00:00.003Z")
    assert tracker.store.pending() == []


def test_a_failing_start_up_drain_does_not_stop_the_receiver(
    start: Start, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the store cannot be drained at start-up the app still starts and takes callbacks."""

    def down() -> None:
        raise StoreUnavailable("web.sqlite3", "unable to open database file")

    monkeypatch.setattr(tracker, "drain_inbox", down)
    client = start()
    assert post_json(client, one_api("up", 5, "DEVICE_ACK", T0)).status_code == 200


def test_the_same_app_serves_again_after_a_shutdown(tracker: Tracker) -> None:
    """After a shutdown and a new start, callbacks are taken and the inbox drained again."""
    app = create_app(tracker)
    with serving(app) as base, httpx.Client(base_url=base) as client:
        assert post_json(client, one_api("first-run", 5, "DEVICE_ACK", T0)).status_code == 200
    tracker.store.accept([json.dumps(one_api("left", 5, "DEVICE_ACK", T0))])
    with serving(app) as base, httpx.Client(base_url=base) as client:
        assert post_json(client, one_api("second-run", 5, "DEVICE_ACK", T0)).status_code == 200
    assert tracker.get("first-run") is not None
    assert tracker.get("second-run") is not None
    assert tracker.get("left") is not None
    assert tracker.store.pending() == []


# --- the status page ---------------------------------------------------------------------


def count_cell(page: str, status: str) -> int:
    """The number in the status page's count row for ``status``."""
    match = re.search(rf'data-status="{status}">.*?class="num count">([\d,]+)<', page, re.S)
    assert match is not None, f"no count row for {status}"
    return int(match.group(1).replace(",", ""))


def test_status_page_shows_counts_recent_messages_search_and_lifecycle(start: Start) -> None:
    """The page counts messages by status, lists recent ids, finds one, and draws the lifecycle."""
    client = start()
    for index in range(3):
        post_json(client, one_api(f"ok-{index}", 5, "DEVICE_ACK", T0 + index))
    for index in range(2):
        post_json(client, one_api(f"late-{index}", 20, "EXPIRED", T0 + index))
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert count_cell(text, "DEVICE_ACK") == 3
    assert count_cell(text, "EXPIRED") == 2
    assert 'id="total">5<' in text
    assert text.index("late-1") < text.index("ok-0")  # newest first
    assert "<svg" in text or "stateDiagram-v2" in text
    found = client.get("/", params={"message_id": "late-0"}).text
    assert 'id="result" class="found"' in found
    assert "EXPIRED" in found[found.index('id="result"') :]
    missing = client.get("/", params={"message_id": "nope-7"}).text
    assert 'class="not-found"' in missing
    assert "nope-7" in missing


def test_status_page_shows_the_feed_s_consumers_and_warns_of_undeliverable_changes(
    start: Start, tracker: Tracker
) -> None:
    """Consumers' positions are listed; changes a forwarder gave up on raise a warning."""
    client = start()
    assert 'id="feed"' not in client.get("/").text  # no consumer yet: nothing to show
    for index in range(3):
        post_json(client, one_api(f"fed-{index}", 5, "DEVICE_ACK", T0 + index))
    tracker.commit_cursor("crm<1>", 2)
    tracker.store.add_undeliverable("crm<1>", tracker.changes()[2], "HTTP 500 from backend")
    text = client.get("/").text
    feed = text[text.index('<section id="feed">') :]
    assert "<code>crm&lt;1&gt;</code>" in feed  # escaped: a name is operator text
    assert '<td class="num">2</td><td class="num">1</td><td class="num">1</td>' in feed
    warning = text[text.index('class="warning undeliverable"') :]
    assert "1 change(s) could not be forwarded" in warning
    assert "--redeliver" in warning


def test_status_page_shows_overdue_messages_and_local_expiries(
    start: Start, tracker: Tracker
) -> None:
    """Registered messages past their deadline and those a sweep expired are counted."""
    client = start()
    assert 'id="deadlines"' not in client.get("/").text  # nothing registered: nothing to show
    long_ago = datetime.now(timezone.utc) - timedelta(days=10)
    for name in ("due-1", "due-2", "swept"):
        tracker.register(name, channel="sms", sent_at=long_ago)
    tracker.register("future", channel="sms", sent_at=datetime.now(timezone.utc))
    tracker.sweep(long_ago + timedelta(hours=73))  # expires all three at their deadline...
    tracker.apply(StatusEvent("due-2", Status.DEVICE_ACK, long_ago + timedelta(days=4), "sms"))
    tracker.register("late", channel="sms", sent_at=long_ago)  # ...and one more is overdue
    text = client.get("/").text
    section = text[text.index('<section id="deadlines">') :]
    assert '<td class="num" id="overdue">1</td>' in section
    assert '<td class="num" id="local-expiries">2</td>' in section


def test_hostile_message_ids_are_escaped_on_the_page(start: Start) -> None:
    """Message ids come from untrusted callbacks: the page shows them escaped, never as markup."""
    client = start()
    evil = '<script>alert("x")</script>'
    assert post_json(client, one_api(evil, 5, "DEVICE_ACK", T0)).status_code == 200
    for page in (client.get("/").text, client.get("/", params={"message_id": evil}).text):
        assert "<script>" not in page
        assert "&lt;script&gt;" in page


def test_page_keeps_a_url_token_in_its_links_and_search_form(start: Start) -> None:
    """Opened with ?token=, the page's links and search form carry it, so browsing keeps working."""
    client = start(token="tok&en")
    post_json(client, one_api("linked", 5, "DEVICE_ACK", T0), params={"token": "tok&en"})
    text = client.get("/", params={"token": "tok&en"}).text
    assert 'name="token" value="tok&amp;en"' in text
    href = re.search(r'href="([^"]*message_id=linked[^"]*)"', text)
    assert href is not None
    follow = client.get(href.group(1).replace("&amp;", "&"))
    assert follow.status_code == 200
    assert 'id="result" class="found"' in follow.text


def test_receiver_mounted_under_a_prefix_in_a_host_app(tracker: Tracker) -> None:
    """Mounted in another Starlette app, with its lifespan entered, every route works there."""
    tracker.store.accept([json.dumps(one_api("from-crash", 5, "DEVICE_ACK", T0))])
    receiver = create_app(tracker)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        async with receiver.router.lifespan_context(receiver):
            yield

    host = Starlette(routes=[Mount("/hooks", receiver)], lifespan=lifespan)
    with serving(host) as base, httpx.Client(base_url=base) as client:
        # outside the prefix there is no receiver (the fast path honours the mount too)
        assert post_json(client, one_api("mounted", 5, "DEVICE_ACK", T0)).status_code == 404
        assert tracker.get("mounted") is None
        response = client.post(
            "/hooks" + URL,
            content=json.dumps(one_api("mounted", 5, "DEVICE_ACK", T0)).encode(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200
        assert client.get("/hooks/messages/from-crash").json()["status"] == "DEVICE_ACK"
        page = client.get("/hooks/").text
        assert 'action="/hooks/"' in page
        assert 'href="/hooks/?message_id=mounted"' in page


# --- many clients at once ----------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def durable_tracker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tracker]:
    """A tracker over each durable store (PostgreSQL only where the tests have a server)."""
    if request.param == "sqlite":
        store: Any = SQLiteStore(tmp_path / "parallel.sqlite3")
    else:
        from deliverystate.postgres import PostgresStore  # noqa: PLC0415 - optional

        dsn = request.getfixturevalue("postgres_dsn")
        store = PostgresStore(dsn, schema=request.getfixturevalue("pg_schema"))
    yield Tracker(store)
    store.close()


def test_parallel_clients_posting_shuffled_callbacks_reach_the_in_memory_states(
    durable_tracker: Tracker,
) -> None:
    """16 concurrent HTTP clients posting shuffled callbacks end where an in-memory tracker does."""
    bodies = [c.body for c in generate_callbacks(300, seed=23) if c.valid]
    reference = Tracker(MemoryStore())
    reference.ingest_many(bodies)
    shuffled = bodies[:]
    random.Random(5).shuffle(shuffled)
    work: queue.SimpleQueue[str] = queue.SimpleQueue()
    for body in shuffled:
        work.put(body)
    statuses: list[int] = []
    with serving(create_app(durable_tracker)) as base:

        def client_loop() -> None:
            with httpx.Client(base_url=base, timeout=60) as client:
                while True:
                    try:
                        body = work.get_nowait()
                    except queue.Empty:
                        return
                    statuses.append(post_json(client, body).status_code)

        threads = [threading.Thread(target=client_loop) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert len(statuses) == len(bodies)
    assert set(statuses) == {200}
    message_ids = {m for c in bodies for m in re.findall(r'"(?:messageId|apiMsgId)": "(\w+)"', c)}
    assert len(message_ids) >= 290
    for message_id in message_ids:
        assert durable_tracker.get(message_id) == reference.get(message_id), message_id
    assert durable_tracker.count_by_status() == reference.count_by_status()
    assert durable_tracker.store.pending() == []


# --- garbage in, never a 5xx -------------------------------------------------------------

_CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded",
        "text/plain",
        "",
        "application/json\x00",
    ]
)
_BODIES = st.one_of(
    st.binary(max_size=600),
    mutated_callbacks().map(lambda b: (b if isinstance(b, str) else json.dumps(b)).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=6).map(
        lambda d: urlencode(d).encode()
    ),
)
_QUERIES = st.lists(
    st.tuples(
        st.sampled_from(["messageId", "statusCode", "status", "timestamp", "apiMsgId", "token"])
        | st.text(max_size=8),
        st.text(max_size=12),
    ),
    max_size=6,
)


def test_garbage_never_gets_a_5xx_or_a_traceback() -> None:
    """Hundreds of random bodies, content types and query strings: only 2xx/400/413/415, as JSON."""
    tracker = Tracker(MemoryStore())
    app = create_app(tracker)
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fuzz")
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())

    @settings(
        max_examples=400,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.booleans(), _CONTENT_TYPES, _BODIES, _QUERIES)
    def check(as_get: bool, content_type: str, body: bytes, query: list[tuple[str, str]]) -> None:
        if as_get:
            request = client.build_request("GET", URL, params=query)
        else:
            request = client.build_request(
                "POST", URL, content=body, headers={"content-type": content_type}
            )
        response = loop.run_until_complete(client.send(request))
        assert response.status_code in {200, 202, 400, 413, 415}, response.text
        assert "Traceback" not in response.text
        answer = response.json()
        if response.status_code == 400:
            assert isinstance(answer["field"], str)
            assert answer["reason"]

    try:
        check()
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
    assert tracker.store.pending() == []


# --- serve() -----------------------------------------------------------------------------


def test_serve_runs_the_receiver_on_sqlite_and_warns_without_a_secret(tmp_path: Path) -> None:
    """serve() listens on the given port over an SQLite file, warns loudly, and keeps the state."""
    db = tmp_path / "served.sqlite3"
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = f"from deliverystate.web import serve; serve({str(db)!r}, '127.0.0.1', {port})"
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        pytest.fail("serve() did not start")
                    time.sleep(0.05)
            assert post_json(client, one_api("served", 5, "DEVICE_ACK", T0)).status_code == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "WITHOUT a shared secret" in stderr
    with contextlib.closing(SQLiteStore(db)) as reopened:
        state = reopened.get("served")
    assert state is not None
    assert state.status is Status.DEVICE_ACK


def test_the_message_list_filters_and_pages_by_keyset(start: Start, tracker: Tracker) -> None:
    """GET /messages: newest first, filters as query parameters, pages that chain by cursor."""
    client = start()
    for index in range(5):
        post_json(client, one_api(f"list-{index}", 5, "DEVICE_ACK", T0 + index * 1000))
    post_json(client, one_api("list-failed", 23, "DELIVERY_FAILURE", T0 + 9000, "sms"))
    everything = client.get("/messages").json()
    assert [m["message_id"] for m in everything["messages"]][:2] == ["list-failed", "list-4"]
    assert everything["next_cursor"] is None
    failed = client.get("/messages", params={"failed": "true", "channel": "SMS"}).json()
    assert [m["message_id"] for m in failed["messages"]] == ["list-failed"]
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/messages", params=params).json()
        seen += [m["message_id"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [m["message_id"] for m in everything["messages"]]
    assert len(seen) == len(set(seen)) == 6


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "DELIVERED"}, "neither a status name nor a code"),
        ({"limit": "0"}, "limit '0'"),
        ({"cursor": "@@@"}, "not one this server gave out"),
        ({"statuss": "READ"}, "unknown parameter 'statuss'"),
        ({"since": "tomorrow"}, "since 'tomorrow'"),
    ],
)
def test_the_message_list_refuses_bad_parameters_naming_them(
    start: Start, params: dict[str, str], message: str
) -> None:
    """A bad filter, limit or cursor, or a misspelt parameter: 400 with a JSON error."""
    response = start().get("/messages", params=params)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_the_message_list_needs_the_token(start: Start) -> None:
    """With a shared secret the list is refused without it and served with it."""
    client = start(token="s3cret")
    assert client.get("/messages").status_code == 401
    assert client.get("/messages", params={"token": "s3cret"}).status_code == 200
