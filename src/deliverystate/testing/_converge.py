"""``assert_converges``: reports in any order, repeated, split across workers, give one answer.

Theory of operation
-------------------
The reference is one tracker over a fresh store given the reports one by one
in the order they are listed.  Each *delivery* is another way the same
reports can reach a system: a fresh store, two trackers over it (two workers
behind one load balancer), and a plan of steps, each handing one tracker a
batch (a batch of one goes through ``apply``, longer ones through
``apply_many``).  After every delivery, for every message the reports are
about, the state must equal the reference's, and the history must hold the
reports the reference's history holds, each as many times (a report is its
status, timestamp and origin; a store keeping history keeps each once, one
keeping none keeps none).

With ``exhaustive_up_to`` reports or fewer, every ordering is tried, each in
three deliveries: one report at a time alternating between the workers; every
report twice, the second copies in reverse order on the other worker (a
retried callback lands on the other worker, late); and two batches, one per
worker, cut in the middle, then the whole ordering again as one batch (a
redelivered batch).  Beyond that many reports, ``samples`` deliveries are
drawn from a seeded ``random.Random``: an ordering, each report repeated with
probability 1/4 at a random later place, cut into batches of one to four,
each batch to a worker chosen at random.  The same ``seed`` always tries the
same deliveries.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence

from ..rules._events import StatusEvent
from ..stores import MemoryStore, Store
from ..tracking._tracker import Tracker

__all__ = ["Delivery", "assert_converges", "deliveries"]

#: One step of a delivery: which tracker (0 or 1) receives which batch of reports.
Step = tuple[int, tuple[StatusEvent, ...]]
#: A way the reports reach the two trackers: steps in order.
Delivery = tuple[Step, ...]


def _alternating(order: Sequence[StatusEvent]) -> Delivery:
    return tuple((index % 2, (event,)) for index, event in enumerate(order))


def _retried(order: Sequence[StatusEvent]) -> Delivery:
    again = [(1 - index % 2, (event,)) for index, event in enumerate(order)]
    return _alternating(order) + tuple(reversed(again))


def _batched(order: Sequence[StatusEvent]) -> Delivery:
    half = len(order) // 2
    steps = [(0, tuple(order[:half])), (1, tuple(order[half:])), (0, tuple(order))]
    return tuple(step for step in steps if step[1])


def _sampled(events: Sequence[StatusEvent], rng: random.Random) -> Delivery:
    order = list(events)
    rng.shuffle(order)
    for event in list(order):
        if rng.random() < 0.25:
            later = order.index(event) + 1
            order.insert(rng.randint(later, len(order)), event)
    steps: list[Step] = []
    start = 0
    while start < len(order):
        size = rng.randint(1, 4)
        steps.append((rng.randint(0, 1), tuple(order[start : start + size])))
        start += size
    return tuple(steps)


def deliveries(
    events: Sequence[StatusEvent], exhaustive_up_to: int = 5, samples: int = 200, seed: int = 0
) -> Iterator[Delivery]:
    """The deliveries :func:`assert_converges` tries for ``events`` (see the module docstring)."""
    if len(events) <= exhaustive_up_to:
        seen: set[tuple[StatusEvent, ...]] = set()
        for order in itertools.permutations(events):
            if order in seen:  # repeated reports: the same ordering twice
                continue
            seen.add(order)
            yield _alternating(order)
            yield _retried(order)
            yield _batched(order)
        return
    rng = random.Random(seed)
    for _ in range(samples):
        yield _sampled(events, rng)


def _show(event: StatusEvent) -> str:
    local = " (local)" if event.origin.value == "local" else ""
    return (
        f"{event.message_id} {event.status.name}@{event.timestamp_ms} {event.channel or '-'}{local}"
    )


def _describe(delivery: Delivery) -> str:
    return "\n".join(
        f"  tracker {'AB'[worker]}: {'apply' if len(batch) == 1 else 'apply_many'}"
        f"([{', '.join(_show(e) for e in batch)}])"
        for worker, batch in delivery
    )


def _reports(tracker: Tracker, message_id: str) -> list[tuple[object, ...]]:
    """The reports a message's history holds, as sortable (status, time, origin) triples."""
    found = [
        (h.event.status, h.event.timestamp_ms, h.event.origin) for h in tracker.history(message_id)
    ]
    return sorted(found, key=repr)


def _problems(tracker: Tracker, reference: Tracker, ids: Sequence[str]) -> list[str]:
    """What differs between ``tracker`` and the reference, one line per message and kind."""
    problems = []
    for message_id in ids:
        got, want = tracker.get(message_id), reference.get(message_id)
        if got != want:
            problems.append(f"  {message_id}: got {got!r}, one tracker in order gave {want!r}")
        kept, expected = _reports(tracker, message_id), _reports(reference, message_id)
        if kept != expected:
            problems.append(
                f"  {message_id}: history holds {len(kept)} reports ({len(set(kept))} "
                f"distinct); one tracker in order kept {len(expected)}"
            )
    return problems


def _check_agreement(events: Sequence[StatusEvent]) -> None:
    """Refuse reports that contradict each other about a message's channel or client id.

    The first of two such reports fixes the message's channel (or client id)
    and the other is rejected (or ignored there): which one comes first then
    decides the state, and no delivery-independence can hold.
    """
    known: dict[tuple[str, str], str] = {}
    for event in events:
        for what, value in (("channel", event.channel), ("client id", event.client_message_id)):
            if value is None:
                continue
            first = known.setdefault((event.message_id, what), value)
            if first != value:
                raise ValueError(
                    f"reports about {event.message_id!r} name two {what}s ({first!r} and "
                    f"{value!r}): the first one seen would win, so the order matters; "
                    "pass reports that agree (as streams() and histories() draw them)"
                )


def assert_converges(
    events: Iterable[StatusEvent],
    make_tracker: Callable[[Store], Tracker] = Tracker,
    *,
    make_store: Callable[[], Store] = MemoryStore,
    exhaustive_up_to: int = 5,
    samples: int = 200,
    seed: int = 0,
) -> int:
    """Assert that every delivery of ``events`` ends where one tracker given them in order does.

    ``make_tracker`` builds a tracker over a store (your policy, windows or
    subclass; default ``Tracker``), ``make_store`` a fresh, empty store for
    each delivery (default ``MemoryStore``); two trackers built over one store
    are the two workers.  See the module docstring for the deliveries tried:
    every ordering up to ``exhaustive_up_to`` reports (three deliveries each),
    else ``samples`` deliveries drawn with ``seed``.  Raises
    ``AssertionError`` naming the first delivery that disagrees, step by step,
    and what differs; returns how many deliveries were tried.
    """
    events = list(events)
    _check_agreement(events)
    reference = make_tracker(make_store())
    for event in events:
        reference.apply(event)
    ids = sorted({e.message_id for e in events})
    tried = 0
    for delivery in deliveries(events, exhaustive_up_to, samples, seed):
        store = make_store()
        workers = (make_tracker(store), make_tracker(store))
        for worker, batch in delivery:
            if len(batch) == 1:
                workers[worker].apply(batch[0])
            else:
                workers[worker].apply_many(batch)
        tried += 1
        problems = _problems(workers[0], reference, ids)
        if problems:
            raise AssertionError(
                f"delivery {tried} of the reports disagrees with one tracker given them in "
                f"order:\n" + "\n".join(problems) + "\nthe delivery:\n" + _describe(delivery)
            )
    return tried
