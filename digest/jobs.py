"""The day's job for a set of profiles: build (rank) → publish (render) → email (deliver).

One code path for `digest build`, `digest send`, `digest run` and the scheduled job of
`digest serve`: whoever triggers a digest gets the same result. A profile's digest for a
day is built once (the store records it; a second build loads it), unless it delivered
nothing and new papers for its day arrived before its deadline: then it is rebuilt
(`schedule.digest_is_final` decides).

This module wires stages together and owns no logic of its own beyond the order of
the steps: ranking is `rank`, file writing `publish`, sending `deliver`, SQL `store`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from digest.config import Config
from digest.deliver import (
    SEND_LOCK_TIMEOUT,
    DeliveryError,
    DeliveryReport,
    digest_done,
    give_up_stale_emails,
    outgoing_emails,
    send_digests,
    smtp_login_problem,
    with_earlier_due,
)
from digest.fetch import FAILED, FetchError, fetch_recent_days
from digest.models import Digest, Paper, Profile, ScoredPaper
from digest.publish import email_renderer, write_outputs
from digest.schedule import (
    DEFAULT_GRACE,
    DoneCheck,
    IngestJob,
    JobReport,
    JobRun,
    ProfileJob,
    digest_is_final,
    digest_job,
    inbox_ingest_job,
    rebuild_deadline,
    run_due_once,
    run_service,
)
from digest.store import Store
from digest.unsubscribe import unsubscribe_key

if TYPE_CHECKING:
    from digest.rank import Embedder

FEED_FORMATS = ("atom", "rss", "json")
# Papers that set word rarity and each day's most upvoted paper for the ranker, so that
# a score does not depend on which other papers are new that day (see rank.score_papers).
BACKGROUND_PAPERS = 5000


class Built(StrEnum):
    """What `build_digest` did for a profile's day."""

    NEW = "built"
    REBUILT = "rebuilt"  # the saved digest delivered nothing and new papers came before its deadline
    BEFORE = "built before"  # the saved digest stands


@dataclass(slots=True)
class RunReport:
    """What one run did: the digests (built now or before), those built or rebuilt now,
    the files written, the emails."""

    digests: list[Digest] = field(default_factory=list)
    built: list[Digest] = field(default_factory=list)
    rebuilt: list[Digest] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    delivery: DeliveryReport | None = None


def profile_day(profile: Profile, now: datetime) -> date:
    """Today in the profile's time zone: the day its digest is for."""
    return now.astimezone(ZoneInfo(profile.timezone)).date()


def embedder_for(config: Config) -> Embedder | None:
    """The semantic embedder when `[digest] semantic = true` (raises `SemanticUnavailable`
    with the install command when the extra is missing), else None."""
    if not config.semantic:
        return None
    from digest.semantic import load_embedder

    return load_embedder()


def rank_profile(
    store: Store,
    profile: Profile,
    papers: Sequence[Paper],
    *,
    embed: Embedder | None = None,
    limit: int | None = None,
    day: date | None = None,
) -> list[ScoredPaper]:
    """The profile's ranking of `papers`: its liked papers resolved from the store, its
    delivered papers left out (but those of `day`'s own digest, which a rebuild replaces),
    the store's recent papers as the background."""
    from digest.rank import score_papers  # numpy, SciPy and scikit-learn: a second to import

    liked = {profile.id: store.find_papers(profile.liked)}
    delivered = {profile.id: store.delivered_paper_ids(profile.id, except_day=day)}
    background = store.recent_papers(BACKGROUND_PAPERS)
    ranked = score_papers(
        papers, [profile], liked=liked, delivered=delivered, embed=embed, limit=limit, background=background
    )
    return ranked[profile.id]


def rebuild_due(store: Store, profile: Profile, day: date, *, now: datetime, grace: timedelta = DEFAULT_GRACE) -> bool:
    """True when the saved digest of `profile` for `day` is not final (`schedule.digest_is_final`)
    and papers for its day were stored after it was built."""
    status = store.digest_status(profile.id, day)
    if status is None or digest_is_final(status, now=now, deadline=rebuild_deadline(profile, day, grace)):
        return False
    return store.new_candidates(profile.id, day, status.watermark) > 0


def build_digest(
    store: Store,
    profile: Profile,
    day: date,
    *,
    now: datetime,
    embed: Embedder | None = None,
    grace: timedelta = DEFAULT_GRACE,
) -> tuple[Digest, Built]:
    """The profile's digest for `day`: the stored one, or one ranked and saved now.

    A stored digest is rebuilt when `rebuild_due` says so (`grace`: `[digest]
    catch_up_hours`). Returns the digest and what this call did.
    """
    stored = store.digest_status(profile.id, day)
    if stored is not None and not rebuild_due(store, profile, day, now=now, grace=grace):
        return _stored(store, profile, day), Built.BEFORE
    # Read before the candidates: a dump stored meanwhile is then still "new" next time.
    watermark = store.watermark()
    candidates = store.candidate_papers(profile.id, day)
    from digest.rank import select_digest  # imported here: a stored digest needs no ranker

    items, runners_up = select_digest(rank_profile(store, profile, candidates, embed=embed, day=day), profile)
    reason = None if items else ("no-new-papers" if not candidates else "below-threshold")
    digest = Digest(
        profile=profile,
        date=day,
        items=tuple(items),
        built_at=now,
        candidates=len(candidates),
        empty_reason=reason,
        runners_up=() if items else tuple(runners_up),
    )
    if stored is None and store.save_digest(digest, watermark):
        return digest, Built.NEW
    if stored is not None and store.replace_digest(digest, watermark, replaces=stored.watermark):
        return digest, Built.REBUILT
    # Another process saved (or rebuilt, or began to deliver) this day's digest first: theirs stands.
    return _stored(store, profile, day), Built.BEFORE


def _stored(store: Store, profile: Profile, day: date) -> Digest:
    digest = store.load_digest(profile, day)
    assert digest is not None, "digests are never deleted"
    return digest


def publish_digests(config: Config, store: Store, digests: Sequence[Digest], *, now: datetime) -> list[Path]:
    """Feeds, Markdown and site pages; a digest with items in a feed counts as delivered."""
    written = write_outputs(config, store, digests)
    for digest in digests:
        if digest.items and any(kind in digest.profile.formats for kind in FEED_FORMATS):
            store.set_digest_state(digest.profile.id, digest.date, "delivered", now)
    return written


def email_digests(
    config: Config,
    store: Store,
    digests: Sequence[Digest],
    *,
    smtp: bool,
    clock: Callable[[], datetime],
    environ: Mapping[str, str] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    catch_up: bool = True,
    lock_timeout: float = SEND_LOCK_TIMEOUT,
) -> DeliveryReport:
    """Each subscriber's email of each digest, through the ledger: over SMTP when `smtp`
    and `[smtp]` is configured, else into the outbox folder as `.eml` files.

    With `catch_up`, the profiles' earlier digests whose emails a failed run left pending
    go first, and emails older than `RETRY_DAYS` are given up (their papers come back).
    Written to the outbox while `[smtp]` is configured, an email is a preview: it does not
    make its papers count as delivered. `lock_timeout`: how long to wait for another process
    that is sending (then the emails stay pending: see `send_digests`).
    """
    settings = config.smtp if smtp else None
    transport = "smtp" if settings else "outbox"
    sender = settings.sender if settings and settings.sender else config.sender
    key = unsubscribe_key(os.environ if environ is None else environ)
    render = email_renderer(config, sender=sender, unsubscribe_key=key)
    if catch_up and digests:
        profiles = list({d.profile.id: d.profile for d in digests}.values())
        today = max(d.date for d in digests)
        give_up_stale_emails(store, profiles, today=today, at=clock(), transport=transport)
        digests = with_earlier_due(store, digests, transport=transport)
    return send_digests(
        store,
        settings,
        outgoing_emails(digests, render),
        outbox=config.outbox,
        clock=clock,
        message_id_domain=parseaddr(sender)[1].rpartition("@")[2] or None,
        should_stop=should_stop,
        delivers=settings is not None or config.smtp is None,
        lock_timeout=lock_timeout,
    )


def check_sending(config: Config, *, smtp: bool = True) -> None:
    """Raise `DeliveryError` when sending (over SMTP when `smtp`) cannot work as configured:
    a configuration error, found before anything is built or published."""
    problem = smtp_login_problem(config.smtp) if smtp else None
    if problem:
        raise DeliveryError(problem)


def run_profiles(
    config: Config,
    store: Store,
    profiles: Sequence[Profile],
    *,
    clock: Callable[[], datetime],
    day: date | None = None,
    smtp: bool = False,
    environ: Mapping[str, str] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    lock_timeout: float = SEND_LOCK_TIMEOUT,
) -> RunReport:
    """Build (or load, or rebuild) each profile's digest for `day` (default: today in its
    time zone), publish them, and email them (see `email_digests`)."""
    environ = os.environ if environ is None else environ
    unsubscribe_key(environ)  # a bad key stops the run before anything is written
    check_sending(config, smtp=smtp)
    embed = embedder_for(config)
    now = clock()
    grace = timedelta(hours=config.catch_up_hours)
    report = RunReport()
    for profile in profiles:
        digest, built = build_digest(
            store, profile, day or profile_day(profile, now), now=now, embed=embed, grace=grace
        )
        report.digests.append(digest)
        if built is not Built.BEFORE:
            report.built.append(digest)
        if built is Built.REBUILT:
            report.rebuilt.append(digest)
    report.written = publish_digests(config, store, report.digests, now=now)
    report.delivery = email_digests(
        config,
        store,
        report.digests,
        smtp=smtp,
        clock=clock,
        environ=environ,
        should_stop=should_stop,
        lock_timeout=lock_timeout,
    )
    return report


@dataclass(frozen=True, slots=True)
class ServiceJobs:
    """What the scheduler runs: the ingest, one profile's day, how to tell a day is done,
    and how to tell a done day is open again (new papers for a digest that delivered nothing)."""

    run_profile: ProfileJob
    run_ingest: IngestJob
    is_done: DoneCheck
    is_reopened: DoneCheck


def service_jobs(config: Config, store: Store, *, clock: Callable[[], datetime], stop: threading.Event) -> ServiceJobs:
    """The service's jobs: the same steps as `run_profiles`, one profile at a time."""
    ingest_inbox = inbox_ingest_job(store, inbox=config.inbox, quarantine=config.quarantine, clock=clock)

    def ingest() -> JobReport:
        fetched = None
        if config.source.enabled:
            try:
                fetched = fetch_recent_days(config, store, clock=clock)
            except FetchError as exc:
                return JobReport(note=str(exc), ok=False)
        report = ingest_inbox()
        if fetched is None:
            return report
        counts = {**report.counts, "days_fetched": len(fetched.days)}
        failed = [f"{day.day}: {day.message}" for day in fetched.days if day.outcome == FAILED]
        problems = (*failed, *(str(p) for p in fetched.problems), *report.problems)
        return JobReport(counts=counts, note=report.note, ok=report.ok, problems=problems)

    embed = embedder_for(config)
    grace = timedelta(hours=config.catch_up_hours)
    transport = "smtp" if config.smtp else "outbox"

    def build(profile: Profile, day: date) -> tuple[Digest, bool]:
        digest, built = build_digest(store, profile, day, now=clock(), embed=embed, grace=grace)
        return digest, built is not Built.BEFORE

    def is_reopened(profile: Profile, day: date) -> bool:
        return rebuild_due(store, profile, day, now=clock(), grace=grace)

    def is_done(profile: Profile, day: date) -> bool:
        return digest_done(store, profile, day, transport) and not is_reopened(profile, day)

    run_profile = digest_job(
        build=build,
        publish=lambda digest: publish_digests(config, store, [digest], now=clock()),
        send=lambda digests: email_digests(config, store, digests, smtp=True, clock=clock, should_stop=stop.is_set),
    )
    return ServiceJobs(run_profile, ingest, is_done, is_reopened)


def serve_once(config: Config, store: Store, *, clock: Callable[[], datetime]) -> list[JobRun]:
    """`digest serve --once`: the ingest, then every profile whose digest is due now (or
    rebuilt: see `rebuild_due`)."""
    unsubscribe_key(os.environ)
    check_sending(config)
    jobs = service_jobs(config, store, clock=clock, stop=threading.Event())
    return run_due_once(
        config.profiles,
        now=clock(),
        run_profile=jobs.run_profile,
        run_ingest=jobs.run_ingest,
        is_done=jobs.is_done,
        grace=timedelta(hours=config.catch_up_hours),
    )


def serve(config: Config, store: Store, *, clock: Callable[[], datetime]) -> None:
    """`digest serve`: run the scheduler until SIGTERM or Ctrl-C (see `schedule.run_service`)."""
    unsubscribe_key(os.environ)
    check_sending(config)
    stop = threading.Event()
    jobs = service_jobs(config, store, clock=clock, stop=stop)
    run_service(
        config.profiles,
        run_profile=jobs.run_profile,
        run_ingest=jobs.run_ingest,
        is_done=jobs.is_done,
        stop=stop,
        grace=timedelta(hours=config.catch_up_hours),
        is_reopened=jobs.is_reopened,
    )
