"""SLA clocks through the real app: restarts, policy changes, pauses, snoozes, reassignment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from tests.conftest import FakeClock, Feed, RunningHub, button, eventually, outbox_drained
from tests.sla.test_chain import T0, audit
from tests.test_webchat_flow import customer, one_ticket, press, report, staff

Start = Callable[..., Awaitable[RunningHub]]


def sla_config(**chain: Any) -> dict[str, Any]:
    return {
        "policies": {"P0": {"respond": "10m", "arrive": "off", "resolve": "off"}},
        "warn_at": [0.5],
        "stay": {},
        "chains": {
            "default": {
                "steps": [{"do": "notify_assignee"}, {"do": "post_team"}],
                "repeat_every": "10m",
                "repeat": 0,
                **chain,
            }
        },
    }


async def new_ticket(hub: RunningHub, text: str = "3号注塑机停机了，报警E102，在二车间") -> str:
    cust = await customer(hub)
    async with Feed(hub, cust) as feed:
        await report(hub, cust, text)
        await feed.wait_text("GD-")
    return str((await one_ticket(hub))["number"])


async def test_a_deadline_that_passed_while_down_fires_once_on_start(running: Start) -> None:
    clock = FakeClock(T0)
    first = await running(clock=clock, sla=sla_config(repeat=3))
    number = await new_ticket(first)
    await first.stop()

    clock.advance(hours=3)  # down through the warning, the breach and every repeat
    second = await running(clock=clock, sla=sla_config(repeat=3))
    # The start-up sweep runs at once; the scheduler repeats it every second after.
    await eventually(lambda: _has_audit(second, number, "sla_escalation", 2), what="steps")
    await second.hub.sla_sweep()
    await second.hub.sla_sweep()
    await outbox_drained(second)
    assert await _nags_sent(second, "web:team") == 1
    assert await _nags_sent(second, "web:li") == 1
    kinds = [
        (e["kind"], e["data"].get("do"), e["data"].get("round"))
        for e in await audit(second, number)
    ]
    # No warning (the breach made it moot); the breach once; each step once, newest round.
    assert kinds == [
        ("sla_breach", None, None),
        ("sla_escalation", "notify_assignee", 3),
        ("sla_escalation", "post_team", 3),
    ]


async def _nags_sent(hub: RunningHub, destination: str) -> int:
    from storage import outbox

    async with hub.hub.db.read() as s:
        rows = await outbox.rows(s, destination=destination, states=["sent"])
    return len([r for r in rows if "nag" in r.payload])


async def _has_audit(hub: RunningHub, number: str, kind: str, n: int) -> bool:
    return len([e for e in await audit(hub, number) if e["kind"] == kind]) >= n


async def test_a_changed_policy_is_applied_to_open_tickets_on_start(running: Start) -> None:
    clock = FakeClock(T0)
    first = await running(clock=clock, sla=sla_config())
    number = await new_ticket(first)
    ticket = await first.api(f"/api/tickets/{number}")
    assert ticket["deadlines"]["respond"] == "2026-12-02T02:10:00+00:00"
    await first.stop()

    longer = sla_config()
    longer["policies"]["P0"]["respond"] = "30m"
    clock.advance(minutes=4)
    second = await running(clock=clock, sla=longer)

    async def moved() -> bool:
        t = await second.api(f"/api/tickets/{number}")
        return bool(t["deadlines"]["respond"] == "2026-12-02T02:30:00+00:00")

    await eventually(moved, what="the new deadline")
    respond = await _clock(second, number, "respond")
    assert respond["budget_seconds"] == 1800 and respond["remaining_business_seconds"] == 1560


async def test_resolve_clock_pauses_while_the_customer_decides_and_resumes_on_reject(
    running: Start,
) -> None:
    clock = FakeClock(T0)
    sla = {"policies": {"P0": {"respond": "1h", "arrive": "off", "resolve": "4h"}}, "stay": {}}
    hub = await running(clock=clock, sla=sla)
    cust, li = await customer(hub), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        await report(hub, cust, "3号注塑机停机了，报警E102，在二车间")
        await cfeed.wait_text("GD-")
        number = (await one_ticket(hub))["number"]
        steps = ["accept", "depart", "arrive", "diagnose", "repair"]
        for minutes, action in zip((10, 20, 40, 60, 70), steps, strict=True):
            clock.set(T0)
            clock.advance(minutes=minutes)
            await _press_on_dm(hub, lfeed, li, number, action)
        clock.set(T0)
        clock.advance(minutes=90)
        await _press_on_dm(hub, lfeed, li, number, "resolve", note="喷嘴堵塞，已清理")

        resolve = await _clock(hub, number, "resolve")
        assert resolve["paused"] and resolve["due"] is None
        assert resolve["remaining_business_seconds"] == 4 * 3600 - 90 * 60

        clock.advance(hours=2)  # the customer takes two hours: not counted
        ccard = await cfeed.wait_card(
            next(c["conversation"] for c in cfeed.cards()),
            lambda p: any(b["action"] == "reject" for b in p["buttons"]),
        )
        await press(hub, cust, button(ccard, "reject"))
        await eventually(lambda: _state(hub, number, "repairing"), what="rejected")
        resolve = await _clock(hub, number, "resolve")
        assert not resolve["paused"]
        # 150 minutes were left when it paused at 03:30; it resumed at 05:30.
        assert resolve["due"] == "2026-12-02T08:00:00+00:00"


async def _press_on_dm(
    hub: RunningHub, feed: Feed, session: str, number: str, action: str, note: str | None = None
) -> None:
    before = (await hub.api(f"/api/tickets/{number}"))["version"]

    async def card_with_button() -> dict[str, Any] | None:
        for c in feed.cards("li"):
            p = c["payload"]
            if p["title"].startswith(number) and p["version"] == before:
                return c if any(b["action"] == action for b in p["buttons"]) else None
        return None

    card = await eventually(card_with_button, what=f"a card with {action}")
    await press(hub, session, button(card, action), "li", note=note)

    async def moved() -> bool:
        return bool((await hub.api(f"/api/tickets/{number}"))["version"] > before)

    await eventually(moved, what=action)


async def _clock(hub: RunningHub, number: str, kind: str) -> dict[str, Any]:
    clocks = (await hub.api(f"/api/tickets/{number}"))["clocks"]
    return next(c for c in clocks if c["kind"] == kind)


async def _state(hub: RunningHub, number: str, state: str) -> bool:
    return bool((await hub.api(f"/api/tickets/{number}"))["state"] == state)


async def test_a_manager_snoozes_with_a_reason_an_engineer_may_not(running: Start) -> None:
    clock = FakeClock(T0)
    hub = await running(clock=clock, sla=sla_config(steps=[{"do": "notify_manager"}]))
    number = await new_ticket(hub)
    zhao, li = await staff(hub, "zhao"), await staff(hub, "li")
    async with Feed(hub, zhao) as zfeed, Feed(hub, li) as lfeed:
        clock.advance(minutes=11)
        await hub.hub.sla_sweep()
        hub.hub.sender.wake.set()
        nag = await zfeed.wait_card("zhao", lambda p: p["title"].startswith("⏰"))

        await press(hub, li, button(nag, "snooze"), "li")  # an engineer: refused, told why
        await lfeed.wait_text("您没有权限执行「延期」")

        await press(hub, zhao, button(nag, "snooze"), "zhao")  # no reason given: asked for one
        ask = await zfeed.wait_text("延期")
        assert f"{number} 延期 60m" in ask

        status, body = await hub.post(
            "/webchat/api/messages",
            {"session": zhao, "id": "snooze-1", "text": f"{number} 延期 2h 等厂家回电"},
        )
        assert status == 202, body
        done = await zfeed.wait_text("已延期")
        assert "2小时" in done and "等厂家回电" in done

    ticket = await hub.api(f"/api/tickets/{number}")
    # 11 minutes used of a 10-minute budget, plus two hours: due at 04:11.
    assert ticket["deadlines"]["respond"] == "2026-12-02T04:11:00+00:00"
    (respond,) = ticket["clocks"]
    assert not respond["breached"] and respond["escalation_step"] == 0
    (refused,) = [e for e in ticket["events"] if e["kind"] == "refused"]
    assert (refused["actor"], refused["data"]["action"], refused["data"]["reason"]) == (
        "李工",
        "snooze",
        "NotAllowed",
    )
    (asked,) = [e for e in ticket["events"] if e["kind"] == "sla_snooze_asked"]
    assert (asked["actor"], asked["via"], asked["data"]) == ("赵经理", "button", {"minutes": 60})
    (snoozed,) = [e for e in ticket["events"] if e["kind"] == "sla_snooze"]
    assert snoozed["actor"] == "赵经理" and snoozed["data"]["reason"] == "等厂家回电"
    assert snoozed["data"]["clocks"]["respond"]["to"] == "2026-12-02T04:11:00+00:00"

    clock.advance(minutes=60)  # nothing is due before the new deadline
    await hub.hub.sla_sweep()
    assert [e["kind"] for e in await audit(hub, number)].count("sla_breach") == 1


async def test_the_chain_reassigns_an_unaccepted_ticket_to_the_next_candidate(
    running: Start,
) -> None:
    clock = FakeClock(T0)
    config = sla_config(steps=[{"do": "reassign"}, {"do": "post_origin"}])
    hub = await running(clock=clock, sla=config)
    number = await new_ticket(hub)
    assert (await hub.api(f"/api/tickets/{number}"))["assignee"]["id"] == "li"
    wang = await staff(hub, "wang")
    async with Feed(hub, wang) as wfeed:
        clock.advance(minutes=10)
        await hub.hub.sla_sweep()
        hub.hub.sender.wake.set()
        await wfeed.wait_card("wang", lambda p: p["title"].startswith(number))

    ticket = await hub.api(f"/api/tickets/{number}")
    assert (ticket["state"], ticket["assignee"]["id"]) == ("assigned", "wang")
    trail = [(e["kind"], e["data"].get("do")) for e in await audit(hub, number)]
    assert trail == [
        ("sla_breach", None),
        ("sla_escalation", "reassign"),
        ("sla_skipped", "post_origin"),  # the customer's one-to-one chat is no place for it
    ]
    last = [e for e in ticket["events"] if e["kind"] == "transition"][-1]
    assert (last["actor"], last["data"]["assignee"]) == ("system", "wang")


async def test_business_hours_clock_shows_remaining_business_time(running: Start) -> None:
    friday_evening = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)  # 17:30 in Shanghai
    clock = FakeClock(friday_evening)
    sla = {"policies": {"P2": {"respond": "4h", "calendar": "business"}}}
    hub = await running(clock=clock, sla=sla)
    number = await new_ticket(hub, "二车间空压机有异响，还能用")
    ticket = await hub.api(f"/api/tickets/{number}")
    assert ticket["priority"] == "P2"
    # 30 minutes on Friday, 3.5 hours on Monday from 09:00.
    assert ticket["deadlines"]["respond"] == "2026-12-07T04:30:00+00:00"
    clock.advance(hours=40)  # Sunday morning: nothing has been used since Friday 18:00
    respond = await _clock(hub, number, "respond")
    assert respond["remaining_business_seconds"] == int(3.5 * 3600)


async def test_a_breach_after_a_snooze_nags_again(running: Start) -> None:
    from storage import outbox

    clock = FakeClock(T0)
    hub = await running(clock=clock, sla=sla_config(steps=[{"do": "notify_manager"}]))
    number = await new_ticket(hub)
    zhao = await staff(hub, "zhao")
    async with Feed(hub, zhao) as zfeed:
        clock.advance(minutes=11)
        await hub.hub.sla_sweep()
        hub.hub.sender.wake.set()
        await zfeed.wait_card("zhao", lambda p: p["title"].startswith("⏰"))
        status, _ = await hub.post(
            "/webchat/api/messages",
            {"session": zhao, "id": "snooze-1", "text": f"{number} 延期 30m 等厂家回电"},
        )
        assert status == 202
        await zfeed.wait_text("已延期")
        clock.advance(minutes=31)  # the snoozed deadline passes too: the manager again
        await hub.hub.sla_sweep()
        await outbox_drained(hub)
    kinds = [e["kind"] for e in await audit(hub, number)]
    assert kinds.count("sla_breach") == 2 and kinds.count("sla_escalation") == 2
    async with hub.hub.db.read() as s:
        rows = await outbox.rows(s, destination="web:zhao", states=["sent"])
    assert len([r for r in rows if "nag" in r.payload]) == 2
