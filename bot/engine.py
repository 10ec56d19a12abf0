"""The engine: claims stored inbound events and runs each through its flow, exactly once.

Adapters store events (``Inbox``) and answer the platform; this loop picks them up afterwards,
so answering never waits for processing and a crash after the answer loses nothing: an event
claimed by a process that died is claimed again when its lease runs out. Each event runs in one
transaction together with the replies it queues and the mark that it is done.

The one error boundary lives here: a ``FlowError`` becomes a kind reply to the person (the rules
said no); anything else is logged with its traceback, retried a few times, then answered with an
apology and left as ``failed`` for an operator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import timedelta

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import Adapter
from bot.adapters.codec import TokenCodec
from bot.config import Settings
from bot.directory import Directory
from bot.errors import AdapterError, FlowError, MediaTooLarge
from bot.events import Action, Inbound, Message, Text, Voice, inbound_from_json
from bot.flows import FlowContext
from bot.flows.actions import handle_action
from bot.flows.intake import handle_message
from bot.flows.voice import Audio, handle_voice
from bot.metrics import Metrics
from bot.texts import say
from storage import queues, repo
from storage.db import Database
from storage.models import InboundEvent, utcnow

__all__ = ["Engine"]

log = logging.getLogger(__name__)


class _LeaseLost(Exception):
    """Our claim on an event expired and another worker took it: roll back, do nothing."""


class Engine:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        codec: TokenCodec,
        directory: Directory,
        metrics: Metrics,
        adapters: Mapping[str, Adapter],
        on_outbox: Callable[[], None] = lambda: None,
        *,
        lease: timedelta = timedelta(seconds=30),
        max_attempts: int = 3,
        batch: int = 100,
    ) -> None:
        self.db = db
        self.settings = settings
        self.codec = codec
        self.directory = directory
        self.metrics = metrics
        self.adapters = adapters
        self.on_outbox = on_outbox
        self.lease = lease
        self.max_attempts = max_attempts
        self.batch = batch
        self.wake = asyncio.Event()
        self.download_timeout = 60.0
        self._stopping = False

    def stop(self) -> None:
        """Finish the current step, then leave ``run_forever`` (never cut a transaction)."""
        self._stopping = True
        self.wake.set()

    async def run_forever(self) -> None:
        while not self._stopping:
            self.wake.clear()
            try:
                handled = await self.pump()
            except Exception:
                log.exception("inbound processing loop failed; retrying")
                handled = 0
            if not handled:
                await self.wake.wait()

    async def pump(self) -> int:
        """Process everything claimable now; return how many events were handled."""
        total = 0
        while True:
            async with self.db.transaction() as s:
                claimed = await queues.claim_inbound(
                    s, limit=self.batch, lease=self.lease, max_attempts=self.max_attempts
                )
            if not claimed:
                return total
            for row in claimed:
                if self._stopping:  # the rest stays claimed; the lease hands it on
                    return total
                await self.process(row)
                self.on_outbox()  # replies go out while the rest of the batch is processed
            total += len(claimed)

    async def process(self, row: InboundEvent) -> None:
        event = inbound_from_json(row.payload)
        key = f"{row.platform}:{row.event_id}"
        # Network I/O (a voice note's audio) happens before the transaction, never inside it.
        audio = await self._fetch_audio(event) if isinstance(event, Voice) else None
        try:
            async with self.db.transaction() as s:
                await self._dispatch(self.context(s, key, event), event, audio)
                await self._record(s, event)
                if not await queues.finish_inbound(s, row, "done"):
                    raise _LeaseLost()
            self.metrics.processed.labels("done").inc()
        except FlowError as refusal:
            async with self.db.transaction() as s:
                ctx = self.context(s, key + ":refused", event)
                ctx.person = await repo.identify(
                    s,
                    event.platform,
                    event.sender.user_id,
                    event.sender.name,
                    event.sender.locale,
                )
                await self._answer(ctx, event, refusal.reason(ctx.locale))
                await self._record(s, event)
                if not await queues.finish_inbound(s, row, "done", error=f"refused: {refusal!r}"):
                    raise _LeaseLost() from refusal
            self.metrics.processed.labels("refused").inc()
        except _LeaseLost:
            log.warning("event %s was taken over by another worker; left to it", key)
        except (IntegrityError, DBAPIError) as exc:
            # Lost a race (audit sequence, lock timeout): worth another try.
            await self._failed(row, event, key, exc, retry=row.attempts < self.max_attempts)
        except Exception as exc:
            await self._failed(row, event, key, exc, retry=False)

    def context(self, session: AsyncSession, key: str, event: Inbound | None = None) -> FlowContext:
        """A flow context for one unit of work (an event, or a job of the hub's own)."""
        return FlowContext(
            session=session,
            settings=self.settings,
            codec=self.codec,
            directory=self.directory,
            metrics=self.metrics,
            platforms=set(self.adapters),
            key=key,
            now=utcnow(),
            event=event,
        )

    async def _fetch_audio(self, event: Voice) -> Audio:
        adapter = self.adapters.get(event.platform)
        if adapter is None or not event.media_ref:
            return Audio(None, "unavailable")
        try:
            async with asyncio.timeout(self.download_timeout):
                return Audio(await adapter.download(event.media_ref))
        except MediaTooLarge:
            return Audio(None, "too_large")
        except (AdapterError, TimeoutError, NotImplementedError) as exc:
            log.warning(
                "could not download %s voice note %s: %r", event.platform, event.event_id, exc
            )
            return Audio(None, "unavailable")

    async def _dispatch(self, ctx: FlowContext, event: Inbound, audio: Audio | None) -> None:
        ctx.person = await repo.identify(
            ctx.session,
            event.platform,
            event.sender.user_id,
            event.sender.name,
            event.sender.locale,
        )
        match event:
            case Message():
                await handle_message(ctx, event)
            case Action():
                await handle_action(ctx, event)
            case Voice():
                await handle_voice(ctx, event, audio or Audio(None, "unavailable"))

    async def _record(self, session: AsyncSession, event: Inbound) -> None:
        adapter = self.adapters.get(event.platform)
        if adapter is not None:
            await adapter.record_inbound(session, event)

    async def _answer(self, ctx: FlowContext, event: Inbound, text: str) -> None:
        if isinstance(event, Action):
            await ctx.notify_presser(text)
        else:
            await ctx.reply(Text(text))

    async def _failed(
        self, row: InboundEvent, event: Inbound, key: str, exc: Exception, *, retry: bool
    ) -> None:
        log.error(
            "processing %s event %s failed (attempt %d)",
            row.platform,
            row.event_id,
            row.attempts,
            exc_info=exc,
        )
        async with self.db.transaction() as s:
            if retry:
                await queues.release_inbound(s, row.id, error=repr(exc))
                self.metrics.processed.labels("retry").inc()
                return
            ctx = self.context(s, key + ":failed", event)
            await self._answer(ctx, event, say("error.internal", self.settings.locale))
            if not await queues.finish_inbound(s, row, "failed", error=repr(exc)):
                raise _LeaseLost() from exc
        self.metrics.processed.labels("failed").inc()
