"""The static site GitHub Pages serves: an index of profiles, their digests, feeds as OPML.

Pure: profiles and their digests in; a mapping of relative path to bytes out (the
publisher writes them, with the feeds, under `site/`). Every link between pages is
relative, so the site works under any Pages path (`https://USER.github.io/REPO/`);
only the OPML file, which is imported into feed readers elsewhere, uses absolute
addresses. Archive pages are the Markdown digests rendered by Python-Markdown and
sanitised by nh3 (Python-Markdown passes raw HTML through). No JavaScript.

Layout: `index.html`, `digests/<profile>/index.html` (the profile's archive),
`digests/<profile>/<date>.html` (one digest), `feeds.opml`, `unsubscribe.html`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from email.utils import parseaddr
from urllib.parse import quote

import markdown
import nh3
from jinja2 import Environment
from markupsafe import Markup

from digest.formats import FormatKind, OutputFormat, chosen, output_formats
from digest.models import Digest, Profile
from digest.render.links import (
    ALL_PAPERS,
    INDEX,
    OPML,
    UNSUBSCRIBE,
    SiteLinks,
    digest_path,
    feed_path,
    profile_path,
)
from digest.render.markdown import RUNNERS_UP_SHOWN, render_markdown
from digest.render.templates import template_environment
from digest.render.text import format_day, one_line
from digest.render.views import PaperView, paper_view

_DEEP = "../../"  # from digests/<profile>/ back to the site root


@dataclass(frozen=True, slots=True)
class FeedLink:
    kind: str
    label: str
    type: str
    title: str
    href: str  # relative to the page that shows it
    url: str  # absolute


@dataclass(frozen=True, slots=True)
class DigestView:
    day: date
    label: str
    href: str  # from the site root
    file: str  # within the profile's folder
    items: tuple[PaperView, ...]
    runners_up: tuple[PaperView, ...]
    empty_reason: str | None
    candidates: int
    min_score: float
    previous: str | None  # the label of the digest before this one


@dataclass(frozen=True, slots=True)
class ProfileView:
    id: str
    title: str
    description: str
    href: str
    feeds: tuple[FeedLink, ...]
    latest: DigestView | None
    days: int


def render_site(
    profiles: Sequence[Profile],
    history: Mapping[str, Sequence[Digest]],
    *,
    links: SiteLinks,
    site_title: str,
    sender: str,
    env: Environment | None = None,
) -> dict[str, bytes]:
    """Every page of the site, by path relative to the site root.

    `history` maps a profile id to its digests, newest first (a profile missing from it
    has no digest yet). Feeds are not included: the publisher adds them under `feeds/`.
    The same as each profile's `render_profile_pages`, then `render_site_pages`.
    """
    env = env or template_environment()
    converter = markdown_converter()
    pages: dict[str, bytes] = {}
    index_profiles = []
    for profile in profiles:
        profile_pages, view = render_profile_pages(
            profile, history.get(profile.id, ()), links=links, site_title=site_title, env=env, converter=converter
        )
        pages.update(profile_pages)
        index_profiles.append(view)
    pages.update(
        render_site_pages(profiles, index_profiles, links=links, site_title=site_title, sender=sender, env=env)
    )
    return pages


def render_profile_pages(
    profile: Profile,
    digests: Sequence[Digest],
    *,
    links: SiteLinks,
    site_title: str,
    env: Environment | None = None,
    converter: markdown.Markdown | None = None,
) -> tuple[dict[str, bytes], ProfileView]:
    """One profile's pages (its archive and one page per digest; `digests` newest first),
    and how the index lists it (for `render_site_pages`)."""
    env = env or template_environment()
    converter = converter or markdown_converter()
    title = one_line(site_title)
    pages: dict[str, str] = {}
    digests = list(digests)
    views = [_digest_view(d, digests[i + 1] if i + 1 < len(digests) else None, env) for i, d in enumerate(digests)]
    index_view = _profile_view(profile, views, links, "")
    deep_view = _profile_view(profile, views, links, _DEEP)
    common = {"site_title": title, "root": _DEEP, "alternates": deep_view.feeds, "profile": deep_view}
    pages[profile_path(profile.id)] = env.get_template("site/profile.html").render(digests=views, **common)
    for i, (digest, view) in enumerate(zip(digests, views, strict=True)):
        body = Markup(nh3.clean(converter.reset().convert(render_markdown(digest, env=env)), url_schemes=_SCHEMES))
        pages[digest_path(profile.id, digest.date)] = env.get_template("site/digest.html").render(
            body=body,
            label=view.label,
            newer=views[i - 1] if i > 0 else None,
            older=views[i + 1] if i + 1 < len(views) else None,
            **common,
        )
    return {path: text.encode("utf-8") for path, text in pages.items()}, index_view


def render_site_pages(
    profiles: Sequence[Profile],
    index_profiles: Sequence[ProfileView],
    *,
    links: SiteLinks,
    site_title: str,
    sender: str,
    env: Environment | None = None,
) -> dict[str, bytes]:
    """The pages about every profile: the index (from each profile's view, in order), the
    unsubscribe page and the OPML file."""
    env = env or template_environment()
    title = one_line(site_title)
    pages: dict[str, str] = {}
    all_alternates: list[FeedLink] = list(_all_feeds(links, ""))
    for view in index_profiles:
        all_alternates.extend(view.feeds)
    pages[INDEX] = env.get_template("site/index.html").render(
        site_title=title,
        root="",
        alternates=all_alternates,
        all_feeds=_all_feeds(links, ""),
        profiles=list(index_profiles),
    )
    address = parseaddr(sender)[1]
    pages[UNSUBSCRIBE] = env.get_template("site/unsubscribe.html").render(
        site_title=title,
        root="",
        alternates=(),
        sender_address=address,
        mailto=f"mailto:{address}?subject={quote('unsubscribe')}",
    )
    pages[OPML] = env.get_template("site/feeds.opml").render(site_title=title, feeds=_opml_feeds(profiles, links))
    return {path: text.encode("utf-8") for path, text in pages.items()}


_SCHEMES = {"http", "https"}

# What a Markdown digest uses: headings, paragraphs, emphasis, links, entities, escapes,
# lists, quotes and rules. Raw HTML, images, autolinks, reference links, code and hard
# breaks are switched off: dump text never needs them (it is escaped), nh3 would strip
# most of them anyway, and every pattern left out is one less scan of each paragraph
# (the site renders 2x faster: bench/RESULTS.md).
_INLINE_OFF = (
    "html",
    "image_link",
    "image_reference",
    "short_image_ref",
    "reference",
    "short_reference",
    "autolink",
    "automail",
    "linebreak",
    "backtick",
)


def markdown_converter() -> markdown.Markdown:
    """A Python-Markdown converter for digest pages (call `.reset()` between documents)."""
    converter = markdown.Markdown(output_format="html")
    for name in _INLINE_OFF:
        converter.inlinePatterns.deregister(name)
    converter.preprocessors.deregister("html_block")
    converter.parser.blockprocessors.deregister("reference")
    converter.parser.blockprocessors.deregister("code")
    return converter


def _digest_view(digest: Digest, previous: Digest | None, env: Environment) -> DigestView:
    return DigestView(
        day=digest.date,
        label=format_day(digest.date),
        href=digest_path(digest.profile.id, digest.date),
        file=f"{digest.date.isoformat()}.html",
        items=tuple(paper_view(item, env) for item in digest.items),
        runners_up=tuple(paper_view(item, env) for item in digest.runners_up[:RUNNERS_UP_SHOWN]),
        empty_reason=digest.empty_reason,
        candidates=digest.candidates,
        min_score=digest.profile.min_score,
        previous=format_day(previous.date) if previous else None,
    )


def _profile_view(profile: Profile, views: list[DigestView], links: SiteLinks, prefix: str) -> ProfileView:
    title = one_line(profile.title)
    feeds = tuple(_feed_link(output, profile.id, title, links, prefix) for output in _feeds_of(profile))
    return ProfileView(
        id=profile.id,
        title=title,
        description=one_line(profile.description),
        href=prefix + profile_path(profile.id),
        feeds=feeds,
        latest=views[0] if views else None,
        days=len(views),
    )


def _all_feeds(links: SiteLinks, prefix: str) -> tuple[FeedLink, ...]:
    return tuple(
        _feed_link(output, ALL_PAPERS, "All papers", links, prefix) for output in output_formats(FormatKind.FEED)
    )


def _feed_link(output: OutputFormat, name: str, title: str, links: SiteLinks, prefix: str) -> FeedLink:
    return FeedLink(
        kind=output.name,
        label=output.label,
        type=output.content_type,
        title=f"{title} ({output.label})",
        href=prefix + feed_path(name, output.name),
        url=links.feed(name, output.name),
    )


def _feeds_of(profile: Profile) -> tuple[OutputFormat, ...]:
    return chosen(profile.formats, FormatKind.FEED)


@dataclass(frozen=True, slots=True)
class _OpmlFeed:
    title: str
    xml_url: str
    html_url: str


def _opml_feeds(profiles: Sequence[Profile], links: SiteLinks) -> list[_OpmlFeed]:
    """One outline per subscription: all papers (Atom), then each profile's preferred feed.

    A reader importing an OPML file subscribes to every outline in it, so a profile is listed
    once, in the first of its feed formats in registry order (Atom, else RSS, else JSON Feed),
    never three times; a profile with no feed is left out.
    """
    feeds = [_OpmlFeed("All papers", links.feed(ALL_PAPERS, "atom"), links.index)]
    for profile in profiles:
        kinds = _feeds_of(profile)
        if kinds:
            feeds.append(
                _OpmlFeed(one_line(profile.title), links.feed(profile.id, kinds[0].name), links.profile(profile.id))
            )
    return feeds
