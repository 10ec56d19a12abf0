"""The nag card an SLA warning or escalation shows in a direct chat: the clocks, and what can
be done about them (the ticket buttons the table allows now, then 延期)."""

from __future__ import annotations

from bot.cards.ticket import AUDIENCE_ROLES, action_button
from bot.events import Card
from bot.sla.view import clock_lines
from bot.texts import say
from bot.ticket_labels import state_label
from bot.tickets import OPEN_STATES, SlaAction, TicketAction, TicketState, allowed_actions, facts_of
from bot.unit import Turn
from storage.records import Ticket

__all__ = ["NAG_ACTIONS", "nag_card"]

#: The ticket buttons a nag card offers (those the state table allows now), then 延期.
NAG_ACTIONS = (TicketAction.ACCEPT, TicketAction.CLAIM, TicketAction.REASSIGN)


async def nag_card(
    turn: Turn, ticket: Ticket, audience: str, locale: str, *, lines: list[str] | None = None
) -> Card:
    """``lines``: what the nag says about the clocks (default: every clock worth a word)."""
    env = turn.env
    assignee = await turn.unit.person(ticket.assignee_id)
    if lines is None:
        assert env.policies is not None
        clocks = turn.unit.clocks.get(ticket.id, [])
        lines = clock_lines(clocks, turn.now, env.policies, locale, env.settings.tz)
    fields: list[tuple[str, str]] = [
        (say("field.state", locale), state_label(TicketState(ticket.state), locale)),
        (say("field.assignee", locale), assignee.name if assignee else say("unassigned", locale)),
    ]
    fields += [(say("field.sla", locale), line) for line in lines]
    allowed = set(allowed_actions(facts_of(ticket), AUDIENCE_ROLES["staff"]))
    buttons = [action_button(env.codec, ticket, a, locale) for a in NAG_ACTIONS if a in allowed]
    if TicketState(ticket.state) in OPEN_STATES:
        minutes = env.settings.sla.snooze_minutes
        buttons.append(action_button(env.codec, ticket, SlaAction.SNOOZE, locale, arg=minutes))
    return Card(
        ticket_id=ticket.id,
        version=ticket.version,
        title=say(
            "sla.nag_title",
            locale,
            number=ticket.number,
            priority=ticket.priority,
            title=ticket.title,
        ),
        fields=tuple(fields),
        buttons=tuple(buttons),
    )
