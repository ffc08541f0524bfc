"""In-process change hooks: callbacks a store calls after each commit with its changes.

A hook runs after the commit, in the thread that committed, with that
commit's changes in feed order.  Its exceptions are logged and swallowed:
the changes are committed whatever a hook does, and the next hook still runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from ..rules._events import Change

__all__ = ["ChangeHook", "Hooks"]

logger = logging.getLogger("deliverystate.stores")

#: A callable given each commit's changes.
ChangeHook = Callable[[Sequence[Change]], object]


class Hooks:
    """The change hooks of one store."""

    def __init__(self) -> None:
        self._hooks: list[ChangeHook] = []
        self._lock = threading.Lock()

    def add(self, hook: ChangeHook) -> Callable[[], None]:
        """Call ``hook`` after every commit that changes a status, from now on.

        Returns a function that removes the hook again.
        """
        with self._lock:
            self._hooks = [*self._hooks, hook]

        def remove() -> None:
            with self._lock:
                self._hooks = [h for h in self._hooks if h is not hook]

        return remove

    def __bool__(self) -> bool:
        """Whether any hook is registered (if not, no Change objects need building)."""
        return bool(self._hooks)

    def call(self, changes: Sequence[Change]) -> None:
        """Hand ``changes`` to every hook; an exception is logged, never raised."""
        if not changes:
            return
        for hook in self._hooks:
            try:
                hook(changes)
            except Exception:
                logger.exception("a change hook failed; the changes stay committed")
