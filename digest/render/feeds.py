"""Atom 1.0, RSS 2.0 (feedgen) and JSON Feed 1.1 (standard library) for a profile or for all papers.

Pure: entries in, bytes out; no clock. Every timestamp comes from stored data (the
digest's `built_at` for a profile's entries, the first listing day for the feed of all
papers), so rendering the same entries twice gives the same bytes. Entry ids derive
from the profile id and the paper id only (`urn:paper-digest:<profile>:<paper>`), never
from a position, a build time or the site address, so they never change.

feedgen's traps, handled here: it fills a missing `updated` with now() (we always set
it), prepends entries unless `order='append'`, rejects naive datetimes, writes its own
version into `<generator>` (we name ourselves without one) and fails a whole feed on one
control character (all text is cleaned first, in `views`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time

from feedgen.feed import FeedGenerator
from jinja2 import Environment
from markupsafe import escape

from digest.models import DigestEntry, Paper, Profile
from digest.render.links import ALL_PAPERS, FEED_KINDS, FEED_TYPES, SiteLinks, profile_feeds
from digest.render.templates import template_environment
from digest.render.text import one_line
from digest.render.views import PaperView, paper_view, plain_paper_view

ID_PREFIX = "urn:paper-digest:"
GENERATOR = "paper-digest"
# A feed that never had an entry still needs an `updated`; a fixed one keeps rebuilds identical.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def entry_id(feed_name: str, paper_id: str) -> str:
    """The permanent id of a paper's entry in one feed (a profile id, or `all`)."""
    return f"{ID_PREFIX}{feed_name}:{paper_id}"


def feed_id(feed_name: str) -> str:
    return f"{ID_PREFIX}{feed_name}"


@dataclass(frozen=True, slots=True)
class _Item:
    id: str
    paper: PaperView
    moment: datetime
    html: str


@dataclass(frozen=True, slots=True)
class _Feed:
    name: str
    title: str
    description: str
    home: str
    updated: datetime
    items: tuple[_Item, ...]


def render_profile_feeds(
    profile: Profile,
    entries: Sequence[DigestEntry],
    *,
    links: SiteLinks,
    site_title: str,
    kinds: Sequence[str] | None = None,
    env: Environment | None = None,
) -> dict[str, bytes]:
    """A profile's feeds, one per kind in `kinds` (default: the feed kinds in its `formats`).

    `entries` are the profile's most recent entries, newest first, as `Store.digest_entries`
    returns them (it already keeps the most recent `feed_size`).
    """
    env = env or template_environment()
    template = env.get_template("feed_entry.html")
    items = []
    for entry in entries:
        view = paper_view(entry.item)
        moment = _aware(entry.built_at)
        items.append(_Item(entry_id(profile.id, view.id), view, moment, template.render(paper=view, day=entry.day)))
    title = one_line(profile.title)
    feed = _Feed(
        name=profile.id,
        title=f"{title} · {one_line(site_title)}",
        description=one_line(profile.description) or f"Papers picked for “{title}” every day.",
        home=links.profile(profile.id),
        updated=max((i.moment for i in items), default=NEVER),
        items=tuple(items),
    )
    wanted = profile_feeds(profile.formats) if kinds is None else tuple(kinds)
    return {kind: _RENDERERS[kind](feed, links) for kind in wanted}


def render_all_papers_feeds(
    papers: Sequence[Paper],
    *,
    links: SiteLinks,
    site_title: str,
    kinds: Sequence[str] = FEED_KINDS,
    env: Environment | None = None,
) -> dict[str, bytes]:
    """The feed of every stored paper, newest first sighting first (`Store.recent_papers`)."""
    env = env or template_environment()
    template = env.get_template("feed_entry.html")
    items = []
    for paper in papers:
        view = plain_paper_view(paper)
        moment = datetime.combine(paper.first_seen, time(0), UTC)
        items.append(_Item(entry_id(ALL_PAPERS, paper.id), view, moment, template.render(paper=view, day=None)))
    feed = _Feed(
        name=ALL_PAPERS,
        title=f"All papers · {one_line(site_title)}",
        description="Every paper of the Hugging Face Daily Papers listing, newest first.",
        home=links.index,
        updated=max((i.moment for i in items), default=NEVER),
        items=tuple(items),
    )
    return {kind: _RENDERERS[kind](feed, links) for kind in kinds}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _generator(feed: _Feed, links: SiteLinks, kind: str) -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(feed_id(feed.name))
    fg.title(feed.title)
    fg.description(feed.description)
    fg.author(name=GENERATOR)
    # feedgen gives RSS's <link> the href of the last link added: the page, not the feed itself.
    fg.link(href=links.feed(feed.name, kind), rel="self", type=FEED_TYPES[kind])
    fg.link(href=feed.home, rel="alternate", type="text/html")
    fg.language("en")
    fg.generator(GENERATOR)
    fg.updated(feed.updated)  # also RSS lastBuildDate; feedgen would use now()
    for item in feed.items:
        fe = fg.add_entry(order="append")
        fe.id(item.id)
        fe.guid(item.id, permalink=False)
        fe.title(item.paper.title)
        fe.link(href=item.paper.url, rel="alternate", type="text/html")
        fe.published(item.moment)
        fe.updated(item.moment)
        # RSS readers take <description> as HTML, so the plain summary goes in escaped (typed html in Atom).
        fe.summary(str(escape(item.paper.summary)), type="html")
        fe.content(item.html, type="html")
    return fg


def _atom(feed: _Feed, links: SiteLinks) -> bytes:
    return _generator(feed, links, "atom").atom_str(pretty=True)


def _rss(feed: _Feed, links: SiteLinks) -> bytes:
    return _generator(feed, links, "rss").rss_str(pretty=True)


def _json(feed: _Feed, links: SiteLinks) -> bytes:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed.title,
        "home_page_url": feed.home,
        "feed_url": links.feed(feed.name, "json"),
        "description": feed.description,
        "language": "en",
        "authors": [{"name": GENERATOR}],
        "items": [
            {
                "id": item.id,
                "url": item.paper.url,
                "title": item.paper.title,
                "content_html": item.html,
                "summary": item.paper.summary,
                "date_published": item.moment.isoformat(),
                "date_modified": item.moment.isoformat(),
            }
            for item in feed.items
        ],
    }
    text = json.dumps(document, ensure_ascii=False, indent=2)
    # Same JSON, but no raw '<', '>' or '&' (as Go's encoder does): a page that pastes it into
    # HTML unescaped still gets no markup from a title.
    for char in "<>&":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return (text + "\n").encode("utf-8")


_RENDERERS = {"atom": _atom, "rss": _rss, "json": _json}

__all__ = ["entry_id", "feed_id", "render_all_papers_feeds", "render_profile_feeds"]
