#!/usr/bin/env python
"""Open-loop ingest benchmark: signed web chat posts vs. a bare aiohttp handler.

For each target (``bare``, ``gongdan-sqlite``, optionally ``gongdan-postgres``) and each rate,
a fresh server process is started on a loopback port (a fresh database for Gongdan), warmed up,
and then sent ``rate × seconds`` posts at fixed intervals regardless of how fast it answers
(open loop). Latency is measured from each request's *scheduled* send time, so a stalled server
cannot hide its stall by slowing the sender down (no coordinated omission). Gongdan's
"processed" rate is measured separately by counting ``tickets`` rows in the database until every
accepted event has become a ticket.

See ``bench/README.md`` for how to run it and the figures measured on the reference machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import aiohttp
from aiohttp import web

SELF = Path(__file__).resolve()
REPO = SELF.parent.parent
LOOPBACK = "127.0.0.1"
API_TOKEN = "bench-token"

#: Fault reports (each becomes a ticket), varied so that routing and the intake see a mix.
TEXTS = (
    "3号注塑机停机了",
    "2号车间的空压机报警E07，压力上不去",
    "A线包装机卡料停机，急",
    "冷却塔水泵漏水了",
    "5号CNC主轴异响",
    "仓库的网络断了扫码枪连不上",
)

#: Staff as in gongdan.example.toml, so that routing has engineers to choose from — with room
#: for every ticket of a burst (``max_open``), so each gets assigned and its engineer's card too.
CONFIG_STAFF = """
[[people]]
id = "li"
name = "李工"
role = "engineer"
identities = ["web:li"]
skills = ["注塑机", "equipment_failure"]
max_open = 100000

[[people]]
id = "wang"
name = "王工"
role = "engineer"
identities = ["web:wang"]
skills = ["network_it", "software_config"]
max_open = 100000

[[people]]
id = "zhao"
name = "赵经理"
role = "manager"
identities = ["web:zhao"]

[[teams]]
id = "maint"
name = "设备维修组"
members = ["li", "wang"]
lead = "zhao"
chats = ["web:team"]
"""


# --------------------------------------------------------------------------- bare server


def serve_bare(port: int) -> None:
    """The baseline: the same two endpoints, parsing the JSON and answering, nothing else."""

    async def session(request: web.Request) -> web.Response:
        body = await request.json()
        if not isinstance(body.get("name"), str):
            raise web.HTTPBadRequest()
        conv = "c-" + uuid.uuid4().hex[:16]
        return web.json_response({"session": f"bare.{conv}", "conversation": conv})

    async def message(request: web.Request) -> web.Response:
        body = await request.json()
        if not all(isinstance(body.get(k), str) for k in ("session", "id", "text")):
            raise web.HTTPBadRequest()
        return web.json_response({"ok": True, "duplicate": False}, status=202)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.add_routes(
        [
            web.post("/chat/api/session", session),
            web.post("/webchat/api/messages", message),
            web.get("/healthz", healthz),
        ]
    )
    web.run_app(app, host=LOOPBACK, port=port, print=None, access_log=None)


NO_ENGINE_FLAG = "--serve-without-engine"


def serve_without_engine(cli_args: Sequence[str]) -> int:
    """Diagnosis: ``gongdan serve`` with the engine's loop replaced by an idle wait, so the answer
    path (verify, parse, group commit) is measured alone, without processing competing for the
    event loop and SQLite's write lock. Nothing in ``bot/`` is changed; only this process."""
    from bot import cli, engine

    async def idle(self: engine.Engine) -> None:
        while not getattr(self, "_stopping", False):  # the hub's stop() sets it and wakes us
            self.wake.clear()
            await self.wake.wait()

    engine.Engine.run_forever = idle  # type: ignore[method-assign]
    return cli.main(cli_args)


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # bare | gongdan-sqlite | gongdan-postgres
    kind: Literal["bare", "sqlite", "postgres"]
    database_url: str | None = None  # postgres: scratch databases are created next to this one
    engine: bool = True  # False (diagnosis only): events are stored but never processed
    workers: int = 1  # postgres: this many `gongdan serve` processes share the scratch database

    @property
    def is_bare(self) -> bool:
        return self.kind == "bare"

    @property
    def is_postgres(self) -> bool:
        return self.kind == "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _pg_dsn(url: str, database: str | None = None) -> str:
    """``postgresql+asyncpg://u@h:p/db`` → an asyncpg DSN, optionally naming another database."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return dsn if database is None else _with_database(dsn, database)


def _with_database(url: str, database: str) -> str:
    """``url`` naming ``database`` instead, its query (``?host=/var/run/postgresql``) kept."""
    base, mark, query = url.partition("?")
    return f"{base.rpartition('/')[0]}/{database}{mark}{query}"


def _check_loopback(url: str) -> None:
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    host = parts.hostname
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    if socket_dir.startswith("/"):  # a Unix socket: this machine's by definition
        return
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"bench: only loopback databases are allowed, not {host!r}")


_OUTBOX_STATES = "SELECT state, count(*) FROM outbox GROUP BY state"


class TicketCounter(Protocol):
    """A read-only view of the hub's database (the bench never writes to it)."""

    async def count(self) -> int: ...

    async def outbox(self) -> dict[str, int]: ...

    async def rows(self, sql: str) -> list[tuple[Any, ...]]: ...

    async def close(self) -> None: ...


class SqliteCounter:
    """Counts tickets through a read-only connection (WAL: never blocks the server's writer)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=5.0
        )

    def _count(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM tickets").fetchone()
        return int(row[0])

    async def count(self) -> int:
        return await asyncio.to_thread(self._count)

    def _outbox(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._conn.execute(_OUTBOX_STATES).fetchall()}

    async def outbox(self) -> dict[str, int]:
        return await asyncio.to_thread(self._outbox)

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._conn.execute(sql).fetchall()]

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._rows, sql)

    async def close(self) -> None:
        self._conn.close()


class PostgresCounter:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @classmethod
    async def connect(cls, dsn: str) -> PostgresCounter:
        import asyncpg  # type: ignore[import-untyped]

        return cls(await asyncpg.connect(dsn))

    async def count(self) -> int:
        return int(await self._conn.fetchval("SELECT count(*) FROM tickets"))

    async def outbox(self) -> dict[str, int]:
        return {str(r[0]): int(r[1]) for r in await self._conn.fetch(_OUTBOX_STATES)}

    async def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._conn.fetch(sql)]

    async def close(self) -> None:
        await self._conn.close()


@dataclass(slots=True)
class Server:
    """One target's running server: one process, or ``target.workers`` sharing a database."""

    target: Target
    bases: list[str]  # one base URL per process
    procs: list[subprocess.Popen[bytes]]
    counter: TicketCounter | None
    log_paths: list[Path]
    config: Path | None = None  # the first process's gongdan.toml (bare: none)

    @property
    def base(self) -> str:
        return self.bases[0]

    def cpu_seconds(self) -> float:
        """User + system CPU time the server processes have used so far (Linux ``/proc``)."""
        total = 0.0
        for proc in self.procs:
            try:
                stat = Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                return float("nan")
            total += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        return total


def code_digest() -> str:
    """A short hash of the hub's sources (``bot/``, ``storage/``): which code a run measured."""
    h = hashlib.sha256()
    for path in sorted([*REPO.glob("bot/**/*.py"), *REPO.glob("storage/**/*.py")]):
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs of the machine have spent busy so far (``/proc/stat``)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def wait_quiet(threshold_pct: float, max_wait_s: float) -> float:
    """Wait until the rest of the machine is nearly idle (a shared machine: other programs'
    bursts would be measured as our latency). Returns the last busy figure seen (% of one CPU)."""
    deadline = time.monotonic() + max_wait_s
    quiet_for = 0
    busy = float("nan")
    while True:
        before = machine_busy_seconds()
        await asyncio.sleep(0.5)
        busy = 100.0 * (machine_busy_seconds() - before) / 0.5
        if busy != busy:  # no /proc/stat: nothing to wait for
            return busy
        quiet_for = quiet_for + 1 if busy <= threshold_pct else 0
        if quiet_for >= 4 or time.monotonic() > deadline:
            return busy


def _write_config(
    path: Path,
    port: int,
    database_url: str,
    workdir: Path,
    *,
    secret: str | None = None,
    staff: str = CONFIG_STAFF,
) -> None:
    """A ``gongdan.toml``. Workers sharing a database must share ``secret`` too: a session or a
    button token signed by one of them is then valid on all of them."""
    secret = secret or f"bench-secret-{uuid.uuid4().hex}"
    path.write_text(
        f"""locale = "zh"
public_url = "http://{LOOPBACK}:{port}"

[server]
host = "{LOOPBACK}"
port = {port}

[database]
url = "{database_url}"

[api]
token = "{API_TOKEN}"

[security]
secret_key = "{secret}"
secret_key_file = "{workdir / ".gongdan-secret"}"

[limits]
exempt = ["{LOOPBACK}"]   # the load generator is one client posting far faster than a person
{staff}""",
        encoding="utf-8",
    )


async def _pg_admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_dsn(url, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def running_server(
    target: Target,
    workdir: Path,
    *,
    cpus: Sequence[str] | None,
    profile: Path | None,
    staff: str = CONFIG_STAFF,
) -> AsyncIterator[Server]:
    """Start the target on free loopback ports (``target.workers`` processes, one after another,
    all on one database and one secret); stop them all afterwards. Process ``i`` runs on the
    CPUs ``cpus[i % len(cpus)]`` (a ``taskset -c`` list), or where this process may run when
    ``cpus`` is None."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GONGDAN_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    scratch_db: str | None = None
    db_path: Path | None = None
    url = ""
    if target.is_postgres:
        assert target.database_url is not None
        scratch_db = f"gongdan_bench_{uuid.uuid4().hex[:10]}"
        await _pg_admin(target.database_url, f'CREATE DATABASE "{scratch_db}"')
        url = _with_database(target.database_url, scratch_db)
    elif not target.is_bare:
        db_path = workdir / "bench.db"
        url = f"sqlite+aiosqlite:///{db_path}"
    secret = f"bench-secret-{uuid.uuid4().hex}"
    procs: list[subprocess.Popen[bytes]] = []
    bases: list[str] = []
    logs: list[Path] = []
    counter: TicketCounter | None = None
    try:
        for i in range(max(1, target.workers)):
            port = free_port()
            py = [sys.executable]
            if profile is not None:
                prof = profile if target.workers <= 1 else profile.with_stem(f"{profile.stem}-w{i}")
                py += ["-m", "cProfile", "-o", str(prof)]
            if target.is_bare:
                cmd = [*py, str(SELF), "--serve-bare", str(port)]
            else:
                config = workdir / (f"gongdan-{i}.toml" if i else "gongdan.toml")
                _write_config(config, port, url, workdir, secret=secret, staff=staff)
                cli = ["--config", str(config), "serve", "--port", str(port)]
                if target.engine:
                    cmd = [*py, "-m", "bot.cli", *cli]
                else:
                    cmd = [*py, str(SELF), NO_ENGINE_FLAG, *cli]
            if cpus and shutil.which("taskset"):
                cmd = ["taskset", "-c", cpus[i % len(cpus)], *cmd]
            log_path = workdir / f"{target.name}-{port}.log"
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    cmd,
                    cwd=workdir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            procs.append(proc)
            logs.append(log_path)
            base = f"http://{LOOPBACK}:{port}"
            # One after another: the first migrates the database before the next one starts.
            await _wait_healthy(base, proc, log_path)
            bases.append(base)
        if not target.engine:
            pass  # nothing becomes a ticket: no processing figures
        elif db_path is not None:
            counter = SqliteCounter(db_path)
        elif scratch_db is not None:
            assert target.database_url is not None
            counter = await PostgresCounter.connect(_pg_dsn(target.database_url, scratch_db))
        first = workdir / "gongdan.toml"
        yield Server(target, bases, procs, counter, logs, first if first.exists() else None)
    finally:
        if counter is not None:
            await counter.close()
        grace = 20.0 if profile is None else 120.0
        await asyncio.gather(*(_stop(proc, grace) for proc in procs))
        if scratch_db is not None:
            assert target.database_url is not None
            await _pg_admin(
                target.database_url, f'DROP DATABASE IF EXISTS "{scratch_db}" WITH (FORCE)'
            )


def _tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:]


async def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60.0
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = _tail(log_path)
                raise RuntimeError(f"server exited with {proc.returncode}:\n{tail}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(base + "/healthz") as r:
                    # Healthy, and done loading the speech model (seconds of CPU at start-up
                    # that would otherwise land in the measured run).
                    if r.status == 200 and (await r.json()).get("speech_model") != "loading":
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"server at {base} not healthy after 60 s (log: {log_path})")


async def _stop(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # run_app shuts down cleanly (and cProfile writes out)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(proc.wait, grace_s)
    if proc.poll() is None:
        print(f"  (server did not stop within {grace_s:.0f} s of SIGINT; killed)", flush=True)
        proc.kill()
        await asyncio.to_thread(proc.wait, 10.0)


# --------------------------------------------------------------------------- load


@dataclass(slots=True)
class Result:
    target: str
    rate: int
    run: int
    seconds: float
    code: str = ""  # code_digest() when the server started (the hub is being worked on)
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    achieved_rps: float = 0.0
    p50_ms: float = float("nan")
    p90_ms: float = float("nan")
    p99_ms: float = float("nan")
    p999_ms: float = float("nan")
    max_ms: float = float("nan")
    max_send_lag_ms: float = 0.0  # how late the client itself fired (client saturation check)
    server_cpu_pct: float = float("nan")  # while sending and answering; 100 = one core
    client_cpu_pct: float = float("nan")
    other_cpu_pct: float = float("nan")  # the rest of the machine (noise from other programs)
    tickets_during_per_s: float | None = None  # tickets created during the send window
    tickets_total: int | None = None
    drain_s: float | None = None  # first send → the last accepted event is a ticket
    tickets_per_s: float | None = None  # accepted events / drain_s
    drained: bool | None = None
    outbox: dict[str, int] | None = None  # replies by state when the drain wait ended
    # Replies (after the drain): every ticket's acknowledgement delivered, the outbox empty.
    replies_s: float | None = None  # burst end (last post fired) → last reply delivered
    tickets_replies_per_s: float | None = None  # accepted events / (first send → last reply)
    replied: bool | None = None  # False: not within --drain-timeout (figures: time waited)
    replies: dict[str, int] | None = None  # reply rows in webchat_feed by kind, whole run
    tickets_checked: int | None = None  # tickets whose acknowledgement was waited for
    unanswered: int | None = None  # of those, without one when the wait ended
    outbox_left: int | None = None  # outbox rows still pending/sending when the wait ended
    workers: int = 1
    pinning: str = ""


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


async def create_sessions(http: aiohttp.ClientSession, base: str, n: int) -> list[str]:
    async def one(i: int) -> str:
        async with http.post(base + "/chat/api/session", json={"name": f"客户{i:03d}"}) as r:
            if r.status != 200:
                raise RuntimeError(f"session: HTTP {r.status}: {await r.text()}")
            return str((await r.json())["session"])

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def make_bodies(sessions: Sequence[str], n: int, tag: str) -> list[bytes]:
    def body(i: int) -> dict[str, str]:
        text = TEXTS[i % len(TEXTS)]
        return {"session": sessions[i % len(sessions)], "id": f"{tag}-{i:08d}", "text": text}

    return [json.dumps(body(i), ensure_ascii=False).encode() for i in range(n)]


@dataclass(slots=True)
class Fired:
    latencies: list[float]
    errors: Counter[str]
    t0: float
    send_end: float
    last_answer: float
    max_lag: float


async def open_loop(
    http: aiohttp.ClientSession,
    url: str | Sequence[str],
    bodies: Sequence[bytes],
    rate: float,
    wait_s: float,
) -> Fired:
    """Fire ``bodies`` at ``rate``/s on a fixed schedule, whatever the server does meanwhile.
    With several URLs (workers), post ``i`` goes to ``url[i % len(url)]``."""
    urls = [url] if isinstance(url, str) else list(url)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    interval = 1.0 / rate
    headers = {"Content-Type": "application/json"}
    tasks: set[asyncio.Task[None]] = set()
    last = [0.0]

    async def one(target: str, body: bytes, scheduled: float) -> None:
        try:
            async with http.post(target, data=body, headers=headers) as r:
                await r.read()
                status = r.status
        except Exception as exc:  # every failure is counted; none stops the run
            errors[type(exc).__name__] += 1
            return
        done = loop.time()
        last[0] = max(last[0], done)
        if status == 202:
            latencies.append(done - scheduled)
        else:
            errors[f"HTTP {status}"] += 1

    t0 = loop.time() + 0.02
    max_lag = 0.0
    i, n = 0, len(bodies)
    while i < n:
        now = loop.time()
        while i < n and t0 + i * interval <= now:
            scheduled = t0 + i * interval
            max_lag = max(max_lag, now - scheduled)
            task = asyncio.create_task(one(urls[i % len(urls)], bodies[i], scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if i < n:
            await asyncio.sleep(max(0.0, t0 + i * interval - loop.time()))
    send_end = loop.time()
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=wait_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            errors["unanswered"] += len(pending)
    return Fired(latencies, errors, t0, send_end, last[0] or send_end, max_lag)


async def _wait_tickets(counter: TicketCounter, at_least: int, wait_s: float) -> int:
    deadline = time.monotonic() + wait_s
    while True:
        n = await counter.count()
        if n >= at_least or time.monotonic() > deadline:
            return n
        await asyncio.sleep(0.1)


_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_OUTBOX_LEFT = "SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')"


async def outbox_left(db: TicketCounter) -> int | None:
    """Outbox rows not yet delivered (pending or being sent); None if there is no such table."""
    try:
        return int((await db.rows(_OUTBOX_LEFT))[0][0])
    except Exception:  # the outbox is the hub's business (a rewrite may drop it): never fatal
        return None


class ReplyTracker:
    """Whether every ticket's customer has had a reply, read from the web chat feed.

    A reply is a ``webchat_feed`` row whose ``kind`` is not ``'user'`` (the customer's own post).
    A ticket counts as answered once its own conversation (``tickets.origin_chat``) has a reply,
    other than a card, that names the ticket's number: the acknowledgement. How the hub writes
    those rows (directly, or through the outbox) does not matter here.

    The feed is read incrementally by ``id``. On PostgreSQL ids are drawn when a row is inserted
    but become visible when its transaction commits, so a row can appear below ids already read.
    Every id up to ``watermark`` has been read; rows above it are read again on every poll (the
    ones seen already are skipped), and a hole below the highest id seen is waited for up to
    ``GAP_WAIT_S`` (then taken for a rolled-back insert).
    """

    GAP_WAIT_S = 10.0
    BATCH = 5000

    def __init__(self, db: TicketCounter) -> None:
        self.db = db
        self.watermark = 0
        self.seen: set[int] = set()  # ids above the watermark already read
        self.gap_since: dict[int, float] = {}
        self.replies: Counter[str] = Counter()  # by kind
        self.pending: dict[tuple[str, str], set[int]] = {}  # (conversation, number) → tickets
        self.odd: dict[int, tuple[str, str]] = {}  # numbers the token rule cannot find
        self.unnumbered: set[int] = set()  # tickets listed before they had a number
        self.unanswered: set[int] = set()
        self.tickets = 0

    async def load_tickets(self) -> None:
        """Every ticket there is now is expected to be answered."""
        for tid, number, origin in await self.db.rows(
            "SELECT id, number, origin_chat FROM tickets"
        ):
            self.tickets += 1
            self.unanswered.add(int(tid))
            self._expect(int(tid), number, origin)

    def _expect(self, tid: int, number: Any, origin: Any) -> None:
        conv = str(origin).partition(":")[2]
        num = str(number if number is not None else "")
        if not num:
            self.unnumbered.add(tid)
        elif _TOKEN.fullmatch(num):
            self.pending.setdefault((conv, num), set()).add(tid)
        else:
            self.odd[tid] = (conv, num)

    async def _number_late(self) -> None:
        """Tickets that had no number yet when listed (their acknowledgement names it)."""
        ids = ",".join(str(int(t)) for t in sorted(self.unnumbered))
        self.unnumbered.clear()
        for tid, number, origin in await self.db.rows(
            f"SELECT id, number, origin_chat FROM tickets WHERE id IN ({ids})"
        ):
            self._expect(int(tid), number, origin)

    def _answered(self, conversation: str, text: str) -> None:
        for token in set(_TOKEN.findall(text)):
            for tid in self.pending.pop((conversation, token), ()):
                self.unanswered.discard(tid)
        for tid, (conv, num) in list(self.odd.items()):
            if conv == conversation and num in text:
                del self.odd[tid]
                self.unanswered.discard(tid)

    async def poll(self) -> None:
        if self.unnumbered:
            await self._number_late()
        after = self.watermark
        while True:
            rows = await self.db.rows(
                "SELECT id, conversation, kind, "
                "CASE WHEN kind IN ('user', 'card') THEN NULL ELSE payload END "
                f"FROM webchat_feed WHERE id > {int(after)} ORDER BY id LIMIT {self.BATCH}"
            )
            for rid, conv, kind, payload in rows:
                rid = int(rid)
                if rid in self.seen:
                    continue
                self.seen.add(rid)
                if kind == "user":
                    continue
                self.replies[str(kind)] += 1
                if payload is not None:
                    self._answered(str(conv), _payload_text(payload))
            if len(rows) < self.BATCH:
                break
            after = int(rows[-1][0])
        self._advance()

    def _advance(self) -> None:
        now = time.monotonic()
        top = max(self.seen, default=self.watermark)
        while self.watermark < top:
            nxt = self.watermark + 1
            if nxt in self.seen:
                self.seen.discard(nxt)
            elif now - self.gap_since.setdefault(nxt, now) < self.GAP_WAIT_S:
                break  # a hole: maybe a transaction still committing
            self.gap_since.pop(nxt, None)
            self.watermark = nxt


def _payload_text(payload: Any) -> str:
    """The text of a reply's payload (a JSON object, as text or already decoded)."""
    if isinstance(payload, str | bytes):
        try:
            payload = json.loads(payload)
        except ValueError:
            return str(payload)
    if isinstance(payload, dict):
        text = payload.get("text")
        return text if isinstance(text, str) else json.dumps(payload, ensure_ascii=False)
    return str(payload)


@dataclass(slots=True)
class Replies:
    done_at: float | None  # loop time of the poll that found every ticket answered, outbox empty
    waited_until: float
    tickets: int
    unanswered: int
    replies: dict[str, int]
    outbox_left: int | None


async def wait_replies(db: TicketCounter, deadline: float, interval: float = 0.25) -> Replies:
    """Poll (read-only) until every ticket has its acknowledgement and nothing is left in the
    outbox, or until ``deadline`` (loop time). Done is the end of the first poll that saw it."""
    loop = asyncio.get_running_loop()
    tracker = ReplyTracker(db)
    await tracker.load_tickets()
    while True:
        await tracker.poll()
        left = await outbox_left(db)
        now = loop.time()
        done = not tracker.unanswered and not left
        if done or now >= deadline:
            return Replies(
                now if done else None,
                now,
                tracker.tickets,
                len(tracker.unanswered),
                dict(tracker.replies),
                left,
            )
        await asyncio.sleep(interval)


async def measure(
    server: Server,
    rate: int,
    seconds: float,
    sessions: int,
    run: int,
    drain_timeout: float,
    replies: bool = True,
) -> Result:
    res = Result(server.target.name, rate, run, seconds)
    connector = aiohttp.TCPConnector(limit=10_000, limit_per_host=10_000, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        # Sessions are signed with the secret all workers share: any of them takes any session.
        tokens = await create_sessions(http, server.base, sessions)
        url = [base + "/webchat/api/messages" for base in server.bases]
        tag = uuid.uuid4().hex[:8]
        # Warm up: connections, and for Gongdan the intake's first classify (loads its
        # dictionary) and the first tickets, so the measurement starts from a steady state.
        warm = make_bodies(tokens, min(200, rate), f"w{tag}")
        await open_loop(http, url, warm, min(rate, 200.0), wait_s=30.0)
        baseline = 0
        if server.counter is not None:
            baseline = await _wait_tickets(server.counter, len(warm), 60.0)
            if replies:  # and their replies, so the run does not start with a backlog
                await wait_replies(server.counter, asyncio.get_running_loop().time() + 60.0)
        bodies = make_bodies(tokens, int(rate * seconds), f"m{tag}")
        res.sent = len(bodies)

        loop = asyncio.get_running_loop()
        samples: list[tuple[float, int]] = []
        stop_polling = asyncio.Event()

        async def poll() -> None:
            assert server.counter is not None
            while not stop_polling.is_set():
                samples.append((loop.time(), await server.counter.count() - baseline))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop_polling.wait(), 0.25)

        poller = asyncio.create_task(poll()) if server.counter is not None else None
        # The client's own garbage collector would pause the sender for up to hundreds of ms
        # (seen here): collect now, then keep it off while firing (a run is bounded).
        gc.collect()
        gc.freeze()
        gc.disable()
        cpu0, client0, all0 = server.cpu_seconds(), time.process_time(), machine_busy_seconds()
        wall0 = time.monotonic()
        try:
            fired = await open_loop(http, url, bodies, float(rate), wait_s=30.0)
        finally:
            gc.enable()
            gc.unfreeze()
        # CPU figures cover sending and waiting for the last answer.
        srv, cli = server.cpu_seconds() - cpu0, time.process_time() - client0
        other = machine_busy_seconds() - all0 - srv - cli
        wall = max(time.monotonic() - wall0, 1e-9)
        res.server_cpu_pct = 100.0 * srv / wall
        res.client_cpu_pct = 100.0 * cli / wall
        res.other_cpu_pct = 100.0 * other / wall
        window = max(fired.send_end - fired.t0, 1e-9)

        lat = sorted(fired.latencies)
        res.ok = len(lat)
        res.errors = dict(fired.errors)
        res.achieved_rps = res.ok / max(fired.last_answer - fired.t0, 1e-9)
        res.p50_ms, res.p90_ms = percentile(lat, 50) * 1e3, percentile(lat, 90) * 1e3
        res.p99_ms, res.p999_ms = percentile(lat, 99) * 1e3, percentile(lat, 99.9) * 1e3
        res.max_ms = (lat[-1] * 1e3) if lat else float("nan")
        res.max_send_lag_ms = fired.max_lag * 1e3

        if poller is not None and server.counter is not None:
            # Processing: every accepted event should become one ticket.
            deadline = loop.time() + drain_timeout
            done_at: float | None = None
            while loop.time() < deadline:
                if samples and samples[-1][1] >= res.ok:
                    done_at = samples[-1][0]
                    break
                await asyncio.sleep(0.05)
            stop_polling.set()
            await poller
            final = samples[-1][1] if samples else 0
            during = [c for t, c in samples if t <= fired.send_end]
            start = next((c for t, c in samples if t >= fired.t0), 0)
            res.tickets_during_per_s = ((during[-1] if during else 0) - start) / window
            res.tickets_total = final
            res.drained = done_at is not None
            end = done_at if done_at is not None else samples[-1][0]
            res.drain_s = end - fired.t0
            res.tickets_per_s = final / max(res.drain_s, 1e-9)
            try:  # replies still queued show whether delivery keeps up with ticket creation
                res.outbox = await server.counter.outbox()
            except Exception as exc:  # the outbox schema is the hub's business; never fatal
                res.outbox = {f"error: {type(exc).__name__}": 0}
            if replies and res.drained:
                # Replies: every ticket's acknowledgement in its customer's conversation, and
                # nothing left in the outbox, within the same --drain-timeout.
                rep = await wait_replies(server.counter, deadline)
                res.replied = rep.done_at is not None
                end = rep.done_at if rep.done_at is not None else rep.waited_until
                res.replies_s = end - fired.send_end
                res.tickets_replies_per_s = res.ok / max(end - fired.t0, 1e-9)
                res.replies = rep.replies
                res.tickets_checked = rep.tickets
                res.unanswered = rep.unanswered
                res.outbox_left = rep.outbox_left
    return res


# --------------------------------------------------------------------------- report


def _fmt(v: float | None, digits: int = 1) -> str:
    if v is None or v != v:  # None or NaN
        return "-"
    return f"{v:.{digits}f}"


COLUMNS = (
    ("target", 23),
    ("rate", 5),
    ("run", 3),
    ("req/s", 7),
    ("p50 ms", 7),
    ("p99 ms", 7),
    ("p99.9 ms", 8),
    ("max ms", 7),
    ("errors", 6),
    ("srv cpu%", 8),
    ("other%", 6),
    ("tkt/s run", 9),
    ("tkt/s all", 9),
    ("drain s", 7),
    ("replies s", 9),
    ("tkt+rep/s", 9),
    ("outbox", 6),
)


def _row(r: Result, run: str) -> list[str]:
    errors = sum(r.errors.values())
    return [
        r.target,
        str(r.rate),
        run,
        _fmt(r.achieved_rps, 0),
        _fmt(r.p50_ms, 2),
        _fmt(r.p99_ms, 2),
        _fmt(r.p999_ms, 2),
        _fmt(r.max_ms, 1),
        str(errors),
        _fmt(r.server_cpu_pct, 0),
        _fmt(r.other_cpu_pct, 0),
        _fmt(r.tickets_during_per_s, 0),
        _fmt(r.tickets_per_s, 0) + ("" if r.drained in (None, True) else "*"),
        _fmt(r.drain_s, 1),
        _fmt(r.replies_s, 1) + ("" if r.replied in (None, True) else "*"),
        _fmt(r.tickets_replies_per_s, 0) + ("" if r.replied in (None, True) else "*"),
        "-" if r.outbox_left is None else str(r.outbox_left),
    ]


def print_table(rows: Sequence[list[str]], title: str) -> None:
    print(f"\n{title}")
    head = "  ".join(name.rjust(w) if i else name.ljust(w) for i, (name, w) in enumerate(COLUMNS))
    print(head)
    print("-" * len(head))
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, (_, w)) in enumerate(zip(row, COLUMNS, strict=True))
            )
        )
    sys.stdout.flush()


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and v == v]
    return statistics.median(present) if present else None


MEDIAN_FIELDS = (
    "achieved_rps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "max_send_lag_ms",
    "server_cpu_pct",
    "client_cpu_pct",
    "other_cpu_pct",
    "tickets_during_per_s",
    "tickets_per_s",
    "drain_s",
    "replies_s",
    "tickets_replies_per_s",
)


def medians(results: Sequence[Result]) -> list[Result]:
    """One row per (target, rate): the median of each figure over the runs."""
    out: list[Result] = []
    keys = list(dict.fromkeys((r.target, r.rate) for r in results))
    for target, rate in keys:
        rs = [r for r in results if (r.target, r.rate) == (target, rate)]
        m = Result(target, rate, 0, rs[0].seconds)
        for name in MEDIAN_FIELDS:
            value = _median([getattr(r, name) for r in rs])
            optional = name.startswith("tickets") or name in ("drain_s", "replies_s")
            setattr(m, name, value if value is not None or optional else float("nan"))
        m.sent = sum(r.sent for r in rs)
        m.ok = sum(r.ok for r in rs)
        errs: Counter[str] = Counter()
        for r in rs:
            errs.update(r.errors)
        m.errors = dict(errs)
        m.drained = None if rs[0].drained is None else all(bool(r.drained) for r in rs)
        m.replied = None if rs[0].replied is None else all(bool(r.replied) for r in rs)
        lefts = [r.outbox_left for r in rs if r.outbox_left is not None]
        m.outbox_left = max(lefts) if lefts else None  # the worst run
        m.workers, m.pinning = rs[0].workers, rs[0].pinning
        out.append(m)
    return out


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.partition(":")[2].strip()
                break
    return info


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rates", default="250,500,1000,2000", help="events/s, comma separated")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each measured run")
    p.add_argument("--runs", type=int, default=1, help="repetitions per target and rate")
    p.add_argument("--sessions", type=int, default=200, help="customer sessions posting")
    p.add_argument(
        "--targets",
        default="bare,sqlite",
        help="comma separated: bare, sqlite, postgres (needs --database-url); for diagnosis "
        "also sqlite-noengine, postgres-noengine (events stored, never processed)",
    )
    p.add_argument(
        "--database-url",
        help="postgresql+asyncpg://user@127.0.0.1:5432/name — a scratch database is created "
        "next to it for every run and dropped afterwards (adds the 'postgres' target)",
    )
    p.add_argument(
        "--drain-timeout", type=float, default=300.0, help="longest wait for all tickets (s)"
    )
    p.add_argument(
        "--quiet-pct",
        type=float,
        default=15.0,
        help="before each run wait until the machine is at most this busy (%% of one CPU, "
        "0 = do not wait)",
    )
    p.add_argument("--quiet-wait", type=float, default=120.0, help="longest such wait (s)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="postgres targets: this many `gongdan serve` processes on one scratch database, "
        "posts spread round-robin over them (reported as gongdan-postgres-xN)",
    )
    p.add_argument(
        "--no-replies",
        action="store_true",
        help="do not wait for every ticket's replies after the drain (no replies s, tkt+rep/s)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin client and server to a CPU")
    p.add_argument("--profile", type=Path, help="run Gongdan under cProfile; .prof files here")
    p.add_argument("--logs", type=Path, help="copy each run's server logs into this directory")
    p.add_argument("--json", type=Path, help="write every result (and the machine) here")
    p.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return p


async def one_run(
    args: argparse.Namespace,
    target: Target,
    rate: int,
    n: int,
    server_cpus: Sequence[str] | None,
    pinning: str = "",
) -> Result | None:
    """One measured run on a fresh server; a server that fails to start is tried again (the hub
    may be mid-edit), then the run is skipped."""
    for attempt in range(1, 4):
        if args.quiet_pct > 0:
            busy = await wait_quiet(args.quiet_pct, args.quiet_wait)
            if busy > args.quiet_pct:
                print(f"  (machine still busy: {busy:.0f}% of a CPU; measuring anyway)")
        with tempfile.TemporaryDirectory(prefix="gongdan-bench-") as tmp:
            profile = None
            if args.profile is not None and not target.is_bare:
                profile = (args.profile / f"{target.name}-{rate}-{n}.prof").resolve()
            digest = code_digest()
            try:
                async with running_server(
                    target, Path(tmp), cpus=server_cpus, profile=profile
                ) as server:
                    r = await measure(
                        server,
                        rate,
                        args.seconds,
                        args.sessions,
                        n,
                        args.drain_timeout,
                        replies=not args.no_replies,
                    )
                    if args.logs is not None:  # the servers' logs, for a look afterwards
                        args.logs.mkdir(parents=True, exist_ok=True)
                        for log in server.log_paths:
                            shutil.copy(log, args.logs / f"{rate}-{n}-{log.name}")
            except (RuntimeError, OSError, aiohttp.ClientError) as exc:
                print(f"  {target.name} @ {rate}/s run {n}, attempt {attempt} failed: {exc}")
                await asyncio.sleep(15.0)
                continue
        r.code = digest
        r.workers, r.pinning = target.workers, pinning
        return r
    print(f"  {target.name} @ {rate}/s run {n}: skipped")
    return None


def write_json(args: argparse.Namespace, results: Sequence[Result]) -> None:
    out = {
        "machine": machine(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": [asdict(r) for r in results],
        "medians": [asdict(m) for m in medians(results)],
    }
    args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")


def server_pinning(
    workers: int, cpus: Sequence[int], client_cpu: int | None
) -> tuple[list[str] | None, str]:
    """The CPUs for the server processes (``taskset -c`` lists, one per process in turn), and
    how to describe it. One server gets the last CPU. Several get one CPU each when there are
    enough besides the client's, else all of them: on 2 CPUs three workers pinned to one core
    would measure that core, not the workers. (Said explicitly: a child inherits the client's
    own pinning to its one CPU.)"""
    if client_cpu is None:
        return None, "none"
    others = [c for c in cpus if c != client_cpu]
    client = f"client on CPU {client_cpu}"
    if workers <= 1:
        return [str(cpus[-1])], f"{client}, server on CPU {cpus[-1]}"
    if len(others) >= workers:
        mine = [str(c) for c in others[-workers:]]
        return mine, f"{client}, {workers} servers on CPUs {','.join(mine)}"
    every = ",".join(map(str, cpus))
    return [every], (
        f"{client}, {workers} servers on every CPU ({every}; only {len(others)} besides the "
        "client's): they share them, the client's too"
    )


async def run(args: argparse.Namespace) -> list[Result]:
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    if args.database_url and not any(n.startswith("postgres") for n in names):
        names.append("postgres")
    w = max(1, args.workers)
    if w > 1 and not any(n.startswith("postgres") for n in names):
        raise SystemExit("bench: --workers applies to the postgres targets only")
    xn = f"-x{w}" if w > 1 else ""
    targets: list[Target] = []
    for name in names:
        if name == "bare":
            targets.append(Target("bare", "bare"))
        elif name == "sqlite":
            targets.append(Target("gongdan-sqlite", "sqlite"))
        elif name == "sqlite-noengine":
            targets.append(Target("gongdan-sqlite-noengine", "sqlite", engine=False))
        elif name == "postgres":
            if not args.database_url:
                raise SystemExit("bench: the postgres target needs --database-url")
            _check_loopback(args.database_url)
            targets.append(
                Target(f"gongdan-postgres{xn}", "postgres", args.database_url, workers=w)
            )
        elif name == "postgres-noengine":
            if not args.database_url:
                raise SystemExit("bench: the postgres target needs --database-url")
            _check_loopback(args.database_url)
            targets.append(
                Target(
                    f"gongdan-pg-noengine{xn}",
                    "postgres",
                    args.database_url,
                    engine=False,
                    workers=w,
                )
            )
        else:
            raise SystemExit(f"bench: unknown target {name!r}")

    cpus = sorted(os.sched_getaffinity(0))
    client_cpu: int | None = None
    if not args.no_pin and len(cpus) >= 2:
        client_cpu = cpus[0]
        os.sched_setaffinity(0, {client_cpu})  # the load generator keeps to the first core
    print(f"machine: {machine()}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)

    results: list[Result] = []
    for target in targets:
        server_cpus, pinning = server_pinning(target.workers, cpus, client_cpu)
        print(f"{target.name}: pinning: {pinning}", flush=True)
        rows: list[list[str]] = []
        for rate in rates:
            for n in range(1, args.runs + 1):
                r = await one_run(args, target, rate, n, server_cpus, pinning)
                if r is None:
                    continue
                results.append(r)
                rows.append(_row(r, str(n)))
                print(
                    f"  {target.name} @ {rate}/s run {n}: {r.ok}/{r.sent} ok, "
                    f"p99 {_fmt(r.p99_ms, 2)} ms, errors {r.errors or 0}, "
                    f"send lag max {_fmt(r.max_send_lag_ms, 1)} ms, "
                    f"client cpu {_fmt(r.client_cpu_pct, 0)}%, code {r.code}"
                    + (f", outbox {r.outbox}" if r.outbox is not None else "")
                    + (
                        f", replies {r.replies} ({r.unanswered} of {r.tickets_checked} tickets "
                        f"unanswered, {r.outbox_left} left in the outbox)"
                        if r.replies is not None
                        else ""
                    ),
                    flush=True,
                )
                if args.json is not None:  # after every run: a failure later keeps these
                    write_json(args, results)
        print_table(rows, f"{target.name}: every run")
    if args.runs > 1:
        print_table([_row(m, "med") for m in medians(results)], "medians over runs")
    else:
        print_table([_row(r, str(r.run)) for r in results], "all targets")
    print(
        "\nreq/s: 202 answers per second; latency from each post's scheduled send time.\n"
        "tkt/s run: tickets created during the send window; tkt/s all: accepted events / time "
        "from first send until all are tickets (* = not drained within --drain-timeout).\n"
        "replies s: last post fired → every ticket's acknowledgement is in its customer's "
        "conversation and nothing is pending in the outbox; tkt+rep/s: accepted events / time "
        "from first send to then (* = not within --drain-timeout); outbox: rows still "
        "pending/sending at the end."
    )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == NO_ENGINE_FLAG:
        return serve_without_engine(argv[1:])
    args = _parser().parse_args(argv)
    if args.serve_bare is not None:
        serve_bare(args.serve_bare)
        return 0
    results = asyncio.run(run(args))
    if args.json is not None:
        write_json(args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
