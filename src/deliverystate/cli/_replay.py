"""Replaying a stream of callback bodies, one per line, in store-sized batches.

Kept apart from the click commands so that it needs neither click nor rich:
``replay_stream`` is what ``deliverystate replay`` runs, and what a program
embedding the tracker can call on any iterable of lines.

Theory of operation
-------------------
Lines are cut into batches of ``chunk`` lines; each batch is parsed
(``read_many``) and then applied by ``Tracker.ingest_parsed`` in one store
transaction, its bad lines going to the dead letter first.  With ``workers``,
parsing happens in that many worker processes while this process applies the
batch before: a worker only ever parses, and every batch is applied here,
strictly in order, so transactions, dead letters, line numbers and results are
those of the single-process path.  The workers start only once the stream
turns out longer than two batches, and batches are parsed here until they
have started, so a stream never waits for them; a worker that dies has its
batches parsed here instead.  Workers ignore Ctrl-C (this process handles it
and stops them; the batch being applied rolls back whole) and exit by
themselves when this process dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import threading
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from typing import Any

from .._callbacks import ParsedBatch, read_many
from .._receipts import IngestReport
from .._reconcile import Outcome
from .._tracker import Tracker

__all__ = ["CHUNK", "PARSE_WORKERS", "ReplayResult", "replay_stream"]

#: Lines applied per store transaction by ``replay``.  A transaction's cost in
#: SQLite is mostly its commit, which writes every page the batch touched (ids are
#: random, so nearly one page per row until a batch covers the tables): batches
#: of 20,000 lines replay about 1.5x as fast as 2,000 (1.8x with a parsing
#: worker), hold the write lock for a fraction of a second, and keep a few
#: megabytes of lines and events in memory.
CHUNK = 20_000
#: Processes parsing for ``replay`` by default: one beside the one applying, given two cores.
PARSE_WORKERS = 1 if (os.cpu_count() or 1) > 1 else 0
#: Batches parsed here before workers start: starting one costs a few tenths of a
#: second of CPU, which a stream of two batches or fewer does not win back
#: (measured: 10,000 simulated messages, 32,495 lines, replay 8 % slower with one).
_BEFORE_WORKERS = 2


class ReplayResult:
    """Counts gathered while replaying a stream; ``errors`` holds (line number, message)."""

    def __init__(self) -> None:
        self.lines = 0
        self.outcomes: Counter[Outcome] = Counter()
        self.errors: list[tuple[int, str]] = []
        self.ignored = 0

    def add(self, other: ReplayResult) -> None:
        """Add the counts of another replay (another file) to these."""
        self.lines += other.lines
        self.ignored += other.ignored
        self.outcomes.update(other.outcomes)
        self.errors.extend(other.errors)

    def as_json(self) -> dict[str, Any]:
        """The counts as a JSON-ready dictionary."""
        return {
            "lines": self.lines,
            "outcomes": {outcome.value: self.outcomes[outcome] for outcome in Outcome},
            "invalid_lines": len(self.errors),
            "ignored_events": self.ignored,
        }

    def _count(self, numbers: list[int], report: IngestReport) -> None:
        self.lines += len(numbers)
        self.ignored += report.ignored
        for outcome in Outcome:
            self.outcomes[outcome] += report.summary.count(outcome)
        self.errors.extend((numbers[index], str(error)) for index, error in report.errors)


class _Batch:
    """Up to ``chunk`` lines: the non-blank ones' numbers and bodies, and the bytes consumed."""

    def __init__(self, numbers: list[int], bodies: list[bytes], size: int) -> None:
        self.numbers = numbers
        self.bodies = bodies
        self.size = size


#: Batches with their parse, in order, from this process or from workers.
_Parsing = Generator[tuple[_Batch, ParsedBatch], None, None]


def replay_stream(
    lines: Iterable[bytes],
    tracker: Tracker,
    chunk: int = CHUNK,
    progress: Callable[[int], object] | None = None,
    workers: int = 0,
) -> ReplayResult:
    """Apply each non-blank line as one callback body, in order, ``chunk`` lines per batch.

    ``progress`` is called with the number of bytes consumed by each batch.
    ``workers`` processes parse batches while this one applies them (0: this
    process does both); the results are the same either way.  Workers are
    started with multiprocessing's "spawn", which imports the calling
    program's main module in each of them: keep its work under
    ``if __name__ == "__main__":``, as ``deliverystate replay`` does.
    """
    result = ReplayResult()
    batches = _batches(lines, chunk)
    parsed = _parse_ahead(batches, workers) if workers > 0 else _parse_here(batches)
    with contextlib.closing(parsed):
        for batch, batch_parsed in parsed:
            result._count(batch.numbers, tracker.ingest_parsed(batch.bodies, batch_parsed))
            if progress is not None:
                progress(batch.size)
    return result


def _batches(lines: Iterable[bytes], chunk: int) -> Iterator[_Batch]:
    numbered = enumerate(lines, start=1)
    while batch := list(itertools.islice(numbered, chunk)):
        kept = [(n, line.rstrip(b"\r\n")) for n, line in batch if line.strip()]
        yield _Batch(
            [n for n, _ in kept], [body for _, body in kept], sum(len(line) for _, line in batch)
        )


def _parse_here(batches: Iterator[_Batch]) -> _Parsing:
    for batch in batches:
        yield batch, read_many(batch.bodies, archives=True)


def _parse_ahead(batches: Iterator[_Batch], workers: int) -> _Parsing:
    """Each batch with its parse, in order, parsed by ``workers`` processes ahead of the caller."""
    for batch in itertools.islice(batches, _BEFORE_WORKERS):
        yield batch, read_many(batch.bodies, archives=True)
    following = next(batches, None)
    if following is None:
        return
    with _worker_pool(workers) as pool:
        with _sigint_blocked():
            started = pool.submit(int)  # done once a worker runs
        pending: deque[tuple[_Batch, Future[ParsedBatch] | None]] = deque()
        for batch in itertools.chain((following,), batches):
            if not started.done():  # the workers are starting: parse here meanwhile
                yield batch, read_many(batch.bodies, archives=True)
                continue
            pending.append((batch, _submit(pool, batch)))
            if len(pending) > workers:  # each worker holds one batch while this one applies
                yield _parsed(*pending.popleft())
        while pending:
            yield _parsed(*pending.popleft())


def _submit(pool: ProcessPoolExecutor, batch: _Batch) -> Future[ParsedBatch] | None:
    try:
        with _sigint_blocked():
            return pool.submit(read_many, batch.bodies, archives=True)
    except BrokenProcessPool:  # a worker died: parse here from now on
        return None


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT held back in this thread while a submission may start a worker.

    A worker inherits the mask, so Ctrl-C can never interrupt it, not even
    while it is still starting (before ``_worker_started`` runs); a SIGINT for
    this process is delivered once the mask is lifted, never lost.
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _parsed(batch: _Batch, future: Future[ParsedBatch] | None) -> tuple[_Batch, ParsedBatch]:
    if future is not None:
        try:
            return batch, future.result()
        except BrokenProcessPool:
            pass
    return batch, read_many(batch.bodies, archives=True)


@contextlib.contextmanager
def _worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    # spawn, not fork: a child must not inherit this process's open database
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_started)
    try:
        yield pool
    finally:
        # without waiting: a worker still starting, or finishing a batch after
        # Ctrl-C, ends by itself (the interpreter waits for it at exit)
        pool.shutdown(wait=False, cancel_futures=True)


def _worker_started() -> None:
    """In each worker: leave Ctrl-C to the replaying process, and end when it ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    wait([sentinel])
    os._exit(0)
