"""Tests for what the tracker's intake returns: every count is an int, every list says so."""

from __future__ import annotations

import json

import attrs

from deliverystate import Outcome, Status, StatusEvent, Tracker
from deliverystate.simulate import callback_body
from deliverystate.stores import Summary
from deliverystate.testing import BASE_MS

#: The names that read as "how many": the outcomes, and the other tallies of a report.
COUNT_NAMES = {outcome.value for outcome in Outcome} | {"ignored", "still_invalid"}


def reports() -> list[object]:
    """A Summary, Receipt, IngestReport and RetryReport, each with something in every list."""
    tracker = Tracker()
    tracker.apply(StatusEvent.from_ms("m", Status.QUEUED, BASE_MS, "sms"))
    wrong = callback_body(StatusEvent.from_ms("m", Status.READ, BASE_MS + 1, "whatsapp"))
    body = json.dumps({"event": {**wrong["event"], "moText": [{"messageId": "in-1"}]}})
    receipt = tracker.receive(body.encode())
    ingested = tracker.ingest_many([body, b"{oops"])
    retried = tracker.retry_dead_letters()
    assert receipt.summary is not None
    return [receipt.summary, receipt, ingested, retried]


def test_every_count_of_a_report_is_an_int_that_json_writes() -> None:
    """Each field named like a count is an int (json.dumps takes them); lists have plural names."""
    for report in reports():
        fields = {f.name: getattr(report, f.name) for f in attrs.fields(type(report))}
        counts = {name: value for name, value in fields.items() if name in COUNT_NAMES}
        assert counts, type(report).__name__
        assert {n: type(v) for n, v in counts.items()} == dict.fromkeys(counts, int), report
        json.dumps(counts)
        lists = [name for name, value in fields.items() if isinstance(value, tuple | list)]
        assert all(name.endswith("s") for name in lists), (type(report).__name__, lists)


def test_the_counts_agree_with_the_lists_they_count() -> None:
    """rejected, ignored, applied and still_invalid are the lengths of the lists beside them."""
    summary, receipt, ingested, retried = reports()
    assert isinstance(summary, Summary)
    assert (summary.rejected, [d.event.status for d in summary.rejections]) == (1, [Status.READ])
    assert summary.count(Outcome.REJECTED) == summary.total == 1
    assert (receipt.ignored, receipt.ignored_kinds) == (1, ("moText",))  # type: ignore[attr-defined]
    assert ingested.ignored == 1  # type: ignore[attr-defined]
    assert (retried.applied, retried.still_invalid) == (0, 1)  # type: ignore[attr-defined]
    assert [x.payload for x in retried.invalid_letters] == ["{oops"]  # type: ignore[attr-defined]
    both = summary + Summary(applied=2, rejections=summary.rejections)
    assert (both.applied, both.rejected, len(both.rejections)) == (2, 2, 2)
    assert json.loads(json.dumps(attrs.asdict(Summary(1, 2, 3)))) == {
        "applied": 1,
        "stale": 2,
        "duplicate": 3,
        "rejections": [],
        "rejected": 0,
    }
