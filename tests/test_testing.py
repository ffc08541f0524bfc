"""Tests for deliverystate.testing: strategies, callback bodies, assert_converges, the contract.

The store contract's own tests run on the project's stores in tests/test_store.py;
here it is run the way a user runs it, on a store of theirs, in a pytest of its own.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from deliverystate import (
    Decision,
    InvalidCallback,
    MemoryStore,
    Outcome,
    Policy,
    Status,
    StatusEvent,
    Store,
    Tracker,
    parse_callback,
)
from deliverystate.callbacks import PLATFORM_NAMES, read_callback
from deliverystate.rules import CHANNELS
from deliverystate.stores import Summary
from deliverystate.testing import (
    ANY,
    BASE_MS,
    ENCODINGS,
    FORMATS,
    Callback,
    ProviderCallback,
    StoreContract,
    assert_converges,
    callback_bodies,
    callbacks,
    events,
    histories,
    invalid_callback_bodies,
    invalid_callbacks,
    provider_callbacks,
    statuses,
    streams,
)
from deliverystate.testing._converge import deliveries

from .runs import run_pytest

S = Status
MANY = settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])


def channels_named(reports: Iterable[StatusEvent]) -> set[str]:
    """The channels the reports name (those that name one)."""
    return {e.channel for e in reports if e.channel is not None}


# --- the extra's boundary ----------------------------------------------------------------


def test_importing_deliverystate_imports_neither_hypothesis_nor_pytest() -> None:
    """The core and its other public modules stay free of the testing extra's packages."""
    code = (
        "import sys, deliverystate, deliverystate.stores, deliverystate.simulate, "
        "deliverystate.diagrams, deliverystate.errors\n"
        "found = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'hypothesis', 'pytest', '_pytest'})\n"
        "print(found)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- strategies of reports ---------------------------------------------------------------


@given(st.data())
def test_statuses_are_those_the_channel_allows(data: st.DataObject) -> None:
    """statuses(channel) draws only statuses the catalog allows on that channel."""
    channel = data.draw(st.sampled_from([None, *CHANNELS]))
    assert data.draw(statuses(channel)).allowed_on(channel)


def test_statuses_reach_every_status_of_the_channel() -> None:
    """Each channel's own statuses are drawn: SMS routing errors, WhatsApp's codes, READ."""
    assert reaches(statuses("sms"), lambda s: s is S.ROUTING_ERROR) is S.ROUTING_ERROR
    assert reaches(statuses("whatsapp"), lambda s: s is S.WHATSAPP_HSM_NOT_AVAILABLE)
    assert reaches(statuses(), lambda s: s is S.READ) is S.READ


@given(
    st.sampled_from(["sms", "whatsapp", None]).flatmap(
        lambda c: st.tuples(st.just(c), events(["a", "b"], c))
    )
)
def test_events_keep_to_their_ids_channel_and_window(drawn: tuple[str | None, StatusEvent]) -> None:
    """events(ids, channel): those ids, that channel or none, a status it allows, near BASE_MS."""
    channel, event = drawn
    assert event.message_id in {"a", "b"}
    assert event.channel in {channel, None}
    assert event.status.allowed_on(channel)
    assert BASE_MS <= event.timestamp_ms <= BASE_MS + 60_000
    assert event.client_message_id in {None, f"client-{event.message_id}"}


def test_events_on_any_channel_may_contradict_each_other() -> None:
    """With ANY, two reports about one message can name two channels (the store rejects one)."""
    pair = reaches(
        st.lists(events(["m"], ANY), min_size=2, max_size=2),
        lambda two: len(channels_named(two)) == 2,
    )
    assert channels_named(pair) == set(CHANNELS)


def test_events_meet_on_the_same_instant() -> None:
    """Drawn times are few, so two reports about a message often tie."""
    pair = reaches(
        st.lists(events(["m"], "sms"), min_size=2, max_size=2),
        lambda two: two[0].timestamp_ms == two[1].timestamp_ms and two[0].status != two[1].status,
    )
    assert pair[0].timestamp_ms == pair[1].timestamp_ms


@given(histories())
def test_a_history_is_one_message_agreeing_about_its_channel(history: list[StatusEvent]) -> None:
    """A history is about one message, names at most one channel, and always has QUEUED."""
    assert len({e.message_id for e in history}) == 1
    named = channels_named(history)
    assert len(named) <= 1
    channel = next(iter(named), None)
    assert all(e.status.allowed_on(channel) for e in history)
    assert S.QUEUED in {e.status for e in history}
    assert len({e.client_message_id for e in history} - {None}) <= 1


class Found(Exception):
    """Carries the first example that met a condition out of a search."""


def reaches(strategy: st.SearchStrategy[Any], condition: Any) -> Any:
    """The first of up to 3,000 examples of ``strategy`` meeting ``condition``; fails without one.

    Unlike ``hypothesis.find`` it does not shrink what it found: only whether
    the strategy draws such a value matters here, and shrinking costs seconds.
    """

    @settings(
        max_examples=3000,
        phases=[Phase.generate],
        derandomize=True,  # the same examples every run: a search that passes keeps passing
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def search(value: Any) -> None:
        if condition(value):
            raise Found(value)

    with pytest.raises(Found) as found:
        search()
    return found.value.args[0]


def test_histories_hold_the_mess_of_the_wire() -> None:
    """Repeats, reordering, failures after a delivery, conflicting failures, READ: all occur."""

    def first(history: list[StatusEvent], status: Status) -> int:
        return min(e.timestamp_ms for e in history if e.status is status)

    reaches(histories(), lambda h: len(h) != len(set(h)))  # a report sent twice
    reaches(histories(), lambda h: [e.timestamp_ms for e in h] != sorted(e.timestamp_ms for e in h))
    reaches(
        histories(),
        lambda h: (
            S.DEVICE_ACK in {e.status for e in h}
            and any(e.status.is_failure and e.timestamp_ms > first(h, S.DEVICE_ACK) for e in h)
        ),
    )
    reaches(histories(), lambda h: len({e.status for e in h if e.status.is_failure}) >= 2)
    read = reaches(histories(channel="whatsapp"), lambda h: S.READ in {e.status for e in h})
    assert channels_named(read) <= {"whatsapp"}
    reaches(histories(), lambda h: S.SCHEDULED in {e.status for e in h})


@given(streams(min_messages=2, max_messages=5))
def test_streams_are_several_histories_interleaved(stream: list[StatusEvent]) -> None:
    """A stream is about msg-0 .. msg-(n-1), each message agreeing about its channel."""
    ids = {e.message_id for e in stream}
    assert 2 <= len(ids) <= 5
    assert ids == {f"msg-{i}" for i in range(len(ids))}
    for message_id in ids:
        assert len(channels_named(e for e in stream if e.message_id == message_id)) <= 1


def test_streams_mix_both_channels_and_interleave() -> None:
    """A stream can hold an SMS and a WhatsApp message whose reports arrive interleaved."""
    stream = reaches(
        streams(min_messages=2),
        lambda s: (
            channels_named(s) == set(CHANNELS)
            and any(a.message_id != b.message_id for a, b in itertools.pairwise(s))
            and s[0].message_id == s[-1].message_id
        ),
    )
    assert channels_named(stream) == set(CHANNELS)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: statuses("rcs"), "channel must be one of"),
        (lambda: events(channel="fax"), "channel must be one of"),
        (lambda: events(message_ids=[]), "non-empty sequence"),
        (lambda: events(message_ids="msg-0"), "non-empty sequence"),
        (lambda: streams(3, 2), "min_messages <= max_messages"),
        (lambda: callback_bodies("json"), "format must be one of"),
        (lambda: callbacks("one api"), "format must be one of"),
    ],
)
def test_bad_arguments_are_refused_at_once(make: Any, words: str) -> None:
    """A strategy given an argument it cannot honour says so when it is made, not when drawn."""
    with pytest.raises(ValueError, match=words):
        make()


# --- callback bodies ---------------------------------------------------------------------


@MANY
@given(callback_bodies())
def test_callback_bodies_drawn_500_times_all_parse(body: Any) -> None:
    """Every body callback_bodies() draws is a callback parse_callback accepts, with events."""
    assert parse_callback(body)


@MANY
@given(callbacks())
def test_each_callback_parses_to_the_events_it_was_made_from(callback: Callback) -> None:
    """The events, the ignored events and the format a body means are what the parser reads."""
    parsed = read_callback(callback.body)
    assert parsed.events == callback.events
    assert parsed.ignored == callback.ignored
    assert parsed.format == callback.format
    assert callback.field is None


@pytest.mark.parametrize(
    ("fmt", "encoding"),
    [(f, e) for f in FORMATS for e in ENCODINGS if (f, e) != ("one_api", "query")],
)
def test_every_format_comes_in_every_encoding_it_has(fmt: str, encoding: str) -> None:
    """One API as bytes, text or a mapping; Platform and legacy as those or query parameters."""
    callback = reaches(callbacks(fmt), lambda c: c.encoding == encoding)
    expected = {"bytes": bytes, "str": str, "mapping": dict, "query": dict}[encoding]
    assert isinstance(callback.body, expected)
    if encoding == "query":  # one string per field, as the receiver hands a query string over
        assert all(isinstance(v, str) for v in callback.body.values())


@given(callbacks("one_api"))
def test_one_api_bodies_are_never_query_strings(callback: Callback) -> None:
    """A One API body is nested JSON: it is never drawn as query parameters."""
    assert callback.encoding != "query"
    assert callback.format == "one_api"


def test_bodies_take_the_liberties_real_traffic_takes() -> None:
    """Batches, a channel left out or spelled loosely, a moText alongside, One API names."""
    reaches(callbacks("one_api"), lambda c: len(c.events) >= 3)
    reaches(callbacks("one_api"), lambda c: any(e.channel is None for e in c.events))
    reaches(callbacks("one_api"), lambda c: c.ignored == ("moText",))
    reaches(callbacks("one_api"), lambda c: c.encoding == "str" and '" Sms "' in c.body)
    one_api_names = set(Status.__members__) - set(PLATFORM_NAMES)  # One API numbering, then
    reaches(
        callbacks("platform"),
        lambda c: c.encoding == "mapping" and c.body.get("status") in one_api_names,
    )


@MANY
@given(invalid_callback_bodies())
def test_invalid_bodies_drawn_500_times_raise_only_invalid_callback_and_are_kept(body: Any) -> None:
    """Each is refused with InvalidCallback only, and Tracker.ingest keeps it with its error."""
    tracker = Tracker()
    with pytest.raises(InvalidCallback) as refused:
        tracker.ingest(body)
    (letter,) = tracker.dead_letters()
    assert letter.error == str(refused.value)
    if isinstance(body, str):
        assert letter.payload == body
    elif isinstance(body, bytes):
        assert letter.payload == body.decode("utf-8", errors="backslashreplace")


@MANY
@given(invalid_callbacks())
def test_each_invalid_body_s_refusal_names_the_field_that_was_broken(callback: Callback) -> None:
    """The field the strategy broke is the field the refusal names."""
    with pytest.raises(InvalidCallback) as refused:
        parse_callback(callback.body)
    assert refused.value.field == callback.field
    assert callback.events == ()


def test_invalid_bodies_break_each_format_in_many_ways() -> None:
    """Refusals name many fields of every format, and whole bodies that are no callback at all."""
    seen: Counter[tuple[str, str]] = Counter()

    @settings(
        max_examples=1500,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(invalid_callbacks())
    def count(callback: Callback) -> None:
        field = (callback.field or "").split(".")[-1].split("[")[0]
        seen[callback.format, field] += 1

    count()
    for fmt in FORMATS:
        assert seen[fmt, "body"] > 0
    assert {f for fmt, f in seen if fmt == "one_api"} >= {
        "statusCode",
        "status",
        "messageId",
        "clientMessageId",
        "timestamp",
        "channel",
        "messageStatusUpdate",
        "event",
    }
    assert {f for fmt, f in seen if fmt == "platform"} >= {
        "statusCode",
        "status",
        "messageId",
        "timestamp",
    }
    assert {f for fmt, f in seen if fmt == "legacy"} >= {
        "status",
        "apiMsgId",
        "cliMsgId",
        "timestamp",
    }


# --- assert_converges --------------------------------------------------------------------


def orderings(events: list[StatusEvent]) -> int:
    """How many distinct orderings a list has (repeated reports are alike)."""
    counts = Counter(events).values()
    return math.factorial(len(events)) // math.prod(math.factorial(c) for c in counts)


@settings(max_examples=60, deadline=None)
@given(histories(max_strays=1).map(lambda h: h[:5]))
def test_assert_converges_tries_three_deliveries_of_every_ordering_of_a_short_history(
    history: list[StatusEvent],
) -> None:
    """Up to five reports: each distinct ordering delivered three ways, and the tracker agrees."""
    assert assert_converges(history, exhaustive_up_to=5) == 3 * orderings(history)


def test_every_ordering_of_three_reports_is_delivered_alone_retried_and_batched() -> None:
    """Three reports: six orderings, each alternating, retried on the other worker, and batched."""
    reports = [
        StatusEvent.from_ms("m", s, BASE_MS + i, "sms")
        for i, s in enumerate([S.QUEUED, S.DEVICE_ACK, S.EXPIRED])
    ]
    tried = list(deliveries(reports, exhaustive_up_to=3))
    assert len(tried) == 18
    alternating = [d for d in tried if all(len(batch) == 1 for _, batch in d) and len(d) == 3]
    assert {tuple(batch[0] for _, batch in d) for d in alternating} == set(
        itertools.permutations(reports)
    )
    assert all({worker for worker, _ in d} == {0, 1} for d in tried)
    for delivery in tried:
        sent = Counter(e for _, batch in delivery for e in batch)
        assert set(sent) == set(reports)


def test_longer_inputs_are_sampled_with_a_seed() -> None:
    """Beyond the limit, ``samples`` deliveries drawn from the seed: the same seed, the same."""
    reports = [StatusEvent.from_ms(f"m{i % 3}", S.QUEUED, BASE_MS + i, "sms") for i in range(9)]
    first = list(deliveries(reports, exhaustive_up_to=5, samples=30, seed=4))
    assert len(first) == 30
    assert first == list(deliveries(reports, exhaustive_up_to=5, samples=30, seed=4))
    assert first != list(deliveries(reports, exhaustive_up_to=5, samples=30, seed=5))
    assert all(Counter(e for _, b in d for e in b).keys() == set(reports) for d in first)
    assert any(max(Counter(e for _, b in d for e in b).values()) > 1 for d in first)
    assert assert_converges(reports, exhaustive_up_to=5, samples=30) == 30


class FirstReportWins(Tracker):
    """A shortcut users take: ignore reports about a message already known."""

    def apply(self, event: StatusEvent) -> Decision:
        """Apply a report about a new message only."""
        state = self.get(event.message_id)
        if state is not None:
            return Decision(Outcome.STALE, state, event)
        return super().apply(event)

    def apply_many(self, events: Iterable[StatusEvent]) -> Summary:
        """Apply each report as :meth:`apply` does."""
        decisions = [self.apply(event) for event in events]
        return Summary(applied=sum(d.outcome is Outcome.APPLIED for d in decisions))


def test_assert_converges_names_the_delivery_that_disagrees() -> None:
    """A tracker whose result depends on the order fails, naming the message and the delivery."""
    reports = [
        StatusEvent.from_ms("m", S.QUEUED, BASE_MS, "sms"),
        StatusEvent.from_ms("m", S.DEVICE_ACK, BASE_MS + 5, "sms"),
    ]
    with pytest.raises(AssertionError) as failed:
        assert_converges(reports, FirstReportWins)
    message = str(failed.value)
    assert "m: got MessageState" in message
    assert "tracker A: apply([m QUEUED" in message or "tracker A: apply([m DEVICE_ACK" in message


class ForgetsBatches(MemoryStore):
    """A store that writes a batch's states but loses its history."""

    def apply_many(self, events: Iterable[StatusEvent], policy: Policy) -> Summary:
        """Apply, then forget the history of the messages the batch was about."""
        events = list(events)
        summary = super().apply_many(events, policy)
        for event in events:
            self._history.pop(event.message_id, None)
        return summary


def test_assert_converges_checks_history_when_the_store_keeps_it() -> None:
    """A store that loses the history of batches fails on the history, not on the states."""
    reports = [
        StatusEvent.from_ms("m", S.QUEUED, BASE_MS, "sms"),
        StatusEvent.from_ms("m", S.READ, BASE_MS + 5, "sms"),
    ]
    with pytest.raises(AssertionError, match="m: history holds 0 reports"):
        assert_converges(reports, make_store=ForgetsBatches)


def test_assert_converges_refuses_reports_that_disagree_about_the_channel() -> None:
    """Reports naming two channels for a message cannot converge: refused, saying why."""
    reports = [
        StatusEvent.from_ms("m", S.QUEUED, BASE_MS, "sms"),
        StatusEvent.from_ms("m", S.READ, BASE_MS, "whatsapp"),
    ]
    with pytest.raises(ValueError, match="two channels"):
        assert_converges(reports)


# --- the store contract, run as a user runs it -------------------------------------------

CONTRACT_FILE = '''
from hypothesis import Phase, settings

from deliverystate import MemoryStore, Policy, Status, Tie
from deliverystate.testing import StoreContract

# no shrinking: the failures are what this file is about, not their smallest examples
settings.register_profile("quick", phases=[Phase.explicit, Phase.generate])
settings.load_profile("quick")


class Wrapped:
    """A store of one's own: the memory store behind a class of its own."""

    def __init__(self):
        self._inner = MemoryStore()

    def __getattr__(self, name):
        return getattr(self._inner, name)


class ForgetsHistory(Wrapped):
    def history(self, message_id):
        return []


LAST_REPORT_WINS = Policy.from_table("last report wins", [(0, list(Status), Tie.LATEST)])


class AppliesStaleReports(Wrapped):
    """Compares reports by their time alone: a late, outranked report still wins."""

    def __getattr__(self, name):
        found = getattr(self._inner, name)
        if name in {"apply", "apply_many", "advance", "register_many", "settle"}:
            return lambda first, policy: found(first, LAST_REPORT_WINS)
        return found


class TestMyStore(StoreContract):
    max_examples = 8

    def make_store(self):
        return STORE()
'''


def run_contract(tmp_path: Path, store: str) -> subprocess.CompletedProcess[str]:
    """Write the contract file for ``store`` and run pytest on it in a process of its own."""
    path = tmp_path / store / "test_my_store.py"
    path.parent.mkdir()
    path.write_text(CONTRACT_FILE + f"\nSTORE = {store}\n", encoding="utf-8")
    return run_pytest(path, "-rfEs")


def contract_size() -> int:
    """How many tests the contract has (its one parametrized test counted per policy)."""
    names = [name for name in dir(StoreContract) if name.startswith("test_")]
    return len(names) + 1


def test_a_store_of_one_s_own_passes_the_contract_in_a_pytest_of_its_own(tmp_path: Path) -> None:
    """A subclass of StoreContract for a store wrapping MemoryStore: every contract test passes.

    But the two that need a database able to refuse a row, which say why they skip.
    """
    done = run_contract(tmp_path, "Wrapped")
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"{contract_size() - 2} passed, 2 skipped" in done.stdout
    assert "has no database that could refuse a row" in done.stdout


@pytest.mark.parametrize(
    ("store", "broken", "words"),
    [
        (
            "ForgetsHistory",
            "test_history_is_the_timeline_without_repeats",
            "history must keep every report",
        ),
        (
            "AppliesStaleReports",
            "test_late_duplicate_and_impossible_reports_change_nothing",
            "must be stale",
        ),
    ],
)
def test_a_broken_store_fails_the_contract_naming_what_broke(
    tmp_path: Path, store: str, broken: str, words: str
) -> None:
    """The same file with a store that forgets history, or applies a stale report, fails by name."""
    done = run_contract(tmp_path, store)
    assert done.returncode == 1, done.stdout[-3000:]
    assert f"FAILED test_my_store.py::TestMyStore::{broken}" in done.stdout
    assert words in done.stdout
    assert " passed" in done.stdout  # what the store does right still passes


def test_a_contract_without_make_store_says_what_is_missing() -> None:
    """A subclass that forgets make_store is told, by name, what to define."""

    class TestNothing(StoreContract):
        pass

    with pytest.raises(NotImplementedError, match=r"TestNothing must define make_store\(self\)"):
        TestNothing().make_store()


def test_the_default_reopen_is_the_store_itself() -> None:
    """Without reopen, a second handle is the same store (one in-process store, shared)."""
    store: Store = MemoryStore()
    assert StoreContract().reopen(store) is store


@pytest.mark.parametrize("provider", ["meta", "smpp", "twilio", "vonage"])
def test_provider_callbacks_are_bodies_their_provider_s_parser_takes(provider: str) -> None:
    """Every drawn callback parses to one report on the drawn message; reversed, the same end."""

    @settings(max_examples=30, deadline=None)
    @given(provider_callbacks(provider))
    def check(callbacks: list[ProviderCallback]) -> None:
        events = [
            event
            for body, received_at in callbacks
            for event in parse_callback(body, provider, received_at=received_at)
        ]
        assert len(events) == len(callbacks)
        assert len({event.message_id for event in events}) == 1
        forward, backward = Tracker(), Tracker()
        forward.apply_many(events)
        backward.apply_many(events[::-1])
        assert forward.get(events[0].message_id) == backward.get(events[0].message_id)

    check()
