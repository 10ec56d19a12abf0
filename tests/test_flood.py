"""A team group's new-ticket cards, more than its rate limit carries: digests, P0 cards kept.

The group is on a fake platform (tests/fakes.py) that declares a small limit. Each test reads
what the group received, as its members would: which tickets each message names, cards and
digests, in what order; and that nothing is left waiting or given up on.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from bot import flood
from bot.adapters.base import RateLimit
from bot.config import OutboxSettings
from bot.events import Address, Button, Card, outbound_to_json
from bot.metrics import Metrics
from bot.outbox import Governor, OutboxSender
from storage import outbox, repo
from storage.db import Database
from storage.models import utcnow
from tests.conftest import STAFF, Feed, RunningHub, button, eventually
from tests.fakes import FakeAdapter, FakePlatformApi, Received, enqueue, serve
from tests.test_webchat_flow import customer, press, report, staff

Start = Callable[..., Awaitable[RunningHub]]
GROUP = "-100777"
DEST = f"telegram:{GROUP}"
NUMBER = re.compile(r"\bGD-\d+\b")


class GroupPlatform(FakeAdapter):
    """The fake platform as ``telegram``, declaring the limits a test gives it."""

    platform: ClassVar[str] = "telegram"

    def __init__(self, base_url: str, *limits: RateLimit) -> None:
        super().__init__(base_url)
        self.declared = limits

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        return self.declared


@dataclass(frozen=True)
class Heard:
    kind: str  # card | digest | edit
    numbers: tuple[str, ...]
    text: str


def heard(api: FakePlatformApi) -> list[Heard]:
    """What the group received, in order (an edit is a call keyed by the card's message id)."""
    out = []
    for call in api.calls:
        if call.chat != GROUP or call.status != 200:
            continue
        out.append(_heard(call))
    return out


def _heard(call: Received) -> Heard:
    message = call.body["message"]
    if message["kind"] == "card":
        kind = "edit" if re.fullmatch(r"m\d+", call.body["key"]) else "card"
        return Heard(kind, tuple(NUMBER.findall(message["title"])[:1]), message["title"])
    text = message["text"]
    return Heard("digest", tuple(dict.fromkeys(NUMBER.findall(text))), text)


def mentions(messages: Sequence[Heard]) -> Counter[str]:
    return Counter(n for m in messages if m.kind != "edit" for n in m.numbers)


@pytest.fixture
async def fake_api() -> AsyncIterator[tuple[FakePlatformApi, str]]:
    api = FakePlatformApi()
    runner, url = await serve(api.app())
    yield api, url
    await runner.cleanup()


@dataclass(frozen=True)
class Queued:
    number: str
    priority: str
    ref_id: int


async def queue_cards(db: Database, priorities: Sequence[str]) -> list[Queued]:
    """New tickets with these priorities, and their cards for the group, queued as
    ``lifecycle.publish_staff_cards`` queues them."""
    out = []
    async with db.transaction() as s:
        person = await repo.identify(s, "web", "c-1", "张三")
        for i, priority in enumerate(priorities):
            title = f"{i + 1}号注塑机故障"
            ticket = await repo.create_ticket(
                s,
                title=title,
                description=title,
                priority=priority,
                category="equipment_failure",
                state="new",
                reporter_id=person.id,
                origin_chat="web:c-1",
            )
            number = ticket.number or ""
            ref = await repo.add_card_ref(s, ticket.id, DEST, "staff", "zh")
            card = Card(
                ticket_id=ticket.id,
                version=1,
                title=f"{number} · {priority} · {title}",
                buttons=(Button("接单", f"t{ticket.id}", action="accept"),),
            )
            payload = outbound_to_json(card)
            payload[flood.TEAM_CARD] = flood.line(number, priority, title, "李工", "zh")
            await enqueue(
                s,
                destination=DEST,
                op="send",
                payload=payload,
                idempotency_key=f"card-{ticket.id}",
                card_ref_id=ref.id,
            )
            out.append(Queued(number, priority, ref.id))
    return out


def sender(db: Database, adapter: GroupPlatform, **kw: Any) -> OutboxSender:
    settings = OutboxSettings(base_delay=0.05, max_delay=0.2)
    return OutboxSender(
        db, {"telegram": adapter}, settings, Metrics(), admin_chat="telegram:admin", **kw
    )


async def drain(db: Database, *senders: OutboxSender) -> dict[str, int]:
    """Tick the senders (side by side, as workers do) until nothing waits; the counts."""

    async def done() -> dict[str, int] | None:
        await asyncio.gather(*(s.tick() for s in senders))
        async with db.read() as s:
            counts = await outbox.counts(s)
        return None if counts.get("pending") or counts.get("sending") else counts

    result: dict[str, int] = await eventually(done, within=30, what="the outbox to drain")
    return result


#: Priorities of 38 tickets that are not P0, mixed as they arrive.
OTHERS = ["P2", "P1", "P3", "P2", "P2", "P1", "P3"] * 5 + ["P2", "P1", "P2"]


async def test_a_flood_reaches_the_group_as_digests_plus_the_p0_cards(
    db: Database, fake_api: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake_api
    adapter = GroupPlatform(url, RateLimit(f"group:{GROUP}", 4, 60.0))  # 4 a minute
    cards = await queue_cards(db, [*OTHERS[:19], "P0", *OTHERS[19:], "P0"])
    counts = await drain(db, sender(db, adapter))
    await adapter.stop()

    messages = heard(api)
    p0 = [c.number for c in cards if c.priority == "P0"]
    # Within the limit: the P0 cards first, then two digests (20 + 18 tickets).
    assert [m.kind for m in messages] == ["card", "card", "digest", "digest"]
    assert [m.numbers[0] for m in messages[:2]] == p0
    assert mentions(messages) == Counter(c.number for c in cards)  # each ticket once
    digest = messages[2].text
    assert digest.startswith("📋 又有 20 张新工单") and "私聊" in digest
    assert "GD-" in digest and "李工" in digest and "卡片随后" not in digest
    # In priority order: every P1, then P2, then P3.
    order = {c.number: c.priority for c in cards}
    listed = [order[n] for m in messages[2:] for n in m.numbers]
    assert listed == sorted(listed) and len(listed) == 38
    assert counts == {"sent": 4, "superseded": 36}  # nothing waits, nothing was given up on


async def test_a_single_ticket_and_a_few_are_cards(
    db: Database, fake_api: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake_api
    adapter = GroupPlatform(url, RateLimit(f"group:{GROUP}", 4, 60.0))
    out = sender(db, adapter)
    first = await queue_cards(db, ["P2"])
    await drain(db, out)
    more = await queue_cards(db, ["P3", "P1", "P2"])  # 3 more: the minute still carries them
    await drain(db, out)
    await adapter.stop()

    messages = heard(api)
    assert [m.kind for m in messages] == ["card"] * 4
    by_priority = sorted(more, key=lambda c: c.priority)
    assert [m.numbers[0] for m in messages] == [first[0].number] + [c.number for c in by_priority]


async def test_a_flood_of_p0s_names_the_rest_at_once_and_still_sends_every_p0_card(
    db: Database, fake_api: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake_api
    adapter = GroupPlatform(url, RateLimit(f"group:{GROUP}", 3, 1.0))  # 3 a second
    cards = await queue_cards(db, ["P0"] * 8 + ["P2"] * 4)
    counts = await drain(db, sender(db, adapter, flood_horizon=0.5))  # "promptly": 0.5 s
    await adapter.stop()

    messages = heard(api)
    p0 = [c.number for c in cards if c.priority == "P0"]
    p2 = [c.number for c in cards if c.priority == "P2"]
    # Two P0 cards fit besides the digest; the digest names the six other P0s first (their
    # cards follow), then the rest; then the six cards.
    assert [m.kind for m in messages] == ["card", "card", "digest"] + ["card"] * 6
    assert [m.numbers[0] for m in messages[:2]] == p0[:2]
    digest = messages[2]
    assert list(digest.numbers) == p0[2:] + p2
    assert digest.text.count("卡片随后") == 6
    assert sorted(m.numbers[0] for m in messages[3:]) == sorted(p0[2:])
    said = mentions(messages)
    assert all(said[n] == 1 for n in p0[:2] + p2) and all(said[n] == 2 for n in p0[2:])
    assert counts == {"sent": 9, "superseded": 3}


async def test_an_update_of_a_folded_card_is_dropped_and_a_shown_card_is_edited(
    db: Database, fake_api: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake_api
    adapter = GroupPlatform(url, RateLimit(f"group:{GROUP}", 3, 60.0))
    out = sender(db, adapter)
    cards = await queue_cards(db, ["P0", "P2", "P2", "P1"])  # 4: more than 3 a minute
    await drain(db, out)
    shown, folded = cards[0], cards[1]
    async with db.transaction() as s:  # both tickets were accepted: their cards are redrawn
        for c in (shown, folded):
            card = Card(ticket_id=0, version=2, title=f"{c.number} · 已接单")
            await enqueue(
                s,
                destination=DEST,
                op="update",
                payload=outbound_to_json(card),
                idempotency_key=f"update-{c.number}",
                card_ref_id=c.ref_id,
            )
    counts = await drain(db, out)
    await adapter.stop()

    messages = heard(api)
    assert [m.kind for m in messages] == ["card", "digest", "edit"]
    assert messages[2].numbers == (shown.number,)  # the card the group has, edited in place
    assert not [m for m in messages if folded.number in m.numbers and m.kind != "digest"]
    assert counts == {"sent": 3, "superseded": 3}  # no dead letter, no alert, nothing left
    assert not [c for c in api.calls if c.chat == "admin"]


async def test_two_workers_after_one_died_name_each_ticket_once(
    db: Database, fake_api: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake_api
    adapter = GroupPlatform(url, RateLimit(f"group:{GROUP}", 4, 60.0))
    cards = await queue_cards(db, ["P0", "P0"] + ["P1", "P2", "P3"] * 9 + ["P2"])
    now = utcnow()
    async with db.begin() as conn:  # a worker claims the flood, then dies before sending
        taken = await outbox.claim(conn, limit=50, now=now, lease_until=now)
    assert len(taken) == 30
    workers = [sender(db, adapter, governor=Governor()) for _ in range(2)]
    counts = await drain(db, *workers)
    await adapter.stop()

    messages = heard(api)
    assert mentions(messages) == Counter(c.number for c in cards)  # each ticket once
    p0 = {c.number for c in cards if c.priority == "P0"}
    assert {m.numbers[0] for m in messages if m.kind == "card"} == p0
    assert counts.get("dead") is None and counts["sent"] == len(messages)


def test_the_governor_counts_what_a_window_still_holds() -> None:
    now = [1000.0]
    governor = Governor(clock=lambda: now[0])
    group = [RateLimit("g", 20, 60.0), RateLimit("c", 1, 1.0)]
    assert governor.capacity(group, 30.0) == 20
    assert governor.capacity([], 30.0) is None
    for _ in range(5):
        assert governor.reserve(group) == 0
        now[0] += 1.0
    assert governor.capacity(group, 30.0) == 15  # 5 sent in the last 30 s
    now[0] += 40.0
    assert governor.capacity(group, 30.0) == 20  # they leave the window within 30 s
    governor.hold(group, 45.0)  # a 429: nothing for 45 s
    assert governor.capacity(group, 30.0) == 0


# ----------------------------------------------------------------------- end to end


def _team_on_telegram() -> dict[str, Any]:
    teams = copy.deepcopy(STAFF["teams"])
    teams[0]["chats"] = [DEST]
    return {"teams": teams}


FLOOD = [  # none of these is a P0 (each is read as a running machine's fault)
    "冷却塔水泵漏水了",
    "3号包装机封口温度偏低，还能运行",
    "7号注塑机有异响，还在生产",
    "1号空压机压力偏低",
    "A线输送带有点跑偏",
    "4号CNC冷却液泄漏，还能加工",
    "二车间照明灯坏了两盏",
]


async def _tickets(hub: RunningHub, n: int) -> list[dict[str, Any]]:
    async def all_there() -> list[dict[str, Any]] | None:
        tickets: list[dict[str, Any]] = (await hub.api("/api/tickets"))["tickets"]
        return tickets if len(tickets) == n else None

    found: list[dict[str, Any]] = await eventually(all_there, what=f"{n} tickets")
    return sorted(found, key=lambda t: int(t["id"]))


async def test_reports_flooding_a_group_arrive_as_a_digest_and_presses_send_no_orphans(
    running: Start, fake_api: tuple[FakePlatformApi, str]
) -> None:
    api, url = fake_api
    hub = await running(**_team_on_telegram())
    # Telegram's shape, smaller: one message per 2 s in the chat, 4 a minute in the group.
    adapter = GroupPlatform(url, RateLimit(f"chat:{GROUP}", 1, 2.0), RateLimit("group", 4, 60.0))
    hub.hub.adapters["telegram"] = adapter
    sessions = [await customer(hub, f"客户{i}") for i in range(len(FLOOD) + 1)]
    await report(hub, sessions[0], "5号CNC主轴异响")
    first = (await _tickets(hub, 1))[0]
    await eventually(lambda: _has_card(api, first["number"]), what="the first card")
    for session, text in zip(sessions[1:], FLOOD, strict=True):
        await report(hub, session, text)
    tickets = await _tickets(hub, len(FLOOD) + 1)

    async def all_heard() -> bool:
        return set(mentions(heard(api))) == {t["number"] for t in tickets}

    await eventually(all_heard, within=20, what="the group to hear of every ticket")
    messages = heard(api)
    assert mentions(messages) == Counter(t["number"] for t in tickets)  # each once
    assert [m.kind for m in messages][:2] == ["card", "digest"] and len(messages) <= 4
    assert all(t["priority"] != "P0" for t in tickets)

    # 李工 accepts the first ticket (its card is in the group) and one that was folded.
    mine = [t for t in tickets if (t.get("assignee") or {}).get("id") == "li"]
    folded = next(t for t in mine if t["id"] != first["id"])
    li = await staff(hub, "li")
    async with Feed(hub, li) as feed:
        for ticket in (first, folded):
            number = ticket["number"]
            card = await feed.wait_card("li", lambda p, n=number: p["title"].startswith(n))
            await press(hub, li, button(card, "accept"), "li")
            await eventually(lambda t=ticket: _accepted(hub, t), what="accepted")
    await eventually(lambda: _edited(api, first["number"]), what="the group's card edited")
    counts = await _drained(hub)
    assert counts.get("dead") is None
    after = heard(api)[len(messages) :]
    assert [(m.kind, m.numbers) for m in after] == [("edit", (first["number"],))]
    await adapter.stop()


async def _has_card(api: FakePlatformApi, number: str) -> bool:
    return any(m.kind == "card" and m.numbers == (number,) for m in heard(api))


async def _edited(api: FakePlatformApi, number: str) -> bool:
    return any(m.kind == "edit" and m.numbers == (number,) for m in heard(api))


async def _accepted(hub: RunningHub, ticket: dict[str, Any]) -> bool:
    return bool((await hub.api(f"/api/tickets/{ticket['id']}"))["state"] == "accepted")


async def _drained(hub: RunningHub) -> dict[str, int]:
    async def done() -> dict[str, int] | None:
        hub.hub.sender.wake.set()
        async with hub.hub.db.read() as s:
            counts = await outbox.counts(s)
        return None if counts.get("pending") or counts.get("sending") else counts

    result: dict[str, int] = await eventually(done, within=20, what="the outbox to drain")
    return result
