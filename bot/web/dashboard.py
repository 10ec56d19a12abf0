"""``/dashboard``: the managers' figures for staff who are signed in.

- ``GET /dashboard`` — the page (server-rendered HTML with inline SVG charts); without a
  session the browser is sent to ``/console`` to sign in.
- ``GET /dashboard/api/figures`` — the same figures as JSON (401 without a session).
- ``GET /dashboard/export.csv`` — the tickets opened in the period within the filters.

A session is the console's per-person sign-in (the ``HttpOnly`` cookie, or ``Authorization:
Bearer gds_…``). Managers and dispatchers see every team, engineers their own teams' tickets
(asking for another team is 403). Filters: ``period`` (today | 7d | 30d | 90d) or ``from`` and
``to`` (YYYY-MM-DD, local days), ``team``, ``site``, ``customer`` (an organisation's code),
``by`` (site | category), ``grain`` (day | hour) and ``lang``; a bad value is a 400.
"""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.access import StaffUser
from bot.errors import SignatureInvalid, TooManyRequests
from bot.hub import Hub
from bot.kpi import Query, compute, parse_query, scope_of, viewer_teams, with_customer
from bot.ratelimit import per_minute
from bot.texts import TEXTS, local_time, say
from bot.ticket_labels import state_label_of
from bot.web.api import HUB
from bot.web.auth import staff_of
from bot.web.dashboard_page import Choices, page
from storage import kpi
from storage.kpi import Scope

__all__ = ["routes"]

_NO_STORE = {"Cache-Control": "no-store"}
_PAGE_HEADERS = {
    **_NO_STORE,
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
#: A cell a spreadsheet would read as a formula is written as text.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _hub(request: web.Request) -> Hub:
    hub = request.app[HUB]
    if not hub.settings.dashboard.enabled:
        raise web.HTTPNotFound(reason="the dashboard is off ([dashboard] enabled)")
    return hub


async def _checked(request: web.Request, hub: Hub, user: StaffUser) -> tuple[Query, Scope]:
    """The request's filters and scope, once the person is within their rate."""
    viewer = user.person
    rate = per_minute(hub.settings.dashboard.requests_per_minute)
    wait = await hub.access.limiter.hit(rate, "dashboard", viewer.id)
    if wait is not None:
        raise TooManyRequests(wait, f"too many dashboard requests; try again in {wait:.0f} s")
    today = hub.clock().astimezone(hub.settings.tz).date()
    query = parse_query(request.query, hub.settings, today=today, default_lang=viewer.locale)
    scope = scope_of(query, viewer, hub.directory)
    async with hub.db.reads() as conn:
        scope = await with_customer(conn, scope, query)
    return query, scope


async def _figures(hub: Hub, query: Query, scope: Scope) -> dict[str, Any]:
    async with hub.db.reads() as conn:
        return await compute(conn, hub.settings, hub.directory, query, scope, hub.clock())


async def dashboard_page(request: web.Request) -> web.Response:
    hub = _hub(request)
    try:
        user = await staff_of(request, hub.access)
    except SignatureInvalid:
        lang = request.query.get("lang")
        back = {"lang": lang} if lang in ("zh", "en") else {}
        back["next"] = request.path_qs  # (the console sends the signed-in person back here)
        raise web.HTTPFound(f"/console?{urlencode(back)}", headers=_NO_STORE) from None
    query, scope = await _checked(request, hub, user)
    fig = await _figures(hub, query, scope)
    allowed = viewer_teams(user.person, hub.directory)
    async with hub.db.reads() as conn:
        customers = await kpi.organisations(conn)
        sites = await kpi.site_names(conn)
    choices = Choices(
        teams=[(t.id, t.name) for t in hub.settings.teams if allowed is None or t.id in allowed],
        all_teams=allowed is None,
        name=user.person.name,
        role=user.person.role,
        customers=customers,
        sites=sites,
    )
    updated = say(
        "dashboard.updated",
        query.lang,
        at=local_time(hub.clock(), hub.settings.tz),
        zone=hub.settings.timezone,
    )
    html = page(fig, query, choices, updated=updated)
    return web.Response(text=html, content_type="text/html", headers=_PAGE_HEADERS)


async def figures_json(request: web.Request) -> web.Response:
    hub = _hub(request)
    user = await staff_of(request, hub.access)
    query, scope = await _checked(request, hub, user)
    return web.json_response(await _figures(hub, query, scope), headers=_NO_STORE)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


async def export_csv(request: web.Request) -> web.Response:
    """The tickets opened in the period (UTF-8 with a byte-order mark, so that spreadsheet
    programs read Chinese right; local times)."""
    hub = _hub(request)
    user = await staff_of(request, hub.access)
    query, scope = await _checked(request, hub, user)
    lang, tz = query.lang, hub.settings.tz
    cap = hub.settings.dashboard.export_rows
    async with hub.db.reads() as conn:
        rows = await kpi.tickets(conn, scope, query.period.edges(), limit=cap + 1)
    truncated = len(rows) > cap  # (said in a header: a shorter period gets the rest)
    rows = rows[:cap]
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(say("dashboard.csv.header", lang).split(","))
    for r in rows:
        writer.writerow(
            _cell(v)
            for v in (
                r.number,
                r.title,
                r.priority,
                _category(r.category, lang),
                state_label_of(r.state, lang),
                r.site,
                r.team,
                r.assignee,
                local_time(r.created_at, tz),
                local_time(r.closed_at, tz) if r.closed_at else None,
                r.root_cause,
                r.csat,
            )
        )
    name = f"gongdan-{query.period.first}-{query.period.last}.csv"
    return web.Response(
        body=out.getvalue().encode("utf-8"),
        content_type="text/csv",
        charset="utf-8",
        headers={
            **_NO_STORE,
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Gongdan-Truncated": "1" if truncated else "0",
        },
    )


def _category(category: str, lang: str) -> str:
    key = f"dashboard.category.{category}"
    return say(key, lang) if key in TEXTS else category


def routes() -> list[web.RouteDef]:
    return [
        web.get("/dashboard", dashboard_page),
        web.get("/dashboard/api/figures", figures_json),
        web.get("/dashboard/export.csv", export_csv),
    ]
