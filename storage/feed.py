"""The web chat's feed: every message the built-in web chat shows, in order.

It is the web chat's "platform API": sending appends a row, updating a card appends a newer
version under the same message key, and the pages follow the feed live. Rows are usually
written in the transaction of the unit of work that decided them (``storage.unit``); this
module appends the rest (messages that went through the outbox) and reads the feed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.db import insert_stmt
from storage.models import TABLES, WebchatFeed
from storage.records import FeedEntry, columns

__all__ = ["append", "head", "since"]

W = TABLES["webchat_feed"]
_STATEMENTS: dict[tuple[str, ...], Any] = {}


async def append(conn: AsyncConnection | AsyncSession, entries: Sequence[FeedEntry]) -> None:
    """Append rows; a row whose idempotency key is already there is left out."""
    if not entries:
        return
    bind = conn.get_bind() if isinstance(conn, AsyncSession) else conn
    key = ("append", bind.dialect.name)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = insert_stmt(conn, W).on_conflict_do_nothing(
            index_elements=["idempotency_key"]
        )
    names = columns(FeedEntry)
    await conn.execute(stmt, [{n: getattr(e, n) for n in names} for e in entries])


async def since(
    conn: AsyncConnection | AsyncSession,
    conversations: Sequence[str],
    after_id: int,
    limit: int = 500,
) -> list[WebchatFeed]:
    """Rows of ``conversations`` after ``after_id``, oldest first (detached copies)."""
    if not conversations:
        return []
    stmt = _STATEMENTS.get(("since",))
    if stmt is None:
        stmt = _STATEMENTS[("since",)] = (
            select(W)
            .where(W.c.conversation.in_(bindparam("convs", expanding=True)))
            .where(W.c.id > bindparam("after"))
            .order_by(W.c.id)
            .limit(bindparam("limit"))
        )
    params = {"convs": list(conversations), "after": after_id, "limit": limit}
    return [WebchatFeed(**r._mapping) for r in await conn.execute(stmt, params)]


async def head(conn: AsyncConnection | AsyncSession) -> int:
    """The newest row's id (0: none yet): what a page that opens now has already missed."""
    found = await conn.execute(select(func.max(W.c.id)))
    return int(found.scalar() or 0)
