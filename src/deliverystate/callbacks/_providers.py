"""Other providers' status words, as data: each mapped onto the lifecycle, with its source.

Theory of operation
-------------------
A backend that fails over from Clickatell, or sends WhatsApp through Meta,
gets callbacks in other words.  Each provider's words are a table here, a
row per word: the lifecycle status it means (a code of Clickatell's catalog,
so that the one lifecycle and the one precedence policy rank every provider's
reports together), or None for a word that is no status of an outbound
message (an inbound message, a value the provider dropped), which is
ignored like Clickatell's inbound events.  A word in no table is refused, so
that a status a provider adds later is kept in the dead letter and applied
once its row is written, never guessed.  Each row cites its source (the keys
of ``shared/providers/providers.md``, repeated in docs/design.md's "Other
providers", which is generated from these tables by :func:`table_markdown`).

Decisions (docs/design.md, "Other providers"):

* Twilio ``canceled`` is a withdrawal by the sender: terminal, and
  ``STOPPED_BY_USER`` ("Message stopped by user"), never DELIVERY_FAILURE.
* Twilio ``partially_delivered`` has no documented meaning: refused.
* Vonage ``unknown`` and SMPP ``UNKNOWN`` ("no useful information") are
  Clickatell's UNKNOWN, the lowest rank: evidence of nothing, so they never
  override a report that says something, and a registered send's deadline
  sweep decides a message that hears nothing else.
* SMPP ``ACCEPTD`` is final in SMPP 3.4 ("read by customer service") but
  gateways send it when the centre accepts a message (Jasmin counts it a
  success, not final): SENT_TO_SUPPLIER, so a DELIVRD after it still counts.
* SMPP ``DELETED`` and ``SKIPPED`` are withdrawals: STOPPED_BY_ADMIN.
* Meta ``played`` (a voice message played) is READ: it comes after ``read``
  and says nothing more about delivery; DELIVERY_WINS dates READ by its
  earliest report, so a ``played`` never moves the state.  A ``read``
  without ``delivered`` (Meta skips it when both happen at once) is READ,
  which the lifecycle reaches from SENT_TO_SUPPLIER by implying DEVICE_ACK.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from ..rules._catalog import Status

__all__ = [
    "META",
    "PROVIDERS",
    "SMPP",
    "TWILIO",
    "VONAGE",
    "Word",
    "lookup",
    "table_markdown",
    "word_for",
]


@attrs.frozen
class Word:
    """One status word of a provider: what it means on the lifecycle, and where that is said."""

    word: str
    status: Status | None
    source: str
    note: str = ""


#: Twilio Programmable Messaging, ``MessageStatus`` (form field) [TW-enum, TW-sup].
TWILIO: tuple[Word, ...] = (
    Word("queued", Status.QUEUED, "TW-sup"),
    Word("accepted", Status.QUEUED, "TW-sup, TW-cb", "Messaging Service picks the sender"),
    Word("scheduled", Status.SCHEDULED, "TW-sup, TW-cb", "waits for SendAt"),
    Word("sending", Status.QUEUED, "TW-sup", "being handed to the carrier"),
    Word("sent", Status.SENT_TO_SUPPLIER, "TW-sup", "the carrier accepted it"),
    Word("delivered", Status.DEVICE_ACK, "TW-sup", "carrier (or handset) confirmed"),
    Word("read", Status.READ, "TW-track", "WhatsApp read receipts"),
    Word("undelivered", Status.DELIVERY_FAILURE, "TW-sup", "a receipt said not delivered"),
    Word("failed", Status.DELIVERY_FAILURE, "TW-sup", "could not be sent"),
    Word("canceled", Status.STOPPED_BY_USER, "TW-err30409", "withdrawn by the sender"),
    Word("receiving", None, "TW-sup", "inbound: ignored"),
    Word("received", None, "TW-sup", "inbound: ignored"),
)

#: Meta WhatsApp Cloud API, ``entry[].changes[].value.statuses[].status`` [META-st, PYWA].
META: tuple[Word, ...] = (
    Word("sent", Status.SENT_TO_SUPPLIER, "META-st, PYWA", "left Meta's servers"),
    Word("delivered", Status.DEVICE_ACK, "META-st, PYWA", "skipped when read at once"),
    Word("read", Status.READ, "META-st, PYWA"),
    Word("played", Status.READ, "META-st, PYWA", "a voice message played, after read"),
    Word("failed", Status.DELIVERY_FAILURE, "META-st, PYWA", "carries errors[]"),
    Word("deleted", None, "GOVSG, CR", "On-Premises only: ignored"),
    Word("warning", None, "GOVSG", "On-Premises only: ignored"),
)

#: Vonage: the SMS API's delivery receipts (``status``) [VN-spec, VN-dlr] and the Messages
#: API's status webhooks (``status``) [VN-msg, VN-wa]; the two share no word but "delivered",
#: "rejected" and "read", which mean the same in both.
VONAGE: tuple[Word, ...] = (
    Word("submitted", Status.SENT_TO_SUPPLIER, "VN-msg", "Messages: passed to the provider"),
    Word("accepted", Status.SENT_TO_SUPPLIER, "VN-dlr", "SMS API: accepted downstream"),
    Word("buffered", Status.SENT_TO_SUPPLIER, "VN-dlr", "SMS API: held for later delivery"),
    Word("delivered", Status.DEVICE_ACK, "VN-dlr, VN-msg"),
    Word("read", Status.READ, "VN-msg", "Messages: WhatsApp, Viber, RCS"),
    Word("expired", Status.EXPIRED, "VN-dlr", "not delivered within its validity"),
    Word("rejected", Status.DELIVERY_FAILURE, "VN-dlr, VN-msg", "refused downstream"),
    Word("failed", Status.DELIVERY_FAILURE, "VN-dlr"),
    Word("undeliverable", Status.DELIVERY_FAILURE, "VN-msg", "no connection to the provider"),
    Word("unknown", Status.UNKNOWN, "VN-dlr", "no useful information: ranks lowest"),
)

#: SMPP delivery receipts' ``stat`` (SMPP 3.4 Appendix B; 5.0 message_state) [SMPP-st,
#: SMPP-34, SMPP-ml], as in a receipt's text or Jasmin's HTTP receipts [JAS].
SMPP: tuple[Word, ...] = (
    Word("SCHEDLD", Status.SCHEDULED, "SMPP-st", "delivery not begun"),
    Word("ENROUTE", Status.SENT_TO_SUPPLIER, "SMPP-st", "in the network"),
    Word("ACCEPTD", Status.SENT_TO_SUPPLIER, "SMPP-34, JAS", "final in 3.4, accepted in practice"),
    Word("DELIVRD", Status.DEVICE_ACK, "SMPP-st"),
    Word("EXPIRED", Status.EXPIRED, "SMPP-st"),
    Word("DELETED", Status.STOPPED_BY_ADMIN, "SMPP-st", "withdrawn from the centre"),
    Word("SKIPPED", Status.STOPPED_BY_ADMIN, "SMPP-ml", "accepted, never transmitted"),
    Word("UNDELIV", Status.DELIVERY_FAILURE, "SMPP-st"),
    Word("REJECTD", Status.DELIVERY_FAILURE, "SMPP-st"),
    Word("UNKNOWN", Status.UNKNOWN, "SMPP-34", "invalid state: ranks lowest"),
)

#: Each table lists a status's usual word first: :func:`word_for` (the simulator's) picks it.
#: Every provider's table, by the name in its URL (``/callbacks/{provider}``).
PROVIDERS: Mapping[str, tuple[Word, ...]] = {
    "meta": META,
    "smpp": SMPP,
    "twilio": TWILIO,
    "vonage": VONAGE,
}

_INDEX = {name: {w.word.lower(): w for w in table} for name, table in PROVIDERS.items()}


def lookup(provider: str, word: str) -> Word | None:
    """The row of ``word`` (exactly as sent, case folded) in ``provider``'s table, or None."""
    return _INDEX[provider].get(word.strip().lower())  # (SMPP's are upper case: see _INDEX)


def table_markdown(provider: str) -> str:
    """``provider``'s table as the Markdown docs/design.md shows (a test keeps them equal)."""
    lines = [
        "| word | lifecycle status | note | source |",
        "|---|---|---|---|",
        *(
            f"| `{w.word}` | {w.status.name if w.status else 'ignored'} | {w.note or '—'} "
            f"| {w.source} |"
            for w in PROVIDERS[provider]
        ),
    ]
    return "\n".join(lines)


def word_for(provider: str, status: Status) -> str | None:
    """The usual word ``provider`` says ``status`` with (its first row), or None if none."""
    return next((w.word for w in PROVIDERS[provider] if w.status is status), None)
