"""One contract, every adapter: samples parse, forgeries are refused, cards round-trip."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.adapters.codec import ActionToken
from bot.events import Button, Card
from bot.tickets import TicketAction
from storage.models import InboundEvent
from tests.adapters.driver import Driver, Request
from tests.adapters.webchat_driver import WebchatDriver
from tests.conftest import RunningHub

Start = Callable[..., Awaitable[RunningHub]]


def _drivers() -> dict[str, type[Any]]:
    found: dict[str, type[Any]] = {"web": WebchatDriver}
    try:
        from tests.adapters.slack_driver import SlackDriver

        found["slack"] = SlackDriver
    except ImportError:  # pragma: no cover - while the adapter is being built
        pass
    try:
        from tests.adapters.telegram_driver import TelegramDriver

        found["telegram"] = TelegramDriver
    except ImportError:  # pragma: no cover
        pass
    try:
        from tests.adapters.dingtalk_driver import DingtalkDriver

        found["dingtalk"] = DingtalkDriver
    except ImportError:  # pragma: no cover
        pass
    try:
        from tests.adapters.wecom_driver import WecomDriver

        found["wecom"] = WecomDriver
    except ImportError:  # pragma: no cover
        pass
    return found


DRIVERS = _drivers()


@pytest.fixture(params=sorted(DRIVERS))
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


async def _stored(hub: RunningHub) -> list[InboundEvent]:
    async with hub.hub.db.read() as s:
        from sqlalchemy import select

        return list((await s.scalars(select(InboundEvent).order_by(InboundEvent.id))).all())


def _without_time(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != "received_at"}


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_samples_parse_to_their_events(setup: tuple[Driver, RunningHub]) -> None:
    driver, hub = setup
    for sample in driver.samples():
        before = len(await _stored(hub))
        status = await _send(hub, sample.request)
        assert status < 300, f"{sample.name}: HTTP {status}"
        stored = (await _stored(hub))[before:]
        got = [_without_time(e.payload) for e in stored]
        assert got == sample.expected, sample.name


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_forged_requests_are_refused_and_nothing_is_stored(
    setup: tuple[Driver, RunningHub],
) -> None:
    driver, hub = setup
    for req in driver.forged():
        assert await _send(hub, req) in (401, 403), req.path
    assert await _stored(hub) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_unknown_events_are_ignored(
    setup: tuple[Driver, RunningHub], caplog: pytest.LogCaptureFixture
) -> None:
    driver, hub = setup
    with caplog.at_level(logging.DEBUG):
        status = await _send(hub, driver.unknown())
    assert status < 500
    assert await _stored(hub) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_rendered_buttons_come_back_as_the_same_action(
    setup: tuple[Driver, RunningHub],
) -> None:
    driver, hub = setup
    codec = hub.hub.codec
    tokens = [
        codec.encode(ActionToken(7, a, 3)) for a in (TicketAction.ACCEPT, TicketAction.CANCEL)
    ]
    card = Card(
        ticket_id=7,
        version=3,
        title="GD-7 · P1 · 注塑机停机",
        fields=(("状态", "已派单"),),
        buttons=(
            Button("接单", tokens[0], "primary", action="accept"),
            Button("取消工单", tokens[1], "danger", "确定要取消工单吗？", action="cancel"),
        ),
    )
    rendered = driver.render(card)
    for i, token in enumerate(tokens):
        assert await _send(hub, driver.click(rendered, i)) < 300
        event = (await _stored(hub))[-1]
        assert event.kind == "action" and event.payload["token"] == token
        assert (
            codec.decode(event.payload["token"]).action
            == [TicketAction.ACCEPT, TicketAction.CANCEL][i]
        )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_media_download_works_against_the_fake_api(
    setup: tuple[Driver, RunningHub],
) -> None:
    driver, hub = setup
    try:
        ref, expected = await driver.media()
    except NotImplementedError:
        pytest.skip(f"{driver.platform} carries no media")
    assert await hub.hub.adapters[driver.platform].download(ref) == expected


async def _ticket_row(hub: RunningHub, ticket_id: int) -> Any:
    from storage.models import Ticket

    async with hub.hub.db.read() as s:
        return await s.get(Ticket, ticket_id, populate_existing=True)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_impact_buttons_set_the_priority_on_every_platform(
    setup: tuple[Driver, RunningHub],
) -> None:
    """The reporter's one-tap impact, rendered and pressed on each platform: a stranger's press
    changes nothing; the reporter's sets the priority from the impact table."""
    from sqlalchemy import select, update

    from bot.tickets import IntakeAction
    from storage import repo
    from storage.models import Identity, Ticket, TicketEvent, utcnow

    driver, hub = setup
    async with hub.hub.db.transaction() as s:
        someone = await repo.identify(s, "web", "c-impact", "张三")
        now = utcnow()
        ticket = await repo.create_ticket(
            s,
            title="灌装机异响",
            description="灌装机异响",
            priority="P2",
            category="equipment_failure",
            state="new",
            reporter_id=someone.id,
            origin_chat="web:c-impact",
            intake={"impact": "asked", "urgent": False},
            created_at=now,
            updated_at=now,
        )
        ticket_id, version = ticket.id, ticket.version
    codec = hub.hub.codec
    labels = ["全线/整机停产", "部分受影响", "不影响生产", "有安全隐患"]
    card = Card(
        ticket_id=ticket_id,
        version=version,
        title=f"GD-{ticket_id} · P2 · 灌装机异响",
        buttons=tuple(
            Button(
                label,
                codec.encode(ActionToken(ticket_id, IntakeAction.IMPACT, version, i)),
                action="impact",
            )
            for i, label in enumerate(labels)
        ),
    )
    rendered = driver.render(card)

    assert await _send(hub, driver.click(rendered, 1)) < 300  # not the reporter
    await hub.hub.idle()
    row = await _ticket_row(hub, ticket_id)
    assert (row.priority, row.intake) == ("P2", {"impact": "asked", "urgent": False})

    sender = (await _stored(hub))[-1].payload["sender"]
    async with hub.hub.db.transaction() as s:
        presser = await s.scalar(
            select(Identity.person_id).where(
                Identity.platform == sender["platform"], Identity.external_id == sender["user_id"]
            )
        )
        assert presser is not None
        await s.execute(update(Ticket).where(Ticket.id == ticket_id).values(reporter_id=presser))
    assert await _send(hub, driver.click(rendered, 0)) < 300  # 全线/整机停产
    await hub.hub.idle()
    row = await _ticket_row(hub, ticket_id)
    assert (row.priority, row.intake["impact"]) == ("P0", "stopped")
    async with hub.hub.db.read() as s:
        kinds = (
            await s.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket_id))
        ).all()
    assert "refused" in kinds and "impact" in kinds and "priority" in kinds
