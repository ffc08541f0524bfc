"""Callback bodies in, status events out: every format Clickatell sends, and archive lines.

``_decode`` turns bytes into JSON, ``_fields`` reads one field of one
format, ``_fastpath`` parses the common bodies in one pass (held equal to the
general parser by ``tests/test_fastpath.py``), ``_parse`` recognises a body's
format and parses it, ``_results`` holds what a parse returns, ``_formats``
the legacy code tables, and ``_archive`` the lines retention writes, which a
replay reads back like any other body.  The other providers' words are
tables in ``_providers``, read by ``_meta``, ``_twilio``, ``_vonage`` and
``_smpp``; ``_envelope`` keeps their bodies with their provider's name.
"""

from __future__ import annotations

from ._formats import LEGACY_STATUS, PLATFORM_NAMES
from ._parse import parse_callback, read_callback, read_many
from ._providers import PROVIDERS
from ._results import CallbackFormat, ParsedBatch, ParsedCallback
from ._smpp import normalise_smpp_id

__all__ = [
    "LEGACY_STATUS",
    "PLATFORM_NAMES",
    "PROVIDERS",
    "CallbackFormat",
    "ParsedBatch",
    "ParsedCallback",
    "normalise_smpp_id",
    "parse_callback",
    "read_callback",
    "read_many",
]
