"""Tests for ``serve``'s HTTP protocol: the request-head deadline and the connection cap.

Over real HTTP against ``deliverystate serve`` in a child process (SQLite):
a client stalled in its request head is closed, many of them neither starve
real callbacks nor grow the server's descriptors, and reaching the cap is
logged.  These pin the uvicorn internals the protocol hooks into.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deliverystate.web import HEADER_TIMEOUT_SECONDS, ConnectionLimits
from deliverystate.web._protocol import default_max_connections

from .test_web import T0, one_api, post_json, wait_for
from .test_web_intake import free_port, healthy

#: What the issue's slow client sends before it stalls.
STALLED_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"


@contextlib.contextmanager
def served(tmp_path: Path, *options: str) -> Iterator[tuple[str, int, Path]]:
    """``deliverystate serve`` on SQLite with ``options``; yields base URL, pid and log path."""
    port = free_port()
    script = Path(sys.executable).parent / "deliverystate"
    db = str(tmp_path / "protocol.sqlite3")
    log = tmp_path / "serve.log"  # a file, never a pipe that could fill and block the server
    command = [str(script), "serve", "--db", db, "--port", str(port), "--no-access-log"]
    with log.open("wb") as stderr_file:
        server = subprocess.Popen(
            [*command, *options], stdout=subprocess.DEVNULL, stderr=stderr_file
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not healthy(base):
            assert server.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.05)
        yield base, server.pid, log
    finally:
        server.terminate()
        server.wait(timeout=60)


def stalled(base: str, head: bytes = STALLED_HEAD) -> socket.socket:
    """A connection that sent ``head`` and nothing more."""
    port = int(base.rsplit(":", 1)[1])
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    if head:
        client.sendall(head)
    return client


def read_until_closed(client: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Everything the server writes until it closes the connection, and how long that took."""
    started = time.monotonic()
    client.settimeout(seconds)
    answer = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := client.recv(65536):
            answer += chunk
    return answer, time.monotonic() - started


def read_answer(client: socket.socket) -> bytes:
    """One whole answer (head and a Content-Length body) from a connection kept open."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += client.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert length is not None, head
    while len(body) < int(length[1]):
        body += client.recv(65536)
    return head + b"\r\n\r\n" + body


def descriptors(pid: int) -> int:
    """How many file descriptors the process holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def resident_kib(pid: int) -> int:
    """The process's resident memory."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


def post_callback(base: str, message_id: str) -> httpx.Response:
    """One real callback from a fresh connection (raises on no answer within 10 s)."""
    with httpx.Client(base_url=base, timeout=10) as client:
        return post_json(client, one_api(message_id, 5, "DEVICE_ACK", T0))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_client_stalled_in_its_request_head_is_closed(tmp_path: Path, workers: int) -> None:
    """A partial head gets 408 and is closed after --header-timeout; a silent one is closed too."""
    options = ("--header-timeout", "1s", "--workers", str(workers))
    with served(tmp_path, *options) as (base, _, _):
        partial, silent = stalled(base), stalled(base, b"")
        answer, took = read_until_closed(partial, seconds=6)
        rest, _ = read_until_closed(silent, seconds=6)
        assert post_callback(base, "after").status_code == 200
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"timeout_seconds": 1.0' in answer
    assert 0.9 <= took < 4, took
    assert rest == b""


def test_a_kept_alive_connection_stalled_in_its_next_head_is_closed(tmp_path: Path) -> None:
    """After a first answer, a connection that begins a second head and stalls gets 408."""
    with served(tmp_path, "--header-timeout", "1s") as (base, _, _):
        client = stalled(base, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        client.settimeout(5)
        first = read_answer(client)
        client.sendall(STALLED_HEAD)
        answer, took = read_until_closed(client, seconds=8)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert took < 4  # uvicorn's own keep-alive timer stops at the first byte: this is ours


def test_many_stalled_connections_neither_starve_callbacks_nor_grow_the_server(
    tmp_path: Path,
) -> None:
    """300 stalled heads against a cap of 50: callbacks answered, descriptors bounded, logged."""
    options = ("--header-timeout", "3s", "--max-connections", "50")
    with served(tmp_path, *options) as (base, pid, log):
        before = descriptors(pid), resident_kib(pid)
        attack = [stalled(base) for _ in range(300)]
        burst = descriptors(pid)  # the cap, and at most a quarter of it refused but waiting
        early = post_callback(base, "early")  # the cap is full of heads younger than a second
        time.sleep(2)  # the heads refused at the cap were closed after their second
        during = descriptors(pid), resident_kib(pid)
        answers = [post_callback(base, f"real-{i}") for i in range(20)]
        closed = [read_until_closed(client, seconds=8)[0] for client in attack]
        after = descriptors(pid)
        for client in attack:
            client.close()
        wait_for(lambda: "closed connections" in log.read_text(), seconds=5)
    assert early.status_code in (200, 503), early
    if early.status_code == 503:
        assert early.headers["retry-after"] == "5"
        assert early.json() == {"error": "too many connections; try again later"}
    assert [a.status_code for a in answers] == [200] * 20  # each evicted a stalled head
    assert burst <= before[0] + 50 + 12 + 10, (before, burst)
    assert during[0] <= before[0] + 50 + 10, (before, during)
    assert during[1] <= before[1] + 20_000, (before, during)  # KiB
    assert after <= before[0] + 10, (before, after)
    statuses = sorted({answer[:12] for answer in closed})
    assert statuses == [b"HTTP/1.1 408", b"HTTP/1.1 503"], statuses  # each closed, none hangs
    text = log.read_text()
    assert "connection limit reached" in text, text
    assert "(--max-connections 50)" in text
    assert "sent no complete request head within 3s" in text, text


def test_the_default_limits_are_within_the_bounds_the_issue_names() -> None:
    """15 s for a head (between 10 and 30), and a cap well below the open-file limit."""
    import resource  # noqa: PLC0415 - POSIX, like the rest of these tests

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert 10 <= HEADER_TIMEOUT_SECONDS <= 30
    assert ConnectionLimits().header_timeout == HEADER_TIMEOUT_SECONDS
    assert default_max_connections() <= min(1000, soft // 2)
    with pytest.raises(ValueError, match="header_timeout"):
        ConnectionLimits(header_timeout=0)
    with pytest.raises(ValueError, match="max_connections"):
        ConnectionLimits(max_connections=0)


def test_the_limits_travel_to_workers_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What serve() puts in the environment, a worker reads back as the same limits."""
    limits = ConnectionLimits(header_timeout=2.5, max_connections=77)
    for name, value in limits.environment().items():
        monkeypatch.setenv(name, value)
    assert ConnectionLimits.from_environment() == limits
