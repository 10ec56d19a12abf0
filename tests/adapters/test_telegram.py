"""Telegram: rendering (pure), the adapter against the fake Bot API, and tickets end to end
through the real app, by webhook and by long polling."""

from __future__ import annotations

import copy
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.adapters.base import RateLimit
from bot.adapters.codec import ActionToken
from bot.adapters.telegram.adapter import TelegramAdapter
from bot.adapters.telegram.render import CONFIRM, DISARM, arm, disarm, render_card, render_text
from bot.config import load_settings
from bot.errors import (
    ConfigError,
    MediaTooLarge,
    NotAllowed,
    PlatformApiError,
    RateLimited,
    TransientSendError,
)
from bot.events import Address, Button, Card, Inbound, Notice, Text
from bot.inbox import Accepted, Inbox
from bot.texts import refusal
from bot.tickets import TicketAction, TicketState
from storage.models import InboundEvent
from tests.adapters.telegram_driver import PAYLOADS, SECRET, webhook
from tests.conftest import STAFF, RunningHub, eventually
from tests.fakes_telegram import TOKEN, FakeBotApi

Start = Callable[..., Awaitable[RunningHub]]
#: PTB warns about its own int → timedelta migration whenever it builds a RetryAfter.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

CUSTOMER = {
    "id": 900100200,
    "is_bot": False,
    "first_name": "San",
    "last_name": "Zhang",
    "language_code": "zh-hans",
}
CUSTOMER_GROUP = {"id": -100555, "title": "二车间报修群", "type": "supergroup"}
LI = {"id": 42, "is_bot": False, "first_name": "Li", "language_code": "zh-hans"}
LI_CHAT = {"id": 42, "first_name": "Li", "type": "private"}
STRANGER = {"id": 777, "is_bot": False, "first_name": "Sam", "language_code": "en"}
TEAM = {"id": -1001234, "title": "维修组", "type": "supergroup"}
REPORT = "3号注塑机停机了，报警E102，在二车间"
_update_ids = itertools.count(880000001)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    await fake.start()
    yield fake
    await fake.stop()


def staff() -> dict[str, Any]:
    """The test staff, with li reachable on Telegram (user 42) and the team's group there."""
    people = copy.deepcopy(STAFF["people"])
    people[0]["identities"] = ["telegram:42", "web:li"]
    teams = copy.deepcopy(STAFF["teams"])
    teams[0]["chats"] = ["telegram:-1001234"]
    return {"people": people, "teams": teams}


def enabled(api: FakeBotApi | str, **telegram: Any) -> dict[str, Any]:
    base = api if isinstance(api, str) else api.base_url
    section = {
        "enabled": True,
        "bot_token": TOKEN,
        "webhook_secret": SECRET,
        "api_base_url": base,
        **telegram,
    }
    return {"telegram": section, **staff()}


def says(user: dict[str, Any], chat: dict[str, Any], text: str) -> dict[str, Any]:
    update_id = next(_update_ids)
    message = {
        "message_id": update_id % 100000,
        "from": user,
        "chat": chat,
        "date": int(time.time()),
        "text": text,
    }
    return {"update_id": update_id, "message": message}


def presses(
    user: dict[str, Any],
    chat: dict[str, Any],
    message_id: int,
    data: str,
    markup: dict[str, Any] | None,
) -> dict[str, Any]:
    update_id = next(_update_ids)
    message = {
        "message_id": message_id,
        "from": {"id": 7000001, "is_bot": True, "first_name": "Helpdesk"},
        "chat": chat,
        "date": int(time.time()),
        "text": "…",
    }
    if markup is not None:
        message["reply_markup"] = markup
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cbq-{update_id}",
            "from": user,
            "chat_instance": "1",
            "message": message,
            "data": data,
        },
    }


async def deliver(hub: RunningHub, update: dict[str, Any] | bytes, **kw: Any) -> int:
    req = webhook(update, **kw)
    async with hub.http.post(hub.base + req.path, data=req.body, headers=req.headers) as r:
        return r.status


async def stored(hub: RunningHub) -> list[InboundEvent]:
    async with hub.hub.db.read() as s:
        rows = await s.scalars(select(InboundEvent).where(InboundEvent.platform == "telegram"))
        return list(rows.all())


async def one_ticket(hub: RunningHub) -> dict[str, Any]:
    async def get() -> dict[str, Any] | None:
        tickets = (await hub.api("/api/tickets"))["tickets"]
        return tickets[0] if tickets else None

    return cast(dict[str, Any], await eventually(get, what="a ticket"))


async def cards_everywhere(api: FakeBotApi) -> dict[int, tuple[int, dict[str, Any]]]:
    """The customer's card, li's and the team's: chat → (message id, message)."""

    async def sent() -> dict[int, tuple[int, dict[str, Any]]] | None:
        found = {chat: api.cards(chat) for chat in (CUSTOMER_GROUP["id"], 42, TEAM["id"])}
        return {c: m[0] for c, m in found.items()} if all(found.values()) else None

    return cast(dict[int, tuple[int, dict[str, Any]]], await eventually(sent, what="3 cards"))


def data_for(hub: RunningHub, message: dict[str, Any], action: TicketAction) -> str:
    for row in message["reply_markup"]["inline_keyboard"]:
        for b in row:
            token = b["callback_data"].removeprefix(CONFIRM)
            if hub.hub.codec.decode(token).action == action:
                return str(b["callback_data"])
    raise AssertionError(f"no {action} button in {message['reply_markup']}")


def actions_on(hub: RunningHub, message: dict[str, Any]) -> set[TicketAction]:
    return {
        hub.hub.codec.decode(b["callback_data"].removeprefix(CONFIRM)).action
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
        for b in row
        if not b["callback_data"].startswith(DISARM)
    }


async def answer_to(api: FakeBotApi, update: dict[str, Any]) -> dict[str, Any]:
    query_id = update["callback_query"]["id"]

    async def answered() -> dict[str, Any] | None:
        calls = [
            c for c in api.to("answerCallbackQuery") if c.params["callback_query_id"] == query_id
        ]
        return calls[0].params if calls else None

    return cast(dict[str, Any], await eventually(answered, what="answerCallbackQuery"))


# ------------------------------------------------------------------------ end to end (webhook)


async def test_a_group_report_becomes_a_ticket_and_accepting_updates_every_card(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    assert await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, REPORT)) == 200
    ticket = await one_ticket(hub)
    assert (ticket["state"], ticket["assignee"]["id"]) == ("assigned", "li")

    cards = await cards_everywhere(api)
    dm_id, dm = cards[42]
    assert dm["text"].startswith(f"<b>{ticket['number']} · ")
    first = api.to("sendMessage", 42)[0].params
    sample = json.loads((PAYLOADS / "sendMessage_inline_keyboard.json").read_text())
    assert {k for k in sample if not k.startswith("_")} <= set(first)
    assert first["parse_mode"] == "HTML"

    press = presses(LI, LI_CHAT, dm_id, data_for(hub, dm, TicketAction.ACCEPT), dm["reply_markup"])
    assert await deliver(hub, press) == 200

    async def accepted() -> bool:
        return bool((await hub.api(f"/api/tickets/{ticket['id']}"))["state"] == "accepted")

    await eventually(accepted, what="the ticket accepted")

    async def every_copy_edited() -> bool:
        edited = {(c.params["chat_id"], c.params["message_id"]) for c in api.to("editMessageText")}
        return edited >= {(chat, mid) for chat, (mid, _) in cards.items()}

    await eventually(every_copy_edited, what="every card edited")
    toast = await answer_to(api, press)
    assert ticket["number"] in toast["text"] and "接单" in toast["text"]
    assert actions_on(hub, api.messages[(42, dm_id)]) >= {TicketAction.DEPART}
    assert TicketAction.ACCEPT not in actions_on(hub, api.messages[(42, dm_id)])


async def test_a_resent_update_is_stored_once_and_makes_one_ticket(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    update = says(CUSTOMER, CUSTOMER_GROUP, REPORT)
    assert await deliver(hub, update) == 200
    assert await deliver(hub, update) == 200  # Telegram resends what it saw no 200 for
    assert [e.event_id for e in await stored(hub)] == [str(update["update_id"])]
    await one_ticket(hub)

    async def acked() -> list[Any]:
        return [
            c
            for c in api.to("sendMessage", CUSTOMER_GROUP["id"])
            if c.params["text"].startswith("已收到您的报修")
        ]

    assert len(await eventually(acked, what="the acknowledgement")) == 1
    assert len((await hub.api("/api/tickets"))["tickets"]) == 1


async def test_a_press_by_someone_not_allowed_is_refused_in_a_toast(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, REPORT))
    ticket = await one_ticket(hub)
    team_id, team_card = (await cards_everywhere(api))[TEAM["id"]]

    press = presses(
        STRANGER,
        TEAM,
        team_id,
        data_for(hub, team_card, TicketAction.ACCEPT),
        team_card["reply_markup"],
    )
    assert await deliver(hub, press) == 200
    toast = await answer_to(api, press)
    reason = refusal(NotAllowed(action=TicketAction.ACCEPT, state=TicketState.ASSIGNED), "en")
    assert toast["text"] == reason  # in the presser's own language (language_code "en")
    assert (await hub.api(f"/api/tickets/{ticket['id']}"))["state"] == "assigned"


async def test_a_flood_limit_answer_delays_the_message_which_then_arrives_once(
    api: FakeBotApi, running: Start
) -> None:
    api.fail_next(
        "sendMessage",
        429,
        "Too Many Requests: retry after 1",
        retry_after=1,
        chat_id=CUSTOMER_GROUP["id"],
    )
    hub = await running(**enabled(api))
    await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, REPORT))

    async def acks() -> list[Any] | None:
        calls = [
            c
            for c in api.to("sendMessage", CUSTOMER_GROUP["id"], ok=False)
            if c.params["text"].startswith("已收到您的报修")
        ]
        return calls if any(c.status == 200 for c in calls) else None

    refused, delivered = await eventually(acks, what="the acknowledgement, delivered")
    assert (refused.status, delivered.status) == (429, 200)
    assert delivered.at - refused.at >= 1.0  # not before Telegram's retry_after
    await cards_everywhere(api)  # what was queued behind it follows
    assert (
        len(
            [
                c
                for c in api.to("sendMessage", CUSTOMER_GROUP["id"])
                if c.params["text"].startswith("已收到您的报修")
            ]
        )
        == 1
    )


async def test_a_cancel_press_asks_for_confirmation_before_anything_happens(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    await deliver(hub, says(CUSTOMER, CUSTOMER_GROUP, REPORT))
    ticket = await one_ticket(hub)
    card_id, card = (await cards_everywhere(api))[CUSTOMER_GROUP["id"]]
    cancel = data_for(hub, card, TicketAction.CANCEL)
    assert cancel.startswith(CONFIRM)

    first = presses(CUSTOMER, CUSTOMER_GROUP, card_id, cancel, card["reply_markup"])
    assert await deliver(hub, first) == 200
    assert (await answer_to(api, first))["text"] == "请再点 ✔ 确认，点 ✖ 取消。"
    armed = api.messages[(CUSTOMER_GROUP["id"], card_id)]["reply_markup"]["inline_keyboard"]
    confirm_row = [
        row for row in armed if any(b["callback_data"] == DISARM + cancel[1:] for b in row)
    ]
    assert confirm_row and confirm_row[0][0]["callback_data"] == cancel[1:]
    assert [e.kind for e in await stored(hub)] == ["message"]  # the first press stored nothing

    second = presses(CUSTOMER, CUSTOMER_GROUP, card_id, cancel[1:], {"inline_keyboard": armed})
    assert await deliver(hub, second) == 200

    async def cancelled() -> bool:
        return bool((await hub.api(f"/api/tickets/{ticket['id']}"))["state"] == "cancelled")

    await eventually(cancelled, what="the ticket cancelled after ✔")


async def test_the_webhook_refuses_what_is_not_a_json_update_and_stores_nothing(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api))
    req = webhook(says(CUSTOMER, CUSTOMER_GROUP, REPORT))
    as_form = {**req.headers, "Content-Type": "application/x-www-form-urlencoded"}
    async with hub.http.post(hub.base + req.path, data=req.body, headers=as_form) as r:
        assert r.status == 400
    assert await deliver(hub, b'{"update_id": 1, "message": ') == 400
    assert await deliver(hub, b'{"message": {"text": "hi"}}') == 400
    assert await deliver(hub, b'{"update_id": 1, "message": {"text": "\xff"}}') == 400
    assert await deliver(hub, b'{"update_id": 1, "x": ' + b"[" * 40 + b"]" * 40 + b"}") == 400
    assert await stored(hub) == []


async def test_a_malformed_update_is_acknowledged_counted_and_dropped(
    api: FakeBotApi, running: Start
) -> None:
    """Telegram retries every non-2xx answer for up to a day and has no "do not retry": an
    update it cannot mean is answered 200, stored nowhere, and counted in metrics."""
    hub = await running(**enabled(api))
    good = says(CUSTOMER, CUSTOMER_GROUP, REPORT)
    no_chat = {"update_id": 5, "message": {k: v for k, v in good["message"].items() if k != "chat"}}
    number_text = {**good, "update_id": 6, "message": {**good["message"], "text": 12345}}
    bad_entity = {
        **good,
        "update_id": 7,
        "message": {**good["message"], "entities": [{"type": "mention", "offset": "0"}]},
    }
    no_from = {
        "update_id": 8,
        "callback_query": {"id": "q", "chat_instance": "c", "data": "x", "from": "nobody"},
    }
    for update in (no_chat, number_text, bad_entity, no_from):
        assert await deliver(hub, update) == 200, update
    assert await stored(hub) == []
    async with hub.http.get(hub.base + "/metrics") as r:
        metrics = await r.text()
    assert 'gongdan_inbound_events_total{outcome="malformed",platform="telegram"} 4.0' in metrics
    assert await deliver(hub, good) == 200  # and the next good update is stored as ever
    assert len(await stored(hub)) == 1


async def test_the_webhook_is_registered_with_its_secret_when_the_hub_is_public(
    api: FakeBotApi, running: Start
) -> None:
    await running(**enabled(api), public_url="https://gongdan.example.com/")
    (call,) = api.to("setWebhook")
    assert call.params["url"] == "https://gongdan.example.com/webhooks/telegram"
    assert call.params["secret_token"] == SECRET
    assert call.params["allowed_updates"] == ["message", "callback_query"]


async def test_no_webhook_is_registered_for_a_hub_without_https(
    api: FakeBotApi, running: Start
) -> None:
    await running(**enabled(api))  # public_url http://127.0.0.1:8080
    assert api.to("getMe") and not api.to("setWebhook")


# ------------------------------------------------------------------------ end to end (polling)


async def test_polling_turns_an_update_into_a_ticket_and_confirms_it_once_stored(
    api: FakeBotApi, running: Start
) -> None:
    hub = await running(**enabled(api, mode="polling", webhook_secret=None))
    assert api.to("deleteWebhook")  # getUpdates does not work while a webhook is set
    chat = {"id": CUSTOMER["id"], "first_name": "San", "type": "private"}
    update = says(CUSTOMER, chat, REPORT)
    api.push_update(update)
    ticket = await one_ticket(hub)
    assert (ticket["state"], ticket["assignee"]["id"]) == ("assigned", "li")

    async def confirmed() -> bool:
        return api.pending_updates() == []

    await eventually(confirmed, what="the update confirmed to Telegram")
    assert [e.event_id for e in await stored(hub)] == [str(update["update_id"])]
    assert await eventually(lambda: _now(api.cards(CUSTOMER["id"])), what="the customer's card")


async def _now(value: Any) -> Any:
    return value


class _FlakyInbox:
    """An inbox whose database is down for the first ``failures`` writes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.events: list[Inbound] = []

    async def accept(self, events: list[Inbound], raw: str | None = None) -> list[Accepted]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database is down")
        self.events += events
        return [Accepted(e.event_id, True) for e in events]


async def test_polling_fetches_an_update_again_when_storing_it_failed(api: FakeBotApi) -> None:
    inbox = _FlakyInbox(failures=1)
    update = says(CUSTOMER, {"id": CUSTOMER["id"], "type": "private"}, REPORT)
    api.push_update(update)
    async with adapter_on(api, inbox, mode="polling", webhook_secret=None):
        await eventually(lambda: _now(inbox.events), what="the update stored")
        await eventually(lambda: _now(api.pending_updates() == []), what="confirmed")
    assert [e.event_id for e in inbox.events] == [str(update["update_id"])]
    offsets = [int(c.params.get("offset") or 0) for c in api.to("getUpdates")]
    # handed out twice (before and after the failure), confirmed only after it was stored
    assert len([o for o in offsets if o <= update["update_id"]]) >= 2
    assert update["update_id"] + 1 in offsets


# ------------------------------------------------------------------- the adapter on its own


@asynccontextmanager
async def adapter_on(
    api: FakeBotApi, inbox: Any = None, **telegram: Any
) -> AsyncIterator[TelegramAdapter]:
    settings = load_settings(None, security={"secret_key": "k"}, **enabled(api, **telegram))
    adapter = TelegramAdapter(cast(Inbox, inbox or _FlakyInbox(0)), settings)
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop()


GROUP = Address("telegram", "-100555")
CARD = Card(
    ticket_id=7,
    version=1,
    title="GD-7 · P1 · 注塑机停机",
    fields=(("状态", "已派单"),),
    buttons=(Button("接单", "tok-accept", "primary"),),
)


async def test_a_429_is_rate_limited_with_its_retry_after_and_ptb_neither_retries_nor_sleeps(
    api: FakeBotApi,
) -> None:
    sample = json.loads((PAYLOADS / "error_429.json").read_text())
    api.fail_next(
        "sendMessage", 429, sample["description"], retry_after=sample["parameters"]["retry_after"]
    )
    async with adapter_on(api) as adapter:
        started = time.monotonic()
        with pytest.raises(RateLimited) as raised:
            await adapter.send(GROUP, Text("您好"), key="k1")
        assert time.monotonic() - started < 5
    assert raised.value.retry_after == 35
    assert len(api.to("sendMessage", ok=False)) == 1


@pytest.mark.parametrize(
    ("status", "description", "error"),
    [
        (400, "Bad Request: chat not found", PlatformApiError),
        (403, "Forbidden: bot was blocked by the user", PlatformApiError),
        (500, "Internal Server Error", TransientSendError),
        (502, "Bad Gateway", TransientSendError),
    ],
)
async def test_api_errors_are_told_apart_for_the_outbox(
    api: FakeBotApi, status: int, description: str, error: type[Exception]
) -> None:
    api.fail_next("sendMessage", status, description)
    async with adapter_on(api) as adapter:
        with pytest.raises(error) as raised:
            await adapter.send(GROUP, CARD, key="k")
    if isinstance(raised.value, PlatformApiError):  # PTB drops the "Bad Request: " prefix
        assert raised.value.code == status
        assert raised.value.message.lower() in description.lower()


async def test_the_adapter_starts_while_telegram_is_down_and_connects_when_it_is_back(
    api: FakeBotApi,
) -> None:
    api.fail_next("getMe", 502, "Bad Gateway")
    async with adapter_on(api) as adapter:  # start() returned: the hub is serving
        assert adapter.me.username is None

        async def connected() -> bool:
            return adapter.me.username == "helpdesk_bot"

        await eventually(connected, what="getMe retried in the background")


async def test_a_rejected_token_stops_the_start_with_a_configuration_error(
    api: FakeBotApi,
) -> None:
    settings = load_settings(None, security={"secret_key": "k"}, **enabled(api))
    settings.telegram.bot_token = SecretStr("7000001:wrong")
    adapter = TelegramAdapter(cast(Inbox, _FlakyInbox(0)), settings)
    with pytest.raises(ConfigError, match="rejected the token"):
        await adapter.start()
    await adapter.stop()


async def test_an_unreachable_api_is_a_transient_error(api: FakeBotApi) -> None:
    async with adapter_on(api) as adapter:
        await api.stop()
        with pytest.raises(TransientSendError):
            await adapter.send(GROUP, Text("您好"), key="k")


async def test_editing_a_card_to_what_it_shows_is_success_and_no_buttons_clear_the_keyboard(
    api: FakeBotApi,
) -> None:
    async with adapter_on(api) as adapter:
        sent = await adapter.send(GROUP, CARD, key="k")
        assert sent.platform_message_id is not None
        await adapter.update(GROUP, sent.platform_message_id, CARD)  # "message is not modified"
        done = Card(ticket_id=7, version=2, title=CARD.title, fields=(("状态", "已关闭"),))
        await adapter.update(GROUP, sent.platform_message_id, done)
    assert [c.status for c in api.to("editMessageText", ok=False)] == [400, 200]
    shown = api.messages[(-100555, int(sent.platform_message_id))]
    assert "已关闭" in shown["text"] and shown["reply_markup"] is None  # the buttons are gone


async def test_a_notice_is_a_toast_and_falls_back_to_the_chat_when_the_press_expired(
    api: FakeBotApi,
) -> None:
    async with adapter_on(api) as adapter:
        await adapter.notify(
            GROUP, Notice("已执行：接单（GD-7）", {"callback_query_id": "q1"}), key="n1"
        )
        api.fail_next(
            "answerCallbackQuery",
            400,
            "Bad Request: query is too old and response timeout expired or query ID is invalid",
        )
        await adapter.notify(
            GROUP, Notice("已执行：出发（GD-7）", {"callback_query_id": "q2"}), key="n2"
        )
    (toast,) = api.to("answerCallbackQuery")
    assert toast.params == {
        "callback_query_id": "q1",
        "text": "已执行：接单（GD-7）",
        "show_alert": False,
    }
    assert [c.params["text"] for c in api.to("sendMessage", -100555)] == ["已执行：出发（GD-7）"]


async def test_a_text_mentions_people_by_their_telegram_id(api: FakeBotApi) -> None:
    async with adapter_on(api) as adapter:
        await adapter.send(GROUP, Text("GD-7 <超时> 请尽快到场", mentions=("li", "wang")), key="k")
    (call,) = api.to("sendMessage")
    assert call.params["text"] == '<a href="tg://user?id=42">李工</a> GD-7 &lt;超时&gt; 请尽快到场'


async def test_voice_downloads_refuse_files_over_the_limit(api: FakeBotApi) -> None:
    api.add_file("small", b"OggS" + b"\x01" * 1000)
    api.add_file("huge", b"OggS", reported_size=25_000_000)
    api.add_file("lying", b"OggS" + b"\x02" * 5000, reported_size=100)
    async with adapter_on(api, max_download_bytes=4096) as adapter:
        assert await adapter.download("small") == b"OggS" + b"\x01" * 1000
        with pytest.raises(MediaTooLarge):
            await adapter.download("huge")
        with pytest.raises(MediaTooLarge):
            await adapter.download("lying")


async def test_the_token_never_reaches_the_logs(
    api: FakeBotApi, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with adapter_on(api) as adapter:
            await adapter.send(GROUP, Text("您好"), key="k")
    assert any("sendMessage" in r.getMessage() for r in caplog.records if r.name == "httpx")
    ours = [r for r in caplog.records if not r.name.startswith("aiohttp")]  # not the fake's
    assert not [r for r in ours if TOKEN in r.getMessage()]


def test_limits_follow_telegrams_flood_limits() -> None:
    settings = load_settings(None, security={"secret_key": "k"}, **enabled("http://127.0.0.1:9"))
    adapter = TelegramAdapter(cast(Inbox, _FlakyInbox(0)), settings)
    group = {(x.key, x.count, x.per) for x in adapter.limits(GROUP)}
    assert group == {
        ("telegram:chat:-100555", 1, 1.0),
        ("telegram:group:-100555", 20, 60.0),
        ("telegram:bot", 30, 1.0),
    }
    private = {x.key for x in adapter.limits(Address("telegram", "42"))}
    assert private == {"telegram:chat:42", "telegram:bot"}


def test_the_bot_wide_limit_is_messages_per_second() -> None:
    """Paid broadcasts raise Telegram's 30/s; toasts count against the same bot-wide key."""
    base = "http://127.0.0.1:9"
    settings = load_settings(
        None, security={"secret_key": "k"}, **enabled(base, messages_per_second=1000)
    )
    adapter = TelegramAdapter(cast(Inbox, _FlakyInbox(0)), settings)
    bot = RateLimit("telegram:bot", 1000, 1.0)
    assert bot in adapter.limits(GROUP)
    assert list(adapter.notice_limits(GROUP)) == [bot]
    with pytest.raises(ConfigError, match="messages_per_second"):
        load_settings(None, **enabled(base, messages_per_second=0))


# ---------------------------------------------------------------------------------- pure


def test_a_card_is_escaped_html_with_a_keyboard_of_its_tokens() -> None:
    card = Card(
        ticket_id=7,
        version=3,
        title="GD-7 · P0 · <script>&",
        fields=(("状态", "已派单"), ("设备", "A&B <1>")),
        text="冷却<水>泄漏",
        buttons=(
            Button("接单", "tA", "primary"),
            Button("转派", "tR", confirm="确定？"),
            Button("取消工单", "tC", "danger", "确定要取消工单吗？"),
            Button("诊断", "tD"),
        ),
        footer="11-22 10:00",
    )
    rendered = render_card(card)
    assert rendered.text == (
        "<b>GD-7 · P0 · &lt;script&gt;&amp;</b>\n状态：已派单\n设备：A&amp;B &lt;1&gt;\n\n"
        "冷却&lt;水&gt;泄漏\n\n<i>11-22 10:00</i>"
    )
    assert rendered.reply_markup is not None
    rows = [
        [(b.text, b.callback_data, b.style) for b in row]
        for row in rendered.reply_markup.inline_keyboard
    ]
    assert rows == [
        [("接单", "tA", "primary"), ("转派", "?tR", None), ("取消工单", "?tC", "danger")],
        [("诊断", "tD", None)],
    ]


def test_arming_adds_a_confirm_row_and_disarming_restores_the_keyboard() -> None:
    original = render_card(
        Card(
            ticket_id=1,
            version=1,
            title="t",
            buttons=(Button("接单", "tA"), Button("取消工单", "tC", "danger", "确定？")),
        )
    ).reply_markup
    armed = arm(original, "?tC")
    assert armed is not None
    rows = [[(b.text, b.callback_data) for b in row] for row in armed.inline_keyboard]
    assert rows == [[("接单", "tA"), ("取消工单", "?tC")], [("✔ 取消工单？", "tC"), ("✖", "!tC")]]
    assert arm(armed, "?tC") is None  # pressed twice: already armed
    assert disarm(armed, "!tC") == original


def test_a_token_with_no_room_for_the_confirm_mark_is_pressed_in_one_step() -> None:
    token = "T" * 64
    rendered = render_card(
        Card(
            ticket_id=1,
            version=1,
            title="t",
            buttons=(Button("取消工单", token, "danger", "确定？"),),
        )
    )
    assert rendered.reply_markup is not None
    assert rendered.reply_markup.inline_keyboard[0][0].callback_data == token


def test_long_texts_are_clipped_to_what_telegram_accepts() -> None:
    assert len(render_text("很" * 5000).text) <= 4000
    card = render_card(Card(ticket_id=1, version=1, title="t", text="<" * 5000))
    assert card.text.count("&lt;") < 4000 and card.text.endswith("…")


def test_codec_tokens_fit_callback_data_with_the_confirm_mark() -> None:
    from bot.adapters.codec import TokenCodec

    token = TokenCodec(b"k").encode(ActionToken(2**40, TicketAction.CANCEL, 2**30, 2**30))
    assert len((CONFIRM + token).encode()) <= 64
