"""Tests for the pytest plugin: its entry point and its fixtures, as a user's pytest sees them."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from deliverystate import MemoryStore, SQLiteStore, Status, StatusEvent, Tracker, pytest_plugin
from deliverystate.pytest_plugin import POSTGRES_DSN_VARIABLE
from deliverystate.testing import BASE_MS

from . import conftest
from .runs import run_pytest

USER_TESTS = """
import json
from pathlib import Path

from deliverystate import MemoryStore, SQLiteStore, Status, StatusEvent

SEEN = Path(__file__).with_name("seen.jsonl")


def note(**fields):
    with SEEN.open("a") as file:
        file.write(json.dumps(fields) + "\\n")


def test_first(tracker, sqlite_tracker):
    for t in (tracker, sqlite_tracker):
        assert t.get("m") is None
        t.apply(StatusEvent.from_ms("m", Status.QUEUED, 1767225600000, "sms"))
    note(memory=type(tracker.store).__name__, sqlite=sqlite_tracker.store.path)


def test_second_sees_nothing_of_the_first(tracker, sqlite_tracker):
    assert tracker.get("m") is None and sqlite_tracker.get("m") is None
    note(memory=type(tracker.store).__name__, sqlite=sqlite_tracker.store.path)


def test_postgres(postgres_tracker):
    assert postgres_tracker.get("m") is None
    postgres_tracker.apply(StatusEvent.from_ms("m", Status.READ, 1767225600000, "whatsapp"))
    assert postgres_tracker.get("m").status is Status.READ
    note(schema=postgres_tracker.store.schema)
"""


#: A user's property tests: make_tracker in @given, and the function-scoped fixture it replaces.
GIVEN_TESTS = """
import json
from pathlib import Path

from hypothesis import given, settings
from deliverystate.testing import streams

SEEN = Path(__file__).with_name("seen.jsonl")


@settings(max_examples=8, database=None, deadline=None)  # a schema each: slow
@given(events=streams())
def test_make_tracker_in_given(make_tracker, events):
    for kind in ("memory", "sqlite", "postgres"):
        with make_tracker(kind) as tracker:
            assert tracker.count_by_status() == {}, "a tracker left over from another example"
            tracker.apply_many(events)
            store = tracker.store
            where = getattr(store, "path", None) or getattr(store, "schema", None)
            with SEEN.open("a") as file:
                file.write(json.dumps({"kind": kind, "where": where}) + "\\n")


@settings(max_examples=8, database=None)
@given(events=streams())
def test_sqlite_tracker_in_given(sqlite_tracker, events):
    sqlite_tracker.apply_many(events)
"""


def run_user_tests(
    tmp_path: Path, dsn: str | None, tests: str = USER_TESTS
) -> subprocess.CompletedProcess[str]:
    """Run ``tests`` (USER_TESTS) with pytest in a process of its own, the DSN set or not."""
    path = tmp_path / "test_users.py"
    path.write_text(tests, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in (POSTGRES_DSN_VARIABLE, "CI")}
    if dsn is not None:
        env[POSTGRES_DSN_VARIABLE] = dsn
    return run_pytest(path, "-rs", env=env)


def existing_schemas(dsn: str, names: list[str]) -> list[str]:
    """Which of the schemas ``names`` exist on the server."""
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name = ANY(%s)",
            (names,),
        ).fetchall()
    return [name for (name,) in rows]


def test_the_plugin_is_a_pytest11_entry_point() -> None:
    """Installing deliverystate registers the plugin with pytest, under the name deliverystate."""
    (entry,) = [
        e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "deliverystate"
    ]
    assert entry.value == "deliverystate.pytest_plugin"


def test_tracker_is_a_fresh_tracker_in_memory(tracker: Tracker) -> None:
    """The ``tracker`` fixture is a tracker over an empty memory store."""
    assert isinstance(tracker.store, MemoryStore)
    assert tracker.count_by_status() == {}
    tracker.apply(StatusEvent.from_ms("m", Status.QUEUED, BASE_MS, "sms"))
    assert tracker.get("m") is not None


def test_sqlite_tracker_keeps_its_file_in_tmp_path(sqlite_tracker: Tracker, tmp_path: Path) -> None:
    """The ``sqlite_tracker`` fixture's store is a new SQLite file in the test's tmp_path."""
    store = sqlite_tracker.store
    assert isinstance(store, SQLiteStore)
    assert Path(store.path).parent == tmp_path
    assert store.get("m") is None


def test_each_test_gets_its_own_trackers_and_postgres_schema_is_dropped(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """In a user's pytest: fresh trackers per test, and the PostgreSQL schema gone afterwards."""
    done = run_user_tests(tmp_path, postgres_dsn)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 passed" in done.stdout
    lines = (tmp_path / "seen.jsonl").read_text(encoding="utf-8").splitlines()
    first, second, postgres = (json.loads(line) for line in lines)
    assert first["memory"] == second["memory"] == "MemoryStore"
    assert first["sqlite"] != second["sqlite"]  # each test its own file
    assert existing_schemas(postgres_dsn, [postgres["schema"]]) == [], (
        "postgres_tracker left its schema behind"
    )


def test_make_tracker_gives_each_hypothesis_example_fresh_trackers(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """In @given, make_tracker passes the health check and makes a new, empty store per example.

    Each store is gone after its example: the SQLite file deleted, the schema
    dropped.  The function-scoped ``sqlite_tracker`` fails the same check.
    """
    done = run_user_tests(tmp_path, postgres_dsn, GIVEN_TESTS)
    assert "1 failed, 1 passed" in done.stdout, done.stdout[-3000:]
    assert "FailedHealthCheck" in done.stdout
    assert "uses a function-scoped fixture 'sqlite_tracker'" in done.stdout
    assert "test_make_tracker_in_given" not in done.stdout.split("short test summary")[-1]
    seen = [json.loads(line) for line in (tmp_path / "seen.jsonl").read_text().splitlines()]
    places = {
        kind: [s["where"] for s in seen if s["kind"] == kind] for kind in ("sqlite", "postgres")
    }
    assert len(places["sqlite"]) == len(places["postgres"]) == len(seen) // 3 >= 2
    for kind, where in places.items():
        assert len(set(where)) == len(where), f"two examples shared a {kind} store"
    assert not [p for p in places["sqlite"] if Path(p).exists()], "an SQLite file was left"
    assert existing_schemas(postgres_dsn, places["postgres"]) == [], "make_tracker left schemas"


def test_make_tracker_refuses_an_unknown_kind(make_tracker: pytest_plugin.TrackerFactory) -> None:
    """A kind other than memory, sqlite or postgres is a ValueError naming the three."""
    with (
        pytest.raises(ValueError, match="memory, sqlite, postgres, not 'mysql'"),
        make_tracker("mysql"),
    ):
        pass


def test_postgres_tracker_skips_naming_the_variable_when_it_is_not_set(tmp_path: Path) -> None:
    """Without DELIVERYSTATE_TEST_POSTGRES_DSN the PostgreSQL test is skipped, saying why."""
    done = run_user_tests(tmp_path, None)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 passed, 1 skipped" in done.stdout
    assert f"postgres_tracker needs {POSTGRES_DSN_VARIABLE}" in done.stdout


def test_the_plugin_can_be_switched_off(tmp_path: Path) -> None:
    """``-p no:deliverystate`` removes the fixtures: a test asking for one errors."""
    path = tmp_path / "test_off.py"
    path.write_text("def test_off(tracker):\n    pass\n", encoding="utf-8")
    done = run_pytest(path, "-p", "no:deliverystate")
    assert done.returncode == 1
    assert "fixture 'tracker' not found" in done.stdout


def test_the_project_s_conftest_does_not_shadow_the_plugin_s_fixtures() -> None:
    """conftest.py defines none of the plugin's fixture names: the plugin's are the ones used."""
    names = set(pytest_plugin.__all__) - {
        "POSTGRES_DSN_VARIABLE",
        "TRACKER_KINDS",
        "TrackerFactory",
    }
    assert names == {"tracker", "sqlite_tracker", "postgres_tracker", "make_tracker"}
    assert names.isdisjoint(vars(conftest))
