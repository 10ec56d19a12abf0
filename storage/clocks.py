"""SQL for SLA clocks, the sweep's claim, and folding nags in the outbox.

With ``repo`` and ``queues`` the only place SQL lives. The caller owns the transaction.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import OutboxMessage, SlaClock, Ticket

__all__ = [
    "any_due",
    "claim_due",
    "clocks_for",
    "clocks_of",
    "fold_pending",
    "open_tickets_after",
    "pending_to",
    "postpone",
    "sent_since",
    "set_deadlines",
    "single_node",
]


async def clocks_for(session: AsyncSession, ticket_id: int) -> list[SlaClock]:
    rows = await session.scalars(
        select(SlaClock).where(SlaClock.ticket_id == ticket_id).order_by(SlaClock.id)
    )
    return list(rows.all())


async def clocks_of(session: AsyncSession, ticket_ids: Sequence[int]) -> dict[int, list[SlaClock]]:
    out: dict[int, list[SlaClock]] = {t: [] for t in ticket_ids}
    if ticket_ids:
        rows = await session.scalars(
            select(SlaClock).where(SlaClock.ticket_id.in_(ticket_ids)).order_by(SlaClock.id)
        )
        for c in rows.all():
            out[c.ticket_id].append(c)
    return out


async def any_due(session: AsyncSession, now: datetime) -> bool:
    """Is anything due? (A read: the idle sweep never takes SQLite's write lock.)"""
    found = await session.scalar(select(Ticket.id).where(Ticket.sla_next_at <= now).limit(1))
    return found is not None


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[Ticket]:
    """Tickets whose clocks need a look, oldest first, locked for this transaction.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED``: several sweeps share the work, none takes a
    ticket another holds. (SQLite ignores the clause; its single writer gives the same.)
    """
    rows = await session.scalars(
        select(Ticket)
        .where(Ticket.sla_next_at <= now)
        .order_by(Ticket.sla_next_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def set_deadlines(
    session: AsyncSession,
    ticket_id: int,
    *,
    respond_due: datetime | None,
    arrive_due: datetime | None,
    resolve_due: datetime | None,
    state_due: datetime | None,
    sla_next_at: datetime | None,
) -> None:
    """The ticket's deadline columns: a projection of its clocks (no version bump)."""
    await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id)
        .values(
            respond_due=respond_due,
            arrive_due=arrive_due,
            resolve_due=resolve_due,
            state_due=state_due,
            sla_next_at=sla_next_at,
        )
        .execution_options(synchronize_session=False)
    )


async def postpone(session: AsyncSession, ticket_id: int, at: datetime) -> None:
    await session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id)
        .values(sla_next_at=at)
        .execution_options(synchronize_session=False)
    )


async def open_tickets_after(
    session: AsyncSession, after_id: int, states: Sequence[str], limit: int
) -> list[Ticket]:
    rows = await session.scalars(
        select(Ticket)
        .where(Ticket.id > after_id, Ticket.state.in_(states))
        .order_by(Ticket.id)
        .limit(limit)
    )
    return list(rows.all())


# ------------------------------------------------------------------------------- folding


async def pending_to(session: AsyncSession, destination: str) -> int:
    """Messages to ``destination`` not yet delivered (queued behind a limit or a retry)."""
    n = await session.scalar(
        select(func.count(OutboxMessage.id)).where(
            OutboxMessage.destination == destination,
            OutboxMessage.state.in_(("pending", "sending")),
        )
    )
    return int(n or 0)


async def sent_since(session: AsyncSession, destination: str, since: datetime) -> int:
    n = await session.scalar(
        select(func.count(OutboxMessage.id)).where(
            OutboxMessage.destination == destination,
            OutboxMessage.state == "sent",
            OutboxMessage.sent_at >= since,
        )
    )
    return int(n or 0)


async def fold_pending(
    session: AsyncSession, coalesce_key: str
) -> list[tuple[dict[str, Any], datetime, int | None]]:
    """Take back every still-pending message with ``coalesce_key`` (marked ``superseded``):
    their payloads and the earliest time each could go, so a digest can carry them instead.

    A row the sender claimed meanwhile is no longer pending and stays where it is: on
    PostgreSQL the UPDATE waits for the claim's lock and then re-checks the state.
    """
    ids = list(
        (
            await session.scalars(
                select(OutboxMessage.id).where(
                    OutboxMessage.coalesce_key == coalesce_key,
                    OutboxMessage.state == "pending",
                )
            )
        ).all()
    )
    if not ids:
        return []
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.state == "pending")
        .values(state="superseded")
        .returning(
            OutboxMessage.id,
            OutboxMessage.payload,
            OutboxMessage.next_attempt_at,
            OutboxMessage.card_ref_id,
        )
        .execution_options(synchronize_session=False)
    )
    return [(p, at, ref) for _, p, at, ref in sorted(result.all(), key=lambda r: r[0])]


# --------------------------------------------------------------------------- one node only


async def single_node(session: AsyncSession, job: str) -> bool:
    """Whether this transaction may run ``job`` now: a PostgreSQL advisory lock held until
    the transaction ends, so one node runs it while the others skip. SQLite: always (one
    writer at a time already serialises the job)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    key = zlib.crc32(f"gongdan:{job}".encode())
    got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})
    return bool(got)
