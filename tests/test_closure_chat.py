"""Evidence photos sent in chat: 李工 sends a photo in his direct chat with the bot on Telegram,
or with the WeCom app; it is downloaded from the (fake) platform API, checked and kept on his
ticket."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.adapters.test_telegram import (
    CUSTOMER,
    CUSTOMER_GROUP,
    LI,
    LI_CHAT,
    REPORT,
    deliver,
    enabled,
    one_ticket,
    says,
)
from tests.conftest import RunningHub, bearer, eventually
from tests.fakes_telegram import FakeBotApi
from tests.test_closure import _png

Start = Callable[..., Awaitable[RunningHub]]
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
_ids = itertools.count(990000001)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    await fake.start()
    yield fake
    await fake.stop()


def sends_photo(file_id: str, caption: str = "", *, as_file: str | None = None) -> dict[str, Any]:
    update_id = next(_ids)
    message: dict[str, Any] = {
        "message_id": update_id % 100000,
        "from": LI,
        "chat": LI_CHAT,
        "date": int(time.time()),
    }
    if as_file is not None:  # an image sent as a file (a document), its type as claimed
        message["document"] = {"file_id": file_id, "file_unique_id": "d", "mime_type": as_file}
    else:  # Telegram's sizes of one photo, smallest first
        message["photo"] = [
            {"file_id": "thumb", "file_unique_id": "t", "width": 90, "height": 67},
            {"file_id": file_id, "file_unique_id": "p", "width": 800, "height": 600},
        ]
    if caption:
        message["caption"] = caption
    return {"update_id": update_id, "message": message}


async def _said_to_li(api: FakeBotApi, needle: str) -> str:
    async def found() -> str | None:
        return next((c.params["text"] for c in api.to("sendMessage", 42)
                     if needle in c.params["text"]), None)  # fmt: skip

    return str(await eventually(found, what=f"a message to 李工 with {needle!r}"))


async def test_a_photo_sent_in_chat_is_kept_as_evidence(api: FakeBotApi, running: Start) -> None:
    hub = await running(**enabled(api), closure={"photo_max_mb": 0.01})
    assert await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, REPORT)) == 200
    ticket = await one_ticket(hub)
    assert ticket["assignee"]["id"] == "li"
    photo = _png()
    api.add_file("big-photo", photo)
    api.add_file("fake-image", b"GIF89a" + bytes(64))
    api.add_file("huge", b"\xff\xd8\xff" + bytes(20_000))

    assert await deliver(hub, sends_photo("fake-image", as_file="image/png")) == 200
    await _said_to_li(api, "只接受 JPEG、PNG 或 WebP")
    assert await deliver(hub, sends_photo("huge")) == 200
    await _said_to_li(api, "照片太大")
    assert (await hub.api(f"/api/tickets/{ticket['id']}"))["photos"] == 0

    assert await deliver(hub, sends_photo("big-photo", caption=ticket["number"])) == 200
    saved = await _said_to_li(api, "已保存为")
    assert ticket["number"] in saved and "共 1 张" in saved
    downloaded = {c.params.get("file_id") for c in api.to("getFile")}
    assert "big-photo" in downloaded and "thumb" not in downloaded  # the largest size only
    final = await hub.api(f"/api/tickets/{ticket['id']}")
    assert final["photos"] == 1
    (event,) = [e for e in final["events"] if e["kind"] == "evidence"]
    assert (event["actor"], event["via"], event["data"]["size"]) == ("李工", "telegram", len(photo))

    li = await hub.staff_session("li")
    async with hub.http.get(
        f"{hub.base}/console/api/tickets/{ticket['number']}/evidence", headers=bearer(li)
    ) as r:
        (kept,) = (await r.json())["photos"]
    async with hub.http.get(hub.base + kept["url"], headers=bearer(li)) as r:
        assert await r.read() == photo

    assert await deliver(hub, sends_photo("big-photo")) == 200  # the same picture again
    await _said_to_li(api, "这张照片已在")
    assert (await hub.api(f"/api/tickets/{ticket['id']}"))["photos"] == 1


async def test_a_wecom_picture_is_kept_as_evidence(running: Start) -> None:
    from tests.adapters.test_wecom import enabled as wecom_enabled
    from tests.adapters.test_wecom import post, text_message
    from tests.adapters.wecom_driver import app_callback
    from tests.fakes_wecom import AGENT_ID, CORP_ID, FakeWecomApi

    api = FakeWecomApi()
    await api.start()
    try:
        hub = await running(**wecom_enabled(api))
        report = app_callback(text_message("ZhangSan", REPORT, 7100000001))
        assert (await post(hub, report))[0] == 200
        ticket = await one_ticket(hub)
        assert ticket["assignee"]["id"] == "li"
        photo = _png()
        api.media["PIC_li_1"] = photo
        picture = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
            "<FromUserName><![CDATA[LiGong]]></FromUserName><CreateTime>1717230000</CreateTime>"
            "<MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[http://example.invalid/p]]>"
            "</PicUrl><MediaId><![CDATA[PIC_li_1]]></MediaId><MsgId>7100000002</MsgId>"
            f"<AgentID>{AGENT_ID}</AgentID></xml>"
        )
        assert (await post(hub, app_callback(picture)))[0] == 200

        async def saved() -> bool:
            return any("已保存为" in t for t in api.sent_texts("LiGong"))

        await eventually(saved, what="李工 told the photo was kept")
        final = await hub.api(f"/api/tickets/{ticket['id']}")
        assert final["photos"] == 1
        (event,) = [e for e in final["events"] if e["kind"] == "evidence"]
        assert (event["via"], event["data"]["size"]) == ("wecom", len(photo))
    finally:
        await api.stop()


def test_a_dingtalk_picture_is_an_image_event_fetched_by_its_download_code() -> None:
    from datetime import UTC, datetime

    from bot.adapters.dingtalk.parse import parse_robot_message
    from bot.events import Image
    from tests.adapters.dingtalk_driver import load

    # The shape of DingTalk's picture callback (content.downloadCode, pictureDownloadCode).
    body = {
        **load("text_group.json"),
        "msgId": "msgPic01",
        "msgtype": "picture",
        "content": {"downloadCode": "pic-dc-01", "pictureDownloadCode": "pic-dc-02"},
    }
    del body["text"]
    event = parse_robot_message(body, datetime(2026, 12, 1, tzinfo=UTC)).event
    assert isinstance(event, Image)
    assert (event.event_id, event.media_ref, event.caption) == ("msgPic01", "pic-dc-01", "")
    no_code = {**body, "content": {}}
    assert parse_robot_message(no_code, datetime(2026, 12, 1, tzinfo=UTC)).event is None
