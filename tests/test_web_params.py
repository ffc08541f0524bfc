"""The read routes' parameters (web/_params): hostile values and crafted cursors, over real HTTP.

Every test runs uvicorn on loopback in front of an SQLite file and a
PostgreSQL schema and speaks HTTP/1.1 by hand on one keep-alive connection,
so that it sees the answer to a bad request and then that the same
connection still answers the next one.  The stores took bad text
differently (PostgreSQL refused a NUL that SQLite compared, SQLite refused
an integer past 64 bits): the answers expected here are written out from the
issue, one for every store, and nothing may be logged as an ERROR.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from deliverystate import SQLiteStore, Status, StatusEvent, Tracker
from deliverystate.web import create_app

from .test_web import T0, serving

#: The longest id a message may have (the project's rule, written out).
LONGEST_ID = 256


@pytest.fixture(params=["sqlite", "postgres"])
def tracker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tracker]:
    """A tracker over a fresh SQLite file or PostgreSQL schema, holding a few messages."""
    if request.param == "sqlite":
        store: Any = SQLiteStore(tmp_path / "params.sqlite3")
    else:
        from deliverystate.postgres import PostgresStore  # noqa: PLC0415 - optional

        store = PostgresStore(
            request.getfixturevalue("postgres_dsn"), schema=request.getfixturevalue("pg_schema")
        )
    tracker = Tracker(store)
    tracker.apply_many(
        [StatusEvent.from_ms(f"m{i}", Status.QUEUED, T0 + i, "sms", "order-1") for i in range(3)]
    )
    yield tracker
    store.close()


class Errors(logging.Handler):
    """Keeps every record of level ERROR or above, uvicorn's own (which do not propagate) too."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Iterator[Errors]:
    """What the receiver and uvicorn log at ERROR while the test runs."""
    handler = Errors()
    loggers = [
        logging.getLogger(),
        logging.getLogger("uvicorn"),
        logging.getLogger("uvicorn.error"),
    ]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


class Connection:
    """One keep-alive HTTP/1.1 connection spoken by hand; it says so if the server closes it."""

    def __init__(self, base: str) -> None:
        url = urlsplit(base)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=30)
        self.buffer = b""

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def get(self, target: str) -> tuple[int, dict[str, str], str]:
        """GET ``target`` (already percent-encoded); the status, headers and body."""
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: test\r\n\r\n".encode("ascii"))
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines)}
        size = int(headers["content-length"])
        while len(self.buffer) < size:
            self._more()
        body, self.buffer = self.buffer[:size], self.buffer[size:]
        return int(status_line.split()[1]), headers, body.decode("utf-8")


@pytest.fixture
def connect(tracker: Tracker) -> Iterator[Callable[[], Connection]]:
    """Serves a receiver over ``tracker``; opens keep-alive connections to it."""
    with serving(create_app(tracker)) as base, contextlib.ExitStack() as stack:

        def connect_() -> Connection:
            connection = Connection(base)
            stack.callback(connection.sock.close)
            return connection

        yield connect_


def b64(raw: bytes) -> str:
    """``raw`` as a cursor is spelt: URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


#: Cursors this server never gave out: the issue's four, a NUL, and every other way to be
#: almost one (a time out of range or not canonical, no id, an id no message has, bad base64).
CRAFTED_CURSORS = {
    "23 nines": b64(b"99999999999999999999999:x"),
    "minus 23 nines": b64(b"-99999999999999999999999:x"),
    "2**63": b64(b"9223372036854775808:x"),
    "lone surrogate": b64(b"1:\xed\xa0\x80"),
    "NUL in the id": b64(b"1:a\x00b"),
    "2**62": b64(b"4611686018427387904:x"),
    "minus one": b64(b"-1:x"),
    "leading zero": b64(b"01:x"),
    "plus sign": b64(b"+1:x"),
    "underscore": b64(b"1_000:x"),
    "space": b64(b" 1:x"),
    "fraction": b64(b"1.5:x"),
    "no id": b64(b"1:"),
    "no colon": b64(b"12345"),
    "control character": b64(b"1:a\x01b"),
    "long id": b64(b"1:" + b"x" * (LONGEST_ID + 1)),
    "not UTF-8": b64(b"1:\xff"),
    "padded": b64(b"1:x") + "==",
    "not base64": "@@@",
    "base64 with junk": b64(b"1:xy") + "!",
    "spare bits set": "MTp4eR",  # decodes to "1:xy" as MTp4eQ does
    "too long": "A" * 2_000,
}


def assert_refused(
    response: tuple[int, dict[str, str], str], parameter: str, *, as_json: bool
) -> None:
    """A 400 naming ``parameter``, the connection kept open."""
    status, headers, body = response
    assert status == 400, body[:300]
    assert headers.get("connection", "").lower() != "close"
    if as_json:
        assert json.loads(body)["parameter"] == parameter, body[:300]
    else:
        assert 'class="error" role="alert"' in body
        assert parameter in body


@pytest.mark.parametrize("route", ["/messages", "/list"])
def test_crafted_cursors_are_400_naming_the_cursor_and_keep_the_connection(
    connect: Callable[[], Connection], errors: Errors, route: str
) -> None:
    """Each crafted cursor: 400 naming ``cursor`` on both stores, the connection answers on."""
    connection = connect()
    for name, cursor in CRAFTED_CURSORS.items():
        response = connection.get(f"{route}?cursor={quote(cursor, safe='')}")
        try:
            assert_refused(response, "cursor", as_json=route == "/messages")
        except AssertionError as error:
            raise AssertionError(f"cursor {name}: {error}") from None
        assert connection.get("/messages?limit=1")[0] == 200, name
    assert errors.records == []


def test_the_cursors_the_server_gives_out_are_taken_back(
    tracker: Tracker, connect: Callable[[], Connection], errors: Errors
) -> None:
    """Pages of one chain through ids with a colon, non-ASCII text and 256 characters."""
    odd = ["a:b:c", "é中\U0001f600", "y" * LONGEST_ID, "plain"]
    tracker.apply_many(
        [StatusEvent.from_ms(m, Status.QUEUED, T0 + 10, "sms") for m in odd]
        + [StatusEvent.from_ms("late", Status.QUEUED, 8_000_000_000_000, "sms")]
    )
    connection = connect()
    seen, target = [], "/messages?limit=1"
    while True:
        status, _, body = connection.get(target)
        assert status == 200, body
        page = json.loads(body)
        seen += [m["message_id"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert connection.get(f"/list?limit=1&cursor={cursor}")[0] == 200
        target = f"/messages?limit=1&cursor={cursor}"
    assert sorted(seen) == sorted([*odd, "late", "m0", "m1", "m2"])
    assert errors.records == []


#: Values no parameter may have, percent-encoded as a client sends them: NUL, the bytes
#: of a lone surrogate, an overlong NUL, invalid UTF-8, a control character, 10,000 characters.
HOSTILE = ["%00", "%ED%A0%80", "%C0%80", "%FF", "a%01b", "x" * 10_000]
#: The parameters of the list routes that reach a store (or shape what does).
LIST_PARAMS = ["client_message_id", "status", "category", "channel", "since", "until", "limit"]
#: Numbers and times that are no such thing, each with the parameter it is given to.
NOT_NUMBERS = (
    [("limit", v) for v in ["-1", "0", "1001", "99999999999999999999999", "abc", "1e3", "%D9%A1"]]
    + [("since", v) for v in ["abc", "99999-01-01", "-1"]]
    + [("until", "2026-13-01")]
)


def _cases() -> list[tuple[str, str, bool]]:
    """(target, parameter named, JSON answer?) for every route and hostile value."""
    cases = []
    for route in ("/messages", "/list"):
        for name in LIST_PARAMS:
            cases += [(f"{route}?{name}={value}", name, route == "/messages") for value in HOSTILE]
        cases += [
            (f"{route}?{name}={value}", name, route == "/messages") for name, value in NOT_NUMBERS
        ]
        cases += [(f"{route}?%00=1", "query", route == "/messages")]
    for name in ("message_id", "window", "refresh"):
        cases += [(f"/?{name}={value}", name, False) for value in HOSTILE]
    cases += [("/?%ED%A0%80=1", "query", False)]
    cases += [(f"/messages/{value}", "message_id", True) for value in HOSTILE]
    return cases


def test_hostile_parameter_values_are_400_naming_the_parameter_on_every_route(
    connect: Callable[[], Connection], errors: Errors
) -> None:
    """NUL, surrogate bytes, 10,000 characters, bad numbers: 400 naming each, on both stores."""
    connection = connect()
    wrong = []
    for target, parameter, as_json in _cases():
        try:
            assert_refused(connection.get(target), parameter, as_json=as_json)
        except (AssertionError, KeyError, ValueError) as error:
            wrong.append(f"{target[:60]}: {error}"[:300])
        except ConnectionError:
            wrong.append(f"{target[:60]}: the server closed the connection")
            connection = connect()
        assert connection.get("/messages?limit=1")[0] == 200, target[:60]
    assert wrong == []
    assert errors.records == []


def test_good_values_next_to_the_hostile_ones_still_answer(
    connect: Callable[[], Connection],
) -> None:
    """The rule refuses what no message has, not what the filters take: these all answer."""
    connection = connect()
    for target, status in [
        ("/messages?client_message_id=order-1&status=queued&channel=SMS&limit=1000", 200),
        ("/messages?since=2026-01-01&until=2026-01-02T00%3A00%2B01%3A00&category=", 200),
        ("/list?client_message_id=order-1&cursor=&limit=", 200),
        ("/?message_id=m1&window=7d&refresh=30", 200),
        ("/?message_id=unknown", 404),
        ("/messages/m1", 200),
        (f"/messages/{'z' * LONGEST_ID}", 404),
        ("/messages/%C3%A9", 404),
    ]:
        assert connection.get(target)[0] == status, target
