"""The receiver while its store fails as a whole, over real HTTP, on SQLite and PostgreSQL.

A full disk, a read-only file, a role that may not write: none of these is a
bad body.  The callback gets 503 with ``Retry-After`` and its client keeps it
(or 202, once its body is in the inbox), nothing goes to the dead letter, and
``/healthz`` answers 503 too; once the store works again every callback is
applied.  Expected states are those of an in-memory tracker fed the same
bodies, never read back from the receiver.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from deliverystate import MemoryStore, SQLiteStore, StoreUnavailable, Tracker, parse_callback
from deliverystate.simulate import generate_callbacks
from deliverystate.web import _reads as web_reads
from deliverystate.web import create_app

from .confined import ConfinedStore, small_disk
from .test_web import post_json, serving, wait_for


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget a failing callback in /healthz within a test's patience."""
    monkeypatch.setattr(web_reads, "FAILED_RECENTLY", 0.5, raising=False)


@contextlib.contextmanager
def receiving(tracker: Tracker) -> Iterator[httpx.Client]:
    """The receiver over ``tracker`` on loopback, and a client bound to it."""
    with (
        serving(create_app(tracker)) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        yield client


def valid_bodies(messages: int, seed: int) -> list[str]:
    """Simulated callbacks that are all valid: none of them may reach the dead letter."""
    return [c.body for c in generate_callbacks(messages, seed=seed, invalid_rate=0) if c.valid]


def refused_by_the_store(answers: list[httpx.Response]) -> int:
    """How many answers say the store failed; checks each is a 200 or a 503 with Retry-After."""
    codes = {answer.status_code for answer in answers}
    assert codes <= {200, 503}, [a.text for a in answers if a.status_code != 200]
    unavailable = [answer for answer in answers if answer.status_code == 503]
    assert all(answer.headers.get("retry-after") for answer in unavailable)
    return len(unavailable)


def unavailable(bodies: list[str], answers: list[httpx.Response]) -> list[str]:
    """The bodies answered 503, which their clients will post again."""
    return [body for body, answer in zip(bodies, answers, strict=True) if answer.status_code == 503]


def recovered(
    client: httpx.Client, tracker: Tracker, bodies: list[str], retried: list[str]
) -> None:
    """The clients post ``retried`` again; then every body is applied, none in the dead letter."""
    for body in retried:
        assert post_json(client, body).status_code == 200
    wait_for(lambda: tracker.store.count_pending() == 0)
    wait_for(lambda: client.get("/healthz").status_code == 200)
    assert tracker.store.count_dead_letters() == 0
    reference = Tracker(MemoryStore())
    reference.ingest_many(bodies)
    for message_id in {e.message_id for body in bodies for e in parse_callback(body)}:
        assert tracker.get(message_id) == reference.get(message_id), message_id


# --- SQLite ------------------------------------------------------------------------------


def test_a_sqlite_file_that_may_not_grow_answers_503_and_dead_letters_nothing(
    tmp_path: Path,
) -> None:
    """max_page_count reached (SQLITE_FULL): 503 + Retry-After, /healthz 503, none dead-lettered."""
    store = ConfinedStore(tmp_path / "full.sqlite3")
    tracker = Tracker(store)
    bodies = valid_bodies(150, seed=31)
    with receiving(tracker) as client:
        assert client.get("/healthz").status_code == 200
        store.confine()
        assert client.get("/healthz").status_code == 503  # before any callback failed
        answers = [post_json(client, body) for body in bodies]
        assert refused_by_the_store(answers) >= len(bodies) // 2
        assert client.get("/healthz").status_code == 503
        assert store.count_dead_letters() == 0
        store.free()
        recovered(client, tracker, bodies, unavailable(bodies, answers))
    store.close()


def test_a_read_only_sqlite_file_answers_503_and_dead_letters_nothing(tmp_path: Path) -> None:
    """A file opened read-only (SQLITE_READONLY): every callback 503, /healthz 503, then applied."""
    store = ConfinedStore(tmp_path / "read-only.sqlite3")
    tracker = Tracker(store)
    bodies = valid_bodies(40, seed=32)
    with receiving(tracker) as client:
        store.read_only(True)
        assert client.get("/healthz").status_code == 503  # before any callback failed
        answers = [post_json(client, body) for body in bodies]
        assert refused_by_the_store(answers) == len(bodies)
        assert client.get("/healthz").status_code == 503
        store.read_only(False)
        recovered(client, tracker, bodies, unavailable(bodies, answers))
    store.close()


def test_healthz_answers_503_for_a_retry_after_once_a_callback_met_a_failing_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heartbeat may fit where a callback did not: /healthz follows the 503, then recovers."""
    store = SQLiteStore(tmp_path / "once.sqlite3")
    tracker = Tracker(store)
    intake, failures = store.intake, [1]

    def full_once(*args: Any) -> Any:
        if failures:
            failures.pop()
            raise StoreUnavailable(store.target, "database or disk is full")
        return intake(*args)

    monkeypatch.setattr(store, "intake", full_once)
    body = valid_bodies(1, seed=37)[0]
    with receiving(tracker) as client:
        assert client.get("/healthz").status_code == 200
        assert post_json(client, body).status_code == 503
        assert client.get("/healthz").status_code == 503  # though its own write works
        wait_for(lambda: client.get("/healthz").status_code == 200)
        assert post_json(client, body).status_code == 200
    store.close()


def fill(path: Path) -> None:
    """Write ``path`` until its file system has no byte left."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(descriptor, b"\1" * 4096)
    finally:
        os.close(descriptor)


def test_a_full_disk_given_back_4_kib_at_a_time_dead_letters_no_valid_callback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite on a full tmpfs given back 4 KiB at a time: 503s, /healthz agrees, 0 dead-lettered."""
    with small_disk(tmp_path, "48m") as disk:  # more than the 16 MiB the WAL may take
        store = SQLiteStore(disk / "state.sqlite3")
        tracker = Tracker(store)
        bodies = valid_bodies(600, seed=33)
        filler = disk / "filler"
        with receiving(tracker) as client:
            for body in bodies[:30]:
                assert post_json(client, body).status_code == 200
            fill(filler)
            answers: list[httpx.Response] = []
            for index, body in enumerate(bodies[30:]):
                answers.append(post_json(client, body))
                if answers[-1].status_code in (202, 503):
                    assert client.get("/healthz").status_code == 503
                if index % 5 == 4:
                    os.truncate(filler, max(0, filler.stat().st_size - 4096))
            fill(filler)
            assert client.get("/healthz").status_code == 503
            refused = refused_by_the_store(answers)
            dead = store.count_dead_letters()
            with capsys.disabled():
                print(
                    f"\nfull disk: {len(answers)} valid callbacks, {refused} answered 503, "
                    f"{sum(a.status_code == 202 for a in answers)} 202, "
                    f"{dead} dead-lettered (must be 0)"
                )
            assert dead == 0
            assert refused >= len(answers) // 2
            filler.unlink()
            recovered(client, tracker, bodies, unavailable(bodies[30:], answers))
        store.close()


# --- PostgreSQL --------------------------------------------------------------------------


@pytest.fixture
def pg_role(postgres_dsn: str, pg_schema: str) -> Iterator[tuple[str, str]]:
    """The test's schema, made by the server's user, and a fresh role that may only read it.

    Yields (the role's DSN, its name); the role is dropped after the test.
    Nothing of the server's configuration changes: a role of the test's own.
    """
    from deliverystate.postgres import PostgresStore  # noqa: PLC0415 - optional

    PostgresStore(postgres_dsn, schema=pg_schema).close()
    role = f"ds_reader_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f'GRANT USAGE ON SCHEMA "{pg_schema}" TO {role}')
        admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{pg_schema}" TO {role}')
    try:
        yield psycopg.conninfo.make_conninfo(postgres_dsn, user=role), role
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def grant(postgres_dsn: str, schema: str, role: str, tables: str) -> None:
    """Let ``role`` write ``tables`` (``ALL TABLES``, or a list) of ``schema``, sequences too."""
    where = f'ALL TABLES IN SCHEMA "{schema}"' if tables == "ALL" else tables
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f'SET search_path TO "{schema}"')
        admin.execute(f"GRANT INSERT, UPDATE, DELETE ON {where} TO {role}")
        admin.execute(f'GRANT USAGE, UPDATE ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}')


def role_tracker(dsn: str, schema: str) -> Any:
    """A tracker over the schema as the role sees it (a store that must exist: creates nothing)."""
    from deliverystate.postgres import PostgresStore  # noqa: PLC0415 - optional

    return Tracker(PostgresStore(dsn, schema=schema, create=False))


def test_a_postgres_role_that_may_not_write_gets_503_and_nothing_is_dead_lettered(
    postgres_dsn: str, pg_schema: str, pg_role: tuple[str, str]
) -> None:
    """No INSERT for the store's role (InsufficientPrivilege): 503, /healthz 503; then applied."""
    dsn, role = pg_role
    tracker = role_tracker(dsn, pg_schema)
    bodies = valid_bodies(30, seed=34)
    try:
        with receiving(tracker) as client:
            assert client.get("/healthz").status_code == 503  # before any callback failed
            answers = [post_json(client, body) for body in bodies]
            assert refused_by_the_store(answers) == len(bodies)
            assert client.get("/healthz").status_code == 503
            grant(postgres_dsn, pg_schema, role, "ALL")
            recovered(client, tracker, bodies, unavailable(bodies, answers))
    finally:
        tracker.store.close()


def test_a_postgres_role_that_may_not_apply_bodies_dead_letters_nothing(
    postgres_dsn: str, pg_schema: str, pg_role: tuple[str, str]
) -> None:
    """The dead letter takes bodies, the messages refuse them: 503, none dead-lettered, retried."""
    dsn, role = pg_role
    grant(postgres_dsn, pg_schema, role, "ds_inbox, ds_dead_letters, ds_meta")
    tracker = role_tracker(dsn, pg_schema)
    bodies = valid_bodies(30, seed=35)
    try:
        with receiving(tracker) as client:
            answers = [post_json(client, body) for body in bodies]
            assert refused_by_the_store(answers) == len(bodies)
            assert client.get("/healthz").status_code == 503
            assert tracker.store.count_dead_letters() == 0
            assert tracker.store.count_pending() == 0
            grant(postgres_dsn, pg_schema, role, "ALL")
            recovered(client, tracker, bodies, unavailable(bodies, answers))
    finally:
        tracker.store.close()


def test_a_postgres_store_in_read_only_sessions_answers_503_not_500_or_a_dead_letter(
    postgres_dsn: str, pg_schema: str
) -> None:
    """default_transaction_read_only in the store's own sessions only: 503, /healthz 503."""
    from deliverystate.postgres import PostgresStore  # noqa: PLC0415 - optional

    class ReadOnlySessions(PostgresStore):
        """The store with every pooled session read-only once it is set up."""

        def _configure(self, connection: Any) -> None:
            super()._configure(connection)
            connection.execute("SET default_transaction_read_only = on")

    PostgresStore(postgres_dsn, schema=pg_schema).close()
    store = ReadOnlySessions(postgres_dsn, schema=pg_schema, create=False)
    tracker = Tracker(store)
    bodies = valid_bodies(20, seed=36)
    try:
        with receiving(tracker) as client:
            assert client.get("/healthz").status_code == 503
            answers = [post_json(client, body) for body in bodies]
            assert refused_by_the_store(answers) == len(bodies)
            assert tracker.store.count_dead_letters() == 0
            assert tracker.store.count_pending() == 0
    finally:
        store.close()
