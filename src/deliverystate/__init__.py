"""deliverystate: the delivery state of Clickatell messages, reconciled from callbacks.

Every message is a state machine over Clickatell's One API status codes.  The
lifecycle says which transitions a backend may make; a precedence policy
decides what out-of-order, duplicated or conflicting callbacks mean, so that
every process that sees the same callbacks reaches the same answer.

This module's ``__all__`` is what a program embedding the engine needs: a
:class:`Tracker` over a store, the records it hands back, and the errors worth
catching.  The rest lives in its sub-package, each with an ``__all__`` of its
own (``docs/design.md`` section 5 maps the tree):

* ``deliverystate.rules``: catalog, lifecycle, policies, reconciliation;
* ``deliverystate.callbacks``: parsing callback bodies;
* ``deliverystate.tracking``: the tracker, receipts, sends, replay, stats;
* ``deliverystate.stores``: the store protocol, the stores and their records;
* ``deliverystate.errors``, ``deliverystate.diagrams``, ``deliverystate.simulate``;
* the optional extras ``deliverystate.postgres``, ``deliverystate.web``,
  ``deliverystate.forward``, ``deliverystate.cli`` and ``deliverystate.testing``
  (``deliverystate.pytest_plugin`` gives pytest its fixtures).

Names are imported when first used, so that ``import deliverystate.rules``
(pure rules, for a parser or a property test) loads no store and no SQLite.
Modules and packages whose names start with an underscore are the
implementation and may change.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .callbacks import parse_callback
    from .errors import DeliveryStateError, InvalidCallback, StoreUnavailable
    from .rules import Change, Decision, MessageState, Outcome, Policy, Status, StatusEvent
    from .stores import MemoryStore, SQLiteStore, Store, open_store
    from .stores._postgres import PostgresStore as PostgresStore
    from .tracking import Receipt, Send, Tracker

__all__ = [
    "Change",
    "Decision",
    "DeliveryStateError",
    "InvalidCallback",
    "MemoryStore",
    "MessageState",
    "Outcome",
    "Policy",
    "Receipt",
    "SQLiteStore",
    "Send",
    "Status",
    "StatusEvent",
    "Store",
    "StoreUnavailable",
    "Tracker",
    "open_store",
    "parse_callback",
]

#: Where each name of ``__all__`` lives (and ``PostgresStore``, not in ``__all__``
#: because a star import must not need psycopg).
_HOMES = {
    "Change": "rules",
    "Decision": "rules",
    "DeliveryStateError": "errors",
    "InvalidCallback": "errors",
    "MemoryStore": "stores",
    "MessageState": "rules",
    "Outcome": "rules",
    "Policy": "rules",
    "PostgresStore": "stores._postgres",
    "Receipt": "tracking",
    "SQLiteStore": "stores",
    "Send": "tracking",
    "Status": "rules",
    "StatusEvent": "rules",
    "Store": "stores",
    "StoreUnavailable": "errors",
    "Tracker": "tracking",
    "open_store": "stores",
    "parse_callback": "callbacks",
}
#: Names this module exported before the curated top level (0.x), and their homes now:
#: still found here, with a DeprecationWarning that says where to import them from.
_MOVED = {
    **dict.fromkeys(
        [
            "CHANNELS",
            "DELIVERY_WINS",
            "FAILURES",
            "FAILURE_WINS",
            "Category",
            "Kind",
            "Origin",
            "PolicyRow",
            "Source",
            "Tie",
            "implied_path",
            "is_allowed",
            "reconcile",
            "step",
        ],
        "rules",
    ),
    **dict.fromkeys(
        ["LEGACY_STATUS", "PLATFORM_NAMES", "ParsedBatch", "ParsedCallback"], "callbacks"
    ),
    **dict.fromkeys(["read_callback", "read_many"], "callbacks"),
    **dict.fromkeys(
        [
            "DEFAULT_WINDOWS",
            "DeliveryStats",
            "IngestReport",
            "Latency",
            "RetryReport",
            "delivery_stats",
        ],
        "tracking",
    ),
    **dict.fromkeys(["DeadLetter", "HistoryEntry", "Summary", "Undeliverable"], "stores"),
    **dict.fromkeys(
        [
            "CursorMovedBack",
            "IllegalTransition",
            "InvalidParameter",
            "NoDatabase",
            "PolicyMismatch",
            "SchemaMismatch",
            "UnknownStatusCode",
        ],
        "errors",
    ),
}


def __getattr__(name: str) -> object:
    """Import a top-level name from its home on first use (PEP 562).

    A name that moved to a sub-package is still found, with a
    ``DeprecationWarning`` naming the import to use instead.
    """
    home = _HOMES.get(name)
    if home is None:
        home = _MOVED.get(name)
        if home is None:
            raise AttributeError(f"module 'deliverystate' has no attribute {name!r}")
        warnings.warn(
            f"deliverystate.{name} moved: import it from deliverystate.{home}",
            DeprecationWarning,
            stacklevel=2,
        )
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    if name in _HOMES:
        globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The curated names, as a star import and an editor's completion see them."""
    return sorted([*__all__, *(k for k in globals() if k.startswith("__"))])
