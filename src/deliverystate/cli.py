"""The ``deliverystate`` command line (needs the ``cli`` extra: click and rich).

One sub-command per question an operator asks: what do the codes mean
(``codes``), what happened to this stream / message / campaign (``replay``,
``show``, ``stats``), what does the lifecycle look like (``diagram``), what
could not be parsed (``dead-letter``), give me realistic input
(``simulate``), and receive callbacks over HTTP (``serve``).  Unusable
arguments exit with status 2 and one line; a missing or unreachable database
exits with status 1 and one line, never a traceback.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .catalog import CHANNELS, Category, Status
from .diagrams import (
    GraphvizNotFound,
    diagram_markdown,
    lifecycle_dot,
    lifecycle_mermaid,
    render_svg,
)
from .events import datetime_from_ms
from .reconcile import Outcome
from .simulate import simulate_lines
from .sqlstore import PolicyMismatch, SchemaMismatch, StoreUnavailable
from .stats import Latency, delivery_stats
from .stores import DEFAULT_DB, open_store
from .tracker import Tracker

if TYPE_CHECKING:
    import click

__all__ = ["ReplayResult", "main", "replay_stream"]

#: Lines applied per store transaction by ``replay``.
CHUNK = 2000
_NAME_WIDTH = max(len(s.name) for s in Status)
#: Inputs larger than this get a progress bar (when stderr is a terminal).
_LONG_INPUT = 1 << 20


class ReplayResult:
    """Counts gathered while replaying a stream; ``errors`` holds (line number, message)."""

    def __init__(self) -> None:
        self.lines = 0
        self.outcomes: Counter[Outcome] = Counter()
        self.errors: list[tuple[int, str]] = []
        self.ignored = 0

    def as_json(self) -> dict[str, Any]:
        """The counts as a JSON-ready dictionary."""
        return {
            "lines": self.lines,
            "outcomes": {outcome.value: self.outcomes[outcome] for outcome in Outcome},
            "invalid_lines": len(self.errors),
            "ignored_events": self.ignored,
        }


def replay_stream(
    lines: Iterable[bytes],
    tracker: Tracker,
    chunk: int = CHUNK,
    progress: Callable[[int], object] | None = None,
) -> ReplayResult:
    """Apply each non-blank line as one callback body, in order, ``chunk`` lines per batch.

    ``progress`` is called with the number of bytes consumed by each batch.
    """
    result = ReplayResult()
    numbered = ((n, line) for n, line in enumerate(lines, start=1))
    while batch := list(itertools.islice(numbered, chunk)):
        bodies = [(n, line.rstrip(b"\r\n")) for n, line in batch if line.strip()]
        report = tracker.ingest_many(body for _, body in bodies)
        result.lines += len(bodies)
        result.ignored += report.ignored
        for outcome in Outcome:
            result.outcomes[outcome] += report.summary.count(outcome)
        result.errors.extend((bodies[index][0], str(error)) for index, error in report.errors)
        if progress is not None:
            progress(sum(len(line) for _, line in batch))
    return result


def _iso(timestamp_ms: int) -> str:
    return datetime_from_ms(timestamp_ms).isoformat(timespec="milliseconds")


def _when(timestamp_ms: int) -> str:
    """A compact UTC time for tables."""
    return datetime_from_ms(timestamp_ms).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _build() -> click.Group:  # noqa: PLR0915 - one nested definition per command
    # imported here so that the core library never needs the 'cli' extra
    import click  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table  # noqa: PLC0415

    # piped output is read by people and by grep: never truncate it to 80 columns
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    db_option = click.option(
        "--db",
        default=DEFAULT_DB,
        show_default=True,
        envvar="DELIVERYSTATE_DB",
        help="SQLite file, postgresql:// URL or :memory: (env DELIVERYSTATE_DB).",
    )
    json_option = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON instead of a table."
    )
    channel_option = click.option(
        "--channel", type=click.Choice(list(CHANNELS)), default=None, help="Only this channel."
    )

    def open_tracker(db: str, *, must_exist: bool = False) -> Tracker:
        """A tracker on ``db``; a read-only command refuses to create a database."""
        is_file = db != ":memory:" and not db.startswith(("postgresql://", "postgres://"))
        if must_exist and is_file and not Path(db).exists():
            raise click.ClickException(
                f"no database at {db}; replay some callbacks into it first "
                f"(deliverystate replay FILE --db {db}) or pass --db"
            )
        try:
            return Tracker(open_store(db))
        except (StoreUnavailable, SchemaMismatch, ImportError) as error:
            raise click.ClickException(str(error)) from None

    def emit_json(data: object) -> None:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="deliverystate")
    def cli() -> None:
        """Track the delivery state of Clickatell messages from their status callbacks.

        \b
        Example:
          deliverystate replay examples/callbacks.jsonl
          deliverystate stats
        """

    @cli.command()
    @channel_option
    @click.option(
        "--category",
        type=click.Choice([c.value for c in Category]),
        default=None,
        help="Only this section of the catalog.",
    )
    @json_option
    def codes(channel: str | None, category: str | None, as_json: bool) -> None:
        """The Clickatell status catalog: code, name, category, terminal, failure, channels.

        \b
        Examples:
          deliverystate codes
          deliverystate codes --channel sms --category generic --json
        """
        rows = [
            s
            for s in Status
            if (channel is None or channel in s.channels)
            and (category is None or s.category.value == category)
        ]
        if as_json:
            emit_json(
                [
                    {
                        "code": int(s),
                        "name": s.name,
                        "category": s.category.value,
                        "terminal": s.is_terminal,
                        "failure": s.is_failure,
                        "channels": sorted(s.channels),
                        "description": s.description,
                        "source": s.source.name.lower(),
                    }
                    for s in rows
                ]
            )
            return
        table = Table(title="Clickatell One API status codes")
        for column in (
            "code",
            "name",
            "category",
            "terminal",
            "failure",
            "channels",
            "description",
        ):
            table.add_column(column, justify="right" if column == "code" else "left")
        for s in rows:
            table.add_row(
                str(int(s)),
                s.name,
                s.category.value,
                "yes" if s.is_terminal else "",
                "yes" if s.is_failure else "",
                ", ".join(sorted(s.channels)),
                s.description,
            )
        out.print(table)

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
    @json_option
    def replay(files: tuple[IO[bytes], ...], db: str, chunk: int, as_json: bool) -> None:
        """Apply files of callback bodies (one JSON per line; - for stdin) and summarise.

        Bad lines are reported with their line numbers on stderr and kept in
        the dead letter; the run goes on.  Replaying the same file again is
        harmless: every report is recognised as a duplicate.

        \b
        Examples:
          deliverystate replay examples/callbacks.jsonl --db state.sqlite3
          deliverystate simulate -n 100000 | deliverystate replay - --json
        """
        tracker = open_tracker(db)
        total = ReplayResult()
        for file in files:
            size = _size(file)
            name = getattr(file, "name", "-")
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
                disable=size is not None and size < _LONG_INPUT,
            ) as bar:
                task = bar.add_task(f"replaying {name}", total=size)
                try:
                    result = replay_stream(
                        file, tracker, chunk, functools.partial(bar.advance, task)
                    )
                except (StoreUnavailable, PolicyMismatch) as error:
                    raise click.ClickException(str(error)) from None
            total.lines += result.lines
            total.ignored += result.ignored
            total.outcomes.update(result.outcomes)
            for number, message in result.errors:
                err.print(f"{name}:{number}: {message}", markup=False)
            total.errors.extend(result.errors)
        counts = tracker.count_by_status()
        if as_json:
            emit_json(
                total.as_json()
                | {"final_status": {s.name: counts[s] for s in sorted(counts)}, "db": db}
            )
            return
        statuses = Table(title=f"Final status of each message in {db}")
        statuses.add_column("code", justify="right")
        statuses.add_column("status", no_wrap=True)
        statuses.add_column("messages", justify="right")
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
        outcomes.add_row("ignored events", str(total.ignored))
        out.print(outcomes)

    @cli.command()
    @click.argument("message_id")
    @db_option
    @json_option
    def show(message_id: str, db: str, as_json: bool) -> None:
        """What happened to one message: every report in event-time order, then its state.

        \b
        Example:
          deliverystate show 2f1c0e2e9e6b4f4f8a3d6c5b4a392817 --db state.sqlite3
        """
        tracker = open_tracker(db, must_exist=True)
        try:
            state, timeline = tracker.get(message_id), tracker.history(message_id)
        except StoreUnavailable as error:
            raise click.ClickException(str(error)) from None
        if state is None:
            raise click.ClickException(f"no message {message_id!r} in {db}")
        if as_json:
            emit_json(
                {
                    "message_id": message_id,
                    "status": state.status.name,
                    "code": int(state.status),
                    "timestamp": _iso(state.timestamp_ms),
                    "channel": state.channel,
                    "client_message_id": state.client_message_id,
                    "timeline": [
                        {
                            "timestamp": _iso(entry.event.timestamp_ms),
                            "status": entry.event.status.name,
                            "outcome": entry.outcome.value,
                            "arrival": entry.arrival,
                        }
                        for entry in timeline
                    ],
                }
            )
            return
        table = Table(title=f"Message {message_id}")
        for column in ("time (UTC)", "status", "outcome", "arrival"):
            table.add_column(
                column, justify="right" if column == "arrival" else "left", no_wrap=True
            )
        arrivals = {
            entry.arrival: rank
            for rank, entry in enumerate(sorted(timeline, key=lambda e: e.arrival), 1)
        }
        for entry in timeline:
            table.add_row(
                _when(entry.event.timestamp_ms),
                f"{int(entry.event.status)} {entry.event.status.name}",
                entry.outcome.value,
                f"#{arrivals[entry.arrival]}",
            )
        out.print(table)
        extra = ", ".join(
            part
            for part in (
                f"channel {state.channel}" if state.channel else "",
                f"client id {state.client_message_id}" if state.client_message_id else "",
            )
            if part
        )
        out.print(
            f"Final state: [bold]{state.status.name}[/bold] ({int(state.status)}) "
            f"at {_iso(state.timestamp_ms)}" + (f"; {extra}" if extra else "")
        )

    @cli.command()
    @db_option
    @json_option
    def stats(db: str, as_json: bool) -> None:
        """Counts by status and category, delivery and read rates, time to delivery and read.

        Times run from a message's first report to its first DEVICE_ACK (or
        READ, which implies delivery) and to its first READ.

        \b
        Example:
          deliverystate stats --db state.sqlite3 --json
        """
        tracker = open_tracker(db, must_exist=True)
        try:
            result = delivery_stats(tracker.store)
        except StoreUnavailable as error:
            raise click.ClickException(str(error)) from None
        if as_json:
            emit_json(result.as_json())
            return
        by_status = Table(title=f"{result.messages} messages in {db}")
        for column in ("code", "status", "category", "messages", "share"):
            by_status.add_column(
                column, justify="right" if column in {"code", "messages", "share"} else "left"
            )
        for status, count in sorted(result.by_status.items()):
            by_status.add_row(
                str(int(status)),
                status.name,
                status.category.value,
                str(count),
                f"{count / result.messages:.1%}",
            )
        out.print(by_status)
        summary = Table(title="Delivery")
        summary.add_column("measure")
        summary.add_column("value", justify="right")
        for category, count in sorted(result.by_category.items(), key=lambda item: item[0].value):
            summary.add_row(f"messages in {category.value} statuses", str(count))
        for label, rate in (
            ("delivery rate", result.delivery_rate),
            ("read rate", result.read_rate),
        ):
            summary.add_row(label, "" if rate is None else f"{rate:.1%}")

        def latency(label: str, value: Latency | None) -> None:
            if value is None:
                summary.add_row(label, "no data")
            else:
                summary.add_row(
                    label,
                    f"median {_seconds(value.median_s)}, p95 {_seconds(value.p95_s)} "
                    f"(n={value.count})",
                )

        latency("first report -> delivered", result.time_to_delivery)
        latency("first report -> read", result.time_to_read)
        out.print(summary)

    @cli.command()
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["mermaid", "dot", "svg", "markdown"]),
        default="mermaid",
        show_default=True,
    )
    @channel_option
    @click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None)
    def diagram(fmt: str, channel: str | None, output: str | None) -> None:
        """Export the lifecycle, drawn from the transitions definition.

        mermaid and dot need nothing installed; svg runs Graphviz's dot;
        markdown is the transition table plus the precedence tables.

        \b
        Examples:
          deliverystate diagram --format svg --channel whatsapp -o lifecycle.svg
          deliverystate diagram --format markdown > DELIVERY_RULES.md
        """
        if fmt == "markdown":
            if channel is not None:
                raise click.UsageError("--channel does not apply to --format markdown")
            text = diagram_markdown()
        elif fmt == "mermaid":
            text = lifecycle_mermaid(channel)
        elif fmt == "dot":
            text = lifecycle_dot(channel)
        else:
            try:
                text = render_svg(lifecycle_dot(channel))
            except GraphvizNotFound as error:
                raise click.ClickException(str(error)) from None
        if output is None:
            click.echo(text, nl=not text.endswith("\n"))
        else:
            Path(output).write_text(text, encoding="utf-8")
            err.print(f"wrote {output}")

    @cli.command("dead-letter")
    @click.argument("action", type=click.Choice(["list", "retry"]), default="list")
    @db_option
    @json_option
    def dead_letter(action: str, db: str, as_json: bool) -> None:
        """List the callback bodies that could not be parsed, or re-apply them.

        \b
        Examples:
          deliverystate dead-letter list
          deliverystate dead-letter retry --db state.sqlite3
        """
        tracker = open_tracker(db, must_exist=True)
        if action == "retry":
            report = tracker.retry_dead_letters()
            if as_json:
                emit_json(
                    {
                        "applied": len(report.applied),
                        "events": len(report.decisions),
                        "still_invalid": len(report.still_invalid),
                    }
                )
                return
            out.print(
                f"re-applied {len(report.applied)} dead letters "
                f"({len(report.decisions)} events); {len(report.still_invalid)} still invalid"
            )
            return
        letters = tracker.dead_letters()
        if as_json:
            emit_json(
                [
                    {
                        "id": letter.id,
                        "received_at": letter.received_at.isoformat(),
                        "error": letter.error,
                        "payload": letter.payload,
                    }
                    for letter in letters
                ]
            )
            return
        table = Table(title=f"Dead letters in {db}")
        for column in ("id", "received", "error", "payload"):
            table.add_column(column, overflow="fold")
        for letter in letters:
            payload = letter.payload if len(letter.payload) <= 120 else letter.payload[:117] + "..."
            received = letter.received_at.isoformat(timespec="seconds")
            table.add_row(str(letter.id), received, letter.error, payload)
        out.print(table)

    @cli.command()
    @db_option
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
    @click.option(
        "--token",
        envvar="DELIVERYSTATE_TOKEN",
        default=None,
        help="Shared secret callers must send as ?token= or a header (env DELIVERYSTATE_TOKEN).",
    )
    @click.option(
        "--basic",
        envvar="DELIVERYSTATE_BASIC",
        default=None,
        metavar="USER:PASSWORD",
        help="HTTP Basic credentials callers must send (env DELIVERYSTATE_BASIC).",
    )
    def serve(db: str, host: str, port: int, token: str | None, basic: str | None) -> None:
        """Receive Clickatell status callbacks over HTTP (needs the 'web' extra).

        Point Clickatell's callback URL at /callbacks/clickatell.  Without
        --token or --basic anyone who can reach the port can post callbacks.

        \b
        Example:
          deliverystate serve --db state.sqlite3 --port 8000 --token "$SECRET"
        """
        credentials: tuple[str, str] | None = None
        if basic is not None:
            user, sep, password = basic.partition(":")
            if not sep or not user:
                raise click.BadParameter("expected USER:PASSWORD", param_hint="--basic")
            credentials = (user, password)
        try:
            from .web import serve as run_server  # noqa: PLC0415 - the 'web' extra is optional
        except ImportError as error:
            raise click.ClickException(
                f"serve needs the 'web' extra ({error.name} is missing): "
                "pip install 'deliverystate[web]'"
            ) from None
        try:
            run_server(db, host, port, token, basic_auth=credentials)
        except (StoreUnavailable, SchemaMismatch) as error:
            raise click.ClickException(str(error)) from None

    @cli.command()
    @click.option("--messages", "-n", type=click.IntRange(min=0), default=1000, show_default=True)
    @click.option("--seed", type=int, default=0, show_default=True)
    @click.option("--out", "-o", "out_file", type=click.File("w"), default="-", show_default=True)
    def simulate(messages: int, seed: int, out_file: IO[str]) -> None:
        """Write a realistic, seeded callback stream (one JSON body per line).

        SMS and WhatsApp, the three callback formats, batches, duplicates,
        reordering, late conflicting failures and a few broken bodies.

        \b
        Example:
          deliverystate simulate --messages 1200 --seed 7 -o examples/callbacks.jsonl
        """
        for line in simulate_lines(messages, seed):
            out_file.write(line + "\n")

    return cli


def _size(file: IO[bytes]) -> int | None:
    """The size of a regular file, or None for a pipe or terminal."""
    try:
        stat = os.fstat(file.fileno())
    except (OSError, ValueError):
        return None
    return stat.st_size if stat.st_size > 0 else None


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
