"""Repository: reading people, tickets and the audit trail (the API, the CLI), syncing the
configured staff, and the few helpers tests and benchmarks seed data with.

The hub itself changes tickets only through units of work (``storage.unit``). Each function
here takes the caller's ``AsyncSession``; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import records, trail
from storage.audit import GENESIS
from storage.models import CardRef, Identity, Person, Ticket, TicketEvent, utcnow

# ------------------------------------------------------------------------------------ people


@dataclass(frozen=True, slots=True)
class StaffRecord:
    key: str
    name: str
    role: str
    identities: Sequence[str]  # platform:external_id
    skills: Sequence[str] = ()
    max_open: int = 5
    locale: str | None = None


async def sync_staff(session: AsyncSession, staff: Iterable[StaffRecord]) -> None:
    """Make the people table match the configured staff (insert, update, deactivate). Workers
    starting at once on PostgreSQL take turns (a transaction-level advisory lock)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(1734632819)"))
    wanted = {s.key: s for s in staff}
    existing = {
        p.key: p
        for p in (await session.scalars(select(Person).where(Person.role != "customer"))).all()
    }
    for key, person in existing.items():
        if key not in wanted:
            person.active = False
    for key, rec in wanted.items():
        found = existing.get(key) or await session.scalar(select(Person).where(Person.key == key))
        person = found or Person(key=key, name=rec.name, role=rec.role)
        if found is None:
            session.add(person)
        person.name, person.role, person.active = rec.name, rec.role, True
        person.skills, person.max_open, person.locale = list(rec.skills), rec.max_open, rec.locale
        await session.flush()
        for ref in rec.identities:
            platform, _, external = ref.partition(":")
            ident = await session.scalar(
                select(Identity).where(
                    Identity.platform == platform, Identity.external_id == external
                )
            )
            if ident is None:
                session.add(Identity(person_id=person.id, platform=platform, external_id=external))
            else:
                ident.person_id = person.id


async def staff(
    session: AsyncSession,
) -> tuple[list[records.Person], dict[tuple[str, str], int]]:
    """The active staff as records, and whose each of their chat identities is."""
    people = (
        await session.scalars(select(Person).where(Person.role != "customer", Person.active))
    ).all()
    ids = [p.id for p in people]
    rows = await session.execute(
        select(Identity.platform, Identity.external_id, Identity.person_id).where(
            Identity.person_id.in_(ids)
        )
    )
    return (
        [
            records.Person(
                id=p.id,
                key=p.key,
                name=p.name,
                role=p.role,
                locale=p.locale,
                active=p.active,
                max_open=p.max_open,
                skills=list(p.skills or []),
            )
            for p in people
        ],
        {(platform, external): person for platform, external, person in rows},
    )


def _locale(hint: str | None) -> str | None:
    if not hint:
        return None
    hint = hint.lower()
    return "zh" if hint.startswith("zh") else "en" if hint.startswith("en") else None


async def identify(
    session: AsyncSession, platform: str, user_id: str, name: str, locale: str | None = None
) -> Person:
    """The person behind a platform user; anyone unknown becomes a customer (speaking the
    language their platform reports, when it is one we have texts in)."""
    person = await session.scalar(
        select(Person)
        .join(Identity, Identity.person_id == Person.id)
        .where(Identity.platform == platform, Identity.external_id == user_id)
    )
    if person is not None:
        return person
    person = Person(
        key=f"cust-{platform}-{user_id}"[:200],
        name=name or user_id,
        role="customer",
        locale=_locale(locale),
    )
    session.add(person)
    await session.flush()
    session.add(
        Identity(person_id=person.id, platform=platform, external_id=user_id, display_name=name)
    )
    await session.flush()
    return person


async def get_person(session: AsyncSession, person_id: int) -> Person | None:
    return await session.get(Person, person_id)


async def person_by_key(session: AsyncSession, key: str) -> Person | None:
    return await session.scalar(select(Person).where(Person.key == key))


async def people_by_id(session: AsyncSession, ids: Iterable[int]) -> dict[int, Person]:
    wanted = set(ids)
    if not wanted:
        return {}
    found = await session.scalars(select(Person).where(Person.id.in_(wanted)))
    return {p.id: p for p in found.all()}


# ----------------------------------------------------------------------------------- tickets


async def create_ticket(session: AsyncSession, **fields: Any) -> Ticket:
    ticket = Ticket(**fields)
    session.add(ticket)
    await session.flush()
    ticket.number = f"GD-{ticket.id}"
    await session.flush()
    return ticket


async def get_ticket(session: AsyncSession, ticket_id: int) -> Ticket | None:
    return await session.get(Ticket, ticket_id, populate_existing=True)


async def ticket_by_number(session: AsyncSession, number: str) -> Ticket | None:
    return await session.scalar(select(Ticket).where(Ticket.number == number.upper()))


async def list_tickets(
    session: AsyncSession,
    *,
    states: Sequence[str] = (),
    priority: str | None = None,
    assignee_id: int | None = None,
    reporter_id: int | None = None,
    origin_chat: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Ticket]:
    q = select(Ticket).order_by(Ticket.id.desc()).limit(limit).offset(offset)
    if states:
        q = q.where(Ticket.state.in_(states))
    if priority:
        q = q.where(Ticket.priority == priority)
    if assignee_id is not None:
        q = q.where(Ticket.assignee_id == assignee_id)
    if reporter_id is not None:
        q = q.where(Ticket.reporter_id == reporter_id)
    if origin_chat is not None:
        q = q.where(Ticket.origin_chat == origin_chat)
    return list((await session.scalars(q)).all())


async def count_tickets(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count(Ticket.id))) or 0)


# ------------------------------------------------------------------------------- audit trail


async def append_event(
    session: AsyncSession,
    ticket_id: int,
    *,
    key: bytes | None,
    actor: str,
    kind: str,
    via: str,
    actor_id: int | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> TicketEvent:
    """Append to the ticket's hash chain, sealed with ``key`` (``storage.audit.audit_key``;
    None: an unkeyed row as written before the chain was keyed). Concurrent appends collide
    on (ticket_id, seq)."""
    last = (
        await session.execute(
            select(TicketEvent.seq, TicketEvent.hash)
            .where(TicketEvent.ticket_id == ticket_id)
            .order_by(TicketEvent.seq.desc())
            .limit(1)
        )
    ).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    event = TicketEvent(
        ticket_id=ticket_id,
        seq=seq,
        at=(at or utcnow()).astimezone(UTC),
        actor_id=actor_id,
        actor=actor,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        via=via,
        data=data or {},
        prev_hash=prev,
        hash="",
        keyed=key is not None,
    )
    event.hash = trail.seal(prev, event, key)
    session.add(event)
    await session.flush()
    await session.execute(  # the ticket holds its chain's head (see storage.audit)
        update(Ticket)
        .where(Ticket.id == ticket_id)
        .values(audit_seq=seq, audit_hash=event.hash)
        .execution_options(synchronize_session=False)
    )
    return event


async def ticket_events(session: AsyncSession, ticket_id: int) -> list[TicketEvent]:
    rows = await session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.seq)
    )
    return list(rows.all())


async def verify_audit(
    session: AsyncSession,
    key: bytes,
    *,
    now: datetime | None = None,
    stale_after: timedelta | None = None,
) -> trail.AuditReport:
    """Check every ticket's chain, head and state, and the newest checkpoint
    (``storage.trail.verify``)."""
    return await trail.verify(session, key, now=now, stale_after=stale_after)


# -------------------------------------------------------------------------------- card refs


async def add_card_ref(
    session: AsyncSession, ticket_id: int, destination: str, audience: str, locale: str
) -> CardRef:
    ref = CardRef(ticket_id=ticket_id, destination=destination, audience=audience, locale=locale)
    session.add(ref)
    await session.flush()
    return ref
