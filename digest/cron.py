"""Cron expressions read as cron reads them, as APScheduler 3.x triggers.

APScheduler's `CronTrigger.from_crontab` differs from cron(8) in two ways that move a
digest to another day: it numbers weekdays from Monday (cron: 0 and 7 are Sunday, so
`0 7 * * 1` would fire on Tuesdays), and when both the day of the month and the weekday
are restricted it fires only on days that match both (cron: either, so `0 7 1 * mon`
is "the 1st, and every Monday"). `cron_trigger` keeps cron's meaning: weekday numbers
become names, and a restricted day with a restricted weekday becomes two triggers of
which the earlier fires. `last_tick` and `due_day` answer "which digest day is due now"
for a profile. Nothing here schedules or runs a job.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from digest.models import Profile

# How late a missed tick is still run (`[digest] catch_up_hours`, whose default this is).
DEFAULT_GRACE = timedelta(hours=12)

_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NUMBER = {name: index for index, name in enumerate(_NAMES)}
_PART = re.compile(r"(\*|\w+)(?:-(\w+))?(?:/(\d+))?")


def cron_weekdays(field: str) -> str:
    """A cron weekday field (`1-5`, `0,6`, `*/2`, `mon-fri`, `7`) as APScheduler day names.

    Raises `ValueError` for a field cron would not take.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.lower().split(","):
        match = _PART.fullmatch(part)
        if match is None:
            raise ValueError(f"bad weekday {part!r}")
        first, last, step = match[1], match[2], int(match[3] or 1)
        if step < 1:
            raise ValueError(f"bad step in weekday {part!r}")
        if first == "*":
            if last is not None:
                raise ValueError(f"bad weekday {part!r}")
            start, stop = 0, 6
        else:
            start = _day(first)
            stop = _day(last) if last is not None else (6 if match[3] else start)
            if stop < start:
                raise ValueError(f"weekday range {part!r} runs backwards")
        days.update(day % 7 for day in range(start, stop + 1, step))
    return ",".join(_NAMES[day] for day in sorted(days))


def cron_trigger(expression: str, timezone: tzinfo | str, *, end_date: datetime | None = None) -> BaseTrigger:
    """The trigger of a five-field cron expression, in `timezone`, read as cron reads it."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"{expression!r} is not a cron expression (five fields: minute hour day month weekday)")
    minute, hour, day, month, weekday = fields
    weekday = cron_weekdays(weekday)

    def trigger(day: str, weekday: str) -> CronTrigger:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=weekday,
            timezone=timezone,
            end_date=end_date,
        )

    if day != "*" and weekday != "*":
        return OrTrigger([trigger(day, "*"), trigger("*", weekday)])
    return trigger(day, weekday)


def _day(text: str) -> int:
    if text.isdigit():
        number = int(text)
        if number > 7:
            raise ValueError(f"weekday {text} is not 0-7")
        return number
    if text[:3] in _NUMBER and len(text) == 3:
        return _NUMBER[text]
    raise ValueError(f"bad weekday {text!r}")


def profile_trigger(profile: Profile) -> BaseTrigger:
    """The profile's schedule in its own time zone, read on its wall clock (`WallClockTrigger`)."""
    return WallClockTrigger(cron_trigger(profile.schedule, UTC), ZoneInfo(profile.timezone))


class WallClockTrigger(BaseTrigger):
    """A trigger read on the wall clock of `zone`: `wall` fires at naive local times (kept in
    UTC, which has no clock changes), then each is placed in `zone`. A time that does not
    exist on the spring-forward night fires when the clock jumps, an hour later by the
    clock; APScheduler's own trigger skipped the whole day when the jump is at midnight
    (Asia/Beirut, America/Santiago, America/Havana). A time the autumn night repeats fires
    at its first occurrence, as before.

    A fire time keeps the wall clock's date and time (a time in the gap with the offset
    before the jump): `due_day` names the day it was for, even where the jump crosses
    midnight (America/Nuuk jumps from 23:00 to 00:00). As APScheduler's triggers do, the
    tick after `previous_fire_time` is given even when it is before `now`: the scheduler
    finds the runs it missed (a suspended machine) that way."""

    def __init__(self, wall: BaseTrigger, zone: ZoneInfo) -> None:
        self.wall = wall
        self.zone = zone

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        previous = _on_wall(previous_fire_time, self.zone) if previous_fire_time else None
        wall = self.wall.get_next_fire_time(previous, _on_wall(now, self.zone))
        while wall is not None:
            # Fold 0: in a gap, the offset before the jump (so, the moment of the jump).
            fire = wall.replace(tzinfo=self.zone)
            instant = fire.astimezone(UTC)
            after = instant > previous_fire_time if previous_fire_time else instant >= now.astimezone(UTC)
            if after:
                return fire
            # The wall time's first occurrence is past (the hour the autumn night repeats).
            wall = self.wall.get_next_fire_time(wall, wall + timedelta(microseconds=1))
        return None

    def __str__(self) -> str:
        return f"{self.wall} on the wall clock of {self.zone}"


def _on_wall(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` as the clock on the wall in `zone` shows it, labelled UTC."""
    return moment.astimezone(zone).replace(tzinfo=UTC, fold=0)


def last_tick(profile: Profile, now: datetime, grace: timedelta = DEFAULT_GRACE) -> datetime | None:
    """The profile's latest scheduled time in `(now - grace, now]`, or None."""
    trigger = profile_trigger(profile)
    limit = now.astimezone(UTC)
    # Compared in UTC: two datetimes in the same zone compare by wall clock, and the autumn
    # change repeats an hour of wall clock.
    tick = trigger.get_next_fire_time(None, now - grace)
    found = None
    while tick is not None and tick.astimezone(UTC) <= limit:
        found = tick
        tick = trigger.get_next_fire_time(tick, tick)
    return found


def due_day(profile: Profile, now: datetime, grace: timedelta = DEFAULT_GRACE) -> date | None:
    """The digest day due at `now`: the date, in the profile's time zone, of its latest tick."""
    tick = last_tick(profile, now, grace)
    return tick.astimezone(ZoneInfo(profile.timezone)).date() if tick else None
