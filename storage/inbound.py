"""The inbound queue: every verified event, stored before the platform is answered.

``insert`` is the intake's group commit (one cached statement for many events).
``claimable`` hands the engine the next events in arrival order (with who sent them). Each
carries its *lane* (its chat): a lane's events are handled in the order they came, by one
worker at a time (on PostgreSQL a lane is locked by the unit that claims from it), while
different chats go side by side. ``take`` marks them done in the same transaction that writes
their effects — if that transaction rolls back, they are pending again. Voice notes, whose
processing takes seconds outside any transaction, have no lane and are taken with a lease
instead; a lease that lapsed (its worker died) is given back by ``reclaim``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.db import insert_stmt
from storage.models import TABLES, UTCDateTime
from storage.records import Person, columns

__all__ = [
    "LEASED",
    "Claimed",
    "InboundRow",
    "attempted",
    "counts",
    "extend",
    "finish",
    "insert",
    "lapsed",
    "reclaim",
    "settle",
    "take",
]

I = TABLES["inbound_events"]  # noqa: E741
ID = TABLES["identities"]
P = TABLES["people"]
Executor = AsyncConnection | AsyncSession
_STATEMENTS: dict[tuple[str, ...], Any] = {}
#: Kinds of events whose slow part (a download, a transcription) runs outside any transaction:
#: claimed with a lease, done in a unit of their own.
LEASED = ("voice", "image")


@dataclass(frozen=True, slots=True)
class InboundRow:
    platform: str
    event_id: str
    kind: str
    payload: dict[str, Any]
    raw: str | None
    received_at: datetime
    lane: str | None = None  # the chat whose order it keeps (None: no order to keep)
    sender_platform: str | None = None  # who sent it (identities are per platform)
    sender_id: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    platform: str
    event_id: str
    kind: str
    payload: dict[str, Any]
    attempts: int  # including this claim
    person: Person | None = None  # who sent it (None: nobody we know yet)
    lane: str | None = None


class Taken(Exception):
    """An event claimed for a unit was taken by another meanwhile: run the unit again."""


def _pg(conn: Executor) -> bool:
    bind = conn.get_bind() if isinstance(conn, AsyncSession) else conn
    return bind.dialect.name == "postgresql"


async def insert(conn: AsyncConnection, rows: Sequence[InboundRow]) -> set[tuple[str, str]]:
    """Store many events in one statement; return the (platform, event_id)s that were new."""
    if not rows:
        return set()
    key = ("insert", conn.dialect.name)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = (
            insert_stmt(conn, I)
            .on_conflict_do_nothing(index_elements=["platform", "event_id"])
            .returning(I.c.platform, I.c.event_id)
        )
    params = [
        {
            "platform": r.platform,
            "event_id": r.event_id,
            "kind": r.kind,
            "payload": r.payload,
            "raw": r.raw,
            "received_at": r.received_at,
            "lane": r.lane,
            "sender_platform": r.sender_platform,
            "sender_id": r.sender_id,
            "status": "pending",
            "attempts": 0,
        }
        for r in rows
    ]
    result = await conn.execute(stmt, params)
    return {(p, e) for p, e in result.all()}


#: Events not yet done — literally so: the partial index ``ix_inbound_events_open_lane`` is
#: used only for the very same condition, never for one with bound parameters.
OPEN = "status IN ('pending', 'processing')"


def _claimable_stmt(pg: bool) -> Any:
    q = (
        select(
            I.c.id,
            I.c.platform,
            I.c.event_id,
            I.c.kind,
            I.c.payload,
            I.c.attempts,
            I.c.lane,
            *(P.c[n].label(f"person_{n}") for n in columns(Person)),
        )
        .select_from(
            I.outerjoin(
                ID,
                (ID.c.platform == I.c.sender_platform) & (ID.c.external_id == I.c.sender_id),
            ).outerjoin(P, P.c.id == ID.c.person_id)
        )
        .where(I.c.status == "pending", I.c.attempts < bindparam("max_attempts"))
        .order_by(I.c.id)
        .limit(bindparam("limit"))
    )
    if not pg:
        return q  # (one process writes SQLite: its units take turns)
    # A lane is one worker's for the transaction (an advisory lock on it): the others skip
    # its events, so one chat's events are never handled side by side. And an event is left
    # for later if an earlier one of its chat is still pending without being in this claim
    # (skipped as locked a moment ago, say): a chat's order holds even then.
    free = func.pg_try_advisory_xact_lock(func.hashtextextended(I.c.lane, 0))
    picked = (
        q.where(or_(I.c.lane.is_(None), free)).with_for_update(of=I, skip_locked=True).cte("picked")
    )
    earlier = I.alias("earlier")
    behind = exists().where(
        earlier.c.lane == picked.c.lane,
        earlier.c.id < picked.c.id,
        text("earlier." + OPEN),
        earlier.c.id.not_in(select(picked.c.id).scalar_subquery()),
    )
    return select(picked).where(~behind).order_by(picked.c.id)


async def claimable(conn: Executor, *, limit: int, max_attempts: int) -> list[Claimed]:
    """The next events to process, oldest first, with the person behind each (None: a
    sender we have never seen). The caller handles each lane's events in this order. On
    PostgreSQL they and their lanes are locked for this transaction (``SKIP LOCKED``: other
    workers take other lanes); ``take`` marks them."""
    pg = _pg(conn)
    key = ("claimable", str(pg))
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = _claimable_stmt(pg)
    rows = await conn.execute(stmt, {"limit": limit, "max_attempts": max_attempts})
    out = []
    for r in rows:
        person = None
        if r.person_id is not None:
            person = Person(**{n: getattr(r, f"person_{n}") for n in columns(Person)})
        out.append(
            Claimed(r.id, r.platform, r.event_id, r.kind, r.payload, r.attempts + 1, person, r.lane)
        )
    return out


async def take(
    conn: Executor, claimed: Sequence[Claimed], *, now: datetime, lease_until: datetime
) -> None:
    """Mark claimed events: done (in the transaction that writes their effects), or, for voice
    notes, in hand until ``lease_until``. ``Taken`` if one was taken meanwhile."""
    if not claimed:
        return
    stmt = _STATEMENTS.get(("take",))
    if stmt is None:
        voice = I.c.kind.in_(LEASED)
        stmt = _STATEMENTS[("take",)] = (
            update(I)
            .where(I.c.id.in_(bindparam("ids", expanding=True)), I.c.status == "pending")
            .values(
                status=case((voice, "processing"), else_="done"),
                claimed_until=case(
                    (voice, bindparam("lease_until", type_=UTCDateTime())), else_=None
                ),
                processed_at=case((voice, None), else_=bindparam("now", type_=UTCDateTime())),
                attempts=I.c.attempts + 1,
            )
        )
    params = {"ids": [c.id for c in claimed], "now": now, "lease_until": lease_until}
    result = await conn.execute(stmt, params)
    if result.rowcount != len(claimed):  # type: ignore[attr-defined]
        raise Taken(f"{len(claimed) - result.rowcount} events were taken meanwhile")  # type: ignore[attr-defined]


async def settle(conn: Executor, outcomes: Sequence[tuple[int, str, str | None]]) -> None:
    """(event id, status, error) for events that did not simply succeed: ``pending`` to try
    again, ``failed`` when given up on, ``done`` with the reason it was refused."""
    if not outcomes:
        return
    stmt = _STATEMENTS.get(("settle",))
    if stmt is None:
        stmt = _STATEMENTS[("settle",)] = (
            update(I)
            .where(I.c.id == bindparam("_id"))
            .values(status=bindparam("_status"), error=bindparam("_error"), claimed_until=None)
        )
    await conn.execute(
        stmt, [{"_id": i, "_status": status, "_error": error} for i, status, error in outcomes]
    )


async def finish(
    conn: Executor,
    event_id: int,
    attempts: int,
    status: str,
    *,
    now: datetime,
    error: str | None = None,
) -> bool:
    """End a leased claim (a voice note) — only if this claim still holds it (False: another
    worker took it over, and the caller must roll back)."""
    result = await conn.execute(
        update(I)
        .where(I.c.id == event_id, I.c.status == "processing", I.c.attempts == attempts)
        .values(status=status, processed_at=now, claimed_until=None, error=error)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def extend(conn: Executor, event_id: int, attempts: int, until: datetime) -> bool:
    """Keep a leased claim alive during long work; False if it was lost already."""
    result = await conn.execute(
        update(I)
        .where(I.c.id == event_id, I.c.status == "processing", I.c.attempts == attempts)
        .values(claimed_until=until)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def lapsed(conn: Executor, now: datetime) -> bool:
    """Is any claim's lease over (a worker died holding a voice note)? (A read.)"""
    found = await conn.execute(
        select(I.c.id).where(I.c.status == "processing", I.c.claimed_until < now).limit(1)
    )
    return found.first() is not None


async def reclaim(conn: Executor, now: datetime) -> int:
    """Give events whose claim lapsed back to the queue (their attempt stays counted)."""
    result = await conn.execute(
        update(I)
        .where(I.c.status == "processing", I.c.claimed_until < now)
        .values(status="pending", claimed_until=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def counts(conn: Executor) -> dict[str, int]:
    rows = await conn.execute(select(I.c.status, func.count()).group_by(I.c.status))
    return {s: int(n) for s, n in rows.all()}


async def attempted(conn: Executor, event_id: int, attempts: int, status: str, error: str) -> None:
    """Count an attempt whose transaction was lost (``attempts`` including it) — unless the
    event was taken meanwhile (by another worker, which may have done it)."""
    await conn.execute(
        update(I)
        .where(I.c.id == event_id, I.c.status == "pending", I.c.attempts == attempts - 1)
        .values(status=status, attempts=attempts, error=error, claimed_until=None)
    )
