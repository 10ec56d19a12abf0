"""Which catalog part a spoken or written part name means (``bot.parts_catalog.match``): by
code, name or alias whatever the width, case or spacing; by model number and name; by sound
when speech recognition misheard; and nothing rather than a wrong part."""

from __future__ import annotations

import pytest

from bot.parts_catalog import PartsCatalog, match, with_codes
from storage.parts import PartEntry

CATALOG = PartsCatalog(
    [
        PartEntry("BRG-6205", "深沟球轴承 6205", ("6205轴承",), "个", (("总仓", 5), ("二仓", 0))),
        PartEntry("BRG-6206", "深沟球轴承 6206"),
        PartEntry("BLT-M8x20", "六角螺栓 M8×20", ("螺丝 M8x20",)),
        PartEntry("SEAL-50", "密封圈", ("O型圈", "油封")),
        PartEntry("CT-LC1D25", "交流接触器 LC1D25"),
        PartEntry("BR-01", "电机碳刷"),
        PartEntry("HS-01", "轴承座"),
        PartEntry("FLT-01", "air filter", ("filter element",)),
        PartEntry("BELT-A", "三角皮带 A1000"),
        PartEntry("BELT-B", "三角皮带 B1000"),
    ]
)


@pytest.mark.parametrize(
    ("name", "code", "how"),
    [
        ("BRG-6205", "BRG-6205", "code"),
        ("brg 6205", "BRG-6205", "code"),  # any case, spaces for dashes
        ("ＢＲＧ－６２０５", "BRG-6205", "code"),  # full width
        ("轴承 BRG-6205", "BRG-6205", "code"),  # a code written in the name
        ("密封圈", "SEAL-50", "name"),
        ("油封", "SEAL-50", "alias"),
        ("o型圈", "SEAL-50", "alias"),
        ("６２０５轴承", "BRG-6205", "alias"),
        ("轴承 6205", "BRG-6205", "alias"),  # the alias's words in another order
        ("Air Filter", "FLT-01", "name"),
        ("深沟球轴承6206", "BRG-6206", "name"),
        ("m8×20 螺丝", "BLT-M8x20", "alias"),
    ],
)
def test_codes_names_and_aliases_match_exactly(name: str, code: str, how: str) -> None:
    found = match(name, CATALOG)
    assert found is not None and (found.entry.code, found.how) == (code, how)
    assert found.confidence == 1.0


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("轴承 6206", "BRG-6206"),  # 深沟球轴承 is a 轴承: the name ends with what it is
        ("6206", "BRG-6206"),  # the model alone
        ("螺栓 M8x20", "BLT-M8x20"),
        ("螺栓 M8*20", "BLT-M8x20"),
        ("接触器 LC1D25", "CT-LC1D25"),
        ("lc1d25", "CT-LC1D25"),
        ("走成 6205", "BRG-6205"),  # misheard: zou cheng for zhou cheng
        ("密风圈", "SEAL-50"),  # misheard: 风 for 封, the same sound
        ("air filters", "FLT-01"),
        ("皮带 A1000", "BELT-A"),
    ],
)
def test_model_numbers_and_names_match_fuzzily_with_a_confidence(name: str, code: str) -> None:
    found = match(name, CATALOG)
    assert found is not None and found.entry.code == code and found.how == "fuzzy"
    assert 0.85 <= found.confidence < 1.0


@pytest.mark.parametrize(
    "name",
    [
        "轴承 6207",  # a model the catalog does not have
        "螺栓 M8x25",  # close to M8x20, but another bolt
        "轴承",  # which bearing? (6205, 6206, and 轴承座 is a housing)
        "电机",  # 电机碳刷 is a brush, not a motor
        "皮带",  # A1000 or B1000
        "风扇",
        "电池",
        "变频器 ACS550",
        "",
        "   ",
    ],
)
def test_a_name_that_fits_no_part_or_two_matches_nothing(name: str) -> None:
    assert match(name, CATALOG) is None


def test_an_empty_catalog_matches_nothing_and_a_reload_replaces_the_parts() -> None:
    catalog = PartsCatalog()
    assert match("密封圈", catalog) is None and len(catalog) == 0
    catalog.load([PartEntry("S-1", "密封圈")], (1, "t"))
    found = match("密封圈", catalog)
    assert found is not None and found.entry.code == "S-1" and catalog.fingerprint == (1, "t")
    assert catalog.by_code("s1") is not None and catalog.by_code("S-2") is None


def test_a_name_two_parts_share_exactly_is_not_guessed() -> None:
    catalog = PartsCatalog([PartEntry("S-1", "密封圈", ("油封",)), PartEntry("S-2", "油封")])
    assert match("油封", catalog) is None
    found = match("密封圈", catalog)
    assert found is not None and found.entry.code == "S-1"


def test_a_diagnosis_gets_the_codes_of_the_parts_it_needs() -> None:
    read = {
        "symptom": "轴承异响",
        "parts_needed": [
            {"name": "6205轴承", "qty": 2},
            {"name": "螺丝 M8x25", "qty": 4},  # no such part: kept as said, no code
            {"name": "密封圈", "qty": 1, "code": "SEAL-50"},  # named already: kept
        ],
    }
    coded = with_codes(read, CATALOG)
    assert coded["parts_needed"] == [
        {"name": "6205轴承", "qty": 2, "code": "BRG-6205", "code_confidence": 1.0},
        {"name": "螺丝 M8x25", "qty": 4},
        {"name": "密封圈", "qty": 1, "code": "SEAL-50"},
    ]
    assert coded["symptom"] == "轴承异响" and read["parts_needed"][0] == {
        "name": "6205轴承",
        "qty": 2,
    }
    assert with_codes(read, PartsCatalog([])) is read  # no catalog: nothing to add
