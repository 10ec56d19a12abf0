"""The closure part of a staff ticket card: the category's checklist with a ✓ button per open
item and a ↺ per ticked one, and how many photos prove the work (``bot/flows/closure.py``)."""

from __future__ import annotations

from datetime import datetime

from bot import closure
from bot.adapters.codec import ActionToken
from bot.events import Button
from bot.texts import local_time, say
from bot.tickets import ClosureAction, TicketState
from bot.unit import Turn
from storage.records import Ticket

__all__ = ["closure_parts"]


def closure_parts(
    turn: Turn, ticket: Ticket, audience: str, locale: str
) -> tuple[list[tuple[str, str]], list[Button]]:
    """Fields and buttons for staff cards (customers see neither)."""
    if audience == "customer":
        return [], []
    fields: list[tuple[str, str]] = []
    buttons: list[Button] = []
    items = closure.checklist_of(turn.env.settings.closure, ticket)
    done = closure.ticked(ticket)
    tz = turn.env.settings.tz
    lines = []
    open_ = TicketState(ticket.state) in closure.TICK_STATES
    for index, item in enumerate(items):
        entry = done.get(item)
        if entry is None:
            lines.append(say("closure.item.open", locale, item=item))
        else:
            at = local_time(datetime.fromisoformat(entry["at"]), tz)
            lines.append(say("closure.item.done", locale, item=item, name=entry["by"], at=at))
        if open_:  # one button per item: ✓ ticks it, ↺ (a slip of the finger) takes it back
            token = ActionToken(ticket.id, ClosureAction.TICK, ticket.version, index)
            key = "closure.tick.button" if entry is None else "closure.untick.button"
            buttons.append(
                Button(
                    label=say(key, locale, item=item),
                    token=turn.env.codec.encode(token),
                    action=ClosureAction.TICK.value,
                )
            )
    if lines:
        fields.append((say("closure.field.checklist", locale), "\n".join(lines)))
    if ticket.photos:
        count = say("closure.photos.count", locale, count=ticket.photos)
        fields.append((say("closure.field.photos", locale), count))
    return fields, buttons
