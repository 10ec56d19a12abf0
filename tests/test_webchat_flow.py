"""A ticket's life in the web chat, end to end through the real aiohttp app."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text

from storage.db import Database
from tests.conftest import Feed, RunningHub, button, eventually

Start = Callable[..., Awaitable[RunningHub]]


def cid() -> str:
    return uuid.uuid4().hex


async def customer(hub: RunningHub, name: str = "张三") -> str:
    status, body = await hub.post("/chat/api/session", {"name": name})
    assert status == 200
    return str(body["session"])


async def staff(hub: RunningHub, person: str) -> str:
    return await hub.staff_session(person)


async def press(
    hub: RunningHub,
    session: str,
    token: str,
    conversation: str | None = None,
    note: str | None = None,
) -> None:
    body: dict[str, Any] = {"session": session, "id": cid(), "token": token}
    if conversation:
        body["conversation"] = conversation
    if note:
        body["note"] = note
    status, answer = await hub.post("/webchat/api/actions", body)
    assert status == 202, answer


async def report(hub: RunningHub, session: str, text: str) -> None:
    status, body = await hub.post(
        "/webchat/api/messages", {"session": session, "id": cid(), "text": text}
    )
    assert (status, body["ok"]) == (202, True)


async def one_ticket(hub: RunningHub) -> dict[str, Any]:
    async def get() -> dict[str, Any] | None:
        tickets = (await hub.api("/api/tickets"))["tickets"]
        return tickets[0] if tickets else None

    ticket: dict[str, Any] = await eventually(get, what="a ticket")
    return ticket


async def test_a_ticket_from_report_to_confirmation(running: Start) -> None:
    hub = await running()
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        await report(hub, cust, "3号注塑机停机了，报警E102，在二车间")
        ack = await cfeed.wait_text("GD-")
        ticket = await one_ticket(hub)
        assert ticket["number"] in ack and "李工" in ack
        assert (ticket["priority"], ticket["state"], ticket["assignee"]["id"]) == (
            "P0",  # a production machine stopped
            "assigned",
            "li",
        )
        assert (ticket["device_code"], ticket["alarm_code"]) == ("3号注塑机", "E102")

        dm = await lfeed.wait_card("li", lambda p: p["title"].startswith(ticket["number"]))
        team = await lfeed.wait_card("team", lambda p: True)
        assert {b["action"] for b in team["payload"]["buttons"]} >= {"accept", "claim"}

        # 接单 → 出发 → 到达 → 诊断 → 维修 → 已解决 (with a root cause) → 客户确认
        await press(hub, li, button(dm, "accept"), "li")
        await cfeed.wait_text("李工 已接单")
        for action, state in [
            ("depart", "en_route"),
            ("arrive", "on_site"),
            ("diagnose", "diagnosing"),
            ("repair", "repairing"),
        ]:
            card = await current_card(hub, lfeed, "li", ticket["id"])
            await press(hub, li, button(card, action), "li")
            await eventually(lambda s=state: _state_is(hub, ticket["id"], s), what=state)
        await cfeed.wait_text("已到达现场")
        card = await current_card(hub, lfeed, "li", ticket["id"])
        await press(hub, li, button(card, "resolve"), "li", note="冷却风扇损坏，已更换")
        await cfeed.wait_text("请确认")
        ccard = await current_card(hub, cfeed, cfeed_conv(cfeed), ticket["id"])
        assert [b["action"] for b in ccard["payload"]["buttons"]] == ["confirm", "reject"]
        await press(hub, cust, button(ccard, "confirm"))
        await cfeed.wait_text("工单已关闭")

    final = await hub.api(f"/api/tickets/{ticket['number']}")
    assert final["state"] == "closed" and final["root_cause"] == "冷却风扇损坏，已更换"
    transitions = [
        (e["from"], e["to"], e["via"]) for e in final["events"] if e["kind"] == "transition"
    ]
    assert transitions == [
        ("new", "assigned", "system"),
        ("assigned", "accepted", "button"),
        ("accepted", "en_route", "button"),
        ("en_route", "on_site", "button"),
        ("on_site", "diagnosing", "button"),
        ("diagnosing", "repairing", "button"),
        ("repairing", "resolved", "button"),
        ("resolved", "closed", "button"),
    ]


async def current_card(
    hub: RunningHub, feed: Feed, conversation: str, ticket_id: int
) -> dict[str, Any]:
    """The card as the page shows it once it reflects the ticket's current version."""
    version = (await hub.api(f"/api/tickets/{ticket_id}"))["version"]
    return await feed.wait_card(conversation, lambda p: p["version"] == version)


def cfeed_conv(feed: Feed) -> str:
    return str(next(e["conversation"] for e in feed.events))


async def _state_is(hub: RunningHub, ticket_id: int, state: str) -> bool:
    return bool((await hub.api(f"/api/tickets/{ticket_id}"))["state"] == state)


async def test_forged_stale_repeated_and_unauthorised_presses_change_nothing(
    running: Start,
) -> None:
    hub = await running()
    cust, li, wang = await customer(hub), await staff(hub, "li"), await staff(hub, "wang")
    async with Feed(hub, li) as lfeed, Feed(hub, wang) as wfeed:
        await report(hub, cust, "3号注塑机停机了")
        ticket = await one_ticket(hub)
        card = await lfeed.wait_card("li", lambda p: True)
        accept = button(card, "accept")

        await press(hub, wang, accept, "team")  # not the assignee
        assert "没有权限" in await wfeed.wait_text("权限")

        await press(hub, li, accept[:-2] + ("AA" if not accept.endswith("AA") else "BB"), "li")
        assert "无效" in await lfeed.wait_text("无效")

        await press(hub, li, accept, "li")
        await eventually(lambda: _state_is(hub, ticket["id"], "accepted"), what="accepted")
        await press(hub, li, accept, "li")  # the same button again
        assert "过期" in await lfeed.wait_text("过期")

    final = await hub.api(f"/api/tickets/{ticket['id']}")
    assert [e["to"] for e in final["events"] if e["kind"] == "transition"] == [
        "assigned",
        "accepted",
    ]


async def test_two_presses_racing_from_two_pages_one_wins(running: Start) -> None:
    hub = await running()
    cust, li, wang = await customer(hub), await staff(hub, "li"), await staff(hub, "wang")
    async with Feed(hub, li) as lfeed, Feed(hub, wang) as wfeed:
        await report(hub, cust, "3号注塑机停机了")
        ticket = await one_ticket(hub)
        li_card = await lfeed.wait_card("team", lambda p: True)
        wang_card = await wfeed.wait_card("team", lambda p: True)
        # Both take the ticket at once: 李工 accepts, 王工 claims it for himself.
        await asyncio.gather(
            press(hub, li, button(li_card, "accept"), "team"),
            press(hub, wang, button(wang_card, "claim"), "team"),
        )
        await eventually(lambda: _state_is(hub, ticket["id"], "accepted"), what="accepted")
        await eventually(
            lambda: _has(lfeed, wfeed, "过期"), what="the loser is told the card is stale"
        )

    final = await hub.api(f"/api/tickets/{ticket['id']}")
    winners = [e for e in final["events"] if e["to"] == "accepted"]
    assert len(winners) == 1
    assert final["assignee"]["id"] == {"李工": "li", "王工": "wang"}[winners[0]["actor"]]


async def _has(a: Feed, b: Feed, needle: str) -> bool:
    return any(needle in t for t in a.texts() + b.texts())


async def test_a_retried_post_is_stored_once(running: Start) -> None:
    hub = await running()
    cust = await customer(hub)
    body = {"session": cust, "id": cid(), "text": "空压机漏油"}
    first = await hub.post("/webchat/api/messages", body)
    again = await hub.post("/webchat/api/messages", body)
    assert first == (202, {"ok": True, "duplicate": False})
    assert again == (202, {"ok": True, "duplicate": True})
    await one_ticket(hub)
    assert len((await hub.api("/api/tickets"))["tickets"]) == 1


async def test_small_talk_gets_a_prompt_not_a_ticket(running: Start) -> None:
    hub = await running()
    cust = await customer(hub)
    async with Feed(hub, cust) as feed:
        await report(hub, cust, "你好")
        await feed.wait_text("请描述")
    assert (await hub.api("/api/tickets"))["tickets"] == []


async def test_staff_notes_and_group_small_talk(running: Start) -> None:
    hub = await running()
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, li) as lfeed:
        await report(hub, cust, "3号注塑机停机了")
        ticket = await one_ticket(hub)

        async def say(text: str, conversation: str) -> None:
            status, _ = await hub.post(
                "/webchat/api/messages",
                {"session": li, "id": cid(), "text": text, "conversation": conversation},
            )
            assert status == 202

        await say("大家好，今天谁值班？", "team")  # colleagues talking: not for the bot
        await say(f"{ticket['number']} 原因：冷却风扇损坏", "team")
        await lfeed.wait_text("原因说明")
        await say("你好", "li")  # in a direct chat the bot answers with help
        help_text = await lfeed.wait_text("工单号开头")
        assert ticket["number"] in help_text

    final = await hub.api(f"/api/tickets/{ticket['id']}")
    assert final["root_cause"] == "冷却风扇损坏"
    assert [e["kind"] for e in final["events"]].count("evidence") == 1
    bot_replies_in_team = [
        e for e in lfeed.events if e["conversation"] == "team" and e["kind"] == "text"
    ]
    assert len(bot_replies_in_team) == 1  # only the note was answered


async def test_english_page_gets_english_replies(running: Start) -> None:
    hub = await running()
    status, body = await hub.post("/chat/api/session", {"name": "Alice", "locale": "en"})
    assert status == 200
    async with Feed(hub, body["session"]) as feed:
        await report(hub, body["session"], "Press 3 stopped with alarm E102 in workshop 2")
        ack = await feed.wait_text("ticket GD-")
    assert "We have your report" in ack


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_post_after_the_database_dropped_every_connection_is_still_stored(
    running: Start, db_url: str
) -> None:
    """PostgreSQL restarted between two posts (here: the server ends every connection of the
    hub's). The intake's pooled connection is dead, and nothing was stored on it: the next
    post is still answered, once, and still becomes a ticket (stored on a fresh connection)."""
    hub = await running()
    session = await customer(hub)
    await report(hub, session, "3号注塑机停机了，在二车间")
    await one_ticket(hub)
    admin = Database(db_url)
    try:
        async with admin.begin() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await admin.dispose()
    await report(hub, session, "冷却塔水泵漏水了，在三车间")

    async def two() -> bool:
        return len((await hub.api("/api/tickets"))["tickets"]) == 2

    await eventually(two, what="the second report's ticket")
