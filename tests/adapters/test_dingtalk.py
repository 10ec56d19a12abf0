"""DingTalk: signatures, parsing, cards, OpenAPI errors, session webhooks, downloads, and a
ticket's life end to end over HTTP callbacks and over Stream mode.

Everything runs against ``tests.fakes_dingtalk.FakeDingtalk`` on a loopback port; the
end-to-end tests drive the real aiohttp app with requests and frames as DingTalk sends them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.adapters.base import AdapterDeps
from bot.adapters.dingtalk import DingtalkAdapter, create
from bot.adapters.dingtalk.adapter import CARD_TOPIC, ROBOT_TOPIC
from bot.adapters.dingtalk.parse import (
    CardPress,
    ConfirmStep,
    chat_of_track_id,
    parse_card_callback,
    parse_robot_message,
    robot_sign,
    track_id,
    verify_card_signature,
    verify_robot_signature,
)
from bot.adapters.dingtalk.render import (
    CONFIRM,
    MAX_BUTTONS,
    callback_answer,
    notice_data,
    openapi_text,
    render_card,
    webhook_text,
)
from bot.config import DingtalkSettings, load_settings
from bot.errors import (
    ConfigError,
    MediaTooLarge,
    PlatformApiError,
    RateLimited,
    SignatureInvalid,
    TransientSendError,
)
from bot.events import Action, Address, Button, Card, Message, Notice, Text, Voice
from bot.inbox import Accepted
from bot.ticket_labels import action_label
from bot.tickets import TicketAction
from storage.models import InboundEvent
from tests.adapters.dingtalk_driver import (
    SECRET,
    TEAM_CHAT,
    card_headers,
    click_body,
    load,
    press,
    robot_headers,
)
from tests.conftest import STAFF, RunningHub, eventually, free_port
from tests.fakes_dingtalk import (
    CARD_CREATE,
    CARD_UPDATE,
    FILE_DOWNLOAD,
    GROUP_SEND,
    O2O_SEND,
    OPEN,
    REGISTER,
    SESSION_SEND,
    TOKEN,
    FakeDingtalk,
    Scripted,
)

Start = Callable[..., Awaitable[RunningHub]]
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CUSTOMER_GROUP = "cidCUSTgroup+E102/xYz8Qw=="
QPS_LIMITED = {"code": "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", "message": "QPS 限流"}
TOO_FAST = {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}


class RecordingInbox:
    """Stands in for the durable inbox where no database is needed."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def accept(self, events: Any, raw: str | None = None) -> list[Accepted]:
        fresh = [
            Accepted(e.event_id, e.event_id not in {x.event_id for x in self.events})
            for e in events
        ]
        self.events.extend(events)
        return fresh


@pytest.fixture
async def fake() -> AsyncIterator[FakeDingtalk]:
    api = FakeDingtalk(client_secret=SECRET)
    await api.start()
    yield api
    await api.stop()


def settings_for(fake: FakeDingtalk, **extra: Any) -> DingtalkSettings:
    return DingtalkSettings.model_validate(
        {
            "enabled": True,
            "client_id": fake.client_id,
            "client_secret": SECRET,
            "card_template_id": fake.template_id,
            "api_base_url": fake.base,
            "oapi_base_url": fake.oapi_base,
            "rate_limit_backoff": 7.0,
            **extra,
        }
    )


def standalone(fake: FakeDingtalk, **extra: Any) -> DingtalkAdapter:
    people = {"li": ("staff1", "李工")}
    return DingtalkAdapter(RecordingInbox(), settings_for(fake, **extra), people=people)  # type: ignore[arg-type]


@pytest.fixture
async def adapter(fake: FakeDingtalk) -> AsyncIterator[DingtalkAdapter]:
    a = standalone(fake)
    await a.start()
    yield a
    await a.stop()


def _card(**kw: Any) -> Card:
    values: dict[str, Any] = {
        "ticket_id": 42,
        "version": 3,
        "title": "GD-42 · P0 · 注塑机停机",
        "fields": (("状态", "已派单"), ("负责人", "李工\n（二车间）")),
        "buttons": (
            Button("接单", "tok-accept", "primary", action="accept"),
            Button("转派", "tok-reassign", action="reassign"),
            Button("取消工单", "tok-cancel", "danger", "确定要取消工单吗？", action="cancel"),
        ),
        "footer": "更新于 08:00",
    }
    values.update(kw)
    return Card(**values)


# ------------------------------------------------------------------------------ signatures


def test_the_signature_vectors_verify_and_an_hour_is_the_window() -> None:
    vector = load("signature_vectors.json")
    inbound, outbound = (
        vector["inbound_http_robot_callback"],
        vector["outbound_custom_robot_webhook"],
    )
    secret, ts = inbound["appSecret"], inbound["header_timestamp"]
    assert robot_sign(secret, ts) == inbound["expected_header_sign"]
    assert robot_sign(outbound["secret"], outbound["timestamp"]) == outbound["sign_base64"]
    headers = {"timestamp": ts, "sign": inbound["expected_header_sign"]}
    at = int(ts) / 1000
    verify_robot_signature(headers, secret, at + 3600)
    for late in (at + 3600.01, at - 3600.01):
        with pytest.raises(SignatureInvalid, match="1-hour window"):
            verify_robot_signature(headers, secret, late)
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_robot_signature(headers, "another secret", at)
    with pytest.raises(SignatureInvalid, match="missing"):
        verify_robot_signature({"timestamp": ts}, secret, at)
    with pytest.raises(SignatureInvalid, match="not a number"):
        verify_robot_signature({**headers, "timestamp": "soon"}, secret, at)


def test_card_callbacks_take_the_documented_scheme_or_the_robot_one() -> None:
    now = time.time()
    verify_card_signature(card_headers("api-secret"), "api-secret", SECRET, now)
    verify_card_signature(robot_headers(SECRET), "api-secret", SECRET, now)
    with pytest.raises(SignatureInvalid):  # the documented scheme is keyed by the apiSecret
        verify_card_signature(card_headers(SECRET), "api-secret", SECRET, now)
    with pytest.raises(SignatureInvalid):  # half the headers of one scheme is no signature
        verify_card_signature({"x-ddpaas-signature": "x"}, "api-secret", SECRET, now)


# ---------------------------------------------------------------------------------- parsing


def test_a_group_message_and_a_direct_one_name_their_chats() -> None:
    group = parse_robot_message(load("text_group.json"), NOW)
    assert isinstance(group.event, Message)
    assert (group.event.chat.chat_id, group.event.chat_type) == (CUSTOMER_GROUP, "group")
    assert group.session_webhook == load("text_group.json")["sessionWebhook"]
    assert group.session_expires_ms == 1613635652738
    direct = parse_robot_message(load("text_direct.json"), NOW).event
    assert isinstance(direct, Message)
    assert (direct.chat.ref, direct.sender.user_id, direct.mentions_bot) == (
        "dingtalk:staff1",
        "staff1",
        False,
    )


def test_a_voice_note_carries_its_download_code_and_dingtalks_transcript() -> None:
    voice = parse_robot_message(load("chatbot_audio.json"), NOW).event
    assert isinstance(voice, Voice)
    assert (voice.media_ref, voice.mime_hint, voice.duration_s) == (
        "mIofN681YE3f/+m+NntqpWxxxx",
        "",
        4.0,
    )
    assert voice.platform_transcript == "打印机卡纸了，三楼"


def test_rich_text_keeps_its_text_and_other_types_are_no_event() -> None:
    rich = {
        **load("text_group.json"),
        "msgtype": "richText",
        "content": {
            "richText": [
                {"text": "3号机 "},
                {"downloadCode": "p1", "type": "picture"},
                {"text": "漏油"},
            ]
        },
    }
    event = parse_robot_message(rich, NOW).event
    assert isinstance(event, Message) and event.text == "3号机 漏油"
    for msgtype in ("picture", "file", "video", "markdown"):
        assert (
            parse_robot_message({**load("text_group.json"), "msgtype": msgtype}, NOW).event is None
        )
    no_sender = {
        k: v for k, v in load("text_group.json").items() if k not in ("senderStaffId", "senderId")
    }
    assert parse_robot_message(no_sender, NOW).event is None
    outsider = {k: v for k, v in load("text_group.json").items() if k != "senderStaffId"}
    event = parse_robot_message(outsider, NOW).event  # another org's member: senderId only
    assert event is not None and event.sender.user_id == "$:LWCP_v1:$Cust0417xxxx"


def test_track_ids_carry_their_chat_and_foreign_cards_are_ignored() -> None:
    for chat in (CUSTOMER_GROUP, "staff1", "manager-0001"):
        out_track_id = track_id(chat, "outbox:17#2")
        assert chat_of_track_id(out_track_id) == chat
        assert set(out_track_id) <= set(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."
        )
        assert len(out_track_id) <= 64
    assert track_id("staff1", "k1") != track_id("staff1", "k2")
    assert chat_of_track_id("53d6dda444c74f5f17bf4534333c1a46f690b4dd") is None
    foreign = click_body("53d6dda444c74f5f17bf4534333c1a46", "g1tok")
    assert parse_card_callback(foreign, "card:1", NOW) is None


def test_a_click_is_an_action_the_first_press_of_a_confirm_button_is_not() -> None:
    out_track_id = track_id(TEAM_CHAT, "k")
    pressed = parse_card_callback(click_body(out_track_id, "g1tok"), "card:1", NOW)
    assert isinstance(pressed, CardPress)
    action = pressed.action
    assert (action.token, action.chat.chat_id, action.chat_type, action.sender.user_id) == (
        "g1tok",
        TEAM_CHAT,
        "group",
        "staff1",
    )
    assert action.reply_ctx == {"out_track_id": out_track_id, "user_id": "staff1"}
    arming = parse_card_callback(click_body(out_track_id, CONFIRM + "g1tok"), "card:2", NOW)
    assert arming == ConfirmStep("staff1", "g1tok")
    disarm = parse_card_callback(click_body(out_track_id, "", action_id="disarm"), "card:3", NOW)
    assert disarm == ConfirmStep("staff1", "")
    # The SDK's own sample: a button with no params carries no token of ours.
    sdk = {
        "type": "actionCallback",
        "userId": "04574258341072934",
        "outTrackId": out_track_id,
        "value": '{"cardPrivateData":{"actionIds":["button_node_ocljnpbz4i4"],"params":{}}}',
    }
    assert parse_card_callback(sdk, "card:4", NOW) is None
    by_variable_name = click_body(out_track_id, "")
    by_variable_name["content"] = json.dumps(
        {"cardPrivateData": {"actionIds": ["btn2"], "params": {"btn2_token": "g1other"}}}
    )
    named = parse_card_callback(by_variable_name, "card:5", NOW)
    assert isinstance(named, CardPress) and named.action.token == "g1other"


# --------------------------------------------------------------------------------- rendering


def test_a_card_fills_every_template_variable_with_a_string() -> None:
    params = render_card(_card(text="现场漏油", link="http://127.0.0.1:8080/p/abc"))
    assert all(isinstance(v, str) for v in params.values())
    assert params["title"] == "GD-42 · P0 · 注塑机停机"
    assert params["fields"] == "**状态**：已派单  \n**负责人**：李工 （二车间）"
    assert (params["text"], params["footer"], params["link"]) == (
        "现场漏油",
        "更新于 08:00",
        "http://127.0.0.1:8080/p/abc",
    )
    assert [params[f"btn{i}_visible"] for i in range(MAX_BUTTONS)] == ["true"] * 3 + ["false"] * 3
    assert [params[f"btn{i}_token"] for i in range(3)] == [
        "tok-accept",
        "tok-reassign",
        "?tok-cancel",
    ]
    assert [params[f"btn{i}_style"] for i in range(3)] == ["primary", "default", "danger"]
    assert params["btn5_label"] == params["btn5_token"] == ""
    single = render_card(_card(), two_step_confirm=False)
    assert single["btn2_token"] == "tok-cancel"
    # The same keys for every card: an update by key leaves no stale button behind.
    assert set(render_card(_card(buttons=()))) == set(params)


def test_texts_mention_through_webhooks_and_name_people_through_the_openapi() -> None:
    assert webhook_text("请处理 GD-42", ["staff1"]) == {
        "msgtype": "text",
        "text": {"content": "@staff1 请处理 GD-42"},
        "at": {"atUserIds": ["staff1"], "isAtAll": False},
    }
    assert "at" not in webhook_text("hi")
    sent = openapi_text("请处理 GD-42", ["李工"])
    assert sent["msgKey"] == "sampleText"
    assert json.loads(sent["msgParam"]) == {"content": "@李工 请处理 GD-42"}
    # Same shape as the shared send sample.
    sample = load("send_group_messages.json")
    reply = {k for k in sample["session_webhook_reply"] if not k.startswith("_")}
    assert set(webhook_text("x", ["u"])) == reply
    assert set(sent) <= set(sample["enterprise_robot_openapi_group_send"])


def test_a_callback_answer_changes_only_the_pressers_data() -> None:
    answer = callback_answer(notice_data("已执行：接单（GD-42）"))
    assert answer["userPrivateData"]["cardParamMap"]["notice"] == "已执行：接单（GD-42）"
    assert answer["cardUpdateOptions"]["updatePrivateDataByKey"] is True
    assert "cardData" not in answer
    assert callback_answer() == {}


def test_settings_need_credentials_and_a_template_and_create_maps_people() -> None:
    with pytest.raises(ConfigError, match="card_template_id"):
        load_settings(None, dingtalk={"enabled": True, "client_id": "ding1", "client_secret": "s"})
    settings = load_settings(
        None,
        dingtalk={
            "enabled": True,
            "client_id": "ding1",
            "client_secret": "s",
            "card_template_id": "t",
        },
        people=[
            {"id": "li", "name": "李工", "identities": ["web:li", "dingtalk:staff1", "dingtalk:x"]}
        ],
    )
    # Neither the database nor the secret is used by this adapter.
    deps = AdapterDeps(RecordingInbox(), settings, db=None, secret=b"")  # type: ignore[arg-type]
    adapter = create(deps)["dingtalk"]
    assert isinstance(adapter, DingtalkAdapter)
    assert adapter._people == {"li": ("staff1", "李工")}
    assert adapter._robot_code == "ding1"


# ---------------------------------------------------------------------- OpenAPI and errors


async def test_errors_map_to_ours_and_the_client_never_retries_by_itself(
    adapter: DingtalkAdapter, fake: FakeDingtalk
) -> None:
    group = Address("dingtalk", TEAM_CHAT)
    fake.script(
        GROUP_SEND,
        Scripted(403, QPS_LIMITED),
        Scripted(503, {"code": "ServiceUnavailable", "message": "busy"}),
        Scripted(400, {"code": "invalidParameter.openConversationId", "message": "群不存在"}),
        Scripted(
            403,
            {"code": "Forbidden.AccessDenied.AccessTokenPermissionDenied", "message": "没有权限"},
        ),
        Scripted(401, {"code": "InvalidAuthentication", "message": "不合法的access_token"}),
    )
    with pytest.raises(RateLimited) as limited:
        await adapter.send(group, Text("a"), key="k1")
    assert limited.value.retry_after == 1.0  # a QPS limit is counted per second
    with pytest.raises(TransientSendError):
        await adapter.send(group, Text("b"), key="k2")
    with pytest.raises(PlatformApiError) as refused:
        await adapter.send(group, Text("c"), key="k3")
    assert refused.value.code == "invalidParameter.openConversationId"
    with pytest.raises(PlatformApiError):  # a 403 that is not a QPS limit is for good
        await adapter.send(group, Text("d"), key="k4")
    with pytest.raises(TransientSendError, match="new one"):  # a stale token: fetch a new one
        await adapter.send(group, Text("e"), key="k5")
    assert len(fake.calls_to(GROUP_SEND)) == 5  # one call each: no hidden retries
    sent = await adapter.send(group, Text("f"), key="k6")
    assert fake.texts[TEAM_CHAT] == ["f"] and sent.platform_message_id
    assert len(fake.calls_to(TOKEN)) == 2  # at start, and after the 401
    (ok,) = fake.calls_to(GROUP_SEND, ok=True)
    assert ok.headers["x-acs-dingtalk-access-token"] in fake.tokens


async def test_an_unreachable_dingtalk_is_a_transient_error(fake: FakeDingtalk) -> None:
    settings = settings_for(fake, api_base_url=f"http://127.0.0.1:{free_port()}")
    a = DingtalkAdapter(RecordingInbox(), settings)  # type: ignore[arg-type]
    await a.start()  # logs and goes on: events must not wait for DingTalk
    with pytest.raises(TransientSendError):
        await a.send(Address("dingtalk", TEAM_CHAT), Text("x"), key="k")
    await a.stop()


async def test_a_refused_secret_stops_start_up(fake: FakeDingtalk) -> None:
    a = standalone(fake)
    a.api._app_secret = "wrong"
    with pytest.raises(ConfigError, match="invalidClientIdOrSecret"):
        await a.start()


async def test_replies_use_the_session_webhook_while_it_is_valid(
    adapter: DingtalkAdapter, fake: FakeDingtalk
) -> None:
    fresh = int(time.time() * 1000) + 3_600_000
    body = {
        **load("text_group.json"),
        "sessionWebhook": fake.session_webhook(CUSTOMER_GROUP),
        "sessionWebhookExpiredTime": fresh,
    }
    await adapter.receive_message(body, "{}")
    group = Address("dingtalk", CUSTOMER_GROUP)
    assert (
        await adapter.send(group, Text("李工 将为您处理", mentions=("li",)), key="k1") is not None
    )
    (hooked,) = fake.calls_to(SESSION_SEND, ok=True)
    assert hooked.body["at"]["atUserIds"] == ["staff1"]
    assert fake.texts[CUSTOMER_GROUP] == ["@staff1 李工 将为您处理"]
    assert fake.calls_to(GROUP_SEND) == []

    fake.script(SESSION_SEND, Scripted(200, {"errcode": 300001, "errmsg": "session is invalid"}))
    await adapter.send(group, Text("第二条"), key="k2")  # refused: the OpenAPI delivers it
    await adapter.send(group, Text("第三条"), key="k3")  # and the webhook is not tried again
    assert fake.texts[CUSTOMER_GROUP][1:] == ["第二条", "第三条"]
    assert len(fake.calls_to(SESSION_SEND)) == 2 and len(fake.calls_to(GROUP_SEND)) == 2

    fake.script(SESSION_SEND, Scripted(200, TOO_FAST))
    await adapter.receive_message({**body, "msgId": "m2"}, "{}")
    with pytest.raises(RateLimited) as limited:  # waited out, not dodged through the OpenAPI
        await adapter.send(group, Text("第四条"), key="k4")
    assert limited.value.retry_after == 7.0  # rate_limit_backoff
    assert len(fake.calls_to(GROUP_SEND)) == 2


async def test_a_webhook_outside_dingtalk_or_expired_is_never_used(
    adapter: DingtalkAdapter, fake: FakeDingtalk, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = int(time.time() * 1000) + 3_600_000
    evil = {
        **load("text_direct.json"),
        "sessionWebhook": "https://evil.example/hook",
        "sessionWebhookExpiredTime": fresh,
    }
    await adapter.receive_message(evil, "{}")
    assert "outside DingTalk" in caplog.text
    stale = {**load("text_group.json"), "sessionWebhook": fake.session_webhook(CUSTOMER_GROUP)}
    await adapter.receive_message(stale, "{}")  # the sample's expiry is long past
    await adapter.send(Address("dingtalk", "staff1"), Text("一"), key="k1")
    await adapter.send(Address("dingtalk", CUSTOMER_GROUP), Text("二"), key="k2")
    assert fake.calls_to(SESSION_SEND) == []
    (direct,) = fake.calls_to(O2O_SEND, ok=True)
    assert direct.body["userIds"] == ["staff1"] and direct.body["robotCode"] == fake.robot_code
    fake.script(
        O2O_SEND, Scripted(200, {"processQueryKey": "q", "flowControlledStaffIdList": ["staff1"]})
    )
    with pytest.raises(RateLimited):
        await adapter.send(Address("dingtalk", "staff1"), Text("三"), key="k3")


async def test_cards_are_created_delivered_updated_and_a_retry_makes_no_second_card(
    adapter: DingtalkAdapter, fake: FakeDingtalk
) -> None:
    sent = await adapter.send(Address("dingtalk", TEAM_CHAT), _card(), key="outbox:1")
    assert sent.platform_message_id == track_id(TEAM_CHAT, "outbox:1")
    (created,) = fake.calls_to(CARD_CREATE, ok=True)
    body = created.body
    sample = load("card_create_and_deliver.json")
    assert {k for k in sample if not k.startswith("_")} - set(body) == {"imRobotOpenSpaceModel"}
    assert body["openSpaceId"] == f"dtv1.card//IM_GROUP.{TEAM_CHAT}"
    assert body["imGroupOpenDeliverModel"] == {"robotCode": fake.robot_code}
    assert (body["callbackType"], body["callbackRouteKey"], body["userIdType"]) == (
        "HTTP",
        "gongdan",
        1,
    )

    again = await adapter.send(Address("dingtalk", TEAM_CHAT), _card(), key="outbox:1")
    assert again == sent and len(fake.cards) == 1  # the outbox's retry after a lost answer

    direct = await adapter.send(Address("dingtalk", "staff1"), _card(), key="outbox:2")
    card = fake.cards[str(direct.platform_message_id)]
    assert card.space == "dtv1.card//IM_ROBOT.staff1"
    assert card.body["imRobotOpenDeliverModel"]["spaceType"] == "IM_ROBOT"

    assert sent.platform_message_id is not None
    await adapter.update(
        Address("dingtalk", TEAM_CHAT),
        sent.platform_message_id,
        _card(fields=(("状态", "已接单"),), buttons=()),
    )
    team = fake.cards[sent.platform_message_id]
    assert team.params["fields"] == "**状态**：已接单"
    assert team.params["btn0_visible"] == "false" and team.params["btn0_token"] == ""
    with pytest.raises(PlatformApiError):
        await adapter.update(Address("dingtalk", TEAM_CHAT), "gd.nope.0", _card())


async def test_stream_mode_cards_call_back_over_the_stream(fake: FakeDingtalk) -> None:
    a = standalone(fake, mode="stream")
    await a.send(Address("dingtalk", TEAM_CHAT), _card(), key="k")
    (created,) = fake.calls_to(CARD_CREATE, ok=True)
    assert created.body["callbackType"] == "STREAM" and "callbackRouteKey" not in created.body
    assert a.routes() == []
    await a.stop()


async def test_notices_are_private_card_data_and_fall_back_to_the_chat(
    adapter: DingtalkAdapter, fake: FakeDingtalk
) -> None:
    sent = await adapter.send(Address("dingtalk", TEAM_CHAT), _card(), key="k")
    out_track_id = str(sent.platform_message_id)
    ctx = {"out_track_id": out_track_id, "user_id": "staff1"}
    await adapter.notify(
        Address("dingtalk", TEAM_CHAT), Notice("已执行：接单（GD-42）", ctx, "staff1"), key="n1"
    )
    private = fake.cards[out_track_id].private["staff1"]
    assert private["notice"] == "已执行：接单（GD-42）" and private["confirm_visible"] == "false"
    assert fake.texts[TEAM_CHAT] == []
    gone = {"out_track_id": "gd.Z29uZQ.000000000000", "user_id": "staff1"}
    await adapter.notify(Address("dingtalk", TEAM_CHAT), Notice("无权限", gone, "staff1"), key="n2")
    await adapter.notify(Address("dingtalk", TEAM_CHAT), Notice("没有卡片"), key="n3")
    assert fake.texts[TEAM_CHAT] == ["无权限", "没有卡片"]
    assert [lim.key for lim in adapter.notice_limits(Address("dingtalk", TEAM_CHAT))] == [
        "dingtalk:app"
    ]
    keys = [(lim.key, lim.count, lim.per) for lim in adapter.limits(Address("dingtalk", TEAM_CHAT))]
    assert keys == [(f"dingtalk:{TEAM_CHAT}", 20, 60.0), ("dingtalk:app", 20, 1.0)]


async def test_a_click_answers_at_once_and_a_confirm_button_asks_first(
    adapter: DingtalkAdapter,
) -> None:
    params = render_card(_card())
    out_track_id = track_id(TEAM_CHAT, "k")
    inbox = adapter.inbox
    assert isinstance(inbox, RecordingInbox)
    first = await adapter.receive_click(
        click_body(out_track_id, params["btn2_token"], action_id="btn2"), "card:1", "{}"
    )
    row = first["userPrivateData"]["cardParamMap"]
    assert (row["confirm_visible"], row["confirm_token"], inbox.events) == (
        "true",
        "tok-cancel",
        [],
    )
    hidden = await adapter.receive_click(
        click_body(out_track_id, "", action_id="disarm"), "card:2", "{}"
    )
    assert hidden["userPrivateData"]["cardParamMap"]["confirm_visible"] == "false"
    answer = await adapter.receive_click(press(params, 2, out_track_id), "card:3", "{}")
    assert answer["userPrivateData"]["cardParamMap"]["notice"] == "处理中…"
    (action,) = inbox.events
    assert isinstance(action, Action) and action.token == "tok-cancel"
    assert await adapter.receive_click(press(params, 2, out_track_id), "card:3", "{}") == {}


async def test_downloads_resolve_the_code_and_respect_the_limit(
    adapter: DingtalkAdapter, fake: FakeDingtalk
) -> None:
    clip = b"#!AMR\n" + bytes(range(256)) * 400
    code = fake.add_file(clip)
    assert await adapter.download(code) == clip
    (resolved,) = fake.calls_to(FILE_DOWNLOAD, ok=True)
    assert resolved.body == {"downloadCode": code, "robotCode": fake.robot_code}
    adapter.settings = adapter.settings.model_copy(update={"max_download_bytes": 50_000})
    with pytest.raises(MediaTooLarge):
        await adapter.download(code)
    with pytest.raises(PlatformApiError):
        await adapter.download("no-such-code")


async def test_the_card_callback_url_is_registered_when_the_hub_is_public(
    fake: FakeDingtalk,
) -> None:
    inbox: Any = RecordingInbox()
    a = DingtalkAdapter(inbox, settings_for(fake), public_url="https://gongdan.example.com/")
    await a.start()
    (registered,) = await eventually(
        lambda: _async(fake.calls_to(REGISTER, ok=True)), what="register"
    )
    assert registered.body["callbackUrl"] == "https://gongdan.example.com/webhooks/dingtalk/card"
    assert (registered.body["callbackRouteKey"], registered.body["apiSecret"]) == (
        "gongdan",
        SECRET,
    )
    await a.stop()


# ------------------------------------------------------------------------------ end to end

PEOPLE: list[dict[str, Any]] = [
    {**p, "identities": [f"dingtalk:staff{i}", *p["identities"]]}
    for i, p in enumerate(STAFF["people"], start=1)
]
TEAMS = [{**STAFF["teams"][0], "chats": [f"dingtalk:{TEAM_CHAT}"]}]


def dingtalk_overrides(fake: FakeDingtalk, **dingtalk: Any) -> dict[str, Any]:
    section = {
        "enabled": True,
        "client_id": fake.client_id,
        "client_secret": SECRET,
        "card_template_id": fake.template_id,
        "api_base_url": fake.base,
        "oapi_base_url": fake.oapi_base,
        **dingtalk,
    }
    return {"dingtalk": section, "people": PEOPLE, "teams": TEAMS}


async def post(
    hub: RunningHub, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, Any]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    async with hub.http.post(
        hub.base + path, data=raw, headers={"Content-Type": "application/json", **headers}
    ) as r:
        return r.status, await r.json(content_type=None)


async def stored(hub: RunningHub) -> int:
    async with hub.hub.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(InboundEvent)) or 0)


async def tickets(hub: RunningHub) -> list[dict[str, Any]]:
    return list((await hub.api("/api/tickets"))["tickets"])


def button_of(params: dict[str, str], action: TicketAction) -> int:
    labels = [params[f"btn{i}_label"] for i in range(MAX_BUTTONS)]
    return labels.index(action_label(action, "zh"))


async def _async(value: Any) -> Any:
    return value


async def _ticket_with_cards(hub: RunningHub, fake: FakeDingtalk) -> dict[str, Any]:
    status, _ = await post(hub, "/webhooks/dingtalk", load("text_group.json"), robot_headers())
    assert status == 200
    (ticket,) = await eventually(lambda: tickets(hub), what="a ticket")

    async def all_cards() -> bool:
        return all(fake.cards_in(chat) for chat in (CUSTOMER_GROUP, "staff1", TEAM_CHAT))

    await eventually(all_cards, what="cards in the customer group, li's 1:1 chat and the team")
    return dict(ticket)


async def test_a_group_report_becomes_a_ticket_and_a_card_click_accepts_it(
    fake: FakeDingtalk, running: Start
) -> None:
    hub = await running(**dingtalk_overrides(fake))
    ticket = await _ticket_with_cards(hub, fake)
    assert ticket["state"] == "assigned"
    await eventually(lambda: _async(fake.texts[CUSTOMER_GROUP]), what="the acknowledgement")
    assert ticket["number"] in fake.texts[CUSTOMER_GROUP][0]  # via groupMessages/send
    (team_card,) = fake.cards_in(TEAM_CHAT)
    assert team_card.params["title"].startswith(ticket["number"])

    click = press(
        team_card.params, button_of(team_card.params, TicketAction.ACCEPT), team_card.out_track_id
    )
    status, answer = await post(hub, "/webhooks/dingtalk/card", click, card_headers())
    assert status == 200 and answer["userPrivateData"]["cardParamMap"]["notice"] == "处理中…"

    async def accepted_everywhere() -> bool:
        copies = [c for chat in (CUSTOMER_GROUP, "staff1", TEAM_CHAT) for c in fake.cards_in(chat)]
        return len(copies) == 3 and all("已接单" in c.params["fields"] for c in copies)

    await eventually(accepted_everywhere, what="every copy of the card updated")
    updated = {
        c.body["outTrackId"] for c in fake.calls_to(CARD_UPDATE, ok=True) if "cardData" in c.body
    }
    assert updated == set(fake.cards)

    async def notice() -> str | None:
        return team_card.private.get("staff1", {}).get("notice")

    text = await eventually(notice, what="the presser's private notice")
    assert ticket["number"] in text and "接单" in text
    assert (await hub.api(f"/api/tickets/{ticket['id']}"))["state"] == "accepted"


async def test_a_too_fast_answer_is_waited_out_and_the_reply_arrives_once(
    fake: FakeDingtalk, running: Start
) -> None:
    hub = await running(**dingtalk_overrides(fake, rate_limit_backoff=1.0))
    fake.script(SESSION_SEND, Scripted(200, TOO_FAST))
    report = {
        **load("text_group.json"),
        "sessionWebhook": fake.session_webhook(CUSTOMER_GROUP),
        "sessionWebhookExpiredTime": int(time.time() * 1000) + 3_600_000,
    }
    assert (await post(hub, "/webhooks/dingtalk", report, robot_headers()))[0] == 200
    (ticket,) = await eventually(lambda: tickets(hub), what="a ticket")
    await eventually(lambda: _async(fake.texts[CUSTOMER_GROUP]), what="the acknowledgement")
    (refused, delivered) = fake.calls_to(SESSION_SEND)
    assert not refused.ok and delivered.ok
    assert delivered.body == refused.body, "the same reply, once"
    assert fake.texts[CUSTOMER_GROUP] == [refused.body["text"]["content"]]
    assert ticket["number"] in fake.texts[CUSTOMER_GROUP][0]
    assert delivered.at - refused.at >= 0.9, "not before the backoff"


async def test_a_voice_note_is_downloaded_and_answered_in_its_chat(
    fake: FakeDingtalk, running: Start
) -> None:
    """The engine fetches the audio through ``download(downloadCode)`` and the voice flow
    answers in the chat the note came from (a 1:1 chat: ``oToMessages/batchSend``). What the
    answer says is the voice flow's business (it is being reworked): only that it arrives."""
    hub = await running(**dingtalk_overrides(fake))
    audio = b"#!AMR\n" + bytes(12 * 1024 - 6)
    note = load("chatbot_audio.json")
    code = note["content"]["downloadCode"] = fake.add_file(audio)
    assert (await post(hub, "/webhooks/dingtalk", note, robot_headers()))[0] == 200

    async def fetched() -> bool:
        return any(c.route.startswith("GET /files/") for c in fake.calls)

    await eventually(fetched, what="the audio downloaded")
    (resolved,) = fake.calls_to(FILE_DOWNLOAD, ok=True)
    assert resolved.body == {"downloadCode": code, "robotCode": fake.robot_code}
    await eventually(lambda: _async(fake.texts["user123"]), what="an answer in the 1:1 chat")
    assert fake.calls_to(O2O_SEND, ok=True)[0].body["userIds"] == ["user123"]


async def test_an_unstorable_message_is_answered_500_so_dingtalk_retries(
    fake: FakeDingtalk, running: Start
) -> None:
    hub = await running(**dingtalk_overrides(fake))
    hub.hub.inbox.closed = True
    assert (await post(hub, "/webhooks/dingtalk", load("text_group.json"), robot_headers()))[
        0
    ] == 500
    hub.hub.inbox.closed = False
    assert (await post(hub, "/webhooks/dingtalk", load("text_group.json"), robot_headers()))[
        0
    ] == 200
    assert (await post(hub, "/webhooks/dingtalk", load("text_group.json"), robot_headers()))[
        0
    ] == 200
    assert await stored(hub) == 1
    await eventually(lambda: tickets(hub), what="the ticket from the retry")


async def test_stream_mode_stores_then_acks_dedupes_and_takes_card_clicks(
    fake: FakeDingtalk, running: Start
) -> None:
    hub = await running(**dingtalk_overrides(fake, mode="stream"))
    await eventually(lambda: _async(fake.sockets), what="a Stream connection")
    (opened,) = fake.calls_to(OPEN, ok=True)
    assert opened.body["clientId"] == fake.client_id
    assert {(s["type"], s["topic"]) for s in opened.body["subscriptions"]} == {
        ("CALLBACK", ROBOT_TOPIC),
        ("CALLBACK", CARD_TOPIC),
    }

    async def stored_now() -> int:
        return await stored(hub)

    fake.ack_probe = stored_now
    frame = fake.frame(ROBOT_TOPIC, load("text_group.json"))
    await fake.push(frame)
    (ack,) = await eventually(lambda: _async(fake.acks), what="the frame's ack")
    assert ack.message_id == frame["headers"]["messageId"] and ack.code == 200
    assert ack.probe == 1, "the event was stored before the ack was sent"
    assert ack.response is None
    await fake.push(frame)  # DingTalk delivers the same frame again
    await eventually(lambda: _async(len(fake.acks) == 2), what="the duplicate's ack")
    (ticket,) = await eventually(lambda: tickets(hub), what="a ticket")
    assert await stored(hub) == 1

    async def team_card() -> Any:
        return fake.cards_in(TEAM_CHAT)

    (card,) = await eventually(team_card, what="the team's card")
    assert card.body["callbackType"] == "STREAM"
    click = press(card.params, button_of(card.params, TicketAction.ACCEPT), card.out_track_id)
    await fake.push(fake.frame(CARD_TOPIC, click))
    await eventually(lambda: _async(len(fake.acks) == 3), what="the click's ack")
    assert fake.acks[-1].response["userPrivateData"]["cardParamMap"]["notice"] == "处理中…"

    async def accepted() -> bool:
        return bool((await hub.api(f"/api/tickets/{ticket['id']}"))["state"] == "accepted")

    await eventually(accepted, what="the transition")
    async with hub.http.post(hub.base + "/webhooks/dingtalk", data=b"{}") as r:
        assert r.status == 404  # Stream mode: no HTTP endpoint to forge requests against


async def test_the_stream_pings_reconnects_and_redelivers_what_it_could_not_store(
    fake: FakeDingtalk, running: Start, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script(OPEN, Scripted(503, {"code": "ServiceUnavailable", "message": "busy"}))
    hub = await running(**dingtalk_overrides(fake, mode="stream"))
    await eventually(lambda: _async(fake.sockets), what="a connection after a failed open")
    ping = fake.frame("ping", {"opaque": "3c1f"}, kind="SYSTEM")
    await fake.push(ping)
    (pong,) = await eventually(lambda: _async(fake.acks), what="the ping's answer")
    assert (pong.message_id, json.loads(pong.data)) == (
        ping["headers"]["messageId"],
        {"opaque": "3c1f"},
    )

    await fake.push(fake.frame("disconnect", {"reason": "server upgrade"}, kind="SYSTEM"))
    await eventually(lambda: _async(len(fake.calls_to(OPEN, ok=True)) == 2), what="a new ticket")
    await eventually(lambda: _async(len(fake.sockets) == 1), what="the old socket closed")

    hub.hub.inbox.closed = True  # storing fails (as when the database is gone)
    frame = fake.frame(ROBOT_TOPIC, load("text_group.json"))
    with caplog.at_level(logging.ERROR, logger="bot.adapters.dingtalk"):
        await fake.push(frame)
        await eventually(lambda: _async("not acked" in caplog.text), what="the failure logged")
    assert len(fake.acks) == 2  # the ping's and the disconnect's: no ack for the lost frame
    hub.hub.inbox.closed = False
    await fake.push(frame)  # DingTalk delivers it again
    await eventually(lambda: _async(len(fake.acks) == 3), what="the redelivery's ack")
    await eventually(lambda: tickets(hub), what="the ticket from the redelivery")


async def test_a_malformed_stream_frame_gets_a_400_ack_and_is_not_delivered_again(
    fake: FakeDingtalk, running: Start
) -> None:
    """Over Stream a refusal is still an ack (code 400): DingTalk stops redelivering it."""
    hub = await running(**dingtalk_overrides(fake, mode="stream"))
    await eventually(lambda: _async(fake.sockets), what="a Stream connection")
    wrong = {**load("text_group.json"), "msgId": ["not", "a", "string"]}
    deep = fake.frame(ROBOT_TOPIC, {})
    deep["data"] = '{"a":' * 40 + "1" + "}" * 40
    for frame in (fake.frame(ROBOT_TOPIC, wrong), deep):
        await fake.push(frame)
    acks = await eventually(lambda: _async(len(fake.acks) == 2 and fake.acks), what="2 acks")
    assert [a.code for a in acks] == [400, 400]
    async with hub.http.get(hub.base + "/metrics") as r:
        assert 'outcome="bad_request",platform="dingtalk"} 2.0' in await r.text()
    assert await stored(hub) == 0
