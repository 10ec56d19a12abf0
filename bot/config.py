"""One settings object: ``gongdan.toml`` plus ``GONGDAN_*`` environment variables.

Where the file is: ``$GONGDAN_CONFIG``, else ``./gongdan.toml`` if present, else defaults only.
Environment variables win over the file and use ``__`` for nesting
(``GONGDAN_SERVER__PORT=9000``); ``GONGDAN_DATABASE_URL`` is a shorthand for
``GONGDAN_DATABASE__URL``. Unknown keys are errors: a typo must not silently disable a feature.

Built once in ``main()`` and passed down; each adapter receives only its own section.
"""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.asr_settings import AsrSettings
from bot.closure_settings import ClosureSettings
from bot.csat_settings import CsatSettings
from bot.dashboard_settings import DashboardSettings
from bot.errors import ConfigError
from bot.maintenance_settings import MaintenancePlan, MaintenanceSettings
from bot.parts_settings import PartsSettings
from bot.platform_settings import (
    DingtalkSettings,
    PlatformSettings,
    SlackSettings,
    TelegramSettings,
    WecomSettings,
)
from bot.progress_settings import ProgressSettings
from bot.report_settings import ReportSettings
from bot.shifts import parse_shift
from bot.sla.settings import SlaSettings

__all__ = [
    "PLATFORMS",
    "DingtalkSettings",
    "MaintenancePlan",
    "MaintenanceSettings",
    "Person",
    "PlatformSettings",
    "RoutingSettings",
    "Settings",
    "SlackSettings",
    "Team",
    "TelegramSettings",
    "WecomSettings",
    "load_settings",
]

#: Platforms a person identity or a chat may name.
PLATFORMS = ("web", "slack", "telegram", "wecom", "dingtalk")
#: Chat kinds: a platform, or a send-only channel such as a WeCom group robot.
CHAT_KINDS = (*PLATFORMS, "wecom-robot", "wecom-aibot")
_REF = re.compile(r"^(?P<kind>[a-z-]+):(?P<id>.+)$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    """Address to bind. Keep loopback unless a reverse proxy with TLS sits in front."""
    port: int = Field(8080, ge=1, le=65535)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    """Largest request body accepted on any route (413 above it)."""


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///./gongdan.db"
    """``sqlite+aiosqlite:///path.db`` (embedded default) or ``postgresql+asyncpg://…``."""

    @field_validator("url")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        if not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v


class ApiSettings(_Section):
    token: SecretStr | None = None
    """Bearer token for ``/api``. Without one the API answers 503 (it is never left open)."""


class SecuritySettings(_Section):
    secret_key: SecretStr | None = None
    """Signs button tokens, web chat sessions and progress links, and keys the audit chain.
    When unset, a random key is created once in ``secret_key_file`` so that cards survive
    restarts. Keep it outside the database (and its backups): whoever holds both can rewrite
    the audit trail unnoticed."""
    secret_key_file: Path = Path(".gongdan-secret")
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    """A staff sign-in lasts at most this long (then the person signs in again)."""
    idle_minutes: float = Field(120.0, gt=0)
    """A staff sign-in not used for this long ends."""
    login_link_minutes: float = Field(10.0, gt=0, le=24 * 60)
    """A one-time sign-in link (typed "登录"/"login" to the bot, or ``gongdan login-link``)
    works once, within this many minutes."""
    sign_in_attempts: int = Field(5, ge=1)
    """Failed sign-ins allowed per person, and ``4 ×`` this per client address, within
    ``sign_in_window_minutes``; beyond that sign-in answers 429 until the window passes."""
    sign_in_window_minutes: float = Field(15.0, gt=0)
    session_recheck_seconds: float = Field(2.0, ge=0, le=60)
    """A sign-in is read from the database at most this often per process (a console's live
    stream and its presses are not a read each). A sign-out takes effect at once in the
    process that made it, and within this many seconds in other ``gongdan serve`` processes
    and after ``gongdan passwd``. 0: read on every request."""


class AuditSettings(_Section):
    checkpoint_minutes: float = Field(60.0, ge=0)
    """How often the heads of every ticket's audit chain are hashed together (keyed) into a
    checkpoint kept outside the events table; ``gongdan audit verify`` then finds a chain cut
    at its tail or a ticket's events deleted. 0: never."""
    post_checkpoints: bool = False
    """Also post each checkpoint's digest to ``admin_chat`` (a copy the database cannot
    rewrite)."""
    keep_checkpoints: int = Field(48, ge=1)
    """Checkpoints kept (older ones are pruned; the newest covers everything before it)."""


class LimitSettings(_Section):
    storage: str = "memory://"
    """Where rate-limit counters live: ``memory://`` (per worker) or ``redis://host:6379``
    (shared by every worker)."""
    exempt: list[str] = []
    """Client addresses or networks (``127.0.0.1``, ``10.0.0.0/8``) no web chat limit applies
    to, e.g. a load test on loopback. Sign-in throttling applies to everyone."""
    trust_forwarded: bool = False
    """Take the client address from ``X-Forwarded-For`` (only behind a reverse proxy that
    sets it)."""
    sessions_per_hour: int = Field(20, ge=1)
    """New web chat sessions per client address."""
    messages_per_minute: int = Field(20, ge=1)
    """Web chat messages per session (and ``5 ×`` this per client address)."""
    actions_per_minute: int = Field(60, ge=1)
    """Web chat button presses per session (and ``5 ×`` this per client address)."""
    streams_per_client: int = Field(8, ge=1)
    """Open live streams per client address."""
    streams_total: int = Field(200, ge=1)
    """Open live streams in one worker (503 with ``Retry-After`` above it)."""
    text_chars: int = Field(4000, ge=100)
    """Longest message text read from any platform; a longer one is cut, marked "…(已截断)",
    and kept whole as a text attachment up to ``attachment_chars``."""
    attachment_chars: int = Field(100_000, ge=0)
    json_depth: int = Field(32, ge=4)
    """Deepest nesting accepted in a JSON body (refused with 400 before it is parsed)."""


class WebchatSettings(_Section):
    enabled: bool = True
    console_password: SecretStr | None = None
    """Removed: staff sign in with their own link or password (see ``[security]``)."""

    @field_validator("console_password")
    @classmethod
    def _removed(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            raise ValueError(
                "removed: one shared password let its holder act as anyone. Staff now sign in "
                "with a one-time link (type 登录/login to the bot, or `gongdan login-link "
                "<person>`) or their own password (`gongdan passwd <person>`)"
            )
        return v


class OutboxSettings(_Section):
    max_attempts: int = Field(12, ge=1)
    base_delay: float = Field(1.0, gt=0)
    max_delay: float = Field(300.0, gt=0)
    batch: int = Field(50, ge=1)
    send_timeout: float = Field(10.0, gt=0)
    concurrency: int = Field(8, ge=1)
    """Calls in flight to one platform at a time (a few keep-alive connections carry
    thousands a second; HTTP client pools slow down with many requests waiting)."""
    lease_seconds: float = Field(30.0, gt=0)
    """How long a worker holds the messages it is sending; those of a worker that died are
    sent by another after this long. Keep it well above ``send_timeout``."""
    flood_seconds: float = Field(30.0, gt=0)
    """New-ticket cards waiting for a team group that its rate limit cannot send within this
    long are folded into digests (P0 cards are always sent)."""
    flood_lines: int = Field(20, ge=2)
    """Tickets per flood digest."""


class EngineSettings(_Section):
    lease_seconds: float = Field(30.0, gt=0)
    """How long a worker may hold a voice note it is hearing before another takes it over (a
    worker that died mid-note is detected after this long; other events are never held: they
    are done in the transaction that writes their effects, or still pending)."""
    max_attempts: int = Field(3, ge=1)
    """Tries per inbound event on unexpected errors; then the sender gets an apology."""
    commit_window_ms: float | None = Field(None, ge=0, le=50)
    """How long the intake's commit waits for other events to join it. A commit costs about
    the same for one event or fifty; under a burst, fewer commits leave the CPU to processing
    (answers get a few ms slower). 0: commit at once. Unset: 3 ms on SQLite (its commits take
    the write lock in turn with the engine's), 0 on PostgreSQL (a commit is one trip; while it
    is under way the next posts gather anyway)."""

    def window_s(self, sqlite: bool) -> float:
        """The commit window in seconds for this database."""
        if self.commit_window_ms is not None:
            return self.commit_window_ms / 1000
        return 0.003 if sqlite else 0.0


class TicketSettings(_Section):
    auto_close_hours: float = Field(72.0, ge=0)
    """A resolved ticket the customer neither confirms nor rejects closes by itself after this
    long (0: never)."""


IntakeMode = Literal["reports", "all", "mentions"]
Impact = Literal["stopped", "partial", "none", "safety"]


class IntakeChat(_Section):
    chat: str
    """``platform:chat_id``, e.g. ``wecom:wrkSFfCgAA`` or ``slack:C0LINE2``."""
    mode: IntakeMode


class IntakeSettings(_Section):
    group_mode: IntakeMode = "reports"
    """What a group chat's customer messages become: ``reports``: fault reports become tickets,
    a message the reader is unsure about is asked about once (one tap), the rest is counted
    and left alone; ``all``: every message is read as in a direct chat; ``mentions``: only
    messages that @-mention the bot. Direct chats always read every message."""
    chats: list[IntakeChat] = []
    """Per-chat modes (they win over ``group_mode``)."""
    ask_below: float = Field(0.75, ge=0.5, le=1)
    """A report or non-report read with less confidence than this is asked about (direct chats,
    and groups in ``reports`` mode) instead of guessed."""
    ask_above: float = Field(0.25, ge=0, le=0.5)
    """…as long as the reader gives it at least this chance of being a report; below, it is
    small talk (in a group: counted and left alone)."""
    ask_impact_below: float = Field(0.7, ge=0, le=1)
    """Ask the reporter for the impact (one tap) when the priority's confidence is lower than
    this, or when P0/P1 is read."""
    impact_priority: dict[
        Impact, dict[Literal["urgent", "normal"], Literal["P0", "P1", "P2", "P3"]]
    ] = {
        "safety": {"urgent": "P0", "normal": "P0"},
        "stopped": {"urgent": "P0", "normal": "P0"},
        "partial": {"urgent": "P1", "normal": "P1"},
        "none": {"urgent": "P1", "normal": "P2"},
    }
    """Impact × urgency → priority (ITIL style). Urgency is "urgent" when the reporter asked
    for speed (紧急, 马上, asap …)."""
    slot_minutes: float = Field(30.0, ge=0)
    """How long after a report its reporter's next message in that chat can fill in what the
    report lacked (site, device); after that the ticket goes on with what it has."""
    reuse_days: float = Field(30.0, ge=0)
    """A new report from the same person and chat that names no site takes the site of their
    last ticket from within this many days."""
    chase_priority: Literal["P0", "P1", "P2", "P3"] = "P1"
    """A customer chasing an open ticket raises it to at least this priority."""
    repeat_hours: float = Field(24.0, ge=0)
    """A report like an open ticket of the same asset (or, without one, the same site) made
    within this many hours is a suspected repeat: its own ticket, linked, not routed until staff
    press 合并 or 不是同一问题; one like a ticket resolved or closed within it links that
    ticket's root cause. 0 turns both off."""

    def mode_for(self, chat: str, kind: str) -> IntakeMode:
        if kind == "direct":
            return "all"
        for c in self.chats:
            if c.chat == chat:
                return c.mode
        return self.group_mode


class RoutingSettings(_Section):
    """How the hub picks an engineer for a new ticket (``bot/routing_rules.py``): every
    engineer with room is scored by the rules below, the highest score wins, and the reason
    is kept with the ticket. ``gongdan rules explain`` prints these rules as an SOP."""

    skill_points: float = 40.0
    """An engineer whose skills name the asset's category or model (or, without an asset,
    the ticket's category, device or title)."""
    off_duty: Literal["exclude", "penalise"] = "exclude"
    """Engineers outside their shifts are not picked while anyone is on duty; when nobody is,
    everyone is scored and those off duty lose ``off_duty_points``."""
    off_duty_points: float = -30.0
    load_points: float = -8.0
    """Per open ticket the engineer holds (at ``max_open`` they are not picked at all)."""
    km_points: float = -0.5
    """Per kilometre from the engineer (their last site, else their ``base``) to the ticket's
    site, when both are known."""
    max_km: float = Field(60.0, ge=0)
    """Distances count up to this far (a far engineer is not buried by distance alone)."""
    last_site_hours: float = Field(8.0, ge=0)
    """Where an engineer's newest ticket (updated within this long) is, is where they are."""
    fatigue_after: int = Field(3, ge=0)
    """After this many similar tickets in a row (same category) an engineer loses
    ``fatigue_points`` for another one (0: off)."""
    fatigue_points: float = -15.0
    preferred_points: float = 25.0
    """The asset's preferred engineer."""
    p0_broadcast: int = Field(0, ge=0, le=10)
    """A P0 ticket's card goes to this many best engineers at once (their direct chats, with
    抢单/claim); the first to claim it takes it and the others' cards show who did. 0: off
    (the best engineer is assigned, as for any ticket)."""


class Person(_Section):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    role: Literal["engineer", "dispatcher", "manager"] = "engineer"
    identities: list[str] = []
    """``platform:id`` — e.g. ``slack:U1``, ``telegram:42``, ``wecom:LiGong``, ``web:li``."""
    skills: list[str] = []
    max_open: int = Field(5, ge=0)
    locale: Literal["zh", "en"] | None = None
    base: tuple[float, float] | None = None
    """Where the engineer starts from, ``[lat, lon]`` (WGS-84): routing distance."""
    shifts: list[str] = []
    """When on duty, e.g. ``["mon-fri 08:00-18:00", "sat 22:00-06:00"]`` (the configured time
    zone; a range over midnight belongs to its first day). Empty: the team's shifts, and
    with none there, always on duty."""

    @field_validator("base")
    @classmethod
    def _coordinates(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not (-90 <= v[0] <= 90 and -180 <= v[1] <= 180):
            raise ValueError("must be [lat, lon] with lat in -90…90 and lon in -180…180")
        return v

    @field_validator("shifts")
    @classmethod
    def _shifts(cls, v: list[str]) -> list[str]:
        for text in v:
            parse_shift(text)
        return v

    @field_validator("identities")
    @classmethod
    def _identity_refs(cls, v: list[str]) -> list[str]:
        for ref in v:
            m = _REF.match(ref)
            if not m or m["kind"] not in PLATFORMS:
                raise ValueError(f"{ref!r} is not platform:id with platform in {PLATFORMS}")
        return v


class Team(_Section):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    members: list[str] = []
    lead: str | None = None
    chats: list[str] = []
    """Group chats where this team's cards go: ``slack:C1``, ``telegram:-100…``,
    ``wecom-robot:<key>``, ``dingtalk:<openConversationId>``, ``web:team``."""
    calendar: str | None = None
    """Business hours of this team's SLA clocks (a name in ``[sla.calendars]``, or the built-in
    ``business`` / ``24x7``); default ``sla.default_calendar``. A policy's own calendar wins."""
    shifts: list[str] = []
    """Duty shifts of the members who have none of their own (see ``people.shifts``)."""

    @field_validator("shifts")
    @classmethod
    def _shifts(cls, v: list[str]) -> list[str]:
        for text in v:
            parse_shift(text)
        return v

    @field_validator("chats")
    @classmethod
    def _chat_refs(cls, v: list[str]) -> list[str]:
        for ref in v:
            m = _REF.match(ref)
            if not m or m["kind"] not in CHAT_KINDS:
                raise ValueError(f"{ref!r} is not kind:id with kind in {CHAT_KINDS}")
        return v


class SimilarSettings(_Section):
    """Similar past cases on the engineer's card (``bot/nlp/similar.py``): BM25 over the
    words of resolved and closed tickets, held in memory by each worker."""

    enabled: bool = True
    top_k: int = Field(3, ge=1, le=10)
    """How many past cases a card shows at most."""
    min_score: float = Field(1.0, ge=0)
    """A past case scoring this or less (BM25) is not shown: one shared common word is not
    similarity."""
    refresh_seconds: float = Field(60.0, gt=0)
    """How often a worker reads cases other workers resolved, closed or reopened (its own it
    knows at once)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GONGDAN_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    locale: Literal["zh", "en"] = "zh"
    """Default language of texts for people."""
    timezone: str = "Asia/Shanghai"
    """Times are stored in UTC and shown in this zone."""
    public_url: str = "http://127.0.0.1:8080"
    """How people reach this hub (links in messages, Telegram's webhook)."""
    admin_chat: str | None = None
    """Where alerts go (dead letters), e.g. ``web:admin`` or ``slack:C0ADMIN``."""
    database_url: str | None = Field(None, exclude=True)
    """Shorthand for ``database.url`` (``GONGDAN_DATABASE_URL``)."""

    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    security: SecuritySettings = SecuritySettings()
    audit: AuditSettings = AuditSettings()
    limits: LimitSettings = LimitSettings()
    webchat: WebchatSettings = WebchatSettings()
    outbox: OutboxSettings = OutboxSettings()
    engine: EngineSettings = EngineSettings()
    tickets: TicketSettings = TicketSettings()
    intake: IntakeSettings = IntakeSettings()
    slack: SlackSettings = SlackSettings()
    telegram: TelegramSettings = TelegramSettings()
    wecom: WecomSettings = WecomSettings()
    dingtalk: DingtalkSettings = DingtalkSettings()
    asr: AsrSettings = AsrSettings()
    sla: SlaSettings = SlaSettings()
    routing: RoutingSettings = RoutingSettings()
    similar: SimilarSettings = SimilarSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    dashboard: DashboardSettings = DashboardSettings()
    report: ReportSettings = ReportSettings()
    csat: CsatSettings = CsatSettings()
    progress: ProgressSettings = ProgressSettings()  # /t/<token> (bot/progress_settings.py)
    parts: PartsSettings = PartsSettings()
    closure: ClosureSettings = ClosureSettings()
    people: list[Person] = []
    teams: list[Team] = []

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        if self.database_url:
            self.database = DatabaseSettings(url=self.database_url)
        problems: list[str] = []
        ids = [p.id for p in self.people]
        for dup in sorted({i for i in ids if ids.count(i) > 1}):
            problems.append(f"people: id {dup!r} appears twice")
        owners: dict[str, str] = {}
        for p in self.people:
            for ref in p.identities:
                if ref in owners and owners[ref] != p.id:
                    problems.append(
                        f"people: identity {ref!r} belongs to {owners[ref]!r} and {p.id!r}"
                    )
                owners[ref] = p.id
        known = set(ids)
        for i, t in enumerate(self.teams):
            for m in t.members:
                if m not in known:
                    problems.append(f"teams.{i}.members: unknown person {m!r}")
            if t.lead is not None and t.lead not in known:
                problems.append(f"teams.{i}.lead: unknown person {t.lead!r}")
            if t.calendar is not None and t.calendar not in self.sla.calendar_names():
                problems.append(f"teams.{i}.calendar: unknown calendar {t.calendar!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _CONFIG_PATH.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


#: The TOML file the settings being built read (set only inside ``load_settings``).
_CONFIG_PATH: ContextVar[Path | None] = ContextVar("gongdan_config_path", default=None)


def config_path(environ: dict[str, str] | None = None) -> Path | None:
    env = os.environ if environ is None else environ
    if env.get("GONGDAN_CONFIG"):
        return Path(env["GONGDAN_CONFIG"])
    default = Path("gongdan.toml")
    return default if default.exists() else None


def _describe(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        out.append(f"{key}: {msg}")
    return out


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read and validate the configuration; raise ``ConfigError`` naming every bad key."""
    path = path if path is not None else config_path()
    if path is not None:
        if not path.is_file():
            raise ConfigError([f"config file {str(path)!r} does not exist"])
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    token = _CONFIG_PATH.set(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        where = f" ({path})" if path else ""
        raise ConfigError([f"{p}{where}" for p in _describe(exc)]) from exc
    finally:
        _CONFIG_PATH.reset(token)
