"""`digest status` (the health verdict) and `digest prune` (the retention period), on real stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.app import App
from digest.config import Config, ConfigError, load_config
from digest.deliver import RETRY_DAYS
from digest.health import Attention, Health, HealthInputs, assess
from digest.models import Digest, Dump, Entry, Profile, Reason, ReasonKind, ScoredPaper
from digest.retention import LEDGER_REACH
from digest.rows import PruneCounts
from digest.store import Store, Validators, open_store

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
TODAY = NOW.date()

CONFIG = """\
[digest]
db = "state.db"
inbox = "inbox"
outbox = "outbox"
stale_after_days = 3
feed_size = 4

[[profiles]]
id = "alpha"
keywords = ["alpha"]
subscribers = ["ada@example.org"]

[[profiles]]
id = "weekly"
keywords = ["beta"]
subscribers = ["bob@example.org"]
schedule = "0 7 * * 1"
timezone = "Europe/Berlin"
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "digest.toml").write_text(CONFIG)
    return load_config(tmp_path / "digest.toml", tmp_path)


@pytest.fixture
def db(config: Config) -> Store:
    store = open_store(config.db)
    yield store
    store.close()


def add_listing(store: Store, day: date, count: int = 3, tag: str = "") -> None:
    entries = tuple(
        Entry(title=f"Paper {tag}{day} {n}", abstract="An abstract.", authors_count=2, published=day, line=n)
        for n in range(1, count + 1)
    )
    at = datetime.combine(day, datetime.min.time(), UTC)
    store.add_dump(Dump(source=f"{day}.txt", date=day, entries=entries, kind="hf-text"), f"sha-{tag}{day}", at)


def build(store: Store, profile: Profile, day: date, *, papers: int = 2, at: datetime | None = None) -> Digest:
    """A digest of `papers` of the store's newest papers, saved and published as a feed does."""
    at = at or datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=7)
    picked = store.recent_papers(papers)
    items = tuple(ScoredPaper(p, 0.5, (Reason(ReasonKind.LEGACY, text="why"),)) for p in picked)
    digest = Digest(profile=profile, date=day, items=items, built_at=at, candidates=len(picked))
    assert store.save_digest(digest, store.watermark())
    store.set_digest_state(profile.id, day, "delivered", at)
    return digest


def health_of(config: Config, store: Store, now: datetime) -> Health:
    return App(config, clock=lambda: now, environ={}, store=store).status()


def prune(config: Config, store: Store, today: date, *, dry_run: bool = False) -> PruneCounts:
    now = datetime.combine(today, datetime.min.time(), UTC)
    return App(config, clock=lambda: now, environ={}, store=store).prune(dry_run=dry_run)[1]


def mail(store: Store, profile: Profile, day: date, state: str = "sent", at: datetime | None = None) -> None:
    at = at or datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=7, minutes=1)
    keys = [(profile.id, day, s) for s in profile.subscribers]
    store.add_deliveries(keys, lambda key: f"<{key[0]}.{key[1]}.{key[2]}@test>", "smtp", at)
    for key in keys:
        if state == "sent":
            store.mark_delivery_sending(key, at)
            store.mark_delivery_sent(key, at)
        elif state == "failed":
            store.record_delivery_attempt(key, "failed", at, error="550 no such user")


def healthy_store(store: Store, config: Config, today: date = TODAY) -> None:
    """A deployment doing its job on `today`: a fresh dump, every profile built and mailed
    on the days its schedule asks (alpha daily, weekly on Mondays)."""
    add_listing(store, today)
    alpha, weekly = config.profiles
    build(store, alpha, today)
    mail(store, alpha, today)
    monday = today - timedelta(days=today.weekday())
    build(store, weekly, monday)
    mail(store, weekly, monday)


def kinds(health) -> list[tuple[str | None, Attention]]:
    return [(f.profile_id, f.kind) for f in health.findings]


# -- the verdict (a pure function over what the store says) -------------------------------


def test_a_deployment_doing_its_job_is_healthy(db: Store, config: Config) -> None:
    healthy_store(db, config)
    health = health_of(config, db, NOW)
    assert health.healthy and health.findings == ()
    data = health.to_json()
    assert data["healthy"] is True and data["dumps"] == {
        "newest": "2026-11-22",
        "age_days": 0,
        "stale_after_days": 3,
        "stale": False,
    }
    alpha, weekly = data["profiles"]
    assert alpha["built"]["day"] == "2026-11-22" and alpha["built"]["papers"] == 2
    assert alpha["published"]["day"] == "2026-11-22"
    assert alpha["mailed"] == {"day": "2026-11-22", "at": "2026-11-22T07:01:00+00:00", "transport": "smtp"}
    assert alpha["emails"] == {"pending": 0, "failed": 0}
    assert alpha["next_tick"] == "2026-11-23T07:00:00+00:00"
    # Sunday the 22nd: the weekly profile's digest was Monday the 16th, its next tick Monday the 23rd, Berlin time.
    assert weekly["built"]["day"] == "2026-11-16" and weekly["due_day"] == "2026-11-16"
    assert weekly["next_tick"] == "2026-11-23T07:00:00+01:00"
    assert data["database"]["bytes"] == config.db.stat().st_size + (config.db.parent / "state.db-wal").stat().st_size


def test_a_stale_inbox_needs_attention(db: Store, config: Config) -> None:
    healthy_store(db, config, today=TODAY - timedelta(days=4))
    alpha, _ = config.profiles
    build(db, alpha, TODAY)
    health = health_of(config, db, NOW)
    assert kinds(health) == [(None, Attention.STALE)]
    assert health.findings[0].message.startswith("no new papers since 2026-11-18: the newest dump is 4 days old")
    assert health.stale and health.to_json()["dumps"]["stale"] is True


def test_no_dumps_at_all_need_attention(db: Store, config: Config) -> None:
    assert kinds(health_of(config, db, NOW))[0] == (None, Attention.NO_DUMPS)


def test_an_email_still_pending_or_refused_needs_attention(db: Store, config: Config) -> None:
    healthy_store(db, config)
    _, weekly = config.profiles
    db.add_deliveries([("alpha", TODAY, "late@example.org")], lambda key: "<late@test>", "smtp", NOW)
    mail(db, weekly, TODAY - timedelta(days=3), state="failed")
    mail(db, weekly, TODAY - timedelta(days=30), state="failed")  # older than the retry week: history
    health = health_of(config, db, NOW)
    assert kinds(health) == [("alpha", Attention.EMAILS_PENDING), ("weekly", Attention.EMAILS_FAILED)]
    assert [f.message for f in health.findings] == [
        "alpha: 1 email not sent yet",
        "weekly: 1 email refused for good in the last 7 days",
    ]


def test_a_profile_never_built_needs_attention(db: Store, config: Config) -> None:
    add_listing(db, TODAY)
    alpha, _ = config.profiles
    build(db, alpha, TODAY)
    mail(db, alpha, TODAY)
    health = health_of(config, db, NOW)
    assert kinds(health) == [("weekly", Attention.NEVER_BUILT)]
    assert health.to_json()["profiles"][1]["built"] is None


def test_a_profile_behind_its_schedule_needs_attention(db: Store, config: Config) -> None:
    # The service stopped: alpha's daily digest was last built three days ago.
    healthy_store(db, config)
    later = NOW + timedelta(days=3)
    add_listing(db, later.date(), tag="later")
    health = health_of(config, db, later)
    assert kinds(health) == [("alpha", Attention.BEHIND), ("weekly", Attention.BEHIND)]
    assert [f.message for f in health.findings] == [
        "alpha: the last digest is of 2026-11-22, but its schedule was due on 2026-11-25",
        "weekly: the last digest is of 2026-11-16, but its schedule was due on 2026-11-23",
    ]


def test_a_tick_that_has_just_passed_is_not_due_yet(db: Store, config: Config) -> None:
    healthy_store(db, config, today=TODAY - timedelta(days=1))
    add_listing(db, TODAY, tag="today")
    just_after = datetime(2026, 11, 22, 7, 30, tzinfo=UTC)  # alpha ticks at 07:00 UTC, the job may be running
    assert health_of(config, db, just_after).healthy
    assert kinds(health_of(config, db, just_after + timedelta(hours=1))) == [("alpha", Attention.BEHIND)]


def test_no_database_needs_attention_and_nothing_else() -> None:
    inputs = HealthInputs(NOW, Path("/nowhere/state.db"), None, None, 3)
    health = assess(inputs)
    assert kinds(health) == [(None, Attention.NO_DATABASE)]
    assert health.to_json()["database"] == {"path": "/nowhere/state.db", "bytes": None}


# -- the command -------------------------------------------------------------------------


def digest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "GITHUB_"))}
    return subprocess.run(
        [sys.executable, "-m", "digest", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def real_now() -> datetime:
    # The command reads the real clock; a day built at noon of today is safely "today".
    return datetime.now(UTC)


def test_status_of_a_healthy_store_exits_0(config: Config, tmp_path: Path) -> None:
    store = open_store(config.db)
    healthy_store(store, config, today=real_now().date())
    store.close()
    result = digest("status", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("database: state.db (") and lines[0].endswith(" MB)")
    assert lines[1] == f"newest dump: {real_now().date()}, 0 days old (stale after 3)"
    assert lines[2].split() == ["profile", "built", "published", "mailed", "pending", "failed", "next", "tick"]
    assert lines[3].startswith("alpha ") and "(2 papers)" in lines[3] and "(smtp)" in lines[3]
    assert lines[-1] == "healthy"
    as_json = digest("status", "--json", cwd=tmp_path)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["healthy"] is True


def test_status_of_a_stale_inbox_exits_1(config: Config, tmp_path: Path) -> None:
    # Built and mailed today, as a daily run does, but from a listing of last year.
    store = open_store(config.db)
    today = real_now().date()
    healthy_store(store, config, today=today)
    store.close()
    stale_dir = tmp_path / "stale"
    stale_dir.mkdir()
    (stale_dir / "digest.toml").write_text(CONFIG)
    store = open_store(stale_dir / "state.db")
    add_listing(store, date(2025, 12, 31))
    alpha, weekly = config.profiles
    build(store, alpha, today)
    mail(store, alpha, today)
    build(store, weekly, today - timedelta(days=today.weekday()))
    store.close()
    result = digest("status", cwd=stale_dir)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "attention: no new papers since 2025-12-31" in result.stdout
    data = json.loads(digest("status", "--json", cwd=stale_dir).stdout)
    assert data["healthy"] is False and data["dumps"]["stale"] is True and data["dumps"]["newest"] == "2025-12-31"
    assert [(a["kind"], a["profile"]) for a in data["attention"]] == [("stale", None)]


def test_status_with_a_pending_email_exits_1(config: Config, tmp_path: Path) -> None:
    store = open_store(config.db)
    today = real_now().date()
    healthy_store(store, config, today=today)
    store.add_deliveries([("alpha", today, "late@example.org")], lambda key: "<late@test>", "smtp", real_now())
    store.close()
    result = digest("status", cwd=tmp_path)
    assert result.returncode == 1
    assert "attention: alpha: 1 email not sent yet" in result.stdout
    assert result.stdout.splitlines()[-1] == "1 thing needs attention"


def test_with_smtp_set_an_email_only_written_to_the_outbox_is_still_to_go(config: Config, tmp_path: Path) -> None:
    # `build` without --send writes a preview to the outbox; `status` said healthy and
    # `deliveries` said "sent", though nothing went over SMTP until `send`.
    store = open_store(config.db)
    today = real_now().date()
    healthy_store(store, config, today=today)
    key = ("alpha", today, "preview@example.org")
    store.add_deliveries([key], lambda _: "<preview@test>", "outbox", real_now())
    store.mark_delivery_sending(key, real_now())
    store.mark_delivery_sent(key, real_now())
    store.close()
    assert digest("status", cwd=tmp_path).returncode == 0, "without [smtp] the outbox is where mail goes"
    (tmp_path / "digest.toml").write_text(CONFIG + '\n[smtp]\nhost = "127.0.0.1"\nport = 1\nsecurity = "none"\n')
    result = digest("status", cwd=tmp_path)
    assert result.returncode == 1 and "attention: alpha: 1 email not sent yet" in result.stdout, result.stdout
    listed = digest("deliveries", cwd=tmp_path).stdout
    (line,) = [ln for ln in listed.splitlines() if "preview@example.org" in ln]
    assert line.split()[3] == "outbox" and listed.splitlines()[-1] == "3 deliveries: 1 outbox, 2 sent"


def test_status_with_a_profile_never_built_exits_1(config: Config, tmp_path: Path) -> None:
    store = open_store(config.db)
    today = real_now().date()
    add_listing(store, today)
    alpha, _ = config.profiles
    build(store, alpha, today)
    mail(store, alpha, today)
    store.close()
    result = digest("status", cwd=tmp_path)
    assert result.returncode == 1
    weekly = next(line for line in result.stdout.splitlines() if line.startswith("weekly "))
    assert weekly.split()[1:4] == ["never", "never", "never"]
    assert "attention: weekly: never built" in result.stdout


def test_status_without_a_database_exits_1_and_creates_none(config: Config, tmp_path: Path) -> None:
    result = digest("status", "--json", cwd=tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout)["attention"][0]["kind"] == "no-database"
    assert not config.db.exists() and not (tmp_path / ".digest").exists()


# -- prune -----------------------------------------------------------------------------------


def test_prune_forgets_old_finished_records_only(db: Store, config: Config) -> None:
    alpha, weekly = config.profiles
    old, recent = TODAY - timedelta(days=500), TODAY - timedelta(days=10)
    for day, tag in ((old, "old"), (recent, "recent")):
        add_listing(db, day, count=6, tag=tag)
        build(db, alpha, day, papers=4 if tag == "recent" else 3)  # alpha's feed (4 entries): recent only
        mail(db, alpha, day)
        build(db, weekly, day, papers=1)
        mail(db, weekly, day)
        db.save_fetch(f"https://hf.test/api/daily_papers?date={day}", day, Validators(etag='"e"'), NOW)
    # An old email still to go is never forgotten.
    db.add_deliveries([("alpha", old, "late@example.org")], lambda key: "<late@test>", "smtp", NOW)
    papers = db.paper_count()

    dry = prune(config, db, TODAY, dry_run=True)
    assert (dry.deliveries, dry.fetches) == (1, 1)
    assert len(db.deliveries()) == 5, "a dry run deletes nothing"

    counts = prune(config, db, TODAY)
    assert (counts.deliveries, counts.fetches) == (1, 1)
    left = {(r.profile_id, r.day, r.subscriber) for r in db.deliveries()}
    assert left == {
        ("alpha", old, "late@example.org"),  # pending
        ("weekly", old, "bob@example.org"),  # its feed (feed_size 4) still shows that digest
        ("alpha", recent, "ada@example.org"),
        ("weekly", recent, "bob@example.org"),
    }
    assert db.fetch_validators(f"https://hf.test/api/daily_papers?date={old}") is None
    assert db.fetch_validators(f"https://hf.test/api/daily_papers?date={recent}") is not None
    assert db.paper_count() == papers and db.digest_days("alpha") == [recent, old]
    assert len(db.digest_entries("weekly", 4)) == 2


def test_prune_keeps_the_rows_an_accepted_date_reaches_back_to(db: Store, config: Config) -> None:
    # A run for the oldest day `--date` accepts also finishes the digests of the week before it
    # and sends the month's roll-up before it (dated up to 31 days earlier): with their rows
    # pruned, it mailed them again (a digest with no row is not done).
    alpha, _ = config.profiles
    oldest_accepted = TODAY - timedelta(days=config.retention_days)
    assert timedelta(days=max(RETRY_DAYS, 31)) <= LEDGER_REACH
    reached, beyond = oldest_accepted - LEDGER_REACH, oldest_accepted - LEDGER_REACH - timedelta(days=1)
    for day, tag in ((beyond, "beyond"), (reached, "reached")):  # the feed shows the later one
        add_listing(db, day, count=3, tag=tag)
        build(db, alpha, day, papers=1)
        mail(db, alpha, day)
    add_listing(db, TODAY, count=3, tag="today")
    build(db, alpha, TODAY, papers=1)
    keep_feed = replace(config, feed_size=1)  # alpha's feed shows today's only
    assert prune(keep_feed, db, TODAY).deliveries == 1
    assert {r.day for r in db.deliveries()} == {reached}  # today's digest was not mailed here


def test_prune_command_reports_what_it_did(config: Config, tmp_path: Path) -> None:
    store = open_store(config.db)
    store.save_fetch("https://hf.test/old", date(2020, 1, 1), Validators(etag='"e"'), NOW)
    store.close()
    dry = digest("prune", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and dry.stdout.startswith("would prune 0 ledger rows and 1 fetch record from before ")
    done = digest("prune", cwd=tmp_path)
    assert done.returncode == 0 and "(retention_days = 400)" in done.stdout
    assert digest("prune", cwd=tmp_path).stdout.startswith("pruned 0 ledger rows and 0 fetch records")


def test_a_digest_day_past_the_retention_is_never_sent_again(config: Config, tmp_path: Path) -> None:
    # Its ledger rows may be gone: sending it again would mail the reader twice without a record.
    old = real_now().date() - timedelta(days=401)
    store = open_store(config.db)
    add_listing(store, old)
    alpha, _ = config.profiles
    build(store, alpha, old)
    store.close()
    for command in ("send", "build", "run"):
        result = digest(command, "--date", old.isoformat(), cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert f"--date {old} is more than retention_days = 400 days ago" in result.stderr
    assert not (tmp_path / "outbox").exists()
    recent = digest("send", "--date", (old + timedelta(days=2)).isoformat(), "--dry-run", cwd=tmp_path)
    assert recent.returncode == 0, recent.stderr


def test_a_day_an_earlier_prune_reached_is_refused_after_retention_days_is_raised(
    config: Config, tmp_path: Path
) -> None:
    # The prune deleted the day's ledger rows; with the longer retention the day is inside
    # it again, and a send would have mailed the reader that digest a second time.
    today = real_now().date()
    old = today - timedelta(days=75)
    short = CONFIG.replace("feed_size = 4", "feed_size = 1\nretention_days = 30")
    (tmp_path / "digest.toml").write_text(short)
    store = open_store(config.db)
    alpha, _ = config.profiles
    add_listing(store, old, tag="old")
    build(store, alpha, old)
    mail(store, alpha, old)
    add_listing(store, today, tag="new")
    build(store, alpha, today)  # the feed (one entry) now shows today's digest only
    store.close()
    assert digest("prune", "--dry-run", cwd=tmp_path).returncode == 0
    store = open_store(config.db)
    assert store.pruned_before() is None, "a dry run records nothing"
    store.close()
    pruned = digest("prune", cwd=tmp_path)
    assert pruned.returncode == 0 and pruned.stdout.startswith("pruned 1 ledger row"), pruned.stdout
    (tmp_path / "digest.toml").write_text(CONFIG)  # retention_days back to 400
    for command in ("send", "build", "run"):
        result = digest(command, "--date", old.isoformat(), cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert "an earlier `digest prune` kept the delivery ledger of" in result.stderr
    assert not (tmp_path / "outbox").exists()
    store = open_store(config.db)
    assert store.pruned_before() == today - timedelta(days=30) - LEDGER_REACH
    assert store.deliveries() == [], "nothing mailed again"
    store.close()
    kept = today - timedelta(days=30)  # the oldest --date whose runs read only rows that prune kept
    assert digest("send", "--date", kept.isoformat(), "--dry-run", cwd=tmp_path).returncode == 0


def test_retention_days_is_a_checked_setting(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text("[digest]\nretention_days = 90\n")
    assert load_config(tmp_path / "digest.toml", tmp_path).retention_days == 90
    assert load_config(None, tmp_path).retention_days == 400
    (tmp_path / "digest.toml").write_text("[digest]\n\nretention_days = 7\n")
    with pytest.raises(ConfigError, match=r"digest.toml:3: .*retention_days"):
        load_config(tmp_path / "digest.toml", tmp_path)
