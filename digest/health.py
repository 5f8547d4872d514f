"""The health of a deployment: is it doing its job, and if not, what needs its owner.

`assess` is a pure function over plain data (`HealthInputs`): the same verdict serves
`digest status` (exit code 0 or 1), the publish workflow (which opens an issue when the
inbox is stale) and a web side's `GET /healthz`. The application (`App.status`) gathers
those data from the store, the config and the profiles' schedules. This module never
reads the store, writes, sends or renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from digest.cron import due_day
from digest.deliver import RETRY_DAYS
from digest.models import Profile
from digest.rows import ProfileActivity

# A tick that has just passed may still be running: it is due only this long after.
TICK_SLACK = timedelta(hours=1)
# How far back the latest tick of a schedule is looked for: daily, then monthly, then yearly crons.
_TICK_WINDOWS = (timedelta(days=2), timedelta(days=40), timedelta(days=400))


class Attention(StrEnum):
    """What can need the owner's attention."""

    NO_DATABASE = "no-database"
    NO_DUMPS = "no-dumps"
    STALE = "stale"
    NEVER_BUILT = "never-built"
    BEHIND = "behind"
    EMAILS_PENDING = "emails-pending"
    EMAILS_FAILED = "emails-failed"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that needs attention; `profile_id` is None for the whole deployment."""

    kind: Attention
    message: str
    profile_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileInputs:
    """A profile's activity, the day its schedule says should be built by now, and its next tick."""

    activity: ProfileActivity
    due_day: date | None
    next_tick: datetime | None


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """Everything the verdict looks at. `database_bytes` is None when there is no database."""

    now: datetime
    database: Path
    database_bytes: int | None
    newest_dump: date | None
    stale_after_days: int
    profiles: tuple[ProfileInputs, ...] = ()


@dataclass(frozen=True, slots=True)
class Health:
    """The verdict: healthy when nothing needs attention."""

    inputs: HealthInputs
    findings: tuple[Finding, ...]

    @property
    def healthy(self) -> bool:
        return not self.findings

    @property
    def dump_age_days(self) -> int | None:
        newest = self.inputs.newest_dump
        return None if newest is None else (self.inputs.now.date() - newest).days

    @property
    def stale(self) -> bool:
        return any(f.kind in (Attention.STALE, Attention.NO_DUMPS) for f in self.findings)

    def to_public_json(self) -> dict[str, Any]:
        """The verdict as `GET /healthz` serves it to anyone: healthy or not, and the kinds of
        finding, but no database path, profile id or message (`to_json` has those, for the
        deployment's owner)."""
        return {
            "healthy": self.healthy,
            "checked_at": self.inputs.now.isoformat(),
            "attention": sorted({str(f.kind) for f in self.findings}),
        }

    def to_json(self) -> dict[str, Any]:
        """The verdict as `digest status --json` prints it."""
        inputs = self.inputs
        return {
            "healthy": self.healthy,
            "checked_at": inputs.now.isoformat(),
            "attention": [{"kind": str(f.kind), "profile": f.profile_id, "message": f.message} for f in self.findings],
            "database": {"path": str(inputs.database), "bytes": inputs.database_bytes},
            "dumps": {
                "newest": _iso(inputs.newest_dump),
                "age_days": self.dump_age_days,
                "stale_after_days": inputs.stale_after_days,
                "stale": self.stale,
            },
            "profiles": [_profile_json(p) for p in inputs.profiles],
        }


def assess(inputs: HealthInputs) -> Health:
    """The verdict over `inputs`: every finding, deployment-wide first, then per profile."""
    if inputs.database_bytes is None:
        finding = Finding(Attention.NO_DATABASE, f"no state database at {inputs.database}: nothing has run yet")
        return Health(inputs, (finding,))
    findings = list(_dump_findings(inputs))
    for profile in inputs.profiles:
        findings.extend(_profile_findings(profile))
    return Health(inputs, tuple(findings))


def is_stale(newest: date | None, today: date, stale_after_days: int) -> bool:
    """The stale-inbox rule: no dump at all, or the newest listing more than `stale_after_days` old."""
    return newest is None or (today - newest).days > stale_after_days


def _dump_findings(inputs: HealthInputs) -> list[Finding]:
    newest = inputs.newest_dump
    if newest is None:
        return [Finding(Attention.NO_DUMPS, "no dumps stored yet: nothing to digest")]
    if not is_stale(newest, inputs.now.date(), inputs.stale_after_days):
        return []
    age = (inputs.now.date() - newest).days
    message = (
        f"no new papers since {newest.isoformat()}: the newest dump is {age} days old "
        f"(more than stale_after_days = {inputs.stale_after_days})"
    )
    return [Finding(Attention.STALE, message)]


def _profile_findings(profile: ProfileInputs) -> list[Finding]:
    activity = profile.activity
    pid = activity.profile_id
    found = []
    if activity.built is None:
        found.append(Finding(Attention.NEVER_BUILT, f"{pid}: never built", pid))
    elif profile.due_day is not None and activity.built.day < profile.due_day:
        message = (
            f"{pid}: the last digest is of {activity.built.day.isoformat()}, but its schedule was due "
            f"on {profile.due_day.isoformat()}"
        )
        found.append(Finding(Attention.BEHIND, message, pid))
    if activity.emails_pending:
        n = activity.emails_pending
        found.append(Finding(Attention.EMAILS_PENDING, f"{pid}: {n} email{_s(n)} not sent yet", pid))
    if activity.emails_failed:
        n = activity.emails_failed
        message = f"{pid}: {n} email{_s(n)} refused for good in the last {RETRY_DAYS} days"
        found.append(Finding(Attention.EMAILS_FAILED, message, pid))
    return found


def scheduled_day(profile: Profile, now: datetime) -> date | None:
    """The digest day of the profile's latest tick that should have run by `now` (None: none in a year)."""
    moment = now - TICK_SLACK
    for window in _TICK_WINDOWS:
        day = due_day(profile, moment, window)
        if day is not None:
            return day
    return None


def database_bytes(path: Path) -> int | None:
    """The size of the database with its write-ahead log, or None when there is no database."""
    if not path.is_file():
        return None
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.is_file() else 0)


def _profile_json(profile: ProfileInputs) -> dict[str, Any]:
    activity = profile.activity
    built, published, mailed = activity.built, activity.published, activity.mailed
    return {
        "id": activity.profile_id,
        "built": {"day": built.day.isoformat(), "at": built.at.isoformat(), "papers": built.papers} if built else None,
        "published": {"day": published.day.isoformat(), "at": published.at.isoformat()} if published else None,
        "mailed": {"day": mailed.day.isoformat(), "at": mailed.at.isoformat(), "transport": mailed.transport}
        if mailed
        else None,
        "emails": {"pending": activity.emails_pending, "failed": activity.emails_failed},
        "due_day": _iso(profile.due_day),
        "next_tick": profile.next_tick.isoformat() if profile.next_tick else None,
    }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _s(count: int) -> str:
    return "" if count == 1 else "s"
