"""Preventive maintenance: suggestions for assets that keep failing, and PM tickets on schedule.

The hub runs ``run`` every ``[maintenance] check_minutes`` (and at start-up). It does two things:

- **Suggest.** An asset with ``suggest_after`` tickets created within ``suggest_days`` (PM
  tickets and merged reports do not count) gets one post to the team(s) those tickets went to —
  "3号注塑机 30 天内第 3 次报修（GD-12、GD-15、GD-19），建议安排预防性维护。" — and a row that
  the asset's API shows. Not again for that asset within ``suggest_days``.
- **Open PM tickets.** Each ``[[maintenance.plans]]`` entry covers one asset or a category of
  them. A calendar plan is due every ``every_days``: *fixed* from its first due date whenever the
  last one was done, *floating* ``every_days`` after the plan's last PM ticket was resolved (or
  cancelled); its ticket opens ``lead_days`` before the due day (the day's start, in the
  configured zone). A meter plan is due each time the asset's meter (imported readings) passes a
  multiple of ``meter_every``; only the highest mark passed is opened, missed ones are not made
  up. A PM ticket is created like any other — routed, its clocks started, the audit's "created"
  row, staff cards — with the checklist in its description and on its card.

Why a periodic sweep rather than a check in the ticket-creating unit: the sweep adds nothing to
the intake's path (its statements are counted, ``tests/test_statements.py``), sees tickets from
every path (chat, voice, API) without each one calling it, and runs the same way on any number
of workers; what it costs is a suggestion up to ``check_minutes`` after the ticket that caused
it, which is soon enough for advice about maintenance.

Once per due date, across restarts and workers: each opening is one unit of work whose write
starts by inserting the run (``pm_runs``, unique per plan, asset and slot); a worker that loses
the race gets an ``IntegrityError`` and its whole unit — ticket, cards, messages — is not
written. Suggestions are made the same way (unique per asset and the ticket that made the
count).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot import lifecycle
from bot.config import MaintenancePlan, Settings
from bot.events import Text
from bot.flows import routing
from bot.sla.clocks import sync
from bot.texts import say
from bot.tickets import Category, TicketState
from bot.unit import Turn
from bot.work import Work
from storage import maintenance as pm_rows
from storage.maintenance import PlanAsset, Run
from storage.records import Ticket

__all__ = ["Due", "asset_maintenance", "calendar_due", "meter_due", "run"]

log = logging.getLogger(__name__)

PM = Category.PREVENTIVE_MAINTENANCE.value


@dataclass(frozen=True, slots=True)
class Due:
    """A plan's due date (or meter mark) on an asset that has no ticket yet."""

    plan: MaintenancePlan
    asset: PlanAsset
    slot: str
    due_day: date | None = None
    due_meter: float | None = None

    def due_at(self, tz: ZoneInfo) -> datetime | None:
        if self.due_day is None:
            return None
        return datetime.combine(self.due_day, time(0), tz).astimezone(UTC)


# ---------------------------------------------------------------------------- deciding


def covers(plan: MaintenancePlan, asset: PlanAsset) -> bool:
    if plan.asset is not None:
        return plan.asset.lower() == asset.code.lower()
    return plan.category == asset.category


def first_due(plan: MaintenancePlan, asset: PlanAsset, tz: ZoneInfo) -> date:
    """The plan's first due date: ``start``, else one interval after the asset was installed
    (or registered)."""
    assert plan.every_days is not None
    if plan.start is not None:
        return plan.start
    base = asset.install_date or asset.created_at.astimezone(tz).date()
    return base + timedelta(days=plan.every_days)


def calendar_due(
    plan: MaintenancePlan, asset: PlanAsset, last: Run | None, today: date, tz: ZoneInfo
) -> date | None:
    """The due date whose ticket should be open by ``today`` and is not, if any."""
    assert plan.every_days is not None
    every = timedelta(days=plan.every_days)
    horizon = today + timedelta(days=plan.lead_days)  # opened lead_days before it is due
    first = first_due(plan, asset, tz)
    if plan.floating:
        if last is not None and last.done_at is None:
            return None  # the last one is still being worked on
        if last is not None:
            assert last.done_at is not None
            due = last.done_at.astimezone(tz).date() + every
        else:
            due = max(first, today)  # (a plan new to an old machine: due now, not in 2015)
    else:
        if horizon < first:
            return None
        due = first + (horizon - first) // every * every  # the newest period that has begun
    if due > horizon:
        return None
    if last is not None and last.due_at is not None and last.due_at.astimezone(tz).date() >= due:
        return None  # opened already
    return due


def meter_due(plan: MaintenancePlan, asset: PlanAsset, last: Run | None) -> float | None:
    """The highest multiple of ``meter_every`` the meter has passed, if no ticket has been
    opened for it (or a higher one) yet."""
    assert plan.meter_every is not None
    if asset.meter is None:
        return None
    mark = math.floor(asset.meter / plan.meter_every) * plan.meter_every
    if mark <= 0:
        return None
    if last is not None and last.due_meter is not None and last.due_meter >= mark:
        return None
    return float(mark)


def due_items(
    plans: Sequence[MaintenancePlan],
    assets: Sequence[PlanAsset],
    latest: dict[tuple[str, int], Run],
    today: date,
    tz: ZoneInfo,
) -> list[Due]:
    out: list[Due] = []
    for plan in plans:
        for asset in assets:
            if not covers(plan, asset):
                continue
            last = latest.get((plan.key, asset.id))
            if plan.meter_every is not None:
                mark = meter_due(plan, asset, last)
                if mark is not None:
                    out.append(Due(plan, asset, f"meter:{mark:g}", due_meter=mark))
            else:
                day = calendar_due(plan, asset, last, today, tz)
                if day is not None:
                    out.append(Due(plan, asset, day.isoformat(), due_day=day))
    return out


# ---------------------------------------------------------------------------- the job


async def run(work: Work) -> tuple[int, int]:
    """One pass: open what is due, then suggest where assets keep failing. Returns (PM
    tickets opened, suggestions posted) by this worker."""
    settings = work.env.settings.maintenance
    if not settings.enabled:
        return 0, 0
    now = work.clock()
    opened = await open_due(work, now)
    suggested = await suggest(work, now) if settings.suggest_after > 0 else 0
    return opened, suggested


async def _runs_as_they_are(
    work: Work, conn: AsyncConnection, keys: set[str]
) -> dict[tuple[str, int], Run]:
    """The newest run of each plan and asset, with its ``done_at`` filled in when its ticket
    has been resolved or cancelled since the last pass (and recorded)."""
    latest = await pm_rows.latest_runs(conn, keys)
    waiting = {r.ticket_id: r for r in latest.values() if r.done_at is None and r.ticket_id}
    done = await pm_rows.finished(conn, waiting.keys())
    if done:
        async with work.db.begin() as write:
            await pm_rows.mark_done(write, {waiting[t].id: at for t, at in done.items()})
        for ticket_id, at in done.items():
            r = waiting[ticket_id]
            latest[(r.plan_key, r.asset_id)] = Run(**{**_fields(r), "done_at": at})
    return latest


def _fields(r: Run) -> dict[str, Any]:
    return {name: getattr(r, name) for name in Run.__slots__}


async def open_due(work: Work, now: datetime) -> int:
    plans = work.env.settings.maintenance.plans
    if not plans:
        return 0
    tz = work.env.settings.tz
    async with work.db.reads() as conn:
        codes = {p.asset for p in plans if p.asset is not None}
        categories = {p.category for p in plans if p.category is not None}
        assets = await pm_rows.plan_assets(conn, codes, categories)
        latest = await _runs_as_they_are(work, conn, {p.key for p in plans})
    known = {a.code.lower() for a in assets}
    for code in sorted(c for c in codes if c.lower() not in known):
        log.warning("maintenance plan for asset %r: no such active asset", code)
    opened = 0
    for due in due_items(plans, assets, latest, now.astimezone(tz).date(), tz):
        if await _open_one(work, due, now):
            opened += 1
    return opened


async def _open_one(work: Work, due: Due, now: datetime) -> bool:
    tz = work.env.settings.tz
    key = f"pm:{due.plan.key}:{due.asset.id}:{due.slot}"
    try:
        async with work.unit(now=now) as tx:
            turn = Turn(tx.unit, key)
            ticket = await open_ticket(turn, due, source=key)
            if ticket is None:
                tx.idle = True
                return False

            async def claim(conn: AsyncConnection) -> None:
                await pm_rows.insert_run(
                    conn,
                    plan_key=due.plan.key,
                    asset_id=due.asset.id,
                    slot=due.slot,
                    due_at=due.due_at(tz),
                    due_meter=due.due_meter,
                    ticket_id=ticket.id,
                    now=now,
                )

            tx.before_write.append(claim)
    except IntegrityError as exc:
        log.info("PM %s was opened by another worker (%s)", key, exc.orig)
        return False
    log.info("PM ticket opened for %s", key)
    return True


def _checklist(steps: Sequence[str]) -> str:
    return "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))


def _why(due: Due, locale: str) -> str:
    if due.due_day is not None:
        return say("pm.due", locale, due=due.due_day.isoformat())
    meter = due.asset.meter or 0.0
    return say(
        "pm.meter", locale, mark=f"{due.due_meter:g}", unit=due.asset.meter_unit or "",
        meter=f"{meter:g}",
    )  # fmt: skip


async def open_ticket(turn: Turn, due: Due, *, source: str) -> Ticket | None:
    """A PM ticket for ``due``, created as intake creates one: routed, audited ("created"),
    its clocks started, staff cards posted. None when there is nobody to raise it for (no
    staff configured)."""
    env, unit, plan, asset = turn.env, turn.unit, due.plan, due.asset
    locale = env.settings.locale
    title = (plan.title or say("pm.title", locale, asset=asset.name))[:200]
    description = say("pm.description", locale, why=_why(due, locale),
                      steps=_checklist(plan.checklist))  # fmt: skip
    entry = env.assets.get(asset.id)  # (model, category, site, preferred engineer: routing)
    job = routing.job_for(category=PM, title=title, device=asset.code, asset=entry)
    decision = await routing.decide(turn, job)
    picked = decision.winner.candidate.person_id if decision.winner else None
    assignee = env.staff.by_id.get(picked) if picked is not None else None
    team = env.directory.team_for(assignee.key if assignee else None)
    reporter = _raised_by(turn, team.lead if team is not None else None)
    if reporter is None:
        log.warning("PM %s not opened: no staff to raise it for", source)
        return None
    origin = _origin(turn, team.id if team is not None else None, reporter.key)
    pm = {
        "plan": plan.key,
        "slot": due.slot,
        "checklist": list(plan.checklist),
        **({"due": due.due_day.isoformat()} if due.due_day else {}),
        **({"meter": due.due_meter} if due.due_meter is not None else {}),
    }
    ticket = await unit.new_ticket(
        title=title,
        description=description,
        priority=plan.priority or env.settings.maintenance.priority,
        category=PM,
        state=TicketState.NEW.value,
        device_code=asset.code,
        site=asset.site_name,
        asset_id=asset.id,
        reporter_id=reporter.id,
        origin_chat=origin,
        source_event=source,
        team_key=team.id if team is not None else None,
        intake={"pm": pm},
        created_at=turn.now,
        updated_at=turn.now,
    )
    turn.record(
        ticket,
        "created",
        via="system",
        to_state=TicketState.NEW.value,
        data={"text": description, "pm": pm, "asset": asset.code},
    )
    env.metrics.tickets_created.inc()
    if picked is not None:
        await routing.assign(turn, ticket, decision)  # (its clocks start, counted from creation)
    else:
        await sync(unit, ticket, actor=None, since=ticket.created_at)  # its clocks start
    await lifecycle.publish_staff_cards(turn, ticket)  # (each chat once: assign posted some)
    return ticket


def _raised_by(turn: Turn, lead: str | None) -> Any:
    """Who a PM ticket is raised for (its "reporter", who confirms the work): the team's
    lead, else the first manager or dispatcher, else anyone on the staff."""
    staff = turn.env.staff
    if lead is not None and lead in staff.by_key:
        return staff.by_key[lead]
    people = sorted(staff.by_id.values(), key=lambda p: p.id)
    for role in ("manager", "dispatcher"):
        found = next((p for p in people if p.role == role), None)
        if found is not None:
            return found
    return people[0] if people else None


def _origin(turn: Turn, team_key: str | None, person_key: str) -> str:
    """Where a PM ticket's milestones go: the team's first chat on a running platform, else
    the raiser's direct chat."""
    env = turn.env
    for chat in env.directory.team_chats(team_key):
        if chat.platform in env.platforms:
            return chat.ref
    direct = env.directory.direct_address(person_key, set(env.platforms))
    return direct.ref if direct is not None else "web:maintenance"


# ---------------------------------------------------------------------------- suggestions


async def suggest(work: Work, now: datetime) -> int:
    settings = work.env.settings.maintenance
    since = now - timedelta(days=settings.suggest_days)
    async with work.db.reads() as conn:
        found = await pm_rows.repeats(conn, since, settings.suggest_after, skip_category=PM)
        recent = await pm_rows.suggested_since(conn, [r.asset_id for r in found], since)
        names = await pm_rows.asset_names(conn, [r.asset_id for r in found])
    posted = 0
    for repeat in found:
        if repeat.asset_id in recent:
            continue
        if await _suggest_one(work, repeat, names.get(repeat.asset_id, "?"), now):
            posted += 1
    return posted


def _days(days: float) -> str:
    return f"{days:g}"


async def _suggest_one(work: Work, repeat: pm_rows.Repeat, name: str, now: datetime) -> bool:
    env = work.env
    settings, locale = env.settings.maintenance, env.settings.locale
    numbers = [number for _, number, _ in repeat.tickets]
    teams = list(dict.fromkeys(team for _, _, team in repeat.tickets if team is not None))
    if not teams:
        fallback = env.directory.team_for(None)
        teams = [fallback.id] if fallback is not None else []
    trigger = repeat.tickets[-1][0]
    text = say(
        "pm.suggest", locale, asset=name, days=_days(settings.suggest_days),
        count=len(numbers), numbers=("、" if locale == "zh" else ", ").join(numbers),
    )  # fmt: skip
    key = f"pm-suggest:{repeat.asset_id}:{trigger}"
    try:
        async with work.unit(now=now) as tx:
            turn = Turn(tx.unit, key)
            for team in teams:
                for chat in env.directory.team_chats(team):
                    if chat.platform in env.platforms:
                        turn.send(chat, Text(text))

            async def record(conn: AsyncConnection) -> None:
                await pm_rows.insert_suggestion(
                    conn,
                    asset_id=repeat.asset_id,
                    trigger_ticket_id=trigger,
                    tickets=numbers,
                    days=settings.suggest_days,
                    teams=teams,
                    now=now,
                )

            tx.before_write.append(record)
    except IntegrityError as exc:
        log.info("suggestion %s was made by another worker (%s)", key, exc.orig)
        return False
    return True


# ---------------------------------------------------------------------------- the asset API


async def asset_maintenance(
    conn: AsyncConnection, settings: Settings, asset_id: int, now: datetime
) -> dict[str, Any]:
    """What ``GET /api/assets/{code}`` shows under "maintenance": the open suggestions (made
    since the asset's last PM ticket) and each plan covering the asset, with its next due date
    or mark and its last run."""
    tz = settings.tz
    runs = await pm_rows.runs_of(conn, asset_id)
    last_pm = runs[0].created_at if runs else None
    suggestions = await pm_rows.suggestions_of(conn, asset_id, after=last_pm)
    found = await pm_rows.plan_assets_by_id(conn, asset_id)
    schedules: list[dict[str, Any]] = []
    plans = settings.maintenance.plans
    for plan in plans if found is not None else ():
        assert found is not None
        if not covers(plan, found):
            continue
        mine = [r for r in runs if r.plan_key == plan.key]
        last = mine[0] if mine else None
        schedules.append(
            {
                "plan": plan.key,
                "kind": "meter" if plan.meter_every else "floating" if plan.floating else "fixed",
                "every_days": plan.every_days,
                "meter_every": plan.meter_every,
                "lead_days": plan.lead_days,
                "checklist": list(plan.checklist),
                "next_due": _next_due(plan, found, last, now.astimezone(tz).date(), tz),
                "last": _run_json(last) if last is not None else None,
            }
        )
    return {
        "suggestions": [
            {"tickets": s.tickets, "days": s.days, "at": s.created_at.isoformat()}
            for s in suggestions
        ],
        "schedules": schedules,
    }


def _next_due(
    plan: MaintenancePlan, asset: PlanAsset, last: Run | None, today: date, tz: ZoneInfo
) -> str | float | None:
    """The next due date (ISO) or meter mark not opened yet; None for a floating plan whose
    ticket is still being worked on."""
    if plan.meter_every is not None:
        reached = last.due_meter if last is not None and last.due_meter is not None else 0.0
        meter = asset.meter or 0.0
        return float((math.floor(max(reached, meter) / plan.meter_every) + 1) * plan.meter_every)
    assert plan.every_days is not None
    every = timedelta(days=plan.every_days)
    if plan.floating:
        if last is None:
            return max(first_due(plan, asset, tz), today).isoformat()
        if last.done_at is None:
            return None
        return (last.done_at.astimezone(tz).date() + every).isoformat()
    due = first_due(plan, asset, tz)
    opened = last.due_at.astimezone(tz).date() if last is not None and last.due_at else None
    while due < today or (opened is not None and due <= opened):
        due += every
    return due.isoformat()


def _run_json(r: Run) -> dict[str, Any]:
    return {
        "slot": r.slot,
        "ticket": r.ticket_number,
        "opened_at": r.created_at.isoformat(),
        "done_at": r.done_at.isoformat() if r.done_at else None,
    }
