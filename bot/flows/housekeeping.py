"""Jobs the hub runs on its own schedule (the SLA sweep joins them in a later release)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import FlowError
from bot.flows import FlowContext
from bot.flows.actions import apply_action
from bot.tickets import TicketAction
from storage import repo
from storage.db import Database
from storage.models import utcnow

__all__ = ["auto_close"]

log = logging.getLogger(__name__)


async def auto_close(
    db: Database,
    context: Callable[[AsyncSession, str], FlowContext],
    after: timedelta,
    *,
    batch: int = 100,
) -> int:
    """Close resolved tickets the customer left unanswered for ``after``; return how many.

    Each ticket closes in its own transaction through the state table (role: system); the
    compare-and-set makes a concurrent run on another node, or a customer's last-second press,
    win or lose cleanly, and the outbox keys make its messages go out once.
    """
    async with db.read() as s:
        due = [(t.id, t.version) for t in await repo.resolved_before(s, utcnow() - after, batch)]
    closed = 0
    for ticket_id, version in due:
        try:
            async with db.transaction() as s:
                ticket = await repo.get_ticket(s, ticket_id)
                if ticket is None or ticket.version != version:
                    continue
                ctx = context(s, f"auto-close:{ticket_id}:{version}")
                await apply_action(ctx, ticket, TicketAction.AUTO_CLOSE, None, via="system")
            closed += 1
        except FlowError as exc:  # someone acted first: nothing to do
            log.info("auto-close of ticket %d skipped: %r", ticket_id, exc)
    return closed
