"""The one-trip SQLite driver (storage/sqlite_driver.py): what SQLAlchemy reads of a cursor
is all there, errors are SQLAlchemy's, a statement is one trip to aiosqlite's thread or, inline,
none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import exc, text

from storage.db import Database


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield db
    await db.dispose()


async def test_rows_counts_and_new_ids_come_back(sqlite: Database) -> None:
    async with sqlite.engine.begin() as conn:
        first = await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert first.lastrowid == 1
        many = await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}])
        assert many.rowcount == 2
        changed = await conn.execute(text("UPDATE t SET v = v || '!' WHERE id >= 2"))
        assert changed.rowcount == 2
        rows = await conn.execute(text("SELECT id, v FROM t ORDER BY id"))
        assert list(rows.keys()) == ["id", "v"]
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!")]
        none = await conn.execute(text("SELECT id FROM t WHERE v = 'z'"))
        assert none.first() is None


async def test_a_failed_statement_raises_sqlalchemy_s_error_and_rolls_back(
    sqlite: Database,
) -> None:
    with pytest.raises(exc.IntegrityError):
        async with sqlite.engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
            await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
    async with sqlite.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The trips to aiosqlite's thread from now on, by what each ran."""
    trips: list[str] = []
    real = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(getattr(fn, "__name__", repr(fn)))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return trips


async def test_a_statement_is_one_trip_to_the_driver_s_thread(
    sqlite: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sqlite.read_engine.connect() as conn:  # (reads that may scan: in the thread)
        await conn.execute(text("SELECT 1"))  # (the connection is open and set up)
        trips = _counting(monkeypatch)
        await conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
        assert (await conn.execute(text("SELECT v FROM t"))).scalar() == "x"
        assert trips == ["_run", "_run"]
        await conn.rollback()


async def test_inline_statements_take_no_trip_but_what_may_wait_does(
    sqlite: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's writes and quick reads run in the loop's thread; BEGIN IMMEDIATE (it may wait
    for another process's lock) and the commit go to the driver's thread."""
    async with sqlite.quick() as conn:
        await conn.execute(text("SELECT 1"))
        trips = _counting(monkeypatch)
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    assert trips == []  # (nor did giving it back: no transaction to roll back)
    async with sqlite.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))  # (open; this began a transaction: BEGIN)
        await conn.commit()
        del trips[:]
        await conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
        await conn.execute(text("UPDATE t SET v = 'y' WHERE v = 'x'"))
        assert trips == ["_run"]  # BEGIN IMMEDIATE; the two statements took none
        await conn.commit()
        assert trips[1:] == ["commit"]
    async with sqlite.quick() as conn:  # another connection sees what was committed
        assert (await conn.execute(text("SELECT v FROM t"))).scalar() == "y"
