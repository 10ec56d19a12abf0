"""Preventive maintenance on a FakeClock: suggestions for assets that keep failing, PM tickets
opened on time by fixed, floating and meter plans — once per due date, however many workers."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.cli.registry import assets_command
from tests.conftest import FakeClock, Feed, RunningHub, eventually, make_settings
from tests.test_webchat_flow import button, current_card, customer, press, report, staff

Start = Callable[..., Awaitable[RunningHub]]

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # a Wednesday, 10:00 in Shanghai
CHECKLIST = ["检查液压油位", "清理过滤网", "紧固电机螺丝"]
HEADER = ["code", "name", "category", "site_code", "site_name", "meter", "meter_unit"]


def _write_assets(path: Path, meter: float | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(
            [
                HEADER,
                ["IM-003", "3号注塑机", "注塑机", "S-2", "二车间", "", ""],
                [
                    "AC-01",
                    "1号空压机",
                    "空压机",
                    "S-9",
                    "动力站",
                    "" if meter is None else meter,
                    "h",
                ],
            ]
        )
    return path


async def _import(tmp_path: Path, db_url: str, meter: float | None = None) -> None:
    path = _write_assets(tmp_path / "assets.csv", meter)
    assert await assets_command(make_settings(tmp_path, db_url), "import", str(path)) == 0


async def _hub(
    running: Start, tmp_path: Path, db_url: str, clock: FakeClock, **maintenance: Any
) -> RunningHub:
    await _import(tmp_path, db_url)
    return await running(clock=clock, maintenance=maintenance)


async def _pm_tickets(hub: RunningHub) -> list[dict[str, Any]]:
    """The PM tickets, oldest first, each with its full record."""
    listed = (await hub.api("/api/tickets"))["tickets"]
    found = [t for t in listed if t["category"] == "preventive_maintenance"]
    return [await hub.api(f"/api/tickets/{t['number']}") for t in reversed(found)]


def _fields(card: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in card["payload"]["fields"]}


async def test_a_fixed_plan_opens_one_ticket_per_due_date_lead_days_ahead(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    clock = FakeClock(NOW)
    plan = {"asset": "IM-003", "every_days": 30, "start": "2026-12-10", "lead_days": 3,
            "checklist": CHECKLIST}  # fmt: skip
    hub = await _hub(running, tmp_path, db_url, clock, plans=[plan])
    li = await staff(hub, "li")
    async with Feed(hub, li) as lfeed:
        await hub.hub.maintenance()
        clock.set(datetime(2026, 12, 6, 15, 59, tzinfo=UTC))  # 12-06 23:59 in Shanghai
        await hub.hub.maintenance()
        assert await _pm_tickets(hub) == []

        clock.set(datetime(2026, 12, 6, 16, 0, tzinfo=UTC))  # 12-07 00:00: three days ahead
        await hub.hub.maintenance()
        await hub.hub.maintenance()  # the job running twice opens nothing twice
        (first,) = await _pm_tickets(hub)
        assert (first["priority"], first["title"], first["device_code"], first["site"]) == (
            "P3",
            "预防性维护：3号注塑机",
            "IM-003",
            "二车间",
        )
        assert first["assignee"]["id"] == "li"  # routed like any ticket (skill 注塑机)
        assert "到期 2026-12-10" in first["description"]
        assert "1. 检查液压油位\n2. 清理过滤网\n3. 紧固电机螺丝" in first["description"]
        assert [e["kind"] for e in first["events"]][:2] == ["created", "transition"]
        assert any(first["deadlines"].values())  # its SLA clocks run

        card = await lfeed.wait_card("team", lambda p: p["title"].startswith(first["number"]))
        assert _fields(card)["检查清单"] == "☐ 检查液压油位\n☐ 清理过滤网\n☐ 紧固电机螺丝"
        assert await lfeed.wait_card("li", lambda p: p["title"].startswith(first["number"]))

    # Fixed: the next one is due 30 days after the last due date, done or not.
    clock.set(datetime(2027, 1, 5, 15, 59, tzinfo=UTC))
    await hub.hub.maintenance()
    assert len(await _pm_tickets(hub)) == 1
    clock.set(datetime(2027, 1, 5, 16, 0, tzinfo=UTC))  # 01-06: three days before 01-09
    await hub.hub.maintenance()
    second = (await _pm_tickets(hub))[1]
    assert "到期 2027-01-09" in second["description"]

    # Down over a due date: the newest one is opened, the missed one is not made up.
    clock.set(datetime(2027, 3, 20, 2, 0, tzinfo=UTC))
    await hub.hub.maintenance()
    tickets = await _pm_tickets(hub)
    assert len(tickets) == 3 and "到期 2027-03-10" in tickets[2]["description"]

    shown = (await hub.api("/api/assets/IM-003"))["maintenance"]
    (schedule,) = shown["schedules"]
    assert schedule["kind"] == "fixed" and schedule["checklist"] == CHECKLIST
    assert schedule["last"]["slot"] == "2027-03-10"
    assert schedule["last"]["ticket"] == tickets[2]["number"]
    assert schedule["next_due"] == "2027-04-09"


async def test_two_hubs_sharing_a_database_open_a_due_date_once(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    clock = FakeClock(datetime(2026, 12, 9, 16, 0, tzinfo=UTC))  # 12-10 00:00: due today
    plan = {"asset": "IM-003", "every_days": 30, "start": "2026-12-10", "checklist": CHECKLIST}
    one = await _hub(running, tmp_path, db_url, clock, plans=[plan])
    two = await running(clock=clock, maintenance={"plans": [plan]})
    for _ in range(2):
        await asyncio.gather(one.hub.maintenance(), two.hub.maintenance())
    assert len(await _pm_tickets(one)) == 1
    assert len(await _pm_tickets(two)) == 1


async def _work_through(hub: RunningHub, feed: Feed, session: str, ticket: dict[str, Any]) -> None:
    """The assignee does the PM: 接单 → 出发 → 到达 → 诊断 → 维修 → 已解决."""
    steps = [
        ("accept", "accepted"),
        ("depart", "en_route"),
        ("arrive", "on_site"),
        ("diagnose", "diagnosing"),
        ("repair", "repairing"),
        ("resolve", "resolved"),
    ]
    for action, state in steps:
        card = await current_card(hub, feed, "li", ticket["id"])
        note = "保养完成，更换过滤网" if action == "resolve" else None
        await press(hub, session, button(card, action), "li", note=note)

        async def moved(state: str = state) -> bool:
            return bool((await hub.api(f"/api/tickets/{ticket['id']}"))["state"] == state)

        await eventually(moved, what=state)


async def test_a_floating_plan_counts_from_when_the_last_one_was_resolved(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    clock = FakeClock(NOW)
    plan = {"category": "注塑机", "every_days": 10, "floating": True, "start": "2026-12-05",
            "checklist": CHECKLIST}  # fmt: skip
    hub = await _hub(running, tmp_path, db_url, clock, plans=[plan])
    li = await staff(hub, "li")
    clock.set(datetime(2026, 12, 4, 15, 0, tzinfo=UTC))  # 12-04 23:00 in Shanghai
    await hub.hub.maintenance()
    assert await _pm_tickets(hub) == []
    clock.set(datetime(2026, 12, 4, 16, 0, tzinfo=UTC))  # 12-05 00:00: due
    await hub.hub.maintenance()
    (first,) = await _pm_tickets(hub)
    assert "到期 2026-12-05" in first["description"]

    clock.set(datetime(2026, 12, 24, 2, 0, tzinfo=UTC))  # 19 days on, still not done
    await hub.hub.maintenance()
    assert len(await _pm_tickets(hub)) == 1
    shown = (await hub.api("/api/assets/IM-003"))["maintenance"]["schedules"][0]
    assert (shown["kind"], shown["next_due"]) == ("floating", None)

    async with Feed(hub, li) as lfeed:
        await _work_through(hub, lfeed, li, first)  # resolved on 12-24
    await hub.hub.maintenance()  # records when it was done; nothing due yet
    clock.set(datetime(2027, 1, 2, 15, 59, tzinfo=UTC))  # 01-02 23:59
    await hub.hub.maintenance()
    assert len(await _pm_tickets(hub)) == 1
    clock.set(datetime(2027, 1, 2, 16, 0, tzinfo=UTC))  # 01-03: ten days after 12-24
    await hub.hub.maintenance()
    await hub.hub.maintenance()
    tickets = await _pm_tickets(hub)
    assert len(tickets) == 2 and "到期 2027-01-03" in tickets[1]["description"]


async def test_a_meter_plan_opens_when_an_import_passes_a_mark(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    clock = FakeClock(NOW)
    plan = {"asset": "AC-01", "meter_every": 500, "checklist": ["更换空滤", "检查皮带"]}
    await _import(tmp_path, db_url, meter=120)
    hub = await running(clock=clock, maintenance={"plans": [plan], "priority": "P2"})
    await hub.hub.maintenance()
    assert await _pm_tickets(hub) == []

    await _import(tmp_path, db_url, meter=510)  # the readings file of the next week
    await hub.hub.maintenance()
    await hub.hub.maintenance()
    (first,) = await _pm_tickets(hub)
    assert first["priority"] == "P2" and first["title"] == "预防性维护：1号空压机"
    assert "读数已达 500 h（当前 510）" in first["description"]

    await _import(tmp_path, db_url, meter=990)
    await hub.hub.maintenance()
    assert len(await _pm_tickets(hub)) == 1
    await _import(tmp_path, db_url, meter=1003.5)
    await hub.hub.maintenance()
    tickets = await _pm_tickets(hub)
    assert len(tickets) == 2 and "读数已达 1000 h（当前 1003.5）" in tickets[1]["description"]
    shown = (await hub.api("/api/assets/AC-01"))["maintenance"]["schedules"][0]
    assert (shown["kind"], shown["next_due"]) == ("meter", 1500.0)


REPORTS = [
    "3号注塑机停机了，报警E102",
    "3号注塑机液压站漏油，在二车间",
    "3号注塑机异响很大，在二车间",
    "3号注塑机温度过高报警，在二车间",
]


async def _report_from_a_new_customer(hub: RunningHub, text: str, n: int) -> None:
    before = len((await hub.api("/api/tickets"))["tickets"])
    await report(hub, await customer(hub, f"客户{n}"), text)

    async def created() -> bool:
        return len((await hub.api("/api/tickets"))["tickets"]) > before

    await eventually(created, what="a ticket")


async def _suggested(hub: RunningHub) -> list[list[str]]:
    """The open suggestions the asset shows (their tickets), oldest first."""
    shown = (await hub.api("/api/assets/IM-003"))["maintenance"]["suggestions"]
    return [s["tickets"] for s in reversed(shown)]


async def test_a_machine_failing_three_times_in_30_days_gets_one_suggestion(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    clock = FakeClock(NOW)
    hub = await _hub(running, tmp_path, db_url, clock)
    li = await staff(hub, "li")
    async with Feed(hub, li) as lfeed:

        def suggestions() -> list[str]:
            return [
                e["payload"]["text"]
                for e in lfeed.events
                if e["conversation"] == "team" and "预防性维护" in e["payload"].get("text", "")
            ]

        for n, text in enumerate(REPORTS[:2]):
            await _report_from_a_new_customer(hub, text, n)
            clock.advance(days=5)
        await hub.hub.maintenance()
        assert await _suggested(hub) == []  # two in 30 days: nothing

        await _report_from_a_new_customer(hub, REPORTS[2], 2)
        await hub.hub.maintenance()
        numbers = [t["number"] for t in reversed((await hub.api("/api/tickets"))["tickets"])]
        assert await _suggested(hub) == [numbers]  # shown on the asset
        text = await lfeed.wait_text("建议安排预防性维护")
        assert text == (
            f"3号注塑机 30 天内第 3 次报修（{'、'.join(numbers)}），建议安排预防性维护。"
        )
        await hub.hub.maintenance()  # not twice …
        await _report_from_a_new_customer(hub, REPORTS[3], 3)
        await hub.hub.maintenance()  # … nor for a fourth within 30 days
        assert await _suggested(hub) == [numbers]

        clock.advance(days=31)  # a month on, it fails three times again
        for n, text in enumerate(REPORTS[:3]):
            await _report_from_a_new_customer(hub, text, 10 + n)
            clock.advance(hours=1)
        await hub.hub.maintenance()
        assert len(await _suggested(hub)) == 2

        async def two() -> bool:
            return len(suggestions()) == 2

        await eventually(two, what="a second suggestion")
        assert suggestions()[1].startswith("3号注塑机 30 天内第 3 次报修")
