"""Asset files: ``gongdan assets import`` and ``export`` (CSV in UTF-8, or XLSX).

One sheet (the first of a workbook) of assets, a header row and a row per asset. Headers may be
English (``COLUMNS``) or Chinese (``ALIASES``: 编号, 名称, 型号, …). Every row is checked before
anything is written, and every problem is reported with its row number as a spreadsheet shows
it (the header is row 1); one bad row and nothing is imported. Rows are matched to stored
assets by code (ignoring case); sites and organisations are created or updated from their
columns. Export writes the same columns, so a file exported and imported again changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bot.sheets import (
    ImportProblems,
    check_columns,
    header_key,
    open_sheet,
    split_list,
    write_sheet,
)
from bot.sheets import cell_text as _text
from storage.assets import AssetRow

__all__ = ["ALIASES", "COLUMNS", "ImportProblems", "read_assets", "write_assets"]

COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(AssetRow))

#: Other names a header may have (compared without case, spaces, ``*`` marks or a bracketed
#: hint such as "(YYYY-MM-DD)").
ALIASES: dict[str, str] = {
    "编号": "code", "设备编号": "code", "资产编号": "code", "名称": "name", "设备名称": "name",
    "别名": "aliases", "型号": "model", "类别": "category", "类型": "category",
    "分类": "category", "站点编号": "site_code", "站点代码": "site_code", "站点": "site_name",
    "站点名称": "site_name", "地址": "site_address", "站点地址": "site_address", "纬度": "lat",
    "经度": "lon", "客户编号": "organisation_code", "客户代码": "organisation_code",
    "客户": "organisation_name", "客户名称": "organisation_name", "安装日期": "install_date",
    "保修到期": "warranty_end", "保修截止": "warranty_end", "保修到期日": "warranty_end",
    "首选工程师": "preferred_engineer", "负责工程师": "preferred_engineer",
    "读数": "meter", "表读数": "meter", "读数单位": "meter_unit", "单位": "meter_unit",
    "organization_code": "organisation_code", "organization_name": "organisation_name",
    "latitude": "lat", "longitude": "lon", "address": "site_address", "site": "site_name",
}  # fmt: skip
_REQUIRED = ("code", "name")
_LENGTHS = {"code": 100, "name": 200, "model": 200, "category": 100, "site_code": 100,
            "site_name": 200, "site_address": 500, "organisation_code": 100,
            "organisation_name": 200, "preferred_engineer": 200, "meter_unit": 20}  # fmt: skip
_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")


def _header(raw: object) -> str:
    return header_key(raw, ALIASES)


@dataclass
class _Checker:
    people: Collection[str]
    problems: list[str]
    row: int = 0

    def fail(self, message: str) -> None:
        self.problems.append(f"row {self.row}: {message}")

    def date(self, name: str, value: object) -> date | None:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        text = _text(value)
        if text is None:
            return None
        m = _DATE.fullmatch(text)
        try:
            if m is None:
                raise ValueError
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            self.fail(f"{name} {text!r} is not a date (YYYY-MM-DD)")
            return None

    def number(self, name: str, value: object, low: float, high: float) -> float | None:
        text = _text(value)
        if text is None:
            return None
        try:
            number = float(text)
        except ValueError:
            self.fail(f"{name} {text!r} is not a number")
            return None
        if not low <= number <= high:
            self.fail(f"{name} {text} is not between {low:g} and {high:g}")
            return None
        return number


def _check_row(c: _Checker, cells: dict[str, object]) -> AssetRow | None:
    text = {k: _text(v) for k, v in cells.items() if k not in ("install_date", "warranty_end")}
    before = len(c.problems)
    for name in _REQUIRED:
        if not text.get(name):
            c.fail(f"{name} is empty")
    for name, limit in _LENGTHS.items():
        value = text.get(name)
        if value is not None and len(value) > limit:
            c.fail(f"{name} is longer than {limit} characters")
    lat = c.number("lat", cells.get("lat"), -90, 90)
    lon = c.number("lon", cells.get("lon"), -180, 180)
    if (text.get("lat") is None) != (text.get("lon") is None):
        c.fail("lat and lon go together: give both or neither")
    engineer = text.get("preferred_engineer")
    if engineer is not None and engineer not in c.people:
        c.fail(f"preferred_engineer {engineer!r} is not a person in [[people]]")
    row = AssetRow(
        code=text.get("code") or "",
        name=text.get("name") or "",
        aliases=split_list(text.get("aliases")),
        model=text.get("model"),
        category=text.get("category"),
        site_code=text.get("site_code"),
        site_name=text.get("site_name"),
        site_address=text.get("site_address"),
        lat=lat,
        lon=lon,
        organisation_code=text.get("organisation_code"),
        organisation_name=text.get("organisation_name"),
        install_date=c.date("install_date", cells.get("install_date")),
        warranty_end=c.date("warranty_end", cells.get("warranty_end")),
        preferred_engineer=engineer,
        meter=c.number("meter", cells.get("meter"), 0, 1e15),
        meter_unit=text.get("meter_unit"),
    )
    if row.site_code is None and (row.site_name or row.site_address or row.lat is not None):
        c.fail("site_name, site_address, lat and lon need a site_code")
    if row.organisation_code is None and row.organisation_name:
        c.fail("organisation_name needs an organisation_code")
    return row if len(c.problems) == before else None


def _agree(c: _Checker, seen: dict[tuple[str, str], tuple[int, object]], what: str,
           code: str | None, name: str, value: object) -> None:  # fmt: skip
    """A site or organisation described on several rows must be described the same way."""
    if code is None or value is None:
        return
    key = (f"{what}.{name}", code.lower())
    first = seen.setdefault(key, (c.row, value))
    if first[1] != value:
        c.fail(f"{what} {code} has {name} {value!r} here but {first[1]!r} in row {first[0]}")


def read_assets(path: Path, people: Collection[str]) -> list[AssetRow]:
    """The file's assets, every one checked; ``ImportProblems`` listing every bad row."""
    sheet = open_sheet(path)
    names = [_header(h) for h in sheet.header]
    problems = check_columns(names, sheet.header, COLUMNS, _REQUIRED)
    if problems:
        raise ImportProblems(problems)
    checker = _Checker(people, problems)
    out: list[AssetRow] = []
    codes: dict[str, int] = {}
    described: dict[tuple[str, str], tuple[int, object]] = {}
    for number, cells in sheet.rows():
        checker.row = number
        values = {n: v for n, v in zip(names, cells, strict=False) if n}
        row = _check_row(checker, values)
        if row is None:
            continue
        first = codes.setdefault(row.code.lower(), number)
        if first != number:
            checker.fail(f"code {row.code!r} is already in row {first}")
            continue
        for name in ("site_name", "site_address", "lat", "lon"):
            _agree(checker, described, "site", row.site_code, name, getattr(row, name))
        _agree(checker, described, "organisation", row.organisation_code, "organisation_name",
               row.organisation_name)  # fmt: skip
        out.append(row)
    if problems:
        raise ImportProblems(problems)
    if not out:
        raise ImportProblems([f"{path.name} has a header but no assets"])
    return out


def _cell(row: AssetRow, name: str) -> Any:
    value = getattr(row, name)
    if name == "aliases":
        return ";".join(value) or None
    if isinstance(value, float) and value.is_integer() and name == "meter":
        return int(value)
    return value


def write_assets(path: Path, assets: Sequence[AssetRow]) -> None:
    """The assets in the import's columns (English headers), as CSV or XLSX."""
    write_sheet(path, "assets", COLUMNS, ([_cell(a, n) for n in COLUMNS] for a in assets))
