"""``StoreContract``: the suite every store passes, as a pytest base class.

The project's own stores (memory, SQLite, PostgreSQL) run exactly this suite;
a store of yours runs it by subclassing, in a test module pytest collects::

    class TestMyStore(StoreContract):
        def make_store(self) -> Store:
            return MyStore(self.tmp_path / "state.db")

See :class:`StoreContract` for what it checks and how to shape it.
"""

from __future__ import annotations

from ._contract_deadlines import DeadlineContract
from ._contract_feed import FeedContract
from ._contract_history import HistoryContract
from ._contract_inbox import InboxContract
from ._contract_intake import IntakeContract
from ._contract_reconcile import ReconcileContract
from ._contract_retention import RetentionContract
from ._contract_threads import ConcurrencyContract

__all__ = ["StoreContract"]


class StoreContract(
    ReconcileContract,
    HistoryContract,
    IntakeContract,
    InboxContract,
    RetentionContract,
    FeedContract,
    DeadlineContract,
    ConcurrencyContract,
):
    """What a ``Store`` must do, as tests: subclass it, define ``make_store``, run pytest.

    The suite: reconciliation (every outcome of docs/design.md section 3,
    and the memory store's decisions for any stream, under both built-in
    policies, in any order and batching), history and the message list,
    the dead letter (every body the parser refuses, verbatim), the inbox and
    poison bodies, retention (prune with an archive, replay), the change feed
    (changes, cursors, hooks, trimming, undeliverable changes), deadlines
    (registrations, overdue pages, sweeps) and workers in threads.

    ``make_store(self)`` returns a new, empty store; it is called at the
    start of every test.  ``self.tmp_path`` is a directory of the test's own
    and ``self.request`` its pytest request (``self.request.getfixturevalue``
    reaches any fixture, a database server's say).  Override
    ``reopen(self, store)`` to return a second handle on the same data (a new
    connection) if your store can have several: the reopening and thread tests
    use it, and without it they share the one handle between threads.
    ``close_store(self, store)`` closes each handle after the test (default:
    ``store.close()`` when there is one).  ``max_examples`` sets how many
    examples Hypothesis tries per property (default: the settings profile's).
    """
