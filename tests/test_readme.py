"""Tests that keep the README honest: its commands, its generated table, its quickstart."""

from __future__ import annotations

import json
import re
from pathlib import Path

from deliverystate import DELIVERY_WINS, Outcome, StatusEvent
from deliverystate.diagrams import lifecycle_mermaid, policy_markdown
from deliverystate.simulate import callback_body

from .strategies import BASE_MS

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
        "from deliverystate.diagrams import lifecycle_mermaid, policy_markdown; "
        'print(policy_markdown(DELIVERY_WINS), end="")\''
    )


def test_quickstart_runs() -> None:
    """The quickstart snippet embeds a tracker that answers 200 and 400 as documented."""
    code = re.search(r"```python\n(.*?)```", README, flags=re.S)
    assert code is not None
    assert len(code[1].strip().splitlines()) <= 16
    namespace: dict[str, object] = {}
    exec(compile(code[1], "README.md", "exec"), namespace)
    handler = namespace["on_clickatell_callback"]
    good = StatusEvent.from_ms("m", 5, BASE_MS, "sms")
    assert handler(json.dumps(callback_body(good)).encode()) == 200  # type: ignore[operator]
    assert handler(b"{oops") == 400  # type: ignore[operator]
    tracker = namespace["tracker"]
    assert tracker.get("m").status.name == "DEVICE_ACK"  # type: ignore[attr-defined]
    assert len(tracker.dead_letters()) == 1  # type: ignore[attr-defined]
    assert tracker.history("m")[0].outcome is Outcome.APPLIED  # type: ignore[attr-defined]


def test_mermaid_lifecycle_is_the_generated_one() -> None:
    """The README's mermaid lifecycle is exactly a fresh export."""
    block = re.search(r"<!-- diagram:lifecycle.*?-->\n```mermaid\n(.*?)```", README, re.S)
    assert block is not None
    assert block[1] == lifecycle_mermaid(), (
        "regenerate with: deliverystate diagram --format mermaid"
    )
