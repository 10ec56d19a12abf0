"""Resolved tickets the customer never answers close by themselves, once."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.flows.housekeeping import auto_close
from storage import repo
from storage.models import utcnow
from tests.conftest import Feed, RunningHub

Start = Callable[..., Awaitable[RunningHub]]


async def _resolved_ticket(hub: RunningHub, conversation: str, hours_ago: float) -> int:
    async with hub.hub.db.transaction() as s:
        person = await repo.identify(s, "web", conversation, "张三")
        at = utcnow() - timedelta(hours=hours_ago)
        ticket = await repo.create_ticket(
            s,
            title="空压机漏油",
            description="空压机漏油",
            priority="P2",
            category="equipment_failure",
            state="resolved",
            reporter_id=person.id,
            origin_chat=f"web:{conversation}",
            root_cause="密封圈老化",
            created_at=at,
            updated_at=at,
        )
        return ticket.id


async def test_unanswered_resolved_tickets_close_once(running: Start) -> None:
    hub = await running(tickets={"auto_close_hours": 0})  # the job is run by hand here
    status, body = await hub.post("/chat/api/session", {"name": "张三"})
    assert status == 200
    conversation = body["conversation"]
    old = await _resolved_ticket(hub, conversation, hours_ago=80)
    recent = await _resolved_ticket(hub, conversation, hours_ago=1)

    async with Feed(hub, body["session"]) as feed:
        closed = await auto_close(hub.hub.work, timedelta(hours=72))
        assert closed == 1
        assert await auto_close(hub.hub.work, timedelta(hours=72)) == 0
        hub.hub.sender.wake.set()
        await feed.wait_text("工单已自动关闭")

    old_json = await hub.api(f"/api/tickets/{old}")
    assert old_json["state"] == "closed" and old_json["closed_at"] is not None
    (event,) = [e for e in old_json["events"] if e["kind"] == "transition"]
    assert (event["actor"], event["via"], event["from"], event["to"]) == (
        "system",
        "system",
        "resolved",
        "closed",
    )
    assert (await hub.api(f"/api/tickets/{recent}"))["state"] == "resolved"
    assert len([t for t in feed.texts() if "工单已自动关闭" in t]) == 1


async def test_every_scheduled_job_runs_on_the_event_loop(running: Start) -> None:
    """APScheduler runs a plain function in a pool thread. The hub's heartbeats set asyncio
    events and its jobs use the database, neither of which is safe from another thread: each
    job is a coroutine function, run on the loop (the outbox and SLA ticks were not)."""
    hub = await running(sla={"enabled": True})
    jobs = {job.id: job.func for job in hub.hub.scheduler.get_jobs()}
    assert {"outbox-tick", "inbound-tick", "sla-tick"} <= set(jobs)
    assert [i for i, func in jobs.items() if not inspect.iscoroutinefunction(func)] == []
