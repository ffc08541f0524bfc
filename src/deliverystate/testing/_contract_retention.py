"""The store contract, part five: retention (prune with an archive, and replay of it)."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ..rules._catalog import Status
from ..rules._events import Change, MessageState, StatusEvent
from ..rules._records import Archived, MessageQuery
from ..simulate import generate_callbacks
from ..stores import Store
from ..tracking._tracker import Tracker
from ._harness import ContractBase, ev, fresh
from ._strategies import BASE_MS, streams

__all__ = ["RetentionContract"]

S = Status
DAY_MS = 86_400_000


def _everything(store: Store) -> dict[str, MessageState]:
    """Every message of a store, through its message list."""
    return {item.state.message_id: item.state for item in store.messages(MessageQuery(), 10**6)}


def _counted(store: Store) -> dict[Status, int]:
    """How many messages are in each status, counted one by one from the message list."""
    return dict(Counter(state.status for state in _everything(store).values()))


def _states_and_histories(store: Store, ids: set[str]) -> dict[str, object]:
    """Per message: its state and its history as (event, outcome) in order."""
    return {
        m: (store.get(m), [(e.event, e.outcome) for e in store.history(m)]) for m in sorted(ids)
    }


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _body(event: StatusEvent) -> str:
    """A One API callback body holding ``event`` alone."""
    update = {
        "messageId": event.message_id,
        "timestamp": event.timestamp_ms,
        "statusCode": int(event.status),
        "status": event.status.name,
        "channel": event.channel,
    }
    return json.dumps({"integrationId": "i", "event": {"messageStatusUpdate": [update]}})


def _pruned(tracker: Tracker, *events: StatusEvent) -> list[str]:
    """Apply ``events``, prune everything final before a day later; the archive's lines."""
    tracker.apply_many(events)
    archive = io.StringIO()
    assert tracker.prune(_at(BASE_MS + DAY_MS), archive=archive) > 0
    return archive.getvalue().splitlines()


def _moves(changes: Sequence[Change]) -> list[tuple[str, Status | None, Status]]:
    return [(c.message_id, c.previous, c.status) for c in changes]


class RetentionContract(ContractBase):
    """How a store forgets: only old, settled messages, whole, and only once they are kept."""

    def test_prune_removes_only_old_final_messages_and_replaying_the_archive_restores_them(
        self,
    ) -> None:
        """Pruned with an archive, then the archive replayed: identical states and histories."""
        store = self.store
        tracker = self.tracker()
        tracker.ingest_many([c.body for c in generate_callbacks(300, seed=61) if c.valid])
        everything = set(_everything(store))
        before_prune = _states_and_histories(store, everything)
        cut_ms = BASE_MS + DAY_MS // 3
        final_and_old = {
            m
            for m, state in _everything(store).items()
            if (state.status.is_terminal or state.status is S.DEVICE_ACK)
            and max(e.event.timestamp_ms for e in store.history(m)) < cut_ms
        }
        assert 0 < len(final_and_old) < len(everything)
        assert tracker.prune(_at(cut_ms), dry_run=True) == len(final_and_old)
        archive = io.StringIO()
        assert tracker.prune(_at(cut_ms), archive=archive) == len(final_and_old)
        assert set(_everything(store)) == everything - final_and_old, (
            "prune removed the wrong messages"
        )
        assert all(store.get(m) is None and list(store.history(m)) == [] for m in final_and_old)
        assert dict(store.count_by_status()) == _counted(store), "the counts after prune"
        lines = archive.getvalue().splitlines()
        assert len(lines) == len(final_and_old)
        assert tracker.prune(_at(cut_ms)) == 0  # nothing left to prune
        tracker.ingest_many(lines, archives=True)
        assert _states_and_histories(store, everything) == before_prune, "replay did not restore"
        assert dict(store.count_by_status()) == _counted(store), "the counts after the replay"

    def test_messages_in_progress_are_never_pruned(self) -> None:
        """However old, a message that is not final stays, and so does a recent final one."""
        tracker = self.tracker()
        tracker.apply_many([ev("slow", S.SENT_TO_SUPPLIER, 0), ev("done", S.DELIVERY_FAILURE, 0)])
        tracker.apply(ev("fresh", S.DEVICE_ACK, 10 * DAY_MS))
        tracker.apply(ev("fresh", S.READ, 10 * DAY_MS + 5))
        assert tracker.prune(_at(BASE_MS + 5 * DAY_MS)) == 1
        assert tracker.get("done") is None
        assert tracker.get("slow") is not None, "a message in progress was pruned"
        assert tracker.get("fresh") is not None, "a recent final message was pruned"

    def test_a_delivered_message_is_pruned_once_no_report_came_since(self) -> None:
        """DEVICE_ACK settles a message (an SMS ends there): pruned if nothing came since."""
        tracker = self.tracker()
        tracker.apply_many(
            [
                *(ev("acked", s, i) for i, s in enumerate((S.QUEUED, S.SENT_TO_SUPPLIER))),
                ev("acked", S.DEVICE_ACK, 2),
                ev("acked_late", S.QUEUED, 0),
                ev("acked_late", S.DEVICE_ACK, 2 * DAY_MS),  # the last report is after the cut
                ev("heard_since", S.DEVICE_ACK, 0),
                ev("heard_since", S.SENT_TO_SUPPLIER, 2 * DAY_MS),  # late and stale, but a report
                ev("queued", S.QUEUED, 0),
                ev("sent", S.SENT_TO_SUPPLIER, 0),
            ]
        )
        assert tracker.prune(_at(BASE_MS + DAY_MS), dry_run=True) == 1
        assert tracker.prune(_at(BASE_MS + DAY_MS)) == 1
        assert set(_everything(self.store)) == {"acked_late", "heard_since", "queued", "sent"}
        assert self.store.history("acked") == []
        assert dict(self.store.count_by_status()) == {
            S.DEVICE_ACK: 2,
            S.QUEUED: 1,
            S.SENT_TO_SUPPLIER: 1,
        }, "the counts after prune"

    def test_every_settled_status_is_pruned_and_none_in_progress(self) -> None:
        """Old messages in every status: all go but UNKNOWN, SCHEDULED, QUEUED, SENT_TO_SUPPLIER."""
        tracker = self.tracker()
        tracker.apply_many(
            [ev(f"m{int(s)}", s, 0, "sms" if "sms" in s.channels else "whatsapp") for s in Status]
        )
        on_its_way = {S.UNKNOWN, S.SCHEDULED, S.QUEUED, S.SENT_TO_SUPPLIER}
        would = tracker.prune(_at(BASE_MS + 100 * DAY_MS), dry_run=True)
        assert len(_everything(self.store)) == len(Status), "a dry run removed something"
        removed = tracker.prune(_at(BASE_MS + 100 * DAY_MS))
        assert would == removed == len(Status) - len(on_its_way)
        assert {state.status for state in _everything(self.store).values()} == on_its_way
        assert dict(self.store.count_by_status()) == dict.fromkeys(on_its_way, 1)

    def test_a_pruned_delivered_message_is_archived_and_replaying_restores_it(self) -> None:
        """The archive holds the DEVICE_ACK message whole; replaying it brings it back, counted."""
        tracker = self.tracker()
        steps = (S.QUEUED, S.SENT_TO_SUPPLIER, S.DEVICE_ACK)
        tracker.apply_many([ev("sms", s, 1000 * i, "sms", "order-7") for i, s in enumerate(steps)])
        before = _states_and_histories(self.store, {"sms"})
        archive = io.StringIO()
        assert tracker.prune(_at(BASE_MS + DAY_MS), archive=archive) == 1
        assert tracker.get("sms") is None
        assert dict(self.store.count_by_status()) == {}, "the counts after prune"
        (line,) = archive.getvalue().splitlines()
        kept = json.loads(line)
        assert (kept["message_id"], kept["state"]["status_code"]) == ("sms", 5)
        assert [h["status_code"] for h in kept["history"]] == [2, 4, 5]
        tracker.ingest_many([line], archives=True)
        assert _states_and_histories(self.store, {"sms"}) == before, "replay did not restore"
        assert dict(self.store.count_by_status()) == {S.DEVICE_ACK: 1}, "the counts after replay"

    def test_a_channel_learned_from_a_repeated_report_survives_prune_and_restore(self) -> None:
        """History keeps a repeat once; the channel and client id it taught come back anyway."""
        tracker = self.tracker()
        tracker.apply_many(
            [
                ev("rep", S.QUEUED, 0, None),
                ev("rep", S.EXPIRED, 1000, None),
                ev("rep", S.EXPIRED, 1000, "sms", "order-9"),  # a repeat that teaches both
            ]
        )
        before = _states_and_histories(self.store, {"rep"})
        archive = io.StringIO()
        assert tracker.prune(_at(BASE_MS + DAY_MS), archive=archive) == 1
        tracker.ingest_many(archive.getvalue().splitlines(), archives=True)
        assert _states_and_histories(self.store, {"rep"}) == before, "replay did not restore"
        state = tracker.get("rep")
        assert state is not None
        assert (state.channel, state.client_message_id) == ("sms", "order-9")

    def test_a_read_after_its_delivered_message_was_pruned_starts_it_afresh(self) -> None:
        """The read receipt of a pruned DEVICE_ACK message makes a new message of that READ."""
        tracker = self.tracker()
        steps = (S.QUEUED, S.SENT_TO_SUPPLIER, S.DEVICE_ACK)
        tracker.apply_many([ev("wa", s, i, "whatsapp") for i, s in enumerate(steps)])
        assert tracker.prune(_at(BASE_MS + DAY_MS)) == 1
        tracker.apply(ev("wa", S.READ, 2 * DAY_MS, "whatsapp"))
        state = tracker.get("wa")
        assert state is not None
        assert (state.status, state.timestamp_ms) == (S.READ, BASE_MS + 2 * DAY_MS)
        assert [e.event.status for e in tracker.history("wa")] == [S.READ]
        assert dict(self.store.count_by_status()) == {S.READ: 1}

    def test_a_report_that_arrives_before_removal_keeps_the_message(self) -> None:
        """remove() checks again under the lock: a message newly active is not removed."""
        tracker = self.tracker()
        tracker.apply(ev("late", S.EXPIRED, 0))
        found, _ = self.store.prunable(BASE_MS + DAY_MS, None, 100)
        assert found == ["late"]
        tracker.apply(ev("late", S.DEVICE_ACK, 2 * DAY_MS))  # the handset had it after all
        assert self.store.remove(found, BASE_MS + DAY_MS) == 0
        state = tracker.get("late")
        assert state is not None
        assert state.status is S.DEVICE_ACK

    def test_removal_hands_each_message_to_keep_first(self) -> None:
        """remove() gives keep every removed message's final state and whole history."""
        tracker = self.tracker()
        tracker.apply_many([ev("gone", S.QUEUED, 0), ev("gone", S.EXPIRED, 9)])
        kept: list[Archived] = []
        assert self.store.remove(["gone"], BASE_MS + DAY_MS, kept.extend) == 1
        (archived,) = kept
        assert archived.state.status is S.EXPIRED
        assert [e.event.status for e in archived.history] == [S.QUEUED, S.EXPIRED]

    def test_an_archive_that_cannot_be_written_leaves_the_messages(self) -> None:
        """If keeping a group fails, nothing of it is deleted."""
        tracker = self.tracker()
        tracker.apply(ev("kept", S.EXPIRED, 0))

        def full(messages: object) -> None:
            raise OSError("No space left on device")

        with pytest.raises(OSError, match="No space"):
            self.store.remove(["kept"], BASE_MS + DAY_MS, full)
        state = tracker.get("kept")
        assert state is not None
        assert state.status is S.EXPIRED
        assert len(tracker.history("kept")) == 1

    def test_replaying_an_archive_writes_nothing_to_the_change_feed(self) -> None:
        """Restoring pruned messages is not news: states and histories back, the feed unchanged."""
        tracker = self.tracker()
        heard: list[Change] = []
        lines = _pruned(
            tracker,
            *(ev("r-1", S.QUEUED, 0), ev("r-1", S.EXPIRED, 9)),
            *(ev("r-2", S.QUEUED, 0, "whatsapp"), ev("r-2", S.READ, 7, "whatsapp")),
        )
        before = self.store.last_seq()
        tracker.on_change(heard.extend)
        tracker.ingest_many(lines, archives=True)
        tracker.ingest_many(lines, archives=True)  # twice: still nothing
        assert tracker.changes(after=before) == [], "restoring wrote changes to the feed"
        assert heard == [], "restoring called the change hooks"
        assert [tracker.get(m).status for m in ("r-1", "r-2")] == [S.EXPIRED, S.READ]  # type: ignore[union-attr]

    def test_any_stream_pruned_and_restored_from_its_archive_adds_no_change(self) -> None:
        """Property: whatever the reports, replaying a prune's archive restores and is silent."""

        @self.examples()
        @given(st.data())
        def check(data: st.DataObject) -> None:
            events = fresh(data.draw(streams(), label="reports"))
            tracker = self.tracker()
            tracker.apply_many(events)
            ids = {event.message_id for event in events}
            before = _states_and_histories(self.store, ids)
            archive = io.StringIO()
            tracker.prune(_at(BASE_MS + 400 * DAY_MS), archive=archive)
            last = self.store.last_seq()
            tracker.ingest_many(archive.getvalue().splitlines(), archives=True)
            assert tracker.changes(after=last) == [], "restoring wrote changes to the feed"
            restored = _states_and_histories(self.store, ids)
            assert restored == before, "the states and histories restored"

        check()

    def test_a_report_replayed_beside_an_archive_is_a_change_from_the_restored_status(
        self,
    ) -> None:
        """A callback that moves a restored message on is news, before or after its archive line."""
        for order in (1, -1):
            tracker = self.tracker()
            m = f"beside-{order}"
            (line,) = _pruned(tracker, ev(m, S.QUEUED, 0), ev(m, S.EXPIRED, 9))
            before = self.store.last_seq()
            late = ev(m, S.DEVICE_ACK, 2 * DAY_MS)  # the handset had it after all
            tracker.ingest_many([line, _body(late)][::order], archives=True)
            assert _moves(tracker.changes(after=before)) == [(m, S.EXPIRED, S.DEVICE_ACK)]
            assert [e.event for e in tracker.history(m)][-1] == late

    def test_a_report_about_a_pruned_message_starts_it_afresh_as_news(self) -> None:
        """A report after the prune is a change; restoring over it later writes what it moves."""
        tracker = self.tracker()
        events = [ev(m, S.QUEUED, 0, "whatsapp") for m in ("gone-a", "gone-b")]
        lines = _pruned(
            tracker,
            *events,
            ev("gone-a", S.READ, 9, "whatsapp"),
            ev("gone-b", S.DELIVERY_FAILURE, 9, "whatsapp"),
        )
        before = self.store.last_seq()
        tracker.apply(ev("gone-a", S.READ, 9, "whatsapp"))  # Clickatell retried it
        tracker.apply(ev("gone-b", S.QUEUED, 0, "whatsapp"))  # a late copy of the first
        assert _moves(tracker.changes(after=before)) == [
            ("gone-a", None, S.READ),
            ("gone-b", None, S.QUEUED),
        ]
        middle = self.store.last_seq()
        tracker.ingest_many(lines, archives=True)
        # gone-a was READ already; gone-b was held, so its feed follows it to its failure
        assert _moves(tracker.changes(after=middle)) == [("gone-b", S.QUEUED, S.DELIVERY_FAILURE)]
