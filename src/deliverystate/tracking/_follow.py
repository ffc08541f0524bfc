"""Following the change feed: pages of changes as they are committed, waiting for new ones.

A follower reads the feed after its position, and when it has read
everything it waits: on PostgreSQL for the NOTIFY that every feed write
sends at commit (``PostgresStore.listen``), elsewhere for a short poll, cut
short by the store's own hook when the change is made in this process.  The
feed is the truth and a wake-up only a hint, so a lost notification costs at
most one poll interval, never a change.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence

from ..rules._events import Change
from ..stores import Store

__all__ = ["LISTEN_SECONDS", "POLL_SECONDS", "follow", "waiter"]

#: How long a follower of a store that cannot notify sleeps between reads.
POLL_SECONDS = 0.25
#: How long a follower of a store that notifies waits for a notification at most.
LISTEN_SECONDS = 1.0


@contextlib.contextmanager
def waiter(store: Store, poll: float = POLL_SECONDS) -> Iterator[Callable[[], None]]:
    """A ``wait()`` that returns when the store may hold new changes (or after ``poll``)."""
    listen = getattr(store, "listen", None)
    if callable(listen):
        with listen() as wait_for:
            yield lambda: wait_for(LISTEN_SECONDS) and None
        return
    woken = threading.Event()

    def wake(changes: Sequence[Change]) -> None:
        woken.set()

    remove = store.on_change(wake)
    try:

        def wait() -> None:
            woken.wait(poll)
            woken.clear()

        yield wait
    finally:
        remove()


def follow(
    store: Store,
    after: int = 0,
    *,
    stop: threading.Event | None = None,
    limit: int = 1000,
    poll: float = POLL_SECONDS,
) -> Iterator[list[Change]]:
    """Yield pages of changes after ``after`` as they are committed, until ``stop`` is set.

    Without ``stop`` it follows until the caller stops iterating.  A page is
    never empty; ``stop`` is checked between pages and at least every
    ``poll`` seconds while waiting (on PostgreSQL every ``LISTEN_SECONDS``).
    """
    with waiter(store, poll) as wait:
        while stop is None or not stop.is_set():
            page = store.changes(after, limit)
            if page:
                after = page[-1].seq
                yield page
            else:
                wait()
