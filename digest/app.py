"""The application: the one front door that the CLI, the scheduler and any web side call.

`App` holds the validated config, the state database (opened on first use), the clock,
the environment and how paths are named in messages, and has the verbs of the product:
read the inbox and the live source, build, publish and email digests, send what is due,
rank for a profile, unsubscribe, check profiles, export, report health, prune. Each rule
that ties the stages together is written here once, so that every caller gets the same
result: a digest is built at most once per profile and day, unless it delivered nothing
and new papers for its day arrived before its deadline (`lifecycle.digest_is_final`);
every email goes through the ledger; a manual build reads the inbox first, as the daily
job and the service do.

The profiles of a build are ranked and rendered in shards by a `parallel.Runner`
(`[digest] workers` local processes, or a Dask cluster with `[digest] scheduler`): this
object, the coordinator, reads the store and hands each shard plain data (`tasks`), then
saves, writes and sends what comes back, in the order of the profiles. So a build with
any number of workers writes the same bytes as one in a single process.

This module orders the steps and owns no stage: parsing is `ingest`, storing `store`,
ranking `rank`, rendering `render` and `publish`, sending `deliver`, the states
`lifecycle`, sharing out the work `parallel`. It never parses arguments, prints, or
knows APScheduler.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from digest.clock import Clock, utc_now
from digest.config import Config, SmtpSettings
from digest.cron import profile_trigger
from digest.deliver import (
    RETRY_DAYS,
    SEND_LOCK_TIMEOUT,
    DeliveryError,
    DeliveryReport,
    Outgoing,
    Planned,
    digest_emails_done,
    due_digests,
    give_up_stale_emails,
    outgoing_emails,
    plan_deliveries,
    send_digests,
    smtp_login_problem,
    transport_kind,
    with_earlier_due,
)
from digest.fetch import FAILED, DayResult, FetchReport, fetch_days, fetch_recent_days
from digest.formats import FormatKind, wants
from digest.health import Health, HealthInputs, ProfileInputs, assess, database_bytes, scheduled_day
from digest.lifecycle import digest_is_final, is_done, rebuild_deadline, state_after_publishing
from digest.models import (
    Cadence,
    Digest,
    EmptyReason,
    Paper,
    Problem,
    Profile,
    ScoredPaper,
    Subscriber,
    TransportKind,
    Votes,
)
from digest.pipeline import IngestSummary, find_dump_files, ingest_files
from digest.profiles import find_profile
from digest.publish import email_renderer, render_settings, write_outputs
from digest.retention import check_day, cutoff
from digest.rows import Delivery, DigestStatus, PruneCounts
from digest.store import Store, open_store
from digest.unsubscribe import unsubscribe_key, unsubscribe_token

if TYPE_CHECKING:
    from digest.parallel import Runner
    from digest.rank import Embedder
    from digest.tasks import EmailJob, RankCommon, Ranked, RankJob

# Papers that set word rarity and each day's most upvoted paper for the ranker, so that
# a score does not depend on which other papers are new that day (see rank.score_papers).
BACKGROUND_PAPERS = 5000
OUTBOX_WRITERS = 4  # at most this many threads write the outbox (each message is a flushed file and a commit)


class Built(StrEnum):
    """What building a profile's day did."""

    NEW = "built"
    REBUILT = "rebuilt"  # the saved digest delivered nothing and new papers came before its deadline
    BEFORE = "built before"  # the saved digest stands


@dataclass(slots=True)
class BuildReport:
    """What one build did: the digests (built now or before), those built or rebuilt now,
    the files written, the emails."""

    digests: list[Digest] = field(default_factory=list)
    built: list[Digest] = field(default_factory=list)
    rebuilt: list[Digest] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    delivery: DeliveryReport | None = None


@dataclass(slots=True)
class Refresh:
    """What reading the inputs did: the live source's days (None when it is off), the inbox."""

    fetched: FetchReport | None
    ingested: IngestSummary

    @property
    def rejected(self) -> bool:
        return bool(self.ingested.rejected or (self.fetched and self.fetched.rejected))

    def problems(self) -> list[str]:
        """One line per rejected input: a day that could not be fetched, a bad item, a bad file."""
        found: list[str] = []
        if self.fetched is not None:
            found += [f"{day.day}: {day.message}" for day in self.fetched.days if day.outcome == FAILED]
            found += [str(problem) for problem in self.fetched.problems]
        return found + self.ingested.lines()


@dataclass(frozen=True, slots=True)
class Ranking:
    """How a profile ranks papers (`digest rank`): the best first, of how many, for which day."""

    day: date
    considered: int
    ranked: list[ScoredPaper]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What building one profile's day takes: the digest stored (if any), the store's
    watermark read before the candidates, how many there are, and the ranking to do
    (None: the stored digest stands)."""

    profile: Profile
    day: date
    stored: DigestStatus | None
    watermark: int = 0
    candidates: int = 0
    job: RankJob | None = None


@dataclass(frozen=True, slots=True)
class JobReport:
    """What a service job says it did: counts for the log line (`{"papers": 7, "sent": 2}`), a note.

    `problems` are one-line reports of input that was rejected (a dump entry skipped, a
    file quarantined, a day that could not be fetched), each logged on its own line.
    """

    counts: Mapping[str, int] = field(default_factory=dict)
    note: str = ""
    ok: bool = True
    problems: tuple[str, ...] = ()

    @property
    def rejected(self) -> bool:
        return bool(self.problems)


class App:
    """The product's verbs over one config and one state database (see the module docstring).

    `clock` gives aware datetimes; `label` names a path in messages (the CLI: relative to
    the working folder); `environ` holds the secrets. The store is opened on first use and
    closed by `close` (or the `with` block).
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = utc_now,
        environ: Mapping[str, str] | None = None,
        label: Callable[[Path], str] = str,
        lock_timeout: float = SEND_LOCK_TIMEOUT,
        store: Store | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.environ = os.environ if environ is None else environ
        self.label = label
        self.lock_timeout = lock_timeout
        self._store = store
        self._embed: Embedder | None = None
        self._embed_loaded = False
        self._runner: Runner | None = None

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.config.db)
        return self._store

    @property
    def runner(self) -> Runner:
        """Who ranks and renders the shards of profiles: this process, local worker processes
        or a Dask cluster (`parallel.open_runner`; `ClusterUnavailable` when the cluster cannot
        be used). Opened on first use."""
        if self._runner is None:
            from digest.parallel import open_runner

            self._runner = open_runner(self.config.workers, self.config.scheduler)
        return self._runner

    def check_cluster(self) -> None:
        """Raise `parallel.ClusterUnavailable` (before anything is done) when `[digest] scheduler`
        names a cluster that cannot be used: the extra is missing, or it cannot be reached."""
        if self.config.scheduler:
            self.runner  # noqa: B018 (connecting is the check)

    @property
    def grace(self) -> timedelta:
        """How late a missed tick still runs, and how long a digest stays open (`catch_up_hours`)."""
        return timedelta(hours=self.config.catch_up_hours)

    def profiles(self, profile_id: str | None = None) -> list[Profile]:
        """Every configured profile, or the one named (`KeyError` naming the known ones)."""
        if profile_id is None:
            return list(self.config.profiles)
        return [find_profile(self.config.profiles, profile_id)]

    def subscribers(self, profile: Profile) -> list[Subscriber]:
        """Everyone who reads `profile`'s emails: the addresses in `digest.toml`."""
        return [Subscriber(address) for address in profile.subscribers]

    def audience(self, profile: Profile) -> list[str]:
        """The addresses that get each of `profile`'s digests by email (daily readers)."""
        return [s.address for s in self.subscribers(profile) if s.cadence == Cadence.DAILY]

    def profile_day(self, profile: Profile) -> date:
        """Today in the profile's time zone: the day its digest is for."""
        from zoneinfo import ZoneInfo

        return self.clock().astimezone(ZoneInfo(profile.timezone)).date()

    # -- checks made before anything is done ------------------------------------------------

    def smtp(self, send: bool) -> SmtpSettings | None:
        """The SMTP settings a command uses: `[smtp]` when it sends and they are configured."""
        return self.config.smtp if send else None

    def check_sending(self, *, send: bool = True) -> None:
        """Raise what would stop sending (a login without its password, a bad signing key)
        before anything is built or published: `DeliveryError`, `ConfigError`."""
        unsubscribe_key(self.environ)
        problem = smtp_login_problem(self.smtp(send))
        if problem:
            raise DeliveryError(problem)

    def check_day(self, day: date | None) -> None:
        """Raise `retention.TooOld` for a digest day whose ledger may have been pruned."""
        if day is not None:
            check_day(self.config, day, self.clock().date())

    # -- inputs -------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[Path] | None = None,
        *,
        year: int | None = None,
        on_file: Callable[[Path], None] | None = None,
    ) -> IngestSummary:
        """Store the dumps in `paths` (files or folders; default: the inbox)."""
        config = self.config
        files = self.dump_files(paths)
        now = self.clock()
        return ingest_files(
            self.store,
            files,
            quarantine=config.quarantine,
            today=now.date(),
            now=now,
            year=year,
            label=self.label,
            on_file=on_file,
        )

    def dump_files(self, paths: Sequence[Path] | None = None) -> list[Path]:
        """The files an ingest of `paths` (default: the inbox) looks at: the files given, and
        every visible file under the folders given, leaving out the quarantine folder."""
        given = [p for p in (paths or [self.config.inbox]) if p.exists()]
        return find_dump_files(given, skip=[self.config.quarantine])

    def fetch(self, days: Iterable[date], *, on_day: Callable[[DayResult], None] | None = None) -> FetchReport:
        """Fetch, save and ingest these days of the live source (whether or not it is enabled)."""
        return fetch_days(self.config, self.store, days, clock=self.clock, label=self.label, on_day=on_day)

    def refresh(self, *, fetch: bool = True, on_file: Callable[[Path], None] | None = None) -> Refresh:
        """What every job starts with: the live source's recent days (when `fetch` and
        `[source] enabled`), then every new dump in the inbox."""
        fetched = fetch_recent_days(self.config, self.store, clock=self.clock, label=self.label) if fetch else None
        return Refresh(fetched, self.ingest(on_file=on_file))

    def stale(self) -> str | None:
        """Why the inbox looks stale (its newest listing is over `stale_after_days` old), or None."""
        newest, limit = self.store.latest_listing_date(), self.config.stale_after_days
        if newest is None:
            return "no dumps stored yet: nothing to digest (put dumps in the inbox, or enable [source])"
        age = (self.clock().date() - newest).days
        if age <= limit:
            return None
        return (
            f"the newest dump is from {newest.isoformat()}, {age} days ago (more than stale_after_days = {limit}): "
            "feeds will not change until new dumps arrive (digest fetch, or [source] enabled = true)"
        )

    # -- ranking and building ---------------------------------------------------------------------

    def embedder(self) -> Embedder | None:
        """The semantic embedder when `[digest] semantic = true` (raises `SemanticUnavailable`
        with the install command when the extra is missing), else None. Loaded once."""
        if not self._embed_loaded and self.config.semantic:
            from digest.tasks import embedder

            self._embed = embedder()
        self._embed_loaded = True
        return self._embed

    def votes(self, profile: Profile) -> Votes:
        """What the profile's reader said through the digest (nothing yet: no web side)."""
        return Votes()

    def rank_papers(
        self,
        profile: Profile,
        papers: Sequence[Paper],
        *,
        limit: int | None = None,
        day: date | None = None,
        votes: Votes | None = None,
    ) -> list[ScoredPaper]:
        """The profile's ranking of `papers`: its liked papers resolved from the store, the
        papers it was given left out (but those of `day`'s own digest, which a rebuild
        replaces), the store's recent papers as the background, and `votes` (default: the
        profile's own, `votes`). The same ranking a build's worker makes (`tasks.rank_profile`)."""
        from digest.tasks import rank_profile

        self.embedder()
        return rank_profile(self._rank_common(), self._rank_job(profile, papers, day=day, votes=votes), limit=limit)

    def _rank_common(self) -> RankCommon:
        from digest.tasks import RankCommon

        return RankCommon(tuple(self.store.recent_papers(BACKGROUND_PAPERS)), self.config.semantic)

    def _rank_job(
        self, profile: Profile, papers: Sequence[Paper], *, day: date | None, votes: Votes | None = None
    ) -> RankJob:
        from digest.tasks import RankJob

        store = self.store
        return RankJob(
            profile,
            tuple(papers),
            tuple(store.find_papers(profile.liked)),
            frozenset(store.delivered_paper_ids(profile.id, except_day=day)),
            self.votes(profile) if votes is None else votes,
        )

    def rank(self, profile: Profile, *, day: date | None = None, every_paper: bool = False, limit: int) -> Ranking:
        """How `profile` ranks the papers its digest of `day` would consider (or every stored paper)."""
        day = day or self.profile_day(profile)
        papers = list(self.store.iter_papers()) if every_paper else self.store.candidate_papers(profile.id, day)
        return Ranking(day, len(papers), self.rank_papers(profile, papers, limit=limit, day=day))

    def reason_words(self, scored: ScoredPaper) -> list[str]:
        """A ranked paper's reasons as the templates word them (`templates/reasons.txt`)."""
        from digest.render.reasons import word_reason
        from digest.render.templates import template_environment

        env = template_environment(self.config.templates)
        return [word_reason(reason, env) for reason in scored.reasons]

    def rebuild_due(self, profile: Profile, day: date) -> bool:
        """True when the saved digest of `profile` for `day` is not final and papers for its
        day were stored after it was built."""
        status = self.store.digest_status(profile.id, day)
        now = self.clock()
        if status is None or digest_is_final(status, now=now, deadline=rebuild_deadline(profile, day, self.grace)):
            return False
        return self.store.new_candidates(profile.id, day, status.watermark) > 0

    def build_digest(self, profile: Profile, day: date) -> tuple[Digest, Built]:
        """The profile's digest for `day`: the stored one, or one ranked and saved now (also
        a rebuild, when `rebuild_due`). Returns the digest and what this call did."""
        return next(self.build_digests([(profile, day)]))

    def build_digests(self, wanted: Sequence[tuple[Profile, date]]) -> Iterator[tuple[Digest, Built]]:
        """`build_digest` for each (profile, day), in order; the rankings are made in shards
        of `[digest] shard_size` by the runner, each digest saved here as its shard returns."""
        from digest.parallel import shards
        from digest.tasks import rank_shard

        plans: deque[list[_Plan]] = deque()

        def jobs() -> Iterator[list[RankJob]]:
            for group in shards(wanted, self.config.shard_size):
                plan = [self._plan(profile, day) for profile, day in group]
                plans.append(plan)
                yield [step.job for step in plan if step.job is not None]

        for ranked in self.runner.map(rank_shard, self._rank_common(), jobs()):
            results = iter(ranked)
            for step in plans.popleft():
                if step.job is None:
                    yield self._stored(step.profile, step.day), Built.BEFORE
                else:
                    yield self._save(step, next(results))

    def _plan(self, profile: Profile, day: date) -> _Plan:
        store = self.store
        stored = store.digest_status(profile.id, day)
        if stored is not None and not self.rebuild_due(profile, day):
            return _Plan(profile, day, stored)
        # Read before the candidates: a dump stored meanwhile is then still "new" next time.
        watermark = store.watermark()
        candidates = store.candidate_papers(profile.id, day)
        job = self._rank_job(profile, candidates, day=day)
        return _Plan(profile, day, stored, watermark, len(candidates), job)

    def _save(self, plan: _Plan, ranked: Ranked) -> tuple[Digest, Built]:
        store, profile, day, items = self.store, plan.profile, plan.day, ranked.items
        digest = Digest(
            profile=profile,
            date=day,
            items=items,
            built_at=self.clock(),
            candidates=plan.candidates,
            empty_reason=None
            if items
            else EmptyReason.BELOW_THRESHOLD
            if plan.candidates
            else EmptyReason.NO_NEW_PAPERS,
            runners_up=() if items else ranked.runners_up,
        )
        if plan.stored is None and store.save_digest(digest, plan.watermark):
            return digest, Built.NEW
        if plan.stored is not None and store.replace_digest(digest, plan.watermark, replaces=plan.stored.watermark):
            return digest, Built.REBUILT
        # Another process saved (or rebuilt, or began to deliver) this day's digest first: theirs stands.
        return self._stored(profile, day), Built.BEFORE

    def _stored(self, profile: Profile, day: date) -> Digest:
        digest = self.store.load_digest(profile, day)
        assert digest is not None, "digests are never deleted"
        return digest

    def publish(self, digests: Sequence[Digest]) -> list[Path]:
        """Feeds, documents and site pages; a digest with items in a feed counts as delivered."""
        written = write_outputs(self.config, self.store, digests, self.runner)
        changes = []
        for digest in digests:
            state = self.store.digest_state(digest.profile.id, digest.date)
            if state is None:
                continue
            in_a_feed = wants(digest.profile.formats, FormatKind.FEED)
            after = state_after_publishing(state, has_items=bool(digest.items), in_a_feed=in_a_feed)
            if after != state:
                changes.append((digest.profile.id, digest.date, after))
        self.store.set_digest_states(changes, self.clock())
        return written

    def email(
        self,
        digests: Sequence[Digest],
        *,
        send: bool,
        catch_up: bool = True,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> DeliveryReport:
        """Each subscriber's email of each digest, through the ledger: over SMTP when `send`
        and `[smtp]` is configured, else into the outbox folder as `.eml` files.

        With `catch_up`, the profiles' earlier digests whose emails a failed run left pending
        go first, and emails older than a week are given up (their papers come back).
        Written to the outbox while `[smtp]` is configured, an email is a preview: it does
        not make its papers count as delivered.
        """
        config, store = self.config, self.store
        smtp = self.smtp(send)
        kind = transport_kind(smtp)
        sender = smtp.sender if smtp and smtp.sender else config.sender
        key = unsubscribe_key(self.environ)
        render = email_renderer(config, sender=sender, unsubscribe_key=key)
        if catch_up and digests:
            profiles = list({d.profile.id: d.profile for d in digests}.values())
            today = max(d.date for d in digests)
            give_up_stale_emails(store, profiles, today=today, at=self.clock(), transport=kind)
            digests = with_earlier_due(store, digests, transport=kind, audience=self.audience)
        return send_digests(
            store,
            smtp,
            outgoing_emails(digests, render, self.audience),
            outbox=config.outbox,
            clock=self.clock,
            message_id_domain=parseaddr(sender)[1].rpartition("@")[2] or None,
            should_stop=should_stop,
            delivers=smtp is not None or config.smtp is None,
            lock_timeout=self.lock_timeout,
            # Over SMTP, `[smtp] connections`; into the outbox, a writer per worker (disk flushes overlap).
            connections=smtp.connections if smtp else min(self.config.workers, OUTBOX_WRITERS),
            prepare=lambda outgoing: self._prepared(outgoing, kind=kind, sender=sender, key=key),
        )

    def _prepared(
        self, outgoing: Sequence[Outgoing], *, kind: TransportKind, sender: str, key: bytes | None
    ) -> Iterator[Outgoing]:
        """`outgoing` in order, each message still due rendered by the runner's workers in
        shards of `[digest] shard_size` messages, for the Message-ID its ledger row has."""
        from digest.parallel import shards
        from digest.tasks import email_shard

        chunks: deque[list[Outgoing]] = deque()

        def jobs() -> Iterator[list[EmailJob]]:
            for chunk in shards(outgoing, self.config.shard_size):
                chunks.append(chunk)
                yield self._email_jobs(chunk, kind, key)

        settings = render_settings(self.config, sender=sender)
        for rendered in self.runner.map(email_shard, settings, jobs()):
            made = {(r.profile_id, r.day, r.subscriber): r.prepared for r in rendered}
            for item in chunks.popleft():
                prepared = made.get(item.key)
                yield item if prepared is None else replace(item, prepared=prepared)

    def _email_jobs(self, chunk: Sequence[Outgoing], kind: TransportKind, key: bytes | None) -> list[EmailJob]:
        """The messages of `chunk` still due, grouped by digest, with their ledger Message-IDs
        and signed unsubscribe tokens (a worker never sees the key)."""
        from digest.tasks import EmailJob, Letter

        jobs: list[EmailJob] = []
        for item in chunk:
            row = self.store.get_delivery(item.key)
            if item.digest is None or row is None or is_done(row, kind):
                continue
            token = unsubscribe_token(key, item.profile_id, item.subscriber) if key is not None else None
            letter = Letter(item.subscriber, row.message_id, token)
            if jobs and jobs[-1].digest is item.digest:
                jobs[-1] = EmailJob(item.digest, (*jobs[-1].letters, letter))
            else:
                jobs.append(EmailJob(item.digest, (letter,)))
        return jobs

    def build(
        self,
        profiles: Sequence[Profile],
        *,
        day: date | None = None,
        send: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> BuildReport:
        """Build (or load, or rebuild) each profile's digest for `day` (default: today in its
        time zone), publish them, and email them (see `email`)."""
        self.check_sending(send=send)
        self.check_semantic()  # a missing extra stops the run before anything is written
        report = BuildReport()
        wanted = [(profile, day or self.profile_day(profile)) for profile in profiles]
        for digest, built in self.build_digests(wanted):
            report.digests.append(digest)
            if built is not Built.BEFORE:
                report.built.append(digest)
            if built is Built.REBUILT:
                report.rebuilt.append(digest)
        report.written = self.publish(report.digests)
        report.delivery = self.email(report.digests, send=send, should_stop=should_stop)
        return report

    def check_semantic(self) -> None:
        """Raise `SemanticUnavailable` when `[digest] semantic = true` and the extra is
        missing: loaded here when this process ranks, else only looked for."""
        from digest.parallel import InlineRunner

        if not self.config.semantic:
            return
        if isinstance(self.runner, InlineRunner):
            self.embedder()
            return
        from digest.semantic import INSTALL_HINT, SemanticUnavailable, available

        if not available():
            raise SemanticUnavailable(INSTALL_HINT)

    # -- sending what is due ------------------------------------------------------------------

    def due(self, profiles: Sequence[Profile], *, day: date | None = None) -> list[Digest]:
        """Built digests whose emails are still to go: of `day`, or of the last week."""
        kind = transport_kind(self.config.smtp)
        return due_digests(
            self.store, profiles, today=self.clock().date(), day=day, transport=kind, audience=self.audience
        )

    def plan_send(self, profiles: Sequence[Profile], *, day: date | None = None) -> list[Planned]:
        """What `send` would do with each email, changing nothing."""
        render = email_renderer(self.config, sender=self.config.sender, unsubscribe_key=None)
        kind = transport_kind(self.config.smtp)
        return plan_deliveries(self.store, outgoing_emails(self.due(profiles, day=day), render, self.audience), kind)

    def send(self, profiles: Sequence[Profile], *, day: date | None = None) -> tuple[int, DeliveryReport]:
        """Send every email of the built digests that the ledger does not record as done
        (of `day`, else of the last week): over SMTP when configured, else into the outbox.
        Returns how many digests had emails due, and what the batch did."""
        self.check_sending()
        kind = transport_kind(self.config.smtp)
        give_up_stale_emails(self.store, profiles, today=self.clock().date(), at=self.clock(), transport=kind)
        digests = self.due(profiles, day=day)
        return len(digests), self.email(digests, send=True, catch_up=False)

    # -- the service's jobs ---------------------------------------------------------------------

    def ingest_job(self) -> JobReport:
        """The service's periodic job: read the live source (when enabled) and the inbox."""
        refresh = self.refresh()
        summary = refresh.ingested
        counts = {
            "files": summary.files,
            "dumps_new": summary.dumps_new,
            "papers_new": summary.papers_new,
            "quarantined": len(summary.quarantined),
            "problems": len(summary.problems),
        }
        if refresh.fetched is not None:
            counts["days_fetched"] = len(refresh.fetched.days)
        note = "" if self.config.inbox.exists() else f"no inbox folder {self.config.inbox}"
        return JobReport(counts=counts, note=note, problems=tuple(refresh.problems()))

    def run_profile(self, profile: Profile, day: date, *, should_stop: Callable[[], bool] = lambda: False) -> JobReport:
        """The service's job for one profile's day: build (only if not done), publish, send."""
        digest, built = self.build_digest(profile, day)
        self.publish([digest])
        report = self.email([digest], send=True, should_stop=should_stop)
        counts = {
            "built": int(built is not Built.BEFORE),
            "papers": len(digest.items),
            "sent": len(report.sent),
            "failed": len(report.failed),
            "pending": len(report.pending) + report.not_reached,
        }
        return JobReport(counts=counts, note=report.stopped or "", ok=report.stopped is None)

    def is_done(self, profile: Profile, day: date) -> bool:
        """Whether the digest of `profile` for `day` is built, its emails done, and not reopened."""
        digest = self.store.load_digest(profile, day)
        if digest is None or self.rebuild_due(profile, day):
            return False
        return digest_emails_done(self.store, digest, transport_kind(self.config.smtp), self.audience)

    # -- readers ----------------------------------------------------------------------------------

    def unsubscribe(self, address: str, profile_id: str | None, *, undo: bool = False) -> bool:
        """Stop (or, with `undo`, resume) sending to `address`, for one profile or all; False
        when nothing changed. `KeyError` for an unknown profile."""
        if profile_id is not None:
            find_profile(self.config.profiles, profile_id)
        if undo:
            return self.store.resubscribe(address, profile_id)
        return self.store.unsubscribe(address, profile_id, self.clock())

    def is_subscriber(self, address: str) -> bool:
        return address.lower() in {s.lower() for p in self.config.profiles for s in p.subscribers}

    def deliveries(self, *, day: date | None = None, profile_id: str | None = None) -> list[Delivery]:
        return self.store.deliveries(day=day, profile_id=profile_id)

    def papers(self) -> Iterator[Paper]:
        """Every stored paper, in order of first sighting."""
        return self.store.iter_papers()

    def totals(self) -> tuple[int, int]:
        """How many papers, from how many dumps, the store holds."""
        return self.store.paper_count(), self.store.dump_count()

    def unknown_liked(self) -> list[Problem]:
        """A warning for each liked paper that names no stored paper (yet): it counts once
        ingested. Matched as the ranker matches them (`Store.resolve_references`). Nothing
        when there is no database."""
        if not self.config.db.exists():
            return []
        source = self.label(self.config.path) if self.config.path else "defaults"
        found = []
        for index, profile in enumerate(self.config.profiles):
            for reference, paper in self.store.resolve_references(profile.liked).items():
                if paper is None:
                    message = f"{reference!r} is not a stored paper (yet); it counts once ingested"
                    found.append(Problem(source, profile.line, f"profiles[{index}].liked: warning: {message}"))
        return found

    def status(self) -> Health:
        """The deployment's health (`health.assess`); a health check never creates a database."""
        config, now = self.config, self.clock()
        if not config.db.exists():
            return assess(HealthInputs(now, config.db, None, None, config.stale_after_days))
        failed_since = now.date() - timedelta(days=RETRY_DAYS)
        profiles = tuple(
            ProfileInputs(
                activity=self.store.profile_activity(profile.id, failed_since=failed_since),
                due_day=scheduled_day(profile, now),
                next_tick=profile_trigger(profile).get_next_fire_time(None, now),
            )
            for profile in config.profiles
        )
        newest = self.store.latest_listing_date()
        return assess(
            HealthInputs(now, config.db, database_bytes(config.db), newest, config.stale_after_days, profiles)
        )

    def prune(self, *, dry_run: bool = False) -> tuple[date, PruneCounts]:
        """Delete what is past the retention period, keeping each profile's ledger rows for
        the digests its feed still shows (its most recent `feed_size` entries). Returns the
        cutoff day and what was (or would be) deleted."""
        keep_from = {}
        for profile in self.config.profiles:
            oldest = self.store.feed_oldest_day(profile.id, self.config.feed_size)
            if oldest is not None:
                keep_from[profile.id] = oldest
        before = cutoff(self.config, self.clock().date())
        return before, self.store.prune(before, keep_from, dry_run=dry_run)

    def transport(self, send: bool) -> TransportKind:
        return transport_kind(self.smtp(send))
