"""Jobs the hub runs on its own schedule: closing what customers left unanswered, and bringing
open tickets' clocks under changed SLA policies."""

from __future__ import annotations

import logging
from datetime import timedelta

from bot import lifecycle
from bot.errors import FlowError
from bot.sla.clocks import policy_of, sync
from bot.tickets import OPEN_STATES, TicketAction, TicketState
from bot.unit import Turn
from bot.work import Work
from storage import tickets as ticket_table
from storage.models import utcnow

__all__ = ["auto_close", "reconcile"]

log = logging.getLogger(__name__)
_OPEN = [s.value for s in OPEN_STATES]


async def auto_close(work: Work, after: timedelta, *, batch: int = 100) -> int:
    """Close resolved tickets the customer left unanswered for ``after``; return how many.

    Each closes through the state table (role: system) in a turn of its own; a customer's
    last-second press, or another node's run, wins or loses cleanly."""
    cutoff = utcnow() - after
    async with work.db.read() as s:
        due = await ticket_table.resolved_before(s, cutoff, batch)
    if not due:
        return 0
    closed = 0
    async with work.unit() as tx:
        await tx.unit.preload(due, lock=True)
        for ticket_id in due:
            ticket = await tx.unit.ticket(ticket_id)
            if (
                ticket is None
                or ticket.state != TicketState.RESOLVED
                or ticket.updated_at >= cutoff
            ):
                continue  # someone acted meanwhile
            try:
                with tx.unit.turn():
                    turn = Turn(tx.unit, f"auto-close:{ticket_id}:{ticket.version}")
                    await lifecycle.apply(turn, ticket, TicketAction.AUTO_CLOSE, None, via="system")
                closed += 1
            except FlowError as exc:
                log.info("auto-close of ticket %d skipped: %r", ticket_id, exc)
    return closed


async def reconcile(work: Work, *, batch: int = 500) -> int:
    """Apply the current policies to every open ticket whose clocks were set under other
    ones (or that has none: tickets from before SLAs were on). The scan only reads; the
    tickets that need it are synced in a unit that one node at a time may run (advisory
    lock). Returns how many tickets changed."""
    changed, after = 0, 0
    while True:
        async with work.reader() as view:
            unit = view.unit
            rows = await ticket_table.open_after(view.store.conn, after, _OPEN, batch)
            ids = [row[0] for row in rows]
            if not ids:
                return changed
            after = ids[-1]
            await unit.preload(ids)
            stale = []
            for ticket_id in ids:
                ticket = unit.tickets[ticket_id]
                signature = (await policy_of(unit, ticket)).signature
                mine = unit.clocks.get(ticket_id, [])
                if not mine or any(c.signature != signature for c in mine):
                    stale.append(ticket_id)
        if not stale:
            continue
        async with work.unit() as tx:
            if not await ticket_table.single_node(tx.store.conn, "sla-reconcile"):
                log.info("another node is applying the SLA policies")
                return changed
            await tx.unit.preload(stale, lock=True)
            for ticket_id in stale:
                found = tx.unit.tickets.get(ticket_id)
                if found is not None and found.state in _OPEN:
                    await sync(tx.unit, found, actor=None)
                    changed += 1
