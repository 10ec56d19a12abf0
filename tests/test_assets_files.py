"""`gongdan assets import/export/qr`: files in, files out, nothing half-imported."""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from datetime import date, datetime
from pathlib import Path

from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from bot.cli.registry import assets_command
from bot.config import Settings
from storage import assets
from storage.db import Database
from storage.models import Asset, Organisation, Site
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent
ZH_HEADER = [
    "编号",
    "名称",
    "别名",
    "型号",
    "类别",
    "站点编号",
    "站点",
    "地址",
    "纬度",
    "经度",
    "客户编号",
    "客户",
    "安装日期",
    "保修到期(YYYY-MM-DD)",
    "首选工程师",
    "读数",
    "读数单位",
]
GOOD_ROWS = [
    [
        "IM-003",
        "3号注塑机",
        "三号机、老三",
        "HT-MA900",
        "注塑机",
        "S-2",
        "二车间",
        "苏州工业园区1号",
        "31.3",
        "120.7",
        "ACME",
        "艾克米精密",
        "2021-03-01",
        "2027-06-30",
        "li",
        "12034",
        "h",
    ],
    [
        "IM-004",
        "4号注塑机",
        "",
        "HT-MA900",
        "注塑机",
        "S-2",
        "二车间",
        "",
        "",
        "",
        "ACME",
        "",
        "2021-03-01",
        "2024-01-31",
        "",
        "",
        "",
    ],
    [
        "CT-P1",
        "1号冷却塔水泵",
        "水泵;冷却泵",
        "",
        "泵",
        "S-9",
        "动力站",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ],
]


def _csv(path: Path, rows: list[list[str]], header: list[str] = ZH_HEADER) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as f:  # (Excel's "CSV UTF-8")
        csv.writer(f).writerows([header, *rows])
    return path


async def _count(db: Database, model: type) -> int:
    async with db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def _run(settings: Settings, command: str, target: str | Path) -> int:
    return await assets_command(settings, command, str(target))


async def test_a_csv_with_chinese_headers_imports_and_round_trips(
    tmp_path: Path, db_url: str, db: Database, capsys: object
) -> None:
    settings = make_settings(tmp_path, db_url)
    assert await _run(settings, "import", _csv(tmp_path / "assets.csv", GOOD_ROWS)) == 0
    async with db.reads() as conn:
        found = {a.code: a for a in await assets.entries(conn)}
        stored = await assets.rows(conn)
    assert set(found) == {"IM-003", "IM-004", "CT-P1"}
    im3 = found["IM-003"]
    assert im3.aliases == ("三号机", "老三") and found["CT-P1"].aliases == ("水泵", "冷却泵")
    assert (im3.site_name, im3.organisation_name, im3.model) == ("二车间", "艾克米精密", "HT-MA900")
    assert im3.warranty_end == date(2027, 6, 30) and im3.preferred_engineer == "li"
    assert await _count(db, Site) == 2 and await _count(db, Organisation) == 1
    row = next(r for r in stored if r.code == "IM-003")
    assert (row.lat, row.lon, row.site_address, row.meter) == (
        31.3,
        120.7,
        "苏州工业园区1号",
        12034,
    )

    out = tmp_path / "out.csv"
    assert await _run(settings, "export", out) == 0
    assert await _run(settings, "import", out) == 0  # what was exported imports unchanged
    async with db.reads() as conn:
        assert await assets.rows(conn) == stored
    assert await _count(db, Asset) == 3


async def test_an_xlsx_with_english_headers_and_typed_cells_round_trips(
    tmp_path: Path, db_url: str, db: Database
) -> None:
    settings = make_settings(tmp_path, db_url)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["code", "name", "model", "site_code", "site_name", "warranty_end", "meter"])
    sheet.append([1001, "2号数控车床", "CK6150", "S-1", "一车间", datetime(2026, 1, 31), 5.0])
    sheet.append(["AC-A", "空压机A", None, None, None, None, None])
    path = tmp_path / "assets.xlsx"
    book.save(path)
    assert await _run(settings, "import", path) == 0
    async with db.reads() as conn:
        found = {a.code: a for a in await assets.entries(conn)}
        stored = await assets.rows(conn)
    assert found["1001"].warranty_end == date(2026, 1, 31)  # a whole number is a code as written
    assert found["AC-A"].site_name is None

    out = tmp_path / "out.xlsx"
    assert await _run(settings, "export", out) == 0
    exported = list(load_workbook(out).worksheets[0].iter_rows(values_only=True))
    assert exported[0][:3] == ("code", "name", "aliases")
    assert await _run(settings, "import", out) == 0
    async with db.reads() as conn:
        assert await assets.rows(conn) == stored
    # A folder that is not there: said in one line, exit 2 (not a traceback).
    assert await _run(settings, "export", tmp_path / "missing" / "out.csv") == 2


async def test_one_bad_row_and_nothing_is_imported_with_every_problem_named(
    tmp_path: Path, db_url: str, db: Database, capsys: object
) -> None:
    settings = make_settings(tmp_path, db_url)
    bad = [
        *GOOD_ROWS,  # rows 2-4 are fine
        ["IM-005", "5号注塑机", "", "", "", "", "", "", "", "", "", "", "", "2025-13-01", "", "",
         ""],  # row 5
        ["IM-006", "6号注塑机", "", "", "", "S-3", "", "", "31.2", "", "", "", "", "", "nobody", "",
         ""],  # row 6
        ["im-003", "又一台", "", "", "", "", "", "", "", "", "", "", "", "", "", "", ""],  # row 7
        ["", "无编号", "", "", "", "", "", "", "", "", "", "", "", "", "", "abc", ""],  # row 8
        ["IM-009", "9号", "", "", "", "S-2", "三车间", "", "", "", "", "", "", "", "", "", ""],
    ]  # fmt: skip
    assert await _run(settings, "import", _csv(tmp_path / "bad.csv", bad)) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    for problem in (
        "row 5: warranty_end '2025-13-01' is not a date (YYYY-MM-DD)",
        "row 6: lat and lon go together: give both or neither",
        "row 6: preferred_engineer 'nobody' is not a person in [[people]]",
        "row 7: code 'im-003' is already in row 2",
        "row 8: code is empty",
        "row 8: meter 'abc' is not a number",
        "row 9: site S-2 has site_name '三车间' here but '二车间' in row 2",
        "nothing imported (7 problems)",
    ):
        assert problem in err, err
    for model in (Asset, Site, Organisation):
        assert await _count(db, model) == 0  # not even the good rows


async def test_a_file_that_is_not_what_we_read_says_so(
    tmp_path: Path, db_url: str, capsys: object
) -> None:
    settings = make_settings(tmp_path, db_url)
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("编号,名称\nIM-1,注塑机\n".encode("gbk"))
    assert await _run(settings, "import", gbk) == 1
    typo = _csv(tmp_path / "typo.csv", [["IM-1", "x"]], header=["code", "nmae"])
    assert await _run(settings, "import", typo) == 1
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert "not UTF-8" in err and "unknown column 'nmae'" in err and "no 'name' column" in err


async def test_the_command_line_imports_and_prints_a_qr_link(tmp_path: Path, db_url: str) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text(
        f'public_url = "https://gd.example.com"\n[database]\nurl = "{db_url}"\n'
        '[security]\nsecret_key = "cli-secret"\n[[people]]\nid = "li"\nname = "李工"\n'
        'role = "engineer"\n'
    )

    async def gongdan(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "--config", str(cfg), "assets", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's code (a worktree)
        )  # fmt: skip
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await gongdan("import", str(_csv(tmp_path / "a.csv", GOOD_ROWS)))
    assert code == 0, err
    assert "imported 3 assets (3 new, 0 updated), 2 sites, 1 organisations" in out
    code, out, err = await gongdan("qr", "im-003")
    assert code == 0, err
    assert out.strip().startswith("https://gd.example.com/r/")
    code, _, err = await gongdan("qr", "NOPE")
    assert code == 1 and "no asset 'NOPE'" in err
