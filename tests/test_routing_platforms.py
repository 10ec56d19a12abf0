"""转派 on every platform: a dispatcher's press brings the pick list card to the chat they
pressed in, its candidates as the platform's own buttons; pressing one assigns that engineer,
recorded as "由孙调度指派". The contract drivers render and press (tests/adapters/driver.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, cast

import pytest
from sqlalchemy import select

from bot.adapters.codec import ActionToken
from bot.events import Button, Card, Outbound, outbound_from_json
from bot.tickets import TicketAction
from storage.models import OutboxMessage
from tests.adapters.driver import Driver, Request
from tests.adapters.test_contract import DRIVERS
from tests.conftest import STAFF, Feed, RunningHub, eventually

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

#: Who presses when each driver clicks: 孙调度 is that user on that platform.
PRESSER = {
    "slack": "slack:U0CLICK",
    "telegram": "telegram:111111111",
    "wecom": "wecom:LiGong",
    "dingtalk": "dingtalk:staff1",
    "web": "web:sun",
}


def people(platform: str) -> list[dict[str, Any]]:
    """The test staff with 孙调度 reachable on ``platform`` and a third engineer, 周工, who
    knows injection moulders."""
    out = []
    for p in STAFF["people"]:
        p = dict(p)
        if p["id"] == "sun":
            p["identities"] = sorted({PRESSER[platform], "web:sun"})
        out.append(p)
    zhou = {"id": "zhou", "name": "周工", "role": "engineer", "identities": ["web:zhou"]}
    return [*out, {**zhou, "skills": ["注塑机"]}]


@pytest.fixture(params=sorted(DRIVERS))
async def setup(
    request: pytest.FixtureRequest, running: Start
) -> AsyncIterator[tuple[Driver, RunningHub]]:
    driver: Driver = DRIVERS[request.param]()
    overrides = await driver.start()
    team = {**STAFF["teams"][0], "members": ["li", "wang", "zhou"]}
    hub = await running(**overrides, people=people(driver.platform), teams=[team])
    await driver.prepare(hub.base)
    if driver.platform == "web":  # the web chat's presses come from 孙调度's staff session
        driver.session = await hub.staff_session("sun")  # type: ignore[attr-defined]
    yield driver, hub
    await driver.stop()


async def _send(hub: RunningHub, req: Request) -> int:
    async with hub.http.request(
        req.method, hub.base + req.path, data=req.body, headers=req.headers, params=req.query
    ) as r:
        await r.read()
        return r.status


async def _sent(hub: RunningHub, platform: str, title: str) -> list[Outbound]:
    """Messages whose title holds ``title`` that reached ``platform``'s API."""
    async with hub.hub.db.read() as s:
        rows = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    return [
        outbound_from_json(r.payload)
        for r in rows
        if r.destination.startswith(f"{platform}:")
        and r.state == "sent"
        and title in str(r.payload.get("title"))
    ]


async def _pick_list(hub: RunningHub, driver: Driver, feed: Feed | None) -> Any:
    """The pick list as ``driver``'s platform shows it, once it has reached that platform."""
    if feed is not None:
        card = await feed.wait_card("sun", lambda p: "转派给谁" in p["title"])
        return card["payload"]

    async def sent() -> Outbound | None:
        found = await _sent(hub, driver.platform, "转派给谁")
        return found[-1] if found else None

    picked = await eventually(sent, what=f"the pick list sent on {driver.platform}")
    assert isinstance(picked, Card)
    return driver.render(picked)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_dispatchers_reassign_offers_a_pick_list_whose_press_assigns(
    setup: tuple[Driver, RunningHub],
) -> None:
    driver, hub = setup
    status, body = await hub.post("/chat/api/session", {"name": "张三"})
    assert status == 200
    report = {"session": body["session"], "id": uuid.uuid4().hex, "text": "3号注塑机停机了，E102"}
    assert (await hub.post("/webchat/api/messages", report))[0] == 202

    async def assigned() -> dict[str, Any] | None:
        found = (await hub.api("/api/tickets"))["tickets"]
        return found[0] if found and found[0]["assignee"] else None

    ticket = cast(dict[str, Any], await eventually(assigned, what="a ticket for 李工"))
    assert ticket["assignee"]["id"] == "li"

    # 孙调度 presses 转派 on the ticket's card, on this platform (the third button; the first
    # two are other actions, so each press here is a different one to the platform).
    codec = hub.hub.codec
    tid, version = ticket["id"], ticket["version"]
    buttons = tuple(
        Button(label, codec.encode(ActionToken(tid, action, version)), action=action.value)
        for label, action in (
            ("出发", TicketAction.DEPART),
            ("到达", TicketAction.ARRIVE),
            ("转派", TicketAction.REASSIGN),
        )
    )
    card = Card(ticket_id=tid, version=version, title=f"{ticket['number']} · 注塑机停机",
                buttons=buttons)  # fmt: skip
    async with AsyncExitStack() as stack:
        feed = None
        if driver.platform == "web":  # the web chat keeps no outbox: 孙调度's page shows it
            session = driver.session  # type: ignore[attr-defined]
            feed = await stack.enter_async_context(Feed(hub, session))
        assert await _send(hub, driver.click(driver.render(card), 2)) < 300
        rendered = await _pick_list(hub, driver, feed)
    shown = json.dumps(rendered, ensure_ascii=False, default=str)
    assert shown.index("派给周工（40）") < shown.index("派给王工（0）")  # best first
    assert "派给李工" not in shown  # who gave it back is not offered it again

    assert await _send(hub, driver.click(rendered, 0)) < 300  # 周工

    async def reassigned() -> dict[str, Any] | None:
        now = await hub.api(f"/api/tickets/{tid}")
        return cast(dict[str, Any], now) if (now["assignee"] or {}).get("id") == "zhou" else None

    now = await eventually(reassigned, what="the ticket assigned to 周工")
    assert now["state"] == "assigned"
    reason = now["intake"]["routing"]["reason"]
    assert reason.startswith("由孙调度指派"), reason
    assigns = [
        (e["actor_id"], (e["data"].get("routing") or {}).get("reason"))
        for e in now["events"]
        if e["kind"] == "transition" and e["data"].get("action") == "assign"
    ]
    assert assigns[-1] == ("sun", reason)  # after the system's first assignment, to 李工
