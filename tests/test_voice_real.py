"""Real speech, the real model: a Telegram voice (Ogg/Opus) and a WeCom voice (AMR-NB 8 kHz)
from the fake platform APIs reach a diagnosis card. Whisper base from the packaged copy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from storage import repo
from tests.adapters.test_telegram import LI, LI_CHAT
from tests.adapters.test_telegram import enabled as telegram_enabled
from tests.adapters.test_wecom import _msg_ids, app_callback, post, voice_message
from tests.adapters.test_wecom import enabled as wecom_enabled
from tests.conftest import RunningHub, eventually
from tests.fakes_telegram import FakeBotApi
from tests.fakes_wecom import FakeWecomApi
from tests.test_voice_flow import deliver, voice_note

Start = Callable[..., Awaitable[RunningHub]]
AUDIO = Path(__file__).parent / "fixtures" / "audio"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]
REAL_ASR = {"asr": {"enabled": True, "model": "packaged"}}


async def ticket_for_li(hub: RunningHub) -> str:
    """Set-up: li already holds an open, on-site ticket for the compressor."""
    async with hub.hub.db.transaction() as s:
        customer = await repo.identify(s, "web", "c-1", "张三")
        li = await repo.person_by_key(s, "li")
        assert li is not None
        t = await repo.create_ticket(
            s,
            title="3号空压机停机",
            description="3号空压机停机",
            priority="P1",
            category="equipment_failure",
            state="on_site",
            reporter_id=customer.id,
            assignee_id=li.id,
            origin_chat="web:c-1",
        )
        return str(t.number)


@pytest.fixture
async def telegram() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def wecom() -> AsyncIterator[FakeWecomApi]:
    fake = FakeWecomApi()
    await fake.start()
    yield fake
    await fake.stop()


async def test_a_telegram_ogg_voice_note_reaches_a_diagnosis_card(
    telegram: FakeBotApi, running: Start
) -> None:
    hub = await running(**telegram_enabled(telegram), **REAL_ASR)
    number = await ticket_for_li(hub)
    telegram.add_file("field01", (AUDIO / "field01.ogg").read_bytes())
    await deliver(hub, voice_note(LI, LI_CHAT, "field01"))

    async def card() -> dict[str, Any] | None:
        for call in telegram.to("sendMessage", LI_CHAT["id"]):
            if "语音诊断" in str(call.params.get("text")):
                return call.params
        return None

    shown = await eventually(card, within=180, what="the diagnosis card")
    assert number in shown["text"] and "风扇电机" in shown["text"] and "空压机" in shown["text"]
    assert shown["reply_markup"]["inline_keyboard"]  # [确认] [确认并待备件] [重录]


async def test_a_wecom_amr_voice_note_reaches_a_diagnosis_card(
    wecom: FakeWecomApi, running: Start
) -> None:
    hub = await running(**wecom_enabled(wecom), **REAL_ASR)
    number = await ticket_for_li(hub)
    wecom.media["field01"] = (AUDIO / "field01.amr").read_bytes()
    voice = app_callback(voice_message("LiGong", "field01", next(_msg_ids)))
    assert (await post(hub, voice))[0] == 200

    async def card() -> str | None:
        for call in wecom.sent_cards("LiGong"):
            text = json.dumps(call.body, ensure_ascii=False)
            if "语音诊断" in text:
                return text
        return None

    shown = await eventually(card, within=180, what="the diagnosis card")
    assert number in shown and "风扇电机" in shown and "button_list" in shown
