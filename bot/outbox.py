"""The outbox sender: every outbound message, delivered once, in order, within the limits.

Rows are claimed only when they are first in line for their destination, so one chat's messages
go out in the order they were queued while different chats proceed in parallel. Before a send
the governor checks the limits the adapter declared (per chat, per group, overall); a message
that would break one waits without spending an attempt. Failures:

- ``RateLimited``: retried no sooner than the platform's ``Retry-After`` (and the governor holds
  back the destination for that long);
- ``TransientSendError``, timeouts, connection errors, unexpected exceptions: exponential backoff
  with jitter;
- ``PlatformApiError`` (the platform said no for good) or too many attempts: the row becomes a
  dead letter, counted in ``/metrics``, logged, and reported to the admin chat.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta

import aiohttp

from bot.adapters.base import Adapter, RateLimit
from bot.config import OutboxSettings
from bot.errors import PlatformApiError, RateLimited, TransientSendError
from bot.events import Address, Card, Notice, Text, outbound_from_json, outbound_to_json
from bot.metrics import Metrics
from bot.texts import say
from storage import queues, repo
from storage.db import Database
from storage.models import OutboxMessage, utcnow

__all__ = ["Governor", "OutboxSender"]

log = logging.getLogger(__name__)


class Governor:
    """Sliding-window limits per key, in this process (each process keeps its own count)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sent: dict[str, deque[float]] = defaultdict(deque)
        self._blocked_until: dict[str, float] = {}

    def reserve(self, limits: Sequence[RateLimit]) -> float:
        """0 and a send is recorded under every key; else seconds to wait first."""
        now = self._clock()
        wait = 0.0
        for lim in limits:
            wait = max(wait, self._blocked_until.get(lim.key, 0.0) - now)
            window = self._sent[lim.key]
            while window and window[0] <= now - lim.per:
                window.popleft()
            if len(window) >= lim.count:
                wait = max(wait, window[0] + lim.per - now)
        if wait > 0:
            return wait
        for lim in limits:
            self._sent[lim.key].append(now)
        return 0.0

    def hold(self, limits: Sequence[RateLimit], seconds: float) -> None:
        """The platform said slow down: send nothing under these keys for ``seconds``."""
        until = self._clock() + seconds
        for lim in limits:
            self._blocked_until[lim.key] = max(self._blocked_until.get(lim.key, 0.0), until)


class OutboxSender:
    def __init__(
        self,
        db: Database,
        adapters: Mapping[str, Adapter],
        settings: OutboxSettings,
        metrics: Metrics,
        *,
        admin_chat: str | None = None,
        locale: str = "zh",
        lease: timedelta = timedelta(seconds=60),
        governor: Governor | None = None,
    ) -> None:
        self.db = db
        self.adapters = adapters
        self.settings = settings
        self.metrics = metrics
        self.admin_chat = admin_chat
        self.locale = locale
        self.lease = lease
        self.governor = governor or Governor()
        self.wake = asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        """Finish the current step, then leave ``run_forever`` (never cut a transaction)."""
        self._stopping = True
        self.wake.set()

    async def run_forever(self) -> None:
        while not self._stopping:
            self.wake.clear()
            try:
                sent = await self.tick()
            except Exception:
                log.exception("outbox loop failed; retrying")
                sent = 0
            if not sent:
                await self.wake.wait()

    async def tick(self) -> int:
        """Claim what is due and deliver it; return how many rows were handled."""
        async with self.db.transaction() as s:
            rows = await queues.claim_outbox(s, limit=self.settings.batch, lease=self.lease)
        if rows:
            await asyncio.gather(*(self._deliver(r) for r in rows))
        return len(rows)

    async def _deliver(self, row: OutboxMessage) -> None:
        dest = Address.parse(row.destination)
        adapter = self.adapters.get(dest.platform)
        if adapter is None:
            await self._dead(row, f"no adapter for platform {dest.platform!r} is enabled")
            return
        limits = adapter.notice_limits(dest) if row.op == "notice" else adapter.limits(dest)
        wait = self.governor.reserve(limits)
        if wait > 0:
            async with self.db.transaction() as s:
                await queues.outbox_retry(
                    s, row.id, at=utcnow() + timedelta(seconds=wait), error=None, attempt=False
                )
            # Look again when the limit allows it, not at the next heartbeat tick.
            asyncio.get_running_loop().call_later(wait, self.wake.set)
            return
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.send_timeout):
                message_id = await self._call(adapter, dest, row)
        except RateLimited as exc:
            self.metrics.send_results.labels(dest.platform, "rate_limited").inc()
            held = [lim for lim in limits if exc.key is None or lim.key == exc.key] or limits
            self.governor.hold(held, exc.retry_after)
            await self._retry(row, exc, delay=exc.retry_after + random.uniform(0, 0.2))
        except PlatformApiError as exc:
            self.metrics.send_results.labels(dest.platform, "rejected").inc()
            await self._dead(row, str(exc))
        except (TransientSendError, TimeoutError, aiohttp.ClientError) as exc:
            self.metrics.send_results.labels(dest.platform, "transient").inc()
            await self._retry(row, exc, delay=self._backoff(row.attempts))
        except Exception as exc:
            log.exception("sending outbox row %d to %s failed unexpectedly", row.id, dest)
            self.metrics.send_results.labels(dest.platform, "error").inc()
            await self._retry(row, exc, delay=self._backoff(row.attempts))
        else:
            self.metrics.send_results.labels(dest.platform, "ok").inc()
            self.metrics.send_seconds.labels(dest.platform).observe(time.perf_counter() - started)
            async with self.db.transaction() as s:
                await queues.outbox_sent(s, row.id, message_id)
                if row.card_ref_id is not None and row.op == "send" and message_id:
                    await repo.set_card_message_id(s, row.card_ref_id, message_id)

    async def _call(self, adapter: Adapter, dest: Address, row: OutboxMessage) -> str | None:
        message = outbound_from_json(row.payload)
        key = row.idempotency_key
        if isinstance(message, Notice):
            await adapter.notify(dest, message, key=key)
            return None
        if row.op == "update" and isinstance(message, Card):
            async with self.db.read() as s:
                ref = await repo.get_card_ref(s, row.card_ref_id) if row.card_ref_id else None
            if ref is not None and ref.platform_message_id:
                moved = await adapter.update(dest, ref.platform_message_id, message)
                if moved is not None and moved.platform_message_id:
                    async with self.db.transaction() as s:
                        await repo.set_card_message_id(s, ref.id, moved.platform_message_id)
                    return moved.platform_message_id
                return ref.platform_message_id
            # The first copy never arrived (dead letter): post the card instead, once.
            sent = await adapter.send(dest, message, key=key)
            if ref is not None and sent.platform_message_id:
                async with self.db.transaction() as s:
                    await repo.set_card_message_id(s, ref.id, sent.platform_message_id)
            return sent.platform_message_id
        assert isinstance(message, Text | Card)
        return (await adapter.send(dest, message, key=key)).platform_message_id

    def _backoff(self, attempts: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self.settings.max_delay, self.settings.base_delay * 2**attempts)
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))

    async def _retry(self, row: OutboxMessage, exc: Exception, *, delay: float) -> None:
        if row.attempts + 1 >= self.settings.max_attempts:
            await self._dead(row, f"gave up after {row.attempts + 1} attempts: {exc}")
            return
        log.info("outbox row %d to %s: %s; retry in %.1fs", row.id, row.destination, exc, delay)
        async with self.db.transaction() as s:
            await queues.outbox_retry(
                s, row.id, at=utcnow() + timedelta(seconds=delay), error=repr(exc), attempt=True
            )

    async def _dead(self, row: OutboxMessage, error: str) -> None:
        platform = row.destination.partition(":")[0]
        self.metrics.dead_letters.labels(platform).inc()
        log.error("outbox row %d to %s is a dead letter: %s", row.id, row.destination, error)
        async with self.db.transaction() as s:
            await queues.outbox_dead(s, row.id, error)
            if self.admin_chat and row.destination != self.admin_chat:
                text = say(
                    "dead_letter",
                    self.locale,
                    destination=row.destination,
                    attempts=row.attempts + 1,
                    error=error[:300],
                )
                await queues.enqueue(
                    s,
                    destination=self.admin_chat,
                    op="send",
                    payload=outbound_to_json(Text(text)),
                    idempotency_key=f"dead-letter:{row.id}",
                )
        self.wake.set()
