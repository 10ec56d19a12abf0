"""A button press: decode the token, check who may, compare-and-set, tell everyone.

A forged token, a stale card (the ticket moved on since it was drawn), a repeated press and a
press by someone the table does not allow all change nothing: they raise a ``FlowError`` whose
reason the engine sends back to the presser.
"""

from __future__ import annotations

from typing import Any

from bot.errors import FlowError, NotAllowed, StaleTransition, TokenInvalid, UnknownTicket
from bot.events import Action, Address, Text
from bot.flows import FlowContext, cards, sla, voice
from bot.flows.intake import publish_staff_cards
from bot.texts import say, span
from bot.tickets import (
    SLA_ACTION_ROLES,
    NoteAction,
    Requirement,
    Role,
    SlaAction,
    TicketAction,
    TicketState,
    action_label,
    check,
)
from storage import repo
from storage.models import Person, Ticket

__all__ = ["apply_action", "handle_action", "record_refusal", "roles_of", "snooze_and_tell"]


def roles_of(person: Person, ticket: Ticket) -> frozenset[Role]:
    roles: set[Role] = set()
    if person.id == ticket.reporter_id:
        roles.add(Role.CUSTOMER)
    if person.role in ("engineer", "dispatcher", "manager"):
        roles.add(Role.ENGINEER if person.role == "engineer" else Role(person.role))
    if ticket.assignee_id is not None and person.id == ticket.assignee_id:
        roles.add(Role.ASSIGNEE)
    return frozenset(roles)


async def handle_action(ctx: FlowContext, event: Action) -> None:
    assert ctx.person is not None
    token = ctx.codec.decode(event.token)
    ticket = await repo.get_ticket(ctx.session, token.ticket_id)
    if ticket is None:
        raise UnknownTicket()
    if isinstance(token.action, NoteAction):
        # About a voice note, not the ticket's state: the note's own status guards repeats.
        await voice.decide(ctx, ticket, token.action, token.arg or 0)
        return
    if isinstance(token.action, SlaAction):
        await snooze_pressed(ctx, ticket, token.version, token.arg, event.note)
        return
    if token.version != ticket.version:
        raise StaleTransition()
    target = token.arg if token.action == TicketAction.ASSIGN else None
    if token.arg is not None and target is None:
        # A diagnosis card's suggested transition: confirm the note, then move on.
        ticket = await voice.confirm_note(ctx, ticket, token.arg, ctx.person)
    await apply_action(
        ctx, ticket, token.action, ctx.person, via="button", note=event.note, target=target
    )
    label = action_label(token.action, ctx.locale)
    await ctx.notify_presser(say("done", ctx.locale, action=label, number=ticket.number))


async def record_refusal(ctx: FlowContext, event: Action, refusal: FlowError) -> None:
    """A refused press goes on the ticket's record too: who pressed what, and why not."""
    assert ctx.person is not None
    try:
        token = ctx.codec.decode(event.token)
    except TokenInvalid:
        return  # a forged token names no ticket we could trust
    ticket = await repo.get_ticket(ctx.session, token.ticket_id)
    if ticket is None:
        return
    await ctx.record(
        ticket.id,
        kind="refused",
        via="button",
        data={
            "action": token.action.value,
            "card_version": token.version,
            "reason": type(refusal).__name__,
        },
    )


async def apply_action(
    ctx: FlowContext,
    ticket: Ticket,
    action: TicketAction,
    actor: Person | None,
    *,
    via: str,
    note: str | None = None,
    target: int | None = None,
) -> Ticket:
    """Run one transition of the state table on ``ticket`` as ``actor`` (None: the system)."""
    roles = roles_of(actor, ticket) if actor is not None else frozenset({Role.SYSTEM})
    if note and action == TicketAction.RESOLVE and Role.ASSIGNEE in roles:
        # A written root cause typed with the press is evidence.
        await repo.set_ticket_fields(ctx.session, ticket.id, root_cause=note)
        ticket.root_cause = note
    rule = check(action, cards.facts_of(ticket), roles, target_given=target is not None)
    changes: dict[str, Any] = {}
    if action == TicketAction.CLAIM and actor is not None:
        changes["assignee_id"] = actor.id
    elif Requirement.TARGET_ENGINEER in rule.requires:
        changes["assignee_id"] = target
    elif action == TicketAction.REASSIGN:
        changes["assignee_id"] = None
    if rule.target == TicketState.CLOSED:
        changes["closed_at"] = ctx.now
    elif action == TicketAction.REOPEN:
        changes["closed_at"] = None
    won = await repo.transition(
        ctx.session,
        ticket.id,
        expected_state=ticket.state,
        expected_version=ticket.version,
        new_state=rule.target,
        **changes,
    )
    if not won:
        raise StaleTransition()
    data: dict[str, Any] = {"action": action.value}
    if note:
        data["note"] = note
    if "assignee_id" in changes:
        assignee = (
            await repo.get_person(ctx.session, changes["assignee_id"])
            if changes["assignee_id"]
            else None
        )
        data["assignee"] = assignee.key if assignee else None
    await repo.append_event(
        ctx.session,
        ticket.id,
        actor=actor.name if actor else "system",
        actor_id=actor.id if actor else None,
        kind="transition",
        via=via,
        from_state=ticket.state,
        to_state=rule.target,
        data=data,
        at=ctx.now,
    )
    ctx.metrics.transitions.labels(action.value).inc()
    updated = await repo.get_ticket(ctx.session, ticket.id)
    assert updated is not None
    await sla.sync(ctx, updated, actor=actor)  # clocks stop, pause, resume; escalation ends
    await cards.refresh(ctx, updated)
    if "assignee_id" in changes and updated.assignee_id is not None:
        await publish_staff_cards(ctx, updated)
    if rule.milestone:
        await _tell_customer(ctx, updated, rule.target)
    return updated


async def _tell_customer(ctx: FlowContext, ticket: Ticket, state: TicketState) -> None:
    reporter = await repo.get_person(ctx.session, ticket.reporter_id)
    locale = (reporter.locale if reporter else None) or ctx.settings.locale
    assignee = (
        await repo.get_person(ctx.session, ticket.assignee_id) if ticket.assignee_id else None
    )
    text = say("milestone.prefix", locale, number=ticket.number) + say(
        f"milestone.{state.value}", locale, name=assignee.name if assignee else ""
    )
    await ctx.send(Address.parse(ticket.origin_chat), Text(text), ticket_id=ticket.id)


async def snooze_pressed(
    ctx: FlowContext, ticket: Ticket, version: int, minutes: int | None, note: str | None
) -> None:
    """延期 on a nag card: with a reason typed along, snooze now; else ask for the reason
    (managers answer "GD-12 延期 1h 原因" in any chat)."""
    assert ctx.person is not None
    minutes = minutes or ctx.settings.sla.snooze_minutes
    if not note or not note.strip():
        if not roles_of(ctx.person, ticket) & SLA_ACTION_ROLES[SlaAction.SNOOZE]:
            raise NotAllowed(action=SlaAction.SNOOZE, state=TicketState(ticket.state))
        await ctx.record(
            ticket.id,
            kind="sla_snooze_asked",  # pressed without a reason: asked for one
            via="button",
            data={"minutes": minutes},
        )
        await ctx.notify_presser(
            say("sla.snooze_ask", ctx.locale, number=ticket.number, minutes=minutes)
        )
        return
    await snooze_and_tell(ctx, ticket, minutes, note.strip(), version=version, private=True)


async def snooze_and_tell(
    ctx: FlowContext,
    ticket: Ticket,
    minutes: float,
    reason: str,
    *,
    version: int,
    private: bool,
) -> None:
    assert ctx.person is not None
    chosen = await sla.snooze(ctx, ticket, ctx.person, minutes, reason, expected_version=version)
    updated = await repo.get_ticket(ctx.session, ticket.id)
    assert updated is not None
    await cards.refresh(ctx, updated)
    if not chosen:
        text = say("sla.nothing_to_snooze", ctx.locale, number=ticket.number)
    else:
        text = say(
            "sla.snoozed",
            ctx.locale,
            span=span(minutes * 60, ctx.locale),
            number=ticket.number,
            due=sla.earliest_due_text(chosen, ctx.settings.tz),
            reason=reason,
        )
    if private:
        await ctx.notify_presser(text)
    else:
        await ctx.reply(Text(text))
