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
from conftest import SEEDS
from mailserver import outgoing_for, profile, save_digests

from digest.deliver import digest_done, due_digests, send_digests
from digest.models import Digest, Profile
from digest.schedule import (
    JobReport,
    build_scheduler,
    digest_is_final,
    digest_job,
    due_day,
    inbox_ingest_job,
    last_tick,
    profile_trigger,
    rebuild_deadline,
    run_due_once,
)
from digest.store import DigestStatus, Store, open_store

TESTS = Path(__file__).resolve().parent
BERLIN = "Europe/Berlin"
BERLIN_ZONE = ZoneInfo(BERLIN)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


class Recorder:
    """A profile job that remembers what it was asked to do, and an `is_done` backed by that memory."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, date, datetime]] = []
        self.now = utc(2000, 1, 1)

    def run_profile(self, p: Profile, day: date) -> JobReport:
        self.runs.append((p.id, day, self.now))
        return JobReport(counts={"papers": 1})

    def is_done(self, p: Profile, day: date) -> bool:
        return any(pid == p.id and d == day for pid, d, _ in self.runs)


def simulate(profiles: list[Profile], start: datetime, end: datetime, step: timedelta, **extra) -> Recorder:
    """`digest serve --once` from cron every `step` between `start` and `end` (a controlled clock)."""
    recorder = Recorder()
    now = start
    while now <= end:
        recorder.now = now
        run_due_once(
            profiles,
            now=now,
            run_profile=recorder.run_profile,
            run_ingest=JobReport,
            is_done=recorder.is_done,
            **extra,
        )
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

    def build(p: Profile, day: date) -> JobReport:
        built.append(day)
        assert store.save_digest(Digest(p, day, (), utc(2026, 3, 29, 5), empty_reason="no-new-papers"), 0)
        return JobReport(counts={"papers": 0})

    for _restart in range(3):
        runs = run_due_once(
            [p],
            now=utc(2026, 3, 29, 5, 30),
            run_profile=build,
            run_ingest=JobReport,
            is_done=lambda p, d: digest_done(store, p, d),
        )
    assert built == [date(2026, 3, 29)]
    assert [run.status for run in runs] == ["ok", "done-before"]


def test_a_built_digest_whose_emails_did_not_all_go_is_not_done(store: Store) -> None:
    p = profile("cl", ["ada@example.org", "alan@example.org"])
    (digest,) = save_digests(store, [p])
    assert not digest_done(store, p, digest.date)
    store.add_deliveries([(p.id, digest.date, "ada@example.org")], lambda key: "<x@y>", "smtp", utc(2026, 1, 1))
    store.mark_delivery_sent((p.id, digest.date, "ada@example.org"), utc(2026, 1, 1))
    assert not digest_done(store, p, digest.date)
    store.unsubscribe("alan@example.org", None, utc(2026, 1, 1))
    assert digest_done(store, p, digest.date)


def test_missed_ticks_coalesce_into_one_run_with_the_real_scheduler(caplog: pytest.LogCaptureFixture) -> None:
    # Every minute, and the machine "slept" for 30 minutes: the job's next run is half an hour ago.
    p = profile("often", [], schedule="* * * * *", timezone=BERLIN)
    recorder = Recorder()
    stop = threading.Event()
    scheduler = build_scheduler(
        [p], run_profile=recorder.run_profile, run_ingest=JobReport, is_done=recorder.is_done, stop=stop
    )
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
    store = open_store(tmp_path / "state.db")
    watcher = open_store(tmp_path / "state.db")
    job = inbox_ingest_job(store, inbox=inbox, quarantine=tmp_path / "quarantine")
    stop = threading.Event()
    scheduler = build_scheduler(
        [], run_profile=Recorder().run_profile, run_ingest=job, is_done=Recorder().is_done, stop=stop,
        ingest_every=timedelta(seconds=0.2),
    )  # fmt: skip
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
    store.close()
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


def test_the_digest_job_builds_once_publishes_and_sends_what_is_due(store: Store, tmp_path: Path) -> None:
    p = profile("cl", ["ada@example.org", "alan@example.org"], schedule="0 7 * * *", timezone=BERLIN)
    day = date(2026, 3, 29)
    calls: list[str] = []

    def build(p: Profile, day: date) -> tuple[Digest, bool]:
        stored = store.load_digest(p, day)
        if stored is not None:
            return stored, False
        calls.append("build")
        (digest,) = save_digests(store, [p], day)
        return digest, True

    def send(digests):
        calls.append("send")
        outgoing = outgoing_for(list(digests))
        return send_digests(store, None, outgoing, outbox=tmp_path / "outbox", clock=lambda: utc(2026, 3, 29, 5))

    job = digest_job(build=build, send=send, publish=lambda d: calls.append(f"publish {len(d.items)}"))
    first = run_due_once(
        [p], now=utc(2026, 3, 29, 5, 30), run_profile=job, run_ingest=JobReport,
        is_done=lambda p, d: digest_done(store, p, d, "outbox"),
    )  # fmt: skip
    assert first[1].report is not None and dict(first[1].report.counts) == {
        "built": 1,
        "papers": 3,
        "sent": 2,
        "failed": 0,
        "pending": 0,
    }
    assert calls == ["build", "publish 3", "send"]
    assert len(list((tmp_path / "outbox").iterdir())) == 2
    # Run by hand again (digest build --send): the stored digest is reused, nothing new is sent.
    again = job(p, day)
    assert calls[3:] == ["publish 3", "send"] and again.counts["built"] == 0 and again.counts["sent"] == 0
    assert due_digests(store, [p], today=day, transport="outbox") == []
    # Written to the outbox only: once SMTP is configured, the day is still to be sent.
    assert [d.date for d in due_digests(store, [p], today=day, transport="smtp")] == [day]


def test_due_digests_are_the_recent_ones_with_emails_to_go(store: Store) -> None:
    p = profile("cl", ["ada@example.org"])
    (old,) = save_digests(store, [p], date(2026, 3, 1))
    (recent,) = save_digests(store, [p], date(2026, 3, 28))
    today = date(2026, 3, 29)
    assert [d.date for d in due_digests(store, [p], today=today)] == [recent.date]
    assert [d.date for d in due_digests(store, [p], today=today, day=old.date)] == [old.date]
    assert due_digests(store, [p], today=today, days=60) == [  # oldest first
        store.load_digest(p, old.date),
        store.load_digest(p, recent.date),
    ]


# -- when a digest that delivered nothing may still be rebuilt ---------------------------------


def status(**changes: object) -> DigestStatus:
    base = DigestStatus("built", 3, reached_someone=False, later_digest=False)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_digest_is_final_once_anything_of_it_may_have_reached_someone() -> None:
    deadline = utc(2026, 3, 29, 17)
    before, after = utc(2026, 3, 29, 9), utc(2026, 3, 29, 17, 0, 1)
    assert not digest_is_final(status(), now=before, deadline=deadline)  # empty, or every email still waiting
    assert not digest_is_final(status(), now=deadline, deadline=deadline)
    assert digest_is_final(status(), now=after, deadline=deadline)
    assert digest_is_final(status(state="delivered"), now=before, deadline=deadline)  # a feed or an email
    assert digest_is_final(status(state="failed"), now=before, deadline=deadline)  # given up: papers come back
    assert digest_is_final(status(reached_someone=True), now=before, deadline=deadline)  # 'sending', or maybe sent
    assert digest_is_final(status(later_digest=True), now=before, deadline=deadline)  # the next one has begun


def test_the_rebuild_deadline_is_the_end_of_the_days_catch_up_window() -> None:
    berlin = profile("b", [], schedule="0 7 * * *", timezone=BERLIN)
    # 07:00 CEST plus 12 hours; with a week of catch-up, the next day's tick comes first.
    assert rebuild_deadline(berlin, date(2026, 3, 29)) == utc(2026, 3, 29, 17)
    assert rebuild_deadline(berlin, date(2026, 3, 29), timedelta(hours=168)) == utc(2026, 3, 30, 5)
    # The window matches the scheduler's: the day is due exactly until its deadline.
    assert due_day(berlin, utc(2026, 3, 29, 17, 0)) == date(2026, 3, 29)
    assert due_day(berlin, utc(2026, 3, 29, 17, 0, 1)) is None
    # Several ticks a day: from the last one; a day without a tick (a manual build): from its end.
    twice = profile("t", [], schedule="0 6,18 * * *", timezone="UTC")
    assert rebuild_deadline(twice, date(2026, 3, 29), timedelta(hours=3)) == utc(2026, 3, 29, 21)
    mondays = profile("m", [], schedule="0 7 * * mon", timezone="UTC")  # 2026-04-01 is a Wednesday
    assert rebuild_deadline(mondays, date(2026, 4, 1)) == utc(2026, 4, 2, 12)
    assert rebuild_deadline(mondays, date(2026, 4, 4), timedelta(hours=168)) == utc(2026, 4, 6, 7)
