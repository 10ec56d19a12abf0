"""Staff sign-in and the web chat's limits, through the real app on a loopback port.

Who may act as whom: nobody becomes a staff member without that person's own credential (a
one-time link sent to their chat, or their own password); sign-ins end; a browser's writes
prove they come from our page; guessing is throttled; anonymous visitors are rate-limited.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from bot.adapters.webchat.parse import Session
from bot.cli import main as cli
from storage import inbound
from storage.models import SignInLink, StaffSession, utcnow
from tests.conftest import Feed, RunningHub, bearer, eventually

Start = Callable[..., Awaitable[RunningHub]]
SECURITY = {"secret_key": "test-secret-key"}


def _link_token(url: str) -> str:
    assert "/console#login=" in url, url
    return url.partition("#login=")[2]


async def _sign_in(hub: RunningHub, body: dict[str, Any], **kw: Any) -> tuple[int, Any, Any]:
    async with hub.http.post(hub.base + "/console/api/sign-in", json=body, **kw) as r:
        return r.status, await r.json(), r


async def _get(hub: RunningHub, path: str, **kw: Any) -> tuple[int, Any]:
    async with hub.http.get(hub.base + path, **kw) as r:
        return r.status, await r.json()


async def _stored(hub: RunningHub) -> dict[str, int]:
    async with hub.hub.db.read() as s:
        return await inbound.counts(s)


def _cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"gongdan_staff={token}"}


async def test_no_staff_session_without_a_credential(running: Start) -> None:
    hub = await running()
    # The old "pick a person" route is gone, and naming a manager gets nobody in.
    status, _ = await hub.post("/console/api/session", {"person": "zhao"})
    assert status in (404, 405)
    status, body, _ = await _sign_in(hub, {"person": "zhao"})
    assert status == 400 and "string" in body["error"]
    status, body, _ = await _sign_in(hub, {"person": "zhao", "password": "x" * 12})
    assert status == 401 and "wrong person or password" in body["error"]
    # No staff list, no desk, no stream without a sign-in.
    for path in ("/console/api/people", "/console/api/me", "/webchat/api/stream"):
        status, body = await _get(hub, path)
        assert status == 401, (path, body)
    # A customer's chat session is not a staff sign-in…
    customer = (await hub.post("/chat/api/session", {"name": "赵经理"}))[1]["session"]
    status, _ = await _get(hub, "/console/api/people", headers=bearer(customer))
    assert status == 401
    # …and a staff session token of the old kind, even correctly signed, is refused.
    old = hub.hub.adapters["web"].signer.sign(Session("staff", "zhao", "赵经理"))  # type: ignore[attr-defined]
    status, body = await hub.post(
        "/webchat/api/messages", {"session": old, "id": "abcdefgh1", "text": "GD-1 取消"}
    )
    assert status == 401 and "console" in body["error"]
    assert await _stored(hub) == {}


async def test_a_one_time_link_signs_its_person_in_once(running: Start) -> None:
    hub = await running()
    token = _link_token(hub.hub.access.issue_link("li", "cli"))
    status, desk, r = await _sign_in(hub, {"link": token})
    assert status == 200, desk
    assert (desk["person"], desk["name"], desk["role"]) == ("li", "李工", "engineer")
    assert desk["conversations"] == ["li", "team"]
    cookie = r.cookies["gongdan_staff"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert "token" not in desk  # a browser's session stays in its HttpOnly cookie
    # The sign-in names the person, not a name: the desk and the staff list answer.
    status, me = await _get(hub, "/console/api/me", headers=_cookie(cookie.value))
    assert (status, me["person"], me["csrf"]) == (200, "li", desk["csrf"])
    status, people = await _get(hub, "/console/api/people", headers=_cookie(cookie.value))
    assert status == 200 and {p["id"] for p in people} == {"li", "wang", "zhao", "sun"}
    # Used once: the same link again is refused and makes no session.
    status, body, _ = await _sign_in(hub, {"link": token})
    assert status == 401 and "used already" in body["error"]
    async with hub.hub.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(StaffSession)) == 1
        used = (await s.scalars(select(SignInLink))).one()
        assert (used.person_key, used.via, used.used_at is not None) == ("li", "cli", True)
        # Only hashes are kept: the token itself is nowhere in the database.
        stored = (await s.scalars(select(StaffSession.id))).one()
        assert cookie.value not in stored and token not in used.id


async def test_forged_expired_and_foreign_links_are_refused(running: Start) -> None:
    hub = await running()
    access = hub.hub.access
    stale = access.issue_link("zhao", "cli", now=utcnow() - timedelta(minutes=11))
    status, body, _ = await _sign_in(hub, {"link": _link_token(stale)})
    assert status == 401 and "expired" in body["error"]
    # A link for li whose body is rewritten to name the manager: the signature fails.
    import base64
    import json

    body_b64, mac = _link_token(access.issue_link("li", "cli")).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body_b64 + "=" * (-len(body_b64) % 4)))
    claims["p"] = "zhao"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    status, body, _ = await _sign_in(hub, {"link": f"{forged}.{mac}"})
    assert status == 401 and "not valid" in body["error"]
    # A link made with another hub's secret is not ours.
    other = await running(security={"secret_key": "another-hub"})
    status, body, _ = await _sign_in(
        hub, {"link": _link_token(other.hub.access.issue_link("zhao", "cli"))}
    )
    assert status == 401
    for junk in ("", "a.b.c", "x" * 5000, 12, None, ["x"]):
        status, body, _ = await _sign_in(hub, {"link": junk})
        assert status in (400, 401), (junk, body)
    async with hub.hub.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(StaffSession)) == 0


async def test_a_browser_write_needs_the_csrf_token_and_our_origin(running: Start) -> None:
    hub = await running()
    token = _link_token(hub.hub.access.issue_link("li", "cli"))
    _, desk, r = await _sign_in(hub, {"link": token})
    cookie = r.cookies["gongdan_staff"].value
    url = hub.base + "/webchat/api/messages"
    message = {"id": "abcdefgh1", "text": "你好", "conversation": "li"}
    # A page on another site can make the browser send the cookie, but not read the token.
    async with hub.http.post(url, json=message, headers=_cookie(cookie)) as resp:
        assert resp.status == 403 and "CSRF" in (await resp.json())["error"]
    wrong = {**_cookie(cookie), "X-CSRF-Token": "0" * 40}
    async with hub.http.post(url, json=message, headers=wrong) as resp:
        assert resp.status == 403
    foreign = {**_cookie(cookie), "X-CSRF-Token": desk["csrf"], "Origin": "https://evil.example"}
    async with hub.http.post(url, json=message, headers=foreign) as resp:
        assert resp.status == 403 and "another site" in (await resp.json())["error"]
    async with hub.http.post(hub.base + "/console/api/sign-out", headers=_cookie(cookie)) as resp:
        assert resp.status == 403  # (a forged sign-out is refused too)
    assert await _stored(hub) == {}
    good = {**_cookie(cookie), "X-CSRF-Token": desk["csrf"], "Origin": hub.base}
    async with hub.http.post(url, json=message, headers=good) as resp:
        assert resp.status == 202, await resp.text()
    assert sum((await _stored(hub)).values()) == 1


async def test_sign_ins_end_on_sign_out_expiry_idleness_and_password_change(
    running: Start,
) -> None:
    hub = await running()

    async def session() -> str:
        token = _link_token(hub.hub.access.issue_link("li", "cli"))
        status, body, _ = await _sign_in(hub, {"link": token, "bearer": True})
        assert status == 200
        return str(body["token"])

    async def works(token: str) -> bool:
        return (await _get(hub, "/console/api/me", headers=bearer(token)))[0] == 200

    # Sign-out ends that session (and only that one).
    a, b = await session(), await session()
    status, _ = await hub.post("/console/api/sign-out", {}, headers=bearer(a))
    assert status == 200
    assert not await works(a) and await works(b)
    # A session past its lifetime, or unused for too long, has ended.
    c, d = await session(), await session()
    past = utcnow() - timedelta(minutes=1)
    idle = utcnow() - timedelta(minutes=121)
    async with hub.hub.db.transaction() as s:  # (the stored id is the token's SHA-256)
        await s.execute(
            update(StaffSession)
            .where(StaffSession.id == hashlib.sha256(c.encode()).hexdigest())
            .values(expires_at=past)
        )
        await s.execute(
            update(StaffSession)
            .where(StaffSession.id == hashlib.sha256(d.encode()).hexdigest())
            .values(seen_at=idle)
        )
    status, body = await _get(hub, "/console/api/me", headers=bearer(c))
    assert status == 401 and "expired" in body["error"]
    assert not await works(d)
    # A password change ends every sign-in of the person, and links made before it.
    link = _link_token(hub.hub.access.issue_link("li", "cli"))
    await hub.hub.access.set_password("li", "correct horse battery")
    assert not await works(b)
    status, body, _ = await _sign_in(hub, {"link": link})
    assert status == 401 and "password changed" in body["error"]


async def test_passwords_are_per_person_and_guessing_is_throttled(running: Start) -> None:
    hub = await running()
    await hub.hub.access.set_password("zhao", "manager-secret-1")
    status, body, _ = await _sign_in(hub, {"person": "zhao", "password": "manager-secret-1"})
    assert (status, body["person"]) == (200, "zhao")
    # Another person's password, or none set, gets nobody in (and says nothing about which).
    for person in ("li", "nobody"):
        status, body, _ = await _sign_in(hub, {"person": person, "password": "manager-secret-1"})
        assert status == 401 and body["error"].endswith("wrong person or password")
    # Five wrong guesses for zhao: then even the right password waits out the window.
    for _ in range(5):
        status, _, _ = await _sign_in(hub, {"person": "zhao", "password": "guess-guess-1"})
        assert status == 401
    status, body, r = await _sign_in(hub, {"person": "zhao", "password": "manager-secret-1"})
    assert status == 429 and int(r.headers["Retry-After"]) > 0
    # wang is another person: not locked by zhao's guesses…
    await hub.hub.access.set_password("wang", "wang-secret-12")
    status, _, _ = await _sign_in(hub, {"person": "wang", "password": "wang-secret-12"})
    assert status == 200
    # …but one client guessing across people is stopped too (20 failures per window).
    for n in range(20):
        await _sign_in(hub, {"person": f"p{n}", "password": "guess-guess-1"})
    status, _, _ = await _sign_in(hub, {"person": "wang", "password": "wang-secret-12"})
    assert status == 429


async def test_the_cli_prints_a_link_and_sets_passwords(running: Start, tmp_path: Any) -> None:
    hub = await running()
    settings = hub.hub.settings
    config = tmp_path / "gongdan.toml"
    people = "\n".join(
        f'[[people]]\nid = "{p.id}"\nname = "{p.name}"\nrole = "{p.role}"\n'
        for p in settings.people
    )
    config.write_text(
        f'[database]\nurl = "{settings.database.url}"\n[security]\n'
        f'secret_key = "test-secret-key"\n{people}',
        encoding="utf-8",
    )
    import contextlib
    import io

    def run(*args: str) -> tuple[int, str]:  # (the command runs its own event loop)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli(["--config", str(config), *args])
        return code, out.getvalue()

    code, printed = await asyncio.to_thread(run, "login-link", "sun")
    assert code == 0
    status, desk, _ = await _sign_in(hub, {"link": _link_token(printed.strip())})
    assert (status, desk["person"]) == (200, "sun")
    assert (await asyncio.to_thread(run, "login-link", "nobody"))[0] == 2
    # `gongdan passwd --stdin` sets sun's own password; the old sign-in ends.
    import sys

    old_stdin = sys.stdin
    sys.stdin = io.StringIO("sun-password-2026\n")
    try:
        code, printed = await asyncio.to_thread(run, "passwd", "sun", "--stdin")
    finally:
        sys.stdin = old_stdin
    assert code == 0 and "sign-ins have ended" in printed
    status, _ = await _get(hub, "/console/api/me", headers={"Cookie": "x=y"})
    assert status == 401
    status, desk, _ = await _sign_in(hub, {"person": "sun", "password": "sun-password-2026"})
    assert (status, desk["person"]) == (200, "sun")
    code, printed = await asyncio.to_thread(run, "sign-out", "sun")
    assert code == 0 and printed.startswith("1 sign-ins")


async def test_typing_login_in_a_direct_chat_sends_a_link_there_and_not_in_a_group(
    running: Start,
) -> None:
    hub = await running()
    li = await hub.staff_session("li")
    async with Feed(hub, li) as feed:
        status, _ = await hub.post(
            "/webchat/api/messages",
            {"session": li, "id": uuid.uuid4().hex, "text": "登录", "conversation": "team"},
        )
        assert status == 202
        await eventually(lambda: _said(feed, "私聊"), what="the ask-in-private answer")
        assert not any("#login=" in t for t in feed.texts())
        status, _ = await hub.post(
            "/webchat/api/messages",
            {"session": li, "id": uuid.uuid4().hex, "text": "登录", "conversation": "li"},
        )
        assert status == 202
        text = await eventually(lambda: _said(feed, "#login="), what="the link")
    url = next(w for w in text.split() if "#login=" in w)
    status, desk, _ = await _sign_in(hub, {"link": _link_token(url)})
    assert (status, desk["person"]) == (200, "li")


async def _said(feed: Feed, part: str) -> str | None:
    return next((t for t in feed.texts() if part in t), None)


async def test_a_customer_typing_login_gets_no_link(running: Start) -> None:
    hub = await running()
    customer = (await hub.post("/chat/api/session", {"name": "张三"}))[1]["session"]
    async with Feed(hub, customer) as feed:
        status, _ = await hub.post(
            "/webchat/api/messages", {"session": customer, "id": uuid.uuid4().hex, "text": "登录"}
        )
        assert status == 202
        await hub.hub.idle()
        assert not any("#login=" in t for t in feed.texts())


# ------------------------------------------------------------------------- web chat limits


async def test_anonymous_sessions_and_messages_are_rate_limited(running: Start) -> None:
    hub = await running(limits={"sessions_per_hour": 3, "messages_per_minute": 2})
    sessions = []
    for _ in range(3):
        status, body = await hub.post("/chat/api/session", {"name": "张三"})
        assert status == 200
        sessions.append(body["session"])
    async with hub.http.post(hub.base + "/chat/api/session", json={"name": "张三"}) as r:
        assert r.status == 429 and int(r.headers["Retry-After"]) > 0
    for i in range(2):
        status, _ = await hub.post(
            "/webchat/api/messages", {"session": sessions[0], "id": f"abcdefgh{i}", "text": "你好"}
        )
        assert status == 202
    status, body = await hub.post(
        "/webchat/api/messages", {"session": sessions[0], "id": "abcdefgh9", "text": "你好"}
    )
    assert status == 429 and "message" in body["error"]
    assert sum((await _stored(hub)).values()) == 2  # the refused one was not stored
    # Another session of the same client still may (up to 5 × the per-session limit).
    status, _ = await hub.post(
        "/webchat/api/messages", {"session": sessions[1], "id": "abcdefgh3", "text": "你好"}
    )
    assert status == 202


async def test_exempt_addresses_are_not_limited(running: Start) -> None:
    hub = await running(limits={"sessions_per_hour": 1, "exempt": ["127.0.0.0/8"]})
    for _ in range(3):
        assert (await hub.post("/chat/api/session", {"name": "bench"}))[0] == 200


async def test_open_streams_are_capped_per_client_and_in_all(running: Start) -> None:
    hub = await running(limits={"streams_per_client": 2, "streams_total": 3, "exempt": []})
    customer = (await hub.post("/chat/api/session", {"name": "张三"}))[1]["session"]
    url = hub.base + "/webchat/api/stream"
    async with Feed(hub, customer), Feed(hub, customer):
        async with hub.http.get(url, params={"session": customer}) as r:
            assert r.status == 429 and "streams" in (await r.json())["error"]
        status, _ = await _get(hub, "/healthz")
        assert status == 200
    # Closed streams free their places (once the server notices the page has gone).

    async def admitted() -> bool:
        async with hub.http.get(url, params={"session": customer}) as r:
            return r.status == 200

    assert await eventually(admitted, what="a place for a new stream", every=0.5)
    exempt = await running(
        limits={"streams_per_client": 1, "streams_total": 2, "exempt": ["127.0.0.1"]}
    )
    c2 = (await exempt.post("/chat/api/session", {"name": "李四"}))[1]["session"]
    async with (
        Feed(exempt, c2),
        Feed(exempt, c2),
        exempt.http.get(exempt.base + "/webchat/api/stream", params={"session": c2}) as r,
    ):
        assert r.status == 503 and "Retry-After" in r.headers


async def test_the_api_takes_a_staff_members_own_sign_in_and_metrics_stay_local(
    running: Start,
) -> None:
    hub = await running(limits={"trust_forwarded": True})
    li = await hub.staff_session("li")
    status, body = await _get(hub, "/api/tickets", headers=bearer(li))
    assert (status, body) == (200, {"tickets": []})
    status, _ = await hub.post("/console/api/sign-out", {"session": li})
    assert status == 200
    status, body = await _get(hub, "/api/tickets", headers=bearer(li))
    assert status == 401 and "sign in again" in body["error"]
    # /metrics answers a scraper on this machine; from elsewhere it needs a credential.
    async with hub.http.get(hub.base + "/metrics") as r:
        assert r.status == 200
    away = {"X-Forwarded-For": "203.0.113.5"}
    async with hub.http.get(hub.base + "/metrics", headers=away) as r:
        assert r.status == 401
    async with hub.http.get(
        hub.base + "/metrics", headers={**away, "Authorization": "Bearer test-token"}
    ) as r:
        assert r.status == 200 and "gongdan_" in await r.text()


async def test_a_sign_in_ended_by_another_process_counts_within_the_recheck(
    running: Start,
) -> None:
    async def revoke_elsewhere(hub: Any, token: str) -> None:  # as another worker would
        async with hub.hub.db.transaction() as s:
            await s.execute(
                update(StaffSession)
                .where(StaffSession.id == hashlib.sha256(token.encode()).hexdigest())
                .values(revoked_at=utcnow())
            )

    for recheck, still_works in ((0.0, False), (60.0, True)):
        hub = await running(security={"session_recheck_seconds": recheck})
        token = _link_token(hub.hub.access.issue_link("li", "cli"))
        status, body, _ = await _sign_in(hub, {"link": token, "bearer": True})
        session = str(body["token"])
        assert (await _get(hub, "/console/api/me", headers=bearer(session)))[0] == 200
        await revoke_elsewhere(hub, session)
        status, _ = await _get(hub, "/console/api/me", headers=bearer(session))
        assert (status == 200) is still_works
        # A sign-out through this process ends it at once, whatever the recheck.
        other = _link_token(hub.hub.access.issue_link("li", "cli"))
        status, body, _ = await _sign_in(hub, {"link": other, "bearer": True})
        mine = str(body["token"])
        assert (await _get(hub, "/console/api/me", headers=bearer(mine)))[0] == 200
        status, _ = await hub.post("/console/api/sign-out", {}, headers=bearer(mine))
        assert status == 200
        assert (await _get(hub, "/console/api/me", headers=bearer(mine)))[0] == 401
