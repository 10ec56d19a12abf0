#!/usr/bin/env python
"""Button press → transition throughput: how many 接单 (accept) presses per second the hub
answers, and how many of them it turns into ticket transitions per second.

One fresh ``gongdan serve`` (SQLite by default, or a scratch PostgreSQL database) with engineers
whose ``max_open`` is large, so that every report is assigned. N fault reports are posted
through the web chat and waited for until they are all tickets with their replies delivered.
Each ticket's accept button is then read from its assignee's card, the way the console page
reads it (the live stream, ``GET /webchat/api/stream``), and all N presses are posted
(``POST /webchat/api/actions``) as the assignee: as fast as the server answers, or at a fixed
open-loop rate. Processing is timed from the first press sent until every ticket's state is
``accepted``, read through a read-only database connection as ``bench/ingest.py`` does.

The server is a black box over HTTP and a read-only view of its database; see
``bench/README.md`` for how to run it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SELF = Path(__file__).resolve()
REPO = SELF.parent.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from bench.ingest import (  # noqa: E402
    Fired,
    Server,
    Target,
    TicketCounter,
    _check_loopback,
    _fmt,
    code_digest,
    create_sessions,
    machine,
    machine_busy_seconds,
    make_bodies,
    open_loop,
    outbox_left,
    percentile,
    running_server,
    server_pinning,
    wait_quiet,
    wait_replies,
)

HEADERS = {"Content-Type": "application/json"}
IDLE_S = 5.0  # no new row on any staff stream for this long: they have sent everything


def staff_config(engineers: int) -> str:
    """``[[people]]`` and ``[[teams]]``: engineers e1…eN who never reach capacity, a manager, and
    one team with a web chat group, as in ``gongdan.example.toml``. Repeat reports are off: the
    bench's 2,000 look-alike reports would otherwise wait as suspected repeats of a few first
    ones for a dispatcher's decision, unassigned, and there would be nothing to accept."""
    out = ["\n[intake]\nrepeat_hours = 0\n"]
    for i in range(1, engineers + 1):
        out.append(
            f"""
[[people]]
id = "e{i}"
name = "工程师{i}"
role = "engineer"
identities = ["web:e{i}"]
skills = ["equipment_failure", "network_it"]
max_open = 1000000
"""
        )
    members = ", ".join(f'"e{i}"' for i in range(1, engineers + 1))
    out.append(
        f"""
[[people]]
id = "zhao"
name = "赵经理"
role = "manager"
identities = ["web:zhao"]

[[teams]]
id = "maint"
name = "设备维修组"
members = [{members}]
lead = "zhao"
chats = ["web:team"]
"""
    )
    return "".join(out)


@dataclass(slots=True)
class Result:
    target: str
    tickets: int
    engineers: int
    mode: str  # "closed, C in flight" or "open loop at R/s"
    code: str = ""
    pinning: str = ""
    # Setup: N reports → N tickets with their replies; then the tokens.
    setup_tickets_s: float | None = None  # first report posted → N tickets
    setup_replies_s: float | None = None  # first report posted → their replies delivered
    tokens: int = 0  # tickets whose assignee's current card has an accept button
    tokens_s: float | None = None  # reading them from the staff streams
    # Presses.
    pressed: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    answered_per_s: float = float("nan")  # 202 answers / (last answer − first press)
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    max_ms: float = float("nan")
    server_cpu_pct: float = float("nan")  # while pressing and answering; 100 = one core
    other_cpu_pct: float = float("nan")
    # The server's CPU from the first press until every pressed ticket is accepted, per
    # transition: the cost of a press, whatever else the machine runs meanwhile.
    cpu_ms_per_transition: float = float("nan")
    # Processing: state 'accepted', read from the tickets table.
    accepted: int = 0
    all_accepted: bool = False
    accept_s: float | None = None  # first press sent → every pressed ticket accepted
    transitions_per_s: float | None = None  # accepted / accept_s
    transitions_during_per_s: float | None = None  # accepted while presses were being sent
    outbox_left: int | None = None  # outbox rows pending/sending when all were accepted
    outbox_empty_s: float | None = None  # first press → nothing pending/sending in the outbox
    refused: int | None = None  # presses the hub refused (ticket_events kind 'refused')


@dataclass(frozen=True, slots=True)
class StaffSession:
    person: str
    token: str
    conversation: str  # their direct conversation on the web chat


@dataclass(frozen=True, slots=True)
class Press:
    person: str
    conversation: str
    key: str  # the card's message key
    token: str


async def staff_session(
    http: aiohttp.ClientSession, base: str, person: str, config: Path | None
) -> StaffSession:
    """Sign ``person`` in with a one-time link, as ``gongdan login-link`` makes it (the bench
    holds the server's config and secret)."""
    from bot.access import Access
    from bot.config import load_settings
    from bot.hub import load_secret

    assert config is not None, "a bare server has no staff"
    settings = load_settings(config)
    link = Access(None, settings, load_secret(settings)).issue_link(person, "bench")  # type: ignore[arg-type]
    body = {"link": link.partition("#login=")[2], "bearer": True}
    async with http.post(base + "/console/api/sign-in", json=body) as r:
        if r.status != 200:
            raise RuntimeError(f"staff session for {person}: HTTP {r.status}: {await r.text()}")
        answer = await r.json()
    return StaffSession(person, str(answer["token"]), str(answer["conversation"]))


async def post_closed(
    http: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], concurrency: int
) -> Fired:
    """Post every body with ``concurrency`` requests in flight: each next one as soon as one is
    answered. Latency is answer − send."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    todo = iter(range(len(bodies)))
    t0 = loop.time()
    marks = {"send_end": t0, "last": t0}

    async def worker() -> None:
        for i in todo:
            sent = loop.time()
            marks["send_end"] = max(marks["send_end"], sent)
            try:
                async with http.post(url, data=bodies[i], headers=HEADERS) as r:
                    await r.read()
                    status = r.status
            except Exception as exc:  # every failure is counted; none stops the run
                errors[type(exc).__name__] += 1
                continue
            done = loop.time()
            marks["last"] = max(marks["last"], done)
            if status == 202:
                latencies.append(done - sent)
            else:
                errors[f"HTTP {status}"] += 1

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return Fired(latencies, errors, t0, marks["send_end"], marks["last"], 0.0)


async def wait_count(
    db: TicketCounter, sql: str, at_least: int, deadline: float, what: str
) -> tuple[int, float]:
    """Poll ``sql`` (a count) until it reaches ``at_least`` or ``deadline`` (loop time); prints
    progress every 15 s. Returns the last count and the loop time it was read."""
    loop = asyncio.get_running_loop()
    shown = loop.time()
    while True:
        n = int((await db.rows(sql))[0][0])
        now = loop.time()
        if n >= at_least or now >= deadline:
            return n, now
        if now - shown >= 15.0:
            print(f"  … {n}/{at_least} {what}", flush=True)
            shown = now
        await asyncio.sleep(0.25)


async def read_tokens(
    http: aiohttp.ClientSession,
    base: str,
    staff: Sequence[StaffSession],
    versions: dict[int, int],
    timeout_s: float,
) -> dict[int, Press]:
    """Each ticket's accept button on its assignee's current card, from the staff streams.

    Every engineer's stream (``after=0``) is read from the start. A card in the engineer's own
    conversation is sent to them as the assignee. The newest row per message key is the card as
    the page shows it now; it counts once its ``version`` is the ticket's current version (so
    its token is not stale) and it has an ``accept`` button. Reading stops when every ticket has
    one, when no stream has sent a row for ``IDLE_S`` (they have caught up), or after
    ``timeout_s``.
    """
    loop = asyncio.get_running_loop()
    found: dict[int, Press] = {}
    last_row = [loop.time()]

    def consider(s: StaffSession, row: dict[str, Any]) -> None:
        payload = row.get("payload") or {}
        tid = payload.get("ticket_id")
        if not isinstance(tid, int) or tid not in versions:
            return
        token = next(
            (
                b.get("token")
                for b in payload.get("buttons") or ()
                if isinstance(b, dict) and b.get("action") == "accept"
            ),
            None,
        )
        if token and payload.get("version") == versions[tid]:
            found[tid] = Press(s.person, s.conversation, str(row["key"]), str(token))
        elif tid in found and found[tid].key == row.get("key"):
            del found[tid]  # a newer version of that card without the button

    async def follow(s: StaffSession) -> None:
        url = base + "/webchat/api/stream"
        params = {"after": "0"}
        no_limit = aiohttp.ClientTimeout(total=None, sock_read=None)
        auth = {"Authorization": f"Bearer {s.token}"}
        async with http.get(url, params=params, headers=auth, timeout=no_limit) as r:
            if r.status != 200:
                raise RuntimeError(f"stream for {s.person}: HTTP {r.status}: {await r.text()}")
            async for line in r.content:
                if not line.startswith(b"data: "):
                    continue
                last_row[0] = loop.time()
                row = json.loads(line[6:])
                if row.get("kind") == "card" and row.get("conversation") == s.conversation:
                    consider(s, row)

    tasks = [asyncio.create_task(follow(s)) for s in staff]
    deadline = loop.time() + timeout_s
    try:
        while len(found) < len(versions) and loop.time() < deadline:
            if loop.time() - last_row[0] > IDLE_S:
                break  # every stream is waiting for new rows: nothing more is coming
            for t in tasks:
                if t.done():
                    raise RuntimeError(f"a staff stream ended: {t.exception()!r}")
            await asyncio.sleep(0.1)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return found


async def measure(server: Server, args: argparse.Namespace, res: Result) -> Result:
    db = server.counter
    assert db is not None
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=10_000, limit_per_host=10_000)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60.0)
    ) as http:
        # 1. N tickets, from several customers, and their replies (the staff cards among them).
        customers = await create_sessions(http, server.base, args.sessions)
        reports = make_bodies(customers, args.tickets, f"r{uuid.uuid4().hex[:8]}")
        t_setup = loop.time()
        deadline = t_setup + args.setup_timeout
        posted = await post_closed(http, server.base + "/webchat/api/messages", reports, 32)
        if posted.errors:
            raise RuntimeError(f"reports not accepted: {dict(posted.errors)}")
        n, at = await wait_count(
            db, "SELECT count(*) FROM tickets", args.tickets, deadline, "tickets"
        )
        if n < args.tickets:
            raise RuntimeError(f"only {n} of {args.tickets} tickets after {args.setup_timeout} s")
        res.setup_tickets_s = at - t_setup
        print(f"  {n} tickets in {res.setup_tickets_s:.1f} s", flush=True)
        rep = await wait_replies(db, deadline)
        res.setup_replies_s = (rep.done_at or rep.waited_until) - t_setup
        print(
            f"  their replies in {res.setup_replies_s:.1f} s"
            + ("" if rep.done_at else f" (NOT all: {rep.unanswered} unanswered)")
            + f", {dict(rep.replies)}",
            flush=True,
        )

        # 2. Every ticket's accept token, from its assignee's card.
        versions = {
            int(tid): int(ver)
            for tid, ver in await db.rows(
                "SELECT id, version FROM tickets WHERE state = 'assigned'"
            )
        }
        if len(versions) < args.tickets:
            print(f"  only {len(versions)} of {args.tickets} tickets are assigned", flush=True)
        staff = [
            await staff_session(http, server.base, f"e{i}", server.config)
            for i in range(1, args.engineers + 1)
        ]
        sessions = {s.person: s for s in staff}
        t_tok = loop.time()
        presses = await read_tokens(http, server.base, staff, versions, args.setup_timeout)
        res.tokens, res.tokens_s = len(presses), loop.time() - t_tok
        print(f"  {len(presses)} accept buttons read in {res.tokens_s:.1f} s", flush=True)
        if not presses:
            raise RuntimeError("no accept button found on any card")
        per_person = Counter(p.person for p in presses.values())
        print(f"  assignees: {dict(sorted(per_person.items()))}", flush=True)

        # 3. Press them all.
        order = sorted(presses)
        bodies = [
            json.dumps(
                {
                    "session": sessions[presses[tid].person].token,
                    "id": uuid.uuid4().hex,
                    "token": presses[tid].token,
                    "conversation": presses[tid].conversation,
                    "message": presses[tid].key,
                }
            ).encode()
            for tid in order
        ]
        res.pressed = len(bodies)
        if args.quiet_pct > 0:
            busy = await wait_quiet(args.quiet_pct, args.quiet_wait)
            if busy > args.quiet_pct:
                print(f"  (machine still busy: {busy:.0f}% of a CPU; measuring anyway)")
        accepted_sql = "SELECT count(*) FROM tickets WHERE state = 'accepted'"
        before = int((await db.rows(accepted_sql))[0][0])
        samples: list[tuple[float, int]] = []
        stop, all_done = asyncio.Event(), asyncio.Event()

        async def poll() -> None:
            while not stop.is_set():
                n = int((await db.rows(accepted_sql))[0][0]) - before
                samples.append((loop.time(), n))
                if n >= res.pressed:
                    all_done.set()
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.05)

        url = server.base + "/webchat/api/actions"
        poller = asyncio.create_task(poll())
        gc.collect()
        gc.freeze()
        gc.disable()
        cpu0, all0, cli0 = server.cpu_seconds(), machine_busy_seconds(), time.process_time()
        wall0 = time.monotonic()
        try:
            if args.rate:
                fired = await open_loop(http, url, bodies, float(args.rate), wait_s=60.0)
            else:
                fired = await post_closed(http, url, bodies, args.concurrency)
        finally:
            gc.enable()
            gc.unfreeze()
        srv, cli = server.cpu_seconds() - cpu0, time.process_time() - cli0
        wall = max(time.monotonic() - wall0, 1e-9)
        res.server_cpu_pct = 100.0 * srv / wall
        res.other_cpu_pct = 100.0 * (machine_busy_seconds() - all0 - srv - cli) / wall
        lat = sorted(fired.latencies)
        res.ok, res.errors = len(lat), dict(fired.errors)
        res.answered_per_s = res.ok / max(fired.last_answer - fired.t0, 1e-9)
        res.p50_ms, res.p99_ms = percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3
        res.max_ms = lat[-1] * 1e3 if lat else float("nan")

        # 4. Until every pressed ticket is accepted.
        end = loop.time() + args.timeout
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_done.wait(), args.timeout)
        stop.set()
        await poller
        last_t, last_n = samples[-1] if samples else (loop.time(), 0)
        res.cpu_ms_per_transition = 1e3 * (server.cpu_seconds() - cpu0) / max(last_n, 1)
        res.accepted, res.all_accepted = last_n, last_n >= res.pressed
        res.accept_s = last_t - fired.t0
        res.transitions_per_s = last_n / max(res.accept_s, 1e-9)
        during = [c for t, c in samples if t <= fired.send_end]
        res.transitions_during_per_s = (during[-1] if during else 0) / max(
            fired.send_end - fired.t0, 1e-9
        )
        res.outbox_left = await outbox_left(db)
        if res.outbox_left is not None:  # how long the replies to the presses take (≤ timeout)
            left: int | None = res.outbox_left
            while left and loop.time() < end:
                await asyncio.sleep(0.25)
                left = await outbox_left(db)
            if not left:
                res.outbox_empty_s = loop.time() - fired.t0
        with contextlib.suppress(Exception):  # the audit schema is the hub's business
            sql = "SELECT count(*) FROM ticket_events WHERE kind = 'refused'"
            res.refused = int((await db.rows(sql))[0][0])
    return res


COLUMNS = (
    ("target", 18),
    ("tickets", 7),
    ("mode", 16),
    ("press/s", 8),
    ("p50 ms", 8),
    ("p99 ms", 8),
    ("max ms", 8),
    ("errors", 6),
    ("srv cpu%", 8),
    ("accepted", 8),
    ("accept s", 8),
    ("trans/s", 8),
    ("trans/s run", 11),
    ("cpu ms/tr", 9),
    ("outbox s", 8),
    ("refused", 7),
)


def print_table(results: Sequence[Result]) -> None:
    head = "  ".join(n.rjust(w) if i else n.ljust(w) for i, (n, w) in enumerate(COLUMNS))
    print("\n" + head + "\n" + "-" * len(head))
    for r in results:
        cells = [
            r.target,
            str(r.pressed),
            r.mode,
            _fmt(r.answered_per_s, 0),
            _fmt(r.p50_ms, 1),
            _fmt(r.p99_ms, 1),
            _fmt(r.max_ms, 1),
            str(sum(r.errors.values())),
            _fmt(r.server_cpu_pct, 0),
            f"{r.accepted}" + ("" if r.all_accepted else "*"),
            _fmt(r.accept_s, 2),
            _fmt(r.transitions_per_s, 0) + ("" if r.all_accepted else "*"),
            _fmt(r.transitions_during_per_s, 0),
            _fmt(r.cpu_ms_per_transition, 2),
            _fmt(r.outbox_empty_s, 1),
            "-" if r.refused is None else str(r.refused),
        ]
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS, strict=True))
            )
        )
    print(
        "\npress/s: 202 answers / (last answer − first press); latency: answer − send (closed "
        "loop) or − scheduled send (open loop).\naccept s: first press sent → every pressed "
        "ticket 'accepted' (tickets table); trans/s: accepted / accept s (* = not all within "
        "--timeout); trans/s run: accepted while the presses were being sent / that time.\n"
        "cpu ms/tr: the server's CPU from the first press until all are accepted, per "
        "transition.\noutbox s: first press → nothing pending/sending in the outbox (the "
        "replies to the presses); refused: presses the hub refused."
    )
    sys.stdout.flush()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--tickets", type=int, default=2000, help="tickets made, then accepted")
    p.add_argument("--engineers", type=int, default=4, help="engineers e1…eN (max_open 10^6)")
    p.add_argument("--sessions", type=int, default=20, help="customer sessions reporting")
    p.add_argument(
        "--concurrency", type=int, default=64, help="presses in flight (closed loop, the default)"
    )
    p.add_argument(
        "--rate", type=float, help="instead: press at this fixed rate per second (open loop)"
    )
    p.add_argument(
        "--database-url",
        help="postgresql+asyncpg://user@127.0.0.1:5432/name: a scratch database is created next "
        "to it and dropped afterwards (default: SQLite in a temporary directory)",
    )
    p.add_argument(
        "--setup-timeout",
        type=float,
        default=1800.0,
        help="longest wait for the tickets, their replies, and the accept buttons (s)",
    )
    p.add_argument(
        "--timeout", type=float, default=300.0, help="longest wait for every transition (s)"
    )
    p.add_argument("--profile", type=Path, help="run the server under cProfile into this file")
    p.add_argument("--quiet-pct", type=float, default=15.0, help="as in bench/ingest.py")
    p.add_argument("--quiet-wait", type=float, default=120.0, help="as in bench/ingest.py")
    p.add_argument("--no-pin", action="store_true", help="do not pin client and server to a CPU")
    p.add_argument("--json", type=Path, help="write the result (and the machine) here")
    return p


async def run(args: argparse.Namespace) -> Result:
    if args.database_url:
        _check_loopback(args.database_url)
        target = Target("gongdan-postgres", "postgres", args.database_url)
    else:
        target = Target("gongdan-sqlite", "sqlite")
    cpus = sorted(os.sched_getaffinity(0))
    client_cpu: int | None = None
    if not args.no_pin and len(cpus) >= 2:
        client_cpu = cpus[0]
        os.sched_setaffinity(0, {client_cpu})
    server_cpus, pinning = server_pinning(1, cpus, client_cpu)
    print(f"machine: {machine()}\npinning: {pinning}", flush=True)
    mode = f"open {args.rate:g}/s" if args.rate else f"closed, {args.concurrency} c"
    res = Result(target.name, args.tickets, args.engineers, mode, pinning=pinning)
    with tempfile.TemporaryDirectory(prefix="gongdan-bench-") as tmp:
        res.code = code_digest()
        async with running_server(
            target,
            Path(tmp),
            cpus=server_cpus,
            profile=args.profile,
            staff=staff_config(args.engineers),
        ) as server:
            await measure(server, args, res)
            if os.environ.get("BENCH_LOGS"):  # diagnosis: keep the server's log
                for log in server.log_paths:
                    shutil.copy(log, os.environ["BENCH_LOGS"])
    print_table([res])
    return res


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.engineers < 1 or args.tickets < 1:
        raise SystemExit("bench: --engineers and --tickets must be at least 1")
    res = asyncio.run(run(args))
    if args.json is not None:
        out = {
            "machine": machine(),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "result": asdict(res),
        }
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
