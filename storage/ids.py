"""Primary keys handed out before rows are written, so that everything pointing at a new row
can be decided before the unit of work writes it (``storage.unit.Store.new_id``)."""

from __future__ import annotations

from typing import ClassVar

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.models import TABLES

__all__ = ["Ids"]


class Ids:
    """Primary keys handed out before rows are written (one per database, for all units).

    SQLite: one process writes the file, so the largest ids are read once and counted on in
    memory (read again after a failed write, in case rows came from elsewhere). PostgreSQL:
    ticket numbers come from the sequence as a unit needs them (``reserve``: one trip for a
    batch of reports; what a unit leaves unused goes to the next, so they stay close to
    gapless); other tables' ids from blocks taken from their sequences (a gap costs nothing
    there).
    """

    TABLES = ("people", "tickets", "card_refs", "voice_notes")
    BLOCK = 64
    BLOCKS: ClassVar[dict[str, int]] = {"card_refs": 256}  # a new ticket has three or four cards

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._blocks: dict[str, list[int]] = {}

    async def seed(self, conn: AsyncConnection) -> None:
        """Read the largest ids (SQLite) or take the first blocks (PostgreSQL) now, at
        start-up, rather than in the first units."""
        if conn.dialect.name == "postgresql":
            for table in self.TABLES:
                if table != "tickets" and not self._blocks.get(table):
                    self._blocks[table] = await self._block(conn, table)
        elif not self._next:
            await self._largest(conn)

    async def _block(self, conn: AsyncConnection, table: str, n: int = 0) -> list[int]:
        stmt = text(
            f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :n)"
        )
        n = n or self.BLOCKS.get(table, self.BLOCK)
        found = sorted((i for (i,) in await conn.execute(stmt, {"n": n})), reverse=True)
        return list(found)  # (taken from the end: lowest first)

    async def reserve(self, conn: AsyncConnection, table: str, n: int) -> None:
        """PostgreSQL: make sure the next ``n`` ids of ``table`` are in hand, taken in one trip
        (a unit about to decide ``n`` reports would otherwise fetch each ticket number alone,
        a round trip each while it holds its transaction). What a unit leaves unused goes to
        the next unit of this process, so numbers stay close to gapless."""
        if n <= 0 or conn.dialect.name != "postgresql":
            return
        block = self._blocks.setdefault(table, [])
        if len(block) < n:
            block += await self._block(conn, table, n - len(block))
            block.sort(reverse=True)  # (another unit may have added meanwhile: lowest first)

    async def _largest(self, conn: AsyncConnection) -> None:
        maxima = select(
            *(
                select(func.coalesce(func.max(TABLES[t].c.id), 0)).scalar_subquery()
                for t in self.TABLES
            )
        )
        row = (await conn.execute(maxima)).one()
        self._next = dict(zip(self.TABLES, row, strict=True))

    def forget(self) -> None:
        """Read the largest ids again before the next one (a write failed)."""
        self._next.clear()

    async def take(self, conn: AsyncConnection, table: str) -> int:
        if conn.dialect.name == "postgresql":
            if table == "tickets" and not self._blocks.get(table):  # none reserved: one alone
                stmt = text("SELECT nextval(pg_get_serial_sequence('tickets', 'id'))")
                return int((await conn.execute(stmt)).scalar_one())
            block = self._blocks.get(table)
            if not block:
                block = self._blocks[table] = await self._block(conn, table)
            return block.pop()
        if not self._next:
            await self._largest(conn)
        self._next[table] += 1
        return self._next[table]
