"""The ticket lifecycle: ONE declarative table.

Everything that asks "what may happen to this ticket next" reads ``TRANSITIONS``: the buttons
on every card (``allowed_actions``), the permission check on every click (``check``), and what
a transition does besides changing the state — its declared ``effects`` (who is assigned,
timestamps, the customer's milestone), which ``bot.lifecycle.apply`` carries out. Nothing else
in the code base encodes the rules.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.errors import InvalidTransition, NotAllowed, RequirementMissing
from storage.records import Person, Ticket

__all__ = [
    "CLOCK_RULES",
    "IMPACTS",
    "IMPACT_STATES",
    "OTHER_ACTION_ROLES",
    "TRANSITIONS",
    "ButtonStyle",
    "Category",
    "ClockKind",
    "ClockRule",
    "ClosureAction",
    "CsatAction",
    "Effect",
    "IntakeAction",
    "NoteAction",
    "PartsAction",
    "Press",
    "Priority",
    "Requirement",
    "Role",
    "SlaAction",
    "TicketAction",
    "TicketState",
    "Transition",
    "allowed_actions",
    "applies",
    "check",
    "facts_of",
    "may_press",
    "roles_of",
    "root_cause_of",
]


class Priority(StrEnum):
    P0 = (
        "P0"  # production stopped (a line or a production machine), a safety hazard, a total outage
    )
    P1 = (
        "P1"  # degraded: impaired, intermittent, lost redundancy, a workaround; speed asked, chased
    )
    P2 = "P2"  # a normal fault, production not materially impaired; a recovered incident
    P3 = "P3"  # questions, requests, cosmetic issues, FYI


class Category(StrEnum):
    EQUIPMENT_FAILURE = "equipment_failure"
    NETWORK_IT = "network_it"
    SOFTWARE_CONFIG = "software_config"
    SAFETY = "safety"
    FACILITY = "facility"
    CONSULTATION = "consultation"
    OTHER = "other"
    PREVENTIVE_MAINTENANCE = "preventive_maintenance"  # opened by a PM plan, never read


#: Categories an engineer can usually fix without travelling (they may skip en_route/on_site).
REMOTE_CATEGORIES = frozenset(
    {Category.NETWORK_IT, Category.SOFTWARE_CONFIG, Category.CONSULTATION}
)


class TicketState(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    EN_ROUTE = "en_route"
    ON_SITE = "on_site"
    DIAGNOSING = "diagnosing"
    WAITING_PARTS = "waiting_parts"
    THIRD_PARTY = "third_party"
    REPAIRING = "repairing"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


OPEN_STATES = frozenset(TicketState) - {TicketState.CLOSED, TicketState.CANCELLED}


class TicketAction(StrEnum):
    ASSIGN = "assign"
    CLAIM = "claim"
    ACCEPT = "accept"
    REASSIGN = "reassign"
    DEPART = "depart"
    ARRIVE = "arrive"
    DIAGNOSE = "diagnose"
    NEED_PARTS = "need_parts"
    PARTS_ARRIVED = "parts_arrived"
    NEED_THIRD_PARTY = "need_third_party"
    THIRD_PARTY_DONE = "third_party_done"
    REPAIR = "repair"
    RESOLVE = "resolve"
    CONFIRM = "confirm"
    REJECT = "reject"
    REOPEN = "reopen"
    CANCEL = "cancel"
    AUTO_CLOSE = "auto_close"
    MERGE = "merge"  # a repeat report closed into the ticket it repeats (bot/flows/repeats.py)


class NoteAction(StrEnum):
    """Buttons on a voice-diagnosis card: they decide about the note, not the ticket's state."""

    CONFIRM_DIAGNOSIS = "confirm_diagnosis"
    DISCARD_DIAGNOSIS = "discard_diagnosis"


class SlaAction(StrEnum):
    """Buttons on a nag card that act on the ticket's clocks, not its state."""

    SNOOZE = "snooze"  # 延期: push the deadlines that nag, with a reason


class IntakeAction(StrEnum):
    """Buttons the intake asks with: they settle what a report is, not where it stands."""

    REPORT = "report"  # 报修: "needs a repair?" — yes (the token names the message, not a ticket)
    DISMISS = "dismiss"  # 不用: no
    IMPACT = "impact"  # the reporter's one-tap impact (arg: index in IMPACTS)
    PRIORITY = "priority"  # a dispatcher or manager sets the priority (arg: 0..3)
    SAME_FAULT = "same_fault"  # 合并: a suspected repeat is the same fault (bot/flows/repeats.py)
    NOT_SAME = "not_same"  # 不是同一问题: it is a fault of its own, routed now


class CsatAction(StrEnum):
    """The customer's rating of a closed ticket (``bot/flows/csat.py``): it moves no state."""

    RATE = "rate"  # arg: the stars, 1..5


class PartsAction(StrEnum):
    """Buttons of 待备件's questions (bot/flows/parts.py): they settle when, not the state. The
    token's version field carries the parts request's round, its arg the choice."""

    ETA = "parts_eta"  # when the parts arrive (arg: index in [parts] eta_choices, or "unknown")
    VISIT = "parts_visit"  # when the engineer repairs, once they are in ([parts] visit_choices)


class ClosureAction(StrEnum):
    """Buttons on a staff card that prove the work before 已解决 (``bot/flows/closure.py``)."""

    TICK = "tick"  # a checklist item done (arg: its index in the category's checklist)


#: The impacts a reporter can choose, in button order (the arg of an IMPACT token).
IMPACTS = ("stopped", "partial", "none", "safety")
#: The impact is asked until someone is on site (then the engineer sees for themselves).
IMPACT_STATES = frozenset({"new", "assigned", "accepted", "en_route"})

#: Every kind of button press.
Press = (
    TicketAction | NoteAction | SlaAction | IntakeAction | CsatAction | PartsAction | ClosureAction
)


class Role(StrEnum):
    """What a presser is *to this ticket*; a person may hold several at once."""

    CUSTOMER = "customer"  # the reporter of this ticket
    ENGINEER = "engineer"  # any engineer on staff
    ASSIGNEE = "assignee"  # the engineer this ticket is assigned to
    DISPATCHER = "dispatcher"
    MANAGER = "manager"
    SYSTEM = "system"  # the hub itself: routing, SLA, auto-close


class Requirement(StrEnum):
    TARGET_ENGINEER = "target_engineer"  # the action names who gets the ticket
    EVIDENCE = "evidence"  # a photo, a voice diagnosis or a written root cause
    REMOTE_TICKET = "remote_ticket"  # may skip travelling only for remote categories
    HAS_ASSIGNEE = "has_assignee"
    CHECKLIST = "checklist"  # every item of the category's checklist ticked ([closure])
    ROOT_CAUSE = "root_cause"  # written, or a confirmed diagnosis's suspected cause ([closure])


class Effect(StrEnum):
    """What a transition does besides moving the state (every transition also bumps the
    ticket's version, writes the audit trail, settles the SLA clocks and redraws the cards)."""

    ASSIGN_PRESSER = "assign_presser"  # the presser becomes the assignee (claim)
    ASSIGN_TARGET = "assign_target"  # the engineer the action names becomes the assignee
    UNASSIGN = "unassign"  # back to the pool
    CLOSE = "close"  # closed_at = now
    REOPEN = "reopen"  # closed_at cleared
    NOTE_IS_ROOT_CAUSE = "note_is_root_cause"  # a note the assignee types with it is evidence
    TELL_CUSTOMER = "tell_customer"  # the reporter's chat hears of it (a milestone)


class ButtonStyle(StrEnum):
    PRIMARY = "primary"
    DEFAULT = "default"
    DANGER = "danger"


@dataclass(frozen=True, slots=True)
class Transition:
    action: TicketAction
    source: frozenset[TicketState]
    target: TicketState
    roles: frozenset[Role]
    requires: frozenset[Requirement] = frozenset()
    effects: frozenset[Effect] = frozenset()
    style: ButtonStyle = ButtonStyle.DEFAULT
    confirm: bool = False  # destructive: platforms show a confirm dialog

    @property
    def assigns(self) -> bool:
        """Whether it changes who the assignee is."""
        return bool(self.effects & {Effect.ASSIGN_PRESSER, Effect.ASSIGN_TARGET, Effect.UNASSIGN})


S = TicketState
A = TicketAction
R = Role
_STAFF_DISPATCH = frozenset({R.DISPATCHER, R.MANAGER})
_WORK = frozenset({R.ASSIGNEE})
_BEFORE_RESOLVED = frozenset(
    {
        S.NEW,
        S.ASSIGNED,
        S.ACCEPTED,
        S.EN_ROUTE,
        S.ON_SITE,
        S.DIAGNOSING,
        S.WAITING_PARTS,
        S.THIRD_PARTY,
        S.REPAIRING,
    }
)


E = Effect
_TELL = frozenset({E.TELL_CUSTOMER})


def _t(
    action: TicketAction,
    source: Iterable[TicketState],
    target: TicketState,
    roles: Iterable[Role],
    requires: Iterable[Requirement] = (),
    effects: Iterable[Effect] = (),
    **kw: object,
) -> tuple[TicketAction, Transition]:
    return action, Transition(
        action,
        frozenset(source),
        target,
        frozenset(roles),
        frozenset(requires),
        frozenset(effects),
        **kw,  # type: ignore[arg-type]
    )


#: The lifecycle. (action) → from which states, to which state, who may fire it, what it needs.
TRANSITIONS: Mapping[TicketAction, Transition] = dict(
    [
        _t(
            A.ASSIGN,
            {S.NEW, S.ASSIGNED},
            S.ASSIGNED,
            _STAFF_DISPATCH | {R.SYSTEM},
            {Requirement.TARGET_ENGINEER},
            {E.ASSIGN_TARGET},
            style=ButtonStyle.PRIMARY,
        ),
        _t(
            A.CLAIM,
            {S.NEW, S.ASSIGNED},
            S.ACCEPTED,
            {R.ENGINEER},
            effects={E.ASSIGN_PRESSER, E.TELL_CUSTOMER},
            style=ButtonStyle.PRIMARY,
        ),
        _t(A.ACCEPT, {S.ASSIGNED}, S.ACCEPTED, _WORK, effects=_TELL, style=ButtonStyle.PRIMARY),
        _t(
            A.REASSIGN,
            {S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE},
            S.NEW,
            _WORK | _STAFF_DISPATCH,
            effects={E.UNASSIGN, E.TELL_CUSTOMER},
            confirm=True,
        ),
        _t(A.DEPART, {S.ACCEPTED}, S.EN_ROUTE, _WORK, effects=_TELL, style=ButtonStyle.PRIMARY),
        _t(A.ARRIVE, {S.EN_ROUTE}, S.ON_SITE, _WORK, effects=_TELL, style=ButtonStyle.PRIMARY),
        _t(A.DIAGNOSE, {S.ON_SITE}, S.DIAGNOSING, _WORK, style=ButtonStyle.PRIMARY),
        # The customer hears of it from bot/flows/parts.py, once the parts and ETA are known.
        _t(A.NEED_PARTS, {S.DIAGNOSING, S.REPAIRING}, S.WAITING_PARTS, _WORK),
        # …and of their arrival, with when the engineer will repair (bot/flows/parts.py).
        _t(
            A.PARTS_ARRIVED,
            {S.WAITING_PARTS},
            S.REPAIRING,
            _WORK | _STAFF_DISPATCH,
            style=ButtonStyle.PRIMARY,
        ),
        _t(A.NEED_THIRD_PARTY, {S.DIAGNOSING}, S.THIRD_PARTY, _WORK, effects=_TELL),
        _t(
            A.THIRD_PARTY_DONE,
            {S.THIRD_PARTY},
            S.DIAGNOSING,
            _WORK | _STAFF_DISPATCH,
            effects=_TELL,
        ),
        _t(A.REPAIR, {S.DIAGNOSING}, S.REPAIRING, _WORK, style=ButtonStyle.PRIMARY),
        _t(
            A.RESOLVE,
            {S.DIAGNOSING, S.REPAIRING},
            S.RESOLVED,
            _WORK,
            {Requirement.EVIDENCE, Requirement.CHECKLIST, Requirement.ROOT_CAUSE},
            {E.NOTE_IS_ROOT_CAUSE, E.TELL_CUSTOMER},
            style=ButtonStyle.PRIMARY,
        ),
        _t(
            A.CONFIRM,
            {S.RESOLVED},
            S.CLOSED,
            {R.CUSTOMER, R.MANAGER},
            effects={E.CLOSE, E.TELL_CUSTOMER},
            style=ButtonStyle.PRIMARY,
        ),
        _t(
            A.REJECT,
            {S.RESOLVED},
            S.REPAIRING,
            {R.CUSTOMER},
            effects=_TELL,
            style=ButtonStyle.DANGER,
            confirm=True,
        ),
        _t(
            A.REOPEN,
            {S.CLOSED},
            S.ASSIGNED,
            {R.CUSTOMER, R.MANAGER, R.DISPATCHER},
            {Requirement.HAS_ASSIGNEE},
            {E.REOPEN, E.TELL_CUSTOMER},
        ),
        _t(
            A.CANCEL,
            _BEFORE_RESOLVED,
            S.CANCELLED,
            {R.CUSTOMER} | _STAFF_DISPATCH,
            effects=_TELL,
            style=ButtonStyle.DANGER,
            confirm=True,
        ),
        _t(A.AUTO_CLOSE, {S.RESOLVED}, S.CLOSED, {R.SYSTEM}, effects={E.CLOSE, E.TELL_CUSTOMER}),
        # A suspected repeat, not yet worked on, closed into the ticket it repeats (nobody's
        # work, so never reopened: a new report is linked again). Any engineer by the table:
        # ``bot/flows/repeats.py`` narrows it to the assignee of that ticket.
        _t(
            A.MERGE,
            {S.NEW, S.ASSIGNED},
            S.CLOSED,
            _STAFF_DISPATCH | {R.ENGINEER},
            effects={E.CLOSE, E.UNASSIGN},
        ),
    ]
)

#: Extra source states an action gains when a requirement holds (kept declarative, not in code).
CONDITIONAL_SOURCES: Mapping[TicketAction, tuple[frozenset[TicketState], Requirement]] = {
    A.DIAGNOSE: (frozenset({S.ACCEPTED}), Requirement.REMOTE_TICKET),
}

#: Actions that are never offered as buttons (they need input a button cannot carry, or only
#: the system fires them). ASSIGN is offered per candidate engineer by the flows.
NOT_A_BUTTON = frozenset({A.ASSIGN, A.AUTO_CLOSE, A.MERGE})


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What the rules need to know about a ticket beyond its state."""

    state: TicketState
    category: Category = Category.OTHER
    has_assignee: bool = False
    has_evidence: bool = False
    has_root_cause: bool = True  # (``[closure] require_root_cause = false``: always)
    open_items: tuple[str, ...] = ()  # checklist items not ticked yet


def _sources(action: TicketAction, facts: TicketFacts) -> frozenset[TicketState]:
    rule = TRANSITIONS[action]
    extra = CONDITIONAL_SOURCES.get(action)
    if extra and _holds(extra[1], facts, target_given=False):
        return rule.source | extra[0]
    return rule.source


def _holds(req: Requirement, facts: TicketFacts, *, target_given: bool) -> bool:
    match req:
        case Requirement.TARGET_ENGINEER:
            return target_given
        case Requirement.EVIDENCE:
            return facts.has_evidence
        case Requirement.REMOTE_TICKET:
            return facts.category in REMOTE_CATEGORIES
        case Requirement.HAS_ASSIGNEE:
            return facts.has_assignee
        case Requirement.CHECKLIST:
            return not facts.open_items
        case Requirement.ROOT_CAUSE:
            return facts.has_root_cause


def check(
    action: TicketAction,
    facts: TicketFacts,
    roles: frozenset[Role],
    *,
    target_given: bool = False,
) -> Transition:
    """The transition ``action`` would make, or the reason it may not happen (an exception)."""
    rule = TRANSITIONS[action]
    if facts.state not in _sources(action, facts):
        raise InvalidTransition(action=action, state=facts.state)
    if not roles & rule.roles:
        raise NotAllowed(action=action, state=facts.state)
    for req in sorted(rule.requires):
        if not _holds(req, facts, target_given=target_given):
            items = facts.open_items if req == Requirement.CHECKLIST else ()
            raise RequirementMissing(action=action, state=facts.state, requirement=req, items=items)
    return rule


def applies(action: TicketAction, facts: TicketFacts) -> bool:
    """Whether ``action`` leads anywhere from the ticket's state (whoever presses it)."""
    return facts.state in _sources(action, facts)


_STATES: Mapping[str, TicketState] = {s.value: s for s in TicketState}  # (a call costs 10×)
_CATEGORIES: Mapping[str, Category] = {c.value: c for c in Category}


def facts_of(
    ticket: Ticket,
    *,
    has_evidence: bool | None = None,
    open_items: tuple[str, ...] = (),
    need_root_cause: bool = False,
) -> TicketFacts:
    """What the rules need to know about ``ticket``. ``open_items`` and ``need_root_cause``
    come from the settings (``bot.closure.facts``): without them a ticket has no checklist
    and needs no root cause."""
    return TicketFacts(
        state=_STATES[ticket.state],
        category=_CATEGORIES[ticket.category],
        has_assignee=ticket.assignee_id is not None,
        has_evidence=bool(ticket.root_cause or ticket.diagnosis or ticket.photos)
        if has_evidence is None
        else has_evidence,
        has_root_cause=not need_root_cause or root_cause_of(ticket) is not None,
        open_items=open_items,
    )


def root_cause_of(ticket: Ticket) -> str | None:
    """The written root cause, else a confirmed voice diagnosis's suspected cause."""
    if ticket.root_cause and ticket.root_cause.strip():
        return ticket.root_cause.strip()
    cause = (ticket.diagnosis or {}).get("suspected_cause")
    return str(cause).strip() or None if cause else None


def roles_of(person: Person | None, ticket: Ticket) -> frozenset[Role]:
    """What ``person`` is to ``ticket`` (None: the hub itself)."""
    if person is None:
        return frozenset({Role.SYSTEM})
    roles: set[Role] = set()
    if person.id == ticket.reporter_id:
        roles.add(Role.CUSTOMER)
    if person.role in ("engineer", "dispatcher", "manager"):
        roles.add(Role.ENGINEER if person.role == "engineer" else Role(person.role))
    if ticket.assignee_id is not None and person.id == ticket.assignee_id:
        roles.add(Role.ASSIGNEE)
    return frozenset(roles)


def allowed_actions(facts: TicketFacts, roles: frozenset[Role]) -> list[TicketAction]:
    """The buttons a card shows to someone holding ``roles``, in table order.

    Requirements that the presser can still satisfy (evidence) do not hide a button; the click
    is then refused with the reason, which tells the engineer what is missing.
    """
    return list(_allowed(facts, roles))


@functools.lru_cache(maxsize=4096)  # (facts and roles are few: every card asks again)
def _allowed(facts: TicketFacts, roles: frozenset[Role]) -> tuple[TicketAction, ...]:
    out: list[TicketAction] = []
    for action, rule in TRANSITIONS.items():
        if action in NOT_A_BUTTON:
            continue
        if facts.state in _sources(action, facts) and roles & rule.roles:
            if Requirement.HAS_ASSIGNEE in rule.requires and not facts.has_assignee:
                continue
            out.append(action)
    return tuple(out)


class ClockKind(StrEnum):
    RESPOND = "respond"
    ARRIVE = "arrive"
    RESOLVE = "resolve"
    STAY = "stay"  # the longest stay in the current state


@dataclass(frozen=True, slots=True)
class ClockRule:
    """Where a clock runs and where it is met. In any other state it pauses, and the
    ``[sla] pause_in`` states pause it too. Once met, a clock stays met."""

    runs_in: frozenset[TicketState]
    met_in: frozenset[TicketState]
    remote_skips: bool = False  # tickets that need no visit have no such clock


_MET_ALWAYS = frozenset({S.CLOSED, S.CANCELLED})

#: The SLA clocks, as declarative as the transitions: the sweep and every transition read it.
CLOCK_RULES: Mapping[ClockKind, ClockRule] = {
    ClockKind.RESPOND: ClockRule(
        runs_in=frozenset({S.NEW, S.ASSIGNED}),
        met_in=frozenset(TicketState) - {S.NEW, S.ASSIGNED},
    ),
    ClockKind.ARRIVE: ClockRule(
        runs_in=frozenset({S.NEW, S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE}),
        met_in=frozenset(TicketState) - {S.NEW, S.ASSIGNED, S.ACCEPTED, S.EN_ROUTE},
        remote_skips=True,
    ),
    ClockKind.RESOLVE: ClockRule(
        runs_in=_BEFORE_RESOLVED | {S.RESOLVED},
        met_in=_MET_ALWAYS,
    ),
}

#: Who may press the clock buttons.
SLA_ACTION_ROLES: Mapping[SlaAction, frozenset[Role]] = {SlaAction.SNOOZE: frozenset({R.MANAGER})}

#: Who may press the buttons that settle what a report is (``bot/flows/questions.py`` and
#: ``bot/flows/repeats.py`` check these). 报修/不用 belong to the message's writer, whoever
#: that is; a merge decision also to the engineer of the ticket it would merge into.
INTAKE_ACTION_ROLES: Mapping[IntakeAction, frozenset[Role]] = {
    IntakeAction.IMPACT: _STAFF_DISPATCH | {R.CUSTOMER},
    IntakeAction.PRIORITY: _STAFF_DISPATCH,
    IntakeAction.SAME_FAULT: _STAFF_DISPATCH | {R.ENGINEER},
    IntakeAction.NOT_SAME: _STAFF_DISPATCH | {R.ENGINEER},
}


#: Who may press the buttons of the closure checklist, 待备件's questions and the stars
#: (``bot/flows/closure.py``, ``parts.py`` and ``csat.py`` check these; so does the console).
OTHER_ACTION_ROLES: Mapping[Press, frozenset[Role]] = {
    ClosureAction.TICK: _WORK | {R.MANAGER},
    PartsAction.ETA: _WORK | _STAFF_DISPATCH,
    PartsAction.VISIT: _WORK | _STAFF_DISPATCH,
    CsatAction.RATE: frozenset({R.CUSTOMER}),
}


def may_press(action: Press, roles: frozenset[Role]) -> bool:
    """Whether someone holding ``roles`` could press a button for ``action`` at all: what a
    card shown to one person offers (the press itself is still checked in full)."""
    match action:
        case TicketAction():
            return bool(roles & TRANSITIONS[action].roles)
        case SlaAction():
            return bool(roles & SLA_ACTION_ROLES[action])
        case IntakeAction() if action in INTAKE_ACTION_ROLES:
            return bool(roles & INTAKE_ACTION_ROLES[action])
        case _ if action in OTHER_ACTION_ROLES:
            return bool(roles & OTHER_ACTION_ROLES[action])
        case _:  # a voice note's buttons, 报修/不用: only their author's chat shows them
            return True
