"""The customer's progress page: ``GET /t/<token>``, no sign-in.

The token (``bot.progress.ProgressLinks``) names the ticket; the page shows its number and
title, where it stands in the customer's words, the engineer, a timeline of the steps that
matter to a customer (local times in ``timezone``), the promised times and the ETA, and the
parts being waited for. Server-rendered HTML that reads on a phone (375 px), in the customer's
language (``?lang=zh|en`` overrides). With ``?format=json`` (or ``Accept: application/json``)
the same facts come as JSON; the open page asks for them every ``[progress] refresh_seconds``
and redraws itself when the ticket changed.

An unknown, forged or expired token answers 404 — a page for a browser, JSON with the reason
for anything else — the same whatever the reason, so it says nothing about which tickets exist.
Each client address may load ``[progress] requests_per_minute`` pages a minute (429 with
``Retry-After`` beyond).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot import progress
from bot.hub import Hub
from bot.progress import ProgressLinks, Step
from bot.ratelimit import Limiter, per_minute
from bot.texts import local_time, say
from bot.tickets import OPEN_STATES, ClockKind
from bot.web.auth import client_of
from storage import repo
from storage.models import Ticket
from storage.records import Clock
from storage.unit import Store

__all__ = ["ProgressPages"]

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the address: never pass it on
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
}
_OPEN = frozenset(s.value for s in OPEN_STATES)
_PROMISES = (ClockKind.RESPOND, ClockKind.ARRIVE, ClockKind.RESOLVE)
_DUE = {ClockKind.RESPOND: "respond_due", ClockKind.ARRIVE: "arrive_due",
        ClockKind.RESOLVE: "resolve_due"}  # fmt: skip
_BEFORE_ARRIVAL = frozenset({"new", "assigned", "accepted", "en_route"})


@dataclass(frozen=True, slots=True)
class _View:
    """What the page shows, in one language."""

    lang: str
    number: str
    title: str
    state: str
    label: str
    status: str
    engineer: str | None
    steps: Sequence[tuple[str, Step]]  # (local time, step)
    promises: Sequence[tuple[str, str]]  # (text, "kept" | "missed" | "late" | "open")
    eta: str | None
    parts: Sequence[str]
    parts_eta: str | None
    seq: int  # changes whenever the ticket or its trail does
    updated: str


class ProgressPages:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.links = ProgressLinks(hub.secret)
        limits = hub.settings.limits
        self.limiter = Limiter(limits.storage, limits.exempt)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/t/{token}", self.page)]

    async def page(self, request: web.Request) -> web.Response:
        settings = self.hub.settings
        asked = request.query.get("lang")
        lang = asked if asked in ("zh", "en") else None
        accept = request.headers.get("Accept", "")
        browser = "text/html" in accept and request.query.get("format") != "json"
        client = client_of(request, settings)
        if not self.limiter.exempt(client):
            rate = per_minute(settings.progress.requests_per_minute)
            wait = await self.limiter.hit(rate, "progress", "client", client)
            if wait is not None:
                return _limited(lang or settings.locale, wait, browser)
        ticket_id = self.links.verify(request.match_info["token"])
        view = None
        if settings.progress.enabled and ticket_id is not None:
            view = await self._view(ticket_id, lang)
        if view is None:
            return _not_found(lang or settings.locale, browser)
        if not browser and (request.query.get("format") == "json" or "json" in accept):
            return web.json_response(_as_json(view), headers=_HEADERS)
        return web.Response(
            text=_html(view, settings.progress.refresh_seconds),
            content_type="text/html",
            headers=_HEADERS,
        )

    async def _view(self, ticket_id: int, lang: str | None) -> _View | None:
        hub, settings = self.hub, self.hub.settings
        now, tz = hub.clock(), settings.tz
        async with hub.db.read() as s:
            t = await repo.get_ticket(s, ticket_id)
            if t is None or t.number is None:
                return None
            if progress.expired(
                t.state, t.closed_at, t.updated_at, now, settings.progress.expire_days
            ):
                return None
            reporter = await repo.get_person(s, t.reporter_id)
            assignee = await repo.get_person(s, t.assignee_id) if t.assignee_id else None
            trail = await repo.ticket_events(s, t.id)
            keys = {str(e.data.get("assignee")) for e in trail if (e.data or {}).get("assignee")}
            names = {}
            for key in keys:
                person = await repo.person_by_key(s, key)
                if person is not None and person.role != "customer":
                    names[key] = person.name
            clocks: list[Clock] = []
            if hub.env.policies is not None:
                store = Store(await s.connection(), hub.work.ids)
                clocks = (await store.clocks([t.id])).get(t.id, [])
        locale = lang or (reporter.locale if reporter else None) or settings.locale
        locale = "zh" if locale == "zh" else "en"  # (as ``say`` reads it: the messages agree)
        engineer = assignee.name if assignee is not None else None
        return _View(
            lang=locale,
            number=t.number,
            title=t.title,
            state=t.state,
            label=progress.label(t.state, locale),
            status=progress.status(t.state, locale, engineer),
            engineer=engineer,
            steps=[
                (_local(step.at, tz), step)
                for step in progress.timeline(t.created_at, trail, locale, names)
            ],
            promises=_promises(t, clocks, locale, tz, now),
            eta=_eta(t, locale, tz, now),
            parts=_parts(t.parts, locale) if t.state == "waiting_parts" else [],
            parts_eta=local_time(t.parts_eta, tz)[5:] if t.parts_eta else None,
            seq=t.audit_seq * 1000 + t.version,
            updated=say("progress.updated", locale, at=local_time(t.updated_at, tz), zone=tz.key),
        )


def _local(at: datetime, tz: ZoneInfo) -> str:
    return local_time(at, tz)[5:]  # "12-04 10:15"


def _promises(
    t: Ticket, clocks: Sequence[Clock], locale: str, tz: ZoneInfo, now: datetime
) -> list[tuple[str, str]]:
    """Each promise (respond, arrive, resolve) with its time and whether it was kept."""
    out: list[tuple[str, str]] = []
    if t.state == "cancelled":
        return out  # nothing was promised any more
    by_kind = {c.kind: c for c in clocks}
    for kind in _PROMISES:
        clock = by_kind.get(kind.value)
        if clock is not None and clock.met_at is not None:  # kept, or kept late
            how = "missed" if clock.breached_at is not None else "kept"
            text = say(f"progress.promise.met.{kind.value}", locale, at=_local(clock.met_at, tz))
            out.append((text, how))
            continue
        due = clock.due_at if clock is not None else getattr(t, _DUE[kind])
        if due is None:
            continue
        text = say(f"progress.promise.{kind.value}", locale, at=_local(due, tz))
        if (clock is not None and clock.breached_at is not None) or (
            t.state in _OPEN and due < now and (clock is None or clock.running_since is not None)
        ):
            how = "late"
        else:
            how = "open"
        out.append((text, how))
    return out


def _eta(t: Ticket, locale: str, tz: ZoneInfo, now: datetime) -> str | None:
    """The next thing the customer can expect, and when (a time already past is no ETA: the
    promises say it is late)."""
    if t.state not in _OPEN:
        return None
    if t.state == "waiting_parts" and t.parts_eta is not None and t.parts_eta > now:
        return say("progress.eta.parts", locale, at=_local(t.parts_eta, tz))
    if t.state in _BEFORE_ARRIVAL and t.arrive_due is not None and t.arrive_due > now:
        return say("progress.eta.arrive", locale, at=_local(t.arrive_due, tz))
    if t.resolve_due is not None and t.resolve_due > now:
        return say("progress.eta.resolve", locale, at=_local(t.resolve_due, tz))
    return None


def _parts(parts: Any, locale: str) -> list[str]:
    """ "密封圈 × 2" for each part waited for (``tickets.parts``: [{name, qty, code?}])."""
    if not isinstance(parts, list):
        return []
    out = []
    for part in parts:
        if not isinstance(part, dict) or not part.get("name"):
            continue
        name = str(part["name"])
        if part.get("code"):
            name += f"（{part['code']}）" if locale == "zh" else f" ({part['code']})"
        out.append(say("progress.part", locale, name=name, qty=part.get("qty") or 1))
    return out


def _as_json(v: _View) -> dict[str, Any]:
    return {
        "number": v.number,
        "title": v.title,
        "state": v.state,
        "label": v.label,
        "status": v.status,
        "engineer": v.engineer,
        "steps": [
            {"at": s.at.isoformat(), "text": s.text, "kind": s.kind, "current": s.current}
            for _, s in v.steps
        ],
        "promises": [{"text": text, "status": how} for text, how in v.promises],
        "eta": v.eta,
        "parts": list(v.parts),
        "parts_eta": v.parts_eta,
        "seq": v.seq,
    }


# ----------------------------------------------------------------------------------- HTML

_CSS = """
:root{font-family:system-ui,-apple-system,"PingFang SC","Hiragino Sans GB","Microsoft YaHei",
"Noto Sans CJK SC","Source Han Sans SC","WenQuanYi Micro Hei",sans-serif;color:#1d2430;
background:#f3f5f8;-webkit-text-size-adjust:100%}
body{margin:0;font-size:16px;line-height:1.5}
header{background:#0f4c81;color:#fff;padding:.8rem 1rem}
header .no{font-size:.85rem;opacity:.85}
header h1{font-size:1.15rem;margin:.1rem 0 0;word-break:break-word}
main{max-width:640px;margin:0 auto;padding:.8rem}
section{background:#fff;border-radius:10px;padding:.8rem 1rem;margin:.7rem 0;
box-shadow:0 1px 3px #0002}
h2{font-size:.95rem;color:#445;margin:0 0 .5rem}
.label{display:inline-block;background:#e4f0fb;color:#0f4c81;border-radius:999px;
padding:.15rem .7rem;font-weight:600}
.status{margin:.5rem 0 0}.who{color:#556;margin:.3rem 0 0}.eta{margin:.3rem 0 0;font-weight:600}
ol{list-style:none;margin:0;padding:0 0 0 1rem;border-left:2px solid #d5dbe3}
ol li{position:relative;margin:0 0 .7rem;padding-left:.4rem}
ol li::before{content:"";position:absolute;left:-1.42rem;top:.45rem;width:.7rem;height:.7rem;
border-radius:50%;background:#b8c2cf}
ol li.current::before{background:#0f4c81;box-shadow:0 0 0 3px #cfe3f6}
ol li.reply::before{background:#fff;border:2px solid #0f4c81;width:.45rem;height:.45rem}
ol li time{display:block;font-size:.8rem;color:#667}ol li.current span{font-weight:600}
ol li.reply span{white-space:pre-wrap;word-break:break-word}
ul{margin:0;padding-left:1.2rem}ul li{margin:.15rem 0}
.kept{color:#1b7f3b}.late,.missed{color:#b3261e}
footer{font-size:.8rem;color:#778;text-align:center;padding:.5rem 1rem 1.5rem}
footer a{color:#0f4c81}
"""

_MARK = {"kept": "✓", "missed": "✓", "late": "!", "open": ""}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _page(lang: str, title: str, body: str, status: int = 200, script: str = "") -> str:
    return (
        f'<!doctype html><html lang="{"en" if lang == "en" else "zh-CN"}"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>{body}{script}</body></html>"
    )


def _html(v: _View, refresh_seconds: int) -> str:
    lang = v.lang
    head = (
        f'<header><div class="no">{_e(say("progress.title", lang))} · {_e(v.number)}</div>'
        f"<h1>{_e(v.title)}</h1></header>"
    )
    who = v.engineer or say("progress.engineer.none", lang)
    now = (
        f'<section id="now"><span class="label" id="label">{_e(v.label)}</span>'
        f'<p class="status" id="status">{_e(v.status)}</p>'
        f'<p class="who" id="engineer">{_e(say("progress.engineer", lang))}：{_e(who)}</p>'
        + (f'<p class="eta" id="eta">{_e(v.eta)}</p>' if v.eta else "")
        + "</section>"
    )
    items = "".join(
        f'<li class="{("current " if s.current else "") + s.kind}">'
        f'<time datetime="{_e(s.at.isoformat())}">{_e(at)}</time>'
        f"<span>{_e(s.text)}</span></li>"
        for at, s in v.steps
    )
    steps = (
        f'<section id="timeline"><h2>{_e(say("progress.heading.timeline", lang))}</h2>'
        f"<ol>{items}</ol></section>"
    )
    parts = ""
    if v.parts:
        when = (
            say("progress.eta.parts", lang, at=v.parts_eta)
            if v.parts_eta
            else say("progress.eta.unknown", lang)
        )
        lines = "".join(f"<li>{_e(p)}</li>" for p in v.parts)
        parts = (
            f'<section id="parts"><h2>{_e(say("progress.heading.parts", lang))}</h2>'
            f'<ul class="plain">{lines}</ul><p class="eta">{_e(when)}</p></section>'
        )
    promises = ""
    if v.promises:
        lines = "".join(
            f'<li class="{how}">{_e(text)} {_MARK[how]}'
            + (f" {_e(say('progress.promise.' + how, lang))}" if how != "open" else "")
            + "</li>"
            for text, how in v.promises
        )
        promises = (
            f'<section id="promises"><h2>{_e(say("progress.heading.promises", lang))}</h2>'
            f'<ul class="plain">{lines}</ul></section>'
        )
    other = "en" if lang == "zh" else "zh"
    foot = (
        f"<footer>{_e(v.updated)} · "
        f'<a href="?lang={other}">{_e(say("progress.language", lang))}</a></footer>'
    )
    script = (
        "<script>(function(){var seq=" + json.dumps(v.seq) + ";"
        "setInterval(function(){fetch(location.pathname+'?format=json',{cache:'no-store'})"
        ".then(function(r){return r.ok?r.json():null}).then(function(d){"
        "if(d&&d.seq!==seq){location.reload()}}).catch(function(){})},"
        + str(refresh_seconds * 1000)
        + ")})()</script>"
    )
    body = head + "<main>" + now + parts + promises + steps + "</main>" + foot
    return _page(lang, f"{v.number} · {say('progress.title', lang)}", body, script=script)


def _not_found(lang: str, browser: bool) -> web.Response:
    """The same answer for a forged, tampered, unknown or expired link: a page for a browser,
    else JSON naming the reason (as every route's 4xx does)."""
    if not browser:
        return web.json_response(
            {"error": "unknown or expired progress link"}, status=404, headers=_HEADERS
        )
    body = (
        f"<header><h1>{_e(say('progress.not_found.title', lang))}</h1></header>"
        f"<main><section><p>{_e(say('progress.not_found', lang))}</p></section></main>"
    )
    return web.Response(
        text=_page(lang, say("progress.not_found.title", lang), body),
        status=404,
        content_type="text/html",
        headers=_HEADERS,
    )


def _limited(lang: str, wait: float, browser: bool) -> web.Response:
    retry = {**_HEADERS, "Retry-After": str(int(wait))}
    if not browser:
        error = f"too many progress page loads; try again in {wait:.0f} s"
        return web.json_response({"error": error, "retry_after": wait}, status=429, headers=retry)
    body = f"<main><section><p>{_e(say('progress.limited', lang))}</p></section></main>"
    return web.Response(
        text=_page(lang, say("progress.limited", lang), body),
        status=429,
        content_type="text/html",
        headers=retry,
    )
