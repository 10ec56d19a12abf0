"""The managers' figures: what the dashboard shows and the daily report tells.

``parse_query`` checks a request's filters (a bad value is ``BadRequest``, a team the viewer
may not see is ``Forbidden``); ``Period`` turns local days into UTC edges (days are cut in the
configured zone); ``compute`` runs the set-based queries of ``storage/kpi.py`` and shapes their
answers as plain JSON-able data, which the page, the JSON API and the report all read.

Who sees what: managers and dispatchers every team; an engineer the tickets of their own
teams (``teams`` filter narrowed to those, another team is refused).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.config import Person, Settings
from bot.directory import Directory
from bot.errors import BadRequest, Forbidden
from bot.texts import say
from bot.ticket_labels import clock_label, state_label
from bot.tickets import ClockKind, TicketState
from storage import kpi
from storage.kpi import Scope

__all__ = [
    "PERIODS",
    "Period",
    "Query",
    "compute",
    "parse_query",
    "scope_of",
    "viewer_teams",
]

#: Named periods: how many local days, ending today.
PERIODS = {"today": 1, "7d": 7, "30d": 30, "90d": 90}
_KNOWN = frozenset({"period", "from", "to", "team", "site", "customer", "by", "grain", "lang"})
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CODE = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
_SITE = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


@dataclass(frozen=True, slots=True)
class Period:
    """Local days ``first`` … ``last`` (inclusive) in ``tz``."""

    first: date
    last: date
    tz: ZoneInfo

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), self.tz).astimezone(UTC)

    def edges(self) -> list[datetime]:
        """Each day's start in UTC, and the end of the last day."""
        return [self.midnight(d) for d in [*self.days, self.last + timedelta(days=1)]]

    def hour_edges(self) -> list[datetime]:
        """The last day's hours (23 or 25 on a daylight-saving day)."""
        start, end = self.midnight(self.last), self.midnight(self.last + timedelta(days=1))
        hours = round((end - start).total_seconds() / 3600)
        return [start + timedelta(hours=h) for h in range(hours + 1)]


@dataclass(frozen=True, slots=True)
class Query:
    """A request's checked filters."""

    period: Period
    team: str | None = None
    site: str | None = None
    customer: str | None = None  # an organisation's code
    by: str = "site"  # heatmap rows: site | category
    grain: str = "day"  # heatmap columns: day | hour (the period's last day)
    lang: str = "zh"
    period_name: str | None = "7d"

    def params(self) -> dict[str, str]:
        """The query string that asks for this again."""
        out: dict[str, str] = {}
        if self.period_name:
            out["period"] = self.period_name
        else:
            out["from"], out["to"] = self.period.first.isoformat(), self.period.last.isoformat()
        for key in ("team", "site", "customer"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.by != "site":
            out["by"] = self.by
        if self.grain != "day":
            out["grain"] = self.grain
        out["lang"] = self.lang
        return out


def _one(params: Mapping[str, str], key: str, allowed: Sequence[str], default: str) -> str:
    value = params.get(key, default)
    if value not in allowed:
        raise BadRequest(f"'{key}' must be one of {', '.join(allowed)}")
    return value


def _day(text: str, key: str) -> date:
    if not _DAY.fullmatch(text):
        raise BadRequest(f"'{key}' must be a date YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"'{key}' is not a real date") from None


def parse_query(
    params: Mapping[str, str],
    settings: Settings,
    *,
    today: date,
    default_lang: str | None = None,
) -> Query:
    """The filters of a dashboard request, checked; ``BadRequest`` names the first bad one.

    An empty value is no filter (what a form sends for a field left empty); a named
    ``period`` wins over ``from``/``to`` (the form keeps a custom range in hidden fields)."""
    for key in params:
        if key not in _KNOWN:
            raise BadRequest(f"unknown query parameter {key[:40]!r}")
    if hasattr(params, "getall"):
        for key in params:
            if len(params.getall(key)) > 1:
                raise BadRequest(f"'{key[:40]}' given more than once")
    params = {k: v for k, v in params.items() if v != ""}
    tz = settings.tz
    max_days = settings.dashboard.max_days
    name: str | None
    if ("from" in params or "to" in params) and "period" not in params:
        if "from" not in params or "to" not in params:
            raise BadRequest("'from' and 'to' go together")
        first, last = _day(params["from"], "from"), _day(params["to"], "to")
        if last < first:
            raise BadRequest("'to' is before 'from'")
        if (last - first).days + 1 > max_days:
            raise BadRequest(f"a period may cover at most {max_days} days")
        name = None
    else:
        name = _one(params, "period", list(PERIODS), "7d")
        days = min(PERIODS[name], max_days)
        first, last = today - timedelta(days=days - 1), today
    team = params.get("team")
    if team is not None and team not in {t.id for t in settings.teams}:
        raise BadRequest("unknown 'team'")
    site = params.get("site")
    if site is not None and not _SITE.fullmatch(site):
        raise BadRequest("'site' must be 1–200 printable characters")
    customer = params.get("customer")
    if customer is not None and not _CODE.fullmatch(customer):
        raise BadRequest("'customer' must be an organisation's code (1–100 characters)")
    lang_default = default_lang if default_lang in ("zh", "en") else settings.locale
    return Query(
        period=Period(first, last, tz),
        team=team or None,
        site=site or None,
        customer=customer or None,
        by=_one(params, "by", ("site", "category"), "site"),
        grain=_one(params, "grain", ("day", "hour"), "day"),
        lang=_one(params, "lang", ("zh", "en"), lang_default),
        period_name=name,
    )


def viewer_teams(viewer: Person, directory: Directory) -> frozenset[str] | None:
    """The teams whose tickets ``viewer`` may see (None: all of them)."""
    if viewer.role in ("manager", "dispatcher"):
        return None
    return frozenset(t.id for t in directory.teams_of(viewer.id))


def scope_of(query: Query, viewer: Person, directory: Directory) -> Scope:
    """The tickets ``query`` covers for ``viewer`` (``Forbidden``: a team not theirs)."""
    allowed = viewer_teams(viewer, directory)
    teams: frozenset[str] | None
    if query.team is not None:
        if allowed is not None and query.team not in allowed:
            raise Forbidden("you see only your own team's figures")
        teams = frozenset({query.team})
    else:
        teams = allowed
    return Scope(teams=teams, site=query.site)


async def with_customer(conn: AsyncConnection, scope: Scope, query: Query) -> Scope:
    """The scope narrowed to the query's customer (``BadRequest``: no such organisation)."""
    if query.customer is None:
        return scope
    org = await kpi.organisation_id(conn, query.customer)
    if org is None:
        raise BadRequest("unknown 'customer' (an organisation's code)")
    return replace(scope, organisation_id=org)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _engineers(scope: Scope, directory: Directory) -> list[str]:
    people = [p.id for p in directory.engineers()]
    if scope.teams is None:
        return people
    members = {
        m for t in directory.teams.values() if t.id in scope.teams for m in [*t.members, t.lead]
    }
    return [p for p in people if p in members]


def _trend(
    fig: kpi.DayFigures | None, medians: Mapping[str, tuple[float, int] | None]
) -> dict[str, Any]:
    f = fig or kpi.DayFigures(0)
    return {
        "opened": f.opened,
        "closed": f.closed,
        "resolved": f.resolved,
        "first_response_s": _round(m[0]) if (m := medians["respond"]) else None,
        "arrival_s": _round(m[0]) if (m := medians["arrive"]) else None,
        "resolution_s": _round(m[0]) if (m := medians["resolve"]) else None,
        "first_time_fix_rate": _rate(f.first_time_fixed, f.resolved),
        "reopen_rate": _rate(f.reopened, f.closed),
        "transfers_per_ticket": _round(f.transfers / f.opened, 2) if f.opened else None,
        "csat": _round(f.csat_sum / f.csat_n, 2) if f.csat_n else None,
        "csat_ratings": f.csat_n,
    }


async def compute(
    conn: AsyncConnection,
    settings: Settings,
    directory: Directory,
    query: Query,
    scope: Scope,
    now: datetime,
) -> dict[str, Any]:
    """Every figure of the dashboard for ``query`` within ``scope``, as JSON-able data."""
    lang, tz, period = query.lang, settings.tz, query.period
    edges = period.edges()
    board = await kpi.board(conn, scope)
    risks = await kpi.risks(conn, scope, limit=settings.dashboard.risk_rows)
    # The heatmap: the backlog at the end of each bucket that has begun (now, for the
    # bucket under way).
    cuts = period.hour_edges() if query.grain == "hour" else edges
    snaps = [min(end, now) for start, end in itertools.pairwise(cuts) if start < now]
    heat = await kpi.heatmap(conn, scope, snaps, by=query.by) if snaps else []
    step = "%H:00" if query.grain == "hour" else "%m-%d"
    columns = [start.astimezone(tz).strftime(step) for start in cuts[: len(snaps)]]
    medians = {m: await kpi.medians(conn, scope, m, edges) for m in kpi.MILESTONES}
    daily = await kpi.daily(conn, scope, edges)
    load = await kpi.load(conn, scope, _engineers(scope, directory))
    days = []
    for i, day in enumerate(period.days):
        per_day = {m: per.get(i) for m, (per, _) in medians.items()}
        days.append({"day": day.isoformat(), **_trend(daily.get(i), per_day)})
    whole = {m: total for m, (_, total) in medians.items()}
    return {
        "generated_at": now.isoformat(),
        "zone": settings.timezone,
        "lang": lang,
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat()},
        "filters": {
            "team": query.team,
            "site": query.site,
            "customer": query.customer,
            "teams": sorted(scope.teams) if scope.teams is not None else None,
        },
        "board": [
            {"state": s.value, "label": state_label(s, lang), "count": board.get(s.value, 0)}
            for s in TicketState
            if s.value in kpi.OPEN
        ],
        "open_total": sum(board.values()),
        "risks": [
            {
                "number": r.number,
                "title": r.title,
                "priority": r.priority,
                "state": r.state,
                "state_label": state_label(TicketState(r.state), lang),
                "site": r.site,
                "team": r.team,
                "assignee": r.assignee,
                "assignee_name": r.assignee_name,
                "clock": r.clock,
                "clock_label": clock_label(ClockKind(r.clock), lang, TicketState(r.state)),
                "due": r.due.isoformat(),
                "due_local": r.due.astimezone(tz).strftime("%m-%d %H:%M"),
                "left_s": round((r.due - now).total_seconds()),
            }
            for r in risks
        ],
        "heatmap": {
            "by": query.by,
            "grain": query.grain,
            "columns": columns,
            "rows": [
                {"label": h.label or say("dashboard.unknown", lang), "counts": h.counts}
                for h in heat
            ],
        },
        "trends": {"days": days, "summary": _trend(daily.get(-1), whole)},
        "load": [
            {"person": w.key, "name": w.name, "open": w.open, "max_open": w.max_open} for w in load
        ],
    }
