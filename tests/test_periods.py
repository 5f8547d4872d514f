"""Periods of roll-ups: ISO weeks across the year boundary, months, spans of missed days, their keys."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.lifecycle import due_periods
from digest.periods import Period, PeriodKind, missed_days, month_of, parse_period, period_of, week_of


def test_iso_week_2026_w01_starts_in_december_2025() -> None:
    week = week_of(date(2025, 12, 31))
    assert (week.key, week.first, week.last) == ("2026-W01", date(2025, 12, 29), date(2026, 1, 4))
    assert week_of(date(2026, 1, 4)) == week and week_of(date(2026, 1, 5)).key == "2026-W02"
    assert week_of(date(2025, 12, 28)).key == "2025-W52"
    assert week.previous().key == "2025-W52" and week.previous().following() == week
    assert date(2025, 12, 29) in week and date(2026, 1, 5) not in week and len(week.days()) == 7


def test_months_and_the_year_boundary() -> None:
    december = month_of(date(2025, 12, 31))
    assert (december.key, december.first, december.last) == ("2025-12", date(2025, 12, 1), date(2025, 12, 31))
    assert december.following().key == "2026-01" and december.following().previous() == december
    assert month_of(date(2028, 2, 10)).last == date(2028, 2, 29)  # a leap year
    assert month_of(date(2026, 2, 10)).last == date(2026, 2, 28)


def test_the_roll_ups_due_on_a_day_are_the_week_and_month_before() -> None:
    # The first tick of 2026-W02 (Monday 5 January) is due the week just ended, and the month.
    assert [p.key for p in due_periods(date(2026, 1, 5))] == ["2026-W01", "2025-12"]
    # On New Year's Day the week holding it is 2026-W01, which has not ended: the one due is 2025-W52.
    assert [p.key for p in due_periods(date(2026, 1, 1))] == ["2025-W52", "2025-12"]
    assert [p.key for p in due_periods(date(2025, 12, 31))] == ["2025-W52", "2025-11"]


@pytest.mark.parametrize(
    ("key", "first", "last"),
    [
        ("2025-W52", date(2025, 12, 22), date(2025, 12, 28)),
        ("2026-W01", date(2025, 12, 29), date(2026, 1, 4)),
        ("2026-W53", date(2026, 12, 28), date(2027, 1, 3)),  # 2026 has 53 ISO weeks
        ("2025-12", date(2025, 12, 1), date(2025, 12, 31)),
        ("2025-12-29--2026-01-02", date(2025, 12, 29), date(2026, 1, 2)),
    ],
)
def test_keys_name_their_periods(key: str, first: date, last: date) -> None:
    period = parse_period(key)
    assert (period.first, period.last, period.key) == (first, last, key)


@pytest.mark.parametrize("key", ["2025-W53", "2025-W00", "2025-13", "2025-00", "2025-W5", "2025-12-31--2025-12-01", ""])
def test_a_key_that_names_no_period_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="is not a period like 2025-W52"):
        parse_period(key)


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2999, 12, 31)), st.sampled_from(list(PeriodKind)[:2]))
def test_periods_hold_their_day_tile_the_calendar_and_keys_name_them(day: date, kind: PeriodKind) -> None:
    period = period_of(kind, day)
    assert day in period and parse_period(period.key) == period
    assert period.previous().last + timedelta(days=1) == period.first
    assert period.following().first - timedelta(days=1) == period.last
    assert period.first.weekday() == 0 if kind is PeriodKind.WEEK else period.first.day == 1


def test_missed_days_are_a_span() -> None:
    span = missed_days(date(2025, 12, 30), date(2026, 1, 2))
    assert span == Period(date(2025, 12, 30), date(2026, 1, 2), PeriodKind.MISSED)
    assert span.key == "2025-12-30--2026-01-02" and len(span.days()) == 4
    with pytest.raises(ValueError):
        missed_days(date(2026, 1, 2), date(2025, 12, 30))
    with pytest.raises(ValueError):
        period_of(PeriodKind.MISSED, date(2026, 1, 2))
