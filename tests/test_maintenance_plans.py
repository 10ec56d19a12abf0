"""Preventive-maintenance plans: their configuration, and when each kind falls due."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import MaintenancePlan, load_settings
from bot.errors import ConfigError
from bot.flows.maintenance import calendar_due, meter_due
from storage.maintenance import PlanAsset, Run

TZ = ZoneInfo("Asia/Shanghai")
ASSET = PlanAsset(
    id=1,
    code="IM-003",
    name="3号注塑机",
    category="注塑机",
    site_name=None,
    install_date=date(2026, 1, 1),
    created_at=datetime(2026, 6, 1, tzinfo=UTC),
    meter=None,
    meter_unit=None,
)


def _plan(**values: Any) -> MaintenancePlan:
    return MaintenancePlan(**{"asset": "IM-003", "checklist": ["检查"], **values})


def _run(*, due: date | None = None, mark: float | None = None, done: bool = True) -> Run:
    at = datetime(due.year, due.month, due.day, tzinfo=TZ).astimezone(UTC) if due else None
    return Run(1, "p", 1, "s", at, mark, 7, "GD-7", datetime(2026, 1, 1, tzinfo=UTC),
               datetime(2026, 3, 5, 3, tzinfo=UTC) if done else None)  # fmt: skip


@pytest.mark.parametrize(
    ("plan", "problem"),
    [
        ({"every_days": 0}, "maintenance.plans.0.every_days: Input should be greater than"),
        ({"every_days": 30, "checklist": []}, "maintenance.plans.0.checklist: List should have"),
        (
            {"every_days": 30, "checklist": ["ok", " "]},
            "maintenance.plans.0.checklist: a check",
        ),
        ({"meter_every": -5}, "maintenance.plans.0.meter_every: Input should be greater than 0"),
        ({"every_days": 30, "meter_every": 500}, "maintenance.plans.0: give exactly one of 'every"),
        ({"every_days": 7, "lead_days": 7}, "maintenance.plans.0: 'lead_days' must be less"),
        ({"meter_every": 500, "floating": True}, "maintenance.plans.0: 'floating', 'start'"),
        (
            {"every_days": 30, "category": "注塑机"},
            "maintenance.plans.0: give exactly one",
        ),
        ({"every_days": 30, "every": 3}, "maintenance.plans.0.every: unknown key"),
        ({"every_days": 30, "priority": "P5"}, "maintenance.plans.0.priority: Input should be"),
    ],
)
def test_a_bad_plan_is_refused_naming_its_key(plan: dict[str, Any], problem: str) -> None:
    values = {"asset": "IM-003", "checklist": ["检查液压油"], **plan}
    with pytest.raises(ConfigError) as caught:
        load_settings(None, maintenance={"plans": [values]})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_plans_from_the_toml_file_and_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "gongdan.toml"
    path.write_text(
        """
[maintenance]
suggest_after = 4
suggest_days = 14

[[maintenance.plans]]
asset = "IM-003"
every_days = 30
lead_days = 3
checklist = ["检查液压油位", "清理过滤网"]

[[maintenance.plans]]
category = "空压机"
meter_every = 500
checklist = ["更换空滤"]

[[maintenance.plans]]
category = "空压机"
meter_every = 500
checklist = ["更换油滤"]
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    (problem,) = caught.value.problems
    assert "'category:空压机/500m'" in problem and "give one an 'id'" in problem
    assert str(path) in problem
    path.write_text(path.read_text().replace('["更换油滤"]', '["更换油滤"]\nid = "oil"'))
    settings = load_settings(path).maintenance
    assert (settings.suggest_after, settings.suggest_days) == (4, 14)
    assert [p.key for p in settings.plans] == ["asset:IM-003/30d", "category:空压机/500m", "oil"]


def test_a_fixed_plan_is_due_every_interval_from_its_first_date() -> None:
    plan = _plan(every_days=30, lead_days=2)  # first due: 30 days after installation
    assert calendar_due(plan, ASSET, None, date(2026, 1, 28), TZ) is None
    assert calendar_due(plan, ASSET, None, date(2026, 1, 29), TZ) == date(2026, 1, 31)
    opened = _run(due=date(2026, 1, 31), done=False)
    assert calendar_due(plan, ASSET, opened, date(2026, 2, 20), TZ) is None
    assert calendar_due(plan, ASSET, opened, date(2026, 2, 28), TZ) == date(2026, 3, 2)


def test_a_floating_plan_waits_for_the_last_one_to_be_done() -> None:
    plan = _plan(every_days=30, floating=True, start=date(2026, 2, 1))
    assert calendar_due(plan, ASSET, None, date(2026, 1, 31), TZ) is None
    assert calendar_due(plan, ASSET, None, date(2026, 2, 1), TZ) == date(2026, 2, 1)
    assert calendar_due(plan, ASSET, None, date(2026, 5, 9), TZ) == date(2026, 5, 9)  # late
    waiting = _run(due=date(2026, 2, 1), done=False)
    assert calendar_due(plan, ASSET, waiting, date(2026, 9, 1), TZ) is None
    done = _run(due=date(2026, 2, 1))  # resolved 2026-03-05 (Shanghai)
    assert calendar_due(plan, ASSET, done, date(2026, 4, 3), TZ) is None
    assert calendar_due(plan, ASSET, done, date(2026, 4, 4), TZ) == date(2026, 4, 4)


def test_a_meter_plan_is_due_at_each_mark_passed() -> None:
    plan = _plan(meter_every=500)
    at = {m: replace(ASSET, meter=m) for m in (None, 499.9, 500, 1720)}
    assert meter_due(plan, at[None], None) is None
    assert meter_due(plan, at[499.9], None) is None
    assert meter_due(plan, at[500], None) == 500
    assert meter_due(plan, at[500], _run(mark=500)) is None
    assert meter_due(plan, at[1720], _run(mark=500)) == 1500  # one ticket, not two
