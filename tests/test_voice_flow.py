"""Voice notes end to end (Telegram): transcript → diagnosis card → one tap → ticket moves on.

The transcriber here is a stand-in that returns a known transcript, so these tests are about
the flow; the real Whisper path is tested in ``tests/nlp`` with real speech.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from bot import lifecycle
from bot.hearing import Ears
from bot.tickets import NoteAction, TicketAction
from bot.unit import Turn
from storage.assets import AssetEntry
from storage.parts import PartEntry
from tests.adapters.telegram_driver import webhook
from tests.adapters.test_telegram import (
    CUSTOMER,
    CUSTOMER_GROUP,
    LI,
    LI_CHAT,
    REPORT,
    enabled,
    presses,
    says,
)
from tests.conftest import RunningHub, eventually
from tests.fakes_telegram import FakeBotApi

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
_ids = itertools.count(990000001)
NOTE = "三号空压机停机，排气温度八十五度，怀疑冷却风扇坏了，已经换了保险丝，要订一个风扇电机"


@dataclass(frozen=True)
class _Transcript:
    text: str
    language: str = "zh"
    duration_s: float = 9.0
    raw_text: str = ""


class KnownWords:
    """Stands in for Whisper: 'hears' a fixed sentence and records what audio it was given."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.heard: list[bytes] = []
        self.terms: list[tuple[str, ...]] = []  # the correction terms each note came with

    async def transcribe(
        self, audio: bytes, *, language: str | None = None, terms: Sequence[str] = ()
    ) -> _Transcript:
        self.heard.append(audio)
        self.terms.append(tuple(terms))
        return _Transcript(self.text)


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


def hearing(hub: RunningHub, words: str) -> KnownWords:
    ears = KnownWords(words)
    hub.hub.engine.ears = Ears(hub.hub.adapters, ears, terms=hub.hub.voice_terms)
    return ears


async def sent_to(api: FakeBotApi, chat_id: int, needle: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        for call in api.to("sendMessage", chat_id):
            if needle in str(call.params.get("text", "")):
                return call.params
        return None

    return dict(await eventually(found, what=f"a message containing {needle!r}"))


async def assigned_ticket(hub: RunningHub, api: FakeBotApi) -> dict[str, Any]:
    await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, REPORT))

    async def ticket() -> dict[str, Any] | None:
        tickets = (await hub.api("/api/tickets"))["tickets"]
        return tickets[0] if tickets and tickets[0]["assignee"] else None

    return dict(await eventually(ticket, what="an assigned ticket"))


async def move_to(hub: RunningHub, ticket_id: int, *actions: TicketAction) -> None:
    """Test set-up: walk the ticket through the state table as its engineer's presses would."""
    async with hub.hub.work.unit() as tx:
        ticket = await tx.unit.ticket(ticket_id)
        assert ticket is not None
        engineer = await tx.unit.person(ticket.assignee_id)
        for action in actions:
            turn = Turn(tx.unit, f"set-up:{ticket_id}:{action}", engineer)
            await lifecycle.apply(turn, ticket, action, engineer, via="button")


def buttons(hub: RunningHub, message: dict[str, Any]) -> dict[Any, str]:
    out = {}
    for row in message["reply_markup"]["inline_keyboard"]:
        for b in row:
            data = b["callback_data"].removeprefix("?")
            out[hub.hub.codec.decode(data).action] = b["callback_data"]
    return out


async def test_a_voice_note_becomes_a_confirmed_diagnosis_and_moves_the_ticket(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    words = hearing(hub, NOTE)
    ticket = await assigned_ticket(hub, api)
    await move_to(hub, ticket["id"], TicketAction.ACCEPT, TicketAction.DEPART, TicketAction.ARRIVE)
    audio = b"OggS" + bytes(4000)
    api.add_file("voice-1", audio)
    await deliver(hub, voice_note(LI, LI_CHAT, "voice-1"))

    await sent_to(api, LI_CHAT["id"], "正在转写")
    card = await sent_to(api, LI_CHAT["id"], "语音诊断")
    assert words.heard == [audio]  # the transcriber got the downloaded bytes
    for shown in ("3号空压机", "风扇电机×1", "85℃", "待备件"):
        assert shown in card["text"], shown
    choices = buttons(hub, card)
    assert set(choices) == {
        NoteAction.CONFIRM_DIAGNOSIS,
        TicketAction.NEED_PARTS,
        NoteAction.DISCARD_DIAGNOSIS,
    }

    press = presses(LI, LI_CHAT, 1, choices[TicketAction.NEED_PARTS], card["reply_markup"])
    await deliver(hub, press)

    async def waiting_parts() -> dict[str, Any] | None:
        t = await hub.api(f"/api/tickets/{ticket['id']}")
        return t if t["state"] == "waiting_parts" else None

    final = await eventually(waiting_parts, what="the ticket to wait for parts")
    assert final["diagnosis"]["parts_needed"] == [{"name": "风扇电机", "qty": 1}]
    assert final["diagnosis"]["transcript"] == NOTE
    kinds = [(e["kind"], e["via"], e["to"]) for e in final["events"]][-4:]
    assert kinds == [
        ("diagnosis", "voice", None),
        ("transition", "voice", "diagnosing"),
        ("transition", "button", "waiting_parts"),
        ("parts", "diagnosis", None),  # the parts come from the diagnosis: none asked
    ]
    eta = await sent_to(api, LI_CHAT["id"], "备件预计何时到货")  # the customer hears once known
    tomorrow = next(b for row in eta["reply_markup"]["inline_keyboard"] for b in row
                    if b["text"] == "明天")  # fmt: skip
    await deliver(hub, presses(LI, LI_CHAT, 2, tomorrow["callback_data"], eta["reply_markup"]))
    await sent_to(api, CUSTOMER_GROUP["id"], "正在等待备件：风扇电机 ×1，预计")

    again = presses(LI, LI_CHAT, 1, choices[NoteAction.CONFIRM_DIAGNOSIS], None)
    await deliver(hub, again)

    async def toast() -> str | None:
        qid = again["callback_query"]["id"]
        calls = [c for c in api.to("answerCallbackQuery") if c.params["callback_query_id"] == qid]
        return str(calls[0].params.get("text")) if calls else None

    assert "已经处理过" in await eventually(toast, what="the second press's toast")


async def test_a_note_is_heard_with_the_hubs_own_asset_and_part_names(
    api: FakeBotApi, running: Start
) -> None:
    """The deployment's names are the corrector's surest targets (bot/nlp/correct.py): each
    note is transcribed with the registered assets' and the catalog's names, current ones."""
    hub = await running(**enabled(api))
    words = hearing(hub, NOTE)
    env = hub.hub.env
    env.assets.load([AssetEntry(1, "AC-03", "3号空压机", aliases=("螺杆空压机",))], (1, "a"))
    env.parts.load([PartEntry("P-1", "SKF 6205 轴承", aliases=("深沟球轴承",))], (1, "p"))
    ticket = await assigned_ticket(hub, api)
    await move_to(hub, ticket["id"], TicketAction.ACCEPT, TicketAction.DEPART, TicketAction.ARRIVE)
    api.add_file("voice-1", b"OggS" + bytes(4000))
    await deliver(hub, voice_note(LI, LI_CHAT, "voice-1"))
    await sent_to(api, LI_CHAT["id"], "语音诊断")
    assert set(words.terms[0]) == {"号空压机", "螺杆空压机", "轴承", "深沟球轴承"}

    env.parts.load([PartEntry("P-2", "油分芯")], (2, "p"))  # a new catalog import
    api.add_file("voice-2", b"OggS" + bytes(4001))
    await deliver(hub, voice_note(LI, LI_CHAT, "voice-2"))

    async def heard_twice() -> bool:
        return len(words.terms) == 2

    await eventually(heard_twice, what="the second note heard")
    assert "油分芯" in words.terms[1] and "轴承" not in words.terms[1]


async def test_a_customers_voice_note_is_their_report(api: FakeBotApi, running: Start) -> None:
    hub = await running(**enabled(api))
    hearing(hub, "二车间的三号注塑机停机了，报警E102")
    api.add_file("voice-c", b"OggS" + bytes(2000))
    await deliver(hub, voice_note(CUSTOMER, CUSTOMER_GROUP, "voice-c"))
    ack = await sent_to(api, CUSTOMER_GROUP["id"], "工单号")
    (ticket,) = (await hub.api("/api/tickets"))["tickets"]
    assert ticket["number"] in ack["text"]
    assert (ticket["device_code"], ticket["alarm_code"]) == ("3号注塑机", "E102")
    created = (await hub.api(f"/api/tickets/{ticket['id']}"))["events"][0]
    assert (created["kind"], created["via"]) == ("created", "voice")


async def test_with_two_open_tickets_the_card_asks_which_one(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    hearing(hub, NOTE)
    first = await assigned_ticket(hub, api)
    await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, "2号冷水机漏水"))

    async def two() -> bool:
        tickets = (await hub.api("/api/tickets"))["tickets"]
        return len(tickets) == 2 and all(t["assignee"] for t in tickets)

    await eventually(two, what="two assigned tickets")
    api.add_file("voice-2", b"OggS" + bytes(3000))
    await deliver(hub, voice_note(LI, LI_CHAT, "voice-2"))
    card = await sent_to(api, LI_CHAT["id"], "语音诊断")
    labels = [b["text"] for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert any(first["number"] in label for label in labels)
    assert sum("→" in label for label in labels) == 2


async def test_a_voice_note_over_the_size_limit_gets_a_clear_reply(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    hearing(hub, NOTE)
    api.add_file("huge", b"OggS", reported_size=30_000_000)
    await deliver(hub, voice_note(LI, LI_CHAT, "huge"))
    assert "太大" in (await sent_to(api, LI_CHAT["id"], "太大"))["text"]
