"""The asset registry's queries: organisations, sites and assets, read and upserted.

Assets are few and read often (every report is matched against them), so the hub keeps them
in memory (``bot.assets.AssetIndex``) loaded with ``entries``; ``fingerprint`` tells cheaply
whether the table changed since (an import in another process). ``history`` is the one
set-based read a unit makes for the "last tickets" of the assets its cards show.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import TABLES

__all__ = [
    "AssetEntry",
    "AssetRow",
    "Imported",
    "TicketBrief",
    "by_code",
    "by_id",
    "entries",
    "fingerprint",
    "history",
    "rows",
    "search",
    "site_of",
    "upsert",
]

A = TABLES["assets"]
S = TABLES["sites"]
O = TABLES["organisations"]  # noqa: E741
T = TABLES["tickets"]


@dataclass(frozen=True, slots=True)
class AssetEntry:
    """An asset as intake and cards see it: with its site's and organisation's names."""

    id: int
    code: str
    name: str
    aliases: tuple[str, ...] = ()
    model: str | None = None
    category: str | None = None
    site_id: int | None = None
    site_code: str | None = None
    site_name: str | None = None
    site_lat: float | None = None  # the site's coordinates (WGS-84; routing distance)
    site_lon: float | None = None
    organisation_code: str | None = None
    organisation_name: str | None = None
    install_date: date | None = None
    warranty_end: date | None = None
    preferred_engineer: str | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class TicketBrief:
    """One of an asset's tickets, as a card lists it."""

    id: int
    asset_id: int
    number: str | None
    title: str
    state: str
    created_at: datetime


@dataclass(slots=True)
class AssetRow:
    """One asset with everything the import file says of it (the file's columns)."""

    code: str
    name: str
    aliases: list[str] = field(default_factory=list)
    model: str | None = None
    category: str | None = None
    site_code: str | None = None
    site_name: str | None = None
    site_address: str | None = None
    lat: float | None = None
    lon: float | None = None
    organisation_code: str | None = None
    organisation_name: str | None = None
    install_date: date | None = None
    warranty_end: date | None = None
    preferred_engineer: str | None = None
    meter: float | None = None
    meter_unit: str | None = None


def _joined() -> Select[Any]:
    return (
        select(
            A.c.id,
            A.c.code,
            A.c.name,
            A.c.aliases,
            A.c.model,
            A.c.category,
            A.c.site_id,
            S.c.code.label("site_code"),
            S.c.name.label("site_name"),
            S.c.lat.label("site_lat"),
            S.c.lon.label("site_lon"),
            O.c.code.label("organisation_code"),
            O.c.name.label("organisation_name"),
            A.c.install_date,
            A.c.warranty_end,
            A.c.preferred_engineer,
            A.c.active,
        )
        .select_from(
            A.outerjoin(S, A.c.site_id == S.c.id).outerjoin(O, A.c.organisation_id == O.c.id)
        )
        .order_by(A.c.code)
    )


def _entry(r: Any) -> AssetEntry:
    values = dict(r._mapping)
    values["aliases"] = tuple(values["aliases"] or ())
    return AssetEntry(**values)


async def entries(conn: AsyncConnection) -> list[AssetEntry]:
    """Every asset (one statement)."""
    return [_entry(r) for r in await conn.execute(_joined())]


async def fingerprint(conn: AsyncConnection) -> tuple[int, str]:
    """(count, newest change) of the assets: changes whenever an import wrote anything."""
    row = (await conn.execute(select(func.count(), func.max(A.c.updated_at)))).one()
    return int(row[0]), str(row[1])


async def search(
    conn: AsyncConnection, q: str | None, *, limit: int, offset: int
) -> list[AssetEntry]:
    """Assets whose code, name, model or site name contains ``q`` (any case), by code."""
    stmt = _joined()
    if q:
        needle = q.lower()
        stmt = stmt.where(
            or_(
                *(
                    func.lower(c).contains(needle, autoescape=True)
                    for c in (A.c.code, A.c.name, A.c.model, S.c.name)
                )
            )
        )
    return [_entry(r) for r in await conn.execute(stmt.limit(limit).offset(offset))]


async def by_code(conn: AsyncConnection, code: str) -> AssetEntry | None:
    stmt = _joined().where(func.lower(A.c.code) == code.lower())
    row = (await conn.execute(stmt)).first()
    return _entry(row) if row is not None else None


async def by_id(conn: AsyncConnection, asset_id: int) -> AssetEntry | None:
    row = (await conn.execute(_joined().where(A.c.id == asset_id))).first()
    return _entry(row) if row is not None else None


async def site_of(conn: AsyncConnection, site_id: int) -> dict[str, Any] | None:
    cols = (S.c.code, S.c.name, S.c.address, S.c.lat, S.c.lon)
    row = (await conn.execute(select(*cols).where(S.c.id == site_id))).first()
    return dict(row._mapping) if row is not None else None


async def history(
    conn: AsyncConnection, asset_ids: Collection[int], *, per_asset: int
) -> dict[int, list[TicketBrief]]:
    """Each asset's newest ``per_asset`` tickets, newest first — in one statement."""
    out: dict[int, list[TicketBrief]] = {i: [] for i in asset_ids}
    if not asset_ids:
        return out
    rank = func.row_number().over(partition_by=T.c.asset_id, order_by=T.c.id.desc()).label("rank")
    inner = (
        select(T.c.id, T.c.asset_id, T.c.number, T.c.title, T.c.state, T.c.created_at, rank)
        .where(T.c.asset_id.in_(bindparam("ids", expanding=True)))
        .subquery()
    )
    stmt = (
        select(*(inner.c[n] for n in ("id", "asset_id", "number", "title", "state", "created_at")))
        .where(inner.c.rank <= per_asset)
        .order_by(inner.c.asset_id, inner.c.id.desc())
    )
    for r in await conn.execute(stmt, {"ids": list(asset_ids)}):
        out[r.asset_id].append(TicketBrief(**r._mapping))
    return out


async def rows(conn: AsyncConnection) -> list[AssetRow]:
    """Every asset with its site and organisation, as the import file has them (export)."""
    stmt = (
        select(
            A.c.code,
            A.c.name,
            A.c.aliases,
            A.c.model,
            A.c.category,
            S.c.code.label("site_code"),
            S.c.name.label("site_name"),
            S.c.address.label("site_address"),
            S.c.lat,
            S.c.lon,
            O.c.code.label("organisation_code"),
            O.c.name.label("organisation_name"),
            A.c.install_date,
            A.c.warranty_end,
            A.c.preferred_engineer,
            A.c.meter,
            A.c.meter_unit,
        )
        .select_from(
            A.outerjoin(S, A.c.site_id == S.c.id).outerjoin(O, A.c.organisation_id == O.c.id)
        )
        .order_by(A.c.code)
    )
    out = []
    for r in await conn.execute(stmt):
        values = dict(r._mapping)
        values["aliases"] = list(values["aliases"] or [])
        out.append(AssetRow(**values))
    return out


@dataclass(frozen=True, slots=True)
class Imported:
    assets_new: int
    assets_updated: int
    sites: int
    organisations: int


async def _ids_by_code(conn: AsyncConnection, table: Any, codes: Collection[str]) -> dict[str, int]:
    """Existing rows by code, matched without regard to case."""
    if not codes:
        return {}
    wanted = sorted({c.lower() for c in codes})
    stmt = select(table.c.code, table.c.id).where(
        func.lower(table.c.code).in_(bindparam("codes", expanding=True))
    )
    return {code.lower(): i for code, i in await conn.execute(stmt, {"codes": wanted})}


async def _upsert(
    conn: AsyncConnection, table: Any, items: dict[str, dict[str, Any]], now: datetime
) -> dict[str, int]:
    """Insert or update rows by code (only the columns given); ids by lower-cased code."""
    ids = await _ids_by_code(conn, table, items)
    for key, values in items.items():
        if key in ids:
            await conn.execute(table.update().where(table.c.id == ids[key]).values(**values))
        else:
            created = {"created_at": now, **values}
            if "updated_at" in table.c:
                created.setdefault("updated_at", now)
            ids[key] = (
                await conn.execute(table.insert().values(**created).returning(table.c.id))
            ).scalar_one()
    return ids


async def upsert(conn: AsyncConnection, assets: Sequence[AssetRow], now: datetime) -> Imported:
    """Write checked rows (``bot.asset_files`` checked them) in the caller's transaction:
    organisations and sites first (created or updated from their columns), then the assets,
    each matched by code without regard to case."""
    orgs: dict[str, dict[str, Any]] = {}
    sites: dict[str, dict[str, Any]] = {}
    for a in assets:
        if a.organisation_code:
            org = orgs.setdefault(a.organisation_code.lower(), {"code": a.organisation_code})
            if a.organisation_name:
                org["name"] = a.organisation_name
        if a.site_code:
            site = sites.setdefault(a.site_code.lower(), {"code": a.site_code})
            for key in ("site_name", "site_address", "lat", "lon"):
                value = getattr(a, key)
                if value is not None:
                    site[key.removeprefix("site_")] = value
    known_orgs = await _ids_by_code(conn, O, orgs)
    for key, org in orgs.items():
        if key not in known_orgs:
            org.setdefault("name", org["code"])
    org_ids = await _upsert(conn, O, orgs, now)
    known_sites = await _ids_by_code(conn, S, sites)
    for a in assets:
        if a.site_code and a.organisation_code:
            sites[a.site_code.lower()]["organisation_id"] = org_ids[a.organisation_code.lower()]
    for key, site in sites.items():
        if key not in known_sites:
            site.setdefault("name", site["code"])
    site_ids = await _upsert(conn, S, sites, now)
    existing = await _ids_by_code(conn, A, [a.code for a in assets])
    meters: dict[int, Any] = {}
    if existing:
        stmt = select(A.c.id, A.c.meter).where(A.c.id.in_(bindparam("ids", expanding=True)))
        meters = dict((await conn.execute(stmt, {"ids": list(existing.values())})).all())
    items: dict[str, dict[str, Any]] = {}
    for a in assets:
        key = a.code.lower()
        old_meter = meters.get(existing[key]) if key in existing else None
        items[key] = {
            "code": a.code,
            "name": a.name,
            "aliases": list(a.aliases),
            "model": a.model,
            "category": a.category,
            "site_id": site_ids[a.site_code.lower()] if a.site_code else None,
            "organisation_id": org_ids[a.organisation_code.lower()]
            if a.organisation_code
            else None,
            "install_date": a.install_date,
            "warranty_end": a.warranty_end,
            "preferred_engineer": a.preferred_engineer,
            "meter": a.meter,
            "meter_unit": a.meter_unit,
            "active": True,
            "updated_at": now,
            **({"meter_at": now} if a.meter is not None and a.meter != old_meter else {}),
        }
    await _upsert(conn, A, items, now)
    return Imported(
        assets_new=len(items) - len(existing),
        assets_updated=len(existing),
        sites=len(sites),
        organisations=len(orgs),
    )
