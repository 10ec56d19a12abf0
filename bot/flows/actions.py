"""A button press: decode the token, check who may, move the ticket, tell everyone.

A forged token, a stale card (the ticket moved on since it was drawn), a repeated press and a
press by someone the table does not allow all change nothing: they raise a ``FlowError`` whose
reason the engine sends back to the presser (and the refusal goes on the ticket's record).
"""

from __future__ import annotations

from bot import lifecycle
from bot.errors import FlowError, StaleTransition, TokenInvalid, UnknownTicket
from bot.events import Action
from bot.flows import closure, csat, parts, questions, routing, snooze, voice
from bot.texts import say
from bot.ticket_labels import action_label
from bot.tickets import (
    ClosureAction,
    CsatAction,
    IntakeAction,
    NoteAction,
    PartsAction,
    SlaAction,
    TicketAction,
)
from bot.unit import Turn

__all__ = ["handle_action", "record_refusal"]


async def handle_action(turn: Turn, event: Action) -> None:
    assert turn.person is not None
    token = turn.env.codec.decode(event.token)
    if isinstance(token.action, IntakeAction):
        await questions.pressed(turn, token, event)
        return
    if isinstance(token.action, CsatAction):
        await csat.pressed(turn, token, event)  # a rating: it moves no state
        return
    ticket = await turn.unit.ticket(token.ticket_id)
    if ticket is None:
        raise UnknownTicket()
    if isinstance(token.action, NoteAction):
        # About a voice note, not the ticket's state: the note's own status guards repeats.
        await voice.decide(turn, ticket, token.action, token.arg or 0)
        return
    if isinstance(token.action, SlaAction):
        await snooze.pressed(turn, ticket, token.version, token.arg, event.note)
        return
    if isinstance(token.action, PartsAction):  # 待备件's ETA / visit-time questions
        await parts.pressed(turn, ticket, token)
        return
    if isinstance(token.action, ClosureAction):
        await closure.tick(turn, ticket, token.arg, token.version)
        return
    if token.version != ticket.version:
        raise StaleTransition()
    target = token.arg if token.action == TicketAction.ASSIGN else None
    if token.arg is not None and target is None:
        # A diagnosis card's suggested transition: confirm the note, then move on.
        await voice.confirm_note(turn, ticket, token.arg, turn.person)
    why = await routing.chosen(turn, ticket, target) if target is not None else None
    assignee_before = ticket.assignee_id
    if token.action in parts.FOLLOWS:
        parts.before(turn, ticket, token.action)  # the parts, set before the cards are drawn
    await lifecycle.apply(
        turn, ticket, token.action, turn.person, via="button", note=event.note, target=target,
        routing=why,
    )  # fmt: skip
    if token.action in parts.FOLLOWS:
        await parts.after(turn, ticket, token.action)  # stores chat, questions, the customer
    if token.action == TicketAction.REASSIGN and turn.person.role in ("dispatcher", "manager"):
        before = {assignee_before} if assignee_before is not None else set()
        await routing.offer(turn, ticket, exclude=before)
    label = action_label(token.action, turn.locale)
    turn.notify_presser(say("done", turn.locale, action=label, number=ticket.number))


async def record_refusal(turn: Turn, event: Action, refusal: FlowError) -> None:
    """A refused press goes on the ticket's record too: who pressed what, and why not."""
    try:
        token = turn.env.codec.decode(event.token)
    except TokenInvalid:
        return  # a forged token names no ticket we could trust
    if token.action in (IntakeAction.REPORT, IntakeAction.DISMISS):
        return  # it names a message, not a ticket
    ticket = await turn.unit.ticket(token.ticket_id)
    if ticket is None:
        return
    turn.record(
        ticket,
        "refused",
        via="button",
        data={
            "action": token.action.value,
            "card_version": token.version,
            "reason": type(refusal).__name__,
        },
    )
