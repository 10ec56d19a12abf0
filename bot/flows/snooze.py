"""延期: a manager pushes a ticket's nagging deadlines, with a reason, from a nag card's
button or by writing "GD-12 延期 2h 等厂家回电" in any chat.

The deadlines that nag (or, if none does, every running one) move by that much business
time; the ticket gets a new version (older card buttons go stale), the reason goes on the
audit trail, and every copy of the card is redrawn.
"""

from __future__ import annotations

import re

from bot import lifecycle
from bot.errors import NotAllowed, StaleTransition
from bot.events import Action, Text
from bot.sla.clocks import extend, policy_of, project
from bot.sla.view import earliest_due_text
from bot.texts import say, span
from bot.tickets import SLA_ACTION_ROLES, SlaAction, roles_of
from bot.unit import Turn
from storage.records import Ticket

__all__ = ["COMMAND", "command", "pressed", "snooze"]

#: "延期 2h 等厂家回电" / "snooze 90m waiting for the vendor" (after the ticket number)
COMMAND = re.compile(
    r"^\s*(?:延期|snooze)\s*(\d+(?:\.\d+)?)\s*(m|min|分钟|h|小时|d|天)?\s*[,，:：]?\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)


def minutes_of(amount: str | None, unit: str | None, default: int) -> float:
    if not amount:
        return float(default)
    n = float(amount)
    unit = (unit or "m").lower()
    return n * (60 if unit in ("h", "小时") else 1440 if unit in ("d", "天") else 1)


def _may(turn: Turn, ticket: Ticket) -> None:
    if not roles_of(turn.person, ticket) & SLA_ACTION_ROLES[SlaAction.SNOOZE]:
        raise NotAllowed(action=SlaAction.SNOOZE, state=ticket.state)


async def pressed(
    turn: Turn, ticket: Ticket, version: int, minutes: int | None, note: str | None
) -> None:
    """延期 on a nag card: with a reason typed along, snooze now; else ask for the reason."""
    minutes = minutes or turn.env.settings.sla.snooze_minutes
    if not note or not note.strip():
        _may(turn, ticket)
        turn.record(ticket, "sla_snooze_asked", via="button", data={"minutes": minutes})
        turn.notify_presser(
            say("sla.snooze_ask", turn.locale, number=ticket.number, minutes=minutes)
        )
        return
    await snooze(turn, ticket, minutes, note.strip(), version=version, private=True)


async def command(turn: Turn, ticket: Ticket, m: re.Match[str]) -> None:
    """ "GD-12 延期 2h 等厂家回电": a manager's snooze, with its reason, from any chat."""
    amount, unit, reason = m.groups()
    if not reason.strip():
        turn.reply(Text(say("sla.snooze_usage", turn.locale, number=ticket.number)))
        return
    minutes = minutes_of(amount, unit, turn.env.settings.sla.snooze_minutes)
    await snooze(turn, ticket, minutes, reason.strip(), version=ticket.version, private=False)


async def snooze(
    turn: Turn, ticket: Ticket, minutes: float, reason: str, *, version: int, private: bool
) -> None:
    _may(turn, ticket)
    turn.unit.touch(ticket.id)
    chosen: dict[str, object] = {}
    if turn.env.policies is not None:
        if version != ticket.version:
            raise StaleTransition()
        ticket.version += 1
        ticket.updated_at = turn.now
        clocks = turn.unit.clocks.get(ticket.id, [])
        policy = await policy_of(turn.unit, ticket)
        before = extend(clocks, turn.now, policy, minutes * 60.0)
        project(ticket, clocks)
        moved = [c for c in clocks if c.kind in before]
        turn.record(
            ticket,
            "sla_snooze",
            via="button" if isinstance(turn.event, Action) else "message",
            data={
                "minutes": minutes,
                "reason": reason,
                "clocks": {
                    c.kind: {"from": _iso(before[c.kind]), "to": _iso(c.due_at)} for c in moved
                },
            },
        )
        chosen = {c.kind: c for c in moved}
        await lifecycle.refresh(turn, ticket)
        due = earliest_due_text(moved, turn.env.settings.tz)
    else:
        await lifecycle.refresh(turn, ticket)
    if not chosen:
        text = say("sla.nothing_to_snooze", turn.locale, number=ticket.number)
    else:
        text = say(
            "sla.snoozed",
            turn.locale,
            span=span(minutes * 60, turn.locale),
            number=ticket.number,
            due=due,
            reason=reason,
        )
    if private:
        turn.notify_presser(text)
    else:
        turn.reply(Text(text))


def _iso(at: object) -> str | None:
    return at.isoformat() if at is not None else None  # type: ignore[attr-defined]
