"""Contract driver for the built-in web chat."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from bot.adapters.webchat.render import render
from bot.events import Card
from tests.adapters.driver import Request, Sample


class WebchatDriver:
    platform = "web"

    def __init__(self) -> None:
        self.session = ""
        self.conversation = ""

    async def start(self) -> dict[str, Any]:
        return {}

    async def stop(self) -> None:
        pass

    async def prepare(self, base_url: str) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.post(base_url + "/chat/api/session", json={"name": "张三"}) as r,
        ):
            body = await r.json()
        self.session, self.conversation = body["session"], body["conversation"]

    def _post(self, path: str, body: dict[str, Any]) -> Request:
        return Request(path, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def samples(self) -> list[Sample]:
        who = {"platform": "web", "user_id": self.conversation, "name": "张三", "locale": None}
        chat = {"platform": "web", "chat_id": self.conversation}
        return [
            Sample(
                "text",
                self._post(
                    "/webchat/api/messages",
                    {"session": self.session, "id": "msg-0001", "text": "空压机漏油"},
                ),
                [
                    {
                        "kind": "message",
                        "event_id": f"{self.conversation}:msg-0001",
                        "chat": chat,
                        "sender": who,
                        "chat_type": "direct",
                        "text": "空压机漏油",
                        "mentions_bot": False,
                    }
                ],
            ),
        ]

    def forged(self) -> list[Request]:
        body, mac = self.session.split(".")
        return [
            self._post(
                "/webchat/api/messages",
                {"session": body + "." + mac[::-1], "id": "msg-0002", "text": "x"},
            ),
            self._post("/webchat/api/messages", {"id": "msg-0003", "text": "x"}),
        ]

    def unknown(self) -> Request:
        return Request("/webchat/api/unknown", b"{}", {"Content-Type": "application/json"})

    def render(self, card: Card) -> Any:
        return render(card)[1]

    def click(self, rendered: Any, button: int) -> Request:
        token = rendered["buttons"][button]["token"]
        return self._post(
            "/webchat/api/actions",
            {"session": self.session, "id": f"click-{button:04d}", "token": token},
        )

    async def media(self) -> tuple[str, bytes]:
        raise NotImplementedError  # the web chat has no voice notes yet
