"""The engine a program embeds: the tracker and what it does with a store.

:class:`Tracker` takes callbacks (``_receipts`` says what became of each),
registers sends and sweeps their deadlines (``_deadlines``), lists and prunes
messages (``_listing``, ``_prune``), follows the feed (``_follow``), replays
files of bodies (``_replay``) and measures delivery (``_stats``, ``_trend``).
``_wire`` holds the JSON shapes every output shares.  The command line and the
web receiver are thin layers over this package.
"""

from __future__ import annotations

from ._deadlines import DEFAULT_WINDOWS, Send
from ._receipts import IngestReport, Receipt, RetryReport
from ._replay import ReplayResult, replay_stream
from ._stats import DeliveryStats, Latency, delivery_stats
from ._tracker import Tracker

__all__ = [
    "DEFAULT_WINDOWS",
    "DeliveryStats",
    "IngestReport",
    "Latency",
    "Receipt",
    "ReplayResult",
    "RetryReport",
    "Send",
    "Tracker",
    "delivery_stats",
    "replay_stream",
]
