"""Preventive maintenance's queries: the assets plans cover, their runs, and suggestions.

A run (``pm_runs``) is one due date or meter mark of a plan on an asset, with the ticket opened
for it; its unique (plan, asset, slot) makes the opening of a due date happen once, whichever
worker gets there first. A suggestion (``maintenance_suggestions``) is one "this asset keeps
failing" post, unique per asset and the ticket that made the count.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import TABLES

__all__ = [
    "PlanAsset",
    "Repeat",
    "Run",
    "Suggestion",
    "asset_names",
    "finished",
    "insert_run",
    "insert_suggestion",
    "latest_runs",
    "mark_done",
    "plan_assets",
    "plan_assets_by_id",
    "repeats",
    "runs_of",
    "suggested_since",
    "suggestions_of",
]

A = TABLES["assets"]
S = TABLES["sites"]
T = TABLES["tickets"]
E = TABLES["ticket_events"]
R = TABLES["pm_runs"]
G = TABLES["maintenance_suggestions"]

#: States in which a PM ticket's work is over (the floating interval counts from then).
FINISHED = ("resolved", "closed", "cancelled")


@dataclass(frozen=True, slots=True)
class PlanAsset:
    """An active asset a plan may cover, with what the plans need of it."""

    id: int
    code: str
    name: str
    category: str | None
    site_name: str | None
    install_date: date | None
    created_at: datetime
    meter: float | None
    meter_unit: str | None


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    plan_key: str
    asset_id: int
    slot: str
    due_at: datetime | None
    due_meter: float | None
    ticket_id: int | None
    ticket_number: str | None
    created_at: datetime
    done_at: datetime | None


@dataclass(frozen=True, slots=True)
class Repeat:
    """An asset's tickets within the window, oldest first: (id, number, team)."""

    asset_id: int
    tickets: list[tuple[int, str, str | None]]


@dataclass(frozen=True, slots=True)
class Suggestion:
    asset_id: int
    tickets: list[str]
    days: float
    created_at: datetime


def _plan_assets() -> Any:
    return select(
        A.c.id,
        A.c.code,
        A.c.name,
        A.c.category,
        S.c.name.label("site_name"),
        A.c.install_date,
        A.c.created_at,
        A.c.meter,
        A.c.meter_unit,
    ).select_from(A.outerjoin(S, A.c.site_id == S.c.id))


async def plan_assets(
    conn: AsyncConnection, codes: Collection[str], categories: Collection[str]
) -> list[PlanAsset]:
    """Active assets whose code (any case) or category is named (one statement)."""
    if not codes and not categories:
        return []
    stmt = (
        _plan_assets()
        .where(
            A.c.active.is_(True),
            or_(
                func.lower(A.c.code).in_(bindparam("codes", expanding=True)),
                A.c.category.in_(bindparam("categories", expanding=True)),
            ),
        )
        .order_by(A.c.id)
    )
    params = {"codes": sorted({c.lower() for c in codes}), "categories": sorted(categories)}
    return [PlanAsset(**r._mapping) for r in await conn.execute(stmt, params)]


async def plan_assets_by_id(conn: AsyncConnection, asset_id: int) -> PlanAsset | None:
    stmt = _plan_assets().where(A.c.id == asset_id)
    row = (await conn.execute(stmt)).first()
    return PlanAsset(**row._mapping) if row is not None else None


async def asset_names(conn: AsyncConnection, asset_ids: Collection[int]) -> dict[int, str]:
    if not asset_ids:
        return {}
    stmt = select(A.c.id, A.c.name).where(A.c.id.in_(bindparam("ids", expanding=True)))
    return {int(i): str(n) for i, n in await conn.execute(stmt, {"ids": sorted(asset_ids)})}


def _runs() -> Any:
    return select(
        R.c.id,
        R.c.plan_key,
        R.c.asset_id,
        R.c.slot,
        R.c.due_at,
        R.c.due_meter,
        R.c.ticket_id,
        T.c.number.label("ticket_number"),
        R.c.created_at,
        R.c.done_at,
    ).select_from(R.outerjoin(T, R.c.ticket_id == T.c.id))


async def latest_runs(
    conn: AsyncConnection, plan_keys: Collection[str]
) -> dict[tuple[str, int], Run]:
    """Each (plan, asset)'s newest run (one statement)."""
    if not plan_keys:
        return {}
    newest = (
        select(func.max(R.c.id))
        .where(R.c.plan_key.in_(bindparam("keys", expanding=True)))
        .group_by(R.c.plan_key, R.c.asset_id)
    )
    stmt = _runs().where(R.c.id.in_(newest))
    rows = await conn.execute(stmt, {"keys": sorted(plan_keys)})
    return {(r.plan_key, r.asset_id): Run(**r._mapping) for r in rows}


async def runs_of(conn: AsyncConnection, asset_id: int, *, limit: int = 20) -> list[Run]:
    """An asset's runs, newest first."""
    stmt = _runs().where(R.c.asset_id == asset_id).order_by(R.c.id.desc()).limit(limit)
    return [Run(**r._mapping) for r in await conn.execute(stmt)]


async def finished(conn: AsyncConnection, ticket_ids: Collection[int]) -> dict[int, datetime]:
    """Of these tickets, those whose work is over, with when it first was (from the audit
    trail: the first move into a finished state)."""
    if not ticket_ids:
        return {}
    stmt = (
        select(E.c.ticket_id, func.min(E.c.at))
        .select_from(E.join(T, T.c.id == E.c.ticket_id))
        .where(
            E.c.ticket_id.in_(bindparam("ids", expanding=True)),
            T.c.state.in_(FINISHED),
            E.c.to_state.in_(FINISHED),
        )
        .group_by(E.c.ticket_id)
    )
    rows = await conn.execute(stmt, {"ids": sorted(ticket_ids)})
    return {int(ticket_id): at for ticket_id, at in rows}


async def mark_done(conn: AsyncConnection, done: dict[int, datetime]) -> None:
    """Runs (by id) whose ticket is finished, with when (only if not marked already)."""
    for run_id, at in done.items():
        await conn.execute(
            R.update().where(R.c.id == run_id, R.c.done_at.is_(None)).values(done_at=at)
        )


async def insert_run(
    conn: AsyncConnection,
    *,
    plan_key: str,
    asset_id: int,
    slot: str,
    due_at: datetime | None,
    due_meter: float | None,
    ticket_id: int,
    now: datetime,
) -> None:
    """Record that ``slot`` is opened; raises ``IntegrityError`` when another worker has."""
    await conn.execute(
        R.insert().values(
            plan_key=plan_key,
            asset_id=asset_id,
            slot=slot,
            due_at=due_at,
            due_meter=due_meter,
            ticket_id=ticket_id,
            created_at=now,
        )
    )


async def repeats(
    conn: AsyncConnection, since: datetime, at_least: int, *, skip_category: str
) -> list[Repeat]:
    """Assets with ``at_least`` tickets created since ``since`` (tickets of
    ``skip_category`` and merged reports do not count), with those tickets (two
    statements)."""
    counted = (
        T.c.asset_id.is_not(None),
        T.c.created_at >= since,
        T.c.category != skip_category,
        T.c.merged_into.is_(None),
    )
    busy = (
        select(T.c.asset_id).where(*counted).group_by(T.c.asset_id).having(func.count() >= at_least)
    )
    stmt = (
        select(T.c.asset_id, T.c.id, T.c.number, T.c.team_key)
        .where(*counted, T.c.asset_id.in_(busy))
        .order_by(T.c.asset_id, T.c.id)
    )
    found: dict[int, list[tuple[int, str, str | None]]] = {}
    for r in await conn.execute(stmt):
        found.setdefault(r.asset_id, []).append((r.id, r.number or f"GD-{r.id}", r.team_key))
    return [Repeat(asset_id, tickets) for asset_id, tickets in found.items()]


async def suggested_since(
    conn: AsyncConnection, asset_ids: Collection[int], since: datetime
) -> set[int]:
    """Of these assets, those with a suggestion made since ``since``."""
    if not asset_ids:
        return set()
    stmt = select(G.c.asset_id).where(
        G.c.asset_id.in_(bindparam("ids", expanding=True)), G.c.created_at >= since
    )
    return {int(r[0]) for r in await conn.execute(stmt, {"ids": sorted(asset_ids)})}


async def insert_suggestion(
    conn: AsyncConnection,
    *,
    asset_id: int,
    trigger_ticket_id: int,
    tickets: Sequence[str],
    days: float,
    teams: Sequence[str],
    now: datetime,
) -> None:
    """Record a suggestion; raises ``IntegrityError`` when another worker made it."""
    await conn.execute(
        G.insert().values(
            asset_id=asset_id,
            trigger_ticket_id=trigger_ticket_id,
            tickets=list(tickets),
            days=days,
            teams=list(teams),
            created_at=now,
        )
    )


async def suggestions_of(
    conn: AsyncConnection, asset_id: int, *, after: datetime | None, limit: int = 10
) -> list[Suggestion]:
    """An asset's suggestions made after ``after`` (None: all), newest first."""
    stmt = select(G.c.asset_id, G.c.tickets, G.c.days, G.c.created_at).where(
        G.c.asset_id == asset_id
    )
    if after is not None:
        stmt = stmt.where(G.c.created_at > after)
    stmt = stmt.order_by(G.c.id.desc()).limit(limit)
    return [
        Suggestion(r.asset_id, list(r.tickets or []), float(r.days), r.created_at)
        for r in await conn.execute(stmt)
    ]
