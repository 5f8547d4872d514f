"""The service: real APScheduler triggers in profile time zones (DST included), catch-up, ingest, signals."""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from conftest import SEEDS
from mailserver import profile, save_digests

from digest.app import App, JobReport
from digest.config import load_config
from digest.cron import DEFAULT_GRACE, due_day, last_tick, profile_trigger
from digest.deliver import digest_emails_done, due_digests
from digest.models import Digest, EmptyReason, Profile, TransportKind
from digest.rows import DeliveryKey
from digest.schedule import build_scheduler, run_due_once
from digest.store import Store, open_store

TESTS = Path(__file__).resolve().parent
BERLIN = "Europe/Berlin"
BERLIN_ZONE = ZoneInfo(BERLIN)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


class Recorder:
    """A stand-in for the application (`schedule.Service`): a profile job that remembers what
    it was asked to do, and an `is_done` backed by that memory."""

    def __init__(self, profiles: list[Profile], grace: timedelta = DEFAULT_GRACE) -> None:
        self.runs: list[tuple[str, date, datetime]] = []
        self.now = utc(2000, 1, 1)
        self._profiles = profiles
        self.grace = grace

    def profiles(self) -> list[Profile]:
        return self._profiles

    def ingest_job(self) -> JobReport:
        return JobReport()

    def run_profile(self, p: Profile, day: date, *, should_stop: object = None) -> JobReport:
        self.runs.append((p.id, day, self.now))
        return JobReport(counts={"papers": 1})

    def is_done(self, p: Profile, day: date) -> bool:
        return any(pid == p.id and d == day for pid, d, _ in self.runs)

    def rebuild_due(self, p: Profile, day: date) -> bool:
        return False

    def due_day(self, p: Profile, now: datetime) -> date | None:
        return due_day(p, now, self.grace)

    def trigger(self, p: Profile) -> BaseTrigger:
        return profile_trigger(p)


def simulate(
    profiles: list[Profile], start: datetime, end: datetime, step: timedelta, grace: timedelta = DEFAULT_GRACE
) -> Recorder:
    """`digest serve --once` from cron every `step` between `start` and `end` (a controlled clock)."""
    recorder = Recorder(profiles, grace)
    now = start
    while now <= end:
        recorder.now = now
        run_due_once(recorder, now=now)
        now += step
    return recorder


@pytest.mark.parametrize(
    ("weekday", "days"),
    [
        ("1", ["Mon"]),
        ("0", ["Sun"]),
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("sat,sun", ["Sat", "Sun"]),
        ("*", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
    ],
)
def test_cron_weekdays_count_from_sunday(weekday: str, days: list[str]) -> None:
    # Crontab's 0 is Sunday; APScheduler 3's own numbering starts on Monday (its issue 286).
    trigger = profile_trigger(profile("weekly", ["a@example.org"], schedule=f"0 7 * * {weekday}", timezone=BERLIN))
    tick, found = utc(2026, 11, 22, 12), []  # a Sunday
    for _ in range(len(days)):
        tick = trigger.get_next_fire_time(None, tick + timedelta(seconds=1))
        found.append(tick.strftime("%a"))
        assert (tick.hour, tick.minute, tick.tzinfo) == (7, 0, BERLIN_ZONE)
    assert sorted(found) == sorted(days)


def test_the_digest_day_is_the_tick_date_in_the_profile_time_zone() -> None:
    berlin = profile("b", [], schedule="0 7 * * *", timezone=BERLIN)
    assert due_day(berlin, utc(2026, 3, 29, 5, 30)) == date(2026, 3, 29)  # 07:30 CEST
    assert due_day(berlin, utc(2026, 3, 29, 4, 30)) is None  # 06:30: yesterday's tick is 22.5 h old
    assert due_day(berlin, utc(2026, 3, 29, 4, 30), grace=timedelta(hours=24)) == date(2026, 3, 28)
    # 22:00 in Los Angeles on the 28th is already the 29th in UTC: the digest is the 28th's.
    los_angeles = profile("la", [], schedule="0 22 * * *", timezone="America/Los_Angeles")
    assert due_day(los_angeles, utc(2026, 3, 29, 5, 30)) == date(2026, 3, 28)
    tick = last_tick(los_angeles, utc(2026, 3, 29, 5, 30))
    assert tick is not None and tick.astimezone(UTC) == utc(2026, 3, 29, 5, 0)


def test_spring_forward_in_berlin_fires_once_at_the_right_hour() -> None:
    seven = profile("seven", [], schedule="0 7 * * *", timezone=BERLIN)
    night = profile("night", [], schedule="30 2 * * *", timezone=BERLIN)  # 02:30 does not exist on Mar 29
    recorder = simulate([seven, night], utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 12, 0), timedelta(minutes=15))
    runs = {(pid, day): at for pid, day, at in recorder.runs}
    assert len(recorder.runs) == len(runs) == 6  # one per profile and day, Mar 28, 29, 30
    assert runs["seven", date(2026, 3, 28)] == utc(2026, 3, 28, 6, 0)  # 07:00 CET
    assert runs["seven", date(2026, 3, 29)] == utc(2026, 3, 29, 5, 0)  # 07:00 CEST: an hour earlier in UTC
    assert runs["night", date(2026, 3, 29)] == utc(2026, 3, 29, 1, 30)  # the missing 02:30 runs at 03:30 CEST
    assert runs["night", date(2026, 3, 30)] == utc(2026, 3, 30, 0, 30)


def test_fall_back_in_berlin_builds_the_repeated_hour_once() -> None:
    seven = profile("seven", [], schedule="0 7 * * *", timezone=BERLIN)
    night = profile("night", [], schedule="30 2 * * *", timezone=BERLIN)  # 02:30 happens twice on Oct 25
    recorder = simulate([seven, night], utc(2026, 10, 24, 0, 0), utc(2026, 10, 25, 12, 0), timedelta(minutes=15))
    runs = [(pid, day, at) for pid, day, at in recorder.runs if day == date(2026, 10, 25)]
    assert sorted(runs) == [
        ("night", date(2026, 10, 25), utc(2026, 10, 25, 0, 30)),  # the first 02:30 (CEST); the second is skipped
        ("seven", date(2026, 10, 25), utc(2026, 10, 25, 6, 0)),  # 07:00 CET
    ]


def test_a_restart_never_builds_a_day_twice_because_the_store_says_so(store: Store) -> None:
    p = profile("cl", ["ada@example.org"], schedule="0 7 * * *", timezone=BERLIN)
    built: list[date] = []

    class Building(Recorder):
        def run_profile(self, p: Profile, day: date, *, should_stop: object = None) -> JobReport:
            built.append(day)
            digest = Digest(p, day, (), utc(2026, 3, 29, 5), empty_reason=EmptyReason.NO_NEW_PAPERS)
            assert store.save_digest(digest, 0)
            return JobReport(counts={"papers": 0})

        def is_done(self, p: Profile, day: date) -> bool:
            return store.load_digest(p, day) is not None  # the store's memory, not this object's

    for _restart in range(3):
        runs = run_due_once(Building([p]), now=utc(2026, 3, 29, 5, 30))
    assert built == [date(2026, 3, 29)]
    assert [run.status for run in runs] == ["ok", "done-before"]


def test_a_built_digest_whose_emails_did_not_all_go_is_not_done(store: Store) -> None:
    p = profile("cl", ["ada@example.org", "alan@example.org"])
    (digest,) = save_digests(store, [p])
    smtp = TransportKind.SMTP
    assert not digest_emails_done(store, digest, smtp)
    key = DeliveryKey(p.id, digest.date, "ada@example.org")
    store.add_deliveries([key], lambda key: "<x@y>", smtp, utc(2026, 1, 1))
    store.mark_delivery_sent(key, utc(2026, 1, 1))
    assert not digest_emails_done(store, digest, smtp)
    store.unsubscribe("alan@example.org", None, utc(2026, 1, 1))
    assert digest_emails_done(store, digest, smtp)


def test_missed_ticks_coalesce_into_one_run_with_the_real_scheduler(caplog: pytest.LogCaptureFixture) -> None:
    # Every minute, and the machine "slept" for 30 minutes: the job's next run is half an hour ago.
    p = profile("often", [], schedule="* * * * *", timezone=BERLIN)
    recorder = Recorder([p])
    stop = threading.Event()
    scheduler = build_scheduler(recorder, stop=stop)
    caplog.set_level(logging.INFO, logger="digest.schedule")
    while datetime.now(UTC).second >= 57:  # no real tick during the 1.5 s below: only the missed ones
        time.sleep(0.1)
    scheduler.start(paused=True)
    scheduler.modify_job("profile:often", next_run_time=datetime.now(UTC) - timedelta(minutes=30))
    scheduler.resume()
    time.sleep(1.5)
    scheduler.shutdown(wait=True)
    assert len(recorder.runs) == 1
    ((_, day, _),) = recorder.runs
    assert day == datetime.now(UTC).astimezone(BERLIN_ZONE).date()
    # One call of the job for 30 missed ticks, not 30 calls of which 29 find the day done.
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("profile often")]
    assert len(lines) == 1 and ": ok in " in lines[0] and "(papers=1)" in lines[0]


def test_a_dump_dropped_in_the_inbox_is_ingested_by_the_running_service(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = replace(load_config(None, tmp_path, environ={}), inbox=inbox, db=tmp_path / "state.db")
    app = App(config, environ={})
    watcher = open_store(tmp_path / "state.db")
    stop = threading.Event()
    scheduler = build_scheduler(app, stop=stop, ingest_every=timedelta(seconds=0.2))
    caplog.set_level(logging.INFO, logger="digest.schedule")
    scheduler.start()
    try:
        time.sleep(0.3)
        assert watcher.dump_count() == 0
        shutil.copy(SEEDS / "000_9d0724fe38360f6f.txt", inbox / "today.txt")
        deadline = time.monotonic() + 10
        while watcher.dump_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert watcher.dump_count() == 1 and watcher.paper_count() == 38
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ingest: ok")]
    assert any("dumps_new=1, papers_new=38" in line for line in lines), lines
    app.close()
    watcher.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_service_after_the_job_in_progress(tmp_path: Path, signum: int) -> None:
    log = tmp_path / "events.log"
    process = subprocess.Popen(
        [sys.executable, str(TESTS / "serve_script.py"), str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while "job started" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.02)
    process.send_signal(signum)
    _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    events = log.read_text().splitlines()
    # The job that was running when the signal came finished; no job started after it.
    assert events[-2:] == ["job started", "job finished"], events
    assert events.count("job started") == events.count("job finished")
    assert f"{signal.Signals(signum).name} received" in err
    assert "stopping after the job in progress" in err and err.rstrip().endswith("stopped")
    assert "ingest: ok in" in err and "(slept=1)" in err


def test_the_profile_job_builds_once_publishes_and_sends_what_is_due(tmp_path: Path) -> None:
    p = profile("cl", ["ada@example.org", "alan@example.org"], schedule="0 7 * * *", timezone=BERLIN)
    p = replace(p, description="Continual learning without catastrophic forgetting.", min_score=0.0)
    config = replace(load_config(None, tmp_path, environ={}), profiles=(p,), inbox=SEEDS, db=tmp_path / "state.db")
    day = date(2026, 3, 29)
    with App(config, clock=lambda: utc(2026, 3, 29, 5, 30), environ={}) as app:
        first = run_due_once(app, now=utc(2026, 3, 29, 5, 30))
        assert first[1].report is not None and dict(first[1].report.counts) == {
            "built": 1,
            "papers": p.max_items,
            "sent": 2,
            "failed": 0,
            "pending": 0,
            "rollups": 2,  # the first tick of the service builds the week's and the month's just ended
        }
        assert len(list(config.outbox.iterdir())) == 2 and (config.feeds / "cl.atom").exists()
        # Run by hand again (digest build): the stored digest is reused, nothing new is sent.
        again = app.run_profile(p, day)
        assert again.counts["built"] == 0 and again.counts["sent"] == 0
        assert [r.status for r in run_due_once(app, now=utc(2026, 3, 29, 6))][1:] == ["done-before"]
        assert due_digests(app.store, [p], today=day, transport=TransportKind.OUTBOX) == []
        # Written to the outbox only: once SMTP is configured, the day is still to be sent.
        assert [d.date for d in due_digests(app.store, [p], today=day, transport=TransportKind.SMTP)] == [day]


def test_due_digests_are_the_recent_ones_with_emails_to_go(store: Store) -> None:
    p = profile("cl", ["ada@example.org"])
    (old,) = save_digests(store, [p], date(2026, 3, 1))
    (recent,) = save_digests(store, [p], date(2026, 3, 28))
    today = date(2026, 3, 29)
    smtp = TransportKind.SMTP
    assert [d.date for d in due_digests(store, [p], today=today, transport=smtp)] == [recent.date]
    assert [d.date for d in due_digests(store, [p], today=today, day=old.date, transport=smtp)] == [old.date]
    assert due_digests(store, [p], today=today, days=60, transport=smtp) == [  # oldest first
        store.load_digest(p, old.date),
        store.load_digest(p, recent.date),
    ]
