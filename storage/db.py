"""Engines, sessions, the write gate and migrations.

SQLite (the embedded default) runs in WAL mode with a busy timeout so the web process, the
outbox sender and the CLI can share one file; PostgreSQL runs through asyncpg.

SQLite has one write lock per file. Inside the process, writers queue for it at the
``WriteGate`` — in the event loop, first come first served, with an urgent lane that the intake
uses — instead of in SQLite's busy handler, whose sleeps (1, 2, 5 … 100 ms) would let the
intake's commits keep missing the short gaps between the engine's and the outbox's
transactions. The busy timeout still covers other processes (the CLI).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage import sqlite_driver

__all__ = [
    "Database",
    "WriteGate",
    "insert_stmt",
    "json_dumps",
    "json_loads",
    "migrate",
    "migrate_async",
    "opened",
]

_MIGRATIONS = Path(__file__).parent / "migrations"


_LONG_NUMBER = re.compile(r"\d{19}")


def json_dumps(value: Any) -> str:
    """A JSON column's text: orjson (several times faster than ``json``: every card, feed row
    and event is a JSON column), else ``json`` for what orjson refuses (an integer beyond 64
    bits, a lone surrogate), so that nothing the old serializer stored is refused now."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def json_loads(text: str | bytes) -> Any:
    """A JSON column's value (``json`` where a number may be beyond 64 bits, which orjson would
    read as a float, or where orjson refuses what ``json`` wrote: NaN)."""
    if _LONG_NUMBER.search(text if isinstance(text, str) else text.decode()):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see ``_begin``)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _begin_immediate(conn: Any) -> None:
    # Writers take SQLite's write lock up front: a deferred transaction that reads and then
    # writes can fail with SQLITE_BUSY without waiting, where this one waits (busy_timeout).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _begin_deferred(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN")


def insert_stmt(conn: Any, table: Any) -> Any:
    """``INSERT`` in the dialect of ``conn`` (a connection or session), for ``ON CONFLICT``."""
    bind = conn.get_bind() if isinstance(conn, AsyncSession) else conn
    pg = bind.dialect.name == "postgresql"
    return (postgresql.insert if pg else sqlite.insert)(table)


class WriteGate:
    """One writer at a time in this process; an urgent waiter goes before every normal one.

    The gate is handed over directly on release (to the first urgent waiter, else the first
    normal one), so a waiter that was passed the gate cannot lose it to a newcomer.
    """

    def __init__(self) -> None:
        self._held = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    @property
    def urgent_waiting(self) -> bool:
        return any(not f.done() for f in self._urgent)

    async def acquire(self, *, urgent: bool = False) -> None:
        if not self._held and not self._urgent and (urgent or not self._normal):
            self._held = True
            return
        waiter = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # it was handed to us as we were cancelled: pass it on
            else:
                queue.remove(waiter)
            raise

    def release(self) -> None:
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the gate stays held: it is theirs now
                    return
        self._held = False

    @asynccontextmanager
    async def hold(self, *, urgent: bool = False) -> AsyncIterator[None]:
        await self.acquire(urgent=urgent)
        try:
            yield
        finally:
            self.release()


class Database:
    """Engines and session factories: ``transaction()`` / ``begin()`` for writes, ``read()``
    for reads. On SQLite every write transaction of this process passes the ``gate``."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {
            "echo": echo,
            "json_serializer": json_dumps,
            "json_deserializer": json_loads,
        }
        if not self.is_sqlite:
            kwargs.update(pool_size=10, max_overflow=10, pool_pre_ping=True)
        else:
            # Every transaction here ends in a commit or a rollback of its own: no reset on
            # return to the pool (a rollback round trip to the driver's thread each time).
            kwargs.update(pool_reset_on_return=None)
        inline = dict(kwargs)
        if url.startswith("sqlite+aiosqlite"):  # one trip to its thread per statement …
            kwargs.update(module=sqlite_driver.dbapi())
            # … or none: writes (BEGIN excepted) and units' reads run in the loop's thread
            inline = {**kwargs, "connect_args": {sqlite_driver.INLINE: True}}
        self.engine: AsyncEngine = create_async_engine(url, **inline)
        self.read_engine: AsyncEngine = self.engine
        self.unit_read_engine: AsyncEngine = self.engine
        self.quick_engine: AsyncEngine = self.engine
        if self.is_sqlite:
            self.read_engine = create_async_engine(url, **kwargs)
            # Reads statement by statement (no BEGIN: the driver is in autocommit); the
            # quick ones (a unit's, a sign-in's: by key, a few rows) in the loop's thread.
            self.unit_read_engine = create_async_engine(url, **kwargs)
            self.quick_engine = create_async_engine(url, **inline)
            for eng, begin in (
                (self.engine, _begin_immediate),
                (self.read_engine, _begin_deferred),
                (self.unit_read_engine, None),
                (self.quick_engine, None),
            ):
                event.listen(eng.sync_engine, "connect", _sqlite_pragmas)
                if begin is not None:
                    event.listen(eng.sync_engine, "begin", begin)
        self.intake_engine: AsyncEngine = self.engine
        if not self.is_sqlite:
            # The intake's one statement a commit, in autocommit: the INSERT is its own
            # transaction, durable when it returns, with no BEGIN, COMMIT or ping trip before
            # the answer (a connection found dead is the caller's to try again).
            self.intake_engine = create_async_engine(
                url,
                **{**kwargs, "pool_size": 2, "max_overflow": 4, "pool_pre_ping": False},
                isolation_level="AUTOCOMMIT",
            )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self.gate = WriteGate()

    @asynccontextmanager
    async def _gated(self, urgent: bool) -> AsyncIterator[None]:
        if not self.is_sqlite:
            yield
            return
        async with self.gate.hold(urgent=urgent):
            yield

    @asynccontextmanager
    async def transaction(self, *, urgent: bool = False) -> AsyncIterator[AsyncSession]:
        """A session inside one write transaction: committed on success, rolled back on error."""
        async with self._gated(urgent), self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def begin(self, *, urgent: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection inside one write transaction (Core statements, no ORM session)."""
        async with self._gated(urgent), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def store(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one statement that is stored when it returns (the intake's
        insert): on SQLite a write transaction in the gate's urgent lane; on PostgreSQL the
        statement is its own transaction (autocommit: one trip to the server, not four)."""
        if self.is_sqlite:
            async with self.begin(urgent=True) as conn:
                yield conn
            return
        async with self.intake_engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[AsyncConnection]:
        """A connection whose statements each read on their own (no transaction held: a
        unit of work that decides between its reads and its write)."""
        async with self.unit_read_engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def quick(self) -> AsyncIterator[AsyncConnection]:
        """As ``reads``, for reads by key of a few rows (a unit of work's, a sign-in's): on
        SQLite they run in the event loop's thread, which a trip to the driver's costs more
        than. Scans (dashboards, reports, exports) use ``reads``."""
        async with self.quick_engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading (on SQLite it does not take the write lock)."""
        async with self.read_sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        for eng in {
            self.engine, self.read_engine, self.unit_read_engine, self.quick_engine,
            self.intake_engine,
        }:  # fmt: skip
            await eng.dispose()


def _alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` (blocking; call from a thread inside an event loop)."""
    command.upgrade(_alembic_config(url), revision)


async def migrate_async(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(migrate, url, revision)


@asynccontextmanager
async def opened(url: str, *, migrated: bool = False) -> AsyncIterator[Database]:
    """The database at ``url`` for one command (migrated first if ``migrated``), its
    connections closed when the block ends however it ends."""
    if migrated:
        await migrate_async(url)
    db = Database(url)
    try:
        yield db
    finally:
        await db.dispose()
