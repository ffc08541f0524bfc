"""``POST /callbacks/{provider}``: the other providers' callbacks, each behind its signature.

Twilio, Meta's WhatsApp Cloud API, Vonage and SMPP gateways (Jasmin's HTTP
receipts) post to a URL of their own.  A provider given a signature
(``create_app(signatures=...)``, see ``_signatures``) must sign every
request: one that fails gets 401 with the reason and is neither applied nor
kept, since a forged body is no callback to replay.  A provider without one
is guarded by the receiver's shared secret, like Clickatell's URL.  A body
that passes is wrapped in its envelope (``callbacks._envelope``) and taken
like Clickatell's: applied, or kept in the dead letter with its provider and
answered 400, so that ``dead-letter retry`` reads it as that provider's.

Meta checks the URL before it sends anything: ``GET /callbacks/meta`` with
``hub.mode=subscribe``, ``hub.verify_token`` and ``hub.challenge`` is
answered with the challenge when the token is the one configured
(``meta_verify_token``), and 403 otherwise.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..callbacks._envelope import PROVIDER_PARSERS, ProviderBody, body_text, wrap
from ..errors import InvalidCallback
from ._auth import TOKEN_PARAM, Guard
from ._metrics import ReceiverMetrics
from ._reads import json_error
from ._requests import FORM, JSON, BodyDeadline, fields, media_type
from ._signatures import (
    MetaSignature,
    ProviderSignature,
    SignedRequest,
    TwilioSignature,
    VonageSignature,
    check_signature,
)

__all__ = ["TEXT", "ProviderEndpoints", "provider_settings"]

#: An SMPP gateway may post a delivery receipt's text as it is.
TEXT = "text/plain"
_MEDIA = (JSON, FORM, TEXT)


class _Taker(Protocol):
    """What the receiver lends these endpoints: its guard, body deadline and intake."""

    guard: Guard
    deadline: BodyDeadline
    metrics: ReceiverMetrics

    def _denied(self) -> JSONResponse: ...

    async def _take(self, payload: bytes | Mapping[str, Any]) -> Response: ...

    async def _keep(self, body: bytes, invalid: InvalidCallback) -> Response: ...


class ProviderEndpoints:
    """The routes of the providers other than Clickatell, for one receiver."""

    def __init__(
        self,
        receiver: _Taker,
        signatures: Mapping[str, ProviderSignature],
        meta_verify_token: str | None,
    ) -> None:
        unknown = sorted(set(signatures) - set(PROVIDER_PARSERS))
        if unknown:
            raise ValueError(f"signatures for providers this receiver does not read: {unknown}")
        self.receiver = receiver
        self.signatures = dict(signatures)
        self.meta_verify_token = meta_verify_token

    async def post(self, request: Request) -> Response:
        """A provider's callback: its signature (or the shared secret), then its body."""
        return await self.receiver.metrics.timed(self._post, request)

    async def _post(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        if provider not in PROVIDER_PARSERS:
            known = ["clickatell", *sorted(PROVIDER_PARSERS)]
            return json_error(404, f"no provider {provider!r}", providers=known)
        media = media_type(request)
        if media not in _MEDIA:
            return json_error(
                415, f"unsupported content type {media or '(none)'!r}", accepted=_MEDIA
            )
        body = await self.receiver.deadline.read_or_answer(request)
        if not isinstance(body, bytes):
            return body
        config = self.signatures.get(provider)
        if config is not None:
            raw_path = request.scope.get("raw_path") or request.url.path.encode()
            query = request.scope.get("query_string", b"").decode("latin-1")
            signed = SignedRequest(raw_path.decode("latin-1"), query, request.headers, body)
            check = check_signature(config, signed)
            if not check.ok:
                return JSONResponse(check.to_json(), status_code=401)
        elif not self.receiver.guard.allows(request):
            return self.receiver._denied()
        try:
            payload: ProviderBody = (
                fields(body, drop=TOKEN_PARAM) if media == FORM else body_text(body)
            )
        except InvalidCallback as invalid:
            return await self.receiver._keep(body, invalid)
        received_ms = time.time_ns() // 1_000_000
        return await self.receiver._take(wrap(provider, payload, received_ms))

    async def meta_handshake(self, request: Request) -> Response:
        """Meta's check of the URL: the challenge back if the verify token is the one set."""
        params = request.query_params
        token = params.get("hub.verify_token", "")
        expected = self.meta_verify_token
        if (
            expected is None
            or params.get("hub.mode") != "subscribe"
            or not hmac.compare_digest(token.encode(), expected.encode())
        ):
            return json_error(403, "not a subscription with this receiver's verify token")
        return PlainTextResponse(params.get("hub.challenge", ""))


def provider_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """``create_app``'s ``signatures`` and ``meta_verify_token`` from the environment.

    The variables (``deliverystate serve`` reads them, so that secrets stay off
    the command line, where ``ps`` shows them): ``DELIVERYSTATE_META_APP_SECRET``,
    ``DELIVERYSTATE_META_VERIFY_TOKEN``, ``DELIVERYSTATE_TWILIO_AUTH_TOKEN`` with
    ``DELIVERYSTATE_PUBLIC_URL``, ``DELIVERYSTATE_VONAGE_SIGNATURE_SECRET``.

    A Twilio token without the public URL it signs (or the other way round)
    is a ``ValueError`` naming the missing variable: a receiver that would
    answer every Twilio callback 401 should not start.
    """
    signatures: dict[str, ProviderSignature] = {}
    secret = environ.get("DELIVERYSTATE_META_APP_SECRET")
    if secret:
        signatures["meta"] = MetaSignature(secret)
    token, public_url = (
        environ.get("DELIVERYSTATE_TWILIO_AUTH_TOKEN"),
        environ.get("DELIVERYSTATE_PUBLIC_URL"),
    )
    if bool(token) != bool(public_url):
        missing = "DELIVERYSTATE_PUBLIC_URL" if token else "DELIVERYSTATE_TWILIO_AUTH_TOKEN"
        raise ValueError(f"Twilio's signature needs {missing} as well")
    if token and public_url:
        signatures["twilio"] = TwilioSignature(token, public_url)
    vonage = environ.get("DELIVERYSTATE_VONAGE_SIGNATURE_SECRET")
    if vonage:
        signatures["vonage"] = VonageSignature(vonage)
    verify = environ.get("DELIVERYSTATE_META_VERIFY_TOKEN") or None
    return {"signatures": signatures, "meta_verify_token": verify}
