"""The callback formats' own numbering, as data: Platform and legacy codes and names.

Theory of operation
-------------------
Clickatell's One API numbers statuses as the catalog does.  Its older APIs do
not: the legacy HTTP API sends a three-digit ``status`` ("001".."014"), and
the Platform API's flat callback numbers ``statusCode`` the same way (1..14)
and names statuses its own way (``DELIVERED_TO_GATEWAY``, ...).  This module
writes those numberings down, once, as tables onto the catalog; the parser
(``_parse``) reads callbacks through them and the simulator derives the
bodies it writes from them.  See docs/formats.md ("The catalog and the
formats") for the sources.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..rules._catalog import Status

__all__ = ["LEGACY_STATUS", "PLATFORM_NAMES"]

#: Legacy HTTP API status ("001".."014"), which is also the Platform API's
#: ``statusCode`` numbering -> One API status.  013 ("Clickatell cancelled
#: message delivery") has no agreed One API equivalent and is refused, not guessed.
LEGACY_STATUS: Mapping[int, Status] = {
    1: Status.UNKNOWN,  # message unknown
    2: Status.QUEUED,  # message queued
    3: Status.SENT_TO_SUPPLIER,  # delivered to (the upstream) gateway
    4: Status.DEVICE_ACK,  # received by recipient
    5: Status.DELIVERY_FAILURE,  # error with message
    6: Status.STOPPED_BY_USER,  # user cancelled message delivery
    7: Status.DELIVERY_FAILURE,  # error delivering message
    8: Status.QUEUED,  # OK: message received by gateway
    9: Status.ROUTING_ERROR,  # routing error
    10: Status.EXPIRED,  # message expired
    11: Status.SCHEDULED,  # message queued for later delivery
    12: Status.INSUFFICIENT_ACCOUNT_BALANCE,  # out of credit
    14: Status.VOLUME_LIMIT,  # maximum MT limit exceeded
}

#: Platform ``status`` names -> their Platform ``statusCode``.  Only
#: DELIVERED_TO_GATEWAY and RECEIVED_BY_RECIPIENT are attested in public
#: sources (Clickatell's own clickatell-platform Node sample and integrations
#: that read real callbacks); they are the legacy descriptions written in
#: upper case with underscores, and so are the others here.  A name not in this
#: table (nor a One API name) is refused and kept in the dead letter.
PLATFORM_NAMES: Mapping[str, int] = {
    "MESSAGE_UNKNOWN": 1,
    "MESSAGE_QUEUED": 2,
    "DELIVERED_TO_GATEWAY": 3,
    "RECEIVED_BY_RECIPIENT": 4,
    "ERROR_WITH_MESSAGE": 5,
    "USER_CANCELLED_MESSAGE_DELIVERY": 6,
    "ERROR_DELIVERING_MESSAGE": 7,
    "OK": 8,
    "ROUTING_ERROR": 9,
    "MESSAGE_EXPIRED": 10,
    "MESSAGE_QUEUED_FOR_LATER_DELIVERY": 11,
    "MESSAGE_SCHEDULED_FOR_LATER_DELIVERY": 11,
    "OUT_OF_CREDIT": 12,
    "CLICKATELL_CANCELLED_MESSAGE_DELIVERY": 13,
    "MAXIMUM_MT_LIMIT_EXCEEDED": 14,
}
