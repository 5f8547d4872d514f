"""Writing the rendered outputs: feeds, Markdown and the site; rendering emails for the ledger.

The file-writing edge of rendering. The renderers (`digest.render`) stay pure; this
module reads what they need from the store and the config, calls them, and writes every
file through `files.write_if_changed` (atomic, and untouched when the bytes are the
same, so a rebuild with nothing new changes no file and no mtime; not flushed file by
file, since every build rewrites what differs). Nothing is sent.

Feeds are written to `site/feeds/`, so the Pages workflow can publish `site/` alone,
and hard-linked into `[digest] feeds`. Each profile's `formats` decide what it gets, by
the format registry (`digest.formats`): its feed formats, and its document formats (one
file per digest under `[digest] digests`, e.g. `<profile>/<date>.md`). Emails are
rendered here (`email_renderer`) but written or sent by `deliver`, through the ledger.
Every profile has pages on the site: an email's "web version" link points there.
A publish first removes the temporary files that a process killed while writing left in
the output folders (`files.remove_stale_temporaries`).

`write_outputs` renders profile by profile, in shards handed to a `parallel.Runner`
(worker processes, or a Dask cluster): the store is read and the files are written here,
the rendering is `tasks.render_shard`'s, so the bytes are the same however many workers
render them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

from digest.config import Config
from digest.files import copy_if_changed, remove_stale_temporaries, write_if_changed
from digest.formats import OUTPUT_FORMATS, FormatKind, chosen, wants
from digest.models import Digest, Profile
from digest.render.email import render_email
from digest.render.feeds import render_all_papers_feeds, render_profile_feeds
from digest.render.links import ALL_PAPERS, SiteLinks, feed_path
from digest.render.site import render_site, render_site_pages
from digest.render.templates import read_templates, template_environment
from digest.store import Store

if TYPE_CHECKING:
    from digest.parallel import Runner
    from digest.tasks import ProfileOutputs, RenderSettings

log = logging.getLogger(__name__)

FILE_WRITERS = 8  # threads writing a shard's files (each write waits on the disk, not on Python)


def site_links(config: Config) -> SiteLinks:
    return SiteLinks(config.site_url)


def write_feeds(config: Config, store: Store, profiles: Sequence[Profile] | None = None) -> list[Path]:
    """Each profile's feeds (its most recent `feed_size` entries) and the feed of all papers.

    Returns the files that changed. An empty digest adds no entry, so its feed stays
    byte-identical.
    """
    links = site_links(config)
    env = template_environment(config.templates)
    # A feed without entries is dated when the store got its first data: stable, and plausible.
    started = store.started_at()
    outputs: dict[str, bytes] = {}
    for profile in config.profiles if profiles is None else profiles:
        if not wants(profile.formats, FormatKind.FEED):
            continue
        entries = store.digest_entries(profile.id, config.feed_size)
        feeds = render_profile_feeds(
            profile, entries, links=links, site_title=config.title, env=env, empty_updated=started
        )
        outputs.update({feed_path(profile.id, kind): data for kind, data in feeds.items()})
    papers = store.recent_papers(config.feed_size)
    all_papers = render_all_papers_feeds(
        papers,
        links=links,
        site_title=config.title,
        env=env,
        day_orders=store.first_day_orders([p.id for p in papers]),
        empty_updated=started,
    )
    for kind, data in all_papers.items():
        outputs[feed_path(ALL_PAPERS, kind)] = data
    written = []
    for relative, data in outputs.items():
        name = relative.removeprefix("feeds/")
        published, kept = config.site / "feeds" / name, config.feeds / name
        if write_if_changed(published, data, durable=False):
            written.append(published)
        if copy_if_changed(published, kept, data):
            written.append(kept)
    return written


def write_documents(config: Config, digests: Iterable[Digest]) -> list[Path]:
    """One file per digest and document format its profile asks for (e.g. `<profile>/<date>.md`
    under `[digest] digests`)."""
    env = template_environment(config.templates)
    written = []
    for digest in digests:
        for output in chosen(digest.profile.formats, FormatKind.DOCUMENT):
            path = config.digests / output.file(profile=digest.profile.id, day=digest.date.isoformat())
            if write_if_changed(path, output.render(digest, env), durable=False):
                written.append(path)
    return written


def write_site(config: Config, store: Store) -> list[Path]:
    """Every page of the site from the stored digests of every configured profile (not the feeds)."""
    history = {}
    for profile in config.profiles:
        loaded = (store.load_digest(profile, day) for day in store.digest_days(profile.id))
        history[profile.id] = [d for d in loaded if d is not None]
    pages = render_site(
        config.profiles,
        history,
        links=site_links(config),
        site_title=config.title,
        sender=config.sender,
        env=template_environment(config.templates),
    )
    pages[".nojekyll"] = b""  # serve files as they are; Jekyll would skip some and slow the deploy
    written = []
    for relative, data in pages.items():
        path = config.site / relative
        if write_if_changed(path, data, durable=False):
            written.append(path)
    return written


def email_renderer(
    config: Config, *, sender: str, unsubscribe_key: bytes | None
) -> Callable[[Digest, str, str], EmailMessage | None]:
    """`render(digest, subscriber, message_id)` for the delivery ledger (`deliver.outgoing_emails`).

    The ledger owns Message-IDs, so a resend reuses the one the first attempt had.
    """
    links = site_links(config)
    env = template_environment(config.templates)

    def render(digest: Digest, subscriber: str, message_id: str) -> EmailMessage | None:
        return render_email(
            digest,
            subscriber=subscriber,
            sender=sender,
            message_id=message_id,
            links=links,
            unsubscribe_key=unsubscribe_key,
            site_title=config.title,
            env=env,
        )

    return render


def write_outputs(config: Config, store: Store, digests: Sequence[Digest], runner: Runner | None = None) -> list[Path]:
    """Everything published for the day's `digests` (already saved in `store`): feeds, documents, site.

    Feeds and the site are rebuilt from the store; documents come from `digests`.
    Emails are not written here: they go through the delivery ledger (`deliver`).
    Profiles are rendered in shards of `[digest] shard_size` by `runner` (default: in
    this process). Returns the files written or changed.
    """
    from digest.parallel import InlineRunner, prefetched, shards
    from digest.tasks import render_all_papers, render_shard

    for path in remove_stale_temporaries([config.feeds, config.site, config.digests, config.outbox]):
        log.info("removed %s, left by a process killed while writing", path)
    settings = render_settings(config, store)
    written: list[Path] = []
    index = []
    # The store is read a shard ahead (by a thread), and each shard's files are written by
    # several threads: both wait on the disk, so they overlap with each other and with the workers.
    jobs = prefetched(shards(_profile_outputs(config, store, digests), config.shard_size))
    with ThreadPoolExecutor(FILE_WRITERS) as writers:
        for rendered in (runner or InlineRunner()).map(render_shard, settings, jobs):
            outputs = [
                *((_write_feed, config, feed) for files in rendered for feed in files.feeds),
                *((_write_file, config.digests, document) for files in rendered for document in files.documents),
                *((_write_file, config.site, page) for files in rendered for page in files.pages),
            ]
            for paths in writers.map(lambda output: output[0](output[1], output[2]), outputs):
                written += paths
            index += [files.index for files in rendered if files.index is not None]
    papers = store.recent_papers(config.feed_size)
    written += _write_feeds(config, render_all_papers(settings, papers, store.first_day_orders([p.id for p in papers])))
    pages = render_site_pages(
        config.profiles,
        index,
        links=site_links(config),
        site_title=config.title,
        sender=config.sender,
        env=template_environment(config.templates),
    )
    pages[".nojekyll"] = b""  # serve files as they are; Jekyll would skip some and slow the deploy
    written += _write_files(config.site, tuple(pages.items()))
    return written


def render_settings(config: Config, store: Store | None = None, *, sender: str | None = None) -> RenderSettings:
    """What the renderers need of the config, as plain data for a worker (`tasks.RenderSettings`)."""
    from digest.tasks import RenderSettings

    return RenderSettings(
        site_url=config.site_url,
        site_title=config.title,
        sender=sender or config.sender,
        templates=read_templates(config.templates),
        formats=tuple(OUTPUT_FORMATS.values()),
        # A feed without entries is dated when the store got its first data: stable, and plausible.
        empty_updated=store.started_at() if store is not None else None,
    )


def _profile_outputs(config: Config, store: Store, digests: Sequence[Digest]) -> Iterator[ProfileOutputs]:
    """What each profile's outputs are made of, read from the store one profile at a time:
    every configured profile, then the profiles of `digests` that are not configured."""
    from digest.tasks import ProfileOutputs

    documents: dict[str, list[Digest]] = {}
    for digest in digests:
        documents.setdefault(digest.profile.id, []).append(digest)
    for profile in config.profiles:
        entries = store.digest_entries(profile.id, config.feed_size) if wants(profile.formats, FormatKind.FEED) else []
        loaded = (store.load_digest(profile, day) for day in store.digest_days(profile.id))
        history = tuple(d for d in loaded if d is not None)
        yield ProfileOutputs(profile, tuple(entries), history, tuple(documents.pop(profile.id, ())))
    for extra in documents.values():
        yield ProfileOutputs(extra[0].profile, documents=tuple(extra), published=False)


def _write_feeds(config: Config, feeds: Iterable[tuple[str, bytes]]) -> list[Path]:
    """Feeds under the site (`site/feeds/`), hard-linked into `[digest] feeds`."""
    return [path for feed in feeds for path in _write_feed(config, feed)]


def _write_feed(config: Config, feed: tuple[str, bytes]) -> list[Path]:
    relative, data = feed
    name = relative.removeprefix("feeds/")
    published, kept = config.site / "feeds" / name, config.feeds / name
    written = []
    if write_if_changed(published, data, durable=False):
        written.append(published)
    if copy_if_changed(published, kept, data):
        written.append(kept)
    return written


def _write_files(folder: Path, files: Iterable[tuple[str, bytes]]) -> list[Path]:
    return [path for file in files for path in _write_file(folder, file)]


def _write_file(folder: Path, file: tuple[str, bytes]) -> list[Path]:
    relative, data = file
    path = folder / relative
    return [path] if write_if_changed(path, data, durable=False) else []
