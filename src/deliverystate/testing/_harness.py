"""What every part of the store contract shares: the store under test and small helpers.

The contract is a pytest base class in parts (reconciliation, history,
intake, inbox, retention, the change feed, deadlines, threads), each a mixin
of :class:`ContractBase`, put together by ``StoreContract``.  pytest builds
a new instance of the test class for every test, so ``self.store`` is a store
of that test alone; an autouse fixture opens it before the test and closes it,
and every other handle the test opened, after.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from hypothesis import HealthCheck, settings

from ..rules._catalog import Status
from ..rules._events import StatusEvent
from ..rules._policy import DELIVERY_WINS, Policy
from ..stores import MemoryStore, Store
from ..tracking._tracker import Tracker
from ._strategies import BASE_MS

__all__ = ["ContractBase", "Faulty", "added", "ev", "fresh", "reference"]


def ev(
    message_id: str,
    status: Status,
    offset_ms: int,
    channel: str | None = "sms",
    client_message_id: str | None = None,
) -> StatusEvent:
    """A report ``offset_ms`` after ``BASE_MS``."""
    return StatusEvent.from_ms(message_id, status, BASE_MS + offset_ms, channel, client_message_id)


def fresh(events: list[StatusEvent]) -> list[StatusEvent]:
    """The same reports about message ids no earlier example used, so examples share a store."""
    prefix = uuid.uuid4().hex[:8]
    return [
        StatusEvent.from_ms(
            f"{prefix}-{e.message_id}", e.status, e.timestamp_ms, e.channel, e.client_message_id
        )
        for e in events
    ]


def added(before: Mapping[Status, int], after: Mapping[Status, int]) -> dict[Status, int]:
    """What ``after`` counts more than ``before``, status by status (an example's own messages,
    in a store that earlier examples wrote to as well)."""
    moved = {status: after.get(status, 0) - before.get(status, 0) for status in {*before, *after}}
    return {status: n for status, n in moved.items() if n}


def reference(policy: Policy = DELIVERY_WINS) -> Tracker:
    """A tracker over a fresh memory store: the reference the store is compared with."""
    return Tracker(MemoryStore(), policy)


class Faulty:
    """The store under test, with some of its methods replaced (to make them fail).

    Everything not replaced is the store's own: the contract tests what the
    tracker does with a store that fails in one place without touching the
    store itself.
    """

    def __init__(self, store: Store, **replaced: Callable[..., Any]) -> None:
        self._store = store
        self._replaced = replaced

    def __getattr__(self, name: str) -> Any:
        if name in self._replaced:
            return self._replaced[name]
        return getattr(self._store, name)

    def tracker(self) -> Tracker:
        """A tracker over this store."""
        return Tracker(cast(Store, self))


class ContractBase:
    """The store under test, opened fresh for each test; subclasses say how (``make_store``)."""

    #: How many examples Hypothesis tries for each property of the contract (None: as many
    #: as the settings profile in force says, 100 unless a profile of yours says otherwise).
    max_examples: ClassVar[int | None] = None
    #: The pytest request of the running test (``make_store`` may ask it for fixtures).
    request: pytest.FixtureRequest
    #: A directory of the running test's own (``make_store`` may put a database file there).
    tmp_path: Path
    #: The store ``make_store`` opened for the running test.
    store: Store

    def make_store(self) -> Store:
        """A new, empty store; called once at the start of each test."""
        raise NotImplementedError(f"{type(self).__name__} must define make_store(self) -> Store")

    def reopen(self, store: Store) -> Store:
        """Another handle on the data ``store`` holds: a new connection to the same database.

        Threads and "a second process" use one each.  The default, ``store``
        itself, suits a store that lives in the process (and must then be
        safe to share between threads).
        """
        return store

    def refuse_rows_about(self, message_id: str) -> bool:
        """Make the store's database refuse every history row about ``message_id``.

        As a database refuses a row it cannot hold (a constraint, a value too
        big), with an error whose text holds "refused by the test"; for the
        contract's poison-body test.  False (the default): this store has no
        database that could, and the test is skipped, saying so.
        """
        return False

    def close_store(self, store: Store) -> None:
        """Close a handle at the end of a test: ``store.close()`` when it has one."""
        close = getattr(store, "close", None)
        if callable(close):
            close()

    @pytest.fixture(autouse=True)
    def _deliverystate_store(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> Iterator[None]:
        """Open the test's store before it and close every handle it opened after it."""
        self.request = request
        self.tmp_path = tmp_path
        self._handles: list[Store] = []
        self.store = self._keep(self.make_store())
        try:
            yield
        finally:
            for handle in reversed(self._handles):
                self.close_store(handle)

    def _keep(self, store: Store) -> Store:
        if all(store is not handle for handle in self._handles):
            self._handles.append(store)
        return store

    def open_again(self) -> Store:
        """A second handle on the test's store (``reopen``), closed after the test."""
        return self._keep(self.reopen(self.store))

    def tracker(self, policy: Policy = DELIVERY_WINS) -> Tracker:
        """A tracker over the test's store."""
        return Tracker(self.store, policy)

    def examples(self) -> settings:
        """Hypothesis settings for the contract's properties: ``max_examples``, no deadline.

        Built on the settings profile in force when the test runs, so a profile
        of yours (more examples in CI, derandomize, verbosity) applies.
        """
        current = settings()
        return settings(
            current,
            max_examples=current.max_examples if self.max_examples is None else self.max_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
