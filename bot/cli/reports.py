"""What managers print: ``rules explain`` (the routing rules as an SOP, or one ticket's
scoring), ``report --date`` (the daily health report) and ``service-report`` (a ticket's PDF)."""

from __future__ import annotations

import asyncio
import sys
from datetime import date
from pathlib import Path

from bot.adapters.codec import TokenCodec
from bot.assets import AssetIndex
from bot.cli.admin import audit_key_of
from bot.config import Settings
from bot.directory import Directory
from bot.env import Env, Staff
from bot.errors import BadRequest
from bot.flows.reports import compose
from bot.flows.routing import job_of, ranking
from bot.metrics import Metrics
from bot.routing_explain import explain_ticket, sop
from bot.service_report import UnknownReportTicket, service_report
from bot.unit import Unit
from bot.web.api import ticket_ref
from storage import assets, repo
from storage.db import opened
from storage.ids import Ids
from storage.models import utcnow
from storage.unit import Store

__all__ = ["report_command", "rules_command", "service_report_command"]


async def rules_command(settings: Settings, number: str | None, locale: str | None) -> int:
    """``rules explain``: the rule set as an SOP, or ``--ticket``'s scoring from the database."""
    locale = locale or settings.locale
    if number is None:
        print(sop(settings, locale), end="")
        return 0
    async with opened(settings.database.url) as db:
        async with db.read() as s:
            staff = Staff(*await repo.staff(s))
        async with db.reads() as conn:
            env = Env(settings=settings, codec=TokenCodec(b"unused"),
                      directory=Directory(settings), metrics=Metrics(), platforms=(),
                      staff=staff, assets=AssetIndex(await assets.entries(conn)))  # fmt: skip
            unit = Unit(env, Store(conn, Ids()), utcnow())
            ids = await unit.reads.ticket_ids_by_number([number])
            await unit.preload(ids.values())
            ticket = next(iter(unit.tickets.values()), None)
            if ticket is None:
                print(f"gongdan rules explain: no ticket {number!r}", file=sys.stderr)
                return 1
            scored = await ranking(unit, job_of(unit, ticket))
            assignee = unit.known_person(ticket.assignee_id)
            asset = env.assets.get(ticket.asset_id)
    print(explain_ticket(ticket, scored, assignee=assignee.name if assignee else None,
                         asset=asset.code if asset else None, locale=locale), end="")  # fmt: skip
    return 0


async def report_command(settings: Settings, day: str, lang: str | None, team: str | None) -> int:
    """``report --date``: the daily health report of that local day, as it is posted."""
    try:
        when = date.fromisoformat(day)
    except ValueError:
        print(f"gongdan report: --date {day!r} is not a date YYYY-MM-DD", file=sys.stderr)
        return 2
    if team is not None and team not in {t.id for t in settings.teams}:
        print(f"gongdan report: no team {team!r}", file=sys.stderr)
        return 2
    async with opened(settings.database.url) as db, db.reads() as conn:
        teams = frozenset({team}) if team else None
        text = await compose(conn, settings, when, lang or settings.locale, teams=teams)
    print(text)
    return 0


async def service_report_command(
    settings: Settings, ref: str, output: Path, locale: str | None
) -> int:
    """``service-report``: the ticket's printable report (bot/service_report.py) to a file."""
    try:
        which = ticket_ref(ref)
    except BadRequest as exc:
        print(f"gongdan service-report: {exc}", file=sys.stderr)
        return 2
    key = audit_key_of(settings)  # (None: the report says the chain could not be checked)
    async with opened(settings.database.url) as db:
        try:
            pdf = await service_report(db, settings, key, which, locale or settings.locale)
        except UnknownReportTicket:
            print(f"gongdan service-report: no ticket {ref!r}", file=sys.stderr)
            return 1
    await asyncio.to_thread(output.write_bytes, pdf)
    print(f"{output} ({len(pdf) // 1024} KB)")
    return 0
