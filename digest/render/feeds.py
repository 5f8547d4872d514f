"""Atom 1.0, RSS 2.0 (feedgen) and JSON Feed 1.1 (standard library) for a profile or for all papers.

Pure: entries in, bytes out; no clock. Every timestamp comes from stored data (the
digest's `built_at` for a profile's entries, the first listing day for the feed of all
papers), so rendering the same entries twice gives the same bytes. No two entries of a
feed share a time (validators warn, and readers sort by it): a digest's best paper is
dated at its `built_at` and each next one a second earlier (and every entry before the
one above it, so two digests built seconds apart do not interleave); a listing day's papers are
dated at its midnight (UTC) plus one second per paper stored before them that day. A
feed without entries is dated by the caller (`empty_updated`, e.g. when the store got its
first data), never 1970. Entry ids derive from the profile id and the paper id only
(`urn:paper-digest:<profile>:<paper>`), never from a position, a build time or the site
address, so they never change.

RSS 2.0 has no way to say that a title is plain text, and some readers take it as HTML:
RSS titles and the channel description write `&` and `<` as the hexadecimal references
`&#x26;` and `&#x3C;`, as the RSS Advisory Board's profile recommends (what a reader
shows is unchanged). A title that really contains an HTML end tag (`</b>`) still draws
the W3C validator's "should not contain HTML" warning: avoiding it would mean changing
the paper's title, so it stays.

feedgen's traps, handled here: it fills a missing `updated` with now() (we always set
it), prepends entries unless `order='append'`, rejects naive datetimes, writes its own
version into `<generator>` (we name ourselves without one) and fails a whole feed on one
control character (all text is cleaned first, in `views`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from feedgen.feed import FeedGenerator
from jinja2 import Environment
from markupsafe import escape

from digest.clock import aware
from digest.formats import OUTPUT_FORMATS, FormatKind, chosen, output_formats
from digest.models import DigestEntry, Paper, Profile
from digest.periods import PeriodKind
from digest.render.links import ALL_PAPERS, SiteLinks
from digest.render.stamps import fingerprint, page_stamp
from digest.render.templates import template_environment
from digest.render.text import one_line
from digest.render.views import PaperView, paper_view, plain_paper_view
from digest.rows import RollupRecord

ID_PREFIX = "urn:paper-digest:"
GENERATOR = "paper-digest"
# The `updated` of a feed that never had an entry, when the caller knows no better date:
# fixed, so rebuilds stay identical, and plausible (validators call anything before 1990 wrong).
NO_ENTRIES_YET = datetime(2025, 1, 1, tzinfo=UTC)


def entry_moment(moment: datetime, items: Sequence[FeedItem]) -> datetime:
    """The date of the next (older) entry after `items`: `moment`, or a second before the
    last entry's when it is not earlier. Feed readers order entries by date: the digests of
    two days built seconds apart would otherwise interleave, and share times."""
    if items and moment >= items[-1].moment:
        return items[-1].moment - timedelta(seconds=1)
    return moment


def entry_id(feed_name: str, paper_id: str) -> str:
    """The permanent id of a paper's entry in one feed (a profile id, or `all`)."""
    return f"{ID_PREFIX}{feed_name}:{paper_id}"


def feed_id(feed_name: str) -> str:
    return f"{ID_PREFIX}{feed_name}"


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry of a feed, ready for any feed format."""

    id: str
    paper: PaperView
    moment: datetime
    html: str


@dataclass(frozen=True, slots=True)
class FeedData:
    """A feed, ready for any feed format: what a `FEED` format's renderer is given."""

    name: str
    title: str
    description: str
    home: str
    updated: datetime
    items: tuple[FeedItem, ...]


def render_profile_feeds(
    profile: Profile,
    entries: Sequence[DigestEntry],
    *,
    links: SiteLinks,
    site_title: str,
    kinds: Sequence[str] | None = None,
    env: Environment | None = None,
    empty_updated: datetime | None = None,
) -> dict[str, bytes]:
    """A profile's feeds, one per feed format in `kinds` (default: those in its `formats`).

    `entries` are the profile's most recent entries, newest digest first and best first
    within a digest, as `Store.digest_entries` returns them (it already keeps the most
    recent `feed_size`). `empty_updated` dates a feed without entries.
    """
    env = env or template_environment()
    template = env.get_template("feed_entry.html")
    items: list[FeedItem] = []
    placed: dict[date, int] = {}  # entries of each digest so far: the next one is a second earlier
    for entry in entries:
        view = paper_view(entry.item, env)
        place = placed[entry.day] = placed.get(entry.day, -1) + 1
        moment = entry_moment(aware(entry.built_at) - timedelta(seconds=place), items)
        items.append(FeedItem(entry_id(profile.id, view.id), view, moment, template.render(paper=view, day=entry.day)))
    title = one_line(profile.title)
    feed = FeedData(
        name=profile.id,
        title=f"{title} · {one_line(site_title)}",
        description=one_line(profile.description) or f"Papers picked for “{title}” every day.",
        home=links.profile(profile.id),
        updated=max((i.moment for i in items), default=empty_updated or NO_ENTRIES_YET),
        items=tuple(items),
    )
    wanted = chosen(profile.formats, FormatKind.FEED) if kinds is None else [OUTPUT_FORMATS[k] for k in kinds]
    return {output.name: output.render(feed, links) for output in wanted}


DAILY = "daily"  # the cadence of a profile's feed of papers (the others: `PeriodKind`s of roll-ups)


def plan_profile_feeds(
    profile: Profile,
    entries: str,
    rollups: Mapping[PeriodKind, Sequence[RollupRecord]],
    *,
    links: SiteLinks,
    site_title: str,
    env: Environment,
    empty_updated: datetime | None = None,
) -> dict[str, str]:
    """The stamp each of the profile's feeds ends in (`render.stamps`), by cadence: `DAILY`
    (`entries`: a version of the entries it shows, `Store.feed_version`) and each kind of
    `rollups` (the records of the roll-ups its feed shows, newest first). A feed whose
    files end in the stamp planned need not be rendered again."""
    base = fingerprint((one_line(site_title), links, profile, feed_formats(), empty_updated))
    plan = {DAILY: page_stamp(env, base, DAILY, entries)}
    for kind, records in rollups.items():
        plan[kind.value] = page_stamp(env, base, kind.value, records)
    return plan


def feed_formats() -> tuple[tuple[str, str, str, str], ...]:
    """The feed formats registered, as pages and feeds name them."""
    return tuple((o.name, o.label, o.content_type, o.path) for o in output_formats(FormatKind.FEED))


def render_all_papers_feeds(
    papers: Sequence[Paper],
    *,
    links: SiteLinks,
    site_title: str,
    kinds: Sequence[str] | None = None,
    env: Environment | None = None,
    day_orders: Mapping[str, int] | None = None,
    empty_updated: datetime | None = None,
) -> dict[str, bytes]:
    """The feed of every stored paper, newest first sighting first (`Store.recent_papers`).

    `day_orders` gives each paper's place among the papers first seen on its day, in the
    order they were stored (`Store.first_day_orders`): its entry is dated that many seconds
    after the day's midnight. `empty_updated` dates a feed without entries.
    """
    env = env or template_environment()
    template = env.get_template("feed_entry.html")
    orders = day_orders or {}
    items = []
    for paper in papers:
        view = plain_paper_view(paper)
        moment = datetime.combine(paper.first_seen, time(0), UTC) + timedelta(seconds=orders.get(paper.id, 0))
        items.append(FeedItem(entry_id(ALL_PAPERS, paper.id), view, moment, template.render(paper=view, day=None)))
    feed = FeedData(
        name=ALL_PAPERS,
        title=f"All papers · {one_line(site_title)}",
        description="Every paper of the Hugging Face Daily Papers listing, newest first.",
        home=links.index,
        updated=max((i.moment for i in items), default=empty_updated or NO_ENTRIES_YET),
        items=tuple(items),
    )
    wanted = output_formats(FormatKind.FEED) if kinds is None else [OUTPUT_FORMATS[k] for k in kinds]
    return {output.name: output.render(feed, links) for output in wanted}


def _generator(feed: FeedData, links: SiteLinks, kind: str) -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(feed_id(feed.name))
    fg.title(feed.title)
    fg.description(feed.description)
    fg.author(name=GENERATOR)
    # feedgen gives RSS's <link> the href of the last link added: the page, not the feed itself.
    fg.link(href=links.feed(feed.name, kind), rel="self", type=OUTPUT_FORMATS[kind].content_type)
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


def atom_feed(feed: FeedData, links: SiteLinks) -> bytes:
    """The `atom` format's renderer."""
    return _generator(feed, links, "atom").atom_str(pretty=True)


def rss_feed(feed: FeedData, links: SiteLinks) -> bytes:
    """The `rss` format's renderer."""
    return _plain_text_references(_generator(feed, links, "rss").rss_str(pretty=True))


# Plain-text elements: before the first item, the channel's title and description; in the
# items, only the titles (an item's description is HTML).
_CHANNEL_TEXT = re.compile(rb"<(title|description)>([^<]*)</\1>")
_ITEM_TEXT = re.compile(rb"<(title)>([^<]*)</\1>")


def _plain_text_references(rss: bytes) -> bytes:
    """The RSS with `&` and `<` in its plain-text elements (the titles, the channel's
    description) as `&#x26;` and `&#x3C;` instead of `&amp;` and `&lt;`: the same text."""

    def hex_references(match: re.Match[bytes]) -> bytes:
        text = match[2].replace(b"&amp;", b"&#x26;").replace(b"&lt;", b"&#x3C;")
        return b"<%s>%s</%s>" % (match[1], text, match[1])

    channel, item, items = rss.partition(b"<item>")
    return _CHANNEL_TEXT.sub(hex_references, channel) + item + _ITEM_TEXT.sub(hex_references, items)


def json_feed(feed: FeedData, links: SiteLinks) -> bytes:
    """The `json` format's renderer (JSON Feed 1.1, written with the standard library)."""
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


__all__ = [
    "FeedData",
    "FeedItem",
    "atom_feed",
    "entry_id",
    "feed_id",
    "json_feed",
    "render_all_papers_feeds",
    "render_profile_feeds",
    "rss_feed",
]
