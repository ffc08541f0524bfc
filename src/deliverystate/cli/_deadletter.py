"""The ``dead-letter`` commands: list, show one in full, retry, purge.

Everything here goes through the store's own dead-letter methods
(``dead_letters``, ``remove_dead_letter``): a letter is found by reading the
list, and purged one removal at a time, so every store supports it as it is.

``deliverystate dead-letter`` alone lists, as it did when it was one command
with an optional action, and ``--db``/``--json`` may still come before the
action (``dead-letter --db X retry``): an option given after the action wins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime

import click
from click.core import ParameterSource

from ..rules._events import MAX_SEQ
from ..rules._records import DeadLetter
from ..rules._time import iso_datetime
from ..stores import store_name
from ..tracking._replay import reason_of
from ..tracking._wire import dead_letter_json, retry_json
from . import _tables
from ._options import db_option, emit_json, err, json_option, open_tracker, out, parse_moment

__all__ = ["dead_letter"]

#: Payloads longer than this are cut in the list (``show`` prints them whole).
_LISTED_PAYLOAD = 120


def _target(ctx: click.Context, db: str, as_json: bool) -> tuple[str, bool]:
    """The action's --db and --json, or those given before the action when it has none."""
    parent = ctx.parent
    if parent is None:  # pragma: no cover - an action always runs under the group
        return db, as_json
    if (
        ctx.get_parameter_source("db") is not ParameterSource.COMMANDLINE
        and parent.get_parameter_source("db") is ParameterSource.COMMANDLINE
    ):
        db = str(parent.params["db"])
    return db, as_json or bool(parent.params.get("as_json"))


def _find(letters: Sequence[DeadLetter], ids: Iterable[int], name: str) -> list[DeadLetter]:
    """The letters with these ids, in the order asked; an unknown id is the command's error.

    ``name`` is the store's (``store_name``): the ``--db`` text may hold a password.
    """
    by_id = {letter.id: letter for letter in letters}
    missing = [letter_id for letter_id in ids if letter_id not in by_id]
    if missing:
        names = ", ".join(str(letter_id) for letter_id in missing)
        raise click.ClickException(f"no dead letter {names} in {name}")
    return [by_id[letter_id] for letter_id in ids]


def _list(db: str, as_json: bool, limit: int | None = None, by_reason: bool = False) -> None:
    """The letters (only the newest ``limit``), one row each or counted by reason."""
    store = open_tracker(db, read_only=True).store
    letters = store.dead_letters(newest=limit)
    if limit is not None and len(letters) == limit:
        total = store.count_dead_letters()
        if total > limit:
            err.print(f"the newest {limit:,} of {total:,} dead letters", markup=False)
    if by_reason:
        _reasons(letters, store_name(store), as_json)
        return
    if as_json:
        emit_json([dead_letter_json(letter) for letter in letters])
        return
    out.print(_tables.dead_letter_table(letters, store_name(store), _LISTED_PAYLOAD))
    if any(len(letter.payload) > _LISTED_PAYLOAD for letter in letters):
        err.print("payloads are cut to fit; deliverystate dead-letter show ID prints one whole")


def _reasons(letters: Sequence[DeadLetter], name: str, as_json: bool) -> None:
    """The letters counted by reason (their error without what varies), most frequent first.

    A dead letter of thousands usually has a handful of causes: the same
    counting ``replay`` prints for a file's bad lines.
    """
    counts = Counter(reason_of(letter.error) for letter in letters)
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if as_json:
        emit_json([{"reason": reason, "count": count} for reason, count in rows])
        return
    out.print(_tables.reasons_table(rows, name))


@click.group("dead-letter", invoke_without_command=True)
@db_option
@json_option
@click.pass_context
def dead_letter(ctx: click.Context, db: str, as_json: bool) -> None:
    """The callback bodies that could not be parsed: list, show, retry or purge them.

    Without an action: list.  Each letter keeps the body as it came, the
    error and when it came; retry re-applies those that now parse (after an
    upgrade that knows a new status code, say).

    \b
    Examples:
      deliverystate dead-letter list
      deliverystate dead-letter show 12 --db state.sqlite3
      deliverystate dead-letter retry --db state.sqlite3
      deliverystate dead-letter purge --before 2026-01-01 --dry-run
    """
    if ctx.invoked_subcommand is None:
        _list(db, as_json)


@dead_letter.command("list")
@db_option
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=MAX_SEQ),
    default=None,
    metavar="N",
    help="Only the newest N dead letters (still listed oldest first).",
)
@click.option(
    "--group-by",
    type=click.Choice(["reason"], case_sensitive=False),
    default=None,
    help="Count the letters by reason (their error without what varies), most first.",
)
@json_option
@click.pass_context
def list_(
    ctx: click.Context, db: str, limit: int | None, group_by: str | None, as_json: bool
) -> None:
    """Every dead letter, oldest first, payloads cut to fit a line.

    --group-by reason counts them by reason instead, most frequent first;
    with --limit N, of the newest N.

    \b
    Examples:
      deliverystate dead-letter list --db state.sqlite3 --json
      deliverystate dead-letter list --limit 20
      deliverystate dead-letter list --group-by reason
    """
    _list(*_target(ctx, db, as_json), limit, by_reason=group_by is not None)


@dead_letter.command()
@db_option
@json_option
@click.pass_context
def retry(ctx: click.Context, db: str, as_json: bool) -> None:
    """Re-apply the dead letters that parse now, and forget them; keep the others.

    \b
    Example:
      deliverystate dead-letter retry --db state.sqlite3
    """
    db, as_json = _target(ctx, db, as_json)
    counts = retry_json(open_tracker(db, must_exist=True).retry_dead_letters())
    if as_json:
        emit_json(counts)
        return
    out.print(
        f"re-applied {counts['applied']} dead letters ({counts['events']} events); "
        f"{counts['still_invalid']} still invalid"
    )


@dead_letter.command()
@click.argument("letter_id", metavar="ID", type=int)
@db_option
@json_option
@click.pass_context
def show(ctx: click.Context, letter_id: int, db: str, as_json: bool) -> None:
    """One dead letter in full: when it came, its error, and its payload exactly as kept.

    \b
    Example:
      deliverystate dead-letter show 12 --db state.sqlite3
    """
    db, as_json = _target(ctx, db, as_json)
    tracker = open_tracker(db, read_only=True)
    (letter,) = _find(tracker.dead_letters(), [letter_id], store_name(tracker.store))
    if as_json:
        emit_json(dead_letter_json(letter))
        return
    # click.echo, not rich: the payload must come out unwrapped and untouched
    click.echo(f"dead letter {letter.id}, received {iso_datetime(letter.received_at)}")
    click.echo(f"error: {letter.error}")
    click.echo(f"payload ({len(letter.payload):,} characters):")
    click.echo(letter.payload)


def _chosen(
    letters: Sequence[DeadLetter], ids: Sequence[int], before: datetime | None, name: str
) -> list[DeadLetter]:
    """The letters named by --id and those received before --before, each once, oldest first."""
    named = {letter.id for letter in _find(letters, ids, name)}
    return [
        letter
        for letter in letters
        if letter.id in named or (before is not None and letter.received_at < before)
    ]


@dead_letter.command()
@click.option("--id", "ids", type=int, multiple=True, metavar="ID", help="This one (repeatable).")
@click.option("--before", default=None, help="Every one received before this date or time.")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@db_option
@json_option
@click.pass_context
def purge(
    ctx: click.Context,
    ids: tuple[int, ...],
    before: str | None,
    dry_run: bool,
    db: str,
    as_json: bool,
) -> None:
    """Remove dead letters for good: those named by --id, and those received before --before.

    At least one of --id and --before is needed; given both, both kinds go.
    An unknown id removes nothing and exits 1.

    \b
    Examples:
      deliverystate dead-letter purge --id 12 --id 13
      deliverystate dead-letter purge --before 2026-01-01 --dry-run --db state.sqlite3
    """
    if not ids and before is None:
        raise click.UsageError("say which dead letters to remove: --id ID, --before DATE or both")
    moment = None if before is None else parse_moment(before, "--before")
    db, as_json = _target(ctx, db, as_json)
    store = open_tracker(db, must_exist=True).store
    letters = store.dead_letters()
    chosen = _chosen(letters, ids, moment, store_name(store))
    if not dry_run:
        for letter in chosen:
            store.remove_dead_letter(letter.id)
    if as_json:
        emit_json(
            {"db": store_name(store), "dry_run": dry_run, "removed": len(chosen)}
            | {"ids": [letter.id for letter in chosen], "left": len(letters) - len(chosen)}
        )
        return
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb} {len(chosen):,} of {len(letters):,} dead letters")
