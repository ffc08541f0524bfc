"""The ``messages`` command: find, filter and export messages, newest first."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import IO

import click
from rich.table import Table

from ..rules._catalog import CHANNELS, Category, Status
from ..rules._records import Listed, MessageQuery
from ..rules._time import iso, table_time
from ..stores import store_name
from ..tracking._listing import every_listed, message_query
from ..tracking._tracker import Tracker
from ..tracking._wire import listed_json
from ._options import STATUS, db_option, open_tracker, out, storable_id

__all__ = ["messages"]

#: How many messages the table and JSON formats show unless --limit says otherwise;
#: csv and jsonl are exports and stream every message that matches.
SHOWN = 50
_MESSAGE_COLUMNS = (
    "first_report",
    "message_id",
    "status",
    "status_code",
    "timestamp",
    "channel",
    "client_message_id",
    "origin",
    "deadline",
)
_REPORT_COLUMNS = ("report_status", "report_code", "report_time", "report_origin", "outcome")


def _listed(tracker: Tracker, query: MessageQuery, limit: int | None) -> Iterator[Listed]:
    return every_listed(tracker.store, query, limit)


def _table(items: list[Listed], name: str) -> Table:
    table = Table(title=f"Messages in {name}, newest first")
    for column in ("first report (UTC)", "message id", "status", "channel", "client id"):
        table.add_column(column, overflow="fold")
    for item in items:
        state = item.state
        table.add_row(
            table_time(item.first_ms),
            state.message_id,
            f"{int(state.status)} {state.status.name}",
            state.channel or "",
            state.client_message_id or "",
        )
    return table


def _csv(tracker: Tracker, items: Iterator[Listed], history: bool, stream: IO[str]) -> int:
    """Write ``items`` as CSV (one row per report with ``history``); how many messages."""
    writer = csv.writer(stream)
    writer.writerow(_MESSAGE_COLUMNS + (_REPORT_COLUMNS if history else ()))
    count = 0
    for item in items:
        count += 1
        row = [listed_json(item)[column] for column in _MESSAGE_COLUMNS]
        if not history:
            writer.writerow(row)
            continue
        for entry in tracker.history(item.state.message_id):
            event = entry.event
            report = [event.status.name, int(event.status), iso(event.timestamp_ms)]
            writer.writerow(row + report + [event.origin.value, entry.outcome.value])
    return count


@click.command()
@db_option
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=STATUS,
    metavar="NAME|CODE",
    help="Only messages in this status (repeat for several; any case, or the code).",
)
@click.option(
    "--category",
    "categories",
    multiple=True,
    type=click.Choice([c.value for c in Category], case_sensitive=False),
    help="Only statuses of this section of Clickatell's catalog (repeatable).",
)
@click.option(
    "--channel",
    type=click.Choice(list(CHANNELS), case_sensitive=False),
    default=None,
    help="Only messages on this channel.",
)
@click.option("--failed", is_flag=True, help="Only failed messages (every failure status).")
@click.option(
    "--in-progress",
    is_flag=True,
    help="Only messages still on their way: not delivered, read or failed.",
)
@click.option(
    "--client-id",
    default=None,
    metavar="ID",
    callback=storable_id,
    help="Only messages with this client message id (the sender's own reference).",
)
@click.option("--overdue", is_flag=True, help="Only registered messages past their deadline.")
@click.option("--since", default=None, help="First report at or after this date or time (UTC).")
@click.option("--until", default=None, help="First report before this date or time (UTC).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help=f"At most this many (default {SHOWN} for table and json, all for csv and jsonl).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "jsonl", "csv"], case_sensitive=False),
    default="table",
    show_default=True,
    help="csv and jsonl stream every match, for export.",
)
@click.option("--history", is_flag=True, help="Include each message's reports.")
def messages(
    db: str,
    statuses: tuple[Status, ...],
    categories: tuple[str, ...],
    channel: str | None,
    failed: bool,
    in_progress: bool,
    client_id: str | None,
    overdue: bool,
    since: str | None,
    until: str | None,
    limit: int | None,
    fmt: str,
    history: bool,
) -> None:
    """List messages, newest first (by their first report), filtered.

    Filters add up: several --status, --category, --failed and --in-progress
    select any of them; the others narrow that down.

    \b
    Examples:
      deliverystate messages --failed --since 2026-03-01
      deliverystate messages --in-progress --channel sms
      deliverystate messages --client-id order-0001194 --history --format json
      deliverystate messages --status READ --channel whatsapp --format json
      deliverystate messages --format csv --history > export.csv
    """
    try:
        query = message_query(
            statuses=[status.name for status in statuses],
            categories=categories,
            failed=failed,
            in_progress=in_progress,
            client_message_id=client_id,
            channel=channel,
            since=since,
            until=until,
            overdue_at=datetime.now(timezone.utc) if overdue else None,
        )
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    tracker = open_tracker(db, read_only=True)
    fmt = fmt.lower()
    if fmt in ("csv", "jsonl"):
        items = _listed(tracker, query, limit)
        if fmt == "csv":
            _csv(tracker, items, history, sys.stdout)
            return
        for item in items:
            timeline = tracker.history(item.state.message_id) if history else None
            click.echo(json.dumps(listed_json(item, timeline), ensure_ascii=False))
        return
    shown = list(_listed(tracker, query, limit or SHOWN))
    if fmt == "json":
        data = [
            listed_json(item, tracker.history(item.state.message_id) if history else None)
            for item in shown
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if not shown:
        out.print(f"no message in {store_name(tracker.store)} matches")
        return
    out.print(_table(shown, store_name(tracker.store)))
    if limit is None and len(shown) == SHOWN:
        out.print(f"(the newest {SHOWN}; --limit N for more, --format csv for all)")
