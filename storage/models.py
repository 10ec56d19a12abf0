"""Tables. Times are stored in UTC; ``UTCDateTime`` gives back aware datetimes on every backend."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Asset",
    "AuditCheckpoint",
    "Base",
    "CardRef",
    "Chat",
    "CsatRating",
    "DailyReport",
    "Identity",
    "InboundEvent",
    "Organisation",
    "OutboxMessage",
    "PartStock",
    "PartsCatalogEntry",
    "Person",
    "SignInLink",
    "Site",
    "SlaClock",
    "StaffPassword",
    "StaffSession",
    "Ticket",
    "TicketEvent",
    "TicketEvidence",
    "VoiceNote",
    "WebchatFeed",
]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # On SQLite the two steps (ours, then the dialect's text format) are one, in C: a unit
    # binds and reads dozens of datetimes per event. The text is the dialect's own
    # ("2026-12-04 08:30:00.000000"), so rows written either way compare and sort alike.
    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def text(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the database; use aware UTC")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return text

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        def moment(value: str | None) -> datetime | None:
            if value is None:
                return None
            at = datetime.fromisoformat(value)
            return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)

        return moment


Json = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: Json}


class Person(Base):
    """Staff from the config, and every customer who ever wrote in."""

    __tablename__ = "people"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # config id, or cust-<n>
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))  # customer | engineer | dispatcher | manager
    skills: Mapped[list[str]] = mapped_column(Json, default=list)
    max_open: Mapped[int] = mapped_column(Integer, default=5)
    locale: Mapped[str | None] = mapped_column(String(5))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Identity(Base):
    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("platform", "external_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    platform: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200))


class Chat(Base):
    """Conversations: team groups from config and every chat a ticket came from."""

    __tablename__ = "chats"
    __table_args__ = (UniqueConstraint("platform", "chat_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    chat_id: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(10))  # direct | group
    team_key: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str | None] = mapped_column(String(200))


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_assignee_state", "assignee_id", "state"),
        Index("ix_tickets_site_updated", "site", "updated_at"),  # repeat reports by site
        Index("ix_tickets_asset_updated", "asset_id", "updated_at"),  # …and by asset
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str | None] = mapped_column(String(20), unique=True)  # GD-<id>
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(2), index=True)
    category: Mapped[str] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(20), index=True)
    device_code: Mapped[str | None] = mapped_column(String(100))
    site: Mapped[str | None] = mapped_column(String(200))
    alarm_code: Mapped[str | None] = mapped_column(String(50))
    reporter_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"), index=True)
    team_key: Mapped[str | None] = mapped_column(String(100))
    origin_chat: Mapped[str] = mapped_column(String(330))  # platform:chat_id
    source_event: Mapped[str | None] = mapped_column(String(330), unique=True)
    diagnosis: Mapped[dict[str, Any] | None] = mapped_column()
    root_cause: Mapped[str | None] = mapped_column(Text)
    # What the intake asked the reporter and was told: impact, slots (bot/flows/intake.py).
    intake: Mapped[dict[str, Any] | None] = mapped_column()
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("assets.id"), index=True)
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    # 待备件: the parts waited for ([{name, qty, code?}]) and when they are expected.
    parts: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    parts_eta: Mapped[datetime | None] = mapped_column()
    # Closure (bot/closure.py): the checklist items ticked ([{item, by, at}]), how many evidence
    # photos the ticket has (ticket_evidence), and when the customer was told it would close.
    checklist: Mapped[list[dict[str, Any]] | None] = mapped_column(Json)
    photos: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    close_notice_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    respond_due: Mapped[datetime | None] = mapped_column(index=True)
    arrive_due: Mapped[datetime | None] = mapped_column(index=True)
    resolve_due: Mapped[datetime | None] = mapped_column(index=True)
    state_due: Mapped[datetime | None] = mapped_column(index=True)  # longest stay in this state
    sla_next_at: Mapped[datetime | None] = mapped_column(index=True)  # the sweep looks then
    closed_at: Mapped[datetime | None] = mapped_column()
    version: Mapped[int] = mapped_column(Integer, default=1)
    audit_seq: Mapped[int] = mapped_column(Integer, default=0)  # head of the audit chain:
    audit_hash: Mapped[str] = mapped_column(String(64), default="0" * 64)  # last seq, hash


class TicketEvent(Base):
    """Append-only audit trail; each row carries the hash of the ticket's previous row."""

    __tablename__ = "ticket_events"
    __table_args__ = (
        UniqueConstraint("ticket_id", "seq"),
        Index("ix_ticket_events_kind_at", "kind", "at"),  # the figures: what happened when
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column()
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    actor: Mapped[str] = mapped_column(String(200))  # name at the time, or "system"
    kind: Mapped[str] = mapped_column(String(30))  # created | transition | comment | …
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    via: Mapped[str] = mapped_column(String(10))  # button | voice | api | system | message
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # True: ``hash`` is an HMAC keyed with the hub's secret. False: a row written before the
    # chain was keyed (plain SHA-256), re-sealed once at start-up (storage/audit.py).
    keyed: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("false"))


class InboundEvent(Base):
    """Every verified inbound event, stored before the platform is answered."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("platform", "event_id"),
        Index("ix_inbound_events_status_id", "status", "id"),
        Index(
            "ix_inbound_events_open_lane",
            "lane",
            "id",
            sqlite_where=text("status IN ('pending', 'processing')"),
            postgresql_where=text("status IN ('pending', 'processing')"),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))  # message | voice | action
    lane: Mapped[str | None] = mapped_column(String(330))  # the chat whose order it keeps
    sender_platform: Mapped[str | None] = mapped_column(String(20))  # who sent it: their
    sender_id: Mapped[str | None] = mapped_column(String(200))  # identity, joined at claim
    payload: Mapped[dict[str, Any]] = mapped_column()  # the normalized event
    raw: Mapped[str | None] = mapped_column(Text)  # what the platform sent, for the record
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column()
    claimed_until: Mapped[datetime | None] = mapped_column()
    processed_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_due", "state", "next_attempt_at"),
        Index("ix_outbox_destination_id", "destination", "id"),
        Index("ix_outbox_coalesce_key_state", "coalesce_key", "state"),
        Index(
            "ix_outbox_waiting_destination",
            "destination",
            "id",
            sqlite_where=text("state IN ('pending', 'sending')"),
            postgresql_where=text("state IN ('pending', 'sending')"),
        ),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    destination: Mapped[str] = mapped_column(String(330))  # platform:chat_id
    op: Mapped[str] = mapped_column(String(10))  # send | update | notice
    payload: Mapped[dict[str, Any]] = mapped_column()
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    card_ref_id: Mapped[int | None] = mapped_column(ForeignKey("card_refs.id"))
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    platform_message_id: Mapped[str | None] = mapped_column(String(300))
    coalesce_key: Mapped[str | None] = mapped_column(String(340))  # nags that may fold together
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class SlaClock(Base):
    """One SLA clock of a ticket (respond, arrive, resolve, and the stay in its state).

    Business seconds ``used_s`` were spent before ``running_since``; while running, the clock is
    due at ``due_at``. ``warned`` counts the warning thresholds fired, ``step`` the escalation
    steps done; ``next_at`` is when the sweep must look at it next (the ticket's
    ``sla_next_at`` is the earliest of its clocks).
    """

    __tablename__ = "sla_clocks"
    __table_args__ = (UniqueConstraint("ticket_id", "kind"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    kind: Mapped[str] = mapped_column(String(10))  # respond | arrive | resolve | stay
    state: Mapped[str | None] = mapped_column(String(20))  # stay: the state it measures
    policy: Mapped[str] = mapped_column(String(100))
    calendar: Mapped[str] = mapped_column(String(100))
    chain: Mapped[str] = mapped_column(String(100))
    signature: Mapped[str] = mapped_column(String(64))  # of the policy it was computed with
    budget_s: Mapped[float] = mapped_column()
    used_s: Mapped[float] = mapped_column(default=0.0)
    started_at: Mapped[datetime] = mapped_column()
    running_since: Mapped[datetime | None] = mapped_column()
    due_at: Mapped[datetime | None] = mapped_column()
    warned: Mapped[int] = mapped_column(Integer, default=0)
    breached_at: Mapped[datetime | None] = mapped_column()
    step: Mapped[int] = mapped_column(Integer, default=0)
    escalation_stopped_at: Mapped[datetime | None] = mapped_column()
    next_at: Mapped[datetime | None] = mapped_column()
    met_at: Mapped[datetime | None] = mapped_column()


class CardRef(Base):
    """One platform message that shows a ticket's card (a ticket has one per chat it is in)."""

    __tablename__ = "card_refs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    destination: Mapped[str] = mapped_column(String(330))
    audience: Mapped[str] = mapped_column(String(20))  # customer | staff
    locale: Mapped[str] = mapped_column(String(5))
    platform_message_id: Mapped[str | None] = mapped_column(String(300))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)  # e.g. WeCom response_code
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VoiceNote(Base):
    """A transcribed voice note and the diagnosis read from it, until its author confirms it."""

    __tablename__ = "voice_notes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source_event: Mapped[str] = mapped_column(String(330), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    chat: Mapped[str] = mapped_column(String(330))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    transcript: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    duration_s: Mapped[float | None] = mapped_column()
    platform_transcript: Mapped[str | None] = mapped_column(Text)
    diagnosis: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(12), default="draft")  # draft|confirmed|discarded
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column()


class WebchatFeed(Base):
    """The built-in web chat's message store: one row per message sent or card update."""

    __tablename__ = "webchat_feed"
    __table_args__ = (Index("ix_webchat_feed_conversation_id", "conversation", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation: Mapped[str] = mapped_column(String(300))
    message_key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(10))  # text | card | notice | user
    payload: Mapped[dict[str, Any]] = mapped_column()
    idempotency_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Organisation(Base):
    """A customer organisation (a factory, a hospital, a tenant)."""

    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Site(Base):
    """Where assets stand: an address, optionally coordinates (WGS-84) for routing distance."""

    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    address: Mapped[str | None] = mapped_column(String(500))
    lat: Mapped[float | None] = mapped_column()
    lon: Mapped[float | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Asset(Base):
    """A machine or device that tickets are about."""

    __tablename__ = "assets"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    aliases: Mapped[list[str]] = mapped_column(Json, default=list)  # spoken names, old codes
    model: Mapped[str | None] = mapped_column(String(200))
    category: Mapped[str | None] = mapped_column(String(100))  # e.g. 注塑机 (routing skills)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    install_date: Mapped[date | None] = mapped_column(Date)
    warranty_end: Mapped[date | None] = mapped_column(Date)
    preferred_engineer: Mapped[str | None] = mapped_column(String(200))  # a person's config id
    meter: Mapped[float | None] = mapped_column()  # the latest meter reading, if any
    meter_unit: Mapped[str | None] = mapped_column(String(20))
    meter_at: Mapped[datetime | None] = mapped_column()
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PartsCatalogEntry(Base):
    """A spare part the stores keep (``gongdan parts import``): what 待备件 requests are matched
    to, so that a request shows the part's code and stock."""

    __tablename__ = "parts_catalog"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    aliases: Mapped[list[str]] = mapped_column(Json, default=list)  # other names, spoken names
    unit: Mapped[str | None] = mapped_column(String(20))  # 个, 套, 米
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PartStock(Base):
    """How many of a part one store (总仓, 二仓) holds; a store that does not keep the part has
    no row. Rows of a part are written in the import file's column order (``id`` keeps it)."""

    __tablename__ = "part_stock"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    part_id: Mapped[int] = mapped_column(ForeignKey("parts_catalog.id"), index=True)
    store: Mapped[str] = mapped_column(String(100))
    qty: Mapped[float] = mapped_column()
    __table_args__ = (UniqueConstraint("part_id", "store"),)


class AuditCheckpoint(Base):
    """The heads of every ticket's audit chain at one moment, hashed together with the audit
    key: a chain cut at its tail or a ticket's events deleted no longer match it."""

    __tablename__ = "audit_checkpoints"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    tickets: Mapped[int] = mapped_column(Integer)
    events: Mapped[int] = mapped_column(Integer)
    heads: Mapped[dict[str, Any]] = mapped_column()  # {"<ticket id>": <seq of its head>}
    digest: Mapped[str] = mapped_column(String(64))


class StaffPassword(Base):
    """A staff member's own password (``gongdan passwd``), as an Argon2id hash."""

    __tablename__ = "staff_passwords"
    person_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    hash: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffSession(Base):
    """A staff sign-in. The browser holds the token; only its SHA-256 is stored here."""

    __tablename__ = "staff_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(token)
    person_key: Mapped[str] = mapped_column(String(200), index=True)
    via: Mapped[str] = mapped_column(String(10))  # link | password
    client: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None] = mapped_column()


class SignInLink(Base):
    """A one-time sign-in link; only the SHA-256 of its token is stored."""

    __tablename__ = "sign_in_links"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256(token)
    person_key: Mapped[str] = mapped_column(String(200), index=True)
    via: Mapped[str] = mapped_column(String(20))  # cli | <platform> the request came from
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class PmRun(Base):
    """One due date (or meter mark) of a preventive-maintenance plan on one asset, and the
    ticket opened for it. Unique per plan, asset and slot: whichever worker opens a due date
    first wins, and a job that runs twice opens nothing twice."""

    __tablename__ = "pm_runs"
    __table_args__ = (
        UniqueConstraint("plan_key", "asset_id", "slot", name="uq_pm_runs_plan_asset_slot"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    plan_key: Mapped[str] = mapped_column(String(200))
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"), index=True)
    slot: Mapped[str] = mapped_column(String(40))  # a due date (2026-12-31) or a meter mark
    due_at: Mapped[datetime | None] = mapped_column()  # calendar plans: the due day's start
    due_meter: Mapped[float | None] = mapped_column()  # meter plans: the mark reached
    # (no foreign key: the run is inserted first in the unit's write, before its ticket)
    ticket_id: Mapped[int | None] = mapped_column(BigId, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column()  # its ticket resolved (or cancelled)


class MaintenanceSuggestion(Base):
    """ "This asset keeps failing: plan preventive maintenance", as posted to its team."""

    __tablename__ = "maintenance_suggestions"
    __table_args__ = (
        UniqueConstraint("asset_id", "trigger_ticket_id", name="uq_maintenance_suggestions_asset"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("assets.id"), index=True)
    trigger_ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))  # the Nth ticket
    tickets: Mapped[list[str]] = mapped_column(Json, default=list)  # their numbers, oldest first
    days: Mapped[float] = mapped_column()
    teams: Mapped[list[str]] = mapped_column(Json, default=list)  # the teams it was posted to
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class CsatRating(Base):
    """The customer's rating of a closed ticket: asked once at close, reminded at most once.

    One row per ticket (a reopened and re-closed ticket is asked again: the row is reset).
    ``score`` stays empty until the customer taps a star."""

    __tablename__ = "csat_ratings"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    rater_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    score: Mapped[int | None] = mapped_column(Integer)  # 1..5
    comment: Mapped[str | None] = mapped_column(Text)
    asked_at: Mapped[datetime] = mapped_column(index=True)
    reminded_at: Mapped[datetime | None] = mapped_column()
    rated_at: Mapped[datetime | None] = mapped_column(index=True)


class DailyReport(Base):
    """One daily health report posted to one chat: the row is the claim, inserted in the
    unit that queues the message, so whichever worker inserts it first sends it, once."""

    __tablename__ = "daily_reports"
    __table_args__ = (UniqueConstraint("day", "chat", name="uq_daily_reports_day_chat"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    day: Mapped[date] = mapped_column(Date)  # the local day it reports on
    chat: Mapped[str] = mapped_column(String(330))  # platform:chat_id
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketEvidence(Base):
    """A photo proving the work on a ticket (uploaded on the console or sent in chat). Kept in
    the database, not a files directory: every node behind a load balancer sees it, and a
    backup of the database is a backup of the evidence. Limits: ``[closure] photo_max_mb``,
    ``photos_per_ticket``; JPEG, PNG or WebP by their magic bytes. The same picture twice on a
    ticket is one row (``sha256``)."""

    __tablename__ = "ticket_evidence"
    __table_args__ = (UniqueConstraint("ticket_id", "sha256"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # photo
    media_type: Mapped[str] = mapped_column(String(30))  # image/jpeg | image/png | image/webp
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    via: Mapped[str] = mapped_column(String(20))  # console | chat platform
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


#: The tables by name, typed for Core statements (``Model.__table__`` is only a ``FromClause``).
TABLES: dict[str, Table] = Base.metadata.tables
