"""A staff member types "登录" to the bot on a chat platform: the one-time link comes back to
their own direct chat (the identity the platform vouches for), never into a group."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.adapters.test_telegram import CUSTOMER, LI, LI_CHAT, TEAM, deliver, enabled, says
from tests.conftest import RunningHub, eventually
from tests.fakes_telegram import FakeBotApi

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    await fake.start()
    yield fake
    await fake.stop()


def _texts(api: FakeBotApi, chat: int) -> list[str]:
    return [str(c.params.get("text", "")) for c in api.to("sendMessage", chat)]


async def test_login_in_a_telegram_direct_chat_sends_a_working_link(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    assert await deliver(hub, says(LI, TEAM, "/login")) == 200  # in the team group: no link

    async def told_in_group() -> bool:
        return any("私聊" in t for t in _texts(api, TEAM["id"]))

    await eventually(told_in_group, what="the ask-in-private answer")
    assert not any("#login=" in t for t in _texts(api, TEAM["id"]))

    assert await deliver(hub, says(LI, LI_CHAT, "登录")) == 200

    async def link() -> str | None:
        return next((t for t in _texts(api, LI["id"]) if "#login=" in t), None)

    text = await eventually(link, what="the link in li's direct chat")
    token = text.partition("#login=")[2].split()[0]
    async with hub.http.post(hub.base + "/console/api/sign-in", json={"link": token}) as r:
        assert r.status == 200
        assert (await r.json())["person"] == "li"


async def test_a_customer_typing_login_on_telegram_gets_no_link(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    chat = {"id": CUSTOMER["id"], "first_name": "San", "type": "private"}
    assert await deliver(hub, says(CUSTOMER, chat, "登录")) == 200
    await hub.hub.idle()
    assert not any("#login=" in t for t in _texts(api, CUSTOMER["id"]))
