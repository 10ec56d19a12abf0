"""The managers' figures: set-based queries that aggregate in the database.

Every query takes a ``Scope`` (team, site, customer) and, where it covers a period, the
period's bucket edges: UTC instants, one per local midnight (or hour) of the configured zone,
computed by the caller (``bot/kpi.py``). Bucketing compares a timestamp with those edges in a
``CASE``, so a day is cut in the configured zone on SQLite (which has no zone database) and on
PostgreSQL alike, daylight-saving days included. Medians are computed in SQL with window
functions (``row_number`` and ``count`` over each bucket), which both backends have.

Milestones come from the audit trail (``ticket_events``): a ticket's first response is its
first transition into ``accepted``, its arrival the first into ``on_site``, its resolution the
first into ``resolved``; each is counted on the day it happened, measured from the ticket's
``created_at`` (wall-clock time, not business time). A transfer is a transition back into
``new`` (转派) or a re-assignment from one engineer to another (``assigned`` → ``assigned``,
the escalation chain's ``reassign`` step). Merged repeat reports are left out of every figure:
they are duplicates of a ticket that is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from storage.csat import CsatSummary, csat_summary
from storage.models import TABLES, UTCDateTime

__all__ = [
    "DayFigures",
    "EngineerLoad",
    "HeatRow",
    "Milestone",
    "Risk",
    "Scope",
    "TicketRow",
    "board",
    "breaches",
    "causes",
    "csat",
    "daily",
    "heatmap",
    "load",
    "medians",
    "organisation_id",
    "organisations",
    "respond_overdue",
    "risks",
    "site_names",
    "suggestions",
    "tickets",
    "transfers",
]

T = TABLES["tickets"]
E = TABLES["ticket_events"]
A = TABLES["assets"]
S = TABLES["sites"]
O = TABLES["organisations"]  # noqa: E741
P = TABLES["people"]
C = TABLES["csat_ratings"]
G = TABLES["maintenance_suggestions"]

#: Open states (the live board, the load); ``resolved`` waits for the customer and counts.
OPEN = (
    "new",
    "assigned",
    "accepted",
    "en_route",
    "on_site",
    "diagnosing",
    "waiting_parts",
    "third_party",
    "repairing",
    "resolved",
)
#: Milestones: the state whose first entry marks them.
MILESTONES = {"respond": "accepted", "arrive": "on_site", "resolve": "resolved"}
Milestone = str
_DUES = (
    ("respond", "respond_due"),
    ("arrive", "arrive_due"),
    ("resolve", "resolve_due"),
    ("stay", "state_due"),
)


@dataclass(frozen=True, slots=True)
class Scope:
    """Which tickets a figure covers. ``teams`` None: every team (and tickets of none)."""

    teams: frozenset[str] | None = None
    site: str | None = None
    organisation_id: int | None = None


def _kind(e: Any, kind: str) -> ColumnElement[bool]:
    """``e.kind = kind`` that no index serves: inside a per-ticket subquery the ticket's own
    rows (``ticket_id``'s index) are few, while (kind, at) would walk the whole trail."""
    return func.coalesce(e.c.kind, "") == kind


def _conds(scope: Scope, t: Any = T) -> list[ColumnElement[bool]]:
    # (Not ``merged_into IS NULL``, which a planner without statistics takes for a selective
    # index lookup; what selects the tickets is the period's or the state's index.)
    out: list[ColumnElement[bool]] = [func.coalesce(t.c.merged_into, 0) == 0]
    if scope.teams is not None:
        out.append(t.c.team_key.in_(sorted(scope.teams)))
    if scope.site is not None:
        out.append(t.c.site == scope.site)
    if scope.organisation_id is not None:
        org = scope.organisation_id
        out.append(
            or_(
                t.c.asset_id.in_(select(A.c.id).where(A.c.organisation_id == org)),
                t.c.site.in_(select(S.c.name).where(S.c.organisation_id == org)),
            )
        )
    return out


def _at(value: datetime) -> BindParameter[datetime]:
    return literal(value, UTCDateTime())


def _bucket(col: Any, edges: Sequence[datetime]) -> ColumnElement[Any]:
    """The index of the bucket ``[edges[i], edges[i+1])`` that ``col`` falls in."""
    return case(*[(col < _at(edge), i) for i, edge in enumerate(edges[1:])], else_=None)


def _within(col: Any, edges: Sequence[datetime]) -> ColumnElement[bool]:
    return and_(col >= _at(edges[0]), col < _at(edges[-1]))


def _seconds(dialect: str, later: Any, earlier: Any) -> ColumnElement[Any]:
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


async def organisations(conn: AsyncConnection, *, limit: int = 500) -> list[tuple[str, str]]:
    """Customers to filter by: (code, name), by name."""
    q = select(O.c.code, O.c.name).order_by(O.c.name, O.c.code).limit(limit)
    return [(str(c), str(n)) for c, n in (await conn.execute(q)).all()]


async def site_names(conn: AsyncConnection, *, limit: int = 500) -> list[str]:
    """Registered sites' names (what the site filter suggests)."""
    q = select(S.c.name).distinct().order_by(S.c.name).limit(limit)
    return [str(n) for (n,) in (await conn.execute(q)).all()]


async def organisation_id(conn: AsyncConnection, code: str) -> int | None:
    """The organisation (customer) with this code, if there is one."""
    return (await conn.execute(select(O.c.id).where(O.c.code == code))).scalar_one_or_none()


# ---------------------------------------------------------------------------- live figures


async def board(conn: AsyncConnection, scope: Scope) -> dict[str, int]:
    """Open tickets by state, now."""
    q = (
        select(T.c.state, func.count())
        .where(T.c.state.in_(OPEN), *_conds(scope))
        .group_by(T.c.state)
    )
    return {state: int(n) for state, n in (await conn.execute(q)).all()}


@dataclass(frozen=True, slots=True)
class Risk:
    """An open ticket and its next deadline (the earliest running clock's)."""

    id: int
    number: str
    title: str
    priority: str
    state: str
    site: str | None
    team: str | None
    assignee: str | None  # the person's config id
    assignee_name: str | None
    clock: str  # respond | arrive | resolve | stay
    due: datetime


async def risks(conn: AsyncConnection, scope: Scope, *, limit: int = 50) -> list[Risk]:
    """Open tickets with a running SLA clock, the nearest deadline first (overdue ones lead).

    A deadline column is set only while its clock runs (``bot/sla/clocks.py``), so each
    column's index finds the candidates; the earliest per ticket is picked in SQL."""
    conds = [T.c.state.in_(OPEN), *_conds(scope)]
    parts = [
        select(T.c.id.label("id"), literal(kind).label("clock"), T.c[column].label("due")).where(
            T.c[column].is_not(None), *conds
        )
        for kind, column in _DUES
    ]
    dues = union_all(*parts).subquery("dues")
    ranked = select(
        dues.c.id,
        dues.c.clock,
        dues.c.due,
        func.row_number().over(partition_by=dues.c.id, order_by=dues.c.due).label("rn"),
    ).subquery("ranked")
    q = (
        select(
            ranked.c.id,
            ranked.c.clock,
            ranked.c.due,
            T.c.number,
            T.c.title,
            T.c.priority,
            T.c.state,
            T.c.site,
            T.c.team_key,
            P.c.key,
            P.c.name,
        )
        .join(T, T.c.id == ranked.c.id)
        .outerjoin(P, P.c.id == T.c.assignee_id)
        .where(ranked.c.rn == 1)
        .order_by(ranked.c.due, ranked.c.id)
        .limit(limit)
    )
    out = []
    for r in (await conn.execute(q)).all():
        due = r.due
        if isinstance(due, str):  # (SQLite hands a UNION's column back as text)
            due = datetime.fromisoformat(due)
        due = UTCDateTime().process_result_value(due, conn.dialect)
        assert due is not None
        out.append(
            Risk(
                id=r.id,
                number=r.number or f"GD-{r.id}",
                title=r.title,
                priority=r.priority,
                state=r.state,
                site=r.site,
                team=r.team_key,
                assignee=r.key,
                assignee_name=r.name,
                clock=r.clock,
                due=due,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class EngineerLoad:
    key: str
    name: str
    open: int
    max_open: int


async def load(conn: AsyncConnection, scope: Scope, people: Sequence[str]) -> list[EngineerLoad]:
    """Open tickets per engineer (of ``people``, config ids) against their ``max_open``."""
    if not people:
        return []
    counts = (
        select(T.c.assignee_id.label("pid"), func.count().label("n"))
        .where(T.c.state.in_(OPEN), T.c.assignee_id.is_not(None), *_conds(scope))
        .group_by(T.c.assignee_id)
        .subquery()
    )
    q = (
        select(P.c.key, P.c.name, P.c.max_open, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.pid == P.c.id)
        .where(P.c.key.in_(list(people)))
        .order_by(P.c.key)
    )
    return [
        EngineerLoad(key=k, name=n, open=int(c), max_open=int(m))
        for k, n, m, c in (await conn.execute(q)).all()
    ]


# ------------------------------------------------------------------------------- heatmap


@dataclass(frozen=True, slots=True)
class HeatRow:
    label: str | None  # the site or the asset category (None: not known)
    counts: list[int]  # open tickets at each edge


async def heatmap(
    conn: AsyncConnection, scope: Scope, snapshots: Sequence[datetime], *, by: str, rows: int = 12
) -> list[HeatRow]:
    """The backlog at each of ``snapshots``: tickets created before it and not yet closed or
    cancelled, by site (``by="site"``) or asset category (``by="category"``); the rows with the
    most open tickets at the last snapshot first. (A ticket closed and later reopened counts as
    open since it was created: the trail's reopen time is not consulted.)"""
    ended = case(
        (T.c.state == "closed", T.c.closed_at),
        (T.c.state == "cancelled", T.c.updated_at),
        else_=None,
    )
    label = T.c.site if by == "site" else A.c.category
    first, last = _at(snapshots[0]), _at(snapshots[-1])
    cols = [
        func.sum(
            case((and_(T.c.created_at < _at(s), or_(ended.is_(None), ended >= _at(s))), 1), else_=0)
        ).label(f"c{i}")
        for i, s in enumerate(snapshots)
    ]
    inner = (
        select(label.label("label"), *cols)
        .select_from(T.outerjoin(A, A.c.id == T.c.asset_id))
        .where(T.c.created_at < last, or_(ended.is_(None), ended >= first), *_conds(scope))
        .group_by(label)
        .subquery()
    )
    last_col = inner.c[f"c{len(snapshots) - 1}"]
    q = select(inner).order_by(last_col.desc(), inner.c.label).limit(rows)
    return [
        HeatRow(label=r[0], counts=[int(x or 0) for x in r[1:]])
        for r in (await conn.execute(q)).all()
    ]


# -------------------------------------------------------------------------------- trends


def _first_entries(to_state: str, edges: Sequence[datetime]) -> Any:
    """Each ticket's first entry into ``to_state``, for the tickets whose first entry falls
    within the edges (``ticket_id``, ``at``)."""
    earlier = E.alias("earlier")
    return (
        select(E.c.ticket_id.label("ticket_id"), func.min(E.c.at).label("at"))
        .where(
            E.c.kind == "transition",
            E.c.to_state == to_state,
            _within(E.c.at, edges),
            ~exists().where(
                earlier.c.ticket_id == E.c.ticket_id,
                _kind(earlier, "transition"),
                earlier.c.to_state == to_state,
                earlier.c.at < _at(edges[0]),
            ),
        )
        .group_by(E.c.ticket_id)
        .subquery("firsts")
    )


async def medians(
    conn: AsyncConnection, scope: Scope, milestone: Milestone, edges: Sequence[datetime]
) -> tuple[dict[int, tuple[float, int]], tuple[float, int] | None]:
    """The median seconds from creation to ``milestone`` per bucket (``{bucket: (median,
    tickets)}``) and over the whole period."""
    firsts = _first_entries(MILESTONES[milestone], edges)
    secs = _seconds(conn.dialect.name, firsts.c.at, T.c.created_at)
    base = (
        select(_bucket(firsts.c.at, edges).label("b"), secs.label("s"))
        .join(T, T.c.id == firsts.c.ticket_id)
        .where(*_conds(scope))
        .subquery("durations")
    )
    per_bucket = await _median(conn, base.c.b, base)
    whole = await _median(conn, literal(0).label("b"), base)
    return per_bucket, whole.get(0)


async def _median(conn: AsyncConnection, bucket: Any, base: Any) -> dict[int, tuple[float, int]]:
    ranked = select(
        bucket.label("b"),
        base.c.s.label("s"),
        func.row_number().over(partition_by=bucket, order_by=base.c.s).label("rn"),
        func.count().over(partition_by=bucket).label("n"),
    ).subquery("ranked")
    q = (
        select(ranked.c.b, func.avg(ranked.c.s), func.max(ranked.c.n))
        .where(or_(ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.rn == (ranked.c.n + 2) // 2))
        .group_by(ranked.c.b)
    )
    return {int(b): (float(m), int(n)) for b, m, n in (await conn.execute(q)).all()}


@dataclass
class DayFigures:
    """What happened in one bucket (or, with ``bucket`` -1, the whole period)."""

    bucket: int
    opened: int = 0
    transfers: int = 0  # transfers of the tickets opened then (until now)
    closed: int = 0  # tickets closed (confirmed or auto-closed) then
    reopened: int = 0  # …of which reopened since
    resolved: int = 0  # tickets resolved for the first time then
    first_time_fixed: int = 0  # …without a return visit, parts or a third party
    csat_sum: int = 0
    csat_n: int = 0


def _transfer_event(e: Any, *, per_ticket: bool = False) -> ColumnElement[bool]:
    return and_(
        _kind(e, "transition") if per_ticket else e.c.kind == "transition",
        or_(
            and_(e.c.to_state == "new", e.c.from_state != "new"),
            and_(e.c.from_state == "assigned", e.c.to_state == "assigned"),
        ),
    )


async def daily(
    conn: AsyncConnection, scope: Scope, edges: Sequence[datetime]
) -> dict[int, DayFigures]:
    """Per bucket and for the period (key -1): tickets opened and their transfers, closures
    and reopens, first-time fixes, CSAT."""
    out: dict[int, DayFigures] = {}

    def fig(b: int) -> DayFigures:
        return out.setdefault(b, DayFigures(b))

    conds = _conds(scope)
    # Opened, and their transfers so far.
    tr = E.alias("tr")
    moves = (
        select(func.count())
        .where(tr.c.ticket_id == T.c.id, _transfer_event(tr, per_ticket=True))
        .scalar_subquery()
    )
    opened = select(_bucket(T.c.created_at, edges).label("b"), moves.label("m")).where(
        _within(T.c.created_at, edges), *conds
    )
    for b, n, m in await _sum_by(conn, opened.subquery(), "m"):
        fig(b).opened, fig(b).transfers = n, m
    # Closed (from resolved: a merged report is no closure), and reopened since.
    later = E.alias("later")
    reopened = exists().where(
        later.c.ticket_id == E.c.ticket_id,
        _kind(later, "transition"),
        later.c.from_state == "closed",
        later.c.at > E.c.at,
    )
    closes = (
        select(_bucket(E.c.at, edges).label("b"), case((reopened, 1), else_=0).label("m"))
        .join(T, T.c.id == E.c.ticket_id)
        .where(
            E.c.kind == "transition",
            E.c.to_state == "closed",
            E.c.from_state == "resolved",
            _within(E.c.at, edges),
            *conds,
        )
    )
    for b, n, m in await _sum_by(conn, closes.subquery(), "m"):
        fig(b).closed, fig(b).reopened = n, m
    # First resolutions: fixed the first time unless parts, a third party or a second
    # arrival came before it.
    firsts = _first_entries("resolved", edges)
    ev = E.alias("ev")
    setback = exists().where(
        ev.c.ticket_id == firsts.c.ticket_id,
        _kind(ev, "transition"),
        ev.c.at <= firsts.c.at,
        ev.c.to_state.in_(("waiting_parts", "third_party")),
    )
    visits = (
        select(func.count())
        .where(
            ev.c.ticket_id == firsts.c.ticket_id,
            _kind(ev, "transition"),
            ev.c.to_state == "on_site",
            ev.c.at <= firsts.c.at,
        )
        .scalar_subquery()
    )
    fixed = case((or_(setback, visits > 1), 0), else_=1)
    resolved = (
        select(_bucket(firsts.c.at, edges).label("b"), fixed.label("m"))
        .join(T, T.c.id == firsts.c.ticket_id)
        .where(*conds)
    )
    for b, n, m in await _sum_by(conn, resolved.subquery(), "m"):
        fig(b).resolved, fig(b).first_time_fixed = n, m
    # CSAT, on the day it was given.
    rated = (
        select(_bucket(C.c.rated_at, edges).label("b"), C.c.score.label("m"))
        .join(T, T.c.id == C.c.ticket_id)
        .where(C.c.score.is_not(None), _within(C.c.rated_at, edges), *conds)
    )
    for b, n, m in await _sum_by(conn, rated.subquery(), "m"):
        fig(b).csat_n, fig(b).csat_sum = n, m
    return out


async def _sum_by(conn: AsyncConnection, sub: Any, column: str) -> list[tuple[int, int, int]]:
    """(bucket, rows, sum of ``column``) per bucket, and (-1, …) over every bucket."""
    q = select(sub.c.b, func.count(), func.coalesce(func.sum(sub.c[column]), 0)).group_by(sub.c.b)
    rows = [(int(b), int(n), int(m)) for b, n, m in (await conn.execute(q)).all()]
    if rows:
        rows.append((-1, sum(r[1] for r in rows), sum(r[2] for r in rows)))
    return rows


# --------------------------------------------------------------------- the daily report


async def transfers(conn: AsyncConnection, scope: Scope, edges: Sequence[datetime]) -> int:
    """Transfers made within the period (whichever day their tickets were opened)."""
    q = (
        select(func.count())
        .select_from(E.join(T, T.c.id == E.c.ticket_id))
        .where(_transfer_event(E), _within(E.c.at, edges), *_conds(scope))
    )
    return int((await conn.execute(q)).scalar_one())


async def breaches(conn: AsyncConnection, scope: Scope, edges: Sequence[datetime]) -> int:
    """SLA breaches (any clock) within the period."""
    q = (
        select(func.count())
        .select_from(E.join(T, T.c.id == E.c.ticket_id))
        .where(E.c.kind == "sla_breach", _within(E.c.at, edges), *_conds(scope))
    )
    return int((await conn.execute(q)).scalar_one())


async def respond_overdue(
    conn: AsyncConnection, scope: Scope, edges: Sequence[datetime]
) -> tuple[int, int]:
    """Of the tickets opened within the period: how many had their first-response clock
    breached (until now), and how many there were."""
    late = exists().where(
        E.c.ticket_id == T.c.id,
        _kind(E, "sla_breach"),
        E.c.data["clock"].as_string() == "respond",
    )
    q = select(func.count(), func.coalesce(func.sum(case((late, 1), else_=0)), 0)).where(
        _within(T.c.created_at, edges), *_conds(scope)
    )
    n, overdue = (await conn.execute(q)).one()
    return int(overdue), int(n)


async def csat(
    conn: AsyncConnection, scope: Scope, edges: Sequence[datetime], *, low_score: int
) -> CsatSummary:
    """The ratings given within the period, of the tickets in scope (``storage.csat``)."""
    return await csat_summary(conn, edges[0], edges[-1], low_score=low_score, tickets=_conds(scope))


async def causes(
    conn: AsyncConnection, scope: Scope, edges: Sequence[datetime], *, top: int = 3
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The commonest categories and written root causes of the tickets resolved within the
    period (each ticket once)."""
    done = (
        select(E.c.ticket_id)
        .where(E.c.kind == "transition", E.c.to_state == "resolved", _within(E.c.at, edges))
        .distinct()
        .subquery()
    )
    base = select(T.c.category, T.c.root_cause).join(done, done.c.ticket_id == T.c.id)
    sub = base.where(*_conds(scope)).subquery()
    by_cat = (
        select(sub.c.category, func.count().label("n"))
        .group_by(sub.c.category)
        .order_by(func.count().desc(), sub.c.category)
        .limit(top)
    )
    by_cause = (
        select(sub.c.root_cause, func.count().label("n"))
        .where(sub.c.root_cause.is_not(None), sub.c.root_cause != "")
        .group_by(sub.c.root_cause)
        .order_by(func.count().desc(), sub.c.root_cause)
        .limit(top)
    )
    cats = [(str(c), int(n)) for c, n in (await conn.execute(by_cat)).all()]
    texts = [(str(c), int(n)) for c, n in (await conn.execute(by_cause)).all()]
    return cats, texts


async def suggestions(
    conn: AsyncConnection, edges: Sequence[datetime], *, teams: frozenset[str] | None = None
) -> list[tuple[str, int, float]]:
    """Preventive-maintenance suggestions made within the period: (asset name, tickets,
    days), newest first."""
    q = (
        select(A.c.name, G.c.tickets, G.c.days, G.c.teams)
        .join(A, A.c.id == G.c.asset_id)
        .where(_within(G.c.created_at, edges))
        .order_by(G.c.created_at.desc(), G.c.id.desc())
    )
    out = []
    for name, numbers, days, posted in (await conn.execute(q)).all():
        if teams is not None and not teams & set(posted or ()):
            continue
        out.append((str(name), len(numbers or ()), float(days)))
    return out


# ------------------------------------------------------------------------------- export


@dataclass(frozen=True, slots=True)
class TicketRow:
    number: str
    title: str
    priority: str
    category: str
    state: str
    site: str | None
    team: str | None
    assignee: str | None
    created_at: datetime
    closed_at: datetime | None
    root_cause: str | None
    csat: int | None


def _tickets_query(scope: Scope, edges: Sequence[datetime], limit: int) -> Select[Any]:
    return (
        select(
            T.c.id,
            T.c.number,
            T.c.title,
            T.c.priority,
            T.c.category,
            T.c.state,
            T.c.site,
            T.c.team_key,
            P.c.name,
            T.c.created_at,
            T.c.closed_at,
            T.c.root_cause,
            C.c.score,
        )
        .outerjoin(P, P.c.id == T.c.assignee_id)
        .outerjoin(C, C.c.ticket_id == T.c.id)
        .where(_within(T.c.created_at, edges), *_conds(scope))
        .order_by(T.c.created_at, T.c.id)
        .limit(limit)
    )


async def tickets(
    conn: AsyncConnection, scope: Scope, edges: Sequence[datetime], *, limit: int = 50_000
) -> list[TicketRow]:
    """The tickets opened within the period, oldest first."""
    rows = (await conn.execute(_tickets_query(scope, edges, limit))).all()
    return [
        TicketRow(
            number=r.number or f"GD-{r.id}",
            title=r.title,
            priority=r.priority,
            category=r.category,
            state=r.state,
            site=r.site,
            team=r.team_key,
            assignee=r.name,
            created_at=r.created_at,
            closed_at=r.closed_at,
            root_cause=r.root_cause,
            csat=r.score,
        )
        for r in rows
    ]
