"""A P0 offered to three engineers on three platforms at once (``p0_broadcast = 3``): all three
press 我来处理 together; one gets it, the other two are told and their cards say who took it.
End to end through the real app, on both database backends."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest

from bot.tickets import TicketAction
from tests.adapters.slack_driver import click_payload
from tests.adapters.test_slack import button_of, cards_in, press, slack_overrides
from tests.adapters.test_telegram import data_for, deliver, enabled, presses
from tests.conftest import STAFF, Feed, RunningHub, button, eventually
from tests.fakes_slack import FakeSlackApi
from tests.fakes_telegram import FakeBotApi

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

WANG_TG = {"id": 43, "is_bot": False, "first_name": "Wang", "language_code": "zh-hans"}
WANG_CHAT = {"id": 43, "first_name": "Wang", "type": "private"}
#: What a late presser is told (the refusal of a stale card).
LATE = "卡片已过期"
REPORT = "3号注塑机停机了，整条线停了，在二车间"


def people() -> list[dict[str, Any]]:
    """李工 on web chat only, 王工 on Telegram (user 43), 周工 on Slack (U0ZHOU); all three
    can fix injection moulders, so each is among the best three."""
    li, wang, *others = (dict(p) for p in STAFF["people"])
    li["identities"] = ["web:li"]
    wang.update(identities=["telegram:43", "web:wang"], skills=["注塑机"])
    zhou = {
        "id": "zhou",
        "name": "周工",
        "role": "engineer",
        "identities": ["slack:U0ZHOU", "web:zhou"],
        "skills": ["注塑机"],
    }
    return [li, wang, zhou, *others]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlackApi]:
    fake = FakeSlackApi()
    await fake.start()
    yield fake
    await fake.stop()


async def test_three_engineers_on_three_platforms_claim_a_p0_at_once_and_one_gets_it(
    running: Start, telegram: FakeBotApi, slack: FakeSlackApi
) -> None:
    team = {**STAFF["teams"][0], "members": ["li", "wang", "zhou"], "chats": ["web:team"]}
    hub = await running(
        routing={"p0_broadcast": 3},
        telegram=enabled(telegram)["telegram"],
        slack=slack_overrides(slack)["slack"],
        people=people(),
        teams=[team],
    )
    status, body = await hub.post("/chat/api/session", {"name": "张三"})
    assert status == 200
    customer = str(body["session"])
    li = await hub.staff_session("li")
    async with Feed(hub, li) as feed:
        status, body = await hub.post(
            "/webchat/api/messages", {"session": customer, "id": uuid.uuid4().hex, "text": REPORT}
        )
        assert status == 202, body

        async def one() -> dict[str, Any] | None:
            found = (await hub.api("/api/tickets"))["tickets"]
            return found[0] if found else None

        ticket = cast(dict[str, Any], await eventually(one, what="a ticket"))
        number = ticket["number"]
        assert (ticket["priority"], ticket["state"], ticket["assignee"]) == ("P0", "new", None)

        # The claim card reaches all three, each in their own chat.
        web_card = await feed.wait_card("li", lambda p: p["title"].startswith(number))

        async def telegram_card() -> tuple[int, dict[str, Any]] | None:
            found = telegram.cards(43)
            return found[0] if found else None

        async def slack_card() -> dict[str, Any] | None:
            found = cards_in(slack, "D0ZHOU")
            return found[0] if found else None

        tg_id, tg_card = await eventually(telegram_card, what="王工's Telegram card")
        sl_card = cast(dict[str, Any], await eventually(slack_card, what="周工's Slack card"))
        assert "周工" in json.dumps(sl_card["blocks"], ensure_ascii=False)  # who it went to

        tg_press = presses(
            WANG_TG, WANG_CHAT, tg_id, data_for(hub, tg_card, TicketAction.CLAIM),
            tg_card["reply_markup"],
        )  # fmt: skip
        sl_press = click_payload(
            {"blocks": sl_card["blocks"]}, button_of(sl_card, "claim"),
            user="U0ZHOU", channel="D0ZHOU", message_ts=sl_card["ts"],
        )  # fmt: skip
        web_press = {
            "session": li,
            "id": uuid.uuid4().hex,
            "token": button(web_card, "claim"),
            "conversation": "li",
        }
        statuses = await asyncio.gather(
            hub.post("/webchat/api/actions", web_press),
            deliver(hub, tg_press),
            press(hub, sl_press),
        )
        assert [statuses[0][0], statuses[1], statuses[2]] == [202, 200, 200]

        async def claimed() -> dict[str, Any] | None:
            now = await hub.api(f"/api/tickets/{ticket['id']}")
            return cast(dict[str, Any], now) if now["assignee"] else None

        now = await eventually(claimed, what="the ticket claimed")
        winner = now["assignee"]["id"]
        assert winner in {"li", "wang", "zhou"}
        name = {"li": "李工", "wang": "王工", "zhou": "周工"}[winner]
        taken = f"已被{name}接单"

        # The other two are told and their cards say who took it.
        async def web_told() -> bool:
            card = next(c for c in feed.cards("li") if c["payload"]["title"].startswith(number))
            shown = json.dumps(card["payload"], ensure_ascii=False)
            return taken in shown and any(LATE in t for t in feed.texts())

        async def telegram_told() -> bool:
            shown = json.dumps(telegram.messages[(43, tg_id)], ensure_ascii=False)
            toasts = telegram.to("answerCallbackQuery")
            return taken in shown and any(LATE in c.params.get("text", "") for c in toasts)

        async def slack_told() -> bool:
            shown = json.dumps(slack.messages[("D0ZHOU", sl_card["ts"])], ensure_ascii=False)
            told = [
                c.args.get("text") or ""
                for method in ("chat.postEphemeral", "chat.postMessage")
                for c in slack.calls_to(method, ok=True)
                if c.args.get("channel") == "D0ZHOU"
            ]
            return taken in shown and any(LATE in t for t in told)

        losers = {"li": web_told, "wang": telegram_told, "zhou": slack_told}
        for who, told in losers.items():
            if who != winner:
                await eventually(told, what=f"{who} told the ticket was taken")

        # The audit holds one claim, the winner's, and the two late presses as refusals.
        async def settled() -> dict[str, Any] | None:
            final = await hub.api(f"/api/tickets/{ticket['id']}")
            refused = [e for e in final["events"] if e["kind"] == "refused"]
            return cast(dict[str, Any], final) if len(refused) >= 2 else None

        final = await eventually(settled, what="both late presses on the record")
        moves = [e for e in final["events"] if e["kind"] == "transition"]
        assert [(e["actor_id"], e["data"]["action"]) for e in moves] == [(winner, "claim")], moves
        refused = [e for e in final["events"] if e["kind"] == "refused"]
        assert sorted(e["actor_id"] for e in refused) == sorted(set(losers) - {winner})
        assert (final["state"], final["assignee"]["id"]) == ("accepted", winner)
