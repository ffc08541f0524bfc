"""Tests for ``GET /metrics``: counts checked against callbacks posted over real HTTP.

Every test runs the receiver under uvicorn on loopback and reads the
exposition with prometheus_client's own parser, as Prometheus would.  The
expected numbers are written out by hand from what each test posts.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import prometheus_client
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from deliverystate import MemoryStore, SQLiteStore, Status, StatusEvent, StoreUnavailable, Tracker
from deliverystate.simulate import callback_body
from deliverystate.web._metrics import field_label

from .test_web import T0, URL, one_api, post_json, receiver

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
EVENTS = "deliverystate_callback_events_total"
INVALID = "deliverystate_invalid_callbacks_total"
ANSWERS = "deliverystate_callback_duration_seconds_count"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[Tracker]:
    """A tracker over a fresh SQLite file, the store ``serve`` uses by default."""
    store = SQLiteStore(tmp_path / "metrics.sqlite3")
    yield Tracker(store)
    store.close()


def scrape(client: httpx.Client, **kwargs: Any) -> Samples:
    """``GET /metrics`` parsed: every sample's value by (name, sorted labels)."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def labelled(samples: Samples, name: str) -> dict[tuple[str, ...], float]:
    """The samples of ``name``, keyed by their label values (in label-name order)."""
    return {
        tuple(value for _, value in labels): number
        for (sample, labels), number in samples.items()
        if sample == name
    }


def two_update_body() -> dict[str, Any]:
    """A One API body with two updates: "a" delivered, "b" queued (both SMS)."""
    body = one_api("a", int(Status.DEVICE_ACK), "DEVICE_ACK", T0 + 10)
    second = one_api("b", int(Status.QUEUED), "QUEUED", T0)["event"]["messageStatusUpdate"][0]
    body["event"]["messageStatusUpdate"].append(second)
    return body


def test_counts_match_the_callbacks_posted_in_every_format(tracker: Tracker) -> None:
    """Events by format and outcome, invalid bodies by field, answers by code, store gauges."""
    no_id = one_api("x", int(Status.QUEUED), "QUEUED", T0)
    del no_id["event"]["messageStatusUpdate"][0]["messageId"]
    platform = callback_body(
        StatusEvent.from_ms("p", Status.SENT_TO_SUPPLIER, T0, "sms"), "platform"
    )
    legacy = callback_body(StatusEvent.from_ms("l", Status.DEVICE_ACK, T0, "sms"), "legacy")
    form = {"messageId": "f", "statusCode": "7", "timestamp": str(T0)}  # Platform 7: failure
    with receiver(tracker) as client:
        answers = [
            post_json(client, two_update_body()),  # 2 applied
            post_json(client, two_update_body()),  # the same again: 2 duplicates
            post_json(client, one_api("a", int(Status.QUEUED), "QUEUED", T0)),  # stale
            post_json(client, one_api("b", int(Status.READ), "READ", T0 + 5, "whatsapp")),
            post_json(client, {"event": {"moText": [{"messageId": "in-1"}]}}),  # ignored
            post_json(client, platform),
            client.post(URL, content=urlencode(form), headers={"content-type": FORM}),
            client.get(URL, params=legacy),
            post_json(client, "{oops"),  # not JSON
            post_json(client, no_id),  # a One API body without its message id
        ]
        samples = scrape(client)
    assert [a.status_code for a in answers] == [200] * 8 + [400] * 2
    events = labelled(samples, EVENTS)
    expected = dict.fromkeys(events, 0.0)
    expected.update(
        {
            ("one_api", "applied"): 2,
            ("one_api", "duplicate"): 2,
            ("one_api", "stale"): 1,
            ("one_api", "rejected"): 1,  # "b" is an SMS; a WhatsApp READ for it is refused
            ("one_api", "ignored"): 1,
            ("platform", "applied"): 2,
            ("legacy", "applied"): 1,
            ("unknown", "invalid"): 2,
        }
    )
    assert events == expected
    assert len(events) == 7 * 7 + 1  # Clickatell's 3 shapes and 4 providers, 7 outcomes each
    invalid = labelled(samples, INVALID)
    assert {field: n for (field,), n in invalid.items() if n} == {"body": 1, "messageId": 1}
    assert labelled(samples, ANSWERS) == {("200",): 8, ("400",): 2}
    messages = {status: n for (status,), n in labelled(samples, "deliverystate_messages").items()}
    assert set(messages) == {status.name for status in Status}
    assert {status: n for status, n in messages.items() if n} == {
        "DEVICE_ACK": 2,  # a, l
        "QUEUED": 1,  # b
        "SENT_TO_SUPPLIER": 1,  # p
        "DELIVERY_FAILURE": 1,  # f
    }
    assert samples["deliverystate_inbox_bodies", ()] == 0
    assert samples["deliverystate_dead_letters", ()] == 2
    assert samples["deliverystate_store_up", ()] == 1
    assert samples["deliverystate_feed_last_seq", ()] == 5  # one change per applied event


def test_refused_and_unstored_bodies_are_counted_with_their_format(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body the store refuses is one invalid One API body; a 503's events are not counted."""

    def refused(*args: object) -> None:
        raise sqlite3.IntegrityError("CHECK constraint failed")

    def down(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with receiver(tracker) as client:
        monkeypatch.setattr(tracker.store, "_write", refused)  # the database refuses the body
        poisoned = post_json(client, two_update_body())
        monkeypatch.setattr(tracker.store, "_write", down)  # now it is down: 503
        waiting = post_json(client, one_api("w", int(Status.QUEUED), "QUEUED", T0))
        samples = scrape(client)
    assert (poisoned.status_code, waiting.status_code) == (400, 503)
    events = {key: n for key, n in labelled(samples, EVENTS).items() if n}
    assert events == {("one_api", "invalid"): 1}
    assert {f: n for (f,), n in labelled(samples, INVALID).items() if n} == {"body": 1}
    assert labelled(samples, ANSWERS) == {("400",): 1, ("503",): 1}
    assert samples["deliverystate_inbox_bodies", ()] == 0
    assert samples["deliverystate_dead_letters", ()] == 1


def test_metrics_are_behind_the_secret_like_every_read(tracker: Tracker) -> None:
    """With a token and Basic credentials set, /metrics is 401 without either, 200 with one."""
    with receiver(tracker, token="s3cret", basic_auth=("prom", "pw")) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", params={"token": "wrong"}).status_code == 401
        assert client.get("/metrics", auth=("prom", "nope")).status_code == 401
        assert post_json(client, one_api("t", 5, "DEVICE_ACK", T0)).status_code == 401
        assert client.get("/healthz").status_code == 200  # the one open endpoint stays open
        by_query = scrape(client, params={"token": "s3cret"})
        scrape(client, headers={"X-Deliverystate-Token": "s3cret"})
        scrape(client, auth=("prom", "pw"))
    assert labelled(by_query, ANSWERS) == {("401",): 1}  # refusals are answers too
    assert not any(labelled(by_query, EVENTS).values())


def test_two_apps_in_one_process_count_apart_and_not_in_the_global_registry() -> None:
    """Each app has a registry of its own: a callback to one is not counted by the other."""
    first, second = Tracker(MemoryStore()), Tracker(MemoryStore())
    with receiver(first) as one, receiver(second) as other:
        assert post_json(one, one_api("only-here", 5, "DEVICE_ACK", T0)).status_code == 200
        counted, untouched = scrape(one), scrape(other)
    assert counted[EVENTS, (("format", "one_api"), ("outcome", "applied"))] == 1
    assert untouched[EVENTS, (("format", "one_api"), ("outcome", "applied"))] == 0
    assert counted["deliverystate_messages", (("status", "DEVICE_ACK"),)] == 1
    assert untouched["deliverystate_messages", (("status", "DEVICE_ACK"),)] == 0
    global_names = {metric.name for metric in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("deliverystate") for name in global_names)


def test_a_store_that_does_not_answer_leaves_its_gauges_out_not_the_counters(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scrape still answers 200 with the counters; store_up is 0, no store gauge made up."""
    with receiver(tracker) as client:
        assert post_json(client, one_api("m", 5, "DEVICE_ACK", T0)).status_code == 200

        def down() -> None:
            raise StoreUnavailable("metrics.sqlite3", "unable to open database file")

        monkeypatch.setattr(tracker.store, "count_by_status", down)
        samples = scrape(client)
    assert samples["deliverystate_store_up", ()] == 0
    assert samples[EVENTS, (("format", "one_api"), ("outcome", "applied"))] == 1
    store_gauges = ("deliverystate_messages", "deliverystate_inbox_bodies", "deliverystate_feed")
    assert not [name for name, _ in samples if name.startswith(store_gauges)]


def test_each_feed_consumer_s_lag_is_read_from_the_store(tracker: Tracker) -> None:
    """Changes behind per named cursor (a forwarder's lag), the last seq, undeliverable changes."""
    tracker.apply_many(
        [
            StatusEvent.from_ms("c", Status.QUEUED, T0, "sms"),
            StatusEvent.from_ms("c", Status.SENT_TO_SUPPLIER, T0 + 1, "sms"),
            StatusEvent.from_ms("d", Status.QUEUED, T0, "sms"),
        ]
    )
    tracker.store.commit_cursor("forward", 1)
    tracker.store.commit_cursor("billing", 3)
    tracker.store.add_undeliverable("forward", tracker.changes()[0], "HTTP 500")
    with receiver(tracker) as client:
        samples = scrape(client)
    assert samples["deliverystate_feed_last_seq", ()] == 3
    assert labelled(samples, "deliverystate_feed_behind") == {("billing",): 0, ("forward",): 2}
    assert labelled(samples, "deliverystate_feed_undeliverable") == {("forward",): 1}


def test_openmetrics_is_answered_when_the_scraper_asks_for_it(tracker: Tracker) -> None:
    """Prometheus may ask for OpenMetrics; the answer is then OpenMetrics, and parses as such."""
    with receiver(tracker) as client:
        post_json(client, one_api("om", 5, "DEVICE_ACK", T0))
        response = client.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    families = {family.name: family for family in openmetrics_families(response.text)}
    (applied,) = [
        s
        for s in families["deliverystate_callback_events"].samples
        if s.name == EVENTS and s.labels == {"format": "one_api", "outcome": "applied"}
    ]
    assert applied.value == 1


@pytest.mark.parametrize(
    ("field", "label"),
    [
        ("body", "body"),
        ("event", "event"),
        ("event.messageStatusUpdate", "messageStatusUpdate"),
        ("event.messageStatusUpdate[12]", "messageStatusUpdate"),
        ("event.messageStatusUpdate[3].statusCode", "statusCode"),
        ("timestamp", "timestamp"),
        ("apiMsgId", "apiMsgId"),
        ("history[2]", "other"),  # an archive line's field: never met by the receiver
        ("event.messageStatusUpdate[0].a-field-from-the-body", "other"),
    ],
)
def test_the_field_label_has_a_fixed_set_of_values(field: str, label: str) -> None:
    """A field's path is cut to its last name, without an index; unknown names are "other"."""
    assert field_label(field) == label


def test_every_field_the_parser_blames_has_a_label_of_its_own() -> None:
    """Invalid bodies of each kind are counted under their field's own name, never "other"."""
    fax = one_api("m", 5, "DEVICE_ACK", T0)
    fax["event"]["messageStatusUpdate"][0]["channel"] = "fax"
    bodies = [
        "[]",
        {"event": "x"},
        {"event": {"messageStatusUpdate": []}},
        one_api("", 5, "DEVICE_ACK", T0),
        fax,
        one_api("m", 5, "READ", T0),
        one_api("m", 999, "DEVICE_ACK", T0),
        one_api("m", 5, "DEVICE_ACK", 17),
        one_api("m", 5, "DEVICE_ACK", T0, client="x" * 300),
        {"apiMsgId": "m", "status": "999", "timestamp": "1767225601"},
        {"apiMsgId": "m", "cliMsgId": ["a", "b"], "status": "004", "timestamp": "1767225601"},
    ]
    tracker = Tracker(MemoryStore())
    with receiver(tracker) as client:
        for body in bodies:
            assert post_json(client, body if isinstance(body, str) else json.dumps(body)).is_error
        invalid = labelled(scrape(client), INVALID)
    assert invalid[("other",)] == 0
    assert sum(invalid.values()) == len(bodies)
