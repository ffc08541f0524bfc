"""The ``deliverystate`` commands: one click group, one function per verb.

The shared options and the error mapping are in ``_options``; the larger
commands have modules of their own, added to the group at the bottom:
``replay`` in ``_replaycmd``, ``dead-letter`` in ``_deadletter``, the change
feed's ``changes`` and ``forward`` in ``_feed``, ``register`` and ``sweep`` in
``_deadlines``, ``serve`` in ``_serve``.
"""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path
from typing import IO

import click
from rich.progress import BarColumn, Progress, TextColumn

from ..diagrams import diagram_markdown, lifecycle_dot, lifecycle_mermaid, render_svg
from ..rules._catalog import Category, Status
from ..rules._records import MessageQuery
from ..rules._time import iso_datetime
from ..simulate import PROVIDERS, provider_lines, simulate_lines
from ..stores import store_name
from ..tracking._stats import delivery_stats, feed_status
from ..tracking._wire import state_json
from . import _tables
from ._deadletter import dead_letter
from ._feed import changes, forward
from ._messages import messages
from ._options import (
    Group,
    channel_option,
    db_option,
    emit_json,
    err,
    json_option,
    open_tracker,
    out,
    parse_moment,
    storable_id,
)
from ._replaycmd import replay
from ._sends import register, sweep
from ._servecmd import serve

__all__ = ["cli"]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    type=click.Choice([c.value for c in Category], case_sensitive=False),
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


@cli.command()
@click.argument("message_id", callback=storable_id)
@db_option
@json_option
def show(message_id: str, db: str, as_json: bool) -> None:
    """What happened to one message: every report in event-time order, then its state.

    MESSAGE_ID is Clickatell's message id, or the client message id the
    sender gave it (the sender's own reference).

    \b
    Example:
      deliverystate replay examples/callbacks.jsonl --db state.sqlite3
      deliverystate show 9056f97c342c66d5705605c4d8f22a06 --db state.sqlite3
      deliverystate show order-0001194 --db state.sqlite3
    """
    tracker = open_tracker(db, read_only=True)
    state = tracker.get(message_id)
    if state is None:  # perhaps the sender's own reference
        found = tracker.messages(MessageQuery(client_message_id=message_id), limit=10)
        if len(found) > 1:
            ids = ", ".join(item.state.message_id for item in found)
            raise click.ClickException(
                f"client message id {message_id!r} names {len(found)} messages ({ids}); "
                "show one by its message id"
            )
        state = found[0].state if found else None
    if state is None:
        raise click.ClickException(
            f"no message {message_id!r} in {store_name(tracker.store)} (by id or client id)"
        )
    message_id = state.message_id
    timeline = tracker.history(message_id)
    if as_json:
        emit_json(state_json(state, timeline))
        return
    out.print(_tables.timeline_table(message_id, timeline))
    out.print(_tables.final_status_line(state))


@cli.command()
@db_option
@click.option(
    "--since",
    default=None,
    help="Only messages first reported at or after this date or time (UTC).",
)
@json_option
def stats(db: str, since: str | None, as_json: bool) -> None:
    """Counts by status, kind and channel; delivery and read rates and times.

    In progress, delivered (DEVICE_ACK, READ) and failed (codes 20 and up),
    overall and per channel; overdue registered messages, local expiries and
    dead letters.  With a change feed consumer (forward), also where it is and
    how many changes it could not deliver.

    Times run from a message's first report to its first DEVICE_ACK (or
    READ, which implies delivery) and to its first READ.

    \b
    Examples:
      deliverystate stats --db state.sqlite3 --json
      deliverystate stats --since 2026-03-01
    """
    moment = None if since is None else parse_moment(since, "--since")
    store = open_tracker(db, read_only=True).store
    result, feed = delivery_stats(store, since=moment), feed_status(store)
    if as_json:
        emit_json(result.as_json() | {"feed": feed.as_json()})
        return
    out.print(_tables.stats_table(result, store_name(store)))
    out.print(_tables.delivery_table(result))
    if result.by_channel:
        out.print(_tables.channel_table(result))
    if feed.consumers or feed.undeliverable:
        out.print(_tables.feed_table(feed))
    for name, count in sorted(feed.undeliverable.items()):
        err.print(
            f"{count} change(s) could not be forwarded as {name!r}; "
            f"deliverystate forward --name {shlex.quote(name)} --redeliver tries them again",
            markup=False,
        )


#: The diagram format an output file's extension implies when --format is not given.
_FORMAT_OF_SUFFIX = {
    ".mmd": "mermaid",
    ".dot": "dot",
    ".gv": "dot",
    ".svg": "svg",
    ".md": "markdown",
}


def _diagram_format(fmt: str | None, output: str | None) -> str:
    """--format as given; else what the output's extension says; else mermaid."""
    if fmt is not None:
        return fmt.lower()
    if output is None:
        return "mermaid"
    suffix = Path(output).suffix.lower()
    if suffix not in _FORMAT_OF_SUFFIX:
        known = ", ".join(sorted(_FORMAT_OF_SUFFIX))
        raise click.BadParameter(
            f"cannot tell the format from {output!r} (known extensions: {known}); give --format",
            param_hint="--output",
        )
    return _FORMAT_OF_SUFFIX[suffix]


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "svg", "markdown"], case_sensitive=False),
    default=None,
    help="What to draw (default: from the output's extension, else mermaid).",
)
@channel_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write to this file (.mmd, .dot, .svg or .md) instead of stdout.",
)
def diagram(fmt: str | None, channel: str | None, output: str | None) -> None:
    """Export the lifecycle, drawn from the transitions definition.

    mermaid and dot need nothing installed; svg runs Graphviz's dot;
    markdown is the transition table plus the precedence tables.

    \b
    Examples:
      deliverystate diagram -o lifecycle.svg --channel whatsapp
      deliverystate diagram --format markdown > DELIVERY_RULES.md
    """
    fmt = _diagram_format(fmt, output)
    if output is not None and not Path(output).parent.is_dir():
        raise click.ClickException(
            f"cannot write {output}: folder {Path(output).parent} does not exist"
        )
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
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise click.ClickException(f"cannot write {output}: {error.strerror}") from None
        err.print(f"wrote {output}")


@cli.command()
@db_option
@click.option("--before", required=True, help="Remove settled messages last heard of before this.")
@click.option(
    "--archive",
    "archive_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Append each removed message to this JSON-lines file first.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@json_option
def prune(db: str, before: str, archive_path: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove settled messages whose last report is older than --before.

    Settled: failed, READ, or delivered (DEVICE_ACK, where an SMS ends).
    Messages still on their way are never removed; a report about a removed
    message starts it afresh.  With --archive each one is
    first appended to the file as a JSON line (state and full history);
    `deliverystate replay FILE` restores them.  Safe while `serve` runs.

    \b
    Examples:
      deliverystate prune --db state.sqlite3 --before 2026-01-01 --dry-run
      deliverystate prune --before 2026-01-01 --archive 2025.jsonl
    """
    moment = parse_moment(before, "--before")
    tracker = open_tracker(db, must_exist=True)
    total = sum(tracker.count_by_status().values())
    with contextlib.ExitStack() as stack:
        archive = (
            stack.enter_context(Path(archive_path).open("a", encoding="utf-8"))
            if archive_path
            else None
        )
        bar = stack.enter_context(
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,} of {task.total:,} scanned"),
                console=err,
                transient=True,
                disable=total < 10 * 500,
            )
        )
        task = bar.add_task("pruning" if not dry_run else "counting", total=total)
        removed = tracker.prune(
            moment,
            archive=archive,
            dry_run=dry_run,
            progress=lambda scanned, _: bar.update(task, completed=min(scanned, total)),
        )
    verb = "would remove" if dry_run else "removed"
    if as_json:
        emit_json(
            {"db": store_name(tracker.store), "before": iso_datetime(moment), "dry_run": dry_run}
            | {"removed": removed}
            | {"tracked_before": total, "archive": archive_path}
        )
        return
    where = f"; archived to {archive_path}" if archive_path and not dry_run and removed else ""
    out.print(
        f"{verb} {removed:,} of {total:,} messages (settled, last report before "
        f"{iso_datetime(moment)}){where}"
    )


@cli.command()
@click.option(
    "--messages",
    "-n",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="How many messages the stream is about.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="The same seed, the same stream."
)
@click.option(
    "--out",
    "-o",
    "out_file",
    type=click.File("w"),
    default="-",
    show_default=True,
    help="Write the stream here (- for stdout).",
)
@click.option(
    "--provider",
    type=click.Choice(["clickatell", *sorted(PROVIDERS)]),
    default="clickatell",
    show_default=True,
    help="Whose callbacks: another provider's come as the envelopes replay reads.",
)
def simulate(messages: int, seed: int, out_file: IO[str], provider: str) -> None:
    """Write a realistic, seeded callback stream (one JSON body per line).

    SMS and WhatsApp, the three callback formats, batches, duplicates,
    reordering, late conflicting failures and a few broken bodies.  With
    --provider meta, twilio, vonage or smpp: that provider's callbacks.

    \b
    Example:
      deliverystate simulate --messages 1200 --seed 7 -o examples/callbacks.jsonl
      deliverystate simulate --provider twilio -n 100 | deliverystate replay -
    """
    if provider == "clickatell":
        lines = simulate_lines(messages, seed)
    else:
        lines = provider_lines(provider, messages, seed)
    for line in lines:
        out_file.write(line + "\n")


cli.add_command(changes)
cli.add_command(dead_letter)
cli.add_command(forward)
cli.add_command(messages)
cli.add_command(register)
cli.add_command(replay)
cli.add_command(serve)
cli.add_command(sweep)
