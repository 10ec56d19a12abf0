"""Evidence photos of tickets (``ticket_evidence``): stored with the unit of work that counts
them on the ticket, read by the console and the service report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import TABLES

__all__ = ["EvidenceRow", "has", "insert", "listing", "photo", "photos"]

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


async def has(conn: AsyncConnection, ticket_id: int, sha256: str) -> bool:
    """Whether this very picture is on the ticket already."""
    stmt = select(V.c.id).where(V.c.ticket_id == ticket_id, V.c.sha256 == sha256)
    return (await conn.execute(stmt)).first() is not None


async def insert(
    conn: AsyncConnection,
    *,
    ticket_id: int,
    data: bytes,
    media_type: str,
    sha256: str,
    person_id: int | None,
    via: str,
    at: datetime,
) -> None:
    await conn.execute(
        V.insert().values(
            ticket_id=ticket_id,
            kind="photo",
            media_type=media_type,
            size=len(data),
            sha256=sha256,
            data=data,
            person_id=person_id,
            via=via,
            created_at=at,
        )
    )


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
