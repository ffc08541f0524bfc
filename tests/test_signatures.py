"""Provider webhook signatures (deliverystate.web._signatures): Twilio, Meta, Vonage.

Expected signatures are either published vectors (Twilio's security docs and
the test suites of Twilio's and Vonage's own libraries, each cited where used)
or computed here with hashlib/hmac/base64, a second implementation: the JWTs
are assembled by hand, not with PyJWT, which the code under test reads them
with.  The last tests run the checks behind a route over real HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from deliverystate.web._signatures import (
    MetaSignature,
    ProviderSignature,
    Reason,
    SignatureCheck,
    SignedRequest,
    TwilioSignature,
    VonageSignature,
    check_meta,
    check_signature,
    check_twilio,
    check_vonage,
    read_request,
)

from .test_web import serving

FORM = "application/x-www-form-urlencoded"
# Twilio's security docs (the older text of https://www.twilio.com/docs/usage/security):
# token 12345, this URL and these parameters give 0/KCTR6DLpKmkAf8muzZqo1nDgQ=.
DOCS_TOKEN = "12345"
DOCS_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
# twilio/twilio-python tests/unit/test_request_validator.py (and the twilio-php docs'
# validation page): the same call with +14158675309, signature RSOYDt4T1cUTdK1PDd93/VVr8B8=.
LIB_PARAMS = {**DOCS_PARAMS, "Caller": "+14158675309", "From": "+14158675309"}
META_SECRET = "meta-app-secret-0123456789abcdef"
VONAGE_SECRET = "vonage-signature-secret-0123456789abcdef"
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
PUBLIC = "https://hooks.example.com"
META_HEADER_NAME = "X-Hub-Signature-256"


def twilio_signature(token: str, url: str, params: dict[str, str] | None = None) -> str:
    """Twilio's algorithm, written out: URL, then name+value in sorted name order."""
    data = url + "".join(k + v for k, v in sorted((params or {}).items()))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def meta_signature(secret: str, body: bytes) -> str:
    """Meta's header value: sha256= and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWTs use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any], secret: str, alg: str = "HS256") -> str:
    """A JWT assembled by hand (HS256/HS512, or alg none with an empty signature)."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    if alg == "none":
        return f"{header}.{payload}."
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    return f"{header}.{payload}.{b64url(hmac.new(secret.encode(), signing_input, digest).digest())}"


def vonage_claims(body: bytes, **extra: Any) -> dict[str, Any]:
    """The claims Vonage's Messages API puts in a signed webhook's JWT, issued now."""
    claims = {
        "iat": int(time.time()),
        "jti": "c4d7a3e2-0000-4000-8000-000000000000",
        "iss": "Vonage",
        "payload_hash": hashlib.sha256(body).hexdigest(),
        "api_key": "abcd1234",
        "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def form_request(path: str, query: str, params: dict[str, str], signature: str) -> SignedRequest:
    """A form POST as Twilio sends it, with its signature header."""
    headers = {"Content-Type": FORM, "X-Twilio-Signature": signature}
    return SignedRequest(path, query, headers, urlencode(params).encode())


def assert_refused(check: SignatureCheck, reason: Reason, *secrets: str) -> None:
    """The check failed for ``reason``, and nothing secret shows in it or its JSON."""
    assert not check.ok
    assert check.reason is reason
    shown = repr(check) + json.dumps(check.to_json())
    assert check.to_json()["reason"] == reason.value
    for secret in secrets:
        assert secret not in shown


# -- Twilio: published vectors ------------------------------------------------------------


def test_twilio_docs_vector_reproduces() -> None:
    """Twilio's docs example (token 12345) checks with 0/KCTR6DLpKmkAf8muzZqo1nDgQ=."""
    config = TwilioSignature(DOCS_TOKEN, "https://mycompany.com")
    request = form_request("/myapp.php", "foo=1&bar=2", DOCS_PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert check_twilio(config, request).ok


def test_twilio_library_vector_reproduces_in_any_body_order() -> None:
    """twilio-python's vector RSOYDt4T1cUTdK1PDd93/VVr8B8= checks, whatever the form's order."""
    config = TwilioSignature(DOCS_TOKEN, "https://mycompany.com")
    reordered = dict(reversed(list(LIB_PARAMS.items())))
    for params in (LIB_PARAMS, reordered):
        request = form_request("/myapp.php", "foo=1&bar=2", params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        assert check_twilio(config, request).ok


@pytest.mark.parametrize(
    ("public_url", "signature"),
    [
        ("https://mycompany.com:1234", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),  # port removed
        ("https://mycompany.com", "kvajT1Ptam85bY51eRf/AJRuM3w="),  # :443 added
        ("http://mycompany.com:1234", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),  # as given
        ("http://mycompany.com", "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # :80 added
    ],
)
def test_twilio_library_port_vectors_reproduce(public_url: str, signature: str) -> None:
    """twilio-python's port vectors: the URL is tried as is, without its port, with :443/:80."""
    config = TwilioSignature(DOCS_TOKEN, public_url)
    request = form_request("/myapp.php", "foo=1&bar=2", LIB_PARAMS, signature)
    assert check_twilio(config, request).ok


def test_twilio_library_vector_for_repeated_parameters_reproduces() -> None:
    """twilio-python's IK+Dwps556ElfBT0I3Rgjkr1wJU=: a repeated name's distinct values, sorted."""
    config = TwilioSignature(DOCS_TOKEN, "https://mycompany.com")
    body = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234"
    headers = {"content-type": FORM, "x-twilio-signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="}
    request = SignedRequest("/myapp.php", "foo=1&bar=2", headers, body)
    assert check_twilio(config, request).ok


def test_twilio_library_json_body_vector_reproduces() -> None:
    """twilio-python's JSON vector: bodySHA256 in the signed URL, a9nBmqA0ju/hNViExpshrM61xv4=."""
    body = b'{"property": "value", "boolean": true}'
    body_hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    assert hashlib.sha256(body).hexdigest() == body_hash
    config = TwilioSignature(DOCS_TOKEN, "https://mycompany.com")
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4=",
    }
    request = SignedRequest("/myapp.php", f"foo=1&bar=2&bodySHA256={body_hash}", headers, body)
    assert check_twilio(config, request).ok
    tampered = SignedRequest(request.path, request.query, headers, body.replace(b"true", b"tru "))
    assert_refused(check_twilio(config, tampered), Reason.MISMATCH, DOCS_TOKEN)


# -- Twilio: every way to fail ------------------------------------------------------------


def twilio_case(
    *, token: str = TWILIO_TOKEN, url: str = PUBLIC + "/callbacks/twilio"
) -> tuple[TwilioSignature, dict[str, str], str]:
    """A config, a status callback's parameters, and their signature for ``url``."""
    params = {"MessageSid": "SM1", "MessageStatus": "delivered", "ErrorCode": "", "To": "+1555"}
    return TwilioSignature(TWILIO_TOKEN, PUBLIC), params, twilio_signature(token, url, params)


def test_twilio_signs_blank_parameters_and_passes_a_valid_callback() -> None:
    """A status callback with an empty ErrorCode checks: blank parameters are signed too."""
    config, params, signature = twilio_case()
    assert check_twilio(config, form_request("/callbacks/twilio", "", params, signature)).ok


#: Each fault, as a change to a valid callback's parts (config, path, query, headers, body).
TWILIO_FAULTS: dict[str, tuple[Reason, Any]] = {
    "no header": (Reason.MISSING_HEADER, lambda r: r["headers"].pop("X-Twilio-Signature")),
    "blank header": (Reason.MISSING_HEADER, lambda r: r["headers"].update({TWILIO_SIG: " "})),
    "not base64": (Reason.MALFORMED, lambda r: r["headers"].update({TWILIO_SIG: "not*b64!"})),
    "base64 of the wrong length": (
        Reason.MALFORMED,
        lambda r: r["headers"].update({TWILIO_SIG: base64.b64encode(b"x" * 32).decode()}),
    ),
    "wrong token": (
        Reason.MISMATCH,
        lambda r: r["headers"].update({TWILIO_SIG: twilio_case(token=TWILIO_TOKEN + "x")[2]}),
    ),
    "one body byte": (
        Reason.MISMATCH,
        lambda r: r.update(body=r["body"].replace(b"delivered", b"delivereD")),
    ),
    "a parameter added": (Reason.MISMATCH, lambda r: r.update(body=r["body"] + b"&Extra=1")),
    "path changed": (Reason.MISMATCH, lambda r: r.update(path="/callbacks/twilio2")),
    "query added": (Reason.MISMATCH, lambda r: r.update(query="a=1")),
    "the URL the server sees": (
        Reason.MISMATCH,
        lambda r: r.update(config=TwilioSignature(TWILIO_TOKEN, "http://127.0.0.1:8000")),
    ),
    "JSON body without bodySHA256": (
        Reason.MALFORMED,
        lambda r: (
            r["headers"].update({"Content-Type": "application/json"}),
            r.update(body=b'{"MessageSid": "SM1"}'),
        ),
    ),
    "form that is not UTF-8": (
        Reason.MALFORMED,
        lambda r: r.update(body=b"MessageSid=SM1&Body=\xff"),
    ),
    "bodySHA256 twice": (Reason.MALFORMED, lambda r: r.update(query="bodySHA256=0&bodySHA256=1")),
}
TWILIO_SIG = "X-Twilio-Signature"


@pytest.mark.parametrize("fault", sorted(TWILIO_FAULTS))
def test_twilio_refuses(fault: str) -> None:
    """Each fault in a Twilio callback is refused for its own reason, nothing secret shown."""
    config, params, signature = twilio_case()
    parts: dict[str, Any] = {
        "config": config,
        "path": "/callbacks/twilio",
        "query": "",
        "headers": {"Content-Type": FORM, TWILIO_SIG: signature},
        "body": urlencode(params).encode(),
    }
    assert check_twilio(
        config, SignedRequest(**{k: v for k, v in parts.items() if k != "config"})
    ).ok
    reason, change = TWILIO_FAULTS[fault]
    change(parts)
    config = parts.pop("config")
    assert_refused(check_twilio(config, SignedRequest(**parts)), reason, TWILIO_TOKEN, signature)


# -- Meta ---------------------------------------------------------------------------------

META_BODY = b'{"object":"whatsapp_business_account","entry":[]}'


def test_meta_passes_a_valid_signature_in_either_case() -> None:
    """sha256=<hex of HMAC-SHA256(app secret, raw body)> checks, upper-case hex too."""
    config = MetaSignature(META_SECRET)
    header = meta_signature(META_SECRET, META_BODY)
    for value in (header, "sha256=" + header.removeprefix("sha256=").upper()):
        assert check_meta(config, SignedRequest("/", "", {META_HEADER_NAME: value}, META_BODY)).ok


@pytest.mark.parametrize(
    ("header", "body", "reason"),
    [
        (None, META_BODY, Reason.MISSING_HEADER),
        ("", META_BODY, Reason.MISSING_HEADER),
        ("GOOD_WITHOUT_PREFIX", META_BODY, Reason.MALFORMED),
        ("sha1=" + "0" * 40, META_BODY, Reason.MALFORMED),
        ("sha256=" + "z" * 64, META_BODY, Reason.MALFORMED),
        ("sha256=" + "0" * 63, META_BODY, Reason.MALFORMED),
        ("sha256=" + "00 " * 21 + "0", META_BODY, Reason.MALFORMED),
        ("WRONG_SECRET", META_BODY, Reason.MISMATCH),
        ("GOOD", META_BODY[:-1] + b"]", Reason.MISMATCH),
        ("GOOD", META_BODY + b" ", Reason.MISMATCH),
    ],
)
def test_meta_refuses(header: str | None, body: bytes, reason: Reason) -> None:
    """Missing, malformed, wrong-secret and one-byte-tampered bodies are each refused."""
    good = meta_signature(META_SECRET, META_BODY)
    value = {
        "GOOD": good,
        "GOOD_WITHOUT_PREFIX": good.removeprefix("sha256="),
        "WRONG_SECRET": meta_signature(META_SECRET + "x", META_BODY),
    }.get(header or "", header)
    headers = {} if value is None else {META_HEADER_NAME: value}
    check = check_meta(MetaSignature(META_SECRET), SignedRequest("/", "", headers, body))
    assert_refused(check, reason, META_SECRET, good.removeprefix("sha256="))


# -- Vonage -------------------------------------------------------------------------------

VONAGE_BODY = b'{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","status":"delivered"}'


def vonage_request(
    token: str | None, body: bytes = VONAGE_BODY, scheme: str = "Bearer"
) -> SignedRequest:
    """A Messages API status webhook carrying ``token`` in its Authorization header."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}".strip()
    return SignedRequest("/callbacks/vonage", "", headers, body)


def test_vonage_sdk_vector_reproduces() -> None:
    """Vonage's SDK test token verifies with its secret; issued in 2023, max_age expires it."""
    # Vonage/vonage-python-sdk jwt/tests/test_verify_jwt.py: no payload_hash, exp far ahead
    token = (
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2"
        "OTc2MzQ2ODAsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM"
    )
    secret = "qwertyuiopasdfghjklzxcvbnm123456"
    assert check_vonage(VonageSignature(secret, max_age_seconds=None), vonage_request(token)).ok
    assert_refused(
        check_vonage(VonageSignature(secret), vonage_request(token)), Reason.EXPIRED, secret
    )
    wrong = VonageSignature(secret[::-1], max_age_seconds=None)
    assert_refused(check_vonage(wrong, vonage_request(token)), Reason.MISMATCH, secret)


def test_vonage_passes_a_valid_token_and_a_little_clock_skew() -> None:
    """A fresh HS256 token whose payload_hash matches checks; an iat 10 s ahead is within leeway."""
    config = VonageSignature(VONAGE_SECRET)
    for skew in (0, 10):
        token = make_jwt(vonage_claims(VONAGE_BODY, iat=int(time.time()) + skew), VONAGE_SECRET)
        assert check_vonage(config, vonage_request(token)).ok


def test_vonage_checks_payload_hash_only_where_present_unless_required() -> None:
    """Without payload_hash the token suffices, unless require_payload_hash says otherwise."""
    token = make_jwt(vonage_claims(VONAGE_BODY, payload_hash=None), VONAGE_SECRET)
    assert check_vonage(VonageSignature(VONAGE_SECRET), vonage_request(token)).ok
    strict = VonageSignature(VONAGE_SECRET, require_payload_hash=True)
    assert_refused(check_vonage(strict, vonage_request(token)), Reason.MALFORMED, VONAGE_SECRET)


#: Each fault, as a change to a valid webhook's parts (claims, secret, alg, token, body, scheme).
VONAGE_FAULTS: dict[str, tuple[Reason, Any]] = {
    "no header": (Reason.MISSING_HEADER, lambda r, now: r.update(header=None)),
    "not Bearer": (Reason.MALFORMED, lambda r, now: r.update(scheme="Basic")),
    "Bearer without a token": (Reason.MALFORMED, lambda r, now: r.update(token="")),
    "not a JWT": (Reason.MALFORMED, lambda r, now: r.update(token="not.a.jwt")),
    "alg none": (Reason.MALFORMED, lambda r, now: r.update(alg="none")),
    "alg HS512": (Reason.MALFORMED, lambda r, now: r.update(alg="HS512")),
    "no iat": (Reason.MALFORMED, lambda r, now: r["claims"].pop("iat")),
    "iat not a number": (Reason.MALFORMED, lambda r, now: r["claims"].update(iat="yesterday")),
    "wrong secret": (Reason.MISMATCH, lambda r, now: r.update(secret=VONAGE_SECRET + "x")),
    "body tampered by one byte": (
        Reason.MISMATCH,
        lambda r, now: r.update(body=VONAGE_BODY.replace(b"delivered", b"delivereD")),
    ),
    "payload_hash not a string": (
        Reason.MISMATCH,
        lambda r, now: r["claims"].update(payload_hash=12),
    ),
    "exp passed": (Reason.EXPIRED, lambda r, now: r["claims"].update(iat=now - 200, exp=now - 100)),
    "iat older than max_age": (Reason.EXPIRED, lambda r, now: r["claims"].update(iat=now - 400)),
    "iat in the future": (Reason.NOT_YET_VALID, lambda r, now: r["claims"].update(iat=now + 600)),
}


@pytest.mark.parametrize("fault", sorted(VONAGE_FAULTS))
def test_vonage_refuses(fault: str) -> None:
    """Each fault in a Vonage webhook is refused for its own reason, nothing secret shown."""
    parts: dict[str, Any] = {
        "claims": vonage_claims(VONAGE_BODY),
        "secret": VONAGE_SECRET,
        "alg": "HS256",
        "token": None,
        "body": VONAGE_BODY,
        "scheme": "Bearer",
        "header": True,
    }
    reason, change = VONAGE_FAULTS[fault]
    change(parts, int(time.time()))
    token = parts["token"]
    if token is None:
        token = make_jwt(parts["claims"], parts["secret"], parts["alg"])
    request = vonage_request(token if parts["header"] else None, parts["body"], parts["scheme"])
    check = check_vonage(VonageSignature(VONAGE_SECRET), request)
    assert_refused(check, reason, VONAGE_SECRET)


def test_vonage_age_bound_and_leeway_are_configurable() -> None:
    """A 400 s old token passes with max_age 600 or no bound; a 40 s future iat needs leeway 60."""
    old = make_jwt(vonage_claims(VONAGE_BODY, iat=int(time.time()) - 400), VONAGE_SECRET)
    assert check_vonage(VonageSignature(VONAGE_SECRET, max_age_seconds=600), vonage_request(old)).ok
    assert check_vonage(
        VonageSignature(VONAGE_SECRET, max_age_seconds=None), vonage_request(old)
    ).ok
    ahead = make_jwt(vonage_claims(VONAGE_BODY, iat=int(time.time()) + 40), VONAGE_SECRET)
    refused = check_vonage(VonageSignature(VONAGE_SECRET), vonage_request(ahead))
    assert refused.reason is Reason.NOT_YET_VALID
    assert check_vonage(VonageSignature(VONAGE_SECRET, leeway_seconds=60), vonage_request(ahead)).ok


# -- configuration ------------------------------------------------------------------------


def test_secrets_stay_out_of_the_configs_repr() -> None:
    """No config's repr or str shows its secret."""
    for config, secret in [
        (TwilioSignature(TWILIO_TOKEN, PUBLIC), TWILIO_TOKEN),
        (MetaSignature(META_SECRET), META_SECRET),
        (VonageSignature(VONAGE_SECRET), VONAGE_SECRET),
    ]:
        assert secret not in repr(config)
        assert secret not in str(config)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TwilioSignature("", PUBLIC),
        lambda: TwilioSignature(TWILIO_TOKEN, "hooks.example.com"),
        lambda: TwilioSignature(TWILIO_TOKEN, "ftp://hooks.example.com"),
        lambda: TwilioSignature(TWILIO_TOKEN, "https://hooks.example.com/?a=1"),
        lambda: TwilioSignature(TWILIO_TOKEN, "https://user:pw@hooks.example.com"),
        lambda: TwilioSignature(TWILIO_TOKEN, "https://hooks.example.com:99999"),
        lambda: MetaSignature(""),
        lambda: VonageSignature(""),
        lambda: VonageSignature(VONAGE_SECRET, leeway_seconds=-1),
        lambda: VonageSignature(VONAGE_SECRET, max_age_seconds=float("nan")),
    ],
)
def test_misconfiguration_raises(make: Any) -> None:
    """An empty secret, a URL that is not a public base URL, or a negative time is misuse."""
    with pytest.raises(ValueError, match=r"secret|public_url|seconds"):
        make()


def test_check_signature_dispatches_and_refuses_other_types() -> None:
    """check_signature runs each provider's own check; anything else is a TypeError."""
    request = SignedRequest("/", "", {META_HEADER_NAME: meta_signature(META_SECRET, b"x")}, b"x")
    assert check_signature(MetaSignature(META_SECRET), request).ok
    assert check_signature(VonageSignature(VONAGE_SECRET), request).reason is Reason.MISSING_HEADER
    assert (
        check_signature(TwilioSignature(TWILIO_TOKEN, PUBLIC), request).reason
        is Reason.MISSING_HEADER
    )
    with pytest.raises(TypeError):
        check_signature("secret", request)  # type: ignore[arg-type]


# -- over real HTTP -----------------------------------------------------------------------


def signed_app(configs: dict[str, ProviderSignature], processed: list[bytes]) -> Starlette:
    """A receiver in miniature: check the signature, 401 with the reason, else process."""

    async def callback(request: Request) -> JSONResponse:
        config = configs[request.path_params["provider"]]
        check = check_signature(config, await read_request(request))
        if not check.ok:
            return JSONResponse(check.to_json(), status_code=401)
        processed.append(await request.body())
        return JSONResponse({"processed": True})

    inner = Starlette(routes=[Route("/callbacks/{provider}", callback, methods=["POST"])])
    return Starlette(routes=[Mount("/ds", inner)])  # behind a prefix, like a mounted receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[httpx.Client, list[bytes]]]:
    """The miniature receiver on loopback, and the bodies it processed."""
    processed: list[bytes] = []
    configs: dict[str, ProviderSignature] = {
        "twilio": TwilioSignature(TWILIO_TOKEN, PUBLIC),
        "meta": MetaSignature(META_SECRET),
        "vonage": VonageSignature(VONAGE_SECRET),
    }
    with serving(signed_app(configs, processed)) as base, httpx.Client(base_url=base) as client:
        yield client, processed


def http_cases() -> list[tuple[str, str, str, dict[str, str], bytes, str | None]]:
    """(name, provider, query, headers, body, expected reason or None for valid)."""
    url = PUBLIC + "/ds/callbacks/twilio"
    params = {"MessageSid": "SM9", "MessageStatus": "undelivered", "ErrorCode": "30003"}
    form = urlencode(params).encode()
    twilio = {
        "content-type": FORM,
        "x-twilio-signature": twilio_signature(TWILIO_TOKEN, url, params),
    }
    json_body = b'{"MessageSid":"SM9"}'
    json_query = "bodySHA256=" + hashlib.sha256(json_body).hexdigest()
    twilio_json = {
        "content-type": "application/json",
        "x-twilio-signature": twilio_signature(TWILIO_TOKEN, f"{url}?{json_query}"),
    }
    meta = {
        "content-type": "application/json",
        META_HEADER_NAME: meta_signature(META_SECRET, META_BODY),
    }
    token = make_jwt(vonage_claims(VONAGE_BODY), VONAGE_SECRET)
    vonage = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    stale = make_jwt(vonage_claims(VONAGE_BODY, iat=int(time.time()) - 3600), VONAGE_SECRET)
    return [
        ("twilio form", "twilio", "", twilio, form, None),
        ("twilio json", "twilio", json_query, twilio_json, json_body, None),
        ("meta", "meta", "", meta, META_BODY, None),
        ("vonage", "vonage", "", vonage, VONAGE_BODY, None),
        ("twilio unsigned", "twilio", "", {"content-type": FORM}, form, "missing_header"),
        ("twilio tampered", "twilio", "", twilio, form.replace(b"30003", b"30004"), "mismatch"),
        ("twilio other query", "twilio", "x=1", twilio, form, "mismatch"),
        ("twilio json tampered", "twilio", json_query, twilio_json, json_body + b" ", "mismatch"),
        (
            "meta unsigned",
            "meta",
            "",
            {"content-type": "application/json"},
            META_BODY,
            "missing_header",
        ),
        ("meta malformed", "meta", "", {META_HEADER_NAME: "sha256=xyz"}, META_BODY, "malformed"),
        ("meta tampered", "meta", "", meta, META_BODY.replace(b"[]", b"[1]"), "mismatch"),
        (
            "vonage unsigned",
            "vonage",
            "",
            {"content-type": "application/json"},
            VONAGE_BODY,
            "missing_header",
        ),
        ("vonage tampered", "vonage", "", vonage, VONAGE_BODY + b"\n", "mismatch"),
        (
            "vonage stale",
            "vonage",
            "",
            {"authorization": f"Bearer {stale}"},
            VONAGE_BODY,
            "expired",
        ),
        (
            "vonage alg none",
            "vonage",
            "",
            {"authorization": "Bearer " + make_jwt(vonage_claims(VONAGE_BODY), "", "none")},
            VONAGE_BODY,
            "malformed",
        ),
    ]


def test_over_http_valid_signatures_pass_and_invalid_ones_get_401_unprocessed(
    receiver: tuple[httpx.Client, list[bytes]],
) -> None:
    """Through uvicorn: each valid request 2xx and processed; each invalid one 401, JSON, not."""
    client, processed = receiver
    for name, provider, query, headers, body, reason in http_cases():
        before = list(processed)
        path = f"/ds/callbacks/{provider}" + (f"?{query}" if query else "")
        response = client.post(path, content=body, headers=headers)
        if reason is None:
            assert response.status_code == 200, (name, response.text)
            assert processed == [*before, body], name
        else:
            assert response.status_code == 401, (name, response.text)
            assert response.json()["reason"] == reason, name
            assert response.json()["error"] == "signature", name
            assert processed == before, name  # the body was never processed
            for secret in (TWILIO_TOKEN, META_SECRET, VONAGE_SECRET):
                assert secret not in response.text, name


def test_over_http_the_url_the_server_sees_is_not_the_one_signed(
    receiver: tuple[httpx.Client, list[bytes]],
) -> None:
    """A Twilio signature over the loopback URL the server sees fails: the public URL counts."""
    client, processed = receiver
    params = {"MessageSid": "SM10", "MessageStatus": "sent"}
    seen = str(client.base_url).rstrip("/") + "/ds/callbacks/twilio"
    headers = {
        "content-type": FORM,
        "x-twilio-signature": twilio_signature(TWILIO_TOKEN, seen, params),
    }
    before = list(processed)
    response = client.post(
        "/ds/callbacks/twilio", content=urlencode(params).encode(), headers=headers
    )
    assert response.status_code == 401
    assert response.json()["reason"] == "mismatch"
    assert processed == before


def test_read_request_keeps_the_path_as_received() -> None:
    """read_request takes the raw path (percent-escapes kept, as signed), query, headers, body."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/ds/callbacks/twilio x",
        "raw_path": b"/ds/callbacks/twilio%20x",
        "root_path": "",
        "query_string": b"a=1&b=%2B",
        "headers": [(b"x-twilio-signature", b"abc"), (b"content-type", FORM.encode())],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"To=%2B1", "more_body": False}

    request = asyncio.run(read_request(Request(scope, receive)))
    assert request == SignedRequest(
        "/ds/callbacks/twilio%20x",
        "a=1&b=%2B",
        {"content-type": FORM, "x-twilio-signature": "abc"},
        b"To=%2B1",
    )
    assert request.header("X-Twilio-Signature") == "abc"
