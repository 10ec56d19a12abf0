"""Business calendars: the day rule (weekdays, China's holidays and 调休 make-up workdays,
configured extras) and business-time arithmetic (``add`` / ``between``), built through the
same ``[sla]`` settings path production uses."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.config import load_settings
from bot.errors import ConfigError
from bot.sla import calendar as calendar_module
from bot.sla.calendar import BusinessCalendar
from bot.sla.policy import Policies

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0, tz: ZoneInfo = SHANGHAI) -> datetime:
    """A local wall-clock time as an aware UTC datetime."""
    return datetime(y, m, d, h, mi, tzinfo=tz).astimezone(UTC)


def calendar(name: str = "business", **cfg: Any) -> BusinessCalendar:
    """A calendar as production compiles it: ``[sla.calendars.<name>]`` → ``Policies``."""
    sla: dict[str, Any] = {"calendars": {name: cfg}} if cfg else {}
    return Policies(load_settings(None, sla=sla)).calendar(name)


@pytest.fixture
def business() -> BusinessCalendar:
    return calendar("business")


# --------------------------------------------------------------------- business hours


def test_two_hours_from_friday_afternoon_are_due_monday_ten(business: BusinessCalendar) -> None:
    friday = at(2026, 12, 4, 17)  # Friday 17:00 local
    monday = at(2026, 12, 7, 10)
    assert business.add(friday, 2 * HOUR) == monday
    assert business.between(friday, monday) == 2 * HOUR
    assert business.between(friday, at(2026, 12, 7, 9)) == 1 * HOUR  # the weekend is free


def test_national_day_2026_is_skipped(business: BusinessCalendar) -> None:
    assert business.is_workday(date(2026, 9, 30))
    assert not any(business.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert business.is_workday(date(2026, 10, 8))  # Thursday, back at work
    start = at(2026, 9, 30, 17)  # Wednesday 17:00: one hour left that day
    due = business.add(start, 3 * HOUR)
    assert due == at(2026, 10, 8, 11) == datetime(2026, 10, 8, 3, 0, tzinfo=UTC)
    assert business.between(start, due) == 3 * HOUR


def test_mid_autumn_2026_weekday_is_off(business: BusinessCalendar) -> None:
    assert not business.is_workday(date(2026, 9, 25))  # a Friday, but a holiday
    assert business.add(at(2026, 9, 24, 17), 2 * HOUR) == at(2026, 9, 28, 10)


def test_tiaoxiu_weekend_days_are_workdays(business: BusinessCalendar) -> None:
    make_up_saturday, ordinary_saturday, make_up_sunday = (
        date(2026, 10, 10),
        date(2026, 10, 17),
        date(2026, 9, 20),
    )
    assert business.is_workday(make_up_saturday)
    assert not business.is_workday(ordinary_saturday)
    assert business.is_workday(make_up_sunday)
    assert business.between(at(2026, 10, 10), at(2026, 10, 11)) == 9 * HOUR
    assert business.between(at(2026, 10, 17), at(2026, 10, 18)) == 0
    assert business.is_open(at(2026, 10, 10, 9))
    assert not business.is_open(at(2026, 10, 17, 9))
    # Friday 17:00 + 2h lands on the make-up Saturday, not on Monday
    assert business.add(at(2026, 10, 9, 17), 2 * HOUR) == at(2026, 10, 10, 10)
    assert business.add(at(2026, 9, 19, 12), 1 * HOUR) == at(2026, 9, 20, 10)  # Sat → Sun


@pytest.mark.parametrize(
    "day", [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9)]
)
def test_other_2026_make_up_days(business: BusinessCalendar, day: date) -> None:
    assert day.weekday() >= 5
    assert business.is_workday(day)


# -------------------------------------------------------------------------- other spans


def test_lunch_break_is_not_working_time() -> None:
    cal = calendar("factory", hours=["08:30-12:00", "13:00-17:30"])
    assert cal.day_seconds == 8 * HOUR
    start = at(2026, 12, 7, 11)  # Monday 11:00
    assert cal.add(start, 2 * HOUR) == at(2026, 12, 7, 14)
    assert cal.between(at(2026, 12, 7, 12), at(2026, 12, 7, 13)) == 0
    assert not cal.is_open(at(2026, 12, 7, 12, 30))
    assert cal.add(at(2026, 12, 7, 12, 30), 0) == at(2026, 12, 7, 13)
    # end of Monday → next morning: 17:00 + 1h = Tue 09:00
    assert cal.add(at(2026, 12, 7, 17), 1 * HOUR) == at(2026, 12, 8, 9)
    assert cal.seconds_of(1, 0) == 8 * HOUR


def test_round_the_clock_config_is_always() -> None:
    week = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    cal = calendar("round", hours=["00:00-24:00"], weekdays=week, china_holidays=False)
    assert cal.always
    assert calendar("24x7").always
    assert not calendar("business").always
    start = at(2026, 9, 30, 23)  # into National Day: nothing is off
    assert cal.add(start, 30 * HOUR) == start + timedelta(hours=30)
    assert cal.between(start, start + timedelta(days=8)) == 8 * 24 * HOUR
    assert cal.is_open(at(2026, 10, 3, 3))
    assert cal.seconds_of(1, 0) == 24 * HOUR


def test_round_the_clock_with_china_holidays_is_not_always() -> None:
    week = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    cal = calendar("ops", hours=["00:00-24:00"], weekdays=week)
    assert not cal.always
    assert cal.between(at(2026, 9, 30), at(2026, 10, 9)) == 2 * 24 * HOUR  # 09-30 and 10-08


STARTS = [
    at(2026, 12, 4, 17),  # Friday afternoon
    at(2026, 12, 5, 11),  # Saturday (closed)
    at(2026, 9, 30, 8),  # before opening, on the eve of National Day
    at(2026, 10, 9, 18),  # the closing moment, before a make-up Saturday
    at(2026, 12, 7, 12, 30),  # lunch (on the factory calendar)
]
BUDGETS = [1.0, 900.0, 2 * HOUR, 9 * HOUR, 11.5 * HOUR, 40 * HOUR]


@pytest.mark.parametrize("cfg", [{}, {"hours": ["08:30-12:00", "13:00-17:30"]}])
def test_add_and_between_agree(cfg: dict[str, Any]) -> None:
    cal = calendar("cal", **cfg) if cfg else calendar("business")
    for start in STARTS:
        for budget in BUDGETS:
            due = cal.add(start, budget)
            assert due > start
            assert cal.between(start, due) == pytest.approx(budget), (start, budget)


# ----------------------------------------------------------------- a year without data


def test_2027_falls_back_to_weekdays_and_configured_days(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calendar_module, "_warned_years", set())  # once per process
    cal = calendar(
        "business",
        holidays=["2027-10-01"],  # a Friday, off by configuration
        workdays=["2027-10-09"],  # a Saturday, on by configuration
    )
    with caplog.at_level(logging.WARNING, logger="bot.sla.calendar"):
        assert cal.is_workday(date(2027, 10, 4))  # an ordinary Monday
        assert not cal.is_workday(date(2027, 10, 2))  # an ordinary Saturday
        assert not cal.is_workday(date(2027, 10, 1))
        assert cal.is_workday(date(2027, 10, 9))
        # Thursday 17:00 + 2h: the configured Friday off is skipped (and the weekend)
        assert cal.add(at(2027, 9, 30, 17), 2 * HOUR) == at(2027, 10, 4, 10)
        # Friday 17:00 + 2h: the configured Saturday works
        assert cal.add(at(2027, 10, 8, 17), 2 * HOUR) == at(2027, 10, 9, 10)
        assert cal.between(at(2027, 1, 1), at(2027, 2, 1)) > 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2027" in warnings[0].getMessage()
    assert "'business'" in warnings[0].getMessage()


# ------------------------------------------------------------------------- boundaries


def test_is_open_start_inclusive_end_exclusive(business: BusinessCalendar) -> None:
    monday = (2026, 12, 7)
    assert not business.is_open(at(*monday, 8, 59))
    assert business.is_open(at(*monday, 9))
    assert business.is_open(at(*monday, 17, 59))
    assert not business.is_open(at(*monday, 18))
    assert not business.is_open(at(2026, 12, 5, 10))  # Saturday


def test_add_zero_is_the_next_open_moment(business: BusinessCalendar) -> None:
    assert business.add(at(2026, 12, 7, 10), 0) == at(2026, 12, 7, 10)  # open: now
    assert business.add(at(2026, 12, 7, 18), 0) == at(2026, 12, 8, 9)  # closing time
    assert business.add(at(2026, 12, 4, 20), 0) == at(2026, 12, 7, 9)  # Friday night
    assert business.add(at(2026, 9, 30, 18), 0) == at(2026, 10, 8, 9)  # National Day
    # a budget that ends exactly at closing time is due then, not next morning
    assert business.add(at(2026, 12, 7, 17), HOUR) == at(2026, 12, 7, 18)


# ------------------------------------------------------------------------ another zone


def test_berlin_hours_stay_local_across_dst_end() -> None:
    cal = calendar("berlin", timezone="Europe/Berlin", china_holidays=False)
    # Friday 23rd: CEST (UTC+2); Monday 26th: CET (UTC+1)
    assert at(2026, 10, 23, 9, tz=BERLIN) == datetime(2026, 10, 23, 7, tzinfo=UTC)
    assert at(2026, 10, 26, 9, tz=BERLIN) == datetime(2026, 10, 26, 8, tzinfo=UTC)
    assert cal.is_open(datetime(2026, 10, 26, 8, tzinfo=UTC))
    assert not cal.is_open(datetime(2026, 10, 26, 7, 30, tzinfo=UTC))  # 08:30 local
    assert cal.is_open(datetime(2026, 10, 26, 16, 59, tzinfo=UTC))  # 17:59 local
    assert not cal.is_open(datetime(2026, 10, 26, 17, tzinfo=UTC))  # 18:00 local
    friday = at(2026, 10, 23, 17, tz=BERLIN)
    assert cal.add(friday, 2 * HOUR) == at(2026, 10, 26, 10, tz=BERLIN)
    assert cal.add(friday, 2 * HOUR) == datetime(2026, 10, 26, 9, tzinfo=UTC)
    assert cal.between(friday, at(2026, 10, 26, 10, tz=BERLIN)) == 2 * HOUR
    assert cal.is_workday(date(2026, 10, 1))  # china_holidays = false: a plain Thursday


def test_berlin_dst_sunday_has_25_hours() -> None:
    cal = calendar(
        "weekend",
        timezone="Europe/Berlin",
        china_holidays=False,
        hours=["00:00-24:00"],
        weekdays=["sat", "sun"],
    )
    assert not cal.always
    assert cal.between(at(2026, 10, 25, tz=BERLIN), at(2026, 10, 26, tz=BERLIN)) == 25 * HOUR
    assert cal.add(at(2026, 10, 24, tz=BERLIN), 48 * HOUR) == at(2026, 10, 25, 23, tz=BERLIN)


# ----------------------------------------------------------------------- config errors


@pytest.mark.parametrize(
    ("span", "why"),
    [("18:00-09:00", "ends before it starts"), ("25:00-26:00", "is not a time of day")],
)
def test_bad_span_is_a_config_error_naming_the_key(span: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, sla={"calendars": {"night": {"hours": ["09:00-12:00", span]}}})
    (problem,) = err.value.problems
    assert problem.startswith("sla.calendars.night.hours: ")
    assert repr(span) in problem and why in problem


def test_unknown_calendar_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, sla={"policies": {"P2": {"calendar": "nope"}}})
    assert any("policies.P2.calendar" in p and "'nope'" in p for p in err.value.problems)


# ---------------------------------------------------------------------------- span order


def test_single_digit_hour_spans_are_ordered_by_time() -> None:
    cal = calendar("short", hours=["9:00-12:00", "13:00-18:00"])
    start = at(2026, 12, 7, 10)  # Monday 10:00: two hours before lunch, then one after
    due = cal.add(start, 3 * HOUR)
    assert cal.between(start, due) == 3 * HOUR
    assert due == at(2026, 12, 7, 14)


def test_overlapping_spans_are_refused() -> None:
    with pytest.raises(ConfigError) as err:
        calendar("overlap", hours=["09:00-12:00", "11:00-14:00"])
    assert any("overlap" in p for p in err.value.problems)
