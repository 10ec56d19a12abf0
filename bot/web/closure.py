"""Console routes of closure that proves the work, each behind the staff member's own session
(``bot.web.auth.staff_of``: cookie + CSRF from the console page, or ``Bearer gds_…``):

- ``POST /console/api/tickets/{ref}/evidence``: the body is the photo itself (JPEG, PNG or
  WebP by its magic bytes, at most ``[closure] photo_max_mb``). 201 when stored; 200 with
  ``duplicate`` when the same picture is on the ticket already; 413 too large, 415 not an
  image, 403 not the assignee (or a dispatcher or manager), 409 closed or full — nothing is
  stored on any refusal.
- ``POST /console/api/evidence[?ticket=GD-12]``: the same from the console's chat box: for the
  ticket named, else for the sender's one ticket being worked on (409 naming them when there
  are several, or none).
- ``GET /console/api/tickets/{ref}/evidence``: the ticket's photos (facts, no bytes);
  ``…/evidence/{id}``: one photo.
- ``GET /console/api/tickets/{ref}/report.pdf``: the printable service report
  (``bot/service_report.py``).
"""

from __future__ import annotations

import asyncio
import hashlib

from aiohttp import web

from bot.closure import Photo, image_type
from bot.errors import BadRequest, Forbidden, InvalidTransition, NotAllowed, TooManyRequests
from bot.flows import closure as flow
from bot.hub import Hub
from bot.ratelimit import per_minute
from bot.service_report import service_report
from bot.texts import say
from bot.unit import Turn, Unit
from bot.web.api import HUB, ticket_ref
from bot.web.auth import staff_of
from storage import evidence
from storage.records import Person, Ticket

__all__ = ["read_photo", "routes"]

_IMAGE_HEADERS = {
    "Cache-Control": "private, max-age=3600",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}


async def _staff(request: web.Request) -> tuple[Hub, Person, str]:
    hub = request.app[HUB]
    user = await staff_of(request, hub.access)
    person = hub.env.staff.by_key.get(user.person.id)
    if person is None:  # (signed in, but no longer on staff)
        raise Forbidden("not on staff")
    return hub, person, person.locale or hub.settings.locale


async def read_photo(request: web.Request, limit: int, locale: str) -> Photo:
    """The request's body as an evidence photo, or the 4xx that says why not (413 over
    ``limit`` bytes — refused before the body is read when it says its length —, 415 not
    JPEG, PNG or WebP, 400 empty)."""
    too_large = say("closure.photo.too_large", locale, limit=f"{limit / 1024 / 1024:g}")
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length,
                                            reason=too_large)  # fmt: skip
    data = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(data),
                                                reason=too_large)  # fmt: skip
    if not data:
        raise BadRequest("the body is empty: send the photo itself")
    media_type = image_type(bytes(data))
    if media_type is None:
        raise web.HTTPUnsupportedMediaType(reason=say("closure.photo.not_image", locale))
    return Photo(bytes(data), media_type, hashlib.sha256(data).hexdigest())


async def _ticket(unit: Unit, ref: int | str) -> Ticket:
    ticket = await unit.ticket(ref) if isinstance(ref, int) else await unit.ticket_by_number(ref)
    if ticket is None:
        raise web.HTTPNotFound(reason=say("error.unknown_ticket", unit.env.settings.locale))
    return ticket


async def upload_evidence(request: web.Request) -> web.Response:
    """A photo for the ticket the path names."""
    if request.query:
        raise BadRequest(f"unknown query parameter {next(iter(request.query))[:40]!r}")
    return await _upload(request, request.match_info["ref"])


async def upload_evidence_in_chat(request: web.Request) -> web.Response:
    """A photo sent from the console's chat box: for the ticket ``?ticket=GD-12`` names, else
    for the sender's one ticket being worked on (409 naming them when there are several)."""
    unknown = set(request.query) - {"ticket"}
    if unknown or len(request.query.getall("ticket", [])) > 1:
        raise BadRequest("only 'ticket' (GD-<n>), once, may be given")
    return await _upload(request, request.query.get("ticket"))


async def _upload(request: web.Request, ref_text: str | None) -> web.Response:
    hub, person, locale = await _staff(request)
    ref = ticket_ref(ref_text) if ref_text is not None else None
    settings = hub.settings.closure
    photo = await read_photo(request, settings.photo_max_bytes, locale)
    async with hub.work.unit() as tx:
        turn = Turn(tx.unit, f"evidence:{person.id}:{photo.sha256[:24]}", person=person)
        if ref is not None:
            ticket = await _ticket(tx.unit, ref)
        else:
            mine = await flow.photo_target(turn, "")
            if len(mine) != 1:
                numbers = "、".join(t.number or "" for t in mine)
                key = "closure.photo.which" if mine else "closure.photo.no_ticket"
                raise web.HTTPConflict(reason=say(key, locale, numbers=numbers))
            ticket = mine[0]
        number = ticket.number
        try:
            with tx.unit.turn():
                outcome, count = await flow.add_photo(turn, ticket, photo, via="console")
        except NotAllowed:
            raise Forbidden(say("closure.photo.not_yours", locale, number=number)) from None
        except InvalidTransition:
            raise web.HTTPConflict(
                reason=say("closure.photo.closed", locale, number=number)
            ) from None
        if outcome == "full":
            limit = settings.photos_per_ticket
            raise web.HTTPConflict(
                reason=say("closure.photo.too_many", locale, number=number, limit=limit)
            )
        tx.idle = outcome == "duplicate"  # the same picture again: nothing changes
    if outcome == "duplicate":
        text = say("closure.photo.duplicate", locale, number=number)
        return web.json_response(
            {"number": number, "photos": count, "duplicate": True, "message": text}
        )
    text = say("closure.photo.saved", locale, number=number, count=count)
    return web.json_response(
        {"number": number, "photos": count, "duplicate": False, "message": text}, status=201
    )


async def _read_ticket(hub: Hub, ref: int | str) -> Ticket:
    async with hub.work.reader() as tx:
        return await _ticket(tx.unit, ref)


async def list_evidence(request: web.Request) -> web.Response:
    hub, _, _ = await _staff(request)
    ticket = await _read_ticket(hub, ticket_ref(request.match_info["ref"]))
    async with hub.db.reads() as conn:
        rows = await evidence.listing(conn, ticket.id)
    base = f"/console/api/tickets/{ticket.number}/evidence"
    items = [
        {
            "id": r.id,
            "url": f"{base}/{r.id}",
            "media_type": r.media_type,
            "size": r.size,
            "sha256": r.sha256,
            "via": r.via,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    ]
    return web.json_response({"number": ticket.number, "photos": items})


async def get_evidence(request: web.Request) -> web.Response:
    hub, _, _ = await _staff(request)
    ticket = await _read_ticket(hub, ticket_ref(request.match_info["ref"]))
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 15:
        raise BadRequest("a photo's id is a whole number")
    async with hub.db.reads() as conn:
        found = await evidence.photo(conn, ticket.id, int(raw))
    if found is None:
        raise web.HTTPNotFound(reason="no such photo on this ticket")
    media_type, data = found
    return web.Response(body=data, content_type=media_type, headers=_IMAGE_HEADERS)


#: One service report drawn at a time in this process (each is a few hundred ms of CPU).
_DRAWING = asyncio.Semaphore(1)


async def report_pdf(request: web.Request) -> web.Response:
    hub, person, locale = await _staff(request)
    lang = request.query.get("lang", locale)
    if set(request.query) - {"lang"} or lang not in ("zh", "en"):
        raise BadRequest("only 'lang' (zh or en) may be given")
    rate = per_minute(hub.settings.closure.reports_per_minute)
    wait = await hub.access.limiter.hit(rate, "service-report", str(person.id))
    if wait is not None:
        raise TooManyRequests(wait, f"too many service reports; try again in {wait:.0f} s")
    ticket = await _read_ticket(hub, ticket_ref(request.match_info["ref"]))
    async with _DRAWING:
        pdf = await service_report(hub.db, hub.settings, hub.audit_key, ticket.id, lang)
    name = f"{ticket.number}-service-report.pdf"
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def routes() -> list[web.RouteDef]:
    return [
        web.post("/console/api/evidence", upload_evidence_in_chat),
        web.post("/console/api/tickets/{ref}/evidence", upload_evidence),
        web.get("/console/api/tickets/{ref}/evidence", list_evidence),
        web.get("/console/api/tickets/{ref}/evidence/{id}", get_evidence),
        web.get("/console/api/tickets/{ref}/report.pdf", report_pdf),
    ]
