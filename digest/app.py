"""The application: the one front door that the CLI, the scheduler and any web side call.

`App` holds the validated config, the state database (opened on first use), the clock,
the environment and how paths are named in messages, and has the verbs of the product:
read the inbox and the live source, build, publish and email digests, send what is due,
rank for a profile, unsubscribe, check profiles, export, report health, prune. Each rule
that ties the stages together is written here once, so that every caller gets the same
result: a digest is built at most once per profile and day, unless it delivered nothing
and new papers for its day arrived before its deadline (`lifecycle.digest_is_final`);
a roll-up once per profile and period, when its period has ended (`lifecycle.due_periods`:
every build, run and scheduled tick builds the week's and the month's just ended) or by
hand; every email goes through the ledger, and a daily reader's stale emails go as one
"what you missed" message (`lifecycle.to_catch_up`); a manual build reads the inbox
first, as the daily job and the service do.

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

import hashlib
import io
import json
import logging
import os
import secrets
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from apscheduler.triggers.base import BaseTrigger

from digest.clock import Clock, utc_now
from digest.config import Config, ConfigError, SmtpSettings
from digest.cron import due_day, profile_trigger
from digest.deliver import (
    RETRY_DAYS,
    SEND_LOCK_TIMEOUT,
    DeliveryError,
    DeliveryReport,
    Outgoing,
    Planned,
    Undelivered,
    digest_emails_done,
    due_digests,
    give_up_stale_emails,
    make_message_id,
    outgoing_emails,
    plan_deliveries,
    send_digests,
    sends_email,
    smtp_login_problem,
    transport_kind,
    with_earlier_due,
)
from digest.deliver.dkim import dkim_problem
from digest.deliver.notices import NoticeError, send_notice
from digest.fetch import FAILED, DayResult, FetchReport, day_range, fetch_days, fetch_period, fetch_recent_days
from digest.files import display_path, remove_stale_temporaries
from digest.formats import FormatKind, wants
from digest.health import Health, HealthInputs, ProfileInputs, assess, database_bytes, is_stale, scheduled_day
from digest.lifecycle import (
    PERIOD_CADENCE,
    Waiting,
    carries_papers,
    digest_is_final,
    due_periods,
    is_done,
    rebuild_deadline,
    rollup_deadline,
    rollup_emails_done,
    row_cadence,
    state_after_publishing,
    to_catch_up,
)
from digest.models import (
    Cadence,
    DeliveryState,
    Digest,
    EmptyReason,
    Paper,
    Problem,
    Profile,
    Rollup,
    ScoredPaper,
    Subscriber,
    TransportKind,
    VoteKind,
    Votes,
)
from digest.periods import Period, PeriodKind, missed_days, parse_period, period_of
from digest.pipeline import IngestSummary, check_quarantine, find_dump_files, ingest_files
from digest.profiles import email_address, find_profile
from digest.publish import SharedPapers, email_renderer, render_settings, rollup_email_renderer, write_outputs
from digest.readers import (
    ADDRESS_LIMIT,
    CLIENT_LIMIT,
    MAX_PAUSE_WEEKS,
    OVERALL_LIMIT,
    PAGE_DAYS,
    Confirmation,
    Link,
    Requested,
    confirmation_expiry,
    is_owner,
    is_paused,
    mailbox_of,
    may_choose_digest,
    merge_subscribers,
    owner_address,
    pause_until,
    reader_votes,
    replaced_by,
    wants_own_digest,
)
from digest.records import paper_record, write_csv
from digest.render.links import ReaderLinks, WebLinks
from digest.retention import DayRefused, check_day, prune_before
from digest.rollups import Pool, as_listed, for_subscriber, order_pool, period_view, public_rollup
from digest.rows import (
    CarriedPaper,
    Confirmed,
    Delivery,
    DeliveryKey,
    DigestStatus,
    PruneCounts,
    ReaderPreferences,
    VoteRecord,
)
from digest.store import Store, open_store
from digest.tokens import KEY_VARIABLE, Action, expired, secret_key, verify
from digest.unsubscribe import unsubscribe_key, unsubscribe_token
from digest.validate import Invalid
from digest.wanted import wanted_text

if TYPE_CHECKING:
    from digest.parallel import Runner
    from digest.rank import Embedder
    from digest.tasks import EmailJob, RankCommon, Ranked, RankJob

log = logging.getLogger(__name__)

# Papers that set word rarity and each day's most upvoted paper for the ranker, so that
# a score does not depend on which other papers are new that day (see rank.score_papers).
BACKGROUND_PAPERS = 5000
MAX_ADDRESS_LENGTH = 254  # RFC 5321's limit on a forward path
NOTHING_LEFT = "no papers left for this reader: their votes and preferences left none in this digest"
CAUGHT_UP = "what-you-missed"  # `digest send --dry-run`: this email would go in a "what you missed" message
OUTBOX_WRITERS = 4  # at most this many threads write the outbox (a flushed file a message, a commit per 64)


class Built(StrEnum):
    """What building a profile's day did."""

    NEW = "built"
    REBUILT = "rebuilt"  # the saved digest delivered nothing and new papers came before its deadline
    BEFORE = "built before"  # the saved digest stands


@dataclass(slots=True)
class BuildReport:
    """What one build did: the digests (built now or before), those built or rebuilt now,
    the roll-ups (built now or before) and those built now, the files written, the emails."""

    digests: list[Digest] = field(default_factory=list)
    built: list[Digest] = field(default_factory=list)
    rebuilt: list[Digest] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    delivery: DeliveryReport | None = None
    rollups: list[Rollup] = field(default_factory=list)
    rollups_built: list[Rollup] = field(default_factory=list)


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


# The database's file and those SQLite, its locks and the publish workflow's snapshot put beside it.
DATABASE_COMPANIONS = ("", "-wal", "-shm", "-journal", ".lock", ".send.lock", ".base")


def _with_given_up(report: DeliveryReport, given_up: list[tuple[DeliveryKey, str]]) -> DeliveryReport:
    """The report, with the emails given up before the batch counted as failed (exit code 3)."""
    report.failed[:0] = [Undelivered(key, error) for key, error in given_up]
    return report


@dataclass(frozen=True, slots=True)
class PendingConfirmation:
    """A confirmation email to send: the request is recorded, the email not yet sent."""

    profile_id: str
    address: str
    reader: str
    expires: datetime
    hashed: str  # the address's hash, for logs and file names (never the address)


@dataclass(frozen=True, slots=True)
class SubscriptionAsked:
    """What asking to subscribe did, and the email to send when one is due."""

    outcome: Requested
    confirmation: PendingConfirmation | None = None


class AddressChange(NamedTuple):
    """What a change of an address's subscription did: the address as kept, whether it changed."""

    address: str
    changed: bool


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
    undelivered: bool = False  # some emails were refused for good or left pending

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
        label: Callable[[Path], str] = display_path,
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
        """Everyone who reads `profile`'s emails: the addresses in `digest.toml`, then those
        confirmed on the web side, each once, with the preferences they chose
        (`readers.merge_subscribers`); a cadence is the reader's own choice on the web side,
        else the one `digest.toml` gives them, else the profile's. Unsubscribed and paused
        readers are among them."""
        store = self.store
        ids = store.reader_ids(profile.subscribers)
        web = store.web_subscriptions(profile.id)
        listed = {address.lower(): chosen for address, chosen in profile.subscriber_cadences}
        merged = merge_subscribers(
            profile.subscribers, web, ids, store.all_preferences(profile.id), cadences=listed, default=profile.cadence
        )
        # As the ledger first spelled them: changing an address's capitals in digest.toml must
        # not make its emails new ones (sent again, the ledger none the wiser).
        spelled = store.ledger_spellings(profile.id, profile.subscribers)
        return [replace(s, address=spelled.get(s.address.lower(), s.address)) for s in merged]

    def audience(self, profile: Profile) -> list[str]:
        """The addresses that get each of `profile`'s digests by email: daily readers, less
        those who paused (until the day their pause ends) or unsubscribed."""
        today = self.profile_day(profile)
        daily = [s.address for s in self.subscribers(profile) if s.cadence == Cadence.DAILY and not is_paused(s, today)]
        stopped = self.store.unsubscribed(daily, profile.id)
        return [address for address in daily if address not in stopped]

    def due_day(self, profile: Profile, now: datetime) -> date | None:
        """The digest day due at `now`: the day of the profile's latest tick, if it is at most
        `catch_up_hours` old (`cron.due_day`)."""
        return due_day(profile, now, self.grace)

    def trigger(self, profile: Profile) -> BaseTrigger:
        """The profile's schedule, as the scheduler fires it (`cron.profile_trigger`)."""
        return profile_trigger(profile)

    def profile_day(self, profile: Profile) -> date:
        """Today in the profile's time zone: the day its digest is for."""
        from zoneinfo import ZoneInfo

        return self.clock().astimezone(ZoneInfo(profile.timezone)).date()

    # -- checks made before anything is done ------------------------------------------------

    def smtp(self, send: bool) -> SmtpSettings | None:
        """The SMTP settings a command uses: `[smtp]` when it sends and they are configured."""
        return self.config.smtp if send else None

    def check_sending(self, *, send: bool = True) -> None:
        """Raise what would stop sending (a login without its password, a bad signing key,
        a web address without a key to sign its links, a DKIM key missing or unreadable)
        before anything is built or published: `DeliveryError`, `ConfigError`."""
        unsubscribe_key(self.environ)
        self.web_links()
        problem = smtp_login_problem(self.smtp(send)) or dkim_problem(self.smtp(send))
        if problem:
            raise DeliveryError(problem)

    def check_ready(self, *, send: bool = True) -> None:
        """Raise what would stop a job before anything is done: sending that cannot work
        (`check_sending`), a quarantine folder that cannot be one (`QuarantineError`)."""
        self.check_sending(send=send)
        check_quarantine(self.config.quarantine)

    def web_links(self) -> WebLinks | None:
        """The web side's signed addresses when `[web] base_url` is set (else None); a
        `ConfigError` when it is set and no key signs its links."""
        base = self.config.web.base_url
        if base is None:
            return None
        key = secret_key(self.environ)
        if key is None:
            message = "is not set, and [web] base_url needs it to sign the links in emails (16+ random characters)"
            raise ConfigError([Problem(KEY_VARIABLE, 0, message)])
        return WebLinks(base, key)

    def check_day(self, day: date | None) -> None:
        """Raise `retention.DayRefused` for a digest day no command may build or send: one
        whose ledger may have been pruned (`retention.TooOld`), or one after tomorrow (UTC):
        a digest of the future would make every earlier one final before its papers came."""
        if day is None:
            return
        today = self.clock().astimezone(UTC).date()
        if day > today + timedelta(days=1):
            raise DayRefused(f"{day.isoformat()} is in the future: a digest is for today or an earlier day")
        check_day(self.config, day, today, self.store.pruned_before())

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
        every visible file under the folders given, leaving out the quarantine folder and
        what this program writes (an inbox that holds the database had it set aside as a bad dump)."""
        config = self.config
        given = [p for p in (paths or [config.inbox]) if p.exists()]
        database = [config.db.with_name(config.db.name + suffix) for suffix in DATABASE_COMPANIONS]
        written = [config.quarantine, config.feeds, config.site, config.digests, config.outbox, *database]
        return find_dump_files(given, skip=[*written, *([config.path] if config.path else [])])

    def fetch(
        self, since: date, until: date | None = None, *, on_day: Callable[[DayResult], None] | None = None
    ) -> FetchReport:
        """Fetch, save and ingest the days from `since` to `until` (default: `since` alone) of
        the live source, whether or not it is enabled; a range stops at the latest day it has."""
        days = day_range(since, until or since)
        return fetch_days(self.config, self.store, days, clock=self.clock, label=self.label, on_day=on_day)

    def export(self, form: str) -> Iterator[str]:
        """Every stored paper, in order of first sighting, as JSON lines or CSV (`form`),
        one piece of text at a time (`records`)."""
        records = (paper_record(paper) for paper in self.store.iter_papers())
        if form == "jsonl":
            yield from (json.dumps(record, ensure_ascii=False) + "\n" for record in records)
            return
        buffer = io.StringIO()
        write_csv(buffer, records)
        yield buffer.getvalue()

    def fetch_period(self, period: Period, *, on_day: Callable[[DayResult], None] | None = None) -> FetchReport:
        """Backfill a week or month of the live source with the API's period query: one file
        per listing day, the days fetched before left as they are."""
        return fetch_period(self.config, self.store, period, clock=self.clock, label=self.label, on_day=on_day)

    def refresh(self, *, fetch: bool = True, on_file: Callable[[Path], None] | None = None) -> Refresh:
        """What every job starts with: the live source's recent days (when `fetch` and
        `[source] enabled`), then every new dump in the inbox."""
        remove_stale_temporaries([p for p in (self.config.inbox, self.config.quarantine) if p.is_dir()])
        fetched = fetch_recent_days(self.config, self.store, clock=self.clock, label=self.label) if fetch else None
        return Refresh(fetched, self.ingest(on_file=on_file))

    def stale(self) -> str | None:
        """Why the inbox looks stale (`health.is_stale`: its newest listing is over
        `stale_after_days` old, or there is none), or None."""
        newest, limit, today = self.store.latest_listing_date(), self.config.stale_after_days, self.clock().date()
        if not is_stale(newest, today, limit):
            return None
        if newest is None:
            return "no dumps stored yet: nothing to digest (put dumps in the inbox, or enable [source])"
        return (
            f"the newest dump is from {newest.isoformat()}, {(today - newest).days} days ago (more than "
            f"stale_after_days = {limit}): feeds will not change until new dumps arrive (digest fetch, or "
            "[source] enabled = true)"
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
        """The votes the profile's own digest (its feeds, site and the emails of readers
        without votes) follows: its owner's (`readers.owner_address`), else none."""
        owner = owner_address(profile)
        reader = self.store.reader_id(owner) if owner else None
        return self.reader_votes(profile, reader) if reader else Votes()

    def reader_votes(self, profile: Profile, reader_id: str) -> Votes:
        """One reader's active votes on `profile`'s papers, as the ranker reads them."""
        records = self.store.votes(profile.id, reader_id, active=True)
        papers = {paper.id: paper for paper in self.store.get_papers([r.paper_id for r in records])}
        return reader_votes(records, papers)

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

    def build_rollups(self, wanted: Sequence[tuple[Profile, Period]]) -> list[tuple[Rollup, Built]]:
        """Each profile's roll-up of its period (everyone's: feeds, site, Markdown): the stored
        one, or one ranked and saved now. Built once: a roll-up built before its period ended
        keeps what it had, and papers of its period stored later go into the next one (they
        are given in the digests of its days). Each profile is ranked alone: its roll-up never
        hangs on which other profiles are rolled up with it."""
        store = self.store
        watermark = store.watermark()  # before the papers are read: a later dump goes to the next roll-up
        found: dict[tuple[str, str], tuple[Rollup, Built]] = {}
        new: list[tuple[Profile, Period, list[Paper]]] = []
        for profile, period in wanted:
            stored = store.load_rollup(profile, period)
            if stored is not None:
                found[profile.id, period.key] = (stored, Built.BEFORE)
                continue
            new.append((profile, period, store.rollup_candidates(profile.id, period)))
        rankings = self._rank_periods([(profile, papers, None) for profile, _, papers in new])
        built = []
        for (profile, period, papers), ranked in zip(new, rankings, strict=True):
            pool = order_pool(ranked, profile)
            built.append((public_rollup(profile, period, pool, built_at=self.clock(), considered=len(papers)), pool))
        for (rollup, _), saved in zip(built, store.save_rollups(built, watermark=watermark), strict=True):
            profile, period = rollup.profile, rollup.period
            if saved:
                found[profile.id, period.key] = (rollup, Built.NEW)
            else:  # another process saved it first: theirs stands
                theirs = store.load_rollup(profile, period)
                assert theirs is not None, "roll-ups are never deleted"
                found[profile.id, period.key] = (theirs, Built.BEFORE)
        return [found[profile.id, period.key] for profile, period in wanted]

    def _rank_periods(
        self, wanted: Sequence[tuple[Profile, Sequence[Paper], Votes | None]], *, here: bool = False
    ) -> list[list[ScoredPaper]]:
        """How each profile ranks the papers of a period: as its digests rank theirs, but
        nothing left out for having been given in a digest (a roll-up is for readers who did
        not get those), and upvotes weighed over the whole period (`rollups.period_view`).
        Each with its votes (None: the profile's own, `votes`); in this process when `here`
        (one reader's copy: not worth a trip to the workers), else by the runner."""
        from digest.parallel import shards
        from digest.tasks import RankJob, rank_period_shard

        asked = [row for row, (_, papers, _) in enumerate(wanted) if papers]
        if not asked:  # nothing to rank (or every roll-up stored): no background read, no trip to the workers
            return [[] for _ in wanted]
        views: dict[tuple[str, ...], tuple[Paper, ...]] = {}  # one copy a period: shards share it

        def jobs() -> Iterator[RankJob]:
            for row in asked:
                profile, papers, votes = wanted[row]
                key = tuple(p.id for p in papers)
                if key not in views:
                    views[key] = tuple(period_view(papers))
                viewed = views[key]
                mine = self.votes(profile) if votes is None else votes
                yield RankJob(profile, viewed, tuple(self.store.find_papers(profile.liked)), votes=mine)

        # Each profile in a batch of its own, as the daily build ranks it (in one batch, a
        # profile's words and votes would move the others' scores: its word pairs become
        # columns, its liked papers count in word rarity), shared out as the daily build is.
        if here:
            ranked = rank_period_shard(self._rank_common(), list(jobs()))
        else:
            found = self.runner.map(rank_period_shard, self._rank_common(), shards(jobs(), self.config.shard_size))
            ranked = [scored for shard in found for scored in shard]
        by_row = dict(zip(asked, ranked, strict=True))
        return [as_listed(by_row[row], papers) if row in by_row else [] for row, (_, papers, _) in enumerate(wanted)]

    def due_rollups(self, profile: Profile, day: date) -> list[Period]:
        """The roll-ups a build or tick of `profile` for `day` makes sure of (`lifecycle.due_periods`)."""
        return due_periods(day)

    def build_period(
        self,
        profiles: Sequence[Profile],
        kind: PeriodKind,
        *,
        day: date | None = None,
        send: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> BuildReport:
        """`digest build --period`: each profile's roll-up of the week or month holding `day`
        (default: today in its time zone), built (or loaded), published, and emailed to the
        subscribers whose cadence is that period's."""
        self.check_sending(send=send)
        self.embedder()
        wanted = [(profile, period_of(kind, day or self.profile_day(profile))) for profile in profiles]
        report = BuildReport()
        self._add_rollups(report, wanted)
        report.written = self.publish([], report.rollups)
        report.delivery = self.email([], send=send, rollups=report.rollups, by_hand=True, should_stop=should_stop)
        return report

    def _add_rollups(self, report: BuildReport, wanted: Sequence[tuple[Profile, Period]]) -> None:
        for rollup, built in self.build_rollups(wanted):
            report.rollups.append(rollup)
            if built is not Built.BEFORE:
                report.rollups_built.append(rollup)

    def publish(self, digests: Sequence[Digest], rollups: Sequence[Rollup] = ()) -> list[Path]:
        """Feeds, documents and site pages; a digest with items in a feed counts as delivered."""
        written = write_outputs(self.config, self.store, digests, rollups, runner=self.runner)
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
        rollups: Sequence[Rollup] = (),
        by_hand: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> DeliveryReport:
        """Each subscriber's email of each digest, and of each roll-up (to the subscribers of
        its cadence, until `lifecycle.rollup_deadline`, or whenever `by_hand`), through the
        ledger: over SMTP when `send` and `[smtp]` is configured, else into the outbox folder
        as `.eml` files.

        With `catch_up`, the profiles' earlier emails that a failed run left pending go too,
        and emails older than a week are given up (their papers come back); a daily reader's
        earlier digests that went stale unsent go as one "what you missed" message instead
        (`lifecycle.to_catch_up`). Written to the outbox while `[smtp]` is configured, an
        email is a preview: it does not make its papers count as delivered.
        """
        earlier: list[Digest] = []
        if catch_up and (digests or rollups):
            asked = {(d.profile.id, d.date) for d in digests}
            profiles = self._profiles_of(digests, rollups)
            kind = transport_kind(self.smtp(send))
            today = max((d.date for d in digests), default=self.clock().date())
            given_up = give_up_stale_emails(self.store, profiles, today=today, at=self.clock(), transport=kind)
            everything = with_earlier_due(self.store, digests, transport=kind, audience=self.audience)
            earlier = [d for d in everything if (d.profile.id, d.date) not in asked]
        else:
            given_up = []
        pending_of = self._profiles_of(digests, rollups) if catch_up else []
        report = self._deliver(
            digests, earlier, rollups, send=send, pending_of=pending_of, by_hand=by_hand, should_stop=should_stop
        )
        return _with_given_up(report, given_up)

    def _deliver(
        self,
        digests: Sequence[Digest],
        earlier: Sequence[Digest],
        rollups: Sequence[Rollup],
        *,
        send: bool,
        pending_of: Sequence[Profile],
        day: date | None = None,
        by_hand: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> DeliveryReport:
        """Send `digests` as they are, `earlier` ones as they are unless they went stale (then
        as "what you missed"), the emails of `rollups`, and the roll-up emails earlier runs
        left pending for the profiles `pending_of` (of `day` only, when given)."""
        config, store = self.config, self.store
        smtp = self.smtp(send)
        kind = transport_kind(smtp)
        sender = smtp.sender if smtp and smtp.sender else config.sender
        domain = parseaddr(sender)[1].rpartition("@")[2] or None
        involved = {p.id: p for p in (*self._profiles_of(digests, earlier, rollups), *pending_of)}
        self._skip_stopped_readers(list(involved.values()))
        web = self.web_links()
        if web is not None:
            now = self.clock()
            for profile in involved.values():
                for reader in self.subscribers(profile):
                    store.reader_id(reader.address, create=True, at=now)  # their links need their id
        own = self._own_digests([*earlier, *digests], kind, domain or "paper-digest.invalid")
        key = unsubscribe_key(self.environ)
        base = email_renderer(
            config,
            sender=sender,
            unsubscribe_key=key,
            reader_links=self._email_links(web) if web is not None else None,
        )

        def render(digest: Digest, subscriber: str, message_id: str) -> EmailMessage | None:
            chosen = own.get(DeliveryKey(digest.profile.id, digest.date, subscriber), digest)
            return base(chosen, subscriber, message_id)

        render_rollup = rollup_email_renderer(
            config,
            sender=sender,
            unsubscribe_key=key,
            reader_links=self._email_links(web) if web is not None else None,
        )
        caught, rolled = self._catch_ups(earlier, kind, domain, render_rollup)
        daily = outgoing_emails([*earlier, *digests], render, self.audience)
        outgoing = [o for o in sorted(daily, key=lambda o: o.day) if o.key not in rolled] + caught
        outgoing += self._due_rollup_emails(pending_of, kind, render_rollup, day=day)
        outgoing += self._rollup_emails(rollups, render_rollup, by_hand=by_hand)
        if web is not None or own:
            # A reader's own digest, or links signed for them, is rendered here: workers never see the key.
            outgoing = [o if web is None and o.key not in own else replace(o, digest=None) for o in outgoing]
        return send_digests(
            store,
            smtp,
            _once(outgoing),
            outbox=config.outbox,
            clock=self.clock,
            message_id_domain=domain,
            should_stop=should_stop,
            delivers=smtp is not None or config.smtp is None,
            lock_timeout=self.lock_timeout,
            # Over SMTP, `[smtp] connections`; into the outbox, a writer per worker (disk flushes overlap).
            connections=smtp.connections if smtp else min(self.config.workers, OUTBOX_WRITERS),
            prepare=lambda outgoing: self._prepared(outgoing, kind=kind, sender=sender, key=key),
        )

    def _email_links(self, web: WebLinks) -> Callable[[Digest | Rollup, str], ReaderLinks | None]:
        """A reader's signed links on the web side: unsubscribe, preferences, and a vote on each paper."""

        def links(sent: Digest | Rollup, address: str) -> ReaderLinks | None:
            reader = self.store.reader_id(address)
            papers = tuple(item.paper for item in sent.items)
            return web.reader(sent.profile.id, reader, papers) if reader else None

        return links

    def _skip_stopped_readers(self, profiles: Sequence[Profile]) -> None:
        """Record as skipped the emails still waiting for readers who unsubscribed or paused
        since they became due (the batch only sees the audience, which leaves them out)."""
        now = self.clock()
        for profile in profiles:
            today = self.profile_day(profile)
            readers = {s.address.lower(): s for s in self.subscribers(profile)}
            for row in self.store.deliveries(profile_id=profile.id):
                if row.state != DeliveryState.PENDING:
                    continue
                reader = readers.get(row.subscriber.lower())
                if self.store.is_unsubscribed(row.subscriber, profile.id):
                    why = "unsubscribed"
                elif reader is not None and is_paused(reader, today):
                    why = f"paused until {reader.paused_until}"
                else:
                    continue
                self.store.record_delivery_attempt(row.key, DeliveryState.SKIPPED, now, error=why, counted=True)

    def _own_digests(self, digests: Sequence[Digest], kind: TransportKind, domain: str) -> dict[DeliveryKey, Digest]:
        """The digests of their own that readers get instead of their profile's (`readers`),
        by ledger row; a reader left with no paper gets no email (their row is skipped)."""
        own: dict[DeliveryKey, Digest] = {}
        for digest in digests:
            if not sends_email(digest):
                continue
            profile = digest.profile
            readers = {s.address: s for s in self.subscribers(profile)}
            for address in self.audience(profile):
                reader = readers.get(address)
                key = DeliveryKey(profile.id, digest.date, address)
                row = self.store.get_delivery(key)
                if reader is None or reader.id is None or (row is not None and is_done(row, kind)):
                    continue
                chosen = self._own_digest(digest, reader, choose=may_choose_digest(row))
                if chosen is None:
                    continue
                if chosen.items:
                    own[key] = chosen
                    continue
                now = self.clock()
                self.store.add_deliveries([key], lambda k: make_message_id(k, domain), kind, now)
                self.store.record_delivery_attempt(key, DeliveryState.SKIPPED, now, error=NOTHING_LEFT, counted=True)
        return own

    def _own_digest(self, digest: Digest, reader: Subscriber, *, choose: bool) -> Digest | None:
        """`reader`'s own digest of `digest`'s day, made now if `choose` and their votes or
        preferences call for one (`_wants_own`); None: the profile's digest."""
        store, profile, day = self.store, digest.profile, digest.date
        assert reader.id is not None
        mine = _with_readers_count(profile, reader)
        stored = store.personal_digest(profile.id, day, reader.id)
        if not choose:
            return store.load_personal_digest(mine, day, reader.id) if stored else None
        votes = self.reader_votes(profile, reader.id)
        if not self._wants_own(profile, reader, votes):
            if stored:
                store.forget_personal_digest(profile.id, day, reader.id)
            return None
        status = store.digest_status(profile.id, day)
        assert status is not None, "the profile's digest is saved before it is emailed"
        if stored and stored.source_watermark == status.watermark:
            return store.load_personal_digest(mine, day, reader.id)
        from digest.rank import select_digest

        candidates = store.candidate_papers(profile.id, day, until=status.watermark)
        items, _ = select_digest(self.rank_papers(profile, candidates, day=day, votes=votes), mine)
        made = Digest(
            profile=mine,
            date=day,
            items=tuple(items),
            built_at=self.clock(),
            candidates=len(candidates),
            empty_reason=None if items else EmptyReason.BELOW_THRESHOLD if candidates else EmptyReason.NO_NEW_PAPERS,
            own=True,
        )
        store.save_personal_digest(made, reader.id, status.watermark)
        return made

    @staticmethod
    def _profiles_of(*groups: Sequence[Digest | Rollup]) -> list[Profile]:
        return list({item.profile.id: item.profile for group in groups for item in group}.values())

    # -- roll-up emails -----------------------------------------------------------------------

    def _rollup_emails(
        self,
        rollups: Sequence[Rollup],
        render: Callable[[Rollup, str, str], EmailMessage | None],
        *,
        by_hand: bool = False,
    ) -> list[Outgoing]:
        """One email per subscriber of each roll-up's cadence: their copy, made now if it was
        not made before (then saved, so that a resend is the same message), until the
        roll-up's deadline (`lifecycle.rollup_deadline`), or whenever `by_hand`."""
        store = self.store
        found = []
        for rollup in rollups:
            profile, period = rollup.profile, rollup.period
            cadence = PERIOD_CADENCE[period.kind]
            today = self.profile_day(profile)
            readers = [s for s in self.subscribers(profile) if s.cadence == cadence and not is_paused(s, today)]
            pool = store.rollup_pool(profile.id, period)
            if not readers or pool is None or not wants(profile.formats, FormatKind.EMAIL):
                continue
            late = not by_hand and self.clock() > rollup_deadline(profile, period, rollup.built_at, self.grace)
            for reader in readers:
                if store.rollup_mail(profile, period, reader.address) is None and not late:
                    copy = self._copy_for(rollup, pool, reader, cadence)
                    store.save_rollup_mail(reader.address, copy, self.clock())
                found += self._rollup_outgoing(profile, period, reader.address, render)
        return found

    def _rollup_outgoing(
        self, profile: Profile, period: Period, address: str, render: Callable[[Rollup, str, str], EmailMessage | None]
    ) -> list[Outgoing]:
        """The email of a subscriber's saved copy of a roll-up (none when it shows no paper)."""
        copy = self.store.rollup_mail(profile, period, address)
        if copy is None or not copy.items:
            return []
        return [Outgoing(profile.id, period.last, address, partial(render, copy, address), period.key, digest=copy)]

    def _copy_for(
        self, everyone: Rollup, pool: Pool, reader: Subscriber, cadence: Cadence, ignoring: Collection[DeliveryKey] = ()
    ) -> Rollup:
        """A subscriber's copy of a roll-up: without the papers they were sent (`sent_to`),
        and ranked with their own votes and number of papers when those differ from the
        profile's (`readers.wants_own_digest`), as their daily digests are."""
        address = reader.address
        everyone, pool = self._own_pool(everyone, pool, reader)
        sent = self.sent_to(everyone.profile, address, cadence, ignoring=ignoring)
        ids = {c.paper_id for c in sent}
        known = {s.paper.id for s in (*pool.eligible, *pool.runners_up)}
        in_period = {c.paper_id for c in sent if c.first_seen in everyone.period or c.paper_id in known}
        return for_subscriber(everyone, pool, ids, len(in_period))

    def _own_pool(self, everyone: Rollup, pool: Pool, reader: Subscriber) -> tuple[Rollup, Pool]:
        """The roll-up and pool `reader` gets: the profile's, or its pool ranked again with
        their votes (a mute, "less like this") and their number of papers. Only the pool's
        papers: a copy is stored against the profile's pool, and shows each paper with the
        score and reasons the pool has (a paper their "more like this" would lift from
        below the threshold stays out)."""
        profile = everyone.profile
        if reader.id is None:
            return everyone, pool
        votes = self.reader_votes(profile, reader.id)
        if not self._wants_own(profile, reader, votes):
            return everyone, pool
        mine = _with_readers_count(profile, reader)
        papers = [s.paper for s in (*pool.eligible, *pool.runners_up)]
        (ranked,) = self._rank_periods([(mine, papers, votes)], here=True)
        return replace(everyone, profile=mine), order_pool(ranked, mine)

    @staticmethod
    def _wants_own(profile: Profile, reader: Subscriber, votes: Votes) -> bool:
        """`readers.wants_own_digest` for `reader` (the owner's votes are the profile's own)."""
        return wants_own_digest(profile, votes, reader.max_items, owner=is_owner(profile, reader.address))

    def sent_to(
        self, profile: Profile, address: str, cadence: Cadence, *, ignoring: Collection[DeliveryKey] = ()
    ) -> list[CarriedPaper]:
        """The papers of `profile` that count as sent to `address`, whose cadence is `cadence`
        (`lifecycle.carries_papers`), leaving out what the ledger rows `ignoring` carry."""
        skip = {(k.day, k.period) for k in ignoring}
        return [
            c
            for c in self.store.carried_papers(profile.id, address)
            if (c.day, c.period) not in skip
            and carries_papers(c.state, c.possible_duplicate, still_due=row_cadence(c.period) == cadence)
        ]

    def _due_rollup_emails(
        self,
        profiles: Sequence[Profile],
        kind: TransportKind,
        render: Callable[[Rollup, str, str], EmailMessage | None],
        *,
        day: date | None = None,
    ) -> list[Outgoing]:
        """The roll-up emails (and "what you missed" messages) earlier runs left pending, of the
        last `RETRY_DAYS` (or of `day`), to subscribers whose cadence still takes them."""
        oldest = self.clock().date() - timedelta(days=RETRY_DAYS)
        found = []
        for profile in profiles:
            cadences = {s.address: s.cadence for s in self.subscribers(profile)}
            for row in self.store.deliveries(profile_id=profile.id, day=day):
                if not row.period or row.day <= oldest or is_done(row, kind):
                    continue
                if cadences.get(row.subscriber) == row_cadence(row.period):
                    found += self._rollup_outgoing(profile, parse_period(row.period), row.subscriber, render)
        return found

    def _catch_ups(
        self,
        earlier: Sequence[Digest],
        kind: TransportKind,
        domain: str | None,
        render: Callable[[Rollup, str, str], EmailMessage | None],
    ) -> tuple[list[Outgoing], set[DeliveryKey]]:
        """For each daily reader whose earlier emails went stale unsent (`lifecycle.to_catch_up`):
        one "what you missed" message, a roll-up of the days they missed (and of an earlier
        such message still unsent), instead of those emails. Returns the messages and the
        emails they replace."""
        store, now = self.store, self.clock()
        message_id = partial(_message_id, domain=domain or "paper-digest.invalid")
        found: list[Outgoing] = []
        rolled: set[DeliveryKey] = set()
        for profile, address, stale in self._stale_emails(earlier, kind):
            reader = self._subscriber(profile, address)
            period = missed_days(min(w.first for w in stale), max(w.last for w in stale))
            ((everyone, _),) = self.build_rollups([(profile, period)])
            pool = store.rollup_pool(profile.id, period)
            assert pool is not None, "just built"
            into = DeliveryKey(profile.id, period.last, address, period.key)
            copy = self._copy_for(everyone, pool, reader, Cadence.DAILY, ignoring=[w.key for w in stale])
            if store.roll_up([w.key for w in stale], into, copy, message_id=message_id, transport=kind, at=now):
                rolled.update(w.key for w in stale)
                found += self._rollup_outgoing(profile, period, address, render)
        return found, rolled

    def _subscriber(self, profile: Profile, address: str) -> Subscriber:
        """`address` as one of the profile's subscribers (with no reader id and the profile's
        preferences when it is not one, e.g. an address that unsubscribed meanwhile)."""
        found = {s.address.lower(): s for s in self.subscribers(profile)}
        return found.get(address.lower(), Subscriber(address, cadence=Cadence.DAILY))

    def _stale_emails(
        self, earlier: Sequence[Digest], kind: TransportKind
    ) -> Iterator[tuple[Profile, str, list[Waiting]]]:
        """Each daily reader's earlier emails that go as one "what you missed" message now
        (`lifecycle.to_catch_up`), with their profile and address."""
        store, now = self.store, self.clock()
        for profile in self._profiles_of(earlier):
            digests = [d for d in earlier if d.profile.id == profile.id and sends_email(d)]
            if not digests:
                continue
            open_rows = [
                r
                for r in store.deliveries(profile_id=profile.id)
                if r.period and parse_period(r.period).kind is PeriodKind.MISSED and not is_done(r, kind)
            ]
            for address in self.audience(profile):
                if store.is_unsubscribed(address, profile.id):
                    continue
                stale = to_catch_up(self._waiting(profile, address, digests, open_rows, kind), now, kind)
                if stale:
                    yield profile, address, stale

    def _waiting(
        self,
        profile: Profile,
        address: str,
        digests: Sequence[Digest],
        open_rows: Sequence[Delivery],
        kind: TransportKind,
    ) -> list[Waiting]:
        """A daily reader's emails still to go: of `digests`, and earlier "what you missed"
        messages (`open_rows`), each with the moment it went stale."""
        waiting = []
        for digest in digests:
            key = DeliveryKey(profile.id, digest.date, address)
            row = self.store.get_delivery(key)
            if row is None or not is_done(row, kind):
                deadline = rebuild_deadline(profile, digest.date, self.grace)
                waiting.append(Waiting(key, digest.date, digest.date, deadline, row))
        for row in open_rows:
            if row.subscriber == address:
                span = parse_period(row.period)
                waiting.append(Waiting(row.key, span.first, span.last, row.created_at, row))
        return waiting

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
                shared = SharedPapers()  # each paper sent once per shard
                yield [replace(job, digest=shared.made(job.digest)) for job in self._email_jobs(chunk, kind, key)]

        settings = render_settings(self.config, sender=sender)
        for rendered in self.runner.map(email_shard, settings, jobs()):
            made = {DeliveryKey(r.profile_id, r.day, r.subscriber, r.period): r.prepared for r in rendered}
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
        time zone) and the roll-ups due that day (the week's and the month's just ended),
        publish them, and email them (see `email`)."""
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
        self._add_rollups(
            report, [(d.profile, period) for d in report.digests for period in self.due_rollups(d.profile, d.date)]
        )
        report.written = self.publish(report.digests, report.rollups)
        report.delivery = self.email(report.digests, send=send, rollups=report.rollups, should_stop=should_stop)
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
        # Each profile up to its own today: in UTC+14 the day's digest is built (and due) while
        # it is still yesterday in UTC.
        found = [
            digest
            for profile in profiles
            for digest in due_digests(
                self.store, [profile], today=self.profile_day(profile), day=day, transport=kind, audience=self.audience
            )
        ]
        return sorted(found, key=lambda digest: digest.date)

    def plan_send(self, profiles: Sequence[Profile], *, day: date | None = None) -> list[Planned]:
        """What `send` would do with each email, changing nothing."""
        render = email_renderer(self.config, sender=self.config.sender, unsubscribe_key=None)
        render_rollup = rollup_email_renderer(self.config, sender=self.config.sender, unsubscribe_key=None)
        kind = transport_kind(self.config.smtp)
        digests = self.due(profiles, day=day)
        outgoing = outgoing_emails(digests, render, self.audience)
        outgoing += self._due_rollup_emails(profiles, kind, render_rollup, day=day)
        plans = plan_deliveries(self.store, outgoing, kind)
        # Asked for by day, a digest goes as it is; else a reader's stale emails go as one message.
        stale = set() if day is not None else {w.key for _, _, ws in self._stale_emails(digests, kind) for w in ws}
        return [replace(plan, state=CAUGHT_UP) if plan.outgoing.key in stale else plan for plan in plans]

    def send(self, profiles: Sequence[Profile], *, day: date | None = None) -> tuple[int, DeliveryReport]:
        """Send every email of the built digests that the ledger does not record as done
        (of `day`, else of the last week): over SMTP when configured, else into the outbox.
        Returns how many digests had emails due, and what the batch did."""
        self.check_sending()
        kind = transport_kind(self.config.smtp)
        given_up = [
            row
            for profile in profiles
            for row in give_up_stale_emails(
                self.store, [profile], today=self.profile_day(profile), at=self.clock(), transport=kind
            )
        ]
        digests = self.due(profiles, day=day)
        # Asked for by day, a digest goes as it is; else a reader's stale ones go as "what you missed".
        asked, earlier = (digests, []) if day is not None else ([], digests)
        report = self._deliver(asked, earlier, [], send=True, pending_of=profiles, day=day)
        return len(digests), _with_given_up(report, given_up)

    # -- the service's jobs ---------------------------------------------------------------------

    def ingest_job(self) -> JobReport:
        """The service's periodic job: read the live source (when enabled) and the inbox."""
        self.check_ready()
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
        rollups = self.build_rollups([(profile, period) for period in self.due_rollups(profile, day)])
        self.publish([digest], [rollup for rollup, _ in rollups])
        report = self.email([digest], send=True, rollups=[rollup for rollup, _ in rollups], should_stop=should_stop)
        counts = {
            "built": int(built is not Built.BEFORE),
            "papers": len(digest.items),
            "sent": len(report.sent),
            "failed": len(report.failed),
            "pending": len(report.pending) + report.not_reached,
        }
        rollups_built = sum(made is not Built.BEFORE for _, made in rollups)
        if rollups_built:
            counts["rollups"] = rollups_built
        undelivered = not report.complete or bool(report.failed)
        return JobReport(counts=counts, note=report.stopped or "", ok=report.stopped is None, undelivered=undelivered)

    def is_done(self, profile: Profile, day: date) -> bool:
        """Whether the digest of `profile` for `day` is built, its emails done, and not reopened."""
        digest = self.store.load_digest(profile, day)
        if digest is None or self.rebuild_due(profile, day):
            return False
        kind = transport_kind(self.config.smtp)
        if not digest_emails_done(self.store, digest, kind, self.audience):
            return False
        return all(self._rollup_done(profile, period, kind) for period in self.due_rollups(profile, day))

    def _rollup_done(self, profile: Profile, period: Period, kind: TransportKind) -> bool:
        """Whether the roll-up of `period` is built and its emails done (`lifecycle.rollup_emails_done`)."""
        store = self.store
        rollup = store.load_rollup(profile, period)
        if rollup is None:
            return False
        if not wants(profile.formats, FormatKind.EMAIL):
            return True
        cadence = PERIOD_CADENCE[period.kind]
        readers = [s.address for s in self.subscribers(profile) if s.cadence == cadence]
        rows = {row.subscriber: row for row in store.deliveries(profile_id=profile.id, period=period.key)}
        made = store.rollup_mail_sizes(profile.id, period)
        if self.clock() > rollup_deadline(profile, period, rollup.built_at, self.grace):
            readers = [address for address in readers if address in made]  # no copy is made any more
        return rollup_emails_done(
            readers,
            made,
            rows,
            transport=kind,
            unsubscribed=store.unsubscribed(readers, profile.id),
        )

    # -- readers ----------------------------------------------------------------------------------

    def unsubscribe(self, address: str, profile_id: str | None, *, undo: bool = False) -> AddressChange:
        """Stop (or, with `undo`, resume) sending to `address`, for one profile or all: the
        address as it is kept, and whether anything changed. `validate.Invalid` for an
        address that is not one, `KeyError` for an unknown profile."""
        try:
            address = email_address(address)
        except Invalid:
            # A reader kept from before addresses had to be ASCII before the "@" can still leave.
            if self.store.reader_id(address) is None:
                raise
        if profile_id is not None:
            find_profile(self.config.profiles, profile_id)
        if undo:
            return AddressChange(address, self.store.resubscribe(address, profile_id))
        return AddressChange(address, self.store.unsubscribe(address, profile_id, self.clock()))

    def is_address_unsubscribed(self, address: str, profile_id: str) -> bool:
        """Whether `address` gets no email of `profile_id` for having unsubscribed (from it or from all)."""
        return self.store.is_unsubscribed(address, profile_id)

    def is_subscriber(self, address: str) -> bool:
        """Whether `address` reads any profile (in `digest.toml`, or confirmed on the web side)."""
        listed = {s.lower() for p in self.config.profiles for s in p.subscribers}
        return address.lower() in listed or any(s.address == address.lower() for s in self.store.web_subscriptions())

    def deliveries(self, *, day: date | None = None, profile_id: str | None = None) -> list[Delivery]:
        """Ledger rows (of one day, one profile). `KeyError` for a profile neither configured
        nor in the ledger (a profile removed from `digest.toml` keeps its rows)."""
        rows = self.store.deliveries(day=day, profile_id=profile_id)
        if profile_id is not None and not rows and not self.store.deliveries(profile_id=profile_id):
            find_profile(self.config.profiles, profile_id)
        return rows

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
                    line = profile.line_of("liked")
                    found.append(Problem(source, line, f"profiles[{index}].liked: warning: {message}"))
        return found

    def descriptions_asking_nothing(self) -> list[Problem]:
        """A warning for each profile whose description only says what the reader does not
        want ("Not interested in robotics."): read as the ranker reads it (`digest.wanted`),
        it then asks for no paper."""
        source = self.label(self.config.path) if self.config.path else "defaults"
        found = []
        for index, profile in enumerate(self.config.profiles):
            if not profile.description.strip() or wanted_text(profile.description).strip():
                continue
            others = profile.keywords or profile.liked
            ranked_by = "its keywords and liked papers rank alone" if others else "it ranks nothing"
            message = (
                f"every part says what the reader does not want, so it asks for no paper ({ranked_by}); "
                "put such subjects in `exclude` and say what the reader wants"
            )
            line = profile.line_of("description")
            found.append(Problem(source, line, f"profiles[{index}].description: warning: {message}"))
        return found

    def liked_papers_apart(self) -> list[Problem]:
        """Warnings for a profile ranked by its liked papers alone (no words) whose liked papers
        do not speak for one another: each liked paper that its other liked papers score
        under `min_score` (`rank.scores_from_other_liked`, against the store's recent papers),
        or one warning when every one of them does. Papers like such a paper seldom reach the
        digest. Nothing when there is no database; one warning, and no comparison, when
        `semantic = true` and the extra cannot load."""
        if not self.config.db.exists():
            return []
        source = self.label(self.config.path) if self.config.path else "defaults"
        wanted = []
        for index, profile in enumerate(self.config.profiles):
            if profile.keywords or wanted_text(profile.description).strip():
                continue
            liked = self.store.find_papers(profile.liked)  # as the ranker finds them
            if len(liked) >= 2:
                wanted.append((index, profile, liked))
        if not wanted:
            return []
        from digest.rank import scores_from_other_liked
        from digest.semantic import SemanticUnavailable

        try:
            embed = self.embedder()
        except SemanticUnavailable as exc:
            return [Problem(source, 0, f"warning: liked papers not compared with one another: {exc}")]
        background = self.store.recent_papers(BACKGROUND_PAPERS)
        found = []
        for index, profile, liked in wanted:
            scores = scores_from_other_liked(profile, liked, embed=embed, background=background)
            apart = [(paper, score) for paper, score in zip(liked, scores, strict=True) if score < profile.min_score]
            where = f"profiles[{index}].liked: warning:"
            for message in _apart_messages(profile, apart, everyone=len(apart) == len(liked)):
                found.append(Problem(source, profile.line_of("liked"), f"{where} {message}"))
        return found

    # -- readers talk back: the verbs of the web side ---------------------------------------------

    def fresh(self) -> App:
        """Another `App` over the same config, clock and environment, with its own connection
        to the state database (one per thread of the web side)."""
        return App(
            self.config, clock=self.clock, environ=self.environ, label=self.label, lock_timeout=self.lock_timeout
        )

    def open_profiles(self) -> list[Profile]:
        """The profiles readers may subscribe to themselves (`open = true`)."""
        return [profile for profile in self.config.profiles if profile.open]

    def follow_link(self, text: str, *actions: Action) -> Link | None:
        """What the token `text` of a followed link stands for, when it is one of ours made for
        one of `actions`, a configured profile, a known reader and (for a vote) a stored
        paper; else None, whatever is wrong with it (the caller answers with a plain 404).
        An expired link is returned: the caller tells it apart (`link_expired`)."""
        key = secret_key(self.environ)
        token = verify(key, text) if key is not None else None
        if token is None or token.action not in actions:
            return None
        profile = next((p for p in self.config.profiles if p.id == token.profile_id), None)
        address = self.store.reader_address(token.subscriber_id)
        if profile is None or address is None:
            return None
        if not token.paper_id:
            return Link(token, profile, address)
        papers = self.store.get_papers([token.paper_id])
        return Link(token, profile, address, papers[0]) if papers else None

    def link_expired(self, link: Link) -> bool:
        return expired(link.token, self.clock())

    def reader_links(self, link: Link, papers: Sequence[Paper] = ()) -> ReaderLinks:
        """The reader's own signed links for the link's profile, with feedback on `papers`."""
        web = self.web_links()
        if web is None:
            raise ConfigError([Problem("web.base_url", 0, "the web side needs [web] base_url")])
        return web.reader(link.profile.id, link.reader_id, tuple(papers))

    # subscribing

    def request_subscription(self, profile_id: str, address: str, *, client: str) -> Requested:
        """Ask for `address` to get an open profile's emails: a confirmation email goes out
        with a link that expires (`readers.CONFIRMATION_HOURS`); nothing else changes until
        the link is confirmed. Rate-limited per `client`, per address and overall; an address
        already reading the profile gets nothing (the answer does not tell)."""
        asked = self.ask_subscription(profile_id, address, client=client)
        if asked.confirmation is None:
            return asked.outcome
        return Requested.SENT if self.send_confirmation(asked.confirmation) else Requested.FAILED

    def ask_subscription(self, profile_id: str, address: str, *, client: str) -> SubscriptionAsked:
        """`request_subscription` up to the email: what the answer is and, when one is to go
        out, the confirmation for `send_confirmation`. The web side answers first and sends
        after, so that the time an answer takes does not tell a subscribed address (nothing
        to send) from a new one (an SMTP exchange)."""
        profile = next((p for p in self.open_profiles() if p.id == profile_id), None)
        if profile is None:
            return SubscriptionAsked(Requested.CLOSED)
        try:
            if len(address) > MAX_ADDRESS_LENGTH:
                raise Invalid("too long")
            address = email_address(address.strip())
        except Invalid:
            return SubscriptionAsked(Requested.INVALID)
        store, now = self.store, self.clock()
        if store.count_request(f"{CLIENT_LIMIT.name}:{client}", CLIENT_LIMIT.window(now)) > CLIENT_LIMIT.limit:
            return SubscriptionAsked(Requested.BUSY)
        if address.lower() in self.audience_of_any(profile):
            return SubscriptionAsked(Requested.QUIET)
        hashed = hashlib.sha256(mailbox_of(address).encode("utf-8")).hexdigest()[:32]  # no address in the table
        if store.count_request(f"{ADDRESS_LIMIT.name}:{hashed}", ADDRESS_LIMIT.window(now)) > ADDRESS_LIMIT.limit:
            return SubscriptionAsked(Requested.QUIET)
        if store.count_request(OVERALL_LIMIT.name, OVERALL_LIMIT.window(now)) > OVERALL_LIMIT.limit:
            return SubscriptionAsked(Requested.BUSY)
        store.forget_expired_confirmations(now)
        for limit in (CLIENT_LIMIT, ADDRESS_LIMIT, OVERALL_LIMIT):
            store.forget_request_counts(limit.name, limit.window(now))
        reader = store.reader_id(address, create=True, at=now)
        assert reader is not None
        expires = confirmation_expiry(now)
        store.request_confirmation(profile.id, reader, now, expires)
        return SubscriptionAsked(Requested.SENT, PendingConfirmation(profile.id, address, reader, expires, hashed))

    def send_confirmation(self, pending: PendingConfirmation) -> bool:
        """Send the confirmation `ask_subscription` asked for; False (logged) when it could not go."""
        profile = find_profile(self.config.profiles, pending.profile_id)
        try:
            self._send_confirmation(profile, pending.address, pending.reader, pending.expires, pending.hashed)
        except NoticeError as exc:
            log.warning("confirmation for %s of %s not sent: %s", pending.hashed[:12], profile.id, exc)
            return False
        return True

    def audience_of_any(self, profile: Profile) -> set[str]:
        """The addresses (lower case) already reading `profile`: subscribed and not unsubscribed."""
        readers = [s.address for s in self.subscribers(profile)]
        stopped = self.store.unsubscribed(readers, profile.id)
        return {address.lower() for address in readers if address not in stopped}

    def _send_confirmation(self, profile: Profile, address: str, reader: str, expires: datetime, hashed: str) -> None:
        from digest.render.notices import render_confirmation
        from digest.render.templates import template_environment

        config, now = self.config, self.clock()
        web = self.web_links()
        if web is None:
            raise NoticeError("[web] base_url is not set: the confirmation link would lead nowhere")
        smtp = config.smtp
        sender = smtp.sender if smtp and smtp.sender else config.sender
        domain = parseaddr(sender)[1].rpartition("@")[2] or "paper-digest.invalid"
        message = render_confirmation(
            profile,
            address=address,
            confirm_url=web.confirm(profile.id, reader, expires),
            expires=expires,
            sender=sender,
            site_title=config.title,
            message_id=f"<confirm.{secrets.token_hex(8)}@{domain}>",
            date=now,
            env=template_environment(config.templates),
        )
        name = f"confirm_{profile.id}_{hashed[:12]}_{int(now.timestamp())}_{secrets.token_hex(4)}"
        send_notice(smtp, message, outbox=config.outbox, name=name, day=now.date())

    def confirmation(self, link: Link) -> Confirmation:
        """Where the confirmation link stands (changes nothing)."""
        quick = self.confirmation_by_its_row(link)
        if quick is not None:
            return quick
        return Confirmation.ALREADY if link.address in self.audience_of_any(link.profile) else Confirmation.UNKNOWN

    def confirmation_by_its_row(self, link: Link) -> Confirmation | None:
        """`confirmation` when the link and its one pending row decide it (waiting, expired, a
        profile not open); None when it takes the profile's whole audience (`confirmation`)."""
        if not link.profile.open:
            return Confirmation.UNKNOWN
        if self.link_expired(link):
            return Confirmation.EXPIRED
        pending = self.store.pending_confirmation(link.profile.id, link.reader_id)
        if pending is not None and pending.expires_at == link.token.expires:
            return Confirmation.WAITING
        return None

    def confirm(self, link: Link) -> Confirmation:
        """Confirm the subscription the link was sent for: the address gets the profile's
        emails from the next build (an unsubscribe from it is lifted)."""
        if not link.profile.open:
            return Confirmation.UNKNOWN
        if self.link_expired(link) or link.token.expires is None:
            return Confirmation.EXPIRED
        done = self.store.confirm_subscription(
            link.profile.id,
            link.reader_id,
            expires_at=link.token.expires,
            at=self.clock(),
            other_profiles=[p.id for p in self.config.profiles],
        )
        return {
            Confirmed.SUBSCRIBED: Confirmation.SUBSCRIBED,
            Confirmed.ALREADY: Confirmation.ALREADY,
            Confirmed.UNKNOWN: Confirmation.UNKNOWN,
        }[done]

    # unsubscribing, votes, preferences

    def is_unsubscribed(self, link: Link, *, everything: bool = False) -> bool:
        if everything:
            return any(u.address == link.address and u.profile_id is None for u in self.store.unsubscribes())
        return self.store.is_unsubscribed(link.address, link.profile.id)

    def unsubscribe_link(self, link: Link, *, everything: bool = False) -> bool:
        """Stop the link's profile (or, with `everything`, every profile) for its reader at
        once; False when it already was."""
        return self.unsubscribe(link.address, None if everything else link.profile.id).changed

    def vote(self, link: Link) -> bool:
        """Record the vote the link casts on its paper (again, if it was taken back); False
        when it was already recorded. A mute needs a paper of an organisation (`ValueError`)."""
        kind, paper = link.vote, link.paper
        assert kind is not None and paper is not None, "a vote link names a vote and a paper"
        organization = paper.organization.id if paper.organization else None
        if kind == VoteKind.MUTE and organization is None:
            raise ValueError("this paper names no organisation to mute")
        return self.store.record_vote(
            link.profile.id,
            link.reader_id,
            paper.id,
            kind,
            self.clock(),
            organization=organization,
            replaces=replaced_by(kind),
        )

    def undo_vote(self, link: Link) -> bool:
        """Take back the vote the link cast (a mute: for the organisation); False when there was none."""
        kind, paper = link.vote, link.paper
        assert kind is not None and paper is not None, "a vote link names a vote and a paper"
        organization = paper.organization.id if paper.organization else None
        return self.store.undo_vote(
            link.profile.id, link.reader_id, paper.id, kind, self.clock(), organization=organization
        )

    def vote_recorded(self, link: Link) -> bool:
        """Whether the vote the link casts stands now."""
        kind, paper = link.vote, link.paper
        assert kind is not None and paper is not None, "a vote link names a vote and a paper"
        if kind == VoteKind.MUTE and paper.organization:
            return self.store.muted(link.profile.id, link.reader_id, paper.organization.id)
        record = self.store.vote(link.profile.id, link.reader_id, paper.id, kind)
        return record is not None and record.active

    def reader_preferences(self, link: Link) -> ReaderPreferences:
        return self.store.preferences(link.profile.id, link.reader_id)

    def pause(self, link: Link, weeks: int) -> date | None:
        """Pause the reader's emails of the link's profile for `weeks` from today (0: resume).
        Returns the day emails start again (None: not paused)."""
        if not 0 <= weeks <= MAX_PAUSE_WEEKS:
            raise ValueError(f"a pause lasts 0 to {MAX_PAUSE_WEEKS} weeks")
        until = pause_until(self.profile_day(link.profile), weeks)
        chosen = replace(self.reader_preferences(link), paused_until=until)
        self.store.set_preferences(link.profile.id, link.reader_id, chosen, self.clock())
        return until

    def choose(self, link: Link, *, max_items: int | None, cadence: Cadence) -> bool:
        """Save the reader's number of papers (None: the profile's) and cadence for the link's
        profile; they apply from the next build. False when nothing changed."""
        if max_items is not None and not 1 <= max_items <= 200:
            raise ValueError("the number of papers is from 1 to 200")
        if max_items == link.profile.max_items:
            max_items = None
        cadence_or_default = None if cadence == Cadence.DAILY else cadence
        chosen = replace(self.reader_preferences(link), max_items=max_items, cadence=cadence_or_default)
        return self.store.set_preferences(link.profile.id, link.reader_id, chosen, self.clock())

    def reader_digests(self, link: Link, days: int = PAGE_DAYS) -> list[Digest]:
        """The reader's most recent digests of the link's profile, newest first: their own
        where they have one, else the profile's (their private page and feed)."""
        profile, store = link.profile, self.store
        max_items = store.preferences(profile.id, link.reader_id).max_items
        mine = replace(profile, max_items=max_items or profile.max_items)
        found = []
        for day in store.digest_days(profile.id)[:days]:
            digest = store.load_personal_digest(mine, day, link.reader_id) or store.load_digest(profile, day)
            if digest is not None:
                found.append(digest)
        return found

    def papers_named(self, ids: Sequence[str]) -> list[Paper]:
        """The stored papers with these ids (those that exist)."""
        return self.store.get_papers(list(ids))

    def reader_vote_records(self, link: Link) -> list[VoteRecord]:
        """The reader's votes on the link's profile, newest first, those taken back included."""
        return list(reversed(self.store.votes(link.profile.id, link.reader_id)))

    def feedback(self, profile_id: str | None = None) -> list[VoteRecord]:
        """Every vote (of one profile), oldest first, those taken back included (`digest feedback`).
        `KeyError` for an unknown profile."""
        if profile_id is not None:
            find_profile(self.config.profiles, profile_id)
        if not self.config.db.exists():
            return []
        return self.store.votes(profile_id)

    def status(self) -> Health:
        """The deployment's health (`health.assess`); a health check never creates a database."""
        config, now = self.config, self.clock()
        if not config.db.exists():
            return assess(HealthInputs(now, config.db, None, None, config.stale_after_days))
        failed_since = now.date() - timedelta(days=RETRY_DAYS)
        transport = self.transport(send=True)  # with [smtp], an outbox copy is a preview: still to go
        profiles = tuple(
            ProfileInputs(
                activity=self.store.profile_activity(profile.id, failed_since=failed_since, transport=transport),
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
        now = self.clock()
        before = prune_before(self.config, now.date())
        return before, self.store.prune(before, keep_from, now, dry_run=dry_run)

    def transport(self, send: bool) -> TransportKind:
        return transport_kind(self.smtp(send))


def _with_readers_count(profile: Profile, reader: Subscriber) -> Profile:
    """The profile with `reader`'s own number of papers, when they chose one."""
    return replace(profile, max_items=reader.max_items or profile.max_items)


def _once(outgoing: Iterable[Outgoing]) -> list[Outgoing]:
    """Each email once (the first time it is asked for), in order."""
    found: dict[DeliveryKey, Outgoing] = {}
    for item in outgoing:
        found.setdefault(item.key, item)
    return list(found.values())


def _message_id(key: DeliveryKey, *, domain: str) -> str:
    from digest.deliver import make_message_id

    return make_message_id(key, domain)


def _apart_messages(profile: Profile, apart: Sequence[tuple[Paper, float]], *, everyone: bool) -> list[str]:
    """The words of `App.liked_papers_apart`'s warnings for one profile."""
    floor = f"min_score {profile.min_score:g}"
    if everyone:
        return [
            f"each liked paper scores under {floor} from the others: ranked by its liked papers alone, this "
            "profile finds little like any of them; a description saying what the reader wants, or a profile per "
            "subject, brings more"
        ]
    return [
        f"{paper.title!r} scores {score:.2f} from the other liked papers, under {floor}: ranked by its liked "
        "papers alone, this profile finds little like it; a description saying what the reader wants brings more"
        for paper, score in apart
    ]
