"""Another provider's callback body, wrapped so that it is read as that provider's wherever it goes.

The receiver keeps Clickatell's bodies as they came.  A body posted to
``/callbacks/twilio`` (or ``meta``, ``vonage``, ``smpp``) is handed on as an
envelope instead, ``{"deliverystate": "callback", "provider": "twilio",
"body": ...}``, the body as its text or as a form's fields, and kept that way
wherever it ends up: applied, or in the dead letter.  :func:`read_callback`
opens envelopes the way it reads archive lines, so a dead letter retried
after an upgrade, or a file of kept bodies replayed, is parsed as the
provider's again: nothing depends on the URL a body once came to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidCallback
from ._archive import ARCHIVE_KEY
from ._meta import read_meta
from ._results import ParsedCallback
from ._smpp import read_smpp
from ._twilio import read_twilio
from ._vonage import read_vonage

__all__ = [
    "ENVELOPE_KIND",
    "PROVIDER_PARSERS",
    "ProviderBody",
    "body_text",
    "is_envelope",
    "open_envelope",
    "read_provider",
    "wrap",
]

#: The value of ``ARCHIVE_KEY`` that marks an envelope (an archive line's is ``"archive"``).
ENVELOPE_KIND = "callback"
#: What a provider's parser takes: the body's text, or a form's (or query's) fields.
ProviderBody = str | Mapping[str, str]
#: The parsers of the providers other than Clickatell, by the name in their URL; each takes
#: the body and when it was received (ms), which dates the reports of a provider that
#: sends no time (Twilio).
PROVIDER_PARSERS: dict[str, Callable[[ProviderBody, int | None], ParsedCallback]] = {
    "meta": read_meta,
    "smpp": read_smpp,
    "twilio": read_twilio,
    "vonage": read_vonage,
}


def wrap(provider: str, body: ProviderBody, received_ms: int) -> dict[str, Any]:
    """The envelope of ``body``, a callback of ``provider`` taken at ``received_ms``."""
    if provider not in PROVIDER_PARSERS:
        raise ValueError(f"no parser for provider {provider!r}")
    return {
        ARCHIVE_KEY: ENVELOPE_KIND,
        "provider": provider,
        "received_ms": received_ms,
        "body": body,
    }


def is_envelope(body: Mapping[str, Any]) -> bool:
    """Whether a decoded body is an envelope."""
    return body.get(ARCHIVE_KEY) == ENVELOPE_KIND


def open_envelope(body: Mapping[str, Any]) -> ParsedCallback:
    """The callback an envelope holds, parsed by its provider's parser.

    An envelope that is not one (no known provider, a body neither text nor
    fields of text) is an :class:`InvalidCallback` naming the field, like any
    other body that cannot be read.
    """
    provider = body.get("provider")
    parse = PROVIDER_PARSERS.get(provider) if isinstance(provider, str) else None
    if parse is None:
        known = ", ".join(sorted(PROVIDER_PARSERS)) or "none"
        raise InvalidCallback(
            "provider", f"{provider!r} is no provider this release reads ({known})"
        )
    received = body.get("received_ms")
    if received is not None and (isinstance(received, bool) or not isinstance(received, int)):
        raise InvalidCallback("received_ms", "must be whole milliseconds")
    return _parsed(parse, body.get("body"), received)


def body_text(raw: bytes) -> str:
    """A provider's body as text; bytes that are no UTF-8 are an :class:`InvalidCallback`."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidCallback("body", f"not UTF-8 ({error.reason} at byte {error.start})") from None


def _parsed(
    parse: Callable[[ProviderBody, int | None], ParsedCallback],
    body: object,
    received_ms: int | None,
) -> ParsedCallback:
    """``body`` parsed when it is text or fields of text, refused by name otherwise."""
    if isinstance(body, str):
        return parse(body, received_ms)
    if isinstance(body, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in body.items()
    ):
        return parse(body, received_ms)
    raise InvalidCallback("body", "a provider's body must be text or fields of text")


def read_provider(
    provider: str, payload: bytes | str | Mapping[str, Any], received_ms: int | None
) -> ParsedCallback:
    """A body of ``provider`` (bytes or text as posted, or a form's fields), parsed.

    ``provider`` must be one of :data:`PROVIDER_PARSERS` (a ``ValueError``
    otherwise: a name in code, not in a body).  Bytes that are no UTF-8, and
    fields that are not text, are an :class:`InvalidCallback`.
    """
    parse = PROVIDER_PARSERS.get(provider)
    if parse is None:
        known = ", ".join(["clickatell", *sorted(PROVIDER_PARSERS)])
        raise ValueError(f"unknown provider {provider!r}: one of {known}")
    return _parsed(
        parse, body_text(payload) if isinstance(payload, bytes) else payload, received_ms
    )
