"""Flows: what happens when a message, a voice note or a button press arrives.

Flows never name a platform. They read ``Inbound`` events and the database through the
repository, and write platform-neutral ``Text``/``Card``/``Notice`` replies into the outbox in
the same transaction, so a reply exists exactly when the change it reports does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.codec import TokenCodec
from bot.config import Settings
from bot.directory import Directory
from bot.events import Address, Card, Notice, Outbound, Text, outbound_to_json
from bot.metrics import Metrics
from storage import queues, repo
from storage.models import Person

if TYPE_CHECKING:
    from bot.events import Inbound
    from bot.sla.clocks import Policies

__all__ = ["FlowContext"]


@dataclass
class FlowContext:
    """Everything a flow may use while handling one event, inside one transaction."""

    session: AsyncSession
    settings: Settings
    codec: TokenCodec
    directory: Directory
    metrics: Metrics
    platforms: set[str]  # platforms with a running adapter
    key: str  # unique per handled event: prefixes idempotency keys of what it sends
    now: datetime
    person: Person | None = None  # who sent the event (None for the system)
    event: Inbound | None = None
    policies: Policies | None = None  # the SLA policies (None: SLAs are off)
    _sent: int = field(default=0, init=False)

    @property
    def locale(self) -> str:
        if self.person is not None and self.person.locale:
            return self.person.locale
        return self.settings.locale

    async def send(
        self,
        destination: Address,
        message: Outbound,
        *,
        ticket_id: int | None = None,
        card_ref_id: int | None = None,
        op: str | None = None,
    ) -> None:
        """Queue a message (delivered after this transaction commits)."""
        self._sent += 1
        if op is None:
            op = "notice" if isinstance(message, Notice) else "send"
        await queues.enqueue(
            self.session,
            destination=destination.ref,
            op=op,
            payload=outbound_to_json(message),
            idempotency_key=f"{self.key}#{self._sent}",
            ticket_id=ticket_id,
            card_ref_id=card_ref_id,
        )

    async def record(
        self,
        ticket_id: int,
        kind: str,
        *,
        via: str,
        data: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        """Append to the ticket's audit trail as the person behind this event, at ``now``."""
        person = self.person
        await repo.append_event(
            self.session,
            ticket_id,
            actor=person.name if person is not None else "system",
            actor_id=person.id if person is not None else None,
            kind=kind,
            via=via,
            data=data,
            at=fields.pop("at", self.now),
            **fields,
        )

    async def reply(self, message: Text | Card, *, ticket_id: int | None = None) -> None:
        assert self.event is not None
        await self.send(self.event.chat, message, ticket_id=ticket_id)

    async def notify_presser(self, text: str) -> None:
        """A private answer to whoever sent the current event (toast for button presses)."""
        from bot.events import Action

        assert self.event is not None
        ctx = self.event.reply_ctx if isinstance(self.event, Action) else {}
        await self.send(
            self.event.chat, Notice(text, reply_ctx=ctx, user_id=self.event.sender.user_id)
        )
