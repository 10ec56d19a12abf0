"""Repository: the durable work queues — inbound events, the outbox, the web chat feed.

Work is claimed with a lease. On PostgreSQL claims use ``FOR UPDATE SKIP LOCKED`` so any number
of processes share a queue without taking the same row; SQLite has one writer at a time, which
gives the same guarantee.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from storage.models import InboundEvent, OutboxMessage, WebchatFeed, utcnow


def _insert(bind: AsyncSession | AsyncConnection, model: Any) -> Any:
    conn = bind.get_bind() if isinstance(bind, AsyncSession) else bind
    dialect = conn.dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


# ----------------------------------------------------------------------------------- inbound


@dataclass(frozen=True, slots=True)
class InboundRow:
    platform: str
    event_id: str
    kind: str
    payload: dict[str, Any]
    raw: str | None
    received_at: datetime


async def insert_inbound(conn: AsyncConnection, rows: Sequence[InboundRow]) -> set[tuple[str, str]]:
    """Store many events in one statement; return the (platform, event_id)s that were new."""
    if not rows:
        return set()
    stmt = (
        _insert(conn, InboundEvent)
        .values(
            [
                {
                    "platform": r.platform,
                    "event_id": r.event_id,
                    "kind": r.kind,
                    "payload": r.payload,
                    "raw": r.raw,
                    "received_at": r.received_at,
                    "status": "pending",
                    "attempts": 0,
                }
                for r in rows
            ]
        )
        .on_conflict_do_nothing(index_elements=["platform", "event_id"])
        .returning(InboundEvent.platform, InboundEvent.event_id)
    )
    result = await conn.execute(stmt)
    return {(p, e) for p, e in result.all()}


async def claim_inbound(
    session: AsyncSession, *, limit: int, lease: timedelta, max_attempts: int
) -> list[InboundEvent]:
    """Claim pending events (and ones whose previous claimer died) in arrival order."""
    now = utcnow()
    q = (
        select(InboundEvent)
        .where(
            InboundEvent.attempts < max_attempts,
            (InboundEvent.status == "pending")
            | ((InboundEvent.status == "processing") & (InboundEvent.claimed_until < now)),
        )
        .order_by(InboundEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    events = list((await session.scalars(q)).all())
    for e in events:
        e.status, e.claimed_until, e.attempts = "processing", now + lease, e.attempts + 1
    await session.flush()
    return events


async def finish_inbound(
    session: AsyncSession, row: InboundEvent, status: str, error: str | None = None
) -> bool:
    """Mark a claimed event finished — only if this claim still holds it (False: it lost the
    lease to another worker, and the caller must roll back)."""
    result = await session.execute(
        update(InboundEvent)
        .where(
            InboundEvent.id == row.id,
            InboundEvent.status == "processing",
            InboundEvent.attempts == row.attempts,
        )
        .values(status=status, processed_at=utcnow(), claimed_until=None, error=error)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def extend_claim(session: AsyncSession, row: InboundEvent, until: datetime) -> bool:
    """Keep a claim alive during long work (a voice note); False if it was lost already."""
    result = await session.execute(
        update(InboundEvent)
        .where(
            InboundEvent.id == row.id,
            InboundEvent.status == "processing",
            InboundEvent.attempts == row.attempts,
        )
        .values(claimed_until=until)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def release_inbound(session: AsyncSession, event_id: int, error: str) -> None:
    """Give a claimed event back for a later attempt (it failed in a way worth retrying)."""
    await session.execute(
        update(InboundEvent)
        .where(InboundEvent.id == event_id)
        .values(status="pending", claimed_until=None, error=error)
    )


async def inbound_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(InboundEvent.status, func.count()).group_by(InboundEvent.status)
    )
    return {s: int(n) for s, n in rows.all()}


async def get_inbound(session: AsyncSession, platform: str, event_id: str) -> InboundEvent | None:
    return await session.scalar(
        select(InboundEvent).where(
            InboundEvent.platform == platform, InboundEvent.event_id == event_id
        )
    )


# ------------------------------------------------------------------------------------ outbox


async def enqueue(
    session: AsyncSession,
    *,
    destination: str,
    op: str,
    payload: dict[str, Any],
    idempotency_key: str,
    ticket_id: int | None = None,
    card_ref_id: int | None = None,
    not_before: datetime | None = None,
    coalesce_key: str | None = None,
) -> bool:
    """Queue one outbound message; a repeated idempotency key is a no-op (returns False)."""
    if op == "update" and card_ref_id is not None:
        # Only the newest version of a card matters: drop updates nobody will ever see.
        await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.card_ref_id == card_ref_id,
                OutboxMessage.op == "update",
                OutboxMessage.state == "pending",
            )
            .values(state="superseded")
        )
    result = await session.execute(
        _insert(session, OutboxMessage)
        .values(
            destination=destination,
            op=op,
            payload=payload,
            idempotency_key=idempotency_key,
            ticket_id=ticket_id,
            card_ref_id=card_ref_id,
            coalesce_key=coalesce_key,
            state="pending",
            attempts=0,
            next_attempt_at=not_before or utcnow(),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def claim_outbox(
    session: AsyncSession, *, limit: int, lease: timedelta, now: datetime | None = None
) -> list[OutboxMessage]:
    """Claim due messages that are first in line for their destination (order per chat)."""
    now = now or utcnow()
    earlier = aliased(OutboxMessage)
    blocked = exists().where(
        earlier.destination == OutboxMessage.destination,
        earlier.id < OutboxMessage.id,
        (earlier.state == "pending") | (earlier.state == "sending"),
    )
    q = (
        select(OutboxMessage)
        .where(
            ((OutboxMessage.state == "pending") & (OutboxMessage.next_attempt_at <= now))
            | ((OutboxMessage.state == "sending") & (OutboxMessage.lease_until < now)),
            ~blocked,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=OutboxMessage)
    )
    rows = list((await session.scalars(q)).all())
    for r in rows:
        r.state, r.lease_until = "sending", now + lease
    await session.flush()
    return rows


async def outbox_sent(session: AsyncSession, row_id: int, platform_message_id: str | None) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row_id)
        .values(
            state="sent",
            platform_message_id=platform_message_id,
            sent_at=utcnow(),
            lease_until=None,
            attempts=OutboxMessage.attempts + 1,
        )
    )


async def outbox_retry(
    session: AsyncSession, row_id: int, *, at: datetime, error: str | None, attempt: bool
) -> None:
    """Put a claimed message back for later; ``attempt`` counts it as a failed try."""
    values: dict[str, Any] = {"state": "pending", "next_attempt_at": at, "lease_until": None}
    if error is not None:
        values["last_error"] = error[:2000]
    if attempt:
        values["attempts"] = OutboxMessage.attempts + 1
    await session.execute(update(OutboxMessage).where(OutboxMessage.id == row_id).values(**values))


async def outbox_dead(session: AsyncSession, row_id: int, error: str) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row_id)
        .values(
            state="dead",
            last_error=error[:2000],
            lease_until=None,
            attempts=OutboxMessage.attempts + 1,
        )
    )


async def outbox_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
    )
    return {s: int(n) for s, n in rows.all()}


async def outbox_rows(
    session: AsyncSession, *, destination: str | None = None, states: Iterable[str] = ()
) -> list[OutboxMessage]:
    q = select(OutboxMessage).order_by(OutboxMessage.id)
    if destination is not None:
        q = q.where(OutboxMessage.destination == destination)
    states = list(states)
    if states:
        q = q.where(OutboxMessage.state.in_(states))
    return list((await session.scalars(q)).all())


async def next_outbox_due(session: AsyncSession) -> datetime | None:
    return await session.scalar(
        select(func.min(OutboxMessage.next_attempt_at)).where(OutboxMessage.state == "pending")
    )


# ----------------------------------------------------------------------------- web chat feed


async def feed_append(
    session: AsyncSession,
    *,
    conversation: str,
    message_key: str,
    kind: str,
    payload: dict[str, Any],
    idempotency_key: str | None,
) -> int:
    """Append a row; with a key already seen, return the earlier row's id instead."""
    if idempotency_key is not None:
        found = await session.scalar(
            select(WebchatFeed.id).where(WebchatFeed.idempotency_key == idempotency_key)
        )
        if found is not None:
            return int(found)
    row = WebchatFeed(
        conversation=conversation,
        message_key=message_key,
        kind=kind,
        payload=payload,
        idempotency_key=idempotency_key,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row.id


async def feed_since(
    session: AsyncSession, conversations: Sequence[str], after_id: int, limit: int = 500
) -> list[WebchatFeed]:
    if not conversations:
        return []
    rows = await session.scalars(
        select(WebchatFeed)
        .where(and_(WebchatFeed.conversation.in_(conversations), WebchatFeed.id > after_id))
        .order_by(WebchatFeed.id)
        .limit(limit)
    )
    return list(rows.all())


async def feed_message(session: AsyncSession, message_key: str) -> WebchatFeed | None:
    return await session.scalar(
        select(WebchatFeed).where(WebchatFeed.message_key == message_key).order_by(WebchatFeed.id)
    )
