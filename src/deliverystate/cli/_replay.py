"""Replaying a stream of callback bodies, one per line, in store-sized batches.

Kept apart from the click commands so that it needs neither click nor rich:
``replay_stream`` is what ``deliverystate replay`` runs, and what a program
embedding the tracker can call on any iterable of lines.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from .._reconcile import Outcome
from .._tracker import Tracker

__all__ = ["CHUNK", "ReplayResult", "replay_stream"]

#: Lines applied per store transaction by ``replay``.
CHUNK = 2000


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


def replay_stream(
    lines: Iterable[bytes],
    tracker: Tracker,
    chunk: int = CHUNK,
    progress: Callable[[int], object] | None = None,
) -> ReplayResult:
    """Apply each non-blank line as one callback body, in order, ``chunk`` lines per batch.

    ``progress`` is called with the number of bytes consumed by each batch.
    """
    result = ReplayResult()
    numbered = ((n, line) for n, line in enumerate(lines, start=1))
    while batch := list(itertools.islice(numbered, chunk)):
        bodies = [(n, line.rstrip(b"\r\n")) for n, line in batch if line.strip()]
        report = tracker.ingest_many((body for _, body in bodies), archives=True)
        result.lines += len(bodies)
        result.ignored += report.ignored
        for outcome in Outcome:
            result.outcomes[outcome] += report.summary.count(outcome)
        result.errors.extend((bodies[index][0], str(error)) for index, error in report.errors)
        if progress is not None:
            progress(sum(len(line) for _, line in batch))
    return result
