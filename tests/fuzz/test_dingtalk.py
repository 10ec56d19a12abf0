"""DingTalk: any robot message, card click or Stream frame is events, nothing, or ``BadRequest``.

Pure: mutations of the real callbacks, any JSON, any frame text. Over HTTP (signed): 200 or
400, never a 5xx, and a 400 stores nothing (over Stream the same refusal is a 400 ack).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.adapters.dingtalk.parse import (
    CardPress,
    json_object,
    parse_card_callback,
    parse_robot_message,
    track_id,
)
from bot.adapters.dingtalk.stream import Frame
from bot.errors import BadRequest
from tests.adapters.dingtalk_driver import DingtalkDriver, card_request, robot_request
from tests.conftest import RunningHub
from tests.fuzz.events import assert_storable, stored
from tests.fuzz.strategies import (
    FUZZ,
    FUZZ_HTTP,
    json_objects,
    json_values,
    load,
    mutated,
    raw_bodies,
)
from tests.test_bad_input import Start

NOW = datetime(2026, 5, 1, tzinfo=UTC)
MESSAGES = [
    load("dingtalk", n) for n in ("text_group.json", "text_direct.json", "chatbot_audio.json")
]
CLICK = {**load("dingtalk", "card_callback.json"), "outTrackId": track_id("cidTEAM", "k")}
messages = st.sampled_from(MESSAGES).flatmap(lambda m: mutated(m, times=3)) | json_objects
clicks = (
    mutated(CLICK, times=3)
    | json_objects
    | st.builds(lambda v: {**CLICK, "content": json.dumps({"cardPrivateData": v})}, json_values)
)


@FUZZ
@given(body=messages)
def test_robot_messages_are_an_event_nothing_or_a_refusal(body: dict[str, Any]) -> None:
    try:
        incoming = parse_robot_message(body, NOW)
    except BadRequest as exc:
        assert str(exc).startswith("$")
        return
    if incoming.event is not None:
        assert_storable([incoming.event])


@FUZZ
@given(body=clicks)
def test_card_clicks_are_an_action_a_confirm_step_nothing_or_a_refusal(
    body: dict[str, Any],
) -> None:
    try:
        parsed = parse_card_callback(body, "card:1", NOW)
    except BadRequest as exc:
        assert str(exc).startswith("$")
        return
    if isinstance(parsed, CardPress):
        assert_storable([parsed.action])


@FUZZ
@given(raw=raw_bodies)
def test_any_body_is_an_object_or_a_refusal(raw: bytes) -> None:
    try:
        body = json_object(raw)
    except BadRequest as exc:
        assert str(exc).startswith(("JSON nested", "body "))
        return
    assert isinstance(body, dict)


@FUZZ
@given(
    raw=st.text(max_size=80)
    | json_values.map(json.dumps)
    | mutated(load("dingtalk", "stream_frame_callback.json")).map(json.dumps)
)
def test_any_stream_frame_is_a_frame_or_a_refusal(raw: str) -> None:
    try:
        frame = Frame.parse(raw)
    except BadRequest:
        return
    assert all(isinstance(v, str) for v in (frame.type, frame.topic, frame.message_id, frame.data))


@pytest.fixture
async def dingtalk_hub(running: Start) -> AsyncIterator[RunningHub]:
    driver = DingtalkDriver()
    hub = await running(**await driver.start())
    yield hub
    await driver.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@FUZZ_HTTP
@given(
    case=messages.map(lambda b: ("robot", b))
    | clicks.map(lambda b: ("card", b))
    | raw_bodies.map(lambda b: ("robot", b))
)
async def test_signed_callbacks_are_answered_200_or_400(
    dingtalk_hub: RunningHub, case: tuple[str, Any]
) -> None:
    kind, body = case
    req = robot_request(body) if kind == "robot" else card_request(body)
    before = await stored(dingtalk_hub)
    async with dingtalk_hub.http.post(
        dingtalk_hub.base + req.path, data=req.body, headers=req.headers
    ) as r:
        assert r.status in (200, 400), await r.text()
        if r.status == 400:
            assert await stored(dingtalk_hub) == before
