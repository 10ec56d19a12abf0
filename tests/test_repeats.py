"""Repeat reports in a running hub: a second customer's report of the same machine is linked
and told so, staff merge it (both reporters then hear the next milestone, each in their own chat
and language) or split it (routed then), a report of the fault fixed lately links its cause,
other machines and old tickets are not repeats, and only dispatchers, managers and the
engineer on the first ticket decide."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.env import Env
from bot.events import Address, Sender, Text
from bot.flows.intake import handle_message
from bot.flows.repeats import same_fault
from bot.unit import Turn, Unit
from storage import repo
from storage.records import Person
from tests.conftest import FakeClock, Feed, RunningHub, button, eventually
from tests.test_assets_flow import _with_assets
from tests.test_units import CUSTOMER, LI, NOW, MemoryReads, env, message, said
from tests.test_webchat_flow import current_card, customer, press, report, staff

__all__ = ["env"]  # (the in-memory hub's fixture)

Start = Callable[..., Awaitable[RunningHub]]


def _fields(card: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in card["payload"]["fields"]}


async def _ticket(hub: RunningHub, n: int) -> dict[str, Any]:
    """Ticket ``GD-n`` once it exists, with its audit events."""

    async def get() -> dict[str, Any] | None:
        numbers = [t["number"] for t in (await hub.api("/api/tickets"))["tickets"]]
        return await hub.api(f"/api/tickets/GD-{n}") if f"GD-{n}" in numbers else None

    found: dict[str, Any] = await eventually(get, what=f"GD-{n}")
    return found


async def _conversation(feed: Feed) -> str:
    async def first() -> str | None:
        return next((str(e["conversation"]) for e in feed.events), None)

    return str(await eventually(first, what="the customer's conversation"))


async def _two_reports(hub: RunningHub, a: str, b: str) -> tuple[dict[str, Any], dict[str, Any]]:
    await report(hub, a, "3号注塑机停机了，报警E102")
    first = await _ticket(hub, 1)
    assert first["assignee"]["id"] == "li"
    await report(hub, b, "3号注塑机又停了，报警E102，整条线停了")
    return first, await _ticket(hub, 2)


async def test_a_second_customers_report_is_linked_merged_and_both_hear_the_next_step(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    hub = await _with_assets(running, tmp_path, db_url)
    a = await customer(hub, "张三")
    status, body = await hub.post("/chat/api/session", {"name": "Bob", "locale": "en"})
    assert status == 200
    b = str(body["session"])
    li, wang, zhao = await staff(hub, "li"), await staff(hub, "wang"), await staff(hub, "zhao")
    async with (
        Feed(hub, a) as afeed,
        Feed(hub, b) as bfeed,
        Feed(hub, li) as lfeed,
        Feed(hub, wang) as wfeed,
        Feed(hub, zhao) as zfeed,
    ):
        first, second = await _two_reports(hub, a, b)
        # Its own ticket, nothing lost; but unassigned, not routed, in the first one's team.
        assert (second["state"], second["assignee"], second["team"]) == ("new", None, "maint")
        assert second["intake"]["repeat"]["status"] == "suspected"
        told = await bfeed.wait_text("This looks like GD-1")
        assert "we have linked them" in told and "3号注塑机停机" in told
        assert not [t for t in afeed.texts() if "GD-2" in t]
        # The team and the engineer on GD-1 see the link and the two buttons.
        team = await lfeed.wait_card("team", lambda p: p["title"].startswith("GD-2 "))
        link = _fields(team)["疑似重复"]
        assert link.startswith("GD-1（") and "依据：同一设备·报警 E102 相同" in link
        dm = await lfeed.wait_card("li", lambda p: p["title"].startswith("GD-2 "))
        labels = [b["label"] for b in dm["payload"]["buttons"]]
        assert labels[:2] == ["合并", "不是同一问题"]

        # An engineer who is not on GD-1 may not decide; the engineer on GD-1 may.
        await press(hub, wang, button(team, "same_fault"), "team")
        await wfeed.wait_text("没有权限")
        assert (await hub.api("/api/tickets/GD-2"))["state"] == "new"
        await press(hub, li, button(dm, "same_fault"), "li")
        await lfeed.wait_text("GD-2 已合并到 GD-1")
        await bfeed.wait_text("Your report GD-2 is merged into GD-1")
        merged = await hub.api("/api/tickets/GD-2")
        assert merged["state"] == "closed" and merged["intake"]["repeat"]["status"] == "merged"
        assert merged["assignee"] is None  # nobody's work: never reopened (a new report links)
        mine = await bfeed.wait_card(await _conversation(bfeed), lambda p: "GD-2" in p["title"]
                                     and p["version"] == merged["version"])  # fmt: skip
        assert ("Merged into", "GD-1") in [tuple(f) for f in mine["payload"]["fields"]]
        assert mine["payload"]["buttons"] == []
        await press(hub, zhao, button(team, "not_same"), "team")  # decided already (stale)
        await zfeed.wait_text("这个问题已经回答过了")

        # GD-1's next milestone reaches both reporters, each in their own language.
        card = await current_card(hub, lfeed, "li", first["id"])
        assert _fields(card)["已合并的报修"] == "GD-2"
        await press(hub, li, button(card, "accept"), "li")
        await afeed.wait_text("【GD-1】李工 已接单。")
        await bfeed.wait_text("[GD-1] 李工 has taken your ticket.")

    # Merged and audited on both tickets.
    one, two = await hub.api("/api/tickets/GD-1"), await hub.api("/api/tickets/GD-2")
    (on_two,) = [e for e in two["events"] if e["kind"] == "repeat"]
    assert (on_two["data"], on_two["actor_id"]) == ({"decision": "merge", "into": "GD-1"}, "li")
    (on_one,) = [e for e in one["events"] if e["kind"] == "repeat"]
    assert on_one["data"]["decision"] == "merge" and on_one["data"]["from"] == "GD-2"
    moves = [(e["from"], e["to"], e["data"].get("action")) for e in two["events"]]
    assert ("new", "closed", "merge") in moves
    refused = [e for e in two["events"] if e["kind"] == "refused"]
    assert {e["actor_id"] for e in refused} >= {"wang"}
    async with hub.hub.db.read() as s:
        row = await repo.ticket_by_number(s, "GD-2")
        assert row is not None and row.merged_into == one["id"]


async def _has_text(feed: Feed, needle: str) -> bool:
    return any(needle in t for t in feed.texts())


async def test_not_the_same_routes_the_report_and_is_audited_on_both(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    hub = await _with_assets(running, tmp_path, db_url)
    a, b = await customer(hub, "张三"), await customer(hub, "李四")
    zhao = await staff(hub, "zhao")
    async with Feed(hub, b) as bfeed, Feed(hub, zhao) as zfeed:
        await _two_reports(hub, a, b)
        team = await zfeed.wait_card("team", lambda p: p["title"].startswith("GD-2 "))
        await press(hub, zhao, button(team, "not_same"), "team")
        await zfeed.wait_text("GD-2 将作为新工单处理")
        await bfeed.wait_text("GD-2 与 GD-1 不是同一问题，我们会单独处理。")
        redrawn = await zfeed.wait_card(
            "team", lambda p: p["title"].startswith("GD-2 ") and p["version"] > 0
        )
        assert "same_fault" not in [b["action"] for b in redrawn["payload"]["buttons"]]
    two = await hub.api("/api/tickets/GD-2")
    assert (two["state"], two["assignee"]["id"]) == ("assigned", "li")  # routed now
    assert two["intake"]["repeat"]["status"] == "split"
    one = await hub.api("/api/tickets/GD-1")
    for ticket, other in ((two, "GD-1"), (one, "GD-2")):
        (decided,) = [e for e in ticket["events"] if e["kind"] == "repeat"]
        assert decided["data"]["decision"] == "split" and other in decided["data"].values()
        assert decided["actor_id"] == "zhao"


async def test_another_machine_or_an_old_ticket_is_not_a_repeat(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    hub = await _with_assets(running, tmp_path, db_url)
    clock = hub.hub.clock
    assert isinstance(clock, FakeClock)
    a, b = await customer(hub, "张三"), await customer(hub, "李四")
    await report(hub, a, "3号注塑机停机了，报警E102")
    await _ticket(hub, 1)
    await report(hub, b, "4号注塑机停机了，报警E102")  # same site, same alarm, another machine
    assert "repeat" not in ((await _ticket(hub, 2))["intake"] or {})
    await report(hub, b, "3号注塑机液压站漏油")  # same machine, another fault
    assert "repeat" not in ((await _ticket(hub, 3))["intake"] or {})
    clock.advance(hours=25)  # outside [intake] repeat_hours (24)
    await report(hub, b, "3号注塑机又停机了，报警E102")
    late = await _ticket(hub, 4)
    assert "repeat" not in (late["intake"] or {}) and late["assignee"] is not None


async def test_the_fault_fixed_lately_is_linked_with_its_cause_not_reopened(
    running: Start, tmp_path: Path, db_url: str
) -> None:
    hub = await _with_assets(running, tmp_path, db_url)
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        await report(hub, cust, "3号注塑机停机了，报警E102")
        first = await _ticket(hub, 1)
        card = await current_card(hub, lfeed, "li", first["id"])
        for action in ["accept", "depart", "arrive", "diagnose", "repair", "resolve"]:
            note = "温控模块保险丝熔断，已更换" if action == "resolve" else None
            await press(hub, li, button(card, action), "li", note=note)
            version = card["payload"]["version"]
            card = await lfeed.wait_card("li", lambda p, v=version: p["ticket_id"] == first["id"]
                                         and p["version"] > v)  # fmt: skip
        conv = await _conversation(cfeed)
        mine = await cfeed.wait_card(conv, lambda p: any(b["action"] == "confirm"
                                                         for b in p["buttons"]))  # fmt: skip
        await press(hub, cust, button(mine, "confirm"), conv)
        await eventually(lambda: _closed(hub, "GD-1"), what="GD-1 closed")

        await report(hub, cust, "又停机了，还是报警E102")
        again = await _ticket(hub, 2)
        assert again["intake"]["previous"]["number"] == "GD-1"
        assert again["assignee"]["id"] == "li"  # routed as usual
        assert (await hub.api("/api/tickets/GD-1"))["state"] == "closed"  # not reopened
        told = await cfeed.wait_text("上次的 GD-1")
        assert "已关联" in told
        staff_card = await lfeed.wait_card("li", lambda p: p["title"].startswith("GD-2 "))
        assert _fields(staff_card)["上次"] == "GD-1 原因：温控模块保险丝熔断，已更换"
        assert "same_fault" not in [b["action"] for b in staff_card["payload"]["buttons"]]


async def _closed(hub: RunningHub, number: str) -> bool:
    return bool((await hub.api(f"/api/tickets/{number}"))["state"] == "closed")


def test_same_fault_is_one_explainable_rule() -> None:
    same = same_fault("又停了，报警E102", "E102", "3号注塑机停机了，报警e102", "e102")
    assert same == {"alarm": "E102", "score": 1.0}
    assert same_fault("停机，报警E102", "E102", "停机，报警E103", "E103") is None
    words = same_fault(
        "3号注塑机停机了，整条线都停了", None, "3号注塑机停机了", None, own_words="3号注塑机"
    )
    assert words is not None and words["score"] >= 0.5
    # the machine's own name is not a shared symptom
    assert same_fault("3号注塑机漏油", None, "3号注塑机停机", None, own_words="3号注塑机") is None


async def test_two_reports_in_one_unit_from_two_chats_are_linked(env: Env) -> None:
    """Reports decided in the same unit of work (two chats, one batch): the second sees the
    first ticket before anything is stored, and pages no one."""
    unit = Unit(env, MemoryReads(), NOW)
    other = Person(id=11, key="cust-web-c-2", name="李四", role="customer")
    first = message("3号注塑机停机了，报警E102，在二车间")
    second = replace(
        message("二车间的3号注塑机又停了，报警E102"), event_id="m-2",
        chat=Address("web", "c-2"), sender=Sender("web", "c-2", "李四"),
    )  # fmt: skip
    for key, person, event in (("web:m1", CUSTOMER, first), ("web:m2", other, second)):
        with unit.turn():
            await handle_message(Turn(unit, key, person, event), event)
    one, two = sorted(unit.tickets.values(), key=lambda t: t.id)
    assert one.assignee_id == LI.id and two.assignee_id is None and two.state == "new"
    assert (two.intake or {})["repeat"]["number"] == one.number
    told = [m.text for m in said(unit, "web:c-2") if isinstance(m, Text)]
    assert any(f"似乎与 {one.number} 相同" in t for t in told)
