"""Every route, every adapter on: malformed input is never a 5xx, and nothing is stored.

The routes come from the application's router (``app.router.routes()``), so a route added
later is walked too. Each gets bad query strings and, if it takes a body, malformed bodies:
empty, not JSON, nested deeper than the limit, not UTF-8, lone surrogates, the wrong JSON type,
fields of the wrong types, over the size limit, form-encoded, plain text, broken multipart, XML
with entities. Where a route is signed (the webhooks), each body goes once unsigned and once
signed as the platform would sign it (WeCom: sealed and signed), so that it reaches the parser
behind the signature check; the API and staff routes get their bearer token, the web chat a
customer session in the body.

A 4xx always says why (a JSON ``error``); a 200 is a platform's acknowledgement of what it
would otherwise retry (Telegram, WeCom, Slack's handshakes). Nothing is stored, ever.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest

from tests.adapters.dingtalk_driver import DingtalkDriver, card_headers, robot_headers
from tests.adapters.slack_driver import SlackDriver
from tests.adapters.slack_driver import sign as slack_sign
from tests.adapters.telegram_driver import SECRET as TELEGRAM_SECRET
from tests.adapters.telegram_driver import TelegramDriver
from tests.adapters.wecom_driver import WecomDriver
from tests.conftest import RunningHub
from tests.fuzz.test_wecom import aibot_request, app_request
from tests.test_bad_input import _stored

Start = Callable[..., Awaitable[RunningHub]]
JSON = "application/json"
MAX_BODY = 1_048_576  # [server] max_body_bytes, the default


@dataclass(frozen=True)
class Body:
    name: str
    raw: bytes
    content_type: str | None = JSON


WRONG_TYPES = {
    "update_id": "1",
    "type": 7,
    "event": [],
    "message": "x",
    "session": 5,
    "id": [],
    "text": {},
    "token": 1,
    "name": [],
    "person": {},
    "password": 5,
    "link": [],
    "msgId": [],
    "conversationType": {},
    "encrypt": 5,
    "payload": 3,
    "content": 9,
}
BODIES = [
    Body("empty", b"", None),
    Body("not JSON", b"{"),
    Body("deep array", b"[" * 50_000 + b"]" * 50_000),
    Body("deep object", b'{"a":' * 100 + b"1" + b"}" * 100),
    Body("not UTF-8", b'{"text": "\xff\xfe", "name": "\xc3"}'),
    Body("lone surrogates", b'{"text": "\\ud800", "id": "\\udfff", "name": "\\udc00"}'),
    Body("NUL", b'{"text": "\\u0000", "name": "\\u0000"}'),
    Body("null", b"null"),
    Body("array", b"[1, 2]"),
    Body("string", b'"text"'),
    Body("huge number", b"1" * 5000),
    Body("wrong types", json.dumps(WRONG_TYPES).encode()),
    Body("over the size limit", b'{"text": "' + b"x" * (MAX_BODY + 10) + b'"}'),
    Body(
        "form",
        b"payload=" + quote(json.dumps({"type": 5, "actions": "x"})).encode() + b"&x=%FF",
        "application/x-www-form-urlencoded",
    ),
    Body(
        "form, deep", b"payload=" + quote("[" * 100).encode(), "application/x-www-form-urlencoded"
    ),
    Body("plain text", "停机".encode(), "text/plain"),
    Body(
        "broken multipart",
        b"--x\r\nContent-Disposition: form-data\r\n\r\n1",
        "multipart/form-data; boundary=y",
    ),
    Body("XML with an entity", b'<!DOCTYPE x [<!ENTITY a "b">]><xml>&a;</xml>', "text/xml"),
    Body("XML, broken", b"<xml><Encrypt>!!</Encrypt>", "text/xml"),
]
QUERIES = [
    "limit=-1&offset=abc",
    "after=-1",
    "after=%C2%B2",  # "²": a digit to str.isdigit, not to int()
    "limit=99999999999999999999&offset=-5&limit=3",
    "after=99999999999999999999999",
    "after=%FF%FE&session=%00",
    "state=bogus&priority=P9&assignee=",
    "msg_signature=&timestamp=x&nonce=&echostr=%%%",
    "lang=%00&ref=%FF",
    "a=1&" * 500,
    "session=" + "x" * 4000,
]
REFS = ["1", "GD-1", "abc", "9" * 40, "%FF", "GD--1"]


@dataclass
class Walk:
    hub: RunningHub
    session: str  # a web chat customer's
    staff: str  # a staff member's bearer token
    seen: list[tuple[str, str, str, int]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)  # every 5xx, or a 4xx that says nothing

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: Body | None = None,
        query: str = "",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        params: dict[str, str] | None = None,
        what: str = "",
    ) -> None:
        head = dict(headers or {})
        data = raw if raw is not None else (body.raw if body else None)
        if body is not None and body.content_type is not None:
            head.setdefault("Content-Type", body.content_type)
        url = self.hub.base + path + (f"?{query}" if query else "")
        async with self.hub.http.request(method, url, data=data, headers=head, params=params) as r:
            streaming = r.content_type == "text/event-stream"  # (open: its end never comes)
            status, text = r.status, "" if streaming else await r.text()
        label = what or (body.name if body else f"?{query[:40]}")
        self.seen.append((method, path, label, status))
        if status >= 500 or (status >= 400 and method != "HEAD" and not _says_why(text)):
            self.faults.append(f"{method} {path} [{label}] → {status}: {text[:200]}")


def _says_why(text: str) -> bool:
    try:
        return bool(json.loads(text)["error"])
    except (ValueError, KeyError, TypeError):
        return False


def _paths(canonical: str) -> list[str]:
    if "{" not in canonical:
        return [canonical]
    head = canonical.partition("{")[0]
    return [head + ref for ref in REFS]


async def _signed(walk: Walk, path: str, body: Body) -> None:
    """``body`` as the route's rightful sender would send it (where it is signed)."""
    raw = body.raw
    if path == "/webhooks/slack":
        await walk.send(
            "POST", path, body=body, headers=slack_sign(raw), what=f"{body.name}, signed"
        )
    elif path == "/webhooks/telegram":
        headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        await walk.send("POST", path, body=body, headers=headers, what=f"{body.name}, secret")
    elif path in ("/webhooks/dingtalk", "/webhooks/dingtalk/card"):
        headers = robot_headers() if path == "/webhooks/dingtalk" else card_headers()
        await walk.send("POST", path, body=body, headers=headers, what=f"{body.name}, signed")
    elif path in ("/webhooks/wecom", "/webhooks/wecom/aibot"):
        if len(raw) > MAX_BODY // 2:
            return  # (sealed, it is over the limit anyway: base64 and the envelope)
        req = app_request(raw) if path == "/webhooks/wecom" else aibot_request(raw)
        await walk.send("POST", path, raw=req.body, params=req.query, what=f"{body.name}, sealed")
    elif path.startswith(("/webchat/", "/chat/")) and raw.startswith(b"{") and raw.endswith(b"}"):
        try:
            patched = json.loads(raw)
        except ValueError:
            return
        patched["session"] = walk.session
        signed = Body(body.name, json.dumps(patched).encode(), body.content_type)
        await walk.send("POST", path, body=signed, what=f"{body.name}, in a session")
    elif path.startswith("/console/"):
        headers = {"Authorization": f"Bearer {walk.staff}"}
        await walk.send("POST", path, body=body, headers=headers, what=f"{body.name}, staff")


@pytest.fixture
async def walk(running: Start) -> AsyncIterator[Walk]:
    drivers = [SlackDriver(), TelegramDriver(), WecomDriver(), DingtalkDriver()]
    overrides: dict[str, Any] = {}
    for driver in drivers:
        overrides.update(await driver.start())
    hub = await running(**overrides)
    status, answer = await hub.post("/chat/api/session", {"name": "张三"})
    assert status == 200
    yield Walk(hub, answer["session"], await hub.staff_session("li"))
    for driver in drivers:
        await driver.stop()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_every_route_answers_malformed_input_without_a_5xx_and_stores_nothing(
    walk: Walk,
) -> None:
    app = walk.hub.runner.app if walk.hub.runner else None
    assert app is not None
    routes = sorted(
        {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}
    )
    assert {"/webhooks/slack", "/webhooks/telegram", "/webhooks/wecom", "/webhooks/dingtalk"} <= {
        path for _, path in routes
    }  # every adapter is on
    api = {"Authorization": "Bearer test-token"}
    for method, canonical in routes:
        for path in _paths(canonical):
            for query in QUERIES:
                headers = api if path.startswith("/api/") else None
                await walk.send(method, path, query=query, headers=headers)
                if method == "GET" and path.startswith("/webchat/"):  # past the session check
                    signed = f"{query}&session={walk.session}"
                    await walk.send(method, path, query=signed, what=f"?{query[:30]}, session")
                if method == "GET" and path.startswith("/console/"):  # (before sign-out)
                    staff = {"Authorization": f"Bearer {walk.staff}"}
                    await walk.send(method, path, query=query, headers=staff, what="staff")
            if method not in ("POST", "PUT", "PATCH"):
                continue
            for body in BODIES:
                await walk.send(method, path, body=body)
                await _signed(walk, path, body)
    posts = {path for method, path, _, _ in walk.seen if method == "POST"}
    assert len(posts) >= 10 and len(walk.seen) > 500
    faults = list(walk.faults)
    assert faults == [], "\n".join(faults)
    assert await _stored(walk.hub) == {}, "a malformed request was stored"
