"""Intake: a customer's text becomes a ticket; a staff member's text becomes a note.

A fault report creates a ticket with the intake's reading (priority, category, device, site),
routes it, answers the customer with the number and a card, asks for what is missing, and posts
staff cards to the assignee and the team. A customer's text that is not a fault report is added
to their open ticket from the same chat, or answered with a prompt to describe the problem.
"""

from __future__ import annotations

import re

from bot.events import Address, Message, Text, Voice
from bot.flows import FlowContext, cards, routing, sla
from bot.nlp.classify import Reading, classify
from bot.texts import say, short_time
from bot.tickets import OPEN_STATES, TicketState
from storage import repo
from storage.models import Ticket

__all__ = ["customer_report", "handle_message", "publish_staff_cards"]

_TICKET_REF = re.compile(r"\bGD-(\d+)\b", re.IGNORECASE)
_ROOT_CAUSE = re.compile(r"^\s*(原因|根因|故障原因|root\s*cause|cause)\s*[:：]\s*", re.IGNORECASE)


async def handle_message(ctx: FlowContext, event: Message) -> None:
    assert ctx.person is not None
    text = event.text.strip()
    if not text:
        return
    # In a group, people talk to each other: only fault reports and messages addressed to the
    # bot are for us; small talk there gets no answer.
    addressed = event.chat_type == "direct" or event.mentions_bot
    if ctx.person.role == "customer":
        await customer_report(ctx, event, text, addressed=addressed)
    elif addressed or _TICKET_REF.search(text):
        await _staff_text(ctx, text)


async def customer_report(
    ctx: FlowContext, event: Message | Voice, text: str, *, addressed: bool
) -> None:
    """A customer's words, typed or from a voice note: a report, a comment or small talk."""
    assert ctx.person is not None
    reading = classify(text)
    if not reading.is_fault_report:
        if not addressed:
            return
        open_tickets = await repo.list_tickets(
            ctx.session,
            states=[s.value for s in OPEN_STATES],
            reporter_id=ctx.person.id,
            origin_chat=event.chat.ref,
            limit=1,
        )
        if open_tickets:
            ticket = open_tickets[0]
            await ctx.record(
                ticket.id,
                kind="comment",
                via="voice" if isinstance(event, Voice) else "message",
                data={"text": text},
            )
            await ctx.reply(Text(say("comment.added", ctx.locale, number=ticket.number)))
        else:
            await ctx.reply(Text(say("ask.describe", ctx.locale)))
        return
    await repo.ensure_chat(ctx.session, event.chat.platform, event.chat.chat_id, event.chat_type)
    ticket = await _create(ctx, event, text, reading)
    await _acknowledge(ctx, event, ticket, reading)


async def _create(ctx: FlowContext, event: Message | Voice, text: str, reading: Reading) -> Ticket:
    assert ctx.person is not None
    ticket = await repo.create_ticket(
        ctx.session,
        title=reading.title[:200],
        description=text,
        priority=reading.priority.value,
        category=reading.category.value,
        state=TicketState.NEW.value,
        device_code=reading.device_code,
        site=reading.location,
        alarm_code=reading.alarm_code,
        reporter_id=ctx.person.id,
        origin_chat=event.chat.ref,
        source_event=ctx.key,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    await ctx.record(
        ticket.id,
        kind="created",
        via="voice" if isinstance(event, Voice) else "message",
        to_state=TicketState.NEW,
        data={"text": text, "reading": reading.as_json(None)},
    )
    ctx.metrics.tickets_created.inc()
    ticket = await routing.route(ctx, ticket)
    assignee = (
        await repo.get_person(ctx.session, ticket.assignee_id) if ticket.assignee_id else None
    )
    team = ctx.directory.team_for(assignee.key if assignee else None)
    if team is not None:
        await repo.set_ticket_fields(ctx.session, ticket.id, team_key=team.id)
        ticket.team_key = team.id
    await sla.start(ctx, ticket)
    return ticket


async def _acknowledge(
    ctx: FlowContext, event: Message | Voice, ticket: Ticket, reading: Reading
) -> None:
    locale = ctx.locale
    assignee = (
        await repo.get_person(ctx.session, ticket.assignee_id) if ticket.assignee_id else None
    )
    who = (
        say("ack.assigned", locale, name=assignee.name)
        if assignee
        else say("ack.unassigned", locale)
    )
    ack = say("ack", locale, number=ticket.number, priority=ticket.priority, who=who)
    promise = await _promise(ctx, ticket, locale)
    if promise:
        ack += promise
    missing = [
        say(key, locale)
        for key, value in (
            ("missing.device", reading.device_code or reading.device),
            ("missing.location", reading.location),
        )
        if not value
    ]
    if missing:
        ack += "\n" + say(
            "ask.missing",
            locale,
            missing="、".join(missing) if locale == "zh" else ", ".join(missing),
        )
    await ctx.reply(Text(ack), ticket_id=ticket.id)
    await cards.publish(ctx, ticket, event.chat, "customer", locale)
    await publish_staff_cards(ctx, ticket)


async def _promise(ctx: FlowContext, ticket: Ticket, locale: str) -> str:
    """The times the customer may hold us to (the SLA clocks' deadlines), if any."""
    fresh = await repo.get_ticket(ctx.session, ticket.id)
    if fresh is None:
        return ""
    tz = ctx.settings.tz
    promises = [
        say(f"promise.{kind}", locale, at=short_time(at, tz, ctx.now))
        for kind, at in (
            ("respond", fresh.respond_due),
            ("arrive", fresh.arrive_due),
            ("resolve", fresh.resolve_due),
        )
        if at is not None
    ]
    sep = "，" if locale == "zh" else ", "
    return say("ack.promise", locale, promises=sep.join(promises)) if promises else ""


async def publish_staff_cards(ctx: FlowContext, ticket: Ticket) -> None:
    """The assignee's direct chat and the team's group chats, each once."""
    destinations: list[tuple[Address, str]] = []
    if ticket.assignee_id is not None:
        assignee = await repo.get_person(ctx.session, ticket.assignee_id)
        if assignee is not None:
            dm = ctx.directory.direct_address(assignee.key, ctx.platforms)
            if dm is not None:
                destinations.append((dm, assignee.locale or ctx.settings.locale))
    for chat in ctx.directory.team_chats(ticket.team_key):
        if chat.platform in ctx.platforms:
            destinations.append((chat, ctx.settings.locale))
    for dest, locale in destinations:
        if not await cards.has_card_in(ctx, ticket, dest):
            await cards.publish(ctx, ticket, dest, "staff", locale)


async def _staff_text(ctx: FlowContext, text: str) -> None:
    assert ctx.person is not None
    locale = ctx.locale
    m = _TICKET_REF.search(text)
    ticket = await repo.ticket_by_number(ctx.session, f"GD-{m.group(1)}") if m else None
    if ticket is None:
        mine = await repo.list_tickets(
            ctx.session, states=[s.value for s in OPEN_STATES], assignee_id=ctx.person.id, limit=10
        )
        numbers = ", ".join(t.number or "" for t in mine)
        listing = say("staff.open", locale, numbers=numbers) if mine else say("staff.none", locale)
        await ctx.reply(Text(say("staff.help", locale, open=listing)))
        return
    note = _TICKET_REF.sub("", text, count=1).strip(" ：:,，")
    snooze = sla.SNOOZE_COMMAND.match(note)
    if snooze:
        await _snooze_command(ctx, ticket, snooze)
        return
    cause = _ROOT_CAUSE.match(note)
    if cause:
        root_cause = note[cause.end() :].strip()
        await repo.set_ticket_fields(ctx.session, ticket.id, root_cause=root_cause)
        await ctx.record(
            ticket.id,
            kind="evidence",
            via="message",
            data={"root_cause": root_cause},
        )
        refreshed = await repo.get_ticket(ctx.session, ticket.id)
        assert refreshed is not None
        await cards.refresh(ctx, refreshed)
        await ctx.reply(Text(say("staff.evidence", locale, number=ticket.number)))
        return
    await ctx.record(
        ticket.id,
        kind="comment",
        via="message",
        data={"text": note},
    )
    await ctx.reply(Text(say("staff.noted", locale, number=ticket.number)))


async def _snooze_command(ctx: FlowContext, ticket: Ticket, m: re.Match[str]) -> None:
    """ "GD-12 延期 2h 等厂家回电": a manager's snooze, with its reason, from any chat."""
    from bot.flows.actions import snooze_and_tell

    amount, unit, reason = m.groups()
    if not reason.strip():
        await ctx.reply(Text(say("sla.snooze_usage", ctx.locale, number=ticket.number)))
        return
    minutes = sla.snooze_minutes(amount, unit, ctx.settings.sla.snooze_minutes)
    await snooze_and_tell(
        ctx, ticket, minutes, reason.strip(), version=ticket.version, private=False
    )
