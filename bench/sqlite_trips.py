#!/usr/bin/env python
"""SQLite statements through SQLAlchemy's stock aiosqlite adapter vs. Gongdan's one-trip driver.

Both engines open the same WAL file with the hub's pragmas; each round runs the same indexed
read (10 rows) and the same one-row UPDATE ``--statements`` times on each engine, alternating,
and reports the wall and CPU time (both threads: ``time.process_time``) per statement. Medians
over ``--rounds``. See bench/README.md for the figures on the reference machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage import sqlite_driver


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _engine(url: str, one_trip: bool, inline: bool = False) -> AsyncEngine:
    kwargs: dict[str, Any] = {"pool_reset_on_return": None}
    if one_trip:
        kwargs["module"] = sqlite_driver.dbapi()
    if inline:
        kwargs["connect_args"] = {sqlite_driver.INLINE: True}
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _pragmas)
    return engine


async def _round(engine: AsyncEngine, n: int) -> tuple[float, float]:
    read = text("SELECT id, v FROM t WHERE id BETWEEN :a AND :a + 9 ORDER BY id")
    write = text("UPDATE t SET v = :v WHERE id = :id")
    async with engine.connect() as conn:
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            (await conn.execute(read, {"a": i % 900})).all()
            await conn.execute(write, {"v": f"v{i}", "id": i % 1000 + 1})
        await conn.commit()
        return (
            (time.perf_counter() - wall) / (2 * n) * 1e6,
            (time.process_time() - cpu) / (2 * n) * 1e6,
        )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'trips.db'}"
        setup = _engine(url, one_trip=False)
        async with setup.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            await conn.execute(
                text("INSERT INTO t (v) VALUES (:v)"), [{"v": str(i)} for i in range(1000)]
            )
        await setup.dispose()
        engines = {
            "stock": _engine(url, False),
            "one trip": _engine(url, True),
            "inline": _engine(url, True, inline=True),
        }
        figures: dict[str, list[tuple[float, float]]] = {k: [] for k in engines}
        for _ in range(args.rounds):
            for name, engine in engines.items():
                figures[name].append(await _round(engine, args.statements))
        for engine in engines.values():
            await engine.dispose()
    print(f"{'adapter':<10} {'wall µs/stmt':>13} {'cpu µs/stmt':>12}  (medians of {args.rounds})")
    for name, runs in figures.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:<10} {wall:>13.0f} {cpu:>12.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--statements", type=int, default=2000, help="reads and writes each")
    asyncio.run(main(parser.parse_args()))
