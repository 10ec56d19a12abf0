"""One unit of work: what a batch of events (or a sweep, or a job) loaded, and what it decided.

The engine opens a unit inside one transaction, preloads what its events need, and runs each
event as a ``Turn``. Flows read tickets, clocks, card references, people and voice notes
through the unit (an identity map: one object per row, whoever asks), change those records in
memory and append their decisions — audit rows, messages, new rows. Nothing is written until
the engine hands the unit's ``changes()`` to the store at the end, in one pass.

Every turn can be undone: a turn that is refused or fails leaves the unit exactly as it found
it (the records it touched get their values back, its decisions are dropped), so one event's
refusal never costs the rest of the batch its transaction.

A ``Reads`` implementation (``bot.reads``) supplies the data: ``storage.unit.Store`` in the
running hub, an in-memory one in tests that run flows without a database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.env import Env
from bot.events import Action, Address, Card, Inbound, Notice, Outbound, Text
from bot.reads import Reads
from bot.tickets import OPEN_STATES
from storage.assets import TicketBrief
from storage.audit import chain_hash
from storage.evidence import NewPhoto
from storage.records import AuditEntry, CardRef, Clock, Person, Ticket, VoiceNote, snapshot

__all__ = ["Outgoing", "Turn", "Unit"]

_OPEN = frozenset(s.value for s in OPEN_STATES)


@dataclass(slots=True)
class Outgoing:
    """A message a flow decided to send; the engine turns it into an outbox row (or, for a
    platform whose delivery is our own table, a row of that table)."""

    destination: Address
    message: Outbound
    op: str  # send | update | notice
    key: str  # idempotency key
    ticket_id: int | None = None
    card_ref: CardRef | None = None
    coalesce_key: str | None = None  # messages that may be folded into one (SLA nags)
    not_before: datetime | None = None
    extra: dict[str, Any] | None = None  # stored beside the message (e.g. a nag's items)


@dataclass
class _Mark:
    """Where a turn began: enough to undo it."""

    sizes: dict[str, int]
    touched: dict[int, tuple[Any, tuple[Any, ...]]] = field(default_factory=dict)
    lists: dict[int, tuple[list[Any], list[Any]]] = field(default_factory=dict)
    loads: dict[int, int] | None = None  # the engineers' loads as they were


class Unit:
    def __init__(self, env: Env, reads: Reads, now: datetime) -> None:
        self.env = env
        self.reads = reads
        self.now = now
        self.tickets: dict[int, Ticket] = {}
        self.clocks: dict[int, list[Clock]] = {}
        self.refs: dict[int, list[CardRef]] = {}
        self.notes: dict[int, VoiceNote] = {}
        self.people: dict[int, Person] = dict(env.staff.by_id)
        self.new_tickets: list[int] = []
        self.new_refs: list[int] = []
        self.new_notes: list[int] = []
        self.deleted_clocks: list[int] = []
        self.audit: list[AuditEntry] = []
        self.outgoing: list[Outgoing] = []
        self.chats: list[tuple[str, str, str]] = []
        # Statements of a feature's own table (``storage.csat``), run after the unit's rows are
        # written, in its transaction; one that finds its row changed raises ``Conflict``.
        self.statements: list[Callable[[AsyncConnection], Awaitable[None]]] = []
        self.photos: list[NewPhoto] = []  # evidence photos to store (bot/flows/closure.py)
        self._loads: dict[int, int] | None = None
        self._identities: dict[int, list[str]] = {}
        self._history: dict[int, list[TicketBrief]] = {}  # asset id → its newest tickets
        self._recent: dict[tuple[int | None, str | None, datetime, int], list[Ticket]] = {}
        self._last_sites: dict[tuple[int, str, datetime], tuple[str, str] | None] = {}
        self._mark: _Mark | None = None

    # ------------------------------------------------------------------------ loading

    async def preload(self, ticket_ids: Collection[int], *, lock: bool = False) -> None:
        """Load tickets with their clocks, cards and reporters, in a few queries."""
        wanted = [i for i in dict.fromkeys(ticket_ids) if i not in self.tickets]
        if not wanted:
            return
        found = await self.reads.tickets(wanted, lock=lock)
        ids = [t.id for t in found]
        for t in found:
            self.tickets[t.id] = t
        if not ids:
            return
        clocks = await self.reads.clocks(ids) if self.env.policies is not None else {}
        refs = await self.reads.card_refs(ids)
        for i in ids:
            self.clocks[i] = clocks.get(i, [])
            self.refs[i] = refs.get(i, [])
        await self.load_people(t.reporter_id for t in found)
        notes = [
            int(r.audience[6:]) for i in ids for r in self.refs[i] if r.audience[:6] == "voice:"
        ]
        await self.load_notes(notes)

    async def ticket(self, ticket_id: int, *, lock: bool = True) -> Ticket | None:
        """A ticket of this unit (loaded with its aggregate on first use)."""
        if ticket_id not in self.tickets:
            await self.preload([ticket_id], lock=lock)
        ticket = self.tickets.get(ticket_id)
        if ticket is not None:
            self.touch(ticket.id)
        return ticket

    async def ticket_by_number(self, number: str) -> Ticket | None:
        for t in self.tickets.values():
            if t.number == number.upper():
                return await self.ticket(t.id)
        ids = await self.reads.ticket_ids_by_number([number])
        return await self.ticket(next(iter(ids.values()))) if ids else None

    async def open_tickets(
        self,
        states: Collection[str] = _OPEN,
        *,
        reporter_id: int | None = None,
        origin_chat: str | None = None,
        assignee_id: int | None = None,
        limit: int = 10,
    ) -> list[Ticket]:
        """Tickets in ``states`` matching the fields, newest first — as this unit sees them
        (what it changed or created counts, not only what is stored)."""
        ids = await self.reads.open_ticket_ids(
            states,
            reporter_id=reporter_id,
            origin_chat=origin_chat,
            assignee_id=assignee_id,
            limit=limit,
        )
        await self.preload(ids)
        wanted = {
            "reporter_id": reporter_id,
            "origin_chat": origin_chat,
            "assignee_id": assignee_id,
        }
        found = {t.id: t for t in (self.tickets[i] for i in ids if i in self.tickets)}
        found.update((i, self.tickets[i]) for i in self.new_tickets)
        matching = [
            t
            for t in found.values()
            if t.state in states and all(v is None or getattr(t, k) == v for k, v in wanted.items())
        ]
        matching.sort(key=lambda t: t.id, reverse=True)
        for t in matching[:limit]:
            self.touch(t.id)
        return matching[:limit]

    async def load_people(self, ids: Any) -> None:
        missing = set()
        for i in ids:
            if i is None or i in self.people:
                continue
            known = self.env.customers.by_id(i)
            if known is not None:
                self.people[i] = known
            else:
                missing.add(i)
        for p in await self.reads.people(missing):
            self.people[p.id] = p

    async def person(self, person_id: int | None) -> Person | None:
        if person_id is None:
            return None
        if person_id not in self.people:
            await self.load_people([person_id])
        return self.people.get(person_id)

    def known_person(self, person_id: int | None) -> Person | None:
        """A person this unit has already loaded (cards are drawn from these)."""
        return self.people.get(person_id) if person_id is not None else None

    async def load_notes(self, ids: Collection[int]) -> None:
        missing = [i for i in ids if i not in self.notes]
        for n in await self.reads.notes(missing):
            self.notes[n.id] = n

    async def note(self, note_id: int) -> VoiceNote | None:
        await self.load_notes([note_id])
        note = self.notes.get(note_id)
        if note is not None:
            self._touch(note)
        return note

    async def recent_assigned(self, person_ids: Sequence[int], n: int) -> dict[int, list[int]]:
        """Each person's newest ``n`` tickets' ids (newest first); the engineers' loads, when
        not read yet, come in the same statement (routing wants both)."""
        if self._loads is not None:
            recent, _ = await self.reads.assignments(person_ids, n)
            return recent
        recent, self._loads = await self.reads.assignments(
            person_ids, n, load_ids=self._engineer_ids(), states=_OPEN
        )
        return recent

    def _engineer_ids(self) -> list[int]:
        return [p.id for p in self.env.staff.by_id.values() if p.role == "engineer"]

    async def load_of(self, person_id: int) -> int:
        """Open tickets assigned to ``person_id`` (the engineers' loads are read once)."""
        if self._loads is None:
            self._loads = await self.reads.loads(self._engineer_ids(), _OPEN)
        if person_id not in self._loads:
            self._loads.update(await self.reads.loads([person_id], _OPEN))
        return self._loads[person_id]

    def moved(self, ticket: Ticket, assignee_before: int | None, state_before: str | None) -> None:
        """Keep the loads true when a ticket changes hands or leaves the open states."""
        if self._loads is None:
            return
        if assignee_before is not None and state_before in _OPEN and assignee_before in self._loads:
            self._loads[assignee_before] -= 1
        if ticket.assignee_id is not None and ticket.state in _OPEN:
            self._loads[ticket.assignee_id] = self._loads.get(ticket.assignee_id, 0) + 1

    async def asset_history(self, asset_id: int, *, limit: int = 3) -> list[TicketBrief]:
        """The asset's newest tickets as this unit sees them (its own new ones count). The
        first call reads them for every asset the unit's tickets name, in one statement; a
        later call reads only assets not read yet (a ticket created since about another)."""
        if asset_id not in self._history:
            wanted = {t.asset_id for t in self.tickets.values() if t.asset_id is not None}
            wanted = (wanted | {asset_id}) - set(self._history)
            self._history.update(await self.reads.asset_history(wanted, limit + 1))
        found = {b.id: b for b in self._history[asset_id]}
        for t in self.tickets.values():  # what this unit created or changed wins
            if t.asset_id == asset_id:
                found[t.id] = TicketBrief(t.id, asset_id, t.number, t.title, t.state, t.created_at)
        return sorted(found.values(), key=lambda b: b.id, reverse=True)

    async def recent_tickets(
        self, *, asset_id: int | None, site: str | None, since: datetime, limit: int
    ) -> list[Ticket]:
        """``Reads.recent_tickets`` (stored partial copies, never written), read once per unit
        for each asset or site: in a burst about one line stop every report is compared with
        the same few tickets. What this unit changed is not in them; the caller lays it over."""
        key = (asset_id, site, since, limit)
        found = self._recent.get(key)
        if found is None:
            found = await self.reads.recent_tickets(
                asset_id=asset_id, site=site, since=since, limit=limit
            )
            self._recent[key] = found
        return found

    async def last_site(
        self, reporter_id: int, origin_chat: str, since: datetime
    ) -> tuple[str, str] | None:
        """(site, number) of the reporter's newest ticket from this chat since ``since`` that
        names a site: one this unit made (newer than any stored), else the stored one, read
        once per unit for each reporter and chat."""
        made = [
            self.tickets[i] for i in self.new_tickets
            if self.tickets[i].reporter_id == reporter_id
            and self.tickets[i].origin_chat == origin_chat and self.tickets[i].site
        ]  # fmt: skip
        if made:
            newest = max(made, key=lambda t: t.id)
            return newest.site or "", newest.number or ""
        key = (reporter_id, origin_chat, since)
        if key not in self._last_sites:
            await self.load_last_sites([(reporter_id, origin_chat)], since)
        return self._last_sites[key]

    async def load_last_sites(self, pairs: Iterable[tuple[int, str]], since: datetime) -> None:
        """Read the last sites of these (reporter, chat) pairs now, in one query."""
        wanted = [p for p in dict.fromkeys(pairs) if (*p, since) not in self._last_sites]
        if wanted:
            found = await self.reads.last_sites(wanted, since)
            for pair in wanted:
                self._last_sites[(*pair, since)] = found.get(pair)

    async def expect_reports(self, reporters: Sequence[tuple[int, str]]) -> None:
        """Before deciding a batch of messages from these (person, chat) pairs: the ticket
        numbers they may take and their last sites (for a report that names none), each in
        one query rather than one per report."""
        if not reporters:
            return
        await self.reads.reserve_ids("tickets", len(reporters))
        days = self.env.settings.intake.reuse_days
        if days > 0 and len(reporters) > 1:  # (one report reads it only if it names no site)
            await self.load_last_sites(reporters, self.now - timedelta(days=days))

    async def identities(self, person_id: int) -> list[str]:
        """A person's chat identities (``platform:id``)."""
        found = self._identities.get(person_id)
        if found is None:
            found = self._identities[person_id] = await self.reads.identities(person_id)
        return found

    async def chat_kind(self, address: Address) -> str | None:
        for platform, chat_id, kind in self.chats:
            if (platform, chat_id) == (address.platform, address.chat_id):
                return kind
        return await self.reads.chat_kind(address.platform, address.chat_id)

    # ------------------------------------------------------------------------ deciding

    async def new_ticket(self, **fields: Any) -> Ticket:
        ticket_id = await self.reads.new_id("tickets")
        ticket = Ticket(id=ticket_id, number=f"GD-{ticket_id}", **fields)
        self.tickets[ticket_id] = ticket
        self.clocks[ticket_id] = []
        self.refs[ticket_id] = []
        self.new_tickets.append(ticket_id)
        return ticket

    async def new_card_ref(
        self, ticket: Ticket, destination: Address, audience: str, locale: str
    ) -> CardRef:
        ref = CardRef(
            id=await self.reads.new_id("card_refs"),
            ticket_id=ticket.id,
            destination=destination.ref,
            audience=audience,
            locale=locale,
            created_at=self.now,
        )
        self._touch_list(self.refs.setdefault(ticket.id, []))
        self.refs[ticket.id].append(ref)
        self.new_refs.append(ref.id)
        return ref

    async def new_note(self, **fields: Any) -> VoiceNote:
        note = VoiceNote(id=await self.reads.new_id("voice_notes"), **fields)
        self.notes[note.id] = note
        self.new_notes.append(note.id)
        return note

    def add_clock(self, clock: Clock) -> None:
        clocks = self.clocks.setdefault(clock.ticket_id, [])
        self._touch_list(clocks)
        clocks.append(clock)

    def drop_clock(self, clock: Clock) -> None:
        clocks = self.clocks[clock.ticket_id]
        self._touch_list(clocks)
        clocks.remove(clock)
        if clock.id is not None:
            self.deleted_clocks.append(clock.id)

    async def photo_hashes(self, ticket_id: int) -> frozenset[str]:
        """The photos on the ticket, by SHA-256: stored ones and this unit's new ones."""
        stored = await self.reads.photo_hashes(ticket_id)
        return stored | {p.sha256 for p in self.photos if p.ticket_id == ticket_id}

    def keep_photo(self, photo: NewPhoto) -> None:
        self.photos.append(photo)

    def seen_chat(self, address: Address, kind: str) -> None:
        self.chats.append((address.platform, address.chat_id, kind))

    def record(
        self,
        ticket: Ticket,
        kind: str,
        *,
        actor: Person | None,
        via: str,
        data: dict[str, Any] | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Append a row to the ticket's audit trail, chained (keyed) to the head the ticket
        holds."""
        self._touch(ticket)
        when = (at or self.now).astimezone(UTC)
        seq = ticket.audit_seq + 1
        who, who_id = (actor.name, actor.id) if actor is not None else ("system", None)
        content = dict(
            ticket_id=ticket.id,
            seq=seq,
            at=when,
            actor_id=who_id,
            actor=who,
            kind=kind,
            from_state=from_state,
            to_state=to_state,
            via=via,
            data=data or {},
        )
        digest = chain_hash(ticket.audit_hash, key=self.env.audit_key, **content)  # type: ignore[arg-type]
        entry = AuditEntry(prev_hash=ticket.audit_hash, hash=digest, **content)  # type: ignore[arg-type]
        ticket.audit_seq, ticket.audit_hash = seq, digest
        self.audit.append(entry)
        return entry

    def send(self, out: Outgoing) -> None:
        self.outgoing.append(out)

    # ------------------------------------------------------------------------ turns

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Run one event's decisions; undo them all if it raises."""
        assert self._mark is None, "turns do not nest"
        self._mark = _Mark(
            sizes={
                "new_tickets": len(self.new_tickets),
                "new_refs": len(self.new_refs),
                "new_notes": len(self.new_notes),
                "deleted_clocks": len(self.deleted_clocks),
                "audit": len(self.audit),
                "outgoing": len(self.outgoing),
                "chats": len(self.chats),
                "statements": len(self.statements),
                "photos": len(self.photos),
            },
            loads=dict(self._loads) if self._loads is not None else None,
        )
        try:
            yield
        except BaseException:
            self._undo(self._mark)
            raise
        finally:
            self._mark = None

    def _undo(self, mark: _Mark) -> None:
        for obj, values in mark.touched.values():
            for name, value in zip(type(obj).__dataclass_fields__, values, strict=True):
                setattr(obj, name, value)
        for items, saved in mark.lists.values():
            items[:] = saved
        for ticket_id in self.new_tickets[mark.sizes["new_tickets"] :]:
            for table in (self.tickets, self.clocks, self.refs):
                table.pop(ticket_id, None)
        for note_id in self.new_notes[mark.sizes["new_notes"] :]:
            self.notes.pop(note_id, None)
        self._loads = mark.loads  # (None: read them again when next needed)
        for name, size in mark.sizes.items():
            del getattr(self, name)[size:]

    def _touch(self, record: Any) -> None:
        if self._mark is not None and id(record) not in self._mark.touched:
            self._mark.touched[id(record)] = (record, snapshot(record))

    def _touch_list(self, items: list[Any]) -> None:
        if self._mark is not None and id(items) not in self._mark.lists:
            self._mark.lists[id(items)] = (items, list(items))

    def touch(self, ticket_id: int) -> None:
        """Keep what the ticket and its clocks and cards are now, to restore if the turn
        fails (whatever changes them calls this first; getters do it for their callers)."""
        if self._mark is None or ticket_id not in self.tickets:
            return
        self._touch(self.tickets[ticket_id])
        for table in (self.clocks, self.refs):
            items = table.get(ticket_id)
            if items is not None:
                self._touch_list(items)
                for item in items:
                    self._touch(item)


@dataclass
class Turn:
    """One event (or one job step) handled inside a unit: who acts, and how to answer."""

    unit: Unit
    key: str  # unique per handled event: prefixes the idempotency keys of what it sends
    person: Person | None = None  # who sent the event (None: the system)
    event: Inbound | None = None
    row_id: int | None = None  # the inbound row of ``event`` (a one-tap question names it)
    _sent: int = 0

    @property
    def env(self) -> Env:
        return self.unit.env

    @property
    def now(self) -> datetime:
        return self.unit.now

    @property
    def locale(self) -> str:
        if self.person is not None and self.person.locale:
            return self.person.locale
        return self.env.settings.locale

    def send(
        self,
        destination: Address,
        message: Outbound,
        *,
        ticket_id: int | None = None,
        card_ref: CardRef | None = None,
        op: str | None = None,
        key: str | None = None,
        coalesce_key: str | None = None,
        not_before: datetime | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Queue a message (it exists exactly when the unit's changes do)."""
        self._sent += 1
        if op is None:
            op = "notice" if isinstance(message, Notice) else "send"
        self.unit.send(
            Outgoing(
                destination,
                message,
                op,
                key or f"{self.key}#{self._sent}",
                ticket_id=ticket_id,
                card_ref=card_ref,
                coalesce_key=coalesce_key,
                not_before=not_before,
                extra=extra,
            )
        )

    def reply(self, message: Text | Card, *, ticket_id: int | None = None) -> None:
        assert self.event is not None
        self.send(self.event.chat, message, ticket_id=ticket_id)

    def notify_presser(self, text: str) -> None:
        """A private answer to whoever sent the current event (a toast for a button press)."""
        assert self.event is not None
        ctx = self.event.reply_ctx if isinstance(self.event, Action) else {}
        self.send(self.event.chat, Notice(text, reply_ctx=ctx, user_id=self.event.sender.user_id))

    def record(self, ticket: Ticket, kind: str, *, via: str, **fields: Any) -> AuditEntry:
        """Append to the ticket's audit trail as the person behind this turn, at ``now``."""
        return self.unit.record(ticket, kind, actor=self.person, via=via, **fields)
