"""SQLite through aiosqlite with one trip to its thread per statement.

SQLAlchemy's aiosqlite adapter makes a statement four trips to aiosqlite's thread: open a
cursor, execute, fetch the rows, close the cursor. Each trip is a queue put, a thread switch
and a wake-up of the event loop, and on this workload a trip costs more than SQLite's own
work: one trip per statement halves the time and the CPU a statement costs
(``bench/sqlite_trips.py`` measures both side by side; figures in bench/README.md). Here a
statement's whole life — cursor, execute, rows, close — is one function run in aiosqlite's
thread; everything else (connections, commits, server-side cursors, errors) is SQLAlchemy's
adapter unchanged.

Used by passing ``module=dbapi()`` to ``create_async_engine`` for ``sqlite+aiosqlite`` URLs
(storage/db.py); SQLAlchemy then builds its own aiosqlite dialect around this module.

**Inline** (``connect_args={INLINE: True}``): a statement runs in the calling thread — the
event loop's — with no trip at all, which halves a short statement's cost again (97 against
187 µs in ``bench/sqlite_trips.py``). That holds the loop while SQLite works, so it is for
statements that neither wait nor scan: the hub's write transactions (one writer at a time in
this process; inside a transaction that holds the write lock nothing waits for a lock) and a
unit's reads by key. What may wait stays in the thread: ``BEGIN IMMEDIATE`` (another process
may hold the lock: up to the busy timeout), and commits and rollbacks (SQLAlchemy's adapter
sends those to the thread itself). Scans use an engine without it. After each inline
statement the loop runs what else is ready (``sleep(0)``), as it did while a trip was under
way: without that, a unit's reads and writes held the loop from end to end, and the intake's
answers waited (p99 at 1,000 reports/s: 249 ms against 149 with trips, 117 with the yield;
bench/README.md).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Sequence
from threading import Thread
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

__all__ = ["INLINE", "dbapi"]

#: ``connect_args={INLINE: True}``: run statements in the event loop's thread (see the module).
INLINE = "gongdan_inline"

#: (description, rowcount, lastrowid, rows) of one statement, read in the driver's thread.
_Result = tuple[Any, int, int | None, list[Any]]


def _run(conn: aiosqlite.Connection, sql: str, params: Any, many: bool) -> _Result:
    """One statement, start to finish, in aiosqlite's thread."""
    cursor = conn._conn.cursor()  # (the sqlite3 connection: only touched in its thread)
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, () if params is None else params)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor that holds its results: no driver cursor outlives a statement."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return  # nothing is open: the rows are already here

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._one_trip(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        try:
            return await_(self._one_trip(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _one_trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapt, conn = self._adapt_connection, self._connection
        if getattr(adapt, "_inline", False) and not _waits(operation):
            result = _run(conn, operation, parameters, many)  # type: ignore[arg-type]  # (here)
            await asyncio.sleep(0)  # (what else is ready runs between statements, as it would)
        else:
            async with adapt._execute_mutex:
                result = await conn._execute(_run, conn, operation, parameters, many)
        self._description, self._rowcount, self._lastrowid, rows = result
        self._rows = deque(rows)


def _waits(sql: str) -> bool:
    """Whether a statement may wait for SQLite's write lock (held by another process: up to
    the busy timeout): a ``BEGIN IMMEDIATE`` does, the statements inside a transaction that
    holds the lock do not."""
    return sql.lstrip()[:5].upper() == "BEGIN"


class _Connection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("_inline",)
    _cursor_cls = _Cursor  # type: ignore[assignment]  # (a subclass; the stub says exact)
    _inline: bool  # statements run in the calling (event loop's) thread

    def rollback(self) -> None:
        if not self._idle():
            super().rollback()

    def commit(self) -> None:
        if not self._idle():
            super().commit()

    def _idle(self) -> bool:
        """An inline connection with no transaction open (one that only read, in autocommit):
        a commit or rollback would be a trip to the thread to do nothing."""
        raw = self._connection._connection if self._inline else None
        return raw is not None and not raw.in_transaction


class _Dbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        creator_fn = kw.pop("async_creator_fn", None)
        inline = bool(kw.pop(INLINE, False))
        if inline:  # (used from the event loop's thread too, one statement at a time)
            kw["check_same_thread"] = False
        connection = creator_fn(*arg, **kw) if creator_fn else self.aiosqlite.connect(*arg, **kw)
        if isinstance(connection, Thread):  # (aiosqlite before 0.22: the connection is one)
            connection.daemon = True
        else:
            connection._thread.daemon = True
        adapted = _Connection(self, await_(connection))
        adapted._inline = inline
        return adapted


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The module to give ``create_async_engine(..., module=…)`` for a SQLite URL."""
    return _Dbapi(aiosqlite, sqlite3)
