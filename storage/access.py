"""Staff sign-in rows: sessions, used sign-in links and passwords (Core statements).

Only hashes are stored: a session row is keyed by the SHA-256 of the browser's token, a used
link by the SHA-256 of the link's token, a password by its Argon2id hash. Whoever reads the
database learns no credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db import insert_stmt
from storage.models import TABLES

__all__ = [
    "SessionRow",
    "anyone_signed_in",
    "get_password",
    "get_session",
    "new_session",
    "revoke_person",
    "revoke_session",
    "set_password",
    "touch_session",
    "use_link",
]

S = TABLES["staff_sessions"]
L = TABLES["sign_in_links"]
P = TABLES["staff_passwords"]


@dataclass(frozen=True, slots=True)
class SessionRow:
    person_key: str
    via: str
    created_at: datetime
    seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


async def new_session(
    conn: AsyncConnection,
    digest: str,
    person_key: str,
    *,
    via: str,
    client: str | None,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        S.insert().values(
            id=digest,
            person_key=person_key,
            via=via,
            client=(client or "")[:64] or None,
            created_at=now,
            seen_at=now,
            expires_at=expires_at,
        )
    )


async def get_session(conn: AsyncConnection, digest: str) -> SessionRow | None:
    row = (
        await conn.execute(
            select(
                S.c.person_key,
                S.c.via,
                S.c.created_at,
                S.c.seen_at,
                S.c.expires_at,
                S.c.revoked_at,
            ).where(S.c.id == digest)
        )
    ).first()
    return SessionRow(*row) if row is not None else None


async def touch_session(conn: AsyncConnection, digest: str, now: datetime) -> None:
    await conn.execute(update(S).where(S.c.id == digest).values(seen_at=now))


async def revoke_session(conn: AsyncConnection, digest: str, now: datetime) -> bool:
    result = await conn.execute(
        update(S).where(S.c.id == digest, S.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return bool(result.rowcount)


async def revoke_person(conn: AsyncConnection, person_key: str, now: datetime) -> int:
    """End every sign-in of a person (password changed, signed out everywhere, left)."""
    result = await conn.execute(
        update(S)
        .where(S.c.person_key == person_key, S.c.revoked_at.is_(None), S.c.expires_at > now)
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)


async def use_link(
    conn: AsyncConnection,
    digest: str,
    person_key: str,
    *,
    via: str,
    issued_at: datetime,
    expires_at: datetime,
    now: datetime,
) -> bool:
    """Record a link as used; False when it was used before (a link works once)."""
    stmt = (
        insert_stmt(conn, L)
        .values(
            id=digest,
            person_key=person_key,
            via=via[:20],
            created_at=issued_at,
            expires_at=expires_at,
            used_at=now,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    try:
        result = await conn.execute(stmt)
    except IntegrityError:  # (a race both sides lost to the primary key)
        return False
    return bool(result.rowcount)


async def get_password(conn: AsyncConnection, person_key: str) -> tuple[str, datetime] | None:
    row = (
        await conn.execute(select(P.c.hash, P.c.changed_at).where(P.c.person_key == person_key))
    ).first()
    return (row[0], row[1]) if row is not None else None


async def set_password(
    conn: AsyncConnection, person_key: str, hashed: str | None, now: datetime
) -> None:
    """Set (or, with None, remove) a person's password; their sign-ins end either way."""
    await conn.execute(P.delete().where(P.c.person_key == person_key))
    if hashed is not None:
        await conn.execute(P.insert().values(person_key=person_key, hash=hashed, changed_at=now))
    await revoke_person(conn, person_key, now)


async def anyone_signed_in(conn: AsyncConnection) -> bool:
    """Whether any staff member ever signed in or set a password (a fresh database: no)."""
    for table in (S, P):
        if (await conn.execute(select(table.c.person_key).limit(1))).first() is not None:
            return True
    return False
