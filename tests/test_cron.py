"""Schedules mean what cron(8) means: weekday numbers from Sunday, a day OR a weekday."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from digest.cron import cron_trigger, cron_weekdays


def fire_days(expression: str, start: date, count: int = 10) -> list[date]:
    trigger = cron_trigger(expression, "UTC")
    moment = datetime.combine(start, datetime.min.time(), UTC) - timedelta(seconds=1)
    days = []
    previous = None
    for _ in range(count):
        moment = trigger.get_next_fire_time(previous, moment)
        assert moment is not None
        days.append(moment.date())
        previous = moment
        moment += timedelta(seconds=1)
    return days


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("0", "sun"),
        ("7", "sun"),
        ("1", "mon"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0,6", "sun,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("5-7", "sun,fri,sat"),
        ("mon-fri", "mon,tue,wed,thu,fri"),
        ("Sun", "sun"),
        ("1/3", "mon,thu"),
        ("*", "*"),
    ],
)
def test_weekday_numbers_count_from_sunday(field: str, names: str) -> None:
    assert cron_weekdays(field) == names


@pytest.mark.parametrize("field", ["8", "-1", "mo", "friday", "5-1", "*-2", "1-", "*/0", ""])
def test_weekdays_cron_would_not_take_are_refused(field: str) -> None:
    with pytest.raises(ValueError):
        cron_weekdays(field)


def test_weekday_1_is_monday() -> None:
    # 2026-01-05 is a Monday; APScheduler's own from_crontab would fire on Tuesdays.
    assert fire_days("0 7 * * 1", date(2026, 1, 1), 3) == [date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 19)]
    assert all(day.weekday() == 6 for day in fire_days("0 7 * * 0", date(2026, 1, 1), 4))


def test_a_day_of_the_month_and_a_weekday_fire_on_either() -> None:
    days = fire_days("0 7 1 * mon", date(2026, 1, 1), 6)
    assert days == [
        date(2026, 1, 1),
        date(2026, 1, 5),
        date(2026, 1, 12),
        date(2026, 1, 19),
        date(2026, 1, 26),
        date(2026, 2, 1),
    ]


def test_a_day_of_the_month_alone_fires_on_that_day_only() -> None:
    assert fire_days("30 6 15 * *", date(2026, 1, 1), 2) == [date(2026, 1, 15), date(2026, 2, 15)]
