"""Similar past cases in a running hub: read from the database at start, on the engineer's
card, a case resolved here found by the next card, nothing while the index is building."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from bot.cases import CaseFeed
from bot.nlp.similar import SimilarCases
from storage import repo
from storage.db import Database
from storage.models import Person
from tests.conftest import Feed, RunningHub, button, eventually
from tests.test_webchat_flow import current_card, customer, press, report, staff

Start = Callable[..., Awaitable[RunningHub]]
LABEL = "相似历史案例"
BEFORE = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)


async def _past(db_url: str) -> dict[str, str]:
    """Tickets from before the hub started: two closed cases, one open and one merged."""
    db = Database(db_url)
    try:
        async with db.transaction() as s:
            someone = Person(key="cust-old", name="老客户", role="customer")
            s.add(someone)
            await s.flush()
            common = {
                "priority": "P1",
                "category": "equipment_failure",
                "reporter_id": someone.id,
                "origin_chat": "web:old",
                "created_at": BEFORE,
                "updated_at": BEFORE,
            }
            made = {}
            for name, title, state, cause in [
                ("heater", "注塑机报警E102，料筒温度上不去", "closed", "第二段加热圈烧断，已更换"),
                ("open", "注塑机报警E102，温度低", "diagnosing", None),
                ("other", "空压机压力不足", "closed", "进气阀卡滞"),
            ]:
                t = await repo.create_ticket(
                    s, title=title, description=title, state=state, root_cause=cause, **common
                )
                made[name] = t.number or ""
            heater = await repo.ticket_by_number(s, made["heater"])
            assert heater is not None
            merged = await repo.create_ticket(
                s, title="注塑机E102温度上不去", description="同上", state="closed",
                root_cause="同 " + made["heater"], merged_into=heater.id, **common,
            )  # fmt: skip
            made["merged"] = merged.number or ""
        return made
    finally:
        await db.dispose()


def _similar(card: dict[str, Any]) -> str | None:
    return dict(card["payload"]["fields"]).get(LABEL)


async def _new_card(hub: RunningHub, feed: Feed, cust: str, text: str) -> dict[str, Any]:
    """Report ``text``; the engineer's first card of the new ticket."""
    known = {c["payload"]["ticket_id"] for c in feed.cards("li")}
    await report(hub, cust, text)
    return await feed.wait_card("li", lambda p: p["ticket_id"] not in known)


async def _resolve(hub: RunningHub, li: str, feed: Feed, ticket_id: int, cause: str) -> None:
    card = await current_card(hub, feed, "li", ticket_id)
    for action in ["accept", "depart", "arrive", "diagnose", "repair", "resolve"]:
        await press(
            hub, li, button(card, action), "li", note=cause if action == "resolve" else None
        )
        version = card["payload"]["version"]
        card = await feed.wait_card("li", lambda p, v=version: p["ticket_id"] == ticket_id
                                    and p["version"] > v)  # fmt: skip
    assert (await hub.api(f"/api/tickets/{ticket_id}"))["state"] == "resolved"


async def test_the_engineers_card_shows_past_cases_and_one_resolved_since(
    running: Start, db_url: str
) -> None:
    past = await _past(db_url)
    hub = await running()
    index = hub.hub.env.similar
    assert index is not None
    await eventually(lambda: _true(index.ready), what="the index built")
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, li) as lfeed:
        first = await _new_card(hub, lfeed, cust, "2号注塑机温度升不上去，报警E102")
        shown = _similar(first)
        assert shown is not None
        assert shown.split("\n")[0] == f"{past['heater']} 根因：第二段加热圈烧断，已更换"
        assert past["open"] not in shown and past["merged"] not in shown
        assert _similar(await lfeed.wait_card("team", lambda p: True)) == shown  # staff see it

        ticket_id = first["payload"]["ticket_id"]
        await _resolve(hub, li, lfeed, ticket_id, "射嘴加热圈接线端子松动")
        number = (await hub.api(f"/api/tickets/{ticket_id}"))["number"]
        resolved = await current_card(hub, lfeed, "li", ticket_id)
        assert _similar(resolved) is None  # a settled ticket's card lists none

        again = await _new_card(hub, lfeed, cust, "5号注塑机又报E102，温度升不上去")
        shown = _similar(again)
        assert shown is not None and f"{number} 根因：射嘴加热圈接线端子松动" in shown.split("\n")


async def test_cards_drawn_while_the_index_builds_show_no_past_cases(
    running: Start, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    past = await _past(db_url)
    go = asyncio.Event()
    load = CaseFeed.load

    async def slow_load(self: CaseFeed) -> None:
        await go.wait()
        await load(self)

    monkeypatch.setattr(CaseFeed, "load", slow_load)
    hub = await running()
    index = hub.hub.env.similar
    assert index is not None
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, li) as lfeed:
        early = await _new_card(hub, lfeed, cust, "注塑机报警E102，温度上不去")
        assert not index.ready and _similar(early) is None
        go.set()
        await eventually(lambda: _true(index.ready), what="the index built")
        later = await _new_card(hub, lfeed, cust, "3号注塑机报警E102，料筒温度低")
        shown = _similar(later)
        assert shown is not None and past["heater"] in shown


async def _true(value: bool) -> bool | None:
    return True if value else None


async def test_each_worker_learns_of_cases_other_workers_close_or_reopen(db_url: str) -> None:
    past = await _past(db_url)
    db = Database(db_url)
    try:
        index = SimilarCases()
        feed = CaseFeed(db, index)
        await feed.load()
        asked: Any = SimpleNamespace(
            id=999, number=None, title="注塑机报警E102 温度低", description="", alarm_code=None,
            root_cause=None, diagnosis=None, state="new", merged_into=None, version=1,
            updated_at=BEFORE,
        )  # fmt: skip
        assert [m.number for m in index.similar(asked)] == [past["heater"]]

        async def another_worker(number: str, **values: Any) -> None:
            async with db.transaction() as s:
                ticket = await repo.ticket_by_number(s, number)
                assert ticket is not None
                for key, value in values.items():
                    setattr(ticket, key, value)
                ticket.version += 1
                ticket.updated_at = BEFORE + timedelta(days=1)

        await another_worker(past["open"], state="closed", root_cause="热电偶断线")
        await another_worker(past["heater"], state="repairing")  # reopened
        assert await feed.refresh() == 2
        assert [(m.number, m.cause) for m in index.similar(asked)] == [(past["open"], "热电偶断线")]
        assert await feed.refresh() == 0  # read again (the overlap), changed nothing
    finally:
        await db.dispose()
