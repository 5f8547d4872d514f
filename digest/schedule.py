"""The service behind `digest serve`: APScheduler 3.x runs each profile's job on its cron, in its time zone.

This module knows APScheduler and the application facade (`digest.app.App`), nothing
else: the jobs are the facade's (`Service`), so it never builds, renders, sends or parses.
When `[web] listen` (or `--http`) is set, the web side (`digest.web`, imported only then)
runs in the same process, stopped after the scheduler.

- `ingest_job()` reads the live source (when enabled) and the inbox, every `ingest_every`;
- `run_profile(profile, day)` makes sure the profile's digest for `day` is built,
  published and sent (it never rebuilds a digest that stands), and so are the roll-ups
  due that day (the week and month just ended: built on the first tick of a new period);
- `is_done(profile, day)` reads the store: was that digest built and sent already (and
  not reopened by papers that came late), and the roll-ups due that day?
- `rebuild_due(profile, day)`: is that digest built but not final, with new papers for
  its day? After each ingest, the profile's job runs again for such a day, so papers
  that arrive late still make it.

The digest day is the date of the cron tick in the profile's time zone (`App.due_day`).
A tick missed by at most `grace` (a machine that slept, a service that was down) is run
late, once: missed ticks coalesce, and the store, not the scheduler's memory, says
whether that day's digest was already done, so a restart never builds a day twice. An
older tick is skipped: its papers go into the profile's next digest. Jobs run one at a
time; SIGTERM and Ctrl-C stop the service after the job in progress. Each run of each
job logs one line: what ran, for which day, how it ended, its counts and its duration.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.app import App, JobReport
from digest.clock import Clock, utc_now
from digest.models import Profile

if TYPE_CHECKING:
    from digest.web.server import WebServer

log = logging.getLogger(__name__)

DEFAULT_INGEST_EVERY = timedelta(minutes=5)
INGEST_JOB = "ingest"


class Service(Protocol):
    """What the scheduler runs: `App` is one (tests use small stand-ins)."""

    @property
    def grace(self) -> timedelta: ...

    def profiles(self) -> list[Profile]: ...

    def ingest_job(self) -> JobReport: ...

    def run_profile(self, profile: Profile, day: date, *, should_stop: Callable[[], bool]) -> JobReport: ...

    def is_done(self, profile: Profile, day: date) -> bool: ...

    def rebuild_due(self, profile: Profile, day: date) -> bool: ...

    def due_day(self, profile: Profile, now: datetime) -> date | None: ...

    def trigger(self, profile: Profile) -> BaseTrigger: ...


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


def run_profile_if_due(
    service: Service, profile: Profile, *, now: datetime, stop: threading.Event | None = None
) -> JobRun:
    """Run the profile's job for its due day unless nothing is due or the store says it is done."""
    job = f"profile {profile.id}"
    day = service.due_day(profile, now)
    if day is None:
        return _logged(JobRun(job, None, "not-due"))
    if service.is_done(profile, day):
        return _logged(JobRun(job, day, "done-before"))
    return _timed(job, day, lambda: service.run_profile(profile, day, should_stop=_stopper(stop)))


def run_ingest_job(service: Service) -> JobRun:
    return _timed(INGEST_JOB, None, service.ingest_job)


def run_reopened(service: Service, *, now: datetime, stop: threading.Event | None = None) -> list[JobRun]:
    """Run the job of each profile whose due digest is built, not final and has new papers."""
    runs = []
    for profile in service.profiles():
        day = service.due_day(profile, now)
        if day is None or (stop is not None and stop.is_set()) or not service.rebuild_due(profile, day):
            continue
        runs.append(_timed(f"profile {profile.id}", day, _job(service, profile, day, stop)))
    return runs


def run_due_once(service: Service, *, now: datetime) -> list[JobRun]:
    """`digest serve --once`: ingest, then every profile whose digest is due at `now`, then return."""
    runs = [run_ingest_job(service)]
    for profile in service.profiles():
        runs.append(run_profile_if_due(service, profile, now=now))
    return runs


def build_scheduler(
    service: Service,
    *,
    stop: threading.Event,
    ingest_every: timedelta = DEFAULT_INGEST_EVERY,
    clock: Clock = utc_now,
) -> BackgroundScheduler:
    """A scheduler (not started) with the ingest job and one cron job per profile.

    At start the ingest runs, then each profile's job once, to catch up a tick missed
    while the service was down. After each ingest, a profile whose due digest is reopened
    (`rebuild_due`) runs again (a tick will not: `is_done` said yes before the papers came).
    One worker: jobs run one at a time, in order.
    """
    grace = service.grace
    scheduler = BackgroundScheduler(
        timezone="UTC",
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(grace.total_seconds())},
    )
    start = clock()

    def ingest() -> None:
        if stop.is_set():
            return
        run_ingest_job(service)
        run_reopened(service, now=clock(), stop=stop)

    scheduler.add_job(
        ingest,
        IntervalTrigger(seconds=ingest_every.total_seconds(), timezone="UTC"),
        id=INGEST_JOB,
        name=INGEST_JOB,
        next_run_time=start,
    )
    for profile in service.profiles():

        def tick(profile: Profile = profile) -> None:
            if not stop.is_set():
                run_profile_if_due(service, profile, now=clock(), stop=stop)

        scheduler.add_job(
            tick,
            service.trigger(profile),
            id=f"profile:{profile.id}",
            name=f"profile {profile.id}",
            next_run_time=start + timedelta(seconds=1),
        )
    return scheduler


def run_service(
    service: Service,
    *,
    ingest_every: timedelta = DEFAULT_INGEST_EVERY,
    stop: threading.Event | None = None,
    clock: Clock = utc_now,
) -> None:
    """Run until SIGTERM or Ctrl-C (or `stop` is set), then finish the job in progress.

    `stop` also reaches a batch being sent, which ends between two messages instead of
    finishing the whole batch.
    """
    stop = stop or threading.Event()
    scheduler = build_scheduler(service, stop=stop, ingest_every=ingest_every, clock=clock)
    previous = _install_stop_handlers(stop)
    profiles = service.profiles()
    log.info(
        "serving %d profile%s; ingest every %s; catch-up grace %s",
        len(profiles),
        "" if len(profiles) == 1 else "s",
        ingest_every,
        service.grace,
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


def serve(app: App, *, http: str | None = None, schedule: bool = True) -> None:
    """`digest serve`: check that sending can work, then run the web side (on `http`, else
    `[web] listen`, when either is set) and the scheduler (`run_service`; without
    `schedule`, the web side alone) in this process until SIGTERM or Ctrl-C."""
    app.check_ready()
    listen = http or app.config.web.listen
    web = start_web_side(app, listen) if listen else None
    try:
        if schedule:
            run_service(app, clock=app.clock)
        else:
            wait_for_stop()
    finally:
        if web is not None:
            web.stop()
            log.info("web side stopped")


def start_web_side(app: App, listen: str) -> WebServer:
    """The web side (`digest.web`) over `app`, listening on `listen`; `WebUnavailable` when
    its extra is missing or the address cannot be had."""
    from digest.web import INSTALL, WebUnavailable

    try:
        from digest.web.app import create_app
        from digest.web.server import WebServer
    except ImportError as exc:
        raise WebUnavailable(f"the web side needs its extra ({exc.name} is missing): {INSTALL}") from None
    if app.config.web.base_url is None:
        raise WebUnavailable(
            "the web side needs [web] base_url, the address readers reach it at "
            '(for a test on this machine: base_url = "http://127.0.0.1:8080/")'
        )
    server = WebServer(create_app(app), listen).start()
    log.info("web side on %s (readers reach it at %s)", server.url, app.config.web.base_url)
    return server


def wait_for_stop(stop: threading.Event | None = None) -> None:
    """Block until SIGTERM or Ctrl-C (or `stop` is set): the web side alone (`--no-schedule`)."""
    stop = stop or threading.Event()
    previous = _install_stop_handlers(stop)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        _restore_handlers(previous)


def serve_once(app: App) -> list[JobRun]:
    """`digest serve --once`: the ingest, then every profile whose digest is due now (or reopened)."""
    app.check_ready()
    return run_due_once(app, now=app.clock())


def _job(service: Service, profile: Profile, day: date, stop: threading.Event | None) -> Callable[[], JobReport]:
    return lambda: service.run_profile(profile, day, should_stop=_stopper(stop))


def _stopper(stop: threading.Event | None) -> Callable[[], bool]:
    return stop.is_set if stop is not None else (lambda: False)


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
    for problem in run.report.problems if run.report else ():
        log.warning("%s: %s", run.job, problem)
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
    "DEFAULT_INGEST_EVERY",
    "JobRun",
    "Service",
    "build_scheduler",
    "run_due_once",
    "run_profile_if_due",
    "run_reopened",
    "run_service",
    "serve",
    "serve_once",
    "start_web_side",
    "wait_for_stop",
]
