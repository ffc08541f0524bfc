"""The replay benchmark's baseline: a replay done the plain way, as deliverystate did it before.

One process, the standard library's JSON decoder, ``Tracker.ingest_many`` per
2,000 lines, into SQLite: what ``deliverystate replay`` did before it decoded
with msgspec, parsed in a worker process and applied 20,000 lines a batch (the
parser's own fast path and lazy timestamps are used here too, so this
baseline is already faster than the old code).  ``bench/run.py`` runs it as
``python bench/plain_replay.py STREAM DB`` beside ``deliverystate replay STREAM
--db DB``, so that both pay for starting an interpreter alike.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

from deliverystate import SQLiteStore, Tracker
from deliverystate.callbacks import _decode as json_module

__all__ = ["replay_plain"]


def replay_plain(stream: Path, tracker: Tracker) -> None:
    """Replay ``stream``: one process, the standard library's JSON, 2,000 lines a batch."""
    saved = json_module.FAST_DECODER
    json_module.FAST_DECODER = None
    try:
        with stream.open("rb") as file:
            while chunk := list(itertools.islice(file, 2000)):
                tracker.ingest_many([line.rstrip(b"\r\n") for line in chunk if line.strip()])
    finally:
        json_module.FAST_DECODER = saved


def main(argv: list[str]) -> int:
    """Replay STREAM into the SQLite file DB, and count the final states as replay reports them."""
    stream, db = argv
    tracker = Tracker(SQLiteStore(db))
    replay_plain(Path(stream), tracker)
    tracker.count_by_status()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
