"""SLA clocks on tickets: started at intake, settled on every transition, snoozed by managers.

Every change of a ticket's state runs ``sync``: each clock is brought up to the moment (business
time accrues only while it runs), met clocks stop for good, paused ones wait, the stay clock
follows the state, and a person acting stops any escalation under way. The ticket's deadline
columns and ``sla_next_at`` (what the sweep in ``bot/flows/escalation.py`` claims by) are
written from the clocks in the same transaction. A policy that changed since a clock was set
(``signature``) is applied on the next sync, and at start-up by ``reconcile``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import NotAllowed, StaleTransition
from bot.events import Action
from bot.flows import FlowContext
from bot.sla.clocks import (
    Policies,
    ResolvedPolicy,
    TicketTerms,
    earliest,
    remaining,
    schedule,
    settle,
    used_at,
)
from bot.texts import local_time, say, short_time, span
from bot.tickets import (
    OPEN_STATES,
    SLA_ACTION_ROLES,
    Category,
    ClockKind,
    Priority,
    SlaAction,
    TicketState,
    clock_label,
)
from storage import clocks as store
from storage import repo
from storage.db import Database
from storage.models import Person, SlaClock, Ticket

__all__ = [
    "SNOOZE_COMMAND",
    "clock_lines",
    "clock_view",
    "reconcile",
    "snooze",
    "start",
    "sync",
]

log = logging.getLogger(__name__)

_TIMED = (ClockKind.RESPOND, ClockKind.ARRIVE, ClockKind.RESOLVE)
#: "延期 2h 等厂家回电" / "snooze 90m waiting for the vendor" (after the ticket number)
SNOOZE_COMMAND = re.compile(
    r"^\s*(?:延期|snooze)\s*(\d+(?:\.\d+)?)\s*(m|min|分钟|h|小时|d|天)?\s*[,，:：]?\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)


async def terms_of(session: AsyncSession, policies: Policies, ticket: Ticket) -> TicketTerms:
    refs: set[str] = set()
    if policies.needs_customer:  # only then: the terms are also the policy cache's key
        identities = await repo.identities_of(session, ticket.reporter_id)
        refs = {ticket.origin_chat, *(f"{i.platform}:{i.external_id}" for i in identities)}
    return TicketTerms(
        priority=Priority(ticket.priority),
        category=Category(ticket.category),
        team_calendar=policies.team_calendars.get(ticket.team_key or ""),
        customer_refs=frozenset(refs),
    )


async def policy_of(session: AsyncSession, policies: Policies, ticket: Ticket) -> ResolvedPolicy:
    return policies.resolve(await terms_of(session, policies, ticket))


def _new_clock(
    ticket: Ticket, kind: ClockKind, budget: float, policy: ResolvedPolicy, since: datetime
) -> SlaClock:
    clock = SlaClock(ticket_id=ticket.id, kind=kind.value)
    _restart(clock, budget, policy, since)
    return clock


def _restart(clock: SlaClock, budget: float, policy: ResolvedPolicy, since: datetime) -> None:
    clock.policy, clock.calendar, clock.chain = policy.name, policy.calendar.name, policy.chain_name
    clock.signature = policy.signature
    clock.budget_s, clock.used_s = budget, 0.0
    clock.started_at, clock.running_since = since, since
    clock.warned, clock.step = 0, 0
    clock.due_at = clock.next_at = clock.breached_at = None
    clock.met_at = clock.escalation_stopped_at = None


async def start(ctx: FlowContext, ticket: Ticket) -> None:
    """A new ticket's clocks, running since it was reported."""
    await sync(ctx, ticket, actor=None, since=ticket.created_at)


async def sync(
    ctx: FlowContext,
    ticket: Ticket,
    *,
    actor: Person | None,
    since: datetime | None = None,
) -> list[SlaClock]:
    """Bring every clock of ``ticket`` (in its current state) up to ``ctx.now``."""
    if ctx.policies is None:
        return []
    now, s = ctx.now, ctx.session
    policies = ctx.policies
    policy = await policy_of(s, policies, ticket)
    state = TicketState(ticket.state)
    clocks = {c.kind: c for c in await store.clocks_for(s, ticket.id)}
    stopped: list[str] = []
    late: list[SlaClock] = []
    for kind in (*_TIMED, ClockKind.STAY):
        plan = policy.plan(kind, state if kind == ClockKind.STAY else None)
        clock = clocks.get(kind.value)
        if clock is not None and kind == ClockKind.STAY and clock.state != state.value:
            # The state it measured is over (its breaches are in the audit trail): the row
            # measures the new state from now, or goes if that state has no limit.
            if plan is None:
                await s.delete(clock)
                del clocks[kind.value]
                continue
            _restart(clock, plan.budget_s, policy, now)
            clock.state = state.value
        if clock is None:
            if plan is None:
                continue
            begun = since or (now if kind == ClockKind.STAY else ticket.created_at)
            clock = _new_clock(ticket, kind, plan.budget_s, policy, begun)
            clock.state = plan.state.value if plan.state else None
            clock.used_s = policy.calendar.between(begun, now) if begun < now else 0.0
            clock.running_since = None
            s.add(clock)
            clocks[kind.value] = clock
        elif plan is None:
            await s.delete(clock)
            del clocks[kind.value]
            continue
        elif clock.signature != policy.signature:
            _apply_policy(clock, policy, plan.budget_s, policies, now)
        if (
            actor is not None
            and clock.breached_at is not None
            and clock.escalation_stopped_at is None
            and clock.met_at is None
        ):
            clock.escalation_stopped_at = now  # someone acted: the chain stops
            stopped.append(kind.value)
        was_met = clock.met_at is not None
        settle(clock, state, now, policy, policies.pause_in)
        newly_met = not was_met and clock.met_at is not None
        if newly_met and clock.breached_at is None and clock.used_s > clock.budget_s:
            clock.breached_at = clock.met_at  # met, but after its deadline: on the record
            late.append(clock)
    await s.flush()
    await project(s, ticket.id, list(clocks.values()))
    if stopped or late:
        await repo.append_event(
            s,
            ticket.id,
            actor=actor.name if actor else "system",
            actor_id=actor.id if actor else None,
            kind="sla",
            via="system",
            data={
                **({"escalation_stopped": stopped} if stopped else {}),
                **({"met_late": [c.kind for c in late]} if late else {}),
            },
            at=now,
        )
    return list(clocks.values())


def _apply_policy(
    clock: SlaClock, policy: ResolvedPolicy, budget: float, policies: Policies, now: datetime
) -> None:
    """Switch a clock to a changed policy: time used so far counts on its old calendar."""
    old = policies.calendar(clock.calendar)
    clock.used_s = used_at(clock, now, old)
    clock.running_since = now if clock.running_since is not None else None
    clock.budget_s = budget
    clock.policy, clock.calendar, clock.chain = policy.name, policy.calendar.name, policy.chain_name
    clock.signature = policy.signature
    if clock.breached_at is not None and clock.used_s < budget:
        clock.breached_at = None  # the new budget is not spent: no longer breached
        clock.step = 0
    clock.warned = sum(1 for f in policy.warn_at if clock.used_s >= f * budget)


async def project(session: AsyncSession, ticket_id: int, clocks: list[SlaClock]) -> None:
    """Write the ticket's deadline columns from its clocks."""
    by_kind = {c.kind: c for c in clocks}

    def due(kind: ClockKind) -> datetime | None:
        c = by_kind.get(kind.value)
        return c.due_at if c is not None else None

    await store.set_deadlines(
        session,
        ticket_id,
        respond_due=due(ClockKind.RESPOND),
        arrive_due=due(ClockKind.ARRIVE),
        resolve_due=due(ClockKind.RESOLVE),
        state_due=due(ClockKind.STAY),
        sla_next_at=earliest(c.next_at for c in clocks),
    )


# ------------------------------------------------------------------------------------ snooze


async def snooze(
    ctx: FlowContext,
    ticket: Ticket,
    actor: Person,
    minutes: float,
    reason: str,
    *,
    expected_version: int,
) -> list[SlaClock]:
    """延期: push the deadlines that nag (or, if none does, every running one) by
    ``minutes`` of business time. Managers only; a reason is required; audited."""
    from bot.flows.actions import roles_of

    if not roles_of(actor, ticket) & SLA_ACTION_ROLES[SlaAction.SNOOZE]:
        raise NotAllowed(action=SlaAction.SNOOZE, state=TicketState(ticket.state))
    if ctx.policies is None:
        return []
    if not await repo.bump_version(ctx.session, ticket.id, expected_version):
        raise StaleTransition()
    now = ctx.now
    policy = await policy_of(ctx.session, ctx.policies, ticket)
    clocks = await store.clocks_for(ctx.session, ticket.id)
    running = [c for c in clocks if c.running_since is not None and c.met_at is None]
    at_risk = [c for c in running if c.breached_at is not None or c.warned > 0]
    chosen = at_risk or running
    extra = minutes * 60.0
    before = {c.kind: c.due_at for c in chosen}
    for clock in chosen:
        clock.used_s = used_at(clock, now, policy.calendar)
        clock.running_since = now
        clock.budget_s = max(clock.budget_s, clock.used_s) + extra
        clock.breached_at = None
        clock.escalation_stopped_at = None
        clock.step = 0
        clock.warned = sum(1 for f in policy.warn_at if clock.used_s >= f * clock.budget_s)
        schedule(clock, policy)
    await ctx.session.flush()
    await project(ctx.session, ticket.id, clocks)
    await ctx.record(
        ticket.id,
        kind="sla_snooze",
        via="button" if isinstance(ctx.event, Action) else "message",
        data={
            "minutes": minutes,
            "reason": reason,
            "clocks": {
                c.kind: {
                    "from": _iso(before[c.kind]),
                    "to": _iso(c.due_at),
                }
                for c in chosen
            },
        },
    )
    return chosen


def snooze_minutes(amount: str | None, unit: str | None, default: int) -> float:
    if not amount:
        return float(default)
    n = float(amount)
    unit = (unit or "m").lower()
    return n * (60 if unit in ("h", "小时") else 1440 if unit in ("d", "天") else 1)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


# --------------------------------------------------------------------------- what people see


def clock_status(clock: SlaClock, now: datetime, policies: Policies) -> dict[str, Any]:
    cal = policies.calendar(clock.calendar)
    left = remaining(clock, now, cal)
    return {
        "kind": clock.kind,
        "state": clock.state,
        "policy": clock.policy,
        "calendar": clock.calendar,
        "budget_seconds": round(clock.budget_s),
        "due": _iso(clock.due_at),
        "remaining_business_seconds": round(left),
        "paused": clock.running_since is None and clock.met_at is None,
        "breached": clock.breached_at is not None,
        "breached_at": _iso(clock.breached_at),
        "met_at": _iso(clock.met_at),
        "escalation_step": clock.step,
        "escalation_stopped_at": _iso(clock.escalation_stopped_at),
        "next_check": _iso(clock.next_at),
    }


async def clock_view(
    session: AsyncSession, policies: Policies | None, ticket: Ticket, now: datetime
) -> list[dict[str, Any]]:
    if policies is None:
        return []
    return [clock_status(c, now, policies) for c in await store.clocks_for(session, ticket.id)]


def clock_line(clock: SlaClock, now: datetime, policies: Policies, locale: str, tz: Any) -> str:
    """ "响应已超时 20 分钟（应于 12-02 10:15）" and friends."""
    state = TicketState(clock.state) if clock.state else None
    name = clock_label(ClockKind(clock.kind), locale, state)
    if clock.met_at is not None:
        key = "sla.met_late" if clock.breached_at is not None else "sla.met"
        return say(key, locale, clock=name)
    cal = policies.calendar(clock.calendar)
    left = remaining(clock, now, cal)
    if clock.running_since is None:
        return say("sla.paused", locale, clock=name, left=span(max(left, 0), locale))
    due = local_time(clock.due_at, tz) if clock.due_at else "—"
    if left <= 0 or clock.breached_at is not None:
        return say("sla.overdue", locale, clock=name, over=span(-left, locale), due=due)
    return say("sla.due_in", locale, clock=name, left=span(left, locale), due=due)


async def deadline_summary(ctx: FlowContext, ticket: Ticket, locale: str) -> str:
    """For a ticket card: "响应 10:10 前 · 到场 12:00 前", "响应已超时（10:10）"… — absolute
    times, so the card stays true between its updates (a breach does not redraw every copy
    of every card: the nags say it, and the next change of the ticket redraws them)."""
    if ctx.policies is None:
        return ""
    parts = []
    for c in await store.clocks_for(ctx.session, ticket.id):
        if c.met_at is not None:
            continue
        name = clock_label(ClockKind(c.kind), locale, TicketState(c.state) if c.state else None)
        if c.running_since is None:
            parts.append(say("sla.short_paused", locale, clock=name))
        elif c.due_at is not None:
            at = short_time(c.due_at, ctx.settings.tz, ctx.now)
            key = "sla.short_overdue" if c.breached_at is not None else "sla.short_due"
            parts.append(say(key, locale, clock=name, at=at))
    return " · ".join(parts)


async def clock_lines(ctx: FlowContext, ticket: Ticket, locale: str) -> list[str]:
    if ctx.policies is None:
        return []
    clocks = await store.clocks_for(ctx.session, ticket.id)
    return [
        clock_line(c, ctx.now, ctx.policies, locale, ctx.settings.tz)
        for c in clocks
        if c.met_at is None or c.breached_at is not None
    ]


# ---------------------------------------------------------------------------- start-up pass


async def reconcile(
    db: Database,
    context: Callable[[AsyncSession, str], FlowContext],
    *,
    batch: int = 500,
) -> int:
    """Apply the current policies to every open ticket whose clocks were set under other
    ones (or that has none: tickets from before SLAs were on). The scan only reads; the
    tickets that need it are synced in a transaction that one node at a time may run
    (advisory lock). Returns how many tickets changed."""
    changed, after = 0, 0
    states = [s.value for s in OPEN_STATES]
    while True:
        async with db.read() as s:
            policies = context(s, "sla-reconcile").policies
            assert policies is not None
            tickets = await store.open_tickets_after(s, after, states, batch)
            if not tickets:
                return changed
            clocks = await store.clocks_of(s, [t.id for t in tickets])
            stale = []
            for ticket in tickets:
                signature = (await policy_of(s, policies, ticket)).signature
                mine = clocks[ticket.id]
                if not mine or any(c.signature != signature for c in mine):
                    stale.append(ticket.id)
            after = tickets[-1].id
        if not stale:
            continue
        async with db.transaction() as s:
            if not await store.single_node(s, "sla-reconcile"):
                log.info("another node is applying the SLA policies")
                return changed
            ctx = context(s, "sla-reconcile")
            for ticket_id in stale:
                found = await repo.get_ticket(s, ticket_id)
                if found is not None and found.state in states:
                    await sync(ctx, found, actor=None)
                    changed += 1


def earliest_due_text(clocks: list[SlaClock], tz: Any) -> str:
    dues = [c.due_at for c in clocks if c.due_at is not None]
    return local_time(min(dues), tz) if dues else "—"
