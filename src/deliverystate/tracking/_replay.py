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
turns out to hold two full batches, and batches are parsed here until they
have started, so a stream never waits for them; a worker that dies has its
batches parsed here instead.  Workers ignore Ctrl-C (this process handles it
and stops them; the batch being applied rolls back whole) and exit by
themselves when this process dies, even by SIGKILL.

A caller that hands in its own ``ReplayResult`` can read it while the replay
runs (in ``progress``) and after an interruption: it counts exactly the
batches applied so far, each one committed before it is counted.  With
``max_invalid`` the replay stops at the line that makes the invalid lines one
too many: the lines before it, and that line, are applied (a batch is cut
there and its remainder never applied), and ``stopped_at`` says where.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import signal
import threading
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from typing import Any

from ..callbacks._parse import ParsedBatch, read_many
from ..rules._reconcile import Outcome
from ._collector import collector_paused
from ._receipts import IngestReport, payload_text
from ._tracker import Tracker

__all__ = ["CHUNK", "PARSE_WORKERS", "ReplayResult", "opens_json", "reason_of", "replay_stream"]

#: Lines applied per store transaction by ``replay``.  A transaction's cost in
#: SQLite is mostly its commit, which writes every page the batch touched (ids are
#: random, so nearly one page per row until a batch covers the tables): batches
#: of 20,000 lines replay about 1.5x as fast as 2,000 (1.8x with a parsing
#: worker), hold the write lock for a fraction of a second, and keep a few
#: megabytes of lines and events in memory.
CHUNK = 20_000
#: Processes parsing for ``replay`` by default: one beside the one applying, given two cores.
PARSE_WORKERS = 1 if (os.cpu_count() or 1) > 1 else 0
# Workers start only for a stream of two full batches or more (``_parse_ahead``): starting
# one costs a few tenths of a second of CPU, which a shorter stream does not win back
# (measured: 10,000 simulated messages, 32,495 lines, replay 8 % slower with one).


class ReplayResult:
    """Counts gathered while replaying a stream; ``errors`` holds (line number, message).

    ``stopped_at`` is the line a replay stopped after because of
    ``max_invalid`` (None when it read its stream to the end);
    ``multiline_json_at`` is the first bad line that looks like the opening of
    a JSON body spread over several lines (pretty-printed), worth a hint: it
    opens a JSON value (see :func:`opens_json`) and the next line is bad too.
    """

    def __init__(self) -> None:
        self.lines = 0
        self.outcomes: Counter[Outcome] = Counter()
        self.errors: list[tuple[int, str]] = []
        self.ignored = 0
        self.stopped_at: int | None = None
        self.multiline_json_at: int | None = None
        self.bad_bodies: set[bytes] = set()

    def add(self, other: ReplayResult) -> None:
        """Add the counts of another replay (another file) to these."""
        self.lines += other.lines
        self.ignored += other.ignored
        self.outcomes.update(other.outcomes)
        self.errors.extend(other.errors)
        self.bad_bodies |= other.bad_bodies
        if self.stopped_at is None:
            self.stopped_at = other.stopped_at
        if self.multiline_json_at is None:
            self.multiline_json_at = other.multiline_json_at

    def as_json(self) -> dict[str, Any]:
        """The counts as a JSON-ready dictionary."""
        return {
            "lines": self.lines,
            "outcomes": {outcome.value: self.outcomes[outcome] for outcome in Outcome},
            "invalid_lines": len(self.errors),
            "dead_letters": len(self.bad_bodies),
            "ignored_events": self.ignored,
        }

    def reasons(self) -> Counter[str]:
        """The invalid lines counted by reason, the values that vary from line to line elided.

        Thousands of bad lines usually have a handful of causes; counting
        "status: unknown status '...'" once says more than listing each.
        """
        return Counter(reason_of(message) for _, message in self.errors)

    def _count(self, batch: _Batch, report: IngestReport) -> None:
        self.lines += batch.lines
        self.ignored += report.ignored
        for outcome in Outcome:
            self.outcomes[outcome] += report.summary.count(outcome)
        numbers = batch.numbers
        self.errors.extend((numbers[index], str(error)) for index, error in report.errors)
        self.bad_bodies.update(_kept_as(batch.bodies[index]) for index, _ in report.errors)
        if self.multiline_json_at is None and report.errors:
            # the opening line of a body spread over lines is followed by more of it, just as
            # bad; a body merely cut short (a lost tail) is followed by a good line
            bad = {index for index, _ in report.errors}
            self.multiline_json_at = next(
                (numbers[i] for i in sorted(bad) if i + 1 in bad and opens_json(batch.bodies[i])),
                None,
            )


def _kept_as(body: bytes) -> bytes:
    """A bad body's identity in the dead letter: the digest of the text it is kept as."""
    return hashlib.sha256(payload_text(body).encode("utf-8", "surrogatepass")).digest()


def reason_of(message: str) -> str:
    """An invalid line's error without what varies: details in parentheses, quoted values, numbers.

    ``invalid callback: body: not JSON (Expecting value: line 1 column 1
    (char 0))`` becomes ``body: not JSON``, ``...[3].status: unknown status
    'X'`` becomes ``...[N].status: unknown status '...'``, ``1767225600 is
    before 2000-01-01`` becomes ``N is before 2000-01-01``.
    """
    text = message.removeprefix("invalid callback: ").split(" (", 1)[0]
    text = _QUOTED.sub("'...'", text)
    return _NUMBER.sub("N", text)


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# a number standing alone: not part of a name, nor of a date such as 2000-01-01
_NUMBER = re.compile(r"(?<![\w.-])\d+(?:\.\d+)?(?![\w.-])")


def opens_json(body: bytes) -> bool:
    """Whether a bad line is the start of a JSON value that goes on over the next lines.

    A pretty-printed body's first line is ``{`` or ``[`` alone; a body broken
    by hand stops mid-object.  Both are JSON that fails at its very end, for
    want of what follows; a line that fails anywhere else, or parses, is not
    the start of a multi-line body.
    """
    text = body.decode("utf-8", errors="replace").strip()
    if text[:1] not in ("{", "["):
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return error.pos >= len(text)
    except (ValueError, RecursionError):
        return False
    return False


class _Batch:
    """Up to ``chunk`` lines from line ``first`` on: how many, the non-blank ones' numbers and
    bodies, and the bytes consumed."""

    def __init__(
        self, first: int, lines: int, numbers: list[int], bodies: list[bytes], size: int
    ) -> None:
        self.first = first
        self.lines = lines
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
    *,
    max_invalid: int | None = None,
    result: ReplayResult | None = None,
) -> ReplayResult:
    """Apply each non-blank line as one callback body, in order, ``chunk`` lines per batch.

    ``progress`` is called with the number of bytes consumed by each batch
    applied in full.  ``workers`` processes parse batches while this one
    applies them (0: this process does both); the results are the same
    either way.  Workers are started with multiprocessing's "spawn", which
    imports the calling program's main module in each of them: keep its work
    under ``if __name__ == "__main__":``, as ``deliverystate replay`` does.

    With ``max_invalid``, the replay stops at the line that makes more than
    that many lines invalid, that line included; what it applied stays
    applied.  The counts go into ``result`` when one is given (readable from
    ``progress``, and after a ``KeyboardInterrupt``), else into a new one.
    """
    result = ReplayResult() if result is None else result
    allowed = max_invalid  # invalid lines this stream may still have
    batches = _batches(lines, chunk)
    parsed = _parse_ahead(batches, workers) if workers > 0 else _parse_here(batches)
    with contextlib.closing(parsed):
        for batch, batch_parsed in parsed:
            if allowed is not None and len(batch_parsed.errors) > allowed:
                cut, cut_parsed = _cut(batch, batch_parsed, allowed)
                with collector_paused():
                    result._count(cut, tracker.ingest_parsed(cut.bodies, cut_parsed))
                result.stopped_at = cut.numbers[-1]
                break
            with collector_paused():
                result._count(batch, tracker.ingest_parsed(batch.bodies, batch_parsed))
            if allowed is not None:
                allowed -= len(batch_parsed.errors)
            if progress is not None:
                progress(batch.size)
    return result


def _cut(batch: _Batch, parsed: ParsedBatch, allowed: int) -> tuple[_Batch, ParsedBatch]:
    """The batch up to its invalid line number ``allowed + 1`` (counted from 1), parsed again."""
    end = parsed.errors[allowed][0] + 1
    numbers, bodies = batch.numbers[:end], batch.bodies[:end]
    cut = _Batch(batch.first, numbers[-1] - batch.first + 1, numbers, bodies, 0)
    return cut, _parse_batch(bodies)


def _parse_batch(bodies: list[bytes]) -> ParsedBatch:
    """``read_many`` of one batch, archive lines included, the collector held off meanwhile."""
    with collector_paused():
        return read_many(bodies, archives=True)


def _batches(lines: Iterable[bytes], chunk: int) -> Iterator[_Batch]:
    """The stream cut into batches of ``chunk`` lines, blank lines left out of their bodies.

    On the applying process's path, so a batch costs a few C-level passes
    (strip, find blanks) and per-line Python work only when it holds a blank
    line: about half of what numbering every line did (measured, 325k lines).
    """
    lines = iter(lines)
    first = 1
    while batch := list(itertools.islice(lines, chunk)):
        bodies = [line.rstrip(b"\r\n") for line in batch]
        numbers = list(range(first, first + len(batch)))
        # isspace() copies nothing, as strip() would (an empty line is not "space")
        if not all(bodies) or any(map(bytes.isspace, bodies)):
            kept = [(n, b) for n, b in zip(numbers, bodies, strict=True) if b and not b.isspace()]
            numbers, bodies = [n for n, _ in kept], [body for _, body in kept]
        yield _Batch(first, len(batch), numbers, bodies, sum(map(len, batch)))
        first += len(batch)


def _parse_here(batches: Iterator[_Batch]) -> _Parsing:
    for batch in batches:
        yield batch, _parse_batch(batch.bodies)


def _parse_ahead(batches: Iterator[_Batch], workers: int) -> _Parsing:
    """Each batch with its parse, in order, parsed by ``workers`` processes ahead of the caller.

    The first batch is parsed here.  The workers start as soon as a second
    batch as long as the first is read (so the stream may go on), before that
    batch is parsed here too: their start overlaps its parse and apply
    instead of following them (measured: with 20,000-line batches, starting
    them only once a third batch was read left 3 of the 100k-message
    stream's 17 batches parsed here, one after the other; starting them now,
    2).  No batch is held back to look further ahead: a pipe's lines are
    applied as they come.
    """
    first = next(batches, None)
    if first is None:
        return
    yield first, _parse_batch(first.bodies)
    second = next(batches, None)
    if second is None or second.lines < first.lines:  # the last batch: no worker would pay off
        if second is not None:
            yield second, _parse_batch(second.bodies)
        return
    with _worker_pool(workers) as pool:
        with _sigint_blocked():
            started = pool.submit(int)  # done once a worker runs
        pending: deque[tuple[_Batch, Future[ParsedBatch] | None]] = deque()
        for batch in itertools.chain((second,), batches):
            if not started.done():  # the workers are starting: parse here meanwhile
                yield batch, _parse_batch(batch.bodies)
                continue
            pending.append((batch, _submit(pool, batch)))
            if len(pending) > workers:  # each worker holds one batch while this one applies
                yield _parsed(*pending.popleft())
        while pending:
            yield _parsed(*pending.popleft())


def _submit(pool: ProcessPoolExecutor, batch: _Batch) -> Future[ParsedBatch] | None:
    try:
        with _sigint_blocked():
            return pool.submit(_parse_batch, batch.bodies)
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
    return batch, _parse_batch(batch.bodies)


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
