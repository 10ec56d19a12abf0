"""Mirroring: a ticket raised from Telegram whose engineer works in Slack.

The card lives in the customer's Telegram group, in li's Slack DM and in the team's Slack
channel. A press on any copy moves the ticket once and every copy shows the new state.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.tickets import TicketAction
from tests.adapters.slack_driver import SIGNING_SECRET, click_payload, form_body, sign
from tests.adapters.telegram_driver import SECRET, webhook
from tests.adapters.test_telegram import CUSTOMER, CUSTOMER_GROUP, REPORT, data_for, presses, says
from tests.conftest import STAFF, RunningHub, eventually
from tests.fakes_slack import FakeSlackApi
from tests.fakes_telegram import TOKEN, FakeBotApi

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeSlackApi, FakeBotApi]]:
    slack, telegram = FakeSlackApi(), FakeBotApi()
    await slack.start()
    await telegram.start()
    yield slack, telegram
    await slack.stop()
    await telegram.stop()


def settings(slack: FakeSlackApi, telegram: FakeBotApi) -> dict[str, Any]:
    people = [dict(p) for p in STAFF["people"]]
    people[0] = {**people[0], "identities": ["slack:U0LI", "web:li"]}  # li works in Slack
    teams = [{**STAFF["teams"][0], "chats": ["slack:C0TEAM"]}]
    return {
        "slack": {
            "enabled": True,
            "bot_token": slack.bot_token,
            "signing_secret": SIGNING_SECRET,
            "api_base_url": slack.api_base,
        },
        "telegram": {
            "enabled": True,
            "bot_token": TOKEN,
            "webhook_secret": SECRET,
            "api_base_url": telegram.base_url,
        },
        "people": people,
        "teams": teams,
    }


async def post(hub: RunningHub, path: str, body: bytes, headers: dict[str, str]) -> int:
    async with hub.http.post(hub.base + path, data=body, headers=headers) as r:
        return r.status


def slack_cards(slack: FakeSlackApi, channel: str) -> list[dict[str, Any]]:
    return [m for m in slack.channel(channel) if m.get("blocks")]


def shows(message: Any, label: str) -> bool:
    return label in json.dumps(message, ensure_ascii=False)


async def test_a_telegram_ticket_accepted_in_slack_updates_every_copy(
    fakes: tuple[FakeSlackApi, FakeBotApi], running: Start
) -> None:
    slack, telegram = fakes
    hub = await running(**settings(slack, telegram))
    group = CUSTOMER_GROUP["id"]

    req = webhook(says(CUSTOMER, CUSTOMER_GROUP, REPORT))
    assert await post(hub, req.path, req.body, req.headers) == 200

    async def cards() -> bool:
        return bool(
            telegram.cards(group) and slack_cards(slack, "D0LI") and slack_cards(slack, "C0TEAM")
        )

    await eventually(cards, what="cards in Telegram, li's Slack DM and the Slack team channel")
    (ticket,) = (await hub.api("/api/tickets"))["tickets"]
    assert ticket["origin_chat"] == f"telegram:{group}" and ticket["assignee"]["id"] == "li"
    ((customer_mid, customer_card),) = telegram.cards(group)
    old_cancel = data_for(hub, customer_card, TicketAction.CANCEL)

    # li accepts in the Slack team channel.
    (team_card,) = slack_cards(slack, "C0TEAM")
    actions = next(b for b in team_card["blocks"] if b["type"] == "actions")
    accept = [e["action_id"].split(":")[1] for e in actions["elements"]].index("accept")
    click = click_payload(
        {"blocks": team_card["blocks"]},
        accept,
        user="U0LI",
        channel="C0TEAM",
        message_ts=team_card["ts"],
    )
    raw = form_body(click)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)}
    assert await post(hub, "/webhooks/slack", raw, headers) == 200

    async def every_copy_accepted() -> bool:
        copies = [
            *slack_cards(slack, "D0LI"),
            *slack_cards(slack, "C0TEAM"),
            *(m for _, m in telegram.cards(group)),
        ]
        return len(copies) == 3 and all(shows(c, "已接单") for c in copies)

    await eventually(every_copy_accepted, what="all three copies to show 已接单")
    assert telegram.to("editMessageText", group)  # the Telegram copy was edited in place

    async def milestone() -> bool:
        return any(
            "李工 已接单" in c.params.get("text", "") for c in telegram.to("sendMessage", group)
        )

    await eventually(milestone, what="the customer's milestone in Telegram")
    assert slack.calls_to("chat.postEphemeral", ok=True)  # the presser's notice, in Slack

    # The customer presses cancel on the card as it was before: stale, refused in a toast.
    stale = presses(CUSTOMER, CUSTOMER_GROUP, customer_mid, old_cancel, None)
    stale["callback_query"]["data"] = old_cancel.removeprefix("?")
    req = webhook(stale)
    assert await post(hub, req.path, req.body, req.headers) == 200

    async def toast() -> str | None:
        qid = stale["callback_query"]["id"]
        calls = [
            c for c in telegram.to("answerCallbackQuery") if c.params["callback_query_id"] == qid
        ]
        return str(calls[0].params.get("text")) if calls else None

    assert "过期" in await eventually(toast, what="the stale press's toast")
    final = await hub.api(f"/api/tickets/{ticket['id']}")
    assert final["state"] == "accepted"
    assert [e["to"] for e in final["events"] if e["kind"] == "transition"] == [
        "assigned",
        "accepted",
    ]
