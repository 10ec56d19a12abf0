"""Repeat reports across platforms: a Telegram group's report of the fault a web chat customer
reported is merged from the engineer's Telegram chat, and the next milestone of the first
ticket reaches both customers, each in their own chat."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.adapters.telegram.render import CONFIRM
from bot.tickets import IntakeAction, Press, TicketAction
from tests.adapters.test_telegram import (
    CUSTOMER,
    CUSTOMER_GROUP,
    LI,
    LI_CHAT,
    REPORT,
    api,
    deliver,
    enabled,
    presses,
    says,
)
from tests.conftest import Feed, RunningHub, eventually
from tests.fakes_telegram import FakeBotApi
from tests.test_webchat_flow import customer, report

__all__ = ["api"]  # (the fake Bot API fixture)

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


async def _card(api: FakeBotApi, chat: int, number: str) -> tuple[int, dict[str, Any]]:
    async def found() -> tuple[int, dict[str, Any]] | None:
        return next(
            ((m, msg) for m, msg in api.cards(chat) if msg["text"].startswith(f"<b>{number} ·")),
            None,
        )

    card: tuple[int, dict[str, Any]] = await eventually(found, what=f"{number}'s card in {chat}")
    return card


def _data(hub: RunningHub, message: dict[str, Any], action: Press) -> str:
    for row in message["reply_markup"]["inline_keyboard"]:
        for b in row:
            if hub.hub.codec.decode(b["callback_data"].removeprefix(CONFIRM)).action == action:
                return str(b["callback_data"])
    raise AssertionError(f"no {action} button")


async def _sent_to(api: FakeBotApi, chat: int, needle: str) -> bool:
    return any(needle in c.params.get("text", "") for c in api.to("sendMessage", chat))


async def test_a_telegram_groups_repeat_of_a_web_report_is_merged_and_hears_the_next_step(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    web = await customer(hub, "张三")
    async with Feed(hub, web) as wfeed:
        await report(hub, web, REPORT)
        await eventually(lambda: _state(hub, "GD-1", "assigned"), what="GD-1 assigned")
        again = says(CUSTOMER, CUSTOMER_GROUP, "3号注塑机又停了，报警E102，在二车间")
        assert await deliver(hub, again) == 200
        group = CUSTOMER_GROUP["id"]
        await eventually(lambda: _sent_to(api, group, "似乎与 GD-1 相同"), what="told")
        second = await hub.api("/api/tickets/GD-2")
        assert second["assignee"] is None and second["intake"]["repeat"]["status"] == "suspected"

        dm_id, dm = await _card(api, 42, "GD-2")  # li works on GD-1: the card comes to him
        merge = _data(hub, dm, IntakeAction.SAME_FAULT)
        assert await deliver(hub, presses(LI, LI_CHAT, dm_id, merge, dm["reply_markup"])) == 200
        await eventually(lambda: _state(hub, "GD-2", "closed"), what="GD-2 merged")
        await eventually(lambda: _sent_to(api, group, "已合并到 GD-1"), what="merge told")

        one_id, one = await _card(api, 42, "GD-1")
        await eventually(lambda: _has_accept(hub, api, one_id), what="GD-1's card redrawn")
        one = api.messages[(42, one_id)]
        accept = _data(hub, one, TicketAction.ACCEPT)
        assert await deliver(hub, presses(LI, LI_CHAT, one_id, accept, one["reply_markup"])) == 200
        await wfeed.wait_text("【GD-1】李工 已接单。")
        await eventually(lambda: _sent_to(api, group, "【GD-1】李工 已接单。"), what="fan-out")


async def _state(hub: RunningHub, number: str, state: str) -> bool:
    tickets = (await hub.api("/api/tickets"))["tickets"]
    return any((t["number"], t["state"]) == (number, state) for t in tickets)


async def _has_accept(hub: RunningHub, api: FakeBotApi, message_id: int) -> bool:
    message = api.messages[(42, message_id)]
    version = (await hub.api("/api/tickets/GD-1"))["version"]
    tokens = [
        hub.hub.codec.decode(b["callback_data"].removeprefix(CONFIRM))
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
        for b in row
    ]
    return any(t.action == TicketAction.ACCEPT and t.version == version for t in tokens)
