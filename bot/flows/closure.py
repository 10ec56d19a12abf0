"""Closure that proves the work: checklist ticks, evidence photos, the notice before auto-close.

- A tick (``ClosureAction.TICK`` on a staff card) marks one item of the category's checklist
  done — by the assignee or a manager, while the ticket is being worked on — and goes on the
  audit trail; its ↺ takes a tick back (audited too); 已解决 is refused while an item is open
  (``Requirement.CHECKLIST``).
- A photo (uploaded on the console, or sent in chat by staff) is evidence: the ticket counts
  it, the audit trail names its hash, and the caller stores the picture
  (``storage.evidence``) in the same transaction.
- Before a resolved ticket closes by itself the customer is told when, once per resolution
  (``bot/flows/housekeeping.py`` asks for it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from bot import closure, lifecycle
from bot.errors import InvalidTransition, NotAllowed, StaleTransition
from bot.events import Address, Image, Text
from bot.texts import local_time, say
from bot.tickets import OTHER_ACTION_ROLES, ClosureAction, Role, TicketState, roles_of
from bot.unit import Turn
from storage.evidence import NewPhoto
from storage.records import Ticket

__all__ = [
    "PHOTO_ROLES",
    "Seen",
    "add_photo",
    "handle_image",
    "photo_target",
    "tell_before_close",
    "tick",
]

#: Who may add a photo to a ticket.
PHOTO_ROLES = frozenset({Role.ASSIGNEE, Role.MANAGER, Role.DISPATCHER})
_SETTLED = frozenset({TicketState.CLOSED.value, TicketState.CANCELLED.value})
_NUMBER = re.compile(r"GD-?(\d{1,12})", re.IGNORECASE)
_WORKED_ON = [s.value for s in closure.TICK_STATES | {TicketState.RESOLVED}]


@dataclass(frozen=True, slots=True)
class Seen:
    """What the engine made of a picture sent in chat before the flow runs (``bot.sight``):
    the photo, or why there is none ("too_large", "not_image", "unavailable")."""

    photo: closure.Photo | None = None
    problem: str | None = None


async def tick(turn: Turn, ticket: Ticket, index: int | None, version: int) -> None:
    """A press of ✓ on a checklist item (``index`` in the category's list)."""
    person = turn.person
    assert person is not None
    action = ClosureAction.TICK.value
    if TicketState(ticket.state) not in closure.TICK_STATES:
        raise InvalidTransition(action=action, state=ticket.state)
    if not roles_of(person, ticket) & OTHER_ACTION_ROLES[ClosureAction.TICK]:
        raise NotAllowed(action=action, state=ticket.state)
    items = closure.checklist_of(turn.env.settings.closure, ticket)
    if version != ticket.version or index is None or not 0 <= index < len(items):
        raise StaleTransition()  # (a checklist changed in the settings since: the same)
    item = items[index]
    turn.unit.touch(ticket.id)
    kept = [e for e in ticket.checklist or [] if e.get("item") != item]
    if len(kept) < len(ticket.checklist or []):  # ticked: the press takes it back (↺)
        ticket.checklist = kept  # replaced, never mutated
        done = {"item": item, "undone": True}
        said = "closure.unticked"
    else:
        entry = {"item": item, "by": person.name, "at": turn.now.isoformat()}
        ticket.checklist = [*kept, entry]
        done, said = {"item": item}, "closure.ticked"
    ticket.updated_at = turn.now
    turn.record(ticket, "checklist", via="button", data=done)
    await lifecycle.refresh(turn, ticket)
    turn.notify_presser(say(said, turn.locale, item=item, number=ticket.number))


async def add_photo(
    turn: Turn, ticket: Ticket, photo: closure.Photo, *, via: str
) -> tuple[str, int]:
    """Keep ``photo`` as evidence on ``ticket`` (stored with the unit's write); return
    ("saved" | "duplicate" | "full", how many photos the ticket has). Refusals (not the
    assignee, a dispatcher or a manager; a closed ticket): a ``FlowError``."""
    person = turn.person
    assert person is not None
    if ticket.state in _SETTLED:
        raise InvalidTransition(action="evidence", state=ticket.state)
    if not roles_of(person, ticket) & PHOTO_ROLES:
        raise NotAllowed(action="evidence", state=ticket.state)
    if photo.sha256 in await turn.unit.photo_hashes(ticket.id):
        return "duplicate", ticket.photos  # (a retried upload, the same picture sent twice)
    if ticket.photos >= turn.env.settings.closure.photos_per_ticket:
        return "full", ticket.photos
    turn.unit.touch(ticket.id)
    ticket.photos += 1
    if ticket.state != TicketState.RESOLVED:  # (a late photo does not delay auto-close)
        ticket.updated_at = turn.now
    data = {
        "kind": "photo",
        "media_type": photo.media_type,
        "size": photo.size,
        "sha256": photo.sha256,
    }
    turn.record(ticket, "evidence", via=via, data=data)
    turn.unit.keep_photo(
        NewPhoto(
            ticket_id=ticket.id,
            data=photo.data,
            media_type=photo.media_type,
            sha256=photo.sha256,
            person_id=person.id,
            via=via,
            created_at=turn.now,
        )
    )
    await lifecycle.refresh(turn, ticket)
    return "saved", ticket.photos


async def photo_target(turn: Turn, caption: str) -> list[Ticket]:
    """The ticket a photo is for: the one ``caption`` names ("GD-12"), else the sender's
    tickets being worked on (one: that one; several: the sender must say which)."""
    assert turn.person is not None
    named = _NUMBER.search(caption)
    if named:
        ticket = await turn.unit.ticket_by_number(f"GD-{int(named.group(1))}")
        return [ticket] if ticket is not None else []
    return await turn.unit.open_tickets(_WORKED_ON, assignee_id=turn.person.id, limit=5)


async def handle_image(turn: Turn, event: Image, seen: Seen) -> None:
    """A picture sent in chat. From staff it is evidence on the ticket its caption names
    ("GD-12"), else on their one ticket being worked on; customers' pictures are not evidence
    (they are left as they always were)."""
    person = turn.person
    assert person is not None
    if person.role == "customer":
        return
    locale = turn.locale
    if seen.photo is None:
        limit = f"{turn.env.settings.closure.photo_max_mb:g}"
        turn.reply(Text(say(f"closure.photo.{seen.problem or 'unavailable'}", locale, limit=limit)))
        return
    mine = await photo_target(turn, event.caption)
    if len(mine) != 1:
        numbers = "、".join(t.number or "" for t in mine)
        key = "closure.photo.which" if mine else "closure.photo.no_ticket"
        turn.reply(Text(say(key, locale, numbers=numbers)))
        return
    ticket = mine[0]
    number = ticket.number
    try:
        outcome, count = await add_photo(turn, ticket, seen.photo, via=event.platform)
    except NotAllowed:
        turn.reply(Text(say("closure.photo.not_yours", locale, number=number)))
        return
    except InvalidTransition:
        turn.reply(Text(say("closure.photo.closed", locale, number=number)))
        return
    most = turn.env.settings.closure.photos_per_ticket
    said = {"saved": "closure.photo.saved", "duplicate": "closure.photo.duplicate"}
    key = said.get(outcome, "closure.photo.too_many")
    turn.reply(Text(say(key, locale, number=number, count=count, limit=most)))


async def tell_before_close(turn: Turn, ticket: Ticket, close_at: datetime) -> None:
    """The customer hears that the resolved ticket closes by itself at ``close_at`` (and how to
    say it is not fixed); the ticket remembers it was told, for this resolution."""
    reporter = await turn.unit.person(ticket.reporter_id)
    locale = (reporter.locale if reporter else None) or turn.env.settings.locale
    at = local_time(close_at, turn.env.settings.tz)
    text = say("milestone.prefix", locale, number=ticket.number) + say(
        "closure.notice", locale, at=at
    )
    turn.unit.touch(ticket.id)
    ticket.close_notice_at = turn.now
    turn.record(ticket, "close_notice", via="system", data={"close_at": close_at.isoformat()})
    turn.send(
        Address.parse(ticket.origin_chat),
        Text(text),
        ticket_id=ticket.id,
        key=f"close-notice:{ticket.id}:{ticket.audit_seq}",
    )
