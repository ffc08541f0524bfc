"""What every command shares: the consoles, the common options, the error mapping.

Errors are mapped in one place: :class:`Group` turns any
:class:`~deliverystate.errors.DeliveryStateError` a command raises into one
line on stderr and exit status 1 (click itself exits 2 on unusable
arguments), so no command catches errors of its own.  Ctrl-C is mapped there
too: one line and exit status 130, as a shell reports a SIGINT, whichever
command was running (click's own answer is "Aborted!" and 1).
"""

from __future__ import annotations

import difflib
import json
import sys
from datetime import datetime
from typing import Any

import click
from rich.console import Console

from ..errors import DeliveryStateError, NoDatabase
from ..rules._catalog import CHANNELS, Status
from ..rules._events import id_problem
from ..rules._time import parse_time, shown
from ..stores import DEFAULT_DB, open_store
from ..tracking._listing import parse_status
from ..tracking._tracker import Tracker

__all__ = [
    "INTERRUPTED",
    "STATUS",
    "Group",
    "StatusType",
    "channel_option",
    "db_option",
    "emit_json",
    "err",
    "interrupted",
    "json_option",
    "open_tracker",
    "out",
    "parse_moment",
    "storable_id",
]

# piped output is read by people and by grep: never truncate it to 80 columns
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


#: The exit status of a command stopped by Ctrl-C, as a shell reports a SIGINT.
INTERRUPTED = 130


def interrupted(what: str = "") -> click.exceptions.Exit:
    """Say on stderr that Ctrl-C stopped the command (and ``what`` it left); the exit to raise."""
    err.print(f"interrupted{': ' + what if what else ''}", markup=False)
    return click.exceptions.Exit(INTERRUPTED)


class Group(click.Group):
    """A click group that reports deliverystate's errors as one line, exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise interrupted() from None
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


class StatusType(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2 on
    """A status given by name (any case) or code; a typo gets the nearest names and the list.

    Shared by every option that takes a status, so each says the same thing
    about ``--status EXPRIED``: did you mean EXPIRED?, then every valid name.
    Exit status 2, as click gives every unusable argument.
    """

    name = "status"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The :class:`Status` ``value`` names, or a usage error that suggests one."""
        if isinstance(value, Status):
            return value
        try:
            return parse_status(str(value))
        except ValueError as error:
            self.fail(f"{error}.{_suggestion(str(value))}", param, ctx)


def _suggestion(text: str) -> str:
    """Did you mean ...? (the close names, if any), then every valid name."""
    names = [status.name for status in Status]
    close = difflib.get_close_matches(text.strip().upper(), names, n=3)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return f"{hint} Valid names: {', '.join(names)} (or their codes)."


#: The one :class:`StatusType` every status option uses.
STATUS = StatusType()


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


def storable_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback: ``value`` when a message (or client message) id can be it.

    Otherwise a usage error saying why (exit status 2), before any store is
    asked: PostgreSQL refuses a NUL that SQLite compares, and every driver
    refuses the lone surrogates that stand for bytes that are not UTF-8.
    """
    problem = None if value is None else id_problem(value)
    if value is not None and problem is not None:
        raise click.BadParameter(f"{shown(value)}: {problem}; no message has such an id")
    return value


def emit_json(data: object) -> None:
    """Print ``data`` as indented JSON."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
