"""What a unit of work may read, inside its transaction (``bot.unit.Unit``): implemented by
``storage.unit.Store`` in the running hub, and by an in-memory one in tests that run flows
without a database."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

from storage.assets import TicketBrief
from storage.csat import CsatRow
from storage.records import CardRef, Clock, Person, Ticket, VoiceNote

__all__ = ["Reads"]


class Reads(Protocol):
    """What a unit may read (inside its transaction)."""

    async def tickets(self, ids: Collection[int], *, lock: bool = False) -> list[Ticket]: ...

    async def ticket_ids_by_number(self, numbers: Collection[str]) -> dict[str, int]: ...

    async def ticket_id_by_source(self, key: str) -> int | None: ...

    async def inbound_message(self, event_id: int) -> tuple[str, dict[str, Any]] | None: ...

    async def last_sites(
        self, pairs: Collection[tuple[int, str]], since: datetime
    ) -> dict[tuple[int, str], tuple[str, str]]: ...

    async def assignments(
        self,
        person_ids: Sequence[int],
        n: int,
        *,
        load_ids: Collection[int] = (),
        states: Collection[str] = (),
    ) -> tuple[dict[int, list[int]], dict[int, int]]: ...

    async def open_ticket_ids(
        self,
        states: Collection[str],
        *,
        reporter_id: int | None = None,
        origin_chat: str | None = None,
        assignee_id: int | None = None,
        limit: int = 10,
    ) -> list[int]: ...

    async def clocks(self, ticket_ids: Collection[int]) -> dict[int, list[Clock]]: ...

    async def card_refs(self, ticket_ids: Collection[int]) -> dict[int, list[CardRef]]: ...

    async def people(self, ids: Collection[int]) -> list[Person]: ...

    async def notes(self, ids: Collection[int]) -> list[VoiceNote]: ...

    async def loads(
        self, person_ids: Collection[int], states: Collection[str]
    ) -> dict[int, int]: ...

    async def chat_kind(self, platform: str, chat_id: str) -> str | None: ...

    async def identities(self, person_id: int) -> list[str]: ...

    async def asset_history(
        self, asset_ids: Collection[int], per_asset: int
    ) -> dict[int, list[TicketBrief]]: ...

    async def recent_tickets(
        self, *, asset_id: int | None, site: str | None, since: datetime, limit: int
    ) -> list[Ticket]: ...

    async def new_id(self, table: str) -> int: ...

    async def reserve_ids(self, table: str, n: int) -> None: ...

    async def csat(self, ticket_id: int) -> CsatRow | None: ...

    async def csat_awaiting_comment(
        self, rater_id: int, chat: str, since: datetime
    ) -> CsatRow | None: ...
    async def photo_hashes(self, ticket_id: int) -> frozenset[str]: ...
