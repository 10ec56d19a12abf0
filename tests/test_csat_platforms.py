"""CSAT on every IM platform: when a ticket from a customer's Slack, Telegram, WeCom or
DingTalk chat closes, the five stars reach that platform's (fake) API as its own buttons; a
press of one comes back through the platform's callback and is recorded; a low score reaches
the manager; a forged star changes nothing. The contract drivers render and press
(tests/adapters/driver.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot import lifecycle
from bot.adapters.codec import ActionToken, TokenCodec
from bot.events import (
    Address,
    Button,
    Card,
    Outbound,
    Text,
    inbound_from_json,
    outbound_from_json,
)
from bot.tickets import CsatAction, TicketAction
from bot.unit import Turn
from storage.models import CsatRating, Identity, InboundEvent, OutboxMessage, TicketEvent
from tests.adapters.driver import Driver, Request
from tests.adapters.test_contract import DRIVERS
from tests.conftest import RunningHub, eventually
from tests.test_csat import feed_texts

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

PLATFORMS = sorted(p for p in DRIVERS if p != "web")  # the web chat: tests/test_csat.py


@pytest.fixture(params=PLATFORMS)
async def setup(
    request: pytest.FixtureRequest, running: Start
) -> AsyncIterator[tuple[Driver, RunningHub]]:
    driver: Driver = DRIVERS[request.param]()
    overrides = await driver.start()
    hub = await running(**overrides)
    await driver.prepare(hub.base)
    yield driver, hub
    await driver.stop()


async def _send(hub: RunningHub, req: Request) -> int:
    async with hub.http.request(
        req.method, hub.base + req.path, data=req.body, headers=req.headers, params=req.query
    ) as r:
        await r.read()
        return r.status


def _calls(driver: Driver) -> str:
    """Everything the platform's fake API received, as one text to search."""
    fake = getattr(driver, "fake", None) or driver.api  # type: ignore[attr-defined]
    return json.dumps([asdict(c) for c in fake.calls], ensure_ascii=False, default=str)


def _stars_card(ticket_id: int, version: int, codec: TokenCodec) -> Card:
    buttons = tuple(
        Button(
            f"{n}星",
            codec.encode(ActionToken(ticket_id, CsatAction.RATE, version, n)),
            action="rate",
        )
        for n in range(1, 6)
    )
    return Card(ticket_id=ticket_id, version=version, title="GD-1 服务评价", buttons=buttons)


async def _sent(hub: RunningHub, platform: str, needle: str) -> list[Outbound]:
    """Messages holding ``needle`` that the platform's API accepted."""
    async with hub.hub.db.read() as s:
        rows = (await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    return [
        outbound_from_json(r.payload)
        for r in rows
        if r.destination.startswith(f"{platform}")
        and r.state == "sent"
        and needle in json.dumps(r.payload, ensure_ascii=False)
    ]


async def _customer_of_a_press(hub: RunningHub, driver: Driver) -> tuple[int, Address]:
    """A forged star pressed on the platform: refused, and it tells us who the presser is (a
    customer the hub met just now) and in which chat they are."""
    forged = _stars_card(1, 1, TokenCodec(b"someone-else's-secret"))
    assert await _send(hub, driver.click(driver.render(forged), 1)) < 300

    async def done() -> InboundEvent | None:
        async with hub.hub.db.read() as s:
            row = await s.scalar(select(InboundEvent).order_by(InboundEvent.id.desc()))
            return row if row is not None and row.status == "done" else None

    row = await eventually(done, what="the forged press handled")
    assert "refused" in (row.error or "")
    event = inbound_from_json(row.payload)
    async with hub.hub.db.read() as s:
        person_id = await s.scalar(
            select(Identity.person_id).where(
                Identity.platform == event.sender.platform,
                Identity.external_id == event.sender.user_id,
            )
        )
    assert person_id is not None
    return person_id, event.chat


async def _closed_ticket(hub: RunningHub, reporter_id: int, chat: Address) -> int:
    """A ticket the customer reported from ``chat``, fixed by 李工, closed (auto-close)."""
    work = hub.hub.work
    li = work.env.staff.by_key["li"]
    async with work.unit() as tx:
        now = tx.unit.now
        ticket = await tx.unit.new_ticket(
            title="注塑机停机", description="3号注塑机停机了，报警E102", priority="P1",
            category="equipment_failure", state="resolved", reporter_id=reporter_id,
            origin_chat=chat.ref, created_at=now - timedelta(hours=80),
            updated_at=now - timedelta(hours=73), assignee_id=li.id, team_key="maint",
            root_cause="冷却风扇损坏，已更换",
        )  # fmt: skip
        await lifecycle.apply(
            Turn(tx.unit, f"test-close:{ticket.id}"), ticket, TicketAction.AUTO_CLOSE, None,
            via="system",
        )  # fmt: skip
        return ticket.id


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_stars_reach_the_platform_and_a_press_rates(
    setup: tuple[Driver, RunningHub],
) -> None:
    driver, hub = setup
    customer_id, chat = await _customer_of_a_press(hub, driver)
    async with hub.hub.db.read() as s:  # the forged press left nothing behind
        assert (await s.scalars(select(CsatRating))).all() == []
        assert (await s.scalars(select(TicketEvent))).all() == []

    ticket_id = await _closed_ticket(hub, customer_id, chat)

    async def asked() -> list[Outbound]:
        return await _sent(hub, driver.platform, "服务评价")

    (card,) = await eventually(asked, what=f"the stars sent on {driver.platform}")
    assert isinstance(card, Card)
    assert [b.label for b in card.buttons] == ["1星", "2星", "3星", "4星", "5星"]
    codec = hub.hub.codec
    for n, b in enumerate(card.buttons, 1):
        assert codec.decode(b.token) == ActionToken(ticket_id, CsatAction.RATE, card.version, n)
    received = _calls(driver)
    for b in card.buttons:  # each star, as the platform's own button, reached its API
        assert b.token in received

    # The customer presses 1 star on the platform.
    assert await _send(hub, driver.click(driver.render(card), 0)) < 300

    async def rated() -> CsatRating | None:
        async with hub.hub.db.read() as s:
            row = await s.scalar(select(CsatRating).where(CsatRating.ticket_id == ticket_id))
            return row if row is not None and row.score is not None else None

    row = await eventually(rated, what="the rating recorded")
    assert (row.score, row.rater_id) == (1, customer_id)
    thanks = await eventually(
        lambda: _sent(hub, driver.platform, "感谢您为"), what="the thanks on the platform"
    )
    assert isinstance(thanks[0], Text) and "1星" in thanks[0].text
    assert "感谢您为" in _calls(driver)
    # The stars card is updated in place on the platform: the score given, no stars.
    await eventually(
        lambda: _sent(hub, driver.platform, "您的评价"), what="the card updated on the platform"
    )
    assert "您的评价：1星" in _calls(driver)

    # A low score: the manager (赵经理, on the web console) hears of it.
    async def told() -> list[str]:
        return [t for t in await feed_texts(hub, "zhao") if "低分评价" in t]

    (notice,) = await eventually(told, what="the manager told of the low score")
    assert "1星" in notice and "李工" in notice

    # A second press (5 stars) is answered and changes nothing.
    assert await _send(hub, driver.click(driver.render(card), 4)) < 300
    await eventually(
        lambda: _sent(hub, driver.platform, "打过分"), what="the polite answer to a second press"
    )
    async with hub.hub.db.read() as s:
        again = await s.scalar(select(CsatRating).where(CsatRating.ticket_id == ticket_id))
        kinds = (
            await s.scalars(
                select(TicketEvent.kind).where(
                    TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "csat"
                )
            )
        ).all()
    assert again is not None and again.score == 1
    assert list(kinds) == ["csat"]
