"""``deliverystate.testing``: property-test code built on deliverystate, and stores of your own.

Install with the ``testing`` extra (``pip install 'deliverystate[testing]'``),
which brings Hypothesis and pytest; importing ``deliverystate`` itself never
imports them.

* Strategies (Hypothesis): :func:`statuses`, :func:`events`,
  :func:`histories` (one message's reports as a realistic lifecycle, then
  duplicated, reordered, with late and conflicting failures),
  :func:`streams` (many messages, both channels), :func:`instants_ms`;
  :func:`callback_bodies` and :func:`callbacks` (bodies Clickatell could
  send, as bytes, text, a mapping or query parameters, with the events they
  mean), :func:`invalid_callback_bodies` and :func:`invalid_callbacks`
  (bodies ``parse_callback`` must refuse, with the field it names).
* :func:`assert_converges`: reports in any order, repeated, split across
  two trackers sharing a store, reach the states of one tracker.
* :class:`StoreContract`: the suite every store passes, as a pytest base
  class: subclass it and define ``make_store``.

The pytest plugin (``deliverystate.pytest_plugin``, registered when the
package is installed) adds the fixtures ``tracker``, ``sqlite_tracker`` and
``postgres_tracker``, and for ``@given`` tests ``make_tracker`` (``with
make_tracker("sqlite") as tracker:``, a fresh store per example).
"""

from __future__ import annotations

from ._bodies import ENCODINGS, FORMATS, Callback, callback_bodies, callbacks
from ._contract import StoreContract
from ._converge import assert_converges
from ._invalid import invalid_callback_bodies, invalid_callbacks
from ._strategies import (
    ANY,
    BASE_MS,
    ProviderCallback,
    events,
    histories,
    instants_ms,
    provider_callbacks,
    statuses,
    streams,
)

__all__ = [
    "ANY",
    "BASE_MS",
    "ENCODINGS",
    "FORMATS",
    "Callback",
    "ProviderCallback",
    "StoreContract",
    "assert_converges",
    "callback_bodies",
    "callbacks",
    "events",
    "histories",
    "instants_ms",
    "invalid_callback_bodies",
    "invalid_callbacks",
    "provider_callbacks",
    "statuses",
    "streams",
]
