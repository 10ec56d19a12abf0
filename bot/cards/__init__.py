"""Cards, built by kind: one builder per audience a card reference can have.

A card reference (``storage.records.CardRef``) names its audience — ``customer``, ``staff``,
``nag`` or ``voice:<note id>`` — and the registry below maps the part before ``:`` to the
builder that draws that card from the unit's records. Drawing a card again after any change
(``bot.lifecycle.refresh``) therefore needs no knowledge of who posted it or why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from bot.cards.csat import csat_card
from bot.cards.nag import nag_card
from bot.cards.ticket import ticket_card
from bot.cards.voice import voice_card
from bot.events import Card
from bot.unit import Turn
from storage.records import Ticket

__all__ = ["BUILDERS", "build"]

Builder = Callable[[Turn, Ticket, str, str], Awaitable[Card]]

#: audience kind → builder(turn, ticket, audience, locale)
BUILDERS: Mapping[str, Builder] = {
    "customer": ticket_card,
    "staff": ticket_card,
    "nag": nag_card,
    "voice": voice_card,
    "csat": csat_card,  # the customer's rating (bot/flows/csat.py)
}


async def build(turn: Turn, ticket: Ticket, audience: str, locale: str) -> Card:
    """The card ``audience`` sees of ``ticket`` now."""
    return await BUILDERS[audience.partition(":")[0]](turn, ticket, audience, locale)
