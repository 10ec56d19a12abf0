"""Durable intake of verified inbound events, with group commit.

An adapter calls ``await inbox.accept(events)`` and answers the platform only after it returns:
by then the events are committed. Requests arriving together share one INSERT and one commit
(a writer task drains whatever queued up while the previous commit ran), which is what lets a
single SQLite file take thousands of events per second with low answer latency; one
transaction per request tops out near 600/s on the same machine. On SQLite the writer takes
the write gate's urgent lane: it waits for at most the one transaction in progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.events import Inbound, Voice, inbound_kind, inbound_to_json
from bot.metrics import Metrics
from storage import inbound
from storage.db import Database
from storage.inbound import InboundRow

__all__ = ["Accepted", "Inbox"]

log = logging.getLogger(__name__)
_MAX_BATCH = 500
_FULL = 32  # requests queued that make a commit worth it at once


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: str
    new: bool  # False: a retry or a replay of an event already stored


@dataclass(slots=True)
class _Pending:
    rows: list[InboundRow]
    done: asyncio.Future[set[tuple[str, str]]]


def lane_of(event: Inbound) -> str | None:
    """The order an event keeps: its chat's (voice notes, heard on the side, keep none)."""
    return None if isinstance(event, Voice) else event.chat.ref


class Inbox:
    def __init__(
        self,
        db: Database,
        on_stored: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
        *,
        window: float = 0.0,
    ) -> None:
        """``window``: seconds a commit waits for more events to join it (0: none)."""
        self._db = db
        self._window = window
        self._on_stored = on_stored
        self._metrics = metrics
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._committing = False
        self._committed = asyncio.Event()
        self.closed = False

    async def accept(self, events: Sequence[Inbound], raw: str | None = None) -> list[Accepted]:
        """Store ``events`` durably; return once committed. Raises if storing failed."""
        if self.closed:
            raise RuntimeError("inbox is closed")
        rows = [
            InboundRow(
                platform=e.platform,
                event_id=e.event_id,
                kind=inbound_kind(e),
                payload=inbound_to_json(e),
                raw=raw,
                received_at=e.received_at,
                lane=lane_of(e),
                sender_platform=e.sender.platform,
                sender_id=e.sender.user_id,
            )
            for e in events
        ]
        if not rows:
            return []
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="inbox-writer")
        pending = _Pending(rows, asyncio.get_running_loop().create_future())
        await self._queue.put(pending)
        new = await pending.done
        accepted = [Accepted(r.event_id, (r.platform, r.event_id) in new) for r in rows]
        if self._metrics is not None:
            for r, a in zip(rows, accepted, strict=True):
                self._metrics.inbound.labels(r.platform, "stored" if a.new else "duplicate").inc()
        return accepted

    async def wait_turn(self) -> None:
        """Return when the intake has no commit due: at once if idle, else after its next
        commit. The engine calls it before each unit, so intake and engine take turns at the
        write lock and an answer never waits behind more than one unit of work."""
        if self._committing or not self._queue.empty():
            self._committed.clear()
            await self._committed.wait()

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if self._window and self._queue.qsize() < _FULL:
                # A moment for others to join: each commit costs the same whether it stores
                # one event or fifty, and on one core that cost is what processing lacks.
                await asyncio.sleep(self._window)
            batch, count = [first], len(first.rows)
            while not self._queue.empty() and count < _MAX_BATCH:
                nxt = self._queue.get_nowait()
                batch.append(nxt)
                count += len(nxt.rows)
            self._committing = True
            try:
                await self._commit(batch)
            finally:
                self._committing = False
                self._committed.set()
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[_Pending]) -> None:
        # The same event may arrive twice in one batch (a fast platform retry): store it once.
        unique: dict[tuple[str, str], InboundRow] = {}
        for p in batch:
            for r in p.rows:
                unique.setdefault((r.platform, r.event_id), r)
        try:
            async with self._db.begin(urgent=True) as conn:
                new = await inbound.insert(conn, list(unique.values()))
        except Exception as exc:  # every waiter learns it failed and answers the platform 5xx
            log.exception("storing %d inbound events failed", len(unique))
            for p in batch:
                if not p.done.done():
                    p.done.set_exception(exc)
            return
        claimed: set[tuple[str, str]] = set()
        for p in batch:
            mine = {(r.platform, r.event_id) for r in p.rows} & (new - claimed)
            claimed |= mine
            if not p.done.done():
                p.done.set_result(mine)
        self._on_stored()

    async def close(self) -> None:
        """Refuse new events, let the writer commit what it already accepted, stop it."""
        self.closed = True
        if self._writer is not None:
            if not self._writer.done():
                await self._queue.join()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        self._committed.set()


def raw_json(body: object) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))
