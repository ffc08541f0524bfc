"""Tests for the status catalog, checked against Clickatell's own page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deliverystate import Status
from deliverystate.errors import UnknownStatusCode
from deliverystate.rules import CHANNELS, Category, Source

SEED = Path(__file__).parent / "data" / "clickatell_status_codes.txt"
CURRENT = Path(__file__).parent / "data" / "clickatell_status_table_current.txt"


def seed_rows(page: Path = SEED) -> list[tuple[int, str, str]]:
    """(code, name, description) rows read from a status page's text."""
    rows: list[tuple[int, str, str]] = []
    previous_code = None
    for line in page.read_text(encoding="utf-8").splitlines():
        numbered = re.fullmatch(r"(\d+) ([A-Z_]+) (.+)", line.strip())
        unnumbered = re.fullmatch(r"([A-Z][A-Z_]+_[A-Z_]+) (.+)", line.strip())
        if numbered:
            code, name, text = int(numbered[1]), numbered[2], numbered[3]
        elif unnumbered and previous_code is not None:
            # the page prints one status without its number: it sits after the previous one
            code, name, text = previous_code + 1, unnumbered[1], unnumbered[2]
        else:
            continue
        rows.append((code, name, text))
        previous_code = code
    return rows


def test_seed_page_parses_to_29_statuses_all_in_the_catalog() -> None:
    """The seed page lists 29 statuses, 83 included; every one is in the catalog, from the seed."""
    rows = seed_rows()
    assert len(rows) == 29
    assert (83, "MEDIA_REJECTED_BY_SUPPLIER", "Channel supplier rejected media file") in rows
    assert {int(s) for s in Status if s.source is Source.SEED} == {code for code, _, _ in rows}


@pytest.mark.parametrize(("code", "name", "description"), seed_rows())
def test_catalog_matches_seed_verbatim(code: int, name: str, description: str) -> None:
    """Each status has the seed page's code, name and description, to the letter."""
    status = Status(code)
    assert status.name == name
    assert status.description == description


def test_current_table_adds_85_and_139_to_141_and_names_agree() -> None:
    """Codes of the current table that the seed lacks are in the catalog, and no name differs."""
    current = seed_rows(CURRENT)
    seed_codes = {code for code, _, _ in seed_rows()}
    added = sorted(code for code, _, _ in current if code not in seed_codes)
    assert added == [85, 139, 140, 141]
    for code, name, _ in current:
        assert Status(code).name == name
    assert {int(s) for s in Status if s.source is Source.CURRENT} == set(added)


@pytest.mark.parametrize(
    ("code", "name", "description"),
    [row for row in seed_rows(CURRENT) if row[0] in {85, 139, 140, 141}],
)
def test_catalog_matches_current_table_verbatim(code: int, name: str, description: str) -> None:
    """Each added status has the current table's name and description, to the letter."""
    status = Status(code)
    assert (status.name, status.description) == (name, description)
    assert status.is_terminal
    assert status.is_failure


def test_added_codes_have_their_sections_categories_and_channels() -> None:
    """85 is a media error on any channel; 139-141 are WhatsApp-only errors."""
    assert Status(85).category is Category.MEDIA
    assert Status(85).channels == frozenset(CHANNELS)
    for code in (139, 140, 141):
        assert Status(code).category is Category.WHATSAPP
        assert Status(code).channels == {"whatsapp"}


def test_descriptions_keep_the_pages_spelling() -> None:
    """ "Read Receipt" and "Whatsapp" are copied as Clickatell spells them."""
    assert Status.READ.description == "Read Receipt"
    assert Status.WHATSAPP_SERVER_RATE_LIMIT.description == "Whatsapp server rate limit"


def test_terminal_and_failure_flags() -> None:
    """READ and every code from 20 up are terminal; only codes from 20 up are failures."""
    for status in Status:
        assert status.is_terminal == (status is Status.READ or int(status) >= 20)
        assert status.is_failure == (int(status) >= 20)
    assert not Status.DEVICE_ACK.is_terminal
    assert Status.EMULATED.is_failure
    assert Status.STOPPED_BY_USER.is_failure


def test_channel_restrictions() -> None:
    """ROUTING_ERROR is SMS only, 130-134 WhatsApp only, everything else any channel."""
    assert Status.ROUTING_ERROR.channels == {"sms"}
    for code in range(130, 135):
        assert Status(code).channels == {"whatsapp"}
        assert not Status(code).allowed_on("sms")
        assert Status(code).allowed_on(None)
    assert Status.DEVICE_ACK.channels == set(CHANNELS)
    assert not Status.ROUTING_ERROR.allowed_on("whatsapp")


def test_categories_follow_the_page_sections() -> None:
    """Each status sits in the section of the page it is printed under."""
    assert {s for s in Status if s.category is Category.PROGRESS} == set(map(Status, range(1, 7)))
    assert Status(25).category is Category.GENERIC
    assert Status(61).category is Category.ENCRYPTION
    assert Status(83).category is Category.MEDIA
    assert Status(100).category is Category.SMS
    assert Status(134).category is Category.WHATSAPP


@pytest.mark.parametrize("code", [0, 7, 19, 30, 86, 135, 138, 142, -1])
def test_unknown_code_is_never_guessed(code: int) -> None:
    """An unrecognised code raises UnknownStatusCode, a ValueError carrying the value."""
    with pytest.raises(UnknownStatusCode) as caught:
        Status.from_code(code)
    assert isinstance(caught.value, ValueError)
    assert caught.value.value == code
    assert str(code) in str(caught.value)


def test_lookup_by_name() -> None:
    """Names resolve to members and unknown names raise UnknownStatusCode."""
    assert Status.from_name("DEVICE_ACK") is Status.DEVICE_ACK
    with pytest.raises(UnknownStatusCode):
        Status.from_name("DELIVERED")


def test_status_is_an_int_enum() -> None:
    """Statuses compare and hash as their codes."""
    assert Status.DEVICE_ACK == 5
    assert {5: "x"}[Status.DEVICE_ACK] == "x"
