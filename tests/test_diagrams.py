"""Tests for the documentation generated from the rule tables."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from deliverystate import Policy, Status
from deliverystate.diagrams import (
    GraphvizNotFound,
    export_all,
    lifecycle_dot,
    lifecycle_markdown,
    lifecycle_mermaid,
    policy_markdown,
    precedence_dot,
    precedence_mermaid,
    render_svg,
    text_exports,
)
from deliverystate.rules import DELIVERY_WINS, FAILURE_WINS, Origin
from deliverystate.rules._lifecycle import ALLOWED

DIAGRAMS = Path(__file__).parent.parent / "diagrams"
REGENERATE = (
    "python -c 'from pathlib import Path; from deliverystate.diagrams import export_all; "
    'export_all(Path("diagrams"))\''
)
#: The catalog's own numbering: every code from 20 up is a terminal non-delivery.
FAILURES = {s.name for s in Status if int(s) >= 20}
DELIVERED = {"DEVICE_ACK", "READ"}


def allowed_edges(channel: str | None = None) -> set[tuple[str, str]]:
    """The lifecycle table's edges between statuses the catalog allows on ``channel``."""
    ok = {s for s in Status if channel is None or channel in s.channels}
    return {(s.name, d.name) for s, dsts in ALLOWED.items() for d in dsts if s in ok and d in ok}


def edges(mermaid: str) -> set[tuple[str, str]]:
    """The state-to-state edges of a mermaid state diagram."""
    return set(re.findall(r"^    ([A-Z_]+) --> ([A-Z_]+)$", mermaid, flags=re.M))


def dot_edges(dot: str) -> list[tuple[str, str, str]]:
    """Every ``a -> b [attrs]`` statement of a dot graph, as (a, b, attrs)."""
    return re.findall(r"^\s*(\w+) -> (\w+) \[(.*)\];$", dot, flags=re.M)


def dot_nodes(dot: str) -> dict[str, str]:
    """Every node statement of a dot graph: name -> its attribute list."""
    return dict(re.findall(r"^\s*(\w+) \[(label=.*)\];$", dot, flags=re.M))


def attr(attrs: str, name: str) -> str | None:
    """One attribute's value out of a dot attribute list (quotes stripped)."""
    found = re.search(rf'(?:^|, ){name}=("[^"]*"|[^,\]]+)', attrs)
    return found[1].strip('"') if found else None


def test_mermaid_draws_exactly_the_lifecycle() -> None:
    """Every lifecycle edge is drawn, and nothing else."""
    assert edges(lifecycle_mermaid()) == allowed_edges()


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
    assert set(failure[1].split(",")) == FAILURES
    assert set(delivered[1].split(",")) == DELIVERED


def test_dot_writes_exactly_the_lifecycle() -> None:
    """The dot text holds every edge of ALLOWED once, and no other edge."""
    found = [(a, b) for a, b, _ in dot_edges(lifecycle_dot())]
    assert len(found) == len(set(found))
    assert set(found) == allowed_edges()


@pytest.mark.parametrize(("channel", "other"), [("sms", "whatsapp"), ("whatsapp", "sms")])
def test_dot_per_channel_leaves_out_other_channels_statuses(channel: str, other: str) -> None:
    """A channel's dot diagram has exactly its statuses and edges, none only for the other."""
    dot = lifecycle_dot(channel)
    only_other = {s.name for s in Status if s.channels == {other}}
    assert set(dot_nodes(dot)) == {s.name for s in Status if channel in s.channels}
    assert not only_other & set(dot_nodes(dot))
    assert {(a, b) for a, b, _ in dot_edges(dot)} == allowed_edges(channel)


def test_dot_rejects_an_unknown_channel() -> None:
    """A misspelt channel is an error rather than an empty diagram."""
    with pytest.raises(ValueError, match="telegram"):
        lifecycle_dot("telegram")


def test_dot_styles_failures_deliveries_and_progress_apart() -> None:
    """Each kind of state has one look of its own (class, fill, shape style), shared by all."""
    nodes = dot_nodes(lifecycle_dot())
    kinds = {
        "failure": FAILURES,
        "delivered": DELIVERED,
        "progress": {s.name for s in Status} - FAILURES - DELIVERED,
    }
    looks = {}
    for kind, names in kinds.items():
        styles = {
            (attr(nodes[n], "class"), attr(nodes[n], "fillcolor"), attr(nodes[n], "style"))
            for n in names
        }
        assert len(styles) == 1, f"{kind} nodes are not styled alike: {styles}"
        looks[kind] = styles.pop()
        assert looks[kind][0] == kind
    assert len({look[1] for look in looks.values()}) == 3
    assert len({look[2] for look in looks.values()}) == 3


def test_dot_keeps_failures_in_one_column_cluster() -> None:
    """The failures, and only they, sit in cluster_failures, which is one rank."""
    dot = lifecycle_dot()
    cluster = dot[dot.index("subgraph cluster_failures") :]
    cluster = cluster[: cluster.index("\n  }\n")]
    assert "rank=same" in cluster
    assert set(dot_nodes(cluster)) == FAILURES


def test_dot_bundled_arrow_stands_for_edges_that_exist() -> None:
    """An arrow into the failures box is drawn only for a source that may reach every failure."""
    for channel in (None, "sms", "whatsapp"):
        dot = lifecycle_dot(channel)
        failures = {n for n in dot_nodes(dot) if n in FAILURES}
        table = allowed_edges(channel)
        bundles = {a for a, _, attrs in dot_edges(dot) if "lhead=cluster_failures" in attrs}
        hidden = {(a, b) for a, b, attrs in dot_edges(dot) if "style=invis" in attrs}
        assert bundles == {"UNKNOWN", "SCHEDULED", "QUEUED", "SENT_TO_SUPPLIER"}
        for source in bundles:
            assert {(source, f) for f in failures} <= table
        assert {a for a, _ in hidden} <= bundles
        assert all(b in failures for _, b in hidden)
        assert len(hidden) == len(bundles) * (len(failures) - 1)


def test_dot_output_is_stable_and_sorted() -> None:
    """Two exports are identical, nodes come in status-code order and edges sorted by code."""
    assert lifecycle_dot("sms") == lifecycle_dot("sms")
    codes = [int(Status[n]) for n in dot_nodes(lifecycle_dot())]
    assert codes == sorted(codes)
    pairs = [(int(Status[a]), int(Status[b])) for a, b, _ in dot_edges(lifecycle_dot())]
    assert pairs == sorted(pairs)


def precedence_boxes(text: str) -> list[tuple[int, list[str], Origin]]:
    """The rank boxes of a precedence diagram, in order: (rank, status names, whose reports)."""
    boxes = re.findall(r'^    rank(\d+)\["(.*)"\]$|^  rank(\d+) \[label=<(.*?)>, ', text, re.M)
    return [
        (
            int(mermaid_rank or dot_rank),
            re.findall(r"\b[A-Z][A-Z_]+\b", mermaid or dot),
            Origin.LOCAL if "local reports:" in (mermaid or dot) else Origin.CLICKATELL,
        )
        for mermaid_rank, mermaid, dot_rank, dot in boxes
    ]


def beats(text: str) -> list[tuple[int, int]]:
    """The "beats" arrows of a mermaid or dot precedence diagram, in order."""
    arrows = re.findall(r'rank(\d+) (?:-->\|beats\||->) rank(\d+)(?: \[label="beats"\])?', text)
    return [(int(high), int(low)) for high, low in arrows]


RENDERERS = [precedence_mermaid, precedence_dot]


@pytest.mark.parametrize("render", RENDERERS)
@pytest.mark.parametrize("policy", [DELIVERY_WINS, FAILURE_WINS])
def test_precedence_lists_every_rank_from_the_top(
    render: Callable[[Policy], str], policy: Policy
) -> None:
    """One box per rank in descending order; each report in the box of its rank, exactly once."""
    boxes = precedence_boxes(render(policy))
    ranks = {policy.rank(s, o) for s in Status for o in Origin}
    assert [rank for rank, _, _ in boxes] == sorted(ranks, reverse=True)
    listed = [(name, origin.value) for _, names, origin in boxes for name in names]
    local = [
        (s.name, "local") for s in Status if policy.ranks_apart(s, Origin.LOCAL) is Origin.LOCAL
    ]
    assert sorted(listed) == sorted([(s.name, "clickatell") for s in Status] + local)
    for rank, names, origin in boxes:
        assert all(policy.rank(Status[n], origin) == rank for n in names)


@pytest.mark.parametrize("render", RENDERERS)
def test_precedence_arrows_run_down_one_rank_at_a_time(render: Callable[[Policy], str]) -> None:
    """Each "beats" arrow goes from a rank to the next lower one, and every rank is linked."""
    top = max(row.rank for row in DELIVERY_WINS.rows)
    assert beats(render(DELIVERY_WINS)) == [(r, r - 1) for r in range(top, 0, -1)]


def test_precedence_shows_each_ranks_tie_break() -> None:
    """The QUEUED/SCHEDULED box says the later report wins; READ's says the earliest dates it."""
    for text in (precedence_mermaid(DELIVERY_WINS), precedence_dot(DELIVERY_WINS)):
        assert re.search(r"QUEUED, SCHEDULED<br/><i>tie: later timestamp wins", text)
        assert re.search(r"READ<br/><i>tie: the earliest report dates the state", text)


def test_lifecycle_markdown_has_one_row_per_status_with_its_successors() -> None:
    """Each status has a row with its code, category, terminality and ALLOWED successors."""
    rows = [line.split(" | ") for line in lifecycle_markdown().splitlines()[2:]]
    assert [int(row[0].strip("| ")) for row in rows] == [int(s) for s in Status]
    for row in rows:
        status = Status[row[1]]
        successors = row[5].rstrip(" |")
        assert row[2] == status.category.value
        assert row[3] == ("any" if len(status.channels) == 2 else "".join(status.channels))
        assert row[4] == ("yes" if status is Status.READ or int(status) >= 20 else "no")
        expected = {d.name for d in ALLOWED[status]}
        assert (set(successors.split(", ")) if successors != "—" else set()) == expected


def test_policy_markdown_lists_ranks_from_the_top() -> None:
    """The failure-wins table puts failures first and UNKNOWN last."""
    lines = policy_markdown(FAILURE_WINS).splitlines()
    assert lines[2].startswith("| 7 | every terminal non-delivery")
    assert lines[-1].startswith("| 0 | UNKNOWN |")
    assert len(lines) == 2 + len(FAILURE_WINS.rows)
    assert "| 4 | local EXPIRED (a sweep's expiry at the deadline) |" in "\n".join(lines)


def test_text_exports_are_the_promised_files() -> None:
    """The export names the three lifecycle views, the precedence diagram and the README."""
    assert set(text_exports()) == {
        "README.md",
        "lifecycle.mmd",
        "lifecycle.dot",
        "lifecycle-sms.mmd",
        "lifecycle-sms.dot",
        "lifecycle-whatsapp.mmd",
        "lifecycle-whatsapp.dot",
        "precedence.mmd",
        "precedence.dot",
    }
    readme = text_exports()["README.md"]
    assert policy_markdown(DELIVERY_WINS) in readme
    assert policy_markdown(FAILURE_WINS) in readme
    assert lifecycle_markdown() in readme


def test_committed_diagrams_are_current() -> None:
    """Every text file in diagrams/ is exactly what a fresh export writes, and none is missing."""
    fresh = text_exports()
    committed = {
        p.name: p.read_text(encoding="utf-8")
        for p in DIAGRAMS.iterdir()
        if p.suffix in {".mmd", ".dot", ".md"}
    }
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    assert not stale, (
        f"diagrams/ is out of date ({', '.join(stale)}); regenerate with: {REGENERATE}"
    )


def test_committed_lifecycle_mermaid_is_the_lifecycle() -> None:
    """The long-standing diagrams/lifecycle.mmd keeps its name and draws ALLOWED."""
    assert edges((DIAGRAMS / "lifecycle.mmd").read_text(encoding="utf-8")) == allowed_edges()


@pytest.mark.graphviz
def test_render_svg_makes_an_svg_document() -> None:
    """Graphviz turns the lifecycle into SVG with a node per status and the three classes."""
    svg = render_svg(lifecycle_dot())
    assert svg.lstrip().startswith("<?xml")
    assert "<svg" in svg
    assert svg.count('class="node failure"') == len(FAILURES)
    assert svg.count('class="node delivered"') == len(DELIVERED)


@pytest.mark.graphviz
def test_render_svg_reports_bad_dot_source() -> None:
    """Source that Graphviz rejects raises with Graphviz's own message attached."""
    with pytest.raises(subprocess.CalledProcessError) as raised:
        render_svg("digraph { a -> }")
    assert "syntax error" in raised.value.stderr


def test_render_svg_without_graphviz_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no dot on PATH the error is a FileNotFoundError naming apt-get and brew."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError) as raised:
        render_svg("digraph { a }")
    assert isinstance(raised.value, GraphvizNotFound)
    assert "apt-get install graphviz" in str(raised.value)
    assert "brew install graphviz" in str(raised.value)


def test_export_all_without_graphviz_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A missing Graphviz fails the export before any file is touched."""
    target = tmp_path / "out"
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphvizNotFound):
        export_all(target)
    assert not target.exists()


@pytest.mark.graphviz
def test_export_all_writes_text_and_svg(tmp_path: Path) -> None:
    """The export writes every text file as text_exports says, plus one SVG per dot file."""
    written = export_all(tmp_path)
    assert [p.name for p in written] == sorted(p.name for p in tmp_path.iterdir())
    for name, content in text_exports().items():
        assert (tmp_path / name).read_text(encoding="utf-8") == content
    svgs = {p.stem for p in written if p.suffix == ".svg"}
    assert svgs == {"lifecycle", "lifecycle-sms", "lifecycle-whatsapp", "precedence"}
