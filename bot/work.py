"""Running units of work: read, decide, then one write — and delivery.

``Work.unit()`` gives the caller a ``Unit`` to read and decide in, and on leaving turns what
the flows decided into rows — an outbox row per message, or, for a platform whose delivery is a
table of our own (the web chat's feed), that table's row, which makes such a reply visible
exactly when the change it reports commits — and writes all of it in one transaction. The
engine, the SLA sweep and the hub's jobs all change tickets this way.

- PostgreSQL: the unit is one transaction; what it will change is locked as it is read
  (``FOR UPDATE``), so units on other workers wait for it or skip it.
- SQLite: the file has one write lock, and answering a platform waits on the intake's commit,
  which needs it. So a unit reads and decides on a read connection, holding no lock, and takes
  the write lock only for its write — milliseconds, however long deciding took. Units of this
  process take turns (one decides at a time), so none decides on rows another is about to
  change; the compare-and-set on what it writes catches anything else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.adapters.base import Adapter, Capability
from bot.env import Env
from bot.events import outbound_to_json
from bot.unit import Unit
from storage import evidence
from storage.db import Database
from storage.ids import Ids
from storage.models import utcnow
from storage.records import FeedEntry, OutboxEntry
from storage.unit import Changes, Store

__all__ = ["Tx", "Work"]

log = logging.getLogger(__name__)

Hook = Callable[[AsyncConnection], Awaitable[None]]


@dataclass
class Tx:
    """A unit of work with its store (for statements of the caller's own, like claims)."""

    unit: Unit
    store: Store
    feed: list[FeedEntry] = field(default_factory=list)  # extra rows (a web user's message)
    local: set[Adapter] = field(default_factory=set)  # adapters whose table those went to
    before_write: list[Hook] = field(default_factory=list)  # run first in the write
    people: list[Any] = field(default_factory=list)  # new people (``records.Person``)
    identities: list[dict[str, Any]] = field(default_factory=list)  # and their identities
    met: dict[tuple[str, str], Any] = field(default_factory=dict)  # them, by chat identity
    idle: bool = False  # the caller found nothing to do: SQLite skips the write


class Work:
    def __init__(
        self,
        db: Database,
        env: Env,
        adapters: Mapping[str, Adapter],
        *,
        clock: Callable[[], datetime] = utcnow,
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.env = env
        self.adapters = adapters
        self.clock = clock
        self.on_outbox = on_outbox
        self.ids = Ids()
        self._turns = asyncio.Lock()  # SQLite: one unit reads and decides at a time
        self.last_write = 0.0  # seconds the last unit's write took (SQLite: the lock held)

    @asynccontextmanager
    async def unit(self, *, now: datetime | None = None, urgent: bool = False) -> AsyncIterator[Tx]:
        """A unit of work; its decisions are written when the block ends (nothing is written
        if it raises)."""
        if self.db.is_sqlite:
            async with self._turns:
                async with self.db.quick() as conn:
                    store = Store(conn, self.ids)
                    tx = Tx(Unit(self.env, store, now or self.clock()), store)
                    yield tx
                if tx.idle:
                    return  # it found nothing to do: no write, no write lock
                started = time.perf_counter()
                async with self.db.begin(urgent=urgent) as conn:
                    store.conn = conn
                    local = await self._write(tx)
                self.last_write = time.perf_counter() - started
                self._committed(tx)
        else:
            async with self.db.begin(urgent=urgent) as conn:
                store = Store(conn, self.ids)
                tx = Tx(Unit(self.env, store, now or self.clock()), store)
                yield tx
                local = await self._write(tx)
            self._committed(tx)
        for adapter in local:
            adapter.delivered()

    async def _write(self, tx: Tx) -> set[Adapter]:
        try:
            for hook in tx.before_write:
                await hook(tx.store.conn)
            changes, local = self.changes(tx)
            await tx.store.write(changes)
            for statement in tx.unit.statements:
                await statement(tx.store.conn)
            await evidence.insert(tx.store.conn, tx.unit.photos)  # (after their tickets)
        except Exception:
            self.ids.forget()  # rows may have come from elsewhere: count ids afresh
            raise
        if changes.outbox:
            self.on_outbox()
        return local

    def _committed(self, tx: Tx) -> None:
        """What a unit made that others may rely on only once it is stored."""
        for person, identity in zip(tx.people, tx.identities, strict=True):
            self.env.customers.add(identity["platform"], identity["external_id"], person)
        if self.env.similar is not None:  # cases resolved, closed or reopened here
            self.env.similar.observe(tx.unit.tickets.values())

    @asynccontextmanager
    async def reader(self, *, now: datetime | None = None) -> AsyncIterator[Tx]:
        """A unit that only reads (no write lock; whatever it decides is never written)."""
        async with self.db.read_engine.connect() as conn:
            store = Store(conn, self.ids)
            yield Tx(Unit(self.env, store, now or self.clock()), store)

    def changes(self, tx: Tx) -> tuple[Changes, set[Adapter]]:
        """What the unit decided, as rows; and the adapters that deliver by our own table."""
        unit = tx.unit
        outbox: list[OutboxEntry] = []
        feed = list(tx.feed)
        local = set(tx.local)
        wall = utcnow()  # the outbox keeps wall-clock time, whatever "now" the tickets use
        for out in unit.outgoing:
            adapter = self.adapters.get(out.destination.platform)
            ref = out.card_ref
            if (
                adapter is not None
                and adapter.capabilities & Capability.LOCAL
                and out.coalesce_key is None
                and (out.op != "update" or (ref is not None and ref.platform_message_id))
            ):
                message_id = ref.platform_message_id if out.op == "update" and ref else None
                entry = adapter.local_entry(
                    out.destination, out.message, key=out.key, at=wall, message_id=message_id
                )
                if out.op == "send" and ref is not None:
                    ref.platform_message_id = entry.message_key
                feed.append(entry)
                local.add(adapter)
                continue
            payload = outbound_to_json(out.message)
            if out.extra:
                payload.update(out.extra)
            outbox.append(
                OutboxEntry(
                    destination=out.destination.ref,
                    op=out.op,
                    payload=payload,
                    idempotency_key=out.key[:300],
                    next_attempt_at=max(wall, out.not_before) if out.not_before else wall,
                    ticket_id=out.ticket_id,
                    card_ref_id=ref.id if ref is not None else None,
                    coalesce_key=out.coalesce_key,
                )
            )
        clocks = [c for cs in unit.clocks.values() for c in cs]
        refs = [r for rs in unit.refs.values() for r in rs]
        changes = Changes(
            tickets=list(unit.tickets.values()),
            new_ticket_ids=set(unit.new_tickets),
            clocks=clocks,
            deleted_clocks=unit.deleted_clocks,
            card_refs=refs,
            new_card_ref_ids=set(unit.new_refs),
            notes=list(unit.notes.values()),
            new_note_ids=set(unit.new_notes),
            audit=unit.audit,
            outbox=outbox,
            feed=feed,
            chats=unit.chats,
            people=tx.people,
            identities=tx.identities,
            now=wall,
        )
        return changes, local
