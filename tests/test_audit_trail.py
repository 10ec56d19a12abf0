"""The running hub and its audit trail: rows sealed with the hub's key, legacy rows re-sealed
at start-up, checkpoints taken (and posted to the admin chat), and a customer who calls
themselves by a staff member's name never passing for them — on staff cards or in the API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, text

from storage import repo
from storage.audit import audit_key
from storage.db import Database
from storage.models import AuditCheckpoint, TicketEvent, WebchatFeed, utcnow
from tests.conftest import Feed, RunningHub, button, eventually
from tests.test_webchat_flow import cfeed_conv, customer, one_ticket, press, report, staff

Start = Callable[..., Awaitable[RunningHub]]


async def _legacy_ticket(db_url: str) -> int:
    """A ticket with a trail written before the chain was keyed (plain SHA-256 rows)."""
    db = Database(db_url)
    try:
        async with db.transaction() as s:
            person = await repo.identify(s, "web", "old-1", "老客户")
            ticket = await repo.create_ticket(
                s,
                title="空压机异响",
                description="空压机异响",
                priority="P2",
                category="equipment_failure",
                state="new",
                reporter_id=person.id,
                origin_chat="web:old-1",
                created_at=utcnow() - timedelta(days=30),
            )
            await repo.append_event(
                s,
                ticket.id,
                key=None,
                actor="老客户",
                kind="created",
                via="message",
                to_state="new",
            )
            await repo.append_event(
                s, ticket.id, key=None, actor="老客户", kind="comment", via="message"
            )
            return ticket.id
    finally:
        await db.dispose()


async def test_the_hub_reseals_legacy_rows_seals_new_ones_and_checkpoints(
    running: Start, db_url: str
) -> None:
    legacy = await _legacy_ticket(db_url)
    hub = await running()
    assert hub.hub.audit_key == audit_key(b"test-secret-key")
    db = hub.hub.db
    async with db.read() as s:
        assert all((await s.scalars(select(TicketEvent.keyed))).all())
        first = await s.scalar(select(AuditCheckpoint))
    assert first is not None and first.heads == {str(legacy): 2}

    cust = await customer(hub)
    await report(hub, cust, "3号注塑机停机了，报警E102，在二车间")

    async def new_ticket() -> dict[str, Any] | None:
        tickets = (await hub.api("/api/tickets"))["tickets"]
        return next((t for t in tickets if t["id"] != legacy), None)

    ticket = await eventually(new_ticket, what="the new ticket")
    async with db.read() as s:
        report_ = await repo.verify_audit(s, hub.hub.audit_key)
    assert report_.problems == [] and report_.tickets == 2
    assert (report_.checkpoint and report_.checkpoint.id) == first.id

    # The hub's own rows are keyed: recomputed without the key, an edit shows.
    async with db.transaction() as s:
        await s.execute(
            text("UPDATE tickets SET state = 'closed' WHERE id = :t"), {"t": ticket["id"]}
        )
    async with db.read() as s:
        problems = (await repo.verify_audit(s, hub.hub.audit_key)).problems
    assert problems == [
        f"ticket {ticket['id']}: state is 'closed' but its last transition moved it to "
        "'assigned' (state edited?)"
    ]


async def test_a_restarted_hub_does_not_repeat_a_fresh_checkpoint(running: Start) -> None:
    first = await running()
    await first.stop()
    second = await running()
    async with second.hub.db.read() as s:
        count = len((await s.scalars(select(AuditCheckpoint.id))).all())
    assert count == 1


async def test_checkpoints_are_posted_to_the_admin_chat(running: Start) -> None:
    hub = await running(audit={"post_checkpoints": True})
    db = hub.hub.db
    async with db.read() as s:
        cp = await s.scalar(select(AuditCheckpoint))
    assert cp is not None

    async def posted() -> str | None:
        async with db.read() as s:
            rows = (
                await s.scalars(select(WebchatFeed).where(WebchatFeed.conversation == "admin"))
            ).all()
        return next((str(r.payload["text"]) for r in rows if cp.digest in r.payload["text"]), None)

    message = await eventually(posted, what="the checkpoint in the admin chat")
    assert message.startswith(f"🔏 审计检查点 #{cp.id}（") and f"摘要 {cp.digest}" in message


async def test_a_customer_named_like_an_engineer_is_marked_for_staff_and_in_the_api(
    running: Start,
) -> None:
    hub = await running()
    cust, li = await customer(hub, "李工"), await staff(hub, "li")
    async with Feed(hub, cust) as cfeed, Feed(hub, li) as lfeed:
        await report(hub, cust, "3号注塑机停机了，报警E102，在二车间")
        ticket = await one_ticket(hub)
        dm = await lfeed.wait_card("li", lambda p: p["title"].startswith(ticket["number"]))
        assert dict(dm["payload"]["fields"])["报修人"] == "客户·李工"
        team = await lfeed.wait_card("team", lambda p: True)
        assert dict(team["payload"]["fields"])["报修人"] == "客户·李工"
        await cfeed.wait_text("GD-")
        mine = await cfeed.wait_card(cfeed_conv(cfeed), lambda p: True)
        assert dict(mine["payload"]["fields"])["报修人"] == "李工"  # (their own name, to them)
        await press(hub, li, button(dm, "accept"), "li")
        await cfeed.wait_text("李工 已接单")

    events = (await hub.api(f"/api/tickets/{ticket['number']}"))["events"]
    who = [(e["kind"], e["to"], e["actor"], e["actor_id"], e["actor_kind"]) for e in events]
    reporter = ticket["reporter"]["id"]
    assert reporter.startswith("cust-")
    assert who == [
        ("created", "new", "李工", reporter, "customer"),
        ("transition", "assigned", "system", None, "system"),
        ("transition", "accepted", "李工", "li", "staff"),
    ]
