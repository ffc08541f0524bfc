"""The change feed of the memory store: a list of changes, consumers' positions, give-ups.

The same contract as the SQL stores' feed (``_sqlfeed``), kept in process
memory under the store's lock: changes are numbered from 1 in the order the
store applied them, and a consumer's position is a name and a number.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone

from ..errors import CursorMovedBack
from ..rules._events import Change
from ..rules._records import Undeliverable
from ._hooks import ChangeHook, Hooks
from ._work import Batch, change_of

__all__ = ["MemoryFeed"]


class MemoryFeed:
    """``changes``, cursors and undeliverable changes for :class:`MemoryStore`."""

    _lock: threading.Lock

    def __init__(self, *, feed: bool) -> None:
        #: Whether status changes are written to the change feed.
        self.feed = feed
        self._changes: list[Change] = []
        self._seqs: list[int] = []  # the changes' seqs, for bisect
        self._last_seq = 0
        self._cursors: dict[str, int] = {}
        self._undeliverable: dict[tuple[str, int], Undeliverable] = {}
        self._hooks = Hooks()

    def _append_changes(self, batch: Batch) -> list[Change]:
        """Number and keep the changes a batch noted (call with the lock held)."""
        count = len(batch.feed or ())
        if not count:
            return []
        first = self._last_seq + 1
        changes = [change_of(first + i, entry) for i, entry in enumerate(batch.feed or ())]
        self._last_seq += count
        self._changes.extend(changes)
        self._seqs.extend(change.seq for change in changes)
        return changes

    def on_change(self, hook: ChangeHook) -> Callable[[], None]:
        """Call ``hook`` after each batch this store applies with that batch's changes."""
        return self._hooks.add(hook)

    def changes(self, after: int = 0, limit: int = 1000) -> list[Change]:
        """The changes with ``seq`` above ``after``, in ``seq`` order, at most ``limit``."""
        with self._lock:
            start = bisect.bisect_right(self._seqs, after)
            return self._changes[start : start + max(limit, 0)]

    def last_seq(self) -> int:
        """The highest ``seq`` handed out (0 when nothing was ever written to the feed)."""
        return self._last_seq

    def count_changes(self, after: int = 0, *, final: bool = False) -> int:
        """How many changes the feed holds after ``after`` (with ``final``, to a final status)."""
        with self._lock:
            kept = self._changes[bisect.bisect_right(self._seqs, after) :]
        return sum(1 for change in kept if change.is_final) if final else len(kept)

    def cursor(self, name: str) -> int:
        """Where consumer ``name`` is: the last ``seq`` it committed (0 if never)."""
        return self._cursors.get(name, 0)

    def cursors(self) -> Mapping[str, int]:
        """Every named consumer's position."""
        with self._lock:
            return dict(self._cursors)

    def commit_cursor(self, name: str, seq: int) -> None:
        """Record that consumer ``name`` has handled every change up to ``seq``.

        Raises :class:`CursorMovedBack`, and keeps the cursor, if it is past ``seq``.
        """
        with self._lock:
            current = self._cursors.get(name, seq)
            if seq < current:
                raise CursorMovedBack(name, seq, current)
            self._cursors[name] = seq

    def drop_cursor(self, name: str) -> None:
        """Forget consumer ``name`` (it no longer holds changes back from pruning)."""
        with self._lock:
            self._cursors.pop(name, None)

    def trim_changes(self, before_ms: int) -> int:
        """Delete changes older than ``before_ms`` that every named consumer has passed."""
        with self._lock:
            bound = min(self._cursors.values(), default=self._last_seq)
            kept = [c for c in self._changes if c.seq > bound or c.timestamp_ms >= before_ms]
            removed = len(self._changes) - len(kept)
            self._changes = kept
            self._seqs = [change.seq for change in kept]
            return removed

    def add_undeliverable(self, consumer: str, change: Change, error: str) -> None:
        """Keep a change that ``consumer`` could not be given (once per consumer and change)."""
        with self._lock:
            self._undeliverable[consumer, change.seq] = Undeliverable(
                consumer, change, error, datetime.now(timezone.utc)
            )

    def undeliverable(self, consumer: str | None = None) -> Sequence[Undeliverable]:
        """The changes forwarders gave up on (``consumer``'s only, if given), oldest first."""
        with self._lock:
            found = [u for u in self._undeliverable.values() if consumer in (None, u.consumer)]
        return sorted(found, key=lambda u: (u.failed_at, u.consumer, u.change.seq))

    def remove_undeliverable(self, consumer: str, seq: int) -> None:
        """Forget an undeliverable change (it was delivered after all)."""
        with self._lock:
            self._undeliverable.pop((consumer, seq), None)
