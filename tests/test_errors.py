"""The errors: one base, the built-in each resembles, structured fields, an HTTP status hint."""

from __future__ import annotations

import pytest

from deliverystate import Status, errors
from deliverystate.errors import (
    CursorMovedBack,
    DeliveryStateError,
    GraphvizNotFound,
    IllegalTransition,
    InvalidCallback,
    NoDatabase,
    PolicyMismatch,
    SchemaMismatch,
    StoreUnavailable,
    UnknownStatusCode,
)

EXAMPLES = [
    (UnknownStatusCode(142), ValueError, 400, {"value": 142}),
    (InvalidCallback("statusCode", "missing", None), ValueError, 400, {"field": "statusCode"}),
    (
        IllegalTransition(Status.READ, Status.QUEUED, "m"),
        ValueError,
        409,
        {"source": Status.READ, "destination": Status.QUEUED, "message_id": "m"},
    ),
    (
        PolicyMismatch("db", "delivery wins", "failure wins"),
        ValueError,
        500,
        {"stored": "delivery wins"},
    ),
    (
        StoreUnavailable("db.sqlite3", "disk I/O error"),
        ConnectionError,
        503,
        {"reason": "disk I/O error"},
    ),
    (SchemaMismatch("db", 9, 2), RuntimeError, 500, {"found": 9, "expected": 2}),
    (NoDatabase("x.sqlite3"), FileNotFoundError, 404, {"path": "x.sqlite3", "reason": None}),
    (
        NoDatabase("postgresql://u:***@h/d (schema s)", "schema s does not exist"),
        FileNotFoundError,
        404,
        {"target": "postgresql://u:***@h/d (schema s)", "reason": "schema s does not exist"},
    ),
    (GraphvizNotFound(), FileNotFoundError, 500, {"program": "dot"}),
    (
        CursorMovedBack("billing", 41, 42),
        ValueError,
        409,
        {"consumer": "billing", "seq": 41, "current": 42},
    ),
]


@pytest.mark.parametrize(("error", "builtin", "status", "fields"), EXAMPLES)
def test_each_error_has_the_base_its_builtin_its_status_and_its_fields(
    error: DeliveryStateError, builtin: type, status: int, fields: dict[str, object]
) -> None:
    """Catchable as DeliveryStateError and as the built-in; http_status and facts as attributes."""
    assert isinstance(error, DeliveryStateError)
    assert isinstance(error, builtin)
    assert error.http_status == status
    for name, value in fields.items():
        assert getattr(error, name) == value
    assert str(error)


def test_every_error_of_the_module_is_covered() -> None:
    """A new error class gets its row above (and so its status and built-in are chosen)."""
    public = {getattr(errors, name) for name in errors.__all__} - {DeliveryStateError}
    assert public == {type(error) for error, _, _, _ in EXAMPLES}


def test_a_schema_mismatch_says_what_to_do_either_way() -> None:
    """Newer: upgrade deliverystate; older (a read-only open): a writing command migrates it."""
    assert "upgrade deliverystate" in str(SchemaMismatch("db", 9, 7))
    older = str(SchemaMismatch("db", 6, 7))
    assert older.startswith("database db has schema version 6, older than")
    assert "a read-only command does not migrate it" in older
    assert "upgrade" not in older
