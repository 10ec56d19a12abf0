"""The engine: claims stored inbound events and runs them through their flows, exactly once.

Adapters store events (``Inbox``) and answer the platform; this loop picks them up afterwards,
so answering never waits for processing and a crash after the answer loses nothing.

One step is one unit of work in one transaction: claim a batch of events (at most one per
chat, oldest first — a chat's events are handled in order), find who sent them, load the
tickets they are about in a few queries, let each event's flow decide in memory (a ``Turn``;
a refusal or a failure undoes that turn alone), and write everything — tickets, audit rows,
clocks, cards, replies and the events' own "done" — in one pass before the commit. If the
transaction cannot commit, nothing of it happened and the events are claimed again (alone, to
find the one at fault).

The one error boundary lives here: a ``FlowError`` becomes a kind reply to the person (the rules
said no); anything else is logged with its traceback, retried a few times, then answered with an
apology and left as ``failed`` for an operator.

Voice notes take seconds of transcription outside any transaction: they are claimed with a
lease, acknowledged ("transcribing…"), heard, and then handled in a unit of their own. Pictures
(evidence photos) are claimed the same way, downloaded, then handled in a unit of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.adapters.base import Adapter
from bot.env import Env
from bot.errors import FlowError, TokenInvalid
from bot.events import Action, Image, Inbound, Message, Text, Voice, inbound_from_json
from bot.flows.actions import handle_action, record_refusal
from bot.flows.closure import Seen, handle_image
from bot.flows.intake import handle_message
from bot.flows.voice import Heard, acknowledge, handle_voice
from bot.hearing import Ears
from bot.sight import look
from bot.texts import refusal as refusal_text
from bot.texts import say
from bot.unit import Turn
from bot.work import Tx, Work
from storage import inbound
from storage.db import Database
from storage.inbound import Claimed, Taken
from storage.models import utcnow
from storage.records import Person
from storage.unit import Conflict, customer_key

__all__ = ["Engine", "WriteCost"]

log = logging.getLogger(__name__)


class _LeaseLost(Exception):
    """Our claim on a voice note expired and another worker took it: roll back, do nothing."""


_LEAST_PER_EVENT = 0.00005  # s: no event's rows are written faster (a noisy line's floor)
_QUIET = 0.2  # s without a new event: the intake is quiet (nobody waits on the write lock)
_RECHECK = (0.05, 2.0)  # PostgreSQL: first and last wait before looking again unwoken (s)


def _point(events: int, fixed: float, per_event: float) -> list[float]:
    """One unit's share of the line's sums: weight, events, seconds, events², events × s."""
    seconds = fixed + per_event * events
    return [1.0, float(events), seconds, float(events * events), events * seconds]


class WriteCost:
    """How long a unit's write holds SQLite's write lock: ``fixed + per_event × events``, a
    least-squares line through recent units (older ones fade). The fixed part (BEGIN, COMMIT,
    the trips that do not grow with the batch) must not be charged per event: a unit of one
    event that takes 5 ms would otherwise make every next unit one event again, for good.
    While the units seen were all of one size the line is unknown: a unit that found its batch
    full, and would be followed by one of the same size, is followed by one a size larger."""

    def __init__(self, *, fixed: float = 0.002, per_event: float = 0.0003) -> None:
        self.fixed, self.per_event = fixed, per_event
        self._sums = [0.0] * 5  # weight, events, seconds, events², events × seconds
        for events in (1, 16):  # the guess counts as two units, until real ones outweigh it
            self._sums = [
                a + b for a, b in zip(self._sums, _point(events, fixed, per_event), strict=True)
            ]
        self._probe = 0  # the next size to try (0: none)
        self._budget = 0.010  # (the last asked for)

    def add(self, events: int, seconds: float, *, full: bool) -> None:
        point = _point(events, seconds, 0.0)
        self._sums = [0.9 * a + b for a, b in zip(self._sums, point, strict=True)]
        w, n, t, nn, nt = self._sums
        mean_n, mean_t = n / w, t / w
        spread = nn / w - mean_n * mean_n
        self._probe = 0
        if spread > 0.1:  # sizes varied enough to tell the two parts apart
            self.per_event = max((nt / w - mean_n * mean_t) / spread, _LEAST_PER_EVENT)
            self.fixed = min(max(mean_t - self.per_event * mean_n, 0.0), mean_t)
        else:
            self.per_event = max((mean_t - self.fixed) / max(mean_n, 1.0), _LEAST_PER_EVENT)
            if full and self._fits(1 << 30) == events:  # stuck at one size: try one more
                self._probe = events + 1

    def size(self, budget: float, most: int) -> int:
        """Events per unit for a write of about ``budget`` seconds (at least one)."""
        self._budget = budget
        return max(1, min(most, max(self._fits(most), self._probe)))

    def _fits(self, most: int) -> int:
        budget = self._budget  # (the fixed part is paid anyway: half the budget at least
        room = max(budget - self.fixed, budget / 2)  # goes to events, however slow a write was)
        return min(most, int(room / self.per_event))


class Engine:
    def __init__(
        self,
        db: Database,
        work: Work,
        adapters: Mapping[str, Adapter],
        ears: Ears | None = None,
        *,
        lease: timedelta = timedelta(seconds=30),
        max_attempts: int = 3,
        batch: int = 64,
        budget: float = 0.010,
        quiet_budget: float = 0.050,
        yield_to_intake: Callable[[], Awaitable[None]] | None = None,
        intake_quiet_for: Callable[[], float] | None = None,
    ) -> None:
        """``batch``: most events per unit; ``budget``: seconds a unit's write aims to hold
        SQLite's write lock (the intake waits for it); ``yield_to_intake``: waits while the
        intake has a commit due (answers wait on those, so they go first); ``intake_quiet_for``:
        seconds since the intake last took an event — after ``_QUIET`` of them a unit's write
        may hold the lock for ``quiet_budget`` instead (a backlog drains in larger units, each
        paying its reads, BEGIN and COMMIT once; an answer that comes meanwhile waits at most
        that long, once)."""
        self.db = db
        self.work = work
        self.adapters = adapters
        self.ears = ears or Ears(adapters, None)
        self.lease = lease
        self.max_attempts = max_attempts
        self.batch = batch
        self.budget = budget
        self.quiet_budget = quiet_budget
        self.yield_to_intake = yield_to_intake
        self.intake_quiet_for = intake_quiet_for
        self.wake = asyncio.Event()
        self._stopping = False
        self._voice: set[asyncio.Task[None]] = set()
        self._cost = WriteCost()  # what a unit's write costs, by its number of events (SQLite)
        self._alone = 0  # units to run one event at a time (after a unit failed to commit)
        # The last unit's claim found fewer events than it could take and left none to try
        # again: on SQLite (one process writes it; the intake wakes us after each commit)
        # nothing is waiting, so the pump stops without one more look.
        self._drained = False
        self._retrying = False  # the last unit left an event pending, to be tried again
        # PostgreSQL: the last claim that found events took a full batch — a backlog, which
        # other workers' units may be holding when this one's next claim finds nothing.
        self._backlog = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def env(self) -> Env:
        return self.work.env

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
        recheck = 0.0  # s until looking again unwoken (0: until woken)
        while not self._stopping:
            self.wake.clear()
            self._idle.clear()
            handled = 0
            try:
                handled = await self.pump()
            except Exception:
                log.exception("inbound processing loop failed; retrying")
            self._idle.set()
            recheck = self._recheck(handled, recheck)
            if not recheck:
                await self.wake.wait()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), recheck)

    def _recheck(self, handled: int, last: float) -> float:
        """PostgreSQL: how long to wait before claiming again when nothing wakes this worker.
        The events of a backlog are in other workers' units for a moment (their chats are
        locked to them) and nobody wakes this one when those commit: after a full claim it
        looks again soon, then less and less often (the heartbeat's tick takes over)."""
        if self.db.is_sqlite or not self._backlog:
            return 0.0
        first, most = _RECHECK
        wait = first if handled or not last else last * 2
        if wait > most:
            self._backlog = False
            return 0.0
        return wait

    async def reclaim(self) -> None:
        """Give back voice notes whose worker died holding them (their lease lapsed); the
        heartbeat calls this. An idle check only reads."""
        now = utcnow()
        async with self.db.read() as s:
            if not await inbound.lapsed(s, now):
                return
        async with self.db.begin() as conn:
            count = await inbound.reclaim(conn, now)
        log.warning("%d inbound events whose claim lapsed are queued again", count)
        self.wake.set()

    async def idle(self) -> None:
        """Return once the engine has nothing in hand (tests wait for it)."""
        await self._idle.wait()

    async def pump(self) -> int:
        """Process everything claimable now; return how many events were handled."""
        total = 0
        while not self._stopping:
            if self.yield_to_intake is not None:
                await self.yield_to_intake()
            self.wake.clear()
            size = self._batch_size()
            handled = await self.step(size)
            if not handled:  # (a chat's next event is claimable once its last is done)
                break
            total += handled
            if self._drained and not self.wake.is_set():
                break  # the claim took everything pending, and nothing came in since
        return total

    def _batch_size(self) -> int:
        """SQLite: as many events as a write of ``budget`` seconds holds (the intake waits for
        a unit's write; deciding holds nothing). PostgreSQL: a full batch (units of several
        workers write side by side; fewer, larger ones cost less)."""
        if self._alone:
            self._alone -= 1
            return 1
        if not self.db.is_sqlite:
            return self.batch
        budget = self.budget
        if self.intake_quiet_for is not None and self.intake_quiet_for() >= _QUIET:
            budget = self.quiet_budget
        return self._cost.size(budget, self.batch)

    async def step(self, size: int = 1) -> int:
        """One unit of at most ``size`` events: claim, decide, write. Returns how many events
        it claimed."""
        rows: list[Claimed] = []
        self._drained = self._retrying = False
        sqlite = self.db.is_sqlite
        more = False  # SQLite: an event beyond this unit's was waiting
        try:
            async with self.work.unit() as tx:
                # SQLite's claim is a plain read: one event more than the unit takes tells
                # whether to look again after it (a full claim alone cannot tell).
                rows = await inbound.claimable(
                    tx.store.conn, limit=size + 1 if sqlite else size,
                    max_attempts=self.max_attempts,
                )  # fmt: skip
                if len(rows) > size:
                    rows, more = rows[:size], True
                if rows:  # the unit's moment is after its claim: an event stored since it began
                    tx.unit.now = self.work.clock()  # is not dated before it was received
                now = utcnow()
                taken = [r for r in rows if r.kind in inbound.LEASED]  # done on the side

                async def take(conn: AsyncConnection) -> None:
                    await inbound.take(conn, taken, now=now, lease_until=now + self.lease)

                if rows:
                    tx.before_write.append(take)
                else:
                    tx.idle = True
                rest = [r for r in rows if r.kind not in inbound.LEASED]
                if rest:
                    taken += await self._handle(tx, rest)
            if rows and sqlite:
                self._cost.add(len(rows), self.work.last_write, full=more)
                self._drained = not more and not self._retrying
            elif rows:
                self._backlog = len(rows) >= size
        except (Conflict, Taken) as exc:  # someone else changed what we read: read again
            log.info("a unit of %d events met a change made meanwhile (%s); again", len(rows), exc)
            return len(rows)
        except Exception as exc:
            if not rows:
                raise  # the claim itself failed (the database is away): the loop waits
            if len(rows) > 1:
                log.exception("a unit of %d events did not commit; taking them one by one", size)
                self._alone = len(rows)
            else:
                log.exception("the unit of event %d did not commit", rows[0].id)
                await self._unit_failed(rows[0], exc)
            return len(rows)
        for row in rows:
            if row.kind in inbound.LEASED:  # a download, a transcription: not holding others
                side = self._voice_note(row) if row.kind == "voice" else self._picture(row)
                task = asyncio.create_task(side, name=f"{row.kind}-{row.id}")
                self._voice.add(task)
                task.add_done_callback(self._voice.discard)
        return len(rows)

    async def _unit_failed(self, row: Claimed, exc: Exception) -> None:
        """A lone event whose unit could not commit: its claim rolled back with it, so count
        the attempt here (a poison event must not be claimed for ever); the last attempt is
        answered with an apology."""
        last = row.attempts >= self.max_attempts
        async with self.db.begin() as conn:
            await inbound.attempted(
                conn, row.id, row.attempts, "failed" if last else "pending", repr(exc)
            )
        if not last:
            self.env.metrics.processed.labels("retry").inc()
            return
        self.env.metrics.processed.labels("failed").inc()
        event = inbound_from_json(row.payload)
        try:
            async with self.work.unit() as tx:
                (person,) = await self._identify(tx, [row], [event])
                turn = Turn(tx.unit, f"{row.platform}:{row.event_id}:failed", person, event)
                self._answer(turn, event, say("error.internal", self.env.settings.locale))
        except Exception:
            log.exception("could not apologise for event %d", row.id)

    async def _handle(self, tx: Tx, rows: Sequence[Claimed]) -> list[Claimed]:
        """Decide the claimed events in order; return those handled (an event after one of
        its chat's that must be tried again stays pending: the chat's order holds)."""
        events = [inbound_from_json(r.payload) for r in rows]
        people = await self._identify(tx, rows, events)
        # The tickets the presses are about, with their cards and clocks, in a few queries
        # (locked on PostgreSQL: another worker's press on them waits for this unit).
        ids = []
        for e in events:
            if isinstance(e, Action):
                with contextlib.suppress(TokenInvalid):  # (the flow refuses it, with reasons)
                    ids.append(self.env.codec.decode(e.token).ticket_id)
        await tx.unit.preload(ids, lock=True)
        await tx.unit.expect_reports(  # the reports' ticket numbers and last sites, at once
            [
                (p.id, e.chat.ref)
                for e, p in zip(events, people, strict=True)
                if isinstance(e, Message)
            ]
        )
        outcomes: list[tuple[int, str, str | None]] = []
        handled: list[Claimed] = []
        waiting: set[str] = set()  # lanes with an event to try again
        for row, event, person in zip(rows, events, people, strict=True):
            if row.lane in waiting:
                continue
            handled.append(row)
            outcome = await self._run(tx, row, event, person)
            if outcome is not None:
                outcomes.append(outcome)
                if outcome[1] == "pending" and row.lane is not None:
                    waiting.add(row.lane)
            adapter = self.adapters.get(event.platform)
            if adapter is not None:
                entries = adapter.inbound_entries(event)
                if entries:
                    tx.feed.extend(entries)
                    tx.local.add(adapter)
            await asyncio.sleep(0)  # let the server answer requests between events
        self._retrying = any(status == "pending" for _, status, _ in outcomes)
        if outcomes:

            async def settle(conn: AsyncConnection) -> None:
                await inbound.settle(conn, outcomes)

            tx.before_write.append(settle)
        return handled

    async def _run(
        self,
        tx: Tx,
        row: Claimed,
        event: Inbound,
        person: Person,
        heard: Heard | None = None,
        seen: Seen | None = None,
    ) -> tuple[int, str, str | None] | None:
        """Decide one event; return its outcome when it is not a plain success."""
        key = f"{row.platform}:{row.event_id}"
        metrics = self.env.metrics
        try:
            with tx.unit.turn():
                turn = Turn(tx.unit, key, person, event, row.id)
                await self._dispatch(turn, event, heard, seen)
            metrics.processed.labels("done").inc()
            return None
        except FlowError as refusal:
            with tx.unit.turn():
                turn = Turn(tx.unit, key + ":refused", person, event)
                customer = person.role == "customer"  # (told the state in their words)
                self._answer(turn, event, refusal_text(refusal, turn.locale, customer=customer))
                if isinstance(event, Action):
                    await record_refusal(turn, event, refusal)
            metrics.processed.labels("refused").inc()
            return row.id, "done", f"refused: {refusal!r}"
        except Exception as exc:
            log.error(
                "processing %s event %s failed (attempt %d)",
                row.platform,
                row.event_id,
                row.attempts,
                exc_info=exc,
            )
            if row.attempts < self.max_attempts:
                metrics.processed.labels("retry").inc()
                return row.id, "pending", repr(exc)
            with tx.unit.turn():
                turn = Turn(tx.unit, key + ":failed", person, event)
                self._answer(turn, event, say("error.internal", self.env.settings.locale))
            metrics.processed.labels("failed").inc()
            return row.id, "failed", repr(exc)

    async def _dispatch(
        self, turn: Turn, event: Inbound, heard: Heard | None, seen: Seen | None = None
    ) -> None:
        match event:
            case Message():
                await handle_message(turn, event)
            case Action():
                await handle_action(turn, event)
            case Voice():
                await handle_voice(turn, event, heard or Heard())
            case Image():
                await handle_image(turn, event, seen or Seen(problem="unavailable"))

    def _answer(self, turn: Turn, event: Inbound, text: str) -> None:
        if isinstance(event, Action):
            turn.notify_presser(text)
        else:
            turn.reply(Text(text))

    async def _identify(
        self, tx: Tx, rows: Sequence[Claimed], events: Sequence[Inbound]
    ) -> list[Person]:
        """The person behind each event (the claim found those we know). Identities are keyed
        by the *sender's* platform, which can differ from the chat's surface (a WeCom AI-bot
        group speaks for WeCom members). Anyone not on the staff is a customer — one we have
        never seen is created here, speaking the language their platform reports when it is
        one we have texts in."""
        staff, customers = self.env.staff, self.env.customers
        out: list[Person] = []
        for row, e in zip(rows, events, strict=True):
            s = e.sender
            person = (
                staff.who(s.platform, s.user_id)
                or row.person
                or customers.get(s.platform, s.user_id)
                or tx.met.get((s.platform, s.user_id))  # new, earlier in this unit
            )
            if person is None:
                person = Person(
                    id=await tx.store.new_id("people"),
                    key=customer_key(s.platform, s.user_id),
                    name=s.name or s.user_id,
                    role="customer",
                    locale=_locale(s.locale),
                )
                tx.people.append(person)  # (remembered once the unit commits)
                tx.met[(s.platform, s.user_id)] = person
                tx.identities.append(
                    {
                        "person_id": person.id,
                        "platform": s.platform,
                        "external_id": s.user_id,
                        "display_name": s.name,
                    }
                )
            elif person.role == "customer":
                customers.add(s.platform, s.user_id, person)
            tx.unit.people.setdefault(person.id, person)
            out.append(person)
        return out

    # ------------------------------------------------------------------------ voice notes

    async def _voice_note(self, row: Claimed) -> None:
        event = inbound_from_json(row.payload)
        assert isinstance(event, Voice)
        key = f"{row.platform}:{row.event_id}"
        try:
            async with self.work.unit() as tx:
                (person,) = await self._identify(tx, [row], [event])
                acknowledge(Turn(tx.unit, key + ":ack", person, event))  # keyed: said once
            await self._run_leased(row, event, heard=await self._hear(row, event))
        except _LeaseLost:
            log.warning("voice note %s was taken over by another worker; left to it", key)
        except Exception:
            log.exception("voice note %s failed; it will be claimed again", key)

    async def _picture(self, row: Claimed) -> None:
        """A picture sent in chat: downloaded outside any transaction (the claim's lease kept
        as for a voice note), then handled in a unit of its own."""
        event = inbound_from_json(row.payload)
        assert isinstance(event, Image)
        key = f"{row.platform}:{row.event_id}"
        try:
            limit = self.env.settings.closure.photo_max_bytes
            seen = await look(self.adapters, event, limit, within=0.8 * self.lease.total_seconds())
            await self._run_leased(row, event, seen=seen)
        except _LeaseLost:
            log.warning("picture %s was taken over by another worker; left to it", key)
        except Exception:
            log.exception("picture %s failed; it will be claimed again", key)

    async def _run_leased(
        self, row: Claimed, event: Inbound, *, heard: Heard | None = None, seen: Seen | None = None
    ) -> None:
        """Decide an event taken on a lease (a voice note once heard, a picture once fetched)
        in a unit of its own, which also marks it finished; ``_LeaseLost`` when another worker
        took it over meanwhile (the unit then writes nothing)."""
        async with self.work.unit() as tx:
            (person,) = await self._identify(tx, [row], [event])
            outcome = await self._run(tx, row, event, person, heard, seen=seen)
            status, error = ("done", None) if outcome is None else outcome[1:]

            async def finish(conn: AsyncConnection) -> None:
                if not await inbound.finish(
                    conn, row.id, row.attempts, status, now=utcnow(), error=error
                ):
                    raise _LeaseLost()

            tx.before_write.append(finish)

    async def _hear(self, row: Claimed, event: Voice) -> Heard:
        hearing = asyncio.create_task(self.ears.hear(event))
        while True:
            done, _ = await asyncio.wait({hearing}, timeout=self.lease.total_seconds() / 3)
            if done:
                return hearing.result()
            async with self.db.begin() as conn:  # still working on it: keep the claim
                await inbound.extend(conn, row.id, row.attempts, utcnow() + self.lease)


def _locale(hint: str | None) -> str | None:
    if not hint:
        return None
    hint = hint.lower()
    return "zh" if hint.startswith("zh") else "en" if hint.startswith("en") else None
