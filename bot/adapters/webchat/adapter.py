"""The built-in web chat: ``/chat`` for customers, ``/console`` for engineers and dispatchers.

It keeps the same contract as the IM adapters. Its "platform API" is the ``webchat_feed`` table:
sending appends a row, updating a card appends a newer version under the same message key, and
the pages follow the feed live over Server-Sent Events. Because that table is ours, the web chat
delivers ``LOCAL``ly: a reply's row is written in the very transaction that decided it (no
outbox round trip, visible exactly when the change it reports is). ``send`` / ``update`` /
``notify`` remain for what still comes through the outbox (folded SLA nags, dead-letter
reports).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.access import Access, StaffUser
from bot.adapters.base import Adapter, Capability, RateLimit, Sent
from bot.adapters.body import read_json_object
from bot.adapters.webchat.parse import (
    PLATFORM,
    Session,
    SessionSigner,
    parse_action,
    parse_message,
    parse_reply,
)
from bot.adapters.webchat.render import render, viewer_buttons
from bot.assets import AssetLinks
from bot.config import Person, Settings
from bot.errors import BadRequest, SignatureInvalid, TooManyRequests
from bot.events import Address, Card, Inbound, Message, Notice, Text
from bot.inbox import Inbox
from bot.ratelimit import Limiter, per_hour, per_minute
from bot.texts import say
from bot.web.auth import COOKIE, client_of, forget, remember, staff_of
from storage import assets as asset_rows
from storage import feed
from storage.db import Database, json_dumps
from storage.records import FeedEntry

if TYPE_CHECKING:
    from bot.console import CardView, ConsoleCards
    from storage.models import WebchatFeed

__all__ = ["WebchatAdapter"]

log = logging.getLogger(__name__)
_PAGES = Path(__file__).parent / "pages"
_KEEPALIVE_S = 15.0
_POLL_S = 2.0  # also picks up rows written by other processes
_NO_STORE = {"Cache-Control": "no-store"}
# Pages: no framing by other sites, scripts and styles from here only.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
        "'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class WebchatAdapter(Adapter):
    platform = PLATFORM
    capabilities = Capability.BUTTONS | Capability.EDIT_CARD | Capability.NOTICE | Capability.LOCAL

    def __init__(
        self, inbox: Inbox, db: Database, settings: Settings, secret: bytes, access: Access
    ) -> None:
        super().__init__(inbox)
        self.db = db
        self.settings = settings
        self.signer = SessionSigner(secret)
        self.asset_links = AssetLinks(secret)
        self.access = access
        self.limiter = Limiter(settings.limits.storage, settings.limits.exempt)
        self._listeners: set[asyncio.Event] = set()
        self._streams: set[asyncio.Task[Any]] = set()
        self._by_client: Counter[str] = Counter()
        self._closing = False
        #: How cards reach each console viewer (``bot.console``; the hub sets it).
        self.console: ConsoleCards | None = None

    async def stop(self) -> None:
        """End open live streams (the server waits for open handlers when it shuts down)."""
        self._closing = True
        self._notify()
        if self._streams:
            _, late = await asyncio.wait(self._streams, timeout=5)
            for task in late:
                task.cancel()

    # ------------------------------------------------------------------ contract: outbound

    def limits(self, destination: Address) -> Sequence[RateLimit]:
        return ()  # our own pages: no platform limit

    async def send(self, destination: Address, message: Text | Card, *, key: str) -> Sent:
        entry = self.local_entry(destination, message, key=key, at=datetime.now(UTC))
        await self._append(entry)
        return Sent(entry.message_key)

    async def update(self, destination: Address, platform_message_id: str, card: Card) -> None:
        at = datetime.now(UTC)
        await self._append(
            self.local_entry(destination, card, key="", at=at, message_id=platform_message_id)
        )

    async def notify(self, destination: Address, notice: Notice, *, key: str) -> None:
        await self._append(self.local_entry(destination, notice, key=key, at=datetime.now(UTC)))

    async def _append(self, entry: FeedEntry) -> None:
        async with self.db.begin() as conn:
            await feed.append(conn, [entry])
        self._notify()

    def local_entry(
        self,
        destination: Address,
        message: Text | Card | Notice,
        *,
        key: str,
        at: datetime,
        message_id: str | None = None,
    ) -> FeedEntry:
        """A card update keeps the card's message key (the page replaces it) and may repeat;
        anything else gets a key of its own, derived from the idempotency key."""
        kind, payload = render(message)
        return FeedEntry(
            conversation=destination.chat_id,
            message_key=message_id or hashlib.blake2b(key.encode(), digest_size=16).hexdigest(),
            kind=kind,
            payload=payload,
            idempotency_key=None if message_id else key,
            created_at=at,
        )

    def inbound_entries(self, event: Inbound) -> Sequence[FeedEntry]:
        if not isinstance(event, Message):
            return ()
        return (
            FeedEntry(
                conversation=event.chat.chat_id,
                message_key=event.event_id[-64:],
                kind="user",
                payload={
                    "text": event.text,
                    "name": event.sender.name,
                    "user_id": event.sender.user_id,
                },
                idempotency_key=f"user:{event.event_id}",
                created_at=event.received_at,
            ),
        )

    def delivered(self) -> None:
        self._notify()

    def _notify(self) -> None:
        for ev in self._listeners:
            ev.set()

    # ------------------------------------------------------------------- contract: inbound

    def routes(self) -> Sequence[web.RouteDef]:
        return [
            web.get("/chat", self._page("chat.html")),
            web.get("/console", self._page("console.html")),
            web.get("/webchat/static/webchat.js", self._static("webchat.js")),
            web.get("/webchat/static/webchat.css", self._static("webchat.css")),
            web.post("/chat/api/session", self._customer_session),
            web.post("/console/api/sign-in", self._sign_in),
            web.post("/console/api/sign-out", self._sign_out),
            web.get("/console/api/me", self._me),
            web.get("/console/api/people", self._people),
            web.post("/webchat/api/messages", self._post_message),
            web.post("/webchat/api/actions", self._post_action),
            web.get("/webchat/api/stream", self._stream),
            web.get("/r/{token}", self._asset_link),
            web.post("/console/api/reply", self._console_reply),
        ]

    def _page(self, name: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            html = (_PAGES / name).read_text(encoding="utf-8")
            lang = request.query.get("lang", self.settings.locale)
            html = html.replace("{{LANG}}", "en" if lang == "en" else "zh")
            return web.Response(text=html, content_type="text/html", headers=_PAGE_HEADERS)

        return handler

    def _static(self, name: str) -> Any:
        kind = "text/css" if name.endswith(".css") else "application/javascript"

        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=(_PAGES / name).read_text(encoding="utf-8"), content_type=kind)

        return handler

    # ------------------------------------------------------------------------ limits

    async def _limit(self, request: web.Request, what: str, session: Session | None) -> str:
        """Count one ``what`` for the client (and its session); 429 over a limit."""
        client = client_of(request, self.settings)
        if self.limiter.exempt(client):
            return client
        lim = self.settings.limits
        if what == "session":
            rates = [(per_hour(lim.sessions_per_hour), ("client", client))]
        else:
            n = lim.messages_per_minute if what == "message" else lim.actions_per_minute
            rates = [(per_minute(5 * n), ("client", client))]
            if session is not None:
                rates.append((per_minute(n), ("session", session.user_id)))
        for rate, key in rates:
            wait = await self.limiter.hit(rate, "webchat", what, *key)
            if wait is not None:
                raise TooManyRequests(wait, f"too many {what}s; try again in {wait:.0f} s")
        return client

    # ---------------------------------------------------------------------- sessions

    async def _customer_session(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 50:
            raise BadRequest("'name' must be 1–50 characters")
        await self._limit(request, "session", None)
        conv = "c-" + secrets.token_urlsafe(12)
        locale = body.get("locale") if body.get("locale") in ("zh", "en") else None
        token = self.signer.sign(Session("customer", conv, name.strip(), locale))
        return web.json_response({"session": token, "conversation": conv})

    def _staff_identity(self, person_key: str) -> str:
        person = self.access.people[person_key]
        webs = [i.partition(":")[2] for i in person.identities if i.startswith("web:")]
        return webs[0] if webs else person.id

    def _desk(self, user: StaffUser, request: web.Request) -> dict[str, Any]:
        """What the console needs to know about the signed-in person (labels in the page's
        language)."""
        p = user.person
        session = self._session_of(user)
        locale = self._viewer_locale(request, p)
        convs = self._conversations(session)
        return {
            "person": p.id,
            "name": p.name,
            "role": p.role,
            "role_label": say(f"console.role.{p.role}", locale),
            "csrf": user.csrf,
            "expires_at": user.expires_at.isoformat(),
            "conversation": session.user_id,
            "conversations": convs,
            "panes": {c: self._pane_label(c, session, locale) for c in convs},
        }

    def _pane_label(self, conversation: str, session: Session, locale: str) -> str:
        if conversation == session.user_id:
            return say("console.pane.mine", locale)
        team = next((t for t in self.settings.teams if f"web:{conversation}" in t.chats), None)
        if team is not None:
            return say("console.pane.team", locale, name=team.name)
        return say("console.pane.admin", locale)

    def _session_of(self, user: StaffUser) -> Session:
        p = user.person
        return Session("staff", self._staff_identity(p.id), p.name, p.locale)

    async def _sign_in(self, request: web.Request) -> web.Response:
        """``{"link": token}`` (from a one-time link) or ``{"person", "password"}``; with
        ``"bearer": true`` the session token comes back in the body (API clients) instead of
        a cookie."""
        body = await _json_body(request)
        client = client_of(request, self.settings)
        if "link" in body:
            signed = await self.access.sign_in_link(body["link"], client)
        else:
            signed = await self.access.sign_in_password(
                body.get("person"), body.get("password"), client
            )
        answer = self._desk(signed.user, request)
        if body.get("bearer") is True:
            return web.json_response({**answer, "token": signed.token}, headers=_NO_STORE)
        response = web.json_response(answer, headers=_NO_STORE)
        remember(response, request, signed, self.settings)
        return response

    async def _sign_out(self, request: web.Request) -> web.Response:
        user = await staff_of(request, self.access)
        await self.access.sign_out(user)
        response = web.json_response({"ok": True})
        forget(response)
        return response

    async def _me(self, request: web.Request) -> web.Response:
        user = await staff_of(request, self.access)
        return web.json_response(self._desk(user, request), headers=_NO_STORE)

    async def _people(self, request: web.Request) -> web.Response:
        user = await staff_of(request, self.access)
        locale = self._viewer_locale(request, user.person)
        return web.json_response(
            [{"id": p.id, "name": p.name, "role": p.role,
              "role_label": say(f"console.role.{p.role}", locale)} for p in self.settings.people],
            headers=_NO_STORE,
        )  # fmt: skip

    def _conversations(self, session: Session) -> list[str]:
        if session.kind == "customer":
            return [session.user_id]
        person = next(
            (p for p in self.settings.people if self._staff_identity(p.id) == session.user_id), None
        )
        convs = [session.user_id]
        for team in self.settings.teams:
            if person is not None and (person.id in team.members or team.lead == person.id):
                convs += [c.partition(":")[2] for c in team.chats if c.startswith("web:")]
        if (
            self.settings.admin_chat
            and self.settings.admin_chat.startswith("web:")
            and (person is not None and person.role == "manager")
        ):
            convs.append(self.settings.admin_chat.partition(":")[2])
        return convs

    async def _who(self, request: web.Request, token: object) -> Session:
        """A customer's session (its signed token in the body or query), else the signed-in
        staff member (cookie + CSRF, or bearer)."""
        if isinstance(token, str) and token.startswith("gds_"):
            # A staff session token named in the body (an API client's choice, like a bearer
            # header: no other site can know it, so no CSRF token is needed).
            return self._session_of(await self.access.authenticate(token))
        if token is not None:
            session = self.signer.verify(token)
            if session.kind != "customer":  # (staff tokens of old: staff now sign in)
                raise SignatureInvalid("staff sign in on /console")
            return session
        return self._session_of(await staff_of(request, self.access))

    async def _accept(self, request: web.Request, kind: str) -> web.Response:
        body = await _json_body(request)
        session = await self._who(request, body.get("session"))
        await self._limit(request, kind, session)
        allowed = set(self._conversations(session))
        now = datetime.now(UTC)
        if kind == "message":
            event: Inbound = parse_message(session, body, now, allowed, links=self.asset_links)
        else:
            event = parse_action(session, body, now, allowed)
        (accepted,) = await self.inbox.accept([event])
        return web.json_response({"ok": True, "duplicate": not accepted.new}, status=202)

    async def _asset_link(self, request: web.Request) -> web.Response:
        """Scan-to-report: a signed asset link opens the chat with that asset (``Accept:
        application/json``: what the chat page shows for it). A forged link → 404."""
        token = request.match_info["token"]
        asset_id = self.asset_links.verify(token)
        async with self.db.reads() as conn:
            asset = await asset_rows.by_id(conn, asset_id) if asset_id is not None else None
        if asset is None or not asset.active:
            raise web.HTTPNotFound(reason="unknown asset link")
        lang = "en" if request.query.get("lang", self.settings.locale) == "en" else "zh"
        if "application/json" not in request.headers.get("Accept", ""):
            raise web.HTTPFound(f"/chat?asset={token}&lang={lang}", headers=_NO_STORE)
        shown = " · ".join(x for x in (asset.name, asset.site_name) if x)
        return web.json_response(
            {"asset": token, "code": asset.code, "name": asset.name, "site": asset.site_name,
             "label": say("asset.reporting", lang, asset=shown)},
            headers=_NO_STORE,
        )  # fmt: skip

    async def _console_reply(self, request: web.Request) -> web.Response:
        """The console's reply box (staff signed in: cookie + CSRF, or bearer): the same as
        writing "GD-12 回复：…" (``bot/flows/reply.py``), counted as a message."""
        body = await _json_body(request)
        session = self._session_of(await staff_of(request, self.access))
        await self._limit(request, "message", session)
        event = parse_reply(session, body, datetime.now(UTC))
        (accepted,) = await self.inbox.accept([event])
        return web.json_response({"ok": True, "duplicate": not accepted.new}, status=202)

    def _viewer(self, session: Session) -> Person | None:
        """The staff member behind a session (None: a customer)."""
        if session.kind != "staff":
            return None
        return next(
            (p for p in self.settings.people if self._staff_identity(p.id) == session.user_id), None
        )

    def _viewer_locale(self, request: web.Request, viewer: Person | None) -> str:
        """The page's language (``?lang=``), else the person's own, else the hub's."""
        lang = request.query.get("lang")
        if lang in ("zh", "en"):
            return lang
        return (viewer.locale if viewer else None) or self.settings.locale

    async def _shown(
        self,
        rows: Sequence[WebchatFeed],
        session: Session,
        viewer: Person | None,
        convs: Sequence[str],
        locale: str,
    ) -> list[dict[str, Any]]:
        """The rows as this page shows them: another person's notices left out; for a staff
        member's desk, of a card's versions in one batch only the newest, and each ticket's
        card once, with their buttons, in their language (``bot.console``)."""
        wanted = rows
        views: dict[str, CardView] = {}
        if viewer is not None and self.console is not None:
            newest = {r.message_key: r.id for r in rows if r.kind == "card"}
            wanted = [r for r in rows if r.kind != "card" or newest[r.message_key] == r.id]
            cards = [
                (r.message_key, r.payload["ticket_id"])
                for r in wanted
                if r.kind == "card" and isinstance(r.payload.get("ticket_id"), int)
            ]
            views = await self.console.views(viewer.id, convs, locale, cards)
        out: list[dict[str, Any]] = []
        for row in wanted:
            if row.kind == "notice" and row.payload.get("user_id") not in (None, session.user_id):
                continue
            payload, view = row.payload, views.get(row.message_key)
            if view is not None:
                if not view.show:
                    continue
                if view.card is not None:
                    payload = render(view.card)[1]
                if view.roles is not None:
                    payload = viewer_buttons(payload, view.roles)
            item = {
                "id": row.id,
                "key": row.message_key,
                "kind": row.kind,
                "conversation": row.conversation,
                "payload": payload,
                "at": row.created_at.isoformat(),
            }
            if view is not None and view.ticket_card:
                item["ticket_card"] = True  # the page keeps one card per ticket
            out.append(item)
        return out

    async def _post_message(self, request: web.Request) -> web.Response:
        return await self._accept(request, "message")

    async def _post_action(self, request: web.Request) -> web.Response:
        return await self._accept(request, "action")

    # ------------------------------------------------------------------------ stream

    def _admit_stream(self, client: str) -> None:
        lim = self.settings.limits
        if len(self._streams) >= lim.streams_total:
            raise TooManyRequests(_POLL_S * 5, "too many live streams on this server", status=503)
        if not self.limiter.exempt(client) and self._by_client[client] >= lim.streams_per_client:
            raise TooManyRequests(
                _KEEPALIVE_S, f"at most {lim.streams_per_client} live streams per client"
            )

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("session")
        session = await self._who(request, token)
        staff_token = None if token is not None else request.cookies.get(COOKIE)
        convs = self._conversations(session)
        raw = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            raise BadRequest("'after' must be a whole number (a feed id)")
        last = int(raw)
        # The console asks for its person's view (``bot.console``); API clients read the feed
        # as it is stored.
        viewer = self._viewer(session) if request.query.get("view") == "desk" else None
        locale = self._viewer_locale(request, viewer)
        replayed = 0  # a page's first reading: the notices until now are history, not news
        if last == 0:
            async with self.db.read_engine.connect() as conn:
                replayed = await feed.head(conn)
        client = client_of(request, self.settings)
        self._admit_stream(client)
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await resp.prepare(request)
        wake = asyncio.Event()
        self._listeners.add(wake)
        me = asyncio.current_task()
        if me is not None:
            self._streams.add(me)
        self._by_client[client] += 1
        idle = 0.0
        try:
            while not self._closing:
                async with self.db.read_engine.connect() as conn:
                    rows = await feed.since(conn, convs, last)
                for item in await self._shown(rows, session, viewer, convs, locale):
                    item["replay"] = item["id"] <= replayed  # (the page toasts live notices)
                    data = json_dumps(item)
                    await resp.write(f"id: {item['id']}\ndata: {data}\n\n".encode())
                if rows:
                    last = rows[-1].id
                    idle = 0.0
                    continue
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), _POLL_S)
                if request.transport is None or request.transport.is_closing():
                    break  # the page went away: free its place at once
                idle += _POLL_S
                if idle >= _KEEPALIVE_S:
                    if staff_token is not None:  # signed out meanwhile: the stream ends too
                        try:
                            await self.access.authenticate(staff_token)
                        except SignatureInvalid:
                            break
                    await resp.write(b": keep-alive\n\n")
                    idle = 0.0
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._listeners.discard(wake)
            self._by_client[client] -= 1
            if self._by_client[client] <= 0:
                del self._by_client[client]
            if me is not None:
                self._streams.discard(me)
        return resp


async def _json_body(request: web.Request) -> dict[str, Any]:
    """A JSON object within the size and depth limits, else ``BadRequest`` (400) or 413."""
    return await read_json_object(request)
