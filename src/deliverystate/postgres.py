"""``deliverystate.postgres``: the PostgreSQL store (the ``postgres`` extra: psycopg 3).

``PostgresStore`` is how several machines share state; see
``deliverystate.stores`` for the store family.  This module is the extra's
public name: importing it imports psycopg.
"""

from __future__ import annotations

from .stores._postgres import MIGRATIONS, TABLES, PostgresStore, redact

__all__ = ["MIGRATIONS", "TABLES", "PostgresStore", "redact"]
