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
