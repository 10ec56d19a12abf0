"""Repository behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from storage import queues, repo
from storage.db import Database
from storage.queues import InboundRow


async def _customer_ticket(db: Database, **fields: object) -> int:
    async with db.transaction() as s:
        person = await repo.identify(s, "web", "c-1", "张三")
        ticket = await repo.create_ticket(
            s,
            title="注塑机停机",
            description="3号注塑机停机",
            priority="P1",
            category="equipment_failure",
            state="new",
            reporter_id=person.id,
            origin_chat="web:c-1",
            **fields,
        )
        return ticket.id


async def test_tickets_get_readable_numbers(db: Database) -> None:
    first = await _customer_ticket(db)
    second = await _customer_ticket(db)
    async with db.read() as s:
        a, b = await repo.get_ticket(s, first), await repo.get_ticket(s, second)
        assert a is not None and b is not None
        assert (a.number, b.number) == (f"GD-{first}", f"GD-{second}")
        assert await repo.ticket_by_number(s, f"gd-{second}") is not None


async def test_unknown_people_become_customers_once(db: Database) -> None:
    async with db.transaction() as s:
        a = await repo.identify(s, "telegram", "42", "Zhang")
        b = await repo.identify(s, "telegram", "42", "Zhang")
    assert a.id == b.id and a.role == "customer"


async def test_staff_sync_adds_updates_and_deactivates(db: Database) -> None:
    li = repo.StaffRecord("li", "李工", "engineer", ["web:li", "slack:U1"])
    async with db.transaction() as s:
        await repo.sync_staff(s, [li, repo.StaffRecord("wang", "王工", "engineer", ["web:wang"])])
    async with db.transaction() as s:
        await repo.sync_staff(s, [repo.StaffRecord("li", "李师傅", "manager", ["slack:U1"])])
    async with db.read() as s:
        person = await repo.identify(s, "slack", "U1", "")
        assert (person.key, person.name, person.role) == ("li", "李师傅", "manager")
        wang = await repo.person_by_key(s, "wang")
        assert wang is not None and not wang.active


async def test_transition_is_compare_and_set(db: Database) -> None:
    ticket_id = await _customer_ticket(db)

    async def press() -> bool:
        async with db.transaction() as s:
            return await repo.transition(
                s, ticket_id, expected_state="new", expected_version=1, new_state="accepted"
            )

    results = await asyncio.gather(press(), press(), press())
    assert sorted(results) == [False, False, True]
    async with db.read() as s:
        t = await repo.get_ticket(s, ticket_id)
        assert t is not None and (t.state, t.version) == ("accepted", 2)


async def test_audit_chain_verifies_and_detects_tampering(db: Database) -> None:
    ticket_id = await _customer_ticket(db)
    async with db.transaction() as s:
        await repo.append_event(
            s,
            ticket_id,
            actor="张三",
            kind="created",
            via="message",
            to_state="new",
            data={"text": "停机"},
        )
        await repo.append_event(
            s,
            ticket_id,
            actor="李工",
            kind="transition",
            via="button",
            from_state="new",
            to_state="accepted",
        )
    async with db.read() as s:
        checked, problems = await repo.verify_audit(s)
    assert (checked, problems) == (2, [])
    async with db.transaction() as s:
        await s.execute(text("UPDATE ticket_events SET actor = '王工' WHERE seq = 2"))
    async with db.read() as s:
        _, problems = await repo.verify_audit(s)
    assert len(problems) == 1 and "#2" in problems[0]


async def test_inbound_is_stored_once(db: Database) -> None:
    now = datetime.now(UTC)
    row = InboundRow("slack", "Ev1", "message", {"k": 1}, "{}", now)
    async with db.engine.begin() as conn:
        assert await queues.insert_inbound(conn, [row]) == {("slack", "Ev1")}
    async with db.engine.begin() as conn:
        assert await queues.insert_inbound(conn, [row]) == set()
    async with db.read() as s:
        assert (await queues.inbound_counts(s)) == {"pending": 1}


async def test_inbound_claim_is_leased_and_expired_claims_return(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.engine.begin() as conn:
        await queues.insert_inbound(conn, [InboundRow("web", "a", "message", {}, None, now)])
    async with db.transaction() as s:
        (first,) = await queues.claim_inbound(
            s, limit=10, lease=timedelta(seconds=-1), max_attempts=3
        )
    async with db.transaction() as s:  # the first claimer "died": its lease is already over
        (again,) = await queues.claim_inbound(
            s, limit=10, lease=timedelta(minutes=1), max_attempts=3
        )
    assert again.id == first.id and again.attempts == 2
    async with db.transaction() as s:
        assert not await queues.finish_inbound(s, first, "done")  # stale claim loses
        assert await queues.finish_inbound(s, again, "done")
    async with db.transaction() as s:
        assert (
            await queues.claim_inbound(s, limit=10, lease=timedelta(minutes=1), max_attempts=3)
            == []
        )


async def test_outbox_keeps_order_per_destination_and_dedupes(db: Database) -> None:
    async with db.transaction() as s:
        for i in range(3):
            for dest in ("web:a", "web:b"):
                assert await queues.enqueue(
                    s, destination=dest, op="send", payload={"n": i}, idempotency_key=f"{dest}-{i}"
                )
        assert not await queues.enqueue(
            s, destination="web:a", op="send", payload={"n": 9}, idempotency_key="web:a-0"
        )
    async with db.transaction() as s:
        heads = await queues.claim_outbox(s, limit=10, lease=timedelta(minutes=1))
    assert sorted((r.destination, r.payload["n"]) for r in heads) == [("web:a", 0), ("web:b", 0)]
    async with db.transaction() as s:  # nothing more until the heads are done
        assert await queues.claim_outbox(s, limit=10, lease=timedelta(minutes=1)) == []
        for r in heads:
            await queues.outbox_sent(s, r.id, "m1")
    async with db.transaction() as s:
        nxt = await queues.claim_outbox(s, limit=10, lease=timedelta(minutes=1))
    assert sorted(r.payload["n"] for r in nxt) == [1, 1]


async def test_only_the_newest_pending_card_update_is_sent(db: Database) -> None:
    ticket_id = await _customer_ticket(db)
    async with db.transaction() as s:
        ref = await repo.add_card_ref(s, ticket_id, "web:team", "staff", "zh")
        for v in (2, 3, 4):
            await queues.enqueue(
                s,
                destination="web:team",
                op="update",
                payload={"v": v},
                idempotency_key=f"u{v}",
                card_ref_id=ref.id,
            )
    async with db.read() as s:
        rows = await queues.outbox_rows(s, destination="web:team", states=["pending"])
    assert [r.payload["v"] for r in rows] == [4]
