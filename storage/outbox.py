"""The outbox table: every message for a platform reached over the network, until it is sent.

Rows are claimed head of line: a row is claimable only when nothing earlier for the same
destination is still waiting, so one chat's messages go out in the order they were queued
while different chats proceed side by side (on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so
several workers share the queue without taking the same chat). Rows that may be folded into one
message (SLA nags, a team group's new-ticket cards: the same ``coalesce_key``) are claimed
together with the head. What came of a claimed batch — sent, retried, given up on, folded
away — is written in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.elements import BindParameter

from storage.db import insert_stmt
from storage.models import TABLES, OutboxMessage, UTCDateTime
from storage.records import OutboxEntry, columns

__all__ = [
    "TEAM_CARD",
    "Cards",
    "Outcome",
    "any_due",
    "cards",
    "claim",
    "counts",
    "insert",
    "record",
    "rows",
]

O = TABLES["outbox"]  # noqa: E741
R = TABLES["card_refs"]
Executor = AsyncConnection | AsyncSession
_STATEMENTS: dict[tuple[str, ...], Any] = {}
_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
#: Rows not yet delivered (``ix_outbox_waiting_destination`` covers exactly these).
WAITING = "state IN ('pending', 'sending')"
#: The payload key of a team group's new-ticket card (its digest line, ``bot.flood``). Such rows
#: fold with the others waiting for their chat: their coalesce key is the chat's, given here
#: (a chat whose delivery is our own table, the web chat, never reaches the outbox: there
#: nothing is rate-limited and nothing folds).
TEAM_CARD = "team_card"


def _dialect(conn: Executor) -> str:
    bind = conn.get_bind() if isinstance(conn, AsyncSession) else conn
    return bind.dialect.name


def _cached(key: tuple[str, ...], build: Any) -> Any:
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


async def insert(conn: Executor, entries: Sequence[OutboxEntry]) -> None:
    """Queue messages; a repeated idempotency key is a no-op. A queued update of a card
    replaces the updates of it still waiting (only its newest version matters)."""
    if not entries:
        return
    updates = [e.card_ref_id for e in entries if e.op == "update" and e.card_ref_id]
    if updates:
        stmt = _cached(
            ("supersede_updates",),
            lambda: (
                update(O)
                .where(O.c.card_ref_id.in_(_IDS), O.c.op == "update", O.c.state == "pending")
                .values(state="superseded")
            ),
        )
        await conn.execute(stmt, {"ids": updates})
    dialect = _dialect(conn)
    stmt = _cached(
        ("insert", dialect),
        lambda: insert_stmt(conn, O).on_conflict_do_nothing(index_elements=["idempotency_key"]),
    )
    names = columns(OutboxEntry)
    params = []
    for e in entries:
        row = {n: getattr(e, n) for n in names}
        row.update(state="pending", attempts=0, created_at=e.next_attempt_at)
        if e.coalesce_key is None and TEAM_CARD in e.payload:
            row["coalesce_key"] = f"team:{e.destination}"
        params.append(row)
    await conn.execute(stmt, params)


def _claim_stmt(pg: bool) -> Any:
    earlier = O.alias("earlier")
    now: BindParameter[Any] = bindparam("now", type_=UTCDateTime())
    blocked = exists().where(
        earlier.c.destination == O.c.destination,
        earlier.c.id < O.c.id,
        text("earlier." + WAITING),  # literally: the partial index's own condition
    )
    heads = (
        select(O.c.id)
        .where(
            or_(
                and_(O.c.state == "pending", O.c.next_attempt_at <= now),
                and_(O.c.state == "sending", O.c.lease_until < now),
            ),
            ~blocked,
        )
        .order_by(O.c.id)
        .limit(bindparam("limit"))
    )
    if pg:
        heads = heads.with_for_update(skip_locked=True)
    return (
        update(O)
        .where(O.c.id.in_(heads.scalar_subquery()))
        .values(state="sending", lease_until=bindparam("lease_until", type_=UTCDateTime()))
        .returning(*O.c)
    )


def _followers_stmt() -> Any:
    now: BindParameter[Any] = bindparam("now", type_=UTCDateTime())
    return (
        update(O)
        .where(
            O.c.coalesce_key.in_(_IDS),
            or_(  # due, or held by a worker whose lease ran out (it died with them claimed)
                and_(O.c.state == "pending", O.c.next_attempt_at <= now),
                and_(O.c.state == "sending", O.c.lease_until < now),
            ),
        )
        .values(state="sending", lease_until=bindparam("lease_until", type_=UTCDateTime()))
        .returning(*O.c)
    )


async def claim(
    conn: Executor, *, limit: int, now: datetime, lease_until: datetime
) -> list[OutboxMessage]:
    """Claim the first due message of up to ``limit`` destinations, plus the due messages that
    may be folded with it; in id order. Rows are detached copies (``OutboxMessage`` objects
    not bound to any session)."""
    dialect = _dialect(conn)
    stmt = _cached(("claim", dialect), lambda: _claim_stmt(dialect == "postgresql"))
    params = {"now": now, "lease_until": lease_until, "limit": limit}
    heads = [OutboxMessage(**r._mapping) for r in await conn.execute(stmt, params)]
    keys = sorted({h.coalesce_key for h in heads if h.coalesce_key})
    if keys:
        stmt = _cached(("followers",), _followers_stmt)
        params = {"ids": keys, "now": now, "lease_until": lease_until}
        heads += [OutboxMessage(**r._mapping) for r in await conn.execute(stmt, params)]
    return sorted(heads, key=lambda r: r.id)


async def any_due(conn: Executor, now: datetime) -> bool:
    """Is anything waiting to be sent now? (A read: an idle tick takes no write lock.)"""
    stmt = _cached(
        ("any_due",),
        lambda: (
            select(O.c.id)
            .where(
                or_(
                    and_(
                        O.c.state == "pending",
                        O.c.next_attempt_at <= bindparam("now", type_=UTCDateTime()),
                    ),
                    and_(
                        O.c.state == "sending",
                        O.c.lease_until < bindparam("now", type_=UTCDateTime()),
                    ),
                )
            )
            .limit(1)
        ),
    )
    return (await conn.execute(stmt, {"now": now})).first() is not None


@dataclass
class Cards:
    """Where the cards that updates are queued for live on their platforms, and which of them
    were folded into a digest (stale and never posted: their updates go nowhere)."""

    message_ids: dict[int, str | None] = field(default_factory=dict)
    folded: set[int] = field(default_factory=set)


async def cards(conn: Executor, card_ref_ids: Collection[int]) -> Cards:
    """What the updates of these card references need to know."""
    out = Cards()
    if not card_ref_ids:
        return out
    stmt = _cached(
        ("cards",),
        lambda: select(R.c.id, R.c.platform_message_id, R.c.stale).where(R.c.id.in_(_IDS)),
    )
    for ref, message_id, stale in await conn.execute(stmt, {"ids": list(card_ref_ids)}):
        out.message_ids[ref] = message_id
        if stale and not message_id:
            out.folded.add(ref)
    return out


@dataclass
class Outcome:
    """What came of a claimed batch."""

    sent: list[tuple[int, str | None]] = field(default_factory=list)  # row, platform message
    retry: list[tuple[int, datetime, str | None, bool]] = field(default_factory=list)
    # ^ row, next attempt, error, whether it counts as an attempt
    dead: list[tuple[int, str]] = field(default_factory=list)
    superseded: list[int] = field(default_factory=list)  # folded into another message
    card_messages: list[tuple[int, str]] = field(default_factory=list)  # card ref, message
    stale_cards: list[int] = field(default_factory=list)  # card refs never shown
    queued: list[OutboxEntry] = field(default_factory=list)  # e.g. dead-letter reports
    payloads: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # ^ row, its new payload (a card named in a digest whose own message is still to go)

    _FIELDS = (
        "sent",
        "retry",
        "dead",
        "superseded",
        "card_messages",
        "stale_cards",
        "queued",
        "payloads",
    )

    def merge(self, other: Outcome) -> None:
        for name in self._FIELDS:
            getattr(self, name).extend(getattr(other, name))

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in self._FIELDS)


def _by_id(values: dict[str, Any]) -> Any:
    return update(O).where(O.c.id == bindparam("_id")).values(values)


async def record(conn: Executor, outcome: Outcome, *, now: datetime) -> None:
    """Write what came of a batch: one statement per kind of outcome."""
    if outcome.sent:
        stmt = _cached(
            ("sent",),
            lambda: _by_id(
                {
                    "state": "sent",
                    "platform_message_id": bindparam("_message"),
                    "sent_at": bindparam("_now", type_=UTCDateTime()),
                    "lease_until": None,
                    "attempts": O.c.attempts + 1,
                }
            ),
        )
        await conn.execute(stmt, [{"_id": i, "_message": m, "_now": now} for i, m in outcome.sent])
    for attempt in (True, False):
        retries = [r for r in outcome.retry if r[3] is attempt]
        if retries:
            stmt = _cached(
                ("retry", str(attempt)),
                lambda n=int(attempt): _by_id(
                    {
                        "state": "pending",
                        "next_attempt_at": bindparam("_at", type_=UTCDateTime()),
                        "lease_until": None,
                        "last_error": func.coalesce(bindparam("_error"), O.c.last_error),
                        "attempts": O.c.attempts + n,
                    }
                ),
            )
            await conn.execute(
                stmt,
                [{"_id": i, "_at": at, "_error": err and err[:2000]} for i, at, err, _ in retries],
            )
    if outcome.dead:
        stmt = _cached(
            ("dead",),
            lambda: _by_id(
                {
                    "state": "dead",
                    "last_error": bindparam("_error"),
                    "lease_until": None,
                    "attempts": O.c.attempts + 1,
                }
            ),
        )
        await conn.execute(stmt, [{"_id": i, "_error": e[:2000]} for i, e in outcome.dead])
    if outcome.superseded:
        stmt = _cached(
            ("superseded",),
            lambda: update(O).where(O.c.id.in_(_IDS)).values(state="superseded", lease_until=None),
        )
        await conn.execute(stmt, {"ids": outcome.superseded})
    if outcome.card_messages:
        stmt = _cached(
            ("card_message",),
            lambda: (
                update(R)
                .where(R.c.id == bindparam("_id"))
                .values(platform_message_id=bindparam("_message"))
            ),
        )
        await conn.execute(stmt, [{"_id": i, "_message": m} for i, m in outcome.card_messages])
    if outcome.stale_cards:
        stmt = _cached(
            ("stale_cards",), lambda: update(R).where(R.c.id.in_(_IDS)).values(stale=True)
        )
        await conn.execute(stmt, {"ids": outcome.stale_cards})
    if outcome.payloads:
        stmt = _cached(
            ("payload",),
            lambda: _by_id({"payload": bindparam("_payload", type_=O.c.payload.type)}),
        )
        await conn.execute(stmt, [{"_id": i, "_payload": p} for i, p in outcome.payloads])
    await insert(conn, outcome.queued)


async def counts(conn: Executor) -> dict[str, int]:
    rows = await conn.execute(select(O.c.state, func.count()).group_by(O.c.state))
    return {s: int(n) for s, n in rows.all()}


async def rows(
    conn: AsyncSession, *, destination: str | None = None, states: Iterable[str] = ()
) -> list[OutboxMessage]:
    q = select(OutboxMessage).order_by(OutboxMessage.id)
    if destination is not None:
        q = q.where(OutboxMessage.destination == destination)
    wanted = list(states)
    if wanted:
        q = q.where(OutboxMessage.state.in_(wanted))
    return list((await conn.scalars(q)).all())
