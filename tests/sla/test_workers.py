"""Two worker processes on PostgreSQL sharing 1,000 due tickets: every nag sent exactly once.

The tickets and their SLA clocks are made by production code (a unit of work and
``bot.sla.clocks.sync``) as if each had been reported an hour ago with a 10-minute respond
clock, so all of them are breached when the two real ``gongdan serve`` processes start. Both
sweep the same database (``FOR UPDATE SKIP LOCKED``) and send through one fake Telegram Bot API;
each engineer's nags arrive as cards or digests in their direct chat.

Half the engineers' chats answer 429 while the workers sweep, so nags to them wait in the
outbox and are taken back and folded into digests by whichever worker sweeps next; without it
whether any nag is still waiting when the next batch is swept is down to timing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.config import Settings, load_settings
from bot.hub import Hub
from bot.sla.clocks import sync
from bot.tickets import TicketState
from storage import outbox as outbox_table
from storage import repo
from storage.db import Database
from storage.models import TicketEvent
from tests.adapters.telegram_driver import SECRET
from tests.conftest import eventually
from tests.fakes_telegram import TOKEN
from tests.sla.test_digests import ThrottledBotApi
from tests.workers import Worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

TICKETS = 1000
#: Engineers e0…e9, Telegram users 71000…71009; ticket i goes to engineer i % 10.
ENGINEERS = {f"e{i}": 71000 + i for i in range(10)}
#: Their chats that answer 429 (retry_after 1 s) until every ticket has been swept.
HELD = [uid for uid in ENGINEERS.values() if uid % 2]
CUSTOMER = "900100200"
NUMBER = re.compile(r"\bGD-(\d+)\b")

CONFIG = """
[server]
port = {port}
[database]
url = "{db}"
[api]
token = "t"
[security]
secret_key = "two-workers"
[asr]
enabled = false
[webchat]
enabled = false
[tickets]
auto_close_hours = 0
[telegram]
enabled = true
bot_token = "{token}"
webhook_secret = "{secret}"
api_base_url = "{api}"
[sla]
sweep_seconds = 0.2
batch = 50  # small batches: the two workers' claims interleave
warn_at = []
stay = {{}}
[sla.policies.P1]
respond = "10m"
arrive = "off"
resolve = "off"
calendar = "24x7"
[sla.chains.default]
steps = [{{ do = "notify_assignee" }}]
repeat = 0
{people}
[[teams]]
id = "maint"
name = "维修组"
members = [{members}]
"""


def _people() -> str:
    return "".join(
        f'[[people]]\nid = "{key}"\nname = "工程师{key}"\nidentities = ["telegram:{uid}"]\n'
        for key, uid in ENGINEERS.items()
    )


@pytest.fixture
async def bot_api() -> AsyncIterator[ThrottledBotApi]:
    fake = ThrottledBotApi()
    await fake.start()
    yield fake
    await fake.stop()


async def seed(settings: Settings, reported: datetime) -> dict[str, int]:
    """1,000 assigned P1 tickets reported from ``reported`` on (a second apart), with their
    SLA clocks started at that moment; returns ticket number → the assignee's Telegram id."""
    hub = Hub(settings)  # not started: only its database, directory and units of work
    out: dict[str, int] = {}
    try:
        async with hub.db.transaction() as s:
            await repo.sync_staff(s, hub.directory.staff_records())
            customer = await repo.identify(s, "telegram", CUSTOMER, "张三")
        async with hub.db.read() as s:
            hub.env.staff.load(*await repo.staff(s))
        ids = {key: hub.env.staff.by_key[key].id for key in ENGINEERS}
        keys = list(ENGINEERS)
        async with hub.work.unit(now=reported) as tx:
            reporter = await tx.unit.person(customer.id)
            for i in range(TICKETS):
                key = keys[i % len(keys)]
                at = reported + timedelta(seconds=i)
                tx.unit.now = at
                ticket = await tx.unit.new_ticket(
                    title=f"{i}号注塑机停机",
                    description=f"{i}号注塑机停机了，报警E102，在二车间",
                    priority="P1",
                    category="equipment_failure",
                    state=TicketState.ASSIGNED.value,
                    reporter_id=customer.id,
                    assignee_id=ids[key],
                    team_key="maint",
                    origin_chat=f"telegram:{CUSTOMER}",
                    source_event=f"seed:{i}",
                    created_at=at,
                    updated_at=at,
                )
                tx.unit.record(
                    ticket,
                    "created",
                    actor=reporter,
                    via="message",
                    to_state=TicketState.ASSIGNED,
                    data={"assignee": key},
                )
                await sync(tx.unit, ticket, actor=None, since=at)
                assert ticket.number is not None
                out[ticket.number] = ENGINEERS[key]
        async with hub.db.read() as s:  # the clocks are real: every ticket is due now
            first = await repo.ticket_by_number(s, next(iter(out)))
            assert first is not None and first.respond_due == reported + timedelta(minutes=10)
            assert first.sla_next_at == first.respond_due
    finally:
        await hub.db.dispose()
    return out


async def sla_kinds(db: Database) -> dict[str, Counter[int]]:
    """sla_breach / sla_escalation audit events: kind → ticket id → how many."""
    async with db.read() as s:
        rows = await s.execute(
            select(TicketEvent.kind, TicketEvent.ticket_id, func.count())
            .where(TicketEvent.kind.in_(("sla_breach", "sla_escalation", "sla_warning")))
            .group_by(TicketEvent.kind, TicketEvent.ticket_id)
        )
        out: dict[str, Counter[int]] = {}
        for kind, ticket_id, n in rows.all():
            out.setdefault(kind, Counter())[ticket_id] = int(n)
        return out


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_two_workers_share_1000_due_tickets_and_send_every_nag_once(
    db_url: str, bot_api: ThrottledBotApi, tmp_path: Path
) -> None:
    config = CONFIG.format(
        port="{port}",
        db=db_url,
        token=TOKEN,
        secret=SECRET,
        api=bot_api.base_url,
        people=_people(),
        members=", ".join(f'"{k}"' for k in ENGINEERS),
    )
    workers = [Worker(tmp_path, name, config) for name in ("w1", "w2")]
    settings = load_settings(workers[0].config)
    reported = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    assignee_of = await seed(settings, reported)
    assert len(assignee_of) == TICKETS

    db = Database(db_url)
    codes: list[int | None] = []
    try:
        async with aiohttp.ClientSession() as http:
            try:
                for uid in HELD:
                    bot_api.hold(uid, retry_after=1)
                for w in workers:  # both start at once: each takes its share from the start
                    w.spawn()
                for w in workers:
                    await w.wait_healthy(http)

                async def all_escalated() -> bool:
                    return len((await sla_kinds(db)).get("sla_escalation", {})) == TICKETS

                await eventually(all_escalated, within=45, what="an escalation for every ticket")
                for uid in HELD:
                    bot_api.release(uid)

                async def drained() -> dict[str, int] | None:
                    async with db.read() as s:
                        counts = await outbox_table.counts(s)
                    return None if counts.get("pending") or counts.get("sending") else counts

                outbox = await eventually(drained, within=30, what="the outbox to drain")
                per_worker = [
                    await w.metric(http, "gongdan_sla_events_total", "event") for w in workers
                ]
            finally:
                for w in workers:
                    w.terminate()
                for w in workers:
                    codes.append(await w.wait_exit())
        kinds = await sla_kinds(db)
        async with db.read() as s:
            ids = {t.number: t.id for t in await repo.list_tickets(s, limit=TICKETS + 10)}
    finally:
        await db.dispose()

    logs = "\n".join(f"--- {w.name}\n{w.tail()}" for w in workers)
    assert codes == [0, 0], f"the workers did not stop cleanly: {codes}\n{logs}"
    assert set(ids) == set(assignee_of)

    # Every nag sent exactly once: each ticket number in exactly one delivered message, and
    # that message in the direct chat of the ticket's assignee.
    delivered = bot_api.to("sendMessage")
    assert {c.status for c in bot_api.calls} <= {200, 429}
    refused = {int(c.params["chat_id"]) for c in bot_api.calls if c.status == 429}
    assert refused == set(HELD)  # the held chats were refused, the others never
    seen: Counter[str] = Counter()
    where: dict[str, set[int]] = {}
    for call in delivered:
        for n in NUMBER.findall(str(call.params["text"])):
            seen[f"GD-{n}"] += 1
            where.setdefault(f"GD-{n}", set()).add(int(call.params["chat_id"]))
    missing = sorted(set(assignee_of) - set(seen), key=lambda x: int(x[3:]))
    twice = sorted((n for n, k in seen.items() if k > 1), key=lambda x: int(x[3:]))
    assert not missing, f"{len(missing)} nags never arrived, e.g. {missing[:10]}; {outbox}"
    assert not twice, f"{len(twice)} nags arrived more than once, e.g. {twice[:10]}"
    assert set(seen) == set(assignee_of)
    assert all(where[n] == {assignee_of[n]} for n in assignee_of)
    assert len(delivered) < TICKETS  # most went out folded into digests
    assert any(str(c.params["text"]).startswith("⏰ 时限提醒") for c in delivered)
    assert not outbox.get("dead"), outbox
    assert outbox.get("superseded", 0) >= len(HELD), outbox  # the held ones were folded

    # The audit trail: one breach and one escalation step per ticket, no warnings.
    assert kinds.get("sla_warning", Counter()) == Counter()
    for kind in ("sla_breach", "sla_escalation"):
        assert set(kinds[kind]) == set(ids.values()), kind
        assert set(kinds[kind].values()) == {1}, kind

    # Both processes did part of the work, and together exactly all of it.
    escalations = [c["escalation"] for c in per_worker]
    assert all(n > 0 for n in escalations), f"one worker did nothing: {per_worker}"
    assert sum(escalations) == TICKETS, per_worker
    assert sum(c["breach"] for c in per_worker) == TICKETS, per_worker
