"""The ``serve`` command: the receiver, with the forwarder and the sweeper beside it."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import TYPE_CHECKING

import click

from ._feed import duration_option, forward_target, parse_duration
from ._options import db_option, interrupted

if TYPE_CHECKING:
    from ..web import ConnectionLimits

__all__ = ["serve"]


def _credentials(basic: str | None) -> tuple[str, str] | None:
    if basic is None:
        return None
    user, sep, password = basic.partition(":")
    if not sep or not user:
        raise click.BadParameter("expected USER:PASSWORD", param_hint="--basic")
    return user, password


def _limits(header_timeout: float, max_connections: int | None) -> ConnectionLimits:
    from ..web import ConnectionLimits  # noqa: PLC0415 - the 'web' extra is optional

    if max_connections is None:
        return ConnectionLimits(header_timeout=header_timeout)
    return ConnectionLimits(header_timeout=header_timeout, max_connections=max_connections)


@contextlib.contextmanager
def _sigint_noted() -> Iterator[list[int]]:
    """Note each SIGINT (then raise ``KeyboardInterrupt`` as Python does) while the body runs.

    uvicorn takes SIGINT for a graceful shutdown and returns as if nothing
    happened.  With one worker it hands the signal back afterwards to the
    handler it found, this one; with several its supervisor keeps it, but
    Python still writes the signal's number to the wake-up pipe set here.
    Either way ``serve`` tells a Ctrl-C from any other return and exits 130
    like every long-running command.
    """
    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        yield seen
        return

    def note(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note)
    if os.name != "posix":  # pragma: no cover - a wake-up fd must be a socket there
        try:
            yield seen
        finally:
            signal.signal(signal.SIGINT, previous)
        return
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    try:
        yield seen
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous)
        with contextlib.suppress(BlockingIOError):
            seen.extend(number for number in os.read(read, 4096) if number == signal.SIGINT)
        os.close(read)
        os.close(write)


def _check_providers(settings: Callable[[Mapping[str, str]], object]) -> None:
    """A misconfigured provider secret stops ``serve`` here, not in each worker."""
    try:
        settings(os.environ)
    except ValueError as error:
        raise click.UsageError(str(error)) from None


@click.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="The port to listen on.",
)
@click.option(
    "--token",
    envvar="DELIVERYSTATE_TOKEN",
    default=None,
    help="Shared secret callers must send as ?token= or a header (env DELIVERYSTATE_TOKEN).",
)
@click.option(
    "--basic",
    envvar="DELIVERYSTATE_BASIC",
    default=None,
    metavar="USER:PASSWORD",
    help="HTTP Basic credentials callers must send (env DELIVERYSTATE_BASIC).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes sharing the port (each opens the store itself).",
)
@click.option("--forward-to", default=None, metavar="URL", help="Also forward the changes here.")
@click.option(
    "--forward-secret",
    envvar="DELIVERYSTATE_FORWARD_SECRET",
    default=None,
    help="Standard Webhooks secret for --forward-to (env DELIVERYSTATE_FORWARD_SECRET).",
)
@click.option("--forward-name", default="forward", show_default=True, help="The cursor's name.")
@click.option(
    "--forward-only",
    type=click.Choice(["final"], case_sensitive=False),
    default=None,
    help="Forward only final changes (READ or a failure).",
)
@click.option(
    "--forward-horizon",
    default="24h",
    show_default=True,
    callback=duration_option,
    help="Give up on a change after retrying this long; it is kept as undeliverable.",
)
@click.option(
    "--sweep-every",
    default=None,
    metavar="DURATION",
    help="Also expire overdue registered messages this often (e.g. 60s; see `sweep`).",
)
@click.option(
    "--header-timeout",
    default="15s",
    show_default=True,
    callback=duration_option,
    help="Close a connection that has not sent a whole request head within this long.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=None,
    help="Connections each worker keeps open; past it, stalled ones are closed or new ones get "
    "503 (default: half the open-file limit, at most 1000).",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log each request (a ?token= value is written as [redacted]).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="The least severe log lines written (warning hides the start-up lines).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
    help="json: one JSON object per line (time, level, logger, message, request fields).",
)
def serve(
    db: str,
    host: str,
    port: int,
    token: str | None,
    basic: str | None,
    workers: int,
    forward_to: str | None,
    forward_secret: str | None,
    forward_name: str,
    forward_only: str | None,
    forward_horizon: float,
    sweep_every: str | None,
    header_timeout: float,
    max_connections: int | None,
    access_log: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Receive Clickatell status callbacks over HTTP (needs the 'web' extra).

    Point Clickatell's callback URL at /callbacks/clickatell (Meta, Twilio,
    Vonage and SMPP: /callbacks/NAME).  Without --token or --basic anyone who
    can reach the port can post callbacks, but where a provider's signature is
    required: DELIVERYSTATE_META_APP_SECRET (and _META_VERIFY_TOKEN),
    _TWILIO_AUTH_TOKEN with _PUBLIC_URL, _VONAGE_SIGNATURE_SECRET.  A --db
    that holds no database yet (a new SQLite file or PostgreSQL schema) is
    created, and stderr says so.  Ctrl-C stops it, exit status 130.

    \b
    Examples:
      deliverystate serve --db state.sqlite3 --port 8000 --token "$SECRET"
      deliverystate serve --db postgresql://app@db/notify --workers 4
      deliverystate serve --forward-to https://backend.example/hooks/sms \\
          --forward-secret "$WEBHOOK_SECRET"
      deliverystate serve --sweep-every 60s
      deliverystate serve --log-format json --log-level warning --no-access-log
    """
    credentials = _credentials(basic)
    every = None
    if sweep_every is not None:
        try:
            every = parse_duration(sweep_every)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--sweep-every") from None
    try:
        from ..web import serve as run_server  # noqa: PLC0415 - the 'web' extra is optional
        from ..web._providers import provider_settings  # noqa: PLC0415 - likewise
    except ImportError as error:
        raise click.ClickException(
            f"serve needs the 'web' extra ({error.name} is missing): "
            "pip install 'deliverystate[web]'"
        ) from None
    _check_providers(provider_settings)
    limits = _limits(header_timeout, max_connections)
    if workers > 1 and db == ":memory:":
        raise click.BadParameter("several workers cannot share :memory:", param_hint="--workers")
    source = click.get_current_context().get_parameter_source("forward_secret")
    target = None
    if forward_to is not None or source is click.core.ParameterSource.COMMANDLINE:
        target = forward_target(
            forward_to, forward_secret, forward_name, forward_only == "final", forward_horizon
        )
    with _sigint_noted() as sigints:
        run_server(
            db,
            host,
            port,
            token,
            basic_auth=credentials,
            workers=workers,
            forward=target,
            sweep_every=every,
            access_log=access_log,
            log_level=log_level,
            log_format=log_format.lower(),
            limits=limits,
        )
    if sigints:
        raise interrupted("the receiver stopped")
