"""Schedules mean what cron(8) means: weekday numbers from Sunday, a day OR a weekday."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from digest.cron import cron_trigger, cron_weekdays, due_day, profile_trigger
from digest.models import Profile


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


def profile_fires(expression: str, zone: str, start: datetime, count: int = 3) -> list[tuple[str, date]]:
    """The next `count` ticks from `start`, each as the instant (local time, normalised) and the
    day `due_day` gives it."""
    profile = Profile(id="p", title="P", description="d", schedule=expression, timezone=zone)
    trigger = profile_trigger(profile)
    fired, previous, moment = [], None, start
    for _ in range(count):
        found = trigger.get_next_fire_time(previous, moment)
        assert found is not None
        local = found.astimezone(UTC).astimezone(ZoneInfo(zone))
        fired.append((local.isoformat(), due_day(profile, found + timedelta(seconds=1), timedelta(minutes=1))))
        previous = moment = found
    return fired


@pytest.mark.parametrize(
    ("zone", "night", "jumped"),
    [
        # Clocks jump from 00:00 to 01:00: APScheduler's trigger skipped the whole day.
        ("Asia/Beirut", date(2026, 3, 29), "2026-03-29T01:00:00+03:00"),
        ("America/Santiago", date(2026, 9, 6), "2026-09-06T01:00:00-03:00"),
        ("America/Havana", date(2026, 3, 8), "2026-03-08T01:00:00-04:00"),
    ],
)
def test_midnight_on_a_spring_forward_night_fires_when_the_clock_jumps(zone: str, night: date, jumped: str) -> None:
    start = datetime.combine(night - timedelta(days=1), datetime.min.time(), ZoneInfo(zone)) + timedelta(hours=12)
    on_the_night, after = profile_fires("0 0 * * *", zone, start, 2)
    assert on_the_night == (jumped, night)
    assert after == (f"{night + timedelta(days=1)}T00:00:00{jumped[-6:]}", night + timedelta(days=1))


def test_a_time_the_spring_night_skips_runs_an_hour_later_and_a_repeated_one_once() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    spring = profile_fires("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 12, tzinfo=berlin))
    assert [when for when, _ in spring] == [
        "2026-03-29T03:30:00+02:00",
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    assert [day for _, day in spring] == [date(2026, 3, 29), date(2026, 3, 30), date(2026, 3, 31)]
    autumn = profile_fires("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=berlin))
    assert [when for when, _ in autumn] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]
    # From inside the repeated hour, after its first 02:30: the next is the next day's.
    inside = datetime(2026, 10, 25, 2, 10, tzinfo=berlin).replace(fold=1)
    assert profile_fires("30 2 * * *", "Europe/Berlin", inside, 1)[0][0] == "2026-10-26T02:30:00+01:00"


def test_a_jump_across_midnight_leaves_the_tick_on_its_own_day() -> None:
    # America/Nuuk jumps from 23:00 to 00:00: the 23:30 tick comes at the jump, 00:30 by the
    # new clock, and is still the digest of the day it was for (placed on the next day, that
    # day had none and the next had two).
    nuuk = ZoneInfo("America/Nuuk")
    fired = profile_fires("30 23 * * *", "America/Nuuk", datetime(2025, 3, 28, 12, tzinfo=nuuk))
    assert fired == [
        ("2025-03-28T23:30:00-02:00", date(2025, 3, 28)),
        ("2025-03-30T00:30:00-01:00", date(2025, 3, 29)),
        ("2025-03-30T23:30:00-01:00", date(2025, 3, 30)),
    ]


def test_the_ticks_missed_while_away_are_given_as_apscheduler_expects() -> None:
    # APScheduler asks for the tick after the last one it ran, with `now` days later, to find
    # the runs it missed (then runs the last of them): each tick after the previous is given.
    berlin = ZoneInfo("Europe/Berlin")
    trigger = profile_trigger(
        Profile(id="p", title="P", description="d", schedule="0 7 * * *", timezone="Europe/Berlin")
    )
    previous, now = datetime(2026, 3, 10, 7, tzinfo=berlin), datetime(2026, 3, 13, 10, tzinfo=berlin)
    ticks = []
    while (tick := trigger.get_next_fire_time(previous, now)) is not None and tick <= now:
        ticks.append(tick.day)
        previous = tick
    assert ticks == [11, 12, 13]


def test_the_day_after_a_clock_change_is_not_skipped() -> None:
    # APScheduler's trigger, asked for the tick after 00:30 on the spring-forward day, gave the
    # day after next: the service never built the 30 March digest.
    berlin = ZoneInfo("Europe/Berlin")
    trigger = profile_trigger(
        Profile(id="p", title="P", description="d", schedule="30 0 * * *", timezone="Europe/Berlin")
    )
    fired = datetime(2026, 3, 29, 0, 30, tzinfo=berlin)
    assert trigger.get_next_fire_time(fired, fired) == datetime(2026, 3, 30, 0, 30, tzinfo=berlin)
    fired = datetime(2026, 10, 25, 0, 30, tzinfo=berlin)
    assert trigger.get_next_fire_time(fired, fired) == datetime(2026, 10, 26, 0, 30, tzinfo=berlin)
