"""A fake WeCom server API on a loopback port: enough of it for the adapters, recorded.

It serves ``/cgi-bin/gettoken``, ``message/send``, ``message/update_template_card``,
``media/get``, ``webhook/send`` (group robots) and ``aibot/response`` (AI-bot response URLs),
answers in WeCom's envelope (HTTP 200 with ``errcode``/``errmsg``), and behaves like WeCom where
the adapter depends on it: access tokens expire and are refused with 42001, every sent
``button_interaction`` card and every simulated press issues a single-use ``response_code``,
a robot answers 45009 past 20 messages a minute, an AI-bot response URL works once. The next
call of a path can be scripted to fail with a given errcode.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes import serve

CORP_ID = "ww1436e0e65a779aee"
SECRET = "fake-app-secret-0123456789"
AGENT_ID = 1000002
#: The fake's answer to a spent, expired or unknown response_code (WeCom's own code for this is
#: not documented; the adapter treats any refusal of a code alike).
BAD_RESPONSE_CODE = 40099
AMR_HEADER = b"#!AMR\n"


@dataclass
class Call:
    path: str
    query: dict[str, str]
    body: Any
    errcode: int
    at: float


@dataclass
class FakeWecomApi:
    corp_id: str = CORP_ID
    secret: str = SECRET
    calls: list[Call] = field(default_factory=list)
    #: media id → bytes served by media/get
    media: dict[str, bytes] = field(default_factory=dict)
    #: task id → the card as last sent or updated (``template_card`` dict, or a ``button``)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: task id → the touser it was sent to
    card_owner: dict[str, str] = field(default_factory=dict)
    base_url: str = ""
    robot_per_minute: int = 20
    #: the clock of the robots' per-minute window (a test may share it with the governor)
    robot_clock: Callable[[], float] = time.monotonic
    _tokens: set[str] = field(default_factory=set)
    _codes: dict[str, str] = field(default_factory=dict)  # unused response code → task id
    _aibot_urls: set[str] = field(default_factory=set)
    _robot_sent: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    _scripts: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/cgi-bin/{path:.+}", self._handle)
        self._runner, self.base_url = await serve(app)
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ test controls

    def fail_next(self, path: str, errcode: int, errmsg: str = "scripted") -> None:
        self._scripts.setdefault(path, []).append((errcode, errmsg))

    def expire_tokens(self) -> None:
        """Every access token handed out so far is now expired (42001)."""
        self._tokens.clear()

    def press_code(self, task_id: str) -> str:
        """The ResponseCode WeCom puts in the callback when someone presses a card's button."""
        code = f"rc-press-{next(self._ids)}"
        self._codes[code] = task_id
        return code

    def spend(self, code: str) -> None:
        """Make ``code`` unusable (as if spent elsewhere, or expired)."""
        self._codes.pop(code, None)

    def aibot_response_url(self) -> str:
        url = f"{self.base_url}/cgi-bin/aibot/response?response_code=rurl-{next(self._ids)}"
        self._aibot_urls.add(url.rsplit("=", 1)[1])
        return url

    def to(self, path: str, *, ok: bool = True) -> list[Call]:
        return [c for c in self.calls if c.path == path and (not ok or c.errcode == 0)]

    def sent_cards(self, touser: str) -> list[Call]:
        return [
            c
            for c in self.to("message/send")
            if c.body.get("touser") == touser and c.body.get("msgtype") == "template_card"
        ]

    def sent_texts(self, touser: str) -> list[str]:
        return [
            c.body["text"]["content"]
            for c in self.to("message/send")
            if c.body.get("touser") == touser and c.body.get("msgtype") == "text"
        ]

    # -------------------------------------------------------------------------- serving

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        query = dict(request.query)
        raw = await request.read()
        body: Any = json.loads(raw) if raw else None
        scripted = self._scripts.get(path)
        if scripted:
            errcode, errmsg = scripted.pop(0)
            return self._answer(path, query, body, {"errcode": errcode, "errmsg": errmsg})
        handler = getattr(self, "_api_" + path.replace("/", "_"), None)
        if handler is None:
            return self._answer(path, query, body, {"errcode": 404, "errmsg": "no such api"})
        if path not in ("gettoken", "webhook/send", "aibot/response") and (
            query.get("access_token") not in self._tokens
        ):
            return self._answer(path, query, body, {"errcode": 42001, "errmsg": "token expired"})
        result = await handler(query, body)
        if isinstance(result, web.Response):
            self.calls.append(Call(path, query, body, 0, time.monotonic()))
            return result
        return self._answer(path, query, body, {"errcode": 0, "errmsg": "ok", **result})

    def _answer(
        self, path: str, query: dict[str, str], body: Any, answer: dict[str, Any]
    ) -> web.Response:
        self.calls.append(Call(path, query, body, int(answer["errcode"]), time.monotonic()))
        return web.json_response(answer)

    async def _api_gettoken(self, query: dict[str, str], body: Any) -> dict[str, Any]:
        if query.get("corpid") != self.corp_id or query.get("corpsecret") != self.secret:
            return {"errcode": 40001, "errmsg": "invalid credential"}
        token = f"token-{next(self._ids)}"
        self._tokens.add(token)
        return {"access_token": token, "expires_in": 7200}

    async def _api_message_send(self, query: dict[str, str], body: Any) -> dict[str, Any]:
        if body.get("agentid") != AGENT_ID:
            return {"errcode": 40056, "errmsg": "invalid agentid"}
        answer: dict[str, Any] = {"invaliduser": "", "msgid": f"msg-{next(self._ids)}"}
        if body.get("msgtype") == "template_card":
            card = body["template_card"]
            task = card["task_id"]
            if task in self.cards:
                return {"errcode": 40099 + 1, "errmsg": "task_id exists"}
            self.cards[task] = card
            self.card_owner[task] = body["touser"]
            if card["card_type"] == "button_interaction":
                code = f"rc-send-{next(self._ids)}"
                self._codes[code] = task
                answer["response_code"] = code
        return answer

    async def _api_message_update_template_card(
        self, query: dict[str, str], body: Any
    ) -> dict[str, Any]:
        task = self._codes.pop(str(body.get("response_code")), None)
        if task is None:
            return {"errcode": BAD_RESPONSE_CODE, "errmsg": "invalid response_code"}
        if "template_card" in body:
            self.cards[task] = body["template_card"]
        else:
            self.cards[task] = {**self.cards[task], "button": body["button"]}
        return {"invaliduser": []}

    async def _api_media_get(self, query: dict[str, str], body: Any) -> web.Response:
        content = self.media.get(query.get("media_id", ""))
        if content is None:
            return web.json_response({"errcode": 40007, "errmsg": "invalid media_id"})
        return web.Response(body=content, content_type="audio/amr")

    async def _api_webhook_send(self, query: dict[str, str], body: Any) -> dict[str, Any]:
        now = self.robot_clock()
        sent = self._robot_sent[query.get("key", "")]
        sent[:] = [t for t in sent if t > now - 60]
        if len(sent) >= self.robot_per_minute:
            return {"errcode": 45009, "errmsg": "api freq out of limit"}
        sent.append(now)
        return {}

    async def _api_aibot_response(self, query: dict[str, str], body: Any) -> dict[str, Any]:
        code = query.get("response_code", "")
        if code not in self._aibot_urls:
            return {"errcode": BAD_RESPONSE_CODE, "errmsg": "invalid response_code"}
        self._aibot_urls.discard(code)
        return {}

    def robot_posts(self, key: str) -> list[Call]:
        return [c for c in self.to("webhook/send") if c.query.get("key") == key]
