"""A fake DingTalk on a loopback port, for tests that must not touch the network.

One aiohttp server plays ``api.dingtalk.com`` (at its root), ``oapi.dingtalk.com`` (under
``/oapi``: session webhooks), the file store behind ``downloadUrl``s (``/files``) and the Stream
gateway (``/gateway``, a websocket). It answers the way DingTalk does: OpenAPI refusals are
4xx with ``{code, message}``, a stale token is 401, session webhooks answer 200 with
``{errcode, errmsg}``. It keeps what a user would see — texts per chat, interactive cards with
their public and per-user private data — and every call, with its path, JSON body and headers.
Answers can be scripted per path (``fake.script(GROUP_SEND, Scripted(403, {...}))``).

The gateway hands out one-time tickets, pushes frames (``push``) and records each ack with what
``ack_probe`` returned at that moment (e.g. how many events were stored).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import WSMsgType, web

from tests.fakes import serve

__all__ = [
    "CARD_CREATE",
    "CARD_UPDATE",
    "FILE_DOWNLOAD",
    "GROUP_SEND",
    "O2O_SEND",
    "SESSION_SEND",
    "Ack",
    "Call",
    "CardInstance",
    "FakeDingtalk",
    "Scripted",
]

GROUP_SEND = "POST /v1.0/robot/groupMessages/send"
O2O_SEND = "POST /v1.0/robot/oToMessages/batchSend"
FILE_DOWNLOAD = "POST /v1.0/robot/messageFiles/download"
CARD_CREATE = "POST /v1.0/card/instances/createAndDeliver"
CARD_UPDATE = "PUT /v1.0/card/instances"
SESSION_SEND = "POST /oapi/robot/sendBySession"
TOKEN = "POST /v1.0/oauth2/accessToken"
OPEN = "POST /v1.0/gateway/connections/open"
REGISTER = "POST /v1.0/card/callbacks/register"


@dataclass
class Call:
    route: str  # "POST /v1.0/robot/groupMessages/send"
    body: dict[str, Any]
    headers: dict[str, str]
    query: dict[str, str]
    status: int
    answer: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.answer.get("errcode", 0) == 0


@dataclass
class Scripted:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class Ack:
    message_id: str
    code: int
    data: str
    probe: Any
    at: float = field(default_factory=time.monotonic)

    @property
    def response(self) -> Any:
        return json.loads(self.data).get("response")


@dataclass
class CardInstance:
    out_track_id: str
    space: str  # openSpaceId
    params: dict[str, str]
    body: dict[str, Any]  # the createAndDeliver request
    private: dict[str, dict[str, str]] = field(default_factory=dict)


class FakeDingtalk:
    def __init__(
        self,
        *,
        client_id: str = "dinggongdantest0001",
        client_secret: str = "this_is_a_fake_app_secret_for_tests_only",
        template_id: str = "gongdan-ticket.schema",
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.robot_code, self.template_id = client_id, template_id
        self.calls: list[Call] = []
        self.scripts: dict[str, list[Scripted]] = defaultdict(list)
        self.texts: dict[str, list[str]] = defaultdict(list)  # chat → texts, as users see them
        self.mentions: dict[str, list[list[str]]] = defaultdict(list)
        self.cards: dict[str, CardInstance] = {}
        self.files: dict[str, bytes] = {}
        self.sessions: dict[str, str] = {}  # session webhook token → chat
        self.tokens: set[str] = set()
        self.tickets: set[str] = set()
        self.sockets: list[web.WebSocketResponse] = []
        self.acks: list[Ack] = []
        self.ack_probe: Callable[[], Awaitable[Any]] | None = None
        self.base = ""
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # ---------------------------------------------------------------------------- control

    @property
    def oapi_base(self) -> str:
        return self.base + "/oapi"

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/v1.0/{path:.*}", self._api)
        app.router.add_post("/oapi/robot/sendBySession", self._session_send)
        app.router.add_get("/files/{code}", self._file)
        app.router.add_get("/gateway", self._gateway)
        self._runner, self.base = await serve(app)
        return self.base

    async def stop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def script(self, route: str, *answers: Scripted) -> None:
        self.scripts[route].extend(answers)

    def add_file(self, data: bytes) -> str:
        """A file behind a fresh ``downloadCode``."""
        code = f"dc-{uuid.uuid4().hex[:12]}/+="
        self.files[code] = data
        return code

    def session_webhook(self, chat: str, *, official: bool = True) -> str:
        """A ``sessionWebhook`` for ``chat``, as DingTalk writes it (or on the fake's host)."""
        session = f"s{next(self._ids)}"
        self.sessions[session] = chat
        host = "https://oapi.dingtalk.com" if official else self.oapi_base
        return f"{host}/robot/sendBySession?session={session}"

    @staticmethod
    def frame(
        topic: str, data: dict[str, Any], *, message_id: str | None = None, kind: str = "CALLBACK"
    ) -> dict[str, Any]:
        return {
            "specVersion": "1.0",
            "type": kind,
            "headers": {
                "appId": "a1b2c3",
                "connectionId": "conn-fake",
                "contentType": "application/json",
                "messageId": message_id or str(uuid.uuid4()),
                "time": str(int(time.time() * 1000)),
                "topic": topic,
            },
            "data": json.dumps(data, ensure_ascii=False),
        }

    async def push(self, frame: dict[str, Any]) -> None:
        """Send a frame over the newest Stream connection."""
        await self.sockets[-1].send_json(frame)

    # ------------------------------------------------------------------------- inspection

    def calls_to(self, route: str, *, ok: bool | None = None) -> list[Call]:
        return [c for c in self.calls if c.route == route and (ok is None or c.ok == ok)]

    def cards_in(self, chat: str) -> list[CardInstance]:
        return [c for c in self.cards.values() if c.space.endswith(f".{chat}")]

    # ------------------------------------------------------------------------- OpenAPI

    async def _api(self, request: web.Request) -> web.StreamResponse:
        route = f"{request.method} {request.path}"
        body = await request.json() if request.can_read_body else {}
        headers, query = dict(request.headers), dict(request.query)
        script = self.scripts.get(route)
        if script:
            scripted = script.pop(0)
            self.calls.append(Call(route, body, headers, query, scripted.status, scripted.body))
            return web.json_response(scripted.body, status=scripted.status)
        handler = _ROUTES.get(route)
        if handler is None:
            status, answer = 404, {"code": "NotFound", "message": route}
        elif route not in (TOKEN, OPEN) and headers.get("x-acs-dingtalk-access-token") not in (
            self.tokens
        ):
            status, answer = (
                401,
                {"code": "InvalidAuthentication", "message": "不合法的access_token"},
            )
        else:
            status, answer = handler(self, body)
        self.calls.append(Call(route, body, headers, query, status, answer))
        return web.json_response(answer, status=status)

    def _token(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if (body.get("appKey"), body.get("appSecret")) != (self.client_id, self.client_secret):
            return 400, {
                "code": "invalidClientIdOrSecret",
                "message": "无效的clientId或者clientSecret",
            }
        token = f"at-{uuid.uuid4().hex[:16]}"
        self.tokens.add(token)
        return 200, {"accessToken": token, "expireIn": 7200}

    def _open(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if (body.get("clientId"), body.get("clientSecret")) != (self.client_id, self.client_secret):
            return 401, {"code": "InvalidAuthentication", "message": "clientId or secret"}
        ticket = uuid.uuid4().hex
        self.tickets.add(ticket)
        endpoint = self.base.replace("http://", "ws://") + "/gateway"
        return 200, {"endpoint": endpoint, "ticket": ticket}

    def _group_send(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        problem = self._robot_problem(body)
        chat = body.get("openConversationId")
        if problem or not isinstance(chat, str) or not chat.startswith("cid"):
            return 400, {"code": "invalidParameter", "message": problem or "openConversationId"}
        self.texts[chat].append(json.loads(body["msgParam"])["content"])
        return 200, {"processQueryKey": f"pqk-{next(self._ids)}"}

    def _o2o_send(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        problem = self._robot_problem(body)
        if problem or not body.get("userIds"):
            return 400, {"code": "invalidParameter", "message": problem or "userIds"}
        for user in body["userIds"]:
            self.texts[user].append(json.loads(body["msgParam"])["content"])
        return 200, {
            "processQueryKey": f"pqk-{next(self._ids)}",
            "invalidStaffIdList": [],
            "flowControlledStaffIdList": [],
        }

    def _robot_problem(self, body: dict[str, Any]) -> str | None:
        if body.get("robotCode") != self.robot_code:
            return "robotCode"
        if body.get("msgKey") != "sampleText" or not isinstance(body.get("msgParam"), str):
            return "msgKey/msgParam"
        return None

    def _download(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        code = body.get("downloadCode")
        if body.get("robotCode") != self.robot_code or code not in self.files:
            return 400, {"code": "invalidParameter", "message": "downloadCode"}
        url = f"{self.base}/files/{next(self._ids)}?code={quote(str(code), safe='')}"
        return 200, {"downloadUrl": url}

    def _create_card(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        params = (body.get("cardData") or {}).get("cardParamMap") or {}
        space = str(body.get("openSpaceId") or "")
        problems = [
            what
            for what, bad in (
                ("cardTemplateId", body.get("cardTemplateId") != self.template_id),
                (
                    "cardParamMap values must be strings",
                    not all(isinstance(v, str) for v in params.values()),
                ),
                (
                    "openSpaceId",
                    not space.startswith(("dtv1.card//IM_GROUP.", "dtv1.card//IM_ROBOT.")),
                ),
                ("callbackType", body.get("callbackType") not in ("STREAM", "HTTP")),
                ("deliver model", not _deliver_model_ok(body, space, self.robot_code)),
            )
            if bad
        ]
        out_track_id = str(body.get("outTrackId") or "")
        if out_track_id in self.cards:
            problems.append("outTrackId already exists")
        if problems or not out_track_id:
            return 400, {"code": "invalidParameter", "message": "; ".join(problems) or "outTrackId"}
        self.cards[out_track_id] = CardInstance(out_track_id, space, dict(params), body)
        space_type, _, space_id = space.removeprefix("dtv1.card//").partition(".")
        deliver = {"spaceType": space_type, "spaceId": space_id, "success": True}
        return 200, {
            "success": True,
            "result": {"outTrackId": out_track_id, "deliverResults": [deliver]},
        }

    def _update_card(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        card = self.cards.get(str(body.get("outTrackId")))
        if card is None:
            return 400, {"code": "card.instanceNotExist", "message": "card instance not found"}
        options = body.get("cardUpdateOptions") or {}
        params = (body.get("cardData") or {}).get("cardParamMap")
        if params is not None:
            card.params = (
                {**card.params, **params} if options.get("updateCardDataByKey") else params
            )
        for user, data in (body.get("privateData") or {}).items():
            mine = data.get("cardParamMap") or {}
            by_key = options.get("updatePrivateDataByKey")
            card.private[user] = {**card.private.get(user, {}), **mine} if by_key else mine
        return 200, {"success": True, "result": True}

    def _register(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, {"success": True, "result": {"callbackUrl": body.get("callbackUrl")}}

    # ---------------------------------------------------------------- oapi, files, gateway

    async def _session_send(self, request: web.Request) -> web.Response:
        body = await request.json()
        route, query = f"POST {request.path}", dict(request.query)
        script = self.scripts.get(route)
        if script:
            answer = script.pop(0).body
        elif query.get("session") not in self.sessions:
            answer = {"errcode": 300001, "errmsg": "session is invalid"}
        else:
            chat = self.sessions[query["session"]]
            self.texts[chat].append(body["text"]["content"])
            self.mentions[chat].append(list((body.get("at") or {}).get("atUserIds") or []))
            answer = {"errcode": 0, "errmsg": "ok"}
        self.calls.append(Call(route, body, dict(request.headers), query, 200, answer))
        return web.json_response(answer)

    async def _file(self, request: web.Request) -> web.Response:
        code = request.query.get("code", "")
        self.calls.append(
            Call(f"GET {request.path}", {}, dict(request.headers), dict(request.query), 200, {})
        )
        if code not in self.files:
            return web.Response(status=404, text="NoSuchKey")
        return web.Response(body=self.files[code], content_type="application/octet-stream")

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self.tickets:
            return web.Response(status=401, text="invalid ticket")
        self.tickets.discard(ticket)  # one connection per ticket
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                ack = json.loads(msg.data)
                probe = await self.ack_probe() if self.ack_probe is not None else None
                message_id = str((ack.get("headers") or {}).get("messageId"))
                self.acks.append(
                    Ack(message_id, int(ack.get("code", 0)), str(ack.get("data")), probe)
                )
        finally:
            self.sockets.remove(ws)
        return ws


def _deliver_model_ok(body: dict[str, Any], space: str, robot_code: str) -> bool:
    if "//IM_GROUP." in space:
        return (body.get("imGroupOpenDeliverModel") or {}).get("robotCode") == robot_code
    return (body.get("imRobotOpenDeliverModel") or {}).get("spaceType") == "IM_ROBOT"


_Handler = Callable[[FakeDingtalk, dict[str, Any]], tuple[int, dict[str, Any]]]
_ROUTES: dict[str, _Handler] = {
    TOKEN: FakeDingtalk._token,
    OPEN: FakeDingtalk._open,
    GROUP_SEND: FakeDingtalk._group_send,
    O2O_SEND: FakeDingtalk._o2o_send,
    FILE_DOWNLOAD: FakeDingtalk._download,
    CARD_CREATE: FakeDingtalk._create_card,
    CARD_UPDATE: FakeDingtalk._update_card,
    REGISTER: FakeDingtalk._register,
}
