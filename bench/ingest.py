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

#: Staff as in gongdan.example.toml, so that routing has engineers to choose from.
CONFIG_STAFF = """
[[people]]
id = "li"
name = "李工"
role = "engineer"
identities = ["web:li"]
skills = ["注塑机", "equipment_failure"]
max_open = 5

[[people]]
id = "wang"
name = "王工"
role = "engineer"
identities = ["web:wang"]
skills = ["network_it", "software_config"]

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
    if database is not None:
        head, _, tail = dsn.rpartition("/")
        query = tail.partition("?")[2]
        dsn = f"{head}/{database}" + (f"?{query}" if query else "")
    return dsn


def _check_loopback(url: str) -> None:
    from urllib.parse import urlsplit

    host = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1)).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"bench: only loopback databases are allowed, not {host!r}")


_OUTBOX_STATES = "SELECT state, count(*) FROM outbox GROUP BY state"


class TicketCounter(Protocol):
    async def count(self) -> int: ...

    async def outbox(self) -> dict[str, int]: ...

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

    async def close(self) -> None:
        await self._conn.close()


@dataclass(slots=True)
class Server:
    target: Target
    base: str
    proc: subprocess.Popen[bytes]
    counter: TicketCounter | None
    log_path: Path

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (Linux ``/proc``)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def _write_config(path: Path, port: int, database_url: str, workdir: Path) -> None:
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
secret_key = "bench-secret-{uuid.uuid4().hex}"
secret_key_file = "{workdir / ".gongdan-secret"}"
{CONFIG_STAFF}""",
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
    target: Target, workdir: Path, *, cpu: int | None, profile: Path | None
) -> AsyncIterator[Server]:
    """Start the target in its own process on a free loopback port; stop it afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GONGDAN_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    py = [sys.executable]
    if profile is not None:
        py += ["-m", "cProfile", "-o", str(profile)]
    scratch_db: str | None = None
    db_path: Path | None = None
    if target.is_bare:
        cmd = [*py, str(SELF), "--serve-bare", str(port)]
    else:
        if target.is_postgres:
            assert target.database_url is not None
            scratch_db = f"gongdan_bench_{uuid.uuid4().hex[:10]}"
            await _pg_admin(target.database_url, f'CREATE DATABASE "{scratch_db}"')
            url = target.database_url.rpartition("/")[0] + "/" + scratch_db
        else:
            db_path = workdir / "bench.db"
            url = f"sqlite+aiosqlite:///{db_path}"
        config = workdir / "gongdan.toml"
        _write_config(config, port, url, workdir)
        cli = ["--config", str(config), "serve", "--port", str(port)]
        if target.engine:
            cmd = [*py, "-m", "bot.cli", *cli]
        else:
            cmd = [*py, str(SELF), NO_ENGINE_FLAG, *cli]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    log_path = workdir / f"{target.name}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    counter: TicketCounter | None = None
    try:
        base = f"http://{LOOPBACK}:{port}"
        await _wait_healthy(base, proc, log_path)
        if not target.engine:
            pass  # nothing becomes a ticket: no processing figures
        elif db_path is not None:
            counter = SqliteCounter(db_path)
        elif scratch_db is not None:
            assert target.database_url is not None
            counter = await PostgresCounter.connect(_pg_dsn(target.database_url, scratch_db))
        yield Server(target, base, proc, counter, log_path)
    finally:
        if counter is not None:
            await counter.close()
        await _stop(proc, 20.0 if profile is None else 120.0)
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
                    if r.status == 200:
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
    http: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], rate: float, wait_s: float
) -> Fired:
    """Fire ``bodies`` at ``rate``/s on a fixed schedule, whatever the server does meanwhile."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    interval = 1.0 / rate
    headers = {"Content-Type": "application/json"}
    tasks: set[asyncio.Task[None]] = set()
    last = [0.0]

    async def one(body: bytes, scheduled: float) -> None:
        try:
            async with http.post(url, data=body, headers=headers) as r:
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
            task = asyncio.create_task(one(bodies[i], scheduled))
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


async def measure(
    server: Server, rate: int, seconds: float, sessions: int, run: int, drain_timeout: float
) -> Result:
    res = Result(server.target.name, rate, run, seconds)
    connector = aiohttp.TCPConnector(limit=10_000, limit_per_host=10_000, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tokens = await create_sessions(http, server.base, sessions)
        url = server.base + "/webchat/api/messages"
        tag = uuid.uuid4().hex[:8]
        # Warm up: connections, and for Gongdan the intake's first classify (loads its
        # dictionary) and the first tickets, so the measurement starts from a steady state.
        warm = make_bodies(tokens, min(200, rate), f"w{tag}")
        await open_loop(http, url, warm, min(rate, 200.0), wait_s=30.0)
        baseline = 0
        if server.counter is not None:
            baseline = await _wait_tickets(server.counter, len(warm), 60.0)
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
            optional = name.startswith("tickets") or name == "drain_s"
            setattr(m, name, value if value is not None or optional else float("nan"))
        m.sent = sum(r.sent for r in rs)
        m.ok = sum(r.ok for r in rs)
        errs: Counter[str] = Counter()
        for r in rs:
            errs.update(r.errors)
        m.errors = dict(errs)
        m.drained = None if rs[0].drained is None else all(bool(r.drained) for r in rs)
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
    p.add_argument("--no-pin", action="store_true", help="do not pin client and server to a CPU")
    p.add_argument("--profile", type=Path, help="run Gongdan under cProfile; .prof files here")
    p.add_argument("--json", type=Path, help="write every result (and the machine) here")
    p.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return p


async def one_run(
    args: argparse.Namespace, target: Target, rate: int, n: int, server_cpu: int | None
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
                    target, Path(tmp), cpu=server_cpu, profile=profile
                ) as server:
                    r = await measure(
                        server, rate, args.seconds, args.sessions, n, args.drain_timeout
                    )
            except (RuntimeError, OSError, aiohttp.ClientError) as exc:
                print(f"  {target.name} @ {rate}/s run {n}, attempt {attempt} failed: {exc}")
                await asyncio.sleep(15.0)
                continue
        r.code = digest
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


async def run(args: argparse.Namespace) -> list[Result]:
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    if args.database_url and not any(n.startswith("postgres") for n in names):
        names.append("postgres")
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
            targets.append(Target("gongdan-postgres", "postgres", args.database_url))
        elif name == "postgres-noengine":
            if not args.database_url:
                raise SystemExit("bench: the postgres target needs --database-url")
            _check_loopback(args.database_url)
            targets.append(
                Target("gongdan-pg-noengine", "postgres", args.database_url, engine=False)
            )
        else:
            raise SystemExit(f"bench: unknown target {name!r}")

    server_cpu: int | None = None
    ncpu = len(os.sched_getaffinity(0))
    if not args.no_pin and ncpu >= 2:
        cpus = sorted(os.sched_getaffinity(0))
        server_cpu = cpus[-1]
        os.sched_setaffinity(0, {cpus[0]})  # the load generator keeps to the other core
    pinning = "none"
    if server_cpu is not None:
        pinning = f"client on CPU {min(os.sched_getaffinity(0))}, server on CPU {server_cpu}"
    print(f"machine: {machine()}\npinning: {pinning}")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)

    results: list[Result] = []
    for target in targets:
        rows: list[list[str]] = []
        for rate in rates:
            for n in range(1, args.runs + 1):
                r = await one_run(args, target, rate, n, server_cpu)
                if r is None:
                    continue
                results.append(r)
                rows.append(_row(r, str(n)))
                print(
                    f"  {target.name} @ {rate}/s run {n}: {r.ok}/{r.sent} ok, "
                    f"p99 {_fmt(r.p99_ms, 2)} ms, errors {r.errors or 0}, "
                    f"send lag max {_fmt(r.max_send_lag_ms, 1)} ms, "
                    f"client cpu {_fmt(r.client_cpu_pct, 0)}%, code {r.code}"
                    + (f", outbox {r.outbox}" if r.outbox is not None else ""),
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
        "from first send until all are tickets (* = not drained within --drain-timeout)."
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
