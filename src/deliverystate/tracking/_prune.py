"""Retention: removing settled messages past a date, writing each to an archive first.

``Tracker.prune`` is this module's :func:`prune` on the tracker's store.  A
message is settled when it failed, was read, or was delivered (DEVICE_ACK, where
an SMS ends): ``stores.SETTLED``, the one statement of the rule.  The
store does the work in small groups (``Store.prunable`` without the write
lock, ``Store.remove`` with it, briefly), so a receiver can keep running; see
``stores/_retention.py``.  With an archive, every message is written as one
JSON line (``_archive``), and flushed to disk, *before* its group is deleted:
nothing leaves the store without the operator's say, and replaying the archive
brings it back.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import IO

from ..rules._records import Archived
from ..rules._time import ms_from_datetime
from ..stores import Store
from ._wire import archive_line

__all__ = ["prune"]

#: Messages scanned per read, and so at most removed per write transaction.
GROUP = 500


def _writer(archive: IO[str]) -> Callable[[Sequence[Archived]], None]:
    """Write archived messages as lines and make them durable before they are deleted."""

    def keep(messages: Sequence[Archived]) -> None:
        for message in messages:
            history = [(e.event, e.outcome.value, e.arrival) for e in message.history]
            archive.write(archive_line(message.state, history) + "\n")
        archive.flush()
        # not a real file (a pipe, a StringIO): flushed is all there is
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.fsync(archive.fileno())

    return keep


def prune(
    store: Store,
    before: datetime,
    *,
    archive: IO[str] | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int], object] | None = None,
) -> int:
    """Remove (or, ``dry_run``, count) settled messages whose last report is before ``before``.

    Then trims the change feed of changes before ``before`` that every named
    consumer has passed (a consumer that has not read them keeps them).
    ``progress`` is called after each group with (messages scanned, messages
    removed so far).  Returns how many were removed (or would be).
    """
    before_ms = ms_from_datetime(before)
    keep = _writer(archive) if archive is not None else None
    after: str | None = None
    scanned = removed = 0
    while True:
        found, after_next = store.prunable(before_ms, after, GROUP)
        scanned += GROUP if after_next is not None else len(found)
        if found:
            removed += len(found) if dry_run else store.remove(found, before_ms, keep)
        if progress is not None:
            progress(scanned, removed)
        if after_next is None:
            if not dry_run:
                store.trim_changes(before_ms)
            return removed
        after = after_next
