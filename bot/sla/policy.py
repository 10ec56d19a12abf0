"""Which SLA policy applies to a ticket: the ``[sla]`` section compiled once.

A ticket's terms (priority, category, its team's calendar, the customer it came from) pick a
policy — the priority's, changed by the first ``[[sla.overrides]]`` that matches — with its
calendar, escalation chain, warning thresholds and the budget of each clock. Its ``signature``
changes whenever anything that shapes the clocks does, so clocks set under another policy are
recognised and brought up to date.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from bot.config import Settings
from bot.sla.calendar import BusinessCalendar
from bot.sla.settings import BUILTIN_CALENDARS, ChainSettings, Duration, SlaPolicy
from bot.tickets import CLOCK_RULES, REMOTE_CATEGORIES, Category, ClockKind, Priority, TicketState

__all__ = ["ClockPlan", "Policies", "ResolvedPolicy", "TicketTerms"]


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
