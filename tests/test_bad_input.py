"""Bad input gets a clear 4xx and stores nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.errors import BadRequest
from bot.events import Address, Message, Sender
from bot.inbox import Inbox, TextCap
from storage import inbound
from storage.db import Database, migrate_async
from storage.models import InboundEvent
from tests.adapters.slack_driver import SlackDriver
from tests.adapters.slack_driver import event_request as slack_event_request
from tests.adapters.slack_driver import load as slack_load
from tests.adapters.telegram_driver import TelegramDriver
from tests.adapters.telegram_driver import webhook as telegram_webhook
from tests.conftest import RunningHub, eventually

Start = Callable[..., Awaitable[RunningHub]]


async def _stored(hub: RunningHub) -> dict[str, int]:
    async with hub.hub.db.read() as s:
        return await inbound.counts(s)


async def _session(hub: RunningHub) -> str:
    return str((await hub.post("/chat/api/session", {"name": "张三"}))[1]["session"])


async def test_oversized_malformed_and_unknown_requests(running: Start) -> None:
    hub = await running()
    session = await _session(hub)
    url = hub.base + "/webchat/api/messages"
    big = json.dumps({"session": session, "id": "abcdefgh1", "text": "x" * 1_100_000})
    async with hub.http.post(url, data=big, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 413
    async with hub.http.post(
        url, data="{not json", headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400 and "JSON" in (await r.json())["error"]
    async with hub.http.post(url, data="text=hi") as r:
        assert r.status == 400 and "application/json" in (await r.json())["error"]
    status, body = await hub.post(
        "/webchat/api/messages", {"session": session, "id": "short", "text": "停机"}
    )
    assert status == 400 and "'id'" in body["error"]
    status, body = await hub.post(
        "/webchat/api/messages", {"session": session, "id": "abcdefgh2", "text": ""}
    )
    assert status == 400 and "'text'" in body["error"]
    async with hub.http.get(hub.base + "/no/such/route") as r:
        assert r.status == 404 and "error" in await r.json()
    assert await _stored(hub) == {}


async def test_forged_sessions_are_refused_and_nothing_is_stored(running: Start) -> None:
    hub = await running()
    session = await _session(hub)
    body, mac = session.split(".")
    for forged in (body + "." + mac[::-1], "", "nonsense", None):
        status, answer = await hub.post(
            "/webchat/api/messages", {"session": forged, "id": "abcdefgh1", "text": "停机"}
        )
        assert status == 401, answer
    async with hub.http.get(
        hub.base + "/webchat/api/stream", params={"session": body + ".AAAA"}
    ) as r:
        assert r.status == 401
    assert await _stored(hub) == {}


async def test_api_needs_its_token(running: Start) -> None:
    hub = await running()
    async with hub.http.get(hub.base + "/api/tickets") as r:
        assert r.status == 401
    async with hub.http.get(
        hub.base + "/api/tickets", headers={"Authorization": "Bearer wrong"}
    ) as r:
        assert r.status == 401
    closed = await running(api={})
    async with closed.http.get(
        closed.base + "/api/tickets", headers={"Authorization": "Bearer test-token"}
    ) as r:
        assert r.status == 503 and "token" in (await r.json())["error"]


def test_invalid_config_stops_with_one_message_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('locale = "fr"\n[server]\nport = 0\nprot = 1\n[database]\nurl = "mysql://x"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--config", str(bad), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    for key in ("locale", "server.port", "server.prot: unknown key", "database.url"):
        assert key in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_metrics_count_what_came_in_and_what_was_refused(running: Start) -> None:
    hub = await running()
    session = await _session(hub)
    body = {"session": session, "id": "abcdefgh9", "text": "空压机漏油"}
    await hub.post("/webchat/api/messages", body)
    await hub.post("/webchat/api/messages", body)
    await hub.post("/webchat/api/messages", {**body, "session": "forged.x"})
    async with hub.http.get(hub.base + "/metrics") as r:
        text = await r.text()
    assert 'gongdan_inbound_events_total{outcome="stored",platform="web"} 1.0' in text
    assert 'gongdan_inbound_events_total{outcome="duplicate",platform="web"} 1.0' in text
    assert 'gongdan_inbound_events_total{outcome="unauthorized",platform="web"} 1.0' in text
    assert "gongdan_outbox_depth" in text


# ----------------------------------------------------------- texts are capped, the same everywhere

#: What a tester sent: 900,000 characters in one message (under the 1 MB body limit).
HUGE = 900_000
_HEAD = "3号注塑机停机了，报警E102，在二车间。"


def _report(length: int) -> str:
    filler = "alarm E102 again; "
    return (_HEAD + filler * (length // len(filler) + 1))[:length]


async def _inbound_payloads(hub: RunningHub) -> list[dict[str, Any]]:
    async with hub.hub.db.read() as s:
        rows = (await s.scalars(select(InboundEvent).order_by(InboundEvent.id))).all()
        return [{**r.payload, "_raw": r.raw} for r in rows]


def _assert_capped(payload: dict[str, Any], text: str, mark: str) -> None:
    """Cut to 4,000 characters ending with the mark; the whole text (to 100,000) kept."""
    assert len(payload["text"]) == 4000 and payload["text"].endswith(mark)
    assert text.startswith(payload["text"].removesuffix(mark))
    full = payload["full_text"]
    assert len(full) == 100_000 and full.endswith(mark) and text.startswith(full.removesuffix(mark))
    assert len(payload["_raw"] or "") <= 4000 + 100_000 + 8192


async def _ticket_of(hub: RunningHub) -> dict[str, Any]:
    async def one() -> dict[str, Any] | None:
        tickets = (await hub.api("/api/tickets"))["tickets"]
        return tickets[0] if tickets else None

    ticket: dict[str, Any] = await eventually(one, what="a ticket from the long report")
    return ticket


async def test_a_900000_character_telegram_message_is_answered_fast_and_stored_capped(
    running: Start,
) -> None:
    driver = TelegramDriver()
    hub = await running(**await driver.start())
    try:
        text = _report(HUGE)
        english = {"id": 5550001, "is_bot": False, "first_name": "Sam", "language_code": "en-GB"}
        chat = {"id": 5550001, "first_name": "Sam", "type": "private"}
        update = {
            "update_id": 7001,
            "message": {"message_id": 1, "from": english, "chat": chat, "date": 1, "text": text},
        }
        req = telegram_webhook(update)
        started = time.monotonic()
        async with hub.http.post(hub.base + req.path, data=req.body, headers=req.headers) as r:
            assert r.status == 200
        assert time.monotonic() - started < 3.0  # (answered within Telegram's patience)
        (payload,) = await _inbound_payloads(hub)
        _assert_capped(payload, text, "…(truncated)")  # in the sender's language
        ticket = await _ticket_of(hub)
        assert ticket["intake"]["full_text"] == payload["full_text"]
        assert ticket["description"] == payload["text"]
    finally:
        await driver.stop()


async def test_a_900000_character_slack_message_is_answered_fast_and_stored_capped(
    running: Start,
) -> None:
    driver = SlackDriver()
    hub = await running(**await driver.start())
    try:
        text = _report(HUGE)
        body = slack_load("message_im.json")
        body["event"]["text"] = text
        req = slack_event_request(body)
        started = time.monotonic()
        async with hub.http.post(hub.base + req.path, data=req.body, headers=req.headers) as r:
            assert r.status == 200
        assert time.monotonic() - started < 3.0  # (Slack wants its answer within 3 s)
        (payload,) = await _inbound_payloads(hub)
        _assert_capped(payload, text, "…(已截断)")  # the default locale: Slack gives no hint
        ticket = await _ticket_of(hub)
        assert ticket["intake"]["full_text"] == payload["full_text"]
    finally:
        await driver.stop()


async def test_a_long_web_chat_message_is_taken_and_capped_like_any_other(
    running: Start,
) -> None:
    hub = await running()
    status, answer = await hub.post("/chat/api/session", {"name": "Sam", "locale": "en"})
    assert status == 200
    text = _report(9000)
    body = {"session": answer["session"], "id": "long-report-1", "text": text}
    assert (await hub.post("/webchat/api/messages", body))[0] == 202
    (payload,) = await _inbound_payloads(hub)
    assert len(payload["text"]) == 4000 and payload["text"].endswith("…(truncated)")
    assert payload["full_text"] == text  # under the attachment limit: whole


def test_the_cap_speaks_the_senders_language_and_cuts_the_attachment_too() -> None:
    cap = TextCap(text_chars=100, attachment_chars=150, locale="zh", people={"slack:U1": "en"})
    now = datetime.now(UTC)

    def message(user: str, text: str, hint: str | None = None) -> Message:
        chat = Address("slack", "C1")
        return Message("e1", chat, Sender("slack", user, "x" * 500, hint), "group", now, text)

    staff = cap.apply(message("U1", "a" * 1000, hint="zh-CN"))  # the config's locale wins
    assert isinstance(staff, Message) and staff.text == "a" * 88 + "…(truncated)"
    assert staff.full_text == "a" * 138 + "…(truncated)" and len(staff.sender.name) == 200
    customer = cap.apply(message("U2", "b" * 1000))
    assert isinstance(customer, Message) and customer.text.endswith("…(已截断)")
    assert len(customer.text) == 100
    short = message("U2", "短")
    assert cap.apply(short).text == "短" and cap.apply(short).full_text is None  # type: ignore[union-attr]
    none_kept = TextCap(text_chars=100, attachment_chars=0).apply(message("U2", "c" * 101))
    assert isinstance(none_kept, Message) and none_kept.full_text is None


async def test_what_no_table_can_hold_is_refused_and_what_no_database_takes_is_dropped(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cap.db'}"
    await migrate_async(url)
    db = Database(url)
    inbox = Inbox(db)
    now = datetime.now(UTC)
    chat = Address("slack", "C1")
    try:
        with pytest.raises(BadRequest, match="user id"):
            await inbox.accept([Message("e1", chat, Sender("slack", "U" * 201), "group", now, "x")])
        with pytest.raises(BadRequest, match="event id is empty"):
            await inbox.accept([Message("", chat, Sender("slack", "U1"), "group", now, "x")])
        odd = Message("e2", chat, Sender("slack", "U1", "N\x00"), "group", now, "停\x00机\ud800")
        (accepted,) = await inbox.accept([odd], raw='{"text": "\ud800\x00"}')
        assert accepted.new
        async with db.read() as s:
            (row,) = (await s.scalars(select(InboundEvent))).all()
        assert row.payload["text"] == "停机?" and row.payload["sender"]["name"] == "N"
        assert row.raw == '{"text": "?"}'
        nul_only = Message("e3", chat, Sender("slack", "U1"), "group", now, "漏\x00油")
        (accepted,) = await inbox.accept([nul_only])
        async with db.read() as s:
            row = await s.scalar(select(InboundEvent).where(InboundEvent.event_id == "e3"))
        assert accepted.new and row is not None and row.payload["text"] == "漏油"
    finally:
        await inbox.close()
        await db.dispose()


async def test_api_query_strings_are_checked_and_refused_with_a_clear_message(
    running: Start,
) -> None:
    hub = await running()
    token = {"Authorization": "Bearer test-token"}

    async def get(path: str) -> tuple[int, Any]:
        async with hub.http.get(hub.base + path, headers=token) as r:
            return r.status, await r.json()

    refused = {
        "/api/tickets?limit=-1": "'limit' must be a whole number from 1 to 1000",
        "/api/tickets?limit=0": "'limit' must be a whole number from 1 to 1000",
        "/api/tickets?limit=1001": "'limit' must be a whole number from 1 to 1000",
        "/api/tickets?limit=abc": "'limit' must be a whole number",
        "/api/tickets?limit=1e3": "'limit' must be a whole number",
        "/api/tickets?offset=99999999999999999999": "'offset' must be a whole number from 0",
        "/api/tickets?offset=-5": "'offset' must be a whole number from 0 to 1000000",
        "/api/tickets?limit=5&limit=6": "'limit' is given 2 times",
        "/api/tickets?state=bogus": "unknown state 'bogus'",
        "/api/tickets?priority=P9": "'priority' must be one of P0, P1, P2, P3",
        "/api/tickets?assignee=": "'assignee' must be a person's id",
        "/api/tickets?states=new": "unknown query parameter 'states'",
        "/api/tickets/abc": "not a ticket id or number (GD-<n>)",
        "/api/tickets/" + "9" * 40: "not a ticket id or number",
        "/api/tickets/GD-1?events=1": "unknown query parameter 'events'",
    }
    for path, message in refused.items():
        status, body = await get(path)
        assert status == 400 and message in body["error"], (path, body)
    assert (await get("/api/tickets?limit=1000&offset=1000000&state=new,assigned"))[0] == 200
    assert (await get("/api/tickets/GD-99"))[0] == 404
    assert (await get("/api/tickets/99"))[0] == 404
