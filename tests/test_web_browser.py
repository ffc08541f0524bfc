"""The status page in a real headless browser: Debian's ``chromium``, driven over DevTools.

The test starts the receiver on loopback, posts callbacks with known outcomes,
opens the page in Chromium, reads the counts from the rendered DOM, types a
message id into the search box and clicks "Search", like a person would, and
takes a screenshot.  Chromium is driven through the Chrome DevTools Protocol
over a WebSocket (``websocket-client``); no browser download is needed.
Set ``DELIVERYSTATE_SCREENSHOT_DIR`` to keep the screenshots for a look.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from deliverystate import SQLiteStore, Status, StatusEvent, Tracker
from deliverystate.web import create_app

from .test_web import T0, one_api, post_json, serving

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.chromium,
    # one browser at a time: each is a dozen processes on two cores, and its waits are timed
    pytest.mark.xdist_group("chromium"),
]
websocket = pytest.importorskip("websocket", reason="websocket-client is in the test extra")

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--window-size=1200,1600",
    "--remote-debugging-port=0",
]


class DevTools:
    """A minimal Chrome DevTools Protocol client: commands in order, events buffered."""

    def __init__(self, url: str) -> None:
        self._socket = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self._next = 0
        self.events: list[dict[str, Any]] = []  # not yet waited for
        self.seen: list[dict[str, Any]] = []  # every event, for the final checks

    def close(self) -> None:
        """Close the WebSocket."""
        self._socket.close()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result, keeping the events that arrive meanwhile."""
        self._next += 1
        ident = self._next
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)
            self.seen.append(message)

    def wait_for(self, event: str, seconds: float = 60) -> dict[str, Any]:
        """The first buffered or next arriving ``event``, removed from the buffer."""
        deadline = time.monotonic() + seconds
        while True:
            for index, message in enumerate(self.events):
                if message.get("method") == event:
                    return self.events.pop(index)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {seconds} s")
            message = json.loads(self._socket.recv())
            self.events.append(message)
            self.seen.append(message)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def navigate(self, url: str) -> None:
        """Load ``url`` and wait until it has loaded.

        A load event can be a late one of the page before (about:blank on a
        busy machine), so the wait ends only once the document is ``url``'s.
        """
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_until_loaded(url)

    def wait_until_loaded(self, url_prefix: str, seconds: float = 60) -> None:
        """Wait for load events until the page at ``url_prefix`` has completely loaded."""
        deadline = time.monotonic() + seconds
        check = (
            "document.readyState === 'complete' && "
            f"location.href.startsWith({json.dumps(url_prefix)})"
        )
        while True:
            self.wait_for("Page.loadEventFired", max(0.1, deadline - time.monotonic()))
            if self.evaluate(check):
                return


@contextlib.contextmanager
def chromium() -> Iterator[DevTools]:
    """Headless Chromium with a fresh profile; yields a DevTools client on its first tab."""
    assert CHROMIUM is not None
    # a helper process of the browser may still write its profile as the folder goes
    with tempfile.TemporaryDirectory(prefix="ds-chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            active = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (active.exists() and active.read_text().count("\n") >= 1):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("chromium did not open its DevTools port")
                time.sleep(0.05)
            port = int(active.read_text().splitlines()[0])
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=30).json()
            page = next(t for t in targets if t["type"] == "page")
            devtools = DevTools(page["webSocketDebuggerUrl"])
            try:
                yield devtools
            finally:
                devtools.close()
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(15)
            # the whole group of the browser started above: its helpers outlive the main one
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def keep_screenshot(devtools: DevTools, path: Path) -> bytes:
    """A full-page PNG of the current page, written to ``path`` (and the screenshot dir, if set)."""
    shot = devtools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    data = base64.b64decode(shot["data"])
    path.write_bytes(data)
    keep = os.environ.get("DELIVERYSTATE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / path.name).write_bytes(data)
    return data


@pytest.mark.graphviz
def test_status_page_in_chromium_shows_counts_and_finds_a_message(tmp_path: Path) -> None:
    """Chromium renders the page with the right counts, and typing an id and clicking finds it."""
    store = SQLiteStore(tmp_path / "browser.sqlite3")
    with contextlib.closing(store):
        tracker = Tracker(store)
        with serving(create_app(tracker)) as base, httpx.Client(base_url=base) as client:
            for index in range(3):
                post_json(client, one_api(f"sms-ok-{index}", 5, "DEVICE_ACK", T0 + index))
            for index in range(2):
                post_json(client, one_api(f"sms-late-{index}", 20, "EXPIRED", T0 + index))
            post_json(client, one_api("wa-read-1", 2, "QUEUED", T0, "whatsapp"))
            assert post_json(
                client, one_api("wa-read-1", 6, "READ", T0 + 60_000, "whatsapp")
            ).is_success

            with chromium() as devtools:
                devtools.call("Page.enable")
                devtools.call("Runtime.enable")
                devtools.call("Log.enable")
                devtools.navigate(f"{base}/")
                assert devtools.evaluate("document.title") == "deliverystate"
                counts = devtools.evaluate(
                    "Object.fromEntries([...document.querySelectorAll('#counts tr[data-status]')]"
                    ".map(r => [r.dataset.status, r.querySelector('.count').textContent]))"
                )
                assert counts == {"DEVICE_ACK": "3", "READ": "1", "EXPIRED": "2"}
                assert devtools.evaluate("document.getElementById('total').textContent") == "6"
                assert devtools.evaluate("document.querySelectorAll('#lifecycle svg').length") == 1
                assert devtools.evaluate("document.querySelectorAll('#recent td.id a').length") == 6
                keep_screenshot(devtools, tmp_path / "status-page.png")

                # type the id into the search box and click the button, as a person would
                devtools.evaluate("document.getElementById('q').focus()")
                devtools.call("Input.insertText", text="wa-read-1")
                box = devtools.evaluate(
                    "(() => { const r = document.querySelector('#search button')"
                    ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
                )
                devtools.events.clear()
                for kind in ("mousePressed", "mouseReleased"):
                    devtools.call(
                        "Input.dispatchMouseEvent",
                        type=kind,
                        x=box[0],
                        y=box[1],
                        button="left",
                        clickCount=1,
                    )
                devtools.wait_until_loaded(f"{base}/?q=wa-read-1")
                assert devtools.evaluate("location.search") == "?q=wa-read-1"
                result = devtools.evaluate("document.getElementById('result').innerText")
                assert "wa-read-1 is READ" in result
                assert "2026-01-01T00:01:00.000Z" in result
                rows = devtools.evaluate(
                    "[...document.querySelectorAll('#result tbody tr')].map(r => r.innerText)"
                )
                assert [row.split("\t")[1] for row in rows] == ["QUEUED", "READ"]
                png = keep_screenshot(devtools, tmp_path / "search-result.png")
                assert png.startswith(b"\x89PNG\r\n\x1a\n")

                devtools.navigate(f"{base}/?message_id=nobody-here")
                assert "No message" in devtools.evaluate(
                    "document.getElementById('result').innerText"
                )
                problems = [
                    event["params"]
                    for event in devtools.seen
                    if event.get("method") == "Runtime.exceptionThrown"
                    or (
                        event.get("method") == "Log.entryAdded"
                        and "Content Security Policy" in event["params"]["entry"]["text"]
                    )
                ]
                assert problems == []


def recent_traffic(tracker: Tracker, now: datetime, messages: int = 120) -> dict[str, int]:
    """A day of traffic ending ``now``, on both channels; returns how many messages failed."""
    rng = random.Random(7)
    failed = 0
    for index in range(messages):
        channel = "whatsapp" if index % 3 == 0 else "sms"
        sent = now - timedelta(minutes=rng.randint(5, 20 * 60))
        message_id = f"{channel[:2]}-{index:03d}"
        reports = [(Status.QUEUED, sent), (Status.SENT_TO_SUPPLIER, sent + timedelta(seconds=1))]
        roll = rng.random()
        if roll < 0.8:
            reports.append((Status.DEVICE_ACK, sent + timedelta(seconds=rng.randint(3, 90))))
            if channel == "whatsapp" and rng.random() < 0.5:
                reports.append((Status.READ, sent + timedelta(minutes=rng.randint(1, 120))))
        elif roll < 0.9:
            failed += 1
            reports.append((Status.DELIVERY_FAILURE, sent + timedelta(seconds=30)))
        tracker.apply_many(StatusEvent(message_id, s, at, channel) for s, at in reports)
    return {"failed": failed}


def column_of_list(index: int) -> str:
    """JavaScript: the text of column ``index`` of every row of the message list."""
    return f"[...document.querySelectorAll('#list tbody tr')].map(r => r.cells[{index}].innerText)"


def click(devtools: DevTools, selector: str) -> None:
    """Press and release the mouse on the middle of the element ``selector`` finds."""
    box = devtools.evaluate(
        f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
        "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
        "return [r.x + r.width / 2, r.y + r.height / 2]; })()"
    )
    devtools.events.clear()
    for kind in ("mousePressed", "mouseReleased"):
        devtools.call(
            "Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1
        )


def test_status_page_charts_delivery_links_to_lists_and_fits_a_phone(tmp_path: Path) -> None:
    """Chromium draws the channel figures and chart; a status opens its list; 390 px fits."""
    store = SQLiteStore(tmp_path / "browser.sqlite3")
    with contextlib.closing(store):
        tracker = Tracker(store)
        failed = recent_traffic(tracker, datetime.now(timezone.utc))["failed"]
        with serving(create_app(tracker)) as base, httpx.Client(base_url=base) as client:
            client.post(
                "/callbacks/clickatell",
                content=b'{"event": ',
                headers={"content-type": "application/json"},
            )  # kept as a dead letter
            with chromium() as devtools:
                devtools.call("Page.enable")
                devtools.call("Runtime.enable")
                devtools.navigate(f"{base}/")
                channels = devtools.evaluate(
                    "[...document.querySelectorAll('#channels tbody tr')]"
                    ".map(r => [r.dataset.channel, r.cells[1].textContent])"
                )
                assert channels == [["sms", "80"], ["whatsapp", "40"]]
                assert devtools.evaluate("document.querySelectorAll('#trend circle').length") > 10
                assert (
                    devtools.evaluate("document.getElementById('dead-letter-count').textContent")
                    == "1"
                )
                keep_screenshot(devtools, tmp_path / "status-page-wide.png")

                click(devtools, "#counts tr[data-status=DELIVERY_FAILURE] a")
                devtools.wait_until_loaded(f"{base}/list?status=DELIVERY_FAILURE")
                statuses = devtools.evaluate(column_of_list(1))
                assert statuses == ["DELIVERY_FAILURE"] * failed
                keep_screenshot(devtools, tmp_path / "list-failed.png")

                devtools.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=390,
                    height=844,
                    deviceScaleFactor=2,
                    mobile=True,
                )
                for path, name in (("/", "status-page-390.png"), ("/list", "list-390.png")):
                    devtools.navigate(f"{base}{path}")
                    # nothing pushes the page sideways: wide tables scroll inside their box
                    width = devtools.evaluate("document.documentElement.scrollWidth")
                    assert width <= 390, f"{path} is {width} px wide at 390 px"
                    # and every figure shows without scrolling a table sideways either
                    hidden = devtools.evaluate(
                        "[...document.querySelectorAll('#channels td, #failures td, #counts td')]"
                        ".filter(c => getComputedStyle(c).display !== 'none' && "
                        "c.getBoundingClientRect().right > 390).map(c => c.textContent)"
                    )
                    assert hidden == [], f"{path} at 390 px hides {hidden}"
                    keep_screenshot(devtools, tmp_path / name)


def test_the_page_asks_for_the_token_in_a_form_and_keeps_the_filters(tmp_path: Path) -> None:
    """Without the token a browser gets a form; typing it opens the list that was asked for."""
    store = SQLiteStore(tmp_path / "browser.sqlite3")
    with contextlib.closing(store):
        tracker = Tracker(store)
        recent_traffic(tracker, datetime.now(timezone.utc), messages=12)
        with serving(create_app(tracker, token="open sesame")) as base, chromium() as devtools:
            devtools.call("Page.enable")
            devtools.call("Runtime.enable")
            devtools.navigate(f"{base}/list?channel=whatsapp")
            assert devtools.evaluate("document.querySelectorAll('#sign-in form').length") == 1
            keep_screenshot(devtools, tmp_path / "sign-in.png")
            devtools.evaluate("document.getElementById('token').focus()")
            devtools.call("Input.insertText", text="open sesame")
            click(devtools, "#sign-in button")
            devtools.wait_until_loaded(f"{base}/list?channel=whatsapp")
            channels = devtools.evaluate(column_of_list(3))  # id, status, client id, channel
            assert channels == ["whatsapp"] * 4
            # the token rides along in the links, so the next click still gets through
            click(devtools, "a[href^='/?']")
            devtools.wait_until_loaded(f"{base}/?")
            assert devtools.evaluate("document.querySelectorAll('#counts').length") == 1
