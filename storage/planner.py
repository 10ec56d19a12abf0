"""Planner statistics (PostgreSQL): tables that changed a lot are analysed without waiting.

Autovacuum analyses a table once a tenth of it changed, but it looks only every
``autovacuum_naptime`` (a minute by default). A table that grew from nothing within that minute
— a new deployment's first burst, or a flood — is planned as if it were almost empty: the
repeat check's "ten newest tickets at this site" then reads and sorts every ticket of the site
(a bitmap scan) instead of stopping after ten on its index, and the cost of each report grows
with the number before it. The hub calls ``refresh_statistics`` every few seconds; one node at
a time does the work.

These analyses are **quick ones**: a sample of ``300 × QUICK_TARGET`` rows instead of the
server's 30,000 (``default_statistics_target`` 100) tells the planner a table's size and rough
spread, which is what a table that grew fast lacks, for a tenth of the work: after a burst of
10,000 reports, analysing its six tables took about 1 s of PostgreSQL's time in full and 0.15 s
this way, and a burst from nothing asks for that every few thousand rows. The finer statistics
stay autovacuum's: its threshold (a tenth of a table) is below this one, so in steady use it
analyses first, in full.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.tickets import single_node

__all__ = ["QUICK_TARGET", "STALE_ROWS", "STALE_SHARE", "refresh_statistics"]

#: A table is analysed again once more rows than ``STALE_ROWS + STALE_SHARE × its rows``
#: changed since its last ANALYZE (autovacuum's default: 50 + 0.1 ×, each minute at most).
STALE_ROWS, STALE_SHARE = 1000, 0.2
#: The statistics target of these analyses (``default_statistics_target`` for the transaction).
QUICK_TARGET = 10

_STALE = text(
    "SELECT relname FROM pg_stat_user_tables"
    " WHERE schemaname = current_schema()"
    " AND n_mod_since_analyze > :rows + :share * greatest(n_live_tup, 0)"
    " ORDER BY relname"
)


async def refresh_statistics(conn: AsyncConnection) -> list[str]:
    """ANALYZE the tables of this schema that changed much since they were last analysed, in
    the caller's transaction (ANALYZE blocks no reads or writes); their names. Nothing on
    SQLite, nor while another node is doing it."""
    if conn.dialect.name != "postgresql" or not await single_node(conn, "planner-statistics"):
        return []
    rows = await conn.execute(_STALE, {"rows": STALE_ROWS, "share": STALE_SHARE})
    stale = [str(name) for (name,) in rows]
    if stale:  # (for this transaction only)
        await conn.execute(text(f"SET LOCAL default_statistics_target = {QUICK_TARGET}"))
    for name in stale:
        quoted = conn.dialect.identifier_preparer.quote(name)
        await conn.execute(text(f"ANALYZE {quoted}"))
    return stale
