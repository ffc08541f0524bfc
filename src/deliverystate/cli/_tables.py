"""The command line's tables, one small function each: data in, a rich ``Table`` out.

Nothing here reads a store or prints; the commands do that, so each table can
be read (and tested) on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from ..rules._catalog import Kind, Origin, Status
from ..rules._events import MessageState
from ..rules._reconcile import Outcome
from ..rules._records import DeadLetter, HistoryEntry
from ..rules._time import duration, iso, ms_from_datetime, table_time
from ..tracking._replay import ReplayResult
from ..tracking._stats import DeliveryStats, FeedStatus, Latency

__all__ = [
    "codes_table",
    "dead_letter_table",
    "delivery_table",
    "final_status_line",
    "outcomes_table",
    "reasons_table",
    "stats_table",
    "status_table",
    "timeline_table",
]


def _columns(table: Table, names: Sequence[str], right: Iterable[str] = ()) -> Table:
    right = set(right)
    for name in names:
        table.add_column(name, justify="right" if name in right else "left")
    return table


def codes_table(statuses: Iterable[Status]) -> Table:
    """The catalog: code, name, section, channels, description, within 80 columns.

    No borders and a description that wraps between words: on a terminal of
    80 columns every row stays readable.  Codes from 20 up are failures;
    ``--json`` has every attribute.
    """
    table = Table(
        title="Clickatell One API status codes",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("code", justify="right", no_wrap=True)
    table.add_column("name", no_wrap=True)
    table.add_column("section", no_wrap=True)
    table.add_column("on", no_wrap=True)
    table.add_column("description", overflow="fold", ratio=1, min_width=16)
    for s in statuses:
        channels = "any" if len(s.channels) > 1 else ", ".join(sorted(s.channels))
        table.add_row(str(int(s)), s.name, s.category.value, channels, s.description)
    return table


def status_table(counts: Mapping[Status, int], name: str) -> Table:
    """How many messages are in each status, with the total; ``name`` is ``store_name``'s."""
    table = Table(title=f"Final status of each message in {name}")
    table.add_column("code", justify="right")
    table.add_column("status", no_wrap=True)
    table.add_column("messages", justify="right")
    for status in sorted(counts):
        table.add_row(str(int(status)), status.name, str(counts[status]))
    table.add_row("", "total", str(sum(counts.values())), end_section=True)
    return table


def outcomes_table(result: ReplayResult) -> Table:
    """What a replay did: events per outcome, invalid lines, ignored events."""
    table = Table(title=f"Outcomes ({result.lines} lines)")
    table.add_column("outcome")
    table.add_column("events", justify="right")
    for outcome in Outcome:
        table.add_row(outcome.value, str(result.outcomes[outcome]))
    table.add_row("invalid lines", str(len(result.errors)))
    table.add_row("ignored events", str(result.ignored))
    return table


def timeline_table(message_id: str, timeline: Sequence[HistoryEntry]) -> Table:
    """A message's reports in event-time order, with outcome and arrival rank."""
    table = Table(title=f"Message {message_id}")
    for column in ("time (UTC)", "status", "source", "outcome", "arrival"):
        table.add_column(column, justify="right" if column == "arrival" else "left", no_wrap=True)
    arrivals = {
        entry.arrival: rank
        for rank, entry in enumerate(sorted(timeline, key=lambda e: e.arrival), 1)
    }
    for entry in timeline:
        table.add_row(
            table_time(entry.event.timestamp_ms),
            f"{int(entry.event.status)} {entry.event.status.name}",
            entry.event.origin.value,
            entry.outcome.value,
            f"#{arrivals[entry.arrival]}",
        )
    return table


def final_status_line(state: MessageState) -> str:
    """One line of rich markup: the final status, when, and what else is known."""
    extra = ", ".join(
        part
        for part in (
            f"channel {state.channel}" if state.channel else "",
            f"client id {state.client_message_id}" if state.client_message_id else "",
            "expired locally (no report by the deadline)"
            if state.origin is Origin.LOCAL and state.status is Status.EXPIRED
            else "",
            f"deadline {iso(state.deadline_ms)}" if state.deadline_ms is not None else "",
        )
        if part
    )
    return (
        f"Final state: [bold]{state.status.name}[/bold] ({int(state.status)}) "
        f"at {iso(state.timestamp_ms)}" + (f"; {extra}" if extra else "")
    )


def stats_table(stats: DeliveryStats, name: str) -> Table:
    """Messages per status with category and share, in the store ``store_name`` calls ``name``."""
    table = _columns(
        Table(title=f"{stats.messages} messages in {name}"),
        ("code", "status", "category", "messages", "share"),
        right=("code", "messages", "share"),
    )
    for status, count in sorted(stats.by_status.items()):
        table.add_row(
            str(int(status)),
            status.name,
            status.category.value,
            str(count),
            f"{count / stats.messages:.1%}",
        )
    return table


def _latency(value: Latency | None) -> str:
    if value is None:
        return "no data"
    return (
        f"median {duration(value.median_s)}, p90 {duration(value.p90_s)}, "
        f"p95 {duration(value.p95_s)} (n={value.count})"
    )


def delivery_table(stats: DeliveryStats) -> Table:
    """In progress, delivered and failed; rates, the two latencies, and what needs a look."""
    table = Table(title="Delivery")
    table.add_column("measure")
    table.add_column("value", justify="right")
    kinds = stats.by_kind
    for label, kind in (("in progress", Kind.PROGRESS), ("delivered", Kind.DELIVERED)):
        table.add_row(f"messages {label}", str(kinds.get(kind, 0)))
    table.add_row("messages failed", str(kinds.get(Kind.FAILURE, 0)))
    for label, rate in (("delivery rate", stats.delivery_rate), ("read rate", stats.read_rate)):
        table.add_row(label, "" if rate is None else f"{rate:.1%}")
    table.add_row("first report -> delivered", _latency(stats.time_to_delivery))
    table.add_row("first report -> read", _latency(stats.time_to_read))
    table.add_row("overdue (registered, past the deadline)", str(stats.overdue))
    table.add_row("expired locally (by a sweep)", str(stats.local_expiries))
    table.add_row("dead letters (bodies that could not be read)", str(stats.dead_letters))
    for category, count in sorted(stats.by_category.items(), key=lambda item: item[0].value):
        table.add_row(f"catalog section {category.value!r}", str(count))
    return table


def channel_table(stats: DeliveryStats) -> Table:
    """Per channel: messages, in progress, delivered, failed, delivery rate, latencies."""
    table = _columns(
        Table(title="By channel"),
        ("channel", "messages", "in progress", "delivered", "failed", "delivery rate"),
        right=("messages", "in progress", "delivered", "failed", "delivery rate"),
    )
    table.add_column("first report -> delivered")
    table.add_column("first report -> read")
    for name, channel in sorted(stats.by_channel.items()):
        kinds = channel.by_kind
        rate = channel.delivery_rate
        table.add_row(
            name,
            str(channel.messages),
            str(kinds.get(Kind.PROGRESS, 0)),
            str(kinds.get(Kind.DELIVERED, 0)),
            str(kinds.get(Kind.FAILURE, 0)),
            "" if rate is None else f"{rate:.1%}",
            _latency(channel.time_to_delivery),
            _latency(channel.time_to_read),
        )
    return table


def dead_letter_table(letters: Iterable[DeadLetter], name: str, cut: int = 120) -> Table:
    """The dead letters of the store named ``name``, payloads longer than ``cut`` cut."""
    table = Table(title=f"Dead letters in {name}")
    for column in ("id", "received", "error", "payload"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        payload = (
            letter.payload if len(letter.payload) <= cut else letter.payload[: cut - 3] + "..."
        )
        received = table_time(ms_from_datetime(letter.received_at))
        # a payload is whatever was posted, never markup
        table.add_row(str(letter.id), received, Text(letter.error), Text(payload))
    return table


def reasons_table(rows: Iterable[tuple[str, int]], db: str) -> Table:
    """Dead letters counted by reason, in the order given (most frequent first)."""
    table = _columns(
        Table(title=f"Dead letters in {db} by reason"), ("reason", "count"), ("count",)
    )
    for reason, count in rows:
        table.add_row(Text(reason), f"{count:,}")  # a reason quotes a body: never markup
    return table


def feed_table(feed: FeedStatus) -> Table:
    """The change feed's consumers: position, how far behind, changes given up on."""
    table = _columns(
        Table(title=f"Change feed (last seq {feed.last_seq})"),
        ("consumer", "position", "behind", "undeliverable"),
        right=("position", "behind", "undeliverable"),
    )
    for name in sorted(set(feed.consumers) | set(feed.undeliverable)):
        given_up = feed.undeliverable.get(name, 0)
        table.add_row(
            Text(name),  # a name is the operator's text, never markup
            str(feed.consumers.get(name, 0)),
            str(feed.behind(name)),
            f"[bold red]{given_up}[/]" if given_up else "0",
        )
    return table
