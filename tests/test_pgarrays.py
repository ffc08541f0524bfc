"""A small PostgreSQL batch sent as JSON in pipelines writes what the COPY path writes."""

from __future__ import annotations

import json
import random
from typing import Any

import psycopg
import pytest

import deliverystate.stores._postgres as postgres_module
from deliverystate import StatusEvent, Tracker
from deliverystate.postgres import PostgresStore
from deliverystate.simulate import callback_body, generate_callbacks
from deliverystate.stores._rows import fingerprints
from deliverystate.testing import BASE_MS

#: Client ids JSON and SQL must both carry exactly: quotes, backslashes, escapes, emoji.
_AWKWARD = [
    'o"brien',
    "back\\slash",
    "\\u0041 no escape",
    "caf\u00e9 \U0001f680",
    "{json}",
    "x" * 200,
]


def bodies() -> list[str]:
    """A simulated stream (duplicates, reordering, invalid bodies) and awkward client ids."""
    stream = [c.body for c in generate_callbacks(300, seed=5)]
    for index, client in enumerate(_AWKWARD):
        event = StatusEvent.from_ms(f"awkward-{index}", 2, BASE_MS + index, "sms", client)
        stream.append(json.dumps(callback_body(event)))
    random.Random(5).shuffle(stream)
    return stream


def tables(dsn: str, schema: str) -> dict[str, Any]:
    """What a schema holds, arrival numbers aside (a small batch's draw leaves gaps)."""
    with psycopg.connect(dsn) as connection:
        connection.execute(f'SET search_path TO "{schema}"')
        messages = connection.execute(
            "SELECT message_id, status, timestamp_ms, precedence, channel, client_message_id, "
            "local, deadline_ms, due_ms, first_ms, delivered_ms, read_ms, reports "
            "FROM ds_messages ORDER BY message_id"
        ).fetchall()
        return {
            "messages": [(*row[:-1], sorted(fingerprints(row[-1]))) for row in messages],
            "history": connection.execute(
                "SELECT message_id, status, timestamp_ms, channel, client_message_id, outcome, "
                "local FROM ds_history ORDER BY arrival"
            ).fetchall(),
            "changes": connection.execute(
                "SELECT message_id, previous, status, timestamp_ms, channel, client_message_id, "
                "local FROM ds_changes ORDER BY seq"
            ).fetchall(),
            "counts": connection.execute(
                "SELECT status, local, SUM(n) FROM ds_counts GROUP BY status, local "
                "HAVING SUM(n) <> 0 ORDER BY status, local"
            ).fetchall(),
            "dead": connection.execute(
                "SELECT payload FROM ds_dead_letters ORDER BY payload"
            ).fetchall(),
        }


def test_small_batches_as_json_write_what_copy_writes(
    postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same groups through both paths: the same states, history, feed, counts, letters."""
    stream = bodies()
    rng = random.Random(7)
    groups = []
    while len(stream) > sum(map(len, groups)):
        start = sum(map(len, groups))
        groups.append(stream[start : start + rng.randint(1, 20)])
    copied = f"{pg_schema}_copy"
    held: dict[str, Any] = {}
    small_batches: list[int] = []
    real = postgres_module.lock_and_load

    def counted(*args: Any) -> Any:
        small_batches.append(1)
        return real(*args)

    monkeypatch.setattr(postgres_module, "lock_and_load", counted)
    try:
        for schema, small in ((pg_schema, 64), (copied, 0)):
            monkeypatch.setattr(postgres_module, "ARRAYS_UP_TO", small)
            store = PostgresStore(postgres_dsn, schema=schema)
            tracker = Tracker(store)
            for group in groups:
                tracker.receive_many(group)
            store.close()
            held[schema] = tables(postgres_dsn, schema)
            held[f"{schema} small"] = len(small_batches)
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{copied}" CASCADE')
    assert held[pg_schema]["messages"], "the stream must leave states behind"
    assert held[f"{pg_schema} small"] >= len(groups) - 1, "the first pass took the JSON path"
    assert held[f"{copied} small"] == held[f"{pg_schema} small"], "the second took COPY"
    clients = {row[5] for row in held[pg_schema]["messages"]}
    assert set(_AWKWARD) <= clients, "every awkward client id must arrive exactly"
    for table in ("messages", "history", "changes", "counts", "dead"):
        assert held[pg_schema][table] == held[copied][table], table
