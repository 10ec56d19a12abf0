"""待备件 with substance, as flows decide it (no database): which parts (from the confirmed
diagnosis, or asked and read from what the engineer types), when they come, the stores chat
told once, the customer told in their words, and what parts-arrived tells them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.codec import ActionToken, TokenCodec
from bot.cards import build
from bot.config import load_settings
from bot.directory import Directory
from bot.env import Env, Staff
from bot.errors import ConfigError, InvalidTransition, NotAllowed, QuestionAnswered
from bot.events import Action, Address, Card, Message, Notice, Sender, Text
from bot.flows.actions import handle_action
from bot.flows.intake import handle_message
from bot.metrics import Metrics
from bot.nlp.parts import read_date, read_parts
from bot.sla.policy import Policies
from bot.tickets import PartsAction, Press, TicketAction
from bot.unit import Turn, Unit
from storage.records import CardRef, Person, Ticket
from tests.conftest import make_settings
from tests.test_units import CUSTOMER, LI, NOW, WANG, ZHAO, MemoryReads

# NOW is Wednesday 2 December 2026, 10:00 in Shanghai.
DIAGNOSIS = {
    "symptom": "异响",
    "suspected_cause": "轴承磨损",
    "parts_needed": [{"name": "轴承 6205", "qty": 2}],
}


# ---------------------------------------------------------------------------- the reader


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("轴承 6205 ×2", [("轴承 6205", 2)]),
        ("轴承 6205 x2", [("轴承 6205", 2)]),
        ("轴承6205×2", [("轴承6205", 2)]),
        ("轴承 6205", [("轴承 6205", 1)]),  # a model number is never a count
        ("2个轴承", [("轴承", 2)]),
        ("两个轴承", [("轴承", 2)]),
        ("三套密封圈", [("密封圈", 3)]),
        ("十二个螺丝", [("螺丝", 12)]),
        ("风扇电机一个", [("风扇电机", 1)]),
        ("接触器 LC1D25 2个", [("接触器 LC1D25", 2)]),
        ("需要：轴承 6205 两个", [("轴承 6205", 2)]),
        ("螺栓 M8x20 ×10", [("螺栓 M8x20", 10)]),  # an x after a digit is in the name
        ("轴承 6205 x2、密封圈 x3", [("轴承 6205", 2), ("密封圈", 3)]),
        ("轴承 ×2，密封圈 ×3；皮带 ×1", [("轴承", 2), ("密封圈", 3), ("皮带", 1)]),
        ("轴承 ×2 和 两个接触器", [("轴承", 2), ("接触器", 2)]),
        ("轴承×2跟三套密封圈", [("轴承", 2), ("密封圈", 3)]),
        ("轴承×2 跟 轴承 x1", [("轴承", 3)]),  # the same part twice: one line, the sum
        ("bearing 6205 x2 and 3 seals", [("bearing 6205", 2), ("seals", 3)]),
        ("2 bearings; seal kit x 1", [("bearings", 2), ("seal kit", 1)]),
        ("轴承 6205 ×2，明天到", [("轴承 6205", 2)]),  # the day is not a part
        ("轴承 ×2 密封圈 ×3", [("轴承", 2), ("密封圈", 3)]),  # no separator but a space
        ("轴承 两个 密封圈 三个", [("轴承", 2), ("密封圈", 3)]),
        ("2个 轴承", [("轴承", 2)]),
        ("2×轴承", [("轴承", 2)]),
        ("还需要更换轴承 6205 ×2", [("轴承 6205", 2)]),
        ("螺栓 M8x20 ×10 垫片 x10", [("螺栓 M8x20", 10), ("垫片", 10)]),
        ("", []),
        ("123", []),
    ],
)
def test_parts_are_read_in_the_ways_engineers_write_them(
    text: str, parts: list[tuple[str, int]]
) -> None:
    assert [(p.name, p.qty) for p in read_parts(text)] == parts


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("今天", date(2026, 12, 2)),
        ("明天到", date(2026, 12, 3)),
        ("后天", date(2026, 12, 4)),
        ("3天内", date(2026, 12, 5)),
        ("一周内", date(2026, 12, 9)),
        ("12月8日", date(2026, 12, 8)),
        ("12月8号到货", date(2026, 12, 8)),
        ("12-08", date(2026, 12, 8)),
        ("12/8", date(2026, 12, 8)),
        ("2027-01-05", date(2027, 1, 5)),
        ("11月1日", date(2027, 11, 1)),  # past this year: next year's
        ("周五", date(2026, 12, 4)),
        ("下周一", date(2026, 12, 7)),
        ("8号", date(2026, 12, 8)),
        ("1号", date(2027, 1, 1)),  # past this month: next month's
        ("Friday", date(2026, 12, 4)),
        ("Dec 8", date(2026, 12, 8)),
        ("in 3 days", date(2026, 12, 5)),
        ("不知道", None),
    ],
)
def test_days_are_read_from_today(text: str, day: date | None) -> None:
    assert read_date(text, date(2026, 12, 2)) == day


def test_the_parts_settings_refuse_what_they_cannot_offer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad:
        load_settings(None, parts={"eta_choices": ["today", "soon"], "stores_chat": "stores"})
    message = str(bad.value)
    assert "parts.eta_choices" in message and "'soon'" in message
    assert "parts.stores_chat" in message


# ---------------------------------------------------------------------------- the flow


def _env(tmp_path: Path, **parts: Any) -> Env:
    settings = make_settings(
        tmp_path, "sqlite+aiosqlite:///unused.db", parts={"stores_chat": "web:stores", **parts}
    )
    staff = Staff(
        [LI, WANG, ZHAO],
        {("web", "li"): LI.id, ("web", "wang"): WANG.id, ("web", "zhao"): ZHAO.id},
    )
    return Env(
        settings=settings,
        codec=TokenCodec(b"secret"),
        directory=Directory(settings),
        metrics=Metrics(),
        platforms=frozenset({"web"}),
        staff=staff,
        policies=Policies(settings),
    )


class Desk:
    """A ticket being diagnosed by 李工, and the units that handle each event in turn (each
    unit's decisions are "written" back to the in-memory rows, as the store would)."""

    def __init__(self, env: Env, *, diagnosis: dict[str, Any] | None = None) -> None:
        self.env, self.reads, self.now = env, MemoryReads(), NOW
        self.reads.tickets_[7] = Ticket(
            id=7, number="GD-7", title="注塑机异响", description="3号注塑机异响",
            priority="P2", category="equipment_failure", state="diagnosing",
            reporter_id=CUSTOMER.id, origin_chat="web:c-1", site="二车间", device_code="IM-003",
            created_at=NOW - timedelta(hours=2), updated_at=NOW - timedelta(hours=1),
            assignee_id=LI.id, team_key="maint", version=6, diagnosis=diagnosis,
        )  # fmt: skip
        self.reads.refs_[7] = [
            CardRef(id=1, ticket_id=7, destination="web:c-1", audience="customer", locale="zh",
                    created_at=NOW, platform_message_id="k1"),
            CardRef(id=2, ticket_id=7, destination="web:li", audience="staff", locale="zh",
                    created_at=NOW, platform_message_id="k2"),
        ]  # fmt: skip
        self.units: list[Unit] = []
        self._n = 0

    @property
    def ticket(self) -> Ticket:
        return self.reads.tickets_[7]

    async def _run(self, person: Person, event: Action | Message) -> Unit:
        unit = Unit(self.env, self.reads, self.now)
        self._n += 1
        with unit.turn():
            turn = Turn(unit, f"e{self._n}", person, event)
            if isinstance(event, Action):
                await handle_action(turn, event)
            else:
                await handle_message(turn, event)
        self.reads.clocks_[7] = unit.clocks.get(7, [])
        self.units.append(unit)
        return unit

    async def press(
        self, action: Press, *, by: Person = LI, version: int | None = None, arg: int | None = None
    ) -> Unit:
        version = self.ticket.version if version is None else version
        token = self.env.codec.encode(ActionToken(7, action, version, arg))
        event = Action(event_id=f"a{self._n}", chat=Address("web", by.key),
                       sender=Sender("web", by.key, by.name), chat_type="direct",
                       received_at=self.now, token=token)  # fmt: skip
        return await self._run(by, event)

    async def types(self, text: str, *, by: Person = LI) -> Unit:
        event = Message(event_id=f"m{self._n}", chat=Address("web", by.key),
                        sender=Sender("web", by.key, by.name), chat_type="direct",
                        received_at=self.now, text=text)  # fmt: skip
        return await self._run(by, event)

    def everything(self) -> list[Any]:
        return [o for u in self.units for o in u.outgoing]


def texts(unit: Unit, where: str) -> list[str]:
    return [
        o.message.text
        for o in unit.outgoing
        if o.destination.ref == where and isinstance(o.message, Text | Notice)
    ]


def cards(unit: Unit, where: str, op: str = "send") -> list[Card]:
    return [
        o.message
        for o in unit.outgoing
        if o.destination.ref == where and isinstance(o.message, Card) and o.op == op
    ]


def eta_buttons(card: Card, codec: TokenCodec) -> dict[str, ActionToken]:
    return {b.label: codec.decode(b.token) for b in card.buttons}


def field(card: Card, name: str) -> str | None:
    return dict(card.fields).get(name)


async def test_a_confirmed_diagnosis_gives_the_parts_without_asking_and_the_eta_is_tapped(
    tmp_path: Path,
) -> None:
    desk = Desk(_env(tmp_path), diagnosis=DIAGNOSIS)
    unit = await desk.press(TicketAction.NEED_PARTS)
    ticket = desk.ticket
    assert ticket.state == "waiting_parts"
    assert ticket.parts == [{"name": "轴承 6205", "qty": 2}] and ticket.parts_eta is None
    assert [a.kind for a in unit.audit] == ["transition", "parts"]
    assert unit.audit[1].data == {"parts": ticket.parts, "round": 1}
    to_li = texts(unit, "web:li")
    assert not any("需要哪些备件" in t for t in to_li)  # not asked
    assert "GD-7 备件取自已确认的语音诊断：轴承 6205 ×2" in to_li
    (question,) = cards(unit, "web:li")
    assert question.title == "GD-7 备件预计何时到货？"
    choices = eta_buttons(question, desk.env.codec)
    assert list(choices) == ["今天", "明天", "3天内", "1周内", "待定"]
    assert {t.action for t in choices.values()} == {PartsAction.ETA}
    # The stores chat has the request; the customer hears nothing until the ETA is known.
    (stores,) = texts(unit, "web:stores")
    assert "GD-7" in stores and "轴承 6205 ×2" in stores and "二车间" in stores
    assert "IM-003" in stores and "李工" in stores
    assert texts(unit, "web:c-1") == []
    (staff_card,) = cards(unit, "web:li", "update")
    assert field(staff_card, "备件") == "轴承 6205 ×2，到货时间待定"

    unit = await desk.press(PartsAction.ETA, version=choices["3天内"].version,
                            arg=choices["3天内"].arg)  # fmt: skip
    eta = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai, 3 days on
    assert ticket.parts_eta == eta
    assert [(a.kind, a.data["eta"]) for a in unit.audit] == [("parts_eta", eta.isoformat())]
    assert texts(unit, "web:c-1") == ["【GD-7】正在等待备件：轴承 6205 ×2，预计 12月5日 到货。"]
    (customer_card,) = cards(unit, "web:c-1", "update")
    assert field(customer_card, "备件") == "轴承 6205 ×2，预计 12月5日 到货"
    assert texts(unit, "web:stores") == []  # told once, with the request


async def test_without_a_diagnosis_the_engineer_is_asked_and_the_answers_are_read(
    tmp_path: Path,
) -> None:
    desk = Desk(_env(tmp_path))
    unit = await desk.press(TicketAction.NEED_PARTS)
    ticket = desk.ticket
    assert ticket.state == "waiting_parts" and ticket.parts is None
    assert "GD-7 需要哪些备件？例如：轴承 6205 ×2" in texts(unit, "web:li")[0]
    assert texts(unit, "web:stores") == [] and cards(unit, "web:li") == []
    (customer_card,) = cards(unit, "web:c-1", "update")
    assert field(customer_card, "备件") == "正在确认所需备件"

    unit = await desk.types("轴承 6205 ×2、两个密封圈")
    assert ticket.parts == [{"name": "轴承 6205", "qty": 2}, {"name": "密封圈", "qty": 2}]
    assert [a.kind for a in unit.audit] == ["parts"] and unit.audit[0].via == "message"
    assert texts(unit, "web:li")[0] == "已记录 GD-7 的备件：轴承 6205 ×2、密封圈 ×2"
    (stores,) = texts(unit, "web:stores")
    assert "· 轴承 6205 ×2\n· 密封圈 ×2" in stores
    (question,) = cards(unit, "web:li")
    assert "备件预计何时到货" in question.title

    unit = await desk.types("下周一吧")  # not a day the reader misses
    assert ticket.parts_eta == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert texts(unit, "web:c-1") == [
        "【GD-7】正在等待备件：轴承 6205 ×2、密封圈 ×2，预计 12月7日 到货。"
    ]
    assert "已记录：GD-7 备件预计 12月7日 到货，已通知客户。" in texts(unit, "web:li")
    # The question is answered: the next message is an ordinary one again.
    unit = await desk.types("你好")
    assert ticket.parts_eta == datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert texts(unit, "web:c-1") == [] and unit.audit == []


async def test_parts_and_day_in_one_answer_and_a_bad_answer_is_asked_again(
    tmp_path: Path,
) -> None:
    desk = Desk(_env(tmp_path))
    await desk.press(TicketAction.NEED_PARTS)
    unit = await desk.types("？？")
    assert desk.ticket.parts is None
    assert texts(unit, "web:li") == ["没看出备件名称。请回复如：轴承 6205 ×2、密封圈 ×3"]
    unit = await desk.types("GD-7 轴承 x2，12月8日到")  # naming the ticket works too
    assert desk.ticket.parts == [{"name": "轴承", "qty": 2}]
    assert desk.ticket.parts_eta == datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    assert [a.kind for a in unit.audit] == ["parts", "parts_eta"]
    assert texts(unit, "web:c-1") == ["【GD-7】正在等待备件：轴承 ×2，预计 12月8日 到货。"]
    assert cards(unit, "web:li") == []  # no ETA question: it was answered already


async def test_the_stores_chat_hears_of_a_request_once_whatever_is_pressed_again(
    tmp_path: Path,
) -> None:
    desk = Desk(_env(tmp_path), diagnosis=DIAGNOSIS)
    unit = await desk.press(TicketAction.NEED_PARTS)
    choices = eta_buttons(cards(unit, "web:li")[0], desk.env.codec)
    with pytest.raises(InvalidTransition):  # a second 待备件: the ticket waits already
        await desk.press(TicketAction.NEED_PARTS)
    today, week = choices["今天"], choices["1周内"]
    await desk.press(PartsAction.ETA, version=today.version, arg=today.arg)
    with pytest.raises(QuestionAnswered):  # the same answer twice: the customer hears it once
        await desk.press(PartsAction.ETA, version=today.version, arg=today.arg)
    unit = await desk.press(PartsAction.ETA, version=week.version, arg=week.arg)  # changed
    assert texts(unit, "web:c-1") == ["【GD-7】正在等待备件：轴承 6205 ×2，预计 12月9日 到货。"]
    sent = [o for o in desk.everything() if o.destination.ref == "web:stores"]
    assert len(sent) == 1 and sent[0].key == "parts:7:1:request"  # the outbox's dedupe key
    # A retried event is the same turn: the same key, so the outbox keeps one row.
    again = Desk(_env(tmp_path), diagnosis=DIAGNOSIS)
    retried = await again.press(TicketAction.NEED_PARTS)
    assert [o.key for o in retried.outgoing if o.destination.ref == "web:stores"] == [
        "parts:7:1:request"
    ]


async def test_eta_buttons_refuse_customers_and_earlier_requests(tmp_path: Path) -> None:
    desk = Desk(_env(tmp_path), diagnosis=DIAGNOSIS)
    unit = await desk.press(TicketAction.NEED_PARTS)
    tomorrow = eta_buttons(cards(unit, "web:li")[0], desk.env.codec)["明天"]
    with pytest.raises(NotAllowed):
        await desk.press(PartsAction.ETA, by=CUSTOMER, version=tomorrow.version, arg=tomorrow.arg)
    with pytest.raises(QuestionAnswered):
        await desk.press(PartsAction.ETA, version=tomorrow.version - 1, arg=tomorrow.arg)
    assert desk.ticket.parts_eta is None
    await desk.press(PartsAction.ETA, by=ZHAO, version=tomorrow.version, arg=tomorrow.arg)
    assert desk.ticket.parts_eta == datetime(2026, 12, 3, 10, 0, tzinfo=UTC)  # a manager may


async def test_the_customer_is_told_in_english_and_without_a_date_when_none_is_known(
    tmp_path: Path,
) -> None:
    desk = Desk(_env(tmp_path), diagnosis=DIAGNOSIS)
    desk.reads.people_[CUSTOMER.id] = replace(CUSTOMER, locale="en")
    unit = await desk.press(TicketAction.NEED_PARTS)
    unknown = eta_buttons(cards(unit, "web:li")[0], desk.env.codec)["待定"]
    unit = await desk.press(PartsAction.ETA, version=unknown.version, arg=unknown.arg)
    assert desk.ticket.parts_eta is None
    assert texts(unit, "web:c-1") == [
        "[GD-7] We are waiting for parts: 轴承 6205 ×2. We will tell you when they are expected."
    ]
    unit = await desk.types("12-08")  # a date once known: asked again by tapping, or typed
    assert texts(unit, "web:c-1") == []  # (the question was answered: typing is a message)
    three = eta_buttons(cards(desk.units[0], "web:li")[0], desk.env.codec)["3天内"]
    unit = await desk.press(PartsAction.ETA, version=three.version, arg=three.arg)
    assert texts(unit, "web:c-1") == [
        "[GD-7] We are waiting for parts: 轴承 6205 ×2, expected 5 Dec."
    ]


async def test_the_customers_card_shows_the_parts_not_the_internal_stay_clock(
    tmp_path: Path,
) -> None:
    desk = Desk(_env(tmp_path), diagnosis=DIAGNOSIS)
    unit = await desk.press(TicketAction.NEED_PARTS)
    assert any(c.kind == "stay" for c in unit.clocks[7])  # the 48 h limit runs for staff
    customer = cards(unit, "web:c-1", "update")[0]
    staff = cards(unit, "web:li", "update")[0]
    shown = " ".join(v for _, v in customer.fields)
    assert "停留" not in shown and "待备件」" not in shown
    assert "停留「待备件」" in (field(staff, "时限") or "")


async def test_parts_arrived_tells_the_stores_and_the_customer_the_repair_time(
    tmp_path: Path,
) -> None:
    desk = Desk(_env(tmp_path), diagnosis=DIAGNOSIS)
    unit = await desk.press(TicketAction.NEED_PARTS)
    tomorrow = eta_buttons(cards(unit, "web:li")[0], desk.env.codec)["明天"]
    await desk.press(PartsAction.ETA, version=tomorrow.version, arg=tomorrow.arg)
    desk.now = NOW + timedelta(days=1)  # Thursday 10:00
    unit = await desk.press(TicketAction.PARTS_ARRIVED, by=ZHAO)
    ticket = desk.ticket
    assert ticket.state == "repairing"
    assert ticket.parts == [{"name": "轴承 6205", "qty": 2}]  # kept: what was fetched
    assert ticket.parts_eta is None  # nothing is awaited any more
    arrived = next(a for a in unit.audit if a.kind == "parts_arrived")
    assert arrived.data["eta_was"] == "2026-12-03T10:00:00+00:00"  # the ETA, as history
    (stores,) = texts(unit, "web:stores")
    assert stores == "✅ GD-7 备件已到，申请已完成：轴承 6205 ×2（赵经理 确认）"
    assert texts(unit, "web:c-1") == []  # when the repair comes is asked first
    (question,) = cards(unit, "web:zhao")
    visits = eta_buttons(question, desk.env.codec)
    assert list(visits) == ["4小时内", "今天", "明天"]
    unit = await desk.press(PartsAction.VISIT, by=ZHAO, version=visits["4小时内"].version,
                            arg=visits["4小时内"].arg)  # fmt: skip
    assert texts(unit, "web:c-1") == ["【GD-7】备件已到货，工程师预计 12月3日 14:00 前为您维修。"]
    (customer_card,) = cards(unit, "web:c-1", "update")
    assert field(customer_card, "预计维修") == "12月3日 14:00 前"
    assert field(customer_card, "备件") is None
    staff_card = cards(unit, "web:li", "update")[0]
    assert field(staff_card, "备件") == "轴承 6205 ×2（已到货）"
    with pytest.raises(QuestionAnswered):  # answered: a second tap changes nothing
        await desk.press(PartsAction.VISIT, by=ZHAO, version=visits["今天"].version,
                         arg=visits["今天"].arg)  # fmt: skip


async def test_a_default_visit_time_tells_the_customer_at_once(tmp_path: Path) -> None:
    desk = Desk(_env(tmp_path, visit_default="1d"), diagnosis=DIAGNOSIS)
    unit = await desk.press(TicketAction.NEED_PARTS)
    tomorrow = eta_buttons(cards(unit, "web:li")[0], desk.env.codec)["明天"]
    await desk.press(PartsAction.ETA, version=tomorrow.version, arg=tomorrow.arg)
    unit = await desk.press(TicketAction.PARTS_ARRIVED)
    assert texts(unit, "web:c-1") == ["【GD-7】备件已到货，工程师预计 12月3日 前为您维修。"]
    assert cards(unit, "web:li") == []  # nothing asked


async def test_a_second_request_does_not_reuse_the_diagnosis_already_fetched(
    tmp_path: Path,
) -> None:
    desk = Desk(_env(tmp_path), diagnosis=DIAGNOSIS)
    unit = await desk.press(TicketAction.NEED_PARTS)
    today = eta_buttons(cards(unit, "web:li")[0], desk.env.codec)["今天"]
    await desk.press(PartsAction.ETA, version=today.version, arg=today.arg)
    await desk.press(TicketAction.PARTS_ARRIVED)
    unit = await desk.press(TicketAction.NEED_PARTS)  # something else is missing now
    assert desk.ticket.parts is None
    assert "GD-7 需要哪些备件？" in texts(unit, "web:li")[0]
    unit = await desk.types("皮带 ×1")
    (stores,) = texts(unit, "web:stores")
    assert "皮带 ×1" in stores
    assert [o.key for o in unit.outgoing if o.destination.ref == "web:stores"] == [
        "parts:7:2:request"
    ]


async def test_the_card_is_drawn_with_the_parts_for_every_audience(tmp_path: Path) -> None:
    desk = Desk(_env(tmp_path), diagnosis=DIAGNOSIS)
    unit = await desk.press(TicketAction.NEED_PARTS)
    three = eta_buttons(cards(unit, "web:li")[0], desk.env.codec)["3天内"]
    await desk.press(PartsAction.ETA, version=three.version, arg=three.arg)
    unit = Unit(desk.env, desk.reads, desk.now)
    ticket = await unit.ticket(7)
    assert ticket is not None
    turn = Turn(unit, "draw", LI)
    en = await build(turn, ticket, "customer", "en")
    assert field(en, "Parts") == "轴承 6205 ×2, expected 5 Dec"


async def test_cancelling_while_waiting_withdraws_the_request_at_the_stores(
    tmp_path: Path,
) -> None:
    desk = Desk(_env(tmp_path), diagnosis=DIAGNOSIS)
    await desk.press(TicketAction.NEED_PARTS)
    unit = await desk.press(TicketAction.CANCEL, by=ZHAO)
    assert desk.ticket.state == "cancelled" and desk.ticket.parts_eta is None
    assert texts(unit, "web:stores") == ["❌ GD-7 已取消，备件申请撤销：轴承 6205 ×2（赵经理）"]
    assert [o.key for o in unit.outgoing if o.destination.ref == "web:stores"] == [
        "parts:7:1:withdrawn"
    ]
    assert [a.kind for a in unit.audit] == ["transition", "parts_withdrawn"]
    # A ticket that never waited for parts is cancelled without a word to the stores.
    other = Desk(_env(tmp_path))
    unit = await other.press(TicketAction.CANCEL, by=ZHAO)
    assert texts(unit, "web:stores") == [] and [a.kind for a in unit.audit] == ["transition"]
