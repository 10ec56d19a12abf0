"""Jobs the hub runs on its own schedule: closing what customers left unanswered, and bringing
open tickets' clocks under changed SLA policies."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot import lifecycle
from bot.errors import FlowError
from bot.flows import closure
from bot.sla.clocks import policy_of, sync
from bot.tickets import OPEN_STATES, TicketAction, TicketState
from bot.unit import Turn
from bot.work import Work
from storage import tickets as ticket_table
from storage.records import Ticket

__all__ = ["auto_close", "reconcile"]

log = logging.getLogger(__name__)
_OPEN = [s.value for s in OPEN_STATES]


async def auto_close(
    work: Work, after: timedelta, *, notice: timedelta = timedelta(0), batch: int = 100
) -> int:
    """Close resolved tickets the customer left unanswered for ``after``; return how many.

    With ``notice``, the customer is first told when the ticket will close (``notice`` before
    it, once per resolution), and a ticket closes only once they have had at least ``notice``
    to answer — a hub that was down past the deadline tells first and closes later, never
    closes unannounced. Each step runs through the unit of work in a turn of its own; a
    customer's last-second press, or another node's run, wins or loses cleanly."""
    now = work.clock()
    cutoff = now - after
    if notice > timedelta(0):
        await _tell_before_close(work, after, notice, batch=batch)
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
            if notice > timedelta(0) and not _told_long_enough(ticket, notice, now):
                continue
            try:
                with tx.unit.turn():
                    turn = Turn(tx.unit, f"auto-close:{ticket_id}:{ticket.version}")
                    await lifecycle.apply(turn, ticket, TicketAction.AUTO_CLOSE, None, via="system")
                closed += 1
            except FlowError as exc:
                log.info("auto-close of ticket %d skipped: %r", ticket_id, exc)
    return closed


def _told_long_enough(ticket: Ticket, notice: timedelta, now: datetime) -> bool:
    """Whether the customer was told of this resolution's auto-close at least ``notice`` ago."""
    told = ticket.close_notice_at
    return told is not None and told >= ticket.updated_at and told + notice <= now


async def _tell_before_close(
    work: Work, after: timedelta, notice: timedelta, *, batch: int
) -> None:
    """Tell the customers of resolved tickets that close within ``notice`` (once each)."""
    now = work.clock()
    async with work.db.read() as s:
        due = await ticket_table.unnoticed_resolved_before(s, now - (after - notice), batch)
    if not due:
        return
    async with work.unit() as tx:
        await tx.unit.preload(due, lock=True)
        for ticket_id in due:
            ticket = await tx.unit.ticket(ticket_id)
            if ticket is None or ticket.state != TicketState.RESOLVED:
                continue
            told = ticket.close_notice_at
            if told is not None and told >= ticket.updated_at:
                continue  # told already (another node's run)
            close_at = max(ticket.updated_at + after, now + notice)
            with tx.unit.turn():
                turn = Turn(tx.unit, f"close-notice:{ticket_id}:{ticket.version}")
                await closure.tell_before_close(turn, ticket, close_at)


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
