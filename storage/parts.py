"""The parts catalog's queries: every part with its stock (one statement each), and the
import's upsert.

Like the asset registry, the catalog is small (hundreds or a few thousand parts) and read on
every 待备件 card, so the hub keeps it in memory (``bot.parts_catalog.PartsCatalog``), loaded
with ``entries`` and reloaded when ``fingerprint`` changes (an import in another process).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import TABLES

__all__ = ["PartEntry", "PartRow", "PartsImported", "entries", "fingerprint", "upsert"]

P = TABLES["parts_catalog"]
K = TABLES["part_stock"]


@dataclass(frozen=True, slots=True)
class PartEntry:
    """A catalog part as requests see it: its stock per store, in the import file's order."""

    code: str
    name: str
    aliases: tuple[str, ...] = ()
    unit: str | None = None
    stock: tuple[tuple[str, float], ...] = ()

    @property
    def in_stock(self) -> float:
        return sum(qty for _, qty in self.stock)


@dataclass(slots=True)
class PartRow:
    """One part as the import file gives it. ``stock`` holds the stores the file has a column
    for: a number sets that store's stock, None says the store does not keep the part."""

    code: str
    name: str
    aliases: list[str] = field(default_factory=list)
    unit: str | None = None
    stock: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PartsImported:
    new: int
    updated: int
    stores: int


async def entries(conn: AsyncConnection) -> list[PartEntry]:
    """Every part with its stock, by code (two statements, whatever the size)."""
    stock: dict[int, list[tuple[str, float]]] = {}
    for part_id, store, qty in await conn.execute(
        select(K.c.part_id, K.c.store, K.c.qty).order_by(K.c.part_id, K.c.id)
    ):
        stock.setdefault(part_id, []).append((store, float(qty)))
    rows = await conn.execute(
        select(P.c.id, P.c.code, P.c.name, P.c.aliases, P.c.unit).order_by(P.c.code)
    )
    return [
        PartEntry(
            code=r.code,
            name=r.name,
            aliases=tuple(r.aliases or ()),
            unit=r.unit,
            stock=tuple(stock.get(r.id, ())),
        )
        for r in rows
    ]


async def fingerprint(conn: AsyncConnection) -> tuple[int, str]:
    """(count, newest change) of the catalog: an import changes it (it touches every part it
    names, stock included)."""
    row = (await conn.execute(select(func.count(), func.max(P.c.updated_at)))).one()
    return int(row[0]), str(row[1])


async def upsert(conn: AsyncConnection, parts: Sequence[PartRow], now: datetime) -> PartsImported:
    """Write checked rows (``bot.part_files`` checked them) in the caller's transaction: each
    part matched by code without regard to case, its name, aliases and unit replaced, and the
    stock of each store the file names set (or removed when the cell was empty); other stores'
    stock is left as it was, so each store may import its own sheet."""
    wanted = sorted({p.code.lower() for p in parts})
    stmt = select(P.c.code, P.c.id).where(
        func.lower(P.c.code).in_(bindparam("codes", expanding=True))
    )
    ids = {code.lower(): i for code, i in await conn.execute(stmt, {"codes": wanted})}
    existing = len(ids)
    stores: set[str] = set()
    for p in parts:
        values: dict[str, Any] = {"code": p.code, "name": p.name, "aliases": list(p.aliases),
                                  "unit": p.unit, "updated_at": now}  # fmt: skip
        key = p.code.lower()
        if key in ids:
            await conn.execute(P.update().where(P.c.id == ids[key]).values(**values))
        else:
            insert = P.insert().values(created_at=now, **values).returning(P.c.id)
            ids[key] = (await conn.execute(insert)).scalar_one()
        if not p.stock:
            continue
        stores.update(p.stock)
        part_id = ids[key]
        named = K.c.store.in_(bindparam("stores", expanding=True))
        await conn.execute(
            K.delete().where(K.c.part_id == part_id, named), {"stores": list(p.stock)}
        )
        held = [{"part_id": part_id, "store": s, "qty": q} for s, q in p.stock.items()
                if q is not None]  # fmt: skip
        if held:
            await conn.execute(K.insert(), held)
    return PartsImported(new=len(parts) - existing, updated=existing, stores=len(stores))
