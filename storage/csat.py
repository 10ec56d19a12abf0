"""Customer satisfaction's queries: one ``csat_ratings`` row per ticket.

The row is written when the ticket closes (``ask``: inserted, or reset when a reopened ticket
closes again), rated once (``rate``: only while it has no score), commented once (``comment``:
only while it has none), and reminded at most once (``claim_reminder``: a conditional update on
``reminded_at IS NULL``, so of several workers exactly one sends the reminder). Every write is
a compare-and-set; a ``False`` answer means someone else got there first.

``csat_summary`` is what the dashboard and the daily report read: ratings given in a period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from storage.models import TABLES

__all__ = [
    "CsatRow",
    "CsatSummary",
    "ask",
    "awaiting_comment",
    "claim_reminder",
    "comment",
    "csat_summary",
    "due_reminders",
    "rate",
    "rating",
]

Q = TABLES["csat_ratings"]
T = TABLES["tickets"]

_COLS = (
    Q.c.id,
    Q.c.ticket_id,
    Q.c.rater_id,
    Q.c.score,
    Q.c.comment,
    Q.c.asked_at,
    Q.c.reminded_at,
    Q.c.rated_at,
)


@dataclass(frozen=True, slots=True)
class CsatRow:
    id: int
    ticket_id: int
    rater_id: int | None
    score: int | None
    comment: str | None
    asked_at: datetime
    reminded_at: datetime | None
    rated_at: datetime | None


@dataclass(frozen=True, slots=True)
class CsatSummary:
    """Ratings given within a period: how many, their mean, how many of each star (1..5) and
    how many were low (at or below the threshold asked for)."""

    count: int = 0
    average: float | None = None
    distribution: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0))
    low: int = 0


def _row(r: Any) -> CsatRow:
    return CsatRow(*r)


async def rating(conn: AsyncConnection, ticket_id: int) -> CsatRow | None:
    """The ticket's rating row, if it was ever asked."""
    found = (await conn.execute(select(*_COLS).where(Q.c.ticket_id == ticket_id))).first()
    return _row(found) if found is not None else None


async def awaiting_comment(
    conn: AsyncConnection, rater_id: int, chat: str, since: datetime
) -> CsatRow | None:
    """The newest rating ``rater_id`` gave since ``since`` without a comment yet, on a ticket
    that came from ``chat`` and is still closed (reopened: the customer is reporting again)."""
    stmt = (
        select(*_COLS)
        .join(T, T.c.id == Q.c.ticket_id)
        .where(
            Q.c.rater_id == rater_id,
            Q.c.rated_at >= since,
            Q.c.score.is_not(None),
            Q.c.comment.is_(None),
            T.c.origin_chat == chat,
            T.c.state == "closed",
        )
        .order_by(Q.c.rated_at.desc())
        .limit(1)
    )
    found = (await conn.execute(stmt)).first()
    return _row(found) if found is not None else None


async def ask(conn: AsyncConnection, ticket_id: int, rater_id: int, now: datetime) -> None:
    """The ticket closed and its reporter was asked: a fresh row (a reopened ticket's earlier
    rating is cleared — it is asked again)."""
    fresh = dict(
        rater_id=rater_id, score=None, comment=None, asked_at=now, reminded_at=None, rated_at=None
    )
    done = await conn.execute(update(Q).where(Q.c.ticket_id == ticket_id).values(**fresh))
    if done.rowcount == 0:
        await conn.execute(insert(Q).values(ticket_id=ticket_id, **fresh))


async def rate(
    conn: AsyncConnection, ticket_id: int, rater_id: int, score: int, now: datetime
) -> bool:
    """Store the stars unless the ticket has some already; False when it has."""
    done = await conn.execute(
        update(Q)
        .where(Q.c.ticket_id == ticket_id, Q.c.score.is_(None))
        .values(score=score, rater_id=rater_id, rated_at=now)
    )
    if done.rowcount:
        return True
    if await rating(conn, ticket_id) is not None:
        return False
    # Asked before CSAT rows existed (or while it was off): the press itself is the row.
    await conn.execute(
        insert(Q).values(
            ticket_id=ticket_id, rater_id=rater_id, score=score, asked_at=now, rated_at=now
        )
    )
    return True


async def comment(conn: AsyncConnection, rating_id: int, text: str) -> bool:
    """Keep the customer's words with their rating, once; False when it has some already."""
    done = await conn.execute(
        update(Q).where(Q.c.id == rating_id, Q.c.comment.is_(None)).values(comment=text)
    )
    return bool(done.rowcount)


async def due_reminders(conn: AsyncConnection, asked_before: datetime, limit: int) -> list[CsatRow]:
    """Questions asked before ``asked_before`` still unrated and never reminded, on tickets
    that are still closed; oldest first."""
    stmt = (
        select(*_COLS)
        .join(T, T.c.id == Q.c.ticket_id)
        .where(
            Q.c.asked_at <= asked_before,
            Q.c.score.is_(None),
            Q.c.reminded_at.is_(None),
            T.c.state == "closed",
        )
        .order_by(Q.c.asked_at)
        .limit(limit)
    )
    return [_row(r) for r in await conn.execute(stmt)]


async def claim_reminder(conn: AsyncConnection, rating_id: int, now: datetime) -> bool:
    """Take the one reminder of a question (False: another worker took it, or it was rated)."""
    done = await conn.execute(
        update(Q)
        .where(Q.c.id == rating_id, Q.c.reminded_at.is_(None), Q.c.score.is_(None))
        .values(reminded_at=now)
    )
    return bool(done.rowcount)


async def csat_summary(
    session: AsyncSession | AsyncConnection,
    start: datetime,
    end: datetime,
    team_key: str | None = None,
    *,
    low_score: int = 2,
    tickets: Sequence[ColumnElement[bool]] = (),
) -> CsatSummary:
    """Ratings given in ``[start, end)`` (by ``rated_at``, UTC), of one team's tickets or all;
    ``tickets``: more conditions on the rated tickets (the dashboard's and report's scope)."""
    where = [Q.c.rated_at >= start, Q.c.rated_at < end, Q.c.score.is_not(None)]
    stmt = select(Q.c.score, func.count()).where(and_(*where)).group_by(Q.c.score)
    if team_key is not None or tickets:
        stmt = stmt.join(T, T.c.id == Q.c.ticket_id).where(*tickets)
    if team_key is not None:
        stmt = stmt.where(T.c.team_key == team_key)
    counts: Sequence[Any] = (await session.execute(stmt)).all()
    distribution = dict.fromkeys(range(1, 6), 0)
    for score, n in counts:
        if score in distribution:
            distribution[int(score)] = int(n)
    total = sum(distribution.values())
    if not total:
        return CsatSummary()
    average = sum(s * n for s, n in distribution.items()) / total
    low = sum(n for s, n in distribution.items() if s <= low_score)
    return CsatSummary(total, round(average, 2), distribution, low)
