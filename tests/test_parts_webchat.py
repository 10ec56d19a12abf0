"""待备件 on the built-in web chat: the engineer works from the console (press, type, tap), the
customer's page hears the parts and their ETA in their words and its card shows them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from storage import parts
from storage.db import Database
from storage.models import WebchatFeed
from storage.parts import PartRow
from tests.conftest import FakeClock, Feed, RunningHub, button, eventually
from tests.test_webchat_flow import (
    _state_is,
    cfeed_conv,
    cid,
    current_card,
    customer,
    one_ticket,
    press,
    report,
    staff,
)

Start = Callable[..., Awaitable[RunningHub]]
NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai


async def test_the_console_answers_which_parts_and_when_and_the_customer_reads_it(
    running: Start,
) -> None:
    hub = await running(clock=FakeClock(NOW), parts={"stores_chat": "web:stores"})
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        await report(hub, cust, "3号注塑机停机了，报警E102，在二车间")
        await cfeed.wait_text("GD-")
        ticket = await one_ticket(hub)
        steps = [("accept", "accepted"), ("depart", "en_route"), ("arrive", "on_site"),
                 ("diagnose", "diagnosing"), ("need_parts", "waiting_parts")]  # fmt: skip
        for action, state in steps:
            card = await current_card(hub, lfeed, "li", ticket["id"])
            await press(hub, li, button(card, action), "li")
            await eventually(lambda s=state: _state_is(hub, ticket["id"], s), what=state)
        await lfeed.wait_text("需要哪些备件？")
        status, _ = await hub.post(
            "/webchat/api/messages",
            {
                "session": li,
                "id": cid(),
                "text": "轴承 6205 ×2 和 三套密封圈",
                "conversation": "li",
            },
        )
        assert status == 202
        question = await lfeed.wait_card("li", lambda p: "备件预计何时到货" in p["title"])
        labels = {b["label"]: b["token"] for b in question["payload"]["buttons"]}
        await press(hub, li, labels["3天内"], "li")
        told = await cfeed.wait_text("正在等待备件")
        words, link = told.split("\n")
        assert (
            words
            == f"【{ticket['number']}】正在等待备件：轴承 6205 ×2、密封圈 ×3，预计 12月5日 到货。"
        )
        assert link.startswith("查看进度：http")  # the progress page (bot/web/progress.py)
        ccard = await current_card(hub, cfeed, cfeed_conv(cfeed), ticket["id"])
        fields = dict(ccard["payload"]["fields"])
        assert fields["备件"] == "轴承 6205 ×2、密封圈 ×3，预计 12月5日 到货"
        assert not any("停留" in str(v) for v in fields.values())
        assert "停留" not in " ".join(cfeed.texts())

    final = await hub.api(f"/api/tickets/{ticket['id']}")
    assert final["parts"] == [{"name": "轴承 6205", "qty": 2}, {"name": "密封圈", "qty": 3}]
    kinds = [e["kind"] for e in final["events"]][-3:]
    assert kinds == ["parts_asked", "parts", "parts_eta"]


async def _stores_feed(hub: RunningHub) -> list[str]:
    async with hub.hub.db.read() as s:
        rows = await s.scalars(
            select(WebchatFeed.payload).where(WebchatFeed.conversation == "stores")
        )
        return [str(p["text"]) for p in rows]


async def test_with_a_parts_catalog_the_stores_chat_gets_one_request_with_codes_and_stock(
    running: Start, db_url: str
) -> None:
    db = Database(db_url)
    rows = [
        PartRow("BRG-6205", "深沟球轴承 6205", ["6205轴承"], "个", {"总仓": 5, "二仓": 0}),
        PartRow("SEAL-50", "密封圈", [], "套", {"总仓": 0}),
    ]
    async with db.begin() as conn:
        await parts.upsert(conn, rows, NOW)
    await db.dispose()
    hub = await running(clock=FakeClock(NOW), parts={"stores_chat": "web:stores"})
    assert len(hub.hub.env.parts) == 2  # loaded when the hub started
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        await report(hub, cust, "3号注塑机停机了，报警E102，在二车间")
        await cfeed.wait_text("GD-")
        ticket = await one_ticket(hub)
        for action, state in [("accept", "accepted"), ("depart", "en_route"),
                              ("arrive", "on_site"), ("diagnose", "diagnosing"),
                              ("need_parts", "waiting_parts")]:  # fmt: skip
            card = await current_card(hub, lfeed, "li", ticket["id"])
            await press(hub, li, button(card, action), "li")
            await eventually(lambda s=state: _state_is(hub, ticket["id"], s), what=state)
        await lfeed.wait_text("需要哪些备件？")
        body = {"session": li, "id": cid(), "text": "轴承 6205 ×2 和 三套密封圈",
                "conversation": "li"}  # fmt: skip
        assert (await hub.post("/webchat/api/messages", body))[0] == 202
        question = await lfeed.wait_card("li", lambda p: "备件预计何时到货" in p["title"])
        labels = {b["label"]: b["token"] for b in question["payload"]["buttons"]}
        await press(hub, li, labels["明天"], "li")
        await cfeed.wait_text("正在等待备件")
        staff_card = await current_card(hub, lfeed, "li", ticket["id"])
        assert dict(staff_card["payload"]["fields"])["备件"] == (
            "轴承 6205 ×2 · BRG-6205 · 总仓 5 / 二仓 0；密封圈 ×3 · SEAL-50 · 无库存，"
            "预计 12月3日 到货"
        )
        ccard = await current_card(hub, cfeed, cfeed_conv(cfeed), ticket["id"])
        assert (
            dict(ccard["payload"]["fields"])["备件"] == "轴承 6205 ×2、密封圈 ×3，预计 12月3日 到货"
        )
    # The web chat's messages are rows of its feed, written with the unit that decided them:
    # by the time the customer heard of the ETA, every message of the request was written.
    (request,) = await _stores_feed(hub)
    assert f"📦 备件申请 {ticket['number']}" in request
    assert "· 轴承 6205 ×2 · BRG-6205 · 总仓 5 / 二仓 0\n· 密封圈 ×3 · SEAL-50 · 无库存" in request


async def test_an_import_while_the_hub_runs_is_seen_at_the_next_refresh(
    running: Start, db_url: str
) -> None:
    hub = await running(clock=FakeClock(NOW))
    assert len(hub.hub.env.parts) == 0
    assert await hub.hub.refresh_parts() is False  # nothing changed
    async with hub.hub.db.begin() as conn:
        await parts.upsert(conn, [PartRow("V-1", "电磁阀", [], None, {"总仓": 3})], NOW)
    assert await hub.hub.refresh_parts() is True
    found = hub.hub.env.parts.by_code("v-1")
    assert found is not None and found.stock == (("总仓", 3.0),)
    async with hub.hub.db.begin() as conn:  # a stock change alone is a change too
        later = NOW + timedelta(minutes=1)
        await parts.upsert(conn, [PartRow("V-1", "电磁阀", [], None, {"总仓": 1})], later)
    assert await hub.hub.refresh_parts() is True
    found = hub.hub.env.parts.by_code("V-1")
    assert found is not None and found.stock == (("总仓", 1.0),)
