"""The AI bot (智能机器人) in URL-callback mode: group @-mentions and 1:1 chats in.

``GET /webhooks/wecom/aibot`` answers the URL check; ``POST`` carries ``{"encrypt": …}`` sealed
with the bot's own Token and EncodingAESKey and receiveid ``""``. The decrypted JSON becomes a
``Message`` (text, mixed text, and voice — which arrives only as WeCom's transcript) or an
``Action`` (a template-card button press), stored before the empty 200 answer; dedupe on
``msgid``.

Replies: an AI bot in callback mode cannot post on its own. Each callback carries a
``response_url`` good for one message within an hour; they are kept per chat (in memory) and
each reply spends the newest. With none left, a reply to a 1:1 chat goes through the app's DM
to the same member, and one to a group through the group robot configured for that chat in
``[wecom] aibot_group_robots``; otherwise it is refused (a dead letter the admin chat hears of).
A card from the AI bot cannot be edited later, so ``update`` posts it again.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.adapters.base import Adapter, Capability, RateLimit, Sent
from bot.adapters.body import depth_limit, loads_object, text_of
from bot.adapters.wecom.api import WecomApi
from bot.adapters.wecom.callback import answer_url_check, dropped, open_encrypted
from bot.adapters.wecom.crypto import WecomCrypto
from bot.adapters.wecom.parse import AIBOT, APP, ROBOT, parse_aibot
from bot.adapters.wecom.render import clip_bytes, new_task_id, template_card
from bot.errors import BadRequest, PlatformApiError
from bot.events import Address, Card, Text
from bot.inbox import Inbox

__all__ = ["RESPONSE_URL_TTL_S", "WEBHOOK_PATH", "WecomAibotAdapter"]

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/wecom/aibot"
RESPONSE_URL_TTL_S = 3600 - 60
_MAX_CHATS = 10_000
_TRUSTED_HOST = "qyapi.weixin.qq.com"


class WecomAibotAdapter(Adapter):
    platform = AIBOT
    capabilities = Capability.BUTTONS

    def __init__(
        self,
        inbox: Inbox,
        api: WecomApi,
        crypto: WecomCrypto,
        *,
        dm: Adapter | None = None,
        robot: Adapter | None = None,
        group_robots: Mapping[str, str] | None = None,
        fallback_url: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(inbox)
        self.api = api
        self.crypto = crypto
        self._dm = dm
        self._robot = robot
        self._group_robots = dict(group_robots or {})
        self._fallback_url = fallback_url
        self._clock = clock
        self._urls: OrderedDict[str, deque[tuple[str, float]]] = OrderedDict()
        self._groups: set[str] = set()  # chats seen as groups (never DMed as a member)

    def routes(self) -> Sequence[web.RouteDef]:
        return [web.get(WEBHOOK_PATH, self._url_check), web.post(WEBHOOK_PATH, self._callback)]

    async def start(self) -> None:
        await self.api.start()

    async def _url_check(self, request: web.Request) -> web.Response:
        return answer_url_check(self.crypto, request.query)

    async def _callback(self, request: web.Request) -> web.Response:
        """See ``callback.py`` for what is refused how."""
        raw, depth = await request.read(), depth_limit(request)
        envelope = loads_object(raw.decode("utf-8", "replace"), depth=depth, what="body")
        encrypt = envelope.get("encrypt")
        plain = open_encrypted(
            self.crypto, request.query, encrypt if isinstance(encrypt, str) else None
        )
        text_of(raw, "WeCom callback")
        body = loads_object(plain, depth=depth, what="decrypted callback")
        try:
            events = parse_aibot(body, datetime.now(UTC))
            if events:
                await self.inbox.accept(events, raw=plain)
        except BadRequest as exc:
            return dropped(self.inbox, AIBOT, exc)
        if events:
            if events[0].chat_type == "group":
                self._groups.add(events[0].chat.chat_id)
            url = body.get("response_url")
            if isinstance(url, str) and self._trusted(url):
                self._keep(events[0].chat.chat_id, url)
        return web.Response(text="")

    # ------------------------------------------------------------------ response urls

    def _trusted(self, url: str) -> bool:
        """Replies are POSTed only to WeCom (or the configured stand-in for it)."""
        parts, api = urlsplit(url), urlsplit(self.api.base_url)
        if parts.scheme == "https" and parts.hostname == _TRUSTED_HOST:
            return True
        return (parts.scheme, parts.netloc) == (api.scheme, api.netloc)

    def _keep(self, chat_id: str, url: str) -> None:
        urls = self._urls.setdefault(chat_id, deque(maxlen=20))
        urls.append((url, self._clock() + RESPONSE_URL_TTL_S))
        self._urls.move_to_end(chat_id)
        while len(self._urls) > _MAX_CHATS:
            self._urls.popitem(last=False)

    def _take(self, chat_id: str) -> str | None:
        urls = self._urls.get(chat_id)
        now = self._clock()
        while urls:
            url, expires = urls.pop()
            if expires > now:
                return url
        return None

    # ---------------------------------------------------------------------------- out

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        return (RateLimit(f"wecom-aibot:{destination.chat_id}", 20, 60.0),)

    def _body(self, message: Text | Card) -> dict[str, Any]:
        if isinstance(message, Card):
            card = template_card(message, new_task_id(message), fallback_url=self._fallback_url)
            return {"msgtype": "template_card", "template_card": card}
        return {"msgtype": "markdown", "markdown": {"content": clip_bytes(message.text, 4096)}}

    async def send(self, destination: Address, message: Text | Card, *, key: str) -> Sent:
        chat = destination.chat_id
        url = self._take(chat)
        if url is not None:
            await self.api.post_url(url, self._body(message), "aibot/response")
            return Sent(f"aibot-{key}"[:300])
        robot_key = self._group_robots.get(chat)
        if robot_key is not None and self._robot is not None:
            return await self._robot.send(Address(ROBOT, robot_key), message, key=key)
        if self._dm is not None and chat not in self._groups:
            # 1:1 chats are keyed by the member's userid: the app can DM the same person.
            return await self._dm.send(Address(APP, chat), message, key=key)
        raise PlatformApiError("no_reply_channel", f"wecom-aibot: nothing left to reply in {chat}")

    async def update(self, destination: Address, platform_message_id: str, card: Card) -> None:
        await self.send(destination, card, key=f"update:{platform_message_id}")
