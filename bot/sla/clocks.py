"""SLA clocks: which policy applies to a ticket, and the arithmetic of its clocks.

Pure functions over ``SlaClock`` rows (no I/O). A clock holds a budget of business seconds on
its calendar; it *runs* in the states of ``CLOCK_RULES`` (minus ``[sla] pause_in``), pauses
elsewhere, and is met once the ticket reaches one of its ``met_in`` states. ``settle`` brings a
clock up to a moment and a state; ``due_events`` says what the sweep must do now — the newest
warning, the breach, the escalation steps whose time has come — collapsing what piled up while
nobody looked (a hub that was down fires each of them once, not once per missed tick).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.config import Settings
from bot.sla.calendar import BusinessCalendar
from bot.sla.settings import (
    BUILTIN_CALENDARS,
    ChainSettings,
    ChainStep,
    Duration,
    SlaPolicy,
)
from bot.tickets import (
    CLOCK_RULES,
    REMOTE_CATEGORIES,
    Category,
    ClockKind,
    ClockRule,
    Priority,
    TicketState,
)
from storage.models import SlaClock

__all__ = [
    "Breach",
    "ClockPlan",
    "Policies",
    "ResolvedPolicy",
    "Step",
    "Warning",
    "due_events",
    "settle",
]


@dataclass(frozen=True, slots=True)
class ClockPlan:
    """What one clock of a ticket should be under the current policy."""

    kind: ClockKind
    budget_s: float
    state: TicketState | None = None  # stay clocks: the state they measure


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    name: str
    calendar: BusinessCalendar
    chain_name: str
    chain: ChainSettings
    warn_at: tuple[float, ...]
    budgets: Mapping[ClockKind, Duration]
    stay: Mapping[TicketState, Duration]
    signature: str

    def plan(self, kind: ClockKind, state: TicketState | None = None) -> ClockPlan | None:
        if kind == ClockKind.STAY:
            duration = self.stay.get(state) if state is not None else None
        else:
            duration = self.budgets.get(kind)
        if duration is None:
            return None
        seconds = self.calendar.seconds_of(duration.days, duration.seconds)
        return ClockPlan(kind, seconds, state if kind == ClockKind.STAY else None)


@dataclass(frozen=True, slots=True)
class TicketTerms:
    """What decides a ticket's policy."""

    priority: Priority
    category: Category
    team_calendar: str | None
    customer_refs: frozenset[str]  # origin chat and the reporter's identities


class Policies:
    """The ``[sla]`` section compiled once: calendars, chains, and policy lookup."""

    def __init__(self, settings: Settings) -> None:
        sla = settings.sla
        self.settings = sla
        self.pause_in = frozenset(sla.pause_in)
        merged = {**BUILTIN_CALENDARS, **sla.calendars}
        self.calendars = {
            name: BusinessCalendar(name, cfg, settings.timezone) for name, cfg in merged.items()
        }
        self.team_calendars = {t.id: t.calendar for t in settings.teams}
        self._cache: dict[TicketTerms, ResolvedPolicy] = {}
        self.needs_customer = any(o.customers for o in sla.overrides)

    def calendar(self, name: str) -> BusinessCalendar:
        return self.calendars.get(name) or self.calendars[self.settings.default_calendar]

    def chain(self, name: str) -> ChainSettings:
        return self.settings.chains.get(name) or self.settings.chains[self.settings.default_chain]

    def resolve(self, terms: TicketTerms) -> ResolvedPolicy:
        found = self._cache.get(terms)
        if found is None:
            if len(self._cache) >= 10_000:  # per-customer terms: keep the cache bounded
                self._cache.clear()
            found = self._cache[terms] = self._resolve(terms)
        return found

    def _resolve(self, terms: TicketTerms) -> ResolvedPolicy:
        base = self.settings.policies[terms.priority]
        name = terms.priority.value
        fields = base.model_dump(exclude_unset=False)
        for override in self.settings.overrides:
            if override.priorities and terms.priority not in override.priorities:
                continue
            if override.categories and terms.category not in override.categories:
                continue
            if override.customers and not terms.customer_refs & set(override.customers):
                continue
            name = f"{name}/{override.name}"
            for key in SlaPolicy.model_fields:
                if key in override.model_fields_set:
                    fields[key] = getattr(override, key)
            break
        policy = SlaPolicy.model_validate(fields)
        calendar = self.calendar(
            policy.calendar or terms.team_calendar or self.settings.default_calendar
        )
        chain_name = policy.chain or self.settings.default_chain
        budgets = {
            kind: d
            for kind, d in (
                (ClockKind.RESPOND, policy.respond),
                (ClockKind.ARRIVE, policy.arrive),
                (ClockKind.RESOLVE, policy.resolve),
            )
            if d is not None
            and not (CLOCK_RULES[kind].remote_skips and terms.category in REMOTE_CATEGORIES)
        }
        stay = {**self.settings.stay, **policy.stay}
        warn_at = tuple(policy.warn_at if policy.warn_at is not None else self.settings.warn_at)
        chain = self.chain(chain_name)
        signature = hashlib.sha256(
            json.dumps(
                [
                    name,
                    policy.model_dump(mode="json"),
                    calendar.fingerprint,
                    chain.model_dump(mode="json"),
                    sorted(self.pause_in),
                    warn_at,
                ],
                sort_keys=True,
            ).encode()
        ).hexdigest()[:32]
        return ResolvedPolicy(name, calendar, chain_name, chain, warn_at, budgets, stay, signature)


# ------------------------------------------------------------------------------ arithmetic


def rule_of(clock: SlaClock) -> ClockRule:
    kind = ClockKind(clock.kind)
    if kind == ClockKind.STAY:
        state = TicketState(clock.state or "")
        return ClockRule(runs_in=frozenset({state}), met_in=frozenset(TicketState) - {state})
    return CLOCK_RULES[kind]


def _running(clock: SlaClock, state: TicketState, pause_in: frozenset[TicketState]) -> bool:
    rule = rule_of(clock)
    paused = pause_in if clock.kind != ClockKind.STAY else frozenset()
    return state in rule.runs_in and state not in paused


def used_at(clock: SlaClock, now: datetime, calendar: BusinessCalendar) -> float:
    if clock.running_since is None:
        return clock.used_s
    return clock.used_s + calendar.between(clock.running_since, now)


def settle(
    clock: SlaClock,
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


def schedule(clock: SlaClock, policy: ResolvedPolicy) -> None:
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


def warn_time(clock: SlaClock, policy: ResolvedPolicy, level: int) -> datetime:
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


def due_events(clock: SlaClock, now: datetime, policy: ResolvedPolicy) -> list[Due]:
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


def remaining(clock: SlaClock, now: datetime, calendar: BusinessCalendar) -> float:
    """Business seconds left (negative: over by that much)."""
    return clock.budget_s - used_at(clock, now, calendar)
