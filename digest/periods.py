"""The periods roll-ups cover: ISO weeks, calendar months, and the days a reader missed.

A period is a run of listing days (dates, as the listing has them), named by a key that
is also its file name and part of its feed entry's id:

- a week: `2025-W52`, an ISO 8601 week, Monday to Sunday. Week 1 of a year is the week
  holding its first Thursday, so `2026-W01` runs from Monday 29 December 2025 to Sunday
  4 January 2026, and `2025-W52` ends on Sunday 28 December 2025;
- a month: `2025-12`;
- the days a daily reader missed (a "what you missed" message): `2025-12-29--2026-01-02`,
  ISO 8601's interval with its alternative separator `--`, which is safe in file names.

Pure: dates in, periods out. No clock, no time zone (the caller says which day it is), no
I/O, nothing about who reads what (`lifecycle` and `rollups` say that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum


class PeriodKind(StrEnum):
    WEEK = "week"
    MONTH = "month"
    MISSED = "missed"  # the days of a daily reader's "what you missed" message


_WEEK = re.compile(r"(\d{4})-W(\d{2})")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_SPAN = re.compile(r"(\d{4}-\d{2}-\d{2})--(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A run of listing days, `first` to `last` (both included), of one kind."""

    first: date
    last: date
    kind: PeriodKind

    @property
    def key(self) -> str:
        """`2025-W52`, `2025-12` or `2025-12-29--2026-01-02` (see the module docstring)."""
        if self.kind is PeriodKind.WEEK:
            year, week, _ = self.first.isocalendar()
            return f"{year}-W{week:02d}"
        if self.kind is PeriodKind.MONTH:
            return f"{self.first.year}-{self.first.month:02d}"
        return f"{self.first.isoformat()}--{self.last.isoformat()}"

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def previous(self) -> Period:
        """The week or month just before this one."""
        return period_of(self.kind, self.first - timedelta(days=1))

    def following(self) -> Period:
        """The week or month just after this one."""
        return period_of(self.kind, self.last + timedelta(days=1))


def week_of(day: date) -> Period:
    """The ISO week holding `day`."""
    monday = day - timedelta(days=day.weekday())
    return Period(monday, monday + timedelta(days=6), PeriodKind.WEEK)


def month_of(day: date) -> Period:
    """The calendar month holding `day`."""
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return Period(first, following - timedelta(days=1), PeriodKind.MONTH)


def period_of(kind: PeriodKind, day: date) -> Period:
    """The week or month holding `day` (`ValueError` for the days a reader missed, which
    are a span, not a calendar period)."""
    if kind is PeriodKind.WEEK:
        return week_of(day)
    if kind is PeriodKind.MONTH:
        return month_of(day)
    raise ValueError(f"no calendar period of kind {kind!r}")


def missed_days(first: date, last: date) -> Period:
    """The span of days a reader missed, `first` to `last`."""
    if last < first:
        raise ValueError(f"{last} is before {first}")
    return Period(first, last, PeriodKind.MISSED)


def parse_period(text: str) -> Period:
    """The period a key names (`2025-W52`, `2025-12`, `2025-12-29--2026-01-02`); `ValueError`
    saying what a key looks like when it names none (`2025-W54`, `2025-13`)."""
    text = text.strip()
    try:
        if match := _WEEK.fullmatch(text):
            return week_of(date.fromisocalendar(int(match[1]), int(match[2]), 1))
        if match := _MONTH.fullmatch(text):
            return month_of(date(int(match[1]), int(match[2]), 1))
        if match := _SPAN.fullmatch(text):
            return missed_days(date.fromisoformat(match[1]), date.fromisoformat(match[2]))
    except ValueError:
        pass
    raise ValueError(
        f"{text!r} is not a period like 2025-W52 (an ISO week), 2025-12 (a month) or 2025-12-29--2026-01-02"
    )
