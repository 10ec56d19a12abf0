"""A voice note reaches the voice flow with its audio bytes (here from Telegram)."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.adapters.telegram_driver import webhook
from tests.adapters.test_telegram import (
    CUSTOMER,
    CUSTOMER_GROUP,
    LI,
    LI_CHAT,
    REPORT,
    enabled,
    says,
)
from tests.conftest import RunningHub, eventually
from tests.fakes_telegram import FakeBotApi

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
_ids = itertools.count(990000001)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    await fake.start()
    yield fake
    await fake.stop()


def voice_note(user: dict[str, Any], chat: dict[str, Any], file_id: str) -> dict[str, Any]:
    update_id = next(_ids)
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id % 100000,
            "from": user,
            "chat": chat,
            "date": int(time.time()),
            "voice": {
                "file_id": file_id,
                "file_unique_id": file_id + "-u",
                "duration": 9,
                "mime_type": "audio/ogg",
                "file_size": 12_345,
            },
        },
    }


async def deliver(hub: RunningHub, update: dict[str, Any]) -> None:
    req = webhook(update)
    async with hub.http.post(hub.base + req.path, data=req.body, headers=req.headers) as r:
        assert r.status == 200


async def reply_to(api: FakeBotApi, chat_id: int, needle: str) -> str:
    async def found() -> str | None:
        for call in api.to("sendMessage", chat_id):
            if needle in str(call.params.get("text", "")):
                return str(call.params["text"])
        return None

    return str(await eventually(found, what=f"a reply containing {needle!r}"))


async def test_an_engineers_voice_note_is_downloaded_and_recorded_on_his_ticket(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, REPORT))

    async def ticket() -> dict[str, Any] | None:
        tickets = (await hub.api("/api/tickets"))["tickets"]
        return tickets[0] if tickets and tickets[0]["assignee"] else None

    number = (await eventually(ticket, what="an assigned ticket"))["number"]
    audio = b"OggS" + bytes(12_341)
    api.add_file("voice-1", audio)
    await deliver(hub, voice_note(LI, LI_CHAT, "voice-1"))

    text = await reply_to(api, LI_CHAT["id"], "KB")
    assert "12 KB" in text and number in text
    events = (await hub.api(f"/api/tickets/{number}"))["events"]
    (note,) = [e for e in events if e["kind"] == "voice_note"]
    assert (note["via"], note["data"]["bytes"], note["data"]["duration_s"]) == (
        "voice",
        len(audio),
        9,
    )


async def test_a_voice_note_over_the_size_limit_gets_a_clear_reply(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    api.add_file("huge", b"OggS", reported_size=30_000_000)
    await deliver(hub, voice_note(LI, LI_CHAT, "huge"))
    assert "太大" in await reply_to(api, LI_CHAT["id"], "太")
