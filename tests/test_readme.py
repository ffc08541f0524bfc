"""Tests that keep the README honest: its commands, its generated table, its quickstart."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from deliverystate import MemoryStore, Outcome, SQLiteStore, Status, StatusEvent, Tracker
from deliverystate.diagrams import lifecycle_dot, policy_markdown, render_svg
from deliverystate.forward import DeliveryFailed, Forwarder, ForwardTarget, new_secret
from deliverystate.rules import DELIVERY_WINS
from deliverystate.simulate import callback_body
from deliverystate.testing import BASE_MS

from .runs import run_pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
)


def shell_blocks() -> list[str]:
    """The README's ```sh blocks."""
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def test_readme_has_the_two_setup_commands() -> None:
    """The set-up section gives the replay command and the test command."""
    blocks = shell_blocks()
    assert any("deliverystate replay examples/callbacks.jsonl" in b for b in blocks[:2])
    assert blocks[1].strip() == TEST_COMMAND


def test_ci_runs_the_readmes_test_command() -> None:
    """.ci/run calls the very test command the README gives."""
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_policy_table_is_the_generated_one() -> None:
    """The README's precedence table is exactly what the policy generates."""
    table = re.search(r"<!-- policy:delivery-wins.*?-->\n(.*?)<!-- /policy -->", README, re.S)
    assert table is not None
    assert table[1] == policy_markdown(DELIVERY_WINS), (
        "regenerate with: python -c 'from deliverystate import DELIVERY_WINS; "
        "from deliverystate.diagrams import policy_markdown; "
        'print(policy_markdown(DELIVERY_WINS), end="")\''
    )


def quickstart() -> str:
    """The README's first ```python block: the Quickstart."""
    code = re.search(r"```python\n(.*?)```", README, flags=re.S)
    assert code is not None
    return code[1]


def test_quickstart_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Quickstart's webhook answers 200, 400 and 503 as documented, durably."""
    code = quickstart()
    assert len(code.strip().splitlines()) <= 18
    assert "tracker.receive(" in code, "the Quickstart shows the durable call"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    handler, tracker = namespace["on_clickatell_callback"], namespace["tracker"]
    store = tracker.store

    def body(message_id: str) -> bytes:
        return json.dumps(
            callback_body(StatusEvent.from_ms(message_id, 5, BASE_MS, "sms"))
        ).encode()

    assert handler(body("m")) == 200
    assert tracker.history("m")[0].outcome is Outcome.APPLIED
    assert handler(b"{oops") == 400
    assert [letter.payload for letter in tracker.dead_letters()] == ["{oops"]

    def down(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as broken:  # the store fails mid-transaction: nothing kept, 503
        broken.setattr(store, "_write", down)
        assert handler(body("lost")) == 503
    assert tracker.get("lost") is None
    assert len(tracker.dead_letters()) == 1
    assert handler(body("lost")) == 200  # Clickatell's retry

    def poison(*args: object) -> None:
        raise sqlite3.IntegrityError("this body breaks a constraint")

    with monkeypatch.context() as broken:  # refused on its own while the store works
        broken.setattr(store, "_write", poison)
        assert handler(body("poison")) == 400
    assert len(tracker.dead_letters()) == 2
    assert store.count_pending() == 0
    store.close()
    reopened = Tracker(SQLiteStore(tmp_path / "deliverystate.sqlite3"))
    assert {m: reopened.get(m).status for m in ("m", "lost")} == {  # type: ignore[union-attr]
        "m": Status.DEVICE_ACK,
        "lost": Status.DEVICE_ACK,
    }
    assert reopened.get("poison") is None
    reopened.store.close()  # type: ignore[attr-defined]


@pytest.mark.graphviz
def test_readme_embeds_the_current_lifecycle_svg() -> None:
    """The README shows diagrams/lifecycle.svg, and that file is a fresh render of the rules."""
    block = re.search(r"<!-- diagram:lifecycle.*?-->\n!\[[^]]+\]\(([^)]+)\)", README, re.S)
    assert block is not None
    assert block[1] == "diagrams/lifecycle.svg"
    committed = (ROOT / block[1]).read_text(encoding="utf-8")
    assert committed == render_svg(lifecycle_dot()), "regenerate with export_all (see README)"


def python_block_after(marker: str) -> str:
    """The ```python block that follows ``marker`` in the README."""
    start = README.index(marker)
    code = re.search(r"```python\n(.*?)```", README[start:], flags=re.S)
    assert code is not None
    return code[1]


def test_the_change_feed_example_runs() -> None:
    """The feed snippet hands each change to the consumer once and moves its cursor."""
    tracker = Tracker(MemoryStore())
    tracker.apply_many([StatusEvent.from_ms(m, 2, BASE_MS, "sms") for m in ("x", "y")])
    billed: list[tuple[str, Status]] = []
    namespace: dict[str, object] = {
        "tracker": tracker,
        "bill": lambda m, status, when: billed.append((m, status)),
    }
    exec(compile(python_block_after("## Telling your backend"), "README.md", "exec"), namespace)
    assert billed == [("x", Status.QUEUED), ("y", Status.QUEUED)]
    assert tracker.cursor("billing") == 2
    tracker.apply(StatusEvent.from_ms("x", 6, BASE_MS + 5, "sms"))  # the hook runs: no error


def test_the_deadlines_example_runs_as_written() -> None:
    """The registration and sweep example runs, its assertions holding, and leaves a1 delivered."""
    namespace: dict[str, object] = {}
    block = python_block_after("## Sent messages that never hear back")
    exec(compile(block, "README.md", "exec"), namespace)
    tracker = namespace["tracker"]
    assert isinstance(tracker, Tracker)
    sources = [e.event.origin.value for e in tracker.history("a1")]
    assert sources == ["local", "local", "clickatell"]


def test_the_receiving_side_verifies_and_handles_each_change_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's receiver, behind a real HTTP server, takes our forwarder's webhooks."""
    secret = new_secret()
    monkeypatch.setenv("DELIVERYSTATE_FORWARD_SECRET", secret)
    updates: list[tuple[str, str, int]] = []
    namespace: dict[str, object] = {"update_message": lambda *args: updates.append(args)}
    code = python_block_after("<!-- receiver -->")
    assert len([line for line in code.splitlines() if line.strip()]) <= 14
    exec(compile(code, "README.md", "exec"), namespace)
    handle = namespace["on_deliverystate_webhook"]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            """Hand the body and lower-cased headers to the README's function."""
            body = self.rfile.read(int(self.headers["content-length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.send_response(handle(body, headers))  # type: ignore[operator]
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    tracker = Tracker(MemoryStore())
    tracker.apply_many(
        [StatusEvent.from_ms("r", 2, BASE_MS, "sms"), StatusEvent.from_ms("r", 6, BASE_MS + 9)]
    )
    forwarder = Forwarder(tracker.store, ForwardTarget(url, secret))
    impostor = Forwarder(tracker.store, ForwardTarget(url, new_secret(), name="impostor"))
    try:
        assert forwarder.run(follow_feed=False).delivered == 2
        forwarder.send(tracker.changes()[1])  # sent again, as after a forwarder's restart
        with pytest.raises(DeliveryFailed, match="HTTP 401"):
            impostor.send(tracker.changes()[0])
    finally:
        forwarder.close()
        impostor.close()
        server.shutdown()
        server.server_close()
    assert updates == [("r", "QUEUED", 1), ("r", "READ", 2)]


def section_blocks(heading: str) -> list[str]:
    """The ```python blocks of the README section that starts with ``heading``."""
    start = README.index(heading)
    end = README.index("\n## ", start + len(heading))
    return re.findall(r"```python\n(.*?)```", README[start:end], flags=re.S)


def test_the_property_test_of_a_feed_rule_runs_and_catches_a_broken_rule() -> None:
    """The README's property test passes for its rule and fails for a rule that bills twice."""
    rule, _, _ = section_blocks("## Test your own code")
    namespace: dict[str, Any] = {}
    exec(compile(rule, "README.md", "exec"), namespace)
    namespace["test_each_delivered_message_is_billed_once"]()

    def bills_every_delivery(tracker: Tracker, bill: Any) -> None:
        for change in tracker.changes(after=tracker.cursor("billing")):
            if change.status.is_delivered:  # DEVICE_ACK then READ: billed twice
                bill(change.message_id)
            tracker.commit_cursor("billing", change.seq)

    namespace["bill_deliveries"] = bills_every_delivery
    with pytest.raises(AssertionError):
        namespace["test_each_delivered_message_is_billed_once"]()


def test_the_five_line_store_contract_runs_as_written(tmp_path: Path) -> None:
    """The README's StoreContract subclass, for a store of one's own, passes under pytest."""
    _, contract, _ = section_blocks("## Test your own code")
    assert len(contract.strip().splitlines()) == 5
    preamble = (
        "from hypothesis import settings\n"
        "from deliverystate import SQLiteStore as MyStore  # a store of one's own\n"
        'settings.register_profile("readme", max_examples=10)\n'
        'settings.load_profile("readme")\n'
    )
    test_file = tmp_path / "test_my_store.py"
    test_file.write_text(preamble + contract, encoding="utf-8")
    done = run_pytest(test_file)
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"\b\d{2,} passed\b", done.stdout)


def test_the_make_tracker_example_runs_under_hypothesis(tmp_path: Path) -> None:
    """The README's @given test with make_tracker passes pytest and Hypothesis's health checks."""
    *_, example = section_blocks("## Test your own code")
    assert "make_tracker" in example
    test_file = tmp_path / "test_with_make_tracker.py"
    test_file.write_text(example, encoding="utf-8")
    done = run_pytest(test_file)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "1 passed" in done.stdout


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: lower case, punctuation dropped, dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_is_a_front_door_of_at_most_400_lines() -> None:
    """The README stays short: details live in docs/, not in it."""
    assert len(README.splitlines()) <= 400


def assert_link_resolves(source: Path, target: str, anchor: str) -> None:
    """``target`` (relative to ``source``; empty: ``source`` itself) exists and has ``anchor``."""
    doc = (source.parent / target).resolve() if target else source
    assert doc.is_file(), f"{source.name} links to {target}, which does not exist"
    if anchor:
        headings = re.findall(r"^#+ (.+)$", doc.read_text(encoding="utf-8"), flags=re.M)
        assert anchor in {github_anchor(h) for h in headings}, f"{target} has no #{anchor}"


def test_every_docs_link_of_the_readme_exists() -> None:
    """Each docs/*.md the README links to is there, and so is the heading a link names."""
    links = re.findall(r"\]\((docs/[^)#\s]+\.md)(?:#([^)\s]+))?\)", README)
    assert {path for path, _ in links} >= {
        "docs/design.md",
        "docs/formats.md",
        "docs/operations.md",
        "docs/performance.md",
    }
    for path, anchor in links:
        assert_link_resolves(ROOT / "README.md", path, anchor)


def test_the_links_between_the_docs_resolve() -> None:
    """The docs the README's sections moved to link to each other and back without a dead end."""
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(((?:\.\./)?[\w./-]*\.md)?(?:#([^)\s]+))?\)", text):
            if target or anchor:
                assert_link_resolves(doc, target, anchor)


def test_the_other_providers_example_runs() -> None:
    """The README's Meta and Twilio lines apply a Meta read and a Twilio delivery."""
    from datetime import datetime, timezone  # noqa: PLC0415 - this test's alone

    from deliverystate import parse_callback  # noqa: PLC0415 - likewise

    status = {"id": "wamid.R1", "status": "read", "timestamp": "1767225600"}
    meta_body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"changes": [{"field": "messages", "value": {"statuses": [status]}}]}],
        }
    )
    form = {"MessageSid": "SMr1", "MessageStatus": "delivered", "From": "+15557122661"}
    tracker = Tracker(MemoryStore())
    namespace: dict[str, Any] = {
        "tracker": tracker,
        "parse_callback": parse_callback,
        "meta_body": meta_body,
        "form": form,
        "now": datetime.now(timezone.utc),
    }
    exec(python_block_after("## Other providers"), namespace)
    assert [tracker.get(m).status for m in ("wamid.R1", "SMr1")] == [Status.READ, Status.DEVICE_ACK]  # type: ignore[union-attr]
