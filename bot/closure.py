"""Closure that proves the work: what a ticket still needs before 已解决, as the rules read it.

Pure functions of a ticket and the ``[closure]`` settings: the category's checklist and which
of its items are ticked (``Ticket.checklist`` keeps who ticked what, when), the facts the state
table checks (``bot.tickets.check``: CHECKLIST, ROOT_CAUSE, EVIDENCE), and what an evidence
photo is (JPEG, PNG or WebP by its magic bytes — never by the name or type a client claims).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.closure_settings import ClosureSettings
from bot.tickets import TicketFacts, TicketState, facts_of
from storage.records import Ticket

__all__ = ["TICK_STATES", "Photo", "checklist_of", "facts", "image_type", "open_items", "ticked"]

#: Where a checklist can still change: after assignment, before 已解决.
TICK_STATES = frozenset(
    {
        TicketState.ASSIGNED,
        TicketState.ACCEPTED,
        TicketState.EN_ROUTE,
        TicketState.ON_SITE,
        TicketState.DIAGNOSING,
        TicketState.WAITING_PARTS,
        TicketState.THIRD_PARTY,
        TicketState.REPAIRING,
    }
)


def checklist_of(settings: ClosureSettings, ticket: Ticket) -> list[str]:
    """The items the ticket's category asks for (none: no checklist)."""
    return settings.checklists.get(ticket.category, [])


def ticked(ticket: Ticket) -> dict[str, dict[str, str]]:
    """The items ticked on ``ticket``: item → {item, by (a person's name), at (ISO, UTC)}."""
    return {str(t["item"]): t for t in ticket.checklist or []}


def open_items(settings: ClosureSettings, ticket: Ticket) -> tuple[str, ...]:
    done = ticked(ticket)
    return tuple(i for i in checklist_of(settings, ticket) if i not in done)


def facts(settings: ClosureSettings, ticket: Ticket) -> TicketFacts:
    """The state table's facts about ``ticket`` with its checklist and root-cause rule."""
    return facts_of(
        ticket,
        open_items=open_items(settings, ticket),
        need_root_cause=settings.require_root_cause,
    )


_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


def image_type(data: bytes) -> str | None:
    """``image/jpeg`` / ``image/png`` / ``image/webp`` by the file's first bytes; else None."""
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True, slots=True)
class Photo:
    """An evidence photo that passed the checks, about to be stored."""

    data: bytes
    media_type: str
    sha256: str

    @property
    def size(self) -> int:
        return len(self.data)
