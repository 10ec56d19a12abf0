"""WeCom: tickets end to end through the real app against a fake WeCom API, the card
lifecycle with single-use response codes, robot pacing, the AI bot, and the pure parts."""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import select

from bot.adapters.base import AdapterDeps, Capability
from bot.adapters.codec import ActionToken, TokenCodec
from bot.adapters.wecom import WecomAibotAdapter, WecomAppAdapter, WecomRobotAdapter, create
from bot.adapters.wecom.api import WecomApi
from bot.adapters.wecom.render import markdown_card, robot_text, template_card
from bot.config import OutboxSettings, Settings, load_settings
from bot.errors import BadRequest, ConfigError, PlatformApiError, RateLimited, TransientSendError
from bot.events import Address, Button, Card, Text, outbound_to_json
from bot.inbox import Inbox
from bot.metrics import Metrics
from bot.outbox import Governor, OutboxSender
from bot.tickets import TicketAction
from storage import outbox
from storage.db import Database
from storage.models import InboundEvent, utcnow
from storage.outbox import Outcome
from tests.adapters.wecom_driver import (
    APP,
    PAYLOADS,
    aibot_callback,
    app_callback,
    app_envelope,
    card_event,
    settings,
    signed_query,
    text_message,
    voice_message,
)
from tests.conftest import STAFF, RunningHub, eventually
from tests.fakes import enqueue
from tests.fakes_wecom import AMR_HEADER, CORP_ID, SECRET, FakeWecomApi
from tests.fuzz.test_wecom import app_request

Start = Callable[..., Awaitable[RunningHub]]
REPORT = "3号注塑机停机了，报警E102，在二车间"
ROBOT_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
_msg_ids = itertools.count(7000000001)


@pytest.fixture
async def api() -> AsyncIterator[FakeWecomApi]:
    fake = FakeWecomApi()
    await fake.start()
    yield fake
    await fake.stop()


def staff() -> dict[str, Any]:
    """li reachable on WeCom first (userid LiGong); the team's chat is a group robot."""
    people = copy.deepcopy(STAFF["people"])
    people[0]["identities"] = ["wecom:LiGong", "web:li"]
    teams = copy.deepcopy(STAFF["teams"])
    teams[0]["chats"] = [f"wecom-robot:{ROBOT_KEY}"]
    return {"people": people, "teams": teams}


def enabled(api: FakeWecomApi, **wecom: Any) -> dict[str, Any]:
    return {**settings(api.base_url, **wecom), **staff()}


def _deps(db: Database, settings: Settings) -> AdapterDeps:
    return AdapterDeps(Inbox(db), settings, db, secret=b"k")


async def post(hub: RunningHub, req: Any) -> tuple[int, str]:
    async with hub.http.request(
        req.method, hub.base + req.path, data=req.body, params=req.query
    ) as r:
        return r.status, await r.text()


async def stored(hub: RunningHub) -> list[InboundEvent]:
    async with hub.hub.db.read() as s:
        return list((await s.scalars(select(InboundEvent).order_by(InboundEvent.id))).all())


async def one_ticket(hub: RunningHub) -> dict[str, Any]:
    async def get() -> dict[str, Any] | None:
        tickets = (await hub.api("/api/tickets"))["tickets"]
        return tickets[0] if tickets else None

    return cast(dict[str, Any], await eventually(get, what="a ticket"))


async def state_of(hub: RunningHub, ticket_id: int, state: str) -> None:
    async def reached() -> bool:
        return bool((await hub.api(f"/api/tickets/{ticket_id}"))["state"] == state)

    await eventually(reached, what=f"the ticket {state}")


def key_for(codec: TokenCodec, card: dict[str, Any], action: TicketAction) -> str:
    for b in card.get("button_list", []):
        if codec.decode(b["key"]).action == action:
            return str(b["key"])
    raise AssertionError(f"no {action} button on {card.get('main_title')}")


def actions_on(codec: TokenCodec, card: dict[str, Any]) -> set[Any]:
    return {codec.decode(b["key"]).action for b in card.get("button_list", [])}


async def nth_card(api: FakeWecomApi, user: str, n: int) -> dict[str, Any]:
    async def sent() -> dict[str, Any] | None:
        cards = api.sent_cards(user)
        return cast(dict[str, Any], cards[n].body) if len(cards) > n else None

    return cast(dict[str, Any], await eventually(sent, what=f"card #{n + 1} to {user}"))


# ---------------------------------------------------------------------------- end to end


async def test_a_member_report_becomes_a_ticket_and_cards_follow_its_response_codes(
    api: FakeWecomApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    codec = hub.hub.codec
    status, text = await post(hub, app_callback(text_message("ZhangSan", REPORT, 5001)))
    assert (status, text) == (200, "")
    ticket = await one_ticket(hub)
    assert (ticket["state"], ticket["assignee"]["id"]) == ("assigned", "li")

    sent = await nth_card(api, "LiGong", 0)
    sample = {
        k
        for k in (PAYLOADS / "send_template_card_button_interaction.json").read_text().split('"')
        if k in ("touser", "msgtype", "agentid", "template_card")
    }
    assert sample <= set(sent)
    card = sent["template_card"]
    task = card["task_id"]
    assert card["card_type"] == "button_interaction"
    assert re.fullmatch(r"[0-9A-Za-z_\-@]{1,128}", task)
    assert card["main_title"]["title"].startswith(ticket["number"])
    assert TicketAction.ACCEPT in actions_on(codec, card)
    await eventually(lambda: _now(api.robot_posts(ROBOT_KEY)), what="the team's robot card")
    customer_first = await nth_card(api, "ZhangSan", 0)

    # li accepts: the press's ResponseCode updates his card in place, for everyone.
    press = api.press_code(task)
    accept = key_for(codec, card, TicketAction.ACCEPT)
    assert (await post(hub, app_callback(card_event("LiGong", task, accept, press))))[0] == 200
    await state_of(hub, ticket["id"], "accepted")

    async def updated_in_place() -> bool:
        calls = api.to("message/update_template_card")
        return any(c.body["response_code"] == press for c in calls)

    await eventually(updated_in_place, what="li's card updated with the press's code")
    assert TicketAction.DEPART in actions_on(codec, api.cards[task])
    assert len(api.sent_cards("LiGong")) == 1

    # The customer never pressed: their card's only code marks it stale, a fresh one follows.
    customer_task = customer_first["template_card"]["task_id"]
    await nth_card(api, "ZhangSan", 1)

    async def customer_card_marked() -> bool:
        return "button" in api.cards.get(customer_task, {}) or (
            customer_first["template_card"]["card_type"] != "button_interaction"
        )

    await eventually(customer_card_marked, what="the customer's old card marked stale")

    # li presses depart, but that press's code is already spent (or expired): his card gets
    # a fresh copy and the old one is marked stale with the code kept from the send.
    spent = api.press_code(task)
    api.spend(spent)
    depart = key_for(codec, api.cards[task], TicketAction.DEPART)
    assert (
        await post(hub, app_callback(card_event("LiGong", task, depart, spent, created=1717230200)))
    )[0] == 200
    await state_of(hub, ticket["id"], "en_route")
    fresh = (await nth_card(api, "LiGong", 1))["template_card"]
    assert fresh["task_id"] != task
    assert TicketAction.ARRIVE in actions_on(codec, fresh)

    async def old_marked() -> bool:
        return "已更新" in str(api.cards[task].get("button", {}).get("replace_name", ""))

    await eventually(old_marked, what="li's old card marked stale")
    detail = await hub.api(f"/api/tickets/{ticket['id']}")
    assert detail["state"] == "en_route"

    # Notices after each press reach li as app text in his DM.
    async def told() -> bool:
        return any(ticket["number"] in t for t in api.sent_texts("LiGong"))

    await eventually(told, what="the notice after a press")


async def _now(value: Any) -> Any:
    return value


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


async def test_a_retried_callback_is_stored_once_and_the_url_check_is_answered_bare(
    api: FakeWecomApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    req = app_callback(text_message("ZhangSan", REPORT, 5002))
    assert (await post(hub, req))[0] == 200
    assert (await post(hub, req))[0] == 200  # WeCom's retry after a slow answer
    assert len([e for e in await stored(hub) if e.event_id == "5002"]) == 1

    from tests.adapters.wecom_driver import AIBOT, APP, signed_query

    echostr = APP.encrypt("5927782489442352469")
    query = {**signed_query(APP, echostr), "echostr": echostr}
    async with hub.http.get(hub.base + "/webhooks/wecom", params=query) as r:
        assert (r.status, await r.text()) == (200, "5927782489442352469")
    echostr = AIBOT.encrypt("1616140317555161061")  # the AI bot's receiveid is ""
    query = {**signed_query(AIBOT, echostr), "echostr": echostr}
    async with hub.http.get(hub.base + "/webhooks/wecom/aibot", params=query) as r:
        assert (r.status, await r.text()) == (200, "1616140317555161061")


async def test_refusals_say_why_and_store_nothing(api: FakeWecomApi, running: Start) -> None:
    hub = await running(**enabled(api))
    from tests.adapters.wecom_driver import WecomDriver

    driver = WecomDriver()
    (wrong_sig, _, _, wrong_receiveid, bad_padding, plaintext, doctype_outer, doctype_inner, *_) = (
        driver.forged()
    )
    assert "signature" in (await post(hub, wrong_sig))[1]
    assert "receiveid" in (await post(hub, wrong_receiveid))[1]
    assert (await post(hub, bad_padding))[0] == 401
    assert (await post(hub, plaintext))[0] == 401
    assert (await post(hub, doctype_outer))[0] == 403
    assert (await post(hub, doctype_inner))[0] == 403
    assert await stored(hub) == []
    # The process is unaffected: a good callback right after is stored.
    assert (await post(hub, app_callback(text_message("ZhangSan", "你好", 5003))))[0] == 200
    assert [e.event_id for e in await stored(hub)] == ["5003"]


async def test_a_voice_note_is_downloaded_with_its_media_id_for_the_voice_flow(
    api: FakeWecomApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    api.media["MEDIA_li_1"] = AMR_HEADER + b"\x3c" * (12 * 1024 - len(AMR_HEADER))
    voice = app_callback(voice_message("LiGong", "MEDIA_li_1", next(_msg_ids)))
    assert (await post(hub, voice))[0] == 200

    async def fetched() -> bool:
        return any(c.query.get("media_id") == "MEDIA_li_1" for c in api.to("media/get"))

    await eventually(fetched, what="media/get called with the MediaId")
    event = (await stored(hub))[-1]
    assert (event.kind, event.payload["media_ref"], event.payload["mime_hint"]) == (
        "voice",
        "MEDIA_li_1",
        "audio/amr",
    )


async def test_the_voice_flow_answers_in_the_same_chat(api: FakeWecomApi, running: Start) -> None:
    """The voice flow gets the downloaded audio and answers in li's DM with the app. (Its
    wording is the voice flow's: with these synthetic bytes the transcriber hears nothing.)"""
    hub = await running(**enabled(api))
    api.media["MEDIA_li_2"] = AMR_HEADER + b"\x3c" * (12 * 1024 - len(AMR_HEADER))
    voice = app_callback(voice_message("LiGong", "MEDIA_li_2", next(_msg_ids)))
    assert (await post(hub, voice))[0] == 200

    async def answered() -> list[str]:
        fetched = any(c.query.get("media_id") == "MEDIA_li_2" for c in api.to("media/get"))
        return api.sent_texts("LiGong") if fetched else []

    assert await eventually(answered, what="the voice flow's answer in li's DM")


async def test_access_tokens_are_cached_and_refreshed_once_when_wecom_expires_them(
    api: FakeWecomApi,
) -> None:
    client = WecomApi(api.base_url, CORP_ID, SECRET)
    api.media["m1"] = b"#!AMR\n1"
    assert await client.download("m1", 100) == b"#!AMR\n1"
    assert await client.download("m1", 100) == b"#!AMR\n1"
    assert len(api.to("gettoken")) == 1
    api.expire_tokens()
    assert await client.download("m1", 100) == b"#!AMR\n1"
    assert len(api.to("gettoken")) == 2
    assert [c.errcode for c in api.calls if c.path == "media/get"] == [0, 0, 42001, 0]
    await client.close()


async def test_errcodes_are_mapped_for_the_outbox(api: FakeWecomApi) -> None:
    client = WecomApi(api.base_url, CORP_ID, SECRET)
    body = {"touser": "LiGong", "agentid": 1000002, "msgtype": "text", "text": {"content": "x"}}
    api.fail_next("message/send", 45009, "api freq out of limit")
    with pytest.raises(RateLimited):
        await client.call("/cgi-bin/message/send", body)
    api.fail_next("message/send", -1, "system busy")
    with pytest.raises(TransientSendError):
        await client.call("/cgi-bin/message/send", body)
    api.fail_next("message/send", 81013, "user not found")
    with pytest.raises(PlatformApiError) as refused:
        await client.call("/cgi-bin/message/send", body)
    assert refused.value.code == 81013
    api.fail_next("media/get", 40007, "invalid media_id")
    with pytest.raises(PlatformApiError):
        await client.download("nope", 100)
    await client.close()
    dead = WecomApi("http://127.0.0.1:9", CORP_ID, SECRET)
    with pytest.raises(TransientSendError):
        await dead.call("/cgi-bin/message/send", body)


# -------------------------------------------------------------------------------- robots


async def test_a_robot_burst_of_21_is_paced_not_dropped(api: FakeWecomApi, db: Database) -> None:
    clock = [1000.0]
    api.robot_clock = lambda: clock[0]  # WeCom counts the same minute as the governor
    robot = WecomRobotAdapter(Inbox(db), WecomApi(api.base_url, CORP_ID, SECRET))
    sender = OutboxSender(
        db,
        {"wecom-robot": robot},
        OutboxSettings(),
        Metrics(),
        governor=Governor(clock=lambda: clock[0]),
    )
    async with db.transaction() as s:
        for i in range(21):
            await enqueue(
                s,
                destination=f"wecom-robot:{ROBOT_KEY}",
                op="send",
                payload=outbound_to_json(Text(f"SLA 告警 {i}")),
                idempotency_key=f"nag-{i}",
            )

    async def deferred() -> list[Any]:
        await sender.tick()
        async with db.read() as s:
            rows = await outbox.rows(s, destination=f"wecom-robot:{ROBOT_KEY}")
        later = utcnow() + timedelta(seconds=55)
        return [r for r in rows if r.state == "pending" and _aware(r.next_attempt_at) >= later]

    (waiting,) = await eventually(deferred, what="20 nags out and the 21st deferred")
    assert len(api.robot_posts(ROBOT_KEY)) == 20
    assert waiting.attempts == 0 and waiting.last_error is None  # waiting, not failing
    assert await sender.tick() == 0  # not due: it waits out the minute

    clock[0] += 60.5  # a minute later (the row's due time moved up to now with it)
    async with db.begin() as conn:
        await outbox.record(
            conn, Outcome(retry=[(waiting.id, utcnow(), None, False)]), now=utcnow()
        )

    async def all_out() -> bool:
        await sender.tick()
        return len(api.robot_posts(ROBOT_KEY)) == 21

    await eventually(all_out, what="the 21st nag")
    assert [c.body["text"]["content"] for c in api.robot_posts(ROBOT_KEY)] == [
        f"SLA 告警 {i}" for i in range(21)
    ]
    assert not [c for c in api.calls if c.errcode == 45009]
    await robot.api.close()


async def test_a_robot_answering_45009_is_rate_limited(api: FakeWecomApi, db: Database) -> None:
    robot = WecomRobotAdapter(Inbox(db), WecomApi(api.base_url, CORP_ID, SECRET))
    api.fail_next("webhook/send", 45009, "api freq out of limit")
    with pytest.raises(RateLimited) as limited:
        await robot.send(Address("wecom-robot", "k"), Text("x"), key="k1")
    assert limited.value.retry_after >= 20
    assert robot.limits(Address("wecom-robot", "k"))[0].count == 20
    assert robot.limits(Address("wecom-robot", "k"))[0].key == "wecom-robot:k"
    await robot.api.close()


def test_robot_cards_are_markdown_that_say_where_to_act() -> None:
    codec = TokenCodec(b"k")
    card = Card(
        ticket_id=7,
        version=3,
        title="GD-7 · P1 · 注塑机停机",
        fields=(("状态", "已派单"), ("负责人", "李工")),
        buttons=(Button("接单", codec.encode(ActionToken(7, TicketAction.ACCEPT, 3)), "primary"),),
        link="https://gd.example.com/p/7",
    )
    text = markdown_card(card)
    assert text.startswith("**GD-7 · P1 · 注塑机停机**")
    assert "接单" in text and "企业微信应用" in text and "https://gd.example.com/p/7" in text
    assert codec.encode(ActionToken(7, TicketAction.ACCEPT, 3)) not in text
    mention = robot_text("请处理", ["li", "nobody"], {"li": "LiGong"})
    assert mention == {
        "msgtype": "text",
        "text": {"content": "请处理", "mentioned_list": ["LiGong"]},
    }


# -------------------------------------------------------------------------------- AI bot


async def test_ai_bot_group_mentions_and_voice_transcripts_are_intake(
    api: FakeWecomApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    body = {
        "msgid": "aibot-msg-1",
        "aibotid": "AIBOTID",
        "chatid": "wrkSFfCgAALFgnrSsWU38puiv4yvExuw",
        "chattype": "group",
        "from": {"userid": "ZhangSan"},
        "response_url": api.aibot_response_url(),
        "msgtype": "text",
        "text": {"content": f"@工单助手 {REPORT}"},
    }
    assert (await post(hub, aibot_callback(body)))[0] == 200
    ticket = await one_ticket(hub)
    assert ticket["title"]

    async def replied() -> bool:
        return bool(api.to("aibot/response"))

    await eventually(replied, what="the reply through the response_url")
    event = (await stored(hub))[0]
    assert (event.platform, event.payload["mentions_bot"], event.payload["text"]) == (
        "wecom-aibot",
        True,
        REPORT,
    )


async def test_ai_bot_replies_spend_response_urls_then_fall_back(
    api: FakeWecomApi, db: Database
) -> None:
    hub_settings = load_settings(None, **enabled(api, aibot_group_robots={"G1": "rk"}))
    adapters = create(_deps(db, hub_settings))
    aibot = adapters["wecom-aibot"]
    assert isinstance(aibot, WecomAibotAdapter)
    aibot._keep("G1", api.aibot_response_url())
    await aibot.send(Address("wecom-aibot", "G1"), Text("收到"), key="a")
    assert len(api.to("aibot/response")) == 1
    await aibot.send(Address("wecom-aibot", "G1"), Text("第二条"), key="b")  # → the group robot
    assert api.robot_posts("rk")[0].body["text"]["content"] == "第二条"
    await aibot.send(Address("wecom-aibot", "ZhangSan"), Text("私聊"), key="c")  # → app DM
    assert api.sent_texts("ZhangSan") == ["私聊"]
    aibot._groups.add("G2")
    with pytest.raises(PlatformApiError):
        await aibot.send(Address("wecom-aibot", "G2"), Text("无处可发"), key="d")
    for adapter in adapters.values():
        await adapter.stop()


# ---------------------------------------------------------------------- config and render


def test_settings_need_the_app_credentials_and_a_valid_aes_key() -> None:
    with pytest.raises(ConfigError, match="secret"):
        load_settings(
            None,
            wecom={
                "enabled": True,
                "corp_id": "ww1",
                "agent_id": 1,
                "token": "t",
                "encoding_aes_key": "a" * 43,
            },
        )
    with pytest.raises(ConfigError, match="43"):
        load_settings(None, wecom={"encoding_aes_key": "short"})
    with pytest.raises(ConfigError, match="together"):
        load_settings(None, wecom={"aibot_token": "t"})


async def test_create_gives_one_adapter_per_surface(api: FakeWecomApi, db: Database) -> None:
    adapters = create(_deps(db, load_settings(None, **enabled(api))))
    assert set(adapters) == {"wecom", "wecom-robot", "wecom-aibot"}
    app = adapters["wecom"]
    assert isinstance(app, WecomAppAdapter)
    assert app.capabilities & Capability.EDIT_CARD and app.capabilities & Capability.VOICE
    assert {lim.key for lim in app.limits(Address("wecom", "LiGong"))} >= {"wecom:member:LiGong"}
    without_aibot = enabled(api)
    del without_aibot["wecom"]["aibot_token"], without_aibot["wecom"]["aibot_encoding_aes_key"]
    assert "wecom-aibot" not in create(_deps(db, load_settings(None, **without_aibot)))


def test_a_card_is_a_button_interaction_template_card_with_its_tokens() -> None:
    codec = TokenCodec(b"k")
    tokens = [
        codec.encode(ActionToken(7, a, 3)) for a in (TicketAction.ACCEPT, TicketAction.CANCEL)
    ]
    card = Card(
        ticket_id=7,
        version=3,
        title="GD-7 · P1 · 注塑机停机，报警E102，二车间三号机，急需处理，影响生产线",
        fields=tuple((f"字段{i}", "值" * 40) for i in range(8)),
        text="描述" * 100,
        buttons=(
            Button("接单", tokens[0], "primary"),
            Button("取消工单", tokens[1], "danger", "确定吗？"),
        ),
        footer="更新于 06-01 10:00",
    )
    body = template_card(card, "gd7v3-x", fallback_url="http://hub")
    assert body["card_type"] == "button_interaction" and body["task_id"] == "gd7v3-x"
    assert len(body["main_title"]["title"]) <= 36 and len(body["sub_title_text"]) <= 160
    assert len(body["horizontal_content_list"]) == 6
    assert all(len(f["value"]) <= 30 for f in body["horizontal_content_list"])
    assert [b["key"] for b in body["button_list"]] == tokens
    assert [b["style"] for b in body["button_list"]] == [1, 3]
    assert body["replace_text"] == "处理中…"
    closed = template_card(
        Card(ticket_id=7, version=9, title="GD-7"), "t2", fallback_url="http://hub"
    )
    assert closed["card_type"] == "text_notice" and closed["card_action"]["url"] == "http://hub"
    assert "button_list" not in closed


def test_app_callbacks_parse_with_the_builder_table_and_ignore_the_rest() -> None:
    from bot.adapters.wecom.parse import parse_aibot, parse_app, read_xml

    now = datetime.now(UTC)
    assert (
        parse_app(
            read_xml(
                "<xml><MsgType>location</MsgType><FromUserName>u</FromUserName><MsgId>1</MsgId></xml>"
            ),
            now,
        )
        == []
    )
    with pytest.raises(BadRequest, match="MsgId"):  # a text with no id: malformed, not ignored
        parse_app({"MsgType": "text", "FromUserName": "u", "Content": "hi"}, now)
    assert parse_aibot({"msgtype": "stream", "msgid": "x", "from": {"userid": "u"}}, now) == []
    mixed = {
        "msgid": "m1",
        "chattype": "group",
        "chatid": "C",
        "from": {"userid": "u"},
        "msgtype": "mixed",
        "mixed": {
            "msg_item": [
                {"msgtype": "text", "text": {"content": "@bot 3号机"}},
                {"msgtype": "image", "image": {"url": "x"}},
                {"msgtype": "text", "text": {"content": "停了"}},
            ]
        },
    }
    (event,) = parse_aibot(mixed, now)
    assert getattr(event, "text", None) == "3号机 停了"
    click = {
        "msgid": "e1",
        "chattype": "single",
        "from": {"userid": "LiGong"},
        "msgtype": "event",
        "event": {
            "eventtype": "template_card_event",
            "template_card_event": {
                "card_type": "button_interaction",
                "event_key": "TOKEN",
                "task_id": "T1",
            },
        },
    }
    (action,) = parse_aibot(click, now)
    assert (action.chat.ref, getattr(action, "token", None)) == ("wecom-aibot:LiGong", "TOKEN")


async def test_a_verified_callback_with_malformed_fields_is_acknowledged_and_dropped(
    api: FakeWecomApi, running: Start
) -> None:
    """An empty 200 is WeCom's only "received, stop retrying": a callback that verifies and
    reads but whose fields are wrong gets it, is counted, and is stored nowhere. What cannot be
    read at all is a 400 — after the signature check, which comes first (401)."""
    hub = await running(**enabled(api))
    text = json.loads((PAYLOADS / "aibot_text.json").read_text(encoding="utf-8"))
    malformed = [
        aibot_callback({**text, "from": "LiGong"}),  # an object in WeCom's documents
        aibot_callback({**text, "text": {"content": ["停机"]}}),
        app_callback(text_message("ZhangSan", "停机", 5100).replace("<MsgId>5100</MsgId>", "")),
    ]
    for req in malformed:
        assert await post(hub, req) == (200, "")
    async with hub.http.get(hub.base + "/metrics") as r:
        metrics = await r.text()
    assert 'outcome="malformed",platform="wecom-aibot"} 2.0' in metrics
    assert 'outcome="malformed",platform="wecom"} 1.0' in metrics
    # Not UTF-8 inside, once decrypted: 400; in the envelope around a good signature: 400.
    status, body = await post(hub, app_request("停机".encode("gbk")))
    assert status == 400 and "not UTF-8" in body
    encrypt = APP.encrypt(text_message("ZhangSan", "停机", 5101))
    envelope = app_envelope(encrypt).replace(b"<AgentID>", b"<AgentID>\xff")
    req = app_callback(text_message("ZhangSan", "停机", 5101))
    req.body, req.query = envelope, signed_query(APP, encrypt)
    status, body = await post(hub, req)
    assert status == 400 and "UTF-8" in body
    req.query = {**req.query, "msg_signature": "0" * 40}  # and forged: refused first, 401
    assert (await post(hub, req))[0] == 401
    assert await stored(hub) == []
