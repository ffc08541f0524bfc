"""Tests for the documentation generated from the rule tables."""

from __future__ import annotations

import re
from pathlib import Path

from deliverystate import FAILURE_WINS, Status
from deliverystate.diagrams import lifecycle_mermaid, policy_markdown
from deliverystate.lifecycle import ALLOWED


def edges(mermaid: str) -> set[tuple[str, str]]:
    """The state-to-state edges of a mermaid state diagram."""
    return set(re.findall(r"^    ([A-Z_]+) --> ([A-Z_]+)$", mermaid, flags=re.M))


def test_mermaid_draws_exactly_the_lifecycle() -> None:
    """Every lifecycle edge is drawn, and nothing else."""
    expected = {(s.name, d.name) for s, dsts in ALLOWED.items() for d in dsts}
    assert edges(lifecycle_mermaid()) == expected


def test_mermaid_per_channel_leaves_out_other_channels_statuses() -> None:
    """The SMS diagram has ROUTING_ERROR and no WhatsApp-only status; WhatsApp the reverse."""
    sms, whatsapp = lifecycle_mermaid("sms"), lifecycle_mermaid("whatsapp")
    assert "ROUTING_ERROR" in sms
    assert "WHATSAPP_" not in sms
    assert "ROUTING_ERROR" not in whatsapp
    assert ("SENT_TO_SUPPLIER", "WHATSAPP_SPAM_RATE_LIMIT_REACHED") in edges(whatsapp)


def test_mermaid_styles_failures_deliveries_and_progress_apart() -> None:
    """Failures, deliveries and progress states get three distinct classes."""
    text = lifecycle_mermaid()
    failure = re.search(r"class ([A-Z_,]+) failure", text)
    delivered = re.search(r"class ([A-Z_,]+) delivered", text)
    assert failure is not None
    assert delivered is not None
    assert set(failure[1].split(",")) == {s.name for s in Status if int(s) >= 20}
    assert set(delivered[1].split(",")) == {"DEVICE_ACK", "READ"}


def test_policy_markdown_lists_ranks_from_the_top() -> None:
    """The failure-wins table puts failures first and UNKNOWN last."""
    lines = policy_markdown(FAILURE_WINS).splitlines()
    assert lines[2].startswith("| 5 | every terminal non-delivery")
    assert lines[-1].startswith("| 0 | UNKNOWN |")
    assert len(lines) == 2 + 6


def test_committed_lifecycle_diagram_is_current() -> None:
    """diagrams/lifecycle.mmd is a fresh export of the lifecycle."""
    committed = Path(__file__).parent.parent / "diagrams" / "lifecycle.mmd"
    assert committed.read_text(encoding="utf-8") == lifecycle_mermaid(), (
        "regenerate with: python -c 'from deliverystate.diagrams import lifecycle_mermaid; "
        'open("diagrams/lifecycle.mmd", "w").write(lifecycle_mermaid())\''
    )
