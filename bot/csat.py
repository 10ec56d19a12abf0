"""The rating question, asked of a ticket's reporter when it closes.

``bot.lifecycle.apply`` calls ``ask`` when a transition closes a ticket (the customer's confirm,
auto-close): the stars (``bot/cards/csat.py``) go to the chat the ticket came from and the
ticket's ``csat_ratings`` row is (re)set — a reopened ticket is asked again at its next close.
What a press, a comment and the reminder do is ``bot/flows/csat.py``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.cards.csat import AUDIENCE, csat_card
from bot.events import Address
from bot.unit import Turn
from storage import csat as csat_rows
from storage.records import Person, Ticket

__all__ = ["ask", "post_stars", "reopened"]


async def post_stars(
    turn: Turn, ticket: Ticket, reporter: Person, *, key: str, reminder: bool = False
) -> None:
    """The stars to the ticket's chat, as a card updated in place when they are pressed (the
    ticket's earlier star cards are left as they are)."""
    locale = reporter.locale or turn.env.settings.locale
    origin = Address.parse(ticket.origin_chat)
    if not reminder:
        reopened(turn, ticket)  # a new question: the old stars are no longer redrawn
    ref = await turn.unit.new_card_ref(ticket, origin, AUDIENCE, locale)
    card = await csat_card(turn, ticket, AUDIENCE, locale, reminder=reminder)
    turn.send(origin, card, ticket_id=ticket.id, card_ref=ref, key=key)


def reopened(turn: Turn, ticket: Ticket) -> None:
    """The ticket was reopened (its star cards were just redrawn without stars): they are left
    as they are from now on, and its next close asks afresh."""
    for ref in turn.unit.refs.get(ticket.id, []):
        if ref.audience.partition(":")[0] == AUDIENCE:
            ref.stale = True


async def ask(turn: Turn, ticket: Ticket) -> None:
    """Ask the reporter of a ticket that has just closed for a rating (customers only, in the
    chat the ticket came from, when that platform runs here)."""
    if not turn.env.settings.csat.enabled:
        return
    reporter = await turn.unit.person(ticket.reporter_id)
    platform = Address.parse(ticket.origin_chat).platform
    if reporter is None or reporter.role != "customer" or platform not in turn.env.platforms:
        return
    await post_stars(turn, ticket, reporter, key=f"csat:{ticket.id}:{ticket.version}")
    ticket_id, rater_id, now = ticket.id, reporter.id, turn.now

    async def asked(conn: AsyncConnection) -> None:
        await csat_rows.ask(conn, ticket_id, rater_id, now)

    turn.unit.statements.append(asked)
