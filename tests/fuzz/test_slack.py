"""Slack: any request body (Events API JSON, interactivity form) is events or a clear 400.

Pure: ``read_body`` on any bytes, then the builders on mutations of the real payloads. Over
HTTP, through Bolt: signed mutations answered 200 or 400 (with ``X-Slack-No-Retry``), never a
5xx, and a 400 stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.adapters.slack.parse import (
    BotIdentity,
    parse_block_actions,
    parse_event_callback,
    read_body,
)
from bot.errors import BadRequest
from tests.adapters.slack_driver import SlackDriver, action_request, event_request
from tests.conftest import RunningHub
from tests.fuzz.events import assert_storable, stored
from tests.fuzz.strategies import FUZZ, FUZZ_HTTP, json_values, load, mutated, raw_bodies
from tests.test_bad_input import Start

NOW = datetime(2026, 5, 1, tzinfo=UTC)
BOT = BotIdentity("U0BOT", "B0BOT", "T111")
EVENTS = [
    load("slack", name)
    for name in (
        "message_channel_text.json",
        "message_im.json",
        "message_audio_clip.json",
        "message_file_share.json",
        "app_mention_channel.json",
        "reaction_added.json",
        "url_verification.json",
    )
]
ACTIONS = load("slack", "block_actions.json")
samples = st.sampled_from(EVENTS).flatmap(mutated) | mutated(ACTIONS)
CONTENT_TYPES = st.sampled_from(["application/json", "application/x-www-form-urlencoded", ""])


def _parse(body: dict[str, Any]) -> list[Any]:
    if body.get("type") == "block_actions":
        return parse_block_actions(body, NOW)
    return parse_event_callback(body, BOT, NOW)


@FUZZ
@given(raw=raw_bodies, content_type=CONTENT_TYPES)
def test_any_body_is_read_or_refused(raw: bytes, content_type: str) -> None:
    try:
        body = read_body(raw, content_type)
        events = _parse(body)
    except BadRequest:
        return
    assert isinstance(body, dict)
    assert_storable(events)


@FUZZ
@given(payload=st.text(max_size=50) | json_values.map(json.dumps))
def test_any_interactivity_form_is_read_or_refused(payload: str) -> None:
    raw = f"payload={quote(payload)}".encode()
    try:
        events = _parse(read_body(raw, "application/x-www-form-urlencoded"))
    except BadRequest:
        return
    assert_storable(events)


@FUZZ
@given(body=samples, as_form=st.booleans())
def test_mutated_payloads_are_events_or_a_refusal_naming_the_field(
    body: Any, as_form: bool
) -> None:
    raw = f"payload={quote(json.dumps(body))}".encode() if as_form else json.dumps(body).encode()
    content_type = "application/x-www-form-urlencoded" if as_form else "application/json"
    try:
        events = _parse(read_body(raw, content_type))
    except BadRequest as exc:
        assert str(exc).startswith(("$", "Slack request", "Slack payload", "JSON nested"))
        return
    assert_storable(events)


# ---------------------------------------------------------------------------- over HTTP


@pytest.fixture
async def slack_hub(running: Start) -> AsyncIterator[RunningHub]:
    driver = SlackDriver()
    hub = await running(**await driver.start())
    yield hub
    await driver.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@FUZZ_HTTP
@given(body=samples | json_values)
async def test_signed_mutations_through_bolt_are_answered_200_or_400(
    slack_hub: RunningHub, body: Any
) -> None:
    is_form = isinstance(body, dict) and body.get("type") == "block_actions"
    req = action_request(body) if is_form else event_request(json.dumps(body).encode())
    before = await stored(slack_hub)
    async with slack_hub.http.post(
        slack_hub.base + req.path, data=req.body, headers=req.headers
    ) as r:
        status, text = r.status, await r.text()
        assert status in (200, 400), text
        if status == 400:
            assert r.headers["X-Slack-No-Retry"] == "1" and json.loads(text)["error"]
            assert await stored(slack_hub) == before
