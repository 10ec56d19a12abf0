"""The rating question: 1–5 stars as buttons, asked of a ticket's reporter when it closes.

``bot.lifecycle.apply`` calls ``ask`` when a transition closes a ticket (the customer's confirm,
auto-close): the card goes to the chat the ticket came from and the ticket's ``csat_ratings``
row is (re)set — a reopened ticket is asked again at its next close. What a press, a comment and
the reminder do is ``bot/flows/csat.py``. Cards are platform-neutral: every adapter draws the
stars as its own buttons.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.adapters.codec import ActionToken
from bot.events import Address, Button, Card
from bot.texts import say
from bot.tickets import CsatAction
from bot.unit import Turn
from storage import csat as csat_rows
from storage.records import Ticket

__all__ = ["SCORES", "ask", "rating_card", "stars"]

SCORES = range(1, 6)


def stars(score: int, locale: str) -> str:
    """ "4星" / "4★"."""
    return say("csat.star", locale, n=score)


def rating_card(turn: Turn, ticket: Ticket, locale: str, *, reminder: bool = False) -> Card:
    """The question (or its reminder) with a button per score; each carries a signed token
    naming the ticket and the score."""
    codec = turn.env.codec
    buttons = tuple(
        Button(
            stars(n, locale),
            codec.encode(ActionToken(ticket.id, CsatAction.RATE, ticket.version, n)),
            style="primary" if n == SCORES[-1] else "default",
            action=CsatAction.RATE.value,
        )
        for n in SCORES
    )
    return Card(
        ticket_id=ticket.id,
        version=ticket.version,
        title=say("csat.title", locale, number=ticket.number),
        text=say("csat.remind" if reminder else "csat.ask", locale, title=ticket.title),
        buttons=buttons,
    )


async def ask(turn: Turn, ticket: Ticket) -> None:
    """Ask the reporter of a ticket that has just closed for a rating (customers only, in the
    chat the ticket came from, when that platform runs here)."""
    if not turn.env.settings.csat.enabled:
        return
    reporter = await turn.unit.person(ticket.reporter_id)
    origin = Address.parse(ticket.origin_chat)
    if reporter is None or reporter.role != "customer" or origin.platform not in turn.env.platforms:
        return
    locale = reporter.locale or turn.env.settings.locale
    card = rating_card(turn, ticket, locale)
    turn.send(origin, card, ticket_id=ticket.id, key=f"csat:{ticket.id}:{ticket.version}")
    ticket_id, rater_id, now = ticket.id, reporter.id, turn.now

    async def asked(conn: AsyncConnection) -> None:
        await csat_rows.ask(conn, ticket_id, rater_id, now)

    turn.unit.statements.append(asked)
