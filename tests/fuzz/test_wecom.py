"""WeCom: any decrypted XML or JSON is events, nothing, or the parser's own refusal.

XML: any text, the entity tricks (billion laughs, external entities, parameter entities) —
refused before parsing —, every truncation of the real callbacks, and huge documents.
JSON (the AI bot): mutations of the real callbacks. Over HTTP: sealed and signed as WeCom
would, any such body is answered 200, 400 or 403 — never a 5xx — and nothing malformed is
stored.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import struct
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.wecom.crypto import WecomCrypto, _pad
from bot.adapters.wecom.parse import XmlMalformed, XmlRefused, parse_aibot, parse_app, read_xml
from bot.errors import BadRequest
from tests.adapters.driver import Request
from tests.adapters.wecom_driver import (
    AIBOT,
    AIBOT_PATH,
    APP,
    APP_PATH,
    PAYLOADS,
    WecomDriver,
    app_envelope,
    signed_query,
    text_message,
)
from tests.conftest import RunningHub
from tests.fuzz.events import assert_storable, stored
from tests.fuzz.strategies import FUZZ, FUZZ_HTTP, json_objects, load, mutated
from tests.test_bad_input import Start

NOW = datetime(2026, 5, 1, tzinfo=UTC)
SAMPLES = [
    (PAYLOADS / name).read_text(encoding="utf-8")
    for name in ("text_plain.xml", "voice.xml", "template_card_event.xml")
]
ENTITY_TRICKS = [
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
    "<xml><Content>&lol2;</Content></xml>",
    '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><Content>&xxe;</Content></xml>',
    '<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><xml/>',
    '<!doctype xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml/>',
    "<xml><!ENTITY a 'b'></xml>",
    '<?xml version="1.0"?>\n<!--c-->\n<! DOCTYPE x><xml/>',
]
AIBOT_SAMPLES = [load("wecom", "aibot_text.json"), load("wecom", "aibot_voice.json")]
app_fields = st.dictionaries(
    st.sampled_from(
        ["MsgType", "FromUserName", "Content", "MsgId", "MediaId", "Format", "Event", "EventKey"]
    ),
    st.sampled_from(["text", "voice", "event", "template_card_event", ""]) | st.text(max_size=8),
)
aibot_bodies = st.sampled_from(AIBOT_SAMPLES).flatmap(lambda b: mutated(b, times=3)) | json_objects


def _fields(text: str) -> dict[str, str] | None:
    try:
        return read_xml(text)
    except (XmlRefused, XmlMalformed):
        return None


@FUZZ
@given(text=st.text(max_size=200) | st.sampled_from(SAMPLES).map(lambda s: s.replace("CDATA", "")))
def test_any_text_is_fields_or_a_refusal(text: str) -> None:
    fields = _fields(text)
    assert fields is None or all(isinstance(v, str) for v in fields.values())


@pytest.mark.parametrize("xml", ENTITY_TRICKS)
def test_entity_tricks_are_refused_before_parsing(xml: str) -> None:
    with pytest.raises(XmlRefused, match="DOCTYPE or ENTITY"):
        read_xml(xml)


@settings(FUZZ, max_examples=60)
@given(sample=st.sampled_from(SAMPLES), data=st.data())
def test_every_truncation_is_read_or_refused(sample: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(sample)))
    fields = _fields(sample[:cut])
    if fields is not None:
        with contextlib.suppress(BadRequest):
            assert_storable(parse_app(fields, NOW))


def test_huge_documents_are_read_quickly() -> None:
    wide = "<xml>" + "<Content>停机</Content>" * 40_000 + "</xml>"  # about 1 MB
    deep = "<xml>" + "<a>" * 50_000 + "</a>" * 50_000 + "</xml>"
    for xml in (wide, deep):
        started = time.monotonic()
        fields = read_xml(xml)
        assert time.monotonic() - started < 2.0 and isinstance(fields, dict)


@FUZZ
@given(fields=app_fields)
def test_app_fields_are_an_event_nothing_or_a_refusal(fields: dict[str, str]) -> None:
    try:
        events = parse_app(fields, NOW)
    except BadRequest as exc:
        assert "wecom:" in str(exc)
        return
    assert_storable(events)


@FUZZ
@given(body=aibot_bodies)
def test_aibot_callbacks_are_an_event_nothing_or_a_refusal(body: dict[str, Any]) -> None:
    try:
        events = parse_aibot(body, NOW)
    except BadRequest as exc:
        assert str(exc).startswith("$")
        return
    assert_storable(events)


# ---------------------------------------------------------------------------- over HTTP


def seal(crypto: WecomCrypto, plain: bytes) -> str:
    """``plain`` sealed as WeCom seals a callback (any bytes, even ones that are not UTF-8)."""
    body = os.urandom(16) + struct.pack(">I", len(plain)) + plain + crypto.receive_id.encode()
    encryptor = crypto._cipher().encryptor()
    return base64.b64encode(encryptor.update(_pad(body)) + encryptor.finalize()).decode()


def app_request(plain: bytes) -> Request:
    encrypt = seal(APP, plain)
    return Request(APP_PATH, app_envelope(encrypt), query=signed_query(APP, encrypt))


def aibot_request(plain: bytes) -> Request:
    encrypt = seal(AIBOT, plain)
    return Request(
        AIBOT_PATH, json.dumps({"encrypt": encrypt}).encode(), query=signed_query(AIBOT, encrypt)
    )


@pytest.fixture
async def wecom_hub(running: Start) -> AsyncIterator[RunningHub]:
    driver = WecomDriver()
    hub = await running(**await driver.start())
    yield hub
    await driver.stop()


def _xml_of(fields: dict[str, str]) -> bytes:
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items() if "]]>" not in v)
    return f"<xml>{inner}</xml>".encode()


plaintexts = st.one_of(
    st.binary(max_size=100).map(lambda b: ("app", b)),
    st.binary(max_size=100).map(lambda b: ("aibot", b)),
    app_fields.map(lambda f: ("app", _xml_of(f))),
    aibot_bodies.map(lambda b: ("aibot", json.dumps(b).encode())),
    st.sampled_from(ENTITY_TRICKS).map(lambda x: ("app", x.encode())),
    st.just(("app", text_message("ZhangSan", "停机" * 3000, 99).encode()[:-9])),
)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@FUZZ_HTTP
@given(case=plaintexts)
async def test_sealed_bodies_are_answered_200_400_or_403_never_5xx(
    wecom_hub: RunningHub, case: tuple[str, bytes]
) -> None:
    surface, plain = case
    req = app_request(plain) if surface == "app" else aibot_request(plain)
    before = await stored(wecom_hub)
    async with wecom_hub.http.post(wecom_hub.base + req.path, data=req.body, params=req.query) as r:
        assert r.status in (200, 400, 403), await r.text()
        if r.status != 200:
            assert await stored(wecom_hub) == before
