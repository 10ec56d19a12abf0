"""What people see of SLA clocks: the API's view, lines on nags, deadlines on cards."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.sla.clocks import remaining
from bot.sla.policy import Policies
from bot.texts import local_time, say, short_time, span
from bot.ticket_labels import clock_label
from bot.tickets import ClockKind, TicketState
from storage.records import Clock

__all__ = ["clock_line", "clock_lines", "clock_status", "deadline_summary", "earliest_due_text"]


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def clock_status(clock: Clock, now: datetime, policies: Policies) -> dict[str, Any]:
    """One clock for ``GET /api/tickets/{id}``."""
    cal = policies.calendar(clock.calendar)
    left = remaining(clock, now, cal)
    return {
        "kind": clock.kind,
        "state": clock.state,
        "policy": clock.policy,
        "calendar": clock.calendar,
        "budget_seconds": round(clock.budget_s),
        "due": _iso(clock.due_at),
        "remaining_business_seconds": round(left),
        "paused": clock.running_since is None and clock.met_at is None,
        "breached": clock.breached_at is not None,
        "breached_at": _iso(clock.breached_at),
        "met_at": _iso(clock.met_at),
        "escalation_step": clock.step,
        "escalation_stopped_at": _iso(clock.escalation_stopped_at),
        "next_check": _iso(clock.next_at),
    }


def _name(clock: Clock, locale: str) -> str:
    state = TicketState(clock.state) if clock.state else None
    return clock_label(ClockKind(clock.kind), locale, state)


def clock_line(clock: Clock, now: datetime, policies: Policies, locale: str, tz: ZoneInfo) -> str:
    """ "响应已超时 20 分钟（应于 12-02 10:15）" and friends."""
    name = _name(clock, locale)
    if clock.met_at is not None:
        key = "sla.met_late" if clock.breached_at is not None else "sla.met"
        return say(key, locale, clock=name)
    cal = policies.calendar(clock.calendar)
    left = remaining(clock, now, cal)
    if clock.running_since is None:
        return say("sla.paused", locale, clock=name, left=span(max(left, 0), locale))
    due = local_time(clock.due_at, tz) if clock.due_at else "—"
    if left <= 0 or clock.breached_at is not None:
        return say("sla.overdue", locale, clock=name, over=span(-left, locale), due=due)
    return say("sla.due_in", locale, clock=name, left=span(left, locale), due=due)


def clock_lines(
    clocks: Sequence[Clock], now: datetime, policies: Policies, locale: str, tz: ZoneInfo
) -> list[str]:
    """The lines of the clocks still worth a word (running, paused, or met late)."""
    return [
        clock_line(c, now, policies, locale, tz)
        for c in clocks
        if c.met_at is None or c.breached_at is not None
    ]


def deadline_summary(clocks: Sequence[Clock], now: datetime, locale: str, tz: ZoneInfo) -> str:
    """For a ticket card: "响应 10:10 前 · 到场 12:00 前", "响应已超时（10:10）"… — absolute
    times, so the card stays true between its updates (a breach does not redraw every copy
    of every card: the nags say it, and the next change of the ticket redraws them)."""
    parts = []
    for c in clocks:
        if c.met_at is not None:
            continue
        name = _name(c, locale)
        if c.running_since is None:
            parts.append(say("sla.short_paused", locale, clock=name))
        elif c.due_at is not None:
            at = short_time(c.due_at, tz, now)
            key = "sla.short_overdue" if c.breached_at is not None else "sla.short_due"
            parts.append(say(key, locale, clock=name, at=at))
    return " · ".join(parts)


def earliest_due_text(clocks: Sequence[Clock], tz: ZoneInfo) -> str:
    dues = [c.due_at for c in clocks if c.due_at is not None]
    return local_time(min(dues), tz) if dues else "—"
