"""Contract driver for Slack: signed Events API / interactivity requests against a fake Web API."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import quote

from bot.adapters.slack.render import render_card
from bot.events import Card
from tests.adapters.driver import FIXTURES, Request, Sample
from tests.fakes_slack import FakeSlackApi

SIGNING_SECRET = "gongdan-slack-signing-secret"
SLACK = FIXTURES / "slack"
PATH = "/webhooks/slack"


def sign(body: bytes, *, secret: str = SIGNING_SECRET, at: int | None = None) -> dict[str, str]:
    """Slack's v0 signature headers for ``body`` sent at ``at`` (now by default)."""
    ts = str(int(time.time()) if at is None else at)
    mac = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={mac}"}


def form_body(payload: dict[str, Any]) -> bytes:
    """Interactivity payloads on the wire, exactly as bolt-python's tests build them."""
    return f"payload={quote(json.dumps(payload))}".encode()


def event_request(body: dict[str, Any] | bytes, **headers: str) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return Request(PATH, raw, {"Content-Type": "application/json", **sign(raw), **headers})


def action_request(payload: dict[str, Any]) -> Request:
    raw = form_body(payload)
    return Request(PATH, raw, {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)})


def load(name: str) -> Any:
    return json.loads((SLACK / name).read_text(encoding="utf-8"))


def click_payload(
    rendered: dict[str, Any],
    button: int,
    *,
    user: str = "U0CLICK",
    channel: str = "C0TEAM",
    message_ts: str = "1700000000.000001",
) -> dict[str, Any]:
    """A ``block_actions`` payload for a press of ``rendered``'s button number ``button``."""
    actions = next(b for b in rendered["blocks"] if b["type"] == "actions")
    element = actions["elements"][button]
    stamp = f"{time.time():.6f}"
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T111"},
        "api_app_id": "A111",
        "token": "verification_token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{stamp}.{button}.{user}.trigger",
        "team": {"id": "T111", "domain": "gongdan-test"},
        "channel": {"id": channel, "name": "maintenance"},
        "message": {"type": "message", "ts": message_ts, "blocks": rendered["blocks"]},
        "response_url": "https://hooks.slack.com/actions/T111/1/test",
        "actions": [
            {
                "action_id": element["action_id"],
                "block_id": actions["block_id"],
                "text": element["text"],
                "value": element["value"],
                "type": "button",
                "action_ts": stamp,
            }
        ],
    }


class SlackDriver:
    platform = "slack"

    def __init__(self) -> None:
        self.fake = FakeSlackApi()

    async def start(self) -> dict[str, Any]:
        await self.fake.start()
        return {
            "slack": {
                "enabled": True,
                "bot_token": self.fake.bot_token,
                "signing_secret": SIGNING_SECRET,
                "api_base_url": self.fake.api_base,
            }
        }

    async def stop(self) -> None:
        await self.fake.stop()

    async def prepare(self, base_url: str) -> None:
        pass

    def samples(self) -> list[Sample]:
        def case(name: str, *, retry: bool = False) -> Sample:
            headers = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
            request = event_request(load(f"{name}.json"), **(headers if retry else {}))
            expected = [] if retry else load(f"{name}.expected.json")
            return Sample(name + (" (retry)" if retry else ""), request, expected)

        return [
            case("url_verification"),
            case("message_channel_text"),
            case("message_channel_text", retry=True),
            case("app_mention_same_post"),
            case("app_mention_channel"),
            case("message_im"),
            case("message_file_share"),
            case("message_audio_clip"),
            case("message_bot"),
            case("message_own_bot"),
            case("message_changed"),
            case("reaction_added"),
            Sample(
                "block_actions",
                action_request(load("block_actions.json")),
                load("block_actions.expected.json"),
            ),
        ]

    def forged(self) -> list[Request]:
        body = json.dumps(load("message_channel_text.json")).encode()
        good = sign(body)
        json_type = {"Content-Type": "application/json"}
        replayed = sign(body, at=int(time.time()) - 600)  # correctly signed, 10 minutes old
        return [
            Request(PATH, body, {**json_type, **sign(body, secret="not-the-secret")}),
            Request(PATH, body, json_type),  # unsigned
            Request(PATH, body, {**json_type, **replayed}),
            Request(PATH, body.replace(b"E102", b"E666"), {**json_type, **good}),  # tampered
            Request(PATH, body, {**json_type, **good, "X-Slack-Signature": "v0=" + "0" * 64}),
        ]

    def unknown(self) -> Request:
        # A payload type nothing routes (a global shortcut): Bolt's "unhandled request".
        shortcut = {
            "type": "shortcut",
            "token": "verification_token",
            "action_ts": "1700000009.000900",
            "team": {"id": "T111", "domain": "gongdan-test"},
            "user": {"id": "U0CUST", "username": "cust", "team_id": "T111"},
            "callback_id": "open_ticket",
            "trigger_id": "1700000009.111.shortcut",
        }
        raw = form_body(shortcut)
        return Request(
            PATH, raw, {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)}
        )

    def render(self, card: Card) -> Any:
        return render_card(card)

    def click(self, rendered: Any, button: int) -> Request:
        return action_request(click_payload(rendered, button))

    async def media(self) -> tuple[str, bytes]:
        clip = b"\x00\x00\x00\x18ftypM4A " + bytes(range(256)) * 64
        return self.fake.add_file("audio_message.m4a", clip), clip
