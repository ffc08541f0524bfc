"""What every command shares: the consoles, the common options, the error mapping.

Errors are mapped in one place: :class:`Group` turns any
:class:`~deliverystate.errors.DeliveryStateError` a command raises into one
line on stderr and exit status 1 (click itself exits 2 on unusable
arguments), so no command catches errors of its own.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
from rich.console import Console

from .._catalog import CHANNELS
from .._listing import parse_time
from .._tracker import Tracker
from ..errors import DeliveryStateError, NoDatabase
from ..stores import DEFAULT_DB, open_store

__all__ = [
    "Group",
    "channel_option",
    "db_option",
    "emit_json",
    "err",
    "json_option",
    "open_tracker",
    "out",
    "parse_moment",
]

# piped output is read by people and by grep: never truncate it to 80 columns
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Group(click.Group):
    """A click group that reports deliverystate's errors as one line, exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoDatabase as error:
            raise click.ClickException(
                f"{error}; a writing command (replay, register, serve) creates it, "
                "or pass --db to name another"
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
    "--channel",
    type=click.Choice(list(CHANNELS), case_sensitive=False),
    default=None,
    help="Only this channel.",
)


def open_tracker(db: str, *, must_exist: bool = False, read_only: bool = False) -> Tracker:
    """A tracker on ``db``, which a command names by ``store_name(tracker.store)``, never by ``db``.

    A command that works only on what is there passes ``must_exist`` and
    creates nothing; a read-only one passes ``read_only`` and writes nothing,
    not even a migration.  ``db`` may hold a password: the store's name does not.
    """
    return Tracker(open_store(db, must_exist=must_exist, read_only=read_only))


def parse_moment(text: str, option: str) -> datetime:
    """A date or an ISO 8601 time given to ``option``; without a zone it is UTC."""
    try:
        return parse_time(text, "")
    except ValueError as error:
        raise click.BadParameter(str(error).strip(), param_hint=option) from None


def emit_json(data: object) -> None:
    """Print ``data`` as indented JSON."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
