"""The outbox sender: every outbound message, delivered once, in order, within the limits.

Each tick claims a batch — the first waiting message of many chats, plus the nags that may be
folded with it — delivers it, one chat's messages one after another and different chats side
by side, and writes what came of the whole batch in one transaction. Before a send the governor
checks the limits the adapter declared (per chat, per group, overall); a message that would
break one waits without spending an attempt. Failures:

- ``RateLimited``: retried no sooner than the platform's ``Retry-After`` (and the governor holds
  back the destination for that long);
- ``TransientSendError``, timeouts, connection errors, unexpected exceptions: exponential backoff
  with jitter;
- ``PlatformApiError`` (the platform said no for good) or too many attempts: the row becomes a
  dead letter, counted in ``/metrics``, logged, and reported to the admin chat.

Folding: SLA nags for one chat share a coalesce key. When more than one of them is due for a
chat at once — several in one sweep, or queued behind a rate limit or a 429 — they go out as
digests of at most ``digest_max_lines`` tickets instead of one message each. A team group's
new-ticket cards share one too: when the group's limits cannot send all that wait within
``flood_horizon`` seconds, they are folded into digests (P0 cards excepted; ``bot.flood``).
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

from bot import flood
from bot.adapters.base import Adapter, RateLimit
from bot.config import OutboxSettings
from bot.errors import PlatformApiError, RateLimited, TransientSendError
from bot.events import Address, Card, Notice, Text, outbound_from_json, outbound_to_json
from bot.flood import Step
from bot.metrics import Metrics
from bot.sla.digest import Item, digests
from bot.texts import say
from storage import outbox
from storage.db import Database
from storage.models import OutboxMessage, utcnow
from storage.outbox import Cards, Outcome
from storage.records import OutboxEntry

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

    def capacity(self, limits: Sequence[RateLimit], horizon: float) -> int | None:
        """How many sends these limits allow within the next ``horizon`` seconds, counting
        what was sent recently (``None``: no limit)."""
        now = self._clock()
        least: int | None = None
        for lim in limits:
            span = horizon - max(0.0, self._blocked_until.get(lim.key, 0.0) - now)
            if span <= 0:
                return 0
            windows, part = divmod(span, lim.per)
            allowed = int(windows) * lim.count
            if part > 0:  # the first, partial window still holds recent sends
                since = now + part - lim.per
                allowed += max(0, lim.count - sum(1 for t in self._sent[lim.key] if t > since))
            least = allowed if least is None else min(least, allowed)
        return least

    def hold(self, limits: Sequence[RateLimit], seconds: float) -> None:
        """The platform said slow down: send nothing under these keys for ``seconds``."""
        until = self._clock() + seconds
        for lim in limits:
            self._blocked_until[lim.key] = max(self._blocked_until.get(lim.key, 0.0), until)


class _Failed(Exception):
    """A send that did not go through; what to do about the rows it carried is decided."""


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
        digest_max_lines: int = 10,
        flood_horizon: float = flood.HORIZON,
        flood_max_lines: int = flood.MAX_LINES,
    ) -> None:
        self.db = db
        self.adapters = adapters
        self.settings = settings
        self.metrics = metrics
        self.admin_chat = admin_chat
        self.locale = locale
        self.lease = lease
        self.governor = governor or Governor()
        self.digest_max_lines = digest_max_lines
        self.flood_horizon = flood_horizon
        self.flood_max_lines = flood_max_lines
        self.wake = asyncio.Event()
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._calls: dict[str, asyncio.Semaphore] = {}  # calls in flight, per platform
        self._results = Outcome()  # what came of sends, not yet recorded
        self._recorder: asyncio.Task[None] | None = None

    def stop(self) -> None:
        """Finish the current step, then leave ``run_forever`` (never cut a transaction)."""
        self._stopping = True
        self.wake.set()

    async def run_forever(self) -> None:
        while not self._stopping:
            self.wake.clear()
            self._idle.clear()
            try:
                sent = await self.tick()
            except Exception:
                log.exception("outbox loop failed; retrying")
                sent = 0
            if not sent:
                self._idle.set()
                await self.wake.wait()

    async def idle(self) -> None:
        """Return once the sender has nothing in hand."""
        await self._idle.wait()

    async def tick(self) -> int:
        """Claim what is due, deliver it, record the outcome; return how many rows."""
        now = utcnow()
        async with self.db.read() as s:
            if not await outbox.any_due(s, now):
                return 0  # an idle tick only reads: it never takes SQLite's write lock
        async with self.db.begin() as conn:
            rows = await outbox.claim(
                conn, limit=self.settings.batch, now=now, lease_until=now + self.lease
            )
            updated = {r.card_ref_id for r in rows if r.op == "update" and r.card_ref_id}
            cards = await outbox.cards(conn, updated)
        if not rows:
            return 0
        by_destination: dict[str, list[OutboxMessage]] = defaultdict(list)
        for row in rows:
            by_destination[row.destination].append(row)
        await asyncio.gather(*(self._destination(d, rs, cards) for d, rs in by_destination.items()))
        await self._recorded()
        return len(rows)

    # -------------------------------------------------------------------------- recording

    def _note(self, outcome: Outcome) -> None:
        """What came of a send, recorded as soon as possible (a worker that dies after a send
        and before its record sends again what it sent: that window is kept to milliseconds).
        Outcomes that arrive while a record is being written share the next one."""
        self._results.merge(outcome)
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record(), name="outbox-record")

    async def _record(self) -> None:
        while self._results:
            batch, self._results = self._results, Outcome()
            try:
                async with self.db.begin() as conn:
                    await outbox.record(conn, batch, now=utcnow())
            except Exception:  # the rows stay claimed: their lease lapses and they go again
                log.exception("recording what came of %d sends failed", len(batch.sent))
                continue
            if batch.queued:
                self.wake.set()

    async def _recorded(self) -> None:
        """Wait until everything noted so far is recorded."""
        while self._recorder is not None and not self._recorder.done():
            await asyncio.wait({self._recorder})

    # ------------------------------------------------------------------------- delivering

    async def _destination(self, ref: str, rows: list[OutboxMessage], cards: Cards) -> None:
        """Deliver one chat's claimed rows, in order; after a failure the rest wait too."""
        dest = Address.parse(ref)
        adapter = self.adapters.get(dest.platform)
        if adapter is None:
            outcome = Outcome()
            for row in rows:
                self._dead(row, f"no adapter for platform {dest.platform!r} is enabled", outcome)
            self._note(outcome)
            return
        if all(flood.TEAM_CARD in r.payload for r in rows):  # a team group's new cards
            capacity = self.governor.capacity(adapter.limits(dest), self.flood_horizon)
            steps = flood.plan(rows, capacity, max_lines=self.flood_max_lines)
        else:
            steps = self._chunks(rows)
        for i, step in enumerate(steps):
            outcome = Outcome()
            try:
                if not step.digest:
                    await self._one(adapter, dest, step.rows[0], cards, outcome)
                elif flood.TEAM_CARD in step.rows[0].payload:
                    await self._team_digest(adapter, dest, step.rows, outcome)
                else:
                    await self._digest(adapter, dest, step.rows, outcome)
            except _Failed:
                # Order per chat: the rest go after the one that failed, no sooner than it.
                failed = {r.id for r in step.rows}
                at = max((a for r, a, _, _ in outcome.retry if r in failed), default=utcnow())
                for later in steps[i + 1 :]:
                    outcome.retry.extend((row.id, at, None, False) for row in later.rows)
                return
            finally:
                self._note(outcome)

    def _chunks(self, rows: list[OutboxMessage]) -> list[Step]:
        """Rows as they go out: nags that share a coalesce key folded into chunks of at most
        ``digest_max_lines`` tickets; anything else alone."""
        chunks: list[list[OutboxMessage]] = []
        lines = 0
        for row in rows:
            items = len(row.payload.get("nag", {}).get("items", ()))
            last = chunks[-1] if chunks else None
            if (
                last is not None
                and items
                and row.coalesce_key is not None
                and last[-1].coalesce_key == row.coalesce_key
                and lines + items <= self.digest_max_lines
            ):
                last.append(row)
                lines += items
            else:
                chunks.append([row])
                lines = items
        return [Step(tuple(chunk), digest=len(chunk) > 1) for chunk in chunks]

    async def _one(
        self,
        adapter: Adapter,
        dest: Address,
        row: OutboxMessage,
        cards: Cards,
        outcome: Outcome,
    ) -> None:
        if row.op == "update" and row.card_ref_id in cards.folded:
            # Its card was folded into a digest and never shown: nothing to update, and posting
            # it now would be a card the group never had, out of the blue.
            outcome.superseded.append(row.id)
            return
        payload = row.payload
        if flood.TEAM_CARD in payload:
            payload = {k: v for k, v in payload.items() if k != flood.TEAM_CARD}
        message = outbound_from_json(payload)
        message_ids = cards.message_ids
        limits = adapter.notice_limits(dest) if row.op == "notice" else adapter.limits(dest)

        async def call() -> str | None:
            if isinstance(message, Notice):
                await adapter.notify(dest, message, key=row.idempotency_key)
                return None
            assert isinstance(message, Text | Card)
            known = message_ids.get(row.card_ref_id) if row.card_ref_id else None
            if row.op == "update" and isinstance(message, Card) and known:
                moved = await adapter.update(dest, known, message)
                if moved is not None and moved.platform_message_id:
                    return moved.platform_message_id
                return known
            # A new message — or an update of a card whose first copy never arrived (a dead
            # letter): post the card instead, once.
            return (await adapter.send(dest, message, key=row.idempotency_key)).platform_message_id

        message_id = await self._attempt(dest, (row,), limits, call, outcome)
        outcome.sent.append((row.id, message_id))
        if (
            row.card_ref_id is not None
            and message_id
            and message_id != message_ids.get(row.card_ref_id)
        ):
            outcome.card_messages.append((row.card_ref_id, message_id))

    async def _digest(
        self, adapter: Adapter, dest: Address, rows: Sequence[OutboxMessage], outcome: Outcome
    ) -> None:
        nag = rows[0].payload["nag"]
        items = [Item(**raw) for row in rows for raw in row.payload["nag"]["items"]]
        (text,) = digests(
            items, nag["locale"], direct=bool(nag.get("direct")), max_lines=len(items)
        )
        key = f"sla-digest:{rows[0].id}:{len(rows)}"

        async def call() -> str | None:
            return (await adapter.send(dest, text, key=key)).platform_message_id

        message_id = await self._attempt(dest, rows, adapter.limits(dest), call, outcome)
        outcome.sent.append((rows[0].id, message_id))
        outcome.superseded.extend(r.id for r in rows[1:])
        # A nag card folded into a digest was never shown: its buttons are not for anyone.
        outcome.stale_cards.extend(r.card_ref_id for r in rows if r.card_ref_id is not None)

    async def _team_digest(
        self, adapter: Adapter, dest: Address, rows: Sequence[OutboxMessage], outcome: Outcome
    ) -> None:
        """New-ticket cards of a flood, folded into one digest: the others are superseded and
        their cards stale; a P0 keeps its card, which is sent later (named once, here)."""
        text = flood.digest(rows)
        key = f"team-digest:{rows[0].id}:{len(rows)}"

        async def call() -> str | None:
            return (await adapter.send(dest, text, key=key)).platform_message_id

        message_id = await self._attempt(dest, rows, adapter.limits(dest), call, outcome)
        folded = [r for r in rows if not flood.keeps_card(r)]
        if folded:
            outcome.sent.append((folded[0].id, message_id))
            outcome.superseded.extend(r.id for r in folded[1:])
            outcome.stale_cards.extend(r.card_ref_id for r in folded if r.card_ref_id is not None)
        now = utcnow()
        for row in rows:
            if flood.keeps_card(row):
                outcome.payloads.append((row.id, flood.announce(row)))
                outcome.retry.append((row.id, now, None, False))

    async def _attempt(
        self,
        dest: Address,
        rows: Sequence[OutboxMessage],
        limits: Sequence[RateLimit],
        call: Callable[[], object],
        outcome: Outcome,
    ) -> str | None:
        """Make one platform call for ``rows`` within the limits; on failure, decide about the
        rows (wait, retry, give up) and raise ``_Failed``."""
        wait = self.governor.reserve(limits)
        if wait > 0:
            at = utcnow() + timedelta(seconds=wait)
            outcome.retry.extend((r.id, at, None, False) for r in rows)
            # Look again when the limit allows it, not at the next heartbeat tick.
            asyncio.get_running_loop().call_later(wait, self.wake.set)
            raise _Failed()
        started = time.perf_counter()
        platform = dest.platform
        calls = self._calls.get(platform)
        if calls is None:
            calls = self._calls[platform] = asyncio.Semaphore(self.settings.concurrency)
        try:
            async with calls, asyncio.timeout(self.settings.send_timeout):
                result = await call()  # type: ignore[misc]
        except RateLimited as exc:
            self.metrics.send_results.labels(platform, "rate_limited").inc()
            held = [lim for lim in limits if exc.key is None or lim.key == exc.key] or limits
            self.governor.hold(held, exc.retry_after)
            for r in rows:
                self._retry(r, exc, exc.retry_after + random.uniform(0, 0.2), outcome)
            raise _Failed() from exc
        except PlatformApiError as exc:
            self.metrics.send_results.labels(platform, "rejected").inc()
            for r in rows:
                self._dead(r, str(exc), outcome)
            raise _Failed() from exc
        except (TransientSendError, TimeoutError, aiohttp.ClientError) as exc:
            self.metrics.send_results.labels(platform, "transient").inc()
            for r in rows:
                self._retry(r, exc, self._backoff(r.attempts), outcome)
            raise _Failed() from exc
        except Exception as exc:
            log.exception("sending outbox rows %s to %s failed", [r.id for r in rows], dest)
            self.metrics.send_results.labels(platform, "error").inc()
            for r in rows:
                self._retry(r, exc, self._backoff(r.attempts), outcome)
            raise _Failed() from exc
        self.metrics.send_results.labels(platform, "ok").inc()
        self.metrics.send_seconds.labels(platform).observe(time.perf_counter() - started)
        return result if isinstance(result, str) or result is None else None

    def _backoff(self, attempts: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self.settings.max_delay, self.settings.base_delay * 2**attempts)
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))

    def _retry(self, row: OutboxMessage, exc: Exception, delay: float, outcome: Outcome) -> None:
        if row.attempts + 1 >= self.settings.max_attempts:
            self._dead(row, f"gave up after {row.attempts + 1} attempts: {exc}", outcome)
            return
        log.info("outbox row %d to %s: %s; retry in %.1fs", row.id, row.destination, exc, delay)
        at = utcnow() + timedelta(seconds=delay)
        outcome.retry.append((row.id, at, repr(exc), True))

    def _dead(self, row: OutboxMessage, error: str, outcome: Outcome) -> None:
        platform = row.destination.partition(":")[0]
        self.metrics.dead_letters.labels(platform).inc()
        log.error("outbox row %d to %s is a dead letter: %s", row.id, row.destination, error)
        outcome.dead.append((row.id, error))
        if self.admin_chat and row.destination != self.admin_chat:
            text = say(
                "dead_letter",
                self.locale,
                destination=row.destination,
                attempts=row.attempts + 1,
                error=error[:300],
            )
            outcome.queued.append(
                OutboxEntry(
                    destination=self.admin_chat,
                    op="send",
                    payload=outbound_to_json(Text(text)),
                    idempotency_key=f"dead-letter:{row.id}",
                    next_attempt_at=utcnow(),
                )
            )
