"""The ``deliverystate`` command line (needs the ``cli`` extra: click and rich).

One sub-command per question an operator asks: what do the codes mean
(``codes``), what happened to this stream / message / campaign (``replay``,
``show``, ``stats``), what does the lifecycle look like (``diagram``), what
could not be parsed (``dead-letter``), give me realistic input
(``simulate``), and receive callbacks over HTTP (``serve``).  Unusable
arguments exit with status 2 and one line; a missing or unreachable database
exits with status 1 and one line, never a traceback.  Ctrl-C stops any
command with status 130 and one line (``forward`` and ``replay`` say there
what they committed).  ``replay`` adds 3 (some
lines were invalid).

The commands live in ``_commands`` and the modules it names (click), their
tables in ``_tables`` (rich), and the replay loop in ``_replay``, which
needs neither.
"""

from __future__ import annotations

import sys

from ..tracking._replay import CHUNK, PARSE_WORKERS, ReplayResult, replay_stream

__all__ = ["CHUNK", "PARSE_WORKERS", "ReplayResult", "main", "replay_stream"]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``deliverystate`` command."""
    try:
        from ._commands import cli  # noqa: PLC0415 - click and rich are the 'cli' extra
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        sys.exit(
            f"deliverystate: the command line needs the 'cli' extra ({error.name} is missing);\n"
            "install it with: pip install 'deliverystate[cli]'"
        )
    cli.main(args=argv, prog_name="deliverystate")
