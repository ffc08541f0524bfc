"""``POST /callbacks/{provider}`` over real HTTP: signatures, the shared secret, envelopes kept.

The providers' own parsers are tested in their own files; here a small
stand-in parser (registered for the test) lets the routes be checked on
their own: what a bad signature leaves behind (nothing), what an unreadable
body leaves behind (its envelope, readable again later), Meta's handshake.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from deliverystate import SQLiteStore, Status, StatusEvent, Tracker
from deliverystate.callbacks._envelope import PROVIDER_PARSERS, ProviderBody
from deliverystate.callbacks._results import ParsedCallback
from deliverystate.errors import InvalidCallback
from deliverystate.web._providers import provider_settings
from deliverystate.web._signatures import MetaSignature, TwilioSignature, VonageSignature

from .conftest import StoreFactory
from .test_providers import T, meta_body, meta_status, smpp_receipt, twilio_form, vonage_status
from .test_web import T0, receiver

S = Status

SECRET = "app-secret-for-tests"
FORM = "application/x-www-form-urlencoded"


def stand_in(body: ProviderBody, received_ms: int | None = None) -> ParsedCallback:
    """Form fields ``id`` and ``status`` (``delivered`` or ``sent``) as one SMS report."""
    if not isinstance(body, Mapping):
        raise InvalidCallback("body", "the stand-in reads forms only")
    words = {"delivered": Status.DEVICE_ACK, "sent": Status.SENT_TO_SUPPLIER}
    status = words.get(body.get("status", ""))
    if status is None:
        raise InvalidCallback("status", f"unknown word {body.get('status')!r}")
    event = StatusEvent.from_ms(body["id"], status, T0, "sms")
    return ParsedCallback((event,), format="one_api")


@pytest.fixture
def tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tracker]:
    """A tracker over SQLite, with the stand-in registered as provider "acme"."""
    monkeypatch.setitem(PROVIDER_PARSERS, "acme", stand_in)
    store = SQLiteStore(tmp_path / "providers.sqlite3")
    yield Tracker(store)
    store.close()


def meta_signed(body: bytes) -> dict[str, str]:
    """The headers Meta would send with ``body`` (HMAC-SHA256 with the app secret, hex)."""
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "x-hub-signature-256": f"sha256={digest}",
        "content-type": "application/x-www-form-urlencoded",
    }


def test_an_unknown_provider_is_404_naming_the_known_ones(tracker: Tracker) -> None:
    """A URL for a provider nobody reads is not taken, and the answer lists the real ones."""
    with receiver(tracker) as client:
        answer = client.post("/callbacks/nobody", content=b"x=1")
    assert answer.status_code == 404
    assert "clickatell" in answer.json()["providers"]
    assert "acme" in answer.json()["providers"]


def test_without_a_signature_the_shared_secret_guards_the_provider_s_url(tracker: Tracker) -> None:
    """No signature configured: the receiver's token is required, and then the body is applied."""
    form = {"id": "acme-1", "status": "delivered"}
    with receiver(tracker, token="t0ken") as client:
        refused = client.post("/callbacks/acme", data=form)
        taken = client.post("/callbacks/acme", params={"token": "t0ken"}, data=form)
    assert refused.status_code == 401
    assert taken.status_code == 200
    assert taken.json()["applied"] == 1
    state = tracker.get("acme-1")
    assert state is not None
    assert state.status is Status.DEVICE_ACK


def test_a_bad_signature_is_401_and_leaves_nothing_behind(tracker: Tracker) -> None:
    """A forged or unsigned body is neither applied nor kept; a signed one is applied."""
    body = b"id=acme-2&status=delivered"
    signatures = {"acme": MetaSignature(SECRET)}
    with receiver(tracker, signatures=signatures) as client:
        unsigned = client.post(
            "/callbacks/acme",
            content=body,
            headers={"content-type": meta_signed(body)["content-type"]},
        )
        forged = client.post(
            "/callbacks/acme", content=body.replace(b"acme-2", b"acme-3"), headers=meta_signed(body)
        )
        assert tracker.get("acme-2") is None
        assert tracker.get("acme-3") is None
        assert list(tracker.store.dead_letters()) == []
        signed = client.post("/callbacks/acme", content=body, headers=meta_signed(body))
    assert (unsigned.status_code, unsigned.json()["reason"]) == (401, "missing_header")
    assert (forged.status_code, forged.json()["reason"]) == (401, "mismatch")
    assert SECRET not in unsigned.text + forged.text
    assert signed.status_code == 200
    assert tracker.get("acme-2") is not None


def test_an_unreadable_provider_body_is_kept_as_its_envelope_and_read_again_later(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """400 and a dead letter that names its provider: retried once the word is known, applied."""
    with receiver(tracker) as client:
        answer = client.post("/callbacks/acme", data={"id": "acme-4", "status": "read"})
    assert answer.status_code == 400
    assert answer.json()["field"] == "status"
    (letter,) = tracker.store.dead_letters()
    assert '"provider": "acme"' in letter.payload or '"provider":"acme"' in letter.payload
    assert tracker.retry_dead_letters().still_invalid == 1  # the word is still unknown

    def knows_read(body: ProviderBody, received_ms: int | None = None) -> ParsedCallback:
        if isinstance(body, Mapping) and body.get("status") == "read":
            return ParsedCallback(
                (StatusEvent.from_ms(body["id"], Status.READ, T0, "sms"),), format="one_api"
            )
        return stand_in(body, received_ms)

    monkeypatch.setitem(PROVIDER_PARSERS, "acme", knows_read)
    report = tracker.retry_dead_letters()
    assert report.applied == 1
    state = tracker.get("acme-4")
    assert state is not None
    assert state.status is Status.READ
    assert list(tracker.store.dead_letters()) == []


def test_meta_s_subscription_check_is_answered_only_with_the_verify_token(tracker: Tracker) -> None:
    """hub.challenge comes back for the configured token; a wrong or unset token is 403."""
    hub = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    with receiver(tracker, meta_verify_token="verify-me") as client:
        right = client.get("/callbacks/meta", params={**hub, "hub.verify_token": "verify-me"})
        wrong = client.get("/callbacks/meta", params={**hub, "hub.verify_token": "guess"})
        other_mode = client.get(
            "/callbacks/meta",
            params={**hub, "hub.mode": "unsubscribe", "hub.verify_token": "verify-me"},
        )
    with receiver(tracker) as client:
        unset = client.get("/callbacks/meta", params={**hub, "hub.verify_token": ""})
    assert (right.status_code, right.text) == (200, "1158201444")
    assert [r.status_code for r in (wrong, other_mode, unset)] == [403, 403, 403]


def test_a_signature_for_a_provider_nobody_reads_is_a_mistake_at_start(tracker: Tracker) -> None:
    """create_app refuses a signature configured for a provider it has no parser for."""
    from deliverystate.web import create_app  # noqa: PLC0415 - the web extra

    with pytest.raises(ValueError, match="nobody"):
        create_app(tracker, signatures={"nobody": MetaSignature(SECRET)})


def twilio_signature(token: str, url: str, form: Mapping[str, str]) -> str:
    """Twilio's documented signature, computed here on its own: HMAC-SHA1, base64."""
    signed = url + "".join(f"{name}{form[name]}" for name in sorted(form))
    return base64.b64encode(
        hmac.new(token.encode(), signed.encode(), hashlib.sha1).digest()
    ).decode()


def test_meta_and_twilio_callbacks_over_http_on_both_stores(open_sql_store: StoreFactory) -> None:
    """Signed Meta JSON and Twilio forms are applied; a late Twilio 'sent' changes nothing."""
    tracker = Tracker(open_sql_store())
    meta = meta_body(
        meta_status("read", T, "wamid.HTTP1"), meta_status("sent", T - 5, "wamid.HTTP1")
    )
    meta_bytes = meta.encode()
    digest = hmac.new(SECRET.encode(), meta_bytes, hashlib.sha256).hexdigest()
    signatures = {
        "meta": MetaSignature(SECRET),
        "twilio": TwilioSignature("twilio-token", "https://hooks.example.com"),
    }
    with receiver(tracker, signatures=signatures) as client:
        answer = client.post(
            "/callbacks/meta",
            content=meta_bytes,
            headers={"content-type": "application/json", "x-hub-signature-256": f"sha256={digest}"},
        )
        twilio = []
        for word in ("delivered", "sent"):  # out of order: the late 'sent' must not win
            form = twilio_form(word, sid="SMhttp1")
            url = "https://hooks.example.com/callbacks/twilio"
            headers = {"x-twilio-signature": twilio_signature("twilio-token", url, form)}
            twilio.append(client.post("/callbacks/twilio", data=form, headers=headers))
    assert answer.status_code == 200
    assert answer.json()["applied"] >= 1
    read = tracker.get("wamid.HTTP1")
    assert read is not None
    assert (read.status, read.channel, read.timestamp_ms) == (S.READ, "whatsapp", T * 1000)
    assert [r.status_code for r in twilio] == [200, 200]
    delivered = tracker.get("SMhttp1")
    assert delivered is not None
    assert delivered.status is S.DEVICE_ACK


def test_an_unknown_twilio_word_is_kept_with_its_receipt_time(tracker: Tracker) -> None:
    """400, kept as an envelope with received_ms: parsing it again dates it the same."""
    with receiver(tracker) as client:
        answer = client.post("/callbacks/twilio", data=twilio_form("partially_delivered"))
    assert answer.status_code == 400
    (letter,) = tracker.store.dead_letters()
    kept = json.loads(letter.payload)
    assert (kept["provider"], kept["body"]["MessageStatus"]) == ("twilio", "partially_delivered")
    assert isinstance(kept["received_ms"], int)
    assert tracker.retry_dead_letters().still_invalid == 1


def test_provider_secrets_come_from_the_environment() -> None:
    """Meta's secret and verify token, Twilio's token and public URL: each makes its check."""
    settings = provider_settings(
        {
            "DELIVERYSTATE_META_APP_SECRET": SECRET,
            "DELIVERYSTATE_META_VERIFY_TOKEN": "verify-me",
            "DELIVERYSTATE_TWILIO_AUTH_TOKEN": "twilio-token",
            "DELIVERYSTATE_PUBLIC_URL": "https://hooks.example.com",
            "DELIVERYSTATE_VONAGE_SIGNATURE_SECRET": "vonage-secret",
        }
    )
    assert settings["meta_verify_token"] == "verify-me"
    assert settings["signatures"] == {
        "meta": MetaSignature(SECRET),
        "twilio": TwilioSignature("twilio-token", "https://hooks.example.com"),
        "vonage": VonageSignature("vonage-secret"),
    }
    assert provider_settings({}) == {"signatures": {}, "meta_verify_token": None}


def test_serve_refuses_a_twilio_token_without_its_public_url() -> None:
    """A receiver that would answer every Twilio callback 401 does not start; it says why."""
    from click.testing import CliRunner  # noqa: PLC0415 - the cli extra

    from deliverystate.cli._commands import cli  # noqa: PLC0415 - likewise

    env = {"DELIVERYSTATE_TWILIO_AUTH_TOKEN": "twilio-token", "DELIVERYSTATE_PUBLIC_URL": ""}
    result = CliRunner().invoke(cli, ["serve", "--db", ":memory:"], env=env)
    assert result.exit_code == 2
    assert "DELIVERYSTATE_PUBLIC_URL" in result.output


def test_vonage_json_and_an_smpp_receipt_s_text_over_http(tracker: Tracker) -> None:
    """A Vonage Messages status (JSON) and an SMPP receipt (text/plain) are applied by their URL."""
    with receiver(tracker) as client:
        vonage = client.post(
            "/callbacks/vonage",
            content=vonage_status("read").encode(),
            headers={"content-type": "application/json"},
        )
        smpp = client.post(
            "/callbacks/smpp",
            content=smpp_receipt("DELIVRD", "0489708364").encode(),
            headers={"content-type": "text/plain"},
        )
    assert (vonage.status_code, smpp.status_code) == (200, 200)
    read = tracker.get("aaaaaaaa-bbbb-cccc-dddd-0123456789ab")
    delivered = tracker.get("1d305b4c")
    assert read is not None
    assert delivered is not None
    assert (read.status, delivered.status) == (S.READ, S.DEVICE_ACK)
