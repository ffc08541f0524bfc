"""The deadline commands: ``register`` records sends, ``sweep`` expires the overdue ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import IO

import click

from ..rules._catalog import CHANNELS
from ..rules._records import Summary
from ..rules._time import iso_datetime
from ..stores import store_name
from ..tracking._deadlines import Send
from ..tracking._wire import register_json, sweep_json
from ._feed import parse_duration
from ._options import db_option, emit_json, err, json_option, open_tracker, out, parse_moment

__all__ = ["register", "sweep"]

#: Sends registered per store batch.
REGISTER_BATCH = 1000
#: Invalid lines reported one by one before the rest are only counted.
_SHOWN_ERRORS = 10


def _windows(values: tuple[str, ...]) -> dict[str, timedelta]:
    windows = {}
    for value in values:
        channel, sep, duration = value.partition("=")
        channel = channel.strip().lower()
        if not sep or channel not in CHANNELS:
            raise click.BadParameter(
                f"{value!r}: expected CHANNEL=DURATION with a channel in {CHANNELS}, e.g. sms=72h",
                param_hint="--window",
            )
        try:
            windows[channel] = timedelta(seconds=parse_duration(duration))
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--window") from None
    return windows


def _sends(file: IO[str], errors: list[tuple[int, str]]) -> Iterator[Send]:
    """The sends of a JSON-lines file; each bad line is noted in ``errors`` and skipped."""
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            yield Send.from_json(json.loads(line))
        except (ValueError, TypeError) as error:  # JSONDecodeError is a ValueError
            errors.append((number, str(error)))


def _outcomes(summary: Summary) -> str:
    return (
        f"{summary.applied:,} applied, {summary.stale:,} stale, "
        f"{summary.duplicate:,} duplicate, {summary.rejected:,} rejected"
    )


@click.command()
@click.argument("file", type=click.File("r", encoding="utf-8"))
@db_option
@click.option(
    "--window",
    "windows",
    multiple=True,
    metavar="CHANNEL=DURATION",
    help="How long a channel's messages may take to hear back (defaults sms=72h, whatsapp=31d).",
)
@json_option
def register(file: IO[str], db: str, windows: tuple[str, ...], as_json: bool) -> None:
    """Record sent messages, one JSON object per line ('-' reads stdin).

    Each line is a send: message_id, channel (sms or whatsapp), sent_at (ISO
    8601 with a zone, or milliseconds), and optionally client_message_id and
    deadline.  Each is a QUEUED report at sent_at; the message is overdue
    after its deadline (sent_at plus the channel's window unless given).
    Lines that are not sends are reported with their numbers, the others
    registered; the exit status is then 1.

    \b
    Example:
      echo '{"message_id": "a1", "channel": "sms", "sent_at": "2026-01-01T12:00:00Z"}' \\
        | deliverystate register - --db state.sqlite3
    """
    tracker = open_tracker(db)
    tracker.windows = {**tracker.windows, **_windows(windows)}
    errors: list[tuple[int, str]] = []
    total, sends = Summary(), _sends(file, errors)
    while batch := [send for _, send in zip(range(REGISTER_BATCH), sends, strict=False)]:
        total += tracker.register_many(batch)
    if as_json:
        emit_json(register_json(store_name(tracker.store), total, errors))
    else:
        out.print(f"registered {total.total:,} sends ({_outcomes(total)})")
        for decision in total.rejections[:_SHOWN_ERRORS]:
            err.print(f"rejected {decision.event.message_id}: {decision.reason}", markup=False)
        for number, error in errors[:_SHOWN_ERRORS]:
            err.print(f"line {number}: {error}", markup=False)
        if len(errors) > _SHOWN_ERRORS:
            err.print(f"... and {len(errors) - _SHOWN_ERRORS:,} more invalid lines")
    if errors:
        raise SystemExit(1)


@click.command()
@db_option
@click.option("--now", default=None, help="Sweep as of this time (ISO 8601; default: the clock).")
@json_option
def sweep(db: str, now: str | None, as_json: bool) -> None:
    """Expire registered messages whose deadline passed with no delivery or failure heard.

    Each gets a local EXPIRED report dated at its deadline (so running it
    twice, or on two machines, gives the same states); a delivery report that
    comes later still wins.  `serve --sweep-every 60s` runs it in the background.

    \b
    Example:
      deliverystate sweep --db state.sqlite3 --now 2026-01-05T00:00:00Z
    """
    moment = None if now is None else parse_moment(now, "--now")
    tracker = open_tracker(db, must_exist=True)
    summary = tracker.sweep(moment)
    when = moment or datetime.now(timezone.utc)
    if as_json:
        emit_json(sweep_json(store_name(tracker.store), when, summary))
        return
    out.print(
        f"expired {summary.applied:,} overdue messages as of {iso_datetime(when)} "
        f"({_outcomes(summary)})"
    )
