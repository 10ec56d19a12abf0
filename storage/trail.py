"""Checking the audit trail (``gongdan audit verify``) and re-sealing its legacy rows.

``verify`` walks every ticket with its events in one ordered pass and reports, in words a
person can act on:

- a row whose content no longer matches its keyed hash (edited — recomputing the chain
  without the key does not help), a broken link or a gap in a chain;
- a row not sealed with the key (``keyed`` false);
- a ticket whose head (``audit_seq``, ``audit_hash``) is not its last event, whose ``state`` is
  not where its last transition left it, or that has no events at all;
- against the newest checkpoint: a ticket it recorded whose events are cut short or gone, a
  digest that does not recompute (a forged or edited checkpoint), and a ticket created before
  it that it does not name.

``reseal`` turns intact chains written before the chain was keyed into keyed ones, a batch of
tickets per call. Each function takes the caller's ``AsyncSession``; the caller owns the
transaction.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, false, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import checkpoints
from storage.audit import GENESIS, CheckpointDigest, chain_hash
from storage.models import TABLES, AuditCheckpoint, Ticket, TicketEvent

__all__ = ["SETTLE", "AuditReport", "Resealed", "reseal", "verify"]

E = TABLES["ticket_events"]
T = TABLES["tickets"]

#: A ticket is expected in a checkpoint when it was created this long before it (a unit that
#: began earlier may still have been writing it when the checkpoint read the heads).
SETTLE = timedelta(minutes=10)


def seal(prev_hash: str, row: Any, key: bytes | None) -> str:
    """The hash of audit ``row`` (a ``TicketEvent`` or a row with its columns) after
    ``prev_hash``; ``key=None``: the legacy unkeyed hash."""
    return chain_hash(
        prev_hash,
        key=key,
        ticket_id=row.ticket_id,
        seq=row.seq,
        at=row.at,
        actor_id=row.actor_id,
        actor=row.actor,
        kind=row.kind,
        from_state=row.from_state,
        to_state=row.to_state,
        via=row.via,
        data=row.data,
    )


# ------------------------------------------------------------------------------------ verify


@dataclass
class AuditReport:
    """What ``verify`` found. ``problems`` mean tampering (or damage); ``notes`` limit what
    could be checked."""

    events: int = 0
    tickets: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoint: AuditCheckpoint | None = None


@dataclass(slots=True)
class _Chain:
    """One ticket as the walk finds it."""

    ticket_id: int
    state: str
    audit_seq: int
    audit_hash: str
    created_at: datetime
    seq: int = 0
    hash: str = GENESIS
    last_state: str | None = None  # where its last state change led
    unkeyed: list[int] = field(default_factory=list)
    marked: str | None = None  # the hash of its row at the checkpoint's seq


def _seqs(seqs: Sequence[int]) -> str:
    shown = ", ".join(f"#{s}" for s in seqs[:5])
    return shown + (f" and {len(seqs) - 5} more" if len(seqs) > 5 else "")


class _Walk:
    def __init__(self, key: bytes, checkpoint: AuditCheckpoint | None) -> None:
        self.key = key
        self.report = AuditReport(checkpoint=checkpoint)
        self.checkpoint = checkpoint
        self.digest = CheckpointDigest(key, checkpoint.at) if checkpoint else None
        self.complete = True  # every row the checkpoint names is still there
        self.seen: set[int] = set()
        self.marks: dict[int, int] = {}
        try:
            self.marks = {
                int(k): int(v) for k, v in (checkpoint.heads if checkpoint else {}).items()
            }
        except (AttributeError, TypeError, ValueError):  # nothing to check against then
            assert checkpoint is not None
            self.problem(f"checkpoint #{checkpoint.id}: its heads are unreadable (edited?)")
            self.checkpoint = None

    def problem(self, text: str) -> None:
        self.report.problems.append(text)

    def event(self, chain: _Chain, e: TicketEvent) -> None:
        self.report.events += 1
        where = f"ticket {e.ticket_id} event #{e.seq}"
        if e.seq != chain.seq + 1:
            self.problem(f"{where}: sequence gap (after #{chain.seq})")
        if e.prev_hash != chain.hash:
            self.problem(f"{where}: previous-hash link broken")
        if seal(e.prev_hash, e, self.key if e.keyed else None) != e.hash:
            self.problem(f"{where}: content does not match its hash (edited?)")
        if not e.keyed:
            chain.unkeyed.append(e.seq)
        if e.to_state is not None:
            chain.last_state = e.to_state
        if self.marks.get(e.ticket_id) == e.seq:
            chain.marked = e.hash
        chain.seq, chain.hash = e.seq, e.hash

    def ticket(self, c: _Chain) -> None:
        """The ticket's own checks, once all its events were walked."""
        self.report.tickets += 1
        self.seen.add(c.ticket_id)
        name = f"ticket {c.ticket_id}"
        if c.seq == 0:
            held = f" though its head names event #{c.audit_seq}" if c.audit_seq else ""
            self.problem(f"{name}: has no audit events{held} (its trail was deleted?)")
        elif (c.audit_seq, c.audit_hash) != (c.seq, c.hash):
            self.problem(
                f"{name}: its head (#{c.audit_seq}) is not its last event (#{c.seq}): "
                "events deleted or added, or the head edited"
            )
        if c.unkeyed:
            self.problem(
                f"{name}: events {_seqs(c.unkeyed)} are not sealed with the audit key "
                "(a chain the start-up re-seal found broken, or rows rewritten)"
            )
        if c.last_state is not None and c.state != c.last_state:
            self.problem(
                f"{name}: state is {c.state!r} but its last transition moved it to "
                f"{c.last_state!r} (state edited?)"
            )
        if self.checkpoint is not None:
            self._against_checkpoint(c, self.checkpoint)

    def _against_checkpoint(self, c: _Chain, cp: AuditCheckpoint) -> None:
        name, mark = f"ticket {c.ticket_id}", self.marks.get(c.ticket_id)
        if mark is None:
            if c.created_at < cp.at - SETTLE:
                self.problem(
                    f"{name}: created {c.created_at:%Y-%m-%d %H:%M} UTC, before checkpoint "
                    f"#{cp.id}, but not in it (inserted afterwards?)"
                )
            return
        if c.marked is None:
            self.complete = False
            if c.seq == 0:
                gone = f"all its events are gone ({mark} at checkpoint #{cp.id}): deleted"
            elif c.seq < mark:
                gone = (
                    f"events #{c.seq + 1}–#{mark} recorded by checkpoint #{cp.id} are gone "
                    "(trail cut at its tail)"
                )
            else:
                gone = f"event #{mark} recorded by checkpoint #{cp.id} is gone (deleted)"
            self.problem(f"{name}: {gone}")
            return
        assert self.digest is not None
        self.digest.add(c.ticket_id, mark, c.marked)

    def finish(self) -> AuditReport:
        cp = self.checkpoint
        if cp is None and self.report.checkpoint is None:
            self.report.notes.append(
                "no audit checkpoint yet: a trail cut at its tail or a deleted ticket cannot "
                "be found (`gongdan audit checkpoint` takes one)"
            )
        if cp is None:
            return self.report
        for ticket_id in sorted(set(self.marks) - self.seen):
            self.complete = False
            self.problem(
                f"ticket {ticket_id}: recorded by checkpoint #{cp.id} with "
                f"{self.marks[ticket_id]} events, but the ticket is gone (deleted)"
            )
        if cp.tickets != len(self.marks) or cp.events != sum(self.marks.values()):
            self.problem(f"checkpoint #{cp.id}: its counts do not match its heads (edited?)")
        assert self.digest is not None
        if self.complete and not hmac.compare_digest(self.digest.hexdigest(), cp.digest):
            self.problem(
                f"checkpoint #{cp.id}: its digest does not match the heads it records "
                "(a forged or edited checkpoint, or events rewritten)"
            )
        return self.report


async def verify(
    session: AsyncSession,
    key: bytes,
    *,
    now: datetime | None = None,
    stale_after: timedelta | None = None,
) -> AuditReport:
    """Check every ticket's chain, head and state, and the newest checkpoint. ``stale_after``
    (with ``now``): note a newest checkpoint older than that (checkpoints deleted?)."""
    checkpoint = await checkpoints.latest(session)
    walk = _Walk(key, checkpoint)
    stream = await session.stream(
        select(
            Ticket.id,
            Ticket.state,
            Ticket.audit_seq,
            Ticket.audit_hash,
            Ticket.created_at,
            TicketEvent,
        )
        .outerjoin(TicketEvent, TicketEvent.ticket_id == Ticket.id)
        .order_by(Ticket.id, TicketEvent.seq)
    )
    chain: _Chain | None = None
    async for ticket_id, state, audit_seq, audit_hash, created_at, event in stream:
        if chain is None or chain.ticket_id != ticket_id:
            if chain is not None:
                walk.ticket(chain)
            chain = _Chain(ticket_id, state, audit_seq, audit_hash, created_at)
        if event is not None:
            walk.event(chain, event)
    if chain is not None:
        walk.ticket(chain)
    report = walk.finish()
    age = now - checkpoint.at if checkpoint is not None and now is not None else None
    if age is not None and stale_after is not None and age > stale_after:
        assert checkpoint is not None
        report.notes.append(
            f"the newest checkpoint (#{checkpoint.id}, {checkpoint.at:%Y-%m-%d %H:%M} UTC) is "
            "older than expected: were newer ones deleted? Compare with the digests posted "
            "to the admin chat"
        )
    return report


# ------------------------------------------------------------------------------------ reseal


@dataclass
class Resealed:
    """One batch of ``reseal``: ``last`` is the last ticket looked at (None: none was left)."""

    last: int | None = None
    tickets: list[int] = field(default_factory=list)
    events: int = 0
    broken: dict[int, str] = field(default_factory=dict)  # ticket id → why it was left


def _why_broken(rows: Sequence[Any], head: tuple[int, str] | None, key: bytes) -> str | None:
    """Why a chain cannot be re-sealed (each row checked with the hash it was written with:
    keyed or legacy), or None when it is intact."""
    prev = GENESIS
    for expected, r in enumerate(rows, start=1):
        if r.seq != expected:
            return f"sequence gap before event #{r.seq}"
        if r.prev_hash != prev:
            return f"event #{r.seq}: previous-hash link broken"
        if seal(r.prev_hash, r, key if r.keyed else None) != r.hash:
            return f"event #{r.seq}: content does not match its hash"
        prev = r.hash
    if head != (rows[-1].seq, rows[-1].hash):
        return "the ticket's head is not its last event"
    return None


async def reseal(
    session: AsyncSession, key: bytes, *, after: int = 0, limit: int = 200
) -> Resealed:
    """Re-seal with ``key`` the chains of up to ``limit`` tickets (ids above ``after``) that
    hold rows written before the chain was keyed — those intact; a broken one is left as it
    is (``verify`` reports it) and named in ``broken``."""
    await checkpoints.take_audit_lock(session)
    ids = list(
        (
            await session.scalars(
                select(E.c.ticket_id)
                .where(E.c.keyed == false(), E.c.ticket_id > after)
                .group_by(E.c.ticket_id)
                .order_by(E.c.ticket_id)
                .limit(limit)
            )
        ).all()
    )
    done = Resealed(last=ids[-1] if ids else None)
    if not ids:
        return done
    heads = {
        r.id: (r.audit_seq, r.audit_hash)
        for r in await session.execute(
            select(T.c.id, T.c.audit_seq, T.c.audit_hash).where(T.c.id.in_(ids)).with_for_update()
        )
    }
    rows = (
        await session.execute(
            select(E).where(E.c.ticket_id.in_(ids)).order_by(E.c.ticket_id, E.c.seq)
        )
    ).all()
    chains: dict[int, list[Any]] = {}
    for r in rows:
        chains.setdefault(r.ticket_id, []).append(r)
    events: list[dict[str, Any]] = []
    tickets: list[dict[str, Any]] = []
    for ticket_id, chain in chains.items():
        why = _why_broken(chain, heads.get(ticket_id), key)
        if why is not None:
            done.broken[ticket_id] = why
            continue
        prev = GENESIS
        for r in chain:
            if r.keyed and r.prev_hash == prev:
                prev = r.hash
                continue
            new = seal(prev, r, key)
            events.append({"_id": r.id, "_prev": prev, "_hash": new})
            prev = new
        tickets.append({"_id": ticket_id, "_hash": prev})
        done.tickets.append(ticket_id)
    if events:
        await session.execute(
            update(E)
            .where(E.c.id == bindparam("_id"))
            .values(prev_hash=bindparam("_prev"), hash=bindparam("_hash"), keyed=True),
            events,
        )
        await session.execute(
            update(T).where(T.c.id == bindparam("_id")).values(audit_hash=bindparam("_hash")),
            tickets,
        )
    done.events = len(events)
    return done
