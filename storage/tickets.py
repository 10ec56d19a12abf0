"""Ticket queries of the hub's own jobs: what the SLA sweep claims, what the start-up policy
pass scans, what auto-close finds. (A unit of work loads and writes tickets through
``storage.unit``.)"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.models import TABLES, UTCDateTime

__all__ = [
    "any_due",
    "claim_due",
    "open_after",
    "resolved_before",
    "single_node",
    "unnoticed_resolved_before",
]

T = TABLES["tickets"]
C = TABLES["sla_clocks"]
Executor = AsyncConnection | AsyncSession
_STATEMENTS: dict[tuple[str, ...], Any] = {}


def _pg(conn: Executor) -> bool:
    bind = conn.get_bind() if isinstance(conn, AsyncSession) else conn
    return bind.dialect.name == "postgresql"


async def any_due(conn: Executor, now: datetime) -> bool:
    """Is anything due for the SLA sweep? (A read: an idle sweep takes no write lock.)"""
    found = await conn.execute(select(T.c.id).where(T.c.sla_next_at <= now).limit(1))
    return found.first() is not None


async def claim_due(conn: Executor, now: datetime, limit: int) -> list[int]:
    """Tickets whose clocks need a look, oldest first, locked for this transaction.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED``: several sweeps share the work, none takes a
    ticket another holds. (SQLite has no such clause; its single writer gives the same.)
    """
    pg = _pg(conn)
    key = ("claim_due", str(pg))
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        q = (
            select(T.c.id)
            .where(T.c.sla_next_at <= bindparam("now", type_=UTCDateTime()))
            .order_by(T.c.sla_next_at)
            .limit(bindparam("limit"))
        )
        stmt = _STATEMENTS[key] = q.with_for_update(skip_locked=True) if pg else q
    return [i for (i,) in await conn.execute(stmt, {"now": now, "limit": limit})]


async def open_after(
    conn: Executor, after_id: int, states: Sequence[str], limit: int
) -> list[tuple[int, str, str, str | None, str, int]]:
    """Open tickets after ``after_id``, in id order, with what decides their policy:
    (id, priority, category, team, origin chat, reporter)."""
    rows = await conn.execute(
        select(T.c.id, T.c.priority, T.c.category, T.c.team_key, T.c.origin_chat, T.c.reporter_id)
        .where(T.c.id > after_id, T.c.state.in_(states))
        .order_by(T.c.id)
        .limit(limit)
    )
    return [tuple(r) for r in rows]


async def signatures(conn: Executor, ticket_ids: Sequence[int]) -> dict[int, set[str]]:
    """The policy signatures each ticket's clocks were computed with."""
    out: dict[int, set[str]] = {t: set() for t in ticket_ids}
    if ticket_ids:
        rows = await conn.execute(
            select(C.c.ticket_id, C.c.signature).where(C.c.ticket_id.in_(ticket_ids))
        )
        for ticket_id, signature in rows:
            out[ticket_id].add(signature)
    return out


async def resolved_before(conn: Executor, cutoff: datetime, limit: int) -> list[int]:
    rows = await conn.execute(
        select(T.c.id)
        .where(T.c.state == "resolved", T.c.updated_at < cutoff)
        .order_by(T.c.updated_at)
        .limit(limit)
    )
    return [i for (i,) in rows]


async def unnoticed_resolved_before(conn: Executor, cutoff: datetime, limit: int) -> list[int]:
    """Resolved before ``cutoff``, and the customer not yet told (for this resolution) that
    the ticket will close by itself."""
    rows = await conn.execute(
        select(T.c.id)
        .where(
            T.c.state == "resolved",
            T.c.updated_at < cutoff,
            or_(T.c.close_notice_at.is_(None), T.c.close_notice_at < T.c.updated_at),
        )
        .order_by(T.c.updated_at)
        .limit(limit)
    )
    return [i for (i,) in rows]


async def single_node(conn: Executor, job: str) -> bool:
    """Whether this transaction may run ``job`` now: a PostgreSQL advisory lock held until
    the transaction ends, so one node runs it while the others skip. SQLite: always (one
    writer at a time already serialises the job)."""
    if not _pg(conn):
        return True
    key = zlib.crc32(f"gongdan:{job}".encode())
    got = await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})
    return bool(got.scalar())
