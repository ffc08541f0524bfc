"""Signature checks for the providers that sign their webhooks: Twilio, Meta and Vonage.

Clickatell cannot sign its callbacks (see ``_auth``); these providers can, each
its own way, and a request that fails its provider's check must be answered
401 and never applied.  Each check is a pure function of a provider's
configuration and the request as received (:class:`SignedRequest`): it returns
a :class:`SignatureCheck`, ``ok`` or a :class:`Reason`, because a forged,
stale or garbled request is an expected situation, not a bug.  Exceptions are
for misuse only (an empty secret, a public URL that is not one).

* **Twilio** ``X-Twilio-Signature``: base64 of HMAC-SHA1, keyed with the auth
  token, over the URL Twilio called followed, for a form POST, by each
  parameter's name and value in sorted name order (a repeated name: its
  distinct values in sorted order, as Twilio's own libraries do).  A JSON body
  is covered instead by a ``bodySHA256`` query parameter (hex SHA-256 of the
  body) inside the signed URL.  Behind a proxy the URL Twilio signed is not the
  one the server sees, so the scheme and host come from a configured public
  URL.  Like Twilio's libraries, the URL is also tried without its port and
  with the scheme's default port, because Twilio's own signing is not
  consistent about ports.
* **Meta** ``X-Hub-Signature-256``: ``sha256=`` and the hex HMAC-SHA256 of the
  raw body, keyed with the app secret.
* **Vonage** signed webhooks: a JWT in ``Authorization: Bearer ...``, HS256
  with the signature secret (read with PyJWT; no other algorithm, ``none``
  included, is accepted), whose ``payload_hash`` claim, where present, is the
  hex SHA-256 of the raw body; ``iat`` must be neither in the future nor older
  than ``max_age_seconds``, give or take ``leeway_seconds``.

Every comparison takes constant time (:func:`hmac.compare_digest`).  Secrets
are kept out of every ``repr``, and a reason's detail is fixed text: it never
holds a secret, the expected signature or the one offered.  Nothing here logs.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import string
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

import attrs
import jwt
from starlette.requests import Request

__all__ = [
    "META_HEADER",
    "TWILIO_HEADER",
    "VONAGE_HEADER",
    "MetaSignature",
    "ProviderSignature",
    "Reason",
    "SignatureCheck",
    "SignedRequest",
    "TwilioSignature",
    "VonageSignature",
    "check_meta",
    "check_signature",
    "check_twilio",
    "check_vonage",
    "read_request",
]

#: The header Twilio signs its webhooks in.
TWILIO_HEADER = "X-Twilio-Signature"
#: The header Meta signs its webhooks in (``sha256=<hex>``).
META_HEADER = "X-Hub-Signature-256"
#: The header Vonage's JWT comes in (``Bearer <jwt>``).
VONAGE_HEADER = "Authorization"

_FORM = "application/x-www-form-urlencoded"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HEX = frozenset(string.hexdigits)


class Reason(enum.Enum):
    """Why a request failed its signature check (the value is what a 401 body says)."""

    MISSING_HEADER = "missing_header"
    MALFORMED = "malformed"
    MISMATCH = "mismatch"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"


@attrs.frozen
class SignatureCheck:
    """The outcome of one check: ``ok``, or a reason and a fixed, secret-free detail."""

    reason: Reason | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Whether the request passed its provider's check."""
        return self.reason is None

    def to_json(self) -> dict[str, str]:
        """The body of a 401: the reason and its detail, nothing the caller could learn from."""
        if self.reason is None:
            return {}
        return {"error": "signature", "reason": self.reason.value, "detail": self.detail}


_OK = SignatureCheck()


def _fail(reason: Reason, detail: str) -> SignatureCheck:
    return SignatureCheck(reason, detail)


def _lowered(headers: Mapping[str, str]) -> Mapping[str, str]:
    """Header names are case-insensitive: keep them lower-case."""
    return {name.lower(): value for name, value in headers.items()}


@attrs.frozen
class SignedRequest:
    """A request as received, which is what a signature covers.

    ``path`` is the path as the server received it (``scope["raw_path"]``,
    which includes uvicorn's ``--root-path``), ``query`` the raw query string
    (without ``?``), ``body`` the raw bytes.  :func:`read_request` builds one
    from a Starlette request.
    """

    path: str
    query: str = ""
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_lowered)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """One header's value, by case-insensitive name."""
        return self.headers.get(name.lower())


async def read_request(request: Request) -> SignedRequest:
    """The parts of a Starlette request its signature covers (the body is read whole)."""
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return SignedRequest(path, query, request.headers, await request.body())


def _secret(value: str) -> str:
    """A secret must be a non-empty string (misuse otherwise, so an exception)."""
    if not isinstance(value, str) or not value:
        raise ValueError("a provider secret must be a non-empty string")
    return value


def _public_url(value: str) -> str:
    """The public URL must be ``http(s)://host[:port][/prefix]``, nothing more."""
    parts = urlsplit(value)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"public_url must be an http(s) URL with a host, not {value!r}")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"public_url must have no query, fragment or credentials: {value!r}")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"public_url has a port that is not one: {value!r}") from None
    return value.rstrip("/")


@attrs.frozen
class TwilioSignature:
    """Twilio's check: the account's auth token, and the public URL Twilio calls.

    ``public_url`` is what precedes the path the server receives in the URL
    configured at Twilio: ``https://hooks.example.com`` when a proxy passes
    ``/callbacks/twilio`` through unchanged, ``https://example.com/ds`` when
    it strips a ``/ds`` prefix the server is not told about.
    """

    auth_token: str = attrs.field(repr=False, converter=_secret)
    public_url: str = attrs.field(converter=_public_url)


@attrs.frozen
class MetaSignature:
    """Meta's check: the app secret of the WhatsApp app."""

    app_secret: str = attrs.field(repr=False, converter=_secret)


def _non_negative(_instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value >= 0:
        raise ValueError(f"{attribute.name} must be a non-negative number of seconds")


@attrs.frozen
class VonageSignature:
    """Vonage's check: the signature secret, and how old a token may be.

    ``max_age_seconds`` bounds how long after its ``iat`` a token is accepted
    (``None``: no bound beyond an ``exp`` claim, if the token has one);
    ``leeway_seconds`` allows for clock skew both ways.  With
    ``require_payload_hash``, a token without the ``payload_hash`` claim is
    refused; otherwise the claim is checked where present.
    """

    signature_secret: str = attrs.field(repr=False, converter=_secret)
    leeway_seconds: float = attrs.field(default=30.0, validator=_non_negative)
    max_age_seconds: float | None = attrs.field(default=300.0, validator=_non_negative)
    require_payload_hash: bool = False


#: Any provider's configuration (:func:`check_signature` takes each).
ProviderSignature = TwilioSignature | MetaSignature | VonageSignature


def _hmac(key: str, message: bytes, digest: str) -> bytes:
    return hmac.new(key.encode("utf-8"), message, digest).digest()


def _same_hex(offered: str, expected: bytes) -> bool:
    """Whether ``offered`` is the hex of ``expected`` (either case), in constant time."""
    return hmac.compare_digest(
        offered.strip().lower().encode("ascii", "replace"), expected.hex().encode()
    )


# -- Twilio -------------------------------------------------------------------------------


def _with_port(url: str, keep: bool) -> str:
    """``url`` without its port (``keep`` false) or with the scheme's default one if it has none."""
    parts = urlsplit(url)
    if parts.port is None:
        if not keep:
            return url
        netloc = f"{parts.netloc}:{_DEFAULT_PORTS[parts.scheme]}"
    elif keep:
        return url
    else:
        netloc = parts.netloc[: parts.netloc.rfind(":")]
    return urlunsplit(parts._replace(netloc=netloc))


def _twilio_urls(config: TwilioSignature, request: SignedRequest) -> list[str]:
    """The URL Twilio called, as configured, without its port and with the default port."""
    url = config.public_url + request.path + (f"?{request.query}" if request.query else "")
    urls = [url]
    for variant in (_with_port(url, keep=False), _with_port(url, keep=True)):
        if variant not in urls:
            urls.append(variant)
    return urls


def _twilio_params(pairs: Iterable[tuple[str, str]]) -> str:
    """Each name then each of its distinct values, names and values in sorted order."""
    values: dict[str, set[str]] = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    return "".join(name + value for name in sorted(values) for value in sorted(values[name]))


def check_twilio(config: TwilioSignature, request: SignedRequest) -> SignatureCheck:
    """Twilio's ``X-Twilio-Signature`` over the URL and the form (or ``bodySHA256``)."""
    offered = request.header(TWILIO_HEADER)
    if offered is None or not offered.strip():
        return _fail(Reason.MISSING_HEADER, f"no {TWILIO_HEADER} header")
    try:
        signature = base64.b64decode(offered.strip(), validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    if len(signature) != hashlib.sha1().digest_size:
        return _fail(Reason.MALFORMED, f"{TWILIO_HEADER} is not a base64 HMAC-SHA1")
    body_hashes = parse_qs(request.query, keep_blank_values=True).get("bodySHA256")
    params = ""
    if body_hashes is not None:
        if len(body_hashes) != 1:
            return _fail(Reason.MALFORMED, "bodySHA256 is given more than once")
    elif (request.header("content-type") or "").split(";")[0].strip().lower() == _FORM:
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return _fail(Reason.MALFORMED, "the form is not UTF-8")
        params = _twilio_params(parse_qsl(text, keep_blank_values=True))
    elif request.body:
        return _fail(Reason.MALFORMED, "a body that is not a form needs bodySHA256 in the URL")
    matches = [
        hmac.compare_digest(
            _hmac(config.auth_token, (url + params).encode("utf-8"), "sha1"), signature
        )
        for url in _twilio_urls(config, request)
    ]
    if not any(matches):
        return _fail(Reason.MISMATCH, f"{TWILIO_HEADER} does not match the URL and parameters")
    if body_hashes is not None and not _same_hex(
        body_hashes[0], hashlib.sha256(request.body).digest()
    ):
        return _fail(Reason.MISMATCH, "the body does not match its bodySHA256")
    return _OK


# -- Meta ---------------------------------------------------------------------------------


def check_meta(config: MetaSignature, request: SignedRequest) -> SignatureCheck:
    """Meta's ``X-Hub-Signature-256``: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    offered = request.header(META_HEADER)
    if offered is None or not offered.strip():
        return _fail(Reason.MISSING_HEADER, f"no {META_HEADER} header")
    scheme, equals, digest = offered.strip().partition("=")
    if scheme.lower() != "sha256" or not equals or len(digest) != 64 or set(digest) - _HEX:
        return _fail(Reason.MALFORMED, f"{META_HEADER} is not sha256=<64 hex digits>")
    if not _same_hex(digest, _hmac(config.app_secret, request.body, "sha256")):
        return _fail(Reason.MISMATCH, f"{META_HEADER} does not match the body")
    return _OK


# -- Vonage -------------------------------------------------------------------------------


def _vonage_claims(config: VonageSignature, token: str) -> dict[str, Any] | SignatureCheck:
    """The token's verified claims, or why it is refused (signature first, then times)."""
    try:
        return jwt.decode(
            token,
            config.signature_secret,
            algorithms=["HS256"],
            leeway=config.leeway_seconds,
            options={"require": ["iat"]},
        )
    except jwt.InvalidSignatureError:
        return _fail(Reason.MISMATCH, "the JWT's signature does not match")
    except jwt.ExpiredSignatureError:
        return _fail(Reason.EXPIRED, "the JWT has expired (exp)")
    except jwt.ImmatureSignatureError:
        return _fail(Reason.NOT_YET_VALID, "the JWT is not valid yet (iat or nbf)")
    except jwt.InvalidAlgorithmError:
        return _fail(Reason.MALFORMED, "the JWT's algorithm is not HS256")
    except jwt.InvalidTokenError:
        return _fail(Reason.MALFORMED, "the JWT cannot be read, or lacks a valid iat")


def check_vonage(config: VonageSignature, request: SignedRequest) -> SignatureCheck:
    """Vonage's signed webhook: an HS256 JWT, its ``iat`` and its ``payload_hash``."""
    offered = request.header(VONAGE_HEADER)
    if offered is None or not offered.strip():
        return _fail(Reason.MISSING_HEADER, f"no {VONAGE_HEADER} header")
    scheme, _, token = offered.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _fail(Reason.MALFORMED, f"{VONAGE_HEADER} is not Bearer <JWT>")
    claims = _vonage_claims(config, token.strip())
    if isinstance(claims, SignatureCheck):
        return claims
    if config.max_age_seconds is not None:
        age = time.time() - int(claims["iat"])
        if age > config.max_age_seconds + config.leeway_seconds:
            return _fail(Reason.EXPIRED, "the JWT was issued longer ago than max_age_seconds")
    payload_hash = claims.get("payload_hash")
    if payload_hash is None:
        if config.require_payload_hash:
            return _fail(Reason.MALFORMED, "the JWT has no payload_hash")
        return _OK
    if not isinstance(payload_hash, str) or not _same_hex(
        payload_hash, hashlib.sha256(request.body).digest()
    ):
        return _fail(Reason.MISMATCH, "the body does not match the JWT's payload_hash")
    return _OK


def check_signature(config: ProviderSignature, request: SignedRequest) -> SignatureCheck:
    """The check of whichever provider ``config`` configures."""
    if isinstance(config, TwilioSignature):
        return check_twilio(config, request)
    if isinstance(config, MetaSignature):
        return check_meta(config, request)
    if isinstance(config, VonageSignature):
        return check_vonage(config, request)
    raise TypeError(f"not a provider signature configuration: {type(config).__name__}")
