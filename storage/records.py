"""Rows as plain data: what a unit of work loads, what flows change, what gets written back.

The tables are declared once in ``storage.models``; these are their rows as mutable dataclasses
(slots, no session, no lazy loading), so flows can be run on them without a database and the
writer can tell what changed by comparing with the snapshot taken at load time. Field names
are the column names.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

__all__ = [
    "AuditEntry",
    "CardRef",
    "Clock",
    "FeedEntry",
    "OutboxEntry",
    "Person",
    "Ticket",
    "VoiceNote",
    "columns",
    "snapshot",
]


@dataclass(slots=True)
class Person:
    id: int
    key: str
    name: str
    role: str  # customer | engineer | dispatcher | manager
    locale: str | None = None
    active: bool = True
    max_open: int = 5
    skills: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Ticket:
    id: int
    number: str | None
    title: str
    description: str
    priority: str
    category: str
    state: str
    reporter_id: int
    origin_chat: str
    created_at: datetime
    updated_at: datetime
    device_code: str | None = None
    site: str | None = None
    alarm_code: str | None = None
    assignee_id: int | None = None
    team_key: str | None = None
    source_event: str | None = None
    diagnosis: dict[str, Any] | None = None
    root_cause: str | None = None
    intake: dict[str, Any] | None = None  # replace, never mutate: writes compare snapshots
    asset_id: int | None = None  # the registered asset the report is about (bot/assets.py)
    merged_into: int | None = None  # the ticket this one was merged into
    parts: list[dict[str, Any]] | None = None  # 待备件: [{name, qty}] (replace, never mutate)
    parts_eta: datetime | None = None  # when they are expected (None once they arrived)
    checklist: list[dict[str, Any]] | None = None  # closure items ticked (replace, never mutate)
    photos: int = 0  # evidence photos (ticket_evidence)
    close_notice_at: datetime | None = None  # the customer was told it would close by itself
    respond_due: datetime | None = None
    arrive_due: datetime | None = None
    resolve_due: datetime | None = None
    state_due: datetime | None = None
    sla_next_at: datetime | None = None
    closed_at: datetime | None = None
    version: int = 1
    audit_seq: int = 0  # the head of the ticket's audit chain: its last row's seq and hash
    audit_hash: str = "0" * 64


@dataclass(slots=True)
class Clock:
    """One SLA clock of a ticket (see ``storage.models.SlaClock``). ``id`` is None until
    written."""

    id: int | None
    ticket_id: int
    kind: str
    state: str | None
    policy: str
    calendar: str
    chain: str
    signature: str
    budget_s: float
    used_s: float
    started_at: datetime
    running_since: datetime | None = None
    due_at: datetime | None = None
    warned: int = 0
    breached_at: datetime | None = None
    step: int = 0
    escalation_stopped_at: datetime | None = None
    next_at: datetime | None = None
    met_at: datetime | None = None


@dataclass(slots=True)
class CardRef:
    id: int
    ticket_id: int
    destination: str
    audience: str  # customer | staff | nag | voice:<note id>
    locale: str
    created_at: datetime
    platform_message_id: str | None = None
    stale: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class VoiceNote:
    id: int
    source_event: str
    person_id: int
    chat: str
    transcript: str
    language: str
    diagnosis: dict[str, Any]
    created_at: datetime
    ticket_id: int | None = None
    duration_s: float | None = None
    platform_transcript: str | None = None
    status: str = "draft"  # draft | confirmed | discarded
    decided_at: datetime | None = None


@dataclass(slots=True)
class AuditEntry:
    """One row of a ticket's audit trail, hashed into its chain when it was recorded."""

    ticket_id: int
    seq: int
    at: datetime
    actor_id: int | None
    actor: str
    kind: str
    from_state: str | None
    to_state: str | None
    via: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(slots=True)
class OutboxEntry:
    """A message for the outbox table (platforms reached over the network)."""

    destination: str
    op: str  # send | update | notice
    payload: dict[str, Any]
    idempotency_key: str
    next_attempt_at: datetime
    ticket_id: int | None = None
    card_ref_id: int | None = None
    coalesce_key: str | None = None


@dataclass(slots=True)
class FeedEntry:
    """A row of the web chat's own feed, written in the unit's transaction (its delivery)."""

    conversation: str
    message_key: str
    kind: str  # text | card | notice | user
    payload: dict[str, Any]
    idempotency_key: str | None
    created_at: datetime


_COLUMNS: dict[type, tuple[str, ...]] = {}
_GETTERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def columns(cls: type) -> tuple[str, ...]:
    """The field (= column) names of a record class, in order."""
    found = _COLUMNS.get(cls)
    if found is None:
        found = _COLUMNS[cls] = tuple(f.name for f in fields(cls))
    return found


def snapshot(record: Any) -> tuple[Any, ...]:
    """The record's values now (compared at write time to see what changed)."""
    getter = _GETTERS.get(type(record))
    if getter is None:
        getter = _GETTERS[type(record)] = operator.attrgetter(*columns(type(record)))
    return getter(record)
