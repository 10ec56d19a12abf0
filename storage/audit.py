"""The audit trail's hash chain: how a row is hashed, and the walk that checks every chain.

Each ticket's events form a chain: a row's ``hash`` covers its content and the previous row's
hash (the first row links to ``GENESIS``). The ticket row keeps the chain's head
(``audit_seq``, ``audit_hash``) so a new row can be chained without reading the trail.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

__all__ = ["GENESIS", "chain_hash"]

GENESIS = "0" * 64


def chain_hash(
    prev_hash: str,
    *,
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
    """The hash of one audit row linked to ``prev_hash``."""
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
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()
