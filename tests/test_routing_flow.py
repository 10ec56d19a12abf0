"""Routing in the running flows: a report goes to whoever the rules pick at that hour, the
reason is kept with the ticket and its audit row, and the staff card says it in the viewer's
language. Runs on the in-memory ``Reads`` of ``tests/test_units.py`` (no database)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.adapters.codec import ActionToken, TokenCodec
from bot.assets import AssetIndex
from bot.cards.ticket import ticket_card
from bot.directory import Directory
from bot.env import Env, Staff
from bot.errors import StaleTransition
from bot.events import Action, Address, Card, Sender
from bot.flows.actions import handle_action
from bot.flows.intake import handle_message
from bot.flows.routing import job_for, ranking
from bot.metrics import Metrics
from bot.routing_rules import reason_text
from bot.tickets import TicketAction
from bot.unit import Turn, Unit
from storage.assets import AssetEntry, TicketBrief
from storage.records import Person, Ticket
from tests.conftest import STAFF, FakeClock, make_settings
from tests.test_units import CUSTOMER, LI, WANG, ZHAO, MemoryReads, _assigned, message, said

WEDNESDAY_10 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SKILLED_WANG = Person(id=2, key="wang", name="王工", role="engineer", skills=["注塑机"])


class AssetReads(MemoryReads):
    """…with the asset registry's history read (no earlier tickets about any asset)."""

    async def asset_history(
        self, asset_ids: Collection[int], per_asset: int
    ) -> dict[int, list[TicketBrief]]:
        return {i: [] for i in asset_ids}


def _env(tmp_path: Path, li: dict[str, Any], team: dict[str, Any] | None = None) -> Env:
    li_cfg, wang_cfg, *others = STAFF["people"]
    people = [{**li_cfg, **li}, {**wang_cfg, "skills": ["注塑机"]}, *others]
    teams = [{**STAFF["teams"][0], **(team or {})}]
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///unused.db", people=people,
                             teams=teams)  # fmt: skip
    staff = Staff(
        [LI, SKILLED_WANG, ZHAO],
        {("web", "li"): LI.id, ("web", "wang"): WANG.id, ("web", "zhao"): ZHAO.id},
    )
    return Env(settings=settings, codec=TokenCodec(b"secret"), directory=Directory(settings),
               metrics=Metrics(), platforms=frozenset({"web"}), staff=staff)  # fmt: skip


async def _report(env: Env, reads: MemoryReads, now: datetime, text: str) -> tuple[Unit, Ticket]:
    unit = Unit(env, reads, now)
    event = message(text)
    with unit.turn():
        await handle_message(Turn(unit, f"web:{text}", CUSTOMER, event), event)
    (ticket,) = (unit.tickets[i] for i in unit.new_tickets)
    return unit, ticket


async def test_a_night_shift_over_midnight_takes_the_report_and_the_reason_is_kept(
    tmp_path: Path,
) -> None:
    # Li works nights (22:00–06:00, Shanghai time), Wang the team's day shift.
    env = _env(tmp_path, {"shifts": ["22:00-06:00"]}, {"shifts": ["mon-fri 08:00-18:00"]})
    clock = FakeClock(WEDNESDAY_10)
    reads = MemoryReads()

    unit, day = await _report(env, reads, clock(), "3号注塑机停机了，报警E102")
    assert day.assignee_id == WANG.id  # Li is asleep at 10:00
    why = (day.intake or {})["routing"]
    assert why["person"] == "wang"
    assert why["reason"] == "技能匹配：注塑机 · 在班 mon-fri 08:00-18:00 · 当前 0 单"
    assert why["scores"] == {"wang": why["score"], "li": None}  # Li was out: off duty
    (assign,) = [a for a in unit.audit if a.kind == "transition"]
    assert assign.data is not None and assign.data["routing"] == why

    clock.advance(hours=16)  # Thursday 02:00 in Shanghai: the night shift begun Wednesday
    _, night = await _report(env, reads, clock(), "5号注塑机又停了")
    assert night.assignee_id == LI.id
    assert "在班 22:00-06:00" in night.intake["routing"]["reason"]  # type: ignore[index]


async def test_the_staff_card_says_why_in_the_viewers_language(tmp_path: Path) -> None:
    env = _env(tmp_path, {"base": [31.25, 121.45]})
    unit, ticket = await _report(env, MemoryReads(), WEDNESDAY_10, "3号注塑机停机了")
    (card,) = said(unit, "web:li")  # the assignee's own card
    assert isinstance(card, Card)
    fields = dict(card.fields)
    assert fields["派单理由"].startswith("技能匹配：注塑机 · 当前 0 单")
    with unit.turn():
        english = await ticket_card(Turn(unit, "t", None, None), ticket, "staff", "en")
        customer = await ticket_card(Turn(unit, "t", None, None), ticket, "customer", "zh")
    assert dict(english.fields)["Why assigned"].startswith("skill match: 注塑机 · 0 open")
    assert "派单理由" not in dict(customer.fields)  # customers are not told
    ticket.assignee_id = WANG.id  # someone took it over by hand: the old reason is not theirs
    with unit.turn():
        later = await ticket_card(Turn(unit, "t", None, None), ticket, "staff", "zh")
    assert "派单理由" not in dict(later.fields)


async def test_fatigue_counts_the_engineers_latest_tickets_in_the_store(tmp_path: Path) -> None:
    env = _env(tmp_path, {})
    reads = MemoryReads()
    for n in range(3):  # Li's three newest tickets were all equipment failures
        reads.tickets_[50 + n] = Ticket(
            id=50 + n, number=f"GD-{50 + n}", title="注塑机停机", description="", priority="P2",
            category="equipment_failure", state="closed", reporter_id=CUSTOMER.id,
            origin_chat="web:c-1", created_at=WEDNESDAY_10 - timedelta(days=3 - n),
            updated_at=WEDNESDAY_10 - timedelta(days=3 - n), assignee_id=LI.id,
        )  # fmt: skip
    reads.tickets_[40] = Ticket(
        id=40, number="GD-40", title="交换机", description="", priority="P2",
        category="network_it", state="closed", reporter_id=CUSTOMER.id, origin_chat="web:c-1",
        created_at=WEDNESDAY_10 - timedelta(days=9), updated_at=WEDNESDAY_10 - timedelta(days=9),
        assignee_id=WANG.id,
    )  # fmt: skip
    unit = Unit(env, reads, WEDNESDAY_10)
    job = job_for(category="equipment_failure", title="注塑机停机", device=None, asset=None)
    scored = await ranking(unit, job)
    assert scored.winner is not None and scored.winner.candidate.key == "wang"
    li = next(s for s in scored.scores if s.candidate.key == "li")
    assert "已连续 3 张equipment_failure单" in reason_text(li, "zh")


@pytest.mark.parametrize("hour", [3, 19])
async def test_with_nobody_on_duty_the_report_is_still_assigned(tmp_path: Path, hour: int) -> None:
    env = _env(tmp_path, {"shifts": ["mon-fri 08:00-18:00"]}, {"shifts": ["mon-fri 08:00-18:00"]})
    at = datetime(2026, 12, 2, hour, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # a Wednesday
    _, ticket = await _report(env, MemoryReads(), at, "3号注塑机停机了")
    assert ticket.assignee_id is not None
    assert "不在班（无人在班）" in ticket.intake["routing"]["reason"]  # type: ignore[index]


def _press(env: Env, token: ActionToken, who: str) -> Action:
    return Action(event_id=f"press-{token.action}-{token.arg}", chat=Address("web", "team"),
                  sender=Sender("web", who, who), chat_type="group", received_at=WEDNESDAY_10,
                  token=env.codec.encode(token))  # fmt: skip


async def test_a_managers_reassign_offers_the_best_engineers_and_a_press_assigns(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path, {})
    reads = MemoryReads()
    _assigned(reads)  # GD-7, assigned to Li
    unit = Unit(env, reads, WEDNESDAY_10)
    press = _press(env, ActionToken(7, TicketAction.REASSIGN, 3), "zhao")
    with unit.turn():
        await handle_action(Turn(unit, "p1", ZHAO, press), press)
    ticket = unit.tickets[7]
    assert (ticket.state, ticket.assignee_id) == ("new", None)
    (pick,) = [m for m in said(unit, "web:team") if isinstance(m, Card) and "转派给谁" in m.title]
    assert [b.label for b in pick.buttons] == ["派给王工（40）"]  # Li, who gave it back, is not
    assert "王工（40 分）：技能匹配：注塑机 · 当前 0 单" in pick.text

    choice = env.codec.decode(pick.buttons[0].token)
    again = _press(env, choice, "zhao")
    with unit.turn():
        await handle_action(Turn(unit, "p2", ZHAO, again), again)
    assert (ticket.state, ticket.assignee_id) == ("assigned", WANG.id)
    assign = unit.audit[-1]
    assert assign.actor == "赵经理" and assign.data is not None
    assert assign.data["routing"]["reason"] == "由赵经理指派 · 技能匹配：注塑机 · 当前 0 单"
    with unit.turn():
        card = await ticket_card(Turn(unit, "t", None, None), ticket, "staff", "en")
    assert dict(card.fields)["Why assigned"] == "assigned by 赵经理 · skill match: 注塑机 · 0 open"
    with pytest.raises(StaleTransition), unit.turn():  # a second press on the same list: too late
        await handle_action(Turn(unit, "p3", ZHAO, again), again)


async def test_a_p0_offered_to_the_best_two_goes_to_whoever_claims_first(tmp_path: Path) -> None:
    env = _env(tmp_path, {})
    env.settings.routing.p0_broadcast = 2
    unit, ticket = await _report(env, MemoryReads(), WEDNESDAY_10, "3号注塑机停机了，整条线停了")
    assert (ticket.priority, ticket.state, ticket.assignee_id) == ("P0", "new", None)
    offered = {}
    for who in ("li", "wang"):
        (card,) = [m for m in said(unit, f"web:{who}") if isinstance(m, Card)]
        assert dict(card.fields)["派单理由"] == "P0 抢单：已同时发给 李工、王工，先接先得"
        offered[who] = next(b for b in card.buttons if b.label == "我来处理")

    claim = _press(env, env.codec.decode(offered["wang"].token), "wang")
    with unit.turn():
        await handle_action(Turn(unit, "c1", SKILLED_WANG, claim), claim)
    assert (ticket.state, ticket.assignee_id) == ("accepted", WANG.id)
    updated = [
        o.message for o in unit.outgoing if o.op == "update" and o.destination.ref == "web:li"
    ]
    assert isinstance(updated[-1], Card)
    assert dict(updated[-1].fields)["派单理由"] == "已被王工接单"  # Li's copy says who took it
    late = _press(env, env.codec.decode(offered["li"].token), "li")
    with pytest.raises(StaleTransition), unit.turn():
        await handle_action(Turn(unit, "c2", LI, late), late)


async def test_a_report_about_a_registered_asset_is_routed_by_the_assets_facts(
    tmp_path: Path,
) -> None:
    settings_env = _env(tmp_path, {"base": [31.2304, 121.4737]})
    compressor = AssetEntry(
        id=5, code="KX2024-0087", name="1号空压机", category="空压机",
        preferred_engineer="wang", site_lat=31.231, site_lon=121.474,
    )  # fmt: skip
    env = replace(settings_env, assets=AssetIndex([compressor]))
    _, ticket = await _report(env, AssetReads(), WEDNESDAY_10, "SN: KX2024-0087 停机了")
    assert ticket.asset_id == 5
    why = (ticket.intake or {})["routing"]
    # Nobody's skills name 空压机 (the asset decides, not the words); Li is 0.1 km away, Wang's
    # place is unknown (counted as 30 km) but he is the asset's preferred engineer.
    assert why["person"] == "wang"
    assert why["reason"] == "技能不符 · 当前 0 单 · 距离未知（按 30 km 计） · 设备首选工程师"
    assert why["scores"] == {"wang": 10.0, "li": -0.05}
