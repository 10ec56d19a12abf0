"""Unassigned tickets offered again: a new ticket nobody took (everyone was full, or the one it
went to off duty gave it back) is routed by the same rules once an engineer who can take it is
on duty — typically when a shift begins. While nobody is on duty it waits: the morning's
engineer gets it, nobody is woken for it.

Not routed here: suspected repeats staff have not decided about (``repeats.undecided``) and P0s
offered to several at once (the first claim takes those).
"""

from __future__ import annotations

import logging

from bot.errors import FlowError
from bot.flows import repeats, routing
from bot.tickets import TicketState
from bot.unit import Turn
from bot.work import Work
from storage import tickets as ticket_table
from storage.records import Ticket

__all__ = ["reoffer", "waiting"]

log = logging.getLogger(__name__)


def waiting(ticket: Ticket) -> bool:
    """A new ticket with nobody on it that the rules may route now."""
    broadcast = ((ticket.intake or {}).get("routing") or {}).get("broadcast")
    return (
        ticket.state == TicketState.NEW
        and ticket.assignee_id is None
        and not broadcast
        and not repeats.undecided(ticket)
    )


async def reoffer(work: Work, *, batch: int = 100) -> int:
    """Assign each waiting ticket to the rules' winner when that winner is on duty now; return
    how many were assigned. The scan only reads, a page at a time; each assignment is a turn of
    its own through the state table (a staff press meanwhile wins or loses cleanly)."""
    assigned, after = 0, 0
    while True:
        async with work.reader() as view:
            rows = await ticket_table.open_after(
                view.store.conn, after, [TicketState.NEW.value], batch
            )
            ids = [row[0] for row in rows]
            if not ids:
                return assigned
            after = ids[-1]
            await view.unit.preload(ids)
            due = [i for i in ids if waiting(view.unit.tickets[i])]
        if due:
            assigned += await _assign(work, due)


async def _assign(work: Work, due: list[int]) -> int:
    assigned = 0
    async with work.unit() as tx:
        await tx.unit.preload(due, lock=True)
        for ticket_id in due:
            ticket = await tx.unit.ticket(ticket_id)
            if ticket is None or not waiting(ticket):
                continue  # someone acted meanwhile
            with tx.unit.turn():
                turn = Turn(tx.unit, f"reoffer:{ticket_id}:{ticket.version}")
                decision = await routing.decide(turn, routing.job_of(tx.unit, ticket))
                if decision.winner is None or decision.nobody_on_duty:
                    continue  # nobody can take it now, or only someone off duty
                try:
                    await routing.assign(turn, ticket, decision)
                except FlowError as exc:
                    log.info("offering ticket %d again skipped: %r", ticket_id, exc)
                    continue
            assigned += 1
    return assigned
