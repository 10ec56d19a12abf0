"""A fake platform: an HTTP API on a loopback port, and an adapter that talks to it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from bot.adapters.base import Adapter, Capability, RateLimit, Sent
from bot.errors import PlatformApiError, RateLimited, TransientSendError
from bot.events import Address, Card, Text, outbound_to_json


@dataclass
class Received:
    at: float
    chat: str
    body: dict[str, Any]
    status: int


@dataclass
class FakePlatformApi:
    """Answers each chat's calls from a script of statuses, then 200 for ever."""

    scripts: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    calls: list[Received] = field(default_factory=list)
    _next_id: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/send", self._send)
        return app

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        script = self.scripts.get(body["chat"], [])
        status, headers = script.pop(0) if script else (200, {})
        self.calls.append(Received(time.monotonic(), body["chat"], body, status))
        if status != 200:
            return web.json_response({"ok": False}, status=status, headers=headers)
        self._next_id += 1
        return web.json_response({"ok": True, "message_id": f"m{self._next_id}"})

    def delivered(self, chat: str) -> list[dict[str, Any]]:
        return [c.body for c in self.calls if c.chat == chat and c.status == 200]


class FakeAdapter(Adapter):
    platform: ClassVar[str] = "fake"
    capabilities: ClassVar[Capability] = Capability.BUTTONS

    def __init__(self, base_url: str, per_chat: RateLimit | None = None) -> None:
        self.base_url = base_url
        self.per_chat = per_chat
        self.http: aiohttp.ClientSession | None = None

    def routes(self) -> Sequence[web.RouteDef]:
        return []

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        if self.per_chat is None:
            return ()
        return (RateLimit(f"fake:{destination.chat_id}", self.per_chat.count, self.per_chat.per),)

    async def send(self, destination: Address, message: Text | Card, *, key: str) -> Sent:
        if self.http is None:
            self.http = aiohttp.ClientSession()
        body = {"chat": destination.chat_id, "key": key, "message": outbound_to_json(message)}
        async with self.http.post(self.base_url + "/send", json=body) as r:
            if r.status == 429:
                raise RateLimited(float(r.headers.get("Retry-After", "1")))
            if r.status >= 500:
                raise TransientSendError(f"HTTP {r.status}")
            if r.status >= 400:
                raise PlatformApiError(r.status, "refused")
            return Sent((await r.json())["message_id"])

    async def update(self, destination: Address, platform_message_id: str, card: Card) -> None:
        await self.send(destination, card, key=platform_message_id)

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()


def per_second_peak(times: list[float], window: float) -> int:
    """The largest number of calls inside any window of ``window`` seconds."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    from tests.conftest import serve_on_loopback

    runner = web.AppRunner(app)
    await runner.setup()
    return runner, await serve_on_loopback(runner)


async def enqueue(
    session: Any,
    *,
    destination: str,
    op: str,
    payload: dict[str, Any],
    idempotency_key: str,
    card_ref_id: int | None = None,
    coalesce_key: str | None = None,
) -> None:
    """Queue one outbox row directly (what a unit of work writes for a message)."""
    from storage import outbox
    from storage.models import utcnow
    from storage.records import OutboxEntry

    await outbox.insert(
        session,
        [
            OutboxEntry(
                destination=destination,
                op=op,
                payload=payload,
                idempotency_key=idempotency_key,
                next_attempt_at=utcnow(),
                card_ref_id=card_ref_id,
                coalesce_key=coalesce_key,
            )
        ],
    )
