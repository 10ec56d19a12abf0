"""The daily health report: yesterday's figures, posted once a day to each manager's chat.

The hub looks every ``[report] check_minutes``; once the configured local time (``at``) has
passed, each recipient that has not had today's report yet gets it. Recipients are the
``[report] chats`` when given, else every manager's direct chat (their first identity on a
running platform — where the SLA escalation's ``notify_manager`` step reaches them).

Once per day and chat, across restarts and any number of workers: each post is one unit of
work whose write starts by inserting its claim (``daily_reports``, unique per local day and
chat) and also holds the outbox row (whose idempotency key names the day and the chat); a
worker that loses the race gets an ``IntegrityError`` and writes nothing. A hub that was down
at ``at`` posts when it comes back, the same day; a day it missed entirely is not made up.

What it says (``compose``), for the local day before: tickets opened and closed and open now;
the share of the day's new tickets whose first-response clock was breached; SLA breaches and
transfers made that day; the CSAT given that day; the commonest categories and written root
causes of the tickets resolved; preventive-maintenance suggestions made; a dashboard link.
``gongdan report --date`` prints the same text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.config import Settings
from bot.directory import Directory
from bot.events import Address, Text
from bot.kpi import Period
from bot.texts import TEXTS, say
from bot.unit import Turn
from bot.work import Work
from storage import kpi
from storage.kpi import Scope
from storage.models import TABLES

__all__ = ["Recipient", "compose", "due_day", "recipients", "run"]

log = logging.getLogger(__name__)
D = TABLES["daily_reports"]


@dataclass(frozen=True, slots=True)
class Recipient:
    address: Address
    locale: str


def recipients(settings: Settings, directory: Directory, platforms: set[str]) -> list[Recipient]:
    """Where the report goes: the configured chats, else each manager's direct chat (on a
    running platform)."""
    rs = settings.report
    if rs.chats:
        locale = rs.locale or settings.locale
        found = [Recipient(Address.parse(ref), locale) for ref in rs.chats]
    else:
        found = []
        for person in directory.people.values():
            if person.role != "manager":
                continue
            address = directory.direct_address(person.id, platforms)
            if address is not None:
                found.append(Recipient(address, person.locale or settings.locale))
    unique = {r.address.ref: r for r in found if r.address.platform in platforms}
    return list(unique.values())


def due_day(settings: Settings, now: datetime) -> date | None:
    """The day whose report is due at ``now`` (yesterday, once ``at`` has passed today)."""
    local = now.astimezone(settings.tz)
    hour, minute = settings.report.hour_minute
    if local.time() < time(hour, minute):
        return None
    return local.date() - timedelta(days=1)


def _pct(part: int, whole: int, locale: str) -> str:
    return f"{100 * part / whole:.0f}%" if whole else say("report.na", locale)


def _category(name: str, locale: str) -> str:
    key = f"dashboard.category.{name}"
    return say(key, locale) if key in TEXTS else name


async def compose(
    conn: AsyncConnection,
    settings: Settings,
    day: date,
    locale: str,
    *,
    teams: frozenset[str] | None = None,
) -> str:
    """The report on local ``day``, in ``locale`` (``teams``: only theirs)."""
    scope = Scope(teams=teams)
    edges = Period(day, day, settings.tz).edges()
    daily = (await kpi.daily(conn, scope, edges)).get(-1, kpi.DayFigures(-1))
    open_now = sum((await kpi.board(conn, scope)).values())
    late, opened = await kpi.respond_overdue(conn, scope, edges)
    rated = await kpi.csat(conn, scope, edges, low_score=settings.csat.low_score)
    cats, causes = await kpi.causes(conn, scope, edges)
    pm = await kpi.suggestions(conn, edges, teams=teams)
    sep = "，" if locale == "zh" else ", "
    where = say("report.scope", locale, teams=sep.join(sorted(teams))) if teams else ""
    lines = [
        say("report.title", locale, day=day.isoformat(), scope=where),
        say("report.tickets", locale, opened=daily.opened, closed=daily.closed, open=open_now),
        say("report.respond_overdue", locale, rate=_pct(late, opened, locale), late=late,
            opened=opened),
        say("report.breaches", locale, n=await kpi.breaches(conn, scope, edges)),
        say("report.transfers", locale, n=await kpi.transfers(conn, scope, edges)),
        say("report.csat", locale, avg=f"{rated.average:.1f}", n=rated.count, low=rated.low)
        if rated.average is not None
        else say("report.csat_none", locale),
    ]  # fmt: skip
    if cats:
        items = sep.join(f"{_category(c, locale)} {n}" for c, n in cats)
        lines.append(say("report.causes", locale, items=items))
    else:
        lines.append(say("report.causes_none", locale))
    if causes:
        lines.append(
            say("report.root_causes", locale, items=sep.join(f"{c} {n}" for c, n in causes))
        )
    if pm:
        lines.append(say("report.suggestions", locale))
        lines += [
            say("report.suggestion", locale, asset=name, count=count, days=f"{days:g}")
            for name, count, days in pm
        ]
    query = urlencode({"from": day.isoformat(), "to": day.isoformat(), "lang": locale})
    url = f"{settings.public_url.rstrip('/')}/dashboard?{query}"
    lines.append(say("report.link", locale, url=url))
    return "\n".join(lines)


async def run(work: Work, now: datetime) -> int:
    """Post the day's report to every recipient that has not had it; how many this worker
    posted."""
    settings = work.env.settings
    if not settings.report.enabled:
        return 0
    day = due_day(settings, now)
    if day is None:
        return 0
    everyone = recipients(settings, work.env.directory, set(work.env.platforms))
    if not everyone:
        return 0
    async with work.db.reads() as conn:
        done = set(
            (await conn.execute(D.select().with_only_columns(D.c.chat).where(D.c.day == day)))
            .scalars()
            .all()
        )
        todo = [r for r in everyone if r.address.ref not in done]
        texts = {
            locale: await compose(conn, settings, day, locale)
            for locale in {r.locale for r in todo}
        }
    posted = 0
    for recipient in todo:
        if await _post(work, recipient, day, texts[recipient.locale], now):
            posted += 1
    return posted


async def _post(work: Work, recipient: Recipient, day: date, text: str, now: datetime) -> bool:
    chat = recipient.address.ref
    key = f"report:{day.isoformat()}:{chat}"
    try:
        async with work.unit(now=now) as tx:
            Turn(tx.unit, key).send(recipient.address, Text(text), key=key[:300])

            async def claim(conn: AsyncConnection) -> None:
                await conn.execute(D.insert().values(day=day, chat=chat, created_at=now))

            tx.before_write.append(claim)
    except IntegrityError as exc:
        log.info("the %s report to %s was posted by another worker (%s)", day, chat, exc.orig)
        return False
    return True
