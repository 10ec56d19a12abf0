"""Group robots (群机器人): send-only webhooks for team and manager group chats.

A team chat is configured as ``wecom-robot:<webhook key>``; messages go to
``POST {api_base_url}/cgi-bin/webhook/send?key=<key>``. A robot cannot receive callbacks, so a
card is rendered as markdown without buttons and says that actions happen in the app. A robot
message cannot be edited either: ``update`` posts the card again. WeCom allows 20 messages a
minute per robot (errcode 45009 beyond that); the limit is declared so the outbox paces a burst
instead of losing it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.adapters.base import Adapter, Capability, RateLimit, Sent
from bot.adapters.wecom.api import WecomApi
from bot.adapters.wecom.parse import ROBOT
from bot.adapters.wecom.render import markdown_card, robot_text
from bot.events import Address, Card, Text
from bot.inbox import Inbox

__all__ = ["ROBOT_PER_MINUTE", "WecomRobotAdapter"]

#: 每个机器人发送的消息不能超过20条/分钟 (group robot doc, path 91770).
ROBOT_PER_MINUTE = 20


class WecomRobotAdapter(Adapter):
    platform = ROBOT
    capabilities = Capability.NONE

    def __init__(
        self,
        inbox: Inbox,
        api: WecomApi,
        *,
        userids: Mapping[str, str] | None = None,
        per_minute: int = ROBOT_PER_MINUTE,
    ) -> None:
        super().__init__(inbox)
        self.api = api
        self._userids = dict(userids or {})  # person key → WeCom userid, for @-mentions
        self._per_minute = per_minute

    def routes(self) -> Sequence[web.RouteDef]:
        return []

    async def start(self) -> None:
        await self.api.start()

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        return (RateLimit(f"wecom-robot:{destination.chat_id}", self._per_minute, 60.0),)

    def body(self, message: Text | Card) -> dict[str, Any]:
        if isinstance(message, Card):
            return {"msgtype": "markdown", "markdown": {"content": markdown_card(message)}}
        return robot_text(message.text, message.mentions, self._userids)

    async def send(self, destination: Address, message: Text | Card, *, key: str) -> Sent:
        url = f"{self.api.base_url}/cgi-bin/webhook/send?key={quote(destination.chat_id, safe='')}"
        await self.api.post_url(url, self.body(message), "webhook/send")
        # Robots return no message id; a card still needs one so that its ref is "delivered".
        return Sent(f"robot-{secrets.token_hex(6)}")

    async def update(self, destination: Address, platform_message_id: str, card: Card) -> None:
        """A robot's message cannot be edited: the card is posted again, as it is now."""
        await self.send(destination, card, key=platform_message_id)
