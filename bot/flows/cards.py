"""Ticket cards: built from the state table, published to chats, refreshed everywhere."""

from __future__ import annotations

from typing import Any

from bot.adapters.codec import ActionToken
from bot.events import Address, Button, Card
from bot.flows import FlowContext, sla
from bot.texts import local_time, say
from bot.tickets import (
    TRANSITIONS,
    Category,
    Role,
    TicketFacts,
    TicketState,
    action_label,
    allowed_actions,
    state_label,
)
from storage import repo
from storage.models import Ticket

__all__ = ["build_card", "facts_of", "publish", "refresh"]

#: Who looks at a card. A group card is seen by many staff; the click decides who may act.
AUDIENCE_ROLES = {
    "customer": frozenset({Role.CUSTOMER}),
    "staff": frozenset({Role.ENGINEER, Role.ASSIGNEE, Role.DISPATCHER, Role.MANAGER}),
}


def facts_of(ticket: Ticket) -> TicketFacts:
    return TicketFacts(
        state=TicketState(ticket.state),
        category=Category(ticket.category),
        has_assignee=ticket.assignee_id is not None,
        has_evidence=bool(ticket.root_cause or ticket.diagnosis),
    )


async def build_card(ctx: FlowContext, ticket: Ticket, audience: str, locale: str) -> Card:
    """The card ``audience`` sees: the ticket card (customer/staff), or a voice-diagnosis card
    (``voice:<note id>``) that lives beside it."""
    if audience.startswith("voice:"):
        from bot.flows.voice import voice_card_for

        return await voice_card_for(ctx, ticket, int(audience.partition(":")[2]), locale)
    if audience == "nag":
        from bot.flows.escalation import nag_card

        return await nag_card(ctx, ticket, locale)
    reporter = await repo.get_person(ctx.session, ticket.reporter_id)
    assignee = (
        await repo.get_person(ctx.session, ticket.assignee_id) if ticket.assignee_id else None
    )
    fields: list[tuple[str, str]] = [
        (say("field.state", locale), state_label(TicketState(ticket.state), locale)),
        (say("field.assignee", locale), assignee.name if assignee else say("unassigned", locale)),
    ]
    optional = [
        ("field.device", ticket.device_code),
        ("field.site", ticket.site),
        ("field.alarm", ticket.alarm_code),
        ("field.reporter", reporter.name if reporter else None),
        ("field.root_cause", ticket.root_cause),
        ("field.diagnosis", _diagnosis_line(ticket.diagnosis)),
    ]
    fields += [(say(k, locale), v) for k, v in optional if v]
    fields.append((say("field.created", locale), local_time(ticket.created_at, ctx.settings.tz)))
    deadlines = await sla.deadline_summary(ctx, ticket, locale)
    if deadlines:
        fields.append((say("field.sla", locale), deadlines))
    buttons = []
    for action in allowed_actions(facts_of(ticket), AUDIENCE_ROLES[audience]):
        rule = TRANSITIONS[action]
        label = action_label(action, locale)
        buttons.append(
            Button(
                label=label,
                token=ctx.codec.encode(ActionToken(ticket.id, action, ticket.version)),
                style=rule.style.value,
                confirm=say("confirm.action", locale, action=label) if rule.confirm else None,
                action=action.value,
            )
        )
    return Card(
        ticket_id=ticket.id,
        version=ticket.version,
        title=f"{ticket.number} · {ticket.priority} · {ticket.title}",
        fields=tuple(fields),
        text=ticket.description if ticket.description != ticket.title else "",
        buttons=tuple(buttons),
        footer=say("card.updated", locale, at=local_time(ticket.updated_at, ctx.settings.tz)),
    )


def _diagnosis_line(diagnosis: dict[str, Any] | None) -> str | None:
    if not diagnosis:
        return None
    parts = "、".join(f"{p['name']}×{p['qty']}" for p in diagnosis.get("parts_needed", []))
    bits = [diagnosis.get("symptom"), diagnosis.get("suspected_cause"), parts or None]
    return " / ".join(str(b) for b in bits if b) or str(diagnosis.get("transcript", ""))[:80]


async def publish(
    ctx: FlowContext, ticket: Ticket, destination: Address, audience: str, locale: str
) -> None:
    """Post a new card and remember where it is, so later changes update it in place."""
    ref = await repo.add_card_ref(ctx.session, ticket.id, destination.ref, audience, locale)
    card = await build_card(ctx, ticket, audience, locale)
    await ctx.send(destination, card, ticket_id=ticket.id, card_ref_id=ref.id)


async def refresh(ctx: FlowContext, ticket: Ticket) -> None:
    """Update every copy of the ticket's card, on every platform it was posted to."""
    for ref in await repo.card_refs_for(ctx.session, ticket.id):
        card = await build_card(ctx, ticket, ref.audience, ref.locale)
        await ctx.send(
            Address.parse(ref.destination),
            card,
            ticket_id=ticket.id,
            card_ref_id=ref.id,
            op="update",
        )


async def has_card_in(ctx: FlowContext, ticket: Ticket, destination: Address) -> bool:
    return any(
        r.destination == destination.ref for r in await repo.card_refs_for(ctx.session, ticket.id)
    )
