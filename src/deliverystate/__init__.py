"""deliverystate: the delivery state of Clickatell messages, reconciled from callbacks.

Every message is a state machine over Clickatell's One API status codes.  The
lifecycle says which transitions a backend may make; a precedence policy
decides what out-of-order, duplicated or conflicting callbacks mean, so that
every process that sees the same callbacks reaches the same answer.

The public surface is this module's ``__all__``, ``deliverystate.errors``,
``deliverystate.stores``, ``deliverystate.diagrams`` and
``deliverystate.simulate``, and the optional extras ``deliverystate.postgres``,
``deliverystate.web``, ``deliverystate.forward``, ``deliverystate.cli`` and
``deliverystate.testing`` (strategies, ``assert_converges`` and the store
contract, for testing code built on this one; ``deliverystate.pytest_plugin``
gives pytest its fixtures).
Modules whose names start with an underscore are the implementation and may
change.
"""

from __future__ import annotations

from ._callbacks import ParsedBatch, ParsedCallback, parse_callback, read_callback, read_many
from ._catalog import CHANNELS, FAILURES, Category, Kind, Origin, Source, Status
from ._deadlines import DEFAULT_WINDOWS, Send
from ._events import Change, MessageState, StatusEvent
from ._formats import LEGACY_STATUS, PLATFORM_NAMES
from ._lifecycle import implied_path, is_allowed, step
from ._policy import DELIVERY_WINS, FAILURE_WINS, Policy, PolicyRow, Tie
from ._receipts import IngestReport, Receipt, RetryReport
from ._reconcile import Decision, Outcome, reconcile
from ._stats import DeliveryStats, Latency, delivery_stats
from ._tracker import Tracker
from .errors import (
    CursorMovedBack,
    DeliveryStateError,
    IllegalTransition,
    InvalidCallback,
    NoDatabase,
    PolicyMismatch,
    SchemaMismatch,
    StoreUnavailable,
    UnknownStatusCode,
)
from .stores import (
    DeadLetter,
    HistoryEntry,
    MemoryStore,
    SQLiteStore,
    Store,
    Summary,
    Undeliverable,
    open_store,
)

__all__ = [
    "CHANNELS",
    "DEFAULT_WINDOWS",
    "DELIVERY_WINS",
    "FAILURES",
    "FAILURE_WINS",
    "LEGACY_STATUS",
    "PLATFORM_NAMES",
    "Category",
    "Change",
    "CursorMovedBack",
    "DeadLetter",
    "Decision",
    "DeliveryStateError",
    "DeliveryStats",
    "HistoryEntry",
    "IllegalTransition",
    "IngestReport",
    "InvalidCallback",
    "Kind",
    "Latency",
    "MemoryStore",
    "MessageState",
    "NoDatabase",
    "Origin",
    "Outcome",
    "ParsedBatch",
    "ParsedCallback",
    "Policy",
    "PolicyMismatch",
    "PolicyRow",
    "Receipt",
    "RetryReport",
    "SQLiteStore",
    "SchemaMismatch",
    "Send",
    "Source",
    "Status",
    "StatusEvent",
    "Store",
    "StoreUnavailable",
    "Summary",
    "Tie",
    "Tracker",
    "Undeliverable",
    "UnknownStatusCode",
    "delivery_stats",
    "implied_path",
    "is_allowed",
    "open_store",
    "parse_callback",
    "read_callback",
    "read_many",
    "reconcile",
    "step",
]


def __getattr__(name: str) -> object:
    """``deliverystate.PostgresStore`` without importing psycopg until it is used.

    Not in ``__all__`` for that reason: a star import must not need psycopg.
    """
    if name == "PostgresStore":
        from .stores._postgres import PostgresStore  # noqa: PLC0415 - psycopg is an optional extra

        return PostgresStore
    raise AttributeError(f"module 'deliverystate' has no attribute {name!r}")
