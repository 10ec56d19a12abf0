"""A unit of work's reads and its one write: ticket aggregates in, decided changes out.

``Store`` runs inside the unit's transaction (one ``AsyncConnection``). It loads what a batch
of events needs in a few set-based queries (tickets with their clocks, card references, people,
voice notes) and, at the end, writes everything the flows decided in one pass: each table gets
at most a handful of statements however many events the unit held (``executemany`` of cached
Core statements, which SQLAlchemy sends as multi-row ``INSERT … VALUES`` where it can).

What changed is found by comparing each loaded record with its snapshot from load time; only
changed columns are written. A ticket whose state or version changed is written with a
compare-and-set on the version it was loaded with (``Conflict`` if someone else moved it).
On PostgreSQL the tickets a unit will change are loaded ``FOR UPDATE`` so units on other
workers wait for it instead of deciding on stale rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Delete,
    Select,
    Update,
    bindparam,
    cast,
    delete,
    func,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from storage import assets as assets_table
from storage import csat as csat_table
from storage import evidence
from storage import feed as feed_table
from storage import outbox as outbox_table
from storage.assets import TicketBrief
from storage.db import insert_stmt
from storage.ids import Ids
from storage.models import TABLES
from storage.records import (
    AuditEntry,
    CardRef,
    Clock,
    FeedEntry,
    OutboxEntry,
    Person,
    Ticket,
    VoiceNote,
    columns,
    snapshot,
)

__all__ = ["Changes", "Conflict", "Store", "customer_key"]

T = TABLES["tickets"]
C = TABLES["sla_clocks"]
R = TABLES["card_refs"]
P = TABLES["people"]
N = TABLES["voice_notes"]
E = TABLES["ticket_events"]
O = TABLES["outbox"]  # noqa: E741
CH = TABLES["chats"]
IN = TABLES["inbound_events"]
I = TABLES["identities"]  # noqa: E741

_IDS: BindParameter[Any] = bindparam("ids", expanding=True)
_STATES: BindParameter[Any] = bindparam("states", expanding=True)


def customer_key(platform: str, user_id: str) -> str:
    """The people key of a customer (anyone who writes in and is not on the staff)."""
    return f"cust-{platform}-{user_id}"[:200]


class Conflict(Exception):
    """A compare-and-set found a row changed by someone else: the unit must be run again."""


#: What the repeat check's copies of a site's recent tickets hold (``recent_tickets``): what it
#: compares, links and tells; the other columns keep their defaults. ``intake`` and
#: ``diagnosis`` come back cut to the repeat status and the suspected cause.
_RECENT = (
    "id", "number", "title", "description", "priority", "category", "state", "reporter_id",
    "origin_chat", "created_at", "updated_at", "device_code", "site", "alarm_code",
    "assignee_id", "team_key", "root_cause", "asset_id", "merged_into", "closed_at",
)  # fmt: skip


def _cols(table: Any, record: type) -> list[Any]:
    return [table.c[name] for name in columns(record)]


_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _cached(key: tuple[Any, ...], build: Any) -> Any:
    """Build a statement once per shape; SQLAlchemy then caches its compiled form."""
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


@dataclass
class Changes:
    """Everything a unit decided, as rows (the flows' records and what the engine added)."""

    tickets: Sequence[Ticket] = ()  # loaded and new: written when new or changed
    new_ticket_ids: Collection[int] = ()
    clocks: Sequence[Clock] = ()  # loaded and new (id None)
    deleted_clocks: Sequence[int] = ()
    card_refs: Sequence[CardRef] = ()
    new_card_ref_ids: Collection[int] = ()
    notes: Sequence[VoiceNote] = ()
    new_note_ids: Collection[int] = ()
    audit: Sequence[AuditEntry] = ()
    outbox: Sequence[OutboxEntry] = ()
    feed: Sequence[FeedEntry] = ()
    chats: Sequence[tuple[str, str, str]] = ()  # (platform, chat_id, kind) seen
    people: Sequence[Person] = ()  # new customers
    identities: Sequence[dict[str, Any]] = ()  # their chat identities
    now: datetime | None = None  # when new people were first seen


class Store:
    """Reads and the final write of one unit of work, on the unit's connection."""

    def __init__(self, conn: AsyncConnection, ids: Ids) -> None:
        self.conn = conn  # the reads' connection; the write's, once the unit writes
        self.ids = ids
        self.dialect = conn.dialect.name
        self.pg = self.dialect == "postgresql"
        self.loaded: dict[tuple[type, int], tuple[Any, ...]] = {}

    # ------------------------------------------------------------------------------ reads

    def _remember(self, record: Any) -> Any:
        self.loaded[(type(record), record.id)] = snapshot(record)
        return record

    async def tickets(self, ids: Collection[int], *, lock: bool = False) -> list[Ticket]:
        if not ids:
            return []
        lock = lock and self.pg

        def build() -> Select[Any]:
            q = select(*_cols(T, Ticket)).where(T.c.id.in_(_IDS)).order_by(T.c.id)
            return q.with_for_update() if lock else q

        stmt = _cached(("tickets", lock), build)
        rows = await self.conn.execute(stmt, {"ids": list(ids)})
        return [self._remember(Ticket(**r._mapping)) for r in rows]

    async def ticket_ids_by_number(self, numbers: Collection[str]) -> dict[str, int]:
        if not numbers:
            return {}
        stmt = _cached(("numbers",), lambda: select(T.c.number, T.c.id).where(T.c.number.in_(_IDS)))
        rows = await self.conn.execute(stmt, {"ids": [n.upper() for n in numbers]})
        return {n: i for n, i in rows}

    async def ticket_id_by_source(self, key: str) -> int | None:
        """The ticket an inbound event created, if any."""
        stmt = _cached(
            ("source",), lambda: select(T.c.id).where(T.c.source_event == bindparam("k"))
        )
        return (await self.conn.execute(stmt, {"k": key})).scalar_one_or_none()

    async def last_sites(
        self, pairs: Collection[tuple[int, str]], since: datetime
    ) -> dict[tuple[int, str], tuple[str, str]]:
        """For each (reporter, chat): (site, number) of the reporter's newest ticket from that
        chat since ``since`` that names a site; one query for all of them."""
        if not pairs:
            return {}
        stmt = _cached(
            ("last_sites",),
            lambda: select(T.c.reporter_id, T.c.origin_chat, T.c.site, T.c.number).where(
                T.c.id.in_(
                    select(func.max(T.c.id))
                    .where(
                        T.c.reporter_id.in_(bindparam("r", expanding=True)),
                        T.c.created_at >= bindparam("since"),
                        T.c.site.is_not(None),
                    )
                    .group_by(T.c.reporter_id, T.c.origin_chat)
                    .scalar_subquery()
                )
            ),
        )
        wanted = set(pairs)
        params = {"r": sorted({r for r, _ in wanted}), "since": since}
        return {
            (r.reporter_id, r.origin_chat): (r.site, r.number)
            for r in await self.conn.execute(stmt, params)
            if (r.reporter_id, r.origin_chat) in wanted
        }

    async def inbound_message(self, event_id: int) -> tuple[str, dict[str, Any]] | None:
        """(key, payload) of a stored inbound message (a one-tap question names it)."""
        stmt = _cached(
            ("inbound",),
            lambda: select(IN.c.platform, IN.c.event_id, IN.c.payload).where(
                IN.c.id == bindparam("id"), IN.c.kind == "message"
            ),
        )
        row = (await self.conn.execute(stmt, {"id": event_id})).first()
        return (f"{row.platform}:{row.event_id}", row.payload) if row else None

    async def open_ticket_ids(
        self,
        states: Collection[str],
        *,
        reporter_id: int | None = None,
        origin_chat: str | None = None,
        assignee_id: int | None = None,
        limit: int = 10,
    ) -> list[int]:
        """Ids of tickets in ``states`` matching the given fields, newest first."""
        where: list[ColumnElement[bool]] = [T.c.state.in_(_STATES)]
        params: dict[str, Any] = {"states": list(states), "limit": limit}
        shape = []
        for name, value in (
            ("reporter_id", reporter_id),
            ("origin_chat", origin_chat),
            ("assignee_id", assignee_id),
        ):
            if value is not None:
                where.append(T.c[name] == bindparam(name))
                params[name] = value
                shape.append(name)
        stmt = _cached(
            ("open", *shape),
            lambda: select(T.c.id).where(*where).order_by(T.c.id.desc()).limit(bindparam("limit")),
        )
        return [i for (i,) in await self.conn.execute(stmt, params)]

    async def assignments(
        self,
        person_ids: Sequence[int],
        n: int,
        *,
        load_ids: Collection[int] = (),
        states: Collection[str] = (),
    ) -> tuple[dict[int, list[int]], dict[int, int]]:
        """Each person's newest ``n`` tickets (any state, ids newest first), and the open
        tickets (in ``states``) of each of ``load_ids``: one statement, a short index walk per
        person (``UNION ALL`` of ``LIMIT`` queries; no window over every ticket they ever had)
        and one count. Routing wants both, for the same engineers, at the same moment."""
        recent: dict[int, list[int]] = {p: [] for p in person_ids}
        loads = dict.fromkeys(load_ids, 0)
        if not person_ids and not load_ids:
            return recent, loads

        def build() -> Any:
            nothing = cast(null(), BigInteger)  # (PostgreSQL types a union's columns)
            parts: list[Any] = []
            for i in range(len(person_ids)):
                one = (
                    select(T.c.id, T.c.assignee_id)
                    .where(T.c.assignee_id == bindparam(f"p{i}"))
                    .order_by(T.c.id.desc())
                    .limit(bindparam("n"))
                    .subquery()
                )
                parts.append(select(one.c.id, one.c.assignee_id, nothing.label("open")))
            if load_ids:
                parts.append(
                    select(nothing.label("id"), T.c.assignee_id, func.count().label("open"))
                    .where(T.c.assignee_id.in_(_IDS), T.c.state.in_(_STATES))
                    .group_by(T.c.assignee_id)
                )
            return union_all(*parts) if len(parts) > 1 else parts[0]

        stmt = _cached(("assignments", len(person_ids), bool(load_ids)), build)
        params: dict[str, Any] = {f"p{i}": p for i, p in enumerate(person_ids)}
        params.update(n=n, ids=list(load_ids), states=list(states))
        for ticket_id, person, open_ in await self.conn.execute(stmt, params):
            if ticket_id is None:
                loads[person] = int(open_)
            else:
                recent[person].append(ticket_id)
        for ids in recent.values():
            ids.sort(reverse=True)
        return recent, loads

    async def clocks(self, ticket_ids: Collection[int]) -> dict[int, list[Clock]]:
        out: dict[int, list[Clock]] = {t: [] for t in ticket_ids}
        if ticket_ids:
            stmt = _cached(
                ("clocks",),
                lambda: select(*_cols(C, Clock)).where(C.c.ticket_id.in_(_IDS)).order_by(C.c.id),
            )
            for r in await self.conn.execute(stmt, {"ids": list(ticket_ids)}):
                out[r.ticket_id].append(self._remember(Clock(**r._mapping)))
        return out

    async def card_refs(self, ticket_ids: Collection[int]) -> dict[int, list[CardRef]]:
        """Each ticket's cards still shown (stale ones are left out)."""
        out: dict[int, list[CardRef]] = {t: [] for t in ticket_ids}
        if ticket_ids:
            stmt = _cached(
                ("refs",),
                lambda: (
                    select(*_cols(R, CardRef))
                    .where(R.c.ticket_id.in_(_IDS), R.c.stale.is_(False))
                    .order_by(R.c.id)
                ),
            )
            for r in await self.conn.execute(stmt, {"ids": list(ticket_ids)}):
                out[r.ticket_id].append(self._remember(CardRef(**r._mapping)))
        return out

    async def people(self, ids: Collection[int]) -> list[Person]:
        if not ids:
            return []
        stmt = _cached(("people",), lambda: select(*_cols(P, Person)).where(P.c.id.in_(_IDS)))
        return [Person(**r._mapping) for r in await self.conn.execute(stmt, {"ids": list(ids)})]

    async def notes(self, ids: Collection[int]) -> list[VoiceNote]:
        if not ids:
            return []
        stmt = _cached(("notes",), lambda: select(*_cols(N, VoiceNote)).where(N.c.id.in_(_IDS)))
        rows = await self.conn.execute(stmt, {"ids": list(ids)})
        return [self._remember(VoiceNote(**r._mapping)) for r in rows]

    async def loads(self, person_ids: Collection[int], states: Collection[str]) -> dict[int, int]:
        """Open tickets per assignee."""
        out = dict.fromkeys(person_ids, 0)
        if person_ids:
            stmt = _cached(
                ("loads",),
                lambda: (
                    select(T.c.assignee_id, func.count())
                    .where(T.c.assignee_id.in_(_IDS), T.c.state.in_(_STATES))
                    .group_by(T.c.assignee_id)
                ),
            )
            params = {"ids": list(person_ids), "states": list(states)}
            for person_id, n in await self.conn.execute(stmt, params):
                out[person_id] = int(n)
        return out

    async def chat_kind(self, platform: str, chat_id: str) -> str | None:
        stmt = _cached(
            ("chat_kind",),
            lambda: select(CH.c.kind).where(
                CH.c.platform == bindparam("p"), CH.c.chat_id == bindparam("c")
            ),
        )
        return (await self.conn.execute(stmt, {"p": platform, "c": chat_id})).scalar()

    async def identities(self, person_id: int) -> list[str]:
        stmt = _cached(
            ("identities",),
            lambda: (
                select(I.c.platform, I.c.external_id)
                .where(I.c.person_id == bindparam("p"))
                .order_by(I.c.id)
            ),
        )
        return [f"{p}:{e}" for p, e in await self.conn.execute(stmt, {"p": person_id})]

    async def asset_history(
        self, asset_ids: Collection[int], per_asset: int
    ) -> dict[int, list[TicketBrief]]:
        """The newest ``per_asset`` tickets of each asset, in one statement."""
        return await assets_table.history(self.conn, asset_ids, per_asset=per_asset)

    async def recent_tickets(
        self, *, asset_id: int | None, site: str | None, since: datetime, limit: int
    ) -> list[Ticket]:
        """Tickets of the asset (else: at the site) changed since ``since``, not merged, the most
        recently changed first — partial copies to compare with, never written (repeat reports,
        ``bot/flows/repeats.py``). The order is the index's (``ix_tickets_site_updated`` /
        ``…asset_updated``), so the read stops after ``limit`` rows however busy the site is.
        Only the columns in ``_RECENT`` come back: ``intake`` holds just the repeat status,
        ``diagnosis`` just the suspected cause, and clocks, parts, checklist and the audit head
        are left at their defaults (decoding ten full tickets per report was a tenth of the
        engine's time in a burst at one site)."""
        by = "asset_id" if asset_id is not None else "site"
        stmt = _cached(
            ("recent", by),
            lambda: (
                select(
                    *(T.c[n] for n in _RECENT),
                    T.c.intake[("repeat", "status")].as_string().label("repeat_status"),
                    T.c.diagnosis[("suspected_cause",)].as_string().label("suspected_cause"),
                )
                .where(
                    T.c[by] == bindparam("by"),
                    T.c.updated_at >= bindparam("since"),
                    T.c.merged_into.is_(None),
                )
                .order_by(T.c.updated_at.desc(), T.c.id.desc())
                .limit(bindparam("limit"))
            ),
        )
        params = {"by": asset_id if asset_id is not None else site, "since": since, "limit": limit}
        out, n = [], len(_RECENT)
        for r in await self.conn.execute(stmt, params):
            status, cause = r[n], r[n + 1]
            out.append(
                Ticket(
                    **dict(zip(_RECENT, r, strict=False)),
                    intake={"repeat": {"status": status}} if status else None,
                    diagnosis={"suspected_cause": cause} if cause else None,
                )
            )
        return out

    async def photo_hashes(self, ticket_id: int) -> frozenset[str]:
        return await evidence.hashes(self.conn, ticket_id)

    async def new_id(self, table: str) -> int:
        """A fresh primary key for ``table`` (people, tickets, card_refs, voice_notes), known
        before the row is written so everything that points at it can be decided first."""
        return await self.ids.take(self.conn, table)

    async def reserve_ids(self, table: str, n: int) -> None:
        """Have the next ``n`` of :meth:`new_id` for ``table`` in hand (one trip, not ``n``)."""
        await self.ids.reserve(self.conn, table, n)

    async def csat(self, ticket_id: int) -> csat_table.CsatRow | None:
        return await csat_table.rating(self.conn, ticket_id)

    async def csat_awaiting_comment(
        self, rater_id: int, chat: str, since: datetime
    ) -> csat_table.CsatRow | None:
        return await csat_table.awaiting_comment(self.conn, rater_id, chat, since)

    # ------------------------------------------------------------------------------ write

    async def write(self, changes: Changes) -> None:
        """Write everything in ``changes``: parents before children, each table in bulk."""
        await self._people(changes)
        await self._chats(changes.chats)
        await self._rows(T, Ticket, changes.tickets, changes.new_ticket_ids, cas="version")
        await self._clocks(changes.clocks, changes.deleted_clocks)
        await self._rows(R, CardRef, changes.card_refs, changes.new_card_ref_ids)
        await self._rows(N, VoiceNote, changes.notes, changes.new_note_ids, cas="status")
        await self._insert(E, [_row(a) for a in changes.audit])
        await outbox_table.insert(self.conn, changes.outbox)
        await feed_table.append(self.conn, changes.feed)

    async def _people(self, changes: Changes) -> None:
        """New customers and their identities. Another worker may have stored the same
        customer since this unit looked (their first two messages, in two chats, at once):
        ``Conflict``, and the unit runs again and finds them."""
        if not changes.people:
            return
        stmt = _cached(
            ("people", self.dialect),
            lambda: (
                insert_stmt(self.conn, P)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(P.c.id)
            ),
        )
        rows = [_person_row(p, changes.now) for p in changes.people]
        stored = (await self.conn.execute(stmt, rows)).all()
        if len(stored) != len(rows):
            raise Conflict(f"{len(rows) - len(stored)} customers were stored meanwhile")
        await self._insert(I, list(changes.identities))

    async def _insert(self, table: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.conn.execute(_cached(("insert", table.name), lambda: table.insert()), rows)

    async def _chats(self, chats: Sequence[tuple[str, str, str]]) -> None:
        if not chats:
            return
        stmt = _cached(
            ("chats", self.dialect),
            lambda: insert_stmt(self.conn, CH).on_conflict_do_nothing(
                index_elements=["platform", "chat_id"]
            ),
        )
        rows = [{"platform": p, "chat_id": c, "kind": k} for p, c, k in dict.fromkeys(chats)]
        await self.conn.execute(stmt, rows)

    async def _rows(
        self,
        table: Any,
        record: type,
        rows: Sequence[Any],
        new_ids: Collection[int],
        *,
        cas: str | None = None,
        whole: bool = False,
    ) -> None:
        """Insert the new records, update the changed columns of the loaded ones (``whole``:
        every column of a changed row, so that all share one statement). When the ``cas``
        column changed, the update holds only if it still has the loaded value."""
        names = columns(record)
        await self._insert(table, [_row(r) for r in rows if r.id in new_ids])
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if r.id in new_ids:
                continue
            before = self.loaded.get((record, r.id))
            if before is None:
                continue  # not loaded here: nothing to compare with, never written
            now = snapshot(r)
            changed = tuple(n for n, a, b in zip(names, before, now, strict=True) if a != b)
            if not changed:
                continue
            if whole:
                changed = tuple(n for n in names if n != "id")
            values = {n: getattr(r, n) for n in changed}
            values["_id"] = r.id
            if cas in changed:
                values["_cas"] = before[names.index(cas)]
            groups[changed].append(values)
            self.loaded[(record, r.id)] = now
        for changed, params in groups.items():
            checked = cas if cas in changed else None
            stmt = _cached(
                ("update", table.name, changed, checked),
                lambda c=changed, k=checked: _update(table, c, k),
            )
            if checked and not self.conn.dialect.supports_sane_multi_rowcount:
                for p in params:  # one by one: the driver reports no per-batch rowcount
                    if (await self.conn.execute(stmt, p)).rowcount != 1:
                        raise Conflict(f"{table.name} {p['_id']} changed meanwhile")
                continue
            result = await self.conn.execute(stmt, params)
            if checked and result.rowcount != len(params):
                raise Conflict(f"{table.name}: {len(params) - result.rowcount} changed meanwhile")

    async def _clocks(self, clocks: Sequence[Clock], deleted: Sequence[int]) -> None:
        if deleted:
            stmt = _cached(("delete_clocks",), lambda: _delete(C))
            await self.conn.execute(stmt, {"ids": list(deleted)})
        fresh = [c for c in clocks if c.id is None]
        if fresh:
            names = [n for n in columns(Clock) if n != "id"]
            await self._insert(C, [{n: getattr(c, n) for n in names} for c in fresh])
        loaded = [c for c in clocks if c.id is not None]
        await self._rows(C, Clock, loaded, (), whole=True)


def _person_row(person: Person, now: datetime | None) -> dict[str, Any]:
    return {**_row(person), "created_at": now}


def _row(record: Any) -> dict[str, Any]:
    return {n: getattr(record, n) for n in columns(type(record))}


def _update(table: Any, changed: Iterable[str], checked: str | None) -> Update:
    where = [table.c.id == bindparam("_id")]
    if checked:
        where.append(table.c[checked] == bindparam("_cas"))
    values: dict[str, Any] = {n: bindparam(n) for n in changed}
    return update(table).where(*where).values(values)


def _delete(table: Any) -> Delete:
    return delete(table).where(table.c.id.in_(_IDS))
