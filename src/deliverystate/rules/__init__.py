"""The rules, as data: status catalog, lifecycle, precedence policies, reconciliation, time.

Everything here is pure: no store, no I/O, no optional dependency.  The
catalog (``_catalog``) is Clickatell's status codes; the lifecycle
(``_lifecycle``) says which transitions a backend may make; a policy
(``_policy``) says which of two reports about a message wins; ``_reconcile``
applies one report to a state and says what it did.  The records that flow
through the engine (``_events``) and what stores hand back (``_records``)
live here so that every layer above can use them without loading a store, and
``_time`` is the one place times are converted and spelt.
"""

from __future__ import annotations

from ._catalog import CHANNELS, FAILURES, Category, Kind, Origin, Source, Status
from ._events import Change, MessageState, StatusEvent
from ._lifecycle import implied_path, is_allowed, step
from ._policy import DELIVERY_WINS, FAILURE_WINS, Policy, PolicyRow, Tie
from ._reconcile import Decision, Outcome, reconcile

__all__ = [
    "CHANNELS",
    "DELIVERY_WINS",
    "FAILURES",
    "FAILURE_WINS",
    "Category",
    "Change",
    "Decision",
    "Kind",
    "MessageState",
    "Origin",
    "Outcome",
    "Policy",
    "PolicyRow",
    "Source",
    "Status",
    "StatusEvent",
    "Tie",
    "implied_path",
    "is_allowed",
    "reconcile",
    "step",
]
