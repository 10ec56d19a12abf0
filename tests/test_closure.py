"""Closure that proves the work: checklists that block 已解决, evidence photos (console upload,
limits), the service report PDF, and the notice before auto-close."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from bot.flows.housekeeping import auto_close
from storage import repo
from tests.conftest import FakeClock, Feed, RunningHub, bearer, button, eventually
from tests.test_webchat_flow import current_card, customer, press, report, staff

Start = Callable[..., Awaitable[RunningHub]]

CHECKS = {"checklists": {"equipment_failure": ["现场已清理", "试机正常"]}}
# A real (tiny) PNG and JPEG header: the magic bytes are what is checked.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(200))
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + bytes(300)


def _png(width: int = 8, height: int = 6) -> bytes:
    """A valid PNG (so the report can draw it), made without an imaging library."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes([200, 40, 40]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def _ticket_being_repaired(
    hub: RunningHub, cust: str, li: str, lfeed: Feed, cfeed: Feed
) -> dict[str, Any]:
    """A customer's report, taken by 李工 and worked on up to 维修中."""
    await report(hub, cust, "3号注塑机停机了，报警E102，在二车间")
    await cfeed.wait_text("GD-")
    ticket = (await hub.api("/api/tickets"))["tickets"][0]
    for action, state in [
        ("accept", "accepted"),
        ("depart", "en_route"),
        ("arrive", "on_site"),
        ("diagnose", "diagnosing"),
        ("repair", "repairing"),
    ]:
        card = await current_card(hub, lfeed, "li", ticket["id"])
        await press(hub, li, button(card, action), "li")
        await eventually(lambda s=state: _state_is(hub, ticket["id"], s), what=state)
    return ticket


async def _state_is(hub: RunningHub, ticket_id: int, state: str) -> bool:
    return bool((await hub.api(f"/api/tickets/{ticket_id}"))["state"] == state)


def _field(card: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in card["payload"]["fields"] if k == name), None)


def _ticks(card: dict[str, Any]) -> list[str]:
    return [b["label"] for b in card["payload"]["buttons"] if b["action"] == "tick"]


def _tick(card: dict[str, Any], label: str) -> str:
    return str(next(b for b in card["payload"]["buttons"] if b["label"] == label)["token"])


async def test_resolve_is_refused_until_every_checklist_item_is_ticked(running: Start) -> None:
    hub = await running(closure=CHECKS)
    cust, li, wang = await customer(hub), await staff(hub, "li"), await staff(hub, "wang")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed, Feed(hub, wang) as wfeed:
        ticket = await _ticket_being_repaired(hub, cust, li, lfeed, cfeed)
        card = await current_card(hub, lfeed, "li", ticket["id"])
        assert _field(card, "完工检查") == "☐ 现场已清理\n☐ 试机正常"
        assert _ticks(card) == ["✓ 现场已清理", "✓ 试机正常"]
        customer_card = next(c for c in cfeed.cards() if c["payload"]["ticket_id"] == ticket["id"])
        assert _field(customer_card, "完工检查") is None  # customers never see it

        # 已解决 with the cause typed: refused, naming both open items; nothing moves.
        await press(hub, li, button(card, "resolve"), "li", note="冷却风扇损坏，已更换")
        refusal = await lfeed.wait_text("检查清单还有未完成项")
        assert "现场已清理、试机正常" in refusal
        assert await _state_is(hub, ticket["id"], "repairing")

        # Another engineer (not the assignee) may not tick, from the team's card.
        team = await wfeed.wait_card("team", lambda p: p["ticket_id"] == ticket["id"])
        await press(hub, wang, button(team, "tick"), "team")
        await wfeed.wait_text("您没有权限")

        # 李工 ticks the first item: the card shows who and when, one ✓ left.
        await press(hub, li, _tick(card, "✓ 现场已清理"), "li")
        card = await lfeed.wait_card("li", lambda p: "☑ 现场已清理" in str(p["fields"]))
        assert _field(card, "完工检查").startswith("☑ 现场已清理（李工 ")  # type: ignore[union-attr]
        assert _ticks(card) == ["↺ 现场已清理", "✓ 试机正常"]
        # A slip of the finger: ↺ takes the tick back, and ✓ gives it again.
        await press(hub, li, _tick(card, "↺ 现场已清理"), "li")
        await lfeed.wait_text("已撤销「现场已清理」的勾选")
        card = await lfeed.wait_card("li", lambda p: "☐ 现场已清理" in str(p["fields"]))
        assert _ticks(card) == ["✓ 现场已清理", "✓ 试机正常"]
        await press(hub, li, _tick(card, "✓ 现场已清理"), "li")
        card = await lfeed.wait_card("li", lambda p: "☑ 现场已清理" in str(p["fields"]))
        await press(hub, li, button(card, "resolve"), "li", note="冷却风扇损坏，已更换")
        await eventually(
            lambda: _count(lfeed, "检查清单还有未完成项：试机正常。"), what="second refusal"
        )
        assert await _state_is(hub, ticket["id"], "repairing")

        await press(hub, li, _tick(card, "✓ 试机正常"), "li")
        card = await lfeed.wait_card("li", lambda p: "☑ 试机正常" in str(p["fields"]))
        assert _ticks(card) == ["↺ 现场已清理", "↺ 试机正常"]
        await press(hub, li, button(card, "resolve"), "li", note="冷却风扇损坏，已更换")
        await eventually(lambda: _state_is(hub, ticket["id"], "resolved"), what="resolved")

    final = await hub.api(f"/api/tickets/{ticket['id']}")
    ticks = [(e["actor"], e["data"]) for e in final["events"] if e["kind"] == "checklist"]
    assert ticks == [
        ("李工", {"item": "现场已清理"}),
        ("李工", {"item": "现场已清理", "undone": True}),
        ("李工", {"item": "现场已清理"}),
        ("李工", {"item": "试机正常"}),
    ]
    refused = [e["data"]["reason"] for e in final["events"] if e["kind"] == "refused"]
    assert refused.count("RequirementMissing") == 2 and "NotAllowed" in refused


async def _count(feed: Feed, needle: str) -> bool:
    return any(needle in t for t in feed.texts())


async def test_resolve_needs_a_root_cause(running: Start) -> None:
    hub = await running()
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        ticket = await _ticket_being_repaired(hub, cust, li, lfeed, cfeed)
        card = await current_card(hub, lfeed, "li", ticket["id"])
        status, _ = await _upload(hub, li, ticket["number"], JPEG)
        assert status == 201  # a photo is evidence, but not a cause
        await press(hub, li, button(card, "resolve"), "li")
        await lfeed.wait_text("标记已解决前请写明原因")
        assert await _state_is(hub, ticket["id"], "repairing")


async def _upload(
    hub: RunningHub, session: str | None, ref: str, data: bytes, **headers: str
) -> tuple[int, Any]:
    auth = bearer(session) if session else {}
    url = f"{hub.base}/console/api/tickets/{ref}/evidence"
    async with hub.http.post(url, data=data, headers={**auth, **headers}) as r:
        return r.status, await r.json()


async def _assigned_to_li(hub: RunningHub, cust: str, cfeed: Feed) -> dict[str, Any]:
    await report(hub, cust, "3号注塑机停机了，报警E102，在二车间")
    await cfeed.wait_text("GD-")
    ticket: dict[str, Any] = (await hub.api("/api/tickets"))["tickets"][0]
    assert ticket["assignee"]["id"] == "li"
    return ticket


async def test_evidence_upload_limits_and_success(running: Start) -> None:
    hub = await running(closure={"photo_max_mb": 0.01})  # about 10 KB
    cust, li, wang = await customer(hub), await staff(hub, "li"), await staff(hub, "wang")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        ticket = await _assigned_to_li(hub, cust, cfeed)
        number = ticket["number"]

        refusals = [
            (None, JPEG, 401),  # no sign-in
            (li, b"GIF89a" + bytes(100), 415),  # not JPEG, PNG or WebP (whatever it claims)
            (li, b"<svg onload=alert(1)>", 415),
            (li, JPEG[:3] + bytes(20_000), 413),  # over photo_max_mb
            (li, b"", 400),
            (wang, JPEG, 403),  # not the assignee, a dispatcher or a manager
        ]
        for session, data, expected in refusals:
            status, body = await _upload(
                hub, session, number, data, **{"Content-Type": "image/jpeg"}
            )
            assert status == expected, (expected, body)
        assert (await _upload(hub, li, "GD-999", JPEG))[0] == 404
        assert (await _upload(hub, li, "not-a-ticket", JPEG))[0] == 400
        listing = await _get_json(hub, li, f"/console/api/tickets/{number}/evidence")
        assert listing["photos"] == []
        before = await hub.api(f"/api/tickets/{number}")
        assert not [e for e in before["events"] if e["kind"] == "evidence"]

        status, body = await _upload(hub, li, number, PNG)
        assert (status, body["photos"], body["duplicate"]) == (201, 1, False)
        card = await lfeed.wait_card("li", lambda p: ["现场照片", "1 张"] in p["fields"])
        assert card["payload"]["ticket_id"] == ticket["id"]
        status, body = await _upload(hub, li, number, PNG)  # the same picture again
        assert (status, body["photos"], body["duplicate"]) == (200, 1, True)

    listing = await _get_json(hub, li, f"/console/api/tickets/{number}/evidence")
    (photo,) = listing["photos"]
    assert (photo["media_type"], photo["size"], photo["via"]) == ("image/png", len(PNG), "console")
    async with hub.http.get(hub.base + photo["url"], headers=bearer(li)) as r:
        assert (r.status, r.content_type, await r.read()) == (200, "image/png", PNG)
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    async with hub.http.get(hub.base + photo["url"]) as r:
        assert r.status == 401
    after = await hub.api(f"/api/tickets/{number}")
    (event,) = [e for e in after["events"] if e["kind"] == "evidence"]
    assert event["actor"] == "李工" and event["data"]["media_type"] == "image/png"


async def test_a_photo_from_the_chat_box_goes_to_the_ticket_in_hand(running: Start) -> None:
    hub = await running()
    li, wang = await staff(hub, "li"), await staff(hub, "wang")
    url = f"{hub.base}/console/api/evidence"

    async def send(session: str, data: bytes, query: str = "") -> tuple[int, Any]:
        async with hub.http.post(url + query, data=data, headers=bearer(session)) as r:
            return r.status, await r.json()

    status, body = await send(li, PNG)  # nothing in hand yet
    assert status == 409 and "没有进行中的工单" in body["error"]
    first, second = await customer(hub), await customer(hub, "王五")
    async with Feed(hub, first) as f1, Feed(hub, second) as f2:
        await report(hub, first, "3号注塑机停机了，报警E102，在二车间")
        await f1.wait_text("GD-")
        status, body = await send(li, PNG)
        assert (status, body["number"], body["photos"]) == (201, "GD-1", 1)
        await report(hub, second, "5号注塑机漏油，在一车间")
        await f2.wait_text("GD-")
    status, body = await send(li, JPEG)  # two in hand: which?
    assert status == 409 and "GD-1" in body["error"] and "GD-2" in body["error"]
    status, body = await send(li, JPEG, "?ticket=GD-2")
    assert (status, body["number"]) == (201, "GD-2")
    assert (await send(wang, JPEG))[0] == 409  # (wang has none)
    assert (await send(li, JPEG, "?ticket=GD-2&x=1"))[0] == 400
    assert (await send(li, JPEG, "?ticket=nope"))[0] == 400


async def _get_json(hub: RunningHub, session: str, path: str) -> Any:
    async with hub.http.get(hub.base + path, headers=bearer(session)) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def _pdf_text(pdf: bytes) -> tuple[str, set[str]]:
    reader = PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    fonts: set[str] = set()
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            fonts.add(str(font.get_object()["/BaseFont"]))
    return text, fonts


async def test_service_report_pdf_names_the_ticket_and_its_audit_head(
    running: Start, tmp_path: Path
) -> None:
    hub = await running(closure=CHECKS)
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        ticket = await _ticket_being_repaired(hub, cust, li, lfeed, cfeed)
        assert (await _upload(hub, li, ticket["number"], _png()))[0] == 201
        # The right first bytes, garbage after: kept, but left out of the report (never fails it).
        assert (await _upload(hub, li, ticket["number"], PNG))[0] == 201
        for _ in range(2):
            card = await current_card(hub, lfeed, "li", ticket["id"])
            ticked = _open_ticks(card["payload"])
            first = next(b for b in card["payload"]["buttons"] if b["label"].startswith("✓"))
            await press(hub, li, first["token"], "li")
            await lfeed.wait_card("li", lambda p, n=ticked: _open_ticks(p) == n - 1)
        card = await current_card(hub, lfeed, "li", ticket["id"])
        await press(hub, li, button(card, "resolve"), "li", note="冷却风扇损坏，已更换")
        await eventually(lambda: _state_is(hub, ticket["id"], "resolved"), what="resolved")

    final = await hub.api(f"/api/tickets/{ticket['id']}")
    head = final["events"][-1]["hash"]
    url = f"{hub.base}/console/api/tickets/{ticket['number']}/report.pdf"
    async with hub.http.get(url) as r:
        assert r.status == 401  # staff only
    async with hub.http.get(url + "?lang=xx", headers=bearer(li)) as r:
        assert r.status == 400
    async with hub.http.get(url, headers=bearer(li)) as r:
        assert (r.status, r.content_type) == (200, "application/pdf")
        pdf = await r.read()
    assert pdf.startswith(b"%PDF")
    await asyncio.to_thread((tmp_path / "report-zh.pdf").write_bytes, pdf)  # (to look at)
    text, fonts = _pdf_text(pdf)
    squeezed = "".join(text.split())
    for expected in (
        ticket["number"],
        "服务报告",
        "冷却风扇损坏，已更换",
        "现场已清理",
        head,
        "已校验",
    ):
        assert expected in squeezed, expected
    assert any("WenQuanYi" in f or "Noto" in f for f in fonts), fonts  # a CJK font drew it
    assert b"/Subtype /Image" in pdf or b"/Subtype/Image" in pdf  # the photo's thumbnail

    # The same from the command line, in English.
    cfg = tmp_path / "g.toml"
    url_db = hub.hub.settings.database.url
    cfg.write_text(f'[database]\nurl = "{url_db}"\n[security]\nsecret_key = "test-secret-key"\n')
    out = tmp_path / "r.pdf"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "--config", str(cfg), "service-report",
        ticket["number"], "-o", str(out), "--locale", "en",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 0, err
    text, _ = await asyncio.to_thread(lambda: _pdf_text(out.read_bytes()))
    squeezed = "".join(text.split())
    assert "Servicereport" in squeezed and head in squeezed and "verifiedintact" in squeezed


def _open_ticks(payload: dict[str, Any]) -> int:
    return len([b for b in payload["buttons"] if b["label"].startswith("✓")])


T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


async def test_customer_is_told_once_before_auto_close(running: Start) -> None:
    clock = FakeClock(T0)
    hub = await running(clock=clock, tickets={"auto_close_hours": 0})  # run by hand here
    await hub.hub.idle()  # (the start-up SLA reconcile is over before the ticket is made)
    status, body = await hub.post("/chat/api/session", {"name": "张三"})
    assert status == 200
    conversation = body["conversation"]
    async with hub.hub.db.transaction() as s:
        person = await repo.identify(s, "web", conversation, "张三")
        t = await repo.create_ticket(
            s, title="空压机漏油", description="空压机漏油", priority="P2",
            category="equipment_failure", state="resolved", reporter_id=person.id,
            origin_chat=f"web:{conversation}", root_cause="密封圈老化",
            created_at=T0, updated_at=T0,
        )  # fmt: skip
    after, notice = timedelta(hours=72), timedelta(hours=24)

    async with Feed(hub, body["session"]) as feed:

        async def run(**at: float) -> int:
            clock.set(T0 + timedelta(**at))
            closed = await auto_close(hub.hub.work, after, notice=notice)
            hub.hub.sender.wake.set()
            return closed

        assert await run(hours=47) == 0
        events = (await hub.api(f"/api/tickets/{t.id}"))["events"]
        assert [e for e in events if e["kind"] != "sla"] == []  # not yet: 25 h left
        assert await run(hours=49) == 0
        told = await feed.wait_text("自动关闭")
        # Told an hour late (the job ran at 49 h): still a full day to answer, Shanghai time.
        assert "2026-12-04 11:00" in told and "没修好" in told
        assert await run(hours=50) == 0
        assert await run(hours=72, minutes=1) == 0  # the customer had only 23 h: not yet
        assert (await hub.api(f"/api/tickets/{t.id}"))["state"] == "resolved"
        assert await run(hours=73, minutes=1) == 1
        await feed.wait_text("工单已自动关闭")
        assert await run(hours=74) == 0

    notices = [x for x in feed.texts() if "将于" in x]
    assert len(notices) == 1
    final = await hub.api(f"/api/tickets/{t.id}")
    assert final["state"] == "closed"
    # (The SLA clocks' own entries are left out: a sweep may settle them at any time.) The
    # customer's notice comes before the closing transition.
    kinds = [e["kind"] for e in final["events"] if e["kind"] != "sla"]
    assert kinds == ["close_notice", "transition"]


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\xff\xd8\xff\xdb" + bytes(8), "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n" + bytes(8), "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"GIF89a", None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_photos_are_known_by_their_magic_bytes(data: bytes, kind: str | None) -> None:
    from bot.closure import image_type

    assert image_type(data) == kind


def test_the_state_table_names_what_resolve_still_needs() -> None:
    from bot.closure import facts
    from bot.closure_settings import ClosureSettings
    from bot.errors import RequirementMissing
    from bot.texts import refusal
    from bot.tickets import Role, TicketAction, check
    from storage.records import Ticket

    settings = ClosureSettings(checklists={"safety": ["现场已清理", "防护已恢复"]})
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ticket = Ticket(
        id=1, number="GD-1", title="漏电", description="漏电", priority="P0",
        category="safety", state="repairing", reporter_id=9, origin_chat="web:c",
        created_at=now, updated_at=now, assignee_id=2, root_cause="接线松动",
    )  # fmt: skip
    assignee = frozenset({Role.ASSIGNEE})
    with pytest.raises(RequirementMissing) as refused:
        check(TicketAction.RESOLVE, facts(settings, ticket), assignee)
    assert refused.value.items == ("现场已清理", "防护已恢复")
    assert refusal(refused.value, "en") == (
        "The checklist still has open items: 现场已清理, 防护已恢复. Tick them on the card, "
        "then resolve."
    )
    ticket.checklist = [{"item": "现场已清理", "by": "李工", "at": now.isoformat()}]
    with pytest.raises(RequirementMissing) as refused:
        check(TicketAction.RESOLVE, facts(settings, ticket), assignee)
    assert refused.value.items == ("防护已恢复",)
    ticket.checklist = [*ticket.checklist, {"item": "防护已恢复", "by": "李工", "at": "x"}]
    check(TicketAction.RESOLVE, facts(settings, ticket), assignee)  # allowed now

    ticket.root_cause = None  # a photo is evidence, but no cause
    ticket.photos = 1
    with pytest.raises(RequirementMissing) as refused:
        check(TicketAction.RESOLVE, facts(settings, ticket), assignee)
    assert refused.value.requirement == "root_cause"
    ticket.diagnosis = {"suspected_cause": "接线端子氧化"}  # a confirmed diagnosis's cause
    check(TicketAction.RESOLVE, facts(settings, ticket), assignee)
    lenient = ClosureSettings(require_root_cause=False)
    ticket.diagnosis = None
    check(TicketAction.RESOLVE, facts(lenient, ticket), assignee)  # the photo is enough
    ticket.photos = 0
    with pytest.raises(RequirementMissing) as refused:
        check(TicketAction.RESOLVE, facts(lenient, ticket), assignee)
    assert refused.value.requirement == "evidence"


def test_checklists_name_known_categories_and_short_items(tmp_path: Path) -> None:
    from bot.config import load_settings
    from bot.errors import ConfigError

    ok = load_settings(None, closure={"checklists": {"safety": [" 现场已清理 "]}})
    assert ok.closure.checklists == {"safety": ["现场已清理"]}
    for bad in (
        {"checklists": {"plumbing": ["x"]}},  # no such category
        {"checklists": {"safety": [""]}},
        {"checklists": {"safety": ["x"] * 9}},
        {"checklists": {"safety": ["同一项", "同一项"]}},
        {"photo_max_mb": 0},
        {"unknown": 1},
    ):
        with pytest.raises(ConfigError):
            load_settings(None, closure=bad)


async def test_service_reports_are_limited_per_person(running: Start) -> None:
    """Each report is drawn on the hub's CPU: a person asking for more than
    ``reports_per_minute`` is told to wait (429 with Retry-After); another person is not."""
    hub = await running(closure={"reports_per_minute": 1})
    li, zhao = await staff(hub, "li"), await staff(hub, "zhao")
    url = f"{hub.base}/console/api/tickets/GD-999/report.pdf"
    async with hub.http.get(url, headers=bearer(li)) as r:
        assert r.status == 404  # (counted: the limit comes before the ticket is looked up)
    async with hub.http.get(url, headers=bearer(li)) as r:
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
    async with hub.http.get(url, headers=bearer(zhao)) as r:
        assert r.status == 404
