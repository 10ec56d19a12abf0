"""Audit checkpoints: the head of every ticket's audit chain at one moment, hashed together
with the audit key (``storage.audit.checkpoint_digest``) and kept outside the events table.

A chain cut at its tail, or a ticket's events deleted, is still a well-formed chain; against
the newest checkpoint it is not (``storage.trail.verify``). Each function takes the caller's
``AsyncSession``; the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import checkpoint_digest
from storage.models import AuditCheckpoint, Ticket

__all__ = ["AUDIT_LOCK", "latest", "take_audit_lock", "write"]

#: PostgreSQL advisory lock taken by whoever writes checkpoints or re-seals the trail, so that
#: several workers on one database take turns (SQLite's write lock does this there).
AUDIT_LOCK = 1734632820


async def take_audit_lock(session: AsyncSession) -> None:
    """Take turns with other workers for audit upkeep (until the transaction ends)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"SELECT pg_advisory_xact_lock({AUDIT_LOCK})"))


async def latest(session: AsyncSession) -> AuditCheckpoint | None:
    """The newest checkpoint."""
    return await session.scalar(
        select(AuditCheckpoint)
        .order_by(AuditCheckpoint.at.desc(), AuditCheckpoint.id.desc())
        .limit(1)
    )


async def write(
    session: AsyncSession,
    key: bytes,
    *,
    now: datetime,
    keep: int,
    fresh_within: timedelta | None = None,
) -> AuditCheckpoint | None:
    """Record every ticket's chain head now, and keep only the newest ``keep`` checkpoints.
    ``fresh_within``: write nothing (None) when a checkpoint younger than that exists —
    another worker on this database has just taken one."""
    await take_audit_lock(session)
    if fresh_within is not None:
        newest = await session.scalar(select(func.max(AuditCheckpoint.at)))
        if newest is not None and newest > now - fresh_within:
            return None
    at = now.replace(microsecond=0)  # (the digest covers it; every backend keeps seconds)
    rows = (
        await session.execute(
            select(Ticket.id, Ticket.audit_seq, Ticket.audit_hash).where(Ticket.audit_seq > 0)
        )
    ).all()
    heads = [(ticket_id, seq, head) for ticket_id, seq, head in rows]
    checkpoint = AuditCheckpoint(
        at=at,
        tickets=len(heads),
        events=sum(seq for _, seq, _ in heads),
        heads={str(ticket_id): seq for ticket_id, seq, _ in heads},
        digest=checkpoint_digest(key, at, heads),
    )
    session.add(checkpoint)
    await session.flush()
    kept = (
        select(AuditCheckpoint.id)
        .order_by(AuditCheckpoint.at.desc(), AuditCheckpoint.id.desc())
        .limit(keep)
    )
    await session.execute(
        delete(AuditCheckpoint)
        .where(AuditCheckpoint.id.not_in(kept))
        .execution_options(synchronize_session=False)
    )
    return checkpoint
