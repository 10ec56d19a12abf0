"""The asset registry at work: the API, reports resolved to assets, the staff card, QR links."""

from __future__ import annotations

import csv
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.assets import AssetLinks
from bot.cli.registry import assets_command
from tests.conftest import FakeClock, Feed, RunningHub, eventually, make_settings
from tests.test_webchat_flow import cid, customer, report, staff

Start = Callable[..., Awaitable[RunningHub]]

HEADER = [
    "code",
    "name",
    "aliases",
    "model",
    "site_code",
    "site_name",
    "organisation_code",
    "organisation_name",
    "warranty_end",
    "preferred_engineer",
]
ROWS = [
    [
        "IM-003",
        "3号注塑机",
        "三号机",
        "HT-MA900",
        "S-2",
        "二车间",
        "ACME",
        "艾克米",
        "2027-06-30",
        "li",
    ],
    ["IM-004", "4号注塑机", "", "HT-MA900", "S-2", "二车间", "ACME", "艾克米", "2024-01-31", ""],
    ["CT-P1", "1号冷却塔水泵", "", "", "S-9", "动力站", "", "", "", ""],
]
NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)  # a Wednesday, 10:00 in Shanghai


async def _with_assets(running: Start, tmp_path: Path, db_url: str) -> RunningHub:
    path = tmp_path / "assets.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([HEADER, *ROWS])
    assert await assets_command(make_settings(tmp_path, db_url), "import", str(path)) == 0
    hub = await running(clock=FakeClock(NOW))
    assert len(hub.hub.env.assets) == 3  # loaded when the hub started
    return hub


async def _get(hub: RunningHub, path: str, **kw: Any) -> tuple[int, Any]:
    async with hub.http.get(hub.base + path, **kw) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body


def _auth() -> dict[str, dict[str, str]]:
    return {"headers": {"Authorization": "Bearer test-token"}}


async def _tickets(hub: RunningHub, n: int) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = (await hub.api("/api/tickets"))["tickets"]
        return found if len(found) >= n else None

    result: list[dict[str, Any]] = await eventually(enough, what=f"{n} tickets")
    return result


async def _asset_tickets(hub: RunningHub, code: str) -> list[str]:
    return [t["number"] for t in (await hub.api(f"/api/assets/{code}"))["tickets"]]


def _fields(card: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in card["payload"]["fields"]}


async def test_the_assets_api_lists_searches_and_shows_one(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    hub = await _with_assets(running, tmp_path, db_url)
    assert (await _get(hub, "/api/assets"))[0] == 401
    assert (await _get(hub, "/api/assets/IM-003"))[0] == 401
    listed = (await hub.api("/api/assets"))["assets"]
    assert [a["code"] for a in listed] == ["CT-P1", "IM-003", "IM-004"]
    found = (await hub.api("/api/assets?q=%E6%B3%A8%E5%A1%91&limit=1&offset=1"))["assets"]
    assert [a["code"] for a in found] == ["IM-004"]  # 注塑, second page of one
    assert found[0]["out_of_warranty"] is True
    assert (await hub.api("/api/assets?q=%25"))["assets"] == []  # % is a character, not a wildcard
    for bad in (
        "limit=0",
        "limit=x",
        "offset=-1",
        "limit=1&limit=2",
        "sort=code",
        "q=" + "x" * 101,
    ):
        status, body = await _get(hub, f"/api/assets?{bad}", **_auth())
        assert status == 400, (bad, body)
    one = await hub.api("/api/assets/im-003")
    assert one["site"]["name"] == "二车间" and one["organisation"]["name"] == "艾克米"
    assert (one["model"], one["warranty_end"], one["tickets"]) == ("HT-MA900", "2027-06-30", [])
    assert (await _get(hub, "/api/assets/NOPE", **_auth()))[0] == 404
    assert (await _get(hub, "/api/assets/IM-003?x=1", **_auth()))[0] == 400


async def test_a_report_naming_a_machine_gets_its_asset_site_and_a_card_that_knows_it(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    hub = await _with_assets(running, tmp_path, db_url)
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, li) as lfeed:
        await report(hub, cust, "3号注塑机停机了，报警E102")  # no place named
        (first,) = await _tickets(hub, 1)
        assert first["site"] == "二车间"  # the asset's site
        assert await _asset_tickets(hub, "IM-003") == [first["number"]]
        card = await lfeed.wait_card("team", lambda p: p["title"].startswith(first["number"]))
        fields = _fields(card)
        assert fields["设备档案"] == "IM-003 3号注塑机 · 型号 HT-MA900 · 二车间 · 保修至 2027-06-30"
        assert "该设备近期工单" not in fields  # its first ticket

        await report(hub, cust, "三号注塑机液压站漏油，在二车间")  # spoken differently
        second = (await _tickets(hub, 2))[0]
        assert await _asset_tickets(hub, "IM-003") == [second["number"], first["number"]]
        card = await lfeed.wait_card("team", lambda p: p["title"].startswith(second["number"]))
        history = _fields(card)["该设备近期工单"]
        assert history.startswith(f"{first['number']} ") and "（已派单）" in history

        await report(hub, cust, "4号注塑机不动了")
        third = (await _tickets(hub, 3))[0]
        card = await lfeed.wait_card("team", lambda p: p["title"].startswith(third["number"]))
        assert "已过保（2024-01-31 到期）" in _fields(card)["设备档案"]

        await report(hub, cust, "5号注塑机停机了，在三车间")  # no such machine: no asset
        fourth = (await _tickets(hub, 4))[0]
        card = await lfeed.wait_card("team", lambda p: p["title"].startswith(fourth["number"]))
        assert "设备档案" not in _fields(card) and fourth["site"] == "三车间"
    assert await _asset_tickets(hub, "IM-003") == [second["number"], first["number"]]


async def test_a_customer_card_shows_no_asset_record(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    hub = await _with_assets(running, tmp_path, db_url)
    cust = await customer(hub)
    async with Feed(hub, cust) as cfeed:
        await report(hub, cust, "3号注塑机停机了")
        card = await cfeed.wait_card(
            next(iter(e["conversation"] for e in await eventually(lambda: _events(cfeed)))),
            lambda p: True,
        )
        assert "设备档案" not in _fields(card)


async def _events(feed: Feed) -> list[dict[str, Any]]:
    return [e for e in feed.events if e["kind"] == "card"]


async def test_a_scanned_qr_link_makes_a_ticket_about_that_asset(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    hub = await _with_assets(running, tmp_path, db_url)
    im3 = hub.hub.env.assets.by_code("IM-003")
    assert im3 is not None
    token = AssetLinks(b"test-secret-key").sign(im3.id)
    status, _ = await _get(hub, f"/r/{token}", allow_redirects=False)
    async with hub.http.get(hub.base + f"/r/{token}", allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (302, f"/chat?asset={token}&lang=zh")
    status, shown = await _get(hub, f"/r/{token}", headers={"Accept": "application/json"})
    assert (status, shown["label"]) == (200, "报修设备：3号注塑机 · 二车间")
    status, page = await _get(hub, f"/chat?asset={token}")
    assert status == 200 and 'id="asset"' in page

    cust = await customer(hub)
    status, _ = await hub.post(
        "/webchat/api/messages",
        {"session": cust, "id": cid(), "text": "机器不转了，一直报警", "asset": token},
    )
    assert status == 202
    (ticket,) = await _tickets(hub, 1)
    assert ticket["site"] == "二车间" and ticket["device_code"] == "3号注塑机"
    assert await _asset_tickets(hub, "IM-003") == [ticket["number"]]


async def test_a_forged_qr_token_never_attaches_an_asset(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    hub = await _with_assets(running, tmp_path, db_url)
    im3 = hub.hub.env.assets.by_code("IM-003")
    assert im3 is not None
    forged = AssetLinks(b"not-the-hub-secret").sign(im3.id)
    assert (await _get(hub, f"/r/{forged}", allow_redirects=False))[0] == 404
    assert (await _get(hub, f"/r/{forged}", headers={"Accept": "application/json"}))[0] == 404
    assert (await _get(hub, "/r/" + "A" * 300, allow_redirects=False))[0] == 404
    cust = await customer(hub)
    for bad in (forged, 42, "", "x" * 300):
        status, body = await hub.post(
            "/webchat/api/messages",
            {"session": cust, "id": cid(), "text": "机器不转了", "asset": bad},
        )
        assert status == 400, (bad, body)
    await report(hub, cust, "冷却塔水泵漏水了，在动力站")
    assert len(await _tickets(hub, 1)) == 1  # only the honest message made a ticket
    assert await _asset_tickets(hub, "IM-003") == []
    assert await _asset_tickets(hub, "CT-P1") == []  # "冷却塔水泵" names no number: not 1号


async def test_an_import_while_running_is_picked_up(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    hub = await _with_assets(running, tmp_path, db_url)
    assert not await hub.hub.refresh_assets()  # nothing changed: nothing reloaded
    path = tmp_path / "more.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(
            [["编号", "名称", "站点编号", "站点"], ["AC-A", "空压机A", "S-9", "动力站"]]
        )
    assert await assets_command(make_settings(tmp_path, db_url), "import", str(path)) == 0
    assert await hub.hub.refresh_assets()  # (the hub does this every 30 s)
    cust = await customer(hub)
    await report(hub, cust, "AC-A 空压机停机了")
    (ticket,) = await _tickets(hub, 1)
    assert ticket["site"] == "动力站"
    assert await _asset_tickets(hub, "AC-A") == [ticket["number"]]


async def test_a_report_about_an_asset_reads_no_asset_and_its_history_once(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    """Resolving is in memory (no statement on the assets table, however many there are); the
    staff cards' "last tickets" are one set-based read for the unit, not one per card."""
    from tests.test_statements import _quiet, counting

    hub = await _with_assets(running, tmp_path, db_url)
    await _quiet(hub)
    cust = await customer(hub)
    for n, text in enumerate(
        ["3号注塑机停机了，报警E102", "三号注塑机液压站漏油，在二车间"], start=1
    ):
        with counting(hub.hub.db) as count:
            await report(hub, cust, text)
            await _tickets(hub, n)
            await hub.hub.idle()
        said = [s.lower() for s in count.statements]
        assert not [s for s in said if " assets" in s], "\n".join(said)
        assert len([s for s in said if "anon_1.asset_id" in s]) == 1, "\n".join(said)
