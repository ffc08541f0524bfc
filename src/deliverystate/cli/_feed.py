"""The change feed's commands: ``changes`` prints it, ``forward`` sends it to a backend."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import click

from ..rules._events import MAX_SEQ, Change
from ..rules._time import table_time
from ..stores import Store, redact, store_name
from ..tracking._follow import follow
from ..tracking._wire import change_json

if TYPE_CHECKING:
    from ..forward import Forwarder, ForwardTarget
from ._options import db_option, err, interrupted, open_tracker

__all__ = ["changes", "duration_option", "forward", "forward_target", "parse_duration"]

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: How ``forward`` writes the package's log lines on stderr (as ``serve`` writes them in text).
_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``30s``, ``15m``, ``24h`` or ``7d``; ``ValueError`` otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None or float(match[1]) <= 0:
        raise ValueError(f"{text!r} is not a duration such as 90, 30s, 15m, 24h or 7d")
    return float(match[1]) * _UNITS[match[2]]


def duration_option(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def forward_target(
    url: str | None,
    secret: str | None,
    name: str,
    only_final: bool,
    horizon: float,
    *,
    prefix: str = "--forward-",
) -> ForwardTarget:
    """The target the options name, or a usage error naming the option that is wrong."""
    from ..forward import ForwardTarget  # noqa: PLC0415 - the 'forward' extra is optional

    to, secret_option = (
        ("--to", "--secret") if prefix == "--" else ("--forward-to", "--forward-secret")
    )
    if url is None or secret is None:
        raise click.UsageError(f"{to} and {secret_option} go together")
    try:
        return ForwardTarget(url, secret, name, only_final, horizon)
    except ValueError as error:
        raise click.UsageError(str(error)) from None


def _pages(store: Store, after: int, *, keep_following: bool) -> Iterator[list[Change]]:
    if keep_following:
        yield from follow(store, after)
        return
    while page := store.changes(after):
        yield page
        after = page[-1].seq


def _line(change: Change) -> str:
    previous = change.previous.name if change.previous is not None else "-"
    return (
        f"{change.seq:>8}  {table_time(change.timestamp_ms)}  {change.message_id}  "
        f"{previous} -> {change.status.name}  {change.channel or ''}".rstrip()
    )


def _print(changes: Iterable[Change], *, as_json: bool, only_final: bool) -> None:
    for change in changes:
        if only_final and not change.is_final:
            continue
        text = json.dumps(change_json(change), ensure_ascii=False) if as_json else _line(change)
        sys.stdout.write(text + "\n")
    sys.stdout.flush()


@click.command()
@db_option
@click.option(
    "--after",
    type=click.IntRange(min=0, max=MAX_SEQ),
    default=0,
    show_default=True,
    help="Start after this seq.",
)
@click.option("--follow", "-f", "keep_following", is_flag=True, help="Wait for new changes.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option(
    "--only",
    type=click.Choice(["final"], case_sensitive=False),
    default=None,
    help="Only final changes.",
)
def changes(db: str, after: int, keep_following: bool, as_json: bool, only: str | None) -> None:
    """Print the change feed: one line per status change, in commit order.

    Each change has a seq; --after N starts after it.  With --follow the
    command waits for new changes (PostgreSQL: LISTEN/NOTIFY; SQLite: a
    short poll) until Ctrl-C.  --json prints one JSON object per line, with
    ISO 8601 times and status names and codes.

    \b
    Examples:
      deliverystate changes --db state.sqlite3 --after 1200 --json
      deliverystate changes --db postgresql://app@db/notify --follow --json | my-consumer
    """
    store = open_tracker(db, read_only=True).store
    with contextlib.suppress(BrokenPipeError):  # Ctrl-C: the group's exit status 130
        for page in _pages(store, after, keep_following=keep_following):
            _print(page, as_json=as_json, only_final=only == "final")


@click.command()
@db_option
@click.option("--to", "url", default=None, metavar="URL", help="The backend's webhook URL.")
@click.option(
    "--secret",
    envvar="DELIVERYSTATE_FORWARD_SECRET",
    default=None,
    help="Standard Webhooks secret, whsec_... (env DELIVERYSTATE_FORWARD_SECRET).",
)
@click.option("--name", default="forward", show_default=True, help="The cursor's name.")
@click.option(
    "--only",
    type=click.Choice(["final"], case_sensitive=False),
    default=None,
    help="Only final changes.",
)
@click.option(
    "--horizon",
    default="24h",
    show_default=True,
    callback=duration_option,
    help="Retry a change this long, then keep it as undeliverable.",
)
@click.option(
    "--max-wait",
    default="60s",
    show_default=True,
    callback=duration_option,
    help="The longest pause between two attempts (backoff doubles up to it).",
)
@click.option("--once", is_flag=True, help="Forward what is in the feed now, then exit.")
@click.option("--redeliver", is_flag=True, help="Try the undeliverable changes again, then exit.")
@click.option("--new-secret", is_flag=True, help="Print a new secret and exit.")
def forward(
    db: str,
    url: str | None,
    secret: str | None,
    name: str,
    only: str | None,
    horizon: float,
    max_wait: float,
    once: bool,
    redeliver: bool,
    new_secret: bool,
) -> None:
    """POST each change to a backend as a signed webhook, at least once, in order.

    Signed per the Standard Webhooks specification (webhook-id,
    webhook-timestamp, webhook-signature headers).  The cursor (--name) is
    committed only after a 2xx, so a forwarder that is killed resumes where
    it stopped.  A change that keeps failing for --horizon is kept as
    undeliverable (see `stats`) and the forwarder moves on; --redeliver
    tries those again.  Exits 1 when --once or --redeliver leaves any
    change undeliverable.  Needs the 'forward' extra.

    \b
    Examples:
      deliverystate forward --new-secret
      deliverystate forward --db state.sqlite3 --to https://backend.example/hooks/sms \\
          --secret "$WEBHOOK_SECRET" --only final
    """
    from .. import forward as forwarding  # noqa: PLC0415 - the 'forward' extra is optional

    if new_secret:
        click.echo(forwarding.new_secret())
        return
    target = forward_target(url, secret, name, only == "final", horizon, prefix="--")
    store = open_tracker(db, must_exist=True).store
    forwarding.own_retry_logs()
    forwarder = forwarding.Forwarder(store, target, wait_max=max_wait)
    with _logging_to_stderr():
        try:
            _forward(forwarder, once=once, redeliver=redeliver)
        finally:
            forwarder.close()


def _forward(forwarder: Forwarder, *, once: bool, redeliver: bool) -> None:
    """Redeliver, or forward from the cursor, as ``forward`` was told; exit 1 on a give-up."""
    store, name, target = forwarder.store, forwarder.name, forwarder.target
    if redeliver:
        report = forwarder.redeliver()
        err.print(
            f"redelivered {report.delivered} changes; {report.undeliverable} still undeliverable"
        )
        sys.exit(1 if report.undeliverable else 0)
    start = store.cursor(name)
    # counted, not last_seq - start: the feed may be trimmed, and a seq skipped
    waiting = store.count_changes(start, final=target.only_final)
    err.print(
        f"forwarding changes of {store_name(store)} to {redact(target.url)} as {name!r} from "
        f"seq {start} ({waiting:,} waiting{', final only' if target.only_final else ''})"
        + ("" if once else "; Ctrl-C stops"),
        markup=False,
    )
    stopped = False
    try:
        forwarder.run(follow_feed=not once)
    except KeyboardInterrupt:  # say where the cursor is, then exit 130
        stopped = True
    report = forwarder.report
    err.print(
        f"forwarded {report.delivered:,}, passed over {report.skipped:,}, "
        f"undeliverable {report.undeliverable:,}; cursor {name!r} at {report.position}",
        markup=False,
    )
    if stopped:
        raise interrupted(f"cursor {name!r} is committed at {report.position}")
    if once and report.undeliverable:
        sys.exit(1)


@contextlib.contextmanager
def _logging_to_stderr() -> Iterator[None]:
    """The package's log lines (a retry, a change given up) on stderr, with time and level.

    For the command's run only: without a handler, Python prints a warning's
    bare message and drops INFO.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))
    package = logging.getLogger("deliverystate")
    level = package.level
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
