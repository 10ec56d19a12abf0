"""Contract driver for Telegram: the fake Bot API, the shared samples, the secret-token header."""

from __future__ import annotations

import itertools
import json
from typing import Any

from telegram import InlineKeyboardButton

from bot.adapters.telegram.adapter import SECRET_HEADER, WEBHOOK_PATH
from bot.adapters.telegram.render import CONFIRM, Rendered, arm, render_card
from bot.events import Card
from tests.adapters.driver import FIXTURES, Request, Sample
from tests.fakes_telegram import BOT_USER, TOKEN, FakeBotApi

PAYLOADS = FIXTURES / "telegram"
#: The secret token of the shared webhook sample (``webhook_request.txt``).
SECRET = "s3cr3t_Token-ABC123"
GROUP = {"id": -1001234567890, "title": "Ops Helpdesk", "type": "supergroup"}
WANG = {"id": 111111111, "is_bot": False, "first_name": "Wang", "username": "wangwu"}


def webhook(update: dict[str, Any] | bytes, secret: str | None = SECRET) -> Request:
    """A webhook delivery as Telegram makes it."""
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    return Request(WEBHOOK_PATH, body, headers)


def _http_sample(text: str) -> Request:
    """``webhook_request.txt``: an HTTP request, its headers kept, posted to our path."""
    head, _, rest = text.partition("\n\n")
    headers = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition(":") for line in head.splitlines()[1:])
    )
    body = rest.strip().splitlines()[0].encode()  # the lines after it are comments
    return Request(WEBHOOK_PATH, body, headers)


class TelegramDriver:
    platform = "telegram"

    def __init__(self) -> None:
        self.api = FakeBotApi()
        self._update_ids = itertools.count(872350000)

    async def start(self) -> dict[str, Any]:
        base = await self.api.start()
        return {
            "telegram": {
                "enabled": True,
                "bot_token": TOKEN,
                "webhook_secret": SECRET,
                "api_base_url": base,
            }
        }

    async def stop(self) -> None:
        await self.api.stop()

    async def prepare(self, base_url: str) -> None:
        pass

    def samples(self) -> list[Sample]:
        out = []
        for expected in sorted(PAYLOADS.glob("*.expected.json")):
            name = expected.name.removesuffix(".expected.json")
            as_json, as_http = PAYLOADS / f"{name}.json", PAYLOADS / f"{name}.txt"
            request = (
                webhook(as_json.read_bytes())
                if as_json.exists()
                else _http_sample(as_http.read_text(encoding="utf-8"))
            )
            out.append(Sample(name, request, json.loads(expected.read_text(encoding="utf-8"))))
        return out

    def forged(self) -> list[Request]:
        update = json.loads((PAYLOADS / "text_group.json").read_bytes())
        return [
            webhook(update, secret=None),
            webhook(update, secret=SECRET[:-1] + "X"),
            webhook(update, secret=SECRET.lower()),
            webhook(update, secret=""),
        ]

    def unknown(self) -> Request:
        member = {"status": "member", "user": BOT_USER}
        return webhook(
            {
                "update_id": next(self._update_ids),
                "my_chat_member": {
                    "chat": GROUP,
                    "from": WANG,
                    "date": 1717232000,
                    "old_chat_member": {"status": "left", "user": BOT_USER},
                    "new_chat_member": member,
                },
            }
        )

    def render(self, card: Card) -> Rendered:
        return render_card(card)

    def click(self, rendered: Rendered, button: int) -> Request:
        """The press of button ``button``. A button that needs confirming is pressed twice in
        Telegram: the first press arms the keyboard, the callback that acts is the ✔ press."""
        markup = rendered.reply_markup
        assert markup is not None
        pressed: InlineKeyboardButton = [b for row in markup.inline_keyboard for b in row][button]
        data = str(pressed.callback_data)
        if data.startswith(CONFIRM):
            markup = arm(markup, data)
            assert markup is not None
            data = data.removeprefix(CONFIRM)
        return webhook(self.callback(data, markup.to_dict()))

    def callback(
        self,
        data: str,
        reply_markup: dict[str, Any] | None = None,
        *,
        user: dict[str, Any] | None = None,
        chat: dict[str, Any] | None = None,
        message_id: int = 4213,
    ) -> dict[str, Any]:
        """A ``callback_query`` update: someone pressed a button carrying ``data``."""
        update_id = next(self._update_ids)
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": BOT_USER,
            "chat": chat or GROUP,
            "date": 1717230100,
            "text": "GD-7 · P1 · 注塑机停机",
        }
        if reply_markup is not None:
            message["reply_markup"] = reply_markup
        return {
            "update_id": update_id,
            "callback_query": {
                "id": f"cbq-{update_id}",
                "from": user or WANG,
                "chat_instance": "-8924721462174728291",
                "message": message,
                "data": data,
            },
        }

    async def media(self) -> tuple[str, bytes]:
        content = b"OggS\x00\x02" + bytes(range(256)) * 40
        self.api.add_file("AwACAgUAAxkBAAIQ3GZ-voice-note", content)
        return "AwACAgUAAxkBAAIQ3GZ-voice-note", content
