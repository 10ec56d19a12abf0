"""A fake Telegram Bot API on a loopback port: enough of it for the adapter, recorded.

It serves ``/bot<token>/<method>`` (getMe, sendMessage, editMessageText, editMessageReplyMarkup,
answerCallbackQuery, getFile, setWebhook, deleteWebhook, getUpdates) and
``/file/bot<token>/<file_path>``, answers in the Bot API's envelope (``{"ok": true, "result":
…}`` / ``{"ok": false, "error_code": …, "description": …}``), keeps the messages it "sent" so
edits behave like Telegram's (``message is not modified``, ``message to edit not found``), long
polls ``getUpdates`` with real offset semantics, and can be scripted to fail the next call of a
method (a 429 with ``retry_after``, an expired callback query…).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import serve

TOKEN = "7000001:AAHfakeTokenForTests_0123456789abcdef"
BOT_USER = {"id": 7000001, "is_bot": True, "first_name": "Helpdesk", "username": "helpdesk_bot"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    status: int
    at: float
    via: str = ""  # the path prefix the caller used (tests give each worker its own)


@dataclass
class _Scripted:
    status: int
    description: str
    parameters: dict[str, Any] | None
    chat_id: Any | None


@dataclass
class FakeBotApi:
    token: str = TOKEN
    calls: list[Call] = field(default_factory=list)
    #: (chat id, message id) → {"text", "reply_markup"} as last sent or edited
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    #: file id → (file path, content, file_size reported by getFile)
    files: dict[str, tuple[str, bytes, int]] = field(default_factory=dict)
    base_url: str = ""
    _scripts: dict[str, list[_Scripted]] = field(default_factory=dict)
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(5001))
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._method)
        app.router.add_route("*", "/{via}/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner, self.base_url = await serve(app)
        return self.base_url

    async def stop(self) -> None:
        self._arrived.set()  # let a hanging getUpdates answer
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------- test controls

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        *,
        retry_after: int | None = None,
        chat_id: Any | None = None,
    ) -> None:
        """The next call of ``method`` (to ``chat_id``, if given) answers with this error."""
        parameters = {"retry_after": retry_after} if retry_after is not None else None
        self._scripts.setdefault(method, []).append(
            _Scripted(status, description, parameters, chat_id)
        )

    def add_file(self, file_id: str, content: bytes, *, reported_size: int | None = None) -> None:
        path = f"voice/file_{len(self.files)}.oga"
        self.files[file_id] = (
            path,
            content,
            len(content) if reported_size is None else reported_size,
        )

    def push_update(self, update: dict[str, Any]) -> None:
        """An update for ``getUpdates`` to hand out (polling mode)."""
        self._updates.append(update)
        self._arrived.set()

    def to(self, method: str, chat_id: Any | None = None, *, ok: bool = True) -> list[Call]:
        """Calls of ``method`` (to ``chat_id``), by default only those that succeeded."""
        return [
            c
            for c in self.calls
            if c.method == method
            and (chat_id is None or str(c.params.get("chat_id")) == str(chat_id))
            and (not ok or c.status == 200)
        ]

    # -------------------------------------------------------------------------- serving

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            body = await request.json()
            return dict(body) if isinstance(body, dict) else {}
        form = await request.post() if request.method == "POST" else request.query
        params: dict[str, Any] = {}
        for key, value in form.items():
            # PTB sends form fields whose non-string values are JSON encoded.
            try:
                params[key] = json.loads(str(value))
            except ValueError:
                params[key] = str(value)
        return params

    async def _method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        via = request.match_info.get("via", "")
        params = await self._params(request)
        if request.match_info["token"] != self.token:
            return self._answer(method, params, 401, error="Unauthorized", via=via)
        scripted = self._scripted(method, params)
        if scripted is not None:
            return self._answer(
                method,
                params,
                scripted.status,
                error=scripted.description,
                parameters=scripted.parameters,
                via=via,
            )
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return self._answer(method, params, 404, error="Not Found", via=via)
        status, result = await handler(params)
        if status != 200:
            return self._answer(method, params, status, error=str(result), via=via)
        return self._answer(method, params, 200, result=result, via=via)

    def _scripted(self, method: str, params: dict[str, Any]) -> _Scripted | None:
        queue = self._scripts.get(method, [])
        for i, s in enumerate(queue):
            if s.chat_id is None or str(s.chat_id) == str(params.get("chat_id")):
                return queue.pop(i)
        return None

    def _answer(
        self,
        method: str,
        params: dict[str, Any],
        status: int,
        *,
        result: Any = None,
        error: str = "",
        parameters: dict[str, Any] | None = None,
        via: str = "",
    ) -> web.Response:
        self.calls.append(Call(method, params, status, time.monotonic(), via))
        if status == 200:
            return web.json_response({"ok": True, "result": result})
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": error}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            raise web.HTTPUnauthorized()
        for path, content, _ in self.files.values():
            if path == request.match_info["path"]:
                return web.Response(body=content, content_type="audio/ogg")
        raise web.HTTPNotFound()

    # -------------------------------------------------------------------- the methods

    async def _api_getMe(self, params: dict[str, Any]) -> tuple[int, Any]:
        return 200, BOT_USER

    async def _api_setWebhook(self, params: dict[str, Any]) -> tuple[int, Any]:
        return 200, True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> tuple[int, Any]:
        return 200, True

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> tuple[int, Any]:
        return 200, True

    def _message(self, chat_id: int, message_id: int, text: str) -> dict[str, Any]:
        chat_type = "private" if chat_id > 0 else "supergroup"
        return {
            "message_id": message_id,
            "from": BOT_USER,
            "chat": {"id": chat_id, "type": chat_type, "title": "chat", "first_name": "x"},
            "date": int(time.time()),
            "text": text,
        }

    async def _api_sendMessage(self, params: dict[str, Any]) -> tuple[int, Any]:
        chat_id, text = int(params["chat_id"]), str(params.get("text", ""))
        if not text:
            return 400, "Bad Request: message text is empty"
        message_id = next(self._message_ids)
        self.messages[(chat_id, message_id)] = {
            "text": text,
            "reply_markup": params.get("reply_markup"),
        }
        return 200, self._message(chat_id, message_id, text)

    async def _edit(self, params: dict[str, Any], changes: dict[str, Any]) -> tuple[int, Any]:
        key = (int(params["chat_id"]), int(params["message_id"]))
        current = self.messages.get(key)
        if current is None:
            return 400, "Bad Request: message to edit not found"
        new = {**current, **changes}
        if new == current:
            return 400, (
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the message"
            )
        self.messages[key] = new
        return 200, self._message(key[0], key[1], new["text"])

    async def _api_editMessageText(self, params: dict[str, Any]) -> tuple[int, Any]:
        return await self._edit(
            params, {"text": params.get("text"), "reply_markup": params.get("reply_markup")}
        )

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> tuple[int, Any]:
        return await self._edit(params, {"reply_markup": params.get("reply_markup")})

    async def _api_getFile(self, params: dict[str, Any]) -> tuple[int, Any]:
        file_id = str(params.get("file_id"))
        if file_id not in self.files:
            return 400, "Bad Request: invalid file_id"
        path, _, size = self.files[file_id]
        return 200, {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id[:8]}",
            "file_size": size,
            "file_path": path,
        }

    async def _api_getUpdates(self, params: dict[str, Any]) -> tuple[int, Any]:
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        if offset:  # calling with an offset confirms every update before it
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
        return 200, list(self._updates)

    def pending_updates(self) -> list[int]:
        """Update ids Telegram would still hand out (not yet confirmed by an offset)."""
        return [u["update_id"] for u in self._updates]

    def cards(self, chat_id: int) -> list[tuple[int, dict[str, Any]]]:
        """(message id, message) of every message with an inline keyboard sent to ``chat_id``."""
        return [
            (mid, m)
            for (chat, mid), m in sorted(self.messages.items())
            if chat == chat_id and m.get("reply_markup")
        ]
