"""The rating card (``bot/flows/csat.py``): five stars while the customer has not rated, then
what they gave — the same message, updated in place where the platform allows it.

Its card reference's audience says where it stands: ``csat`` (asked) or ``csat:<score>``
(rated), so a redraw (``bot.lifecycle.refresh``, after any change of the ticket) needs nothing
else; a ticket reopened since it was asked shows no stars (it is asked again at its next
close).
"""

from __future__ import annotations

from bot.adapters.codec import ActionToken
from bot.events import Button, Card
from bot.texts import say
from bot.tickets import CsatAction, TicketState
from bot.unit import Turn
from storage.records import Ticket

__all__ = ["AUDIENCE", "SCORES", "csat_card", "rated_audience", "stars"]

AUDIENCE = "csat"
SCORES = range(1, 6)


def stars(score: int, locale: str) -> str:
    """ "4星" / "4★"."""
    return say("csat.star", locale, n=score)


def rated_audience(score: int) -> str:
    return f"{AUDIENCE}:{score}"


async def csat_card(
    turn: Turn, ticket: Ticket, audience: str, locale: str, *, reminder: bool = False
) -> Card:
    """The question (or its reminder) with a button per score, each carrying a signed token
    naming the ticket and the score; once rated, the score given and no buttons."""
    score = audience.partition(":")[2]
    title = say("csat.title", locale, number=ticket.number)
    if score:
        text = say("csat.given", locale, stars=stars(int(score), locale))
        return Card(ticket_id=ticket.id, version=ticket.version, title=title, text=text)
    if ticket.state != TicketState.CLOSED:
        text = say("csat.reopened", locale, number=ticket.number)
        return Card(ticket_id=ticket.id, version=ticket.version, title=title, text=text)
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
    text = say("csat.remind" if reminder else "csat.ask", locale, title=ticket.title)
    return Card(
        ticket_id=ticket.id, version=ticket.version, title=title, text=text, buttons=buttons
    )
