"""deliverystate: the delivery state of Clickatell messages, reconciled from callbacks.

Every message is a state machine over Clickatell's One API status codes.  The
lifecycle says which transitions a backend may make; a precedence policy
decides what out-of-order, duplicated or conflicting callbacks mean, so that
every process that sees the same callbacks reaches the same answer.
"""

from __future__ import annotations

from .callbacks import (
    LEGACY_STATUS,
    PLATFORM_NAMES,
    InvalidCallback,
    ParsedCallback,
    parse_callback,
    read_callback,
)
from .catalog import CHANNELS, Category, Source, Status, UnknownStatusCode
from .events import MessageState, StatusEvent
from .lifecycle import IllegalTransition, implied_path, is_allowed, step
from .memory import MemoryStore
from .policy import DELIVERY_WINS, FAILURE_WINS, Policy, PolicyRow, Tie
from .reconcile import Decision, Outcome, reconcile
from .sqlite import SQLiteStore
from .sqlstore import SchemaMismatch, StoreUnavailable
from .store import DeadLetter, HistoryEntry, PolicyMismatch, Store, Summary
from .stores import open_store
from .tracker import IngestReport, Receipt, RetryReport, Tracker

__all__ = [
    "CHANNELS",
    "DELIVERY_WINS",
    "FAILURE_WINS",
    "LEGACY_STATUS",
    "PLATFORM_NAMES",
    "Category",
    "DeadLetter",
    "Decision",
    "HistoryEntry",
    "IllegalTransition",
    "IngestReport",
    "InvalidCallback",
    "MemoryStore",
    "MessageState",
    "Outcome",
    "ParsedCallback",
    "Policy",
    "PolicyMismatch",
    "PolicyRow",
    "Receipt",
    "RetryReport",
    "SQLiteStore",
    "SchemaMismatch",
    "Source",
    "Status",
    "StatusEvent",
    "Store",
    "StoreUnavailable",
    "Summary",
    "Tie",
    "Tracker",
    "UnknownStatusCode",
    "implied_path",
    "is_allowed",
    "open_store",
    "parse_callback",
    "read_callback",
    "reconcile",
    "step",
]


def __getattr__(name: str) -> object:
    """``deliverystate.PostgresStore`` without importing psycopg until it is used."""
    if name == "PostgresStore":
        from .postgres import PostgresStore  # noqa: PLC0415 - psycopg is an optional extra

        return PostgresStore
    raise AttributeError(f"module 'deliverystate' has no attribute {name!r}")
