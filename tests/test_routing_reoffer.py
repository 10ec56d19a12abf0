"""Unassigned tickets offered again when an engineer comes on duty (the hub's ``reoffer`` job,
run here by hand on a FakeClock): nothing moves at night, the 08:00 shift gets the ticket with
the reason on record, and a suspected repeat is left for staff."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

from bot.adapters.codec import ActionToken
from bot.tickets import TicketAction
from tests.conftest import STAFF, FakeClock, Feed, RunningHub, eventually

Start = Callable[..., Awaitable[RunningHub]]

WEDNESDAY_22 = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
THURSDAY_08 = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
REPORT = "3号注塑机停机了，报警E102，在二车间"


def day_shift() -> list[dict[str, Any]]:
    return [
        {**p, "shifts": ["mon-fri 08:00-18:00"]} if p["role"] == "engineer" else p
        for p in STAFF["people"]
    ]


async def tickets(hub: RunningHub) -> dict[str, dict[str, Any]]:
    found = (await hub.api("/api/tickets"))["tickets"]
    return {t["number"]: await hub.api(f"/api/tickets/{t['id']}") for t in found}


async def report(hub: RunningHub, session: str, n: int) -> dict[str, Any]:
    body = {"session": session, "id": uuid.uuid4().hex, "text": REPORT}
    assert (await hub.post("/webchat/api/messages", body))[0] == 202

    async def made() -> dict[str, Any] | None:
        found = sorted((await tickets(hub)).values(), key=lambda t: t["id"])
        return found[n - 1] if len(found) >= n else None

    return cast(dict[str, Any], await eventually(made, what=f"ticket {n}"))


async def test_a_ticket_left_unassigned_at_night_goes_to_the_morning_shift(
    running: Start,
) -> None:
    clock = FakeClock(WEDNESDAY_22)
    hub = await running(clock=clock, people=day_shift())
    status, body = await hub.post("/chat/api/session", {"name": "张三"})
    assert status == 200
    customer = str(body["session"])

    # 22:00, nobody on duty: the rules give it to 李工 off duty, who gives it back (转派).
    first = await report(hub, customer, 1)
    assert first["assignee"]["id"] == "li"
    assert "不在班（无人在班）" in first["intake"]["routing"]["reason"]
    token = hub.hub.codec.encode(ActionToken(first["id"], TicketAction.REASSIGN, first["version"]))
    li = await hub.staff_session("li")
    press = {"session": li, "id": uuid.uuid4().hex, "token": token}
    assert (await hub.post("/webchat/api/actions", press))[0] == 202

    async def given_back() -> bool:
        now = await hub.api(f"/api/tickets/{first['id']}")
        return bool(now["state"] == "new" and now["assignee"] is None)

    await eventually(given_back, what="the ticket given back")
    # The same fault reported again: a suspected repeat, unrouted until staff decide.
    repeat = await report(hub, customer, 2)
    assert repeat["intake"]["repeat"]["status"] == "suspected"
    assert repeat["assignee"] is None

    clock.advance(hours=2)  # midnight: still nobody on duty, nobody is woken
    assert await hub.hub.reoffer() == 0
    assert (await hub.api(f"/api/tickets/{first['id']}"))["assignee"] is None

    clock.set(THURSDAY_08)  # the day shift begins
    async with Feed(hub, li) as feed:
        assert await hub.hub.reoffer() == 1
        card = await feed.wait_card(
            "li",
            lambda p: p["title"].startswith(first["number"]) and "在班 mon-fri" in str(p["fields"]),
        )
    assert "accept" in {b["action"] for b in card["payload"]["buttons"]}  # 李工 may take it
    now = await hub.api(f"/api/tickets/{first['id']}")
    assert (now["state"], now["assignee"]["id"]) == ("assigned", "li")
    reason = now["intake"]["routing"]["reason"]
    assert "在班 mon-fri 08:00-18:00" in reason and "技能匹配：注塑机" in reason
    assign = [
        e
        for e in now["events"]
        if e["kind"] == "transition" and e["data"].get("action") == "assign"
    ][-1]
    assert (assign["actor_kind"], assign["at"]) == ("system", THURSDAY_08.isoformat())
    assert assign["data"]["routing"]["reason"] == reason
    still = await hub.api(f"/api/tickets/{repeat['id']}")
    assert (still["state"], still["assignee"]) == ("new", None)  # the repeat waits for staff

    assert await hub.hub.reoffer() == 0  # nothing left to offer
