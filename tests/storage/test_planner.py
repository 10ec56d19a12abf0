"""PostgreSQL: a table that changed a lot is analysed without waiting for autovacuum, so the
planner plans it by its real size (storage/planner.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from storage.db import Database
from storage.planner import QUICK_TARGET, STALE_ROWS, refresh_statistics
from tests.conftest import eventually

ROWS = STALE_ROWS + 500


async def _changed(db: Database, table: str) -> int:
    async with db.engine.connect() as conn:
        got = await conn.execute(
            text("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = :t"),
            {"t": table},
        )
        return int(got.scalar() or 0)


async def _known_rows(db: Database, table: str) -> float:
    async with db.engine.connect() as conn:
        got = await conn.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}
        )
        return float(got.scalar_one())


async def test_a_table_that_grew_is_analysed_and_a_quiet_one_is_not(db: Database) -> None:
    if db.is_sqlite:
        async with db.begin() as conn:
            assert await refresh_statistics(conn) == []  # (SQLite: nothing to do)
        return
    async with db.begin() as conn:  # (autovacuum kept out of the way of the count)
        await conn.execute(text("ALTER TABLE people SET (autovacuum_enabled = false)"))
        await conn.execute(
            text(
                "INSERT INTO people (key, name, role, skills, max_open, active, created_at)"
                " SELECT 'p' || g, 'p' || g, 'customer', '[]', 5, true, now()"
                " FROM generate_series(1, :n) g"
            ),
            {"n": ROWS},
        )
    assert await _known_rows(db, "people") < ROWS  # the planner does not know yet

    async def counted() -> bool:  # (statistics reach the counters within a second or so)
        return await _changed(db, "people") >= ROWS

    await eventually(counted, what="the inserts counted")
    async with db.begin() as conn:
        analysed = await refresh_statistics(conn)
    assert "people" in analysed and "tickets" not in analysed
    assert await _known_rows(db, "people") == pytest.approx(ROWS, rel=0.05)
    async with db.engine.connect() as conn:  # a quick analysis: a coarse histogram …
        bounds = await conn.execute(
            text(
                "SELECT array_length(histogram_bounds, 1) FROM pg_stats"
                " WHERE tablename = 'people' AND attname = 'key'"
            )
        )
        assert bounds.scalar_one() <= QUICK_TARGET + 1
        # … in its own transaction only
        target = await conn.execute(text("SHOW default_statistics_target"))
        assert int(target.scalar_one()) > QUICK_TARGET
    async with db.begin() as conn:
        assert "people" not in await refresh_statistics(conn)  # analysed once, not again
