"""The work a worker process does for one shard of profiles: rank, render emails, render pages and feeds.

Each task is a pure function of plain data, `task(common, shard) -> results`, run by a
`digest.parallel.Runner` in this process, in a local worker or on a Dask worker: `common`
is what every shard of a map shares (sent once to each worker), `shard` a list of jobs,
one per profile (or digest). What comes back is plain data too: scored items, bytes.

- `rank_shard`: each profile's ranking of its candidates and its digest's items, exactly
  as `App.rank_papers` and `rank.select_digest` make them in one process;
- `email_shard`: each subscriber's message of a digest, for the Message-ID its ledger row
  has, as the bytes that go on the wire;
- `publish_shard`: each profile's feeds (daily and per cadence), site pages and documents,
  exactly as `publish` renders them in one process (the coordinator reads the store,
  renders what concerns every profile at once, and writes the files).

A worker never holds a secret: the unsubscribe links come signed (`Letter.token`), and no
SMTP setting is sent. Nothing here reads the store, writes a file or sends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache, partial
from typing import TYPE_CHECKING, TypedDict

from digest.deliver.batch import prepare_message
from digest.deliver.due import Prepared
from digest.formats import OUTPUT_FORMATS, FormatKind, OutputFormat, chosen, register
from digest.lifecycle import ROLLUP_KINDS
from digest.models import Digest, DigestEntry, Paper, Profile, Rollup, ScoredPaper, Votes
from digest.render.email import render_email, render_rollup_email
from digest.render.feeds import DAILY, render_profile_feeds
from digest.render.links import SiteLinks, feed_path, rollup_feed_name
from digest.render.markdown_html import MarkdownToHtml
from digest.render.rollups import render_rollup_feeds
from digest.render.site import History, ProfilePages, render_profile_pages
from digest.render.stamps import program_identity, with_feed_stamp
from digest.render.templates import TemplateSources, sources_environment, template_environment

if TYPE_CHECKING:
    from email.message import EmailMessage

    from jinja2 import Environment

    from digest.rank import Embedder

# -- ranking -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RankCommon:
    """What every profile's ranking shares: the background papers (word rarity, each
    listing day's most upvoted paper) and whether the embedding model ranks too."""

    background: tuple[Paper, ...]
    semantic: bool = False


@dataclass(frozen=True, slots=True)
class RankJob:
    """One profile's ranking: its candidates, liked papers, papers already given, votes."""

    profile: Profile
    candidates: tuple[Paper, ...]
    liked: tuple[Paper, ...] = ()
    delivered: frozenset[str] = frozenset()
    votes: Votes = field(default_factory=Votes)


@dataclass(frozen=True, slots=True)
class Ranked:
    """A profile's digest as ranked: its items and, when it has none, the best papers below the threshold."""

    profile_id: str
    items: tuple[ScoredPaper, ...]
    runners_up: tuple[ScoredPaper, ...]


def rank_shard(common: RankCommon, jobs: Sequence[RankJob]) -> list[Ranked]:
    """Each job's digest: its profile's ranking of its candidates, then `select_digest`."""
    from digest.rank import select_digest

    found = []
    for job in jobs:
        items, runners_up = select_digest(rank_profile(common, job), job.profile)
        found.append(Ranked(job.profile.id, tuple(items), tuple(runners_up)))
    return found


def rank_period_shard(common: RankCommon, jobs: Sequence[RankJob]) -> list[tuple[ScoredPaper, ...]]:
    """Each job's whole ranking, for a roll-up: no digest chosen here (`rollups.order_pool` does)."""
    return [tuple(rank_profile(common, job)) for job in jobs]


def rank_profile(common: RankCommon, job: RankJob, *, limit: int | None = None) -> list[ScoredPaper]:
    """One profile's ranking of its candidates, best first (`rank.score_papers` for one profile)."""
    from digest.rank import score_papers  # numpy, SciPy and scikit-learn: a second to import

    profile = job.profile
    ranked = score_papers(
        job.candidates,
        [profile],
        liked={profile.id: list(job.liked)},
        delivered={profile.id: set(job.delivered)},
        embed=embedder() if common.semantic else None,
        limit=limit,
        background=common.background,
        votes={profile.id: job.votes},
    )
    return ranked[profile.id]


@cache
def embedder() -> Embedder:
    """The embedding model, loaded once per process (`SemanticUnavailable` without the extra)."""
    from digest.semantic import load_embedder

    return load_embedder()


# -- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """What rendering needs of the config: the site's address and title, the sender, every
    template as data (the user's and the built-in ones, as the coordinator read them), the
    output formats registered, the date of a feed that never had an entry, and the
    coordinator's program."""

    site_url: str
    site_title: str
    sender: str
    templates: TemplateSources = ()
    formats: tuple[OutputFormat, ...] = ()
    empty_updated: datetime | None = None
    web_url: str | None = None  # the web side's address (`[web] base_url`): subscribe links
    program: str = ""  # the coordinator's program (`stamps.program_identity`): a worker must run the same


def environment(settings: RenderSettings) -> Environment:
    """The templates, with the user's `settings.templates`, and the formats of `settings`
    registered in this process as in the one that sent them."""
    _use_formats(settings.formats)
    return sources_environment(settings.templates) if settings.templates else template_environment()


def _use_formats(formats: tuple[OutputFormat, ...]) -> None:
    if not formats or tuple(OUTPUT_FORMATS.values()) == formats:
        return
    OUTPUT_FORMATS.clear()
    for output in formats:
        register(output)


# -- emails ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Letter:
    """One subscriber's message of a digest: the address, the ledger's Message-ID and the
    signed unsubscribe token (None: no signing key)."""

    subscriber: str
    message_id: str
    token: str | None = None


@dataclass(frozen=True, slots=True)
class EmailJob:
    """A digest, or a subscriber's copy of a roll-up, and the messages of it to render."""

    digest: Digest | Rollup
    letters: tuple[Letter, ...]


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """One message, ready for the ledger's batch: whose (the ledger row's key: for a
    roll-up, `day` is its period's last day), and what (`deliver.Prepared`)."""

    profile_id: str
    day: date
    subscriber: str
    prepared: Prepared
    period: str = ""


def email_shard(settings: RenderSettings, jobs: Sequence[EmailJob]) -> list[RenderedEmail]:
    """Each letter of each digest or roll-up, rendered as `App.email` renders it in one process."""
    env = environment(settings)
    links = SiteLinks(settings.site_url)
    found = []
    for job in jobs:
        made = job.digest
        day, period = (made.period.last, made.period.key) if isinstance(made, Rollup) else (made.date, "")
        for letter in job.letters:
            render = partial(_render_letter, settings, env, links, made, letter)
            prepared = prepare_message(render, letter.message_id)
            found.append(RenderedEmail(made.profile.id, day, letter.subscriber, prepared, period))
    return found


def _render_letter(
    settings: RenderSettings,
    env: Environment,
    links: SiteLinks,
    made: Digest | Rollup,
    letter: Letter,
    message_id: str,
) -> EmailMessage | None:
    options = _LetterOptions(
        subscriber=letter.subscriber,
        sender=settings.sender,
        message_id=message_id,
        links=links,
        unsubscribe_key=None,
        unsubscribe_token=letter.token,
        site_title=settings.site_title,
        env=env,
    )
    if isinstance(made, Rollup):
        return render_rollup_email(made, **options)
    return render_email(made, **options)


class _LetterOptions(TypedDict):
    subscriber: str
    sender: str
    message_id: str
    links: SiteLinks
    unsubscribe_key: bytes | None
    unsubscribe_token: str | None
    site_title: str
    env: Environment


# -- feeds and site pages -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublishJob:
    """One profile's part of the published outputs: what its feeds show (`entries`, its most
    recent roll-ups per cadence) and the site pages to render (`pages`: path and stamp, from
    `site.plan_profile_pages`; `history`: what they show). `feeds` / `site` say which of
    the two to render (with `site`, the profile's entry in the index is made too)."""

    profile: Profile
    entries: tuple[DigestEntry, ...] = ()
    feed_rollups: tuple[tuple[Rollup, ...], ...] = ()  # per kind of `lifecycle.ROLLUP_KINDS`
    feed_plan: tuple[tuple[str, str], ...] = ()  # the feeds to render: cadence and stamp (`plan_profile_feeds`)
    history: History = field(default_factory=lambda: History(()))
    pages: tuple[tuple[str, str], ...] = ()
    feeds: bool = True
    site: bool = True
    documents: tuple[Digest | Rollup, ...] = ()  # the day's digests and roll-ups, as documents


@dataclass(frozen=True, slots=True)
class Published:
    """A profile's feeds (path under the site, e.g. `feeds/p.atom`, to bytes), pages and
    documents (path under `[digest] digests`, e.g. `p/2025-01-02.md`, to text)."""

    profile_id: str
    feeds: dict[str, bytes]
    pages: ProfilePages | None
    documents: dict[str, str] = field(default_factory=dict)


class OtherProgram(RuntimeError):
    """A worker runs other code than the coordinator: the stamps it was sent would describe
    pages it renders differently. One line."""


def publish_shard(settings: RenderSettings, jobs: Sequence[PublishJob]) -> list[Published]:
    """Each profile's feeds, site pages and documents, as `publish.write_outputs` renders them."""
    if settings.program and settings.program != program_identity():
        raise OtherProgram(
            "a worker runs another version of paper-digest than the process that sent it work "
            "(upgraded under a running process, or a cluster worker with another install): "
            "restart the workers and this process with the same version"
        )
    env = environment(settings)
    links = SiteLinks(settings.site_url)
    converter = _converter()
    found = []
    for job in jobs:
        feeds = profile_feeds(job, settings, env, links) if job.feeds else {}
        pages = None
        if job.site:
            pages = render_profile_pages(
                job.profile,
                job.history,
                dict(job.pages),
                links=links,
                site_title=settings.site_title,
                env=env,
                web_url=settings.web_url,
                converter=converter,
            )
        found.append(Published(job.profile.id, feeds, pages, render_documents(job.documents, env)))
    return found


def _converter() -> MarkdownToHtml:
    """This thread's converter, kept for the process's life, so that what it remembers of
    one shard's abstracts serves the next (a Dask worker may run tasks in several threads)."""
    converter: MarkdownToHtml | None = getattr(_CONVERTERS, "converter", None)
    if converter is None:
        converter = _CONVERTERS.converter = MarkdownToHtml()
    return converter


_CONVERTERS = threading.local()


def render_documents(sources: Iterable[Digest | Rollup], env: Environment) -> dict[str, str]:
    """Each digest's file per document format its profile asks for (`<profile>/<date>.md`),
    and each weekly or monthly roll-up's (`<profile>/2025-W52.md`) for the formats that
    render roll-ups; by path under `[digest] digests`."""
    documents = {}
    for source in sources:
        if isinstance(source, Digest):
            for output in chosen(source.profile.formats, FormatKind.DOCUMENT):
                name = output.file(profile=source.profile.id, day=source.date.isoformat())
                documents[name] = output.render(source, env)
        elif source.period.kind in ROLLUP_KINDS:  # a reader's "what you missed" is their email, not a page
            for output in chosen(source.profile.formats, FormatKind.DOCUMENT):
                if output.rollup is not None:
                    name = output.file(profile=source.profile.id, day=source.period.key)
                    documents[name] = output.render_rollup(source, env)
    return documents


def profile_feeds(job: PublishJob, settings: RenderSettings, env: Environment, links: SiteLinks) -> dict[str, bytes]:
    """The profile's feeds that `job.feed_plan` names (its daily feeds, its feeds of a roll-up
    cadence), each ending in its stamp, by path under the site."""
    profile, plan = job.profile, dict(job.feed_plan)
    title, empty = settings.site_title, settings.empty_updated
    rendered: list[tuple[str, str, dict[str, bytes]]] = []  # (feed name, cadence, feeds by format)
    if DAILY in plan:
        daily = render_profile_feeds(profile, job.entries, links=links, site_title=title, env=env, empty_updated=empty)
        rendered.append((profile.id, DAILY, daily))
    for period_kind, rollups in zip(ROLLUP_KINDS, job.feed_rollups, strict=True):
        if period_kind.value in plan:
            feeds = render_rollup_feeds(
                profile, period_kind, rollups, links=links, site_title=title, env=env, empty_updated=empty
            )
            rendered.append((rollup_feed_name(profile.id, period_kind), period_kind.value, feeds))
    return {
        feed_path(name, kind): with_feed_stamp(kind, data, plan[cadence])
        for name, cadence, feeds in rendered
        for kind, data in feeds.items()
    }
