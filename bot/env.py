"""What every unit of a hub shares (``Env``): settings, the token codec, who is who (the
configured ``Staff``, the ``Customers`` met lately), metrics, SLA policies, and the registries
held in memory. Built once by the hub; ``bot.unit`` works within it."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.adapters.codec import TokenCodec
from bot.assets import AssetIndex
from bot.config import Settings
from bot.directory import Directory
from bot.metrics import Metrics
from bot.nlp.similar import SimilarCases
from bot.parts_catalog import PartsCatalog
from bot.progress import ProgressLinks
from bot.sla.policy import Policies
from storage.records import Person

__all__ = ["Customers", "Env", "Staff"]


class Customers:
    """Customers met lately, by chat identity and by id (they rarely change: a customer's
    name and language are taken when they first write in). Bounded: the oldest go first."""

    def __init__(self, keep: int = 50_000) -> None:
        self.keep = keep
        self._by_identity: OrderedDict[tuple[str, str], Person] = OrderedDict()
        self._by_id: dict[int, Person] = {}

    def get(self, platform: str, user_id: str) -> Person | None:
        person = self._by_identity.get((platform, user_id))
        if person is not None:
            self._by_identity.move_to_end((platform, user_id))
        return person

    def by_id(self, person_id: int) -> Person | None:
        return self._by_id.get(person_id)

    def add(self, platform: str, user_id: str, person: Person) -> None:
        self._by_identity[(platform, user_id)] = person
        self._by_id[person.id] = person
        while len(self._by_identity) > self.keep:
            _, gone = self._by_identity.popitem(last=False)
            self._by_id.pop(gone.id, None)


class Staff:
    """The configured staff as people rows (ids from the database, synced at start-up), and
    which chat identity is whose. Staff change only with the configuration."""

    def __init__(
        self,
        people: Sequence[Person] = (),
        identities: dict[tuple[str, str], int] | None = None,
    ) -> None:
        self.load(people, identities or {})

    def load(self, people: Sequence[Person], identities: dict[tuple[str, str], int]) -> None:
        self.by_id = {p.id: p for p in people}
        self.by_key = {p.key: p for p in people}
        self.by_identity = identities

    def who(self, platform: str, user_id: str) -> Person | None:
        person_id = self.by_identity.get((platform, user_id))
        return self.by_id.get(person_id) if person_id is not None else None


@dataclass(frozen=True)
class Env:
    """What every unit of a hub shares: settings, codec, who is who, metrics, policies."""

    settings: Settings
    codec: TokenCodec
    directory: Directory
    metrics: Metrics
    platforms: Collection[str]  # platforms with a running adapter
    staff: Staff
    policies: Policies | None = None  # the SLA policies (None: SLAs are off)
    customers: Customers = field(default_factory=Customers)
    asked: dict[str, datetime] = field(default_factory=dict)  # group questions: chat|person → when
    # Seals the audit chain (``storage.audit.audit_key`` of the hub's secret). An env built
    # without it seals with a throwaway key: its rows then fail verification, never pass weakly.
    audit_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    sign_in: Callable[[str, str], str] | None = None  # (person key, platform) → one-time link
    assets: AssetIndex = field(default_factory=AssetIndex)  # the registry, in memory
    parts: PartsCatalog = field(default_factory=PartsCatalog)  # the spare parts, in memory
    similar: SimilarCases | None = None  # past cases for the card (None: off)
    progress: ProgressLinks | None = None  # signs /t/<token> links (None: no link in messages)
