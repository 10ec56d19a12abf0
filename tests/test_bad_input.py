"""Bad input gets a clear 4xx and stores nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from storage import inbound
from tests.conftest import RunningHub

Start = Callable[..., Awaitable[RunningHub]]


async def _stored(hub: RunningHub) -> dict[str, int]:
    async with hub.hub.db.read() as s:
        return await inbound.counts(s)


async def _session(hub: RunningHub) -> str:
    return str((await hub.post("/chat/api/session", {"name": "张三"}))[1]["session"])


async def test_oversized_malformed_and_unknown_requests(running: Start) -> None:
    hub = await running()
    session = await _session(hub)
    url = hub.base + "/webchat/api/messages"
    big = json.dumps({"session": session, "id": "abcdefgh1", "text": "x" * 1_100_000})
    async with hub.http.post(url, data=big, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
    async with hub.http.post(
        url, data="{not json", headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400 and "JSON" in (await r.json())["error"]
    async with hub.http.post(url, data="text=hi") as r:
        assert r.status == 400 and "application/json" in (await r.json())["error"]
    status, body = await hub.post(
        "/webchat/api/messages", {"session": session, "id": "short", "text": "停机"}
    )
    assert status == 400 and "'id'" in body["error"]
    status, body = await hub.post(
        "/webchat/api/messages", {"session": session, "id": "abcdefgh2", "text": ""}
    )
    assert status == 400 and "'text'" in body["error"]
    async with hub.http.get(hub.base + "/no/such/route") as r:
        assert r.status == 404 and "error" in await r.json()
    assert await _stored(hub) == {}


async def test_forged_sessions_are_refused_and_nothing_is_stored(running: Start) -> None:
    hub = await running()
    session = await _session(hub)
    body, mac = session.split(".")
    for forged in (body + "." + mac[::-1], "", "nonsense", None):
        status, answer = await hub.post(
            "/webchat/api/messages", {"session": forged, "id": "abcdefgh1", "text": "停机"}
        )
        assert status == 401, answer
    async with hub.http.get(
        hub.base + "/webchat/api/stream", params={"session": body + ".AAAA"}
    ) as r:
        assert r.status == 401
    assert await _stored(hub) == {}


async def test_api_needs_its_token(running: Start) -> None:
    hub = await running()
    async with hub.http.get(hub.base + "/api/tickets") as r:
        assert r.status == 401
    async with hub.http.get(
        hub.base + "/api/tickets", headers={"Authorization": "Bearer wrong"}
    ) as r:
        assert r.status == 401
    closed = await running(api={})
    async with closed.http.get(
        closed.base + "/api/tickets", headers={"Authorization": "Bearer test-token"}
    ) as r:
        assert r.status == 503 and "token" in (await r.json())["error"]


def test_invalid_config_stops_with_one_message_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('locale = "fr"\n[server]\nport = 0\nprot = 1\n[database]\nurl = "mysql://x"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--config", str(bad), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    for key in ("locale", "server.port", "server.prot: unknown key", "database.url"):
        assert key in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_metrics_count_what_came_in_and_what_was_refused(running: Start) -> None:
    hub = await running()
    session = await _session(hub)
    body = {"session": session, "id": "abcdefgh9", "text": "空压机漏油"}
    await hub.post("/webchat/api/messages", body)
    await hub.post("/webchat/api/messages", body)
    await hub.post("/webchat/api/messages", {**body, "session": "forged.x"})
    async with hub.http.get(hub.base + "/metrics") as r:
        text = await r.text()
    assert 'gongdan_inbound_events_total{outcome="stored",platform="web"} 1.0' in text
    assert 'gongdan_inbound_events_total{outcome="duplicate",platform="web"} 1.0' in text
    assert 'gongdan_inbound_events_total{outcome="unauthorized",platform="web"} 1.0' in text
    assert "gongdan_outbox_depth" in text
