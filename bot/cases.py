"""Keeping a worker's similar-cases index (``bot/nlp/similar.py``) current with the database.

At start-up ``load`` reads every past case, a chunk at a time, tokenising each chunk in a
thread, then builds the index (the hub runs it in the background: cards drawn meanwhile show
no similar cases). A case this worker resolves, closes or reopens reaches its index when the
unit of work commits (``bot/work.py``). Cases other workers change are read by ``refresh``
every ``[similar] refresh_seconds``: tickets updated since the newest ``updated_at`` it saw,
less ``OVERLAP`` (a unit that commits late with an earlier ``now``); rows it already has are
recognised by their version and skipped.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from bot.nlp.similar import CASE_STATES, SimilarCases
from storage.cases import changed_since, latest_update, past_cases
from storage.db import Database

__all__ = ["OVERLAP", "CaseFeed"]

log = logging.getLogger(__name__)

#: How far back each refresh reads again.
OVERLAP = timedelta(minutes=5)


class CaseFeed:
    def __init__(self, db: Database, index: SimilarCases, *, chunk: int = 2_000) -> None:
        self.db = db
        self.index = index
        self.chunk = chunk
        self.since: datetime | None = None  # the newest updated_at read so far
        self.loaded = False

    async def load(self) -> None:
        """Read every past case and build the index (then it is ready)."""
        async with self.db.reads() as conn:
            self.since = await latest_update(conn)
        after = 0
        while True:
            async with self.db.reads() as conn:
                rows = await past_cases(conn, CASE_STATES, after=after, limit=self.chunk)
            if not rows:
                break
            self.index.offer(await asyncio.to_thread(self.index.prepare, rows))
            after = rows[-1].id
        await self.index.compact(force=True)
        self.loaded = True
        log.info("similar cases: %d past cases indexed", len(self.index))

    async def refresh(self) -> int:
        """Take in what changed since the last look (any worker's); returns cases changed."""
        if not self.loaded:
            return 0  # the load is still reading: it will see those itself
        since = self.since - OVERLAP if self.since is not None else None
        async with self.db.reads() as conn:
            rows = await changed_since(conn, since)
        if rows:
            newest = max(r.updated_at for r in rows)
            self.since = newest if self.since is None else max(self.since, newest)
        changed = self.index.observe(rows)
        if self.index.stale():
            await self.index.compact()
        return changed
