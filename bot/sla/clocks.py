"""SLA clocks: their arithmetic, and keeping a ticket's clocks true as it moves.

A clock holds a budget of business seconds on its calendar; it *runs* in the states of
``CLOCK_RULES`` (minus ``[sla] pause_in``), pauses elsewhere, and is met once the ticket reaches
one of its ``met_in`` states. ``settle`` brings a clock up to a moment and a state;
``due_events`` says what the sweep must do now — the newest warning, the breach, the escalation
steps whose time has come — collapsing what piled up while nobody looked (a hub that was down
fires each of them once, not once per missed tick).

``sync`` runs on every change of a ticket's state (and when a ticket is new): each clock is
brought up to the moment, met clocks stop for good, paused ones wait, the stay clock follows
the state, a person acting stops any escalation under way, and the ticket's deadline columns
and ``sla_next_at`` (what the sweep claims by) are set from the clocks. A policy that changed
since a clock was set (``signature``) is applied on the next sync. All of it in memory, on the
unit's records.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.sla.calendar import BusinessCalendar
from bot.sla.policy import Policies, ResolvedPolicy, TicketTerms
from bot.sla.settings import ChainSettings, ChainStep
from bot.tickets import CLOCK_RULES, Category, ClockKind, ClockRule, Priority, TicketState
from bot.unit import Unit
from storage.records import Clock, Person, Ticket

__all__ = [
    "Breach",
    "Step",
    "Warning",
    "due_events",
    "extend",
    "policy_of",
    "settle",
    "sync",
]

_TIMED = (ClockKind.RESPOND, ClockKind.ARRIVE, ClockKind.RESOLVE)


async def policy_of(unit: Unit, ticket: Ticket) -> ResolvedPolicy:
    """The policy that applies to ``ticket`` now."""
    policies = unit.env.policies
    assert policies is not None
    refs: frozenset[str] = frozenset()
    if policies.needs_customer:  # only then: the terms are also the policy cache's key
        refs = frozenset({ticket.origin_chat, *await unit.identities(ticket.reporter_id)})
    terms = TicketTerms(
        priority=Priority(ticket.priority),
        category=Category(ticket.category),
        team_calendar=policies.team_calendars.get(ticket.team_key or ""),
        customer_refs=refs,
    )
    return policies.resolve(terms)


def _new_clock(
    ticket: Ticket, kind: ClockKind, budget: float, policy: ResolvedPolicy, since: datetime
) -> Clock:
    clock = Clock(
        id=None,
        ticket_id=ticket.id,
        kind=kind.value,
        state=None,
        policy=policy.name,
        calendar=policy.calendar.name,
        chain=policy.chain_name,
        signature=policy.signature,
        budget_s=budget,
        used_s=0.0,
        started_at=since,
    )
    _restart(clock, budget, policy, since)
    return clock


def _restart(clock: Clock, budget: float, policy: ResolvedPolicy, since: datetime) -> None:
    clock.policy, clock.calendar, clock.chain = policy.name, policy.calendar.name, policy.chain_name
    clock.signature = policy.signature
    clock.budget_s, clock.used_s = budget, 0.0
    clock.started_at, clock.running_since = since, since
    clock.warned, clock.step = 0, 0
    clock.due_at = clock.next_at = clock.breached_at = None
    clock.met_at = clock.escalation_stopped_at = None


async def sync(
    unit: Unit, ticket: Ticket, *, actor: Person | None, since: datetime | None = None
) -> list[Clock]:
    """Bring every clock of ``ticket`` (in its current state) up to the unit's now; set the
    ticket's deadlines from them. ``since``: when a new ticket's clocks started."""
    policies = unit.env.policies
    if policies is None:
        return []
    now = unit.now
    unit.touch(ticket.id)
    policy = await policy_of(unit, ticket)
    state = TicketState(ticket.state)
    clocks = {c.kind: c for c in unit.clocks.setdefault(ticket.id, [])}
    stopped: list[str] = []
    late: list[Clock] = []
    for kind in (*_TIMED, ClockKind.STAY):
        plan = policy.plan(kind, state if kind == ClockKind.STAY else None)
        clock = clocks.get(kind.value)
        if clock is not None and kind == ClockKind.STAY and clock.state != state.value:
            # The state it measured is over (its breaches are in the audit trail): the row
            # measures the new state from now, or goes if that state has no limit.
            if plan is None:
                unit.drop_clock(clock)
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
            unit.add_clock(clock)
            clocks[kind.value] = clock
        elif plan is None:
            unit.drop_clock(clock)
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
    project(ticket, list(clocks.values()))
    if stopped or late:
        unit.record(
            ticket,
            "sla",
            actor=actor,
            via="system",
            data={
                **({"escalation_stopped": stopped} if stopped else {}),
                **({"met_late": [c.kind for c in late]} if late else {}),
            },
        )
    return list(clocks.values())


def _apply_policy(
    clock: Clock, policy: ResolvedPolicy, budget: float, policies: Policies, now: datetime
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


def project(ticket: Ticket, clocks: list[Clock]) -> None:
    """The ticket's deadline columns, from its clocks."""
    by_kind = {c.kind: c.due_at for c in clocks}
    ticket.respond_due = by_kind.get(ClockKind.RESPOND.value)
    ticket.arrive_due = by_kind.get(ClockKind.ARRIVE.value)
    ticket.resolve_due = by_kind.get(ClockKind.RESOLVE.value)
    ticket.state_due = by_kind.get(ClockKind.STAY.value)
    ticket.sla_next_at = earliest(c.next_at for c in clocks)


def extend(
    clocks: list[Clock], now: datetime, policy: ResolvedPolicy, seconds: float
) -> dict[str, datetime | None]:
    """延期: push the deadlines that nag (or, if none does, every running one) by ``seconds``
    of business time. Returns the chosen clocks' kinds with their deadlines before."""
    running = [c for c in clocks if c.running_since is not None and c.met_at is None]
    at_risk = [c for c in running if c.breached_at is not None or c.warned > 0]
    chosen = at_risk or running
    before = {c.kind: c.due_at for c in chosen}
    for clock in chosen:
        clock.used_s = used_at(clock, now, policy.calendar)
        clock.running_since = now
        clock.budget_s = max(clock.budget_s, clock.used_s) + seconds
        clock.breached_at = None
        clock.escalation_stopped_at = None
        clock.step = 0
        clock.warned = sum(1 for f in policy.warn_at if clock.used_s >= f * clock.budget_s)
        schedule(clock, policy)
    return before


# ------------------------------------------------------------------------------ arithmetic


def rule_of(clock: Clock) -> ClockRule:
    if clock.kind == ClockKind.STAY:
        return _stay_rule(clock.state or "")
    return CLOCK_RULES[ClockKind(clock.kind)]


@functools.cache
def _stay_rule(state: str) -> ClockRule:
    """A stay clock runs in its state and is met by leaving it (one rule per state, made once:
    every transition settles every clock)."""
    stay = TicketState(state)
    return ClockRule(runs_in=frozenset({stay}), met_in=frozenset(TicketState) - {stay})


def _running(clock: Clock, state: TicketState, pause_in: frozenset[TicketState]) -> bool:
    rule = rule_of(clock)
    paused = pause_in if clock.kind != ClockKind.STAY else frozenset()
    return state in rule.runs_in and state not in paused


def used_at(clock: Clock, now: datetime, calendar: BusinessCalendar) -> float:
    if clock.running_since is None:
        return clock.used_s
    return clock.used_s + calendar.between(clock.running_since, now)


def settle(
    clock: Clock,
    state: TicketState,
    now: datetime,
    policy: ResolvedPolicy,
    pause_in: frozenset[TicketState],
) -> None:
    """Bring ``clock`` up to ``now`` with the ticket entering (or staying in) ``state``."""
    cal = policy.calendar
    clock.used_s = used_at(clock, now, cal)
    clock.running_since = None
    if clock.met_at is not None:
        clock.due_at = clock.next_at = None
        return
    if state in rule_of(clock).met_in:
        clock.met_at = now
        clock.due_at = clock.next_at = None
        return
    if _running(clock, state, pause_in):
        clock.running_since = now
    schedule(clock, policy)


def schedule(clock: Clock, policy: ResolvedPolicy) -> None:
    """Recompute ``due_at`` and ``next_at`` from the clock's own fields."""
    cal = policy.calendar
    if clock.running_since is None or clock.met_at is not None:
        clock.due_at = None
        clock.next_at = None
        return
    left = clock.budget_s - clock.used_s
    if left > 0:
        clock.due_at = cal.add(clock.running_since, left)
    else:
        clock.due_at = clock.breached_at or clock.running_since
    if clock.breached_at is None:
        clock.next_at = clock.due_at
        if clock.warned < len(policy.warn_at):
            clock.next_at = min(clock.due_at, warn_time(clock, policy, clock.warned))
    elif clock.escalation_stopped_at is None and clock.step < total_steps(policy.chain):
        # next_at is the scheduled time of the next step; it moves only when steps run. A
        # chain whose clock was paused (next_at cleared) goes on from the moment it resumes.
        if clock.next_at is None:
            wait = _step_wait(policy.chain, clock.step, cal)
            clock.next_at = cal.add(clock.running_since, wait)
    else:
        clock.next_at = None


def warn_time(clock: Clock, policy: ResolvedPolicy, level: int) -> datetime:
    assert clock.running_since is not None
    target = policy.warn_at[level] * clock.budget_s - clock.used_s
    return policy.calendar.add(clock.running_since, max(target, 0.0))


def total_steps(chain: ChainSettings) -> int:
    return len(chain.steps) * (chain.repeat + 1)


def _step_wait(chain: ChainSettings, k: int, calendar: BusinessCalendar) -> float:
    step = chain.steps[k % len(chain.steps)]
    wait = calendar.seconds_of(step.wait.days, step.wait.seconds)
    if k and k % len(chain.steps) == 0:
        wait += calendar.seconds_of(chain.repeat_every.days, chain.repeat_every.seconds)
    return wait


# ------------------------------------------------------------------------------ what is due


@dataclass(frozen=True, slots=True)
class Warning:
    level: int  # index into warn_at
    fraction: float


@dataclass(frozen=True, slots=True)
class Breach:
    at: datetime


@dataclass(frozen=True, slots=True)
class Step:
    index: int  # position in the chain
    round: int  # 0 first time, 1… repeats
    step: ChainStep


Due = Warning | Breach | Step


def due_events(clock: Clock, now: datetime, policy: ResolvedPolicy) -> list[Due]:
    """What the sweep must do for ``clock`` at ``now``; advances the clock past it."""
    if clock.met_at is not None or clock.running_since is None or clock.due_at is None:
        return []
    out: list[Due] = []
    cal = policy.calendar
    if clock.breached_at is None:
        if clock.due_at <= now:
            clock.breached_at = clock.due_at
            clock.warned = len(policy.warn_at)
            clock.step = 0
            clock.next_at = cal.add(clock.breached_at, _step_wait(policy.chain, 0, cal))
            out.append(Breach(clock.breached_at))
        else:
            level = None
            while (
                clock.warned < len(policy.warn_at) and warn_time(clock, policy, clock.warned) <= now
            ):
                level = clock.warned
                clock.warned += 1
            if level is not None:  # only the newest threshold: older ones are moot now
                out.append(Warning(level, policy.warn_at[level]))
            schedule(clock, policy)
            return out
    if clock.escalation_stopped_at is not None:
        clock.next_at = None
        return out
    chain, n = policy.chain, len(policy.chain.steps)
    fired: dict[int, Step] = {}  # by position in the chain
    total = total_steps(chain)
    while clock.step < total and clock.next_at is not None and clock.next_at <= now:
        k = clock.step
        fired[k % n] = Step(k % n, k // n, chain.steps[k % n])  # a later round replaces
        clock.step += 1
        clock.next_at = (
            cal.add(clock.next_at, _step_wait(chain, clock.step, cal))
            if clock.step < total
            else None
        )
    out.extend(fired[i] for i in sorted(fired))
    return out


def earliest(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def remaining(clock: Clock, now: datetime, calendar: BusinessCalendar) -> float:
    """Business seconds left (negative: over by that much)."""
    return clock.budget_s - used_at(clock, now, calendar)
