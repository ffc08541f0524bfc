"""The ``replay`` command: files of callback bodies applied in batches, with a progress bar.

The replay loop itself is ``_replay`` (no click, no rich); this module is what
an operator sees of it: the progress bar, the bad lines on stderr, the summary.
"""

from __future__ import annotations

import functools
import os
from typing import IO

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from .._tracker import Tracker
from . import _tables
from ._options import db_option, emit_json, err, json_option, open_tracker, out
from ._replay import CHUNK, PARSE_WORKERS, ReplayResult, replay_stream

__all__ = ["replay"]

#: Inputs larger than this get a progress bar (when stderr is a terminal).
_LONG_INPUT = 1 << 20


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


@click.command()
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
