"""Business calendars: when SLA clocks run, and business-time arithmetic on them.

A calendar is working spans of a working day in a time zone, ordinary weekdays, China's public
holidays with their 调休 make-up workdays (library ``chinese-calendar``), and extra days off or
on from the config. ``add(start, seconds)`` is the moment ``seconds`` of working time after
``start``; ``between(a, b)`` the working seconds in ``[a, b)``.

Written here rather than taken from a business-hours library because the day rule is the part
that matters (holiday *and* make-up workday, per calendar) and the arithmetic is 60 lines.
Years chinese-calendar does not know yet fall back to the weekday rule plus the configured
extras, with one warning per year in the log.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

from bot.sla.settings import WEEKDAYS, CalendarSettings

__all__ = ["BusinessCalendar"]

log = logging.getLogger(__name__)

#: How far ahead ``add`` looks for working time before it calls a calendar broken.
_HORIZON_DAYS = 3 * 366
_warned_years: set[int] = set()


class BusinessCalendar:
    def __init__(self, name: str, cfg: CalendarSettings, default_tz: str) -> None:
        self.name = name
        self.tz = ZoneInfo(cfg.timezone or default_tz)
        self._spans = cfg.spans()
        self._weekdays = frozenset(WEEKDAYS.index(d) for d in cfg.weekdays)
        self._china = cfg.china_holidays
        self._off = frozenset(cfg.holidays)
        self._on = frozenset(cfg.workdays)
        self.always = (
            self._spans == [(time(0), None)]
            and len(self._weekdays) == 7
            and not self._china
            and not self._off
        )
        self.fingerprint = hashlib.sha256(
            f"{cfg.model_dump_json()}|{self.tz.key}".encode()
        ).hexdigest()[:16]
        self.day_seconds = sum(
            ((_seconds(end) if end else 86400.0) - _seconds(start)) for start, end in self._spans
        )
        self._day = lru_cache(maxsize=4096)(self._day_spans)

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.name!r})"

    # ------------------------------------------------------------------------- the day rule

    def is_workday(self, day: date) -> bool:
        if day in self._on:
            return True
        if day in self._off:
            return False
        if self._china:
            try:
                off, name = chinese_calendar.get_holiday_detail(day)
            except NotImplementedError:
                if day.year not in _warned_years:
                    _warned_years.add(day.year)
                    log.warning(
                        "chinese-calendar has no holidays for %d yet: calendar %r uses its "
                        "weekdays plus the configured holidays/workdays for that year",
                        day.year,
                        self.name,
                    )
            else:
                if name is not None:  # a statutory holiday, or a 调休 make-up workday
                    return not off
        return day.weekday() in self._weekdays

    def _day_spans(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The day's working spans as aware UTC datetimes."""
        if not self.is_workday(day):
            return ()
        out = []
        for start, end in self._spans:
            s = datetime.combine(day, start, self.tz)
            e = (
                datetime.combine(day + timedelta(days=1), time(0), self.tz)
                if end is None
                else datetime.combine(day, end, self.tz)
            )
            out.append((s.astimezone(UTC), e.astimezone(UTC)))
        return tuple(out)

    # ---------------------------------------------------------------------------- arithmetic

    def is_open(self, at: datetime) -> bool:
        if self.always:
            return True
        return any(s <= at < e for s, e in self._day(at.astimezone(self.tz).date()))

    def add(self, start: datetime, seconds: float) -> datetime:
        """The moment ``seconds`` of working time after ``start`` (0: the next open moment)."""
        if self.always:
            return start + timedelta(seconds=seconds)
        remaining = max(seconds, 0.0)
        day = start.astimezone(self.tz).date() - timedelta(days=1)  # spans may cross midnight
        for _ in range(_HORIZON_DAYS):
            for s, e in self._day(day):
                if e <= start:
                    continue
                s = max(s, start)
                available = (e - s).total_seconds()
                if remaining < available or (remaining == available and remaining > 0):
                    return s + timedelta(seconds=remaining)
                remaining -= available
            day += timedelta(days=1)
        raise ValueError(f"calendar {self.name!r} has no working time within three years")

    def between(self, a: datetime, b: datetime) -> float:
        """Working seconds from ``a`` to ``b`` (0 when ``b`` is not after ``a``)."""
        if b <= a:
            return 0.0
        if self.always:
            return (b - a).total_seconds()
        total = 0.0
        day = a.astimezone(self.tz).date() - timedelta(days=1)
        last = b.astimezone(self.tz).date()
        while day <= last:
            for s, e in self._day(day):
                lo, hi = max(s, a), min(e, b)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def seconds_of(self, days: float, seconds: float) -> float:
        """A configured duration in working seconds (a day is one working day here)."""
        return days * self.day_seconds + seconds


def _seconds(t: time) -> float:
    return t.hour * 3600.0 + t.minute * 60.0 + t.second
