"""The ``deliverystate`` command line (needs the ``cli`` extra: click and rich).

``replay`` feeds a file of callback bodies (one JSON document per line)
through a tracker and prints what came of it; ``simulate`` writes such a file.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import IO, TYPE_CHECKING

from .callbacks import InvalidCallback
from .reconcile import Outcome
from .simulate import simulate_lines
from .tracker import Tracker

if TYPE_CHECKING:
    import click

__all__ = ["ReplayResult", "main", "replay_stream"]


class ReplayResult:
    """Counts gathered while replaying a stream; ``errors`` holds (line number, message)."""

    def __init__(self) -> None:
        self.lines = 0
        self.outcomes: Counter[Outcome] = Counter()
        self.errors: list[tuple[int, str]] = []


def replay_stream(lines: IO[bytes], tracker: Tracker) -> ReplayResult:
    """Apply each non-blank line of ``lines`` as one callback body, in order."""
    result = ReplayResult()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        result.lines += 1
        try:
            decisions = tracker.ingest(line)
        except InvalidCallback as error:
            result.errors.append((number, str(error)))
            continue
        result.outcomes.update(decision.outcome for decision in decisions)
    return result


def _build() -> click.Group:
    # imported here so that the core library never needs the 'cli' extra
    import click  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="deliverystate")
    def cli() -> None:
        """Track the delivery state of Clickatell messages from their status callbacks."""

    @cli.command()
    @click.argument("file", type=click.File("rb"))
    def replay(file: IO[bytes]) -> None:
        """Apply a file of callback bodies (one JSON per line; - for stdin) and summarise.

        \b
        Example:
          deliverystate replay examples/callbacks.jsonl
        """
        tracker = Tracker()
        result = replay_stream(file, tracker)
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        for number, message in result.errors:
            err.print(f"line {number}: {message}", markup=False)
        out = Console(highlight=False)
        statuses = Table(title="Final status of each message")
        statuses.add_column("code", justify="right")
        statuses.add_column("status")
        statuses.add_column("messages", justify="right")
        counts = tracker.count_by_status()
        for status in sorted(counts):
            statuses.add_row(str(int(status)), status.name, str(counts[status]))
        statuses.add_row("", "total", str(sum(counts.values())), end_section=True)
        out.print(statuses)
        outcomes = Table(title=f"Outcomes ({result.lines} lines)")
        outcomes.add_column("outcome")
        outcomes.add_column("events", justify="right")
        for outcome in Outcome:
            outcomes.add_row(outcome.value, str(result.outcomes[outcome]))
        outcomes.add_row("invalid lines", str(len(result.errors)))
        out.print(outcomes)

    @cli.command()
    @click.option("--messages", "-n", type=click.IntRange(min=0), default=1000, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--out", "-o", type=click.File("w"), default="-", show_default=True)
    def simulate(messages: int, seed: int, out: IO[str]) -> None:
        """Write a realistic, seeded callback stream (one JSON body per line).

        \b
        Example:
          deliverystate simulate --messages 1200 --seed 7 -o examples/callbacks.jsonl
        """
        for line in simulate_lines(messages, seed):
            out.write(line + "\n")

    return cli


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``deliverystate`` command."""
    try:
        cli = _build()
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        sys.exit(
            f"deliverystate: the command line needs the 'cli' extra ({error.name} is missing);\n"
            "install it with: pip install 'deliverystate[cli]'"
        )
    cli.main(args=argv, prog_name="deliverystate")
