"""Documentation generated from the rule tables: the lifecycle and the precedence policies.

Nothing here is written by hand: the mermaid lifecycle comes from the
``transitions`` machine's edges and the markdown tables from the catalog and
the policy rows, so the docs cannot drift from the code.
"""

from __future__ import annotations

from .catalog import Status
from .lifecycle import ALLOWED
from .policy import Policy

__all__ = ["lifecycle_mermaid", "policy_markdown"]


def _class_of(status: Status) -> str:
    if status.is_failure:
        return "failure"
    if status.is_delivered:
        return "delivered"
    return "progress"


def lifecycle_mermaid(channel: str | None = None) -> str:
    """The lifecycle as a mermaid state diagram, optionally for one channel only.

    The many UNKNOWN -> failure edges are drawn once per failure, like every
    other edge; failures, deliveries and progress states get distinct styles.
    """
    shown = [s for s in Status if channel is None or s.allowed_on(channel)]
    lines = ["stateDiagram-v2", "    direction LR"]
    lines += [f"    {s.name}: {int(s)} {s.name}" for s in shown]
    lines.append(f"    [*] --> {Status.UNKNOWN.name}")
    for src in shown:
        lines += [f"    {src.name} --> {dst.name}" for dst in sorted(ALLOWED[src]) if dst in shown]
    lines += [f"    {s.name} --> [*]" for s in shown if s.is_terminal]
    lines += [
        "    classDef failure fill:#fde2e1,stroke:#b42318,color:#7a271a",
        "    classDef delivered fill:#dcfae6,stroke:#067647,color:#074d31",
        "    classDef progress fill:#eff4ff,stroke:#3538cd,color:#2d31a6",
    ]
    for css in ("failure", "delivered", "progress"):
        members = [s.name for s in shown if _class_of(s) == css]
        lines.append(f"    class {','.join(members)} {css}")
    return "\n".join(lines) + "\n"


def policy_markdown(policy: Policy) -> str:
    """The policy as a markdown table, highest rank first."""
    rows = ["| rank | statuses | tie-break inside the rank |", "|---|---|---|"]
    for row in policy.rows:
        if len(row.statuses) > 4 and all(s.is_failure for s in row.statuses):
            names = "every terminal non-delivery (codes 20 and up)"
        else:
            names = ", ".join(s.name for s in row.statuses)
        if len(row.statuses) > 1:
            tie = row.tie.value
        else:
            tie = f"— (the {row.tie.name.lower()} report dates the state)"
        rows.append(f"| {row.rank} | {names} | {tie} |")
    return "\n".join(rows) + "\n"
