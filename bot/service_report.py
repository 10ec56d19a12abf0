"""The printable service report of a ticket: HTML drawn here, made a PDF by WeasyPrint.

What the customer signs off and the manager files: the ticket, its timeline (the audit trail's
milestones, in the configured zone), the diagnosis, the parts, the root cause, the closure
checklist, the evidence photos as thumbnails, and the head of the ticket's audit chain with the
result of checking it (``storage.trail.seal``, the same check as ``gongdan audit verify``): a
printed report names the exact record it was made from, and a later edit of that record shows.

WeasyPrint lays the page out with Pango: CJK text needs a CJK font on the machine (Debian's
``fonts-noto-cjk`` or ``fonts-wqy-microhei``; ``.ci/run`` installs the latter).
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.config import Settings
from bot.texts import local_time, say
from bot.ticket_labels import action_label_of, state_label, state_label_of
from bot.tickets import Category, TicketState
from storage import evidence, repo
from storage.db import Database
from storage.models import Ticket, TicketEvent, utcnow
from storage.trail import seal

log = logging.getLogger(__name__)
_THUMB_PX = 640  # a thumbnail's longer side: sharp at 52 mm wide, small in the file

__all__ = ["UnknownReportTicket", "report_html", "service_report", "verify_chain"]

#: Audit rows that are milestones of the work (SLA nags, refusals and the like are not).
_SHOWN = frozenset(
    {"created", "transition", "comment", "diagnosis", "checklist", "evidence", "close_notice"}
)
_CATEGORY = {
    Category.EQUIPMENT_FAILURE: ("设备故障", "Equipment failure"),
    Category.NETWORK_IT: ("网络/IT", "Network / IT"),
    Category.SOFTWARE_CONFIG: ("软件/配置", "Software / configuration"),
    Category.SAFETY: ("安全", "Safety"),
    Category.FACILITY: ("设施", "Facility"),
    Category.CONSULTATION: ("咨询", "Consultation"),
    Category.OTHER: ("其他", "Other"),
    Category.PREVENTIVE_MAINTENANCE: ("预防性维护", "Preventive maintenance"),
}
_CSS = """
@page { size: A4; margin: 16mm 14mm; @bottom-right { content: counter(page) " / " counter(pages);
  font-size: 8pt; color: #666; } }
body { font-family: "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Source Han Sans SC",
  "Microsoft YaHei", "PingFang SC", sans-serif; font-size: 10pt; color: #111; }
h1 { font-size: 16pt; margin: 0 0 4mm; } h2 { font-size: 11.5pt; margin: 6mm 0 2mm;
  border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; } td, th { border: 1px solid #bbb;
  padding: 1.2mm 2mm; vertical-align: top; text-align: left; }
th { background: #f0f0f0; width: 26mm; font-weight: normal; }
.timeline th { width: auto; } .timeline td:first-child { white-space: nowrap; }
.mono { font-family: "DejaVu Sans Mono", monospace;
  font-size: 8pt; word-break: break-all; }
.photos img { width: 52mm; height: 39mm; object-fit: cover; margin: 0 2mm 2mm 0;
  border: 1px solid #bbb; }
.bad { color: #b00; } .ok { color: #070; } .muted { color: #666; }
"""


class UnknownReportTicket(LookupError):
    """No ticket by that id or number."""


def verify_chain(ticket: Ticket, events: Sequence[TicketEvent], key: bytes | None) -> str | None:
    """Why the ticket's audit chain is not intact, or None when it is: every row links to the
    one before, its content matches its hash, and the last is the head the ticket holds."""
    seq, head = 0, "0" * 64
    for e in events:
        where = f"#{e.seq}"
        if e.seq != seq + 1:
            return f"{where}: sequence gap"
        if e.prev_hash != head:
            return f"{where}: link broken"
        if e.keyed and key is None:
            return "no audit key to check with"
        if seal(e.prev_hash, e, key if e.keyed else None) != e.hash:
            return f"{where}: content does not match its hash"
        seq, head = e.seq, e.hash
    if (seq, head) != (ticket.audit_seq, ticket.audit_hash):
        return "the ticket's head is not its last row"
    return None


def _e(value: object) -> str:
    return html.escape(str(value))


def _pick(pair: tuple[str, str], locale: str) -> str:
    return pair[0] if locale == "zh" else pair[1]


def _what(e: TicketEvent, locale: str) -> str:
    data: dict[str, Any] = e.data or {}
    match e.kind:
        case "transition":
            text = say(
                "svc.event.transition",
                locale,
                action=action_label_of(str(data.get("action", "")), locale),
                from_state=state_label_of(e.from_state or "", locale),
                to_state=state_label_of(e.to_state or "", locale),
            )
            if data.get("note"):
                text += " · " + say("svc.event.note", locale, note=data["note"])
            return text
        case "checklist":
            key = "svc.event.unchecked" if data.get("undone") else "svc.event.checklist"
            return say(key, locale, item=data.get("item", ""))
        case "evidence" if data.get("root_cause"):
            return say("svc.event.root_cause", locale, cause=data["root_cause"])
        case "evidence":
            return say("svc.event.evidence", locale)
        case "created":
            return say("svc.event.created", locale, text=str(data.get("text", ""))[:200])
        case "diagnosis":
            return say("svc.event.diagnosis", locale)
        case "close_notice":
            return say("svc.event.close_notice", locale)
        case "comment":
            return say("svc.event.note", locale, note=data.get("text", ""))
        case _:
            return e.kind


def _who(e: TicketEvent, locale: str) -> str:
    return say("svc.system", locale) if e.actor_id is None and e.actor == "system" else e.actor


def _parts(ticket: Ticket) -> list[str]:
    rows = ticket.parts or (ticket.diagnosis or {}).get("parts_needed") or []
    return [f"{p.get('name', '')} × {p.get('qty', 1)}" for p in rows if isinstance(p, dict)]


def _root_cause(ticket: Ticket) -> str | None:
    if ticket.root_cause and ticket.root_cause.strip():
        return ticket.root_cause.strip()
    cause = (ticket.diagnosis or {}).get("suspected_cause")
    return str(cause) if cause else None


def report_html(
    ticket: Ticket,
    events: Sequence[TicketEvent],
    names: dict[int, str],
    photos: Sequence[tuple[int, str, bytes]],
    problem: str | None,
    settings: Settings,
    locale: str,
    now: datetime,
) -> str:
    """The report as one self-contained HTML page (photos inline as data URLs)."""
    tz = settings.tz
    none = say("svc.none", locale)

    def row(key: str, value: object) -> str:
        return f"<tr><th>{_e(say(key, locale))}</th><td>{_e(value or none)}</td></tr>"

    state = state_label(TicketState(ticket.state), locale)
    facts = [
        row("svc.ticket", f"{ticket.number} · {ticket.title}"),
        row("svc.priority", ticket.priority),
        row("svc.category", _pick(_CATEGORY.get(Category(ticket.category), ("", "")), locale)),
        row("svc.state", state),
        row("svc.reporter", names.get(ticket.reporter_id)),
        row("svc.assignee", names.get(ticket.assignee_id or 0)),
        row("svc.site", ticket.site),
        row("svc.device", ticket.device_code),
        row("svc.created", local_time(ticket.created_at, tz)),
        row("svc.closed", local_time(ticket.closed_at, tz) if ticket.closed_at else None),
    ]
    timeline = "".join(
        f"<tr><td>{_e(local_time(e.at, tz))}</td><td>{_e(_who(e, locale))}</td>"
        f"<td>{_e(_what(e, locale))}</td></tr>"
        for e in events
        if e.kind in _SHOWN
    )
    diagnosis = ticket.diagnosis or {}
    diag_rows = [
        (say("diag.symptom", locale), diagnosis.get("symptom")),
        (say("diag.cause", locale), diagnosis.get("suspected_cause")),
        (say("diag.actions", locale), "、".join(map(str, diagnosis.get("actions_taken") or []))),
        (say("diag.transcript", locale), diagnosis.get("transcript")),
    ]
    diag = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in diag_rows if v)
    checks = "".join(
        f"<li>☑ {_e(c.get('item'))} <span class=muted>({_e(c.get('by'))}, "
        f"{_e(local_time(datetime.fromisoformat(str(c['at'])), tz))})</span></li>"
        for c in ticket.checklist or []
    )
    images = "".join(
        f'<img alt="#{i}" src="data:{_e(kind)};base64,{base64.b64encode(data).decode()}">'
        for i, kind, data in photos
    )
    verdict = (
        f'<span class="ok">{_e(say("svc.audit_ok", locale))}</span>'
        if problem is None
        else f'<span class="bad">{_e(say("svc.audit_bad", locale, problem=problem))}</span>'
    )
    head = say("svc.audit_hash", locale, seq=ticket.audit_seq)
    parts = _parts(ticket)
    title = f"{say('svc.title', locale)} · {ticket.number}"
    return f"""<!doctype html><html lang="{locale}"><head><meta charset="utf-8">
<title>{_e(title)}</title><style>{_CSS}</style></head><body>
<h1>{_e(title)}</h1>
<table>{"".join(facts)}</table>
<h2>{_e(say("svc.description", locale))}</h2><p>{_e(ticket.description or none)}</p>
<h2>{_e(say("svc.timeline", locale))}</h2>
<table class="timeline"><tr><th>{_e(say("svc.when", locale))}</th>
<th>{_e(say("svc.who", locale))}</th><th>{_e(say("svc.what", locale))}</th></tr>
{timeline}</table>
<h2>{_e(say("svc.diagnosis", locale))}</h2>{f"<table>{diag}</table>" if diag else _e(none)}
<h2>{_e(say("svc.parts", locale))}</h2><p>{_e("；".join(parts) if parts else none)}</p>
<h2>{_e(say("svc.root_cause", locale))}</h2><p>{_e(_root_cause(ticket) or none)}</p>
<h2>{_e(say("svc.checklist", locale))}</h2>{f"<ul>{checks}</ul>" if checks else _e(none)}
<h2>{_e(say("svc.evidence", locale))}</h2>
<div class="photos">{images or _e(none)}</div>
<h2>{_e(say("svc.audit", locale))}</h2>
<p>{_e(head)}:<br><span class="mono">{_e(ticket.audit_hash)}</span><br>{verdict}</p>
<p class="muted">{_e(say("svc.generated", locale, at=local_time(now, tz)))}</p>
</body></html>"""


def _thumbnail(data: bytes) -> bytes | None:
    """The photo as a small JPEG (so twenty 5 MB photos make a report of a few hundred KB);
    None for what cannot be decoded — a broken file or a decompression bomb — which the report
    then leaves out rather than fail."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.thumbnail((_THUMB_PX, _THUMB_PX))
            out = io.BytesIO()
            picture.convert("RGB").save(out, "JPEG", quality=80)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        log.warning("an evidence photo could not be drawn in a report: %r", exc)
        return None


def _pdf(page: str) -> bytes:
    # (WeasyPrint loads Pango and its fonts on import: only where a report is made)
    from weasyprint import HTML

    return HTML(string=page).write_pdf()  # type: ignore[no-any-return]


async def service_report(
    db: Database,
    settings: Settings,
    key: bytes | None,
    ref: int | str,
    locale: str,
    *,
    now: datetime | None = None,
) -> bytes:
    """The PDF of ticket ``ref`` (its id, or its number ``GD-<n>``). The layout runs in a
    thread: a report takes a fraction of a second of CPU, not the event loop's."""
    async with db.read() as s:
        ticket = (
            await repo.get_ticket(s, ref)
            if isinstance(ref, int)
            else await repo.ticket_by_number(s, ref)
        )
        if ticket is None:
            raise UnknownReportTicket(str(ref))
        events = await repo.ticket_events(s, ticket.id)
        people = await repo.people_by_id(
            s, {i for i in (ticket.reporter_id, ticket.assignee_id) if i}
        )
        names = {i: p.name for i, p in people.items()}
    async with db.reads() as conn:
        photos = await evidence.photos(conn, ticket.id)
    problem = verify_chain(ticket, events, key)

    def draw() -> bytes:
        thumbs = [(i, "image/jpeg", small) for i, _, data in photos
                  if (small := _thumbnail(data)) is not None]  # fmt: skip
        page = report_html(
            ticket, events, names, thumbs, problem, settings, locale, now or utcnow()
        )
        return _pdf(page)

    return await asyncio.to_thread(draw)
