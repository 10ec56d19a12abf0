"""SLA clock math without I/O: which policy applies to a ticket (``Policies.resolve``), and
what ``settle`` / ``schedule`` / ``due_events`` do to a ticket's clocks as it moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import load_settings
from bot.sla import clocks as sla
from bot.sla.clocks import due_events, schedule, settle
from bot.sla.policy import Policies, ResolvedPolicy, TicketTerms
from bot.tickets import Category, ClockKind, Priority, TicketState
from storage.records import Clock

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOUR = 3600.0
S = TicketState
K = ClockKind
#: Wednesday 2026-12-02 10:00 in Shanghai (no holiday near).
T0 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
CHAIN = {
    "steps": [
        {"do": "notify_assignee", "wait": "0m"},
        {"do": "post_team", "wait": "0m"},
        {"do": "notify_manager", "wait": "30m"},
    ],
    "repeat_every": "30m",
    "repeat": 2,
}


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A Shanghai wall-clock time as an aware UTC datetime."""
    return datetime(y, m, d, h, mi, tzinfo=SHANGHAI).astimezone(UTC)


def mins(n: float) -> timedelta:
    return timedelta(minutes=n)


def policies(**sla_cfg: Any) -> Policies:
    return Policies(load_settings(None, sla=sla_cfg))


def terms(
    priority: str = "P1", category: str = "equipment_failure", *refs: str, team: str | None = None
) -> TicketTerms:
    return TicketTerms(
        priority=Priority(priority),
        category=Category(category),
        team_calendar=team,
        customer_refs=frozenset(refs or {"web:someone"}),
    )


def budget(
    policy: ResolvedPolicy, kind: ClockKind, state: TicketState | None = None
) -> float | None:
    plan = policy.plan(kind, state)
    return None if plan is None else plan.budget_s


def new_clock(
    pols: Policies, policy: ResolvedPolicy, kind: ClockKind, since: datetime, state: TicketState
) -> Clock:
    """A clock started at ``since`` in ``state``, as ``bot.sla.clocks.sync`` starts one."""
    plan = policy.plan(kind, state if kind == K.STAY else None)
    assert plan is not None
    clock = Clock(
        id=None,
        ticket_id=1,
        kind=kind.value,
        state=plan.state.value if plan.state else None,
        policy=policy.name,
        calendar=policy.calendar.name,
        chain=policy.chain_name,
        signature=policy.signature,
        budget_s=plan.budget_s,
        used_s=0.0,
        started_at=since,
        running_since=since,
    )
    settle(clock, state, since, policy, pols.pause_in)
    return clock


class Ticket:
    """One ticket's clock under one policy, moved through states as ``sync`` would."""

    def __init__(self, kind: ClockKind, *, t: TicketTerms | None = None, **sla_cfg: Any) -> None:
        self.pols = policies(**sla_cfg)
        self.policy = self.pols.resolve(t or terms())
        self.clock = new_clock(self.pols, self.policy, kind, T0, S.NEW)

    def to(self, state: TicketState, now: datetime) -> Clock:
        settle(self.clock, state, now, self.policy, self.pols.pause_in)
        return self.clock

    def due(self, now: datetime) -> list[sla.Due]:
        return due_events(self.clock, now, self.policy)

    def used(self, now: datetime) -> float:
        return sla.used_at(self.clock, now, self.policy.calendar)


# ----------------------------------------------------------------------- the clock kinds


def test_respond_runs_while_new_or_assigned_and_is_met_on_accept() -> None:
    tk = Ticket(K.RESPOND)  # P1: 1h round the clock
    assert tk.clock.due_at == T0 + mins(60)
    assert tk.clock.next_at == T0 + mins(30)  # the first warning
    tk.to(S.ASSIGNED, T0 + mins(10))
    assert tk.clock.running_since == T0 + mins(10) and tk.clock.due_at == T0 + mins(60)
    c = tk.to(S.ACCEPTED, T0 + mins(20))
    assert (c.met_at, c.used_s, c.due_at, c.next_at) == (T0 + mins(20), 1200.0, None, None)
    assert tk.due(T0 + mins(90)) == []
    tk.to(S.NEW, T0 + mins(30))  # reassigned back to new: once met, stays met
    assert tk.clock.met_at == T0 + mins(20) and tk.clock.due_at is None


def test_arrive_runs_until_on_site() -> None:
    tk = Ticket(K.ARRIVE)  # P1: 4h
    for i, state in enumerate((S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE), 1):
        c = tk.to(state, T0 + mins(10 * i))
        assert c.met_at is None and c.running_since is not None
        assert c.due_at == T0 + timedelta(hours=4)
    assert tk.to(S.ON_SITE, T0 + mins(50)).met_at == T0 + mins(50)


@pytest.mark.parametrize("category", ["network_it", "software_config", "consultation"])
def test_remote_categories_have_no_arrive_clock(category: str) -> None:
    for priority in Priority:
        policy = policies().resolve(terms(priority.value, category))
        assert policy.plan(K.ARRIVE) is None
        assert policy.plan(K.RESPOND) is not None and policy.plan(K.RESOLVE) is not None
    assert policies().resolve(terms("P1", "facility")).plan(K.ARRIVE) is not None


def test_resolve_pauses_while_resolved_and_resumes_on_reject() -> None:
    tk = Ticket(K.RESOLVE)  # P1: 24h round the clock
    for i, state in enumerate((S.ACCEPTED, S.ON_SITE, S.DIAGNOSING, S.REPAIRING), 1):
        assert tk.to(state, T0 + timedelta(hours=i)).running_since is not None
    c = tk.to(S.RESOLVED, T0 + timedelta(hours=4))  # awaiting the customer: paused
    assert (c.running_since, c.due_at, c.next_at, c.used_s) == (None, None, None, 4 * HOUR)
    assert tk.due(T0 + timedelta(days=3)) == []  # far past the deadline: nothing
    assert tk.used(T0 + timedelta(hours=10)) == 4 * HOUR
    c = tk.to(S.REPAIRING, T0 + timedelta(hours=10))  # rejected: runs again
    assert c.due_at == T0 + timedelta(hours=10 + 20)  # 20h left, the 6 paused not counted
    assert tk.used(T0 + timedelta(hours=12)) == 6 * HOUR
    c = tk.to(S.CLOSED, T0 + timedelta(hours=12))
    assert c.met_at == T0 + timedelta(hours=12) and c.used_s == 6 * HOUR


def test_resume_on_business_hours_recomputes_due_from_what_is_left() -> None:
    pols = policies()
    policy = pols.resolve(terms("P2"))  # resolve 3d = 27 business hours
    clock = new_clock(pols, policy, K.RESOLVE, at(2026, 12, 7, 9), S.REPAIRING)  # Monday
    assert clock.due_at == at(2026, 12, 9, 18)  # Mon + Tue + Wed, 9h each
    settle(clock, S.RESOLVED, at(2026, 12, 7, 13), policy, pols.pause_in)
    assert clock.used_s == 4 * HOUR and clock.due_at is None and clock.next_at is None
    assert due_events(clock, at(2026, 12, 20), policy) == []
    settle(clock, S.REPAIRING, at(2026, 12, 9, 9), policy, pols.pause_in)  # Wednesday
    assert clock.due_at == at(2026, 12, 11, 14)  # 23h left: Wed 9 + Thu 9 + Fri 5
    assert policy.calendar.between(at(2026, 12, 9, 9), clock.due_at) == 23 * HOUR


def test_stay_limits_per_state() -> None:
    default = policies().resolve(terms("P2"))
    waiting = default.plan(K.STAY, S.WAITING_PARTS)
    assert waiting is not None and waiting.budget_s == 48 * HOUR
    assert waiting.state == S.WAITING_PARTS
    assert default.plan(K.STAY, S.REPAIRING) is None
    own = policies(policies={"P1": {"stay": {"resolved": "4h", "waiting_parts": "24h"}}})
    p1, p2 = own.resolve(terms("P1")), own.resolve(terms("P2"))
    assert budget(p1, K.STAY, S.RESOLVED) == 4 * HOUR  # adds
    assert budget(p1, K.STAY, S.WAITING_PARTS) == 24 * HOUR  # replaces
    assert p2.plan(K.STAY, S.RESOLVED) is None  # another priority keeps the defaults
    assert budget(p2, K.STAY, S.WAITING_PARTS) == 48 * HOUR
    assert policies(stay={}).resolve(terms("P2")).plan(K.STAY, S.WAITING_PARTS) is None


def test_stay_clock_runs_in_a_pause_state_and_is_met_on_leaving() -> None:
    pols = policies(policies={"P1": {"stay": {"resolved": "4h"}}})
    policy = pols.resolve(terms("P1"))
    clock = new_clock(pols, policy, K.STAY, T0, S.RESOLVED)
    assert clock.state == "resolved" and clock.running_since == T0  # pause_in is not for stays
    assert clock.due_at == T0 + timedelta(hours=4)
    settle(clock, S.CLOSED, T0 + timedelta(hours=1), policy, pols.pause_in)
    assert clock.met_at == T0 + timedelta(hours=1) and clock.due_at is None


# ------------------------------------------------------------------------------ policies


def test_default_budgets_and_calendars() -> None:
    pols = policies()
    expected = {"P0": (900, "24x7"), "P1": (HOUR, "24x7"), "P2": (4 * HOUR, "business")}
    expected["P3"] = (9 * HOUR, "business")  # 1 business day
    for priority, (respond, cal) in expected.items():
        policy = pols.resolve(terms(priority))
        assert budget(policy, K.RESPOND) == respond
        assert (policy.calendar.name, policy.name, policy.chain_name) == (cal, priority, "default")
        assert policy.warn_at == (0.5, 0.8)
    p2, p3 = pols.resolve(terms("P2")), pols.resolve(terms("P3"))
    assert budget(p2, K.ARRIVE) == 9 * HOUR
    assert budget(p2, K.RESOLVE) == 27 * HOUR
    assert p3.plan(K.ARRIVE) is None
    assert budget(p3, K.RESOLVE) == 45 * HOUR


def test_p3_reported_friday_afternoon_is_due_monday_afternoon() -> None:
    pols = policies()
    policy = pols.resolve(terms("P3"))
    friday = at(2026, 12, 4, 16)
    clock = new_clock(pols, policy, K.RESPOND, friday, S.NEW)
    assert clock.due_at == at(2026, 12, 7, 16)
    assert policy.calendar.between(friday, clock.due_at) == 9 * HOUR


def test_team_calendar_applies_unless_the_policy_names_one() -> None:
    pols = policies()
    assert pols.resolve(terms("P2", team="24x7")).calendar.name == "24x7"
    assert pols.resolve(terms("P1", team="business")).calendar.name == "24x7"


def test_a_configured_policy_changes_only_what_it_sets() -> None:
    pols = policies(policies={"P2": {"respond": "2h"}, "P1": {"resolve": "off"}})
    p2 = pols.resolve(terms("P2"))
    assert budget(p2, K.RESPOND) == 2 * HOUR
    assert budget(p2, K.ARRIVE) == 9 * HOUR
    assert budget(p2, K.RESOLVE) == 27 * HOUR
    assert p2.calendar.name == "business"
    p1 = pols.resolve(terms("P1"))
    assert p1.plan(K.RESOLVE) is None
    assert budget(p1, K.RESPOND) == HOUR
    assert p1.calendar.name == "24x7"


OVERRIDES = [
    {"name": "remote", "categories": ["network_it"], "respond": "30m"},
    {"name": "vip", "customers": ["telegram:-1001234", "wecom:zhangsan"], "respond": "20m"},
    {"name": "slow", "priorities": ["P2"], "respond": "1h", "calendar": "24x7"},
]


@pytest.mark.parametrize(
    ("t", "name", "respond"),
    [
        (terms("P1", "network_it", "telegram:-1001234"), "P1/remote", 30),  # first match wins
        (terms("P1", "equipment_failure", "telegram:-1001234"), "P1/vip", 20),  # origin chat
        (terms("P1", "facility", "web:x", "wecom:zhangsan"), "P1/vip", 20),  # reporter
        (terms("P2", "facility", "wecom:zhangsan"), "P2/vip", 20),  # before "slow"
        (terms("P2", "facility"), "P2/slow", 60),  # by priority
        (terms("P1", "facility"), "P1", 60),  # nothing matches
    ],
)
def test_overrides(t: TicketTerms, name: str, respond: float) -> None:
    policy = policies(overrides=OVERRIDES).resolve(t)
    assert policy.name == name
    assert budget(policy, K.RESPOND) == respond * 60


def test_an_override_changes_only_what_it_sets() -> None:
    slow = policies(overrides=OVERRIDES).resolve(terms("P2", "facility"))
    assert slow.calendar.name == "24x7"
    assert budget(slow, K.ARRIVE) == 24 * HOUR  # P2's 1d, now on the 24x7 calendar
    vip = policies(overrides=OVERRIDES).resolve(terms("P2", "facility", "wecom:zhangsan"))
    assert vip.calendar.name == "business"
    assert budget(vip, K.ARRIVE) == 9 * HOUR


def test_signature_follows_the_policy() -> None:
    vip, plain = terms("P1", "facility", "wecom:zhangsan"), terms("P1", "facility")
    changed = [dict(o) for o in OVERRIDES]
    changed[1]["respond"] = "25m"
    a, b, c = (
        policies(overrides=OVERRIDES),
        policies(overrides=OVERRIDES),
        policies(overrides=changed),
    )
    assert a.resolve(vip).signature == b.resolve(vip).signature  # deterministic
    assert a.resolve(vip).signature != c.resolve(vip).signature
    assert a.resolve(plain).signature == c.resolve(plain).signature  # untouched policy
    assert a.resolve(vip).signature != a.resolve(plain).signature
    assert policies(warn_at=[0.7]).resolve(plain).signature != a.resolve(plain).signature


# -------------------------------------------------------------------- warnings and chains


def test_warnings_then_breach_with_the_first_steps() -> None:
    tk = Ticket(K.RESPOND, warn_at=[0.5, 0.8], chains={"default": CHAIN})  # 1h
    assert tk.clock.next_at == T0 + mins(30)
    assert tk.due(T0 + mins(20)) == []
    assert tk.due(T0 + mins(36)) == [sla.Warning(0, 0.5)]  # 60 %
    assert tk.clock.next_at == T0 + mins(48)
    assert tk.due(T0 + mins(40)) == []
    assert tk.due(T0 + mins(54)) == [sla.Warning(1, 0.8)]  # 90 %
    assert tk.clock.next_at == tk.clock.due_at == T0 + mins(60)
    assert tk.due(T0 + mins(60)) == [
        sla.Breach(T0 + mins(60)),
        sla.Step(0, 0, tk.policy.chain.steps[0]),
        sla.Step(1, 0, tk.policy.chain.steps[1]),
    ]
    assert [s.do for s in tk.policy.chain.steps] == [
        "notify_assignee",
        "post_team",
        "notify_manager",
    ]
    assert tk.clock.breached_at == T0 + mins(60) and tk.clock.next_at == T0 + mins(90)


def test_warnings_missed_collapse_to_the_newest() -> None:
    tk = Ticket(K.RESPOND, warn_at=[0.5, 0.8])
    assert tk.due(T0 + mins(54)) == [sla.Warning(1, 0.8)]  # level 0 is moot now
    assert tk.clock.warned == 2
    assert tk.due(T0 + mins(59)) == []
    assert [type(e) for e in tk.due(T0 + mins(61))][:1] == [sla.Breach]


def test_breach_without_any_sweep_before_gives_no_warning() -> None:
    tk = Ticket(K.RESPOND, warn_at=[0.5, 0.8])
    events = tk.due(T0 + mins(75))
    assert events[0] == sla.Breach(T0 + mins(60))  # at the due time, not the sweep's
    assert not any(isinstance(e, sla.Warning) for e in events)


def test_chain_steps_rounds_and_exhaustion() -> None:
    tk = Ticket(K.RESPOND, chains={"default": CHAIN})
    b = T0 + mins(60)  # breach
    fired: list[tuple[int, tuple[tuple[int, int], ...]]] = []
    for offset in range(0, 240, 5):
        events = tk.due(b + mins(offset))
        got = tuple((e.index, e.round) for e in events if isinstance(e, sla.Step))
        if got:
            fired.append((offset, got))
    assert fired == [
        (0, ((0, 0), (1, 0))),
        (30, ((2, 0),)),
        (60, ((0, 1), (1, 1))),  # repeat_every after the last step
        (90, ((2, 1),)),
        (120, ((0, 2), (1, 2))),
        (150, ((2, 2),)),
    ]
    assert tk.clock.step == 9 and tk.clock.next_at is None
    schedule(tk.clock, tk.policy)
    assert tk.clock.next_at is None


def test_long_downtime_fires_each_position_once() -> None:
    tk = Ticket(K.RESPOND, chains={"default": CHAIN})
    b = T0 + mins(60)
    events = tk.due(b + timedelta(hours=3))
    steps = tk.policy.chain.steps
    assert events == [sla.Breach(b)] + [sla.Step(i, 2, steps[i]) for i in range(3)]
    assert tk.clock.step == 9 and tk.clock.next_at is None
    assert tk.due(b + timedelta(hours=5)) == []


def test_stopped_escalation_runs_no_more_steps() -> None:
    tk = Ticket(K.RESPOND, chains={"default": CHAIN})
    b = T0 + mins(60)
    assert len(tk.due(b)) == 3  # breach + the first two steps
    tk.clock.escalation_stopped_at = b + mins(5)  # someone acted (as ``sync`` does)…
    tk.to(S.ASSIGNED, b + mins(5))  # …without accepting: still running, still breached
    assert tk.clock.running_since is not None and tk.clock.met_at is None
    assert tk.clock.next_at is None and tk.clock.due_at == b
    assert tk.due(b + timedelta(hours=3)) == []
    assert tk.clock.step == 2


def test_a_chain_paused_mid_escalation_goes_on_when_its_clock_resumes() -> None:
    tk = Ticket(K.RESOLVE, chains={"default": CHAIN}, policies={"P1": {"resolve": "1h"}})
    b = T0 + mins(60)
    assert len(tk.due(b)) == 3  # breach + the first two steps; the manager is next at +30
    tk.to(S.RESOLVED, b + mins(10))  # paused (a system move: nobody stopped the chain)
    assert tk.clock.next_at is None and tk.due(b + mins(45)) == []
    tk.to(S.REPAIRING, b + mins(60))  # resumed: the next step comes its wait after that
    assert tk.clock.next_at == b + mins(60) + mins(30)
    (step,) = [e for e in tk.due(b + mins(90)) if isinstance(e, sla.Step)]
    assert (step.index, step.round) == (2, 0)
