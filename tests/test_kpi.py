"""The figures on a seeded history with known answers (tests/kpi_seed.py), on SQLite and
PostgreSQL: days cut in Asia/Shanghai, medians in SQL, the viewer's scope, the filters."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.directory import Directory
from bot.errors import BadRequest, Forbidden
from bot.kpi import compute, parse_query, scope_of, with_customer
from storage import kpi
from storage.db import Database
from tests.kpi_seed import NOW, STAFF, local, seed

TODAY = date(2026, 12, 4)


def _settings(db_url: str = "sqlite+aiosqlite://", **kw: Any) -> Settings:
    return load_settings(
        None, database={"url": db_url}, security={"secret_key": "k"}, **STAFF, **kw
    )


async def _figures(db: Database, settings: Settings, viewer: str, **params: str) -> dict[str, Any]:
    directory = Directory(settings)
    query = parse_query(params, settings, today=TODAY)
    scope = scope_of(query, directory.people[viewer], directory)
    async with db.reads() as conn:
        scope = await with_customer(conn, scope, query)
        return await compute(conn, settings, directory, query, scope, NOW)


async def test_figures_of_the_seeded_week(db: Database, tmp_path: Path) -> None:
    await seed(db)
    settings = _settings(db.url)
    fig = await _figures(db, settings, "zhao", period="7d")

    assert fig["period"] == {"from": "2026-11-28", "to": "2026-12-04"}
    board = {b["state"]: b["count"] for b in fig["board"]}
    assert fig["open_total"] == 5
    assert {k: v for k, v in board.items() if v} == {
        "new": 1,
        "assigned": 2,
        "accepted": 1,
        "diagnosing": 1,
    }
    # Nearest deadline first; an overdue one leads, with negative time left.
    risks = [(r["number"], r["clock"], r["left_s"]) for r in fig["risks"]]
    assert risks[0] == ("GD-4", "respond", -13 * 3600)
    assert risks[1] == ("GD-3", "respond", 30 * 60)
    assert [r[0] for r in risks] == ["GD-4", "GD-3", "GD-2"]

    s = fig["trends"]["summary"]
    assert s["opened"] == 5  # the merged repeat and the older ticket are not counted
    assert s["first_response_s"] == pytest.approx(30 * 60, abs=1)  # 5, 30 and 60 min
    assert s["arrival_s"] == pytest.approx(135 * 60, abs=1)
    assert s["resolution_s"] == pytest.approx(13.5 * 3600, abs=1)
    assert s["first_time_fix_rate"] == 0.5
    assert s["reopen_rate"] == 0.5
    assert s["transfers_per_ticket"] == 0.2
    assert s["csat"] == 3.5 and s["csat_ratings"] == 2

    days = {d["day"]: d for d in fig["trends"]["days"]}
    assert len(days) == 7
    assert days["2026-12-02"]["first_response_s"] == pytest.approx(2700, abs=1)
    assert days["2026-12-02"]["resolution_s"] == pytest.approx(3 * 3600, abs=1)
    assert days["2026-12-03"]["resolution_s"] == pytest.approx(24 * 3600, abs=1)
    assert days["2026-12-03"]["opened"] == 3 and days["2026-12-02"]["opened"] == 2
    assert days["2026-12-01"]["first_response_s"] is None

    load = {w["person"]: (w["open"], w["max_open"]) for w in fig["load"]}
    assert load == {"li": (3, 5), "wang": (1, 5)}

    heat = {r["label"]: r["counts"] for r in fig["heatmap"]["rows"]}
    assert fig["heatmap"]["columns"][0] == "11-28"
    assert len(fig["heatmap"]["columns"]) == 7
    # 一号厂房 at the end of 12-02: GD-2 and GD-7 (GD-1 closed at 14:00); now: GD-2, GD-4, GD-7.
    assert heat["一号厂房"][4] == 2
    assert heat["一号厂房"][-1] == 3
    assert heat["二号厂房"] == [0, 0, 0, 0, 0, 1, 1]
    assert heat["三号车间"][-1] == 1


async def test_days_are_cut_in_the_configured_zone(db: Database) -> None:
    """GD-4's breach at 23:00 Shanghai is 15:00 UTC: it belongs to 12-03, not 12-04."""
    await seed(db)
    scope = kpi.Scope()
    async with db.reads() as conn:
        day_3 = [local(12, 3, 0), local(12, 4, 0)]
        day_4 = [local(12, 4, 0), local(12, 5, 0)]
        assert await kpi.breaches(conn, scope, day_3) == 1
        assert await kpi.breaches(conn, scope, day_4) == 0
        assert await kpi.respond_overdue(conn, scope, day_3) == (1, 3)
        assert await kpi.transfers(conn, scope, [local(12, 2, 0), local(12, 3, 0)]) == 1
        rated = await kpi.csat(conn, scope, day_3, low_score=2)
        assert (rated.average, rated.count, rated.low) == (2.0, 1, 1)
        cats, causes = await kpi.causes(conn, scope, day_3)
        assert cats == [("equipment_failure", 1)] and causes == [("电源模块损坏", 1)]
        assert await kpi.suggestions(conn, day_3) == [("3号注塑机", 3, 30.0)]
        assert await kpi.suggestions(conn, day_3, teams=frozenset({"net"})) == []


async def test_an_engineer_sees_only_their_team(db: Database) -> None:
    await seed(db)
    settings = _settings(db.url)
    mine = await _figures(db, settings, "li")
    assert mine["filters"]["teams"] == ["maint"]
    assert mine["open_total"] == 4  # GD-5 is the network team's
    assert [w["person"] for w in mine["load"]] == ["li"]
    assert mine["trends"]["summary"]["opened"] == 4
    theirs = await _figures(db, settings, "wang")
    assert theirs["open_total"] == 1
    with pytest.raises(Forbidden):
        await _figures(db, settings, "li", team="net")
    # A manager may narrow to any team.
    assert (await _figures(db, settings, "zhao", team="net"))["open_total"] == 1


async def test_filters_by_site_and_customer(db: Database) -> None:
    await seed(db)
    settings = _settings(db.url)
    site = await _figures(db, settings, "sun", site="二号厂房")
    assert site["open_total"] == 1 and [r["number"] for r in site["risks"]] == ["GD-3"]
    acme = await _figures(db, settings, "sun", customer="acme")
    assert acme["open_total"] == 3  # 一号厂房 is ACME's: GD-2, GD-4, GD-7
    with pytest.raises(BadRequest):
        await _figures(db, settings, "sun", customer="nobody")
    custom = await _figures(db, settings, "sun", **{"from": "2026-12-03", "to": "2026-12-03"})
    assert custom["trends"]["summary"]["opened"] == 3
    hourly = await _figures(db, settings, "sun", period="today", grain="hour", by="category")
    assert len(hourly["heatmap"]["columns"]) == 12  # 00:00 … 11:00 have begun by noon
    assert {r["label"] for r in hourly["heatmap"]["rows"]} == {"注塑机", "未填写"}


@pytest.mark.parametrize(
    "params",
    [
        {"period": "week"},
        {"from": "2026-12-01"},
        {"from": "2026-12-05", "to": "2026-12-01"},
        {"from": "2026-02-30", "to": "2026-03-01"},
        {"from": "20261201", "to": "2026-12-02"},
        {"from": "2026-01-01", "to": "2026-12-31"},
        {"team": "nobody"},
        {"site": "x" * 201},
        {"site": "a\x00b"},
        {"by": "asset"},
        {"grain": "minute"},
        {"lang": "fr"},
        {"colour": "red"},
    ],
)
def test_bad_filters_are_refused(params: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        parse_query(params, _settings(), today=TODAY)


def test_a_form_left_empty_is_no_filter() -> None:
    q = parse_query(
        {"period": "", "team": "", "site": "", "customer": "", "lang": "en"},
        _settings(),
        today=TODAY,
    )
    assert (q.period.first, q.period.last) == (date(2026, 11, 28), TODAY)
    assert q.team is None and q.site is None and q.lang == "en"


def test_a_daylight_saving_day_has_its_own_length() -> None:
    from zoneinfo import ZoneInfo

    from bot.kpi import Period

    ny = Period(date(2026, 3, 7), date(2026, 3, 8), ZoneInfo("America/New_York"))
    start, middle, end = ny.edges()
    assert (middle - start).total_seconds() == 24 * 3600
    assert (end - middle).total_seconds() == 23 * 3600  # clocks went forward on 03-08
    assert len(ny.hour_edges()) == 24  # 23 hours, 24 edges
    assert start.isoformat() == "2026-03-07T05:00:00+00:00"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_figures_read_the_trail_through_its_indexes(db: Database) -> None:
    """No statement walks the whole audit trail: the period's rows come by (kind, at), a
    ticket's own rows by its id (a per-ticket subquery by (kind, at) would be quadratic)."""
    from sqlalchemy import event

    await seed(db)
    settings = _settings(db.url)
    statements: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        statements.append((args[2], args[3]))

    engine = db.unit_read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        await _figures(db, settings, "zhao", period="30d")
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    plans = []
    async with db.reads() as conn:
        for sql, params in statements:
            rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)).all()
            plans += [str(r[-1]) for r in rows]
    assert plans
    assert not [p for p in plans if p.startswith("SCAN ticket_events")]
    for alias in ("earlier", "later", "ev", "tr"):
        uses = [p for p in plans if p.startswith(f"SEARCH {alias} ")]
        assert uses and all("ix_ticket_events_ticket_id" in p for p in uses), uses
