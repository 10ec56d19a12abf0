"""What a customer says about a ticket already open: chases, slot answers, and priority.

- ``chase``: "人呢？/still broken" — on the ticket's record, the ticket raised to
  ``[intake] chase_priority`` and its assignee (or, with none, the team's groups) nagged.
- ``fill_slots``: the site or machine a report lacked, named within ``slot_minutes``, goes on the
  ticket and its cards; a bare short answer fills the one slot asked for.
- ``set_priority``: every priority change (impact answer, dispatcher, chase) — audited, its SLA
  clocks re-planned, its cards redrawn, older buttons stale.
"""

from __future__ import annotations

from datetime import timedelta

from bot import lifecycle
from bot.events import Address, Text
from bot.nlp.classify import Reading
from bot.sla.clocks import sync
from bot.texts import say
from bot.tickets import OPEN_STATES
from bot.unit import Turn
from storage.records import Ticket

__all__ = ["chase", "fill_slots", "impact_priority", "open_anywhere", "set_priority"]

_OPEN = frozenset(s.value for s in OPEN_STATES)
_SLOT_ANSWER_MAX = 40  # a bare answer to "where?" is short; a longer text is a new message


async def open_anywhere(turn: Turn) -> Ticket | None:
    """The customer's newest open ticket from any chat (a chase may come from another one)."""
    assert turn.person is not None
    found = await turn.unit.open_tickets(_OPEN, reporter_id=turn.person.id, limit=1)
    return found[0] if found else None


async def chase(turn: Turn, ticket: Ticket, text: str, via: str) -> None:
    """The customer chases an open ticket: on the record, raised, and its assignee nagged."""
    env, locale = turn.env, turn.locale
    turn.record(ticket, "chased", via=via, data={"text": text})
    floor = env.settings.intake.chase_priority
    if ticket.priority > floor:  # "P2" > "P1": lower priorities sort after
        await set_priority(turn, ticket, floor, via=via, reason="chased")
    else:
        await lifecycle.refresh(turn, ticket)
    assignee = await turn.unit.person(ticket.assignee_id)
    nag = say("chase.nag", env.settings.locale, number=ticket.number, priority=ticket.priority,
              text=text[:200])  # fmt: skip
    targets: list[Address] = []
    if assignee is not None:
        dm = env.directory.direct_address(assignee.key, set(env.platforms))
        if dm is not None:
            targets.append(dm)
    if not targets:
        targets = [
            c for c in env.directory.team_chats(ticket.team_key) if c.platform in env.platforms
        ]
    for dest in targets:
        turn.send(dest, Text(nag), ticket_id=ticket.id)
    who = assignee.name if assignee is not None else say("chase.team", locale)
    ack = say("chase.ack", locale, who=who, number=ticket.number, priority=ticket.priority)
    turn.reply(Text(ack), ticket_id=ticket.id)


async def set_priority(turn: Turn, ticket: Ticket, priority: str, *, via: str, reason: str) -> None:
    """Change a ticket's priority: audited, its SLA clocks re-planned, its cards redrawn."""
    before = ticket.priority
    if before == priority:
        return
    ticket.priority = priority
    ticket.updated_at = turn.now
    ticket.version += 1  # older cards' buttons go stale
    turn.record(
        ticket, "priority", via=via, data={"from": before, "to": priority, "reason": reason}
    )
    await sync(
        turn.unit,
        ticket,
        actor=turn.person if turn.person and turn.person.role != "customer" else None,
    )
    await lifecycle.refresh(turn, ticket)


async def fill_slots(turn: Turn, ticket: Ticket, text: str, reading: Reading, via: str) -> bool:
    """The reporter names what their report lacked (site, device): the ticket gets it."""
    intake = ticket.intake or {}
    slots = list(intake.get("slots", ()))
    window = timedelta(minutes=turn.env.settings.intake.slot_minutes)
    if not slots or turn.now - ticket.created_at > window:
        return False
    if (
        reading.is_fault_report
        and reading.confidence.report >= 0.9
        and len(text) > _SLOT_ANSWER_MAX
    ):
        return False  # a new report, not an answer
    found: dict[str, str] = {}
    device = reading.device_code or reading.device_name or reading.device
    if "device" in slots and device:
        found["device"] = device
    if "site" in slots and reading.location:
        found["site"] = reading.location
    if (
        not found
        and len(slots) == 1
        and len(text) <= _SLOT_ANSWER_MAX
        and not reading.is_fault_report
    ):
        found[slots[0]] = text.strip(" 。.!！")  # a bare answer to the one question asked
    if not found:
        return False
    if "device" in found:
        ticket.device_code = found["device"][:100]
    if "site" in found:
        ticket.site = found["site"][:200]
    left = [s for s in slots if s not in found]
    ticket.intake = (
        {**intake, "slots": left} if left else {k: v for k, v in intake.items() if k != "slots"}
    )
    ticket.updated_at = turn.now
    turn.record(ticket, "slot", via=via, data={"text": text, **found})
    await lifecycle.refresh(turn, ticket)
    locale = turn.locale
    names = {"device": say("field.device", locale), "site": say("field.site", locale)}
    fields = ("、" if locale == "zh" else ", ").join(f"{names[k]} {v}" for k, v in found.items())
    turn.reply(
        Text(say("slot.filled", locale, number=ticket.number, fields=fields)), ticket_id=ticket.id
    )
    return True


def impact_priority(turn: Turn, ticket: Ticket, impact: str) -> str:
    """The priority an impact answer gives (the config's impact × urgency table)."""
    urgency = "urgent" if (ticket.intake or {}).get("urgent") else "normal"
    table = turn.env.settings.intake.impact_priority
    return table[impact][urgency]  # type: ignore[index]
