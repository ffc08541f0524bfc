"""The receiver's intake: one thread that keeps and applies callback bodies, many at a time.

Theory of operation
-------------------
Every callback body the app takes is queued here with a future; one thread
takes everything queued at each wake-up (up to :attr:`IntakeThread.BATCH`
bodies), hands the whole group to ``Tracker.receive_many`` (two store
transactions for the group, and failures isolated body by body inside it),
and resolves each body's future on its event loop with that body's
:class:`~deliverystate.Receipt` or error.

Why a thread of its own and not the shared thread pool: a store call that
releases the GIL inside SQLite hands the GIL back and forth with the event
loop, and a pool adds wake-ups per call on both sides while its threads queue
on the store's lock.  Measured on two cores, SQLite, 16 callbacks in flight (a
loop that also does some work per request): ~585 us of process CPU per
callback through ``run_in_threadpool``, ~200-240 us here, against ~176 us
when ``receive`` runs on the loop itself (which would block it).  This thread
wakes the loop once per group.  Stores serialise their writes anyway, so a
single writer loses no parallelism.

The thread starts on first use and stops when the app shuts down; each thread
has its own queue, so a thread that is stopping never takes the bodies of the
one that replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from typing import Any

from ..tracking._receipts import Payload, Received
from ..tracking._tracker import Tracker

__all__ = ["IntakeThread"]

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Payload]
_Settled = tuple["asyncio.Future[Any]", Received]


class IntakeThread:
    """Queues callback bodies for ``receive_many`` and resolves each body's future."""

    #: The most bodies handed to ``receive_many`` at once.
    BATCH = 256

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self._current: tuple[threading.Thread, queue.SimpleQueue[_Job | None]] | None = None
        self._start_lock = threading.Lock()

    def submit(self, payload: Payload) -> asyncio.Future[Received]:
        """Queue a body; the future resolves on the calling loop with its result.

        The result is the body's ``Receipt``; an invalid body's
        ``InvalidCallback`` or the store's error is set as the future's
        exception, so awaiting it raises.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Received] = loop.create_future()
        with self._start_lock:
            if self._current is None or not self._current[0].is_alive():
                jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
                thread = threading.Thread(
                    target=self._work, args=(jobs,), name="deliverystate-intake", daemon=True
                )
                thread.start()
                self._current = (thread, jobs)
            self._current[1].put((loop, future, payload))
        return future

    def stop(self) -> None:
        """Finish the queued bodies, then end the thread (a later body starts a new one)."""
        with self._start_lock:
            current, self._current = self._current, None
        if current is not None:
            current[1].put(None)
            current[0].join()

    def _work(self, jobs: queue.SimpleQueue[_Job | None]) -> None:
        while True:
            batch = [jobs.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < self.BATCH:
                    batch.append(jobs.get_nowait())
            group = [job for job in batch if job is not None]
            if group:
                self._receive(group)
            if len(group) < len(batch):  # the stop sentinel
                return

    def _receive(self, group: list[_Job]) -> None:
        """Keep and apply a group in two transactions; one result per body, to its loop."""
        try:
            results = self._tracker.receive_many([payload for _, _, payload in group])
        except Exception as error:  # the group could not be kept at all: each body gets it
            results = [error] * len(group)
        settled: dict[asyncio.AbstractEventLoop, list[_Settled]] = {}
        for (loop, future, _), result in zip(group, results, strict=True):
            settled.setdefault(loop, []).append((future, result))
        for loop, outcomes in settled.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, outcomes)


def _resolve(outcomes: list[_Settled]) -> None:
    """Hand each body's result or error to its future (on the future's own loop)."""
    for future, result in outcomes:
        if future.cancelled():
            continue
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)
