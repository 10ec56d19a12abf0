"""`gongdan parts import`: the spare-parts catalog from CSV or XLSX — upserted by code, stock
per store, every bad row named and nothing half-imported (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from pathlib import Path

from openpyxl import Workbook
from sqlalchemy import func, select

from bot.cli.registry import parts_command
from bot.config import Settings
from bot.parts_catalog import load_catalog, match
from storage import parts
from storage.db import Database
from storage.models import PartsCatalogEntry, PartStock
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent
ZH_HEADER = ["编码", "名称", "别名", "单位", "库存:总仓", "库存：二仓"]
GOOD = [
    ["BRG-6205", "深沟球轴承 6205", "6205轴承；轴承6205", "个", "5", "0"],
    ["SEAL-50", "密封圈 50", "O型圈 50|油封 50", "套", "12", ""],  # 二仓 does not keep it
    ["BLT-M8x20", "六角螺栓 M8×20", "", "", "200", "35"],
]


def _csv(path: Path, rows: list[list[str]], header: list[str] = ZH_HEADER) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as f:  # (Excel's "CSV UTF-8")
        csv.writer(f).writerows([header, *rows])
    return path


async def _parts_import(settings: Settings, path: Path) -> int:
    return await parts_command(settings, "import", path)


async def _entries(db: Database) -> dict[str, parts.PartEntry]:
    async with db.reads() as conn:
        return {e.code: e for e in await parts.entries(conn)}


async def _count(db: Database, model: type) -> int:
    async with db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_a_csv_with_chinese_headers_imports_parts_with_their_stock_per_store(
    tmp_path: Path, db_url: str, db: Database, capsys: object
) -> None:
    settings = make_settings(tmp_path, db_url)
    assert await _parts_import(settings, _csv(tmp_path / "parts.csv", GOOD)) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "imported 3 parts (3 new, 0 updated), stock of 2 stores" in out
    found = await _entries(db)
    bearing = found["BRG-6205"]
    assert (bearing.name, bearing.unit) == ("深沟球轴承 6205", "个")
    assert bearing.aliases == ("6205轴承", "轴承6205")
    assert bearing.stock == (("总仓", 5.0), ("二仓", 0.0))  # the file's column order
    assert found["SEAL-50"].aliases == ("O型圈 50", "油封 50")
    assert found["SEAL-50"].stock == (("总仓", 12.0),)
    async with db.reads() as conn:
        catalog = await load_catalog(conn)
    hit = match("轴承 6205", catalog)
    assert hit is not None and hit.entry.code == "BRG-6205"


async def test_an_xlsx_with_english_headers_updates_by_code_and_keeps_other_stores(
    tmp_path: Path, db_url: str, db: Database
) -> None:
    settings = make_settings(tmp_path, db_url)
    assert await _parts_import(settings, _csv(tmp_path / "parts.csv", GOOD)) == 0
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Code", "Name", "Aliases", "Unit", "stock:二仓"])
    sheet.append(["brg-6205", "深沟球轴承 6205-2RS", None, "pcs", 3.0])  # any case: the same part
    sheet.append([6001, "bearing 6001", "ball bearing 6001; 6001", None, 7])  # a number code
    sheet.append(["SEAL-50", "密封圈 50", None, "套", None])  # no stock at 二仓, as before
    path = tmp_path / "second.xlsx"
    book.save(path)
    assert await _parts_import(settings, path) == 0
    found = await _entries(db)
    assert set(found) == {"brg-6205", "6001", "SEAL-50", "BLT-M8x20"}
    bearing = found["brg-6205"]
    assert (bearing.name, bearing.unit, bearing.aliases) == ("深沟球轴承 6205-2RS", "pcs", ())
    assert dict(bearing.stock) == {"总仓": 5.0, "二仓": 3.0}  # 总仓 was not in this file: kept
    assert found["6001"].stock == (("二仓", 7.0),)
    assert found["SEAL-50"].stock == (("总仓", 12.0),)
    assert await _count(db, PartsCatalogEntry) == 4 and await _count(db, PartStock) == 6


async def test_an_export_imports_again_unchanged_as_csv_and_xlsx(
    tmp_path: Path, db_url: str, db: Database
) -> None:
    settings = make_settings(tmp_path, db_url)
    assert await _parts_import(settings, _csv(tmp_path / "parts.csv", GOOD)) == 0
    stored = await _entries(db)
    for name in ("out.csv", "out.xlsx"):
        assert await parts_command(settings, "export", tmp_path / name) == 0
        assert await _parts_import(settings, tmp_path / name) == 0
        assert await _entries(db) == stored
    with (tmp_path / "out.csv").open(encoding="utf-8-sig") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["code", "name", "aliases", "unit", "stock:总仓", "stock:二仓"]
    assert ["SEAL-50", "密封圈 50", "O型圈 50;油封 50", "套", "12", ""] in rows
    assert await parts_command(settings, "export", tmp_path / "out.txt") == 2


async def test_one_bad_row_and_nothing_is_imported_with_every_problem_named(
    tmp_path: Path, db_url: str, db: Database, capsys: object
) -> None:
    settings = make_settings(tmp_path, db_url)
    bad = [
        *GOOD,  # rows 2-4 are fine
        ["BRG-6206", "深沟球轴承 6206", "", "", "五", "1"],  # row 5
        ["", "无编码", "", "", "1", "1"],  # row 6
        ["brg-6205", "又一个", "", "", "1", "-2"],  # row 7
        ["X-1", "", "", "个个个个个个个个个个个个个个个个个个个个个", "", ""],  # row 8
    ]
    assert await _parts_import(settings, _csv(tmp_path / "bad.csv", bad)) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    for problem in (
        "row 5: 库存:总仓 '五' is not a number",
        "row 6: code is empty",
        "row 7: 库存：二仓 -2 is not between 0 and 1e+09",
        "row 8: name is empty",
        "row 8: unit is longer than 20 characters",
        "nothing imported (5 problems)",
    ):
        assert problem in err, err
    assert await _count(db, PartsCatalogEntry) == 0 and await _count(db, PartStock) == 0
    duplicate = [*GOOD, ["brg-6205", "又一个", "", "", "1", "1"]]
    assert await _parts_import(settings, _csv(tmp_path / "dup.csv", duplicate)) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "row 5: code 'brg-6205' is already in row 2" in err
    assert await _count(db, PartsCatalogEntry) == 0


async def test_a_file_that_is_not_what_we_read_says_so(
    tmp_path: Path, db_url: str, capsys: object
) -> None:
    settings = make_settings(tmp_path, db_url)
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("编码,名称\nBRG-1,轴承\n".encode("gbk"))
    typo = _csv(tmp_path / "typo.csv", [["B-1", "x", "1", "2"]],
                header=["code", "nmae", "stock:main", "stock:main", "库存"])  # fmt: skip
    empty = _csv(tmp_path / "empty.csv", [], header=["code", "name"])
    for path in (gbk, typo, empty, tmp_path / "parts.txt"):
        path.touch()
        assert await _parts_import(settings, path) == 1
    assert await _parts_import(settings, tmp_path / "missing.csv") == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    for problem in ("not UTF-8", "unknown column 'nmae'", "no 'name' column",
                    "store 'main' has two stock columns", "has a header but no parts",
                    "column 5: a stock column names its store, e.g. 库存:总仓 or stock:main",
                    "give a .csv or .xlsx file", "No such file"):  # fmt: skip
        assert problem in err, err


async def test_the_command_line_imports_parts(tmp_path: Path, db_url: str, db: Database) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "--config", str(cfg), "parts", "import",
        str(_csv(tmp_path / "p.csv", GOOD)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's code, wherever it is
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "imported 3 parts (3 new, 0 updated)" in out.decode()
    assert set(await _entries(db)) == {"BRG-6205", "SEAL-50", "BLT-M8x20"}
