#!/usr/bin/env python
"""Flood benchmark: a burst of fault reports, and how long until the team's group has heard of
every ticket.

One hub in this process (SQLite in a temporary directory, the built-in web chat for the
customers and the engineers), whose one team has its group chat on a fake platform registered
as ``telegram`` and declaring Telegram's limits (1/s per chat, 20/min per group, 30/s for the
bot; ``bench/sla.py``'s ``BenchPlatform``). ``--reports`` fault reports are posted through the
web chat (``bench/ingest.py``'s texts, from ``--sessions`` customers, 32 in flight); each
becomes a ticket whose card goes to the team's group.

A ticket is *heard* when the group first receives a message naming it: its card, or a line of
a digest (read from the fake platform's calls, at the time the platform received them). The
clock starts at the first report posted. The run ends when every ticket is heard and the outbox
has nothing left to send, or after ``--timeout`` seconds.

See ``bench/README.md`` ("Flood benchmark") for how to run it and the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import statistics
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
from aiohttp import web  # noqa: E402
from sqlalchemy import text  # noqa: E402

from bench.ingest import (  # noqa: E402
    LOOPBACK,
    code_digest,
    create_sessions,
    free_port,
    machine,
    make_bodies,
)
from bench.sla import BenchPlatform  # noqa: E402
from bot.app import build_app  # noqa: E402
from bot.config import Settings, load_settings  # noqa: E402
from bot.hub import Hub  # noqa: E402
from storage import outbox  # noqa: E402
from storage.db import migrate_async  # noqa: E402
from tests.fakes import FakePlatformApi, Received  # noqa: E402

GROUP = "-1001001"  # the team's group chat (negative: a Telegram group, 20/min)
NUMBER = re.compile(r"\bGD-\d+\b")


def make_settings(url: str) -> Settings:
    engineers = [
        {
            "id": key,
            "name": name,
            "role": "engineer",
            "identities": [f"web:{key}"],
            "skills": ["equipment_failure", "network_it", "software_config", "facility"],
            "max_open": 100_000,
        }
        for key, name in (("li", "李工"), ("wang", "王工"))
    ]
    people = [
        *engineers,
        {"id": "zhao", "name": "赵经理", "role": "manager", "identities": ["web:zhao"]},
    ]
    team = {
        "id": "maint",
        "name": "设备维修组",
        "members": ["li", "wang"],
        "lead": "zhao",
        "chats": [f"telegram:{GROUP}"],
    }
    extra: dict[str, Any] = {}
    if "limits" in Settings.model_fields:  # web chat limits: the bench posts from loopback
        extra["limits"] = {"exempt": [LOOPBACK]}
    return load_settings(
        None,
        database={"url": url},
        api={"token": "bench-token"},
        security={"secret_key": f"bench-secret-{uuid.uuid4().hex}"},
        asr={"enabled": False},
        sla={"enabled": False},  # only the cards: no SLA nag competes for the group
        people=people,
        teams=[team],
        **extra,
    )


@dataclass(slots=True)
class Result:
    reports: int
    code: str = ""
    limited: bool = True
    tickets: int = 0
    p0: int = 0
    posted_s: float = float("nan")  # first report posted → last answered
    tickets_s: float = float("nan")  # first report posted → every ticket exists
    heard_all_s: float | None = None  # first report posted → the group has heard of every one
    heard_median_s: float | None = None
    p0_cards_s: float | None = None  # → every P0 ticket's own card has arrived
    drained_s: float | None = None  # → the outbox has nothing left to send
    messages: int = 0  # calls the group received (200)
    cards: int = 0
    digests: int = 0
    missing: int = 0  # tickets never heard of
    mentioned_twice: list[str] = field(default_factory=list)  # tickets in more than one message
    unknown: list[str] = field(default_factory=list)  # numbers heard that are no ticket


def mentions(call: Received) -> tuple[str, list[str]]:
    """What a message to the group is (card or text) and the tickets it names."""
    message = call.body["message"]
    if message["kind"] == "card":
        found = NUMBER.findall(message["title"])
        return "card", found[:1]
    return "text", list(dict.fromkeys(NUMBER.findall(message.get("text", ""))))


async def post_all(
    http: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], concurrency: int = 32
) -> None:
    todo = iter(bodies)
    headers = {"Content-Type": "application/json"}

    async def worker() -> None:
        for body in todo:
            async with http.post(url, data=body, headers=headers) as r:
                if r.status not in (200, 202):
                    raise RuntimeError(f"report refused: HTTP {r.status}: {await r.text()}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run_once(args: argparse.Namespace, workdir: Path) -> Result:
    url = f"sqlite+aiosqlite:///{workdir / 'flood.db'}"
    await migrate_async(url)
    api = FakePlatformApi()
    platform_runner = web.AppRunner(api.app(), access_log=None)
    await platform_runner.setup()
    port = free_port()
    await web.TCPSite(platform_runner, LOOPBACK, port).start()
    settings = make_settings(url)
    hub = Hub(settings)
    hub.adapters["telegram"] = BenchPlatform(f"http://{LOOPBACK}:{port}", not args.no_limits)
    runner = web.AppRunner(build_app(settings, hub), access_log=None)
    await runner.setup()
    hub_port = free_port()
    await web.TCPSite(runner, LOOPBACK, hub_port).start()
    base = f"http://{LOOPBACK}:{hub_port}"
    res = Result(args.reports, code=code_digest(), limited=not args.no_limits)
    loop = asyncio.get_running_loop()  # loop.time() is time.monotonic(), as the fake's `at`
    try:
        async with aiohttp.ClientSession() as http:
            sessions = await create_sessions(http, base, args.sessions)
            bodies = make_bodies(sessions, args.reports, f"f{uuid.uuid4().hex[:8]}")
            t0 = loop.time()
            await post_all(http, base + "/webchat/api/messages", bodies)
            res.posted_s = loop.time() - t0
            tickets = await _tickets(hub, args.reports, t0 + args.timeout)
            res.tickets_s = loop.time() - t0
            res.tickets = len(tickets)
            p0 = {n for n, p in tickets.items() if p == "P0"}
            res.p0 = len(p0)
            await _watch(hub, api, tickets, p0, res, t0, t0 + args.timeout)
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
        await platform_runner.cleanup()
    return res


async def _tickets(hub: Hub, n: int, deadline: float) -> dict[str, str]:
    """Wait until ``n`` tickets exist; their numbers and priorities."""
    loop = asyncio.get_running_loop()
    while True:
        async with hub.db.read() as s:
            rows = (await s.execute(text("SELECT number, priority FROM tickets"))).all()
        if len(rows) >= n or loop.time() > deadline:
            return {str(number): str(priority) for number, priority in rows}
        await asyncio.sleep(0.1)


async def _watch(
    hub: Hub,
    api: FakePlatformApi,
    tickets: dict[str, str],
    p0: set[str],
    res: Result,
    t0: float,
    deadline: float,
) -> None:
    """Follow what the group receives until every ticket is heard and the outbox is empty."""
    loop = asyncio.get_running_loop()
    heard: dict[str, float] = {}
    p0_cards: dict[str, float] = {}
    said: Counter[str] = Counter()
    seen = 0
    shown = loop.time()
    while True:
        calls = [c for c in api.calls if c.chat == GROUP and c.status == 200]
        for call in calls[seen:]:
            kind, numbers = mentions(call)
            res.messages += 1
            res.cards += kind == "card"
            res.digests += kind == "text"
            for number in numbers:
                said[number] += 1
                heard.setdefault(number, call.at - t0)
                if kind == "card" and number in p0:
                    p0_cards.setdefault(number, call.at - t0)
        seen = len(calls)
        async with hub.db.read() as s:
            counts = await outbox.counts(s)
        waiting = counts.get("pending", 0) + counts.get("sending", 0)
        now = loop.time()
        if res.drained_s is None and not waiting and len(heard) >= len(tickets):
            res.drained_s = now - t0
        if res.drained_s is not None or now > deadline:
            break
        if now - shown >= 30.0:
            print(f"  … {now - t0:5.0f} s: heard {len(heard)}/{len(tickets)}, "
                  f"{res.messages} messages, outbox {waiting}", flush=True)  # fmt: skip
            shown = now
        await asyncio.sleep(0.25)
    times = [heard[n] for n in tickets if n in heard]
    res.missing = len(tickets) - len(times)
    if times and not res.missing:
        res.heard_all_s = max(times)
    if times:
        res.heard_median_s = statistics.median(times)
    if p0 and len(p0_cards) == len(p0):
        res.p0_cards_s = max(p0_cards.values())
    res.mentioned_twice = sorted(n for n, k in said.items() if k > 1)
    res.unknown = sorted(n for n in said if n not in tickets)


def _fmt(v: float | None, digits: int = 1) -> str:
    return "–" if v is None or v != v else f"{v:,.{digits}f}"


def report(results: Sequence[Result]) -> None:
    head = ["run", "tickets", "P0", "heard all s", "heard med s", "P0 cards s", "drained s"]
    head += ["messages", "cards", "digests", "missing", "twice"]
    rows = []
    for i, r in enumerate(results, 1):
        rows.append(
            [
                str(i),
                str(r.tickets),
                str(r.p0),
                _fmt(r.heard_all_s),
                _fmt(r.heard_median_s),
                _fmt(r.p0_cards_s),
                _fmt(r.drained_s),
                str(r.messages),
                str(r.cards),
                str(r.digests),
                str(r.missing),
                str(len(r.mentioned_twice)),
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    for row in [head, ["-" * w for w in widths], *rows]:
        cells = zip(row, widths, strict=True)
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(cells)))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--reports", type=int, default=300, help="fault reports in the burst")
    p.add_argument("--sessions", type=int, default=50, help="customers posting them")
    p.add_argument("--runs", type=int, default=1, help="repetitions (a fresh hub each)")
    p.add_argument("--timeout", type=float, default=1500.0, help="longest run (s)")
    p.add_argument("--no-limits", action="store_true", help="declare no platform rate limits")
    p.add_argument("--json", type=Path, help="write every figure here")
    return p


async def run(args: argparse.Namespace) -> list[Result]:
    print(f"machine: {machine()}\ncode: {code_digest()}", flush=True)
    results = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="gongdan-flood-") as tmp:
            print(f"run {i + 1}: {args.reports} reports", flush=True)
            results.append(await run_once(args, Path(tmp)))
        if args.json is not None:
            out = {
                "machine": machine(),
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "results": [asdict(r) for r in results],
            }
            args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    report(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    for key in [k for k in os.environ if k.startswith("GONGDAN_")]:
        del os.environ[key]  # the bench builds its settings itself
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    args = _parser().parse_args(argv)
    started = time.monotonic()
    asyncio.run(run(args))
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
