"""Duty shifts: ``"mon-fri 08:00-18:00"``, ``"sat,sun 09:00-13:00"``, ``"22:00-06:00"``.

A shift is optional days (``mon``…``sun``, ranges with ``-``, lists with ``,``; none: every
day) and a time range in the configured time zone. A range whose end is not after its start
runs over midnight and belongs to the day it starts on (``fri 22:00-06:00`` is Friday night
until Saturday 06:00). ``00:00-24:00`` is the whole day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["DAYS", "Shift", "parse_shift"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SHIFT = re.compile(
    r"^\s*(?:(?P<days>[a-z,\-\s]+?)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


@dataclass(frozen=True, slots=True)
class Shift:
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight
    end: int  # minutes after midnight; ≤ start: the next day
    text: str  # as configured

    def covers(self, local: datetime) -> bool:
        """Is ``local`` (a time in the configured zone) inside this shift?"""
        minute = local.hour * 60 + local.minute
        if self.end > self.start:
            return local.weekday() in self.days and self.start <= minute < self.end
        if local.weekday() in self.days and minute >= self.start:
            return True  # the evening part
        yesterday = (local - timedelta(days=1)).weekday()
        return yesterday in self.days and minute < self.end  # the part after midnight


def _minutes(text: str) -> int:
    hours, minutes = (int(x) for x in text.split(":"))
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise ValueError(f"{text!r} is not a time of day")
    return hours * 60 + minutes


def _days(text: str | None) -> frozenset[int]:
    if not text:
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"{part!r} is not a day ({', '.join(DAYS)}) or a range of days")
        a, b = DAYS.index(first), DAYS.index(last or first)
        out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(out)


def parse_shift(text: str) -> Shift:
    """A shift from its configured text; ``ValueError`` naming what is wrong."""
    m = _SHIFT.match(text.lower())
    if m is None:
        raise ValueError(f"{text!r} is not a shift like 'mon-fri 08:00-18:00' or '22:00-06:00'")
    start, end = _minutes(m["start"]), _minutes(m["end"])
    if start == 24 * 60:
        raise ValueError(f"{text!r}: a shift cannot start at 24:00")
    return Shift(_days(m["days"]), start, end, text.strip())
