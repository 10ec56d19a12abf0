"""SLA clocks end to end on a controllable clock: warn → breach → group → manager → repeat →
stop when someone acts, through the real app, the outbox and the web chat."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from tests.conftest import FakeClock, Feed, RunningHub, button, eventually, outbox_drained
from tests.test_webchat_flow import customer, one_ticket, press, report, staff

Start = Callable[..., Awaitable[RunningHub]]

#: Wednesday 2026-12-02 10:00 in Shanghai.
T0 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)

CHAIN_SLA: dict[str, Any] = {
    "policies": {"P0": {"respond": "10m", "arrive": "off", "resolve": "off"}},
    "warn_at": [0.5],
    "stay": {},
    "chains": {
        "default": {
            "steps": [
                {"do": "notify_assignee"},
                {"do": "post_team"},
                {"wait": "10m", "do": "notify_manager"},
            ],
            "repeat_every": "10m",
            "repeat": 1,
        }
    },
}


async def sweep_at(hub: RunningHub, clock: FakeClock, minutes: float) -> None:
    clock.set(T0)
    clock.advance(minutes=minutes)
    await hub.hub.sla_sweep()
    hub.hub.sender.wake.set()


def sla_texts(feed: Feed, conversation: str) -> list[str]:
    """What the SLA said in one conversation: group texts and nag cards' clock lines (each
    message once, as the page shows it now)."""
    out = []
    for e in feed.latest().values():
        if e["conversation"] != conversation:
            continue
        p = e["payload"]
        if e["kind"] == "text" and p["text"].startswith("⏰"):
            out.append(p["text"])
        elif e["kind"] == "card" and p["title"].startswith("⏰"):
            out.append(" | ".join(v for k, v in p["fields"] if k == "时限"))
    return out


async def audit(hub: RunningHub, number: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (await hub.api(f"/api/tickets/{number}"))["events"]
    return [e for e in events if e["kind"].startswith("sla")]


async def test_warn_breach_group_manager_repeat_then_stop_when_accepted(running: Start) -> None:
    clock = FakeClock(T0)
    hub = await running(clock=clock, sla=CHAIN_SLA)
    cust, li, zhao = await customer(hub), await staff(hub, "li"), await staff(hub, "zhao")
    async with Feed(hub, li) as lfeed, Feed(hub, zhao) as zfeed, Feed(hub, cust) as cfeed:
        await report(hub, cust, "3号注塑机停机了，报警E102，在二车间")
        await cfeed.wait_text("GD-")
        ticket = await one_ticket(hub)
        number = ticket["number"]
        assert (ticket["priority"], ticket["assignee"]["id"]) == ("P0", "li")
        assert ticket["deadlines"]["respond"] == "2026-12-02T02:10:00+00:00"

        await sweep_at(hub, clock, 4)  # nothing is due yet
        await sweep_at(hub, clock, 5)  # half the respond clock: the assignee is warned
        warned = await lfeed.wait_card("li", lambda p: p["title"].startswith("⏰"))
        assert ("时限", "响应将在5分钟后到期（2026-12-02 10:10）") in map(
            tuple, warned["payload"]["fields"]
        )
        assert {b["action"] for b in warned["payload"]["buttons"]} == {
            "accept",
            "claim",
            "reassign",
            "snooze",
        }

        await sweep_at(hub, clock, 10)  # breach: the assignee again, and the team group
        await eventually(_is(_count(lfeed, "team"), 1), what="the team's escalation")
        (team_post,) = sla_texts(lfeed, "team")
        assert number in team_post and "响应已超时" in team_post
        assert sla_texts(zfeed, "zhao") == []  # the manager is not bothered yet

        await sweep_at(hub, clock, 20)  # 10 minutes after the breach: the manager
        await eventually(_is(_count(zfeed, "zhao"), 1), what="the manager's nag")
        assert "响应已超时10分钟" in sla_texts(zfeed, "zhao")[0]
        assert {b["action"] for b in zfeed.cards("zhao")[-1]["payload"]["buttons"]} >= {"snooze"}

        await sweep_at(hub, clock, 30)  # the chain starts again: assignee and team
        await eventually(_is(_count(lfeed, "team"), 2), what="the repeat")

        clock.set(T0)
        clock.advance(minutes=35)
        card = await lfeed.wait_card("li", lambda p: p["title"].startswith(number))
        await press(hub, li, button(card, "accept"), "li")
        await eventually(lambda: _accepted(hub, number), what="the ticket accepted")

        for minutes in (40, 50, 60, 120):  # stopped: no step of the repeat runs any more
            await sweep_at(hub, clock, minutes)
        await outbox_drained(hub)
        assert len(sla_texts(lfeed, "team")) == 2
        assert sla_texts(zfeed, "zhao") == ["响应已完成（超时）"]  # the nag card, updated

    trail = await audit(hub, number)
    steps = [
        (e["kind"], e["data"].get("do"), e["data"].get("round"), e["at"][11:16]) for e in trail
    ]
    assert steps == [
        ("sla_warning", None, None, "02:05"),
        ("sla_breach", None, None, "02:10"),
        ("sla_escalation", "notify_assignee", 0, "02:10"),
        ("sla_escalation", "post_team", 0, "02:10"),
        ("sla_escalation", "notify_manager", 0, "02:20"),
        ("sla_escalation", "notify_assignee", 1, "02:30"),
        ("sla_escalation", "post_team", 1, "02:30"),
        ("sla", None, None, "02:35"),
    ]
    assert trail[-1]["data"] == {"escalation_stopped": ["respond"]}
    assert trail[-1]["actor"] == "李工"
    final = await hub.api(f"/api/tickets/{number}")
    (respond,) = [c for c in final["clocks"] if c["kind"] == "respond"]
    assert respond["breached"] and respond["met_at"] == "2026-12-02T02:35:00+00:00"
    assert respond["escalation_stopped_at"] == "2026-12-02T02:35:00+00:00"


def _count(feed: Feed, conversation: str) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return len(sla_texts(feed, conversation))

    return count


def _is(count: Callable[[], Awaitable[int]], n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await count() == n

    return check


async def _accepted(hub: RunningHub, number: str) -> bool:
    return bool((await hub.api(f"/api/tickets/{number}"))["state"] == "accepted")
