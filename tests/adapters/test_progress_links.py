"""The progress link in the milestone messages a customer gets on Slack, Telegram, WeCom and
DingTalk (each against its local fake API), and staff replies reaching them there.

A customer reports on the platform; 李工 accepts on the console; the customer's chat gets
"【GD-1】李工 已接单。" with the link under it, and the link opens the ticket's page. 李工's reply
("GD-1 回复：…") reaches the same chat as "工程师 李工：…".
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bot.adapters.codec import ActionToken
from bot.tickets import TicketAction
from tests.adapters import test_dingtalk, test_slack, test_telegram, test_wecom
from tests.adapters.dingtalk_driver import load as dingtalk_payload
from tests.adapters.dingtalk_driver import robot_headers
from tests.adapters.slack_driver import load as slack_payload
from tests.adapters.wecom_driver import app_callback, text_message
from tests.conftest import FakeClock, RunningHub, eventually
from tests.fakes_dingtalk import FakeDingtalk
from tests.fakes_slack import FakeSlackApi
from tests.fakes_telegram import FakeBotApi
from tests.fakes_wecom import FakeWecomApi
from tests.sla.test_chain import T0

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = [
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]
LINK = re.compile(r"/t/([A-Za-z0-9_-]{16,40})")


@dataclass
class Platform:
    """One platform's fake, how a customer reports there, and what their chat received."""

    fake: Any
    overrides: Callable[[], dict[str, Any]]
    report: Callable[[RunningHub], Awaitable[None]]
    texts: Callable[[], list[str]]


async def _telegram_report(hub: RunningHub) -> None:
    update = test_telegram.says(
        test_telegram.CUSTOMER, test_telegram.CUSTOMER_GROUP, test_telegram.REPORT
    )
    assert await test_telegram.deliver(hub, update) == 200


async def _slack_report(hub: RunningHub) -> None:
    assert await test_slack.post(hub, slack_payload(test_slack.CUSTOMER_POST)) == (200, "")


async def _wecom_report(hub: RunningHub) -> None:
    req = app_callback(text_message("ZhangSan", test_wecom.REPORT, 5001))
    assert await test_wecom.post(hub, req) == (200, "")


async def _dingtalk_report(hub: RunningHub) -> None:
    body = dingtalk_payload("text_group.json")
    status, _ = await test_dingtalk.post(hub, "/webhooks/dingtalk", body, robot_headers())
    assert status == 200


def _slack_texts(fake: FakeSlackApi) -> list[str]:
    return [str(m.get("text") or "") for m in fake.channel("C0CUST") if not m.get("blocks")]


@pytest.fixture(params=["slack", "telegram", "wecom", "dingtalk"])
async def platform(request: pytest.FixtureRequest) -> AsyncIterator[Platform]:
    name = request.param
    if name == "slack":
        slack = FakeSlackApi()
        await slack.start()
        yield Platform(
            slack,
            lambda: test_slack.slack_overrides(slack),
            _slack_report,
            lambda: _slack_texts(slack),
        )
        await slack.stop()
    elif name == "telegram":
        bot = FakeBotApi()
        await bot.start()
        group = test_telegram.CUSTOMER_GROUP["id"]
        yield Platform(
            bot,
            lambda: test_telegram.enabled(bot),
            _telegram_report,
            lambda: [str(c.params.get("text", "")) for c in bot.to("sendMessage", group)],
        )
        await bot.stop()
    elif name == "wecom":
        wecom = FakeWecomApi()
        await wecom.start()
        yield Platform(
            wecom, lambda: test_wecom.enabled(wecom), _wecom_report,
            lambda: wecom.sent_texts("ZhangSan"),
        )  # fmt: skip
        await wecom.stop()
    else:
        ding = FakeDingtalk(client_secret=test_dingtalk.SECRET)
        await ding.start()
        yield Platform(
            ding,
            lambda: test_dingtalk.dingtalk_overrides(ding),
            _dingtalk_report,
            lambda: list(ding.texts[test_dingtalk.CUSTOMER_GROUP]),
        )
        await ding.stop()


async def _one_ticket(hub: RunningHub) -> dict[str, Any]:
    async def get() -> dict[str, Any] | None:
        tickets = (await hub.api("/api/tickets"))["tickets"]
        return tickets[0] if tickets else None

    ticket: dict[str, Any] = await eventually(get, what="a ticket")
    return ticket


async def _accept_on_console(hub: RunningHub, ticket: dict[str, Any]) -> None:
    li = await hub.staff_session("li")
    token = hub.hub.codec.encode(ActionToken(ticket["id"], TicketAction.ACCEPT, ticket["version"]))
    status, body = await hub.post(
        "/webchat/api/actions", {"session": li, "id": "accept-on-console", "token": token}
    )
    assert status == 202, body


async def _text(platform: Platform, needle: str) -> str:
    async def found() -> str | None:
        return next((t for t in platform.texts() if needle in t), None)

    return str(await eventually(found, what=f"a message with {needle!r} in the customer's chat"))


async def test_the_milestone_message_carries_the_progress_link(
    platform: Platform, running: Start
) -> None:
    hub = await running(**platform.overrides())
    await platform.report(hub)
    ticket = await _one_ticket(hub)
    await _accept_on_console(hub, ticket)

    told = await _text(platform, "已接单")
    assert ticket["number"] in told and "李工" in told
    m = LINK.search(told)
    assert m and f"查看进度：{hub.hub.settings.public_url}/t/{m.group(1)}" in told
    async with hub.http.get(f"{hub.base}/t/{m.group(1)}") as r:
        assert r.status == 200
        page = await r.text()
    assert ticket["number"] in page and "李工 已接单" in page and "工程师：李工" in page
    # The acknowledgement had the same link already; one link a message.
    ack = next(t for t in platform.texts() if "已收到您的报修" in t)
    assert LINK.findall(ack) == [m.group(1)]
    assert all(len(LINK.findall(t)) <= 1 for t in platform.texts())


async def test_a_staff_reply_from_the_console_reaches_the_customer_s_platform(
    platform: Platform, running: Start
) -> None:
    hub = await running(**platform.overrides())
    await platform.report(hub)
    ticket = await _one_ticket(hub)
    li = await hub.staff_session("li")
    text = f"{ticket['number']} 回复：我下午两点到，请先断电"
    body = {"session": li, "id": "reply-to-customer", "text": text}
    status, answer = await hub.post("/webchat/api/messages", body)
    assert status == 202, answer
    got = await _text(platform, "工程师 李工：我下午两点到，请先断电")
    assert ticket["number"] in got and LINK.search(got)
    events = (await hub.api(f"/api/tickets/{ticket['id']}"))["events"]
    replies = [(e["actor_id"], e["data"]["text"]) for e in events if e["kind"] == "customer_reply"]
    assert replies == [("li", "我下午两点到，请先断电")]


async def test_a_reply_written_in_telegram_by_the_engineer_and_refused_for_the_customer(
    running: Start,
) -> None:
    bot = FakeBotApi()
    await bot.start()
    try:
        hub = await running(**test_telegram.enabled(bot))
        await _telegram_report(hub)
        ticket = await _one_ticket(hub)
        group = test_telegram.CUSTOMER_GROUP
        number = ticket["number"]

        def texts(chat: int) -> list[str]:
            return [str(c.params.get("text", "")) for c in bot.to("sendMessage", chat)]

        # The customer cannot write as staff: their words are theirs, nothing is relayed.
        fake = test_telegram.says(test_telegram.CUSTOMER, group, f"{number} 回复：不用来了")
        assert await test_telegram.deliver(hub, fake) == 200
        await hub.hub.idle()
        assert not any("工程师" in t and "不用来了" in t for t in texts(group["id"]))

        # 李工 writes it in his direct chat with the bot: the customer's group gets it.
        mine = test_telegram.says(test_telegram.LI, test_telegram.LI_CHAT, f"{number} 回复：马上到")
        assert await test_telegram.deliver(hub, mine) == 200

        async def relayed() -> bool:
            return any("工程师 李工：马上到" in t for t in texts(group["id"]))

        await eventually(relayed, what="the reply in the customer's group")

        async def confirmed() -> bool:
            return any(f"已发给 {number} 的客户" in t for t in texts(test_telegram.LI["id"]))

        await eventually(confirmed, what="the confirmation in li's chat")
        events = (await hub.api(f"/api/tickets/{ticket['id']}"))["events"]
        replies = [e for e in events if e["kind"] == "customer_reply"]
        assert [(e["actor_id"], e["via"], e["data"]["text"]) for e in replies] == [
            ("li", "message", "马上到")
        ]
    finally:
        await bot.stop()


async def test_an_escalation_in_the_customer_s_group_speaks_their_words(running: Start) -> None:
    """The chain's ``post_origin`` step: the customer's Telegram group reads which promise is
    late, never the staff's clock lines (停留「待备件」) or button hints."""
    bot = FakeBotApi()
    await bot.start()
    try:
        clock = FakeClock(T0)
        hub = await running(clock=clock, **test_telegram.enabled(bot))
        await _telegram_report(hub)
        ticket = await _one_ticket(hub)
        li = await hub.staff_session("li")
        for n, action in enumerate(("accept", "depart", "arrive", "diagnose", "need_parts")):
            token = hub.hub.codec.encode(
                ActionToken(ticket["id"], TicketAction(action), ticket["version"] + n)
            )
            body = {"session": li, "id": f"walk-to-parts-{n}", "token": token}
            assert (await hub.post("/webchat/api/actions", body))[0] == 202

            async def moved(n: int = n) -> bool:
                got = await hub.api(f"/api/tickets/{ticket['id']}")
                return bool(got["version"] == ticket["version"] + n + 1)

            await eventually(moved, what=f"{action} applied")

        clock.advance(hours=49)  # past the 48 h a ticket may wait for parts (and the fix)
        await hub.hub.sla_sweep()
        group = test_telegram.CUSTOMER_GROUP["id"]

        def texts() -> list[str]:
            return [str(c.params.get("text", "")) for c in bot.to("sendMessage", group)]

        async def posted() -> str | None:
            return next((t for t in texts() if "仍在等待备件" in t), None)

        text = await eventually(posted, what="the escalation in the customer's group")
        # (the parts' own words: bot/cards/parts.py customer_stay_line)
        assert f"【{ticket['number']}】" in text and "已超出承诺时间，我们正在催办" in text
        assert "李工" in text  # (the @-mention still presses the engineer)
        assert "已超过承诺的修复时间" in text and LINK.search(text)
        for staff_words in ("停留", "「待备件」", "接单", "⏰"):
            assert all(staff_words not in t for t in texts() if "仍在等待备件" in t), staff_words
        events = (await hub.api(f"/api/tickets/{ticket['id']}"))["events"]
        steps = [e["data"].get("do") for e in events if e["kind"] == "sla_escalation"]
        assert "post_origin" in steps
    finally:
        await bot.stop()
