"""Databases as older versions of deliverystate wrote them, for the migration tests.

The DDL is copied from the releases that wrote it (schema version 1: bodies as
text; version 2: bodies as bytes; both with history keyed by (message, code,
timestamp)), so that a test can build an old database and open it with this
version, as an upgrade does.  ``fill`` writes the same content into either
store: two messages with their history (a STALE report among them), a body
waiting in the inbox and one in the dead letter, keyed by the default policy as
those releases defined it (before local reports moved its ranks).
"""

from __future__ import annotations

from typing import Any

from deliverystate import Status
from deliverystate.rules._policy import PREVIOUS_TABLES
from deliverystate.testing import BASE_MS

#: The default policy as the releases before schema version 5 defined it.
OLD_DEFAULT = PREVIOUS_TABLES["delivery wins"]

SQLITE_V1 = (
    """CREATE TABLE ds_messages (
        message_id TEXT PRIMARY KEY, status INTEGER NOT NULL, timestamp_ms INTEGER NOT NULL,
        precedence INTEGER, channel TEXT, client_message_id TEXT
    ) WITHOUT ROWID""",
    """CREATE TABLE ds_history (
        arrival INTEGER PRIMARY KEY, message_id TEXT NOT NULL, status INTEGER NOT NULL,
        timestamp_ms INTEGER NOT NULL, channel TEXT, client_message_id TEXT,
        outcome TEXT NOT NULL, UNIQUE (message_id, status, timestamp_ms)
    )""",
    """CREATE TABLE ds_inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL, received_at TEXT NOT NULL
    )""",
    """CREATE TABLE ds_dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT, payload TEXT NOT NULL, digest TEXT NOT NULL UNIQUE,
        error TEXT NOT NULL, received_at TEXT NOT NULL
    )""",
)

POSTGRES_V1 = (
    """CREATE TABLE ds_messages (
        message_id TEXT PRIMARY KEY, status SMALLINT NOT NULL, timestamp_ms BIGINT NOT NULL,
        precedence BIGINT, channel TEXT, client_message_id TEXT
    ) WITH (fillfactor = 70)""",
    """CREATE TABLE ds_history (
        message_id TEXT NOT NULL, status SMALLINT NOT NULL, timestamp_ms BIGINT NOT NULL,
        channel TEXT, client_message_id TEXT, outcome TEXT NOT NULL,
        arrival BIGINT GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (message_id, status, timestamp_ms)
    )""",
    """CREATE TABLE ds_inbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload TEXT NOT NULL,
        received_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE ds_dead_letters (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload TEXT NOT NULL,
        digest TEXT NOT NULL UNIQUE, error TEXT NOT NULL, received_at TIMESTAMPTZ NOT NULL
    )""",
)

#: Version 2 kept bodies as bytes; its PostgreSQL columns said so (SQLite's TEXT columns
#: keep bytes as they are).
POSTGRES_V2 = tuple(ddl.replace("payload TEXT", "payload BYTEA") for ddl in POSTGRES_V1)

#: message id, status, timestamp offset, outcome, in arrival order
HISTORY = [
    ("old-1", Status.QUEUED, 0, "applied"),
    ("old-1", Status.DEVICE_ACK, 900, "applied"),
    ("old-1", Status.SENT_TO_SUPPLIER, 400, "stale"),
    ("old-2", Status.QUEUED, 10, "applied"),
    ("old-2", Status.EXPIRED, 60_000, "applied"),
]
#: the states those reports left
STATES = {
    "old-1": (Status.DEVICE_ACK, BASE_MS + 900),
    "old-2": (Status.EXPIRED, BASE_MS + 60_000),
}
INBOX = '{"waiting": "é"}'
DEAD = "{broken é"


def fill(cursor: Any, param: str, *, v1: bool) -> None:
    """Write the old content with the driver's placeholder ``param`` (``?`` or ``%s``)."""
    for message_id, (status, ts) in STATES.items():
        cursor.execute(
            "INSERT INTO ds_messages (message_id, status, timestamp_ms, precedence, channel, "
            f"client_message_id) VALUES ({', '.join([param] * 6)})",
            (message_id, int(status), ts, OLD_DEFAULT.key(status, ts), "sms", None),
        )
    for message_id, status, offset, outcome in HISTORY:
        cursor.execute(
            "INSERT INTO ds_history (message_id, status, timestamp_ms, channel, "
            f"client_message_id, outcome) VALUES ({', '.join([param] * 6)})",
            (message_id, int(status), BASE_MS + offset, "sms", None, outcome),
        )
    payload = (lambda text: text) if v1 else (lambda text: text.encode())
    cursor.execute(
        f"INSERT INTO ds_inbox (payload, received_at) VALUES ({param}, CURRENT_TIMESTAMP)",
        (payload(INBOX),),
    )
    cursor.execute(
        "INSERT INTO ds_dead_letters (payload, digest, error, received_at) "
        f"VALUES ({param}, 'd', 'invalid callback: body: not JSON', CURRENT_TIMESTAMP)",
        (payload(DEAD),),
    )
    cursor.execute(
        f"INSERT INTO ds_meta (key, value) VALUES ('schema_version', {param})",
        ("1" if v1 else "2",),
    )
    for key, value in (("policy", OLD_DEFAULT.fingerprint), ("policy_name", OLD_DEFAULT.name)):
        cursor.execute(f"INSERT INTO ds_meta (key, value) VALUES ({param}, {param})", (key, value))


#: PostgreSQL's counts as schema version 7 made them: one row per (status, local).
POSTGRES_V7_COUNTS = """CREATE TABLE ds_counts (
    status SMALLINT NOT NULL,
    local SMALLINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (status, local)
) WITH (fillfactor = 50)"""
