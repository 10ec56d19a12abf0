"""Web chat: any post is an event or a clear refusal (400 naming the field, 401 for a session
that is not ours), never another error; over HTTP, never a 5xx and nothing stored on refusal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.adapters.webchat.parse import Session, SessionSigner, parse_action, parse_message
from bot.errors import BadRequest, SignatureInvalid
from tests.conftest import RunningHub
from tests.fuzz.events import assert_storable, stored
from tests.fuzz.strategies import FUZZ, FUZZ_HTTP, json_objects, json_values, mutated, raw_bodies
from tests.test_bad_input import Start

NOW = datetime(2026, 5, 1, tzinfo=UTC)
SIGNER = SessionSigner(b"fuzz-secret")
CUSTOMER = Session("customer", "c-abc", "张三", "zh")
STAFF = Session("staff", "li", "李工")
ALLOWED = {"li", "team"}
MESSAGE = {"session": "x", "id": "abcdefgh12", "text": "3号机停机"}
ACTION = {"session": "x", "id": "abcdefgh13", "token": "g1tok", "conversation": "team", "note": "n"}
bodies = mutated(MESSAGE, times=3) | mutated(ACTION, times=3) | json_objects


@FUZZ
@given(body=bodies, session=st.sampled_from([CUSTOMER, STAFF]), kind=st.sampled_from(["m", "a"]))
def test_any_post_is_an_event_or_a_refusal_naming_the_field(
    body: dict[str, Any], session: Session, kind: str
) -> None:
    parse = parse_message if kind == "m" else parse_action
    try:
        event = parse(session, body, NOW, ALLOWED)
    except BadRequest as exc:
        assert str(exc).startswith("'")
        return
    assert_storable([event])


@FUZZ
@given(
    token=json_values
    | st.text(max_size=60)
    | st.just(SIGNER.sign(CUSTOMER)).map(lambda t: t[:-2] + "AA")
)
def test_a_session_is_ours_or_refused(token: Any) -> None:
    try:
        session = SIGNER.verify(token)
    except SignatureInvalid:
        return
    assert session == CUSTOMER  # only a token we signed verifies


def test_our_own_session_verifies() -> None:
    assert SIGNER.verify(SIGNER.sign(CUSTOMER)) == CUSTOMER


@pytest.fixture
async def web_hub(running: Start) -> RunningHub:
    return await running(limits={"exempt": ["127.0.0.1"]})


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@FUZZ_HTTP
@given(
    body=bodies | raw_bodies,
    path=st.sampled_from(["/webchat/api/messages", "/webchat/api/actions", "/chat/api/session"]),
    with_session=st.booleans(),
)
async def test_any_post_is_answered_without_a_5xx_and_a_refusal_stores_nothing(
    web_hub: RunningHub, body: Any, path: str, with_session: bool
) -> None:
    if isinstance(body, dict) and with_session:
        session = (await web_hub.post("/chat/api/session", {"name": "张三"}))[1]["session"]
        body = {**body, "session": session}
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    before = await stored(web_hub)
    async with web_hub.http.post(
        web_hub.base + path, data=raw, headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status < 500, await r.text()
        if r.status >= 400:
            assert (await r.json())["error"]
            assert await stored(web_hub) == before
