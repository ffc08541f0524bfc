"""A backend's webhook receiver, for the forwarding tests: it checks signatures, records, fails.

It verifies every request with the ``standardwebhooks`` package (the
receiver's side of the specification, not our signing code), answers 401 to
a bad signature, and appends each verified delivery to a JSON-lines file
*before* it answers 204, so that whatever it acknowledged is on record even
if it is killed the next instant.  It can be made to misbehave: fail a share
of requests at random (``fail_rate``), or always fail the changes of some
messages (``fail_prefix``), with 503 and ``Retry-After: 0``.

Run in this process (:func:`start`) or as a child process to be killed::

    python -m tests.sink PORT SECRET RECORD [--fail-rate 0.2] [--fail-prefix poison-]
"""

from __future__ import annotations

import argparse
import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

__all__ = ["Sink", "deliveries", "start"]


class Sink(ThreadingHTTPServer):
    """The receiving server and what it was told to do."""

    daemon_threads = True

    def __init__(
        self, port: int, secret: str, record: Path, fail_rate: float, fail_prefix: str | None
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.webhook = Webhook(secret)
        self.record = record
        self.fail_rate = fail_rate
        self.fail_prefix = fail_prefix
        self.random = random.Random(port)
        self.lock = threading.Lock()
        self.bad_signatures = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real backend
    server: Sink

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the record is the log."""

    def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        """Verify, maybe fail, record, acknowledge."""
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        sink = self.server
        try:
            payload = sink.webhook.verify(body, dict(self.headers.items()))
        except WebhookVerificationError:
            with sink.lock:
                sink.bad_signatures += 1
            self._answer(401)
            return
        data = payload["data"]
        with sink.lock:
            flaky = sink.random.random() < sink.fail_rate
        if flaky or (sink.fail_prefix and data["message_id"].startswith(sink.fail_prefix)):
            self._answer(503, {"retry-after": "0"})
            return
        line = json.dumps({"id": self.headers["webhook-id"], "type": payload["type"], **data})
        with sink.lock, sink.record.open("a", encoding="utf-8") as file:
            file.write(line + "\n")
        self._answer(204)


def start(
    port: int,
    secret: str,
    record: Path,
    *,
    fail_rate: float = 0.0,
    fail_prefix: str | None = None,
) -> Sink:
    """A sink serving in a daemon thread of this process; ``shutdown()`` stops it."""
    sink = Sink(port, secret, record, fail_rate, fail_prefix)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    return sink


def deliveries(record: Path) -> list[dict[str, Any]]:
    """What a sink has acknowledged, in the order it did."""
    if not record.exists():
        return []
    lines = record.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("secret")
    parser.add_argument("record", type=Path)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--fail-prefix", default=None)
    args = parser.parse_args()
    Sink(args.port, args.secret, args.record, args.fail_rate, args.fail_prefix).serve_forever()


if __name__ == "__main__":
    main()
