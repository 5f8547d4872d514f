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

This module orders the steps and owns no stage: parsing is `ingest`, storing `store`,
ranking `rank`, rendering `render` and `publish`, sending `deliver`, the states
`lifecycle`. It never parses arguments, prints, or knows APScheduler.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from enum import StrEnum
from functools import partial
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
    sends_email,
    smtp_login_problem,
    transport_kind,
    with_earlier_due,
)
from digest.fetch import FAILED, DayResult, FetchReport, fetch_days, fetch_period, fetch_recent_days
from digest.formats import FormatKind, wants
from digest.health import Health, HealthInputs, ProfileInputs, assess, database_bytes, scheduled_day
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
    Digest,
    EmptyReason,
    Paper,
    Problem,
    Profile,
    Rollup,
    ScoredPaper,
    Subscriber,
    TransportKind,
    Votes,
)
from digest.periods import Period, PeriodKind, missed_days, parse_period, period_of
from digest.pipeline import IngestSummary, find_dump_files, ingest_files
from digest.profiles import find_profile
from digest.publish import email_renderer, rollup_email_renderer, write_outputs
from digest.retention import check_day, cutoff
from digest.rollups import Pool, as_listed, for_subscriber, order_pool, period_view, public_rollup
from digest.rows import CarriedPaper, Delivery, DeliveryKey, PruneCounts
from digest.store import Store, open_store
from digest.unsubscribe import unsubscribe_key

if TYPE_CHECKING:
    from digest.rank import Embedder

# Papers that set word rarity and each day's most upvoted paper for the ranker, so that
# a score does not depend on which other papers are new that day (see rank.score_papers).
BACKGROUND_PAPERS = 5000
CAUGHT_UP = "what-you-missed"  # `digest send --dry-run`: this email would go in a "what you missed" message


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


@dataclass(frozen=True, slots=True)
class Ranking:
    """How a profile ranks papers (`digest rank`): the best first, of how many, for which day."""

    day: date
    considered: int
    ranked: list[ScoredPaper]


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

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.config.db)
        return self._store

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
        """Everyone who reads `profile`'s emails: the addresses in `digest.toml`, each with
        their cadence (their own, else the profile's)."""
        own = {address.lower(): chosen for address, chosen in profile.subscriber_cadences}
        return [Subscriber(address, own.get(address.lower(), profile.cadence)) for address in profile.subscribers]

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

    def fetch_period(self, period: Period, *, on_day: Callable[[DayResult], None] | None = None) -> FetchReport:
        """Backfill a week or month of the live source with the API's period query: one file
        per listing day, the days fetched before left as they are."""
        return fetch_period(self.config, self.store, period, clock=self.clock, label=self.label, on_day=on_day)

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
            from digest.semantic import load_embedder

            self._embed = load_embedder()
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
        profile's own, `votes`)."""
        from digest.rank import score_papers  # numpy, SciPy and scikit-learn: a second to import

        store = self.store
        ranked = score_papers(
            papers,
            [profile],
            liked={profile.id: store.find_papers(profile.liked)},
            delivered={profile.id: store.delivered_paper_ids(profile.id, except_day=day)},
            embed=self.embedder(),
            limit=limit,
            background=store.recent_papers(BACKGROUND_PAPERS),
            votes={profile.id: self.votes(profile) if votes is None else votes},
        )
        return ranked[profile.id]

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
        store = self.store
        stored = store.digest_status(profile.id, day)
        if stored is not None and not self.rebuild_due(profile, day):
            return self._stored(profile, day), Built.BEFORE
        # Read before the candidates: a dump stored meanwhile is then still "new" next time.
        watermark = store.watermark()
        candidates = store.candidate_papers(profile.id, day)
        from digest.rank import select_digest  # imported here: a stored digest needs no ranker

        items, runners_up = select_digest(self.rank_papers(profile, candidates, day=day), profile)
        digest = Digest(
            profile=profile,
            date=day,
            items=tuple(items),
            built_at=self.clock(),
            candidates=len(candidates),
            empty_reason=None if items else EmptyReason.BELOW_THRESHOLD if candidates else EmptyReason.NO_NEW_PAPERS,
            runners_up=() if items else tuple(runners_up),
        )
        if stored is None and store.save_digest(digest, watermark):
            return digest, Built.NEW
        if stored is not None and store.replace_digest(digest, watermark, replaces=stored.watermark):
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
        are given in the digests of its days). Profiles whose periods hold the same papers are
        ranked together, in one pass of the ranker."""
        store = self.store
        found: dict[tuple[str, str], tuple[Rollup, Built]] = {}
        groups: dict[tuple[str, ...], list[tuple[Profile, Period, list[Paper]]]] = {}
        for profile, period in wanted:
            stored = store.load_rollup(profile, period)
            if stored is not None:
                found[profile.id, period.key] = (stored, Built.BEFORE)
                continue
            papers = store.rollup_candidates(profile.id, period)
            groups.setdefault(tuple(p.id for p in papers), []).append((profile, period, papers))
        for members in groups.values():
            papers = members[0][2]
            ranked = self._rank_period([profile for profile, _, _ in members], papers)
            built = []
            for profile, period, _ in members:
                pool = order_pool(ranked[profile.id], profile)
                built.append(
                    (public_rollup(profile, period, pool, built_at=self.clock(), considered=len(papers)), pool)
                )
            for (rollup, _), new in zip(built, store.save_rollups(built), strict=True):
                profile, period = rollup.profile, rollup.period
                if new:
                    found[profile.id, period.key] = (rollup, Built.NEW)
                else:  # another process saved it first: theirs stands
                    saved = store.load_rollup(profile, period)
                    assert saved is not None, "roll-ups are never deleted"
                    found[profile.id, period.key] = (saved, Built.BEFORE)
        return [found[profile.id, period.key] for profile, period in wanted]

    def _rank_period(self, profiles: Sequence[Profile], papers: Sequence[Paper]) -> dict[str, list[ScoredPaper]]:
        """How each profile ranks the papers of a period: as its digests rank theirs, but
        nothing left out for having been given in a digest (a roll-up is for readers who did
        not get those), and upvotes weighed over the whole period (`rollups.period_view`)."""
        if not papers:
            return {profile.id: [] for profile in profiles}
        from digest.rank import score_papers  # numpy, SciPy and scikit-learn: a second to import

        store = self.store
        ranked = score_papers(
            period_view(papers),
            profiles,
            liked={profile.id: store.find_papers(profile.liked) for profile in profiles},
            delivered={},
            embed=self.embedder(),
            background=store.recent_papers(BACKGROUND_PAPERS),
            votes={profile.id: self.votes(profile) for profile in profiles},
        )
        return {profile_id: as_listed(scored, papers) for profile_id, scored in ranked.items()}

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
        written = write_outputs(self.config, self.store, digests, rollups)
        now = self.clock()
        for digest in digests:
            state = self.store.digest_state(digest.profile.id, digest.date)
            if state is None:
                continue
            in_a_feed = wants(digest.profile.formats, FormatKind.FEED)
            after = state_after_publishing(state, has_items=bool(digest.items), in_a_feed=in_a_feed)
            if after != state:
                self.store.set_digest_state(digest.profile.id, digest.date, after, now)
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
            give_up_stale_emails(self.store, profiles, today=today, at=self.clock(), transport=kind)
            everything = with_earlier_due(self.store, digests, transport=kind, audience=self.audience)
            earlier = [d for d in everything if (d.profile.id, d.date) not in asked]
        pending_of = self._profiles_of(digests, rollups) if catch_up else []
        return self._deliver(
            digests, earlier, rollups, send=send, pending_of=pending_of, by_hand=by_hand, should_stop=should_stop
        )

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
        key = unsubscribe_key(self.environ)
        render = email_renderer(config, sender=sender, unsubscribe_key=key)
        render_rollup = rollup_email_renderer(config, sender=sender, unsubscribe_key=key)
        domain = parseaddr(sender)[1].rpartition("@")[2] or None
        caught, rolled = self._catch_ups(earlier, kind, domain, render_rollup)
        daily = outgoing_emails([*earlier, *digests], render, self.audience)
        outgoing = [o for o in sorted(daily, key=lambda o: o.day) if o.key not in rolled] + caught
        outgoing += self._due_rollup_emails(pending_of, kind, render_rollup, day=day)
        outgoing += self._rollup_emails(rollups, render_rollup, by_hand=by_hand)
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
        )

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
            readers = [s.address for s in self.subscribers(profile) if s.cadence == cadence]
            pool = store.rollup_pool(profile.id, period)
            if not readers or pool is None or not wants(profile.formats, FormatKind.EMAIL):
                continue
            late = not by_hand and self.clock() > rollup_deadline(profile, period, rollup.built_at, self.grace)
            for address in readers:
                if store.rollup_mail(profile, period, address) is None and not late:
                    store.save_rollup_mail(address, self._copy_for(rollup, pool, address, cadence), self.clock())
                found += self._rollup_outgoing(profile, period, address, render)
        return found

    def _rollup_outgoing(
        self, profile: Profile, period: Period, address: str, render: Callable[[Rollup, str, str], EmailMessage | None]
    ) -> list[Outgoing]:
        """The email of a subscriber's saved copy of a roll-up (none when it shows no paper)."""
        copy = self.store.rollup_mail(profile, period, address)
        if copy is None or not copy.items:
            return []
        return [Outgoing(profile.id, period.last, address, partial(render, copy, address), period=period.key)]

    def _copy_for(
        self, everyone: Rollup, pool: Pool, address: str, cadence: Cadence, ignoring: Collection[DeliveryKey] = ()
    ) -> Rollup:
        """A subscriber's copy of a roll-up: without the papers they were sent (`sent_to`)."""
        sent = self.sent_to(everyone.profile, address, cadence, ignoring=ignoring)
        ids = {c.paper_id for c in sent}
        known = {s.paper.id for s in (*pool.eligible, *pool.runners_up)}
        in_period = {c.paper_id for c in sent if c.first_seen in everyone.period or c.paper_id in known}
        return for_subscriber(everyone, pool, ids, len(in_period))

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
            period = missed_days(min(w.first for w in stale), max(w.last for w in stale))
            ((everyone, _),) = self.build_rollups([(profile, period)])
            pool = store.rollup_pool(profile.id, period)
            assert pool is not None, "just built"
            into = DeliveryKey(profile.id, period.last, address, period.key)
            copy = self._copy_for(everyone, pool, address, Cadence.DAILY, ignoring=[w.key for w in stale])
            if store.roll_up([w.key for w in stale], into, copy, message_id=message_id, transport=kind, at=now):
                rolled.update(w.key for w in stale)
                found += self._rollup_outgoing(profile, period, address, render)
        return found, rolled

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
        self.embedder()  # a missing extra stops the run before anything is written
        report = BuildReport()
        for profile in profiles:
            digest, built = self.build_digest(profile, day or self.profile_day(profile))
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
        give_up_stale_emails(self.store, profiles, today=self.clock().date(), at=self.clock(), transport=kind)
        digests = self.due(profiles, day=day)
        # Asked for by day, a digest goes as it is; else a reader's stale ones go as "what you missed".
        asked, earlier = (digests, []) if day is not None else ([], digests)
        return len(digests), self._deliver(asked, earlier, [], send=True, pending_of=profiles, day=day)

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
        return JobReport(counts=counts, note=report.stopped or "", ok=report.stopped is None)

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


def _once(outgoing: Iterable[Outgoing]) -> list[Outgoing]:
    """Each email once (the first time it is asked for), in order."""
    found: dict[DeliveryKey, Outgoing] = {}
    for item in outgoing:
        found.setdefault(item.key, item)
    return list(found.values())


def _message_id(key: DeliveryKey, *, domain: str) -> str:
    from digest.deliver import make_message_id

    return make_message_id(key, domain)
