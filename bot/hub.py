"""The hub: builds every part once from the settings and runs the background loops."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.access import Access
from bot.adapters.base import Adapter, AdapterDeps, AdapterFactory, RateLimit
from bot.adapters.codec import TokenCodec
from bot.adapters.webchat import WebchatAdapter
from bot.assets import REFRESH_SECONDS
from bot.audit import reseal_legacy, take_checkpoint
from bot.cases import CaseFeed
from bot.config import Settings
from bot.console import ConsoleCards
from bot.directory import Directory
from bot.engine import Engine
from bot.env import Env, Staff
from bot.events import Address
from bot.flows import csat, escalation, maintenance, reoffer, reports
from bot.flows.housekeeping import auto_close, reconcile
from bot.hearing import Ears
from bot.inbox import Inbox, TextCap
from bot.metrics import Metrics
from bot.nlp.correct import catalog_terms
from bot.nlp.similar import SimilarCases
from bot.nlp.text import warm_up
from bot.outbox import OutboxSender
from bot.progress import ProgressLinks
from bot.sla.policy import Policies
from bot.work import Work
from storage import assets as asset_rows
from storage import parts as part_rows
from storage import repo
from storage.audit import audit_key
from storage.db import Database
from storage.models import utcnow
from storage.planner import refresh_statistics

__all__ = ["Hub", "load_secret"]

log = logging.getLogger(__name__)


def load_secret(settings: Settings) -> bytes:
    """The configured secret key, or one created once in ``secret_key_file`` (mode 0600)."""
    if settings.security.secret_key is not None:
        return settings.security.secret_key.get_secret_value().encode()
    path: Path = settings.security.secret_key_file
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        log.warning("no [security] secret_key configured; created one in %s", path)
    return path.read_text().strip().encode()


class Hub:
    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> None:
        """``clock``: what "now" is for tickets and SLA clocks (tests pass a controllable one)."""
        self.settings = settings
        self.clock = clock
        self.db = Database(settings.database.url)
        self.metrics = Metrics()
        self.secret = load_secret(settings)
        self.codec = TokenCodec(self.secret)
        self.audit_key = audit_key(self.secret)  # seals the audit trail (storage/audit.py)
        self.access = Access(self.db, settings, self.secret)
        self.directory = Directory(settings)
        self.inbox = Inbox(
            self.db,
            on_stored=self._inbound_stored,
            metrics=self.metrics,
            window=settings.engine.window_s(self.db.is_sqlite),
            cap=TextCap.of(settings),
        )
        self.adapters: dict[str, Adapter] = self._build_adapters()
        self.transcriber = None
        self._warm: asyncio.Task[None] | None = None
        self._warm_failed = False
        if settings.asr.enabled:
            from bot.nlp.asr import build_transcriber

            self.transcriber = build_transcriber(settings.asr)
        self.env = Env(
            settings=settings,
            codec=self.codec,
            directory=self.directory,
            metrics=self.metrics,
            platforms=self.adapters.keys(),  # (a view: adapters a test or bench adds count)
            staff=Staff(),  # filled from the database at start-up
            policies=Policies(settings) if settings.sla.enabled else None,
            audit_key=self.audit_key,
            sign_in=self.access.issue_link,
            similar=_similar_index(settings),
            progress=ProgressLinks(self.secret),
        )
        self.work = Work(
            self.db, self.env, self.adapters, clock=clock, on_outbox=self._outbox_queued
        )
        for adapter in self.adapters.values():  # the console draws cards for each viewer
            if isinstance(adapter, WebchatAdapter):
                adapter.console = ConsoleCards(self.work)
        self._terms: tuple[object, tuple[str, ...]] = (None, ())
        ears = Ears(
            self.adapters,
            self.transcriber,
            max_mb=settings.asr.max_bytes / 1e6,
            terms=self.voice_terms,
        )
        self.engine = Engine(
            self.db,
            self.work,
            self.adapters,
            ears,
            lease=timedelta(seconds=settings.engine.lease_seconds),
            max_attempts=settings.engine.max_attempts,
            yield_to_intake=self.inbox.wait_turn if self.db.is_sqlite else None,
            intake_quiet_for=self.inbox.quiet_for,
        )
        self.sender = OutboxSender(
            self.db,
            self.adapters,
            settings.outbox,
            self.metrics,
            admin_chat=settings.admin_chat,
            locale=settings.locale,
            lease=timedelta(seconds=settings.outbox.lease_seconds),
            digest_max_lines=settings.sla.digest_max_lines,
            flood_horizon=settings.outbox.flood_seconds,
            flood_max_lines=settings.outbox.flood_lines,
        )
        similar = self.env.similar
        self.cases = CaseFeed(self.db, similar) if similar is not None else None
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs = asyncio.Lock()  # held while a scheduled job runs; stop() waits for it
        self._sla_wake = asyncio.Event()  # the scheduler ticks it; the SLA loop sweeps
        self._sla_idle = asyncio.Event()
        self._sla_idle.set()
        self._stopping = False

    def _build_adapters(self) -> dict[str, Adapter]:
        deps = AdapterDeps(
            inbox=self.inbox,
            settings=self.settings,
            db=self.db,
            secret=self.secret,
            access=self.access,
        )
        adapters: dict[str, Adapter] = {}
        for name in ("webchat", "slack", "telegram", "wecom", "dingtalk"):
            if getattr(self.settings, name).enabled:  # imported only then: each brings its SDK
                create: AdapterFactory = importlib.import_module(f"bot.adapters.{name}").create
                # A package may serve several surfaces (WeCom: app, AI bot, group robots),
                # each its own platform name in addresses.
                adapters.update(create(deps))
        return adapters

    @property
    def speech_model(self) -> str:
        """ "off", "loading", "ready" or "failed" (``/healthz`` says it)."""
        if self.transcriber is None:
            return "off"
        if self._warm is None or not self._warm.done():
            return "loading"
        return "failed" if self._warm_failed else "ready"

    async def _warm_up(self) -> None:
        assert self.transcriber is not None
        try:
            await self.transcriber.warm_up()
        except Exception:  # the first voice note will try again and report it
            log.exception("loading the speech model failed")
            self._warm_failed = True
        gc.freeze()  # (its dictionaries are for good too)

    async def _job(self, what: str, run: Callable[[], Awaitable[object]]) -> None:
        """Run a scheduled job: one at a time, never while stopping (``stop`` waits for the
        one running); a failure is logged and tried again next time, never fatal."""
        async with self._jobs:
            if self._stopping:
                return
            try:
                await run()
            except Exception:
                log.exception("%s failed", what)

    async def _statistics_tick(self) -> None:
        async def refresh() -> None:
            async with self.db.begin() as conn:
                analysed = await refresh_statistics(conn)
            if analysed:
                log.info("planner statistics refreshed: %s", ", ".join(analysed))

        await self._job("planner statistics", refresh)

    async def _auto_close(self) -> None:
        after = timedelta(hours=self.settings.tickets.auto_close_hours)
        notice = timedelta(
            hours=min(self.settings.closure.notice_hours, after.total_seconds() / 3600)
        )
        await self._job("auto-close job", lambda: auto_close(self.work, after, notice=notice))

    async def reoffer(self) -> int:
        """Unassigned tickets routed again now that someone who can take them is on duty
        (``bot/flows/reoffer.py``); returns how many were assigned."""
        assigned = await reoffer.reoffer(self.work)
        if assigned:
            self._outbox_queued()
        return assigned

    async def _reoffer_tick(self) -> None:
        await self._job("offering unassigned tickets again", self.reoffer)

    async def _audit_checkpoint(self) -> None:
        """Record every audit chain's head (skipped when another worker on this database has
        just done so: a checkpoint younger than half the interval exists)."""
        half = timedelta(minutes=self.settings.audit.checkpoint_minutes / 2)
        taken: list[object] = []

        async def take() -> None:
            cp = await take_checkpoint(
                self.db, self.settings, self.audit_key, now=self.clock(), fresh_within=half
            )
            if cp is not None:
                taken.append(cp)

        await self._job("audit checkpoint", take)
        if taken and self.settings.audit.post_checkpoints and self.settings.admin_chat:
            self._outbox_queued()

    async def maintenance(self) -> tuple[int, int]:
        """One preventive-maintenance pass (``bot/flows/maintenance.py``): PM tickets opened
        and suggestions posted by this worker."""
        opened, suggested = await maintenance.run(self.work)
        if opened or suggested:
            self._outbox_queued()
        return opened, suggested

    async def _maintenance_tick(self) -> None:
        await self._job("preventive maintenance job", self.maintenance)

    async def daily_report(self) -> int:
        """Post the daily health report where it is due and not yet posted
        (``bot/flows/reports.py``); how many chats this worker posted it to."""
        posted = await reports.run(self.work, self.clock())
        if posted:
            self._outbox_queued()
        return posted

    async def _report_tick(self) -> None:
        await self._job("daily health report", self.daily_report)

    async def csat_remind(self) -> int:
        """One pass of CSAT reminders (``bot/flows/csat.py``); returns how many this worker
        sent (each is claimed, so several workers never send one twice)."""
        sent = await csat.remind(self.work)
        if sent:
            self._outbox_queued()
        return sent

    async def _csat_tick(self) -> None:
        await self._job("CSAT reminders", self.csat_remind)

    async def refresh_assets(self) -> bool:
        """Load the asset registry into memory when it changed since it was loaded (another
        process imported a file); True when it was (re)loaded."""
        async with self.db.reads() as conn:
            seen = await asset_rows.fingerprint(conn)
            if seen == self.env.assets.fingerprint:
                return False
            self.env.assets.load(await asset_rows.entries(conn), seen)
        log.info("asset registry loaded: %d active assets", len(self.env.assets))
        return True

    async def refresh_parts(self) -> bool:
        """Load the parts catalog into memory when it changed since it was loaded (``gongdan
        parts import`` in another process); True when it was (re)loaded."""
        async with self.db.reads() as conn:
            seen = await part_rows.fingerprint(conn)
            if seen == self.env.parts.fingerprint:
                return False
            self.env.parts.load(await part_rows.entries(conn), seen)
        log.info("parts catalog loaded: %d parts", len(self.env.parts))
        return True

    def voice_terms(self) -> tuple[str, ...]:
        """The registered assets' and the parts catalog's names and aliases as correction
        terms for voice transcripts (``bot.nlp.correct.catalog_terms``); drawn again only
        when either was reloaded."""
        seen = (self.env.assets.fingerprint, self.env.parts.fingerprint)
        if self._terms[0] != seen:
            names = [n for e in self.env.parts.entries for n in (e.name, *e.aliases)]
            names += [n for a in self.env.assets.by_id.values() for n in (a.name, *a.aliases)]
            self._terms = (seen, catalog_terms(names))
        return self._terms[1]

    async def _assets_tick(self) -> None:
        await self._job("refreshing the asset registry", self.refresh_assets)
        await self._job("refreshing the parts catalog", self.refresh_parts)

    async def _cases_load(self) -> None:
        assert self.cases is not None
        try:
            await self.cases.load()
        except Exception:  # cards go without similar cases; the refresh job does not load
            log.exception("building the similar-cases index failed")

    async def _cases_tick(self) -> None:
        assert self.cases is not None
        await self._job("refreshing the similar-cases index", self.cases.refresh)

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        """The rate limits the destination's adapter declares (none if it is not running)."""
        adapter = self.adapters.get(destination.platform)
        return adapter.limits(destination) if adapter is not None else ()

    async def sla_sweep(self) -> int:
        """Everything the SLA clocks have due now (batch after batch); returns tickets seen."""
        total = 0
        batch = self.settings.sla.batch
        while not self._stopping:
            started = time.perf_counter()
            handled = await escalation.sweep(self.work, now=self.clock(), batch=batch)
            self.metrics.sla_sweep_seconds.observe(time.perf_counter() - started)
            total += handled
            if handled < batch:
                return total
        return total

    async def _sla_loop(self) -> None:
        """Sweep whenever the scheduler ticks (a sweep that runs long simply takes the ticks
        that came meanwhile as one), until the hub stops."""
        while not self._stopping:
            await self._sla_wake.wait()
            self._sla_wake.clear()
            if self._stopping:
                return
            self._sla_idle.clear()
            try:
                await self.sla_sweep()
            except Exception:  # log and try again on the next tick, never die
                log.exception("SLA sweep failed")
            finally:
                self._sla_idle.set()

    async def idle(self) -> None:
        """Return once no background loop has work in hand: the start-up policy pass and the
        similar-cases index are done, and the engine, the outbox and the SLA sweep wait for
        their next wake-up."""
        for task in self._tasks:
            if task.get_name() in ("sla-reconcile", "similar-cases"):
                await asyncio.wait({task})
        await self.engine.idle()
        await self.sender.idle()
        await self._sla_idle.wait()

    async def _sla_reconcile(self) -> None:
        try:
            changed = await reconcile(self.work)
            if changed:
                log.info("SLA policies applied to %d open tickets", changed)
        except Exception:
            log.exception("applying the SLA policies to open tickets failed")

    async def _inbound_tick(self) -> None:
        try:
            await self.engine.reclaim()
        except Exception:
            log.exception("giving back lapsed inbound claims failed")
        self.engine.wake.set()

    async def _outbox_tick(self) -> None:
        self.sender.wake.set()

    async def _sla_tick(self) -> None:
        self._sla_wake.set()

    def _inbound_stored(self) -> None:
        self.engine.wake.set()

    def _outbox_queued(self) -> None:
        self.sender.wake.set()

    async def start(self) -> None:
        await asyncio.to_thread(warm_up)  # jieba loads its dictionary once, off the event loop
        # What start-up built lives as long as the process: keep the collector off it, so
        # that a full collection under load walks only what requests leave behind.
        gc.freeze()
        async with self.db.transaction() as s:
            await repo.sync_staff(s, self.directory.staff_records())
        async with self.db.read() as s:
            self.env.staff.load(*await repo.staff(s))
        # Rows written before the audit chain was keyed: sealed now, once (before any unit
        # chains onto them); then a checkpoint, unless a recent one exists.
        await reseal_legacy(self.db, self.audit_key)
        if self.settings.audit.checkpoint_minutes > 0:
            await self._audit_checkpoint()
        async with self.db.reads() as conn:
            await self.work.ids.seed(conn)
        await self.refresh_assets()
        await self.refresh_parts()
        for adapter in self.adapters.values():
            await adapter.start()
        if self.transcriber is not None:  # load the model in the background, not on first use
            self._warm = asyncio.create_task(self._warm_up(), name="asr-warm-up")
        self._tasks = [
            asyncio.create_task(self.engine.run_forever(), name="engine"),
            asyncio.create_task(self.sender.run_forever(), name="outbox"),
        ]
        # The scheduler is the heartbeat: it retries what is due even when nothing new arrives
        # (events a failed unit gave back, outbox rows waiting out a backoff or a rate limit).
        self._every(self._outbox_tick, "outbox-tick", "outbox tick", seconds=1)
        self._every(self._inbound_tick, "inbound-tick", "inbound tick", seconds=5)
        if not self.db.is_sqlite:  # tables that grew fast are planned by their real size
            self._every(
                self._statistics_tick, "planner-statistics", "planner statistics", seconds=10
            )
        self._every(
            self._assets_tick, "assets-refresh", "asset and parts refresh", seconds=REFRESH_SECONDS
        )
        if self.cases is not None:  # built in the background: cards show cases once it is
            self._tasks.append(asyncio.create_task(self._cases_load(), name="similar-cases"))
            self._every(
                self._cases_tick,
                "similar-refresh",
                "similar cases refresh",
                seconds=self.settings.similar.refresh_seconds,
            )
        if self.settings.tickets.auto_close_hours > 0:
            self._every(
                self._auto_close, "auto-close", "auto-close", first=datetime.now(UTC), minutes=5
            )
        # Shifts begin on the minute: each minute, what waits for an engineer is offered again.
        self._every(self._reoffer_tick, "reoffer", "unassigned tickets offered again", minutes=1)
        if self.settings.maintenance.enabled:
            self._every(
                self._maintenance_tick,
                "maintenance",
                "preventive maintenance",
                first=datetime.now(UTC) + timedelta(seconds=10),
                minutes=self.settings.maintenance.check_minutes,
            )
        if self.settings.report.enabled:
            self._every(
                self._report_tick,
                "daily-report",
                "daily health report",
                minutes=self.settings.report.check_minutes,
            )
        if self.settings.csat.enabled and self.settings.csat.remind_after > 0:
            self._every(self._csat_tick, "csat-remind", "CSAT reminders", minutes=1)
        if self.settings.audit.checkpoint_minutes > 0:
            self._every(
                self._audit_checkpoint,
                "audit-checkpoint",
                "audit checkpoint",
                minutes=self.settings.audit.checkpoint_minutes,
            )
        if self.env.policies is not None:
            # Policies may have changed since the last run: apply them, in the background.
            self._tasks.append(asyncio.create_task(self._sla_reconcile(), name="sla-reconcile"))
            self._tasks.append(asyncio.create_task(self._sla_loop(), name="sla-sweep"))
            self._every(
                self._sla_tick, "sla-tick", "SLA tick", seconds=self.settings.sla.sweep_seconds
            )
            self._sla_wake.set()  # what fell due while we were down: now
        self.scheduler.start()
        self.engine.wake.set()
        self.sender.wake.set()

    def _every(
        self,
        job: Callable[[], Awaitable[None]],
        job_id: str,
        name: str,
        *,
        first: datetime | None = None,
        **interval: float,
    ) -> None:
        """A scheduled job (``_job`` wraps what it runs): at most one run at a time, missed runs
        folded into one; ``first`` brings the first run forward (else: one interval from now).
        ``job`` is a coroutine function: APScheduler runs a plain one in a pool thread, off the
        event loop, where setting an ``asyncio.Event`` is not safe."""
        when = {} if first is None else {"next_run_time": first}  # (None would pause the job)
        self.scheduler.add_job(
            job,
            "interval",
            **interval,
            id=job_id,
            name=name,
            max_instances=1,
            coalesce=True,
            **when,
        )

    async def stop(self) -> None:
        self._stopping = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self._sla_wake.set()  # the SLA loop finishes its sweep and leaves
        async with self._jobs:  # let a running job finish before the database goes away
            pass
        await self.inbox.close()
        self.engine.stop()
        self.sender.stop()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=10)
            for t in late:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.engine.drain(grace=10)
        if self._warm is not None:
            await asyncio.wait({self._warm}, timeout=30)
        if self.transcriber is not None:
            await self.transcriber.close()
        for adapter in self.adapters.values():
            await adapter.stop()
        await self.db.dispose()


def _similar_index(settings: Settings) -> SimilarCases | None:
    """The worker's similar-cases index (``[similar]``), or None when it is off."""
    if not settings.similar.enabled:
        return None
    return SimilarCases(top_k=settings.similar.top_k, min_score=settings.similar.min_score)
