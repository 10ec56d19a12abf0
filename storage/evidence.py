"""Evidence photos of tickets (``ticket_evidence``): stored with the unit of work that counts
them on the ticket, read by the console and the service report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import TABLES

__all__ = ["EvidenceRow", "NewPhoto", "hashes", "insert", "listing", "photo", "photos"]

V = TABLES["ticket_evidence"]


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    """A photo's facts (its bytes are read only when shown: ``photo``)."""

    id: int
    ticket_id: int
    media_type: str
    size: int
    sha256: str
    person_id: int | None
    via: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewPhoto:
    """A photo a unit of work decided to keep (written with the unit: ``bot.work``)."""

    ticket_id: int
    data: bytes
    media_type: str
    sha256: str
    person_id: int | None
    via: str
    created_at: datetime


async def insert(conn: AsyncConnection, photos: Sequence[NewPhoto]) -> None:
    if not photos:
        return
    await conn.execute(
        V.insert(),
        [
            {
                "ticket_id": p.ticket_id,
                "kind": "photo",
                "media_type": p.media_type,
                "size": len(p.data),
                "sha256": p.sha256,
                "data": p.data,
                "person_id": p.person_id,
                "via": p.via,
                "created_at": p.created_at,
            }
            for p in photos
        ],
    )


async def hashes(conn: AsyncConnection, ticket_id: int) -> frozenset[str]:
    """The SHA-256 of every photo on the ticket (the same picture is kept once)."""
    rows = await conn.execute(select(V.c.sha256).where(V.c.ticket_id == ticket_id))
    return frozenset(r[0] for r in rows)


async def listing(conn: AsyncConnection, ticket_id: int) -> list[EvidenceRow]:
    """The ticket's photos, oldest first (without their bytes)."""
    stmt = (
        select(V.c.id, V.c.ticket_id, V.c.media_type, V.c.size, V.c.sha256, V.c.person_id)
        .add_columns(V.c.via, V.c.created_at)
        .where(V.c.ticket_id == ticket_id)
        .order_by(V.c.id)
    )
    return [EvidenceRow(*row) for row in await conn.execute(stmt)]


async def photo(
    conn: AsyncConnection, ticket_id: int, evidence_id: int
) -> tuple[str, bytes] | None:
    """(media type, bytes) of one photo of the ticket; None when it has no such photo."""
    stmt = select(V.c.media_type, V.c.data).where(V.c.id == evidence_id, V.c.ticket_id == ticket_id)
    row = (await conn.execute(stmt)).first()
    return (row[0], bytes(row[1])) if row is not None else None


async def photos(conn: AsyncConnection, ticket_id: int) -> Sequence[tuple[int, str, bytes]]:
    """Every photo of the ticket with its bytes, oldest first (the service report)."""
    stmt = (
        select(V.c.id, V.c.media_type, V.c.data).where(V.c.ticket_id == ticket_id).order_by(V.c.id)
    )
    return [(r[0], r[1], bytes(r[2])) for r in await conn.execute(stmt)]
