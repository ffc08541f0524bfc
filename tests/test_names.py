"""``stores._names``: every form of a PostgreSQL password is redacted; a store's name is safe."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from deliverystate import MemoryStore, SQLiteStore
from deliverystate.postgres import PostgresStore
from deliverystate.stores import redact, store_name


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("postgresql://user:secret@host/db", "postgresql://user:***@host/db"),
        (
            "postgres://user:secret@host:5432/db?schema=s",
            "postgres://user:***@host:5432/db?schema=s",
        ),
        (
            "postgresql://user@host/db?password=secret&schema=s",
            "postgresql://user@host/db?password=***&schema=s",
        ),
        (
            "postgresql://user@host/db?sslmode=require&sslpassword=secret",
            "postgresql://user@host/db?sslmode=require&sslpassword=***",
        ),
        ("host=x password=secret dbname=d", "host=x password=*** dbname=d"),
        ("host=x password = secret dbname=d", "host=x password = *** dbname=d"),
        ("host=x password='se cr\\'et' dbname=d", "host=x password=*** dbname=d"),
        ("host=x PASSWORD=secret", "host=x PASSWORD=***"),
        ("postgresql://user:se%40c%3Aret@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user:se@c:ret@host/db", "postgresql://user:***@host/db"),
        ("postgresql://user:se/c?r#et@host/db", "postgresql://user:***@host/db"),
        (
            "postgresql://user:se%40cret@host/db?password=se%40cret",
            "postgresql://user:***@host/db?password=***",
        ),
    ],
)
def test_redact_replaces_every_form_of_password(location: str, expected: str) -> None:
    """User information, query parameters, key=value (quoted too), encoded or with @ : / ? #."""
    assert redact(location) == expected


@pytest.mark.parametrize(
    "location",
    [
        "state.sqlite3",
        "/var/lib/app/state.sqlite3",
        ":memory:",
        "postgresql://user@host/db?schema=s",
        "postgresql://host:5432/db",
        "host=x user=u dbname=d",
    ],
)
def test_redact_leaves_what_holds_no_password(location: str) -> None:
    """Paths and locations without a password come back as they were."""
    assert redact(location) == location


def test_redact_is_idempotent() -> None:
    """Redacting a redacted location changes nothing (store_name redacts a target again)."""
    once = redact("postgresql://user:secret@host/db?password=secret")
    assert redact(once) == once


def test_store_names_are_the_built_in_stores_targets(tmp_path: object) -> None:
    """The memory and SQLite stores are named as they were opened; another store by its class."""
    assert store_name(MemoryStore()) == ":memory:"
    path = f"{tmp_path}/state.sqlite3"
    with SQLiteStore(path) as store:
        assert store_name(store) == path

    class Raw(MemoryStore):
        target = "postgresql://u:secret@h/db"

    assert store_name(Raw()) == "postgresql://u:***@h/db"


def test_a_postgres_store_keeps_no_password_in_its_name(postgres_dsn: str, pg_schema: str) -> None:
    """A key=value DSN with a quoted password (trust auth ignores it): the name names the schema."""
    url = urlsplit(postgres_dsn)
    dsn = (
        f"host={url.hostname} port={url.port or 5432} dbname={url.path.lstrip('/')} "
        f"user={url.username or 'postgres'} password='se cr\\'et'"
    )
    with PostgresStore(dsn, schema=pg_schema) as store:
        name = store_name(store)
    assert "se cr" not in name
    assert "cr\\'et" not in name
    assert "et'" not in name
    assert name.endswith(f"password=*** (schema {pg_schema})")
