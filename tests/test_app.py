"""The application facade end to end: the real seeds, the shipped profiles, real files, a real SMTP server."""

from __future__ import annotations

import email
import shutil
import socket
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
from conftest import ROOT, SEEDS
from mailserver import Faults, MailServer

from digest.app import App
from digest.config import Config, ConfigError, SmtpSettings, load_config
from digest.deliver import RETRY_DAYS
from digest.ingest.hf_dump import format_dump
from digest.models import Entry
from digest.pipeline import find_dump_files, ingest_files
from digest.store import Store

NOW = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
NO_KEY: dict[str, str] = {}


def clock_at(moment: datetime):
    return lambda: moment


def shipped_config(tmp_path: Path, **changes: object) -> Config:
    config = load_config(ROOT / "digest.toml", ROOT, environ=NO_KEY)
    folders = {name: tmp_path / name for name in ("feeds", "site", "digests", "outbox", "quarantine")}
    return replace(config, inbox=SEEDS, db=tmp_path / "state.db", **folders, **changes)  # type: ignore[arg-type]


def ingest(store: Store, paths: list[Path], tmp_path: Path, now: datetime = NOW) -> None:
    files = find_dump_files(paths)
    ingest_files(store, files, quarantine=tmp_path / "quarantine", today=now.date(), now=now)


def app_at(config: Config, store: Store, now: datetime = NOW, environ: dict[str, str] = NO_KEY) -> App:
    return App(config, clock=clock_at(now), environ=environ, store=store)


def run(config: Config, store: Store, now: datetime = NOW, *, smtp: bool = False):
    return app_at(config, store, now).build(config.profiles, send=smtp)


def eml_recipients(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.glob("*.eml")):
        found.append(email.message_from_bytes(path.read_bytes(), policy=policy.default)["To"])
    return sorted(found)


def test_a_build_over_the_seeds_publishes_every_output(store: Store, tmp_path: Path) -> None:
    config = shipped_config(tmp_path)
    ingest(store, [SEEDS], tmp_path)
    report = run(config, store)
    assert [d.profile.id for d in report.built] == [p.id for p in config.profiles]
    for digest in report.digests:
        profile = digest.profile
        assert digest.date == date(2026, 1, 10) and digest.candidates == 309
        assert 1 <= len(digest.items) <= profile.max_items, profile.id
        assert all(item.score >= profile.min_score and item.reasons for item in digest.items)
        assert (config.feeds / f"{profile.id}.atom").exists() and (config.site / "feeds" / f"{profile.id}.rss").exists()
        assert (config.digests / profile.id / "2026-01-10.md").exists()
        assert store.digest_state(profile.id, digest.date) == "delivered"
    assert (config.site / "index.html").exists() and (config.feeds / "all.atom").exists()
    expected = sorted(s for p in config.profiles for s in p.subscribers)
    assert eml_recipients(config.outbox) == expected
    assert report.delivery is not None and report.delivery.transport == "outbox"
    assert len(report.delivery.sent) == len(expected)


def test_building_the_same_day_again_changes_nothing(store: Store, tmp_path: Path) -> None:
    config = shipped_config(tmp_path)
    ingest(store, [SEEDS], tmp_path)
    first = run(config, store)
    files = {p: p.read_bytes() for p in (config.feeds, config.site, config.outbox) for p in p.rglob("*") if p.is_file()}
    again = run(config, store, NOW + timedelta(hours=3))
    assert again.built == [] and again.written == []
    assert [d.items for d in again.digests] == [d.items for d in first.digests]
    subscribers = sum(len(p.subscribers) for p in config.profiles)
    assert again.delivery is not None and (len(again.delivery.sent), again.delivery.already) == (0, subscribers)
    assert {p: p.read_bytes() for p in files} == files


def test_a_quiet_day_gives_empty_digests_and_unchanged_feeds(store: Store, tmp_path: Path) -> None:
    config = shipped_config(tmp_path)
    ingest(store, [SEEDS], tmp_path)
    run(config, store)
    feeds = {p: p.read_bytes() for p in config.feeds.glob("*.*")}
    quiet = run(config, store, NOW + timedelta(days=1))
    assert all(not d.items and d.empty_reason == "no-new-papers" and d.candidates == 0 for d in quiet.digests)
    assert {p: p.read_bytes() for p in feeds} == feeds
    assert quiet.delivery is not None and quiet.delivery.sent == []
    index = (config.site / "index.html").read_text()
    assert "no new papers" in index.lower()


def test_the_next_dump_brings_only_papers_not_given_before(store: Store, tmp_path: Path) -> None:
    config = shipped_config(tmp_path)
    ingest(store, [SEEDS], tmp_path)
    first = run(config, store)
    given = {item.paper.title for d in first.digests for item in d.items}
    repeat = next(iter(given))
    day = date(2026, 1, 11)
    fresh = Entry(
        "Rehearsal-Free Class-Incremental Learning without Catastrophic Forgetting",
        "We study continual learning and catastrophic forgetting in class-incremental learning.",
        4,
        None,
        day,
        12,
    )
    (tmp_path / "next.txt").write_text(format_dump(day, [fresh, Entry(repeat, "Again.", 2, None, day, 40)]))
    ingest(store, [tmp_path / "next.txt"], tmp_path, NOW + timedelta(days=1))
    second = run(config, store, NOW + timedelta(days=1))
    titles = {d.profile.id: [i.paper.title for i in d.items] for d in second.digests}
    assert titles["continual-learning"] == [fresh.title]
    assert all(repeat not in t for t in titles.values())


def smtp_config(tmp_path: Path, port: int) -> Config:
    smtp = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5, attempts=2, backoff=0.01)
    return shipped_config(tmp_path, smtp=smtp)


def test_send_over_smtp_reaches_each_subscriber_once(store: Store, tmp_path: Path) -> None:
    ingest(store, [SEEDS], tmp_path)
    with MailServer() as server:
        config = smtp_config(tmp_path, server.port)
        report = run(config, store, smtp=True)
        again = run(config, store, smtp=True)
        received = server.by_recipient()
    expected = sorted(s for p in config.profiles for s in p.subscribers)
    assert sorted(received) == expected and all(len(copies) == 1 for copies in received.values())
    assert report.delivery is not None and report.delivery.transport == "smtp" and report.delivery.complete
    assert again.delivery is not None and again.delivery.sent == []
    message = received["ada@example.org"][0].message
    assert message["Subject"].endswith("new papers for Continual learning — Sat 10 Jan 2026")
    assert message["From"] == "Paper Digest <digest@example.org>"
    assert not list(config.outbox.glob("*.eml"))


def test_an_email_only_digest_refused_for_good_gives_its_papers_back(store: Store, tmp_path: Path) -> None:
    ingest(store, [SEEDS], tmp_path)
    with MailServer(faults=Faults(refuse={"ada@example.org": "550 5.1.1 no such user"})) as server:
        config = smtp_config(tmp_path, server.port)
        cl = replace(config.profiles[0], formats=("email",))
        config = replace(config, profiles=(cl,))
        first = run(config, store, smtp=True)
        assert store.digest_state(cl.id, first.digests[0].date) == "failed"
        given = [i.paper.id for i in first.digests[0].items]
        second = run(config, store, NOW + timedelta(days=1), smtp=True)
    # The same papers come back (ranked again among themselves, so perhaps in another order).
    assert sorted(i.paper.id for i in second.digests[0].items) == sorted(given)


def test_a_short_unsubscribe_key_stops_the_run_before_anything_is_written(store: Store, tmp_path: Path) -> None:
    config = shipped_config(tmp_path)
    ingest(store, [SEEDS], tmp_path)
    with pytest.raises(ConfigError, match="too short"):
        app_at(config, store, environ={"DIGEST_UNSUBSCRIBE_KEY": "x"}).build(config.profiles)
    assert not config.feeds.exists() and store.digest_days("continual-learning") == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def email_only(config: Config) -> Config:
    return replace(config, profiles=(replace(config.profiles[0], formats=("email",)),))


def test_emails_a_failed_run_left_pending_go_out_with_the_next_run(store: Store, tmp_path: Path) -> None:
    ingest(store, [SEEDS], tmp_path)
    port = free_port()
    config = email_only(smtp_config(tmp_path, port))
    profile = config.profiles[0]
    down = run(config, store, smtp=True)  # nothing listens on the port yet
    assert down.delivery is not None and down.delivery.sent == [] and down.delivery.pending
    day_one = down.digests[0].date
    assert store.digest_state(profile.id, day_one) == "built"
    with MailServer(port=port) as server:
        up = run(config, store, NOW + timedelta(days=1), smtp=True)
        again = run(config, store, NOW + timedelta(days=1), smtp=True)
        received = server.by_recipient()
    assert sorted(received) == sorted(profile.subscribers)
    assert all(len(copies) == 1 for copies in received.values())
    assert all(c[0].message["Subject"].endswith("Sat 10 Jan 2026") for c in received.values())
    assert up.delivery is not None and len(up.delivery.sent) == len(profile.subscribers)
    assert again.delivery is not None and again.delivery.sent == []
    assert store.digest_state(profile.id, day_one) == "delivered"


def test_emails_unsent_for_a_week_are_given_up_and_their_papers_come_back(store: Store, tmp_path: Path) -> None:
    ingest(store, [SEEDS], tmp_path)
    config = email_only(smtp_config(tmp_path, free_port()))  # the server never comes up
    profile = config.profiles[0]
    first = run(config, store, smtp=True)
    given = sorted(i.paper.id for i in first.digests[0].items)
    run(config, store, NOW + timedelta(days=RETRY_DAYS - 1), smtp=True)
    assert {r.state for r in store.deliveries(day=first.digests[0].date)} == {"pending"}
    week_later = run(config, store, NOW + timedelta(days=RETRY_DAYS), smtp=True)
    rows = store.deliveries(day=first.digests[0].date)
    assert {r.state for r in rows} == {"failed"} and all("given up" in (r.last_error or "") for r in rows)
    # Counted as failed by the run that gave them up (exit code 3), not only warned about.
    assert week_later.delivery is not None
    assert sorted(key for key, _ in week_later.delivery.failed if key.day == first.digests[0].date) == sorted(
        r.key for r in rows
    )
    assert store.digest_state(profile.id, first.digests[0].date) == "failed"
    later = run(config, store, NOW + timedelta(days=RETRY_DAYS + 1), smtp=True)
    assert sorted(i.paper.id for i in later.digests[0].items) == given


def test_an_outbox_preview_while_smtp_is_configured_does_not_deliver_the_papers(store: Store, tmp_path: Path) -> None:
    ingest(store, [SEEDS], tmp_path)
    with MailServer() as server:
        config = email_only(smtp_config(tmp_path, server.port))
        profile = config.profiles[0]
        preview = run(config, store)  # `digest build` without --send: .eml files only
        day = preview.digests[0].date
        assert len(list(config.outbox.glob("*.eml"))) == len(profile.subscribers)
        assert store.digest_state(profile.id, day) == "built"
        assert server.by_recipient() == {}
        sent = run(config, store, smtp=True)
        assert sent.delivery is not None and len(sent.delivery.sent) == len(profile.subscribers)
        assert sorted(server.by_recipient()) == sorted(profile.subscribers)
    assert store.digest_state(profile.id, day) == "delivered"


def test_the_real_emails_reach_the_server_with_every_header(store: Store, tmp_path: Path) -> None:
    ingest(store, [SEEDS], tmp_path)
    environ = {"DIGEST_UNSUBSCRIBE_KEY": "a-key-of-at-least-16-characters"}
    with MailServer() as server:
        config = smtp_config(tmp_path, server.port)
        app_at(config, store, environ=environ).build(config.profiles, send=True)
        received = server.by_recipient()
    ledger = {row.subscriber: row for row in store.deliveries() if row.profile_id == "continual-learning"}
    (copy,) = received["ada@example.org"]
    message = copy.message
    assert copy.rcpt_tos == ("ada@example.org",) and message["To"] == "ada@example.org"
    assert message["Message-ID"] == ledger["ada@example.org"].message_id
    assert message["List-Id"].startswith("Continual learning <continual-learning.")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "token=" in message["List-Unsubscribe"] and "mailto:" in message["List-Unsubscribe"]
    assert message["Date"] is not None and message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert "=?utf-8?" in copy.data.split(b"\r\n\r\n", 1)[0].decode().lower()  # the em dash, encoded
    assert message["Subject"].endswith("new papers for Continual learning — Sat 10 Jan 2026")


def test_a_tick_missed_longer_ago_than_catch_up_hours_is_skipped(store: Store, tmp_path: Path) -> None:
    from digest.schedule import serve_once

    ingest(store, [SEEDS], tmp_path)
    woke = datetime(2026, 1, 10, 20, 0, tzinfo=UTC)  # the 07:00 digest was missed by 13 hours
    config = shipped_config(tmp_path)
    config = replace(config, profiles=(replace(config.profiles[0], schedule="0 7 * * *", timezone="UTC"),))
    skipped = serve_once(app_at(config, store, woke))
    assert [run.status for run in skipped if run.job.startswith("profile")] == ["not-due"]
    assert store.digest_days(config.profiles[0].id) == []
    caught = serve_once(app_at(replace(config, catch_up_hours=14), store, woke))
    assert [(run.status, run.day) for run in caught if run.job.startswith("profile")] == [("ok", date(2026, 1, 10))]
    assert store.digest_days(config.profiles[0].id) == [date(2026, 1, 10)]


# -- a digest built before its papers arrived ------------------------------------------------------


def late_paper(day: date, title: str = "Replay-Free Continual Learning That Arrived Late") -> Entry:
    return Entry(title, "We study continual learning and catastrophic forgetting without replay.", 3, None, day, 9)


def test_a_digest_built_before_the_dumps_arrived_is_rebuilt_when_they_come(store: Store, tmp_path: Path) -> None:
    config = shipped_config(tmp_path)
    early = run(config, store)  # 08:00: nothing ingested yet
    assert all(not d.items and d.empty_reason == "no-new-papers" for d in early.digests)
    assert early.delivery is not None and early.delivery.sent == []
    ingest(store, [SEEDS], tmp_path, NOW + timedelta(hours=1))
    later = run(config, store, NOW + timedelta(hours=1))  # the same day, before its deadline (19:00)
    assert (
        [d.profile.id for d in later.rebuilt] == [p.id for p in config.profiles] == [d.profile.id for d in later.built]
    )
    assert all(d.items and d.date == date(2026, 1, 10) and d.candidates == 309 for d in later.digests)
    assert all(d.built_at == NOW + timedelta(hours=1) for d in later.digests)
    assert eml_recipients(config.outbox) == sorted(s for p in config.profiles for s in p.subscribers)
    assert all(store.digest_state(p.id, date(2026, 1, 10)) == "delivered" for p in config.profiles)
    entries = (config.feeds / "continual-learning.atom").read_text()
    assert entries.count("<entry>") == len(later.digests[0].items)
    # Delivered now: final. More papers that day go into the next digest.
    (tmp_path / "more.txt").write_text(format_dump(date(2026, 1, 10), [late_paper(date(2026, 1, 10))]))
    ingest(store, [tmp_path / "more.txt"], tmp_path, NOW + timedelta(hours=2))
    again = run(config, store, NOW + timedelta(hours=2))
    assert again.built == [] and again.delivery is not None and again.delivery.sent == []
    assert [d.items for d in again.digests] == [d.items for d in later.digests]
    tomorrow = run(config, store, NOW + timedelta(days=1))
    assert [i.paper.title for i in tomorrow.digests[0].items] == [late_paper(NOW.date()).title]


def test_papers_that_come_after_the_deadline_wait_for_the_next_digest(store: Store, tmp_path: Path) -> None:
    config = shipped_config(tmp_path)
    run(config, store)  # 08:00, empty; the 07:00 tick's window closes at 19:00 (catch_up_hours = 12)
    evening = datetime(2026, 1, 10, 19, 30, tzinfo=UTC)
    ingest(store, [SEEDS], tmp_path, evening)
    late = run(config, store, evening)
    assert late.built == [] and all(not d.items for d in late.digests)
    wider = run(replace(config, catch_up_hours=13), store, evening)  # a wider window: still open
    assert [d.profile.id for d in wider.rebuilt] == [p.id for p in config.profiles]


def test_a_digest_whose_emails_all_wait_is_rebuilt_and_sent_once_with_its_message_ids(
    store: Store, tmp_path: Path
) -> None:
    ingest(store, [SEEDS / "000_9d0724fe38360f6f.txt"], tmp_path)
    port = free_port()
    config = email_only(smtp_config(tmp_path, port))
    profile = config.profiles[0]
    day = NOW.date()
    down = run(config, store, smtp=True)  # the server is down: every email waits
    (first,) = down.digests
    assert first.items and down.delivery is not None and len(down.delivery.pending) == len(profile.subscribers)
    ids = {row.subscriber: row.message_id for row in store.deliveries()}
    (tmp_path / "late.txt").write_text(format_dump(day, [late_paper(day)]))
    ingest(store, [tmp_path / "late.txt"], tmp_path, NOW + timedelta(hours=2))
    with MailServer(port=port) as server:
        up = run(config, store, NOW + timedelta(hours=3), smtp=True)
        again = run(config, store, NOW + timedelta(hours=4), smtp=True)
        received = server.by_recipient()
    (rebuilt,) = up.rebuilt
    titles = [i.paper.title for i in rebuilt.items]
    assert late_paper(day).title in titles and len(rebuilt.items) <= profile.max_items  # ranked again, together
    assert sorted(received) == sorted(profile.subscribers) and all(len(c) == 1 for c in received.values())
    for address, (copy,) in received.items():
        assert copy.message["Message-ID"] == ids[address]  # the ledger's row, made before the rebuild
        assert late_paper(day).title in copy.message.get_body(("plain",)).get_content()
    assert again.built == [] and again.delivery is not None and again.delivery.sent == []
    assert store.digest_state(profile.id, day) == "delivered"


def test_a_digest_one_email_reached_is_never_rebuilt(store: Store, tmp_path: Path) -> None:
    ingest(store, [SEEDS / "000_9d0724fe38360f6f.txt"], tmp_path)
    faults = Faults(rcpt={"bob@example.org": ["451 4.7.1 try later"] * 2})  # both tries of the first run
    with MailServer(faults=faults) as server:
        config = email_only(smtp_config(tmp_path, server.port))
        cl = replace(config.profiles[0], subscribers=("ada@example.org", "bob@example.org"))
        config = replace(config, profiles=(cl,))
        first = run(config, store, smtp=True)
        assert first.delivery is not None and len(first.delivery.sent) == 1 and first.delivery.pending
        day = NOW.date()
        (tmp_path / "late.txt").write_text(format_dump(day, [late_paper(day)]))
        ingest(store, [tmp_path / "late.txt"], tmp_path, NOW + timedelta(hours=1))
        second = run(config, store, NOW + timedelta(hours=1), smtp=True)
        received = server.by_recipient()
    # ada has it: bob gets the same digest, not a fuller one.
    assert second.built == [] and [d.items for d in second.digests] == [d.items for d in first.digests]
    assert [len(received[a]) for a in ("ada@example.org", "bob@example.org")] == [1, 1]
    assert late_paper(day).title not in received["bob@example.org"][0].message.get_body(("plain",)).get_content()


def test_serve_once_rebuilds_a_due_digest_when_its_papers_come(tmp_path: Path) -> None:
    from digest.schedule import serve_once
    from digest.store import open_store

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    config = replace(shipped_config(tmp_path), inbox=inbox)
    config = replace(config, profiles=(replace(config.profiles[0], schedule="0 7 * * *", timezone="UTC"),))
    store = open_store(config.db)
    try:
        first = serve_once(app_at(config, store, NOW))
        assert [(r.status, r.day) for r in first if r.job.startswith("profile")] == [("ok", date(2026, 1, 10))]
        assert not store.load_digest(config.profiles[0], NOW.date()).items  # type: ignore[union-attr]
        shutil.copy(SEEDS / "000_9d0724fe38360f6f.txt", inbox)
        second = serve_once(app_at(config, store, NOW + timedelta(minutes=15)))
        profile_runs = [r for r in second if r.job.startswith("profile")]
        assert [(r.status, r.day) for r in profile_runs] == [("ok", date(2026, 1, 10))]
        assert profile_runs[0].report is not None and profile_runs[0].report.counts["built"] == 1
        assert store.load_digest(config.profiles[0], NOW.date()).items  # type: ignore[union-attr]
        third = serve_once(app_at(config, store, NOW + timedelta(minutes=30)))
        assert [r.status for r in third if r.job.startswith("profile")] == ["done-before"]
    finally:
        store.close()


def test_the_running_service_rebuilds_when_the_ingest_job_brings_papers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import threading
    import time

    from digest.schedule import build_scheduler
    from digest.store import open_store

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    tick = datetime.now(UTC) - timedelta(minutes=2)  # today's only tick: the start-up run catches it up
    config = replace(shipped_config(tmp_path), inbox=inbox)
    profile = replace(config.profiles[0], schedule=f"{tick.minute} {tick.hour} * * *", timezone="UTC")
    config = replace(config, profiles=(profile,))
    store = open_store(config.db)
    watcher = open_store(config.db)
    stop = threading.Event()
    service = App(config, environ=NO_KEY, store=store)
    scheduler = build_scheduler(service, stop=stop, ingest_every=timedelta(seconds=0.3))
    caplog.set_level(logging.INFO, logger="digest.schedule")
    scheduler.start()
    try:
        deadline = time.monotonic() + 30
        while watcher.load_digest(profile, tick.date()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        empty = watcher.load_digest(profile, tick.date())
        assert empty is not None and not empty.items
        shutil.copy(SEEDS / "000_9d0724fe38360f6f.txt", inbox)

        def profile_runs() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"profile {profile.id} ")]

        while len(profile_runs()) < 2 and time.monotonic() < deadline:  # the start-up run, then the rebuild
            time.sleep(0.05)
    finally:
        stop.set()
        scheduler.shutdown(wait=True)
    rebuilt = watcher.load_digest(profile, tick.date())
    assert rebuilt is not None and rebuilt.items and rebuilt.candidates == 38
    lines = [r.getMessage() for r in caplog.records]
    ingested = next(i for i, line in enumerate(lines) if "papers_new=38" in line)
    assert any(line.startswith(f"profile {profile.id} ") and "built=1" in line for line in lines[ingested:])
    assert eml_recipients(config.outbox) == sorted(profile.subscribers)
    store.close()
    watcher.close()


def test_a_liked_paper_found_through_a_title_it_had_before_is_no_warning(tmp_path: Path) -> None:
    """One matching rule for liked papers: what the ranker finds, `profiles check` finds."""
    import json

    from hub import paper_item

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    old, new = paper_item("2601.00042", "The Title It Had First"), paper_item("2601.00042", "The Title It Has Now")
    (inbox / "hf-daily-2026-01-01.json").write_text(json.dumps([old]))
    (inbox / "hf-daily-2026-01-02.json").write_text(json.dumps([new]))
    config = replace(shipped_config(tmp_path), inbox=inbox)
    profile = replace(config.profiles[0], liked=("The Title It Had First", "A Paper Nobody Wrote"))
    config = replace(config, profiles=(profile,))
    with App(config, clock=clock_at(NOW), environ=NO_KEY) as app:
        assert app.ingest().papers_new == 1
        (paper,) = app.papers()
        assert paper.title == "The Title It Has Now"
        assert [p.id for p in app.store.find_papers(profile.liked)] == [paper.id]
        warnings = [str(w) for w in app.unknown_liked()]
    assert len(warnings) == 1 and "'A Paper Nobody Wrote' is not a stored paper" in warnings[0]


def test_liked_papers_are_compared_as_the_profile_is_ranked_or_the_check_says_why_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`profiles check` compares a words-less profile's liked papers with one another; with
    `semantic = true` and the extra missing it says so once, and the check goes on."""
    from digest import tasks
    from digest.semantic import SemanticUnavailable

    config = shipped_config(tmp_path)
    alone = next(p for p in config.profiles if not p.description and not p.keywords)  # the shipped example
    with App(config, clock=clock_at(NOW), environ=NO_KEY) as app:
        assert app.liked_papers_apart() == []  # no database yet
        app.ingest()
        warnings = [str(w) for w in app.liked_papers_apart()]
    assert warnings and all(f"profiles[{config.profiles.index(alone)}].liked: warning:" in w for w in warnings)

    def missing() -> None:
        raise SemanticUnavailable("install the [semantic] extra")

    monkeypatch.setattr(tasks, "embedder", missing)
    with App(replace(config, semantic=True), clock=clock_at(NOW), environ=NO_KEY) as app:
        (why,) = [str(w) for w in app.liked_papers_apart()]
    assert "liked papers not compared with one another: install the [semantic] extra" in why


def test_an_email_waiting_for_smtp_is_left_to_a_run_with_smtp(store: Store, tmp_path: Path) -> None:
    """The publish workflow's build step has no SMTP secret: it must not take an email that
    waits for SMTP (the send step left it pending) as done by writing it to the outbox."""
    ingest(store, [SEEDS], tmp_path)
    port = free_port()
    with_smtp = email_only(smtp_config(tmp_path, port))
    without = replace(with_smtp, smtp=None)
    profile = with_smtp.profiles[0]
    down = run(with_smtp, store, smtp=True)  # nothing listens on the port: every email waits
    day = down.digests[0].date
    assert {r.state for r in store.deliveries(day=day)} == {"pending"}
    run(without, store, NOW + timedelta(days=1))  # the next day's build: outbox only
    again = app_at(without, store, NOW + timedelta(hours=1)).build(without.profiles, day=day)  # that day, by hand
    assert again.delivery is not None and again.delivery.left_for_smtp == len(profile.subscribers)
    assert "waiting for a run with SMTP" in again.delivery.summary() and again.delivery.sent == []
    assert {(r.state, r.transport) for r in store.deliveries(day=day)} == {("pending", "smtp")}
    assert not list(with_smtp.outbox.glob(f"{day.isoformat()}_*.eml"))
    with MailServer(port=port) as server:
        app_at(with_smtp, store, NOW + timedelta(days=1)).send(with_smtp.profiles)
        received = server.by_recipient()
    assert sorted(received) == sorted(profile.subscribers) and all(len(c) == 1 for c in received.values())
    assert all(c[0].message["Subject"].endswith("Sat 10 Jan 2026") for c in received.values())
