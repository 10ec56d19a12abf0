"""``gongdan rules explain`` as an operator runs it: the rule set as an SOP generated from the
configuration, and one ticket's scoring from the database as it is now."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.config import load_settings
from bot.directory import Directory
from storage import repo
from storage.db import Database
from storage.models import Asset, Site

CONFIG = """
locale = "zh"
[database]
url = "{db_url}"
[routing]
skill_points = 50
fatigue_after = 0
[[people]]
id = "li"
name = "李工"
identities = ["web:li"]
skills = ["注塑机"]
base = [31.25, 121.45]
shifts = {li_shifts}
[[people]]
id = "wang"
name = "王工"
identities = ["web:wang"]
skills = ["network_it"]
max_open = 3
[[people]]
id = "sun"
name = "孙调度"
role = "dispatcher"
[[teams]]
id = "maint"
name = "维修组"
members = ["li", "wang"]
shifts = ["00:00-24:00"]
"""


async def _gongdan(cwd: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _config(tmp_path: Path, db_url: str, li_shifts: str = "[]") -> Path:
    path = tmp_path / "g.toml"
    path.write_text(CONFIG.format(db_url=db_url, li_shifts=li_shifts), encoding="utf-8")
    return path


async def test_the_sop_is_generated_from_the_settings_in_either_language(tmp_path: Path) -> None:
    shifts = '["mon-fri 08:00-18:00", "sat 22:00-06:00"]'
    cfg = str(_config(tmp_path, "sqlite+aiosqlite:///./unused.db", shifts))
    code, zh, err = await _gongdan(tmp_path, "--config", cfg, "rules", "explain")
    assert code == 0, err
    assert zh.startswith("# 派单规则\n")
    assert "| 技能 | +50 |" in zh  # the configured weight, not a default
    assert "| 连续同类 | 0 | 未启用 |" in zh
    assert "| 负载 | -8 × 未结单数 |" in zh
    assert "| 李工 (li) | 注塑机 | 5 | mon-fri 08:00-18:00, sat 22:00-06:00 | 31.25, 121.45 |" in zh
    assert "| 王工 (wang) | network_it | 3 | 00:00-24:00（维修组） | — |" in zh
    assert "孙调度" not in zh  # dispatchers are not routed to
    code, en, err = await _gongdan(tmp_path, "--config", cfg, "rules", "explain", "--locale", "en")
    assert code == 0, err
    assert en.startswith("# Routing rules\n") and "| skills | +50 |" in en
    assert "the one longest without a new ticket goes first" in en


async def test_one_tickets_scoring_lists_every_engineer_and_the_winner(
    tmp_path: Path, db: Database, db_url: str
) -> None:
    settings = load_settings(_config(tmp_path, db_url))
    async with db.transaction() as s:
        await repo.sync_staff(s, Directory(settings).staff_records())
        site = Site(code="S1", name="二车间", lat=31.2304, lon=121.4737)
        s.add(site)
        await s.flush()
        asset = Asset(code="IM-03", name="3号注塑机", category="注塑机", site_id=site.id)
        s.add(asset)
        await s.flush()
        customer = await repo.identify(s, "web", "c-1", "张三")
        await repo.create_ticket(
            s, title="3号注塑机停机", description="3号注塑机停机", priority="P1",
            category="equipment_failure", state="new", reporter_id=customer.id,
            origin_chat="web:c-1", asset_id=asset.id,
            intake={"routing": {"person": "li", "reason": "技能匹配：注塑机",
                                "parts": [["skills", 50, "routing.skills", {"skill": "注塑机"}]]}},
        )  # fmt: skip
    cfg = str(_config(tmp_path, db_url))
    code, out, err = await _gongdan(tmp_path, "--config", cfg, "rules", "explain", "--ticket",
                                    "GD-1", "--locale", "en")  # fmt: skip
    assert code == 0, err
    assert out.startswith("# GD-1: routing scores\n")
    assert "asset IM-03" in out
    rows = [line for line in out.splitlines() if "(li)" in line or "(wang)" in line]
    assert len(rows) == 2 and rows[0].startswith("| 李工 (li) | 48.45 | **picked** |")
    assert "skills +50: skill match: 注塑机" in rows[0] and "distance -1.55: 3.1 km away" in rows[0]
    assert "skills +0: no matching skill" in rows[1] and "(counted as 30 km)" in rows[1]
    assert (
        "Outcome: 李工 (48.45 points): skill match: 注塑机 · on duty 00:00-24:00 · 0 open · "
        "3.1 km away"
    ) in out
    assert "Reason recorded at assignment (to li): skill match: 注塑机" in out
    code, _, err = await _gongdan(tmp_path, "--config", cfg, "rules", "explain", "--ticket", "GD-9")
    assert code == 1 and "no ticket 'GD-9'" in err
