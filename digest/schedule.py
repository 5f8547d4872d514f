"""The service behind `digest serve`: APScheduler 3.x runs each profile's job on its cron, in its time zone.

Jobs are callables handed in, so this module never builds, renders, sends or parses:

- `run_profile(profile, day)` makes sure the profile's digest for `day` is built,
  published and sent (it must not rebuild a digest the store already has);
- `run_ingest()` ingests new dumps from the inbox, every `ingest_every`;
- `is_done(profile, day)` reads the store: was that digest built and sent already?

The digest day is the date of the cron tick in the profile's time zone. A tick missed
by at most `grace` (a machine that slept, a service that was down) is run late, once:
missed ticks coalesce, and the store, not the scheduler's memory, says whether that
day's digest was already done, so a restart never builds a day twice. An older tick is
skipped: its papers go into the profile's next digest. Jobs run one at a time;
SIGTERM and Ctrl-C stop the service after the job in progress. Each run of each job
logs one line: what ran, for which day, how it ended, its counts and its duration.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.deliver import DeliveryReport
from digest.models import Digest, Profile
from digest.pipeline import find_dump_files, ingest_files
from digest.store import Store

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(hours=12)
DEFAULT_INGEST_EVERY = timedelta(minutes=5)
INGEST_JOB = "ingest"


@dataclass(frozen=True, slots=True)
class JobReport:
    """What a job says it did: counts for the log line (`{"papers": 7, "sent": 2}`), a note."""

    counts: Mapping[str, int] = field(default_factory=dict)
    note: str = ""
    ok: bool = True


@dataclass(frozen=True, slots=True)
class JobRun:
    """One run of one job. `status`: 'ok', 'failed', 'done-before' (skipped) or 'not-due'."""

    job: str
    day: date | None
    status: str
    seconds: float = 0.0
    report: JobReport | None = None
    error: str | None = None

    def line(self) -> str:
        """The log line: `profile cl 2026-03-29: ok in 1.23 s (papers=7, sent=2)`."""
        head = f"{self.job} {self.day.isoformat()}" if self.day else self.job
        if self.status == "done-before":
            return f"{head}: done before, skipped"
        if self.status == "not-due":
            return f"{head}: nothing due"
        text = f"{head}: {self.status} in {self.seconds:.2f} s"
        if self.report and self.report.counts:
            text += " (" + ", ".join(f"{k}={v}" for k, v in self.report.counts.items()) + ")"
        if self.report and self.report.note:
            text += f": {self.report.note}"
        if self.error:
            text += f": {self.error}"
        return text


ProfileJob = Callable[[Profile, date], JobReport]
IngestJob = Callable[[], JobReport]
DoneCheck = Callable[[Profile, date], bool]


def profile_trigger(profile: Profile) -> CronTrigger:
    """The profile's cron expression in its own time zone."""
    minute, hour, day, month, weekday = profile.schedule.split()
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_weekdays(weekday),
        timezone=ZoneInfo(profile.timezone),
    )


_CRON_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def crontab_weekdays(field: str) -> str:
    """A crontab weekday field as APScheduler 3 reads it: crontab counts from 0 = Sunday
    (7 too), APScheduler 3 from 0 = Monday (its issue 286), so numbers become day names.

    `1-5` becomes `mon,tue,wed,thu,fri`; `*/2` (Sunday, Tuesday, ...) `sun,tue,thu,sat`.
    """
    if field in ("*", "?"):
        return field
    days: set[int] = set()
    for item in field.split(","):
        base, _, step = item.partition("/")
        if base in ("*", "?"):
            low, high = 0, 6
        elif "-" in base:
            first, last = base.split("-", 1)
            low, high = _weekday_number(first), _weekday_number(last)
        else:
            low = _weekday_number(base)
            high = 6 if step else low
        days.update(day % 7 for day in range(low, high + 1, int(step or 1)))
    return ",".join(_CRON_WEEKDAYS[day] for day in sorted(days))


def _weekday_number(text: str) -> int:
    return int(text) if text.isdigit() else _CRON_WEEKDAYS.index(text.strip().lower()[:3])


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


def run_profile_if_due(
    profile: Profile,
    *,
    now: datetime,
    run_profile: ProfileJob,
    is_done: DoneCheck,
    grace: timedelta = DEFAULT_GRACE,
) -> JobRun:
    """Run the profile's job for its due day unless nothing is due or the store says it is done."""
    job = f"profile {profile.id}"
    day = due_day(profile, now, grace)
    if day is None:
        return _logged(JobRun(job, None, "not-due"))
    if is_done(profile, day):
        return _logged(JobRun(job, day, "done-before"))
    return _timed(job, day, lambda: run_profile(profile, day))


def run_ingest_job(run_ingest: IngestJob) -> JobRun:
    return _timed(INGEST_JOB, None, run_ingest)


def run_due_once(
    profiles: Sequence[Profile],
    *,
    now: datetime,
    run_profile: ProfileJob,
    run_ingest: IngestJob,
    is_done: DoneCheck,
    grace: timedelta = DEFAULT_GRACE,
) -> list[JobRun]:
    """`digest serve --once`: ingest, then every profile whose digest is due at `now`, then return."""
    runs = [run_ingest_job(run_ingest)]
    for profile in profiles:
        runs.append(run_profile_if_due(profile, now=now, run_profile=run_profile, is_done=is_done, grace=grace))
    return runs


def build_scheduler(
    profiles: Sequence[Profile],
    *,
    run_profile: ProfileJob,
    run_ingest: IngestJob,
    is_done: DoneCheck,
    stop: threading.Event,
    ingest_every: timedelta = DEFAULT_INGEST_EVERY,
    grace: timedelta = DEFAULT_GRACE,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BackgroundScheduler:
    """A scheduler (not started) with the ingest job and one cron job per profile.

    At start the ingest runs, then each profile's job once, to catch up a tick missed
    while the service was down. One worker: jobs run one at a time, in order.
    """
    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(grace.total_seconds())},
    )
    start = clock()

    def ingest() -> None:
        if not stop.is_set():
            run_ingest_job(run_ingest)

    scheduler.add_job(
        ingest,
        IntervalTrigger(seconds=ingest_every.total_seconds(), timezone=UTC),
        id=INGEST_JOB,
        name=INGEST_JOB,
        next_run_time=start,
    )
    for profile in profiles:

        def tick(profile: Profile = profile) -> None:
            if not stop.is_set():
                run_profile_if_due(profile, now=clock(), run_profile=run_profile, is_done=is_done, grace=grace)

        scheduler.add_job(
            tick,
            profile_trigger(profile),
            id=f"profile:{profile.id}",
            name=f"profile {profile.id}",
            next_run_time=start + timedelta(seconds=1),
        )
    return scheduler


def run_service(
    profiles: Sequence[Profile],
    *,
    run_profile: ProfileJob,
    run_ingest: IngestJob,
    is_done: DoneCheck,
    ingest_every: timedelta = DEFAULT_INGEST_EVERY,
    grace: timedelta = DEFAULT_GRACE,
    stop: threading.Event | None = None,
) -> None:
    """`digest serve`: run until SIGTERM or Ctrl-C (or `stop` is set), then finish the job in progress.

    Share `stop` with long jobs (e.g. `send_digests(should_stop=stop.is_set)`) so they
    can end between two messages instead of finishing the whole batch.
    """
    stop = stop or threading.Event()
    scheduler = build_scheduler(
        profiles,
        run_profile=run_profile,
        run_ingest=run_ingest,
        is_done=is_done,
        stop=stop,
        ingest_every=ingest_every,
        grace=grace,
    )
    previous = _install_stop_handlers(stop)
    log.info(
        "serving %d profile%s; ingest every %s; catch-up grace %s",
        len(profiles),
        "" if len(profiles) == 1 else "s",
        ingest_every,
        grace,
    )
    scheduler.start()
    try:
        while not stop.wait(0.5):
            pass
        log.info("stopping after the job in progress")
    finally:
        scheduler.shutdown(wait=True)
        _restore_handlers(previous)
    log.info("stopped")


def inbox_ingest_job(
    store: Store, *, inbox: Path, quarantine: Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> IngestJob:
    """The ingest job: every new dump file in `inbox` goes into `store` (see `pipeline.ingest_files`)."""

    def ingest() -> JobReport:
        if not inbox.exists():
            return JobReport(note=f"no inbox folder {inbox}")
        now = clock()
        files = find_dump_files([inbox], skip=[quarantine])
        summary = ingest_files(store, files, quarantine=quarantine, today=now.date(), now=now)
        counts = {
            "files": summary.files,
            "dumps_new": summary.dumps_new,
            "papers_new": summary.papers_new,
            "quarantined": len(summary.quarantined),
            "problems": len(summary.problems),
        }
        return JobReport(counts=counts)

    return ingest


def digest_job(
    store: Store,
    *,
    build: Callable[[Profile, date], Digest],
    send: Callable[[Sequence[Digest]], DeliveryReport] | None = None,
    publish: Callable[[Digest], object] | None = None,
) -> ProfileJob:
    """A `run_profile` made of the pipeline's steps: build (only if the store has no digest), publish, send.

    `build(profile, day)` ranks and saves the digest (`store.save_digest`); `publish(digest)`
    writes its feeds, Markdown and site pages; `send(digests)` is e.g.
    `lambda ds: send_digests(store, config.smtp, outgoing_emails(ds, render), ...)`.
    """

    def run(profile: Profile, day: date) -> JobReport:
        digest = store.load_digest(profile, day)
        built = digest is None
        if digest is None:
            digest = build(profile, day)
        if publish is not None:
            publish(digest)
        counts = {"built": int(built), "papers": len(digest.items)}
        if send is None:
            return JobReport(counts=counts)
        report = send([digest])
        counts |= {"sent": len(report.sent), "failed": len(report.failed)}
        counts["pending"] = len(report.pending) + report.not_reached
        return JobReport(counts=counts, note=report.stopped or "", ok=report.stopped is None)

    return run


def _timed(job: str, day: date | None, work: Callable[[], JobReport]) -> JobRun:
    started = time.monotonic()
    try:
        report = work()
    except Exception as exc:
        log.debug("%s failed", job, exc_info=True)
        run = JobRun(job, day, "failed", time.monotonic() - started, error=f"{type(exc).__name__}: {exc}")
        return _logged(run, logging.ERROR)
    status = "ok" if report.ok else "failed"
    return _logged(JobRun(job, day, status, time.monotonic() - started, report), logging.INFO)


def _logged(run: JobRun, level: int = logging.INFO) -> JobRun:
    log.log(logging.ERROR if run.status == "failed" else level, "%s", run.line())
    return run


_Handler = Callable[[int, FrameType | None], object] | int | None


def _install_stop_handlers(stop: threading.Event) -> dict[int, _Handler]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # signals reach only the main thread; the caller sets `stop` itself

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("%s received", signal.Signals(signum).name)
        stop.set()

    return {signum: signal.signal(signum, handle) for signum in (signal.SIGTERM, signal.SIGINT)}


def _restore_handlers(previous: dict[int, _Handler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


__all__ = [
    "DEFAULT_GRACE",
    "DEFAULT_INGEST_EVERY",
    "JobReport",
    "JobRun",
    "build_scheduler",
    "crontab_weekdays",
    "digest_job",
    "due_day",
    "inbox_ingest_job",
    "last_tick",
    "profile_trigger",
    "run_due_once",
    "run_profile_if_due",
    "run_service",
]
