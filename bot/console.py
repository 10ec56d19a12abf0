"""What the staff console shows one signed-in person of the cards in their conversations.

The web chat's feed holds each card as it was drawn for its chat: a team chat's card is drawn
once for everyone in it, in the hub's default language, with every button any member of the
staff might press. The console is one person's screen, so before a card reaches it:

- **one copy per ticket**: a ticket's staff card is in the person's own chat and in their
  team's; they see the copy in their own chat (or, without one, their first team's);
- **their buttons**: the buttons the state table lets *them* press on *this* ticket
  (``bot.tickets.may_press`` with ``roles_of``, the rules every press is checked against);
- **their language**: a card drawn in another language is drawn again in theirs.

The page then replaces a ticket's card wherever it was, and a press is still checked in full.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.access import Access
from bot.cards import build
from bot.events import Card
from bot.texts import say
from bot.tickets import Role, roles_of
from bot.unit import Turn
from bot.work import Work
from storage import access as access_rows

__all__ = ["LOOPBACK", "CardView", "ConsoleCards", "first_run_links"]

#: Hosts a hub serves only its own machine on (where printing sign-in links is safe enough).
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

#: Card audiences that show the ticket itself (a nag or a voice note's card is another card).
_TICKET_CARDS = ("staff", "customer")


@dataclass(frozen=True, slots=True)
class CardView:
    """How one card row reaches one viewer."""

    show: bool = True  # False: another copy of this ticket's card is theirs
    roles: frozenset[Role] | None = None  # the viewer's roles to the ticket (None: unknown)
    card: Card | None = None  # drawn again in the viewer's language (None: as stored)
    ticket_card: bool = False  # the ticket's own card (the page keeps one per ticket)


class ConsoleCards:
    """Looks cards up for console viewers: one read-only unit per batch of feed rows."""

    def __init__(self, work: Work) -> None:
        self.work = work

    async def views(
        self,
        person_key: str,
        conversations: Sequence[str],
        locale: str,
        cards: Sequence[tuple[str, int]],
    ) -> dict[str, CardView]:
        """For each ``(message key, ticket id)`` of web chat card rows in ``conversations``
        (the viewer's own first): how it reaches ``person_key``, reading in ``locale``."""
        out: dict[str, CardView] = {}
        if not cards:
            return out
        order = {f"web:{c}": i for i, c in enumerate(conversations)}
        async with self.work.reader() as view:
            unit = view.unit
            viewer = unit.env.staff.by_key.get(person_key)
            await unit.preload([ticket_id for _, ticket_id in cards])
            for key, ticket_id in cards:
                ticket = unit.tickets.get(ticket_id)
                if ticket is None or viewer is None:
                    out[key] = CardView()
                    continue
                refs = [r for r in unit.refs.get(ticket_id, []) if r.destination in order]
                mine = next((r for r in refs if r.platform_message_id == key), None)
                copies = [r for r in refs if r.audience == "staff" and r.platform_message_id]
                first = min(copies, key=lambda r: (order[r.destination], r.id), default=None)
                if mine is not None and mine.audience == "staff" and first is not mine:
                    out[key] = CardView(show=False)  # their copy is another one
                    continue
                card = None
                if mine is not None and mine.audience in _TICKET_CARDS and mine.locale != locale:
                    card = await build(Turn(unit, f"console:{key}"), ticket, mine.audience, locale)
                out[key] = CardView(
                    roles=roles_of(viewer, ticket),
                    card=card,
                    ticket_card=mine is not None and mine.audience == "staff",
                )
        return out


async def first_run_links(access: Access) -> list[str]:
    """What ``gongdan serve`` prints when it starts on a fresh database (nobody has signed in
    or set a password yet), listening on loopback only, with the console on: a one-time
    sign-in link per person, so that a first ``make run`` has someone to sign in as; or, with
    no staff configured, how to add them. Nothing otherwise (a link is a credential: it is
    never written to the log)."""
    settings = access.settings
    if settings.server.host not in LOOPBACK or not settings.webchat.enabled:
        return []
    async with access.db.reads() as conn:
        if await access_rows.anyone_signed_in(conn):
            return []
    locale = settings.locale
    if not settings.people:
        return [say("console.first_run.nobody", locale)]
    minutes = f"{settings.security.login_link_minutes:g}"
    lines = [say("console.first_run", locale, minutes=minutes)]
    for p in settings.people:
        role = say(f"console.role.{p.role}", locale)
        link = access.issue_link(p.id, "cli")
        lines.append("  " + say("console.first_run.person", locale, name=p.name, role=role,
                                person=p.id, link=link))  # fmt: skip
    return lines
