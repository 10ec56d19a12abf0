"""The customer's progress page (``/t/<token>``), the link under every milestone message, the
customer's wording, and staff replies to the customer — through the real app and the web chat.

Adapter tests (the link on Slack, Telegram, WeCom and DingTalk) are in
``tests/adapters/test_progress_links.py``; the page in a phone-sized browser in
``tests/test_progress_browser.py``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.adapters.codec import ActionToken
from bot.assets import AssetLinks
from bot.progress import ProgressLinks, expired, milestone_key, timeline
from bot.texts import TEXTS
from bot.tickets import TRANSITIONS, Effect, TicketAction, TicketState
from storage.models import Ticket as TicketRow
from storage.models import TicketEvent
from tests.conftest import Feed, RunningHub, eventually
from tests.test_webchat_flow import customer, one_ticket, report, staff

Start = Callable[..., Awaitable[RunningHub]]
REPORT = "3号注塑机停机了，报警E102，在二车间"
LINK = re.compile(r"(https?://\S+)/t/([A-Za-z0-9_-]+)")
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# ---------------------------------------------------------------------------- the token


def test_a_token_names_its_ticket_and_nothing_else() -> None:
    links = ProgressLinks(b"hub-secret")
    for ticket_id in (0, 1, 12, 255, 256, 70_000, 2**40):
        assert links.verify(links.sign(ticket_id)) == ticket_id
    one, two = links.sign(1), links.sign(2)
    assert one != two and links.verify(one) == 1  # another ticket's link is another token
    assert len(links.sign(12_345_678)) <= 24  # short enough for any message
    assert links.url("https://hub.example.com/", 7) == f"https://hub.example.com/t/{links.sign(7)}"


def test_forged_and_tampered_tokens_name_no_ticket() -> None:
    links = ProgressLinks(b"hub-secret")
    good = links.sign(42)
    assert ProgressLinks(b"another-hub").verify(good) is None  # signed with another secret
    # Every one-character change of a good token is refused.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, c in enumerate(good):
        for other in alphabet:
            if other != c:
                assert links.verify(good[:i] + other + good[i + 1 :]) is None, (i, other)
    # The same secret's other signatures are not progress links (each has its own key).
    assert links.verify(AssetLinks(b"hub-secret").sign(42)) is None
    for junk in ("", "a", "x" * 41, good + "=", good[:-1], "é" * 20, "../../etc/passwd", None, 42):
        assert links.verify(junk) is None


def test_a_link_works_while_open_and_for_its_days_after_closing() -> None:
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    long_ago = now - timedelta(days=400)
    assert not expired("repairing", None, long_ago, now, 30)  # open: always
    assert not expired("closed", now - timedelta(days=29), now, now, 30)
    assert expired("closed", now - timedelta(days=31), now, now, 30)
    assert expired("cancelled", None, now - timedelta(days=31), now, 30)  # its last change


def test_every_milestone_has_customer_words_and_a_page_line() -> None:
    """No transition the customer is told of falls back to a staff label; each state has a
    label and a sentence; steps worth a word have a timeline line."""
    for action, rule in TRANSITIONS.items():
        if Effect.TELL_CUSTOMER in rule.effects:
            assert milestone_key(action, rule.target) in TEXTS, action
    assert milestone_key(TicketAction.PARTS_ARRIVED, TicketState.REPAIRING) == (
        "progress.told.parts_arrived"  # not "thanks for telling us" (what 没修好 hears)
    )
    for state in TicketState:
        assert f"progress.label.{state.value}" in TEXTS
        assert f"progress.status.{state.value}" in TEXTS
    for action in TicketAction:
        if action is not TicketAction.MERGE:
            assert f"progress.event.{action.value}" in TEXTS, action
    for zh, _en in (v for k, v in TEXTS.items() if k.startswith("progress.")):
        assert "停留" not in zh and "「" not in zh  # no internal label reaches a customer


def test_the_timeline_names_engineers_and_marks_where_it_stands() -> None:
    t0 = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)

    def ev(minutes: int, kind: str, actor: str = "system", **data: Any) -> Any:
        return SimpleNamespace(at=t0 + timedelta(minutes=minutes), actor=actor, kind=kind,
                               data=data)  # fmt: skip

    events = [
        ev(1, "transition", action="assign", assignee="li"),
        ev(2, "comment", "张三", text="快点"),  # not a step
        ev(3, "transition", "李工", action="accept"),
        ev(4, "sla_warning"),  # not for the customer
        ev(5, "transition", "李工", action="depart"),
        ev(6, "customer_reply", "李工", text="20分钟到", role="engineer"),
    ]
    steps = timeline(t0, events, "zh", {"li": "李工"})
    assert [s.text for s in steps] == [
        "您提交了报修",
        "已安排工程师 李工",
        "李工 已接单",
        "李工 已出发",
        "工程师 李工：20分钟到",
    ]
    assert [s.current for s in steps] == [False, False, False, True, False]
    en = timeline(t0, events, "en", {"li": "Li"})
    assert en[1].text == "Li was assigned" and en[-1].text == "Engineer 李工: 20分钟到"


# ---------------------------------------------------------------------- end to end helpers


async def act(hub: RunningHub, session: str, ticket_id: int, action: TicketAction) -> None:
    """Press ``action`` on the ticket's current card as the staff member of ``session``."""
    version = (await hub.api(f"/api/tickets/{ticket_id}"))["version"]
    token = hub.hub.codec.encode(ActionToken(ticket_id, action, version))
    body = {"session": session, "id": f"act{ticket_id}{action.value}{version}", "token": token}
    status, answer = await hub.post("/webchat/api/actions", body)
    assert status == 202, answer

    async def moved() -> bool:
        return bool((await hub.api(f"/api/tickets/{ticket_id}"))["version"] > version)

    await eventually(moved, what=f"{action.value} applied")


async def say_as(hub: RunningHub, session: str, text: str) -> None:
    status, body = await hub.post(
        "/webchat/api/messages", {"session": session, "id": f"m{abs(hash(text))}", "text": text}
    )
    assert status == 202, body


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def get(hub: RunningHub, path: str, **kw: Any) -> tuple[int, str, dict[str, str]]:
    """GET as a browser asks for a page."""
    kw.setdefault("headers", BROWSER)
    async with hub.http.get(hub.base + path, **kw) as r:
        return r.status, await r.text(), dict(r.headers)


def token_in(text: str) -> str:
    m = LINK.search(text)
    assert m, text
    return m.group(2)


# ------------------------------------------------------------------------------ the page


async def test_the_link_in_each_milestone_opens_the_ticket_s_page(running: Start) -> None:
    hub = await running()
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed:
        await report(hub, cust, REPORT)
        ticket = await one_ticket(hub)
        await act(hub, li, ticket["id"], TicketAction.ACCEPT)
        told = await cfeed.wait_text("李工 已接单")
        assert f"查看进度：{hub.hub.settings.public_url}/t/" in told
        token = token_in(told)
        await act(hub, li, ticket["id"], TicketAction.DEPART)
        departed = await cfeed.wait_text("已出发")
        assert token_in(departed) == token  # one link per ticket, in every milestone

    status, page, headers = await get(hub, f"/t/{token}")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert 'name="viewport"' in page and "PingFang SC" in page  # a phone, CJK fonts
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    assert ticket["number"] in page and ticket["title"] in page
    assert "工程师在路上" in page and "李工 正在赶来" in page  # the state in their words
    for step in ("您提交了报修", "已安排工程师 李工", "李工 已接单", "李工 已出发"):
        assert step in page
    assert "已出发" not in page.split("工程师在路上")[0]  # (the label comes first)
    # Local times (Asia/Shanghai), not UTC.
    created = datetime.fromisoformat(ticket["created_at"]).astimezone(hub.hub.settings.tz)
    assert created.strftime("%m-%d %H:%M") in page
    assert "前到场" in page and "预计" in page  # the promise not yet kept, and the ETA
    assert re.search(r"\d\d:\d\d 已响应 ✓ 按时", page)  # a promise kept

    status, page_en, _ = await get(hub, f"/t/{token}?lang=en")
    assert status == 200 and "Engineer on the way" in page_en and "李工 is on the way" in page_en

    async with hub.http.get(hub.base + f"/t/{token}", headers={"Accept": "application/json"}) as r:
        assert r.status == 200
        data = await r.json()
    assert (data["number"], data["state"]) == (ticket["number"], "en_route")
    assert data["engineer"] == "李工"
    assert [s["kind"] for s in data["steps"]] == ["reported", "assign", "accept", "depart"]


@sqlite_only
async def test_parts_waited_for_are_shown_and_the_card_never_says_an_internal_label(
    running: Start,
) -> None:
    hub = await running()  # (a stay clock on 待备件 by default: staff see 停留「待备件」)
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed:
        await report(hub, cust, REPORT)
        ticket = await one_ticket(hub)
        for action in ("accept", "depart", "arrive", "diagnose", "need_parts"):
            await act(hub, li, ticket["id"], TicketAction(action))
        # (the customer hears of 待备件 once its parts and ETA are known: bot/flows/parts.py)
        told = await cfeed.wait_text("查看进度")
        eta = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=4)
        async with hub.hub.db.begin() as s:  # (the 待备件 flow fills these: another feature)
            await s.execute(
                update(TicketRow)
                .where(TicketRow.id == ticket["id"])
                .values(parts=[{"name": "加热圈", "qty": 2, "code": "HB-220"}], parts_eta=eta)
            )
        ccard = await cfeed.wait_card(
            next(e["conversation"] for e in cfeed.events),
            lambda p: p["version"] == ticket["version"] + 5,
        )
    fields = dict(tuple(f) for f in ccard["payload"]["fields"])
    assert fields["状态"] == "等待备件"
    shown = str(ccard["payload"])
    assert "停留" not in shown and "「待备件」" not in shown  # (staff see 停留「待备件」)
    assert "承诺" in fields and "前修好" in fields["承诺"]  # the promise in their words

    status, page, _ = await get(hub, f"/t/{token_in(told)}")
    assert status == 200
    local = eta.astimezone(hub.hub.settings.tz).strftime("%m-%d %H:%M")
    assert "加热圈（HB-220） × 2" in page and f"备件预计 {local} 到货" in page
    assert "正在等待备件到货" in page


@sqlite_only
async def test_bad_tokens_answer_a_404_page_never_a_500(running: Start) -> None:
    hub = await running()
    cust, li = await customer(hub), await staff(hub, "li")
    await report(hub, cust, REPORT)
    ticket = await one_ticket(hub)
    good = ProgressLinks(b"test-secret-key").sign(ticket["id"])
    assert (await get(hub, f"/t/{good}"))[0] == 200
    forged = ProgressLinks(b"not-the-hub-secret").sign(ticket["id"])
    missing = ProgressLinks(b"test-secret-key").sign(ticket["id"] + 1000)
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    for bad in (forged, missing, tampered, "x", "%00", "%E4%BD%A0" * 10, "a" * 5000,
                "..%2F..%2Fapi", good + "%20"):  # fmt: skip
        status, page, headers = await get(hub, f"/t/{bad}")
        assert status == 404, (bad, status)
        assert headers["Content-Type"].startswith("text/html") and "链接无效" in page
        assert ticket["number"] not in page
    assert (await get(hub, f"/t/{forged}?lang=en"))[1].count("Link not valid") >= 1
    status, text, headers = await get(hub, f"/t/{forged}", headers={"Accept": "*/*"})
    assert status == 404 and "unknown or expired" in text  # not a browser: JSON, as /api
    # A closed ticket's link stops working expire_days after closing.
    async with hub.hub.db.begin() as s:
        await s.execute(
            update(TicketRow)
            .where(TicketRow.id == ticket["id"])
            .values(state="closed", closed_at=datetime.now(UTC) - timedelta(days=31))
        )
    assert (await get(hub, f"/t/{good}"))[0] == 404
    del li


@sqlite_only
async def test_the_anonymous_page_is_rate_limited_per_client(running: Start) -> None:
    hub = await running(limits={"exempt": []}, progress={"requests_per_minute": 3})
    links = ProgressLinks(b"test-secret-key")
    answers = [(await get(hub, f"/t/{links.sign(n)}"))[0] for n in range(3)]
    assert answers == [404, 404, 404]  # forged or not, each load counts
    status, page, headers = await get(hub, f"/t/{links.sign(1)}")
    assert status == 429 and int(headers["Retry-After"]) >= 1 and "太频繁" in page
    status, text, headers = await get(hub, f"/t/{links.sign(1)}?format=json")
    assert status == 429 and "retry_after" in text and int(headers["Retry-After"]) >= 1


# ---------------------------------------------------------------- staff write to the customer


async def test_a_staff_reply_reaches_the_customer_and_the_audit_trail(running: Start) -> None:
    hub = await running()
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        await report(hub, cust, REPORT)
        ticket = await one_ticket(hub)
        number = ticket["number"]
        await say_as(hub, li, f"{number} 回复：明早9点到场，请准备停机")
        got = await cfeed.wait_text("工程师 李工：明早9点到场，请准备停机")
        assert got.startswith(f"【{number}】") and "/t/" in got
        await lfeed.wait_text(f"已发给 {number} 的客户")
        await say_as(hub, li, f"{number} reply: bring the manual")
        await cfeed.wait_text("工程师 李工：bring the manual")  # in the customer's language

    events = (await hub.api(f"/api/tickets/{number}"))["events"]
    replies = [e for e in events if e["kind"] == "customer_reply"]
    assert [(e["actor_id"], e["data"]["text"]) for e in replies] == [
        ("li", "明早9点到场，请准备停机"),
        ("li", "bring the manual"),
    ]
    assert replies[0]["data"]["to"] == ticket["origin_chat"]
    _, page, _ = await get(hub, f"/t/{token_in(got)}")
    assert "工程师 李工：明早9点到场，请准备停机" in page


@sqlite_only
async def test_a_customer_cannot_speak_as_an_engineer(running: Start) -> None:
    hub = await running()
    cust, other = await customer(hub), await customer(hub, "李工")
    async with Feed(hub, cust) as cfeed:
        await report(hub, cust, REPORT)
        ticket = await one_ticket(hub)
        await say_as(hub, other, f"{ticket['number']} 回复：不用修了，工单取消")
        await hub.hub.idle()
        assert not any("不用修了" in t for t in cfeed.texts())
    async with hub.hub.db.read() as s:
        kinds = (await s.scalars(select(TicketEvent.kind))).all()
    assert "customer_reply" not in kinds
    assert (await hub.api(f"/api/tickets/{ticket['id']}"))["state"] == "assigned"


@sqlite_only
async def test_the_console_reply_box_needs_a_staff_sign_in_and_writes_as_the_chat_does(
    running: Start,
) -> None:
    hub = await running()
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        await report(hub, cust, REPORT)
        ticket = await one_ticket(hub)
        number = ticket["number"]
        body = {"id": "console-reply-1", "ticket": number.lower(), "text": "已联系厂家，明天到货"}
        # No sign-in, or a customer's chat session: refused, nothing relayed.
        async with hub.http.post(hub.base + "/console/api/reply", json=body) as r:
            assert r.status == 401
        assert (await hub.post("/console/api/reply", {**body, "session": cust}))[0] == 401
        for bad in ({"ticket": "12"}, {"ticket": "GD-1; drop"}, {"text": ""},
                    {"text": "x" * 1001}, {"id": "short"}, {"ticket": None}):  # fmt: skip
            status, answer = await hub.post("/console/api/reply", {**body, **bad, "session": li})
            assert status == 400, (bad, answer)

        status, answer = await hub.post("/console/api/reply", {**body, "session": li})
        assert (status, answer["duplicate"]) == (202, False)
        again = await hub.post("/console/api/reply", {**body, "session": li})
        assert again == (202, {"ok": True, "duplicate": True})  # a retried post: once
        await cfeed.wait_text("工程师 李工：已联系厂家，明天到货")
        await lfeed.wait_text(f"已发给 {number} 的客户")
        await hub.hub.idle()
        assert len([t for t in cfeed.texts() if "已联系厂家" in t]) == 1
    events = (await hub.api(f"/api/tickets/{number}"))["events"]
    assert [e["actor_id"] for e in events if e["kind"] == "customer_reply"] == ["li"]


@sqlite_only
async def test_a_refusal_tells_a_customer_the_state_in_their_words(running: Start) -> None:
    hub = await running()
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        await report(hub, cust, REPORT)
        ticket = await one_ticket(hub)
        for action in ("accept", "depart", "arrive", "diagnose", "need_parts"):
            await act(hub, li, ticket["id"], TicketAction(action))
        version = (await hub.api(f"/api/tickets/{ticket['id']}"))["version"]
        early = hub.hub.codec.encode(ActionToken(ticket["id"], TicketAction.CONFIRM, version))
        status, _ = await hub.post(
            "/webchat/api/actions", {"session": cust, "id": "confirm-too-early", "token": early}
        )
        assert status == 202
        told = await cfeed.wait_text("不能执行")
        assert "「等待备件」" in told and "「待备件」" not in told
        # Staff are told in theirs.
        wrong = hub.hub.codec.encode(ActionToken(ticket["id"], TicketAction.ARRIVE, version))
        body = {"session": li, "id": "arrive-again", "token": wrong}
        assert (await hub.post("/webchat/api/actions", body))[0] == 202
        assert "「待备件」" in await lfeed.wait_text("不能执行")
