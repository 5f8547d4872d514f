"""Writing the rendered outputs: feeds, Markdown and the site; rendering emails for the ledger.

The file-writing edge of rendering. The renderers (`digest.render`) stay pure; this
module reads what they need from the store and the config, calls them, and writes every
file through `files.write_if_changed` (atomic, and untouched when the bytes are the
same, so a rebuild with nothing new changes no file and no mtime; not flushed file by
file, since every build rewrites what differs). Nothing is sent.

Feeds are written to `site/feeds/`, so the Pages workflow can publish `site/` alone,
and hard-linked into `[digest] feeds`. Each profile's `formats` decide what it gets, by
the format registry (`digest.formats`): its feed formats (daily, and per cadence:
`<profile>.weekly.atom`, `<profile>.monthly.atom`, ...), and its document formats (one
file per digest under `[digest] digests`, e.g. `<profile>/<date>.md`, and per weekly or
monthly roll-up, `<profile>/2025-W52.md`). Emails are
rendered here (`email_renderer`) but written or sent by `deliver`, through the ledger.
Every profile has pages on the site: an email's "web version" link points there.
A publish first removes the temporary files that a process killed while writing left in
the output folders (`files.remove_stale_temporaries`).
Each profile page ends in a stamp of what it is made of (`render.stamps`). A publish plans
every page's stamp from the store's records of the profile's digests and roll-ups
(`site.plan_profile_pages`), reads the stamps of the pages on disk (`page_stamps`), and
sends the workers only the pages whose stamp differs, with what those pages show
(`site.shown_in_full`): a day's build neither reads nor renders the whole history.

`write_outputs` renders each profile's feeds and pages in shards handed to a
`parallel.Runner` (worker processes, or a Dask cluster; by default this process): the store
is read and the files are written here, the rendering is `tasks.publish_shard`'s, so the
bytes are the same however many workers render them, documents included. What concerns
every profile at once (the feed of all papers, the index, the OPML) is rendered here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from digest.config import Config
from digest.files import copy_if_changed, remove_stale_temporaries, sync_folder, write_if_changed
from digest.formats import OUTPUT_FORMATS, FormatKind, chosen, wants
from digest.lifecycle import ROLLUP_KINDS
from digest.models import Digest, DigestEntry, Profile, Rollup, ScoredPaper
from digest.periods import PeriodKind
from digest.render.email import render_email, render_rollup_email
from digest.render.feeds import DAILY, plan_profile_feeds, render_all_papers_feeds
from digest.render.links import ALL_PAPERS, ReaderLinks, SiteLinks, feed_path, profile_path, rollup_feed_name
from digest.render.site import History, ProfileView, plan_profile_pages, render_site_index, shown_in_full
from digest.render.stamps import STAMP_TAIL, program_identity, stamp_in
from digest.render.templates import template_environment, template_sources
from digest.rows import RollupRecord
from digest.store import Store

if TYPE_CHECKING:
    from jinja2 import Environment

    from digest.parallel import Runner
    from digest.tasks import Published, PublishJob, RenderSettings

log = logging.getLogger(__name__)

Sent = TypeVar("Sent", Digest, Rollup)  # what an email is made of
T = TypeVar("T")


def site_links(config: Config) -> SiteLinks:
    return SiteLinks(config.site_url)


def write_feeds(
    config: Config, store: Store, profiles: Sequence[Profile] | None = None, runner: Runner | None = None
) -> list[Path]:
    """Each profile's feeds (its most recent `feed_size` entries) and the feed of all papers.

    Returns the files that changed. An empty digest adds no entry, so its feed stays
    byte-identical. `runner` renders the profiles' feeds in its workers (default: here).
    """
    chosen_profiles = config.profiles if profiles is None else profiles
    written = []
    for done in _published(config, store, chosen_profiles, runner, feeds=True, site=False):
        written += _write_feed_files(config, done.feeds)
    return written + _write_feed_files(config, _all_papers_feeds(config, store))


def _all_papers_feeds(config: Config, store: Store) -> dict[str, bytes]:
    papers = store.recent_papers(config.feed_size)
    rendered = render_all_papers_feeds(
        papers,
        links=site_links(config),
        site_title=config.title,
        env=template_environment(config.templates),
        day_orders=store.first_day_orders([p.id for p in papers]),
        empty_updated=store.started_at(),
    )
    return {feed_path(ALL_PAPERS, kind): data for kind, data in rendered.items()}


def _write_feed_files(config: Config, feeds: dict[str, bytes]) -> list[Path]:
    """Feeds (by path under the site, `feeds/...`) to `site/feeds/`, hard-linked into `[digest] feeds`."""
    written = []
    for relative, data in feeds.items():
        name = relative.removeprefix("feeds/")
        published, kept = config.site / "feeds" / name, config.feeds / name
        if write_if_changed(published, data, durable=False):
            written.append(published)
        if copy_if_changed(published, kept, data):
            written.append(kept)
    return written


def write_documents(config: Config, sources: Iterable[Digest | Rollup]) -> list[Path]:
    """The document files of these digests and roll-ups (`tasks.render_documents`), rendered here."""
    from digest.tasks import render_documents

    return _write_documents(config, render_documents(sources, template_environment(config.templates)))


def _write_documents(config: Config, documents: Mapping[str, str]) -> list[Path]:
    # A document is written when its digest is built, and not again: flushed to disk, unlike
    # pages and feeds, which every build renders again when their stamps say so.
    return _write_under(config.digests, documents, durable=True)


def _write_under(folder: Path, files: Mapping[str, str] | Mapping[str, bytes], *, durable: bool = False) -> list[Path]:
    """Each file (path under `folder`: text or bytes) written if it changed; those written.
    `durable`: flushed to disk, and so are the folders that name them (a file's bytes
    survive a power cut only if its name does)."""
    written = []
    for relative, data in files.items():
        path = folder / relative
        if write_if_changed(path, data, durable=durable):
            written.append(path)
    if durable and written:
        # Every folder from the files' up to the one holding `folder`, which may be new too.
        above = {folder / name for path in written for name in path.relative_to(folder).parents[:-1]}
        for named in sorted({folder.parent, folder, *above}):
            sync_folder(named)
    return written


def write_site(config: Config, store: Store, runner: Runner | None = None) -> list[Path]:
    """Every page of the site from the stored digests of every configured profile (not the feeds)."""
    written, shown = [], []
    for done in _published(config, store, config.profiles, runner, feeds=False, site=True):
        assert done.pages is not None
        written += _write_pages(config, done.pages.pages)
        shown.append(done.pages.index)
    return written + _write_pages(config, _index_pages(config, shown))


def _index_pages(config: Config, shown: Sequence[ProfileView]) -> dict[str, bytes]:
    """The pages about every profile at once (index, unsubscribe, OPML), and `.nojekyll`."""
    pages = render_site_index(
        config.profiles,
        shown,
        links=site_links(config),
        site_title=config.title,
        sender=config.sender,
        env=template_environment(config.templates),
        web_url=config.web.base_url,
    )
    pages[".nojekyll"] = b""  # serve files as they are; Jekyll would skip some and slow the deploy
    return pages


def _write_pages(config: Config, pages: Mapping[str, bytes]) -> list[Path]:
    return _write_under(config.site, pages)


def _published(
    config: Config,
    store: Store,
    profiles: Sequence[Profile],
    runner: Runner | None,
    *,
    feeds: bool,
    site: bool,
    documents: Mapping[str, Sequence[Digest | Rollup]] | None = None,
) -> Iterator[Published]:
    """Each profile's feeds, pages and `documents` (by profile id), rendered by `runner`'s
    workers in shards of `[digest] shard_size` profiles, in the order of `profiles`: the
    store is read here a shard at a time, and each shard's files can be written while the
    next ones render. Of the site, only the pages whose stamp on disk is not the one
    planned are rendered (`site.plan_profile_pages`)."""
    from digest.parallel import InlineRunner, shards
    from digest.tasks import environment, publish_shard

    sources = documents or {}
    settings = render_settings(config, store)
    env = environment(settings)  # the workers' templates: a page's stamp covers them

    def jobs() -> Iterator[list[PublishJob]]:
        for group in shards(profiles, config.shard_size):
            shared = SharedPapers()
            made = (
                _publish_job(
                    config,
                    store,
                    profile,
                    env,
                    feeds=feeds,
                    site=site,
                    documents=sources.get(profile.id),
                    empty_updated=settings.empty_updated,
                )
                for profile in group
            )
            yield [shared.job(job) for job in made]

    for shard in (runner or InlineRunner()).map(publish_shard, settings, jobs()):
        yield from shard


def _publish_job(
    config: Config,
    store: Store,
    profile: Profile,
    env: Environment,
    *,
    feeds: bool,
    site: bool,
    documents: Sequence[Digest | Rollup] | None = None,
    empty_updated: datetime | None = None,
) -> PublishJob:
    from digest.tasks import PublishJob

    feeds = feeds and wants(profile.formats, FormatKind.FEED)
    periods = tuple(store.rollup_records(profile.id, ROLLUP_KINDS)) if feeds or site else ()
    entries, feed_rollups, feed_plan = (
        _feeds_to_render(config, store, profile, env, periods, empty_updated) if feeds else ((), (), {})
    )
    history, pages = _pages_to_render(config, store, profile, env, periods) if site else (History(()), {})
    return PublishJob(
        profile,
        entries=entries,
        feed_rollups=feed_rollups,
        feed_plan=tuple(feed_plan.items()),
        history=history,
        pages=tuple(pages.items()),
        feeds=feeds,
        site=site,
        documents=tuple(documents or ()),
    )


def _feeds_to_render(
    config: Config,
    store: Store,
    profile: Profile,
    env: Environment,
    periods: Sequence[RollupRecord],
    empty_updated: datetime | None,
) -> tuple[tuple[DigestEntry, ...], tuple[tuple[Rollup, ...], ...], dict[str, str]]:
    """The profile's feeds to render (cadence: "daily" or a roll-up kind, to stamp), those
    whose files (published and kept) do not end in the stamp planned, and what they show:
    the daily feed's entries, and for each roll-up kind its newest `feed_size` roll-ups."""
    newest = {kind: [r for r in periods if r.period.kind is kind][: config.feed_size] for kind in ROLLUP_KINDS}
    plan = plan_profile_feeds(
        profile,
        store.feed_version(profile.id, config.feed_size),
        newest,
        links=site_links(config),
        site_title=config.title,
        env=env,
        empty_updated=empty_updated,  # as the workers date an empty feed (`RenderSettings`)
    )
    kinds = [output.name for output in chosen(profile.formats, FormatKind.FEED)]
    todo: dict[str, str] = {}
    for cadence, stamp in plan.items():
        name = profile.id if cadence == DAILY else rollup_feed_name(profile.id, PeriodKind(cadence))
        files = [feed_path(name, kind).removeprefix("feeds/") for kind in kinds]
        folders = (config.site / "feeds", config.feeds)
        if any(_stamp_of(folder / file) != stamp for file in files for folder in folders):
            todo[cadence] = stamp
    entries = tuple(store.digest_entries(profile.id, config.feed_size)) if DAILY in todo else ()
    rollups = tuple(
        tuple(store.load_rollup(profile, r.period) for r in newest[kind]) if kind in todo else ()
        for kind in ROLLUP_KINDS
    )
    return entries, tuple(tuple(r for r in rs if r is not None) for rs in rollups), todo


def _pages_to_render(
    config: Config, store: Store, profile: Profile, env: Environment, periods: Sequence[RollupRecord]
) -> tuple[History, dict[str, str]]:
    """The profile's pages whose stamp on disk is not the one planned (path to stamp), and
    its history holding in full what those pages and its index entry show: a day's build
    reads the new digest, its neighbours and the latest roll-ups, not the whole history."""
    records = History(tuple(store.digest_records(profile.id)), tuple(periods))
    plan = plan_profile_pages(
        profile, records, links=site_links(config), site_title=config.title, env=env, web_url=config.web.base_url
    )
    on_disk = dict(page_stamps(config.site, profile.id))
    pages = {path: stamp for path, stamp in plan.items() if on_disk.get(path) != stamp}
    days, shown = shown_in_full(profile, records, pages)
    loaded = (store.load_digest(profile, day) for day in days)
    rolled = (store.load_rollup(profile, period) for period in shown)
    return replace(
        records,
        digests={d.date: d for d in loaded if d is not None},
        rollups={r.period.key: r for r in rolled if r is not None},
    ), pages


def _stamp_of(path: str | Path) -> str | None:
    """The stamp a page or feed on disk ends in, if it is a file and has one."""
    try:
        if not os.path.isfile(path):  # a folder, or a pipe that would never end
            return None
        with open(path, "rb") as page:
            page.seek(max(0, page.seek(0, os.SEEK_END) - STAMP_TAIL))
            return stamp_in(page.read(STAMP_TAIL))
    except OSError:  # gone meanwhile
        return None


def page_stamps(site: Path, profile_id: str) -> tuple[tuple[str, str], ...]:
    """The stamps at the end of a profile's pages on disk (path under the site, stamp): a page
    without one (deleted, written by another version, or with text after its stamp) is
    rendered again. An edit above the stamp is not noticed: the page is kept until what
    it is made of changes."""
    folder = profile_path(profile_id).rpartition("/")[0]
    found = []
    try:
        with os.scandir(site / folder) as entries:
            pages = [entry for entry in entries if entry.name.endswith(".html")]
    except (FileNotFoundError, NotADirectoryError):
        return ()
    for entry in pages:  # (os.DirEntry and str, not Path: a year of pages is 400 files a profile)
        stamp = _stamp_of(entry.path)
        if stamp is not None:
            found.append((f"{folder}/{entry.name}", stamp))
    return tuple(sorted(found))


class SharedPapers:
    """One object for each paper (and each scored paper, digest) among a shard's jobs
    (`job`, for `tasks.publish_shard`; `made`, for the email jobs of `App`).

    The store reads a paper anew for each digest, feed entry and document that shows it,
    and a worker is sent each copy. Pickle sends an object once however often it is
    referred to, so a shard made of shared objects is a fraction of the size to send and
    to load (bench/RESULTS.md). Only equal objects are merged: nothing sent changes.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[object, ...], object] = {}

    def _one(self, key: tuple[object, ...], value: T) -> T:
        """The object kept under `key` when it equals `value` (the common case), else `value`."""
        kept = self._seen.setdefault(key, value)
        return kept if kept is value or kept == value else value

    def item(self, item: ScoredPaper) -> ScoredPaper:
        paper = self._one(("paper", item.paper.id), item.paper)
        return self._one(
            ("item", item.paper.id, item.score), item if paper is item.paper else replace(item, paper=paper)
        )

    def items(self, items: tuple[ScoredPaper, ...]) -> tuple[ScoredPaper, ...]:
        shared = tuple(self.item(item) for item in items)
        return items if all(a is b for a, b in zip(shared, items, strict=True)) else shared

    def digest(self, digest: Digest) -> Digest:
        items, runners_up = self.items(digest.items), self.items(digest.runners_up)
        if items is not digest.items or runners_up is not digest.runners_up:
            digest = replace(digest, items=items, runners_up=runners_up)
        return self._one(("digest", digest.profile.id, digest.date), digest)

    def rollup(self, rollup: Rollup) -> Rollup:
        items, also, runners_up = (self.items(rollup.items), self.items(rollup.also), self.items(rollup.runners_up))
        if items is not rollup.items or also is not rollup.also or runners_up is not rollup.runners_up:
            rollup = replace(rollup, items=items, also=also, runners_up=runners_up)
        return self._one(("rollup", rollup.profile.id, rollup.period.key), rollup)

    def _entry(self, entry: DigestEntry) -> DigestEntry:
        item = self.item(entry.item)
        return entry if item is entry.item else replace(entry, item=item)

    def made(self, made: Digest | Rollup) -> Digest | Rollup:
        return self.rollup(made) if isinstance(made, Rollup) else self.digest(made)

    def job(self, job: PublishJob) -> PublishJob:
        return replace(
            job,
            entries=tuple(self._entry(entry) for entry in job.entries),
            feed_rollups=tuple(tuple(self.rollup(r) for r in rollups) for rollups in job.feed_rollups),
            history=replace(
                job.history,
                digests={day: self.digest(d) for day, d in job.history.digests.items()},
                rollups={key: self.rollup(r) for key, r in job.history.rollups.items()},
            ),
            documents=tuple(self.made(d) for d in job.documents),
        )


def email_renderer(
    config: Config,
    *,
    sender: str,
    unsubscribe_key: bytes | None,
    reader_links: Callable[[Digest, str], ReaderLinks | None] | None = None,
) -> Callable[[Digest, str, str], EmailMessage | None]:
    """`render(digest, subscriber, message_id)` for the delivery ledger (`deliver.outgoing_emails`).

    The ledger owns Message-IDs, so a resend reuses the one the first attempt had.
    `reader_links(digest, subscriber)` gives the subscriber's signed links on the web side
    (None, or no `reader_links`: the email links to the static site only).
    """
    return _renderer(render_email, config, sender, unsubscribe_key, reader_links)


def rollup_email_renderer(
    config: Config,
    *,
    sender: str,
    unsubscribe_key: bytes | None,
    reader_links: Callable[[Rollup, str], ReaderLinks | None] | None = None,
) -> Callable[[Rollup, str, str], EmailMessage | None]:
    """`render(rollup, subscriber, message_id)`: a subscriber's copy of a roll-up as their
    email (see `email_renderer`)."""
    return _renderer(render_rollup_email, config, sender, unsubscribe_key, reader_links)


def _renderer(
    make: Callable[..., EmailMessage | None],
    config: Config,
    sender: str,
    unsubscribe_key: bytes | None,
    reader_links: Callable[[Sent, str], ReaderLinks | None] | None,
) -> Callable[[Sent, str, str], EmailMessage | None]:
    links = site_links(config)
    env = template_environment(config.templates)

    def render(sent: Sent, subscriber: str, message_id: str) -> EmailMessage | None:
        return make(
            sent,
            subscriber=subscriber,
            sender=sender,
            message_id=message_id,
            links=links,
            unsubscribe_key=unsubscribe_key,
            site_title=config.title,
            env=env,
            reader=reader_links(sent, subscriber) if reader_links is not None else None,
        )

    return render


def write_outputs(
    config: Config,
    store: Store,
    digests: Sequence[Digest],
    rollups: Sequence[Rollup] = (),
    runner: Runner | None = None,
) -> list[Path]:
    """Everything published for the day's `digests` and `rollups` (already saved in `store`):
    feeds, documents, site.

    Feeds and the site are rebuilt from the store; documents come from `digests` and `rollups`.
    Emails are not written here: they go through the delivery ledger (`deliver`).
    `runner` renders each profile's feeds and pages in its workers (default: in this process).
    Returns the files written or changed.
    """
    for path in remove_stale_temporaries([config.feeds, config.site, config.digests, config.outbox]):
        log.info("removed %s, left by a process killed while writing", path)
    # One map over the profiles renders their feeds, pages and documents together (one pool,
    # one read of each); a shard's files are written as it comes back, so nothing waits for the whole site.
    by_profile: dict[str, list[Digest | Rollup]] = {}
    sources: list[Digest | Rollup] = [*digests, *rollups]
    for source in sources:
        by_profile.setdefault(source.profile.id, []).append(source)
    feeds: list[Path] = []
    documents: list[Path] = []
    pages: list[Path] = []
    shown = []
    for done in _published(config, store, config.profiles, runner, feeds=True, site=True, documents=by_profile):
        assert done.pages is not None
        feeds += _write_feed_files(config, done.feeds)
        documents += _write_documents(config, done.documents)
        pages += _write_pages(config, done.pages.pages)
        shown.append(done.pages.index)
        by_profile.pop(done.profile_id, None)
    feeds += _write_feed_files(config, _all_papers_feeds(config, store))
    # Digests of a profile no longer configured are still written (here).
    documents += write_documents(config, [source for sources in by_profile.values() for source in sources])
    return feeds + documents + pages + _write_pages(config, _index_pages(config, shown))


def render_settings(config: Config, store: Store | None = None, *, sender: str | None = None) -> RenderSettings:
    """What the renderers need of the config, as plain data for a worker (`tasks.RenderSettings`)."""
    from digest.tasks import RenderSettings

    return RenderSettings(
        site_url=config.site_url,
        site_title=config.title,
        sender=sender or config.sender,
        # Every template, built-in ones too: a worker renders with exactly what the stamps cover.
        templates=template_sources(template_environment(config.templates)),
        formats=tuple(OUTPUT_FORMATS.values()),
        # A feed without entries is dated when the store got its first data: stable, and plausible.
        empty_updated=store.started_at() if store is not None else None,
        web_url=config.web.base_url,
        program=program_identity(),
    )
