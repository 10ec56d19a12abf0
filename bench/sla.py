#!/usr/bin/env python
"""SLA benchmark: the sweep over 100,000 open tickets, and how late a nag reaches the platform.

For each backend (SQLite in a temporary directory, and PostgreSQL when ``--postgres URL`` is
given, on a scratch database created for the run and dropped afterwards):

1. **Seed** ``--tickets`` open tickets with bulk Core inserts: a mix of priorities, categories
   and states, their SLA clocks computed with the hub's own arithmetic (``bot.sla.clocks``), so
   every row is one ``sla.sync`` could have written, and every ``sla_next_at`` lies between
   ``--margin`` seconds and ``--horizon`` hours from the seeding moment.
2. **Idle sweep**: ``escalation.sweep`` with nothing due (the index probe), ``--idle-runs``
   times: median, p95, max.
3. **Busy sweep**: for each N in ``--busy``, a "now" is chosen at which exactly N tickets are
   due, and one sweep (N > batch: sweeps until done, as ``Hub.sla_sweep`` does) is timed.
   ``--busy-runs`` runs per N, each on the next N tickets.
4. **Due → outbound**: the real hub (scheduler, ``sla.sweep_seconds``, the outbox sender) on
   the real clock, with a fake platform on a loopback port as Telegram (tests/fakes.py). After
   the hub is up, ``--probes`` tickets are set to fall due over ``--spread`` seconds: most reach
   their first warning (a card to the assignee, a different engineer each), one in
   ``--breach-every`` its respond deadline (a card to the assignee, posts in the customer's
   group and the team's group). Then ``--burst`` more reach their warning at one instant.
   Latency is from each due instant to the platform receiving the call.

See ``bench/README.md`` ("SLA benchmark") for how to run it and the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

SELF = Path(__file__).resolve()
REPO = SELF.parent.parent
sys.path.insert(0, str(REPO))

from aiohttp import web  # noqa: E402
from sqlalchemy import bindparam, func, insert, select, text, update  # noqa: E402

from bench.ingest import (  # noqa: E402
    LOOPBACK,
    _check_loopback,
    _pg_admin,
    code_digest,
    free_port,
    machine,
    percentile,
    wait_quiet,
)
from bot.adapters.base import RateLimit  # noqa: E402
from bot.config import Settings, load_settings  # noqa: E402
from bot.events import Address  # noqa: E402
from bot.flows import escalation  # noqa: E402
from bot.hub import Hub  # noqa: E402
from bot.sla.clocks import _step_wait, due_events, rule_of, schedule  # noqa: E402
from bot.sla.policy import Policies, ResolvedPolicy, TicketTerms  # noqa: E402
from bot.tickets import Category, ClockKind, Priority, TicketState  # noqa: E402
from storage import repo  # noqa: E402
from storage.audit import GENESIS, chain_hash  # noqa: E402
from storage.db import migrate_async  # noqa: E402
from storage.models import (  # noqa: E402
    Chat,
    Identity,
    OutboxMessage,
    Person,
    SlaClock,
    Ticket,
    TicketEvent,
    UTCDateTime,
)
from tests.fakes import FakeAdapter, FakePlatformApi  # noqa: E402

log = logging.getLogger("bench.sla")

S = TicketState
#: Open states and their share of the open tickets (resolved: waiting for the customer).
STATE_MIX: tuple[tuple[TicketState, float], ...] = (
    (S.NEW, 0.08),
    (S.ASSIGNED, 0.17),
    (S.ACCEPTED, 0.15),
    (S.EN_ROUTE, 0.05),
    (S.ON_SITE, 0.05),
    (S.DIAGNOSING, 0.10),
    (S.WAITING_PARTS, 0.10),
    (S.THIRD_PARTY, 0.05),
    (S.REPAIRING, 0.15),
    (S.RESOLVED, 0.10),
)
PRIORITY_MIX = ((Priority.P0, 0.03), (Priority.P1, 0.17), (Priority.P2, 0.50), (Priority.P3, 0.30))
CATEGORY_MIX = (
    (Category.EQUIPMENT_FAILURE, 0.45),
    (Category.NETWORK_IT, 0.15),
    (Category.SOFTWARE_CONFIG, 0.10),
    (Category.SAFETY, 0.03),
    (Category.FACILITY, 0.15),
    (Category.CONSULTATION, 0.05),
    (Category.OTHER, 0.07),
)
TITLES = (
    "3号注塑机停机了",
    "2号车间的空压机报警E07，压力上不去",
    "A线包装机卡料停机",
    "冷却塔水泵漏水了",
    "5号CNC主轴异响",
    "仓库的网络断了扫码枪连不上",
    "MES报工界面打不开",
    "配电房温度偏高",
)
#: Telegram ids of the bench's people and groups on the fake platform.
ENGINEER_ID, MANAGER_ID, GROUP_ID, CUSTOMER_ID = 100_000, 200_000, -1_000_300_000, 500_000
CUSTOMER_GROUPS = 300  # group chats customers report from (one in five tickets)
CHUNK = 5000
NUMBER = re.compile(r"GD-(\d+)")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class Staff:
    engineers: int
    teams: int

    def engineer(self, i: int) -> str:
        return f"e{i:04d}"

    def team_of(self, i: int) -> int:
        return i % self.teams

    def config(self) -> dict[str, Any]:
        people: list[dict[str, Any]] = [
            {
                "id": self.engineer(i),
                "name": f"工程师{i:04d}",
                "role": "engineer",
                "identities": [f"telegram:{ENGINEER_ID + i}"],
                "skills": ["equipment_failure"] if i % 2 else ["network_it"],
                "max_open": 50,
            }
            for i in range(self.engineers)
        ]
        people += [
            {
                "id": f"m{j:02d}",
                "name": f"经理{j:02d}",
                "role": "manager",
                "identities": [f"telegram:{MANAGER_ID + j}"],
            }
            for j in range(self.teams)
        ]
        people.append({"id": "disp", "name": "调度", "role": "dispatcher"})
        teams = [
            {
                "id": f"t{j:02d}",
                "name": f"维修{j:02d}组",
                "members": [
                    self.engineer(i) for i in range(self.engineers) if self.team_of(i) == j
                ],
                "lead": f"m{j:02d}",
                "chats": [f"telegram:{GROUP_ID - j}"],
            }
            for j in range(self.teams)
        ]
        return {"people": people, "teams": teams}


def make_settings(url: str, staff: Staff, batch: int | None = None) -> Settings:
    return load_settings(
        None,
        database={"url": url},
        sla={"batch": batch} if batch else {},
        api={"token": "bench-token"},
        security={"secret_key": f"bench-secret-{uuid.uuid4().hex}"},
        webchat={"enabled": False},  # every message goes to the fake platform
        asr={"enabled": False},
        **staff.config(),
    )


class BenchPlatform(FakeAdapter):
    """tests/fakes.py's adapter, registered as ``telegram`` (the platform people's identities
    name), declaring Telegram's limits (PTB ``FloodLimit``: 1/s per chat, 20/min per group,
    30/s for the bot) unless ``--no-limits``."""

    platform: ClassVar[str] = "telegram"

    def __init__(self, base_url: str, limited: bool) -> None:
        super().__init__(base_url)
        self.limited = limited

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        if not self.limited:
            return ()
        chat = destination.chat_id
        out = [RateLimit(f"telegram:chat:{chat}", 1, 1.0), RateLimit("telegram:bot", 30, 1.0)]
        if chat.startswith("-"):
            out.append(RateLimit(f"telegram:group:{chat}", 20, 60.0))
        return out


# --------------------------------------------------------------------------- seeding


def _pick(rng: random.Random, mix: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([v for v, _ in mix], weights=[w for _, w in mix])[0]


_CLOCK_COLUMNS = [c.name for c in SlaClock.__table__.columns]


def _clock_dict(c: SlaClock) -> dict[str, Any]:
    return {name: getattr(c, name) for name in _CLOCK_COLUMNS}


@dataclass
class Seeder:
    """Tickets and clocks as ``sla.sync`` would have left them at ``now`` (the seeding moment):
    met clocks stopped, paused ones without a deadline, running ones "settled" at ``now`` with
    their time used so far, warned/breached/escalated as far as the time used says."""

    policies: Policies
    now: datetime
    margin: float  # seconds: no clock needs a look before now + margin
    horizon: float  # seconds: running clocks' next look is spread up to now + horizon
    rng: random.Random
    breached_share: float = 0.15
    stats: Counter[str] = field(default_factory=Counter)

    def policy(self, priority: Priority, category: Category) -> ResolvedPolicy:
        # The customer does not matter without overrides naming customers (none here).
        return self.policies.resolve(TicketTerms(priority, category, None, frozenset()))

    def clocks(
        self, ticket_id: int, state: TicketState, created: datetime, policy: ResolvedPolicy
    ) -> list[SlaClock]:
        out = []
        for kind in (ClockKind.RESPOND, ClockKind.ARRIVE, ClockKind.RESOLVE, ClockKind.STAY):
            plan = policy.plan(kind, state if kind == ClockKind.STAY else None)
            if plan is None:
                continue
            c = SlaClock(ticket_id=ticket_id, kind=kind.value)
            c.state = plan.state.value if plan.state else None
            c.policy, c.calendar, c.chain = policy.name, policy.calendar.name, policy.chain_name
            c.signature = policy.signature
            c.budget_s, c.used_s, c.warned, c.step = plan.budget_s, 0.0, 0, 0
            c.running_since = c.due_at = c.next_at = c.breached_at = None
            c.met_at = c.escalation_stopped_at = None
            c.started_at = created
            if kind == ClockKind.STAY:
                c.started_at = max(created, self.now - timedelta(hours=self.rng.uniform(0, 30)))
            rule = rule_of(c)
            if state in rule.met_in:
                self._met(c, policy, created)
            elif kind != ClockKind.STAY and state in self.policies.pause_in:
                self._paused(c, policy)
            else:
                self._running(c, policy)
            out.append(c)
        return out

    def _thresholds(self, policy: ResolvedPolicy, used_fraction: float) -> int:
        return sum(1 for f in policy.warn_at if used_fraction >= f)

    def _met(self, c: SlaClock, policy: ResolvedPolicy, created: datetime) -> None:
        u = self.rng.uniform(1.05, 1.6) if self.rng.random() < 0.1 else self.rng.uniform(0.1, 0.95)
        c.used_s = u * c.budget_s
        c.warned = self._thresholds(policy, u)
        c.met_at = created + (self.now - created) * self.rng.uniform(0.05, 0.9)
        if u > 1:
            c.breached_at = c.met_at  # met, but after its deadline
        self.stats["met"] += 1

    def _paused(self, c: SlaClock, policy: ResolvedPolicy) -> None:
        u = self.rng.uniform(0.1, 0.9)
        c.used_s = u * c.budget_s
        c.warned = self._thresholds(policy, u)
        self.stats["paused"] += 1

    def _running(self, c: SlaClock, policy: ResolvedPolicy) -> None:
        cal, now, budget = policy.calendar, self.now, c.budget_s
        c.running_since = now
        if self.rng.random() < self.breached_share and self._breached(c, policy):
            return
        # Business seconds from now to the next look: past the margin, spread over the horizon.
        m = cal.between(now, now + timedelta(seconds=self.margin))
        span = cal.between(
            now + timedelta(seconds=self.margin), now + timedelta(seconds=self.horizon)
        )
        if span < 600:  # the calendar is closed over most of the horizon (a weekend)
            span = cal.seconds_of(1, 0)
        d = m + self.rng.uniform(1.0, span)
        ends = [*policy.warn_at, 1.0]
        starts = [0.0, *policy.warn_at]
        fits = [i for i in range(len(ends)) if (ends[i] - starts[i]) * budget >= d]
        if not fits:  # too short a clock to be that far from its next step: it has breached
            if self._breached(c, policy, tries=12):
                return
            self._stopped(c, policy)
            return
        i = self.rng.choice(fits)
        c.used_s = ends[i] * budget - d
        c.warned = i
        schedule(c, policy)
        self.stats["warned" if i else "running"] += 1

    def _breached(self, c: SlaClock, policy: ResolvedPolicy, tries: int = 6) -> bool:
        """Breached some time ago, its escalation chain run up to now by the sweep."""
        cal, now = policy.calendar, self.now
        for _ in range(tries):
            raw = now - timedelta(seconds=self.rng.uniform(60, 3 * 3600))
            over = cal.between(raw, now)
            if over <= 0:
                continue
            at = cal.add(raw, 0)
            c.used_s, c.warned = c.budget_s + over, len(policy.warn_at)
            c.breached_at, c.due_at, c.step, c.escalation_stopped_at = at, at, 0, None
            c.next_at = cal.add(at, _step_wait(policy.chain, 0, cal))
            due_events(c, now, policy)  # the steps due by now have run
            schedule(c, policy)
            if c.next_at is None or c.next_at > now + timedelta(seconds=self.margin):
                self.stats["breached" if c.next_at else "chain done"] += 1
                return True
        c.used_s, c.warned, c.step = 0.0, 0, 0  # not this way after all: as it was
        c.breached_at = c.due_at = c.next_at = None
        return False

    def _stopped(self, c: SlaClock, policy: ResolvedPolicy) -> None:
        """Breached long ago; someone acted, so the chain stopped (nothing more to look at)."""
        at = self.now - timedelta(hours=self.rng.uniform(3, 24))
        c.used_s, c.warned, c.step = c.budget_s * 1.5, len(policy.warn_at), 1
        c.breached_at = c.due_at = at
        c.escalation_stopped_at = at + timedelta(minutes=20)
        schedule(c, policy)
        self.stats["stopped"] += 1


@dataclass(frozen=True, slots=True)
class ProbeTicket:
    """A ticket kept for the due → outbound run: P1, assigned, its own engineer."""

    ticket: int
    engineer: int  # index: the DM goes to telegram:ENGINEER_ID + engineer
    team: int
    origin: str  # the customer group it was reported in (the chain's post_origin posts there)


@dataclass(slots=True)
class Seeded:
    tickets: int
    clocks: int
    seconds: float
    now: datetime  # the seeding moment: every clock was "settled" then
    probes: list[ProbeTicket]
    stats: dict[str, int]


async def seed(
    hub: Hub, staff: Staff, n: int, customers: int, probes: int, margin: float, horizon_h: float
) -> Seeded:
    t0 = time.perf_counter()
    db = hub.db
    async with db.transaction() as s:
        await repo.sync_staff(s, hub.directory.staff_records())
    async with db.read() as s:
        ids = {p.key: p.id for p in (await s.scalars(select(Person))).all()}
        next_person = int(await s.scalar(select(func.max(Person.id))) or 0) + 1
    now = datetime.now(UTC)
    rng = random.Random(20261202)
    assert hub.env.policies is not None
    seeder = Seeder(hub.env.policies, now, margin, horizon_h * 3600, rng)
    # Probe tickets look next only after the horizon: the busy sweeps never reach them, so
    # their nags in the live run are their first (keys included).
    later = Seeder(hub.env.policies, now, horizon_h * 3600, (horizon_h + 2) * 3600, rng)

    cust_rows, ident_rows, cust_ids = [], [], []
    for k in range(customers):
        pid = next_person + k
        cust_ids.append(pid)
        cust_rows.append(
            {
                "id": pid,
                "key": f"cust-{k}",
                "name": f"客户{k}",
                "role": "customer",
                "skills": [],
                "max_open": 5,
                "locale": None,
                "active": True,
                "created_at": now - timedelta(days=30),
            }
        )
        ident_rows.append(
            {
                "person_id": pid,
                "platform": "telegram",
                "external_id": str(CUSTOMER_ID + k),
                "display_name": f"客户{k}",
            }
        )
    engineer_ids = [ids[staff.engineer(i)] for i in range(staff.engineers)]
    tickets: list[dict[str, Any]] = []
    clocks: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    probe_tickets: list[ProbeTicket] = []

    async def flush() -> None:
        async with db.transaction() as s:
            if tickets:
                await s.execute(insert(Ticket.__table__), tickets)
            if clocks:
                await s.execute(insert(SlaClock.__table__), clocks)
            if events:
                await s.execute(insert(TicketEvent.__table__), events)
        tickets.clear()
        clocks.clear()
        events.clear()

    # The chats tickets came from, as the intake records them: customers' direct chats, and
    # customer groups (the chain's post_origin step posts there).
    chat_rows = [
        {"platform": "telegram", "chat_id": str(CUSTOMER_ID + k), "kind": "direct"}
        for k in range(customers)
    ]
    chat_rows += [
        {"platform": "telegram", "chat_id": str(GROUP_ID - 1000 - g), "kind": "group"}
        for g in range(min(CUSTOMER_GROUPS, customers))
    ]
    for row in chat_rows:
        row.update(team_key=None, title=None)
    async with db.transaction() as s:
        for i in range(0, len(cust_rows), CHUNK):
            await s.execute(insert(Person.__table__), cust_rows[i : i + CHUNK])
            await s.execute(insert(Identity.__table__), ident_rows[i : i + CHUNK])
        for i in range(0, len(chat_rows), CHUNK):
            await s.execute(insert(Chat.__table__), chat_rows[i : i + CHUNK])
    clock_id = 0
    for tid in range(1, n + 1):
        probe = len(probe_tickets) < probes
        if probe:  # a P1 equipment fault for its own engineer
            state, priority, category = S.ASSIGNED, Priority.P1, Category.EQUIPMENT_FAILURE
            eng = len(probe_tickets) % staff.engineers
            group = str(GROUP_ID - 1000 - len(probe_tickets) % CUSTOMER_GROUPS)
            probe_tickets.append(ProbeTicket(tid, eng, staff.team_of(eng), group))
        else:
            state = _pick(rng, STATE_MIX)
            priority, category = _pick(rng, PRIORITY_MIX), _pick(rng, CATEGORY_MIX)
            eng = rng.randrange(staff.engineers)
        assignee = None if state == S.NEW else engineer_ids[eng]
        team = staff.team_of(eng) if assignee else rng.randrange(staff.teams)
        reporter = rng.choice(cust_ids)
        k = reporter - next_person
        origin = (
            f"telegram:{CUSTOMER_ID + k}"
            if rng.random() < 0.8
            else f"telegram:{GROUP_ID - 1000 - k % CUSTOMER_GROUPS}"
        )
        if probe:
            origin = f"telegram:{probe_tickets[-1].origin}"
        created = now - timedelta(hours=rng.uniform(0.5, 7 * 24))
        if state == S.RESOLVED:  # resolved recently: not yet for auto-close (72 h)
            updated = now - timedelta(
                hours=rng.uniform(0, min(48.0, (now - created).total_seconds() / 7200))
            )
        else:
            updated = created + (now - created) * rng.uniform(0.3, 1.0)
        policy = seeder.policy(priority, category)
        mine = (later if probe else seeder).clocks(tid, state, created, policy)
        by_kind = {c.kind: c for c in mine}
        for c in mine:
            clock_id += 1
            c.id = clock_id
            clocks.append(_clock_dict(c))
        nexts = [c.next_at for c in mine if c.next_at is not None]

        def due(kind: ClockKind, by_kind: dict[str, SlaClock] = by_kind) -> datetime | None:
            c = by_kind.get(kind.value)
            return c.due_at if c is not None else None

        title = TITLES[tid % len(TITLES)]
        tickets.append(
            {
                "id": tid,
                "number": f"GD-{tid}",
                "title": title,
                "description": f"{title}（bench {tid}）",
                "priority": priority.value,
                "category": category.value,
                "state": state.value,
                "device_code": f"DEV-{tid % 977:03d}",
                "site": f"{tid % 7 + 1}号车间",
                "alarm_code": None,
                "reporter_id": reporter,
                "assignee_id": assignee,
                "team_key": f"t{team:02d}",
                "origin_chat": origin,
                "source_event": f"telegram:bench-{tid}",
                "diagnosis": None,
                "root_cause": None,
                "created_at": created,
                "updated_at": updated,
                "respond_due": due(ClockKind.RESPOND),
                "arrive_due": due(ClockKind.ARRIVE),
                "resolve_due": due(ClockKind.RESOLVE),
                "state_due": due(ClockKind.STAY),
                "sla_next_at": min(nexts) if nexts else None,
                "closed_at": None,
                "version": 1 if state == S.NEW else rng.randint(2, 6),
            }
        )
        ev = {
            "ticket_id": tid,
            "seq": 1,
            "at": created,
            "actor_id": reporter,
            "actor": f"客户{k}",
            "kind": "created",
            "from_state": None,
            "to_state": "new",
            "via": "message",
            "data": {"priority": priority.value, "category": category.value},
            "prev_hash": GENESIS,
        }
        fields = {k: v for k, v in ev.items() if k != "prev_hash"}
        ev["hash"] = chain_hash(GENESIS, key=hub.audit_key, **fields)  # (as the hub writes it)
        tickets[-1]["audit_seq"], tickets[-1]["audit_hash"] = 1, ev["hash"]  # the chain's head
        events.append(ev)
        if len(tickets) >= CHUNK:
            await flush()
    await flush()
    if db.engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
        async with db.transaction() as s:
            tables = ("people", "identities", "chats", "tickets", "sla_clocks", "ticket_events")
            for table in tables:
                await s.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            await s.execute(text("ANALYZE"))
    else:
        async with db.engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")
            await conn.commit()
    seconds = time.perf_counter() - t0
    return Seeded(n, clock_id, seconds, now, probe_tickets, dict(seeder.stats))


# --------------------------------------------------------------------------- sweeps


def ms_stats(values: Sequence[float]) -> dict[str, float]:
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {
        "n": len(v),
        "median": statistics.median(v),
        "p95": percentile(v, 95),
        "max": v[-1],
        "min": v[0],
    }


async def query_plan(hub: Hub, now: datetime) -> list[str]:
    """How the database runs the sweep's claim (it should be an index range scan)."""
    claim = "SELECT id FROM tickets WHERE sla_next_at <= :now ORDER BY sla_next_at LIMIT 200"
    param = bindparam("now", value=now, type_=UTCDateTime())
    async with hub.db.read() as s:
        if hub.db.is_sqlite:
            rows = await s.execute(text("EXPLAIN QUERY PLAN " + claim).bindparams(param))
            return [str(r[-1]) for r in rows]
        sql = "EXPLAIN (ANALYZE, BUFFERS) " + claim + " FOR UPDATE SKIP LOCKED"
        rows = await s.execute(text(sql).bindparams(param))
        return [str(r[0]) for r in rows]


async def idle_sweeps(hub: Hub, now: datetime, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        handled = await escalation.sweep(hub.work, now=now, batch=hub.settings.sla.batch)
        out.append((time.perf_counter() - t) * 1e3)
        if handled:
            raise RuntimeError(f"idle sweep at {now} found {handled} tickets due")
    return out


@dataclass(slots=True)
class BusyRun:
    n: int
    run: int
    handled: int
    batches: int
    ms: float
    per_ticket_ms: float
    outbox: int  # rows queued
    digests: int
    events: dict[str, int]  # audit rows written, by kind


async def busy_sweep(hub: Hub, n: int, run: int, after: datetime) -> tuple[BusyRun, datetime]:
    """Pick "now" so that exactly ``n`` tickets are due; sweep until nothing is due."""
    async with hub.db.read() as s:
        now = await s.scalar(
            select(Ticket.sla_next_at)
            .where(Ticket.sla_next_at.is_not(None))
            .order_by(Ticket.sla_next_at)
            .offset(n - 1)
            .limit(1)
        )
        before_events = int(await s.scalar(select(func.max(TicketEvent.id))) or 0)
        before_outbox = int(await s.scalar(select(func.max(OutboxMessage.id))) or 0)
    assert now is not None and now > after, (now, after)
    batch = hub.settings.sla.batch
    handled = batches = 0
    t = time.perf_counter()
    while True:  # as Hub.sla_sweep: batch after batch while a batch comes back full
        got = await escalation.sweep(hub.work, now=now, batch=batch)
        handled += got
        batches += 1 if got else 0
        if got < batch:
            break
    ms = (time.perf_counter() - t) * 1e3
    async with hub.db.transaction() as s:
        kinds = await s.execute(
            select(TicketEvent.kind, func.count())
            .where(TicketEvent.id > before_events)
            .group_by(TicketEvent.kind)
        )
        events = {str(k): int(v) for k, v in kinds}
        keys = (
            await s.scalars(
                select(OutboxMessage.idempotency_key).where(OutboxMessage.id > before_outbox)
            )
        ).all()
        # As if the sender had delivered them: the next run starts with nothing waiting.
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.state == "pending")
            .values(state="sent", sent_at=now)
        )
    digests = sum(1 for k in keys if k.startswith("sla-digest:"))
    per = ms / handled if handled else float("nan")
    return BusyRun(n, run, handled, batches, ms, per, len(keys), digests, events), now


# --------------------------------------------------------------------------- due → outbound


@dataclass(slots=True)
class Probe:
    ticket: int
    chat: str  # where the nag must arrive (chat id on the fake platform)
    kind: str  # warning | breach-dm | breach-origin | breach-team
    due_wall: float  # time.time() of the due instant
    arrived: float | None = None  # time.time() of the first call that carries it
    digest: bool = False


@dataclass(slots=True)
class SweepRecord:
    now: float  # the sweep's "now" (time.time())
    started: float
    ended: float
    handled: int


async def arm(
    hub: Hub, tickets: Sequence[ProbeTicket], offsets: Sequence[float], breach: Sequence[bool]
) -> list[Probe]:
    """Make each probe ticket's respond clock reach a step ``offsets[i]`` seconds from now:
    its 50 % warning, or (``breach[i]``) its deadline. The clock is rewritten as ``sla.sync``
    would leave it after a sync at this moment; the ticket's deadline columns follow."""
    assert hub.env.policies is not None
    policy = hub.env.policies.resolve(
        TicketTerms(Priority.P1, Category.EQUIPMENT_FAILURE, None, frozenset())
    )
    armed = datetime.now(UTC)
    probes: list[Probe] = []
    async with hub.db.transaction() as s:
        for pt, offset, breaching in zip(tickets, offsets, breach, strict=True):
            clock = await s.scalar(
                select(SlaClock).where(SlaClock.ticket_id == pt.ticket, SlaClock.kind == "respond")
            )
            assert clock is not None
            others = await s.scalars(
                select(SlaClock.next_at).where(
                    SlaClock.ticket_id == pt.ticket, SlaClock.kind != "respond"
                )
            )
            due = armed + timedelta(seconds=offset)
            clock.running_since = armed
            clock.breached_at = clock.escalation_stopped_at = clock.met_at = None
            clock.step = 0
            if breaching:
                clock.used_s, clock.warned = clock.budget_s - offset, len(policy.warn_at)
            else:
                clock.used_s, clock.warned = policy.warn_at[0] * clock.budget_s - offset, 0
            schedule(clock, policy)
            assert clock.next_at is not None and abs((clock.next_at - due).total_seconds()) < 1e-3
            nexts = [x for x in others.all() if x is not None] + [clock.next_at]
            await s.execute(
                update(Ticket)
                .where(Ticket.id == pt.ticket)
                .values(respond_due=clock.due_at, sla_next_at=min(nexts))
                .execution_options(synchronize_session=False)
            )
            dm, wall = str(ENGINEER_ID + pt.engineer), due.timestamp()
            if breaching:  # the chain's first steps: assignee, origin group, team group
                probes.append(Probe(pt.ticket, dm, "breach-dm", wall))
                probes.append(Probe(pt.ticket, pt.origin, "breach-origin", wall))
                probes.append(Probe(pt.ticket, str(GROUP_ID - pt.team), "breach-team", wall))
            else:
                probes.append(Probe(pt.ticket, dm, "warning", wall))
    return probes


class Watcher:
    """Matches the fake platform's calls to the nags expected (by ticket and chat)."""

    def __init__(self, api: FakePlatformApi, mono_to_wall: float) -> None:
        self.api = api
        self.mono_to_wall = mono_to_wall
        self.seen = 0
        self.other: list[str] = []  # calls that carried no probe: chat and key

    async def wait(self, probes: list[Probe], deadline: float) -> tuple[int, int]:
        """Until every probe has arrived or ``deadline`` (time.time()); returns the digests
        among the calls seen, and the calls that carried no probe."""
        wanted = {(p.ticket, p.chat): p for p in probes}
        digests = other = 0
        while True:
            for call in self.api.calls[self.seen :]:
                self.seen += 1
                if call.status != 200:
                    continue
                msg = call.body["message"]
                if msg.get("kind") == "card":
                    tids = {int(msg["ticket_id"])}
                else:
                    tids = {int(x) for x in NUMBER.findall(msg.get("text", ""))}
                digest = str(call.body.get("key", "")).startswith("sla-digest:")
                digests += digest
                hit = False
                for tid in tids:
                    p = wanted.get((tid, call.chat))
                    if p is not None and p.arrived is None:
                        p.arrived, p.digest, hit = call.at + self.mono_to_wall, digest, True
                if not hit:
                    other += 1
                    self.other.append(f"{call.chat} {call.body.get('key')}")
            if all(p.arrived is not None for p in probes) or time.time() > deadline:
                return digests, other
            await asyncio.sleep(0.02)


def summarize(
    probes: list[Probe], records: list[SweepRecord], digests: int, other: int
) -> dict[str, Any]:
    pickup, swept, deliver, lat = [], [], [], []
    by_kind: dict[str, list[float]] = {}
    for p in probes:
        if p.arrived is None:
            continue
        lat.append(p.arrived - p.due_wall)
        by_kind.setdefault(p.kind, []).append(p.arrived - p.due_wall)
        rec = next((r for r in records if r.now >= p.due_wall and r.handled), None)
        if rec is not None:
            pickup.append(rec.started - p.due_wall)
            swept.append(rec.ended - rec.started)
            deliver.append(p.arrived - rec.ended)
    first, last = min(p.due_wall for p in probes), max(p.due_wall for p in probes)
    window = [r for r in records if first - 1 <= r.started <= last + 30]
    starts = sorted(r.started for r in window)
    return {
        "nags": len(probes),
        "missing": sum(1 for p in probes if p.arrived is None),
        "in_digests": sum(1 for p in probes if p.digest),
        "digest_calls": digests,
        "other_calls": other,
        "latency_s": ms_stats(lat),
        "by_kind": {k: ms_stats(v) for k, v in sorted(by_kind.items())},
        "pickup_s": ms_stats(pickup),  # due instant → start of the sweep that saw it
        "sweep_s": ms_stats(swept),  # that sweep's duration
        "deliver_s": ms_stats(deliver),  # end of that sweep → the platform has the call
        "sweeps": len(window),
        "sweeps_with_work": sum(1 for r in window if r.handled),
        "max_tick_gap_s": max((b - a for a, b in itertools.pairwise(starts)), default=None),
        "probes": [
            {
                "ticket": p.ticket,
                "chat": p.chat,
                "kind": p.kind,
                "latency_s": None if p.arrived is None else p.arrived - p.due_wall,
                "digest": p.digest,
            }
            for p in probes
        ],
    }


async def live_run(args: argparse.Namespace, url: str, staff: Staff, seeded: Seeded) -> dict:
    """The hub as it runs: start it, let the start-up pass finish, then the scenarios."""
    api = FakePlatformApi()
    runner = web.AppRunner(api.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    watcher = Watcher(api, time.time() - time.monotonic())
    records: list[SweepRecord] = []
    real_sweep = escalation.sweep

    async def timed_sweep(*a: Any, now: datetime, **kw: Any) -> int:
        t = time.time()
        handled = await real_sweep(*a, now=now, **kw)
        records.append(SweepRecord(now.timestamp(), t, time.time(), handled))
        return handled

    hub = Hub(make_settings(url, staff, args.sla_batch))
    hub.adapters["telegram"] = BenchPlatform(f"http://{LOOPBACK}:{port}", not args.no_limits)
    escalation.sweep = timed_sweep  # type: ignore[assignment]  # this process only: timing
    out: dict[str, Any] = {"scenarios": {}}
    spread_set = seeded.probes[: args.probes]
    burst_set = seeded.probes[args.probes : args.probes + args.burst]
    try:
        t0 = time.time()
        await hub.start()
        pass_ = next((t for t in hub._tasks if t.get_name() == "sla-reconcile"), None)
        if pass_ is not None:
            await asyncio.wait_for(pass_, timeout=600)
        up = time.time()
        out["start_s"] = up - t0  # start() and the start-up policy pass over every open ticket
        out["sweeps_during_start_ms"] = ms_stats(
            [(r.ended - r.started) * 1e3 for r in records if r.started <= up]
        )
        await asyncio.sleep(10.0)  # idle ticks of the real loop
        out["idle_sweeps_ms"] = ms_stats(
            [(r.ended - r.started) * 1e3 for r in records if r.started > up and not r.handled]
        )
        if spread_set:
            n = len(spread_set)
            offsets = [args.lead + args.spread * i / n for i in range(n)]
            k = args.breach_every
            breach = [k > 0 and i % k == k - 1 for i in range(n)]
            probes = await arm(hub, spread_set, offsets, breach)
            found = await watcher.wait(probes, max(p.due_wall for p in probes) + args.wait)
            out["scenarios"]["spread"] = summarize(probes, records, *found)
            out["scenarios"]["spread"]["other"] = watcher.other[:20]
            watcher.other = []
        if burst_set:
            await asyncio.sleep(2.0)
            offsets = [args.lead] * len(burst_set)
            probes = await arm(hub, burst_set, offsets, [False] * len(burst_set))
            found = await watcher.wait(probes, probes[0].due_wall + args.wait)
            out["scenarios"]["burst"] = summarize(probes, records, *found)
            out["scenarios"]["burst"]["other"] = watcher.other[:20]
        out["calls"] = len(api.calls)
    finally:
        with contextlib.suppress(Exception):
            await hub.stop()
        escalation.sweep = real_sweep  # type: ignore[assignment]
        await runner.cleanup()
    return out


# --------------------------------------------------------------------------- one backend


@dataclass(slots=True)
class BackendResult:
    backend: str
    code: str
    seeded: dict[str, Any]
    plan: list[str]
    idle_ms: dict[str, float]
    busy: list[dict[str, Any]]
    busy_medians: dict[int, dict[str, float]]
    live: dict[str, Any] | None
    seconds: float


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or v != v else f"{v:,.{digits}f}"


async def run_backend(args: argparse.Namespace, backend: str) -> BackendResult:
    started = time.perf_counter()
    staff = Staff(args.engineers, args.teams)
    scratch: str | None = None
    with tempfile.TemporaryDirectory(prefix="gongdan-sla-bench-") as tmp:
        if backend == "postgres":
            scratch = f"gongdan_bench_{uuid.uuid4().hex[:10]}"
            await _pg_admin(args.postgres, f'CREATE DATABASE "{scratch}"')
            url = args.postgres.rpartition("/")[0] + "/" + scratch
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'sla-bench.db'}"
        try:
            await migrate_async(url)
            return await _measure(args, backend, url, staff, started)
        finally:
            if scratch is not None:
                await _pg_admin(args.postgres, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


async def _measure(
    args: argparse.Namespace, backend: str, url: str, staff: Staff, started: float
) -> BackendResult:
    code = code_digest()
    hub = Hub(make_settings(url, staff, args.sla_batch))
    # Nothing is sent in these phases (no sender runs), but the platform must be "running" for
    # the sweep to address people on it.
    hub.adapters["telegram"] = BenchPlatform(f"http://{LOOPBACK}:9", not args.no_limits)
    try:
        print(f"[{backend}] seeding {args.tickets:,} open tickets …", flush=True)
        seeded = await seed(
            hub,
            staff,
            args.tickets,
            args.customers,
            args.probes + args.burst,
            args.margin,
            args.horizon,
        )
        print(
            f"[{backend}] seeded {seeded.tickets:,} tickets, {seeded.clocks:,} clocks, "
            f"{seeded.tickets:,} audit rows in {seeded.seconds:.1f} s "
            f"({seeded.tickets / seeded.seconds:,.0f} tickets/s); clocks: {seeded.stats}",
            flush=True,
        )
        async with hub.db.read() as s:
            due_count = await s.scalar(select(func.count()).where(Ticket.sla_next_at.is_not(None)))
            first = await s.scalar(select(func.min(Ticket.sla_next_at)))
        assert first is not None
        print(
            f"[{backend}] {due_count:,} tickets have a next look; the first at "
            f"now + {(first - seeded.now).total_seconds() / 60:.1f} min",
            flush=True,
        )
        plan = await query_plan(hub, seeded.now)
        print(f"[{backend}] claim plan: " + " | ".join(p.strip() for p in plan[:4]), flush=True)
        if args.quiet_pct > 0:
            await wait_quiet(args.quiet_pct, args.quiet_wait)
        await idle_sweeps(hub, seeded.now, 3)  # warm: connections, compiled statements
        idle = ms_stats(await idle_sweeps(hub, seeded.now, args.idle_runs))
        print(
            f"[{backend}] idle sweep ({idle['n']} runs): median {_fmt(idle['median'], 2)} ms, "
            f"p95 {_fmt(idle['p95'], 2)} ms, max {_fmt(idle['max'], 2)} ms",
            flush=True,
        )
        busy: list[BusyRun] = []
        after = seeded.now
        for n in args.busy:
            for run in range(1, args.busy_runs + 1):
                r, after = await busy_sweep(hub, n, run, after)
                busy.append(r)
                print(
                    f"[{backend}] busy N={n} run {run}: {r.handled} tickets in {r.batches} "
                    f"batch(es), {r.ms:,.0f} ms, {r.per_ticket_ms:.2f} ms/ticket; "
                    f"{r.outbox} messages queued ({r.digests} digests); audit {r.events}",
                    flush=True,
                )
        async with hub.db.transaction() as s:  # what the busy runs "sent" is history now
            await s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.sent_at > seeded.now)
                .values(sent_at=seeded.now)
            )
    finally:
        await hub.db.dispose()
    busy_medians = {
        n: {
            "ms": statistics.median(r.ms for r in busy if r.n == n),
            "per_ticket_ms": statistics.median(r.per_ticket_ms for r in busy if r.n == n),
            "outbox": statistics.median(r.outbox for r in busy if r.n == n),
            "digests": statistics.median(r.digests for r in busy if r.n == n),
        }
        for n in args.busy
    }
    live = None
    if args.probes or args.burst:
        if args.quiet_pct > 0:
            await wait_quiet(args.quiet_pct, args.quiet_wait)
        print(f"[{backend}] due → outbound: starting the hub …", flush=True)
        live = await live_run(args, url, staff, seeded)
        if time.time() > seeded.now.timestamp() + args.margin:
            print(f"[{backend}] warning: the run went past --margin; background tickets fell due")
        print(
            f"[{backend}] hub started and start-up policy pass done in {live['start_s']:.1f} s; "
            f"idle sweeps of the running hub: median "
            f"{_fmt(live['idle_sweeps_ms'].get('median'), 2)} ms",
            flush=True,
        )
        for name, sc in live["scenarios"].items():
            lat = sc["latency_s"]
            print(
                f"[{backend}] {name}: {sc['nags']} nags, {sc['missing']} missing, "
                f"{sc['in_digests']} in digests, {sc['other_calls']} other calls; "
                f"due → platform median {_fmt(lat.get('median'), 3)} s, "
                f"p95 {_fmt(lat.get('p95'), 3)} s, max {_fmt(lat.get('max'), 3)} s "
                f"(pickup {_fmt(sc['pickup_s'].get('median'), 3)} s, "
                f"sweep {_fmt(sc['sweep_s'].get('median'), 3)} s, "
                f"delivery {_fmt(sc['deliver_s'].get('median'), 3)} s, medians)",
                flush=True,
            )
            if sc["other"]:
                print(f"[{backend}]   other calls: {sc['other']}")
    return BackendResult(
        backend,
        code,
        {
            "tickets": seeded.tickets,
            "clocks": seeded.clocks,
            "seconds": seeded.seconds,
            "tickets_per_s": seeded.tickets / seeded.seconds,
            "clock_states": seeded.stats,
            "with_next_look": due_count,
            "first_look_min": (first - seeded.now).total_seconds() / 60,
        },
        plan,
        idle,
        [
            {k: getattr(r, k) for k in BusyRun.__slots__}  # type: ignore[attr-defined]
            for r in busy
        ],
        busy_medians,
        live,
        time.perf_counter() - started,
    )


# --------------------------------------------------------------------------- report


def report(results: Sequence[BackendResult], args: argparse.Namespace) -> None:
    print(f"\n{args.tickets:,} open tickets; busy: median of {args.busy_runs} runs\n")
    head = ["backend", "seed s", "idle med ms", "idle p95 ms", "idle max ms"]
    head += [f"N={n} ms" for n in args.busy] + [f"N={n} ms/tkt" for n in args.busy]
    rows = []
    for r in results:
        row = [
            r.backend,
            _fmt(r.seeded["seconds"], 1),
            _fmt(r.idle_ms["median"], 2),
            _fmt(r.idle_ms["p95"], 2),
            _fmt(r.idle_ms["max"], 2),
        ]
        row += [_fmt(r.busy_medians[n]["ms"], 0) for n in args.busy]
        row += [_fmt(r.busy_medians[n]["per_ticket_ms"], 2) for n in args.busy]
        rows.append(row)
    _table(head, rows)
    live = [(r.backend, r.live) for r in results if r.live is not None]
    if live:
        print("\ndue → platform call, seconds (pickup, sweep, delivery: medians)\n")
        head = ["backend", "scenario", "nags", "missing", "in digests", "median", "p95", "max"]
        head += ["pickup", "sweep", "delivery", "start s"]
        rows = []
        for backend, lv in live:
            for name, sc in lv["scenarios"].items():
                lat = sc["latency_s"]
                rows.append(
                    [
                        backend,
                        name,
                        str(sc["nags"]),
                        str(sc["missing"]),
                        str(sc["in_digests"]),
                        _fmt(lat.get("median"), 3),
                        _fmt(lat.get("p95"), 3),
                        _fmt(lat.get("max"), 3),
                        _fmt(sc["pickup_s"].get("median"), 3),
                        _fmt(sc["sweep_s"].get("median"), 3),
                        _fmt(sc["deliver_s"].get("median"), 3),
                        _fmt(lv["start_s"], 1),
                    ]
                )
        _table(head, rows)
    print("\ntargets: idle sweep < 100 ms; nag ≤ 2 s after it is due")


def _table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    for row in [head, ["-" * w for w in widths], *rows]:
        cells = zip(row, widths, strict=True)
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(cells)))


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--tickets", type=int, default=100_000, help="open tickets to seed")
    p.add_argument(
        "--postgres",
        metavar="URL",
        help="postgresql+asyncpg://user@127.0.0.1:5432/postgres — a scratch database "
        "gongdan_bench_<hex> is created on that server and dropped at the end",
    )
    p.add_argument("--no-sqlite", action="store_true", help="only the PostgreSQL backend")
    p.add_argument("--engineers", type=int, default=200, help="engineers, one DM each")
    p.add_argument("--teams", type=int, default=10, help="teams, one group chat each")
    p.add_argument("--customers", type=int, default=5000, help="customers reporting")
    p.add_argument("--margin", type=float, default=900.0, help="s: no look due before this")
    p.add_argument("--horizon", type=float, default=8.0, help="h: looks spread up to this")
    p.add_argument("--idle-runs", type=int, default=50, help="idle sweeps timed")
    p.add_argument(
        "--busy",
        type=lambda s: [int(x) for x in s.split(",") if x.strip()],
        default=[50, 200, 1000],
        help="tickets due at once, comma separated (above sla.batch: several batches)",
    )
    p.add_argument("--busy-runs", type=int, default=3, help="runs per N")
    p.add_argument("--probes", type=int, default=100, help="tickets falling due live (0: skip)")
    p.add_argument("--spread", type=float, default=20.0, help="s over which they fall due")
    p.add_argument(
        "--burst", type=int, default=200, help="then this many due at one instant (0: skip)"
    )
    p.add_argument("--lead", type=float, default=3.0, help="s from arming to the first due")
    p.add_argument(
        "--breach-every", type=int, default=5, help="every k-th probe breaches (0: none)"
    )
    p.add_argument("--wait", type=float, default=30.0, help="s after the last due to wait")
    p.add_argument("--no-limits", action="store_true", help="declare no platform rate limits")
    p.add_argument("--sla-batch", type=int, help="[sla] batch (default: the hub's)")
    p.add_argument("--no-pin", action="store_true", help="do not pin the bench to one CPU")
    p.add_argument("--quiet-pct", type=float, default=15.0, help="wait for a quiet machine")
    p.add_argument("--quiet-wait", type=float, default=60.0, help="longest such wait (s)")
    p.add_argument("--json", type=Path, help="write every figure here")
    return p


async def run(args: argparse.Namespace) -> list[BackendResult]:
    backends = [] if args.no_sqlite else ["sqlite"]
    if args.postgres:
        _check_loopback(args.postgres)
        backends.append("postgres")
    if not backends:
        raise SystemExit("bench: nothing to run (--no-sqlite without --postgres)")
    if max(args.probes, args.burst) > args.engineers:
        raise SystemExit("bench: --probes and --burst must not exceed --engineers (a DM each)")
    pinned = "none"
    if not args.no_pin and len(os.sched_getaffinity(0)) >= 2:
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})  # the hub gets one core; PostgreSQL may use the other
        pinned = f"CPU {cpu}"
    print(f"machine: {machine()}\npinned: {pinned}", flush=True)
    results = []
    for backend in backends:
        results.append(await run_backend(args, backend))
        if args.json is not None:
            write_json(args, results)
    report(results, args)
    return results


def write_json(args: argparse.Namespace, results: Sequence[BackendResult]) -> None:
    import json
    from dataclasses import asdict

    out = {
        "machine": machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": [asdict(r) for r in results],
    }
    args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    for key in [k for k in os.environ if k.startswith("GONGDAN_")]:
        del os.environ[key]  # the bench builds its settings itself
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.ERROR)  # "skipped: already running"
    args = _parser().parse_args(argv)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
