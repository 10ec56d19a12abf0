"""Flows as functions of (state, event, now) → decisions, run without a database.

A unit of work reads through ``Reads``; here an in-memory one holds the rows. The flows decide
exactly as in the running hub — tickets, audit rows, clocks, card references, messages — and
the tests look at those decisions: nothing is written anywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from bot.adapters.codec import ActionToken, TokenCodec
from bot.directory import Directory
from bot.env import Env, Staff
from bot.errors import NotAllowed, StaleTransition
from bot.events import Action, Address, Card, Message, Sender, Text
from bot.flows.actions import handle_action
from bot.flows.intake import handle_message
from bot.lifecycle import apply
from bot.metrics import Metrics
from bot.sla.policy import Policies
from bot.tickets import TicketAction
from bot.unit import Turn, Unit
from storage.records import CardRef, Clock, Person, Ticket, VoiceNote
from tests.conftest import make_settings

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Shanghai
LI = Person(id=1, key="li", name="李工", role="engineer", skills=["注塑机"])
WANG = Person(id=2, key="wang", name="王工", role="engineer")
ZHAO = Person(id=3, key="zhao", name="赵经理", role="manager")
CUSTOMER = Person(id=10, key="cust-web-c-1", name="张三", role="customer")


class MemoryReads:
    """``Reads`` over rows held in memory (what the tests put there)."""

    def __init__(self) -> None:
        self.tickets_: dict[int, Ticket] = {}
        self.clocks_: dict[int, list[Clock]] = {}
        self.refs_: dict[int, list[CardRef]] = {}
        self.people_: dict[int, Person] = {p.id: p for p in (LI, WANG, ZHAO, CUSTOMER)}
        self.ids = {"tickets": 100, "card_refs": 500, "voice_notes": 900}
        self.messages_: dict[int, tuple[str, dict[str, Any]]] = {}

    async def tickets(self, ids: Collection[int], *, lock: bool = False) -> list[Ticket]:
        return [self.tickets_[i] for i in ids if i in self.tickets_]

    async def ticket_ids_by_number(self, numbers: Collection[str]) -> dict[str, int]:
        wanted = {n.upper() for n in numbers}
        return {t.number: t.id for t in self.tickets_.values() if t.number in wanted}

    async def ticket_id_by_source(self, key: str) -> int | None:
        return next((t.id for t in self.tickets_.values() if t.source_event == key), None)

    async def inbound_message(self, event_id: int) -> tuple[str, dict[str, Any]] | None:
        return self.messages_.get(event_id)

    async def last_sites(
        self, pairs: Collection[tuple[int, str]], since: datetime
    ) -> dict[tuple[int, str], tuple[str, str]]:
        out = {}
        for pair in pairs:
            found = [
                t
                for t in self.tickets_.values()
                if (t.reporter_id, t.origin_chat) == pair and t.created_at >= since and t.site
            ]
            best = max(found, key=lambda t: t.id, default=None)
            if best is not None and best.site:
                out[pair] = (best.site, best.number or "")
        return out

    async def open_ticket_ids(
        self, states: Collection[str], *, limit: int = 10, **fields: Any
    ) -> list[int]:
        found = [
            t.id
            for t in self.tickets_.values()
            if t.state in states and all(v is None or getattr(t, k) == v for k, v in fields.items())
        ]
        return sorted(found, reverse=True)[:limit]

    async def assignments(
        self,
        person_ids: Sequence[int],
        n: int,
        *,
        load_ids: Collection[int] = (),
        states: Collection[str] = (),
    ) -> tuple[dict[int, list[int]], dict[int, int]]:
        out: dict[int, list[int]] = {p: [] for p in person_ids}
        for t in sorted(self.tickets_.values(), key=lambda t: t.id, reverse=True):
            if t.assignee_id in out and len(out[t.assignee_id]) < n:
                out[t.assignee_id].append(t.id)
        return out, await self.loads(load_ids, states)

    async def clocks(self, ticket_ids: Collection[int]) -> dict[int, list[Clock]]:
        return {i: list(self.clocks_.get(i, [])) for i in ticket_ids}

    async def card_refs(self, ticket_ids: Collection[int]) -> dict[int, list[CardRef]]:
        return {i: list(self.refs_.get(i, [])) for i in ticket_ids}

    async def people(self, ids: Collection[int]) -> list[Person]:
        return [self.people_[i] for i in ids if i in self.people_]

    async def notes(self, ids: Collection[int]) -> list[VoiceNote]:
        return []

    async def loads(self, person_ids: Collection[int], states: Collection[str]) -> dict[int, int]:
        out = dict.fromkeys(person_ids, 0)
        for t in self.tickets_.values():
            if t.assignee_id in out and t.state in states:
                out[t.assignee_id] += 1
        return out

    async def chat_kind(self, platform: str, chat_id: str) -> str | None:
        return None

    async def csat(self, ticket_id: int) -> None:
        return None

    async def csat_awaiting_comment(self, rater_id: int, chat: str, since: datetime) -> None:
        return None

    async def identities(self, person_id: int) -> list[str]:
        return []

    async def recent_tickets(
        self, *, asset_id: int | None, site: str | None, since: datetime, limit: int
    ) -> list[Ticket]:
        by, value = ("asset_id", asset_id) if asset_id is not None else ("site", site)
        found = [
            t
            for t in self.tickets_.values()
            if getattr(t, by) == value and t.updated_at >= since and t.merged_into is None
        ]
        return sorted(found, key=lambda t: t.id, reverse=True)[:limit]

    async def new_id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    async def reserve_ids(self, table: str, n: int) -> None:
        pass


@pytest.fixture
def env(tmp_path: Path) -> Env:
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///unused.db")
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


def said(unit: Unit, where: str) -> list[Text | Card]:
    return [o.message for o in unit.outgoing if o.destination.ref == where]  # type: ignore[misc]


def message(text: str, chat: str = "c-1") -> Message:
    return Message(
        event_id=f"m-{text}",
        chat=Address("web", chat),
        sender=Sender("web", chat, "张三"),
        chat_type="direct",
        received_at=NOW,
        text=text,
    )


async def test_a_report_becomes_an_assigned_ticket_with_replies_and_clocks(env: Env) -> None:
    unit = Unit(env, MemoryReads(), NOW)
    event = message("3号注塑机停机了，报警E102，在二车间")
    with unit.turn():
        await handle_message(Turn(unit, "web:m1", CUSTOMER, event), event)

    (ticket,) = unit.tickets.values()
    assert (ticket.number, ticket.state, ticket.assignee_id) == ("GD-101", "assigned", LI.id)
    assert ticket.team_key == "maint" and ticket.version == 2
    assert [a.kind for a in unit.audit] == ["created", "transition"]
    assign = unit.audit[1].data
    assert (assign["action"], assign["assignee"], assign["routing"]["person"]) == (
        "assign", "li", "li"
    )  # fmt: skip
    assert "技能匹配：注塑机" in assign["routing"]["reason"]  # why: bot/routing_rules.py
    assert unit.audit[1].prev_hash == unit.audit[0].hash  # one chain
    kinds = {c.kind for c in unit.clocks[ticket.id]}
    assert {"respond", "arrive", "resolve"} <= kinds
    assert ticket.respond_due is not None and ticket.respond_due > NOW
    ack, card = said(unit, "web:c-1")
    assert isinstance(ack, Text) and "GD-101" in ack.text and "李工" in ack.text
    assert isinstance(card, Card) and card.title.startswith("GD-101")
    assert [type(m) for m in said(unit, "web:li")] == [Card]  # the engineer's card
    assert [type(m) for m in said(unit, "web:team")] == [Card]  # the team's card
    assert {r.audience for r in unit.refs[ticket.id]} == {"customer", "staff"}


def _assigned(reads: MemoryReads) -> Ticket:
    ticket = Ticket(
        id=7,
        number="GD-7",
        title="注塑机停机",
        description="3号注塑机停机",
        priority="P1",
        category="equipment_failure",
        state="assigned",
        reporter_id=CUSTOMER.id,
        origin_chat="web:c-1",
        created_at=NOW - timedelta(minutes=5),
        updated_at=NOW - timedelta(minutes=5),
        assignee_id=LI.id,
        team_key="maint",
        version=3,
    )
    reads.tickets_[7] = ticket
    reads.refs_[7] = [
        CardRef(id=1, ticket_id=7, destination="web:c-1", audience="customer", locale="zh",
                created_at=NOW, platform_message_id="k1"),
        CardRef(id=2, ticket_id=7, destination="web:li", audience="staff", locale="zh",
                created_at=NOW, platform_message_id="k2"),
    ]  # fmt: skip
    return ticket


async def test_an_accept_moves_the_ticket_redraws_its_cards_and_tells_the_customer(
    env: Env,
) -> None:
    reads = MemoryReads()
    _assigned(reads)
    unit = Unit(env, reads, NOW)
    ticket = await unit.ticket(7)
    assert ticket is not None
    with unit.turn():
        await apply(Turn(unit, "press", LI), ticket, TicketAction.ACCEPT, LI, via="button")
    assert (ticket.state, ticket.version) == ("accepted", 4)
    (row,) = unit.audit
    assert (row.actor, row.from_state, row.to_state, row.seq) == ("李工", "assigned", "accepted", 1)
    updates = [o for o in unit.outgoing if o.op == "update"]
    assert {o.destination.ref for o in updates} == {"web:c-1", "web:li"}
    assert any(isinstance(m, Text) and "已接单" in m.text for m in said(unit, "web:c-1"))


async def test_a_refused_press_leaves_the_unit_as_it_was(env: Env) -> None:
    reads = MemoryReads()
    _assigned(reads)
    unit = Unit(env, reads, NOW)
    # A card drawn before the ticket's last change: its token names version 2, not 3.
    token = env.codec.encode(ActionToken(7, TicketAction.ACCEPT, 2))
    event = Action(
        event_id="a1",
        chat=Address("web", "li"),
        sender=Sender("web", "li", "李工"),
        chat_type="direct",
        received_at=NOW,
        token=token,
    )
    with pytest.raises(StaleTransition), unit.turn():
        await handle_action(Turn(unit, "press", LI, event), event)
    ticket = unit.tickets[7]
    assert (ticket.state, ticket.version, ticket.audit_seq) == ("assigned", 3, 0)
    assert unit.outgoing == [] and unit.audit == []


async def test_a_refusal_halfway_undoes_what_the_turn_had_changed(env: Env) -> None:
    reads = MemoryReads()
    _assigned(reads)
    unit = Unit(env, reads, NOW)
    ticket = await unit.ticket(7)
    assert ticket is not None
    with pytest.raises(NotAllowed), unit.turn():
        turn = Turn(unit, "two", LI)
        await apply(turn, ticket, TicketAction.ACCEPT, LI, via="button")  # this one may
        await apply(turn, ticket, TicketAction.DEPART, WANG, via="button")  # this one not
    assert (ticket.state, ticket.version, ticket.assignee_id) == ("assigned", 3, LI.id)
    assert unit.audit == [] and unit.outgoing == [] and unit.clocks.get(7, []) == []


def test_sqlite_units_grow_past_a_write_whose_cost_is_mostly_fixed() -> None:
    """A unit's write is timed and the next unit sized to a budget; a write that costs 5 ms
    whatever its size must not keep every unit at one event."""
    from bot.engine import WriteCost

    cost = WriteCost()
    sizes = []
    for _ in range(30):  # a backlog: every claim finds its batch full
        size = cost.size(0.010, 64)
        sizes.append(size)
        cost.add(size, 0.005 + 0.0001 * size, full=True)
    assert sizes[0] < 40 and 48 <= sizes[-1] <= 50  # (10 ms − 5 ms) / 0.1 ms per event
    # Where each event costs most of it, units stay small: the intake waits for a write.
    dear = WriteCost()
    for _ in range(30):
        size = dear.size(0.010, 64)
        dear.add(size, 0.001 + 0.003 * size, full=True)
    assert 2 <= dear.size(0.010, 64) <= 3  # (10 ms − 1 ms) / 3 ms per event


async def test_a_postgresql_worker_looks_again_after_a_full_claim_without_being_woken() -> None:
    """Several workers share a backlog, each unit holding its chats; a worker whose claim then
    finds nothing is woken by nobody when those units commit, so after a full claim it looks
    again soon, then less and less often until the heartbeat's tick takes over. SQLite's one
    worker is woken by its own intake."""
    from bot.engine import Engine
    from storage.db import Database

    pg = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # (never connected)
    sqlite = Database("sqlite+aiosqlite:///:memory:")
    try:
        worker = Engine(pg, cast(Any, None), {})
        assert worker._recheck(5, 0.0) == 0.0  # no backlog seen: wait to be woken
        worker._backlog = True  # its last claim that found events was a full batch
        waits = [worker._recheck(64, 0.0)]
        while waits[-1]:
            waits.append(worker._recheck(0, waits[-1]))
        assert waits == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 0.0]
        assert worker._recheck(0, 0.0) == 0.0  # and then it waits to be woken again
        alone = Engine(sqlite, cast(Any, None), {})
        alone._backlog = True
        assert alone._recheck(64, 0.0) == 0.0
    finally:
        await pg.dispose()
        await sqlite.dispose()


async def test_reports_at_one_site_in_one_unit_read_its_recent_tickets_once(env: Env) -> None:
    """A burst about one line stop: every report of the unit is compared with the same stored
    tickets (read once) and with the reports the unit made before it."""
    reads = MemoryReads()
    stored = _assigned(reads)
    stored.site, stored.description = "二车间", "二车间3号注塑机停机了"
    calls: list[tuple[int | None, str | None]] = []
    recent = reads.recent_tickets

    async def counted(**kw: Any) -> list[Ticket]:
        calls.append((kw["asset_id"], kw["site"]))
        return await recent(**kw)

    reads.recent_tickets = counted  # type: ignore[method-assign]
    unit = Unit(env, reads, NOW)
    for n, text in enumerate(["二车间的冷却塔水泵漏水了", "二车间冷却塔水泵漏水，地上全是水"]):
        event = message(text)
        with unit.turn():
            await handle_message(Turn(unit, f"web:m{n}", CUSTOMER, event), event)
    first, second = sorted(
        (t for t in unit.tickets.values() if t.id != stored.id), key=lambda t: t.id
    )
    assert calls == [(None, "二车间")]
    assert (second.intake or {}).get("repeat", {}).get("id") == first.id  # the unit's own
    assert "repeat" not in (first.intake or {})  # a pump is not the injection moulder


async def test_a_second_report_in_the_same_unit_takes_the_site_of_the_first(env: Env) -> None:
    """Two reports from one customer, handled in one unit: the second names no site and is
    taken to be where the first one was (as it would be a unit later)."""
    unit = Unit(env, MemoryReads(), NOW)
    for text in ("二车间3号注塑机停机了", "冷却塔水泵也漏水了"):
        event = message(text)
        with unit.turn():
            await handle_message(Turn(unit, f"web:{text}", CUSTOMER, event), event)
    first, second = sorted(unit.tickets.values(), key=lambda t: t.id)
    assert first.site == "二车间" and second.site == "二车间"


async def test_a_unit_reads_its_reporters_last_sites_once_for_all_its_reports(env: Env) -> None:
    """Reports that name no site: the unit reads where each reporter last was in one query for
    the batch, and each report still takes its own reporter's site."""
    reads = MemoryReads()
    other = Person(id=11, key="cust-web-c-2", name="李四", role="customer")
    reads.people_[other.id] = other
    for i, (who, site) in enumerate(((CUSTOMER, "二车间"), (other, "三号仓库"))):
        reads.tickets_[200 + i] = Ticket(
            id=200 + i, number=f"GD-{200 + i}", title="旧单", description="旧单",
            state="closed", priority="P2", category="mechanical", reporter_id=who.id,
            origin_chat=f"web:c-{i + 1}", site=site,
            created_at=NOW - timedelta(days=1), updated_at=NOW - timedelta(days=1),
        )  # fmt: skip
    calls: list[list[tuple[int, str]]] = []
    last_sites = reads.last_sites

    async def counted(pairs: Any, since: datetime) -> dict[tuple[int, str], tuple[str, str]]:
        calls.append(list(pairs))
        return await last_sites(pairs, since)

    reads.last_sites = counted  # type: ignore[method-assign]
    unit = Unit(env, reads, NOW)
    events = [(CUSTOMER, message("冷却塔水泵漏水了")), (other, message("叉车充不进电", chat="c-2"))]
    await unit.expect_reports([(p.id, e.chat.ref) for p, e in events])
    for n, (who, event) in enumerate(events):
        with unit.turn():
            await handle_message(Turn(unit, f"web:s{n}", who, event), event)
    made = sorted(unit.new_tickets)
    assert [unit.tickets[i].site for i in made] == ["二车间", "三号仓库"]
    assert len(calls) == 1 and set(calls[0]) == {(CUSTOMER.id, "web:c-1"), (other.id, "web:c-2")}
