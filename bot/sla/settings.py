"""The ``[sla]`` section: policies, overrides, escalation chains and business calendars.

Durations are written as ``"15m"``, ``"1h30m"``, ``"48h"`` or ``"1d"``; a day (``d``) is one
*working day* of the calendar the clock runs on (9 hours on the built-in ``business`` calendar,
24 hours on ``24x7``), so "1d" on a business calendar means "by this time next working day".
"""

from __future__ import annotations

import re
from datetime import date, time
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from bot.tickets import Category, Priority, TicketState

__all__ = [
    "BUILTIN_CALENDARS",
    "CalendarSettings",
    "ChainSettings",
    "ChainStep",
    "Duration",
    "SlaOverride",
    "SlaPolicy",
    "SlaSettings",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?$")


class Duration(BaseModel):
    """A span of business time: working days (of the clock's calendar) plus seconds."""

    model_config = ConfigDict(frozen=True)
    days: float = 0.0
    seconds: float = 0.0

    def __str__(self) -> str:
        out = f"{self.days:g}d" if self.days else ""
        h, rest = divmod(self.seconds, 3600)
        out += f"{h:g}h" if h else ""
        out += f"{rest / 60:g}m" if rest else ""
        return out or "0m"


def _parse_duration(value: object) -> object:
    if value in ("off", "none", None):  # a clock the policy does not keep
        return None
    if isinstance(value, Duration | dict):
        return value
    if isinstance(value, int | float):  # bare numbers are minutes
        return Duration(seconds=float(value) * 60)
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as '15m', '4h', '1h30m' or '1d'")
    m = _DURATION.match(value.strip().replace(" ", ""))
    if not m or not value.strip() or not any(m.groups()):
        raise ValueError(f"{value!r} is not a duration such as '15m', '4h', '1h30m' or '1d'")
    d, h, mins = (float(g) if g else 0.0 for g in m.groups())
    return Duration(days=d, seconds=h * 3600 + mins * 60)


DurationField = Annotated[Duration, BeforeValidator(_parse_duration)]
OptionalDuration = Annotated[Duration | None, BeforeValidator(_parse_duration)]

_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CalendarSettings(_Section):
    """When a clock runs. Outside these hours, and on days off, every clock on it pauses."""

    hours: list[str] = ["09:00-18:00"]
    """Working spans of a working day, local time, e.g. ``["08:30-12:00", "13:00-17:30"]``;
    ``["00:00-24:00"]`` for round the clock."""
    weekdays: list[Weekday] = ["mon", "tue", "wed", "thu", "fri"]
    """Working days of an ordinary week."""
    china_holidays: bool = True
    """Follow China's public holidays **and** 调休 make-up workdays (library chinese-calendar):
    a statutory holiday is off even on a weekday, a make-up Saturday is a working day."""
    holidays: list[date] = []
    """Extra days off (company holidays, or a year chinese-calendar does not know yet)."""
    workdays: list[date] = []
    """Extra working days (e.g. next year's 调休 Saturdays before the library ships them)."""
    timezone: str | None = None
    """Zone of ``hours``; default: the top-level ``timezone``."""

    @field_validator("hours")
    @classmethod
    def _spans(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one span such as '09:00-18:00'")
        minutes: list[tuple[int, int]] = []
        for span in v:
            m = _SPAN.match(span.replace(" ", ""))
            if not m:
                raise ValueError(f"{span!r} is not HH:MM-HH:MM")
            sh, sm, eh, em = (int(g) for g in m.groups())
            if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
                raise ValueError(f"{span!r} is not a time of day")
            if (eh, em) <= (sh, sm):
                raise ValueError(f"{span!r} ends before it starts")
            minutes.append((sh * 60 + sm, eh * 60 + em))
        minutes.sort()
        for (_, end), (start, _) in pairwise(minutes):
            if start < end:
                raise ValueError(f"spans {v!r} overlap")
        return v

    def spans(self) -> list[tuple[time, time | None]]:
        """(start, end) local times; end None means midnight at the end of the day."""
        out: list[tuple[time, time | None]] = []
        for span in self.hours:
            m = _SPAN.match(span.replace(" ", ""))
            assert m is not None
            sh, sm, eh, em = (int(g) for g in m.groups())
            out.append((time(sh, sm), None if eh == 24 else time(eh, em)))
        return sorted(out, key=lambda s: s[0])  # by time, not by text ("9:00" > "13:00")


#: Calendars that exist without configuration (a configured one of the same name replaces it).
BUILTIN_CALENDARS: dict[str, CalendarSettings] = {
    "24x7": CalendarSettings(hours=["00:00-24:00"], weekdays=list(WEEKDAYS), china_holidays=False),
    "business": CalendarSettings(),
}

StepKind = Literal["notify_assignee", "post_origin", "post_team", "notify_manager", "reassign"]


class ChainStep(_Section):
    wait: DurationField = Duration()
    """Time after the breach (first step) or after the previous step, on the clock's calendar."""
    do: StepKind
    """``notify_assignee`` (direct message), ``post_origin`` (the chat the ticket came from,
    @assignee; skipped for one-to-one chats), ``post_team`` (the team's group chats, @lead),
    ``notify_manager`` (direct message to the team's managers), ``reassign`` (to the next
    candidate engineer, while the ticket is not yet accepted)."""


class ChainSettings(_Section):
    steps: list[ChainStep] = Field(min_length=1)
    repeat_every: DurationField = Duration(seconds=1800)
    """After the last step, the chain starts again this long after it…"""
    repeat: int = Field(2, ge=0)
    """…this many more times. Any person acting on the ticket stops it."""


DEFAULT_CHAIN = ChainSettings(
    steps=[
        ChainStep(do="notify_assignee"),
        ChainStep(do="post_origin"),
        ChainStep(do="post_team"),
        ChainStep(wait=Duration(seconds=1800), do="notify_manager"),
    ]
)


class SlaPolicy(_Section):
    respond: OptionalDuration = None
    """First response: until the ticket is accepted (接单 or 我来处理). ``"off"``: no clock."""
    arrive: OptionalDuration = None
    """Until the engineer is on site (not for remote categories, which skip the visit)."""
    resolve: OptionalDuration = None
    """Until the ticket is closed; paused in ``pause_in`` states (awaiting the customer)."""
    stay: dict[TicketState, DurationField] = {}
    """Longest stay in one state, e.g. ``{ resolved = "4h", waiting_parts = "48h" }``."""
    warn_at: list[float] | None = None
    """Fractions of each clock at which the assignee is nagged; default ``sla.warn_at``."""
    calendar: str | None = None
    """Calendar name; default: the ticket team's calendar, else ``sla.default_calendar``."""
    chain: str | None = None
    """Escalation chain on breach; default ``sla.default_chain``."""

    @field_validator("warn_at")
    @classmethod
    def _fractions(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and any(not 0 < f < 1 for f in v):
            raise ValueError("warning thresholds are fractions between 0 and 1, e.g. 0.8")
        return sorted(v) if v is not None else None


class SlaOverride(SlaPolicy):
    """Replaces what it sets of the priority's policy, for the tickets it matches. The first
    override that matches wins, so put the specific ones first."""

    name: str = Field(min_length=1)
    priorities: list[Priority] = []
    """Only these priorities (empty: any)."""
    categories: list[Category] = []
    """Only these categories (empty: any)."""
    customers: list[str] = []
    """Only tickets from these chats or people, as ``platform:id`` — a customer's group
    (``telegram:-1001234``) or a reporter's identity (``wecom:zhangsan``). Empty: any."""


def _default_policies() -> dict[Priority, SlaPolicy]:
    return {
        Priority.P0: SlaPolicy(
            respond=Duration(seconds=900),
            arrive=Duration(seconds=2 * 3600),
            resolve=Duration(seconds=8 * 3600),
            calendar="24x7",
        ),
        Priority.P1: SlaPolicy(
            respond=Duration(seconds=3600),
            arrive=Duration(seconds=4 * 3600),
            resolve=Duration(seconds=24 * 3600),
            calendar="24x7",
        ),
        Priority.P2: SlaPolicy(
            respond=Duration(seconds=4 * 3600), arrive=Duration(days=1), resolve=Duration(days=3)
        ),
        Priority.P3: SlaPolicy(respond=Duration(days=1), resolve=Duration(days=5)),
    }


class SlaSettings(_Section):
    """Service-level clocks, nags and escalation (``bot/flows/sla.py``)."""

    enabled: bool = True
    sweep_seconds: float = Field(1.0, gt=0)
    """How often the sweep looks for what is due (an index probe; cheap)."""
    batch: int = Field(50, ge=1)
    """Tickets one sweep transaction claims at most; the next batch follows at once. Small
    batches commit, and so start sending, sooner (bench/README.md, "SLA")."""
    warn_at: list[float] = [0.5, 0.8]
    """Default warning thresholds: the assignee is nagged when this much of a clock is used."""
    pause_in: list[TicketState] = [TicketState.RESOLVED]
    """States in which the respond/arrive/resolve clocks pause (waiting for the customer)."""
    stay: dict[TicketState, DurationField] = {
        TicketState.WAITING_PARTS: Duration(seconds=48 * 3600)
    }
    """Longest stay per state for every policy (a policy's own ``stay`` adds or replaces)."""
    default_calendar: str = "business"
    default_chain: str = "default"
    snooze_minutes: int = Field(60, ge=1)
    """What the 延期 button offers (managers; a reason is required)."""
    digest_max_lines: int = Field(20, ge=1)
    """Nags folded into one digest message at most (then a second digest starts)."""
    policies: dict[Priority, SlaPolicy] = Field(default_factory=_default_policies)
    """Per priority. Defaults: P0 15m/2h/8h and P1 1h/4h/24h round the clock; P2 4h/1d/3d
    and P3 1d/–/5d on business hours (respond/arrive/resolve)."""
    overrides: list[SlaOverride] = []
    chains: dict[str, ChainSettings] = {"default": DEFAULT_CHAIN}
    calendars: dict[str, CalendarSettings] = {}

    @field_validator("warn_at")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < f < 1 for f in v):
            raise ValueError("warning thresholds are fractions between 0 and 1, e.g. 0.8")
        return sorted(v)

    @field_validator("policies")
    @classmethod
    def _every_priority(cls, v: dict[Priority, SlaPolicy]) -> dict[Priority, SlaPolicy]:
        """A configured policy changes what it sets of the default ("off" drops a clock)."""
        out = _default_policies()
        for priority, policy in v.items():
            changes = {k: getattr(policy, k) for k in policy.model_fields_set}
            out[priority] = out[priority].model_copy(update=changes)
        return out

    def calendar_names(self) -> set[str]:
        return set(BUILTIN_CALENDARS) | set(self.calendars)

    @model_validator(mode="after")
    def _references(self) -> SlaSettings:
        problems: list[str] = []
        calendars, chains = self.calendar_names(), set(self.chains)
        if self.default_calendar not in calendars:
            problems.append(f"default_calendar: unknown calendar {self.default_calendar!r}")
        if self.default_chain not in chains:
            problems.append(f"default_chain: unknown chain {self.default_chain!r}")
        named: list[tuple[str, SlaPolicy]] = [
            (f"policies.{p}", x) for p, x in self.policies.items()
        ]
        named += [(f"overrides.{i}", o) for i, o in enumerate(self.overrides)]
        for where, policy in named:
            if policy.calendar is not None and policy.calendar not in calendars:
                problems.append(f"{where}.calendar: unknown calendar {policy.calendar!r}")
            if policy.chain is not None and policy.chain not in chains:
                problems.append(f"{where}.chain: unknown chain {policy.chain!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self
