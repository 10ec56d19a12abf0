"""The REST API (bearer token from ``[api] token``), health and metrics."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from bot.hub import Hub
from bot.sla.view import clock_status
from bot.texts import say
from bot.tickets import TicketState, state_label
from storage import outbox, repo
from storage.models import Ticket
from storage.unit import Store

__all__ = ["routes"]

HUB = web.AppKey("hub", Hub)


def _check_token(request: web.Request) -> None:
    token = request.app[HUB].settings.api.token
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
        "version": t.version,
    }
    if events:
        # Each clock: due time, business time left, paused or not, breached, escalation.
        policies, now = hub.env.policies, hub.clock()
        store = Store(await s.connection(), hub.work.ids)
        clocks = (await store.clocks([t.id]))[t.id] if policies else []
        out["clocks"] = [clock_status(c, now, policies) for c in clocks if policies]
        out["events"] = [
            {
                "seq": e.seq,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "kind": e.kind,
                "from": e.from_state,
                "to": e.to_state,
                "via": e.via,
                "data": e.data,
                "hash": e.hash,
            }
            for e in await repo.ticket_events(s, t.id)
        ]
    return out


async def list_tickets(request: web.Request) -> web.Response:
    _check_token(request)
    hub = request.app[HUB]
    q = request.query
    states = [x for x in q.get("state", "").split(",") if x]
    for st in states:
        if st not in TicketState.__members__.values():
            raise web.HTTPBadRequest(reason=f"unknown state {st!r}")
    try:
        limit = min(int(q.get("limit", 100)), 1000)
        offset = int(q.get("offset", 0))
    except ValueError:
        raise web.HTTPBadRequest(reason="limit and offset must be numbers") from None
    async with hub.db.read() as s:
        assignee_id = None
        if "assignee" in q:
            person = await repo.person_by_key(s, q["assignee"])
            if person is None:
                return web.json_response({"tickets": []})
            assignee_id = person.id
        tickets = await repo.list_tickets(
            s,
            states=states,
            priority=q.get("priority"),
            assignee_id=assignee_id,
            limit=limit,
            offset=offset,
        )
        items = [await _ticket_json(hub, s, t, events=False) for t in tickets]
    return web.json_response({"tickets": items})


async def get_ticket(request: web.Request) -> web.Response:
    _check_token(request)
    hub = request.app[HUB]
    ref = request.match_info["ref"]
    async with hub.db.read() as s:
        ticket = (
            await repo.get_ticket(s, int(ref))
            if ref.isdigit()
            else await repo.ticket_by_number(s, ref)
        )
        if ticket is None:
            raise web.HTTPNotFound(reason=say("error.unknown_ticket", hub.settings.locale))
        return web.json_response(await _ticket_json(hub, s, ticket, events=True))


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
    hub = request.app[HUB]
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


def routes() -> list[web.RouteDef]:
    return [
        web.get("/healthz", healthz),
        web.get("/metrics", metrics),
        web.get("/api/tickets", list_tickets),
        web.get("/api/tickets/{ref}", get_ticket),
    ]
