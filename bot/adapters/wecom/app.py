"""The self-built app (自建应用): members' 1:1 chats in, app messages and template cards out.

Inbound: ``GET /webhooks/wecom`` answers WeCom's URL check; ``POST /webhooks/wecom`` verifies
``msg_signature``, decrypts (receiveid = corp id), parses, stores through the inbox and only
then answers an empty 200 — well inside WeCom's 5 s, since storing is all that happens before
the answer. A forged, tampered or foreign request is refused (401) and nothing is stored; a
WeCom retry of something already stored is answered 200 and stored once (dedupe on MsgId).

Outbound: ``message/send`` to the member's userid (the chat id of a DM); a card is a
``button_interaction`` template card whose ``response_code`` and those of later presses are
kept in the ``CardLedger``; ``update`` spends them with ``update_template_card`` and, when none
is left, posts a fresh card and marks the old one stale (see ``cards.py``). The platform
message id of a card is ``<task_id>#<response_code from send>`` so that after a restart the
send's code can still mark the card stale.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from bot.adapters.base import Adapter, Capability, RateLimit, Sent
from bot.adapters.body import text_of
from bot.adapters.wecom.api import WecomApi
from bot.adapters.wecom.callback import answer_url_check, dropped, open_encrypted, safe_xml
from bot.adapters.wecom.cards import CardLedger
from bot.adapters.wecom.crypto import WecomCrypto
from bot.adapters.wecom.parse import APP, parse_app
from bot.adapters.wecom.render import app_text, new_task_id, stale_label, template_card
from bot.config import Settings
from bot.errors import (
    AdapterError,
    BadRequest,
    ConfigError,
    PlatformApiError,
    TransientSendError,
)
from bot.events import Action, Address, Card, Text
from bot.inbox import Inbox

__all__ = ["WEBHOOK_PATH", "WecomAppAdapter", "split_message_id"]

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/wecom"
#: Roughly what WeCom lets an app send one member (unverified: 30/min and 1000/h are the
#: figures quoted in public copies of the docs); the member limit is configurable.
MEMBER_PER_HOUR = 1000
#: WeCom's per-corp ceiling per API (2000 calls/min).
APP_PER_MINUTE = 2000


def split_message_id(platform_message_id: str) -> tuple[str, str | None]:
    """``<task_id>#<send code>`` → (task id, code or None)."""
    task, sep, code = platform_message_id.partition("#")
    return task, (code or None) if sep else None


class WecomAppAdapter(Adapter):
    platform = APP
    capabilities = Capability.BUTTONS | Capability.EDIT_CARD | Capability.VOICE

    def __init__(
        self, inbox: Inbox, settings: Settings, api: WecomApi, ledger: CardLedger | None = None
    ) -> None:
        super().__init__(inbox)
        section = settings.wecom
        if section.token is None or section.encoding_aes_key is None or section.agent_id is None:
            raise ConfigError(["wecom: token, encoding_aes_key and agent_id are required"])
        self.settings = section
        self.crypto = WecomCrypto(
            section.token.get_secret_value(),
            section.encoding_aes_key.get_secret_value(),
            section.corp_id,
        )
        self.agent_id = section.agent_id
        self.api = api
        self.ledger = ledger or CardLedger()
        self._fallback_url = settings.public_url

    # -------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        await self.api.start()

    async def stop(self) -> None:
        await self.api.close()

    # ---------------------------------------------------------------------------- inbound

    def routes(self) -> Sequence[web.RouteDef]:
        return [web.get(WEBHOOK_PATH, self._url_check), web.post(WEBHOOK_PATH, self._callback)]

    async def _url_check(self, request: web.Request) -> web.Response:
        return answer_url_check(self.crypto, request.query)

    async def _callback(self, request: web.Request) -> web.Response:
        """See ``callback.py`` for what is refused how."""
        raw = await request.read()
        envelope = safe_xml(raw.decode("utf-8", "replace"))  # the signed Encrypt is ASCII
        plain = open_encrypted(self.crypto, request.query, envelope.get("Encrypt"))
        text_of(raw, "WeCom callback")
        fields = safe_xml(plain)
        try:
            events = parse_app(fields, datetime.now(UTC))
            stored = await self.inbox.accept(events, raw=plain) if events else []
        except BadRequest as exc:
            return dropped(self.inbox, APP, exc)
        for accepted in stored:
            if not accepted.new:
                log.debug("wecom: %s was already stored (a retry)", accepted.event_id)
        for event in events:
            if isinstance(event, Action):
                self.ledger.issued(
                    str(event.reply_ctx.get("task_id") or ""),
                    str(event.reply_ctx.get("response_code") or ""),
                )
        return web.Response(text="")

    # --------------------------------------------------------------------------- outbound

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        member = destination.chat_id
        return (
            RateLimit(f"wecom:member:{member}", self.settings.member_messages_per_minute, 60.0),
            RateLimit(f"wecom:member-hour:{member}", MEMBER_PER_HOUR, 3600.0),
            RateLimit("wecom:app", APP_PER_MINUTE, 60.0),
        )

    async def _message(self, touser: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.api.call(
            "/cgi-bin/message/send", {"touser": touser, "agentid": self.agent_id, **body}
        )
        invalid = str(answer.get("invaliduser") or "")
        if touser in invalid.split("|"):
            raise PlatformApiError("invaliduser", f"wecom: {touser} is outside the app's range")
        return answer

    async def send(self, destination: Address, message: Text | Card, *, key: str) -> Sent:
        if isinstance(message, Text):
            answer = await self._message(destination.chat_id, app_text(message.text))
            return Sent(str(answer.get("msgid") or "") or None)
        task = new_task_id(message)
        card = template_card(message, task, fallback_url=self._fallback_url)
        answer = await self._message(
            destination.chat_id, {"msgtype": "template_card", "template_card": card}
        )
        code = str(answer.get("response_code") or "")
        self.ledger.issued(task, code)
        return Sent(f"{task}#{code}" if code and len(task) + len(code) < 299 else task)

    async def update(
        self, destination: Address, platform_message_id: str, card: Card
    ) -> Sent | None:
        return await self.update_card(destination, platform_message_id, card)

    async def update_card(
        self, destination: Address, platform_message_id: str, card: Card
    ) -> Sent | None:
        """Update in place while a spare code exists (None); else post a fresh card, mark the
        old one stale with the last code, and return where the card now lives."""
        handle, seed = split_message_id(platform_message_id)
        task = self.ledger.current(handle)
        if seed and not self.ledger.knows(handle):  # restarted: the send's code may be unused
            self.ledger.issued(handle, seed)
        while self.ledger.usable(task) >= 2:
            code = self.ledger.take_newest(task)
            assert code is not None
            body = {"template_card": template_card(card, task, fallback_url=self._fallback_url)}
            try:
                await self._update_template_card(destination, code, body)
                return None
            except TransientSendError:
                self.ledger.issued(task, code)  # not spent: WeCom did not take it
                raise
            except PlatformApiError as exc:
                log.info("wecom: card %s refused a response_code (%s); trying another", task, exc)
        reserve = self.ledger.take_oldest(task)
        sent = await self.send(destination, card, key=f"fresh:{platform_message_id}")
        new_task, _ = split_message_id(sent.platform_message_id or "")
        self.ledger.moved(handle, new_task)
        if reserve is None:
            log.info("wecom: card %s had no response_code left; posted %s", task, new_task)
            return sent
        try:
            stale = {"button": {"replace_name": stale_label(card)}}
            await self._update_template_card(destination, reserve, stale)
        except AdapterError as exc:  # the fresh card is out; the old one stays as it was
            log.info("wecom: could not mark card %s stale: %s", task, exc)
        return sent

    async def _update_template_card(
        self, destination: Address, code: str, body: dict[str, Any]
    ) -> None:
        await self.api.call(
            "/cgi-bin/message/update_template_card",
            {
                "userids": [destination.chat_id],
                "agentid": self.agent_id,
                "response_code": code,
                **body,
            },
        )

    async def download(self, media_ref: str) -> bytes:
        """A voice note's AMR through ``media/get`` (media ids live three days)."""
        return await self.api.download(media_ref, self.settings.max_download_bytes)
