"""The status catalog: every Clickatell One API status code, as data.

Theory of operation
-------------------
Clickatell reports the life of a message as numbered status codes.  This module
is the single place where those codes are written down: one row of the ``Status``
enum per code with its name, Clickatell's own description, its category, the
channels it may occur on and the page the row comes from (``source``).
Everything else (the lifecycle, the precedence policies, callback parsing,
diagrams, test strategies) is derived from this table.

Two pages feed it.  The seed, "One API: Message status codes and descriptions"
(clickatell.com, 4 April 2019), gives 29 codes; their descriptions are copied
from it verbatim ("Read Receipt", "Whatsapp").  Clickatell's current "One API
message status table" (docs.clickatell.com) adds 85 and 139-141, whose
descriptions are copied from there.  The copy of the current table available
to us breaks off at "142 WHATSAP": codes from 142 up are not in the catalog
until their names can be read, and are refused (and kept) meanwhile.  The
current table no longer lists 134; it stays, as Clickatell may still send it.

Every code from 20 up is terminal.  EMULATED (sandbox traffic) and the two
STOPPED_* codes are terminal *non-deliveries*; this catalog counts them as
failures (``is_failure``, ``FAILURES``) because the message did not reach the
handset, which is what a delivery-rate report needs to know.  A project that
wants otherwise can filter on ``category`` instead.  Every status is of one
``kind``: still on its way, delivered, or failed; diagrams, the status page
and reports colour and count by kind, and derive it from here.

Clickatell adds codes over time.  An unknown code is never guessed at:
``Status.from_code`` raises :class:`UnknownStatusCode`, and the callback parser
turns that into an ``InvalidCallback`` so the raw payload is kept.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from ..errors import UnknownStatusCode

__all__ = [
    "CHANNELS",
    "FAILURES",
    "Category",
    "Kind",
    "Origin",
    "Source",
    "Status",
]

#: The channels a message can travel on, as they appear (lower-cased) in callbacks.
CHANNELS: tuple[str, ...] = ("sms", "whatsapp")


class Kind(enum.Enum):
    """What a status says about the message: still on its way, delivered, or failed."""

    PROGRESS = "progress"
    DELIVERED = "delivered"
    FAILURE = "failure"


class Category(enum.Enum):
    """The section of Clickatell's page a status belongs to."""

    PROGRESS = "progress"
    GENERIC = "generic"
    ENCRYPTION = "encryption"
    MEDIA = "media"
    SMS = "sms"
    WHATSAPP = "whatsapp"


class Source(enum.Enum):
    """The Clickatell page a catalog row is copied from."""

    SEED = (
        "One API: Message status codes and descriptions (4 April 2019), "
        "https://www.clickatell.com/developers/api-documentation/"
        "one-api-message-status-codes-descriptions/"
    )
    CURRENT = (
        "One API message status table, "
        "https://docs.clickatell.com/channels/one-api/one-api-message-status-table/"
    )


class Origin(enum.Enum):
    """Who made a status report: Clickatell (a callback), or this side (``local``).

    Local reports are the sends a backend registers (a QUEUED at the time of
    sending) and the expiries a sweep gives messages that never heard back.
    A policy may rank them apart from Clickatell's own reports.
    """

    CLICKATELL = "clickatell"
    LOCAL = "local"


_ANY: frozenset[str] = frozenset(CHANNELS)
_SMS = frozenset({"sms"})
_WHATSAPP = frozenset({"whatsapp"})
_P, _G, _E, _M = Category.PROGRESS, Category.GENERIC, Category.ENCRYPTION, Category.MEDIA
_S, _W = Category.SMS, Category.WHATSAPP
_NEW = Source.CURRENT

#: First terminal code: every status from here up ends the message's life.
_FIRST_TERMINAL = 20


class Status(enum.IntEnum):
    """A Clickatell One API message status; the value is the status code."""

    # The catalog table: code, category, channels, description (verbatim from
    # its page), and the page when it is not the seed.  MEDIA_REJECTED_BY_SUPPLIER
    # is printed without its number on the seed page; it sits between 82 and 84,
    # so it is 83 (the current table agrees).
    UNKNOWN = 1, _P, _ANY, "Unknown status"
    QUEUED = 2, _P, _ANY, "Queued"
    SCHEDULED = 3, _P, _ANY, "Scheduled for later delivery"
    SENT_TO_SUPPLIER = 4, _P, _ANY, "Sent to supplier"
    DEVICE_ACK = 5, _P, _ANY, "Device acknowledged delivery"
    READ = 6, _P, _ANY, "Read Receipt"
    EXPIRED = 20, _G, _ANY, "The message has expired"
    STOPPED_BY_USER = 21, _G, _ANY, "Message stopped by user"
    STOPPED_BY_ADMIN = 22, _G, _ANY, "Message stopped by admin"
    DELIVERY_FAILURE = 23, _G, _ANY, "Error delivering message"
    EMULATED = 24, _G, _ANY, "Emulated"
    INSUFFICIENT_ACCOUNT_BALANCE = 25, _G, _ANY, "Insufficient account balance"
    VOLUME_LIMIT = 26, _G, _ANY, "Volume limit exceeded"
    VOLUME_LIMIT_DAILY = 27, _G, _ANY, "Daily volume limit exceeded"
    VOLUME_LIMIT_MONTHLY = 28, _G, _ANY, "Monthly volume limit exceeded"
    RECIPIENT_DOES_NOT_EXIST = 29, _G, _ANY, "Recipient does not exist on channel"
    ENCRYPTION_ACCESS_DENIED = 60, _E, _ANY, "Security access denied"
    ENCRYPTION_CONTENT_ERROR = 61, _E, _ANY, "Content decryption failed"
    MEDIA_NOT_FOUND = 80, _M, _ANY, "Media not found"
    MEDIA_SIZE_ERROR = 81, _M, _ANY, "Media size error"
    MEDIA_CHECKSUM_FAILURE = 82, _M, _ANY, "Media checksum failure"
    MEDIA_REJECTED_BY_SUPPLIER = 83, _M, _ANY, "Channel supplier rejected media file"
    MEDIA_METADATA_ERROR = (
        84,
        _M,
        _ANY,
        "Metadata for the media file was not found or does not match the message request",
    )
    MEDIA_ACCESS_ERROR = (
        85,
        _M,
        _ANY,
        "An access/permissions-related error occurred when handling the media file",
        _NEW,
    )
    ROUTING_ERROR = 100, _S, _SMS, "Routing error"
    WHATSAPP_ACCOUNT_PAYMENT_ISSUE = 130, _W, _WHATSAPP, "Whatsapp account payment issue"
    WHATSAPP_RE_ENGAGEMENT_REQUIRED = 131, _W, _WHATSAPP, "Re-engagement required"
    WHATSAPP_SPAM_RATE_LIMIT_REACHED = 132, _W, _WHATSAPP, "Spam rate limit reached"
    WHATSAPP_SERVER_RATE_LIMIT = 133, _W, _WHATSAPP, "Whatsapp server rate limit"
    WHATSAPP_HSM_NOT_AVAILABLE = 134, _W, _WHATSAPP, "Whatsapp HSM request structure not available"
    WHATSAPP_EXPERIMENTAL_NUMBER = (
        139,
        _W,
        _WHATSAPP,
        "Non-delivery due to WhatsApp experimental number feature",
        _NEW,
    )
    WHATSAPP_TEMPLATE_TEXT_TOO_LONG = (
        140,
        _W,
        _WHATSAPP,
        "Length of the parameters and the template text exceeds the maximum allowed length",
        _NEW,
    )
    WHATSAPP_TEMPLATE_FORMAT_MISMATCH = (
        141,
        _W,
        _WHATSAPP,
        "Specified template header format not in the expected format",
        _NEW,
    )

    _value_: int
    _category: Category
    _channels: frozenset[str]
    _description: str
    _source: Source

    def __new__(
        cls,
        code: int,
        category: Category,
        channels: frozenset[str],
        description: str,
        source: Source = Source.SEED,
    ) -> Status:
        member = int.__new__(cls, code)
        member._value_ = code
        member._category = category
        member._channels = channels
        member._description = description
        member._source = source
        return member

    @property
    def source(self) -> Source:
        """The Clickatell page this row (and its description) is copied from."""
        return self._source

    @property
    def description(self) -> str:
        """Clickatell's own wording for this status."""
        return self._description

    @property
    def category(self) -> Category:
        """The section of the catalog this status belongs to."""
        return self._category

    @property
    def channels(self) -> frozenset[str]:
        """The channels on which this status may be reported."""
        return self._channels

    @property
    def is_terminal(self) -> bool:
        """True when no further status can follow (READ and every code from 20 up)."""
        return self is Status.READ or self.value >= _FIRST_TERMINAL

    @property
    def is_failure(self) -> bool:
        """True for terminal non-deliveries (every code from 20 up)."""
        return self.value >= _FIRST_TERMINAL

    @property
    def is_delivered(self) -> bool:
        """True when the handset has the message (DEVICE_ACK or READ)."""
        return self is Status.DEVICE_ACK or self is Status.READ

    @property
    def kind(self) -> Kind:
        """Failure (codes 20 and up), delivered (DEVICE_ACK, READ) or still in progress."""
        if self.is_failure:
            return Kind.FAILURE
        return Kind.DELIVERED if self.is_delivered else Kind.PROGRESS

    def allowed_on(self, channel: str | None) -> bool:
        """Whether this status may be reported for a message on ``channel``.

        ``None`` (channel not known) allows every status.
        """
        return channel is None or channel in self._channels

    @classmethod
    def from_code(cls, code: int) -> Status:
        """The status for a numeric code; :class:`UnknownStatusCode` if there is none."""
        try:
            return _BY_CODE[code]
        except (KeyError, TypeError):
            raise UnknownStatusCode(code) from None

    @classmethod
    def from_name(cls, name: str) -> Status:
        """The status for a name such as ``"DEVICE_ACK"``; :class:`UnknownStatusCode` if none."""
        try:
            return cls[name]
        except (KeyError, TypeError):
            raise UnknownStatusCode(name) from None


_BY_CODE: Mapping[int, Status] = {member.value: member for member in Status}

#: Every terminal non-delivery (codes 20 and up), in code order.
FAILURES: tuple[Status, ...] = tuple(status for status in Status if status.is_failure)
