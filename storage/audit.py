"""The audit trail's seal: how a row is hashed into its ticket's chain, and how the heads of
every chain are hashed together into a checkpoint. Pure functions, no database.

Each ticket's events form a chain: a row's ``hash`` covers its content and the previous row's
hash (the first row links to ``GENESIS``). The ticket row keeps the chain's head
(``audit_seq``, ``audit_hash``) so a new row can be chained without reading the trail.

The hash is an HMAC keyed with ``audit_key(secret)``, the hub's secret kept outside the
database: whoever can write the database but does not hold the secret cannot edit a row and
recompute the chain after it. Rows written before the chain was keyed (``keyed`` false) were
plain SHA-256; ``key=None`` computes that legacy hash, to check them before they are re-sealed.

A chain cut at its tail, or all of a ticket's rows deleted, is still a valid chain; a
checkpoint (``checkpoint_digest``) keyed the same way remembers every head, so what was cut
after it is found.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

__all__ = ["GENESIS", "CheckpointDigest", "audit_key", "chain_hash", "checkpoint_digest"]

GENESIS = "0" * 64


def audit_key(secret: bytes) -> bytes:
    """The key of the audit chain and its checkpoints, derived from the hub's secret (so that
    it is never the key of anything else the secret signs)."""
    return hmac.new(secret, b"gongdan/audit-chain/v1", hashlib.sha256).digest()


def chain_hash(
    prev_hash: str,
    *,
    key: bytes | None = None,
    ticket_id: int,
    seq: int,
    at: datetime,
    actor_id: int | None,
    actor: str,
    kind: str,
    from_state: str | None,
    to_state: str | None,
    via: str,
    data: dict[str, Any],
) -> str:
    """The hash of one audit row linked to ``prev_hash``: HMAC-SHA256 with ``key``; without a
    key, the legacy unkeyed SHA-256 of rows written before the chain was keyed."""
    row = {
        "ticket_id": ticket_id,
        "seq": seq,
        "at": at.isoformat(),
        "actor_id": actor_id,
        "actor": actor,
        "kind": kind,
        "from_state": from_state,
        "to_state": to_state,
        "via": via,
        "data": data,
    }
    canonical = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    message = (prev_hash + canonical).encode()
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.digest(key, message, "sha256").hex()  # (hmac.new(…).hexdigest(), in one call)


class CheckpointDigest:
    """The keyed digest of a checkpoint taken ``at``, fed every ticket's chain head in
    ascending ticket order (so that a walk of the whole trail need not hold them all)."""

    def __init__(self, key: bytes, at: datetime) -> None:
        header = f"gongdan/audit-checkpoint/v1 {at.isoformat()}"
        self._mac = hmac.new(key, header.encode(), hashlib.sha256)
        self._last = 0

    def add(self, ticket_id: int, seq: int, head: str) -> None:
        if ticket_id <= self._last:
            raise ValueError("checkpoint heads must come in ascending ticket order")
        self._last = ticket_id
        self._mac.update(f"\n{ticket_id}:{seq}:{head}".encode())

    def hexdigest(self) -> str:
        return self._mac.hexdigest()


def checkpoint_digest(key: bytes, at: datetime, heads: Iterable[tuple[int, int, str]]) -> str:
    """The keyed digest of a checkpoint taken ``at`` of the heads ``(ticket id, seq, hash)``."""
    digest = CheckpointDigest(key, at)
    for ticket_id, seq, head in sorted(heads):
        digest.add(ticket_id, seq, head)
    return digest.hexdigest()
