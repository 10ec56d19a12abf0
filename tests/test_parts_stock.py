"""待备件 with the parts catalog (no database): staff and the stores chat see each part's
catalog code and stock per store — "无库存" plainly, "库存不足" when short, "目录中无此备件" for a
part the catalog lacks — the customer never does, and the stores chat hears each request once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot.cards import build
from bot.cards.voice import build_voice_card
from bot.env import Env
from bot.events import Address, Sender, Voice
from bot.flows.voice import Heard, handle_voice
from bot.parts_catalog import PartsCatalog
from bot.tickets import PartsAction, TicketAction
from bot.unit import Turn, Unit
from storage.parts import PartEntry
from storage.records import VoiceNote
from tests.test_parts import Desk, _env, cards, eta_buttons, field, texts
from tests.test_units import LI, ZHAO

CATALOG = PartsCatalog(
    [
        PartEntry("BRG-6205", "深沟球轴承 6205", (), "个", (("总仓", 5.0), ("二仓", 0.0))),
        PartEntry("SEAL-50", "密封圈", ("油封",), "套", (("总仓", 0.0),)),
        PartEntry("BLT-M8x20", "六角螺栓 M8×20", (), None, (("总仓", 6.0), ("二仓", 2.5))),
    ]
)
DIAGNOSIS = {
    "symptom": "异响",
    "parts_needed": [{"name": "轴承 6205", "qty": 2}, {"name": "油封", "qty": 3}],
}
BEARING = "轴承 6205 ×2 · BRG-6205 · 总仓 5 / 二仓 0"
SEAL = "油封 ×3 · SEAL-50 · 无库存"


def _catalog_env(tmp_path: Path, **parts: object) -> Env:
    return replace(_env(tmp_path, **parts), parts=CATALOG)


def stores(desk: Desk) -> list[str]:
    return [o.message.text for o in desk.everything() if o.destination.ref == "web:stores"]


async def test_the_stores_chat_and_staff_see_codes_and_stock_and_the_customer_does_not(
    tmp_path: Path,
) -> None:
    desk = Desk(_catalog_env(tmp_path), diagnosis=DIAGNOSIS)
    unit = await desk.press(TicketAction.NEED_PARTS)
    (request,) = texts(unit, "web:stores")
    assert f"· {BEARING}\n· {SEAL}\n" in request
    (staff_card,) = cards(unit, "web:li", "update")
    assert field(staff_card, "备件") == f"{BEARING}；{SEAL}，到货时间待定"
    (question,) = cards(unit, "web:li")  # the ETA question: the stock helps to answer it
    assert question.text is not None and BEARING in question.text
    (customer_card,) = cards(unit, "web:c-1", "update")
    assert field(customer_card, "备件") == "轴承 6205 ×2、油封 ×3，到货时间待定"
    three = eta_buttons(question, desk.env.codec)["3天内"]
    unit = await desk.press(PartsAction.ETA, version=three.version, arg=three.arg)
    (told,) = texts(unit, "web:c-1")
    assert "BRG" not in told and "总仓" not in told and "库存" not in told
    assert len(stores(desk)) == 1  # an ETA changes nothing at the stores

    # In English, for an English-speaking member of staff.
    draw = Unit(desk.env, desk.reads, desk.now)
    ticket = await draw.ticket(7)
    assert ticket is not None
    en = await build(Turn(draw, "draw", LI), ticket, "staff", "en")
    assert field(en, "Parts") == (
        "轴承 6205 ×2 · BRG-6205 · 总仓 5 / 二仓 0; 油封 ×3 · SEAL-50 · out of stock, "
        "expected 5 Dec"
    )


async def test_typed_parts_show_shortage_unknown_parts_and_fractional_stock(
    tmp_path: Path,
) -> None:
    desk = Desk(_catalog_env(tmp_path))
    await desk.press(TicketAction.NEED_PARTS)
    assert stores(desk) == []  # nothing to request before the engineer says which
    unit = await desk.types("轴承 6205 ×9、风扇 ×1、螺栓 M8x20 ×2")
    (request,) = texts(unit, "web:stores")
    assert "· 轴承 6205 ×9 · BRG-6205 · 总仓 5 / 二仓 0（库存不足）" in request
    assert "· 风扇 ×1 · 目录中无此备件" in request
    assert "· 螺栓 M8x20 ×2 · BLT-M8x20 · 总仓 6 / 二仓 2.5" in request


async def test_each_entry_into_waiting_for_parts_tells_the_stores_exactly_once(
    tmp_path: Path,
) -> None:
    desk = Desk(_catalog_env(tmp_path), diagnosis=DIAGNOSIS)
    await desk.press(TicketAction.NEED_PARTS)
    await desk.press(TicketAction.PARTS_ARRIVED, by=ZHAO)
    assert len(stores(desk)) == 2  # the request, then "arrived"
    await desk.press(TicketAction.NEED_PARTS)  # again: the diagnosis was fetched, so asked
    await desk.types("螺栓 M8x20 ×4")
    await desk.types("明天")
    sent = [o for o in desk.everything() if o.destination.ref == "web:stores"]
    requests = [o for o in sent if o.key.endswith(":request")]
    assert [o.key for o in requests] == ["parts:7:1:request", "parts:7:2:request"]
    second = requests[1].message.text
    assert "螺栓 M8x20 ×4 · BLT-M8x20 · 总仓 6 / 二仓 2.5" in second and "BRG" not in second


async def test_without_a_catalog_nothing_about_stock_is_said(tmp_path: Path) -> None:
    desk = Desk(_env(tmp_path), diagnosis=DIAGNOSIS)
    unit = await desk.press(TicketAction.NEED_PARTS)
    (request,) = texts(unit, "web:stores")
    assert "· 轴承 6205 ×2\n· 油封 ×3\n" in request and "目录" not in request
    assert (
        field(cards(unit, "web:li", "update")[0], "备件") == "轴承 6205 ×2、油封 ×3，到货时间待定"
    )


async def test_a_catalog_code_the_diagnosis_chose_is_kept_and_shown(tmp_path: Path) -> None:
    diagnosis = {"parts_needed": [{"name": "那个圈", "qty": 1, "code": "SEAL-50"}]}
    desk = Desk(_catalog_env(tmp_path), diagnosis=diagnosis)
    unit = await desk.press(TicketAction.NEED_PARTS)
    assert desk.ticket.parts == [{"name": "那个圈", "qty": 1, "code": "SEAL-50"}]
    (request,) = texts(unit, "web:stores")
    assert "· 那个圈 ×1 · SEAL-50 · 无库存" in request  # no name match needed: the code says it


def test_the_voice_diagnosis_card_shows_the_stock_of_the_parts_it_heard(tmp_path: Path) -> None:
    env = _catalog_env(tmp_path)
    desk = Desk(env)
    note = VoiceNote(id=3, source_event="v1", person_id=LI.id, chat="web:li",
                     transcript="轴承坏了，要换两个6205轴承，油封三个", language="zh",
                     diagnosis=DIAGNOSIS, created_at=desk.now)  # fmt: skip
    unit = Unit(env, desk.reads, desk.now)
    card = build_voice_card(Turn(unit, "v1", LI), note, [desk.ticket], "zh")
    assert field(card, "需要备件") == f"{BEARING}；{SEAL}"
    plain = build_voice_card(Turn(Unit(_env(tmp_path), desk.reads, desk.now), "v1", LI), note,
                             [desk.ticket], "zh")  # fmt: skip
    assert field(plain, "需要备件") == "轴承 6205×2、油封×3"  # without a catalog, as before


async def test_a_voice_note_keeps_the_catalog_code_of_each_part_it_heard(tmp_path: Path) -> None:
    """What the reader heard is matched to the catalog once, when the note is made: the code
    travels with the diagnosis to the ticket, 待备件 and the stores chat."""
    desk = Desk(_catalog_env(tmp_path))
    unit = Unit(desk.env, desk.reads, desk.now)
    note = Voice(event_id="v1", chat=Address("web", LI.key), sender=Sender("web", LI.key, LI.name),
                 chat_type="direct", received_at=desk.now, media_ref="m1")  # fmt: skip
    heard = Heard("要换两个6205轴承，油封三个，还有一个皮带", diagnosis={
        "parts_needed": [{"name": "6205轴承", "qty": 2}, {"name": "油封", "qty": 3},
                         {"name": "皮带", "qty": 1}],
    })  # fmt: skip
    with unit.turn():
        await handle_voice(Turn(unit, "v1", LI, note), note, heard)
    (made,) = [unit.notes[i] for i in unit.new_notes]
    assert made.diagnosis["parts_needed"] == [
        # (the model number and what the part is: 深沟球轴承 6205 is a 轴承 6205)
        {"name": "6205轴承", "qty": 2, "code": "BRG-6205", "code_confidence": 0.92},
        {"name": "油封", "qty": 3, "code": "SEAL-50", "code_confidence": 1.0},  # an alias
        {"name": "皮带", "qty": 1},  # the catalog has no belt: no code, never a guess
    ]
