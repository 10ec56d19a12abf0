"""Reads for the similar-cases index (``bot/nlp/similar.py``): past tickets, only the columns
the index needs, a chunk at a time, and those changed since a moment (other workers' closes)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import Ticket

__all__ = ["CaseRow", "changed_since", "latest_update", "past_cases"]

_T = Ticket.__table__.c
_COLUMNS = (_T.id, _T.number, _T.title, _T.description, _T.alarm_code, _T.root_cause,
            _T.diagnosis, _T.state, _T.merged_into, _T.version, _T.updated_at)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One ticket as the index sees it (``records.Ticket`` has the same attributes)."""

    id: int
    number: str | None
    title: str
    description: str
    alarm_code: str | None
    root_cause: str | None
    diagnosis: dict[str, Any] | None
    state: str
    merged_into: int | None
    version: int
    updated_at: datetime


async def past_cases(
    conn: AsyncConnection, states: Collection[str], *, after: int = 0, limit: int = 2_000
) -> list[CaseRow]:
    """Up to ``limit`` tickets in ``states``, not merged into another, with ids above
    ``after``, by id (keyset pagination: the caller holds no cursor between chunks)."""
    query = (
        select(*_COLUMNS)
        .where(_T.state.in_(list(states)), _T.merged_into.is_(None), _T.id > after)
        .order_by(_T.id)
        .limit(limit)
    )
    return [CaseRow(*row) for row in (await conn.execute(query)).all()]


async def changed_since(conn: AsyncConnection, since: datetime | None) -> list[CaseRow]:
    """Tickets of any state updated at or after ``since`` (new cases, and reopened ones);
    every ticket when ``since`` is None (a database that was empty)."""
    query = select(*_COLUMNS).order_by(_T.id)
    if since is not None:
        query = query.where(_T.updated_at >= since)
    return [CaseRow(*row) for row in (await conn.execute(query)).all()]


async def latest_update(conn: AsyncConnection) -> datetime | None:
    """The newest ``updated_at`` of any ticket."""
    value: datetime | None = (await conn.execute(select(func.max(_T.updated_at)))).scalar()
    return value
