"""The ``deliverystate`` commands: one click group, one function per verb.

Errors are mapped in one place: :class:`_Group` turns any
:class:`~deliverystate.errors.DeliveryStateError` a command raises into one
line on stderr and exit status 1 (click itself exits 2 on unusable
arguments), so no command catches errors of its own.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from .._catalog import CHANNELS, Category, Status
from .._render import state_json
from .._stats import delivery_stats
from .._tracker import Tracker
from ..diagrams import diagram_markdown, lifecycle_dot, lifecycle_mermaid, render_svg
from ..errors import DeliveryStateError, NoDatabase
from ..simulate import simulate_lines
from ..stores import DEFAULT_DB, open_store
from . import _tables
from ._replay import CHUNK, PARSE_WORKERS, ReplayResult, replay_stream

__all__ = ["cli"]

#: Inputs larger than this get a progress bar (when stderr is a terminal).
_LONG_INPUT = 1 << 20

# piped output is read by people and by grep: never truncate it to 80 columns
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Group(click.Group):
    """A click group that reports deliverystate's errors as one line, exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoDatabase as error:
            raise click.ClickException(
                f"{error}; replay some callbacks into it first "
                f"(deliverystate replay FILE --db {error.path}) or pass --db"
            ) from None
        except (DeliveryStateError, ImportError) as error:
            raise click.ClickException(str(error)) from None


db_option = click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    envvar="DELIVERYSTATE_DB",
    help="SQLite file, postgresql:// URL or :memory: (env DELIVERYSTATE_DB).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
channel_option = click.option(
    "--channel", type=click.Choice(list(CHANNELS)), default=None, help="Only this channel."
)


def open_tracker(db: str, *, must_exist: bool = False) -> Tracker:
    """A tracker on ``db``; a read-only command passes ``must_exist`` and creates nothing."""
    return Tracker(open_store(db, must_exist=must_exist))


def emit_json(data: object) -> None:
    """Print ``data`` as indented JSON."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    if not as_json:
        out.print(_tables.codes_table(rows))
        return
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


def _size(file: IO[bytes]) -> int | None:
    """The size of a regular file, or None for a pipe or terminal."""
    try:
        stat = os.fstat(file.fileno())
    except (OSError, ValueError):
        return None
    return stat.st_size if stat.st_size > 0 else None


def _replay_file(file: IO[bytes], tracker: Tracker, chunk: int, workers: int) -> ReplayResult:
    """Replay one file with a progress bar on long input; report its bad lines on stderr."""
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
        advance = functools.partial(bar.advance, task)
        result = replay_stream(file, tracker, chunk, advance, workers)
    for number, message in result.errors:
        err.print(f"{name}:{number}: {message}", markup=False)
    return result


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
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=PARSE_WORKERS,
    show_default=True,
    help="Processes that parse lines while this one applies them (0: parse here too).",
)
@json_option
def replay(files: tuple[IO[bytes], ...], db: str, chunk: int, workers: int, as_json: bool) -> None:
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
        total.add(_replay_file(file, tracker, chunk, workers))
    counts = tracker.count_by_status()
    if as_json:
        final = {s.name: counts[s] for s in sorted(counts)}
        emit_json(total.as_json() | {"final_status": final, "db": db})
        return
    out.print(_tables.status_table(counts, db))
    out.print(_tables.outcomes_table(total))


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
    state, timeline = tracker.get(message_id), tracker.history(message_id)
    if state is None:
        raise click.ClickException(f"no message {message_id!r} in {db}")
    if as_json:
        emit_json(state_json(state, timeline))
        return
    out.print(_tables.timeline_table(message_id, timeline))
    out.print(_tables.final_status_line(state))


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
    result = delivery_stats(open_tracker(db, must_exist=True).store)
    if as_json:
        emit_json(result.as_json())
        return
    out.print(_tables.stats_table(result, db))
    out.print(_tables.delivery_table(result))


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
        text = render_svg(lifecycle_dot(channel))
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
        counts = {
            "applied": len(report.applied),
            "events": len(report.decisions),
            "still_invalid": len(report.still_invalid),
        }
        if as_json:
            emit_json(counts)
        else:
            out.print(
                f"re-applied {counts['applied']} dead letters ({counts['events']} events); "
                f"{counts['still_invalid']} still invalid"
            )
        return
    letters = tracker.dead_letters()
    if not as_json:
        out.print(_tables.dead_letter_table(letters, db))
        return
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


def _credentials(basic: str | None) -> tuple[str, str] | None:
    if basic is None:
        return None
    user, sep, password = basic.partition(":")
    if not sep or not user:
        raise click.BadParameter("expected USER:PASSWORD", param_hint="--basic")
    return user, password


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
    credentials = _credentials(basic)
    try:
        from ..web import serve as run_server  # noqa: PLC0415 - the 'web' extra is optional
    except ImportError as error:
        raise click.ClickException(
            f"serve needs the 'web' extra ({error.name} is missing): "
            "pip install 'deliverystate[web]'"
        ) from None
    run_server(db, host, port, token, basic_auth=credentials)


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
