"""Which asset a report names: exact codes and aliases, then spoken names fuzzily.

The labelled names below are what ``bot.assets.THRESHOLD`` was chosen on: every right match
scores at least 88 and every wrong candidate at most 67, so 80 separates them with room on
both sides. Names that fit two assets equally resolve to nothing.
"""

from __future__ import annotations

import pytest

from bot.assets import THRESHOLD, AssetIndex, AssetLinks, name_key
from storage.assets import AssetEntry

ASSETS = [
    AssetEntry(1, "IM-003", "3号注塑机", ("三号机",), site_name="二车间"),
    AssetEntry(2, "IM-004", "4号注塑机"),
    AssetEntry(3, "IM-013", "13号注塑机"),
    AssetEntry(4, "CT-P1", "1号冷却塔水泵"),
    AssetEntry(5, "CNC-02", "2号数控车床", ("CNC-2",)),
    AssetEntry(6, "AC-A", "空压机A"),
    AssetEntry(7, "CT-P2", "1号循环水泵"),
    AssetEntry(8, "OLD-9", "9号冲床", active=False),
]

#: (what a customer wrote or said, the asset's code it means; None: no asset)
LABELLED: list[tuple[str, str | None]] = [
    ("3号注塑机", "IM-003"),
    ("三号注塑机", "IM-003"),
    ("3#注塑机", "IM-003"),
    ("注塑机3号", "IM-003"),
    ("3 号注塑机", "IM-003"),
    ("３号注塑机", "IM-003"),  # full-width digit
    ("No.3注塑机", "IM-003"),
    ("3号注塑", "IM-003"),
    ("三号机", "IM-003"),  # an alias
    ("十三号注塑机", "IM-013"),
    ("二号数控车床", "CNC-02"),
    ("2号车床", "CNC-02"),
    ("1号冷却塔泵", "CT-P1"),
    ("空压机a", "AC-A"),
    ("5号注塑机", None),  # no such number
    ("4号冷却塔", None),  # the number of one asset, the kind of another
    ("注塑机", None),  # which of three?
    ("1号水泵", None),  # cooling-tower pump or circulation pump: too close to tell
    ("3号空压机", None),
    ("3号注朔机", None),  # a homophone typo scores 67: refused rather than guessed
    ("9号冲床", None),  # retired asset
]


@pytest.mark.parametrize(("said", "code"), LABELLED)
def test_a_spoken_name_resolves_to_its_asset_or_to_nothing(said: str, code: str | None) -> None:
    found = AssetIndex(ASSETS).resolve(None, said)
    assert (found.code if found else None) == code


def test_the_threshold_separates_right_from_wrong_on_the_labelled_names() -> None:
    index = AssetIndex(ASSETS)
    for said, code in LABELLED:
        asset, score = index.match(said)
        if code is not None and asset is not None:
            assert score >= 88 > THRESHOLD, said
    for said in ("3号注朔机", "3号空压机", "4号冷却塔"):
        assert index.match(said)[1] <= 67 < THRESHOLD, said


def test_codes_and_aliases_match_exactly_in_any_case_before_names() -> None:
    index = AssetIndex(ASSETS)
    assert index.resolve("im-003", None).code == "IM-003"  # type: ignore[union-attr]
    assert index.resolve("IM003", "4号注塑机").code == "IM-003"  # type: ignore[union-attr]
    assert index.resolve("cnc-2", None).code == "CNC-02"  # type: ignore[union-attr]
    assert index.resolve("KX2024-0087", None) is None


def test_names_are_normalised_into_numbers_and_the_rest() -> None:
    assert name_key("三号注塑机") == name_key("注塑机3号") == ((3,), "注塑机")
    assert name_key("二十一号线") == ((21,), "线")


def test_asset_links_are_short_signed_and_unforgeable() -> None:
    links = AssetLinks(b"k" * 32)
    token = links.sign(42)
    assert len(token) <= 16 and links.verify(token) == 42
    assert AssetLinks(b"other").verify(token) is None
    forged = ("B" if token[0] != "B" else "C") + token[1:]
    assert links.verify(forged) is None
    for junk in (None, 42, "", "x" * 200, "!!!!", "é" * 8):
        assert links.verify(junk) is None


def test_a_registered_code_anywhere_in_the_message_names_its_asset() -> None:
    index = AssetIndex(ASSETS)
    assert index.resolve(None, None, "AC-A 空压机停机了").code == "AC-A"  # type: ignore[union-attr]
    assert index.resolve(None, None, "ac-a漏气").code == "AC-A"  # type: ignore[union-attr]
    assert index.resolve(None, None, "XAC-A 漏气") is None  # (part of another tag)
    assert index.resolve(None, None, "空压机停机了，电话 13800001234") is None
