"""The REST API (bearer token from ``[api] token``), health and metrics."""

from __future__ import annotations

import hmac
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from bot.assets import out_of_warranty
from bot.errors import BadRequest
from bot.flows.maintenance import asset_maintenance
from bot.hub import Hub
from bot.sla.view import clock_status
from bot.texts import say
from bot.ticket_labels import state_label
from bot.tickets import Priority, TicketState
from bot.web.auth import client_of, staff_of
from storage import assets as asset_rows
from storage import outbox, repo
from storage.models import Ticket
from storage.unit import Store

__all__ = ["TicketQuery", "asset_query", "routes", "ticket_query", "ticket_ref"]

HUB = web.AppKey("hub", Hub)
_STATES = tuple(s.value for s in TicketState)
_PRIORITIES = tuple(p.value for p in Priority)


async def _check_token(request: web.Request) -> None:
    """A signed-in staff member's own session (``Bearer gds_…``), or the integration token."""
    hub = request.app[HUB]
    if request.headers.get("Authorization", "").startswith("Bearer gds_"):
        await staff_of(request, hub.access)
        return
    token = hub.settings.api.token
    if token is None:
        raise web.HTTPServiceUnavailable(reason="API disabled: set [api] token")
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise web.HTTPUnauthorized(
            reason="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
        )


async def _ticket_json(hub: Hub, s: Any, t: Ticket, *, events: bool) -> dict[str, Any]:
    assignee = await repo.get_person(s, t.assignee_id) if t.assignee_id else None
    reporter = await repo.get_person(s, t.reporter_id)
    locale = hub.settings.locale
    out: dict[str, Any] = {
        "id": t.id,
        "number": t.number,
        "title": t.title,
        "description": t.description,
        "priority": t.priority,
        "category": t.category,
        "state": t.state,
        "state_label": state_label(TicketState(t.state), locale),
        "device_code": t.device_code,
        "site": t.site,
        "alarm_code": t.alarm_code,
        "reporter": {"id": reporter.key, "name": reporter.name} if reporter else None,
        "assignee": {"id": assignee.key, "name": assignee.name} if assignee else None,
        "team": t.team_key,
        "origin_chat": t.origin_chat,
        "source": t.source_event,
        "created_at": t.created_at.isoformat(),
        "updated_at": t.updated_at.isoformat(),
        "closed_at": t.closed_at.isoformat() if t.closed_at else None,
        "deadlines": {
            "respond": t.respond_due.isoformat() if t.respond_due else None,
            "arrive": t.arrive_due.isoformat() if t.arrive_due else None,
            "resolve": t.resolve_due.isoformat() if t.resolve_due else None,
            "state": t.state_due.isoformat() if t.state_due else None,
        },
        "diagnosis": t.diagnosis,
        "root_cause": t.root_cause,
        "parts": t.parts,  # 待备件: [{name, qty}] (kept once they arrived)
        "parts_eta": t.parts_eta.isoformat() if t.parts_eta else None,
        "checklist": t.checklist,  # the closure items ticked ({item, by, at})
        "photos": t.photos,  # evidence photos (/console/api/tickets/{number}/evidence)
        "version": t.version,
        "intake": t.intake,
    }
    if events:
        # Each clock: due time, business time left, paused or not, breached, escalation.
        policies, now = hub.env.policies, hub.clock()
        store = Store(await s.connection(), hub.work.ids)
        clocks = (await store.clocks([t.id]))[t.id] if policies else []
        out["clocks"] = [clock_status(c, now, policies) for c in clocks if policies]
        # Who acted, by key and kind: a customer who names themselves like a manager is
        # still a customer here (a name alone proves nothing).
        trail = await repo.ticket_events(s, t.id)
        people = await repo.people_by_id(s, (e.actor_id for e in trail if e.actor_id))
        who = {
            i: (p.key, "customer" if p.role == "customer" else "staff") for i, p in people.items()
        }
        out["events"] = []
        for e in trail:
            actor_id, actor_kind = who.get(e.actor_id or 0, (None, "system"))
            out["events"].append(
                {
                    "seq": e.seq,
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "actor_id": actor_id,
                    "actor_kind": actor_kind,
                    "kind": e.kind,
                    "from": e.from_state,
                    "to": e.to_state,
                    "via": e.via,
                    "data": e.data,
                    "hash": e.hash,
                }
            )
    return out


# ---------------------------------------------------------------------- query validation

_LIST_PARAMETERS = ("state", "priority", "assignee", "limit", "offset")
_DIGITS = re.compile(r"[0-9]{1,7}")
_REF = re.compile(r"(?:GD-)?([0-9]{1,15})", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TicketQuery:
    """``GET /api/tickets``'s parameters, each checked (``ticket_query``)."""

    states: tuple[str, ...] = ()
    priority: str | None = None
    assignee: str | None = None
    limit: int = 100
    offset: int = 0


def _single(query: MultiMapping[str], key: str) -> str | None:
    values = query.getall(key, [])
    if len(values) > 1:
        raise BadRequest(f"'{key}' is given {len(values)} times; give it once")
    return values[0] if values else None


def _number(query: MultiMapping[str], key: str, low: int, high: int, default: int) -> int:
    raw = _single(query, key)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadRequest(f"'{key}' must be a whole number from {low} to {high}, not {raw[:20]!r}")
    return int(raw)


def ticket_query(query: MultiMapping[str]) -> TicketQuery:
    """The list's parameters, or ``BadRequest`` (400) naming the one that is wrong: unknown
    names (a typo must not silently list everything), repeats, states and priorities that do
    not exist, ``limit`` outside 1..1000, ``offset`` outside 0..1,000,000."""
    unknown = sorted(set(query) - set(_LIST_PARAMETERS))
    if unknown:
        known = ", ".join(_LIST_PARAMETERS)
        raise BadRequest(f"unknown query parameter {unknown[0][:40]!r} (known: {known})")
    states = tuple(x for x in (_single(query, "state") or "").split(",") if x)
    for state in states:
        if state not in _STATES:
            raise BadRequest(f"unknown state {state[:40]!r} (known: {', '.join(_STATES)})")
    priority = _single(query, "priority") or None
    if priority is not None and priority not in _PRIORITIES:
        raise BadRequest(f"'priority' must be one of {', '.join(_PRIORITIES)}")
    assignee = _single(query, "assignee")
    if assignee is not None and not 1 <= len(assignee) <= 200:
        raise BadRequest("'assignee' must be a person's id (1–200 characters)")
    return TicketQuery(
        states=states,
        priority=priority,
        assignee=assignee,
        limit=_number(query, "limit", 1, 1000, 100),
        offset=_number(query, "offset", 0, 1_000_000, 0),
    )


def ticket_ref(ref: str) -> int | str:
    """``/api/tickets/{ref}``: a ticket's id (an ``int``) or its number (``GD-<n>``)."""
    m = _REF.fullmatch(ref)
    if m is None:
        raise BadRequest(f"not a ticket id or number (GD-<n>): {ref[:40]!r}")
    return f"GD-{int(m[1])}" if ref[:1].isalpha() else int(m[1])


def _no_query(query: MultiMapping[str]) -> None:
    if query:
        raise BadRequest(f"unknown query parameter {next(iter(query))[:40]!r} (none are known)")


async def list_tickets(request: web.Request) -> web.Response:
    await _check_token(request)
    hub = request.app[HUB]
    q = ticket_query(request.query)
    async with hub.db.read() as s:
        assignee_id = None
        if q.assignee is not None:
            person = await repo.person_by_key(s, q.assignee)
            if person is None:
                return web.json_response({"tickets": []})
            assignee_id = person.id
        tickets = await repo.list_tickets(
            s,
            states=q.states,
            priority=q.priority,
            assignee_id=assignee_id,
            limit=q.limit,
            offset=q.offset,
        )
        items = [await _ticket_json(hub, s, t, events=False) for t in tickets]
    return web.json_response({"tickets": items})


async def get_ticket(request: web.Request) -> web.Response:
    await _check_token(request)
    hub = request.app[HUB]
    _no_query(request.query)
    ref = ticket_ref(request.match_info["ref"])
    async with hub.db.read() as s:
        ticket = (
            await repo.get_ticket(s, ref)
            if isinstance(ref, int)
            else await repo.ticket_by_number(s, ref)
        )
        if ticket is None:
            raise web.HTTPNotFound(reason=say("error.unknown_ticket", hub.settings.locale))
        return web.json_response(await _ticket_json(hub, s, ticket, events=True))


# ---------------------------------------------------------------------- assets

_ASSET_PARAMETERS = ("q", "limit", "offset")


def asset_query(query: MultiMapping[str]) -> tuple[str | None, int, int]:
    """``GET /api/assets``'s (q, limit, offset), or ``BadRequest`` naming what is wrong."""
    unknown = sorted(set(query) - set(_ASSET_PARAMETERS))
    if unknown:
        known = ", ".join(_ASSET_PARAMETERS)
        raise BadRequest(f"unknown query parameter {unknown[0][:40]!r} (known: {known})")
    q = (_single(query, "q") or "").strip() or None
    if q is not None and len(q) > 100:
        raise BadRequest("'q' is longer than 100 characters")
    return q, _number(query, "limit", 1, 1000, 100), _number(query, "offset", 0, 1_000_000, 0)


def _asset_json(hub: Hub, a: asset_rows.AssetEntry) -> dict[str, Any]:
    today = hub.clock().astimezone(hub.settings.tz).date()
    return {
        "code": a.code,
        "name": a.name,
        "aliases": list(a.aliases),
        "model": a.model,
        "category": a.category,
        "site": {"code": a.site_code, "name": a.site_name} if a.site_code else None,
        "organisation": (
            {"code": a.organisation_code, "name": a.organisation_name}
            if a.organisation_code
            else None
        ),
        "install_date": a.install_date.isoformat() if a.install_date else None,
        "warranty_end": a.warranty_end.isoformat() if a.warranty_end else None,
        "out_of_warranty": out_of_warranty(a, today),
        "preferred_engineer": a.preferred_engineer,
        "active": a.active,
    }


async def list_assets(request: web.Request) -> web.Response:
    await _check_token(request)
    hub = request.app[HUB]
    q, limit, offset = asset_query(request.query)
    async with hub.db.reads() as conn:
        found = await asset_rows.search(conn, q, limit=limit, offset=offset)
    return web.json_response({"assets": [_asset_json(hub, a) for a in found]})


async def get_asset(request: web.Request) -> web.Response:
    """One asset with its site (address, coordinates), organisation and last ten tickets."""
    await _check_token(request)
    hub = request.app[HUB]
    _no_query(request.query)
    code = request.match_info["code"]
    if not 1 <= len(code) <= 100:
        raise BadRequest("an asset's code is 1–100 characters")
    async with hub.db.reads() as conn:
        asset = await asset_rows.by_code(conn, code)
        if asset is None:
            raise web.HTTPNotFound(reason="no such asset")
        site = await asset_rows.site_of(conn, asset.site_id) if asset.site_id else None
        tickets = (await asset_rows.history(conn, [asset.id], per_asset=10))[asset.id]
        upkeep = await asset_maintenance(conn, hub.settings, asset.id, hub.clock())
    out = _asset_json(hub, asset)
    out["site"] = site
    out["tickets"] = [
        {
            "number": t.number,
            "title": t.title,
            "state": t.state,
            "created_at": t.created_at.isoformat(),
        }
        for t in tickets
    ]
    out["maintenance"] = upkeep  # open suggestions and PM schedules
    return web.json_response(out)


async def healthz(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    try:
        async with hub.db.read() as s:
            await repo.count_tickets(s)
    except Exception as exc:  # the health check's whole point is to report this
        return web.json_response({"status": "unhealthy", "database": repr(exc)}, status=503)
    return web.json_response(
        {"status": "ok", "adapters": sorted(hub.adapters), "speech_model": hub.speech_model}
    )


async def metrics(request: web.Request) -> web.Response:
    """For a scraper on this machine (or an exempt address), else with a token as ``/api``."""
    hub = request.app[HUB]
    client = client_of(request, hub.settings)
    if not (_loopback(client) or hub.access.limiter.exempt(client)):
        await _check_token(request)
    async with hub.db.read() as s:
        counts = await outbox.counts(s)
    for state in ("pending", "sending", "sent", "dead", "superseded"):
        hub.metrics.outbox_depth.labels(state).set(counts.get(state, 0))
    return web.Response(
        body=hub.metrics.render(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def _loopback(client: str) -> bool:
    try:
        return ipaddress.ip_address(client).is_loopback
    except ValueError:
        return False


def routes() -> list[web.RouteDef]:
    return [
        web.get("/healthz", healthz),
        web.get("/metrics", metrics),
        web.get("/api/tickets", list_tickets),
        web.get("/api/tickets/{ref}", get_ticket),
        web.get("/api/assets", list_assets),
        web.get("/api/assets/{code}", get_asset),
    ]
