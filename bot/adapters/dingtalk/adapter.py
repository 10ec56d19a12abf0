"""DingTalk: an app robot in groups and 1:1 chats, interactive cards whose buttons call back.

Inbound, HTTP mode: ``POST /webhooks/dingtalk`` (robot messages) and ``/webhooks/dingtalk/card``
(card clicks) verify the signature first (wrong, missing or over an hour off → 401, nothing
stored), then parse, ``await inbox.accept(...)``, and only then answer. Stream mode: no HTTP
routes; ``StreamClient`` feeds the same two receivers and acks each frame after they return.

A card click's answer is immediate and only for the presser: "working on it" as private card
data, or — first press of a button that needs confirming — a private confirm row (nothing
stored). The flows' real answer comes later through ``notify``, as the presser's private
``notice`` on the card (DingTalk has no toast), with the chat as the fallback.

Outbound: texts through the message's ``sessionWebhook`` while it is valid (it can @mention),
else ``groupMessages/send`` / ``oToMessages/batchSend``; cards with ``createAndDeliver`` and
``PUT /v1.0/card/instances``. All network I/O is aiohttp (``openapi.OpenApi``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

import bot.adapters.dingtalk.parse as parse
import bot.adapters.dingtalk.render as render
from bot.adapters.base import Adapter, Capability, RateLimit, Sent
from bot.adapters.body import depth_limit
from bot.adapters.dingtalk.openapi import OpenApi
from bot.adapters.dingtalk.parse import PLATFORM, CardPress, ConfirmStep, is_group
from bot.adapters.dingtalk.stream import Frame, StreamClient
from bot.config import DingtalkSettings
from bot.errors import (
    AdapterError,
    BadRequest,
    ConfigError,
    PlatformApiError,
    RateLimited,
    TransientSendError,
)
from bot.events import Address, Card, Notice, Text
from bot.inbox import Inbox

__all__ = ["CARD_PATH", "CARD_TOPIC", "ROBOT_PATH", "ROBOT_TOPIC", "DingtalkAdapter"]

log = logging.getLogger(__name__)

ROBOT_PATH = "/webhooks/dingtalk"
CARD_PATH = "/webhooks/dingtalk/card"
ROBOT_TOPIC = "/v1.0/im/bot/messages/get"
CARD_TOPIC = "/v1.0/card/instances/callback"
#: A robot may send about 20 messages a minute to one conversation (then 130101 and a pause).
CHAT_LIMIT = (20, 60.0)
#: OpenAPI calls per second for the whole app (the smallest plan's per-API QPS).
APP_LIMIT = RateLimit("dingtalk:app", 20, 1.0)
_HOOK_MARGIN_MS = 60_000  # a session webhook this close to expiry is not used
_WORKING = {"zh": "处理中…", "en": "Working on it…"}
_CONFIRM = {"zh": "确认执行？", "en": "Confirm?"}


class DingtalkAdapter(Adapter):
    platform = PLATFORM
    capabilities = Capability.BUTTONS | Capability.EDIT_CARD | Capability.NOTICE | Capability.VOICE

    def __init__(
        self,
        inbox: Inbox,
        settings: DingtalkSettings,
        *,
        public_url: str = "",
        locale: str = "zh",
        people: Mapping[str, tuple[str, str]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(inbox)
        if settings.client_secret is None or not settings.client_id:
            raise ConfigError(["dingtalk.client_id/client_secret: required when enabled"])
        self.settings = settings
        self._secret = settings.client_secret.get_secret_value()
        card_secret = settings.card_callback_secret
        self._card_secret = card_secret.get_secret_value() if card_secret else self._secret
        self._robot_code = settings.robot_code or settings.client_id
        self._public_url = public_url.rstrip("/")
        self._locale = locale if locale in _WORKING else "zh"
        self._people = dict(people or {})  # person key → (staffId, name), for @mentions
        self._clock = clock
        self.api = OpenApi(settings)
        self._hooks: dict[str, tuple[str, int]] = {}  # chat id → (sessionWebhook, expiry ms)
        self.stream: StreamClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        try:
            await self.api.access_token()
        except PlatformApiError as exc:
            await self.api.close()
            raise ConfigError(
                [f"dingtalk.client_secret: DingTalk refused it ({exc.code})"]
            ) from exc
        except TransientSendError as exc:
            log.warning("dingtalk: no access token yet (%s); retrying when needed", exc)
        if self.settings.mode == "stream":
            self.stream = StreamClient(self._open_stream, self._on_frame)
            self.stream.start()
        elif self.settings.register_card_callback and self._public_url.startswith("https://"):
            task = asyncio.create_task(self._register_card_callback())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Idempotent: the app's shutdown and the hub both call it."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        stream, self.stream = self.stream, None
        if stream is not None:
            await stream.stop()
        await self.api.close()

    async def _register_card_callback(self) -> None:
        url = self._public_url + CARD_PATH
        body = {
            "callbackRouteKey": self.settings.card_callback_route_key,
            "callbackUrl": url,
            "apiSecret": self._card_secret,
            "forceUpdate": True,
        }
        try:
            await self.api.call("POST", "/v1.0/card/callbacks/register", body)
            log.info("dingtalk: card callbacks go to %s", url)
        except AdapterError as exc:
            log.error("dingtalk: registering the card callback URL failed: %s", exc)

    async def _open_stream(self) -> tuple[str, str]:
        answer = await self.api.open_connection(
            {
                "clientId": self.settings.client_id,
                "clientSecret": self._secret,
                "subscriptions": [
                    {"type": "CALLBACK", "topic": ROBOT_TOPIC},
                    {"type": "CALLBACK", "topic": CARD_TOPIC},
                ],
                "ua": "gongdan/0.1 (aiohttp)",
                "localIp": await self._local_ip(),
            }
        )
        endpoint, ticket = answer.get("endpoint"), answer.get("ticket")
        if not isinstance(endpoint, str) or not isinstance(ticket, str):
            raise TransientSendError("dingtalk: connections/open answered without a ticket")
        return endpoint, ticket

    async def _local_ip(self) -> str:
        """The address we reach DingTalk from (a UDP "connect" sends nothing)."""
        host = urlsplit(self.settings.api_base_url).hostname or ""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, 443, type=socket.SOCK_DGRAM)
            with socket.socket(infos[0][0], socket.SOCK_DGRAM) as s:
                s.connect(infos[0][4])
                return str(s.getsockname()[0])
        except (OSError, IndexError):
            return ""

    # ---------------------------------------------------------------------------- inbound

    def routes(self) -> Sequence[web.RouteDef]:
        if self.settings.mode == "stream":  # nothing may arrive over HTTP
            return []
        return [web.post(ROBOT_PATH, self._robot_webhook), web.post(CARD_PATH, self._card_webhook)]

    async def _robot_webhook(self, request: web.Request) -> web.Response:
        parse.verify_robot_signature(request.headers, self._secret, self._clock())
        raw = await request.read()
        body = parse.json_object(raw, depth_limit(request))  # (so raw is UTF-8)
        await self.receive_message(body, raw.decode("utf-8"))
        return web.json_response({})  # no msgtype: no passive reply

    async def _card_webhook(self, request: web.Request) -> web.Response:
        headers = request.headers
        parse.verify_card_signature(headers, self._card_secret, self._secret, self._clock())
        raw = await request.read()
        event_id = parse.click_event_id(raw, headers)
        body = parse.json_object(raw, depth_limit(request))  # (so raw is UTF-8)
        return web.json_response(await self.receive_click(body, event_id, raw.decode("utf-8")))

    async def _on_frame(self, frame: Frame) -> Any:
        """A frame's answer; ``BadRequest`` (a 400 ack: not delivered again) when malformed."""
        try:
            return await self._receive_frame(frame)
        except BadRequest:
            self.inbox.note(PLATFORM, "bad_request")
            raise

    async def _receive_frame(self, frame: Frame) -> Any:
        if frame.type != "CALLBACK":
            log.debug("dingtalk stream: %s frame on %r ignored", frame.type, frame.topic)
            return None
        if frame.topic == ROBOT_TOPIC:
            await self.receive_message(parse.json_object(frame.data), frame.data)
            return None
        if frame.topic == CARD_TOPIC:
            body = parse.json_object(frame.data)
            return await self.receive_click(body, f"card:{frame.message_id}", frame.data)
        log.debug("dingtalk stream: callback on %r ignored", frame.topic)
        return None

    async def receive_message(self, body: Mapping[str, Any], raw: str) -> None:
        """Store a robot message (HTTP or Stream); return once it is committed."""
        incoming = parse.parse_robot_message(body, datetime.now(UTC))
        if incoming.event is None:
            return
        if incoming.session_webhook:
            self._remember_hook(incoming.event.chat.chat_id, incoming)
        (accepted,) = await self.inbox.accept([incoming.event], raw=raw)
        if not accepted.new:
            log.debug("dingtalk: message %s was already stored", accepted.event_id)

    async def receive_click(self, body: Mapping[str, Any], event_id: str, raw: str) -> Any:
        """Store a card click; return the callback's immediate answer (presser-only data)."""
        parsed = parse.parse_card_callback(body, event_id, datetime.now(UTC))
        if isinstance(parsed, ConfirmStep):
            if not parsed.token:
                return render.callback_answer(render.hidden_confirm_row())
            question = _CONFIRM[self._locale]
            return render.callback_answer(render.confirm_row(parsed.token, parsed.label, question))
        if not isinstance(parsed, CardPress):
            return render.callback_answer()
        (accepted,) = await self.inbox.accept([parsed.action], raw=raw)
        if not accepted.new:
            log.debug("dingtalk: click %s was already stored", event_id)
            return render.callback_answer()
        return render.callback_answer({"notice": _WORKING[self._locale]})

    def _remember_hook(self, chat_id: str, incoming: parse.Incoming) -> None:
        url = self._hook_url(incoming.session_webhook or "")
        if url is None:
            log.warning("dingtalk: ignoring a sessionWebhook outside DingTalk's API")
            return
        now_ms = self._clock() * 1000
        if len(self._hooks) > 10_000:
            self._hooks = {k: v for k, v in self._hooks.items() if v[1] > now_ms}
        self._hooks[chat_id] = (url, incoming.session_expires_ms)

    def _hook_url(self, url: str) -> str | None:
        """Only DingTalk's own host (sent to ``oapi_base_url``, a proxy or test double) or the
        configured base itself: a payload must never make us post elsewhere."""
        parts = urlsplit(url)
        base = self.settings.oapi_base_url.rstrip("/")
        if parts.scheme == "https" and parts.hostname == "oapi.dingtalk.com":
            return base + url[len(f"https://{parts.netloc}") :]
        return url if url.startswith(base + "/") else None

    # --------------------------------------------------------------------------- outbound

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        count, per = CHAT_LIMIT
        return (RateLimit(f"dingtalk:{destination.chat_id}", count, per), APP_LIMIT)

    def notice_limits(self, destination: Address) -> Sequence[RateLimit]:
        """A notice is private card data, not a chat message: only the app-wide limit."""
        return (APP_LIMIT,)

    async def send(self, destination: Address, message: Text | Card, *, key: str) -> Sent:
        try:
            if isinstance(message, Card):
                return await self._create_card(destination.chat_id, message, key)
            return await self._send_text(destination.chat_id, message)
        except RateLimited as exc:
            if exc.key is not None:
                raise
            # 130101 throttles one conversation: hold only its key, not every DingTalk send.
            raise RateLimited(
                exc.retry_after, str(exc), key=f"dingtalk:{destination.chat_id}"
            ) from exc

    async def _send_text(self, chat_id: str, text: Text) -> Sent:
        people = [self._people[k] for k in text.mentions if k in self._people]
        hook = self._hooks.get(chat_id)
        if hook is not None and hook[1] - self._clock() * 1000 > _HOOK_MARGIN_MS:
            body = render.webhook_text(text.text, [staff_id for staff_id, _ in people])
            try:
                await self.api.post_webhook(hook[0], body)
                return Sent(None)
            except PlatformApiError as exc:  # expired or refused: the OpenAPI still works
                log.info("dingtalk: session webhook for %s refused (%s)", chat_id, exc.code)
                self._hooks.pop(chat_id, None)
        msg = render.openapi_text(text.text, [name for _, name in people])
        if is_group(chat_id):
            body = {"robotCode": self._robot_code, "openConversationId": chat_id, **msg}
            answer = await self.api.call("POST", "/v1.0/robot/groupMessages/send", body)
        else:
            body = {"robotCode": self._robot_code, "userIds": [chat_id], **msg}
            answer = await self.api.call("POST", "/v1.0/robot/oToMessages/batchSend", body)
            _check_batch(answer, chat_id, self.settings.rate_limit_backoff)
        key = answer.get("processQueryKey")
        return Sent(key if isinstance(key, str) else None)

    async def _create_card(self, chat_id: str, card: Card, key: str) -> Sent:
        out_track_id = parse.track_id(chat_id, key)
        params = render.render_card(card, two_step_confirm=self.settings.two_step_confirm)
        body: dict[str, Any] = {
            "cardTemplateId": self.settings.card_template_id,
            "outTrackId": out_track_id,
            "cardData": {"cardParamMap": params},
            "userIdType": 1,  # userIds are staffIds, in deliveries and in callbacks
        }
        if self.settings.mode == "stream":
            body["callbackType"] = "STREAM"
        else:
            body |= {
                "callbackType": "HTTP",
                "callbackRouteKey": self.settings.card_callback_route_key,
            }
        if is_group(chat_id):
            body |= {
                "openSpaceId": f"dtv1.card//IM_GROUP.{chat_id}",
                "imGroupOpenSpaceModel": {"supportForward": False},
                "imGroupOpenDeliverModel": {"robotCode": self._robot_code},
            }
        else:
            body |= {
                "openSpaceId": f"dtv1.card//IM_ROBOT.{chat_id}",
                "imRobotOpenSpaceModel": {"supportForward": False},
                "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT", "robotCode": self._robot_code},
            }
        try:
            answer = await self.api.call("POST", "/v1.0/card/instances/createAndDeliver", body)
        except PlatformApiError as exc:
            if "exist" in str(exc).lower() or "重复" in str(exc):  # our retry after a lost answer
                log.info("dingtalk: card %s already exists; not sent twice", out_track_id)
                return Sent(out_track_id)
            raise
        result = answer.get("result")
        deliveries = result.get("deliverResults") if isinstance(result, dict) else None
        failed = [d for d in deliveries or () if isinstance(d, dict) and d.get("success") is False]
        if failed:
            raise PlatformApiError("deliver_failed", str(failed[0].get("errorMsg") or failed[0]))
        return Sent(out_track_id)

    async def update(self, destination: Address, platform_message_id: str, card: Card) -> None:
        params = render.render_card(card, two_step_confirm=self.settings.two_step_confirm)
        body = {
            "outTrackId": platform_message_id,
            "userIdType": 1,
            "cardData": {"cardParamMap": params},
            "cardUpdateOptions": {"updateCardDataByKey": True},
        }
        await self.api.call("PUT", "/v1.0/card/instances", body)

    async def notify(self, destination: Address, notice: Notice, *, key: str) -> None:
        """The presser's private ``notice`` on the card they pressed; else a chat text."""
        out_track_id = notice.reply_ctx.get("out_track_id")
        user_id = notice.user_id or notice.reply_ctx.get("user_id")
        if isinstance(out_track_id, str) and isinstance(user_id, str):
            body = {
                "outTrackId": out_track_id,
                "userIdType": 1,
                "privateData": {user_id: {"cardParamMap": render.notice_data(notice.text)}},
                "cardUpdateOptions": {"updatePrivateDataByKey": True},
            }
            try:
                await self.api.call("PUT", "/v1.0/card/instances", body)
                return
            except PlatformApiError as exc:
                log.info("dingtalk: private notice on %s refused (%s)", out_track_id, exc.code)
        await self._send_text(destination.chat_id, Text(notice.text))

    async def download(self, media_ref: str) -> bytes:
        """``messageFiles/download`` turns a ``downloadCode`` into a URL; then GET it."""
        answer = await self.api.call(
            "POST",
            "/v1.0/robot/messageFiles/download",
            {"downloadCode": media_ref, "robotCode": self._robot_code},
        )
        url = answer.get("downloadUrl")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise PlatformApiError("download_url", "messageFiles/download gave no URL")
        return await self.api.fetch(url, self.settings.max_download_bytes)


def _check_batch(answer: Mapping[str, Any], user_id: str, backoff: float) -> None:
    """``batchSend`` answers 200 but names the users it did not reach."""
    if user_id in (answer.get("flowControlledStaffIdList") or ()):
        raise RateLimited(backoff, f"dingtalk batchSend: {user_id} is flow controlled")
    if user_id in (answer.get("invalidStaffIdList") or ()):
        raise PlatformApiError("invalid_staff_id", f"dingtalk batchSend: no such user {user_id}")
