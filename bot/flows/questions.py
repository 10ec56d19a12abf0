"""Presses on the intake's one-tap questions: 报修?/不用, the reporter's impact, a dispatcher's
priority. Each answer is on the ticket's record; none moves the ticket's state.

- **报修 / 不用** carry the inbound message they ask about (its row id), not a ticket: 报修
  makes that message a ticket (once: the message is the ticket's source), 不用 leaves it be.
  Only the person who wrote it answers (in a group, others see the question too).
- **Impact** (全线/整机停产 · 部分受影响 · 不影响生产 · 有安全隐患) is answered once, by the
  reporter or a dispatcher/manager; the priority comes from ``[intake] impact_priority``.
- **Priority** buttons on staff cards: dispatchers and managers only.
"""

from __future__ import annotations

from bot import lifecycle
from bot.adapters.codec import ActionToken
from bot.errors import NotAllowed, QuestionAnswered, UnknownTicket
from bot.events import Action, Message, inbound_from_json
from bot.flows import followups, intake, repeats
from bot.nlp.classify import classify
from bot.texts import say
from bot.tickets import (
    IMPACT_STATES,
    IMPACTS,
    INTAKE_ACTION_ROLES,
    IntakeAction,
    Priority,
    TicketState,
    roles_of,
)
from bot.unit import Turn

__all__ = ["pressed"]


async def pressed(turn: Turn, token: ActionToken, event: Action) -> None:
    if token.action in (IntakeAction.REPORT, IntakeAction.DISMISS):
        await _report_or_not(turn, token, event)
        return
    ticket = await turn.unit.ticket(token.ticket_id)
    if ticket is None:
        raise UnknownTicket()
    assert turn.person is not None
    if token.action in (IntakeAction.SAME_FAULT, IntakeAction.NOT_SAME):
        await repeats.pressed(turn, token, ticket)  # 合并 / 不是同一问题 on a suspected repeat
        return
    roles = roles_of(turn.person, ticket)
    locale = turn.locale
    if token.action == IntakeAction.IMPACT:
        if (
            not (roles & INTAKE_ACTION_ROLES[IntakeAction.IMPACT])
            or token.arg is None
            or token.arg >= len(IMPACTS)
        ):
            raise NotAllowed(action=token.action.value, state=ticket.state)
        intake_state = dict(ticket.intake or {})
        if intake_state.get("impact") != "asked" or ticket.state not in IMPACT_STATES:
            raise QuestionAnswered()  # answered, or someone is on site and sees for themselves
        impact = IMPACTS[token.arg]
        ticket.intake = {**intake_state, "impact": impact}
        turn.record(ticket, "impact", via="button", data={"impact": impact})
        priority = followups.impact_priority(turn, ticket, impact)
        if priority != ticket.priority:
            await followups.set_priority(
                turn, ticket, priority, via="button", reason=f"impact:{impact}"
            )
        else:
            ticket.version += 1  # the question's buttons go
            ticket.updated_at = turn.now
            await lifecycle.refresh(turn, ticket)
        label = say(f"impact.{impact}", locale)
        turn.notify_presser(say("impact.set", locale, impact=label, number=ticket.number,
                                priority=ticket.priority))  # fmt: skip
        return
    # IntakeAction.PRIORITY
    if not roles & INTAKE_ACTION_ROLES[IntakeAction.PRIORITY] or token.arg is None or token.arg > 3:
        raise NotAllowed(action=token.action.value, state=ticket.state)
    priority = list(Priority)[token.arg].value
    await followups.set_priority(turn, ticket, priority, via="button", reason="dispatcher")
    turn.notify_presser(say("priority.set", locale, number=ticket.number, priority=priority))


async def _report_or_not(turn: Turn, token: ActionToken, event: Action) -> None:
    assert turn.person is not None
    stored = await turn.unit.reads.inbound_message(token.ticket_id)
    if stored is None:
        raise UnknownTicket()
    key, payload = stored
    message = inbound_from_json(payload)
    assert isinstance(message, Message)
    is_sender = (
        message.sender.platform == event.sender.platform
        and message.sender.user_id == event.sender.user_id
    )
    if not is_sender:
        raise NotAllowed(action=token.action.value, state=TicketState.NEW.value)
    existing = await turn.unit.reads.ticket_id_by_source(key)
    if existing is not None:
        ticket = await turn.unit.ticket(existing)
        number = ticket.number if ticket is not None else ""
        turn.notify_presser(say("report.exists", turn.locale, number=number))
        return
    if token.action == IntakeAction.DISMISS:
        turn.notify_presser(say("report.dismissed", turn.locale))
        return
    reading = intake.as_report(classify(message.text))  # its writer says it is one
    turn.unit.seen_chat(message.chat, message.chat_type)
    await intake.create_ticket(turn, message, message.text, reading, via="button", source=key)
