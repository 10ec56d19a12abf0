"""Three ``gongdan serve`` workers on one PostgreSQL share a burst of Telegram fault reports,
and one of them is SIGKILLed mid-run: nothing acknowledged is lost, nothing is doubled, nothing
is sent twice, and each chat's order is kept.

Black box: webhook updates go in over HTTP, the replies come out at one fake Telegram Bot API,
and the database is only read. The burst is ``GONGDAN_WORKERS_EVENTS`` updates (default 10,000):
customers in private chats send ``PER_CHAT`` distinct fault reports each, so every update becomes
one ticket. A chat's next update is posted only once the previous one was answered 200 (as a
platform delivers one chat's updates in order), to the next worker in round-robin; up to
``IN_FLIGHT`` chats are posted at once. When ``KILL_AT`` of the updates are acknowledged, one
worker is SIGKILLed; posts that were in flight to it and not answered 200 are re-sent to a
survivor (a platform retries), the rest of the burst goes to the two survivors.

Then, once every acknowledged update is a ticket and the outbox has nothing pending or sending:

- 0 lost: every acknowledged update id is the source of exactly one ticket;
- 0 doubled: no update made two tickets, and no ticket came from elsewhere;
- 0 double sends: each ticket's acknowledgement ("已收到您的报修，工单号 GD-n") and customer card
  reached the customer's chat once, its staff card the assignee's direct chat once — except a
  send the killed worker made in its last moment: a platform call cannot be undone or looked
  up, so one that reached the platform while its record died with the worker goes out again
  from a survivor (the outbox records each send within milliseconds; at most a few are caught
  in that window, and they are counted and printed);
- per-chat order: in each customer chat the acknowledgements arrive in the order of that chat's
  update ids, and each ticket's acknowledgement before its card;
- every worker did part of the work, the survivors answered nothing but 200 and stop cleanly.

Sizes are parameters (environment variables, read when the module is imported):
``GONGDAN_WORKERS_EVENTS`` (default 10,000) and ``GONGDAN_WORKERS_WITHIN`` (seconds allowed for
the system to finish after the last post; default ``max(150, events / 40)``). The bot-wide send
limit is raised to 1,000/s (``telegram.messages_per_second``) and there is an engineer per 50
tickets, so Telegram's 1 message/s per chat does not dominate the engineers' direct chats.
With ``-s`` the test prints its timings and each process's CPU time::

    GONGDAN_WORKERS_EVENTS=300 pytest -s tests/test_many_workers.py
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import resource
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.adapters.telegram.adapter import SECRET_HEADER, WEBHOOK_PATH
from storage import inbound as inbound_table
from storage import outbox as outbox_table
from storage.db import Database
from storage.models import Person, Ticket
from tests.adapters.telegram_driver import SECRET
from tests.conftest import eventually
from tests.fakes_telegram import TOKEN, FakeBotApi
from tests.workers import Worker

PER_CHAT = 4
CHATS = max(1, int(os.environ.get("GONGDAN_WORKERS_EVENTS", "10000")) // PER_CHAT)
EVENTS = CHATS * PER_CHAT
WITHIN = float(os.environ.get("GONGDAN_WORKERS_WITHIN", max(150.0, EVENTS / 40)))
IN_FLIGHT = min(200, CHATS)
#: SIGKILL one worker once this many updates are acknowledged (about 40 %).
KILL_AT = EVENTS * 2 // 5
#: Posts of one update at most (a failed one goes to the next live worker).
ATTEMPTS = 6
#: Engineers e000…, Telegram users 71000…; about 50 tickets each (routing counts at most 100).
ENGINEERS = {f"e{i:03d}": 71000 + i for i in range(max(10, EVENTS // 50))}
#: Customer c is Telegram user (and private chat) 800000000 + c.
CUSTOMER_BASE = 800_000_000
#: Update j of chat c has id UPDATE_BASE + j * CHATS + c: unique, and rising within each chat.
UPDATE_BASE = 600_000_000
PROCESSED = "gongdan_processed_events_total"
NUMBER = re.compile(r"\bGD-(\d+)\b")
#: A send the killed worker made this close before its death may have reached the platform
#: without its record committing (the outbox records each send within milliseconds; the
#: margin covers a busy event loop), and at most this many such sends are tolerated.
IN_FLIGHT_S = 2.0
MAX_IN_FLIGHT = 50
ACK = "已收到您的报修"
HEADERS = {"Content-Type": "application/json", SECRET_HEADER: SECRET}

pytestmark = [
    pytest.mark.slow,
    # The drain's allowance, and as much again for starting, posting and checking.
    pytest.mark.timeout(int(WITHIN + max(WITHIN, 120))),
    pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning"),
]

_POLICY = """
[sla.policies.{p}]
respond = "30d"
arrive = "off"
resolve = "off"
calendar = "24x7"
"""

CONFIG = (
    """
[server]
port = {port}
[database]
url = "{db}"
[api]
token = "t"
[security]
secret_key = "many-workers"
[limits]
exempt = ["127.0.0.1"]
[asr]
enabled = false
[webchat]
enabled = false
[tickets]
auto_close_hours = 0
[telegram]
enabled = true
bot_token = "{token}"
webhook_secret = "{secret}"
api_base_url = "{api}"
messages_per_second = 1000
[sla]
warn_at = []
stay = {{}}
"""
    + "".join(_POLICY.format(p=p) for p in ("P0", "P1", "P2", "P3"))
    + """
{people}
[[teams]]
id = "maint"
name = "维修组"
members = [{members}]
"""
)


def _people() -> str:
    return "".join(
        f'[[people]]\nid = "{key}"\nname = "工程师{key}"\nmax_open = 100000\n'
        f'identities = ["telegram:{uid}"]\n'
        for key, uid in ENGINEERS.items()
    )


def update_id(chat: int, j: int) -> int:
    return UPDATE_BASE + j * CHATS + chat


def report(chat: int, j: int) -> dict[str, Any]:
    """Customer ``chat``'s ``j``-th fault report, in their private chat."""
    uid = CUSTOMER_BASE + chat
    user = {"id": uid, "is_bot": False, "first_name": f"客户{chat}", "language_code": "zh-hans"}
    message = {
        "message_id": j + 1,
        "from": user,
        "chat": {"id": uid, "type": "private", "first_name": f"客户{chat}"},
        "date": int(time.time()),
        "text": f"{chat}号注塑机停机了，报警E1{j:02d}，在二车间",
    }
    return {"update_id": update_id(chat, j), "message": message}


@dataclass
class Burst:
    """Posts every chat's reports in order, round-robin over the live workers, and SIGKILLs
    ``victim`` once ``KILL_AT`` updates are acknowledged."""

    http: aiohttp.ClientSession
    workers: list[Worker]
    victim: Worker
    alive: list[Worker] = field(init=False)
    acked: dict[int, str] = field(default_factory=dict)  # update id → worker that said 200
    answers: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    refused: Counter[str] = field(default_factory=Counter)  # connection errors, by worker
    resent: int = 0  # updates posted more than once
    unacked: list[int] = field(default_factory=list)
    victim_processed: Counter[str] = field(default_factory=Counter)
    victim_cpu: float | None = None
    killed_at: float | None = None
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _chats: Iterator[int] = field(default_factory=lambda: iter(range(CHATS)))
    _kill: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.alive = list(self.workers)

    async def run(self) -> None:
        killer = asyncio.create_task(self._killer())
        try:
            await asyncio.gather(*(self._lane() for _ in range(IN_FLIGHT)))
        finally:
            self._kill.set()  # a burst too small to reach KILL_AT still kills, at its end
            await killer

    async def _killer(self) -> None:
        await self._kill.wait()
        self.victim_processed = await self.victim.metric(self.http, PROCESSED, "outcome")
        self.victim_cpu = self.victim.cpu_seconds()
        self.alive = [w for w in self.workers if w is not self.victim]
        self.victim.kill()
        self.killed_at = time.monotonic()

    async def _lane(self) -> None:
        for chat in self._chats:  # shared: each lane takes the next chat not yet taken
            for j in range(PER_CHAT):
                if not await self._post(report(chat, j)):
                    self.unacked.append(update_id(chat, j))
                    break  # the chat's later reports would overtake this one

    async def _post(self, update: dict[str, Any]) -> bool:
        body = json.dumps(update).encode()
        for attempt in range(ATTEMPTS):
            worker = self.alive[next(self._turn) % len(self.alive)]
            if attempt == 1:
                self.resent += 1
            try:
                async with self.http.post(
                    worker.base + WEBHOOK_PATH, data=body, headers=HEADERS
                ) as r:
                    status = r.status
            except (aiohttp.ClientError, TimeoutError):
                self.refused[worker.name] += 1
                continue
            self.answers[worker.name][status] += 1
            if status == 200:
                self.acked[update["update_id"]] = worker.name
                if len(self.acked) >= KILL_AT:
                    self._kill.set()
                return True
        return False


@dataclass
class Drained:
    tickets: int
    inbound: dict[str, int]
    outbox: dict[str, int]


@dataclass
class Progress:
    """Read-only counts of the shared database, and the last ones seen (for a timeout)."""

    db: Database
    expected: int
    last: Drained | None = None
    made_at: float | None = None  # when the tickets were first all made (monotonic)

    async def drained(self) -> Drained | None:
        """The counts once ``expected`` tickets exist and nothing is pending or in progress."""
        async with self.db.read() as s:
            tickets = int(await s.scalar(select(func.count()).select_from(Ticket)) or 0)
            inbound = await inbound_table.counts(s)
            outbox = await outbox_table.counts(s)
        self.last = Drained(tickets, inbound, outbox)
        busy = ("pending", "processing", "sending")
        made = tickets >= self.expected and not any(inbound.get(k) for k in busy)
        if made and self.made_at is None:
            self.made_at = time.monotonic()
        if tickets < self.expected or any(inbound.get(k) or outbox.get(k) for k in busy):
            return None
        return self.last


@dataclass(frozen=True)
class Made:
    number: str
    update: int | None  # the Telegram update it came from (None: not from one)
    origin_chat: str
    assignee: str | None  # the engineer's key


async def lane_history(db: Database) -> dict[str, list[tuple[int, str, str, str]]]:
    """Each chat's stored events in order: (id, update id, status, processed at) — what an
    order problem is read against."""
    from storage.models import InboundEvent

    out: dict[str, list[tuple[int, str, str, str]]] = defaultdict(list)
    async with db.read() as s:
        rows = await s.execute(
            select(
                InboundEvent.lane,
                InboundEvent.id,
                InboundEvent.event_id,
                InboundEvent.status,
                InboundEvent.processed_at,
            ).order_by(InboundEvent.id)
        )
        for lane, i, event_id, status, at in rows:
            out[str(lane).partition(":")[2]].append((i, event_id, status, str(at)[11:23]))
    return out


async def tickets_made(db: Database) -> list[Made]:
    async with db.read() as s:
        keys = dict((await s.execute(select(Person.id, Person.key))).all())
        rows = await s.execute(
            select(Ticket.number, Ticket.source_event, Ticket.origin_chat, Ticket.assignee_id)
        )
        out = []
        for number, source, origin, assignee_id in rows.all():
            m = re.fullmatch(r"telegram:(\d+)", source or "")
            out.append(
                Made(
                    str(number),
                    int(m.group(1)) if m else None,
                    origin,
                    keys.get(assignee_id) if assignee_id is not None else None,
                )
            )
        return out


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    await fake.start()
    yield fake
    await fake.stop()


def sample(items: Any, n: int = 10) -> list[Any]:
    return sorted(items)[:n]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_three_workers_share_a_burst_and_lose_double_or_reorder_nothing_when_one_is_killed(
    db_url: str, bot_api: FakeBotApi, tmp_path: Path
) -> None:
    # Each worker calls the Bot API under a path of its own: the fake knows who sent what.
    workers = [
        Worker(
            tmp_path,
            name,
            CONFIG.format(
                port="{port}",
                db=db_url,
                token=TOKEN,
                secret=SECRET,
                api=f"{bot_api.base_url}/{name}",
                people=_people(),
                members=", ".join(f'"{k}"' for k in ENGINEERS),
            ),
        )
        for name in ("w1", "w2", "w3")
    ]
    victim, survivors = workers[1], [workers[0], workers[2]]
    db = Database(db_url)
    codes: list[int | None] = []
    timings: dict[str, float] = {}
    try:
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=IN_FLIGHT + 10)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            try:
                for w in workers:  # all at once: they take turns writing the staff
                    w.spawn()
                for w in workers:
                    await w.wait_healthy(http)

                burst = Burst(http, workers, victim)
                started, own_cpu = time.monotonic(), _own_cpu()
                await burst.run()
                posted = time.monotonic()
                timings["post"] = posted - started
                assert burst.killed_at is not None
                timings["kill"] = burst.killed_at - started
                await victim.wait_exit()

                progress = Progress(db, len(burst.acked))
                try:
                    final: Drained = await eventually(
                        progress.drained,
                        within=WITHIN,
                        what="every acknowledged update to be a ticket and the outbox to drain",
                        every=0.5,
                    )
                except AssertionError as exc:
                    raise AssertionError(f"{exc}; last seen {progress.last}") from None
                timings["drain"] = time.monotonic() - posted
                cpu_self = _own_cpu() - own_cpu
                assert progress.made_at is not None
                timings["made"] = progress.made_at - posted
                timings["sent"] = max(c.at for c in bot_api.calls) - posted
                processed = {w.name: await w.metric(http, PROCESSED, "outcome") for w in survivors}
                cpu = {w.name: w.cpu_seconds() for w in survivors} | {victim.name: burst.victim_cpu}
            finally:
                for w in workers:
                    w.terminate()
                for w in workers:
                    codes.append(await w.wait_exit())
        made = await tickets_made(db)
        history = await lane_history(db)
    finally:
        await db.dispose()

    logs = "\n".join(f"--- {w.name}\n{w.tail()}" for w in workers)
    summary = (
        f"{EVENTS} updates from {CHATS} chats to 3 workers, {len(ENGINEERS)} engineers: "
        f"posted in {timings['post']:.1f} s ({EVENTS / timings['post']:.0f}/s), "
        f"{victim.name} killed at {timings['kill']:.1f} s "
        f"(it had acknowledged {Counter(burst.acked.values())[victim.name]}, processed "
        f"{dict(burst.victim_processed)}); after the last post the tickets were all made in "
        f"{timings['made']:.1f} s, the last message sent in {timings['sent']:.1f} s, all seen "
        f"done in {timings['drain']:.1f} s; survivors processed {processed}; "
        f"CPU seconds {cpu}, this test's own {cpu_self:.1f}; {burst.resent} posts re-sent, "
        f"connection errors {dict(burst.refused)}; {final}"
    )
    print(summary)

    # The harness itself: every update was acknowledged, and the victim died of SIGKILL.
    assert not burst.unacked, f"never acknowledged: {sample(burst.unacked)}\n{summary}"
    assert len(burst.acked) == EVENTS
    assert codes[1] == -signal.SIGKILL, codes

    # Sends the killed worker made in its last moment, before it could record them.
    in_flight, _ = resent_after_the_kill(bot_api, burst)
    print(f"sent again after the kill (in flight when it came): {len(in_flight)}")

    # The system under test: everything it got wrong, at once.
    problems = [
        *serving(burst, survivors, codes, final),
        *tickets_check(burst, made),
        *messages_check(bot_api, made, burst, in_flight, history),
    ]
    acked_by = Counter(burst.acked.values())
    if not all(acked_by[w.name] > 0 for w in workers):
        problems.append(f"a worker acknowledged nothing: {acked_by}")
    if not all(processed[w.name]["done"] > 0 for w in survivors):
        problems.append(f"a survivor processed nothing: {processed}")
    assert not problems, "\n".join([summary, *problems, logs])


def serving(
    burst: Burst, survivors: list[Worker], codes: list[int | None], final: Drained
) -> Iterator[str]:
    """The survivors answered only 200 and stopped cleanly; nothing failed or went dead."""
    for w in survivors:
        if set(burst.answers[w.name]) != {200}:
            yield f"{w.name} answered {dict(burst.answers[w.name])}"
    if [codes[0], codes[2]] != [0, 0]:
        yield f"the survivors did not stop cleanly: {codes}"
    if final.inbound.get("failed") or final.outbox.get("dead"):
        yield f"failed events or dead letters: {final}"


def _as_sent(key: tuple[str, str, str]) -> tuple[str, str, str]:
    chat, number, kind = key
    return chat, number, "ack" if kind == "ack" else "card"


def tickets_check(burst: Burst, made: list[Made]) -> Iterator[str]:
    """0 lost, 0 doubled: each acknowledged update is the source of exactly one ticket."""
    sources = Counter(t.update for t in made)
    lost = set(burst.acked) - set(sources)
    doubled = [u for u, n in sources.items() if n > 1]
    elsewhere = set(sources) - set(burst.acked)
    if lost:
        yield f"LOST: {len(lost)} acknowledged updates made no ticket: {sample(lost)}"
    if doubled:
        yield f"DOUBLED: {len(doubled)} updates made several tickets: {sample(doubled)}"
    if elsewhere:
        yield f"{len(elsewhere)} tickets not from an acknowledged update: {sample(elsewhere)}"


def resent_after_the_kill(
    bot_api: FakeBotApi, burst: Burst
) -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    """Messages sent twice, split in two: (a) the killed worker's send in its last moment and
    a survivor's after it — no platform call can be undone or looked up, so a send that
    reached the platform but whose record died with its worker is sent again (at least once,
    within milliseconds of the kill); (b) every other double send, which is a fault."""
    assert burst.killed_at is not None
    ambiguous, wrong = set(), set()
    for key, calls in _copies(bot_api).items():
        if len(calls) < 2:
            continue
        first, *rest = sorted(calls, key=lambda c: c.at)
        # (requests it had sent may reach the platform just after it died)
        last_moment = abs(first.at - burst.killed_at) <= IN_FLIGHT_S
        victim = burst.victim.name
        if first.via == victim and last_moment and len(rest) == 1 and rest[0].via != victim:
            ambiguous.add(key)
            continue
        wrong.add(key)
    return ambiguous, wrong


def _copies(bot_api: FakeBotApi) -> dict[tuple[str, str, str], list[Any]]:
    """Each message (chat, ticket, ack or card) → the calls that delivered it."""
    copies: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for call in bot_api.to("sendMessage"):
        for key in _message_keys(call):
            copies[key].append(call)
    return copies


def _message_keys(call: Any) -> list[tuple[str, str, str]]:
    chat, text = str(call.params.get("chat_id")), str(call.params.get("text"))
    numbers = NUMBER.findall(text)
    if not numbers:
        return []
    kind = "ack" if text.startswith(ACK) else "card"
    return [(chat, f"GD-{numbers[0]}", kind)]


def messages_check(
    bot_api: FakeBotApi,
    made: list[Made],
    burst: Burst,
    in_flight: set[tuple[str, str, str]],
    history: dict[str, list[tuple[int, str, str, str]]],
) -> Iterator[str]:
    """0 double sends (but those in flight at the kill, see ``resent_after_the_kill``),
    nothing missing or misdirected, and each chat's order kept."""
    customer_chats = {str(CUSTOMER_BASE + c) for c in range(CHATS)}
    engineer_chats = {str(uid) for uid in ENGINEERS.values()}
    sends: Counter[tuple[str, str, str]] = Counter()  # (chat, ticket number, kind) → how many
    in_chat: dict[str, list[tuple[str, str]]] = defaultdict(list)  # chat → [(kind, number)]
    strays: list[tuple[str, str]] = []
    for call in bot_api.calls:
        if call.method == "getMe":  # each worker asks once, at start
            continue
        chat, text = str(call.params.get("chat_id")), str(call.params.get("text"))
        numbers = NUMBER.findall(text)
        if call.method != "sendMessage" or call.status != 200 or not numbers:
            strays.append((call.method, f"{call.status} {chat}: {text[:100]}"))
            continue
        if chat in customer_chats and text.startswith(ACK):
            kind = "ack"
        elif chat in customer_chats and call.params.get("reply_markup"):
            kind = "card"
        elif chat in engineer_chats and call.params.get("reply_markup"):
            kind = "staff card"
        else:
            strays.append((call.method, f"{chat}: {text[:100]}"))
            continue
        number = f"GD-{numbers[0]}"
        sends[(chat, number, kind)] += 1
        in_chat[chat].append((kind, number))

    twice = [k for k, n in sends.items() if n > 1 and _as_sent(k) not in in_flight]
    if twice:
        assert burst.killed_at is not None
        when = {
            key: [(c.via, round(c.at - burst.killed_at, 2)) for c in calls]
            for key, calls in _copies(bot_api).items()
            if key in {_as_sent(k) for k in twice}
        }
        yield (
            f"DOUBLE SENDS: {len(twice)} messages were sent more than once: {sample(twice)}; "
            f"by whom, when (s after the kill): {sample(when.items())}"
        )
    if len(in_flight) > MAX_IN_FLIGHT:
        yield f"{len(in_flight)} sends were in flight when the worker was killed: {in_flight}"
    if strays:
        yield f"{len(strays)} unexpected calls: {strays[:10]}"
    expected: set[tuple[str, str, str]] = set()
    for t in made:
        if t.update is None:
            continue
        chat = str(CUSTOMER_BASE + (t.update - UPDATE_BASE) % CHATS)
        expected |= {(chat, t.number, "ack"), (chat, t.number, "card")}
        if t.assignee is not None:
            expected.add((str(ENGINEERS[t.assignee]), t.number, "staff card"))
    unassigned = [t.number for t in made if t.assignee is None]
    if unassigned:
        yield f"{len(unassigned)} tickets were not assigned: {sample(unassigned)}"
    missing, misdirected = expected - set(sends), set(sends) - expected
    if missing:
        yield f"{len(missing)} messages never arrived: {sample(missing)}"
    if misdirected:
        yield f"{len(misdirected)} messages went to the wrong chat: {sample(misdirected)}"

    # Per-chat order: acknowledgements in update order, each before its ticket's card.
    # The j-th report of a chat is update UPDATE_BASE + j * CHATS + chat.
    report_no = {t.number: (t.update - UPDATE_BASE) // CHATS for t in made if t.update}
    out_of_order, card_first = [], []
    for chat in sorted(customer_chats):
        seen = in_chat[chat]
        acks = [report_no.get(n, -1) for kind, n in seen if kind == "ack"]
        if acks != sorted(acks):
            out_of_order.append((chat, [f"{k} {n} (report {report_no.get(n)})" for k, n in seen]))
        acknowledged: set[str] = set()
        for kind, n in seen:
            if kind == "ack":
                acknowledged.add(n)
            elif n not in acknowledged:
                card_first.append((chat, n))
    if out_of_order:
        yield (
            f"ORDER: in {len(out_of_order)} of {CHATS} chats the acknowledgements came out of "
            f"the order of the reports, e.g. {out_of_order[:2]}; their events (id, update, "
            f"status, processed at): {[history.get(chat) for chat, _ in out_of_order[:2]]}"
        )
    if card_first:
        yield f"ORDER: {len(card_first)} cards came before their acknowledgement: {card_first[:5]}"
