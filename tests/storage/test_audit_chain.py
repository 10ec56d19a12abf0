"""The audit trail cannot be rewritten unnoticed, on SQLite and PostgreSQL: each attack that
used to pass ``audit verify`` (an edited row re-chained with the unkeyed hash, a chain cut at
its tail, a ticket's events deleted, ``tickets.state`` edited, a forged checkpoint) is named
by it now; rows written before the chain was keyed are re-sealed once, unless broken."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from bot.audit import reseal_legacy
from storage import checkpoints, repo, trail
from storage.audit import GENESIS, audit_key, checkpoint_digest
from storage.db import Database
from storage.models import AuditCheckpoint, TicketEvent, utcnow

KEY = audit_key(b"test-secret-key")
STEPS = [
    ("created", None, "new"),
    ("transition", "new", "assigned"),
    ("transition", "assigned", "accepted"),
]


async def _ticket(db: Database, *, key: bytes | None = KEY, steps: int = 3) -> int:
    """A ticket whose trail is its first ``steps`` steps (sealed with ``key``; None: unkeyed
    rows, as written before the chain was keyed), in the state the last one left it."""
    async with db.transaction() as s:
        person = await repo.identify(s, "web", "c-1", "张三")
        ticket = await repo.create_ticket(
            s,
            title="注塑机停机",
            description="3号注塑机停机",
            priority="P1",
            category="equipment_failure",
            state=STEPS[steps - 1][2],
            reporter_id=person.id,
            origin_chat="web:c-1",
            created_at=utcnow() - timedelta(hours=1),
        )
        for kind, before, after in STEPS[:steps]:
            await repo.append_event(
                s,
                ticket.id,
                key=key,
                actor="张三" if kind == "created" else "李工",
                kind=kind,
                via="message" if kind == "created" else "button",
                from_state=before,
                to_state=after,
            )
        return ticket.id


async def _verify(db: Database) -> trail.AuditReport:
    async with db.read() as s:
        return await repo.verify_audit(s, KEY)


async def _checkpoint(db: Database, *, keep: int = 48) -> AuditCheckpoint:
    async with db.transaction() as s:
        cp = await checkpoints.write(s, KEY, now=utcnow(), keep=keep)
    assert cp is not None
    return cp


async def _sql(db: Database, sql: str, **params: object) -> None:
    async with db.transaction() as s:
        await s.execute(text(sql), params)


async def test_a_keyed_trail_with_its_checkpoint_verifies_clean(db: Database) -> None:
    first, second = await _ticket(db), await _ticket(db, steps=1)
    cp = await _checkpoint(db)
    assert (cp.tickets, cp.events, cp.heads) == (2, 4, {str(first): 3, str(second): 1})
    report = await _verify(db)
    assert (report.events, report.tickets, report.problems, report.notes) == (4, 2, [], [])
    async with db.read() as s:
        keyed = (await s.scalars(select(TicketEvent.keyed))).all()
    assert keyed and all(keyed)


async def test_without_a_checkpoint_verify_says_what_it_cannot_see(db: Database) -> None:
    await _ticket(db)
    report = await _verify(db)
    assert report.problems == []
    assert report.notes == [
        "no audit checkpoint yet: a trail cut at its tail or a deleted ticket cannot be found "
        "(`gongdan audit checkpoint` takes one)"
    ]


@pytest.mark.parametrize("flag_unkeyed", [False, True])
async def test_an_edited_row_rechained_without_the_key_is_caught(
    db: Database, flag_unkeyed: bool
) -> None:
    """The attacker edits who assigned it, recomputes every later hash with the (public) unkeyed
    function and moves the ticket's head: the chain links up, but the seal does not."""
    ticket_id = await _ticket(db)
    async with db.transaction() as s:
        rows = list(
            await s.scalars(
                select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by("seq")
            )
        )
        rows[1].actor = "王工"
        prev = rows[0].hash
        for row in rows[1:]:
            row.prev_hash, row.hash = prev, trail.seal(prev, row, None)
            row.keyed = not flag_unkeyed
            prev = row.hash
        await s.execute(text("UPDATE tickets SET audit_hash = :h"), {"h": prev})
    problems = (await _verify(db)).problems
    if flag_unkeyed:  # (claiming the rows predate the key does not help either)
        assert problems == [
            f"ticket {ticket_id}: events #2, #3 are not sealed with the audit key (a chain the "
            "start-up re-seal found broken, or rows rewritten)"
        ]
    else:
        assert problems == [
            f"ticket {ticket_id} event #{seq}: content does not match its hash (edited?)"
            for seq in (2, 3)
        ]


async def test_a_trail_cut_at_its_tail_is_caught_by_the_checkpoint(db: Database) -> None:
    ticket_id = await _ticket(db)
    cp = await _checkpoint(db)
    async with db.transaction() as s:  # the last row goes, and the head is moved back to #2
        await s.execute(text("DELETE FROM ticket_events WHERE seq = 3"))
        head = await s.scalar(select(TicketEvent.hash).where(TicketEvent.seq == 2))
        await s.execute(
            text("UPDATE tickets SET audit_seq = 2, audit_hash = :h, state = 'assigned'"),
            {"h": head},
        )
    assert (await _verify(db)).problems == [
        f"ticket {ticket_id}: events #3–#3 recorded by checkpoint #{cp.id} are gone "
        "(trail cut at its tail)"
    ]


async def test_a_tickets_deleted_events_are_caught(db: Database) -> None:
    await _ticket(db)
    emptied = await _ticket(db)
    cp = await _checkpoint(db)
    await _sql(db, "DELETE FROM ticket_events WHERE ticket_id = :t", t=emptied)
    gone = f"ticket {emptied}: all its events are gone (3 at checkpoint #{cp.id}): deleted"
    assert (await _verify(db)).problems == [
        f"ticket {emptied}: has no audit events though its head names event #3 (its trail "
        "was deleted?)",
        gone,
    ]
    # The head reset too: the ticket looks as if it never had a trail, but for the checkpoint.
    await _sql(
        db, "UPDATE tickets SET audit_seq = 0, audit_hash = :h WHERE id = :t", h=GENESIS, t=emptied
    )
    assert (await _verify(db)).problems == [
        f"ticket {emptied}: has no audit events (its trail was deleted?)",
        gone,
    ]


async def test_a_deleted_ticket_is_caught(db: Database) -> None:
    await _ticket(db)
    gone = await _ticket(db)
    cp = await _checkpoint(db)
    await _sql(db, "DELETE FROM ticket_events WHERE ticket_id = :t", t=gone)
    await _sql(db, "DELETE FROM tickets WHERE id = :t", t=gone)
    assert (await _verify(db)).problems == [
        f"ticket {gone}: recorded by checkpoint #{cp.id} with 3 events, but the ticket is gone "
        "(deleted)"
    ]


async def test_an_edited_ticket_state_is_caught(db: Database) -> None:
    ticket_id = await _ticket(db)
    await _checkpoint(db)
    await _sql(db, "UPDATE tickets SET state = 'closed'")
    assert (await _verify(db)).problems == [
        f"ticket {ticket_id}: state is 'closed' but its last transition moved it to 'accepted' "
        "(state edited?)"
    ]


async def test_a_forged_checkpoint_is_caught(db: Database) -> None:
    """Having cut a tail, the attacker makes the newest checkpoint agree — edited in place, or
    a new one — but cannot compute its digest without the key."""
    ticket_id = await _ticket(db)
    cp = await _checkpoint(db)
    async with db.transaction() as s:
        await s.execute(text("DELETE FROM ticket_events WHERE seq = 3"))
        head = await s.scalar(select(TicketEvent.hash).where(TicketEvent.seq == 2))
        await s.execute(
            text("UPDATE tickets SET audit_seq = 2, audit_hash = :h, state = 'assigned'"),
            {"h": head},
        )
        row = await s.get(AuditCheckpoint, cp.id)
        assert row is not None and head is not None
        row.heads, row.events = {str(ticket_id): 2}, 2
        # the best the attacker can do: the digest under a guessed key
        row.digest = checkpoint_digest(audit_key(b"guess"), row.at, [(ticket_id, 2, head)])
    forged = f"checkpoint #{cp.id}: its digest does not match the heads it records"
    assert [p[: len(forged)] for p in (await _verify(db)).problems] == [forged]

    async with db.transaction() as s:
        s.add(
            AuditCheckpoint(
                at=utcnow() + timedelta(seconds=1),
                tickets=1,
                events=2,
                heads={str(ticket_id): 2},
                digest="0" * 64,
            )
        )
    (problem,) = (await _verify(db)).problems
    assert problem.startswith(f"checkpoint #{cp.id + 1}: its digest does not match")


async def test_a_backdated_ticket_missing_from_the_checkpoint_is_caught(db: Database) -> None:
    await _ticket(db)
    await _checkpoint(db)
    sneaked = await _ticket(db)  # created "an hour ago", i.e. before the checkpoint
    (problem,) = (await _verify(db)).problems
    assert problem.startswith(f"ticket {sneaked}: created ") and problem.endswith(
        "before checkpoint #1, but not in it (inserted afterwards?)"
    )


async def test_checkpoints_are_pruned_and_not_repeated_by_a_second_worker(db: Database) -> None:
    await _ticket(db)
    for _ in range(3):
        await _checkpoint(db, keep=2)
    async with db.transaction() as s:
        again = await checkpoints.write(
            s, KEY, now=utcnow(), keep=2, fresh_within=timedelta(minutes=30)
        )
    assert again is None
    async with db.read() as s:
        ids = (await s.scalars(select(AuditCheckpoint.id).order_by(AuditCheckpoint.id))).all()
    assert len(ids) == 2 and ids[-1] >= 3
    assert (await _verify(db)).problems == []


async def test_legacy_trails_are_resealed_once_and_a_broken_one_is_left_and_logged(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    intact, broken = await _ticket(db, key=None), await _ticket(db, key=None)
    keyed = await _ticket(db)
    await _sql(
        db, "UPDATE ticket_events SET actor = '王工' WHERE ticket_id = :t AND seq = 2", t=broken
    )
    before = await _verify(db)
    assert len(before.problems) == 3  # two unsealed trails, one of them edited

    with caplog.at_level(logging.INFO, logger="bot.audit"):
        done = await reseal_legacy(db, KEY)
    assert (done.tickets, done.events, list(done.broken)) == ([intact], 3, [broken])
    assert f"the audit chain of ticket {broken} is broken (event #2: content does not match" in (
        caplog.text
    )
    assert "audit trail re-sealed with the key: 3 events of 1 tickets" in caplog.text

    after = await _verify(db)
    assert after.problems == [
        f"ticket {broken} event #2: content does not match its hash (edited?)",
        f"ticket {broken}: events #1, #2, #3 are not sealed with the audit key (a chain the "
        "start-up re-seal found broken, or rows rewritten)",
    ]
    async with db.read() as s:
        sealed = await s.scalars(select(TicketEvent.keyed).where(TicketEvent.ticket_id != broken))
        assert all(sealed.all())
        t = await repo.get_ticket(s, intact)
        last = await s.scalar(
            select(TicketEvent.hash).where(TicketEvent.ticket_id == intact, TicketEvent.seq == 3)
        )
        assert t is not None and (t.audit_seq, t.audit_hash) == (3, last)
    assert keyed not in done.broken
    again = await reseal_legacy(db, KEY)  # the next start: only the broken one is looked at
    assert (again.tickets, list(again.broken)) == ([], [broken])


async def test_a_keyed_trail_continued_by_an_old_worker_is_resealed(db: Database) -> None:
    """During a rolling upgrade a worker without the key appends an unkeyed row onto a keyed
    chain: at the next start the rows from there on are sealed again."""
    ticket_id = await _ticket(db, steps=2)
    async with db.transaction() as s:
        await repo.append_event(
            s,
            ticket_id,
            key=None,
            actor="李工",
            kind="transition",
            via="button",
            from_state="assigned",
            to_state="accepted",
        )
        await s.execute(text("UPDATE tickets SET state = 'accepted'"))
    assert len((await _verify(db)).problems) == 1
    done = await reseal_legacy(db, KEY)
    assert (done.tickets, done.events) == ([ticket_id], 1)
    assert (await _verify(db)).problems == []


async def test_a_checkpoint_with_garbled_heads_is_reported_not_a_crash(db: Database) -> None:
    await _ticket(db)
    cp = await _checkpoint(db)
    async with db.transaction() as s:
        row = await s.get(AuditCheckpoint, cp.id)
        assert row is not None
        row.heads = {"1": "three"}
    assert (await _verify(db)).problems == [
        f"checkpoint #{cp.id}: its heads are unreadable (edited?)"
    ]
