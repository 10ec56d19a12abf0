"""The ticket card: state, people, place, deadlines, and the buttons the table allows."""

from __future__ import annotations

import functools
from typing import Any

from bot import progress
from bot.adapters.codec import TokenCodec
from bot.cards.asset import asset_fields
from bot.cards.closure import closure_parts
from bot.cards.parts import parts_fields
from bot.events import Button, Card
from bot.routing_rules import recorded_reason
from bot.sla.view import deadline_summary
from bot.texts import local_time, say
from bot.ticket_labels import action_label, state_label
from bot.tickets import (
    IMPACT_STATES,
    IMPACTS,
    OPEN_STATES,
    TRANSITIONS,
    IntakeAction,
    Press,
    Priority,
    Role,
    TicketAction,
    TicketState,
    allowed_actions,
    facts_of,
)
from bot.unit import Turn
from storage.records import Person, Ticket

__all__ = [
    "AUDIENCE_ROLES",
    "action_button",
    "checklist_fields",
    "repeat_parts",
    "routing_fields",
    "shown_name",
    "similar_fields",
    "ticket_card",
]

_OPEN = frozenset(s.value for s in OPEN_STATES)
_PRIORITIES = tuple(p.value for p in Priority)  # (in the PRIORITY token's order)
_SETTLED = frozenset(
    {TicketState.RESOLVED.value, TicketState.CLOSED.value, TicketState.CANCELLED.value}
)

#: Who looks at a card. A group card is seen by many staff; the click decides who may act.
AUDIENCE_ROLES = {
    "customer": frozenset({Role.CUSTOMER}),
    "staff": frozenset({Role.ENGINEER, Role.ASSIGNEE, Role.DISPATCHER, Role.MANAGER}),
}


def shown_name(person: Person, audience: str, locale: str) -> str:
    """A person's name as ``audience`` sees it: to staff, a customer's name is marked
    ("客户·张三"), so that a customer who calls themselves like a colleague is never taken for
    one."""
    if audience != "customer" and person.role == "customer":
        return say("person.customer", locale, name=person.name)
    return person.name


def action_button(
    codec: TokenCodec,
    ticket: Ticket,
    action: Press,
    locale: str,
    *,
    arg: int | None = None,
    label: str | None = None,
    style: str | None = None,
) -> Button:
    """A button that carries ``action`` on ``ticket`` as a signed token (the table gives its
    style and whether it asks for confirmation)."""
    name, shown_style, confirm, value = _face(action, locale)
    return Button(
        label or name,
        codec.sign(ticket.id, action, ticket.version, arg),
        style or shown_style,
        confirm,
        value,
    )


@functools.cache
def _face(action: Press, locale: str) -> tuple[str, str, str | None, str]:
    """An action's label, style, confirmation question in ``locale`` and name (the same for
    every card: each press redraws a dozen buttons)."""
    rule = TRANSITIONS.get(action) if isinstance(action, TicketAction) else None
    name = action_label(action, locale)
    confirm = say("confirm.action", locale, action=name) if rule and rule.confirm else None
    return name, rule.style.value if rule else "default", confirm, action.value


async def ticket_card(turn: Turn, ticket: Ticket, audience: str, locale: str) -> Card:
    """The ticket as ``audience`` (customer or staff) sees it."""
    unit, tz = turn.unit, turn.env.settings.tz
    reporter = await unit.person(ticket.reporter_id)
    assignee = await unit.person(ticket.assignee_id)
    shown_state = (  # a customer reads where it stands in their words, never a staff label
        progress.label(ticket.state, locale)
        if audience == "customer"
        else state_label(TicketState(ticket.state), locale)
    )
    fields: list[tuple[str, str]] = [
        (say("field.state", locale), shown_state),
        (say("field.assignee", locale), assignee.name if assignee else say("unassigned", locale)),
    ]
    optional = [
        ("field.device", ticket.device_code),
        ("field.site", ticket.site),
        ("field.alarm", ticket.alarm_code),
        ("field.reporter", shown_name(reporter, audience, locale) if reporter else None),
        ("field.root_cause", ticket.root_cause),
        ("field.diagnosis", _diagnosis_line(ticket.diagnosis)),
    ]
    fields += [(say(k, locale), v) for k, v in optional if v]
    fields += checklist_fields(ticket, locale)  # a PM ticket's steps
    fields += parts_fields(turn, ticket, audience, locale)  # 待备件: which parts, when
    linked, decide = repeat_parts(turn.env.codec, ticket, audience, locale)  # repeat reports
    fields += linked
    proof, ticks = closure_parts(turn, ticket, audience, locale)  # checklist, photos
    fields += proof
    if audience != "customer":  # for staff only
        fields += await asset_fields(turn, ticket, locale)  # model, site, warranty, history
        fields += routing_fields(ticket, assignee, locale)
        fields += similar_fields(turn, ticket, locale)
    fields.append((say("field.created", locale), local_time(ticket.created_at, tz)))
    if turn.env.policies is not None and audience == "customer":  # promises, not clocks
        promised = progress.promise_summary(unit.clocks.get(ticket.id, []), turn.now, locale, tz)
        if promised:
            fields.append((say("progress.field.promise", locale), promised))
    elif turn.env.policies is not None:
        deadlines = deadline_summary(unit.clocks.get(ticket.id, []), turn.now, locale, tz)
        if deadlines:
            fields.append((say("field.sla", locale), deadlines))
    actions = allowed_actions(facts_of(ticket), AUDIENCE_ROLES[audience])
    buttons = [action_button(turn.env.codec, ticket, a, locale) for a in actions]
    buttons += ticks  # (before the priorities: platforms that cap buttons keep them)
    buttons += _intake_buttons(turn.env.codec, ticket, audience, locale)
    buttons = decide + buttons
    text = ticket.description if ticket.description != ticket.title else ""
    if audience == "customer" and any(b.action == IntakeAction.IMPACT for b in buttons):
        text = (text + "\n\n" if text else "") + say("ask.impact", locale)
    return Card(
        ticket_id=ticket.id,
        version=ticket.version,
        title=f"{ticket.number} · {ticket.priority} · {ticket.title}",
        fields=tuple(fields),
        text=text,
        buttons=tuple(buttons),
        footer=say("card.updated", locale, at=local_time(ticket.updated_at, tz)),
    )


def routing_fields(ticket: Ticket, assignee: Person | None, locale: str) -> list[tuple[str, str]]:
    """Why the rules picked the assignee ("派单理由"), while that person still has the ticket."""
    why = (ticket.intake or {}).get("routing")
    if why and why.get("broadcast"):  # a P0 offered to several at once: who took it, if anyone
        if assignee is None:
            return [(say("field.routing", locale), say("routing.broadcast", locale, **why))]
        return [(say("field.routing", locale), say("routing.claimed", locale, name=assignee.name))]
    if not why or assignee is None or why.get("person") != assignee.key:
        return []
    return [(say("field.routing", locale), recorded_reason(why, locale))]


def checklist_fields(ticket: Ticket, locale: str) -> list[tuple[str, str]]:
    """A preventive-maintenance ticket's checklist, a step a line (``bot/flows/maintenance.py``
    keeps it on the ticket)."""
    steps = ((ticket.intake or {}).get("pm") or {}).get("checklist") or []
    if not steps:
        return []
    return [(say("field.checklist", locale), "\n".join(f"☐ {step}" for step in steps))]


def repeat_parts(
    codec: TokenCodec, ticket: Ticket, audience: str, locale: str
) -> tuple[list[tuple[str, str]], list[Button]]:
    """What a ticket is linked to as a repeat report (``bot/flows/repeats.py``): to staff, the
    ticket it may repeat with [合并] [不是同一问题] while undecided, the last one's root cause, the
    reports merged into it; to everyone, the ticket it was merged into."""
    intake = ticket.intake or {}
    link, previous = intake.get("repeat") or {}, intake.get("previous")
    fields: list[tuple[str, str]] = []
    buttons: list[Button] = []
    if link.get("status") == "merged":
        fields.append((say("field.merged_into", locale), str(link["number"])))
    if audience == "customer":
        return fields, buttons
    if link.get("status") == "suspected":
        why = [say(f"repeat.why.{link['scope']}", locale)]
        why.append(say("repeat.why.alarm", locale, alarm=link["alarm"]) if link.get("alarm")
                   else say("repeat.why.words", locale, score=f"{link['score']:.0%}"))  # fmt: skip
        sep = " · " if locale != "zh" else "·"
        text = say("repeat.field", locale, number=link["number"], what=link["what"],
                   why=sep.join(why))  # fmt: skip
        fields.append((say("field.repeat", locale), text))
        if ticket.state in (TicketState.NEW.value, TicketState.ASSIGNED.value):
            buttons = [
                action_button(codec, ticket, IntakeAction.SAME_FAULT, locale, style="primary"),
                action_button(codec, ticket, IntakeAction.NOT_SAME, locale),
            ]
    if previous:
        cause = previous.get("cause") or say("repeat.no_cause", locale)
        text = say("repeat.previous", locale, number=previous["number"], cause=cause)
        fields.append((say("field.previous", locale), text))
    followers = intake.get("followers") or []
    if followers:
        sep = "、" if locale == "zh" else ", "
        fields.append((say("field.merged", locale), sep.join(f["number"] for f in followers)))
    return fields, buttons


def similar_fields(turn: Turn, ticket: Ticket, locale: str) -> list[tuple[str, str]]:
    """Past cases like this one, each with its number and root cause, while the ticket is
    being worked on (nothing until the worker's index is built: ``bot/nlp/similar.py``)."""
    index = turn.env.similar
    if index is None or ticket.state in _SETTLED:
        return []
    found = index.similar(ticket)
    if not found:
        return []
    lines = [say("similar.case", locale, number=m.number, cause=m.cause) for m in found]
    return [(say("field.similar", locale), "\n".join(lines))]


def _intake_buttons(codec: TokenCodec, ticket: Ticket, audience: str, locale: str) -> list[Button]:
    """The reporter's one-tap impact while it is asked; on staff cards of open tickets, the
    priorities a dispatcher or manager can set."""
    if ticket.state not in _OPEN:
        return []
    if audience == "customer":
        if (ticket.intake or {}).get("impact") != "asked" or ticket.state not in IMPACT_STATES:
            return []
        return [
            action_button(codec, ticket, IntakeAction.IMPACT, locale, arg=i,
                          label=say(f"impact.{impact}", locale),
                          style="danger" if impact in ("stopped", "safety") else "default")
            for i, impact in enumerate(IMPACTS)
        ]  # fmt: skip
    return [
        action_button(codec, ticket, IntakeAction.PRIORITY, locale, arg=i,
                      label=say("priority.button", locale, priority=p))
        for i, p in enumerate(_PRIORITIES)
        if p != ticket.priority
    ]  # fmt: skip


def _diagnosis_line(diagnosis: dict[str, Any] | None) -> str | None:
    if not diagnosis:
        return None
    parts = "、".join(f"{p['name']}×{p['qty']}" for p in diagnosis.get("parts_needed", []))
    bits = [diagnosis.get("symptom"), diagnosis.get("suspected_cause"), parts or None]
    return " / ".join(str(b) for b in bits if b) or str(diagnosis.get("transcript", ""))[:80]
