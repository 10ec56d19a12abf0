"""A fake Slack Web API on a loopback port, for tests that must not touch the network.

It answers the methods the adapter uses the way Slack does (HTTP 200 with ``{"ok": false,
"error": …}`` for refusals, 429 + ``Retry-After`` when rate limited), keeps the messages it was
sent (so a test can look at a channel the way a user would), serves private files behind the
bot token (a login page otherwise, like Slack), and speaks Socket Mode: ``apps.connections.open``
hands out a websocket URL that greets with ``hello``, pushes envelopes and records the acks.

Every call is recorded with its method, arguments (JSON, form or query) and headers. Answers can
be scripted per method (``fake.script("chat.postMessage", Scripted(429, retry_after=2))``).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes import serve

__all__ = ["Ack", "Call", "FakeSlackApi", "Scripted"]


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    status: int
    answer: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.answer.get("ok"))


@dataclass
class Scripted:
    """One scripted answer: an HTTP status, an error code, a Retry-After."""

    status: int = 200
    error: str | None = None
    retry_after: float | None = None

    def response(self) -> web.Response:
        headers = {} if self.retry_after is None else {"Retry-After": f"{self.retry_after:g}"}
        if self.status >= 500:
            return web.Response(status=self.status, text="upstream trouble", headers=headers)
        error = self.error or ("ratelimited" if self.status == 429 else "fatal_error")
        return web.json_response({"ok": False, "error": error}, status=self.status, headers=headers)


@dataclass
class Ack:
    envelope_id: str | None
    payload: dict[str, Any]
    probe: Any  # what ``ack_probe`` returned when the ack arrived
    at: float = field(default_factory=time.monotonic)


@dataclass
class _File:
    data: bytes
    content_type: str
    chunked: bool


class FakeSlackApi:
    def __init__(
        self,
        *,
        bot_token: str = "xoxb-gongdan-test",
        app_token: str = "xapp-gongdan-test",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        team_id: str = "T0GONGDAN",
    ) -> None:
        self.bot_token, self.app_token = bot_token, app_token
        self.bot_user_id, self.bot_id, self.team_id = bot_user_id, bot_id, team_id
        self.calls: list[Call] = []
        self.scripts: dict[str, list[Scripted]] = defaultdict(list)
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}  # (channel, ts) → message
        self.files: dict[str, _File] = {}
        self.acks: list[Ack] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.ack_probe: Callable[[], Awaitable[Any]] | None = None
        self.base = ""
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------------- control

    @property
    def api_base(self) -> str:
        return self.base + "/api/"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/files/{name}", self._file)
        app.router.add_get("/socket-mode", self._socket)
        self._runner, self.base = await serve(app)
        return self.base

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def script(self, method: str, *answers: Scripted) -> None:
        self.scripts[method].extend(answers)

    def add_file(
        self, name: str, data: bytes, content_type: str = "audio/mp4", *, chunked: bool = False
    ) -> str:
        self.files[name] = _File(data, content_type, chunked)
        return f"{self.base}/files/{name}"

    async def push(self, envelope: dict[str, Any]) -> None:
        """Send a Socket Mode envelope over the newest connection."""
        await self.sockets[-1].send_json(envelope)

    # ---------------------------------------------------------------------- inspection

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    def channel(self, channel: str) -> list[dict[str, Any]]:
        """The messages in a channel as a user sees them now (updates applied)."""
        return [m for (ch, _), m in self.messages.items() if ch == channel]

    # ------------------------------------------------------------------------- the API

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json" and request.can_read_body:
            args.update(await request.json())
        elif request.can_read_body:
            args.update(dict(await request.post()))
        headers = dict(request.headers)
        script = self.scripts.get(method)
        if script:
            scripted = script.pop(0)
            response = scripted.response()
            answer = {"ok": False, "error": scripted.error, "status": scripted.status}
            self.calls.append(Call(method, args, headers, scripted.status, answer))
            return response
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != wanted:
            answer = {"ok": False, "error": "invalid_auth"}
        else:
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            answer = handler(args) if handler else {"ok": False, "error": "unknown_method"}
        self.calls.append(Call(method, args, headers, 200, answer))
        return web.json_response(answer)

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _m_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://gongdan-test.slack.com/",
            "team": "Gongdan Test",
            "user": "gongdan",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
        }

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel", ""))
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        problems = block_problems(args.get("blocks") or [])
        if problems:
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        if channel[0] in "UW":  # a user id: Slack posts into the app's DM with them
            channel = "D" + channel[1:]
        ts = self._next_ts()
        message = {
            "channel": channel,
            "ts": ts,
            "text": args.get("text"),
            "blocks": args.get("blocks"),
        }
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (str(args.get("channel")), str(args.get("ts")))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        problems = block_problems(args.get("blocks") or [])
        if problems:
            return {"ok": False, "error": "invalid_blocks", "errors": problems}
        self.messages[key].update(text=args.get("text"), blocks=args.get("blocks"))
        return {"ok": True, "channel": key[0], "ts": key[1], "text": args.get("text")}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel") or not args.get("user"):
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "message_ts": self._next_ts()}

    def _m_conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = str(args.get("users", ""))
        return {"ok": True, "channel": {"id": "D" + users.split(",")[0][1:]}}

    def _m_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.base.replace("http://", "ws://") + "/socket-mode"}

    # ---------------------------------------------------------------------- files, socket

    async def _file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        auth = request.headers.get("Authorization", "")
        self.calls.append(Call(f"files/{name}", {}, dict(request.headers), 200, {"ok": True}))
        if auth != f"Bearer {self.bot_token}":
            # Slack answers an unauthenticated file request with its sign-in page.
            return web.Response(text="<html>Sign in to Slack</html>", content_type="text/html")
        file = self.files.get(name)
        if file is None:
            return web.Response(status=404, text="file not found")
        if not file.chunked:
            return web.Response(body=file.data, content_type=file.content_type)
        response = web.StreamResponse(headers={"Content-Type": file.content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(file.data), 16 * 1024):
            await response.write(file.data[start : start + 16 * 1024])
        await response.write_eof()
        return response

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.sockets),
                "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0GONGDAN"},
            }
        )
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                probe = await self.ack_probe() if self.ack_probe is not None else None
                self.acks.append(Ack(data.get("envelope_id"), data.get("payload") or {}, probe))
        finally:
            self.sockets.remove(ws)
        return ws


def block_problems(blocks: Any) -> list[str]:
    """What Slack would refuse in ``blocks`` (the Block Kit limits our renderer must keep)."""
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    problems: list[str] = []
    if len(blocks) > 50:
        problems.append("more than 50 blocks")
    action_ids: set[str] = set()
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "header":
            text = block["text"]
            if text["type"] != "plain_text" or not 0 < len(text["text"]) <= 150:
                problems.append(f"[{i}] header must be plain_text of 1–150 characters")
        elif kind == "section":
            fields = block.get("fields", [])
            if len(fields) > 10 or any(not 0 < len(f["text"]) <= 2000 for f in fields):
                problems.append(f"[{i}] section: at most 10 fields of 1–2000 characters")
            if "text" in block and not 0 < len(block["text"]["text"]) <= 3000:
                problems.append(f"[{i}] section text must be 1–3000 characters")
        elif kind == "actions":
            elements = block["elements"]
            if not 0 < len(elements) <= 25:
                problems.append(f"[{i}] actions: 1–25 elements")
            for e in elements:
                action_id = e.get("action_id", "")
                if action_id in action_ids or len(action_id) > 255:
                    problems.append(f"[{i}] action_id {action_id!r} repeated or too long")
                action_ids.add(action_id)
                if not 0 < len(e["text"]["text"]) <= 75 or len(e.get("value", "")) > 2000:
                    problems.append(f"[{i}] button text 1–75, value ≤ 2000 characters")
                if e.get("style") not in (None, "primary", "danger"):
                    problems.append(f"[{i}] style must be primary or danger (or absent)")
                confirm = e.get("confirm")
                if confirm is not None and not {"title", "text", "confirm", "deny"} <= set(confirm):
                    problems.append(f"[{i}] confirm needs title, text, confirm and deny")
        elif kind != "context":
            problems.append(f"[{i}] unexpected block type {kind!r}")
    return problems
