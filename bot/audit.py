"""Keeping the audit trail sealed: the start-up re-seal of rows written before the chain was
keyed, and checkpoints of every chain's head (logged, and posted to the admin chat when
``[audit] post_checkpoints`` is on — a copy the database cannot rewrite).

The hub runs both (``Hub.start`` and its checkpoint job); ``gongdan audit checkpoint`` takes
one at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.config import Settings
from bot.events import Text, outbound_to_json
from bot.texts import say
from storage import checkpoints, outbox, trail
from storage.db import Database
from storage.models import AuditCheckpoint, utcnow
from storage.records import OutboxEntry

__all__ = ["reseal_legacy", "take_checkpoint"]

log = logging.getLogger(__name__)


async def reseal_legacy(db: Database, key: bytes, *, batch: int = 200) -> trail.Resealed:
    """Seal with ``key`` every intact chain that still holds unkeyed rows (a batch of tickets
    per transaction); a broken one is left for ``gongdan audit verify`` to report, and logged."""
    total = trail.Resealed()
    after = 0
    while True:
        async with db.transaction() as s:
            done = await trail.reseal(s, key, after=after, limit=batch)
        if done.last is None:
            break
        after = total.last = done.last
        total.tickets += done.tickets
        total.events += done.events
        total.broken.update(done.broken)
    for ticket_id, why in total.broken.items():
        log.error(
            "the audit chain of ticket %d is broken (%s): left unsealed; "
            "`gongdan audit verify` reports it",
            ticket_id,
            why,
        )
    if total.tickets:
        log.info(
            "audit trail re-sealed with the key: %d events of %d tickets",
            total.events,
            len(total.tickets),
        )
    return total


async def take_checkpoint(
    db: Database,
    settings: Settings,
    key: bytes,
    *,
    now: datetime | None = None,
    fresh_within: timedelta | None = None,
) -> AuditCheckpoint | None:
    """Record every chain's head now (None: a checkpoint younger than ``fresh_within`` exists);
    queue its digest for the admin chat when ``[audit] post_checkpoints`` is on."""
    async with db.transaction() as s:
        cp = await checkpoints.write(
            s,
            key,
            now=now or utcnow(),
            keep=settings.audit.keep_checkpoints,
            fresh_within=fresh_within,
        )
        if cp is not None and settings.audit.post_checkpoints and settings.admin_chat:
            text = say(
                "audit.checkpoint",
                settings.locale,
                id=cp.id,
                at=cp.at.strftime("%Y-%m-%d %H:%M UTC"),
                tickets=cp.tickets,
                events=cp.events,
                digest=cp.digest,
            )
            entry = OutboxEntry(
                destination=settings.admin_chat,
                op="send",
                payload=outbound_to_json(Text(text)),
                idempotency_key=f"audit-checkpoint:{cp.id}:{cp.digest[:16]}",
                next_attempt_at=utcnow(),
            )
            await outbox.insert(s, [entry])
    if cp is not None:
        log.info(
            "audit checkpoint #%d at %s: %d tickets, %d events, digest %s",
            cp.id,
            cp.at.isoformat(),
            cp.tickets,
            cp.events,
            cp.digest,
        )
    return cp
