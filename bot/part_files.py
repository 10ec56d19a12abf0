"""Parts catalog files: ``gongdan parts import`` and ``export`` (CSV in UTF-8, or XLSX), read
like asset files (``bot.sheets``): every row is checked first, every problem is named with its
row number, and one bad row means nothing is imported.

Columns (headers in English or Chinese, any case): ``code`` (编码, 编号, 备件编码, 物料编码, 料号;
required), ``name`` (名称, 备件名称, 物料名称; required), ``aliases`` (别名; several separated by
``;`` ``、`` or ``|``), ``unit`` (单位), and one column per store holding its stock, headed
``库存:总仓`` or ``stock:main`` (a full-width colon works too). A number is that store's stock
(0 is "none left"); an empty cell says the store does not keep the part. Stores the file has no
column for keep the stock they had. Export writes the same columns (``stock:<store>`` for every
store any part is kept at), so a file exported and imported again changes nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from bot.sheets import (
    ImportProblems,
    cell_text,
    check_columns,
    header_key,
    open_sheet,
    split_list,
    write_sheet,
)
from storage.parts import PartEntry, PartRow

__all__ = ["ALIASES", "COLUMNS", "ImportProblems", "read_parts_file", "store_of", "write_parts"]

COLUMNS: tuple[str, ...] = ("code", "name", "aliases", "unit")
ALIASES: dict[str, str] = {
    "编码": "code", "编号": "code", "备件编码": "code", "物料编码": "code", "料号": "code",
    "备件编号": "code", "名称": "name", "备件名称": "name", "物料名称": "name", "别名": "aliases",
    "单位": "unit", "计量单位": "unit", "part_code": "code", "part_name": "name",
}  # fmt: skip
_REQUIRED = ("code", "name")
_LENGTHS = {"code": 100, "name": 200, "unit": 20}
_STORE = re.compile(r"^\s*(?:库存|stock)\s*:\s*(?P<store>.+?)\s*$", re.I)
_MAX_QTY = 1e9
_STOCK_WORDS = frozenset({"库存", "stock", "qty", "数量", "quantity", "库存数量"})


def store_of(raw: object) -> str | None:
    """The store a stock column is for (``库存:总仓`` → 总仓), or None when it is not one."""
    m = _STORE.match(unicodedata.normalize("NFKC", str(raw or "")))
    return m["store"] if m else None


def _qty(fail: list[str], row: int, column: str, value: object) -> float | None:
    text = cell_text(value)
    if text is None:
        return None
    try:
        qty = float(unicodedata.normalize("NFKC", text).replace(",", ""))
    except ValueError:
        fail.append(f"row {row}: {column} {text!r} is not a number")
        return None
    if not 0 <= qty <= _MAX_QTY:
        fail.append(f"row {row}: {column} {text} is not between 0 and {_MAX_QTY:g}")
        return None
    return qty


def _row(problems: list[str], number: int, cells: dict[str, object],
         stock_cells: dict[str, tuple[str, object]]) -> PartRow | None:  # fmt: skip
    """One row checked: the part, or None with its problems added."""
    before = len(problems)
    text = {n: cell_text(v) for n, v in cells.items()}
    for name in _REQUIRED:
        if not text.get(name):
            problems.append(f"row {number}: {name} is empty")
    for name, limit in _LENGTHS.items():
        if len(text.get(name) or "") > limit:
            problems.append(f"row {number}: {name} is longer than {limit} characters")
    stock = {s: _qty(problems, number, column, v) for s, (column, v) in stock_cells.items()}
    if len(problems) > before:
        return None
    return PartRow(code=text["code"] or "", name=text["name"] or "",
                   aliases=split_list(text.get("aliases")), unit=text.get("unit"),
                   stock=stock)  # fmt: skip


def read_parts_file(path: Path) -> list[PartRow]:
    """The file's parts, every one checked; ``ImportProblems`` listing every bad row."""
    sheet = open_sheet(path)
    stores = [store_of(h) for h in sheet.header]
    names = [
        None if s else header_key(h, ALIASES) for h, s in zip(sheet.header, stores, strict=True)
    ]
    problems = check_columns(names, sheet.header, COLUMNS, _REQUIRED)
    problems += [
        f"column {i + 1}: a stock column names its store, e.g. 库存:总仓 or stock:main"
        for i, n in enumerate(names)
        if n in _STOCK_WORDS
    ]
    named = [s for s in stores if s]
    for store in dict.fromkeys(named):
        if named.count(store) > 1:
            problems.append(f"store {store!r} has two stock columns")
        if len(store) > 100:
            problems.append(f"store name {store[:40]!r} is longer than 100 characters")
    if problems:
        raise ImportProblems(problems)
    out: list[PartRow] = []
    codes: dict[str, int] = {}
    for number, cells in sheet.rows():
        cells += [None] * (len(names) - len(cells))
        row = _row(
            problems,
            number,
            {n: v for n, v in zip(names, cells, strict=False) if n},
            {s: (str(sheet.header[i]).strip(), cells[i]) for i, s in enumerate(stores) if s},
        )
        if row is None:
            continue
        first = codes.setdefault(row.code.lower(), number)
        if first != number:
            problems.append(f"row {number}: code {row.code!r} is already in row {first}")
        else:
            out.append(row)
    if problems:
        raise ImportProblems(problems)
    if not out:
        raise ImportProblems([f"{path.name} has a header but no parts"])
    return out


def write_parts(path: Path, parts: Sequence[PartEntry]) -> None:
    """The catalog in the import's columns (English headers), a ``stock:<store>`` column for
    each store in the order the parts name them; as CSV or XLSX."""
    stores = list(dict.fromkeys(store for p in parts for store, _ in p.stock))
    header = [*COLUMNS, *(f"stock:{s}" for s in stores)]

    def row(p: PartEntry) -> list[object]:
        held = dict(p.stock)
        qty = [held.get(s) for s in stores]
        return [p.code, p.name, ";".join(p.aliases) or None, p.unit,
                *(int(q) if q is not None and q.is_integer() else q for q in qty)]  # fmt: skip

    write_sheet(path, "parts", header, (row(p) for p in parts))
