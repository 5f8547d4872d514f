"""The work a worker process does for one shard of profiles: rank, render pages and feeds, render emails.

Each task is a pure function of plain data, `task(common, shard) -> results`, run by a
`digest.parallel.Runner` in this process, in a local worker or on a Dask worker: `common`
is what every shard of a map shares (sent once to each worker), `shard` a list of jobs,
one per profile (or digest). What comes back is plain data too: scored items, bytes.

- `rank_shard`: each profile's ranking of its candidates and its digest's items, exactly
  as `App.rank_papers` and `rank.select_digest` make them in one process;
- `render_shard`: each profile's feeds, document files and site pages, and how the
  site's index lists it;
- `email_shard`: each subscriber's message of a digest, for the Message-ID its ledger row
  has, as the bytes that go on the wire.

A worker never holds a secret: the unsubscribe links come signed (`Letter.token`), and no
SMTP setting is sent. Nothing here reads the store, writes a file or sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache, partial
from typing import TYPE_CHECKING

from digest.deliver.batch import prepare_message
from digest.deliver.due import Prepared
from digest.formats import OUTPUT_FORMATS, FormatKind, OutputFormat, chosen, register
from digest.models import Digest, DigestEntry, Paper, Profile, ScoredPaper, Votes
from digest.render.email import render_email
from digest.render.feeds import render_all_papers_feeds, render_profile_feeds
from digest.render.links import ALL_PAPERS, SiteLinks, feed_path
from digest.render.site import ProfileView, markdown_converter, render_profile_pages
from digest.render.templates import TemplateSources, sources_environment, template_environment

if TYPE_CHECKING:
    from email.message import EmailMessage

    from jinja2 import Environment

    from digest.rank import Embedder

Files = tuple[tuple[str, bytes], ...]
"""(path relative to its output folder, bytes), in the order they are written."""


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


# -- feeds, documents and pages --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RenderSettings:
    """What rendering needs of the config: the site's address and title, the sender, the
    user's templates as data, the output formats registered, and the date of a feed
    that never had an entry."""

    site_url: str
    site_title: str
    sender: str
    templates: TemplateSources = ()
    formats: tuple[OutputFormat, ...] = ()
    empty_updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProfileOutputs:
    """One profile's outputs to render: its feed entries (newest first, as many as a feed
    shows), its digests for the site (newest first), and the digests of this build whose
    documents are written. `published`: a configured profile (feeds and pages), rather
    than one whose documents alone are asked for."""

    profile: Profile
    entries: tuple[DigestEntry, ...] = ()
    history: tuple[Digest, ...] = ()
    documents: tuple[Digest, ...] = ()
    published: bool = True


@dataclass(frozen=True, slots=True)
class ProfileFiles:
    """A profile's rendered outputs: feeds (under the site), documents (under `[digest]
    digests`), site pages, and how the index lists it (None: not a published profile)."""

    profile_id: str
    feeds: Files
    documents: Files
    pages: Files
    index: ProfileView | None


def render_shard(settings: RenderSettings, jobs: Sequence[ProfileOutputs]) -> list[ProfileFiles]:
    """Each profile's feeds, documents and site pages."""
    env = environment(settings)
    links = SiteLinks(settings.site_url)
    converter = markdown_converter()
    found = []
    for job in jobs:
        profile = job.profile
        documents = tuple(
            (output.file(profile=profile.id, day=digest.date.isoformat()), _bytes(output.render(digest, env)))
            for digest in job.documents
            for output in chosen(digest.profile.formats, FormatKind.DOCUMENT)
        )
        if not job.published:
            found.append(ProfileFiles(profile.id, (), documents, (), None))
            continue
        feeds: Files = ()
        if chosen(profile.formats, FormatKind.FEED):
            rendered = render_profile_feeds(
                profile,
                job.entries,
                links=links,
                site_title=settings.site_title,
                env=env,
                empty_updated=settings.empty_updated,
            )
            feeds = tuple((feed_path(profile.id, kind), data) for kind, data in rendered.items())
        pages, index = render_profile_pages(
            profile, job.history, links=links, site_title=settings.site_title, env=env, converter=converter
        )
        found.append(ProfileFiles(profile.id, feeds, documents, tuple(pages.items()), index))
    return found


def render_all_papers(settings: RenderSettings, papers: Sequence[Paper], day_orders: dict[str, int]) -> Files:
    """The feeds of every paper (`render_all_papers_feeds`), by path under the site."""
    rendered = render_all_papers_feeds(
        papers,
        links=SiteLinks(settings.site_url),
        site_title=settings.site_title,
        env=environment(settings),
        day_orders=day_orders,
        empty_updated=settings.empty_updated,
    )
    return tuple((feed_path(ALL_PAPERS, kind), data) for kind, data in rendered.items())


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


def _bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


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
    """A digest and the messages of it to render."""

    digest: Digest
    letters: tuple[Letter, ...]


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """One message, ready for the ledger's batch: whose, and what (`deliver.Prepared`)."""

    profile_id: str
    day: date
    subscriber: str
    prepared: Prepared


def email_shard(settings: RenderSettings, jobs: Sequence[EmailJob]) -> list[RenderedEmail]:
    """Each letter of each digest, rendered as `App.email` renders it in one process."""
    env = environment(settings)
    links = SiteLinks(settings.site_url)
    found = []
    for job in jobs:
        digest = job.digest
        for letter in job.letters:
            render = partial(_render_letter, settings, env, links, digest, letter)
            prepared = prepare_message(render, letter.message_id)
            found.append(RenderedEmail(digest.profile.id, digest.date, letter.subscriber, prepared))
    return found


def _render_letter(
    settings: RenderSettings, env: Environment, links: SiteLinks, digest: Digest, letter: Letter, message_id: str
) -> EmailMessage | None:
    return render_email(
        digest,
        subscriber=letter.subscriber,
        sender=settings.sender,
        message_id=message_id,
        links=links,
        unsubscribe_key=None,
        unsubscribe_token=letter.token,
        site_title=settings.site_title,
        env=env,
    )
