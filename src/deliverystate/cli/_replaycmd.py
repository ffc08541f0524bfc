"""The ``replay`` command: files of callback bodies applied in batches, as an operator sees it.

The replay loop itself is ``_replay`` (no click, no rich); this module adds
the progress bar, the bad lines on stderr (a few, then counts by reason: a
wrong file gives thousands), the summary and the exit status.  The exit
status is what a script checks, so it says whether every line was taken:
0 all of them were applied or recognised, 3 some were invalid (1 and 2 stay
the database and usage errors of every command), 130 Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Callable
from typing import IO

import click
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ..stores import redact, store_name
from ..tracking._replay import CHUNK, PARSE_WORKERS, ReplayResult, replay_stream
from ..tracking._tracker import Tracker
from . import _tables
from ._options import db_option, emit_json, err, json_option, open_tracker, out

__all__ = ["INTERRUPTED", "INVALID_LINES", "SHOWN_ERRORS", "replay"]

#: The exit status of a replay that met invalid lines (or stopped at --max-invalid).
INVALID_LINES = 3
#: The exit status of a replay stopped by Ctrl-C, as a shell reports a SIGINT.
INTERRUPTED = 130
#: Bad lines of a file listed one by one; the others are counted by reason.
SHOWN_ERRORS = 5
#: Reasons listed in those counts; the rarer ones are summed into one line.
_SHOWN_REASONS = 10
#: Files smaller than this get no progress bar (a pipe, whose size is unknown, does on a terminal).
_LONG_INPUT = 1 << 20


class _LineRate(ProgressColumn):
    """Lines replayed so far and lines per second: a replay's speed is counted in callbacks."""

    def render(self, task: Task) -> Text:
        """``12,345 lines  4,567 lines/s``, the rate averaged since the start."""
        lines = int(task.fields.get("lines", 0))
        elapsed = task.elapsed or 0.0
        rate = f"{lines / elapsed:,.0f} lines/s" if elapsed > 0 and lines else "- lines/s"
        return Text(f"{lines:,} lines  {rate}")


def _size(file: IO[bytes]) -> int | None:
    """The size of a regular file, or None for a pipe or terminal."""
    try:
        stat = os.fstat(file.fileno())
    except (OSError, ValueError):
        return None
    return stat.st_size if stat.st_size > 0 else None


def _bar(size: int | None) -> Progress:
    """A bar filling with the bytes read when the size is known, a spinner on a pipe.

    Either way it counts lines, since that is what the summary and the
    README's rates count.
    """
    if size is None:
        columns: tuple[ProgressColumn, ...] = (SpinnerColumn(), TimeElapsedColumn())
    else:
        columns = (BarColumn(), TimeRemainingColumn())
    return Progress(
        TextColumn("[bold]{task.description}"),
        *columns,
        _LineRate(),
        console=err,
        transient=True,
    )


def _replay_file(
    file: IO[bytes],
    tracker: Tracker,
    options: tuple[int, int, int | None],
    result: ReplayResult,
) -> None:
    """Replay one file into ``result`` (chunk, workers, invalid lines it may still have).

    The bar is left out, not merely disabled, off a terminal: a disabled
    rich ``Progress`` still writes an empty line to a piped stderr.
    """
    chunk, workers, max_invalid = options
    size = _size(file)
    with contextlib.ExitStack() as stack:
        advance: Callable[[int], None] | None = None
        if err.is_terminal and (size is None or size >= _LONG_INPUT):
            bar = stack.enter_context(_bar(size))
            task = bar.add_task(f"replaying {_name(file)}", total=size, lines=0)

            def advance(consumed: int) -> None:
                bar.update(task, advance=consumed, lines=result.lines)

        replay_stream(
            file, tracker, chunk, advance, workers, max_invalid=max_invalid, result=result
        )


def _name(file: IO[bytes]) -> str:
    """How stderr names a file: its path, or <stdin> (click calls it - or <stdin>)."""
    name = str(getattr(file, "name", "-"))
    return "<stdin>" if name == "-" else name


def _report_errors(name: str, result: ReplayResult) -> None:
    """The first bad lines of a file with their numbers, then every bad line counted by reason."""
    for number, message in result.errors[:SHOWN_ERRORS]:
        err.print(f"{name}:{number}: {message}", markup=False)
    if len(result.errors) <= SHOWN_ERRORS:
        return
    reasons = result.reasons().most_common()
    err.print(
        f"{name}: {len(result.errors):,} invalid lines in all "
        f"({len(result.errors) - SHOWN_ERRORS:,} more than shown), by reason:",
        markup=False,
    )
    for reason, count in reasons[:_SHOWN_REASONS]:
        err.print(f"  {count:>9,}  {reason}", markup=False)
    if len(reasons) > _SHOWN_REASONS:
        rest = sum(count for _, count in reasons[_SHOWN_REASONS:])
        err.print(f"  {rest:>9,}  ({len(reasons) - _SHOWN_REASONS} other reasons)", markup=False)


def _hint(name: str, line: int) -> None:
    """Point at jq: a pretty-printed file otherwise reads as every line broken, no clue why."""
    file = "FILE" if name == "<stdin>" else shlex.quote(name)
    err.print(
        f"hint: {name}:{line} looks like the start of a JSON body written over several lines; "
        f"replay reads one JSON body per line (jq -c . {file} writes them so)",
        markup=False,
    )


def _interrupted(total: ReplayResult, name: str, current: ReplayResult) -> click.exceptions.Exit:
    """Say what a Ctrl-C left committed and how to finish; the exit to raise."""
    done = (
        f"{name} is committed up to line {current.lines:,} at least"
        if current.lines
        else f"nothing of {name} was committed"
    )
    before = f", the files before it in full ({total.lines:,} lines)" if total.lines else ""
    err.print(
        f"interrupted: {done}{before}. "
        "Replay the same input again to finish: lines already applied are recognised "
        "as duplicates, never applied twice.",
        markup=False,
    )
    return click.exceptions.Exit(INTERRUPTED)


def _replay_all(
    files: tuple[IO[bytes], ...], tracker: Tracker, options: tuple[int, int, int | None]
) -> tuple[ReplayResult, str | None]:
    """Replay the files in order into one result; the file --max-invalid stopped in, if any."""
    chunk, workers, max_invalid = options
    total = ReplayResult()
    hinted = False
    for file in files:
        result, name = ReplayResult(), _name(file)
        allowed = None if max_invalid is None else max_invalid - len(total.errors)
        try:
            _replay_file(file, tracker, (chunk, workers, allowed), result)
        except KeyboardInterrupt:
            raise _interrupted(total, name, result) from None
        _report_errors(name, result)
        if result.multiline_json_at is not None and not hinted:
            _hint(name, result.multiline_json_at)
            hinted = True
        total.add(result)
        if result.stopped_at is not None:
            return total, name
    return total, None


def _verdict(
    total: ReplayResult, stopped_in: str | None, max_invalid: int | None, db: str, new: int
) -> None:
    """The last lines on stderr, and exit status 3, when some lines were invalid.

    ``new`` is how many letters the dead letter gained: the same bad body on
    several lines, or one already kept by an earlier run, is kept once, so
    the lines, the letters that hold them and the new letters are said apart.
    ``db`` is the ``--db`` text redacted: the hint repeats it without its password.
    """
    if stopped_in is not None:
        err.print(
            f"stopped at line {total.stopped_at:,} of {stopped_in}: more than {max_invalid:,} "
            "lines were invalid (--max-invalid). The lines up to there stay applied; none "
            "after it was applied. Replaying the whole input again after fixing it is safe: "
            "the lines already applied are recognised as duplicates.",
            markup=False,
        )
    if total.errors:
        where = (
            "" if db == ":memory:" else f" (deliverystate dead-letter list --db {shlex.quote(db)})"
        )
        letters = len(total.bad_bodies)
        err.print(
            f"{len(total.errors):,} of {total.lines:,} lines were invalid, kept in the dead "
            f"letter as {letters:,} letter{'s' * (letters != 1)} ({new:,} new, "
            f"{letters - new:,} kept before){where}; exit status {INVALID_LINES}",
            markup=False,
        )
        raise click.exceptions.Exit(INVALID_LINES)


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
@click.option(
    "--max-invalid",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Stop once more than N lines were invalid (what was applied stays applied).",
)
@json_option
def replay(
    files: tuple[IO[bytes], ...],
    db: str,
    chunk: int,
    workers: int,
    max_invalid: int | None,
    as_json: bool,
) -> None:
    """Apply files of callback bodies (one JSON per line; - for stdin) and summarise.

    Bad lines are kept in the dead letter and the run goes on; the first few
    are reported with their line numbers on stderr, then all of them are
    counted by reason.  --max-invalid N stops the run at the line that makes
    more than N invalid: the lines before it stay applied.  Replaying the
    same file again is harmless: every report is recognised as a duplicate,
    so after Ctrl-C (or --max-invalid) run the same command again.

    \b
    Exit status:
      0    every line was applied or recognised (duplicate, stale, ignored)
      1    the database could not be opened or written
      2    unusable arguments
      3    some lines were invalid (or more than --max-invalid)
      130  interrupted (Ctrl-C); what was committed is said on stderr

    \b
    Examples:
      deliverystate replay examples/callbacks.jsonl --db state.sqlite3
      deliverystate simulate -n 100000 | deliverystate replay - --json
      deliverystate replay big.jsonl --max-invalid 100
    """
    tracker = open_tracker(db)
    letters_before = tracker.store.count_dead_letters()
    total, stopped_in = _replay_all(files, tracker, (chunk, workers, max_invalid))
    counts = tracker.count_by_status()
    # another writer (serve) may add or purge letters meanwhile: never more than this run's
    new = min(max(tracker.store.count_dead_letters() - letters_before, 0), len(total.bad_bodies))
    if as_json:
        final = {s.name: counts[s] for s in sorted(counts)}
        stopped = {"file": stopped_in, "line": total.stopped_at} if stopped_in else None
        emit_json(
            total.as_json()
            | {
                "new_dead_letters": new,
                "final_status": final,
                "db": store_name(tracker.store),
                "stopped_at": stopped,
            }
        )
    else:
        out.print(_tables.status_table(counts, store_name(tracker.store)))
        out.print(_tables.outcomes_table(total))
    _verdict(total, stopped_in, max_invalid, redact(db), new)
