"""Reading an import file — CSV in UTF-8, or the first sheet of an XLSX workbook — for every
importer (``bot.asset_files``, ``bot.part_files``): a header row, then a row per item, each
numbered as a spreadsheet shows it (the header is row 1). What a bad file gets is
``ImportProblems``, naming every problem, and nothing is written. ``write_sheet`` writes the
same shape (an export that imports again unchanged).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "ImportProblems",
    "Sheet",
    "cell_text",
    "check_columns",
    "header_key",
    "open_sheet",
    "split_list",
    "write_sheet",
]

_HINT = re.compile(r"[（(].*?[)）]|\*")
_LIST = re.compile(r"[;；、|｜]")


class ImportProblems(Exception):
    """The file cannot be imported; ``problems`` lists every reason (nothing was written)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(f"{len(problems)} problems")
        self.problems = list(problems)


def header_key(raw: object, aliases: Mapping[str, str] = {}) -> str:
    """A header as compared: without case, spaces (→ ``_``), ``*`` marks or a bracketed hint
    such as "(YYYY-MM-DD)", then through ``aliases`` (编号 → code)."""
    text = _HINT.sub("", str(raw or "")).strip().lstrip("\ufeff").lower()
    text = re.sub(r"\s+", "_", text)
    return aliases.get(text, text)


def cell_text(value: object) -> str | None:
    """A cell as text (a whole float from a spreadsheet loses its ".0"); None when empty."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime):
        value = value.date()
    text = str(value).strip()
    return text or None


def split_list(text: str | None) -> list[str]:
    """A cell holding several values (aliases), separated by ; ； 、 or |."""
    return [a.strip() for a in _LIST.split(text or "") if a.strip()]


def _rows(path: Path) -> Iterator[list[object]]:
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True, data_only=True)
        try:
            for row in book.worksheets[0].iter_rows(values_only=True):
                yield list(row)
        finally:
            book.close()
    elif suffix == ".csv":
        try:
            content = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise ImportProblems(
                [f"{path.name} is not UTF-8 text: save it as “CSV UTF-8” and try again"]
            ) from None
        yield from csv.reader(io.StringIO(content))
    else:
        raise ImportProblems([f"{path.name}: give a .csv or .xlsx file"])


class Sheet:
    """An open import file: its ``header`` (as written) and its non-blank ``rows`` with their
    row numbers."""

    def __init__(self, header: list[object], rows: Iterator[list[object]]) -> None:
        self.header = header
        self._rows = rows

    def rows(self) -> Iterator[tuple[int, list[object]]]:
        for number, cells in enumerate(self._rows, start=2):
            if any(cell_text(v) for v in cells):
                yield number, cells


def open_sheet(path: Path) -> Sheet:
    """The file's header and rows; ``ImportProblems`` when it is not a file we read or has
    no header. (``OSError`` when it cannot be opened at all.)"""
    rows = _rows(path)
    header = next(rows, None)
    if header is None or not any(cell_text(h) for h in header):
        raise ImportProblems([f"{path.name} is empty: the first row must name the columns"])
    return Sheet(header, rows)


def check_columns(
    names: Sequence[str | None], header: Sequence[object], known: Collection[str],
    required: Sequence[str],
) -> list[str]:  # fmt: skip
    """What is wrong with the header: unknown or repeated columns, missing required ones.
    ``names`` are the header's columns as understood (None: a column this importer reads
    otherwise, e.g. a store's stock); an empty name is a blank column, ignored."""
    problems = []
    for i, name in enumerate(names):
        if name and name not in known:
            problems.append(
                f"column {i + 1}: unknown column {str(header[i])[:40]!r} "
                f"(known: {', '.join(known)})"
            )
    seen = [n for n in names if n]
    for name in dict.fromkeys(n for n in seen if seen.count(n) > 1):
        problems.append(f"column {name!r} is given twice")
    for name in required:
        if name not in names:
            problems.append(f"the file has no {name!r} column")
    return problems


def write_sheet(
    path: Path, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """A header and rows as CSV (UTF-8 with a BOM, which spreadsheet programs need to see
    Chinese) or XLSX (one sheet called ``title``); None is an empty cell."""
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.title = title
        sheet.append(list(header))
        for row in rows:
            sheet.append(list(row))
        book.save(path)
    elif suffix == ".csv":
        with path.open("w", encoding="utf-8-sig", newline="") as f:
            out = csv.writer(f)
            out.writerow(header)
            for row in rows:
                out.writerow(["" if v is None else v for v in row])
    else:
        raise ImportProblems([f"{path.name}: give a .csv or .xlsx file"])
