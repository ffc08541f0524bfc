"""The ``deliverystate`` command line (needs the ``cli`` extra: click and rich).

``replay`` feeds files of callback bodies (one JSON document per line) through
a tracker backed by a store (SQLite by default) and prints what came of it;
``dead-letter`` lists and re-applies the bodies that could not be parsed;
``simulate`` writes a realistic stream.
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING

from .reconcile import Outcome
from .simulate import simulate_lines
from .sqlstore import SchemaMismatch, StoreUnavailable
from .stores import DEFAULT_DB, open_store
from .tracker import Tracker

if TYPE_CHECKING:
    import click

__all__ = ["ReplayResult", "main", "replay_stream"]

#: Lines applied per store transaction by ``replay``.
CHUNK = 2000


class ReplayResult:
    """Counts gathered while replaying a stream; ``errors`` holds (line number, message)."""

    def __init__(self) -> None:
        self.lines = 0
        self.outcomes: Counter[Outcome] = Counter()
        self.errors: list[tuple[int, str]] = []


def replay_stream(lines: Iterable[bytes], tracker: Tracker, chunk: int = CHUNK) -> ReplayResult:
    """Apply each non-blank line as one callback body, in order, ``chunk`` lines per batch."""
    result = ReplayResult()
    numbered = ((n, line.rstrip(b"\r\n")) for n, line in enumerate(lines, start=1) if line.strip())
    while batch := list(itertools.islice(numbered, chunk)):
        report = tracker.ingest_many(line for _, line in batch)
        result.lines += len(batch)
        summary = report.summary
        for outcome in Outcome:
            result.outcomes[outcome] += summary.count(outcome)
        result.errors.extend((batch[index][0], str(error)) for index, error in report.errors)
    return result


def _build() -> click.Group:
    # imported here so that the core library never needs the 'cli' extra
    import click  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    db_option = click.option(
        "--db",
        default=DEFAULT_DB,
        show_default=True,
        help="SQLite file, postgresql:// URL, or :memory:",
    )

    def open_tracker(db: str) -> Tracker:
        try:
            return Tracker(open_store(db))
        except (StoreUnavailable, SchemaMismatch) as error:
            raise click.ClickException(str(error)) from None

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="deliverystate")
    def cli() -> None:
        """Track the delivery state of Clickatell messages from their status callbacks."""

    @cli.command()
    @click.argument("files", nargs=-1, required=True, type=click.File("rb"))
    @db_option
    @click.option(
        "--chunk",
        type=click.IntRange(min=1),
        default=CHUNK,
        show_default=True,
        help="Lines applied per store transaction.",
    )
    def replay(files: tuple[IO[bytes], ...], db: str, chunk: int) -> None:
        """Apply files of callback bodies (one JSON per line; - for stdin) and summarise.

        Bad lines are reported with their line numbers and kept in the dead
        letter; the run goes on.

        \b
        Example:
          deliverystate replay examples/callbacks.jsonl --db state.sqlite3
        """
        tracker = open_tracker(db)
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        total = ReplayResult()
        for file in files:
            result = replay_stream(file, tracker, chunk)
            total.lines += result.lines
            total.outcomes.update(result.outcomes)
            for number, message in result.errors:
                err.print(f"{file.name}:{number}: {message}", markup=False)
            total.errors.extend(result.errors)
        out = Console(highlight=False)
        statuses = Table(title=f"Final status of each message in {db}")
        statuses.add_column("code", justify="right")
        statuses.add_column("status")
        statuses.add_column("messages", justify="right")
        counts = tracker.count_by_status()
        for status in sorted(counts):
            statuses.add_row(str(int(status)), status.name, str(counts[status]))
        statuses.add_row("", "total", str(sum(counts.values())), end_section=True)
        out.print(statuses)
        outcomes = Table(title=f"Outcomes ({total.lines} lines)")
        outcomes.add_column("outcome")
        outcomes.add_column("events", justify="right")
        for outcome in Outcome:
            outcomes.add_row(outcome.value, str(total.outcomes[outcome]))
        outcomes.add_row("invalid lines", str(len(total.errors)))
        out.print(outcomes)

    @cli.command("dead-letter")
    @click.argument("action", type=click.Choice(["list", "retry"]), default="list")
    @db_option
    def dead_letter(action: str, db: str) -> None:
        """List the callback bodies that could not be parsed, or re-apply them.

        \b
        Examples:
          deliverystate dead-letter list
          deliverystate dead-letter retry --db state.sqlite3
        """
        tracker = open_tracker(db)
        out = Console(highlight=False)
        if action == "retry":
            report = tracker.retry_dead_letters()
            out.print(
                f"re-applied {len(report.applied)} dead letters "
                f"({len(report.decisions)} events); {len(report.still_invalid)} still invalid"
            )
            return
        table = Table(title=f"Dead letters in {db}")
        for column in ("id", "received", "error", "payload"):
            table.add_column(column, overflow="fold")
        for letter in tracker.dead_letters():
            payload = letter.payload if len(letter.payload) <= 120 else letter.payload[:117] + "..."
            table.add_row(
                str(letter.id),
                letter.received_at.isoformat(timespec="seconds"),
                letter.error,
                payload,
            )
        out.print(table)

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
