"""The static site GitHub Pages serves: an index of profiles, their digests, feeds as OPML.

Pure: profiles and their digests in; a mapping of relative path to bytes out (the
publisher writes them, with the feeds, under `site/`). Every link between pages is
relative, so the site works under any Pages path (`https://USER.github.io/REPO/`);
only the OPML file, which is imported into feed readers elsewhere, uses absolute
addresses. Archive pages are the Markdown digests rendered by Python-Markdown and
sanitised by nh3 (Python-Markdown passes raw HTML through). No JavaScript.

Layout: `index.html`, `digests/<profile>/index.html` (the profile's archive, grouped by
month and week), `digests/<profile>/<date>.html` (one digest),
`digests/<profile>/2025-W52.html` and `.../2025-12.html` (one roll-up), `feeds.opml`,
`unsubscribe.html`. Every page links a profile's feeds of each cadence and names them
for autodiscovery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from email.utils import parseaddr
from functools import partial
from urllib.parse import quote

import nh3
from jinja2 import Environment
from markupsafe import Markup

from digest.formats import FormatKind, OutputFormat, chosen, output_formats
from digest.models import Digest, Profile, Rollup
from digest.periods import Period, PeriodKind, month_of, week_of
from digest.render.links import (
    ALL_PAPERS,
    INDEX,
    OPML,
    SUBSCRIBE_PATH,
    UNSUBSCRIBE,
    SiteLinks,
    digest_path,
    feed_path,
    profile_path,
    rollup_feed_name,
    rollup_path,
)
from digest.render.markdown import RUNNERS_UP_SHOWN, render_markdown
from digest.render.markdown_html import MarkdownToHtml
from digest.render.rollups import format_span, period_label, render_rollup_markdown
from digest.render.stamps import fingerprint, page_stamp, with_stamp
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
class RollupLink:
    """A roll-up as the archive lists it."""

    key: str
    label: str  # "Week 52 of 2025"
    span: str  # "22–28 Dec 2025"
    href: str  # from the site root
    file: str  # within the profile's folder
    summary: str  # "10 papers", "no papers listed", "nothing above the threshold"


@dataclass(frozen=True, slots=True)
class WeekGroup:
    label: str  # "Week 52 of 2025"
    span: str
    rollup: RollupLink | None
    days: tuple[DigestView, ...]  # the week's digests in the month it is listed under


@dataclass(frozen=True, slots=True)
class MonthGroup:
    label: str  # "December 2025"
    rollup: RollupLink | None
    weeks: tuple[WeekGroup, ...]


@dataclass(frozen=True, slots=True)
class PageProfile:
    """A profile as a digest or roll-up page shows it."""

    id: str
    title: str
    description: str
    href: str
    feeds: tuple[FeedLink, ...]
    subscribe: str | None = None  # the web side's subscribe page, for a profile open to subscribers
    cadence_feeds: tuple[tuple[str, tuple[FeedLink, ...]], ...] = ()  # ("Weekly", its feed links), ...

    @property
    def alternates(self) -> tuple[FeedLink, ...]:
        """Every feed of the profile, for autodiscovery."""
        return self.feeds + tuple(link for _, links in self.cadence_feeds for link in links)


@dataclass(frozen=True, slots=True)
class ProfileView(PageProfile):
    """A profile as the index and its archive page show it: with its latest digest."""

    latest: DigestView | None = None
    days: int = 0


@dataclass(frozen=True, slots=True)
class ProfilePages:
    """One profile's pages (relative path to bytes), how the site's index shows it, and the
    pages left as they are (`kept`: their stamps on disk are what they would be made of)."""

    pages: dict[str, bytes]
    index: ProfileView
    kept: tuple[str, ...] = ()


def render_site(
    profiles: Sequence[Profile],
    history: Mapping[str, Sequence[Digest]],
    *,
    links: SiteLinks,
    site_title: str,
    sender: str,
    env: Environment | None = None,
    web_url: str | None = None,
    rollups: Mapping[str, Sequence[Rollup]] | None = None,
) -> dict[str, bytes]:
    """Every page of the site, by path relative to the site root.

    `history` maps a profile id to its digests, newest first (a profile missing from it
    has no digest yet); `rollups` to its weekly and monthly roll-ups. Feeds are not
    included: the publisher adds them under `feeds/`. `web_url` is the web side's address
    (`[web] base_url`): profiles open to subscribers then link to its subscribe page, and
    the unsubscribe page says how its links work. No page carries anyone's token.
    (`render_profile_pages` and `render_site_index` are its two halves, for a publisher
    that renders profiles in worker processes.)
    """
    env = env or template_environment()
    converter = MarkdownToHtml()
    pages: dict[str, bytes] = {}
    shown = []
    for profile in profiles:
        rendered = render_profile_pages(
            profile,
            history.get(profile.id, ()),
            (rollups or {}).get(profile.id, ()),
            links=links,
            site_title=site_title,
            env=env,
            web_url=web_url,
            converter=converter,
        )
        pages.update(rendered.pages)
        shown.append(rendered.index)
    return pages | render_site_index(
        profiles, shown, links=links, site_title=site_title, sender=sender, env=env, web_url=web_url
    )


def render_profile_pages(
    profile: Profile,
    history: Sequence[Digest],
    rollups: Sequence[Rollup] = (),
    *,
    links: SiteLinks,
    site_title: str,
    env: Environment | None = None,
    web_url: str | None = None,
    converter: MarkdownToHtml | None = None,
    stamps: Mapping[str, str] | None = None,
) -> ProfilePages:
    """One profile's archive page, digest pages and roll-up pages (`history`: its digests,
    newest first; `rollups`: its weekly and monthly roll-ups), and its entry in the index.

    Each page ends in its stamp (`render.stamps`). `stamps` are those of the pages as they
    are (path under the site to stamp): a page that would be made of the same is not
    rendered again, only listed in `kept`. A digest or roll-up page's `profile` has no
    `latest` or `days`, so that a new digest changes only the pages that show it."""
    env = env or template_environment()
    converter = converter or MarkdownToHtml()
    title = one_line(site_title)
    digests = list(history)
    views = _Views(digests, env)
    subscribe = web_url + SUBSCRIBE_PATH if web_url and profile.open else None
    index_view = _profile_view(profile, views, links, "", subscribe)
    header = _page_profile(profile, links, _DEEP, subscribe)
    common: dict[str, object] = {"site_title": title, "root": _DEEP, "alternates": header.alternates}
    made = _Pages(env, stamps or {}, fingerprint((title, links, web_url, profile, _feed_formats())), common)
    keys = [(fingerprint(d), digests[i + 1].date if i + 1 < len(digests) else None) for i, d in enumerate(digests)]
    rollup_keys = {id(r): fingerprint(r) for r in rollups}
    archive = partial(_archive_context, profile, views, rollups, links, subscribe)
    made.page(profile_path(profile.id), "site/profile.html", ("archive", keys, tuple(rollup_keys.values())), archive)
    for i, digest in enumerate(digests):
        around = tuple(keys[j] if 0 <= j < len(keys) else None for j in (i - 1, i, i + 1))
        context = partial(_digest_context, i, views, converter, header)
        made.page(digest_path(profile.id, digest.date), "site/digest.html", ("digest", around), context)
    for kind in (PeriodKind.WEEK, PeriodKind.MONTH):
        ofkind = sorted((r for r in rollups if r.period.kind is kind), key=lambda r: r.period, reverse=True)
        for i, rollup in enumerate(ofkind):
            nearby = tuple(rollup_keys[id(ofkind[j])] if 0 <= j < len(ofkind) else None for j in (i - 1, i, i + 1))
            context = partial(_rollup_context, i, ofkind, env, converter, header)
            made.page(rollup_path(profile.id, rollup.period), "site/rollup.html", ("rollup", nearby), context)
    return ProfilePages(made.rendered, index_view, tuple(made.kept))


def _archive_context(
    profile: Profile, views: _Views, rollups: Sequence[Rollup], links: SiteLinks, subscribe: str | None
) -> dict[str, object]:
    return {
        "digests": views.every(),
        "months": _archive(profile.id, views.every(), rollups),
        "profile": _profile_view(profile, views, links, _DEEP, subscribe),
    }


def _digest_context(i: int, views: _Views, converter: MarkdownToHtml, header: PageProfile) -> dict[str, object]:
    markdown_text = render_markdown(views.digests[i], env=views.env)
    return {
        "body": _html(converter(markdown_text)),
        "label": views[i].label,
        "newer": views[i - 1] if i > 0 else None,
        "older": views[i + 1] if i + 1 < len(views) else None,
        "profile": header,
    }


def _rollup_context(
    i: int, ofkind: list[Rollup], env: Environment, converter: MarkdownToHtml, header: PageProfile
) -> dict[str, object]:
    rollup = ofkind[i]
    return {
        "body": _html(converter(render_rollup_markdown(rollup, env))),
        "label": period_label(rollup.period),
        "newer": _rollup_link(header.id, ofkind[i - 1]) if i > 0 else None,
        "older": _rollup_link(header.id, ofkind[i + 1]) if i + 1 < len(ofkind) else None,
        "profile": header,
    }


class _Views:
    """Each digest's view (`DigestView`), made when first asked for: a build that renders
    a few pages again needs a few views, not one per day of the history."""

    def __init__(self, digests: list[Digest], env: Environment) -> None:
        self.digests, self.env = digests, env
        self._made: dict[int, DigestView] = {}

    def __len__(self) -> int:
        return len(self.digests)

    def __getitem__(self, i: int) -> DigestView:
        view = self._made.get(i)
        if view is None:
            older = self.digests[i + 1] if i + 1 < len(self.digests) else None
            view = self._made[i] = _digest_view(self.digests[i], older, self.env)
        return view

    def every(self) -> list[DigestView]:
        return [self[i] for i in range(len(self))]


class _Pages:
    """A profile's pages as they are rendered: each stamped, or kept when its stamp is the one on disk."""

    def __init__(self, env: Environment, on_disk: Mapping[str, str], base: str, common: dict[str, object]) -> None:
        self._env, self._on_disk, self._base, self._common = env, on_disk, base, common
        self.rendered: dict[str, bytes] = {}
        self.kept: list[str] = []

    def page(
        self, path: str, template: str, inputs: tuple[object, ...], context: Callable[[], dict[str, object]]
    ) -> None:
        stamp = page_stamp(self._env, self._base, template, inputs)
        if self._on_disk.get(path) == stamp:
            self.kept.append(path)
            return
        text = self._env.get_template(template).render(context() | self._common)
        self.rendered[path] = with_stamp(text, stamp).encode("utf-8")


def _html(markdown_html: str) -> Markup:
    return Markup(nh3.clean(markdown_html, url_schemes=_SCHEMES))


def _newest_first(rollups: Sequence[Rollup], kind: PeriodKind) -> list[Rollup]:
    return sorted((r for r in rollups if r.period.kind is kind), key=lambda r: r.period, reverse=True)


def _feed_formats() -> tuple[tuple[str, str, str, str], ...]:
    """The feed formats registered, as a page's links name them."""
    return tuple((o.name, o.label, o.content_type, o.path) for o in output_formats(FormatKind.FEED))


def render_site_index(
    profiles: Sequence[Profile],
    shown: Sequence[ProfileView],
    *,
    links: SiteLinks,
    site_title: str,
    sender: str,
    env: Environment | None = None,
    web_url: str | None = None,
) -> dict[str, bytes]:
    """The pages about every profile at once: the index (`shown`: each profile's entry, from
    `render_profile_pages`, in the order of `profiles`), the unsubscribe page and the OPML."""
    env = env or template_environment()
    title = one_line(site_title)
    all_alternates: list[FeedLink] = list(_all_feeds(links, ""))
    for view in shown:
        all_alternates.extend(view.alternates)
    pages: dict[str, str] = {}
    pages[INDEX] = env.get_template("site/index.html").render(
        site_title=title,
        root="",
        alternates=all_alternates,
        all_feeds=_all_feeds(links, ""),
        profiles=list(shown),
    )
    address = parseaddr(sender)[1]
    pages[UNSUBSCRIBE] = env.get_template("site/unsubscribe.html").render(
        site_title=title,
        root="",
        alternates=(),
        sender_address=address,
        mailto=f"mailto:{address}?subject={quote('unsubscribe')}",
        web_url=web_url,
    )
    pages[OPML] = env.get_template("site/feeds.opml").render(
        site_title=title, feeds=_opml_feeds(profiles, links), groups=_opml_cadences(profiles, links)
    )
    return {path: text.encode("utf-8") for path, text in pages.items()}


_SCHEMES = {"http", "https"}


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


def _profile_view(profile: Profile, views: _Views, links: SiteLinks, prefix: str, subscribe: str | None) -> ProfileView:
    header = _page_profile(profile, links, prefix, subscribe)
    fields = {name: getattr(header, name) for name in PageProfile.__dataclass_fields__}
    return ProfileView(**fields, latest=views[0] if len(views) else None, days=len(views))


def _page_profile(profile: Profile, links: SiteLinks, prefix: str, subscribe: str | None) -> PageProfile:
    title = one_line(profile.title)
    feeds = tuple(_feed_link(output, profile.id, title, links, prefix) for output in _feeds_of(profile))
    cadences = tuple(
        (
            label,
            tuple(
                _feed_link(output, rollup_feed_name(profile.id, kind), f"{title}, {label.lower()}", links, prefix)
                for output in _feeds_of(profile)
            ),
        )
        for kind, label in _CADENCE_LABELS
    )
    return PageProfile(
        id=profile.id,
        title=title,
        description=one_line(profile.description),
        href=prefix + profile_path(profile.id),
        feeds=feeds,
        subscribe=subscribe,
        cadence_feeds=cadences if feeds else (),
    )


_CADENCE_LABELS = ((PeriodKind.WEEK, "Weekly"), (PeriodKind.MONTH, "Monthly"))


def _rollup_link(profile_id: str, rollup: Rollup) -> RollupLink:
    count = len(rollup.items)
    if count:
        summary = f"{count} paper{'' if count == 1 else 's'}"
    else:
        summary = "nothing above the threshold" if rollup.considered else "no papers listed"
    return RollupLink(
        key=rollup.period.key,
        label=period_label(rollup.period),
        span=format_span(rollup.period.first, rollup.period.last),
        href=rollup_path(profile_id, rollup.period),
        file=f"{rollup.period.key}.html",
        summary=summary,
    )


def _archive(profile_id: str, views: Sequence[DigestView], rollups: Sequence[Rollup]) -> list[MonthGroup]:
    """The profile's digests by month, then by ISO week within the month, newest first, with
    the roll-up of each month and week when there is one. A week that straddles two months
    is listed under both, each with its own days; a week with a roll-up but no digest is
    listed under the month of its Thursday (the day ISO 8601 dates a week by)."""
    by_period = {(r.period.kind, r.period.key): _rollup_link(profile_id, r) for r in rollups}
    days: dict[Period, dict[Period, list[DigestView]]] = {}
    for view in views:
        days.setdefault(month_of(view.day), {}).setdefault(week_of(view.day), []).append(view)
    for rollup in rollups:
        period = rollup.period
        if period.kind is PeriodKind.MONTH:
            days.setdefault(period, {})
        elif period.kind is PeriodKind.WEEK and not any(period in weeks for weeks in days.values()):
            days.setdefault(month_of(period.first + timedelta(days=3)), {}).setdefault(period, [])
    return [
        MonthGroup(
            label=period_label(month),
            rollup=by_period.get((month.kind, month.key)),
            weeks=tuple(
                WeekGroup(
                    label=period_label(week),
                    span=format_span(week.first, week.last),
                    rollup=by_period.get((week.kind, week.key)),
                    days=tuple(sorted(weeks[week], key=lambda v: v.day, reverse=True)),
                )
                for week in sorted(weeks, reverse=True)
            ),
        )
        for month, weeks in sorted(days.items(), reverse=True)
    ]


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


def _opml_cadences(profiles: Sequence[Profile], links: SiteLinks) -> list[tuple[str, list[_OpmlFeed]]]:
    """The feeds of roll-ups, one folder per cadence ("Weekly roll-ups"), each profile once
    in its preferred feed format (as `_opml_feeds` lists the daily ones)."""
    groups = []
    for kind, label in _CADENCE_LABELS:
        feeds = []
        for profile in profiles:
            kinds = _feeds_of(profile)
            if kinds:
                title = f"{one_line(profile.title)}, {label.lower()}"
                url = links.feed(rollup_feed_name(profile.id, kind), kinds[0].name)
                feeds.append(_OpmlFeed(title, url, links.profile(profile.id)))
        if feeds:
            groups.append((f"{label} roll-ups", feeds))
    return groups


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
