"""``/dashboard``, its JSON and its CSV export over HTTP on the seeded history
(tests/kpi_seed.py): a session is required, an engineer sees only their team, bad filters
are 400s, the export holds the tickets of the filter (and no spreadsheet formulas)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import update

from storage.db import Database
from storage.models import TABLES
from tests.conftest import FakeClock, RunningHub, bearer
from tests.kpi_seed import NOW, STAFF, seed

Start = Callable[..., Awaitable[RunningHub]]
QUIET = {"sla": {"enabled": False}, "maintenance": {"enabled": False}}  # the history stays


async def _hub(running: Start, db_url: str) -> RunningHub:
    db = Database(db_url)
    await seed(db)
    async with db.begin() as conn:  # a customer's title that a spreadsheet would run
        await conn.execute(
            update(TABLES["tickets"])
            .where(TABLES["tickets"].c.id == 5)
            .values(title='=HYPERLINK("http://evil.example","点我")')
        )
    await db.dispose()
    return await running(clock=FakeClock(NOW), **STAFF, **QUIET)


async def _get(hub: RunningHub, path: str, token: str | None = None) -> tuple[int, Any, str]:
    headers = bearer(token) if token else {}
    async with hub.http.get(hub.base + path, headers=headers, allow_redirects=False) as r:
        body = await r.read()
        return r.status, r.headers, body.decode("utf-8")


async def test_no_session_no_figures(running: Start, db_url: str) -> None:
    hub = await _hub(running, db_url)
    status, headers, _ = await _get(hub, "/dashboard?lang=en")
    assert status == 302
    assert headers["Location"] == "/console?lang=en&next=/dashboard?lang%3Den"
    for path in ("/dashboard/api/figures", "/dashboard/export.csv"):
        assert (await _get(hub, path))[0] == 401
        assert (await _get(hub, path, "gds_forged"))[0] == 401
    # The integration API token is no staff member: no figures with it either.
    assert (await _get(hub, "/dashboard/api/figures", "test-token"))[0] == 401


async def test_managers_see_all_engineers_their_team(running: Start, db_url: str) -> None:
    hub = await _hub(running, db_url)
    manager = await hub.staff_session("zhao")
    status, _, body = await _get(hub, "/dashboard/api/figures?period=7d", manager)
    assert status == 200
    fig = json.loads(body)
    assert fig["open_total"] == 5
    assert [r["number"] for r in fig["risks"]] == ["GD-4", "GD-3", "GD-2"]
    assert fig["trends"]["summary"]["csat"] == 3.5

    engineer = await hub.staff_session("li")
    mine = json.loads((await _get(hub, "/dashboard/api/figures", engineer))[2])
    assert mine["open_total"] == 4 and mine["filters"]["teams"] == ["maint"]
    assert "GD-5" not in {r["number"] for r in mine["risks"]}
    status, _, body = await _get(hub, "/dashboard/api/figures?team=net", engineer)
    assert status == 403
    status, _, body = await _get(hub, "/dashboard/export.csv?team=net", engineer)
    assert status == 403

    # The page shows the engineer's numbers and offers only their team.
    status, headers, page = await _get(hub, "/dashboard?lang=en", engineer)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert 'data-kpi="open">4<' in page
    assert '<option value="maint"' in page and '<option value="net"' not in page
    assert "Service dashboard" in page and "script" not in page


@pytest.mark.parametrize(
    "query",
    [
        "period=week",
        "from=2026-02-30&to=2026-03-01",
        "from=2026-12-05&to=2026-12-01",
        "from=2025-01-01&to=2026-12-01",
        "team=nobody",
        "customer=nobody",
        "by=asset",
        "grain=second",
        "lang=fr",
        "site=" + "x" * 201,
        "period=7d&period=30d",
        "unknown=1",
    ],
)
async def test_bad_filters_are_400(running: Start, db_url: str, query: str) -> None:
    hub = await _hub(running, db_url)
    token = await hub.staff_session("zhao")
    for path in ("/dashboard", "/dashboard/api/figures", "/dashboard/export.csv"):
        status, _, body = await _get(hub, f"{path}?{query}", token)
        assert status == 400, (path, query, body)


async def test_csv_holds_the_tickets_of_the_filter(running: Start, db_url: str) -> None:
    hub = await _hub(running, db_url)
    manager = await hub.staff_session("sun")
    status, headers, body = await _get(hub, "/dashboard/export.csv?period=7d", manager)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert "attachment" in headers["Content-Disposition"]
    assert headers["X-Gongdan-Truncated"] == "0"
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))
    assert rows[0][:5] == ["工单号", "标题", "优先级", "类别", "状态"]
    by_number = {r[0]: r for r in rows[1:]}
    assert sorted(by_number) == ["GD-1", "GD-2", "GD-3", "GD-4", "GD-5"]
    gd1 = by_number["GD-1"]
    assert gd1[3] == "设备故障" and gd1[4] == "已关闭" and gd1[5] == "一号厂房"
    assert gd1[7] == "李工" and gd1[8] == "2026-12-02 09:00" and gd1[9] == "2026-12-02 14:00"
    assert gd1[10] == "轴承磨损" and gd1[11] == "5"
    assert by_number["GD-5"][1].startswith("'=HYPERLINK")  # text, not a formula

    status, _, body = await _get(
        hub, "/dashboard/export.csv?from=2026-12-03&to=2026-12-03&site=一号厂房&lang=en", manager
    )
    rows = list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))
    assert rows[0][0] == "Ticket" and [r[0] for r in rows[1:]] == ["GD-4"]
    assert rows[1][4] == "New"

    engineer = await hub.staff_session("wang")
    body = (await _get(hub, "/dashboard/export.csv", engineer))[2]
    assert [r[0] for r in csv.reader(io.StringIO(body.removeprefix("\ufeff")))][1:] == ["GD-5"]


async def test_each_person_has_a_rate(running: Start, db_url: str) -> None:
    limited = {"requests_per_minute": 2}
    hub = await running(clock=FakeClock(NOW), **STAFF, **QUIET, dashboard=limited)
    li, zhao = await hub.staff_session("li"), await hub.staff_session("zhao")
    assert [(await _get(hub, "/dashboard/api/figures", li))[0] for _ in range(3)] == [200, 200, 429]
    assert (await _get(hub, "/dashboard/export.csv", zhao))[0] == 200  # (his own rate)


async def test_off_means_not_there(running: Start, db_url: str) -> None:
    hub = await running(clock=FakeClock(NOW), **STAFF, **QUIET, dashboard={"enabled": False})
    token = await hub.staff_session("zhao")
    for path in ("/dashboard", "/dashboard/api/figures", "/dashboard/export.csv"):
        assert (await _get(hub, path, token))[0] == 404
