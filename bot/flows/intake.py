"""Intake: a customer's text becomes a ticket; a staff member's text becomes a note.

A fault report creates a ticket with the intake's reading (priority, category, device, site),
starts its SLA clocks, routes it, answers the customer with the number, the promised times and
a card, asks for what is missing, and posts staff cards to the assignee and the team. A
customer's text that is not a fault report is added to their open ticket from the same chat,
or answered with a prompt to describe the problem.
"""

from __future__ import annotations

import re

from bot import lifecycle
from bot.events import Message, Text, Voice
from bot.flows import routing, snooze
from bot.nlp.classify import Reading, classify
from bot.sla.clocks import sync
from bot.texts import say, short_time
from bot.tickets import OPEN_STATES, TicketAction, TicketState
from bot.unit import Turn
from storage.records import Ticket

__all__ = ["customer_report", "handle_message"]

_TICKET_REF = re.compile(r"\bGD-(\d+)\b", re.IGNORECASE)
_ROOT_CAUSE = re.compile(r"^\s*(原因|根因|故障原因|root\s*cause|cause)\s*[:：]\s*", re.IGNORECASE)
_OPEN = frozenset(s.value for s in OPEN_STATES)


async def handle_message(turn: Turn, event: Message) -> None:
    assert turn.person is not None
    text = event.text.strip()
    if not text:
        return
    # In a group, people talk to each other: only fault reports and messages addressed to the
    # bot are for us; small talk there gets no answer.
    addressed = event.chat_type == "direct" or event.mentions_bot
    if turn.person.role == "customer":
        await customer_report(turn, event, text, addressed=addressed)
    elif addressed or _TICKET_REF.search(text):
        await _staff_text(turn, text)


async def customer_report(
    turn: Turn, event: Message | Voice, text: str, *, addressed: bool
) -> None:
    """A customer's words, typed or from a voice note: a report, a comment or small talk."""
    assert turn.person is not None
    reading = classify(text)
    via = "voice" if isinstance(event, Voice) else "message"
    if not reading.is_fault_report:
        if not addressed:
            return
        mine = await turn.unit.open_tickets(
            _OPEN, reporter_id=turn.person.id, origin_chat=event.chat.ref, limit=1
        )
        if mine:
            turn.record(mine[0], "comment", via=via, data={"text": text})
            turn.reply(Text(say("comment.added", turn.locale, number=mine[0].number)))
        else:
            turn.reply(Text(say("ask.describe", turn.locale)))
        return
    turn.unit.seen_chat(event.chat, event.chat_type)
    ticket = await _create(turn, event, text, reading, via)
    await _acknowledge(turn, event, ticket, reading)


async def _create(
    turn: Turn, event: Message | Voice, text: str, reading: Reading, via: str
) -> Ticket:
    assert turn.person is not None
    env, unit = turn.env, turn.unit
    title = reading.title[:200]
    picked = await routing.pick_engineer(
        turn, category=reading.category.value, device_code=reading.device_code, title=title
    )
    assignee = env.staff.by_id.get(picked) if picked is not None else None
    team = env.directory.team_for(assignee.key if assignee else None)
    ticket = await unit.new_ticket(
        title=title,
        description=text,
        priority=reading.priority.value,
        category=reading.category.value,
        state=TicketState.NEW.value,
        device_code=reading.device_code,
        site=reading.location,
        alarm_code=reading.alarm_code,
        reporter_id=turn.person.id,
        origin_chat=event.chat.ref,
        source_event=turn.key,
        team_key=team.id if team is not None else None,
        created_at=turn.now,
        updated_at=turn.now,
    )
    turn.record(
        ticket,
        "created",
        via=via,
        to_state=TicketState.NEW.value,
        data={"text": text, "reading": reading.as_json(None)},
    )
    env.metrics.tickets_created.inc()
    if picked is not None:  # (its clocks start with the assignment, counted from creation)
        await lifecycle.apply(turn, ticket, TicketAction.ASSIGN, None, via="system", target=picked)
    else:
        await sync(unit, ticket, actor=None, since=ticket.created_at)  # its clocks start
    return ticket


async def _acknowledge(
    turn: Turn, event: Message | Voice, ticket: Ticket, reading: Reading
) -> None:
    locale = turn.locale
    assignee = await turn.unit.person(ticket.assignee_id)
    who = (
        say("ack.assigned", locale, name=assignee.name)
        if assignee
        else say("ack.unassigned", locale)
    )
    ack = say("ack", locale, number=ticket.number, priority=ticket.priority, who=who)
    ack += _promise(turn, ticket, locale)
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
    turn.reply(Text(ack), ticket_id=ticket.id)
    await lifecycle.publish(turn, ticket, event.chat, "customer", locale)
    await lifecycle.publish_staff_cards(turn, ticket)


def _promise(turn: Turn, ticket: Ticket, locale: str) -> str:
    """The times the customer may hold us to (the SLA clocks' deadlines), if any."""
    tz = turn.env.settings.tz
    promises = [
        say(f"promise.{kind}", locale, at=short_time(at, tz, turn.now))
        for kind, at in (
            ("respond", ticket.respond_due),
            ("arrive", ticket.arrive_due),
            ("resolve", ticket.resolve_due),
        )
        if at is not None
    ]
    sep = "，" if locale == "zh" else ", "
    return say("ack.promise", locale, promises=sep.join(promises)) if promises else ""


async def _staff_text(turn: Turn, text: str) -> None:
    assert turn.person is not None
    locale = turn.locale
    m = _TICKET_REF.search(text)
    ticket = await turn.unit.ticket_by_number(f"GD-{m.group(1)}") if m else None
    if ticket is None:
        mine = await turn.unit.open_tickets(_OPEN, assignee_id=turn.person.id, limit=10)
        numbers = ", ".join(t.number or "" for t in mine)
        listing = say("staff.open", locale, numbers=numbers) if mine else say("staff.none", locale)
        turn.reply(Text(say("staff.help", locale, open=listing)))
        return
    note = _TICKET_REF.sub("", text, count=1).strip(" ：:,，")
    command = snooze.COMMAND.match(note)
    if command:
        await snooze.command(turn, ticket, command)
        return
    cause = _ROOT_CAUSE.match(note)
    if cause:
        root_cause = note[cause.end() :].strip()
        ticket.root_cause = root_cause
        ticket.updated_at = turn.now
        turn.record(ticket, "evidence", via="message", data={"root_cause": root_cause})
        await lifecycle.refresh(turn, ticket)
        turn.reply(Text(say("staff.evidence", locale, number=ticket.number)))
        return
    turn.record(ticket, "comment", via="message", data={"text": note})
    turn.reply(Text(say("staff.noted", locale, number=ticket.number)))
