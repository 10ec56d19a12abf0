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
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import Adapter
from bot.adapters.codec import TokenCodec
from bot.config import Settings
from bot.directory import Directory
from bot.errors import FlowError
from bot.events import Action, Inbound, Message, Text, Voice, inbound_from_json
from bot.flows import FlowContext
from bot.flows.actions import handle_action, record_refusal
from bot.flows.intake import handle_message
from bot.flows.voice import Heard, acknowledge, handle_voice
from bot.hearing import Ears
from bot.metrics import Metrics
from bot.sla.clocks import Policies
from bot.texts import say
from storage import queues, repo
from storage.db import Database
from storage.models import InboundEvent, Person, utcnow

__all__ = ["Engine"]

log = logging.getLogger(__name__)


async def _identify(session: AsyncSession, event: Inbound) -> Person:
    """The person behind an event. Identities are keyed by the *sender's* platform, which can
    differ from the chat's surface (a WeCom AI-bot group speaks for WeCom members)."""
    s = event.sender
    return await repo.identify(session, s.platform, s.user_id, s.name, s.locale)


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
        ears: Ears | None = None,
        *,
        lease: timedelta = timedelta(seconds=30),
        max_attempts: int = 3,
        batch: int = 100,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.settings = settings
        self.codec = codec
        self.directory = directory
        self.metrics = metrics
        self.adapters = adapters
        self.on_outbox = on_outbox
        self.ears = ears or Ears(adapters, None)
        self.lease = lease
        self.max_attempts = max_attempts
        self.batch = batch
        self.clock = clock
        self.policies = Policies(settings) if settings.sla.enabled else None
        self.wake = asyncio.Event()
        self._stopping = False
        self._voice: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        """Finish the current step, then leave ``run_forever`` (never cut a transaction)."""
        self._stopping = True
        self.wake.set()

    async def drain(self, grace: float) -> None:
        """Wait for voice notes being heard; cancel what is still running after ``grace`` s
        (its claim lapses and another worker, or the next start, hears it again)."""
        if self._voice:
            _, late = await asyncio.wait(self._voice, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

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
                if row.kind == "voice":  # seconds of transcription must not hold up others
                    task = asyncio.create_task(self.process(row), name=f"voice-{row.id}")
                    self._voice.add(task)
                    task.add_done_callback(self._voice.discard)
                    continue
                await self.process(row)
                self.on_outbox()  # replies go out while the rest of the batch is processed
            total += len(claimed)

    async def process(self, row: InboundEvent) -> None:
        event = inbound_from_json(row.payload)
        key = f"{row.platform}:{row.event_id}"
        heard = None
        if isinstance(event, Voice):
            # The slow part (download, transcription) runs outside any transaction, after an
            # immediate "transcribing…" and while our claim on the event is kept alive.
            await self._acknowledge_voice(key, event)
            heard = await self._hear(row, event)
        try:
            async with self.db.transaction() as s:
                await self._dispatch(self.context(s, key, event), event, heard)
                await self._record(s, event)
                if not await queues.finish_inbound(s, row, "done"):
                    raise _LeaseLost()
            self.metrics.processed.labels("done").inc()
        except FlowError as refusal:
            async with self.db.transaction() as s:
                ctx = self.context(s, key + ":refused", event)
                ctx.person = await _identify(s, event)
                await self._answer(ctx, event, refusal.reason(ctx.locale))
                if isinstance(event, Action):
                    await record_refusal(ctx, event, refusal)
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
            now=self.clock(),
            event=event,
            policies=self.policies,
        )

    async def _acknowledge_voice(self, key: str, event: Voice) -> None:
        async with self.db.transaction() as s:
            ctx = self.context(s, key + ":ack", event)
            ctx.person = await _identify(s, event)
            await acknowledge(ctx)  # keyed: a retried event does not say it twice
        self.on_outbox()

    async def _hear(self, row: InboundEvent, event: Voice) -> Heard:
        hearing = asyncio.create_task(self.ears.hear(event))
        while True:
            done, _ = await asyncio.wait({hearing}, timeout=self.lease.total_seconds() / 3)
            if done:
                return hearing.result()
            async with self.db.transaction() as s:  # still working on it: keep the claim
                await queues.extend_claim(s, row, utcnow() + self.lease)

    async def _dispatch(self, ctx: FlowContext, event: Inbound, heard: Heard | None) -> None:
        ctx.person = await _identify(ctx.session, event)
        match event:
            case Message():
                await handle_message(ctx, event)
            case Action():
                await handle_action(ctx, event)
            case Voice():
                await handle_voice(ctx, event, heard or Heard())

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
