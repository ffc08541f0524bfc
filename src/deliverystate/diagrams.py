"""Documentation generated from the rule tables: the lifecycle and the precedence policies.

Nothing here is written by hand.  The lifecycle diagrams (mermaid and Graphviz
dot) and the transition table are drawn from ``ALLOWED``, the table compiled
from the ``transitions`` machine; the precedence diagrams and tables from a
policy's rows; node labels, colours and groups from the catalog.  So the docs
cannot drift from the code, and a test compares the committed ``diagrams/``
folder with a fresh :func:`text_exports`.

Three kinds of state (``Status.kind``) are told apart everywhere with the same
three colour classes, named after the kinds and coloured by :data:`PALETTE`:
terminal non-deliveries (``failure``, red), delivery evidence (``delivered``,
green: DEVICE_ACK and READ) and everything still on its way (``progress``, blue).

Only :func:`render_svg` (and :func:`export_all`, which calls it) needs anything
outside Python: Graphviz's ``dot`` program.  When it is missing they raise
:class:`GraphvizNotFound`, which says how to install it.
"""

from __future__ import annotations

import html
import itertools
import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from .errors import GraphvizNotFound
from .rules._catalog import CHANNELS, Category, Kind, Origin, Status
from .rules._lifecycle import ALLOWED
from .rules._policy import DELIVERY_WINS, FAILURE_WINS, Policy, PolicyRow

__all__ = [
    "PALETTE",
    "Colours",
    "diagram_markdown",
    "export_all",
    "lifecycle_dot",
    "lifecycle_markdown",
    "lifecycle_mermaid",
    "policy_markdown",
    "precedence_dot",
    "precedence_mermaid",
    "render_svg",
    "text_exports",
]


@attrs.frozen
class Colours:
    """The colours a kind of status is drawn in: background, border (and bar), text."""

    fill: str
    stroke: str
    text: str


#: One legend everywhere: red for failures, green for deliveries, blue for the rest.
PALETTE: Mapping[Kind, Colours] = {
    Kind.FAILURE: Colours("#fde2e1", "#b42318", "#7a271a"),
    Kind.DELIVERED: Colours("#dcfae6", "#067647", "#074d31"),
    Kind.PROGRESS: Colours("#eff4ff", "#3538cd", "#2d31a6"),
}

_NEUTRAL = Colours("#f2f4f7", "#475467", "#101828")

#: Dot node shapes per kind, so the kinds differ even in grey-scale print.
_DOT_SHAPE: Mapping[Kind, str] = {
    Kind.FAILURE: 'shape=box, style="filled"',
    Kind.DELIVERED: 'shape=box, style="rounded,filled,bold", peripheries=2',
    Kind.PROGRESS: 'shape=box, style="rounded,filled"',
}

#: The command that rewrites the committed ``diagrams/`` folder; quoted in docs and tests.
_REGENERATE = (
    "python -c 'from pathlib import Path; from deliverystate.diagrams import export_all; "
    'export_all(Path("diagrams"))\''
)


def _shown(channel: str | None) -> list[Status]:
    """The statuses a diagram for ``channel`` draws, in code order."""
    if channel is not None and channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
    return [s for s in Status if s.allowed_on(channel)]


def _edges(shown: Iterable[Status]) -> list[tuple[Status, Status]]:
    """The lifecycle edges between ``shown`` statuses, sorted by (source, destination) code."""
    keep = set(shown)
    return [(src, dst) for src in sorted(keep) for dst in sorted(ALLOWED[src]) if dst in keep]


def lifecycle_mermaid(channel: str | None = None) -> str:
    """The lifecycle as a mermaid state diagram, optionally for one channel only.

    The many UNKNOWN -> failure edges are drawn once per failure, like every
    other edge; failures, deliveries and progress states get distinct styles.
    """
    shown = _shown(channel)
    lines = ["stateDiagram-v2", "    direction LR"]
    lines += [f"    {s.name}: {int(s)} {s.name}" for s in shown]
    lines.append(f"    [*] --> {Status.UNKNOWN.name}")
    lines += [f"    {src.name} --> {dst.name}" for src, dst in _edges(shown)]
    lines += [f"    {s.name} --> [*]" for s in shown if s.is_terminal]
    lines += [
        f"    classDef {kind.value} fill:{c.fill},stroke:{c.stroke},color:{c.text}"
        for kind, c in PALETTE.items()
    ]
    for kind in PALETTE:
        members = [s.name for s in shown if s.kind is kind]
        lines.append(f"    class {','.join(members)} {kind.value}")
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """A dot string literal (dot only needs backslashes and double quotes escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_node(status: Status, indent: str) -> str:
    kind = status.kind
    c = PALETTE[kind]
    return (
        f"{indent}{status.name} [label={_quote(f'{int(status)} {status.name}')}, "
        f"tooltip={_quote(status.description)}, class={kind.value}, {_DOT_SHAPE[kind]}, "
        f'fillcolor="{c.fill}", color="{c.stroke}", fontcolor="{c.text}"];'
    )


def _dot_string(*lines: str) -> str:
    """A dot string literal of several centred lines."""
    return "\\n".join(_quote(line)[1:-1] for line in lines).join('""')


#: Attributes of a failure edge that a bundled arrow already stands for: in the
#: text, out of the picture and out of the layout (with ``constraint`` and
#: ``weight`` on, ~90 unseen edges would still pull the chain out of line).
_HIDDEN = "style=invis, constraint=false, weight=0"


def _dot_edge(src: Status, dst: Status, extra: str = "") -> str:
    """One lifecycle edge, styled by what it means so the eye can follow the happy path."""
    if src is Status.UNKNOWN:
        # "We did not know where it was": a jump, not a step; keep it quiet.  A jump
        # across the whole chain to a delivery weighs nothing, or it drags the
        # failure column away from the chain (seen in the WhatsApp view).
        style = 'style=dashed, color="#98a2b3"' + (", weight=0" if dst.is_delivered else "")
    elif dst.is_failure:
        style = f'color="{PALETTE[Kind.FAILURE].stroke}"'
    else:
        # The happy path: heavy, so the layout keeps it on one straight line.
        style = f'color="{PALETTE[dst.kind].stroke}", penwidth=2, weight=8'
    return f"  {src.name} -> {dst.name} [{style}{extra}];"


def _category_label(category: Category) -> str:
    """Say "media 80-84" or "sms 100 (sms only)": the catalog section, its codes, its channels."""
    members = [s for s in Status if s.category is category]
    channels = sorted({c for s in members for c in s.channels})
    only = f" ({channels[0]} only)" if len(channels) == 1 else ""
    first, last = int(members[0]), int(members[-1])
    span = f"{first}" if first == last else f"{first}-{last}"
    return f"{category.value} {span}{only}"


def _failure_cluster(failures: list[Status]) -> list[str]:
    """The terminal non-deliveries as one column, boxed per catalog category."""
    stroke = PALETTE[Kind.FAILURE].stroke
    lines = [
        "  subgraph cluster_failures {",
        '    label="terminal non-deliveries (codes 20 and up)"; labeljust=l; rank=same;',
        f'    style="rounded,dashed"; color="{stroke}"; fontcolor="{stroke}";',
    ]
    for category in Category:
        members = [s for s in failures if s.category is category]
        if members:
            lines.append(f"    subgraph cluster_{category.value} {{")
            lines.append(
                f"      label={_quote(_category_label(category))}; labeljust=l; style=rounded; "
                f'color="{stroke}"; fontcolor="{stroke}"; fontsize=10;'
            )
            lines += [_dot_node(s, "      ") for s in members]
            lines.append("    }")
    lines.append("  }")
    return lines


def lifecycle_dot(channel: str | None = None) -> str:
    """The lifecycle as a Graphviz dot digraph, optionally for one channel only.

    Every edge of ``ALLOWED`` is written out, because the text is the
    machine-checkable record.  Drawn one by one, though, the ~90 "may fail"
    edges (UNKNOWN, SCHEDULED, QUEUED and SENT_TO_SUPPLIER each to every
    failure) are a hairball, and ``concentrate`` neither untangles them nor
    survives ``lhead`` (Graphviz 2.43 aborts in ``makeCompoundEdge``).  So a
    source that may go to *every* failure shown gets one visible arrow that
    ends on the border of ``cluster_failures`` (``lhead``); its other failure
    edges stay in the text, hidden and left out of the layout; the legend says
    what an arrow into the box means.  A source that reaches only some
    failures keeps all its edges visible, so the picture never claims more
    than the table.  The failures stand in one column (``rank=same``) in code
    order, boxed by catalog category; the happy path weighs 8 times an
    ordinary edge, so it stays one straight line above them.  ``mclimit`` cuts
    crossing minimisation short: left to run, it moved the chain below the
    column and doubled the drawing's height, for no fewer crossings.
    Output is sorted by status code, so it is stable.
    """
    shown = _shown(channel)
    failures = [s for s in shown if s.is_failure]
    # Draw the bundled arrow to the middle failure, so it meets the box near its centre.
    anchor = failures[len(failures) // 2] if failures else None
    bundled = {s for s in shown if failures and not s.is_failure and set(failures) <= ALLOWED[s]}
    title = "deliverystate lifecycle" + (f": {channel} messages" if channel else "")
    lines = [
        "// Generated from deliverystate.lifecycle.ALLOWED by deliverystate.diagrams; do not edit.",
        "digraph lifecycle {",
        "  graph [label="
        + _dot_string(
            title,
            "blue: in progress · green, double border: delivered · red: terminal non-delivery",
            "dashed: a jump from UNKNOWN · an arrow into the red box: "
            "an edge to every status in it",
        )
        + ",",
        '         labelloc=t, fontsize=14, fontname="Helvetica",',
        "         rankdir=LR, compound=true, mclimit=0.01, nodesep=0.12, ranksep=0.7];",
        '  node [fontname="Helvetica", fontsize=11, height=0.3, margin="0.12,0.04"];',
        '  edge [arrowsize=0.7, fontname="Helvetica", fontsize=10];',
        "",
    ]
    lines += [_dot_node(s, "  ") for s in shown if not s.is_failure]
    if failures:
        lines += ["", *_failure_cluster(failures)]
    lines.append("")
    for src, dst in _edges(shown):
        if src in bundled and dst is anchor:
            lines.append(_dot_edge(src, dst, ", lhead=cluster_failures"))
        elif src in bundled and dst.is_failure:
            lines.append(f"  {src.name} -> {dst.name} [{_HIDDEN}];")
        else:
            lines.append(_dot_edge(src, dst))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _rank_class(row: PolicyRow) -> str:
    """The colour class of a rank: its statuses' kind, or "mixed" when they differ."""
    kinds = {s.kind.value for s in row.statuses}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _rank_colours(css: str) -> Colours:
    return next((c for kind, c in PALETTE.items() if kind.value == css), _NEUTRAL)


def _tie_text(row: PolicyRow) -> str:
    """How a tie inside the rank breaks; with one status only the date is at stake."""
    if len(row.statuses) > 1:
        return row.tie.value
    return f"the {row.tie.name.lower()} report dates the state"


def _status_lines(row: PolicyRow, per_line: int = 3) -> list[str]:
    """The rank's status names, a few per line, so a 23-status rank stays a box, not a pole.

    A row for local reports (a registration, a sweep's expiry) says so first.
    """
    names = [s.name for s in row.statuses]
    lines = [", ".join(names[i : i + per_line]) for i in range(0, len(names), per_line)]
    return ["local reports:", *lines] if row.origin is Origin.LOCAL else lines


def _ranks(policy: Policy) -> list[PolicyRow]:
    """The policy's rows from the highest rank down, whatever order they were given in."""
    return sorted(policy.rows, key=lambda row: -row.rank)


def precedence_mermaid(policy: Policy) -> str:
    """The policy's ranks as a mermaid flowchart: one box per rank, highest on top.

    Each box lists its statuses and its tie-break; "beats" arrows run from
    each rank to the next lower one, which is all a reader needs to predict
    which of two callbacks wins.
    """
    rows = _ranks(policy)
    # The title is YAML front matter; a JSON string is a valid YAML scalar whatever the name.
    lines = ["---", f"title: {json.dumps(f'precedence ({policy.name})')}", "---", "flowchart TB"]
    for row in rows:
        label = "<br/>".join(
            [f"<b>rank {row.rank}</b>", *_status_lines(row), f"<i>tie: {_tie_text(row)}</i>"]
        ).replace('"', "#quot;")
        lines.append(f'    rank{row.rank}["{label}"]')
    lines += [
        f"    rank{high.rank} -->|beats| rank{low.rank}" for high, low in itertools.pairwise(rows)
    ]
    classes = [kind.value for kind in PALETTE] + ["mixed"]
    lines += [
        f"    classDef {css} fill:{c.fill},stroke:{c.stroke},color:{c.text}"
        for css in classes
        for c in (_rank_colours(css),)
    ]
    for css in classes:
        members = [f"rank{row.rank}" for row in rows if _rank_class(row) == css]
        if members:
            lines.append(f"    class {','.join(members)} {css}")
    return "\n".join(lines) + "\n"


def precedence_dot(policy: Policy) -> str:
    """The policy's ranks as a Graphviz digraph: one box per rank, highest on top.

    The same picture as :func:`precedence_mermaid`, for people who publish SVG.
    """
    rows = _ranks(policy)
    lines = [
        "// Generated from the policy's rows by deliverystate.diagrams; do not edit.",
        "digraph precedence {",
        f"  graph [label={_dot_string(f'precedence ({policy.name})', 'greater rank wins')},",
        '         labelloc=t, fontsize=14, fontname="Helvetica", rankdir=TB, ranksep=0.35];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10, color="#475467", arrowsize=0.7];',
        "",
    ]
    for row in rows:
        css = _rank_class(row)
        c = _rank_colours(css)
        label = "<br/>".join(
            [
                f"<b>rank {row.rank}</b>",
                *(html.escape(line) for line in _status_lines(row)),
                f"<i>tie: {html.escape(_tie_text(row))}</i>",
            ]
        )
        lines.append(
            f"  rank{row.rank} [label=<{label}>, class={css}, "
            f'fillcolor="{c.fill}", color="{c.stroke}", fontcolor="{c.text}"];'
        )
    lines.append("")
    lines += [
        f'  rank{high.rank} -> rank{low.rank} [label="beats"];'
        for high, low in itertools.pairwise(rows)
    ]
    lines.append("}")
    return "\n".join(lines) + "\n"


#: What a local report of these statuses is, for the policy table.
_LOCAL_MEANING: dict[tuple[Status, ...], str] = {
    (Status.EXPIRED,): "a sweep's expiry at the deadline",
    (Status.QUEUED,): "a registered send",
}


def policy_markdown(policy: Policy) -> str:
    """The policy as a markdown table, highest rank first."""
    rows = ["| rank | statuses | tie-break inside the rank |", "|---|---|---|"]
    for row in _ranks(policy):
        if len(row.statuses) > 4 and all(s.is_failure for s in row.statuses):
            names = "every terminal non-delivery (codes 20 and up)"
        else:
            names = ", ".join(s.name for s in row.statuses)
        if row.origin is Origin.LOCAL:
            names = f"local {names} ({_LOCAL_MEANING.get(row.statuses, 'reported locally')})"
        tie = _tie_text(row) if len(row.statuses) > 1 else f"— ({_tie_text(row)})"
        rows.append(f"| {row.rank} | {names} | {tie} |")
    return "\n".join(rows) + "\n"


def lifecycle_markdown() -> str:
    """The transition table as markdown: one row per status, with what may follow it.

    The diagrams show the shape; this table is what a reviewer greps for
    "can X follow Y?".
    """
    rows = [
        "| code | name | category | channels | terminal | may be followed by |",
        "|---|---|---|---|---|---|",
    ]
    for status in Status:
        channels = (
            "any" if set(status.channels) == set(CHANNELS) else ", ".join(sorted(status.channels))
        )
        terminal = "yes" if status.is_terminal else "no"
        successors = ", ".join(s.name for s in sorted(ALLOWED[status])) or "—"
        rows.append(
            f"| {int(status)} | {status.name} | {status.category.value} | {channels} "
            f"| {terminal} | {successors} |"
        )
    return "\n".join(rows) + "\n"


#: The lifecycle views that are exported: file stem and channel (``None``: every status).
_LIFECYCLE_VIEWS: tuple[tuple[str, str | None], ...] = (
    ("lifecycle", None),
    *((f"lifecycle-{channel}", channel) for channel in CHANNELS),
)


def diagram_markdown() -> str:
    """The content of ``diagrams/README.md``: the pictures, the transition table, both policies."""
    views = ", ".join(
        f"[{channel}]({stem}.svg)" for stem, channel in _LIFECYCLE_VIEWS if channel is not None
    )
    return "\n".join(
        [
            "# Diagrams",
            "",
            "Generated from the rule tables by `deliverystate.diagrams`; do not edit by hand.",
            "Each diagram comes as mermaid (`.mmd`), Graphviz (`.dot`) and SVG. Regenerate with:",
            "",
            "```sh",
            _REGENERATE,
            "```",
            "",
            "## Lifecycle",
            "",
            "![lifecycle](lifecycle.svg)",
            "",
            f"Only the statuses one channel can report: {views}.",
            "",
            "### Transitions",
            "",
            lifecycle_markdown(),
            f"## Precedence: {DELIVERY_WINS.name} (the default)",
            "",
            "![precedence](precedence.svg)",
            "",
            policy_markdown(DELIVERY_WINS),
            f"## Precedence: {FAILURE_WINS.name}",
            "",
            policy_markdown(FAILURE_WINS),
        ]
    )


def text_exports() -> dict[str, str]:
    """File name -> content for every text file of ``diagrams/``, sorted by name.

    :func:`export_all` writes exactly these (plus an SVG per ``.dot``), so a
    test can check the committed folder without Graphviz.
    """
    files: dict[str, str] = {"README.md": diagram_markdown()}
    for stem, channel in _LIFECYCLE_VIEWS:
        files[f"{stem}.mmd"] = lifecycle_mermaid(channel)
        files[f"{stem}.dot"] = lifecycle_dot(channel)
    files["precedence.mmd"] = precedence_mermaid(DELIVERY_WINS)
    files["precedence.dot"] = precedence_dot(DELIVERY_WINS)
    return dict(sorted(files.items()))


def render_svg(dot_source: str) -> str:
    """Render dot source to an SVG document with Graphviz's ``dot -Tsvg``.

    Raises :class:`GraphvizNotFound` when ``dot`` is not installed, and
    ``subprocess.CalledProcessError`` (with Graphviz's ``stderr``) when it
    rejects the source.
    """
    program = shutil.which("dot")
    if program is None:
        raise GraphvizNotFound
    try:
        result = subprocess.run(
            [program, "-Tsvg"], input=dot_source, capture_output=True, encoding="utf-8", check=True
        )
    except FileNotFoundError as error:  # uninstalled between which() and run()
        raise GraphvizNotFound from error
    return result.stdout


def export_all(directory: Path) -> list[Path]:
    """Write every diagram (text from :func:`text_exports`, plus SVGs) into ``directory``.

    All SVGs are rendered before anything is written, so a missing Graphviz
    leaves the folder as it was instead of half regenerated.  Returns the
    paths written, sorted by name.
    """
    files = text_exports()
    files |= {
        name.removesuffix(".dot") + ".svg": render_svg(text)
        for name, text in files.items()
        if name.endswith(".dot")
    }
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, content in sorted(files.items()):
        path = directory / name
        path.write_text(content, encoding="utf-8", newline="\n")
        written.append(path)
    return written
