"""待备件 end to end on Telegram (the real app against the fake Bot API): the engineer presses
待备件 on his card, answers "which parts?" in his chat, taps the ETA; the stores group gets the
request once (a platform retry and a changed ETA included), the customer's group is told in
their words, and the customer's card shows the parts and the ETA — not "停留「待备件」"."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.adapters.telegram.render import CONFIRM
from bot.tickets import PartsAction, TicketAction
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
from tests.conftest import FakeClock, RunningHub, eventually
from tests.fakes_telegram import FakeBotApi
from tests.test_voice_flow import move_to

__all__ = ["api"]  # (the fake Bot API fixture)

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai
STORES = -100777


def _buttons(hub: RunningHub, message: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """label → (decoded token, callback data)."""
    out = {}
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for b in row:
            data = b["callback_data"]
            out[b["text"]] = (hub.hub.codec.decode(data.removeprefix(CONFIRM)), data)
    return out


async def _message_with(api: FakeBotApi, chat: int, needle: str) -> tuple[int, dict[str, Any]]:
    async def found() -> tuple[int, dict[str, Any]] | None:
        return next(
            ((mid, m) for (c, mid), m in sorted(api.messages.items())
             if c == chat and needle in m["text"]),
            None,
        )  # fmt: skip

    result: tuple[int, dict[str, Any]] = await eventually(found, what=f"{needle!r} in {chat}")
    return result


async def _sent(api: FakeBotApi, chat: int, needle: str) -> list[str]:
    return [
        str(c.params["text"])
        for c in api.to("sendMessage", chat)
        if needle in str(c.params.get("text", ""))
    ]


async def test_parts_and_their_eta_reach_the_stores_once_and_the_customer_in_their_words(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(
        clock=FakeClock(NOW), **enabled(api), parts={"stores_chat": f"telegram:{STORES}"}
    )
    assert await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, REPORT)) == 200

    async def assigned() -> dict[str, Any] | None:
        tickets = (await hub.api("/api/tickets"))["tickets"]
        return tickets[0] if tickets and tickets[0]["assignee"] else None

    ticket = await eventually(assigned, what="an assigned ticket")
    number = ticket["number"]
    actions = (TicketAction.ACCEPT, TicketAction.DEPART, TicketAction.ARRIVE)
    await move_to(hub, ticket["id"], *actions, TicketAction.DIAGNOSE)

    async def need_parts_button() -> tuple[int, dict[str, Any], str] | None:
        version = (await hub.api(f"/api/tickets/{ticket['id']}"))["version"]
        for (chat, mid), message in sorted(api.messages.items()):
            if chat != LI_CHAT["id"]:
                continue
            for token, data in _buttons(hub, message).values():
                if token.action == TicketAction.NEED_PARTS and token.version == version:
                    return mid, message, data
        return None

    mid, card, data = await eventually(need_parts_button, what="li's card with 待备件")
    assert await deliver(hub, presses(LI, LI_CHAT, mid, data, card["reply_markup"])) == 200
    await eventually(lambda: _sent(api, LI_CHAT["id"], f"{number} 需要哪些备件？"), what="asked")

    assert await deliver(hub, says(LI, LI_CHAT, "轴承 6205 ×2、两个密封圈")) == 200
    qid, question = await _message_with(api, LI_CHAT["id"], "备件预计何时到货")
    choices = _buttons(hub, question)
    assert list(choices) == ["今天", "明天", "3天内", "1周内", "待定"]
    (request,) = await eventually(lambda: _sent(api, STORES, number), what="the stores told")
    assert "· 轴承 6205 ×2\n· 密封圈 ×2" in request and "二车间" in request

    tap = presses(LI, LI_CHAT, qid, choices["明天"][1], question["reply_markup"])
    assert await deliver(hub, tap) == 200
    told = f"【{number}】正在等待备件：轴承 6205 ×2、密封圈 ×2，预计 12月3日 到货。"
    await eventually(lambda: _sent(api, CUSTOMER_GROUP["id"], told), what="the customer told")

    async def customer_card_shows_parts() -> str | None:
        for (chat, _), message in api.messages.items():
            text = str(message["text"])
            if chat == CUSTOMER_GROUP["id"] and text.startswith(f"<b>{number} ·"):
                return text if "备件：轴承 6205 ×2、密封圈 ×2，预计 12月3日 到货" in text else None
        return None

    shown = await eventually(customer_card_shows_parts, what="the customer's card redrawn")
    assert "停留" not in shown and "待备件」" not in shown

    # Telegram retries the same update; the engineer changes the ETA: the stores hear nothing new.
    assert await deliver(hub, tap) == 200
    week = presses(LI, LI_CHAT, qid, choices["1周内"][1], question["reply_markup"])
    assert await deliver(hub, week) == 200
    again = f"【{number}】正在等待备件：轴承 6205 ×2、密封圈 ×2，预计 12月9日 到货。"
    await eventually(lambda: _sent(api, CUSTOMER_GROUP["id"], again), what="the new ETA told")
    assert len(await _sent(api, CUSTOMER_GROUP["id"], "预计 12月3日 到货")) == 1
    assert len(await _sent(api, STORES, number)) == 1
    final = await hub.api(f"/api/tickets/{ticket['id']}")
    assert final["state"] == "waiting_parts"
    assert final["parts"] == [{"name": "轴承 6205", "qty": 2}, {"name": "密封圈", "qty": 2}]
    assert final["parts_eta"] == "2026-12-09T10:00:00+00:00"  # 18:00 in Shanghai
    kinds = [e["kind"] for e in final["events"]]
    assert kinds.count("parts") == 1 and kinds.count("parts_eta") == 2
    assert PartsAction.ETA in {t.action for t, _ in choices.values()}

    # The parts arrive: the stores hear the request is fulfilled, li is asked when he repairs,
    # and the customer is told when to expect him.
    async def arrived_button() -> tuple[int, dict[str, Any], str] | None:
        version = (await hub.api(f"/api/tickets/{ticket['id']}"))["version"]
        for (chat, mid), message in sorted(api.messages.items()):
            for token, data in _buttons(hub, message).values():
                if (
                    chat == LI_CHAT["id"]
                    and token.action == TicketAction.PARTS_ARRIVED
                    and (token.version == version)
                ):
                    return mid, message, data
        return None

    mid, card, data = await eventually(arrived_button, what="li's card with 备件已到")
    assert await deliver(hub, presses(LI, LI_CHAT, mid, data, card["reply_markup"])) == 200
    vid, visit = await _message_with(api, LI_CHAT["id"], "预计何时上门维修")
    today = _buttons(hub, visit)["今天"][1]
    assert await deliver(hub, presses(LI, LI_CHAT, vid, today, visit["reply_markup"])) == 200
    told = f"【{number}】备件已到货，工程师预计 12月2日 前为您维修。"
    await eventually(lambda: _sent(api, CUSTOMER_GROUP["id"], told), what="the repair time")
    (done,) = await eventually(lambda: _sent(api, STORES, "申请已完成"), what="stores told")
    assert done == f"✅ {number} 备件已到，申请已完成：轴承 6205 ×2、密封圈 ×2（李工 确认）"
    final = await hub.api(f"/api/tickets/{ticket['id']}")
    assert (final["state"], final["parts_eta"]) == ("repairing", None)


async def test_an_overdue_wait_for_parts_is_told_in_the_customers_group_in_their_words(
    api: FakeBotApi, running: Start
) -> None:
    clock = FakeClock(NOW)
    sla = {
        "policies": {"P0": {"respond": "1h", "arrive": "4h", "resolve": "off"}},
        "warn_at": [],
        "stay": {"waiting_parts": "1h"},
        "chains": {"default": {"steps": [{"do": "post_origin"}], "repeat": 0}},
    }
    hub = await running(clock=clock, **enabled(api), sla=sla)
    assert await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, REPORT)) == 200

    async def assigned() -> dict[str, Any] | None:
        tickets = (await hub.api("/api/tickets"))["tickets"]
        return tickets[0] if tickets and tickets[0]["assignee"] else None

    ticket = await eventually(assigned, what="an assigned ticket")
    number = ticket["number"]
    actions = (TicketAction.ACCEPT, TicketAction.DEPART, TicketAction.ARRIVE)
    await move_to(hub, ticket["id"], *actions, TicketAction.DIAGNOSE)
    async with hub.hub.work.unit() as tx:  # a confirmed diagnosis that names the part
        found = await tx.unit.ticket(ticket["id"])
        assert found is not None
        found.diagnosis = {"parts_needed": [{"name": "风扇电机", "qty": 1}]}

    async def need_parts_button() -> tuple[int, dict[str, Any], str] | None:
        version = (await hub.api(f"/api/tickets/{ticket['id']}"))["version"]
        for (chat, mid), message in sorted(api.messages.items()):
            for token, data in _buttons(hub, message).values():
                if (
                    chat == LI_CHAT["id"]
                    and token.action == TicketAction.NEED_PARTS
                    and (token.version == version)
                ):
                    return mid, message, data
        return None

    mid, card, data = await eventually(need_parts_button, what="li's card with 待备件")
    assert await deliver(hub, presses(LI, LI_CHAT, mid, data, card["reply_markup"])) == 200
    await _message_with(api, LI_CHAT["id"], "备件预计何时到货")

    clock.advance(hours=2)
    await hub.hub.sla_sweep()
    told = "备件（风扇电机 ×1）仍未到货，已超出承诺时间，我们正在催办。"
    (nag,) = await eventually(lambda: _sent(api, CUSTOMER_GROUP["id"], told), what="the nag")
    assert number in nag and "停留" not in nag
