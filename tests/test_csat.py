"""Customer satisfaction after close, through the real app and the web chat: the stars asked at
close, one rating, a comment kept (not a new report), one reminder on a FakeClock (however many
workers run the job), a low score told to the manager, forged tokens refused, a reopened ticket
asked again, and the figures the dashboard reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot import lifecycle
from bot.adapters.codec import ActionToken, TokenCodec
from bot.tickets import CsatAction, TicketAction
from bot.unit import Turn
from storage import csat as csat_rows
from storage.models import CsatRating, TicketEvent, WebchatFeed
from tests.conftest import STAFF, FakeClock, Feed, RunningHub, button, eventually
from tests.test_webchat_flow import cfeed_conv, current_card, customer, one_ticket, press, report

Start = Callable[..., Awaitable[RunningHub]]

START = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # a Wednesday, 10:00 in Shanghai
WORK = [
    TicketAction.ACCEPT,
    TicketAction.DEPART,
    TicketAction.ARRIVE,
    TicketAction.DIAGNOSE,
    TicketAction.REPAIR,
    TicketAction.RESOLVE,
]


async def work_on(hub: RunningHub, ticket_id: int, actions: list[TicketAction] = WORK) -> None:
    """李工 does the work on the ticket (the presses on his card, as one unit)."""
    work = hub.hub.work
    li = work.env.staff.by_key["li"]
    async with work.unit() as tx:
        ticket = await tx.unit.ticket(ticket_id)
        assert ticket is not None
        for i, action in enumerate(actions):
            note = "冷却风扇损坏，已更换" if action == TicketAction.RESOLVE else None
            turn = Turn(tx.unit, f"test-work:{ticket_id}:{ticket.version}:{i}")
            await lifecycle.apply(turn, ticket, action, li, via="button", note=note)


async def rating(hub: RunningHub, ticket_id: int) -> CsatRating | None:
    async with hub.hub.db.read() as s:
        found: CsatRating | None = await s.scalar(
            select(CsatRating).where(CsatRating.ticket_id == ticket_id)
        )
        return found


async def events(hub: RunningHub, ticket_id: int, kind: str) -> list[TicketEvent]:
    async with hub.hub.db.read() as s:
        rows = await s.scalars(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == kind)
            .order_by(TicketEvent.seq)
        )
        return list(rows)


async def feed_texts(hub: RunningHub, conversation: str) -> list[str]:
    """What the web chat shows in ``conversation`` (texts and cards' titles and texts)."""
    async with hub.hub.db.read() as s:
        rows = await s.scalars(
            select(WebchatFeed)
            .where(WebchatFeed.conversation == conversation)
            .order_by(WebchatFeed.id)
        )
        return [
            str(r.payload.get("text") or "") + str(r.payload.get("title") or "")
            for r in rows
            if r.kind in ("text", "card")
        ]


async def closed_by_customer(
    hub: RunningHub, text: str = "3号注塑机停机了，报警E102"
) -> tuple[str, Feed, dict[str, Any], dict[str, Any]]:
    """A customer reports on the web chat, 李工 fixes it, the customer presses 确认修好:
    (session, the customer's open feed, the ticket, the rating card as the page shows it)."""
    cust = await customer(hub)
    feed = await Feed(hub, cust).__aenter__()
    await report(hub, cust, text)
    ticket = await one_ticket(hub)
    await work_on(hub, ticket["id"])
    await feed.wait_text("请确认")
    ccard = await current_card(hub, feed, cfeed_conv(feed), ticket["id"])
    await press(hub, cust, button(ccard, "confirm"))
    stars = await feed.wait_card(cfeed_conv(feed), lambda p: "服务评价" in p["title"])
    return cust, feed, ticket, stars


def star(card: dict[str, Any], n: int) -> str:
    buttons = card["payload"]["buttons"]
    assert [b["label"] for b in buttons] == ["1星", "2星", "3星", "4星", "5星"]
    return str(buttons[n - 1]["token"])


async def test_the_customer_rates_once_and_comments_without_opening_a_ticket(
    running: Start,
) -> None:
    hub = await running()
    cust, feed, ticket, stars = await closed_by_customer(hub)
    try:
        asked = await rating(hub, ticket["id"])
        assert asked is not None and asked.score is None and asked.asked_at is not None

        await press(hub, cust, star(stars, 5))
        thanks = await feed.wait_text("感谢您为")
        assert ticket["number"] in thanks and "5星" in thanks and "30 分钟内" in thanks
        rated = await eventually(lambda: _rated(hub, ticket["id"]), what="the rating stored")
        assert (rated.score, rated.comment) == (5, None)
        # The stars card itself now shows the score given, and no stars to press.
        given = await feed.wait_card(
            cfeed_conv(feed), lambda p: "服务评价" in p["title"] and "您的评价" in p["text"]
        )
        assert given["key"] == stars["key"] and given["payload"]["buttons"] == []
        assert "5星" in given["payload"]["text"]

        # A second press (another star) is answered and changes nothing.
        await press(hub, cust, star(stars, 2))
        already = await feed.wait_text("打过分")
        assert "5星" in already

        # The customer's next words are the rating's comment, not a new fault report.
        await report(hub, cust, "工程师很专业，但是来得有点晚，机器又停了一次")
        await feed.wait_text("您的意见已记录")
        assert len((await hub.api("/api/tickets"))["tickets"]) == 1
        after = await rating(hub, ticket["id"])
        assert after is not None
        assert (after.score, after.comment) == (5, "工程师很专业，但是来得有点晚，机器又停了一次")
        # Only the next one: what follows is read as usual (a new report here).
        await report(hub, cust, "空压机漏油了，在三车间")

        async def two() -> bool:
            return len((await hub.api("/api/tickets"))["tickets"]) == 2

        await eventually(two, what="the next message to be a report again")
    finally:
        await feed.__aexit__(None, None, None)

    final = await hub.api(f"/api/tickets/{ticket['number']}")
    kinds = [(e["kind"], e["data"]) for e in final["events"] if e["kind"].startswith("csat")]
    assert kinds == [
        ("csat", {"score": 5}),
        ("csat_comment", {"comment": "工程师很专业，但是来得有点晚，机器又停了一次"}),
    ]
    # Nothing went to the manager: 5 stars is not low.
    assert not [t for t in await feed_texts(hub, "zhao") if "低分" in t]
    # The operator's /metrics counts the one rating (the second press was not one) and comment.
    async with hub.http.get(hub.base + "/metrics") as r:
        scraped = await r.text()
    assert 'gongdan_csat_ratings_total{score="5"} 1.0' in scraped
    assert 'gongdan_csat_ratings_total{score="2"}' not in scraped
    assert 'gongdan_csat_ratings_total{score="comment"} 1.0' in scraped


async def _rated(hub: RunningHub, ticket_id: int) -> CsatRating | None:
    found = await rating(hub, ticket_id)
    return found if found is not None and found.score is not None else None


async def test_a_low_score_and_its_comment_reach_the_manager(running: Start) -> None:
    hub = await running()
    cust, feed, ticket, stars = await closed_by_customer(hub)
    try:
        await press(hub, cust, star(stars, 1))
        await feed.wait_text("感谢您为")
        await report(hub, cust, "修了三天才好，太慢")
        await feed.wait_text("您的意见已记录")
    finally:
        await feed.__aexit__(None, None, None)

    async def told() -> list[str] | None:
        found = [t for t in await feed_texts(hub, "zhao") if ticket["number"] in t]
        return found if len(found) == 2 else None

    notices = await eventually(told, what="the manager to hear of the score and the comment")
    assert "低分评价" in notices[0] and "1星" in notices[0] and "李工" in notices[0]
    assert "修了三天才好，太慢" in notices[1]
    # The engineer's own chat hears nothing of it.
    assert not [t for t in await feed_texts(hub, "li") if "低分" in t]


async def test_forged_stale_and_others_presses_change_nothing(running: Start) -> None:
    hub = await running()
    cust, feed, ticket, stars = await closed_by_customer(hub)
    try:
        real = star(stars, 1)
        forged = TokenCodec(b"not-the-hub-secret").encode(
            ActionToken(ticket["id"], CsatAction.RATE, stars["payload"]["version"], 0)
        )
        tampered = real[:-2] + ("AA" if not real.endswith("AA") else "BB")
        for token in (forged, tampered):
            await press(hub, cust, token)
        await eventually(lambda: _count(feed, "无效", 2), what="both forged presses to be refused")
        # Someone else (a second customer) pressing the real star: not theirs to rate.
        other = await customer(hub, "李四")
        async with Feed(hub, other) as ofeed:
            await press(hub, other, real, cfeed_conv(feed))
            await ofeed.wait_text("只有报修人")
    finally:
        await feed.__aexit__(None, None, None)

    row = await rating(hub, ticket["id"])
    assert row is not None and row.score is None and row.rated_at is None
    assert await events(hub, ticket["id"], "csat") == []


async def _count(feed: Feed, needle: str, n: int) -> bool:
    return sum(needle in t for t in feed.texts()) >= n


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_one_reminder_on_the_clock_however_many_workers(running: Start) -> None:
    clock = FakeClock(START)
    hub = await running(clock=clock, csat={"remind_after": 24})
    assert hub.hub.scheduler.get_job("csat-remind") is not None  # the hub runs it each minute
    cust, feed, ticket, _ = await closed_by_customer(hub)
    try:
        assert await hub.hub.csat_remind() == 0
        clock.advance(hours=23, minutes=59)
        assert await hub.hub.csat_remind() == 0
        clock.advance(minutes=2)
        # Three workers run the job at once (each its own unit): one reminder goes out.
        sent = await asyncio.gather(*(hub.hub.csat_remind() for _ in range(3)))
        assert sum(sent) == 1
        await feed.wait_card(cfeed_conv(feed), lambda p: "还没有为工单" in p["text"])
        clock.advance(hours=48)
        assert await hub.hub.csat_remind() == 0  # once, ever
        reminders = [c for c in feed.cards() if "还没有为工单" in c["payload"]["text"]]
        assert len(reminders) == 1
        # The reminder's stars work like the question's.
        await press(hub, cust, star(reminders[0], 4))
        await feed.wait_text("感谢您为")
    finally:
        await feed.__aexit__(None, None, None)
    row = await eventually(lambda: _rated(hub, ticket["id"]), what="the rating")
    assert row.score == 4 and row.reminded_at is not None


async def test_no_reminder_after_a_rating(running: Start) -> None:
    clock = FakeClock(START)
    hub = await running(clock=clock)
    cust, feed, ticket, stars = await closed_by_customer(hub)
    try:
        await press(hub, cust, star(stars, 3))
        await eventually(lambda: _rated(hub, ticket["id"]), what="the rating")
        clock.advance(hours=25)
        assert await hub.hub.csat_remind() == 0
    finally:
        await feed.__aexit__(None, None, None)


async def test_a_reopened_ticket_is_asked_again_at_its_next_close(running: Start) -> None:
    hub = await running()
    cust, feed, ticket, stars = await closed_by_customer(hub)
    try:
        await press(hub, cust, star(stars, 2))
        await eventually(lambda: _rated(hub, ticket["id"]), what="the rating")
        # The customer reopens it (重新打开 on their card): the old stars are answered, not counted.
        ccard = await current_card(hub, feed, cfeed_conv(feed), ticket["id"])
        await press(hub, cust, button(ccard, "reopen"))
        await feed.wait_text("重新")
        await eventually(lambda: _state(hub, ticket["id"], "assigned"), what="reopened")
        await press(hub, cust, star(stars, 5))
        await feed.wait_text("处理完成后会再请您评价")
        # The old card shows the score given then, without stars.
        old = feed.latest()[stars["key"]]["payload"]
        assert "您的评价：2星" in old["text"] and old["buttons"] == []
        v1 = stars["payload"]["version"]
        # Fixed again and confirmed: a fresh question, and the new rating counts.
        await work_on(hub, ticket["id"])
        ccard = await current_card(hub, feed, cfeed_conv(feed), ticket["id"])
        await press(hub, cust, button(ccard, "confirm"))

        async def asked_again() -> CsatRating | None:
            row = await rating(hub, ticket["id"])
            return row if row is not None and row.score is None else None

        await eventually(asked_again, what="the rating reset at the second close")
        again = await feed.wait_card(
            cfeed_conv(feed),
            lambda p: "服务评价" in p["title"] and bool(p["buttons"]) and p["version"] != v1,
        )
        await press(hub, cust, star(again, 4))
        row = await eventually(lambda: _rated(hub, ticket["id"]), what="the second rating")
        assert row.score == 4
        # Only the new question ever offered stars again (the old card was left as it was).
        assert feed.latest()[stars["key"]]["payload"]["buttons"] == []
    finally:
        await feed.__aexit__(None, None, None)
    assert [e.data["score"] for e in await events(hub, ticket["id"], "csat")] == [2, 4]


async def _state(hub: RunningHub, ticket_id: int, state: str) -> bool:
    return bool((await hub.api(f"/api/tickets/{ticket_id}"))["state"] == state)


async def test_auto_close_asks_too_and_csat_can_be_off(running: Start) -> None:
    from bot.flows.housekeeping import auto_close

    hub = await running(csat={"enabled": False})
    cust = await customer(hub)
    async with Feed(hub, cust) as feed:
        await report(hub, cust, "3号注塑机停机了，报警E102")
        ticket = await one_ticket(hub)
        await work_on(hub, ticket["id"])
        await feed.wait_text("请确认")
        assert await auto_close(hub.hub.work, timedelta(0)) == 1
        await feed.wait_text("工单已自动关闭")
    assert await rating(hub, ticket["id"]) is None
    assert not [c for c in feed.cards() if "服务评价" in c["payload"]["title"]]

    hub2 = await running()
    cust = await customer(hub2, "王五")
    async with Feed(hub2, cust) as feed:
        await report(hub2, cust, "空压机漏油了，在三车间")

        async def second() -> dict[str, Any] | None:
            found = (await hub2.api("/api/tickets"))["tickets"]
            return next((t for t in found if t["id"] != ticket["id"]), None)

        other = await eventually(second, what="the second ticket")
        await work_on(hub2, other["id"])
        await feed.wait_text("请确认")
        assert await auto_close(hub2.hub.work, timedelta(0)) == 1
        await feed.wait_card(cfeed_conv(feed), lambda p: "服务评价" in p["title"])
    row = await rating(hub2, other["id"])
    assert row is not None and row.score is None


async def test_summary_counts_ratings_in_a_period_by_team(running: Start) -> None:
    hub = await running()
    db = hub.hub.db
    async with db.transaction() as s:
        conn = await s.connection()
        from sqlalchemy import insert

        from storage.models import Person, Ticket

        await conn.execute(
            insert(Person.__table__).values(id=900, key="c900", name="c", role="customer")
        )
        base = dict(
            description="", priority="P2", category="other", state="closed", reporter_id=900,
            origin_chat="web:c900", created_at=START, updated_at=START,
        )  # fmt: skip
        for i, (team, score, day) in enumerate(
            [("maint", 5, 1), ("maint", 1, 1), ("it", 2, 1), ("maint", 4, 3), ("maint", None, 1)]
        ):
            tid = 1000 + i
            await conn.execute(
                insert(Ticket.__table__).values(
                    id=tid, number=f"GD-{tid}", title="t", team_key=team, **base
                )
            )
            await csat_rows.ask(conn, tid, 900, START)
            if score is not None:
                assert await csat_rows.rate(conn, tid, 900, score, START + timedelta(days=day))
    async with db.read() as s:
        week = await csat_rows.csat_summary(s, START, START + timedelta(days=7))
        day1 = await csat_rows.csat_summary(
            s, START + timedelta(days=1), START + timedelta(days=2), "maint"
        )
        none = await csat_rows.csat_summary(s, START - timedelta(days=7), START)
    assert (week.count, week.average, week.low) == (4, 3.0, 2)
    assert week.distribution == {1: 1, 2: 1, 3: 0, 4: 1, 5: 1}
    assert (day1.count, day1.average, day1.low, day1.distribution[5]) == (2, 3.0, 1, 1)
    assert (none.count, none.average, none.low) == (0, None, 0)


async def test_a_new_fault_in_the_comment_window_is_still_a_report(running: Start) -> None:
    hub = await running()
    cust, feed, ticket, stars = await closed_by_customer(hub)
    try:
        await press(hub, cust, star(stars, 4))
        await feed.wait_text("感谢您为")
        await report(hub, cust, "空压机漏油了，在三车间")  # a fault, named: never lost

        async def two() -> bool:
            return len((await hub.api("/api/tickets"))["tickets"]) == 2

        await eventually(two, what="the new report to be a ticket")
    finally:
        await feed.__aexit__(None, None, None)
    row = await rating(hub, ticket["id"])
    assert row is not None and (row.score, row.comment) == (4, None)


async def test_without_a_reachable_manager_the_team_group_hears_a_low_score(
    running: Start,
) -> None:
    people = [dict(p, identities=[]) if p["id"] == "zhao" else p for p in STAFF["people"]]
    hub = await running(people=people, csat={"remind_after": 0})
    assert hub.hub.scheduler.get_job("csat-remind") is None  # no reminders: no job
    cust, feed, ticket, stars = await closed_by_customer(hub)
    try:
        await press(hub, cust, star(stars, 2))
        await feed.wait_text("感谢您为")
    finally:
        await feed.__aexit__(None, None, None)

    async def told() -> list[str]:
        return [t for t in await feed_texts(hub, "team") if "低分评价" in t]

    (notice,) = await eventually(told, what="the team group told of the low score")
    assert ticket["number"] in notice and "2星" in notice


async def test_an_english_customer_is_asked_in_english(running: Start) -> None:
    hub = await running()
    status, body = await hub.post("/chat/api/session", {"name": "Alice", "locale": "en"})
    assert status == 200
    cust = body["session"]
    async with Feed(hub, cust) as feed:
        await report(hub, cust, "Press 3 stopped with alarm E102 in workshop 2")
        ticket = await one_ticket(hub)
        await work_on(hub, ticket["id"])
        ccard = await current_card(hub, feed, cfeed_conv(feed), ticket["id"])
        await press(hub, cust, button(ccard, "confirm"))
        stars = await feed.wait_card(cfeed_conv(feed), lambda p: "How did we do" in p["title"])
        labels = [b["label"] for b in stars["payload"]["buttons"]]
        assert labels == ["1★", "2★", "3★", "4★", "5★"]
        await press(hub, cust, str(stars["payload"]["buttons"][3]["token"]))
        thanks = await feed.wait_text("Thank you for rating")
        assert ticket["number"] in thanks and "4★" in thanks and "30 minutes" in thanks
