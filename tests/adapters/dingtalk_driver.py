"""Contract driver for DingTalk: signed HTTP callbacks (robot messages, card clicks) against the
fake DingTalk, with the shared samples and constructed ones under ``fixtures/payloads/dingtalk``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bot.adapters.dingtalk.adapter import CARD_PATH, ROBOT_PATH
from bot.adapters.dingtalk.parse import card_sign, click_event_id, robot_sign, track_id
from bot.adapters.dingtalk.render import CONFIRM, confirm_row, render_card
from bot.events import Card
from tests.adapters.driver import FIXTURES, Request, Sample
from tests.fakes_dingtalk import FakeDingtalk

DINGTALK = FIXTURES / "dingtalk"
#: The app secret of the shared signature vector (``signature_vectors.json``).
SECRET = "this_is_a_fake_app_secret_for_tests_only"
TEAM_CHAT = "cidTEAMmaint7Fq2Xw=="
JSON = {"Content-Type": "application/json"}


def load(name: str) -> Any:
    return json.loads((DINGTALK / name).read_text(encoding="utf-8"))


def now_ms() -> str:
    return str(int(time.time() * 1000))


def robot_headers(secret: str = SECRET, at: str | None = None) -> dict[str, str]:
    ts = at or now_ms()
    return {"timestamp": ts, "sign": robot_sign(secret, ts)}


def card_headers(secret: str = SECRET, at: str | None = None) -> dict[str, str]:
    ts = at or now_ms()
    return {"x-ddpaas-signature-timestamp": ts, "x-ddpaas-signature": card_sign(secret, ts)}


def _raw(body: dict[str, Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()


def robot_request(body: dict[str, Any] | bytes, **headers: str) -> Request:
    return Request(ROBOT_PATH, _raw(body), {**JSON, **robot_headers(), **headers})


def card_request(body: dict[str, Any] | bytes, **headers: str) -> Request:
    return Request(CARD_PATH, _raw(body), {**JSON, **card_headers(), **headers})


def click_body(
    out_track_id: str, token: str, *, user: str = "staff1", action_id: str = "btn0"
) -> dict[str, Any]:
    """An ``actionCallback``: ``user`` pressed a button whose ``params.token`` is ``token``."""
    private = {"cardPrivateData": {"actionIds": [action_id], "params": {"token": token}}}
    return {
        "type": "actionCallback",
        "outTrackId": out_track_id,
        "corpId": "dingcorpgongdan01",
        "userId": user,
        "content": json.dumps(private, separators=(",", ":")),
    }


def press(
    params: dict[str, str], button: int, out_track_id: str, *, user: str = "staff1"
) -> dict[str, Any]:
    """The callback that acts when ``user`` presses button ``button`` of a card showing
    ``params``. A button that needs confirming is pressed twice: its first press only shows
    the presser a confirm row, and the callback that acts is the row's ✔."""
    token = params[f"btn{button}_token"]
    if token.startswith(CONFIRM):
        row = confirm_row(token.removeprefix(CONFIRM), params[f"btn{button}_label"], "?")
        return click_body(out_track_id, row["confirm_token"], user=user, action_id="confirm")
    return click_body(out_track_id, token, user=user, action_id=f"btn{button}")


class DingtalkDriver:
    platform = "dingtalk"

    def __init__(self) -> None:
        self.fake = FakeDingtalk(client_secret=SECRET)

    async def start(self) -> dict[str, Any]:
        await self.fake.start()
        return {
            "dingtalk": {
                "enabled": True,
                "client_id": self.fake.client_id,
                "client_secret": SECRET,
                "card_template_id": self.fake.template_id,
                "api_base_url": self.fake.base,
                "oapi_base_url": self.fake.oapi_base,
            }
        }

    async def stop(self) -> None:
        await self.fake.stop()

    async def prepare(self, base_url: str) -> None:
        pass

    def samples(self) -> list[Sample]:
        def robot(name: str, body: dict[str, Any] | None = None, *, again: bool = False) -> Sample:
            request = robot_request(body or load(f"{name}.json"))
            expected = [] if again else load(f"{name}.expected.json")
            return Sample(name + (" (again)" if again else ""), request, expected)

        frame = load("stream_frame_callback.json")
        click = card_request(load("card_callback.json"))
        (clicked,) = load("card_callback.expected.json")
        clicked["event_id"] = click_event_id(click.body, click.headers)
        return [
            robot("text_group"),
            robot("text_group", again=True),  # a redelivery: the same msgId
            robot("text_direct"),
            robot("stream_frame_callback", json.loads(frame["data"])),
            robot("chatbot_audio"),
            Sample("card_callback", click, [clicked]),
        ]

    def forged(self) -> list[Request]:
        body = _raw(load("text_group.json"))
        two_hours_ago = str(int(time.time() * 1000) - 7_200_000)
        click = _raw(load("card_callback.json"))
        return [
            Request(ROBOT_PATH, body, {**JSON, **robot_headers("not-the-secret")}),
            Request(ROBOT_PATH, body, JSON),  # unsigned
            Request(ROBOT_PATH, body, {**JSON, **robot_headers(at=two_hours_ago)}),  # replayed
            Request(ROBOT_PATH, body, {**JSON, **robot_headers(), "sign": "A" * 44}),
            Request(CARD_PATH, click, {**JSON, **card_headers("not-the-secret")}),
            Request(CARD_PATH, click, JSON),
            Request(CARD_PATH, click, {**JSON, **card_headers(at=two_hours_ago)}),
            Request(CARD_PATH, click, {**JSON, **robot_headers("not-the-secret")}),
        ]

    def unknown(self) -> Request:
        video = {  # (pictures are events since closure evidence: a video is not)
            **load("text_group.json"),
            "msgId": "msgGDvideo01",
            "msgtype": "video",
            "content": {"downloadCode": "vid-dc-01", "videoType": "mp4", "duration": "3"},
        }
        del video["text"]
        return robot_request(video)

    def render(self, card: Card) -> dict[str, str]:
        return render_card(card)

    def click(self, rendered: dict[str, str], button: int) -> Request:
        return card_request(press(rendered, button, track_id(TEAM_CHAT, "contract")))

    async def media(self) -> tuple[str, bytes]:
        content = b"#!AMR\n" + bytes(range(256)) * 40
        return self.fake.add_file(content), content
