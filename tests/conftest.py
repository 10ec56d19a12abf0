"""Shared fixtures: databases on both backends, settings, a running hub on a loopback port."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text

from bot.app import build_app
from bot.config import Settings, load_settings
from bot.hub import Hub
from storage.db import Database, migrate_async

POSTGRES_URL = os.environ.get("GONGDAN_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def _no_stray_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their settings explicitly; none reads the developer's environment."""
    for key in list(os.environ):
        if (
            key.startswith("GONGDAN_")
            and key != "GONGDAN_TEST_POSTGRES_URL"
            and not (key.startswith("GONGDAN_REQUIRE_"))
        ):
            monkeypatch.delenv(key)


def _server_url(url: str, database: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{database}"


_TEMPLATE: dict[str, str] = {}


async def _postgres_template() -> str:
    """A migrated template database, made once per run; each test copies it (fast)."""
    assert POSTGRES_URL
    if "name" not in _TEMPLATE:
        base = POSTGRES_URL.rpartition("/")[2].split("?")[0]
        name = f"{base}_tpl_{uuid.uuid4().hex[:6]}"
        admin = Database(_server_url(POSTGRES_URL, "postgres"))
        async with admin.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        await migrate_async(_server_url(POSTGRES_URL, name))
        _TEMPLATE["name"] = name
    return _TEMPLATE["name"]


async def _admin(sql: str) -> None:
    assert POSTGRES_URL
    admin = Database(_server_url(POSTGRES_URL, "postgres"))
    async with admin.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(sql))
    await admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def _drop_template() -> Any:
    yield
    if "name" in _TEMPLATE:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{_TEMPLATE["name"]}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database URL — SQLite always, PostgreSQL when configured."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        await migrate_async(url)
        yield url
        return
    if not POSTGRES_URL:
        if os.environ.get("GONGDAN_REQUIRE_POSTGRES"):
            pytest.fail("GONGDAN_TEST_POSTGRES_URL is required in this run")
        pytest.skip("GONGDAN_TEST_POSTGRES_URL not set")
    template = await _postgres_template()
    name = f"{template.rpartition('_tpl_')[0]}_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _server_url(POSTGRES_URL, name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    yield database
    await database.dispose()


def free_port() -> int:
    """A port free now, for a server in another process (it may be taken before that
    process binds it; servers in this process use ``serve_on_loopback``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve_on_loopback(runner: web.AppRunner) -> str:
    """Start ``runner`` on a loopback port the system picks as it binds (no window in which
    another test process could take it); its base URL."""
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


STAFF: dict[str, Any] = {
    "people": [
        {
            "id": "li",
            "name": "李工",
            "role": "engineer",
            "identities": ["web:li"],
            "skills": ["注塑机", "equipment_failure"],
        },
        {
            "id": "wang",
            "name": "王工",
            "role": "engineer",
            "identities": ["web:wang"],
            "skills": ["network_it"],
        },
        {"id": "zhao", "name": "赵经理", "role": "manager", "identities": ["web:zhao"]},
        {"id": "sun", "name": "孙调度", "role": "dispatcher", "identities": ["web:sun"]},
    ],
    "teams": [
        {
            "id": "maint",
            "name": "维修组",
            "members": ["li", "wang"],
            "lead": "zhao",
            "chats": ["web:team"],
        },
    ],
}


def make_settings(tmp_path: Path, db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database": {"url": db_url},
        "api": {"token": "test-token"},
        "security": {"secret_key": "test-secret-key"},
        "admin_chat": "web:admin",
        "asr": {"enabled": False},  # voice tests bring their own transcriber
        # Tests post from loopback faster than a person types; the limits have tests of
        # their own (tests/test_access.py), which take this exemption away.
        "limits": {"exempt": ["127.0.0.1", "::1"]},
        # The daily report would post to the managers of every hub that lives past a minute
        # after 08:30; its tests (tests/test_report.py) turn it on.
        "report": {"enabled": False},
        **STAFF,
    }
    values.update(overrides)
    return load_settings(None, **values)


class FakeClock:
    """A controllable "now" for tickets and SLA clocks: it moves only when a test says so."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, at: datetime) -> datetime:
        self.now = at
        return at


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class RunningHub:
    """The real aiohttp app serving on a loopback port, with an HTTP client."""

    def __init__(
        self,
        hub: Hub,
        base: str,
        http: aiohttp.ClientSession,
        runner: web.AppRunner | None = None,
    ) -> None:
        self.hub = hub
        self.base = base
        self.http = http
        self.runner = runner

    async def stop(self) -> None:
        """Shut this hub down (as a restart would); the database stays."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        """POST JSON. A staff session (``gds_…``, see ``staff_session``) given as the body's
        ``session`` goes as a bearer token instead, as an API client sends it."""
        if isinstance(body, dict) and str(body.get("session", "")).startswith("gds_"):
            body = dict(body)
            kw["headers"] = {**kw.get("headers", {}), **bearer(body.pop("session"))}
        async with self.http.post(self.base + path, json=body, **kw) as r:
            return r.status, await r.json()

    async def staff_session(self, person: str) -> str:
        """Sign ``person`` in with a one-time link (as ``gongdan login-link`` prints it); the
        staff session token, for ``Authorization: Bearer``."""
        link = self.hub.access.issue_link(person, "cli")
        status, body = await self.post(
            "/console/api/sign-in", {"link": link.partition("#login=")[2], "bearer": True}
        )
        assert status == 200, body
        return str(body["token"])

    async def api(self, path: str) -> Any:
        async with self.http.get(
            self.base + path, headers={"Authorization": "Bearer test-token"}
        ) as r:
            assert r.status == 200, await r.text()
            return await r.json()


@pytest.fixture
async def running(
    tmp_path: Path, db_url: str
) -> AsyncIterator[Callable[..., Awaitable[RunningHub]]]:
    stack: list[RunningHub] = []

    async def start(clock: Callable[[], datetime] | None = None, **overrides: Any) -> RunningHub:
        settings = make_settings(tmp_path, db_url, **overrides)
        hub = Hub(settings, clock=clock) if clock is not None else Hub(settings)
        app = build_app(settings, hub)
        runner = web.AppRunner(app)
        await runner.setup()
        base = await serve_on_loopback(runner)
        http = aiohttp.ClientSession()
        started = RunningHub(hub, base, http, runner)
        stack.append(started)
        return started

    yield start
    for started in reversed(stack):
        await started.http.close()
        await started.stop()


async def eventually(
    check: Callable[[], Awaitable[Any]],
    *,
    within: float = 15.0,
    what: str = "condition",
    every: float = 0.02,
) -> Any:
    """Poll ``check`` until it returns something truthy (the work is asynchronous by design);
    ``every``: seconds between polls (longer for a check that costs the system under test)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


def spawn_serve(
    config: Path, log: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``python -m bot.cli serve`` with ``config``, its output appended to ``log``."""
    environ = {**os.environ, **(env or {}), "GONGDAN_CONFIG": str(config)}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve"],
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )


async def wait_serving(
    proc: subprocess.Popen[bytes],
    base: str,
    http: aiohttp.ClientSession,
    log: Path,
    *,
    within: float = 60.0,
    name: str = "the server",
) -> None:
    """Wait until a spawned ``gongdan serve`` answers /healthz (fail with its log if it dies)."""

    async def healthy() -> bool:
        if proc.poll() is not None:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise AssertionError(f"{name} exited:\n{tail}")
        try:
            async with http.get(base + "/healthz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(healthy, within=within, what=f"{name} to serve /healthz")


async def outbox_drained(hub: RunningHub, *, within: float = 20.0) -> dict[str, int]:
    """Wait until nothing is pending or being sent; the outbox's counts by state then."""
    from storage import outbox

    async def done() -> dict[str, int] | None:
        hub.hub.sender.wake.set()
        async with hub.hub.db.read() as s:
            counts = await outbox.counts(s)
        return None if counts.get("pending") or counts.get("sending") else counts

    result: dict[str, int] = await eventually(done, within=within, what="the outbox to drain")
    return result


class Feed:
    """Follows a web chat session's live stream (SSE), as the browser page does."""

    def __init__(self, running: RunningHub, session: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.status = 0
        self._running = running
        self._session = session
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Feed:
        import json

        ready = asyncio.Event()

        async def follow() -> None:
            url = f"{self._running.base}/webchat/api/stream"
            if self._session.startswith("gds_"):  # staff: their sign-in, not a chat session
                how: dict[str, Any] = {"headers": bearer(self._session)}
            else:
                how = {"params": {"session": self._session}}
            async with self._running.http.get(url, **how) as r:
                self.status = r.status
                ready.set()
                if r.status != 200:
                    return
                async for line in r.content:
                    if line.startswith(b"data: "):
                        self.events.append(json.loads(line[6:]))

        self._task = asyncio.create_task(follow())
        await asyncio.wait(
            {self._task, asyncio.ensure_future(ready.wait())}, return_when="FIRST_COMPLETED"
        )
        if self._task.done():
            self._task.result()  # (its error)
        assert self.status == 200, f"the stream answered {self.status}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def latest(self) -> dict[str, dict[str, Any]]:
        """Each message as the page shows it now (cards replaced by their newest version)."""
        out: dict[str, dict[str, Any]] = {}
        for e in self.events:
            out[e["key"]] = e
        return out

    def texts(self) -> list[str]:
        return [e["payload"]["text"] for e in self.events if e["kind"] in ("text", "notice")]

    def cards(self, conversation: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.latest().values()
            if e["kind"] == "card" and (conversation is None or e["conversation"] == conversation)
        ]

    async def wait_text(self, needle: str) -> str:
        async def found() -> str | None:
            return next((t for t in self.texts() if needle in t), None)

        return str(await eventually(found, what=f"a message containing {needle!r}"))

    async def wait_card(self, conversation: str, predicate: Any) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            return next((c for c in self.cards(conversation) if predicate(c["payload"])), None)

        result: dict[str, Any] = await eventually(found, what=f"a card in {conversation}")
        return result


def button(card: dict[str, Any], action: str) -> str:
    for b in card["payload"]["buttons"]:
        if b["action"] == action:
            return str(b["token"])
    raise AssertionError(f"no {action} button on {card['payload']['title']}")
