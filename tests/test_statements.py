"""What one event costs the database: statements and write transactions, counted.

A web chat report becomes a ticket with its replies (the customer's acknowledgement and card,
the engineer's and the team's cards) in at most 15 SQL statements and 3 write transactions, a
press moves its ticket in at most 13 statements and 2 write transactions —
everything from the intake's commit to the replies being readable, counted on the hub's own
connections. Periodic jobs are paused so that only the event's own work is counted; the test
watches for the replies on a connection of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event, select

from bot.engine import WriteCost
from storage.db import Database
from storage.models import Ticket, WebchatFeed
from tests.conftest import RunningHub, eventually
from tests.test_webchat_flow import customer, press, report, staff

Start = Callable[..., Awaitable[RunningHub]]


@dataclass
class Count:
    statements: list[str] = field(default_factory=list)
    writing: set[int] = field(default_factory=set)  # transactions that wrote

    @property
    def write_transactions(self) -> int:
        return len(self.writing)


_DML = ("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE")  # (SQLite takes its write lock)


@contextmanager
def counting(db: Database) -> Iterator[Count]:
    """Every statement on the hub's connections (reads and writes), and every transaction
    that wrote (or, on SQLite, took the write lock), while the block runs."""
    count = Count()
    transactions = iter(range(1_000_000))
    current: dict[int, int] = {}

    def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        text = " ".join(sql.split())
        count.statements.append(text[:80])
        if text.upper().startswith(_DML) and id(conn) in current:
            count.writing.add(current[id(conn)])

    def alone(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        """PostgreSQL's intake runs in autocommit: each statement is its own transaction."""
        statement(conn, cursor, sql)
        count.writing.add(next(transactions))

    def begin(conn: Any) -> None:
        current[id(conn)] = next(transactions)

    engines = {
        e.sync_engine: statement
        for e in (db.engine, db.read_engine, db.unit_read_engine, db.quick_engine)
    }
    if db.intake_engine is not db.engine:
        engines[db.intake_engine.sync_engine] = alone
    for eng, listener in engines.items():
        event.listen(eng, "before_cursor_execute", listener)
    event.listen(db.engine.sync_engine, "begin", begin)
    try:
        yield count
    finally:
        for eng, listener in engines.items():
            event.remove(eng, "before_cursor_execute", listener)
        event.remove(db.engine.sync_engine, "begin", begin)


async def _quiet(hub: RunningHub) -> None:
    """No periodic job runs while we count (the SLA sweep, the outbox heartbeat, the
    auto-close sweep), none submitted before the pause is still running, and the start-up
    work is over."""
    scheduler = hub.hub.scheduler
    scheduler.pause()
    running = [f for ex in scheduler._executors.values() for f in ex._pending_futures]
    await asyncio.gather(*running, return_exceptions=True)
    await hub.hub.idle()


async def test_a_new_ticket_with_its_replies_costs_15_statements_in_3_transactions(
    running: Start, db_url: str
) -> None:
    hub = await running()
    await _quiet(hub)
    watcher = Database(db_url)
    try:
        session = await customer(hub)
        for i, text in enumerate(["3号注塑机停机了，报警E102，在二车间", "冷却塔水泵漏水了"]):
            with counting(hub.hub.db) as count:
                await report(hub, session, text)

                async def replied(n: int = i + 1) -> bool:
                    async with watcher.read() as s:
                        numbers = (await s.scalars(select(Ticket.number))).all()
                        feed = (await s.scalars(select(WebchatFeed.payload))).all()
                    if len(numbers) < n:
                        return False
                    cards = [p for p in feed if str(p.get("title", "")).startswith(f"GD-{n} ")]
                    acks = [p for p in feed if f"GD-{n}" in str(p.get("text", ""))]
                    return len(cards) >= 3 and len(acks) == 1  # customer, engineer, team

                await eventually(replied, what=f"ticket {i + 1} and its replies")
                await hub.hub.idle()
            first = "a new customer" if i == 0 else "a known customer"
            # (The intake's commit 3; the unit's claim 1, the site's recent tickets for repeat
            # reports 1, routing's one read of every engineer's newest tickets and open load
            # 1, the write 9 — on SQLite its BEGIN is counted. The engine looks for more only
            # when something may be waiting: on SQLite, when its claim was full or it was
            # woken since.)
            assert len(count.statements) <= 15, "\n".join([first, *count.statements])
            assert count.write_transactions <= 3, (first, count.write_transactions)
    finally:
        await watcher.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # (PostgreSQL: full batches)
async def test_a_unit_of_one_event_looks_no_further_when_nothing_waits(
    running: Start, db_url: str
) -> None:
    """On a slow or loaded machine the write-cost line sizes SQLite's units at one event. A
    unit that took the only event waiting must not look again for more (it failed this way
    under load: a 16th statement)."""
    hub = await running()
    await _quiet(hub)
    hub.hub.engine._cost = WriteCost(fixed=0.009, per_event=0.05)
    assert hub.hub.engine._batch_size() == 1
    session = await customer(hub)
    with counting(hub.hub.db) as count:
        await report(hub, session, "3号注塑机停机了，报警E102，在二车间")

        async def ticket() -> bool:
            async with hub.hub.db.read() as s:
                return (await s.scalar(select(Ticket.number))) is not None

        await eventually(ticket, what="the ticket")
        await hub.hub.idle()
    claims = [
        s for s in count.statements if s.startswith(("SELECT inbound_events.id", "WITH picked"))
    ]
    assert len(claims) == 1, "\n".join(count.statements)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # (PostgreSQL: full batches)
async def test_a_backlog_drains_in_larger_units_while_no_answer_waits(
    running: Start, db_url: str
) -> None:
    """SQLite: a unit's write holds the lock that every answer waits for, so while events
    keep coming units are sized to a short write; once the intake has been quiet a moment,
    a backlog drains in larger units (each pays its reads, BEGIN and COMMIT once)."""
    hub = await running()
    engine, inbox = hub.hub.engine, hub.hub.inbox
    engine._cost = WriteCost(fixed=0.002, per_event=0.0005)  # 10 ms: about 16 events
    inbox._last_event = time.monotonic()  # an event came in just now
    busy = engine._batch_size()
    inbox._last_event = time.monotonic() - 1.0  # the last one a second ago
    quiet = engine._batch_size()
    assert 14 <= busy <= 16 and quiet == engine.batch == 64, (busy, quiet)


async def test_a_button_press_costs_a_handful_of_statements(running: Start, db_url: str) -> None:
    hub = await running()
    await _quiet(hub)
    watcher = Database(db_url)
    try:
        session, li = await customer(hub), await staff(hub, "li")
        await report(hub, session, "3号注塑机停机了，报警E102，在二车间")

        async def card() -> dict[str, Any] | None:
            async with watcher.read() as s:
                rows = (
                    await s.scalars(select(WebchatFeed).where(WebchatFeed.conversation == "li"))
                ).all()
            return rows[-1].payload if rows else None

        token = next(
            b["token"] for b in (await eventually(card))["buttons"] if b["action"] == "accept"
        )
        await hub.hub.idle()
        with counting(hub.hub.db) as count:
            await press(hub, li, token)

            async def accepted() -> bool:
                async with watcher.read() as s:
                    return (await s.scalar(select(Ticket.state))) == "accepted"

            await eventually(accepted, what="the ticket accepted")
            await hub.hub.idle()
        # The presser's sign-in 1 (a staff session is checked on every request, so that a
        # sign-out or password change ends it at once), intake 2, the unit's reads 4, its
        # write 6; on PostgreSQL no BEGIN is counted, but the engine looks for more: 13.
        assert len(count.statements) <= 13, "\n".join(count.statements)
        assert count.write_transactions <= 2, count.write_transactions
    finally:
        await watcher.dispose()
