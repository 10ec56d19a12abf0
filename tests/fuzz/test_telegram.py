"""Telegram: any update is events, nothing, or a clear ``BadRequest`` — never another error.

Pure: ``read_update`` (the types PTB does not check) then ``parse_update`` on mutations of the
real updates and on any JSON object. Over HTTP: 200 (a malformed update is acknowledged and
dropped, so that Telegram stops retrying) or 400 (not an update at all), never a 5xx; nothing
malformed is stored.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from telegram import Bot

from bot.adapters.telegram.parse import BotIdentity, ConfirmStep, parse_update, read_update
from bot.errors import BadRequest
from tests.adapters.telegram_driver import PAYLOADS, TelegramDriver, webhook
from tests.conftest import RunningHub
from tests.fakes_telegram import TOKEN
from tests.fuzz.events import assert_storable, stored
from tests.fuzz.strategies import FUZZ, FUZZ_HTTP, json_objects, load, mutated
from tests.test_bad_input import Start

NOW = datetime(2026, 5, 1, tzinfo=UTC)
ME = BotIdentity(7000001, "helpdesk_bot")
BOT = Bot(TOKEN)  # builds objects only: no request is made
UPDATES = [
    load("telegram", p.name)
    for p in sorted(PAYLOADS.glob("*.json"))
    if not p.name.endswith(".expected.json") and "update_id" in json.loads(p.read_text())
]
updates = st.sampled_from(UPDATES).flatmap(lambda u: mutated(u, times=3)) | json_objects.map(
    lambda d: {"update_id": 1, **d}
)


def _parse(data: dict[str, Any]) -> Any:
    return parse_update(read_update(data, BOT), ME, NOW)


@FUZZ
@given(data=updates)
def test_any_update_is_an_event_nothing_or_a_refusal(data: dict[str, Any]) -> None:
    try:
        parsed = _parse(data)
    except BadRequest as exc:
        assert str(exc)
        return
    if parsed is not None and not isinstance(parsed, ConfirmStep):
        assert_storable([parsed])


@FUZZ
@given(
    text=st.text(max_size=40),
    entities=st.lists(
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["mention", "bot_command", "text_mention", "bold"]),
                "offset": st.integers(-5, 60),
                "length": st.integers(-5, 60),
            }
        ),
        max_size=4,
    ),
)
def test_entities_anywhere_in_any_text_never_break_the_reader(
    text: str, entities: list[dict[str, Any]]
) -> None:
    """Entity offsets count UTF-16 units and may split a surrogate pair or run past the end."""
    update = load("telegram", "text_group.json")
    update["message"]["text"] = "@helpdesk_bot " + text + " 😀"
    update["message"]["entities"] = entities
    try:
        parsed = _parse(update)
    except BadRequest:
        return
    assert parsed is not None
    assert_storable([parsed])


@pytest.fixture
async def telegram_hub(running: Start) -> AsyncIterator[RunningHub]:
    driver = TelegramDriver()
    hub = await running(**await driver.start())
    yield hub
    await driver.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@FUZZ_HTTP
@given(data=updates)
async def test_the_webhook_answers_200_or_400_and_stores_nothing_malformed(
    telegram_hub: RunningHub, data: dict[str, Any]
) -> None:
    try:
        _parse(data)
        malformed = False
    except BadRequest:
        malformed = True
    before = await stored(telegram_hub)
    req = webhook(json.dumps(data).encode())
    async with telegram_hub.http.post(
        telegram_hub.base + req.path, data=req.body, headers=req.headers
    ) as r:
        assert r.status in (200, 400), await r.text()
    if malformed or r.status == 400:
        assert await stored(telegram_hub) == before
