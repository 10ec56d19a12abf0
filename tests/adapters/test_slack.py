"""Slack: signatures, parsing, Block Kit, Web API errors, downloads, and a ticket's life end to end.

Everything runs against ``tests.fakes_slack.FakeSlackApi`` on a loopback port; the end-to-end
tests drive the real aiohttp app with signed requests as Slack sends them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.signature import Clock, SignatureVerifier
from sqlalchemy import func, select

from bot.adapters.base import AdapterDeps
from bot.adapters.slack import SlackAdapter, create
from bot.adapters.slack.parse import (
    BotIdentity,
    parse_block_actions,
    parse_event_callback,
    verify_signature,
)
from bot.adapters.slack.render import render_card, render_notice, render_text
from bot.config import SlackSettings, load_settings
from bot.errors import (
    ConfigError,
    MediaTooLarge,
    PlatformApiError,
    RateLimited,
    SignatureInvalid,
    TransientSendError,
)
from bot.events import Address, Button, Card, Message, Notice, Text, Voice
from storage.models import InboundEvent
from tests.adapters.slack_driver import (
    PATH,
    SIGNING_SECRET,
    SLACK,
    action_request,
    click_payload,
    event_request,
    form_body,
    load,
    sign,
)
from tests.conftest import STAFF, RunningHub, eventually, free_port
from tests.fakes_slack import FakeSlackApi, Scripted, block_problems

Start = Callable[..., Awaitable[RunningHub]]
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
BOT = BotIdentity("U0BOT", "B0BOT", "T0GONGDAN")


class FixedClock(Clock):
    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


class RecordingInbox:
    """Stands in for the durable inbox where no database is needed."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def accept(self, events: Any, raw: str | None = None) -> list[Any]:
        self.events.extend(events)
        return []

    def note(self, platform: str, outcome: str) -> None:
        pass


@pytest.fixture
async def slack_api() -> AsyncIterator[FakeSlackApi]:
    fake = FakeSlackApi()
    await fake.start()
    yield fake
    await fake.stop()


def standalone(api_base: str, token: str = "xoxb-gongdan-test") -> SlackAdapter:
    """An adapter outside the hub, storing into a ``RecordingInbox``."""
    settings = SlackSettings.model_validate(
        {"enabled": True, "bot_token": token, "signing_secret": "s", "api_base_url": api_base}
    )
    return SlackAdapter(RecordingInbox(), settings, slack_ids={"li": "U0LI"})  # type: ignore[arg-type]


@pytest.fixture
async def adapter(slack_api: FakeSlackApi) -> AsyncIterator[SlackAdapter]:
    a = standalone(slack_api.api_base, slack_api.bot_token)
    await a.start()
    yield a
    await a.stop()


# ------------------------------------------------------------------------------ signatures


def test_the_official_signature_vector_verifies_at_its_own_time() -> None:
    vector = load("signature_vector.json")
    body = vector["raw_body"].encode()
    at = vector["clock_for_test"]
    verify_signature(
        SignatureVerifier(vector["signing_secret"], FixedClock(at)), vector["headers"], body
    )

    for late in (at + 301, at - 301):  # replayed (or from the future): refused
        verifier = SignatureVerifier(vector["signing_secret"], FixedClock(late))
        with pytest.raises(SignatureInvalid, match="5-minute window"):
            verify_signature(verifier, vector["headers"], body)
    verifier = SignatureVerifier(vector["signing_secret"], FixedClock(at))
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_signature(verifier, vector["headers"], body.replace(b"roadrunner", b"coyote"))
    with pytest.raises(SignatureInvalid, match="missing"):
        verify_signature(verifier, {}, body)


def test_the_shared_block_actions_wire_sample_is_what_the_driver_sends() -> None:
    head, _, wire = (SLACK / "block_actions.form.txt").read_text().partition("\n\n")
    headers = dict(line.split(": ", 1) for line in head.splitlines()[1:])
    assert form_body(load("block_actions.json")) == wire.strip().encode()
    verifier = SignatureVerifier("secret", FixedClock(int(headers["X-Slack-Request-Timestamp"])))
    verify_signature(verifier, headers, wire.strip().encode())


# ---------------------------------------------------------------------------------- parsing


def test_a_post_and_its_app_mention_are_one_event() -> None:
    post = parse_event_callback(load("message_channel_text.json"), BOT, NOW)
    mention = parse_event_callback(load("app_mention_same_post.json"), BOT, NOW)
    assert (
        [e.event_id for e in post] == [e.event_id for e in mention] == ["C0CUST:1700000001.000100"]
    )
    assert isinstance(post[0], Message) and post[0].text == "3号注塑机停机，报警E102"


def test_what_is_not_a_persons_post_gives_no_event() -> None:
    for name in ("message_bot", "message_own_bot", "message_changed", "reaction_added"):
        assert parse_event_callback(load(f"{name}.json"), BOT, NOW) == [], name
    deleted = load("message_bot.json")
    deleted["event"] = {"type": "message", "subtype": "message_deleted", "channel": "C1"}
    assert parse_event_callback(deleted, BOT, NOW) == []


def test_a_voice_clip_carries_its_download_url_and_slacks_transcript() -> None:
    body = load("message_audio_clip.json")
    body["event"]["files"][0].update(mimetype="audio/webm", name="audio_message.webm")
    (voice,) = parse_event_callback(body, BOT, NOW)
    assert isinstance(voice, Voice)
    assert voice.media_ref.endswith("/download/audio_message.m4a")
    assert (voice.mime_hint, voice.duration_s) == ("audio/webm", 7.4)
    assert voice.platform_transcript == "printer on three is jammed again"


def test_a_button_press_becomes_an_action_with_what_notify_needs() -> None:
    (action,) = parse_block_actions(load("block_actions.json"), NOW)
    assert (action.token, action.card_message_id, action.chat.ref) == (
        "click_me_123",
        "111.222",
        "slack:C111",
    )
    assert action.reply_ctx["user"] == "W111" and action.reply_ctx["response_url"]
    no_channel = {**load("block_actions.json"), "channel": None, "container": {"type": "view"}}
    assert parse_block_actions(no_channel, NOW) == []


# --------------------------------------------------------------------------------- rendering


def _card(**kw: Any) -> Card:
    values: dict[str, Any] = {
        "ticket_id": 42,
        "version": 3,
        "title": "GD-42 · P0 · 注塑机停机",
        "fields": (("状态", "已派单"), ("负责人", "李工")),
        "buttons": (
            Button("接单", "tok-accept", "primary", action="accept"),
            Button("转派", "tok-reassign", action="reassign"),
            Button("取消工单", "tok-cancel", "danger", "确定要取消工单吗？", action="cancel"),
        ),
        "footer": "更新于 08:00",
    }
    values.update(kw)
    return Card(**values)


def test_a_card_renders_as_block_kit_slack_accepts() -> None:
    rendered = render_card(_card(text="现场 <二车间> & 三号线"))
    blocks = rendered["blocks"]
    assert block_problems(blocks) == []
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context", "actions"]
    assert blocks[2]["text"]["text"] == "现场 &lt;二车间&gt; &amp; 三号线"
    accept, reassign, cancel = blocks[-1]["elements"]
    assert [e["value"] for e in (accept, reassign, cancel)] == [
        "tok-accept",
        "tok-reassign",
        "tok-cancel",
    ]
    assert [e["action_id"] for e in (accept, reassign, cancel)] == [
        "gd:accept:0",
        "gd:reassign:1",
        "gd:cancel:2",
    ]
    assert (accept["style"], "style" in reassign, cancel["style"]) == ("primary", False, "danger")
    assert cancel["confirm"]["text"]["text"] == "确定要取消工单吗？"
    assert cancel["confirm"]["deny"]["text"] == "取消"
    assert "confirm" not in accept
    assert rendered["text"].startswith("GD-42 · P0 · 注塑机停机")
    # The same element shape as the shared chat.postMessage sample.
    sample = load("chat_postMessage_ticket_card.json")["blocks"][1]["elements"][2]
    assert set(cancel) == set(sample) and set(cancel["confirm"]) <= set(sample["confirm"]) | {
        "style"
    }


def test_a_big_card_is_clipped_to_block_kit_limits_but_tokens_never_are() -> None:
    fields = tuple((f"字段{i}", "值" * 2500) for i in range(12))
    rendered = render_card(_card(title="长" * 200, fields=fields, text="x" * 5000))
    blocks = rendered["blocks"]
    assert block_problems(blocks) == []
    assert len(blocks[0]["text"]["text"]) == 150 and blocks[0]["text"]["text"].endswith("…")
    assert [len(b["fields"]) for b in blocks if "fields" in b] == [10, 2]
    assert blocks[-1]["elements"][0]["value"] == "tok-accept"


def test_text_mentions_people_with_a_slack_identity() -> None:
    text = Text("请处理 GD-42 <紧急>", mentions=("li", "nobody"))
    assert render_text(text, {"li": "U0LI"}) == {"text": "<@U0LI> 请处理 GD-42 &lt;紧急&gt;"}
    assert render_notice(Notice("已执行：接单（GD-42）")) == {"text": "已执行：接单（GD-42）"}


def test_create_maps_people_to_their_slack_ids() -> None:
    settings = load_settings(
        None,
        slack={"enabled": True, "bot_token": "xoxb-1", "signing_secret": "s"},
        people=[{"id": "li", "name": "李工", "identities": ["web:li", "slack:U0LI"]}],
    )
    # Neither the database nor the secret is used by this adapter.
    deps = AdapterDeps(RecordingInbox(), settings, db=None, secret=b"")  # type: ignore[arg-type]
    adapter = create(deps)["slack"]
    assert isinstance(adapter, SlackAdapter)
    assert render_text(Text("hi", ("li",)), adapter._slack_ids)["text"] == "<@U0LI> hi"


# ---------------------------------------------------------------------- web API and errors


async def test_slack_errors_map_to_ours_and_the_sdk_never_retries_by_itself(
    adapter: SlackAdapter, slack_api: FakeSlackApi
) -> None:
    dest = Address("slack", "C0TEAM")
    slack_api.script(
        "chat.postMessage",
        Scripted(429, retry_after=7),
        Scripted(503),
        Scripted(200, error="channel_not_found"),
        Scripted(200, error="internal_error"),
    )
    with pytest.raises(RateLimited) as limited:
        await adapter.send(dest, Text("a"), key="k1")
    assert limited.value.retry_after == 7
    with pytest.raises(TransientSendError):
        await adapter.send(dest, Text("b"), key="k2")
    with pytest.raises(PlatformApiError) as refused:
        await adapter.send(dest, Text("c"), key="k3")
    assert refused.value.code == "channel_not_found"
    with pytest.raises(TransientSendError):
        await adapter.send(dest, Text("d"), key="k4")
    assert len(slack_api.calls_to("chat.postMessage")) == 4  # one call each: no hidden retries
    sent = await adapter.send(dest, Text("e"), key="k5")
    assert [m["text"] for m in slack_api.channel("C0TEAM")] == ["e"]
    assert sent.platform_message_id == slack_api.channel("C0TEAM")[0]["ts"]


async def test_an_unreachable_slack_is_a_transient_error() -> None:
    adapter = standalone(f"http://127.0.0.1:{free_port()}/api/")
    with pytest.raises(TransientSendError):
        await adapter.send(Address("slack", "C1"), Text("x"), key="k")


async def test_a_card_sent_to_a_person_lands_in_their_dm_and_updates_there(
    adapter: SlackAdapter, slack_api: FakeSlackApi
) -> None:
    sent = await adapter.send(Address("slack", "U0LI"), _card(), key="k")
    assert sent.platform_message_id is not None
    assert sent.platform_message_id.startswith("D0LI/")
    await adapter.update(
        Address("slack", "U0LI"), sent.platform_message_id, _card(fields=(("状态", "已接单"),))
    )
    (message,) = slack_api.channel("D0LI")
    assert "已接单" in json.dumps(message["blocks"], ensure_ascii=False)
    assert slack_api.calls_to("chat.update", ok=True)[0].args["channel"] == "D0LI"


async def test_notices_are_ephemeral_in_channels_and_plain_in_dms(
    adapter: SlackAdapter, slack_api: FakeSlackApi
) -> None:
    await adapter.notify(Address("slack", "C0TEAM"), Notice("已执行", user_id="U0LI"), key="n1")
    await adapter.notify(Address("slack", "D0LI"), Notice("已执行", user_id="U0LI"), key="n2")
    slack_api.script("chat.postEphemeral", Scripted(200, error="user_not_in_channel"))
    await adapter.notify(Address("slack", "C0OTHER"), Notice("无权限", user_id="U0LI"), key="n3")
    (ephemeral,) = slack_api.calls_to("chat.postEphemeral", ok=True)
    assert (ephemeral.args["channel"], ephemeral.args["user"]) == ("C0TEAM", "U0LI")
    assert [m["text"] for m in slack_api.channel("D0LI")] == ["已执行", "无权限"]


async def test_limits_are_per_channel_and_per_workspace(adapter: SlackAdapter) -> None:
    keys = [(lim.key, lim.count, lim.per) for lim in adapter.limits(Address("slack", "C0TEAM"))]
    assert keys == [("slack:C0TEAM", 1, 1.0), ("slack:workspace", 5, 1.0)]


# --------------------------------------------------------------------------------- downloads


async def test_downloads_send_the_token_only_to_slack_and_respect_the_limit(
    adapter: SlackAdapter, slack_api: FakeSlackApi
) -> None:
    clip = bytes(range(256)) * 400  # 102,400 bytes
    url = slack_api.add_file("clip.webm", clip, "audio/webm")
    assert await adapter.download(url) == clip
    assert slack_api.calls[-1].headers["Authorization"] == f"Bearer {slack_api.bot_token}"

    adapter.settings = adapter.settings.model_copy(update={"max_download_bytes": 50_000})
    with pytest.raises(MediaTooLarge):  # announced by Content-Length
        await adapter.download(url)
    chunked = slack_api.add_file("long.m4a", clip, chunked=True)
    with pytest.raises(MediaTooLarge):  # found while streaming
        await adapter.download(chunked)
    with pytest.raises(PlatformApiError) as missing:
        await adapter.download(slack_api.base + "/files/nope.m4a")
    assert missing.value.code == 404
    calls = len(slack_api.calls)
    with pytest.raises(PlatformApiError, match="untrusted"):
        await adapter.download("https://evil.example/files/clip.webm")
    assert len(slack_api.calls) == calls


async def test_a_token_without_files_read_gets_a_clear_error(slack_api: FakeSlackApi) -> None:
    url = slack_api.add_file("clip.webm", b"audio", "audio/webm")
    adapter = standalone(slack_api.api_base, token="xoxb-without-files-read")
    with pytest.raises(PlatformApiError) as denied:
        await adapter.download(url)
    assert denied.value.code == "file_access_denied"


# ------------------------------------------------------------------------------ end to end

PEOPLE: list[dict[str, Any]] = [
    {**p, "identities": [f"slack:U0{p['id'].upper()}", *p["identities"]]} for p in STAFF["people"]
]
TEAMS = [{**STAFF["teams"][0], "chats": ["slack:C0TEAM"]}]
CUSTOMER_POST = "message_channel_text.json"


def slack_overrides(fake: FakeSlackApi, **slack: Any) -> dict[str, Any]:
    section = {
        "enabled": True,
        "bot_token": fake.bot_token,
        "signing_secret": SIGNING_SECRET,
        "api_base_url": fake.api_base,
        **slack,
    }
    return {"slack": section, "people": PEOPLE, "teams": TEAMS}


async def post(hub: RunningHub, body: dict[str, Any], **headers: str) -> tuple[int, str]:
    req = event_request(body, **headers)
    async with hub.http.post(hub.base + req.path, data=req.body, headers=req.headers) as r:
        return r.status, await r.text()


async def press(hub: RunningHub, payload: dict[str, Any]) -> int:
    raw = form_body(payload)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)}
    async with hub.http.post(hub.base + "/webhooks/slack", data=raw, headers=headers) as r:
        return r.status


async def stored(hub: RunningHub) -> int:
    async with hub.hub.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(InboundEvent)) or 0)


async def tickets(hub: RunningHub) -> list[dict[str, Any]]:
    return list((await hub.api("/api/tickets"))["tickets"])


def cards_in(fake: FakeSlackApi, channel: str) -> list[dict[str, Any]]:
    return [m for m in fake.channel(channel) if m.get("blocks")]


def button_of(message: dict[str, Any], action: str) -> int:
    actions = next(b for b in message["blocks"] if b["type"] == "actions")
    ids = [e["action_id"].split(":")[1] for e in actions["elements"]]
    return ids.index(action)


async def test_a_customer_post_becomes_a_ticket_and_a_click_accepts_it(
    slack_api: FakeSlackApi, running: Start
) -> None:
    hub = await running(**slack_overrides(slack_api))
    assert await post(hub, load(CUSTOMER_POST)) == (200, "")
    (ticket,) = await eventually(lambda: tickets(hub), what="a ticket")
    assert ticket["state"] == "assigned"

    async def all_cards() -> bool:
        return all(cards_in(slack_api, ch) for ch in ("C0CUST", "D0LI", "C0TEAM"))

    await eventually(all_cards, what="cards in the customer's channel, li's DM and the team")
    assert any(ticket["number"] in (m["text"] or "") for m in slack_api.channel("C0CUST"))
    (team_card,) = cards_in(slack_api, "C0TEAM")
    assert team_card["blocks"][0]["text"]["text"].startswith(ticket["number"])

    rendered = {"blocks": team_card["blocks"]}
    click = click_payload(
        rendered,
        button_of(team_card, "accept"),
        user="U0LI",
        channel="C0TEAM",
        message_ts=team_card["ts"],
    )
    assert await press(hub, click) == 200

    async def accepted_everywhere() -> bool:
        copies = [c for ch in ("C0CUST", "D0LI", "C0TEAM") for c in cards_in(slack_api, ch)]
        return len(copies) == 3 and all(
            "已接单" in json.dumps(c["blocks"], ensure_ascii=False) for c in copies
        )

    await eventually(accepted_everywhere, what="every copy of the card updated")
    updated = {
        (c.args["channel"], c.args["ts"]) for c in slack_api.calls_to("chat.update", ok=True)
    }
    assert {
        (m["channel"], m["ts"])
        for ch in ("C0CUST", "D0LI", "C0TEAM")
        for m in cards_in(slack_api, ch)
    } <= updated

    async def notice() -> list[Any]:
        return slack_api.calls_to("chat.postEphemeral", ok=True)

    (ephemeral,) = await eventually(notice, what="the presser's notice")
    assert (ephemeral.args["channel"], ephemeral.args["user"]) == ("C0TEAM", "U0LI")
    assert ticket["number"] in ephemeral.args["text"]
    assert (await hub.api(f"/api/tickets/{ticket['id']}"))["state"] == "accepted"


async def test_replays_retries_duplicates_and_bot_posts_create_nothing(
    slack_api: FakeSlackApi, running: Start, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await running(**slack_overrides(slack_api))
    body = load(CUSTOMER_POST)
    assert (await post(hub, body))[0] == 200
    await eventually(lambda: tickets(hub), what="a ticket")
    assert await stored(hub) == 1

    raw = json.dumps(body).encode()
    old = {"Content-Type": "application/json", **sign(raw, at=int(time.time()) - 600)}
    async with hub.http.post(hub.base + "/webhooks/slack", data=raw, headers=old) as r:
        assert r.status == 401
    with caplog.at_level(logging.DEBUG, logger="bot.adapters.slack"):
        retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
        assert (await post(hub, body, **retry))[0] == 200
        assert (await post(hub, load("app_mention_same_post.json")))[0] == 200
        assert (await post(hub, load("message_own_bot.json")))[0] == 200
        assert (await post(hub, load("message_bot.json")))[0] == 200
    assert await stored(hub) == 1
    assert len(await tickets(hub)) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_an_event_that_cannot_be_stored_is_answered_500_so_slack_retries(
    slack_api: FakeSlackApi, running: Start, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await running(**slack_overrides(slack_api))
    hub.hub.inbox.closed = True  # storing fails (as when the database is gone)
    with caplog.at_level(logging.ERROR, logger="bot.adapters.slack"):
        assert (await post(hub, load(CUSTOMER_POST)))[0] == 500
    assert "could not store" in caplog.text
    hub.hub.inbox.closed = False
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_error"}
    assert (await post(hub, load(CUSTOMER_POST), **retry))[0] == 200
    assert await stored(hub) == 1
    await eventually(lambda: tickets(hub), what="the ticket from Slack's retry")


async def test_a_refused_token_stops_start_up_but_a_slack_outage_does_not_lose_events(
    slack_api: FakeSlackApi, running: Start
) -> None:
    slack_api.script("auth.test", Scripted(200, error="invalid_auth"))
    with pytest.raises(ConfigError, match="invalid_auth"):
        await standalone(slack_api.api_base).start()

    slack_api.script("auth.test", Scripted(503), Scripted(503))  # at start, at the first event
    hub = await running(**slack_overrides(slack_api))
    assert (await post(hub, load(CUSTOMER_POST)))[0] == 200
    async with hub.hub.db.read() as s:
        (event,) = (await s.scalars(select(InboundEvent))).all()
    # The bot user named in the event's authorizations still recognises the mention.
    assert event.payload["text"] == "3号注塑机停机，报警E102"
    assert event.payload["mentions_bot"] is True


async def test_slack_handshakes_are_answered(
    slack_api: FakeSlackApi, running: Start, caplog: pytest.LogCaptureFixture
) -> None:
    hub = await running(**slack_overrides(slack_api))
    status, text = await post(hub, load("url_verification.json"))
    assert (status, json.loads(text)) == (
        200,
        {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"},
    )
    raw = b"token=verification-token&ssl_check=1"
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(raw)}
    async with hub.http.post(hub.base + "/webhooks/slack", data=raw, headers=headers) as r:
        assert r.status == 200
    limited = {"type": "app_rate_limited", "team_id": "T111", "minute_rate_limited": 1518467820}
    assert (await post(hub, {"token": "x", "api_app_id": "A111", **limited}))[0] == 200
    assert "rate limited by Slack" in caplog.text  # the operator learns events are being lost
    assert await stored(hub) == 0


async def test_a_429_is_waited_out_and_the_message_arrives_once(
    slack_api: FakeSlackApi, running: Start
) -> None:
    slack_api.script("chat.postMessage", Scripted(429, retry_after=2))
    hub = await running(**slack_overrides(slack_api))
    assert (await post(hub, load(CUSTOMER_POST)))[0] == 200

    async def delivered() -> bool:
        return all(cards_in(slack_api, ch) for ch in ("C0CUST", "D0LI", "C0TEAM"))

    await eventually(delivered, what="every card, despite the 429")
    (refused,) = slack_api.calls_to("chat.postMessage", ok=False)
    same = [
        c
        for c in slack_api.calls_to("chat.postMessage", ok=True)
        if (c.args["channel"], c.args["text"]) == (refused.args["channel"], refused.args["text"])
    ]
    assert len(same) == 1, "delivered exactly once"
    assert same[0].at - refused.at >= 1.9, "not before Retry-After"


async def test_socket_mode_acks_each_envelope_after_storing_it(
    slack_api: FakeSlackApi, running: Start
) -> None:
    overrides = slack_overrides(slack_api, app_token=slack_api.app_token, signing_secret=None)
    hub = await running(**overrides)
    await eventually(lambda: _async(slack_api.sockets), what="a Socket Mode connection")
    opened = slack_api.calls_to("apps.connections.open", ok=True)
    assert opened[0].headers["Authorization"] == f"Bearer {slack_api.app_token}"

    async def stored_now() -> int:
        return await stored(hub)

    slack_api.ack_probe = stored_now
    envelope = {
        "envelope_id": "57d6a792-4d35-4d0b-b6aa-3361493e1caf",
        "type": "events_api",
        "accepts_response_payload": False,
        "retry_attempt": 0,
        "retry_reason": "",
        "payload": load(CUSTOMER_POST),
    }
    await slack_api.push(envelope)
    (ack,) = await eventually(lambda: _async(slack_api.acks), what="the envelope's ack")
    assert ack.envelope_id == envelope["envelope_id"]
    assert ack.probe == 1, "the event was stored before the ack was sent"
    await slack_api.push({**envelope, "envelope_id": "second", "retry_attempt": 1})
    await eventually(lambda: _async(len(slack_api.acks) == 2), what="the retry's ack")
    (ticket,) = await eventually(lambda: tickets(hub), what="a ticket")
    assert await stored(hub) == 1 and ticket["state"] == "assigned"
    async with hub.http.post(hub.base + "/webhooks/slack", data=b"{}") as r:
        assert r.status == 404  # Socket Mode only: no HTTP endpoint to forge requests against


async def test_a_signed_request_nobody_can_read_is_a_400_slack_does_not_retry(
    slack_api: FakeSlackApi, running: Start
) -> None:
    hub = await running(**slack_overrides(slack_api))
    wrong = load(CUSTOMER_POST)
    wrong["event"]["text"] = 5
    deep = b'{"type": "event_callback", "x": ' + b"[" * 40 + b"]" * 40 + b"}"
    cases = [
        (event_request(wrong), "$.event.text must be a string"),
        (event_request(b'{"type": "event_callback", "event": {"type": "\xff"}}'), "UTF-8"),
        (event_request(deep), "JSON nested deeper than 32"),
        (event_request(b"[]"), "must be a JSON object"),
        (action_request({**load("block_actions.json"), "actions": []}), "non-empty array"),
    ]
    for req, message in cases:
        async with hub.http.post(hub.base + req.path, data=req.body, headers=req.headers) as r:
            assert r.status == 400 and r.headers.get("X-Slack-No-Retry") == "1", await r.text()
            assert message in (await r.json())["error"]
    # Not UTF-8 and not signed: the signature is checked first, over the raw bytes.
    forged = {**event_request(b"\xff\xfe").headers, "X-Slack-Signature": "v0=00"}
    async with hub.http.post(hub.base + PATH, data=b"\xff\xfe", headers=forged) as r:
        assert r.status == 401
    async with hub.http.get(hub.base + "/metrics") as r:
        assert 'outcome="bad_request",platform="slack"} 5.0' in await r.text()
    assert await stored(hub) == 0


async def test_a_malformed_event_over_socket_mode_is_acked_and_dropped(
    slack_api: FakeSlackApi, running: Start
) -> None:
    """Unacked, Slack would deliver it again; acked, it is counted and never stored."""
    overrides = slack_overrides(slack_api, app_token=slack_api.app_token, signing_secret=None)
    hub = await running(**overrides)
    await eventually(lambda: _async(slack_api.sockets), what="a Socket Mode connection")
    payload = load(CUSTOMER_POST)
    payload["event"]["files"] = "not a list"
    envelope = {"envelope_id": "bad-1", "type": "events_api", "payload": payload}
    await slack_api.push(envelope)
    (ack,) = await eventually(lambda: _async(slack_api.acks), what="the envelope's ack")
    assert ack.envelope_id == "bad-1"
    async with hub.http.get(hub.base + "/metrics") as r:
        assert 'outcome="malformed",platform="slack"} 1.0' in await r.text()
    assert await stored(hub) == 0


async def _async(value: Any) -> Any:
    return value
