"""Roll-ups end to end: a real store, real dumps, the real ranker, the outbox and a real SMTP server.

Weekly and monthly roll-ups for weekly and monthly readers; once-only across cadences (a
reader switching from daily to weekly mid-week); the community signal weighed over the
week; the scheduler's first tick of a new week, across a change of daylight saving time;
the year boundary of ISO weeks; one "what you missed" message instead of a burst of stale
daily mails.
"""

from __future__ import annotations

import email
import socket
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import feedparser
import pytest
from conftest import run_digest
from mailserver import MailServer

from digest import publish
from digest.app import App, Built
from digest.config import Config, SmtpSettings, load_config
from digest.deliver.transports import message_bytes
from digest.ingest.hf_dump import content_hash, format_dump, parse_dump
from digest.models import Cadence, Entry, Organization, Profile, VoteKind
from digest.periods import PeriodKind, parse_period
from digest.rows import DeliveryKey, ReaderPreferences
from digest.schedule import run_due_once
from digest.store import Store, open_store

ADA, BOB, CY = "ada@example.org", "bob@example.org", "cy@example.org"
ABSTRACT = "We study continual learning and catastrophic forgetting in class-incremental learning without replay."


def on_topic(day: date, n: int, *, upvotes: int = 3, title: str = "") -> Entry:
    title = title or f"Continual Learning Without Forgetting, Method {day:%b} {day.day} Number {n}"
    return Entry(title, ABSTRACT, 4, None, day, upvotes)


def off_topic(day: date) -> Entry:
    return Entry(f"Protein Folding Kinetics Of {day:%B} {day.day}", "Molecular dynamics of proteins.", 3, None, day, 1)


def listed(store: Store, day: date, entries: Sequence[Entry], *, at: datetime | None = None) -> None:
    """A dump of the listing of `day`, stored through the real parser (at 06:00 that day, or `at`:
    when it says it was stored, whatever the order it was stored in)."""
    text = format_dump(day, list(entries))
    dump = parse_dump(text, f"{day}.txt", today=day + timedelta(days=1), year=day.year)
    assert not dump.problems, dump.problems
    store.add_dump(dump, content_hash(text), at or datetime.combine(day, time(6), UTC))


def profile(*subscribers: str | tuple[str, Cadence], **changes: object) -> Profile:
    addresses = tuple(s if isinstance(s, str) else s[0] for s in subscribers)
    own = tuple(s for s in subscribers if not isinstance(s, str))
    base = Profile(
        "cl",
        "Continual learning",
        description="Continual learning without catastrophic forgetting.",
        keywords=(),
        subscribers=addresses,
        subscriber_cadences=own,  # type: ignore[arg-type]
        max_items=10,
        formats=("email", "atom", "rss", "json", "markdown"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def config_with(tmp_path: Path, *profiles: Profile, smtp: SmtpSettings | None = None) -> Config:
    base = load_config(None, tmp_path, environ={})
    return replace(base, profiles=profiles, db=tmp_path / "state.db", inbox=tmp_path / "inbox", smtp=smtp)


def app_at(config: Config, store: Store, moment: datetime) -> App:
    return App(config, clock=lambda: moment, environ={}, store=store)


def at_eight(day: date) -> datetime:
    return datetime.combine(day, time(8), UTC)


def mails_to(config: Config, address: str) -> dict[str, EmailMessage]:
    """The outbox's messages to `address`, by file name."""
    found = {}
    for path in sorted(config.outbox.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"] == address:
            found[path.name] = message
    return found


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    content: str = body.get_content()
    return content


WEEK = [date(2026, 1, 5) + timedelta(days=n) for n in range(7)]  # 2026-W02, Monday to Sunday


def a_week_of_papers(store: Store) -> None:
    for day in WEEK:
        listed(store, day, [on_topic(day, 1), on_topic(day, 2), off_topic(day)])


def test_a_weekly_reader_gets_one_rollup_of_the_week_and_building_again_changes_nothing(
    store: Store, tmp_path: Path
) -> None:
    cl = profile(ADA, (BOB, Cadence.WEEKLY), max_items=5)
    config = config_with(tmp_path, cl)
    a_week_of_papers(store)
    for day in WEEK:
        app_at(config, store, at_eight(day)).build([cl])
    assert len(mails_to(config, ADA)) == 7 and mails_to(config, BOB) == {}  # bob reads weekly
    monday = date(2026, 1, 12)
    report = app_at(config, store, at_eight(monday)).build([cl])
    week = next(r for r in report.rollups if r.period.key == "2026-W02")
    assert week in report.rollups_built and week.considered == 21 and week.above == 14
    assert len(week.items) == 5 and len(week.also) == 5  # max_items in full, the next five by title
    (name, message), *others = mails_to(config, BOB).items()
    assert not others and name.startswith("2026-W02_cl_")
    assert message["Subject"] == "Week 2: 5 papers for Continual learning — 5–11 Jan 2026"
    text = text_of(message)
    assert "21 papers considered, 14 above your threshold (0.15)." in text and "Also this week:" in text
    assert all(item.paper.title in text.replace("\n   ", " ") for item in (*week.items, *week.also))
    # Published for everyone: a feed entry with a stable id, Markdown, a page.
    feed = feedparser.parse((config.feeds / "cl.weekly.atom").read_bytes())
    assert not feed.bozo and [e.id for e in feed.entries] == ["urn:paper-digest:cl:week:2026-W02"]
    assert feed.entries[0].link == "https://example.org/paper-digest/digests/cl/2026-W02.html"
    assert (config.digests / "cl" / "2026-W02.md").read_text().startswith("# Continual learning — Week 2 of 2026")
    assert (config.site / "digests" / "cl" / "2026-W02.html").exists()
    # Built once: the same day again, or a later day of the week, sends and writes nothing new.
    again = app_at(config, store, at_eight(monday) + timedelta(hours=3)).build([cl])
    assert again.rollups_built == [] and again.written == []
    assert again.delivery is not None and again.delivery.sent == []
    later = app_at(config, store, at_eight(monday + timedelta(days=2))).build([cl])
    assert later.rollups_built == [] and [r.period.key for r in later.rollups] == ["2026-W02", "2025-12"]
    assert len(mails_to(config, BOB)) == 1


def test_rollup_emails_are_rendered_by_the_workers_as_this_process_renders_them(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cl = profile(ADA, (BOB, Cadence.WEEKLY), (CY, Cadence.WEEKLY), max_items=5)
    config = config_with(tmp_path, cl)
    a_week_of_papers(store)
    for day in WEEK:
        app_at(config, store, at_eight(day)).build([cl])
    # Two workers, a message a shard; this process could not render a roll-up's email if it tried.
    monkeypatch.setattr(publish, "render_rollup_email", no_rollup_email_here)
    report = app_at(replace(config, workers=2, shard_size=1), store, at_eight(date(2026, 1, 12))).build([cl])
    monkeypatch.undo()
    assert report.delivery is not None and report.delivery.pending == []
    week = parse_period("2026-W02")
    render = publish.rollup_email_renderer(config, sender=config.sender, unsubscribe_key=None)
    for address in (BOB, CY):
        ((name, message),) = mails_to(config, address).items()
        copy = store.rollup_mail(cl, week, address)
        assert copy is not None and message["Subject"].startswith("Week 2: 5 papers")
        made_here = render(copy, address, message["Message-ID"])
        assert made_here is not None and (config.outbox / name).read_bytes() == message_bytes(made_here)


def no_rollup_email_here(*args: object, **kwargs: object) -> None:
    raise AssertionError("a roll-up's email rendered in the coordinator")


def test_a_reader_switching_from_daily_to_weekly_mid_week_gets_neither_a_duplicate_nor_a_gap(
    store: Store, tmp_path: Path
) -> None:
    daily, weekly = profile(ADA, BOB), profile(ADA, (BOB, Cadence.WEEKLY))
    a_week_of_papers(store)
    config = config_with(tmp_path, daily)
    for day in WEEK:
        chosen = daily if day < date(2026, 1, 8) else weekly  # bob switches on Thursday
        app_at(replace(config, profiles=(chosen,)), store, at_eight(day)).build([chosen])
    app_at(replace(config, profiles=(weekly,)), store, at_eight(date(2026, 1, 12))).build([weekly])
    given_daily = {day: {i.paper.id for i in store.load_digest(daily, day).items} for day in WEEK}  # type: ignore[union-attr]
    to_bob = mails_to(config, BOB)
    assert sorted(name[:10] for name in to_bob) == ["2026-01-05", "2026-01-06", "2026-01-07", "2026-W02_c"]
    copy = store.rollup_mail(weekly, parse_period("2026-W02"), BOB)
    assert copy is not None
    in_rollup = [s.paper.id for s in (*copy.items, *copy.also)]
    before_switch = set().union(*(given_daily[d] for d in WEEK[:3]))
    # No duplicate: nothing bob got daily is in his roll-up (everyone's roll-up has some of it).
    everyone = store.load_rollup(weekly, parse_period("2026-W02"))
    assert everyone is not None and before_switch & {s.paper.id for s in everyone.items}
    assert not before_switch & set(in_rollup) and len(in_rollup) == len(set(in_rollup))
    # No gap: every paper a daily reader got that week reached bob, daily or in the roll-up.
    assert before_switch | set(in_rollup) == set().union(*given_daily.values())
    assert copy.considered == everyone.considered - 6 and copy.above == everyone.above - 6
    # The roll-up's email says so too.
    rollup_mail = next(m for name, m in to_bob.items() if name.startswith("2026-W02"))
    text = text_of(rollup_mail).replace("\n   ", " ")
    titles = {p.id: p.title for p in store.iter_papers()}
    assert not any(titles[pid] in text for pid in before_switch)
    assert "15 papers considered, 8 above your threshold" in text


def test_a_reader_switching_from_weekly_to_daily_mid_week_gets_what_they_missed_once(
    store: Store, tmp_path: Path
) -> None:
    weekly, daily = profile(ADA, (BOB, Cadence.WEEKLY)), profile(ADA, BOB)
    a_week_of_papers(store)
    config = config_with(tmp_path, weekly)
    for day in WEEK[:4]:
        chosen = weekly if day < date(2026, 1, 8) else daily  # bob turns daily on Thursday
        app_at(replace(config, profiles=(chosen,)), store, at_eight(day)).build([chosen])
    app_at(replace(config, profiles=(daily,)), store, at_eight(date(2026, 1, 12))).build([daily])
    to_bob = mails_to(config, BOB)
    # What he missed as a weekly reader in one message; then each digest (Monday's holds Friday to Sunday).
    assert sorted(name.split("_")[0] for name in to_bob) == ["2026-01-05--2026-01-07", "2026-01-08", "2026-01-12"]
    missed = store.rollup_mail(daily, parse_period("2026-01-05--2026-01-07"), BOB)
    assert missed is not None
    given = {day: {i.paper.id for i in store.load_digest(daily, day).items} for day in WEEK[:4]}  # type: ignore[union-attr]
    # Monday to Wednesday's papers in one message, Thursday's in its digest: each once, none missing.
    assert {s.paper.id for s in (*missed.items, *missed.also)} == given[WEEK[0]] | given[WEEK[1]] | given[WEEK[2]]
    assert store.rollup_mail(daily, parse_period("2026-W02"), BOB) is None  # no weekly roll-up for a daily reader


def test_a_rollup_goes_out_when_it_is_built_and_a_reader_who_comes_later_waits_for_the_next(
    store: Store, tmp_path: Path
) -> None:
    for day in (date(2026, 1, 2), date(2026, 1, 3)):  # 2026-W01
        listed(store, day, [on_topic(day, 1), on_topic(day, 2)])
    a_week_of_papers(store)
    before, after = profile((ADA, Cadence.WEEKLY)), profile((ADA, Cadence.WEEKLY), (CY, Cadence.WEEKLY))
    config = config_with(tmp_path, before)
    for day in WEEK[1:]:  # down on Monday: Tuesday's run builds 2026-W01, and ada gets it then
        chosen = before if day < WEEK[3] else after  # cy subscribes, weekly, on Thursday
        app_at(replace(config, profiles=(chosen,)), store, at_eight(day)).build([chosen])
        if day == WEEK[1]:
            assert [n.split("_")[0] for n in mails_to(config, ADA)] == ["2026-W01"]
    # Thursday is too late for 2026-W01 to go out on its own: cy's first roll-up is 2026-W02.
    assert mails_to(config, CY) == {}
    app_at(replace(config, profiles=(after,)), store, at_eight(date(2026, 1, 12))).build([after])
    assert [n.split("_")[0] for n in mails_to(config, ADA)] == ["2026-W01", "2026-W02"]
    assert [n.split("_")[0] for n in mails_to(config, CY)] == ["2026-W02"]
    # By hand, a roll-up goes whenever it is asked for.
    app_at(replace(config, profiles=(after,)), store, at_eight(date(2026, 1, 12))).build_period(
        [after], parse_period("2026-W01").kind, day=date(2026, 1, 2)
    )
    assert [n.split("_")[0] for n in mails_to(config, CY)] == ["2026-W01", "2026-W02"]
    assert len(mails_to(config, ADA)) == 2  # not twice


def test_a_paper_whose_upvotes_rose_during_the_week_climbs_in_the_rollup(store: Store, tmp_path: Path) -> None:
    cl = profile(ADA, (BOB, Cadence.WEEKLY))
    config = config_with(tmp_path, cl)
    monday, thursday = WEEK[0], WEEK[3]
    alpha = on_topic(monday, 1, upvotes=2, title="Continual Learning Without Forgetting: Variant Alpha")
    beta = on_topic(monday, 2, upvotes=20, title="Continual Learning Without Forgetting: Variant Beta")
    listed(store, monday, [alpha, beta, off_topic(monday)])
    first = app_at(config, store, at_eight(monday)).build([cl]).digests[0]
    assert [i.paper.title for i in first.items] == [beta.title, alpha.title]  # on Monday beta had more upvotes
    listed(store, thursday, [replace(alpha, upvotes=90), off_topic(thursday)])  # by Thursday alpha has 90
    report = app_at(config, store, at_eight(date(2026, 1, 12))).build([cl])
    week = next(r for r in report.rollups if r.period.key == "2026-W02")
    assert [i.paper.title for i in week.items] == [alpha.title, beta.title]
    scores = {i.paper.title: i.score for i in week.items}
    assert scores[alpha.title] > scores[beta.title]
    (message,) = mails_to(config, BOB).values()
    text = text_of(message)
    assert text.index("Variant Alpha") < text.index("Variant Beta") and "90 upvotes" in text


def test_the_first_tick_of_a_new_week_builds_the_rollup_across_a_change_of_daylight_saving_time(
    store: Store, tmp_path: Path
) -> None:
    # 2026-W13 runs from Monday 23 to Sunday 29 March; Berlin springs forward on the Sunday.
    cl = profile((ADA, Cadence.WEEKLY), cadence=Cadence.WEEKLY, schedule="0 7 * * mon", timezone="Europe/Berlin")
    config = config_with(tmp_path, cl)
    for day in (date(2026, 3, 22), date(2026, 3, 23), date(2026, 3, 29), date(2026, 3, 30)):
        listed(store, day, [on_topic(day, 1), on_topic(day, 2)])

    def tick(moment: datetime) -> list[tuple[str, str]]:
        runs = run_due_once(app_at(config, store, moment), now=moment)
        return [(run.status, str(run.day)) for run in runs if run.job.startswith("profile")]

    assert tick(datetime(2026, 3, 29, 5, 30, tzinfo=UTC)) == [("not-due", "None")]  # Sunday 07:30 CEST
    assert tick(datetime(2026, 3, 30, 4, 59, tzinfo=UTC)) == [("not-due", "None")]  # Monday 06:59 CEST
    assert store.rollup_periods("cl", parse_period("2026-W13").kind) == []
    assert tick(datetime(2026, 3, 30, 5, 0, tzinfo=UTC)) == [("ok", "2026-03-30")]  # Monday 07:00 CEST
    assert tick(datetime(2026, 3, 30, 5, 15, tzinfo=UTC)) == [("done-before", "2026-03-30")]
    week = store.load_rollup(cl, parse_period("2026-W13"))
    assert week is not None and week.built_at == datetime(2026, 3, 30, 5, 0, tzinfo=UTC)
    listed_on = sorted({i.paper.first_seen for i in (*week.items, *week.also)})
    assert listed_on == [date(2026, 3, 23), date(2026, 3, 29)] and week.considered == 4  # not the 22nd, nor the 30th
    (message,) = mails_to(config, ADA).values()
    assert message["Subject"] == "Week 13: 4 papers for Continual learning — 23–29 Mar 2026"
    assert message["Date"] == "Mon, 30 Mar 2026 05:00:00 +0000"
    feed = feedparser.parse((config.feeds / "cl.weekly.atom").read_bytes())
    assert [e.published for e in feed.entries] == ["2026-03-30T05:00:00+00:00"]


def test_iso_week_2026_w01_starts_in_december_2025_by_hand_from_the_command_line(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    days = [date(2025, 12, 28), date(2025, 12, 29), date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 4)]
    for day in [*days, date(2026, 1, 5)]:
        (inbox / f"{day}.txt").write_text(format_dump(day, [on_topic(day, 1)]))
    (tmp_path / "digest.toml").write_text(
        '[digest]\ninbox = "inbox"\n\n[[profiles]]\nid = "cl"\ndescription = "Continual learning without '
        'catastrophic forgetting."\nsubscribers = [{address = "ada@example.org", cadence = "weekly"}, '
        '{address = "bob@example.org", cadence = "monthly"}]\n'
    )
    clock = lambda: datetime(2026, 1, 6, 8, tzinfo=UTC)  # noqa: E731
    week = run_digest("build", "--period", "week", "--date", "2025-12-31", cwd=tmp_path, clock=clock)
    assert week.returncode == 0, week.stderr
    assert "rollup cl 2026-W01: 4 papers (4 considered, 4 above min_score) [built]" in week.stdout
    month = run_digest("build", "--period", "month", "--date", "2025-12-31", cwd=tmp_path, clock=clock)
    assert "rollup cl 2025-12: 3 papers (3 considered, 3 above min_score) [built]" in month.stdout
    markdown = (tmp_path / "digests" / "cl" / "2026-W01.md").read_text()
    assert markdown.startswith(
        "# cl — Week 1 of 2026\n\n4 papers for **cl**, the best listed 29 Dec 2025 – 4 Jan 2026."
    )
    assert "Dec 28" not in markdown and "Jan 5 " not in markdown
    assert (tmp_path / "digests" / "cl" / "2025-12.md").read_text().startswith("# cl — December 2025")
    feed = feedparser.parse((tmp_path / "feeds" / "cl.weekly.rss").read_bytes())
    assert [e.id for e in feed.entries] == ["urn:paper-digest:cl:week:2026-W01"]
    outbox = sorted(p.name[:8] for p in (tmp_path / "outbox").glob("*.eml"))
    assert outbox == ["2025-12_", "2026-W01"]  # ada weekly, bob monthly; neither got the other's
    again = run_digest("build", "--period", "week", "--date", "2026-01-04", cwd=tmp_path, clock=clock)
    assert "rollup cl 2026-W01: 4 papers (4 considered, 4 above min_score) [built before]" in again.stdout
    assert "0 sent, 1 done before" in again.stdout


# -- what a daily reader missed -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def smtp_on(port: int) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5, attempts=1, backoff=0.01)


def test_a_daily_reader_whose_emails_failed_for_days_gets_one_what_you_missed_message(
    store: Store, tmp_path: Path
) -> None:
    port = free_port()
    cl = profile(ADA, formats=("email",))
    config = config_with(tmp_path, cl, smtp=smtp_on(port))
    down = WEEK[:3]  # Monday to Wednesday the server is down: each day's email waits
    for day in down:
        listed(store, day, [on_topic(day, 1), off_topic(day)])
        report = app_at(config, store, at_eight(day)).build([cl], send=True)
        assert report.delivery is not None and report.delivery.sent == []
    thursday = WEEK[3]
    # What `digest send --dry-run` says now: Wednesday's email, and the message of Monday and
    # Tuesday that could not go either, would go as one.
    plans = {
        (p.outgoing.day, p.outgoing.period): p.state for p in app_at(config, store, at_eight(thursday)).plan_send([cl])
    }
    assert plans == {(down[2], ""): "what-you-missed", (down[1], "2026-01-05--2026-01-06"): "what-you-missed"}
    listed(store, thursday, [on_topic(thursday, 1)])
    with MailServer(port=port) as server:
        up = app_at(config, store, at_eight(thursday)).build([cl], send=True)
        again = app_at(config, store, at_eight(thursday) + timedelta(hours=1)).build([cl], send=True)
        received = [copy.message for copy in server.by_recipient()[ADA]]
    # Two messages, not four: Thursday's digest, and what she missed from Monday to Wednesday.
    assert sorted(m["Subject"] for m in received) == [
        "1 new paper for Continual learning — Thu 8 Jan 2026",
        "What you missed: 3 papers for Continual learning — 5–7 Jan 2026",
    ]
    assert up.delivery is not None and len(up.delivery.sent) == 2
    assert again.delivery is not None and again.delivery.sent == []
    missed = next(m for m in received if m["Subject"].startswith("What you missed"))
    text = text_of(missed).replace("\n   ", " ")
    for day in down:
        (item,) = store.load_digest(cl, day).items  # type: ignore[union-attr]
        assert item.paper.title in text
    assert "6 papers considered, 3 above your threshold" in text  # the off-topic ones too
    rows = {(r.day, r.period): r for r in store.deliveries(profile_id="cl")}
    assert [rows[day, ""].state for day in down] == ["rolled-up"] * 3
    # On Wednesday Monday and Tuesday went stale: one message for them, which could not go either,
    # and on Thursday it took in Wednesday: the ledger says where each one went.
    assert "2026-01-05--2026-01-06" in (rows[down[0], ""].note or "")
    assert rows[down[1], "2026-01-05--2026-01-06"].state == "rolled-up"
    assert "2026-01-05--2026-01-07" in (rows[down[1], "2026-01-05--2026-01-06"].note or "")
    assert rows[down[-1], "2026-01-05--2026-01-07"].state == "sent"
    assert all(store.digest_state("cl", day) != "failed" for day in down)  # their papers went out


def test_emails_paused_for_days_go_as_one_what_you_missed_message_when_sending_resumes(
    store: Store, tmp_path: Path
) -> None:
    with MailServer() as server:
        cl = profile(ADA, formats=("email",))
        config = config_with(tmp_path, cl, smtp=smtp_on(server.port))
        for day in WEEK[:3]:  # built every day, but sending was paused: only previews in the outbox
            listed(store, day, [on_topic(day, 1)])
            app_at(config, store, at_eight(day)).build([cl], send=False)
        assert len(list(config.outbox.glob("*.eml"))) == 3 and server.by_recipient() == {}
        digests, report = app_at(config, store, at_eight(WEEK[3])).send([cl])  # sending resumes on Thursday
        subjects = [copy.message["Subject"] for copy in server.by_recipient()[ADA]]
    assert digests == 3 and len(report.sent) == 1
    assert subjects == ["What you missed: 3 papers for Continual learning — 5–7 Jan 2026"]
    assert [r.state for r in store.deliveries(profile_id="cl", period="")] == ["rolled-up"] * 3


def test_one_stale_email_goes_as_it_is_and_a_fresh_one_is_never_rolled_up(store: Store, tmp_path: Path) -> None:
    port = free_port()
    cl = profile(ADA, formats=("email",))
    config = config_with(tmp_path, cl, smtp=smtp_on(port))
    monday, tuesday = WEEK[0], WEEK[1]
    listed(store, monday, [on_topic(monday, 1)])
    app_at(config, store, at_eight(monday)).build([cl], send=True)  # the server is down
    listed(store, tuesday, [on_topic(tuesday, 1)])
    with MailServer(port=port) as server:
        app_at(config, store, at_eight(tuesday)).build([cl], send=True)
        subjects = sorted(copy.message["Subject"] for copy in server.by_recipient()[ADA])
    assert subjects == [
        "1 new paper for Continual learning — Mon 5 Jan 2026",
        "1 new paper for Continual learning — Tue 6 Jan 2026",
    ]
    assert {r.state for r in store.deliveries(profile_id="cl")} == {"sent"}


def test_a_what_you_missed_message_still_unsent_takes_in_the_next_missed_day(store: Store, tmp_path: Path) -> None:
    port = free_port()
    cl = profile(ADA, formats=("email",))
    config = config_with(tmp_path, cl, smtp=smtp_on(port))
    for day in WEEK[:4]:  # down all week: Wednesday makes a catch-up of Mon-Tue that cannot go either
        listed(store, day, [on_topic(day, 1)])
        app_at(config, store, at_eight(day)).build([cl], send=True)
    rows = {(r.day, r.period): r.state for r in store.deliveries(profile_id="cl")}
    assert rows[WEEK[1], "2026-01-05--2026-01-06"] == "rolled-up"  # Wednesday's, rolled into Thursday's
    assert rows[WEEK[2], "2026-01-05--2026-01-07"] == "pending"
    friday = WEEK[4]
    listed(store, friday, [on_topic(friday, 1)])
    with MailServer(port=port) as server:
        app_at(config, store, at_eight(friday)).build([cl], send=True)
        subjects = sorted(copy.message["Subject"] for copy in server.by_recipient()[ADA])
    assert subjects == [
        "1 new paper for Continual learning — Fri 9 Jan 2026",
        "What you missed: 4 papers for Continual learning — 5–8 Jan 2026",
    ]


def test_a_pending_rollup_email_is_sent_later_as_it_was_made(store: Store, tmp_path: Path) -> None:
    port = free_port()
    cl = profile(ADA, (BOB, Cadence.WEEKLY))
    config = config_with(tmp_path, cl, smtp=smtp_on(port))
    a_week_of_papers(store)
    monday = date(2026, 1, 12)
    first = app_at(config, store, at_eight(monday)).build([cl], send=True)  # the server is down
    key = DeliveryKey("cl", WEEK[-1], BOB, "2026-W02")
    row = store.get_delivery(key)
    assert row is not None and row.state == "pending" and first.delivery is not None
    made = store.rollup_mail(cl, parse_period("2026-W02"), BOB)
    # New papers come meanwhile: the waiting email goes as it was made, with its Message-ID.
    listed(store, monday, [on_topic(monday, 1)])
    with MailServer(port=port) as server:
        app_at(config, store, at_eight(monday) + timedelta(hours=5)).build([cl], send=True)
        (copy,) = server.by_recipient()[BOB]
    assert copy.message["Message-ID"] == row.message_id
    assert store.rollup_mail(cl, parse_period("2026-W02"), BOB) == made
    text = text_of(copy.message).replace("\n   ", " ")
    assert made is not None and all(s.paper.title in text for s in made.items)


# -- a reader's own votes and number of papers in their roll-ups ---------------------------------

NOISY = Organization("noisylab", "Noisy Lab")


def from_noisy_lab(day: date) -> Entry:
    return Entry(f"Continual Learning Without Forgetting, Noisy Lab {day:%b} {day.day}", ABSTRACT, None, NOISY, day, 3)


def test_a_weekly_readers_mute_and_votes_steer_their_rollup_as_they_steer_a_daily_digest(
    store: Store, tmp_path: Path
) -> None:
    # Their copy was the profile's roll-up less what they were sent: the organisation they
    # muted and the papers they voted on came back in it, and their number of papers was ignored.
    for day in WEEK:
        listed(store, day, [on_topic(day, 1), on_topic(day, 2), from_noisy_lab(day)])
    cl = profile(ADA, (BOB, Cadence.WEEKLY), owner=ADA)
    config = config_with(tmp_path, cl)
    monday = at_eight(WEEK[0])
    bob = store.reader_id(BOB, create=True, at=monday)
    assert bob is not None
    by_title = {p.title: p for p in store.iter_papers()}
    noisy = by_title[from_noisy_lab(WEEK[0]).title]
    less, more = by_title[on_topic(WEEK[1], 1).title], by_title[on_topic(WEEK[2], 2).title]
    store.record_vote("cl", bob, noisy.id, VoteKind.MUTE, monday, organization=NOISY.id)
    store.record_vote("cl", bob, less.id, VoteKind.LESS, monday)
    store.record_vote("cl", bob, more.id, VoteKind.MORE, monday)
    store.set_preferences("cl", bob, ReaderPreferences(cadence=Cadence.WEEKLY, max_items=4), monday)
    for day in WEEK:
        app_at(config, store, at_eight(day)).build([cl])
    app_at(config, store, at_eight(WEEK[-1] + timedelta(days=1))).build([cl])
    (rollup,) = [m for m in mails_to(config, BOB).values() if m["Subject"].startswith("Week 2")]
    text = text_of(rollup).replace("\n   ", " ")
    assert "Noisy Lab" not in text and less.title not in text and more.title not in text
    assert rollup["Subject"].startswith("Week 2: 4 papers for"), rollup["Subject"]
    # The profile's own roll-up (its feeds and site) follows the owner: the noisy lab stays.
    public = store.load_rollup(cl, parse_period("2026-W02"))
    assert public is not None and any(s.paper.organization == NOISY for s in public.items)


def test_a_what_you_missed_message_holds_what_the_readers_own_digests_held(store: Store, tmp_path: Path) -> None:
    port = free_port()
    cl = profile(ADA, BOB, owner=ADA, formats=("email",))
    config = config_with(tmp_path, cl, smtp=smtp_on(port))
    listed(store, WEEK[0], [on_topic(WEEK[0], 1), from_noisy_lab(WEEK[0])])
    bob = store.reader_id(BOB, create=True, at=at_eight(WEEK[0]))
    assert bob is not None
    noisy = next(p for p in store.iter_papers() if p.organization)
    store.record_vote("cl", bob, noisy.id, VoteKind.MUTE, at_eight(WEEK[0]), organization=NOISY.id)
    for day in WEEK[:3]:  # the server is down: every email waits, then goes stale
        if day != WEEK[0]:
            listed(store, day, [on_topic(day, 1), from_noisy_lab(day)])
        app_at(config, store, at_eight(day)).build([cl], send=True)
    listed(store, WEEK[3], [on_topic(WEEK[3], 1)])
    with MailServer(port=port) as server:
        app_at(config, store, at_eight(WEEK[3])).build([cl], send=True)
        got = {copy.message["Subject"]: copy.message for copy in server.by_recipient()[BOB]}
    missed = next(m for subject, m in got.items() if subject.startswith("What you missed"))
    assert "Noisy Lab" not in text_of(missed)
    assert missed["Subject"].startswith("What you missed: 3 papers"), missed["Subject"]
    to_ada = {copy.message["Subject"] for copy in server.by_recipient()[ADA]}
    assert any(s.startswith("What you missed: 6 papers") for s in to_ada), to_ada


def test_a_reader_with_a_digest_of_their_own_who_turns_weekly_gets_no_paper_twice_and_none_lost(
    store: Store, tmp_path: Path
) -> None:
    # The ledger's "what was sent" read the profile's digest, not theirs: the roll-up mailed
    # again what their own digests gave them, and left out what only the profile's held.
    for day in WEEK:
        listed(store, day, [on_topic(day, n, upvotes=10 - n) for n in range(1, 7)])
    cl = profile(ADA, BOB, owner=ADA, max_items=3, formats=("email",))
    config = config_with(tmp_path, cl)
    bob = store.reader_id(BOB, create=True, at=at_eight(WEEK[0]))
    assert bob is not None
    store.set_preferences("cl", bob, ReaderPreferences(max_items=5), at_eight(WEEK[0]))
    for day in WEEK[:3]:
        app_at(config, store, at_eight(day)).build([cl])
    his = {
        item.paper.title
        for day in WEEK[:3]
        for item in store.load_personal_digest(replace(cl, max_items=5), day, bob).items  # type: ignore[union-attr]
    }
    assert len(his) == 15
    store.set_preferences("cl", bob, ReaderPreferences(max_items=5, cadence=Cadence.WEEKLY), at_eight(WEEK[2]))
    for day in WEEK[3:]:
        app_at(config, store, at_eight(day)).build([cl])
    app_at(config, store, at_eight(WEEK[-1] + timedelta(days=1))).build([cl])
    (rollup,) = [m for m in mails_to(config, BOB).values() if m["Subject"].startswith("Week 2")]
    text = text_of(rollup).replace("\n   ", " ")
    assert [title for title in his if title in text] == []
    # Monday's sixth paper was in neither his digest nor the profile's: the roll-up may hold it.
    assert rollup["Subject"].startswith("Week 2: 5 papers"), rollup["Subject"]


def test_a_week_rolled_up_before_it_ended_gives_its_later_papers_to_the_next_rollup(
    store: Store, tmp_path: Path
) -> None:
    # Built by hand on Wednesday, the roll-up of the week keeps what it had; the papers of
    # Thursday to Sunday were then in no roll-up at all (only daily readers ever got them).
    cl = profile((ADA, Cadence.WEEKLY), BOB)
    config = config_with(tmp_path, cl)
    for day in WEEK[:3]:
        listed(store, day, [on_topic(day, 1)])
    app_at(config, store, at_eight(WEEK[2])).build_period([cl], PeriodKind.WEEK)
    for day in [*WEEK[3:], *(WEEK[-1] + timedelta(days=n) for n in range(1, 8))]:
        listed(store, day, [on_topic(day, 1)])
        app_at(config, store, at_eight(day)).build([cl])
    app_at(config, store, at_eight(WEEK[-1] + timedelta(days=8))).build([cl])
    rolled = {
        s.paper.title
        for key in ("2026-W02", "2026-W03")
        for s in (*store.load_rollup(cl, parse_period(key)).items, *store.load_rollup(cl, parse_period(key)).also)  # type: ignore[union-attr]
    }
    every = {p.title for p in store.iter_papers()}
    assert rolled == every, sorted(every - rolled)
    to_ada = [text_of(m) for m in mails_to(config, ADA).values()]
    assert all(sum(title in text.replace("\n   ", " ") for text in to_ada) == 1 for title in every)


def test_a_day_listed_after_its_week_was_rolled_up_reaches_the_next_rollup(store: Store, tmp_path: Path) -> None:
    cl = profile((ADA, Cadence.WEEKLY), BOB)
    config = config_with(tmp_path, cl)
    for day in WEEK[:-1]:
        listed(store, day, [on_topic(day, 1)])
        app_at(config, store, at_eight(day)).build([cl])
    monday = WEEK[-1] + timedelta(days=1)
    app_at(config, store, at_eight(monday)).build([cl])  # Week 2 rolled up without Sunday
    # Sunday's listing, stored after the roll-up read its papers, though stamped earlier (another
    # process's clock): what the roll-up did not read is what counts, not the times.
    listed(store, WEEK[-1], [on_topic(WEEK[-1], n) for n in (1, 2, 3)], at=at_eight(WEEK[-1]))
    app_at(config, store, at_eight(monday) + timedelta(hours=7)).build([cl], day=WEEK[-1])
    sunday = {p.title for p in store.iter_papers() if p.first_seen == WEEK[-1]}
    w02 = store.load_rollup(cl, parse_period("2026-W02"))
    assert w02 is not None and not sunday & {s.paper.title for s in w02.items}
    for day in (monday + timedelta(days=n) for n in range(8)):
        app_at(config, store, at_eight(day)).build([cl])
    w03 = store.load_rollup(cl, parse_period("2026-W03"))
    assert w03 is not None and sunday <= {s.paper.title for s in w03.items}


def test_a_monthly_rollup_is_not_mailed_again_by_a_date_that_prune_still_accepts(store: Store, tmp_path: Path) -> None:
    # December's roll-up is due on every day of January: a run for 31 January read its ledger
    # row, 31 days back, which prune (retention and 8 days) had deleted, and mailed it again.
    port = free_port()
    cl = profile((BOB, Cadence.MONTHLY), formats=("email",))
    config = replace(config_with(tmp_path, cl, smtp=smtp_on(port)), retention_days=30)
    for day in (date(2025, 12, 10), date(2025, 12, 20)):
        listed(store, day, [on_topic(day, 1), on_topic(day, 2)])
    with MailServer(port=port) as server:
        app_at(config, store, at_eight(date(2026, 1, 1))).build([cl], send=True)
        later = app_at(config, store, at_eight(date(2026, 3, 2)))
        later.prune()
        later.check_day(date(2026, 1, 31))  # inside the retention: accepted
        later.build([cl], day=date(2026, 1, 31), send=True)
        subjects = [copy.message["Subject"] for copy in server.by_recipient()[BOB]]
    assert subjects == ["December 2025: 4 papers for Continual learning"]


def test_a_weekly_readers_more_like_this_on_a_paper_below_the_threshold_breaks_no_ones_email(
    store: Store, tmp_path: Path
) -> None:
    # Their copy was ranked from all the period's papers: one lifted from below the threshold
    # was not in the profile's pool, the copy could not be stored, and nobody got email.
    a_week_of_papers(store)
    cl = profile(ADA, (BOB, Cadence.WEEKLY))
    config = config_with(tmp_path, cl)
    bob = store.reader_id(BOB, create=True, at=at_eight(WEEK[0]))
    assert bob is not None
    off = next(p for p in store.iter_papers() if p.title == off_topic(WEEK[0]).title)
    store.record_vote("cl", bob, off.id, VoteKind.MORE, at_eight(WEEK[0]))
    for day in WEEK:
        app_at(config, store, at_eight(day)).build([cl])
    monday = WEEK[-1] + timedelta(days=1)
    listed(store, monday, [on_topic(monday, 1)])
    app_at(config, store, at_eight(monday)).build([cl])
    assert any(name.startswith(f"{monday}_") for name in mails_to(config, ADA)), "Monday's daily email went"
    (rollup,) = [m for m in mails_to(config, BOB).values() if m["Subject"].startswith("Week 2")]
    public = store.load_rollup(cl, parse_period("2026-W02"))
    assert public is not None
    text = text_of(rollup).replace("\n   ", " ")
    assert off.title not in text and all(s.paper.title in text for s in public.items)


CAPITALS = [
    (("ada@example.org", "cy@example.org"), ("Ada@Example.org", "Cy@example.org")),
    (("Ada@example.org", "Cy@x.org"), ("ada@example.org", "cy@x.org")),
]


@pytest.mark.parametrize(("before", "after"), CAPITALS)
def test_an_address_whose_capitals_change_in_the_config_is_not_mailed_again(
    store: Store, tmp_path: Path, before: tuple[str, str], after: tuple[str, str]
) -> None:
    # Ledger rows and roll-up copies were keyed on the address as written: 'Ada@' was a new
    # reader, and got that week's roll-up and that day's digest a second time.
    port = free_port()
    listed(store, WEEK[2], [on_topic(WEEK[2], 1), on_topic(WEEK[2], 2)])
    monday = WEEK[-1] + timedelta(days=1)
    listed(store, monday, [on_topic(monday, 1)])
    first = profile((before[0], Cadence.WEEKLY), before[1], formats=("email",))
    again = profile((after[0], Cadence.WEEKLY), after[1], formats=("email",))
    with MailServer(port=port) as server:
        app_at(config_with(tmp_path, first, smtp=smtp_on(port)), store, at_eight(monday)).build([first], send=True)
        sent = len(server.messages)
        later_app = app_at(
            config_with(tmp_path, again, smtp=smtp_on(port)), store, at_eight(monday) + timedelta(hours=1)
        )
        later = later_app.build([again], send=True)
        assert len(server.messages) == sent == 2, [m.message["Subject"] for m in server.messages]
    assert later.delivery is not None and later.delivery.sent == []


def test_a_profiles_rollup_is_the_same_whoever_else_is_rolled_up_with_it(tmp_path: Path) -> None:
    # Ranked in one batch with another profile, `cl`'s roll-up took that profile's words into
    # its feature space (a word pair asked for by the other one became a column and changed a
    # paper's weights): one profile's words or votes moved another's scores. Each profile is
    # now ranked alone, in this process or (one profile a shard) in two worker processes.
    zebra = Entry("Continual Learning Meets Zebra Finches", ABSTRACT, 4, None, WEEK[3], 3)
    other = profile(BOB, id="zebra", title="Zebra finches", description="Zebra finches and their songs.")
    rolled = {}
    for together, workers in (("alone", 1), ("together", 1), ("together", 2)):
        store = open_store(tmp_path / f"{together}{workers}.db")
        for day in WEEK:
            extra = [zebra] if day == WEEK[3] else []
            listed(store, day, [on_topic(day, 1), on_topic(day, 2), off_topic(day), *extra])
        cl = profile(ADA)
        config = replace(config_with(tmp_path, cl, other), workers=workers, shard_size=1)
        week = parse_period("2026-W02")
        app = app_at(config, store, at_eight(WEEK[-1] + timedelta(days=1)))
        (rollup, _), *_ = app.build_rollups([(cl, week), (other, week)] if together == "together" else [(cl, week)])
        rolled[together, workers] = [(s.paper.title, s.score, s.reasons) for s in rollup.items]
        app.close()
    assert any(title == zebra.title for title, _, _ in rolled["alone", 1])
    assert rolled["together", 1] == rolled["alone", 1]
    assert rolled["together", 2] == rolled["alone", 1]


def test_rollups_stored_already_cost_no_ranking(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every tick makes sure of last week's and last month's roll-ups: once they are stored,
    # no background is read and nothing goes to the workers (a Dask cluster would be sent
    # the background for nothing).
    a_week_of_papers(store)
    cl = profile(ADA)
    config = replace(config_with(tmp_path, cl), workers=2, shard_size=1)
    app = app_at(config, store, at_eight(WEEK[-1] + timedelta(days=1)))
    week = parse_period("2026-W02")
    ((first, built),) = app.build_rollups([(cl, week)])
    assert first.items and built is Built.NEW
    calls: list[str] = []
    monkeypatch.setattr(App, "_rank_common", lambda self: calls.append("background"))
    monkeypatch.setattr(type(app.runner), "map", lambda *args: calls.append("map"))
    ((again, built),) = app.build_rollups([(cl, week)])
    assert built is Built.BEFORE and again.items == first.items
    assert app._rank_periods([(cl, [], None)]) == [[]]  # a period without papers: nothing to rank
    assert calls == []
    app.close()
