"""Who is who: staff and teams from the settings, with the lookups flows need."""

from __future__ import annotations

from collections.abc import Mapping

from bot.config import Person as PersonConfig
from bot.config import Settings, Team
from bot.events import Address
from storage.repo import StaffRecord

__all__ = ["Directory"]


class Directory:
    def __init__(self, settings: Settings) -> None:
        self.people: Mapping[str, PersonConfig] = {p.id: p for p in settings.people}
        self.teams: Mapping[str, Team] = {t.id: t for t in settings.teams}

    def staff_records(self) -> list[StaffRecord]:
        return [
            StaffRecord(
                key=p.id,
                name=p.name,
                role=p.role,
                identities=p.identities,
                skills=p.skills,
                max_open=p.max_open,
                locale=p.locale,
            )
            for p in self.people.values()
        ]

    def teams_of(self, person_key: str) -> list[Team]:
        return [t for t in self.teams.values() if person_key in t.members or t.lead == person_key]

    def team_for(self, person_key: str | None) -> Team | None:
        if person_key is not None:
            mine = self.teams_of(person_key)
            if mine:
                return mine[0]
        return next(iter(self.teams.values()), None)

    def team_chats(self, team_key: str | None) -> list[Address]:
        team = self.teams.get(team_key or "")
        return [Address.parse(ref) for ref in team.chats] if team else []

    def direct_address(self, person_key: str, platforms: set[str]) -> Address | None:
        """Where a person's direct messages go: their first identity on a running platform."""
        person = self.people.get(person_key)
        if person is None:
            return None
        for ref in person.identities:
            addr = Address.parse(ref)
            if addr.platform in platforms:
                return addr
        return None

    def engineers(self) -> list[PersonConfig]:
        return [p for p in self.people.values() if p.role == "engineer"]
