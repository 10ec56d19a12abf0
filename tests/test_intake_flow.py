"""The intake never loses a report: one-tap questions, impact, slots, chases, group modes.

Web chat stands for direct chats (the customer's own conversation with the bot); Telegram,
against its fake Bot API, for group chats.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storage import inbound
from tests.adapters.test_telegram import CUSTOMER, CUSTOMER_GROUP, api, deliver, enabled, says
from tests.conftest import FakeClock, Feed, RunningHub, button, eventually
from tests.fakes_telegram import FakeBotApi
from tests.test_webchat_flow import customer, one_ticket, press, report, staff

__all__ = ["api"]  # the fake Bot API fixture, used by the group tests

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
T0 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai
#: In these tests every message short of certain is asked about: the question is what is shown.
ASK_ALWAYS = {"intake": {"ask_below": 1.0, "ask_above": 0.0}}


async def tickets(hub: RunningHub) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await hub.api("/api/tickets"))["tickets"]
    return found


async def events(hub: RunningHub, ticket_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await hub.api(f"/api/tickets/{ticket_id}"))["events"]
    return found


def metric(hub: RunningHub, outcome: str, mode: str) -> float:
    value = hub.hub.metrics.registry.get_sample_value(
        "gongdan_intake_messages_total", {"outcome": outcome, "mode": mode}
    )
    return value or 0.0


# ------------------------------------------------------------------ direct chats: ask, never drop


async def test_an_unsure_message_is_asked_about_and_report_makes_it_a_ticket_once(
    running: Start,
) -> None:
    hub = await running(**ASK_ALWAYS)
    cust = await customer(hub)
    async with Feed(hub, cust) as feed:
        await report(hub, cust, "那台机器今天有点怪")
        question = await _question(feed)
        assert "那台机器今天有点怪" in question["payload"]["text"]
        assert await tickets(hub) == []
        yes = button(question, "report")
        await press(hub, cust, yes)
        ack = await feed.wait_text("已收到您的报修")
        ticket = await one_ticket(hub)
        assert ticket["number"] in ack and ticket["description"] == "那台机器今天有点怪"
        await press(hub, cust, yes)  # again: the message is a ticket already
        await feed.wait_text(f"已报修：{ticket['number']}")
    assert len(await tickets(hub)) == 1
    assert metric(hub, "asked", "all") == 1


async def _question(feed: Feed) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        return next((c for c in feed.cards() if c["payload"]["title"] == "需要报修吗？"), None)

    result: dict[str, Any] = await eventually(found, what="the one-tap question")
    return result


async def test_no_thanks_leaves_the_message_be_and_others_may_not_answer(running: Start) -> None:
    hub = await running(**ASK_ALWAYS)
    cust, other = await customer(hub), await customer(hub, "李四")
    async with Feed(hub, cust) as feed, Feed(hub, other) as ofeed:
        await report(hub, cust, "那台机器今天有点怪")
        question = await _question(feed)
        await press(hub, other, button(question, "report"))  # not theirs to answer
        await ofeed.wait_text("没有权限")
        await press(hub, cust, button(question, "dismiss"))
        await feed.wait_text("不报修")
    assert await tickets(hub) == []


async def test_small_talk_in_a_direct_chat_is_answered_not_asked(running: Start) -> None:
    hub = await running()
    cust = await customer(hub)
    async with Feed(hub, cust) as feed:
        await report(hub, cust, "谢谢")
        await feed.wait_text("请描述")
    assert [c for c in feed.cards() if c["payload"]["title"] == "需要报修吗？"] == []
    assert metric(hub, "answered", "all") == 1


# ------------------------------------------------------------------------------ one-tap impact


async def test_the_reporter_answers_the_impact_and_a_manager_can_still_change_it(
    running: Start,
) -> None:
    hub = await running()
    cust, li, zhao = await customer(hub), await staff(hub, "li"), await staff(hub, "zhao")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed, Feed(hub, zhao) as zfeed:
        await report(hub, cust, "3号注塑机停机了，报警E102，在二车间")  # P0 read: asked
        ticket = await one_ticket(hub)
        card = await _customer_card(
            cfeed, lambda p: any(b["action"] == "impact" for b in p["buttons"])
        )
        labels = [b["label"] for b in card["payload"]["buttons"] if b["action"] == "impact"]
        assert labels == ["全线/整机停产", "部分受影响", "不影响生产", "有安全隐患"]
        partial = card["payload"]["buttons"][
            [b["label"] for b in card["payload"]["buttons"]].index("部分受影响")
        ]["token"]
        await press(hub, cust, partial)
        await cfeed.wait_text("已记录影响：部分受影响")
        after = await hub.api(f"/api/tickets/{ticket['id']}")
        assert after["priority"] == "P1"  # partly affected → P1 (the impact table)
        redrawn = await _customer_card(cfeed, lambda p: "P1" in p["title"])
        assert not [b for b in redrawn["payload"]["buttons"] if b["action"] == "impact"]
        await press(hub, cust, partial)  # answered once
        await cfeed.wait_text("已经回答过了")

        staff_card = await lfeed.wait_card("li", lambda p: "P1" in p["title"])
        to_p2 = next(b for b in staff_card["payload"]["buttons"] if b["label"] == "改为P2")
        await press(hub, li, to_p2["token"], "li")  # an engineer may not
        await lfeed.wait_text("没有权限")
        assert (await hub.api(f"/api/tickets/{ticket['id']}"))["priority"] == "P1"
        team_card = await zfeed.wait_card("team", lambda p: "P1" in p["title"])
        to_p2 = next(b for b in team_card["payload"]["buttons"] if b["label"] == "改为P2")
        await press(hub, zhao, to_p2["token"], "team")
        await zfeed.wait_text("优先级已改为 P2")
    final = await hub.api(f"/api/tickets/{ticket['id']}")
    assert final["priority"] == "P2"
    kinds = [e["kind"] for e in final["events"]]
    assert kinds.count("impact") == 1 and kinds.count("priority") == 2
    changes = [e["data"] for e in final["events"] if e["kind"] == "priority"]
    assert [(c["from"], c["to"]) for c in changes] == [("P0", "P1"), ("P1", "P2")]


async def _customer_card(feed: Feed, predicate: Any) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        return next((c for c in feed.cards() if predicate(c["payload"])), None)

    result: dict[str, Any] = await eventually(found, what="the customer's card")
    return result


# ------------------------------------------------------------------------------------- slots


async def test_a_slot_answer_fills_the_ticket_and_the_next_report_reuses_it(
    running: Start,
) -> None:
    clock = FakeClock(T0)
    hub = await running(clock=clock)
    cust = await customer(hub)
    async with Feed(hub, cust) as feed:
        await report(hub, cust, "空压机漏油了")
        ack = await feed.wait_text("已收到您的报修")
        assert "所在位置" in ack  # it asks where
        first = await one_ticket(hub)
        await report(hub, cust, "在二车间B线")
        await feed.wait_text("已补充到")
        await _customer_card(feed, lambda p: ["位置", "二车间B线"] in p["fields"])
        assert (await hub.api(f"/api/tickets/{first['id']}"))["site"] == "二车间B线"
        await report(hub, cust, "冷却塔水泵漏水了")
        await feed.wait_text("沿用您上次的报修")

        async def second() -> dict[str, Any] | None:
            found = [t for t in await tickets(hub) if t["id"] != first["id"]]
            return found[0] if found else None

        ticket = await eventually(second, what="the second ticket")
    assert ticket["site"] == "二车间B线"
    assert [e["kind"] for e in await events(hub, first["id"])].count("slot") == 1


async def test_a_late_answer_is_a_comment_not_a_slot(running: Start) -> None:
    clock = FakeClock(T0)
    hub = await running(clock=clock, intake={"slot_minutes": 30})
    cust = await customer(hub)
    async with Feed(hub, cust) as feed:
        await report(hub, cust, "空压机漏油了")
        first = await one_ticket(hub)
        clock.advance(minutes=31)
        await report(hub, cust, "在二车间B线")
        await feed.wait_text("已补充到工单")  # added as a comment
    after = await hub.api(f"/api/tickets/{first['id']}")
    assert after["site"] is None
    assert "comment" in [e["kind"] for e in after["events"]]


async def test_a_report_stored_as_a_unit_began_is_not_dated_before_it_came(
    running: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit takes its moment once it has claimed its events: a report stored between the
    unit's start and its claim (a minute later, here) is dated when it came, and so are its
    audit trail and its clocks (on a busy PostgreSQL worker the two can be far apart)."""
    clock = FakeClock(T0)
    hub = await running(clock=clock)
    cust = await customer(hub)
    claim, posted = inbound.claimable, []

    async def claim_after_a_report(*args: Any, **kwargs: Any) -> list[inbound.Claimed]:
        if not posted:  # the unit has begun (at T0): the report comes a minute later
            posted.append(True)
            clock.set(T0 + timedelta(minutes=1))
            await report(hub, cust, "空压机漏油了，在二车间")
        return await claim(*args, **kwargs)

    monkeypatch.setattr(inbound, "claimable", claim_after_a_report)
    hub.hub.engine.wake.set()
    ticket = await one_ticket(hub)
    assert posted
    came = T0 + timedelta(minutes=1)
    assert datetime.fromisoformat(ticket["created_at"]) == came
    trail = await events(hub, ticket["id"])
    assert trail and all(datetime.fromisoformat(e["at"]) >= came for e in trail)


# ------------------------------------------------------------------------------------ chases


async def test_chasing_an_open_ticket_raises_it_and_nags_the_assignee(running: Start) -> None:
    hub = await running()
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        await report(hub, cust, "二车间冷却塔水泵漏水了，不影响生产")
        ticket = await one_ticket(hub)
        assert ticket["priority"] in ("P2", "P3")
        await report(hub, cust, "人呢？怎么还没到")
        await cfeed.wait_text("已催促李工")
        nag = await lfeed.wait_text("客户在催")
        assert ticket["number"] in nag
    assert len(await tickets(hub)) == 1  # never a new ticket
    after = await hub.api(f"/api/tickets/{ticket['id']}")
    assert after["priority"] == "P1"
    assert {"chased", "priority"} <= {e["kind"] for e in after["events"]}


# ---------------------------------------------------------------------------- group intake modes


async def _replies(api: FakeBotApi, chat: int) -> list[str]:
    return [c.params.get("text", "") for c in api.to("sendMessage", chat)]


async def test_a_group_in_reports_mode_tickets_reports_and_counts_what_it_ignores(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    assert await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, "大家中午吃什么？")) == 200
    assert await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, "3号注塑机停机了，在二车间")) == 200
    await one_ticket(hub)
    await hub.hub.idle()
    assert metric(hub, "ignored", "reports") == 1
    assert metric(hub, "ticket", "reports") == 1
    texts = await _replies(api, CUSTOMER_GROUP["id"])
    assert not [t for t in texts if "吃" in t or "请描述" in t]  # small talk got no answer


async def test_a_group_in_reports_mode_asks_once_when_unsure(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api), intake={"ask_below": 1.0, "ask_above": 0.0})
    for text in ("那台机器今天有点怪", "声音也有点不对"):
        assert await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, text)) == 200
    await hub.hub.idle()

    async def asked() -> list[Any] | None:
        sent = api.to("sendMessage", CUSTOMER_GROUP["id"])
        return sent or None

    await eventually(asked, what="the question in the group")
    await hub.hub.idle()
    questions = [
        c for c in api.to("sendMessage", CUSTOMER_GROUP["id"]) if "需要报修" in c.params["text"]
    ]
    assert len(questions) == 1  # once per person per window, not once per message
    assert metric(hub, "asked", "reports") == 1 and metric(hub, "ignored", "reports") == 1


async def test_a_group_in_mentions_mode_reads_only_what_mentions_the_bot(
    api: FakeBotApi, running: Start
) -> None:
    chat = f"telegram:{CUSTOMER_GROUP['id']}"
    hub = await running(**enabled(api), intake={"chats": [{"chat": chat, "mode": "mentions"}]})
    assert await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, "3号注塑机停机了，在二车间")) == 200
    await hub.hub.idle()
    assert await tickets(hub) == [] and metric(hub, "ignored", "mentions") == 1
    mention = says(CUSTOMER, CUSTOMER_GROUP, "@helpdesk_bot 3号注塑机停机了，在二车间")
    mention["message"]["entities"] = [{"type": "mention", "offset": 0, "length": 13}]
    assert await deliver(hub, mention) == 200
    await one_ticket(hub)


async def test_a_group_in_all_mode_answers_small_talk_like_a_direct_chat(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api), intake={"group_mode": "all"})
    assert await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, "谢谢")) == 200

    async def answered() -> list[str] | None:
        found = [t for t in await _replies(api, CUSTOMER_GROUP["id"]) if "请描述" in t]
        return found or None

    await eventually(answered, what="an answer in the group")
    assert metric(hub, "answered", "all") == 1
