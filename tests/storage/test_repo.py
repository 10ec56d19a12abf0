"""Repository behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text, update

from storage import inbound, outbox, repo
from storage.audit import audit_key
from storage.db import Database
from storage.ids import Ids
from storage.inbound import InboundRow
from storage.models import OutboxMessage
from storage.models import Ticket as TicketRow
from storage.outbox import Outcome
from storage.unit import Changes, Conflict, Store
from tests.fakes import enqueue


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
            **{"origin_chat": "web:c-1", **fields},
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


async def test_a_ticket_changed_meanwhile_is_not_overwritten(db: Database) -> None:
    """A unit writes a transition with a compare-and-set on the version it loaded."""
    ticket_id = await _customer_ticket(db)
    with pytest.raises(Conflict):
        async with db.begin() as conn:
            store = Store(conn, Ids())
            (ticket,) = await store.tickets([ticket_id], lock=True)
            # Someone else moves it after we loaded it (here, in the same transaction).
            await conn.execute(text("UPDATE tickets SET version = 2, state = 'cancelled'"))
            ticket.state, ticket.version = "accepted", 2
            await store.write(Changes(tickets=[ticket]))
    async with db.read() as s:
        t = await repo.get_ticket(s, ticket_id)
        assert t is not None and (t.state, t.version) == ("new", 1)  # rolled back whole


async def test_a_unit_writes_only_what_changed(db: Database) -> None:
    ticket_id = await _customer_ticket(db)
    async with db.begin() as conn:
        store = Store(conn, Ids())
        (ticket,) = await store.tickets([ticket_id])
        ticket.site = "二车间"
        await store.write(Changes(tickets=[ticket]))
    async with db.read() as s:
        t = await repo.get_ticket(s, ticket_id)
        assert t is not None and (t.site, t.state, t.version) == ("二车间", "new", 1)


async def test_the_repeat_check_reads_a_site_s_recent_tickets_with_what_it_compares(
    db: Database,
) -> None:
    """Newest change first, merged ones left out; of the JSON columns only the repeat status
    and the suspected cause come back (the routing explanation stays in the database)."""
    routing = {"routing": {"candidates": [{"name": "李工", "score": 0.9}]}}
    plain = await _customer_ticket(db, site="二车间")
    suspected = await _customer_ticket(
        db,
        site="二车间",
        intake={**routing, "repeat": {"id": plain, "status": "suspected"}},
        diagnosis={"symptom": "不转", "suspected_cause": "保险丝熔断"},
    )
    merged = await _customer_ticket(db, site="二车间", merged_into=plain)
    await _customer_ticket(db, site="一车间")
    async with db.begin() as conn:
        await conn.execute(
            update(TicketRow)
            .where(TicketRow.id == plain)
            .values(updated_at=datetime(2026, 12, 4, 8, tzinfo=UTC))
        )
        found = await Store(conn, Ids()).recent_tickets(
            asset_id=None, site="二车间", since=datetime(2026, 1, 1, tzinfo=UTC), limit=10
        )
    assert merged not in [t.id for t in found]
    by_id = {t.id: t for t in found}
    assert [t.id for t in found][-1] == plain  # changed longest ago: last
    assert by_id[suspected].intake == {"repeat": {"status": "suspected"}}
    assert by_id[suspected].diagnosis == {"suspected_cause": "保险丝熔断"}
    assert by_id[plain].intake is None and by_id[plain].diagnosis is None


async def test_last_sites_are_each_reporter_s_newest_sited_ticket_from_that_chat(
    db: Database,
) -> None:
    """One query for many (reporter, chat) pairs: the newest ticket naming a site wins, a
    newer one without a site or from another chat does not, nor one from before ``since``."""
    old = await _customer_ticket(db, site="一车间")
    newest = await _customer_ticket(db, site="二车间")
    await _customer_ticket(db)  # newer, but names no site
    await _customer_ticket(db, site="三车间", origin_chat="web:elsewhere")
    async with db.begin() as conn:
        (ticket,) = await Store(conn, Ids()).tickets([old])
        reporter = ticket.reporter_id
        store = Store(conn, Ids())
        since = datetime.now(UTC) - timedelta(days=1)
        found = await store.last_sites([(reporter, "web:c-1"), (reporter + 99, "web:c-1")], since)
        later = await store.last_sites([(reporter, "web:c-1")], datetime.now(UTC) + timedelta(1))
    assert found == {(reporter, "web:c-1"): ("二车间", f"GD-{newest}")}
    assert later == {}


async def test_ticket_ids_reserved_for_a_unit_are_handed_out_in_order_and_kept(
    db: Database,
) -> None:
    """A unit about to decide three reports takes their numbers at once (PostgreSQL: one
    trip); the ones it leaves go to the next unit of the process, lowest first."""
    ids = Ids()
    async with db.begin() as conn:
        store = Store(conn, ids)
        await store.reserve_ids("tickets", 3)
        first, second = await store.new_id("tickets"), await store.new_id("tickets")
    async with db.begin() as conn:
        store = Store(conn, ids)
        await store.reserve_ids("tickets", 2)
        third, fourth = await store.new_id("tickets"), await store.new_id("tickets")
    assert first < second < third < fourth
    if db.is_sqlite:
        assert (second, third, fourth) == (first + 1, first + 2, first + 3)
    else:  # the third came with the first reservation; the fourth was taken once it ran out
        assert (second, third) == (first + 1, first + 2)


async def test_audit_chain_verifies_and_detects_tampering(db: Database) -> None:
    ticket_id = await _customer_ticket(db)
    key = audit_key(b"test-secret")
    async with db.transaction() as s:
        await repo.append_event(
            s,
            ticket_id,
            key=key,
            actor="张三",
            kind="created",
            via="message",
            to_state="new",
            data={"text": "停机"},
        )
        await repo.append_event(
            s,
            ticket_id,
            key=key,
            actor="李工",
            kind="transition",
            via="button",
            from_state="new",
            to_state="accepted",
        )
        await s.execute(text("UPDATE tickets SET state = 'accepted'"))
    async with db.read() as s:
        report = await repo.verify_audit(s, key)
    assert (report.events, report.problems) == (2, [])
    async with db.transaction() as s:
        await s.execute(text("UPDATE ticket_events SET actor = '王工' WHERE seq = 2"))
    async with db.read() as s:
        problems = (await repo.verify_audit(s, key)).problems
    assert len(problems) == 1 and "#2" in problems[0]


async def test_inbound_is_stored_once(db: Database) -> None:
    now = datetime.now(UTC)
    row = InboundRow("slack", "Ev1", "message", {"k": 1}, "{}", now, "slack:C1")
    async with db.begin() as conn:
        assert await inbound.insert(conn, [row]) == {("slack", "Ev1")}
    async with db.begin() as conn:
        assert await inbound.insert(conn, [row]) == set()
    async with db.read() as s:
        assert (await inbound.counts(s)) == {"pending": 1}


async def _claim(db: Database, lease: timedelta = timedelta(minutes=1)) -> list[inbound.Claimed]:
    now = datetime.now(UTC)
    async with db.begin() as conn:
        claimed = await inbound.claimable(conn, limit=10, max_attempts=3)
        await inbound.take(conn, claimed, now=now, lease_until=now + lease)
        return claimed


async def test_an_event_is_taken_once(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.begin() as conn:
        await inbound.insert(conn, [InboundRow("web", "a", "message", {}, None, now, "web:a")])
    async with db.begin() as conn:
        claimed = await inbound.claimable(conn, limit=10, max_attempts=3)
    await _claim(db)  # another unit took it meanwhile
    with pytest.raises(inbound.Taken):
        async with db.begin() as conn:
            await inbound.take(conn, claimed, now=now, lease_until=now)


async def test_the_claim_knows_who_sent_each_event(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.transaction() as s:
        await repo.identify(s, "telegram", "42", "Zhang")
    rows = [
        InboundRow("telegram", "1", "message", {}, None, now, "telegram:42", "telegram", "42"),
        InboundRow("telegram", "2", "message", {}, None, now, "telegram:43", "telegram", "43"),
    ]
    async with db.begin() as conn:
        await inbound.insert(conn, rows)
    known, stranger = await _claim(db)
    assert known.person is not None and (known.person.name, known.person.role) == (
        "Zhang",
        "customer",
    )
    assert stranger.person is None


async def test_events_are_claimed_in_order_with_their_chat(db: Database) -> None:
    now = datetime.now(UTC)
    rows = [
        InboundRow("web", "a1", "message", {}, None, now, "web:a"),
        InboundRow("web", "b1", "message", {}, None, now, "web:b"),
        InboundRow("web", "a2", "message", {}, None, now, "web:a"),
    ]
    async with db.begin() as conn:
        await inbound.insert(conn, rows)
    claimed = await _claim(db)
    assert [(c.event_id, c.lane) for c in claimed] == [
        ("a1", "web:a"),
        ("b1", "web:b"),
        ("a2", "web:a"),
    ]
    assert await _claim(db) == []
    async with db.read() as s:
        assert (await inbound.counts(s)) == {"done": 3}


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_chat_is_one_worker_s_at_a_time(db: Database) -> None:
    """A unit that claimed from a chat holds it: another worker's claim skips the chat's
    later events (they wait for the first unit), and takes other chats' events."""
    now = datetime.now(UTC)
    rows = [
        InboundRow("web", "a1", "message", {}, None, now, "web:a"),
        InboundRow("web", "a2", "message", {}, None, now, "web:a"),
        InboundRow("web", "b1", "message", {}, None, now, "web:b"),
    ]
    async with db.begin() as conn:
        await inbound.insert(conn, rows)
    async with db.begin() as first:
        (a1,) = await inbound.claimable(first, limit=1, max_attempts=3)
        async with db.begin() as second:
            others = await inbound.claimable(second, limit=10, max_attempts=3)
        assert (a1.event_id, [o.event_id for o in others]) == ("a1", ["b1"])


async def test_a_claim_rolled_back_leaves_the_events_pending(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.begin() as conn:
        await inbound.insert(conn, [InboundRow("web", "a", "message", {}, None, now, "web:a")])
    with pytest.raises(RuntimeError):
        async with db.begin() as conn:
            (claimed,) = await inbound.claimable(conn, limit=10, max_attempts=3)
            await inbound.take(conn, [claimed], now=now, lease_until=now)
            raise RuntimeError("the unit of work failed")
    (again,) = await _claim(db)
    assert again.id == claimed.id and again.attempts == 1


async def test_voice_claims_are_leased_and_expired_claims_return(db: Database) -> None:
    now = datetime.now(UTC)
    async with db.begin() as conn:
        await inbound.insert(conn, [InboundRow("web", "v", "voice", {}, None, now)])
    (first,) = await _claim(db, lease=timedelta(seconds=-1))  # the claimer "died" at once
    assert await _claim(db) == []  # in hand: not claimed twice
    async with db.begin() as conn:
        assert await inbound.reclaim(conn, datetime.now(UTC)) == 1  # its lease lapsed
    (again,) = await _claim(db)
    assert again.id == first.id and again.attempts == 2
    async with db.begin() as conn:
        assert not await inbound.finish(conn, first.id, first.attempts, "done", now=now)
        assert await inbound.finish(conn, again.id, again.attempts, "done", now=now)
    assert await _claim(db) == []


async def _outbox_claim(db: Database) -> list[OutboxMessage]:
    now = datetime.now(UTC)
    async with db.begin() as conn:
        return await outbox.claim(conn, limit=10, now=now, lease_until=now + timedelta(minutes=1))


async def test_outbox_keeps_order_per_destination_and_dedupes(db: Database) -> None:
    async with db.transaction() as s:
        for i in range(3):
            for dest in ("web:a", "web:b"):
                await enqueue(
                    s, destination=dest, op="send", payload={"n": i}, idempotency_key=f"{dest}-{i}"
                )
        await enqueue(
            s, destination="web:a", op="send", payload={"n": 9}, idempotency_key="web:a-0"
        )
    async with db.read() as s:
        assert (await outbox.counts(s)) == {"pending": 6}  # the repeated key was a no-op
    heads = await _outbox_claim(db)
    assert sorted((r.destination, r.payload["n"]) for r in heads) == [("web:a", 0), ("web:b", 0)]
    assert await _outbox_claim(db) == []  # nothing more until the heads are done
    async with db.begin() as conn:
        sent = Outcome(sent=[(r.id, "m1") for r in heads])
        await outbox.record(conn, sent, now=datetime.now(UTC))
    nxt = await _outbox_claim(db)
    assert sorted(r.payload["n"] for r in nxt) == [1, 1]


async def test_nags_for_one_chat_are_claimed_together(db: Database) -> None:
    async with db.transaction() as s:
        for i in range(3):
            await enqueue(
                s,
                destination="web:z",
                op="send",
                payload={"n": i},
                idempotency_key=f"nag-{i}",
                coalesce_key="sla:web:z",
            )
    assert [r.payload["n"] for r in await _outbox_claim(db)] == [0, 1, 2]


async def test_only_the_newest_pending_card_update_is_sent(db: Database) -> None:
    ticket_id = await _customer_ticket(db)
    async with db.transaction() as s:
        ref = await repo.add_card_ref(s, ticket_id, "web:team", "staff", "zh")
        for v in (2, 3, 4):
            await enqueue(
                s,
                destination="web:team",
                op="update",
                payload={"v": v},
                idempotency_key=f"u{v}",
                card_ref_id=ref.id,
            )
    async with db.read() as s:
        rows = await outbox.rows(s, destination="web:team", states=["pending"])
    assert [r.payload["v"] for r in rows] == [4]


async def test_json_and_time_columns_read_back_what_was_written(db: Database) -> None:
    """JSON columns go through orjson, with the standard library where orjson would refuse or
    misread (an integer beyond 64 bits comes back exact, not as a float); a moment stored
    from another zone reads back as the same instant in UTC, to the microsecond."""
    shanghai = timezone(timedelta(hours=8))
    created = datetime(2026, 12, 4, 9, 30, 15, 123456, tzinfo=shanghai)
    intake = {"serial": 2**70, "order": "12345678901234567890", "text": "注塑机 ✓", "n": [1.5]}
    ticket_id = await _customer_ticket(db, intake=intake, created_at=created)
    async with db.read() as s:
        ticket = await repo.get_ticket(s, ticket_id)
        assert ticket is not None
        assert ticket.intake == intake and isinstance(ticket.intake["serial"], int)
        assert ticket.created_at == created and ticket.created_at.utcoffset() == timedelta(0)
        earlier = created - timedelta(microseconds=1)
        found = await s.scalar(
            select(TicketRow.id).where(TicketRow.id == ticket_id, TicketRow.created_at > earlier)
        )
        assert found == ticket_id
