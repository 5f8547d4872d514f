"""The static site GitHub Pages serves: an index of profiles, their digests, feeds as OPML.

Pure: profiles and their digests in; a mapping of relative path to bytes out (the
publisher writes them, with the feeds, under `site/`). Every link between pages is
relative, so the site works under any Pages path (`https://USER.github.io/REPO/`);
only the OPML file, which is imported into feed readers elsewhere, uses absolute
addresses. Archive pages are the Markdown digests rendered by Python-Markdown and
sanitised by nh3 (Python-Markdown passes raw HTML through). No JavaScript.

Each profile page ends in a stamp of what it is made of (`render.stamps`):
`plan_profile_pages` works every stamp out from records of the digests and roll-ups,
so a publisher renders (`render_profile_pages`) only the pages whose stamp changed, from
only what they show (`shown_in_full`).

Layout: `index.html`, `digests/<profile>/index.html` (the profile's archive, grouped by
month and week), `digests/<profile>/<date>.html` (one digest),
`digests/<profile>/2025-W52.html` and `.../2025-12.html` (one roll-up), `feeds.opml`,
`unsubscribe.html`. Every page links a profile's feeds of each cadence and names them
for autodiscovery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
from digest.render.feeds import feed_formats
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
from digest.rows import DigestRecord, RollupRecord

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
class DayPage:
    """Where a digest's page is, and how links to it are worded."""

    day: date
    label: str
    href: str  # from the site root
    file: str  # within the profile's folder


@dataclass(frozen=True, slots=True)
class DigestView(DayPage):
    """A digest as its page, its neighbours' links and the latest digest show it."""

    items: tuple[PaperView, ...]
    runners_up: tuple[PaperView, ...]
    empty_reason: str | None
    candidates: int
    min_score: float
    previous: str | None  # the label of the digest before this one


@dataclass(frozen=True, slots=True)
class DayLink(DayPage):
    """A digest as the archive lists it: how many papers it gave (or why none)."""

    papers: int
    empty_reason: str | None


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
    days: tuple[DayLink, ...]  # the week's digests in the month it is listed under


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
    """Some of a profile's pages (relative path to bytes), and how the site's index shows it."""

    pages: dict[str, bytes]
    index: ProfileView


@dataclass(frozen=True, slots=True)
class History:
    """A profile's history as its pages need it: a record of each digest (newest first) and
    of each weekly and monthly roll-up (newest first), and in full the digests and roll-ups
    that the pages to render show (`shown_in_full`), by day and by period key."""

    days: tuple[DigestRecord, ...]
    periods: tuple[RollupRecord, ...] = ()
    digests: Mapping[date, Digest] = field(default_factory=dict)
    rollups: Mapping[str, Rollup] = field(default_factory=dict)


def full_history(digests: Sequence[Digest], rollups: Sequence[Rollup] = ()) -> History:
    """The history of these digests (newest first) and roll-ups, each in full, each versioned by its contents."""
    shown = sorted((r for r in rollups if r.period.kind in _ARCHIVED), key=lambda r: r.period.first, reverse=True)
    return History(
        days=tuple(DigestRecord(d.date, fingerprint(d), len(d.items), d.empty_reason, d.candidates) for d in digests),
        periods=tuple(RollupRecord(r.period, fingerprint(r), len(r.items), r.considered) for r in shown),
        digests={d.date: d for d in digests},
        rollups={r.period.key: r for r in shown},
    )


_ARCHIVED = (PeriodKind.WEEK, PeriodKind.MONTH)  # the roll-ups with pages


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
    (`plan_profile_pages`, `render_profile_pages` and `render_site_index` are its parts,
    for a publisher that renders only the pages that changed, in worker processes.)
    """
    env = env or template_environment()
    converter = MarkdownToHtml()
    pages: dict[str, bytes] = {}
    shown = []
    for profile in profiles:
        full = full_history(history.get(profile.id, ()), (rollups or {}).get(profile.id, ()))
        plan = plan_profile_pages(profile, full, links=links, site_title=site_title, env=env, web_url=web_url)
        rendered = render_profile_pages(
            profile, full, plan, links=links, site_title=site_title, env=env, web_url=web_url, converter=converter
        )
        pages.update(rendered.pages)
        shown.append(rendered.index)
    return pages | render_site_index(
        profiles, shown, links=links, site_title=site_title, sender=sender, env=env, web_url=web_url
    )


def plan_profile_pages(
    profile: Profile,
    history: History,
    *,
    links: SiteLinks,
    site_title: str,
    env: Environment,
    web_url: str | None = None,
) -> dict[str, str]:
    """Every page of the profile (path under the site) with the stamp it ends in
    (`render.stamps`): what it is made of, from `history`'s records alone. A page whose
    stamp on disk is the one planned need not be rendered again."""
    days, periods = history.days, history.periods
    base = fingerprint((one_line(site_title), links, web_url, profile, feed_formats()))
    keys = [(r.version, days[i + 1].day if i + 1 < len(days) else None) for i, r in enumerate(days)]
    plan = {profile_path(profile.id): page_stamp(env, base, "site/profile.html", keys, periods)}
    for i, record in enumerate(days):
        around = [keys[j] if 0 <= j < len(keys) else None for j in (i - 1, i, i + 1)]
        plan[digest_path(profile.id, record.day)] = page_stamp(env, base, "site/digest.html", around)
    for ofkind in _by_kind(periods):
        for i, period in enumerate(ofkind):
            nearby = [ofkind[j] if 0 <= j < len(ofkind) else None for j in (i - 1, i, i + 1)]
            plan[rollup_path(profile.id, period.period)] = page_stamp(env, base, "site/rollup.html", nearby)
    return plan


def shown_in_full(profile: Profile, history: History, paths: Iterable[str]) -> tuple[list[date], list[Period]]:
    """The digests (days) and roll-ups (periods) that rendering these pages of the profile
    (and its entry in the index) reads in full: the latest digest, and each digest page's
    own digest and its neighbours' (its "newer" and "older" links show them), each roll-up
    page's own roll-up."""
    days = history.days
    at = {digest_path(profile.id, record.day): i for i, record in enumerate(days)}
    periods = {rollup_path(profile.id, record.period): record.period for record in history.periods}
    wanted = {0} if days else set()
    chosen = []
    for path in paths:
        if path in at:
            wanted.update(j for j in (at[path] - 1, at[path], at[path] + 1) if 0 <= j < len(days))
        elif path in periods:
            chosen.append(periods[path])
    return [days[i].day for i in sorted(wanted)], chosen


def render_profile_pages(
    profile: Profile,
    history: History,
    plan: Mapping[str, str],
    *,
    links: SiteLinks,
    site_title: str,
    env: Environment | None = None,
    web_url: str | None = None,
    converter: MarkdownToHtml | None = None,
) -> ProfilePages:
    """The profile's pages that `plan` names (path to stamp, from `plan_profile_pages`):
    its archive page, digest pages and roll-up pages, each ending in its stamp; and its
    entry in the index. `history` holds in full what they show (`shown_in_full`). A
    digest or roll-up page's `profile` has no `latest` or `days`: a page that showed the
    latest digest would change every day."""
    env = env or template_environment()
    converter = converter or MarkdownToHtml()
    views = _Views(history, env)
    subscribe = web_url + SUBSCRIBE_PATH if web_url and profile.open else None
    header = _page_profile(profile, links, _DEEP, subscribe)
    common: dict[str, object] = {"site_title": one_line(site_title), "root": _DEEP, "alternates": header.alternates}
    made: dict[str, tuple[str, Callable[[], dict[str, object]]]] = {
        profile_path(profile.id): ("site/profile.html", partial(_archive_context, profile, views, links, subscribe))
    }
    for i, record in enumerate(history.days):
        made[digest_path(profile.id, record.day)] = (
            "site/digest.html",
            partial(_digest_context, i, views, converter, header),
        )
    for ofkind in _by_kind(history.periods):
        for i, period in enumerate(ofkind):
            made[rollup_path(profile.id, period.period)] = (
                "site/rollup.html",
                partial(_rollup_context, i, ofkind, history, env, converter, header),
            )
    pages = {}
    for path, stamp in plan.items():
        template, context_of = made[path]
        text = env.get_template(template).render(context_of() | common)
        pages[path] = with_stamp(text, stamp).encode("utf-8")
    return ProfilePages(pages, _profile_view(profile, views, links, "", subscribe))


def _archive_context(profile: Profile, views: _Views, links: SiteLinks, subscribe: str | None) -> dict[str, object]:
    days = [_day_link(profile.id, record) for record in views.history.days]
    return {
        "digests": days,
        "months": _archive(profile.id, days, views.history.periods),
        "profile": _profile_view(profile, views, links, _DEEP, subscribe),
    }


def _digest_context(i: int, views: _Views, converter: MarkdownToHtml, header: PageProfile) -> dict[str, object]:
    markdown_text = render_markdown(views.digest(i), env=views.env)
    return {
        "body": _html(converter(markdown_text)),
        "label": views[i].label,
        "newer": views[i - 1] if i > 0 else None,
        "older": views[i + 1] if i + 1 < len(views) else None,
        "profile": header,
    }


def _rollup_context(
    i: int,
    ofkind: list[RollupRecord],
    history: History,
    env: Environment,
    converter: MarkdownToHtml,
    header: PageProfile,
) -> dict[str, object]:
    period = ofkind[i].period
    return {
        "body": _html(converter(render_rollup_markdown(history.rollups[period.key], env))),
        "label": period_label(period),
        "newer": _rollup_link(header.id, ofkind[i - 1]) if i > 0 else None,
        "older": _rollup_link(header.id, ofkind[i + 1]) if i + 1 < len(ofkind) else None,
        "profile": header,
    }


class _Views:
    """Each digest's view (`DigestView`), made when first asked for, from the digests the
    history holds in full (`shown_in_full` says which a page needs)."""

    def __init__(self, history: History, env: Environment) -> None:
        self.history, self.env = history, env
        self._made: dict[int, DigestView] = {}

    def __len__(self) -> int:
        return len(self.history.days)

    def digest(self, i: int) -> Digest:
        return self.history.digests[self.history.days[i].day]

    def __getitem__(self, i: int) -> DigestView:
        view = self._made.get(i)
        if view is None:
            days = self.history.days
            older = days[i + 1].day if i + 1 < len(days) else None
            view = self._made[i] = _digest_view(self.digest(i), older, self.env)
        return view


def _html(markdown_html: str) -> Markup:
    return Markup(nh3.clean(markdown_html, url_schemes=_SCHEMES))


def _by_kind(periods: Sequence[RollupRecord]) -> list[list[RollupRecord]]:
    """The weekly roll-ups, then the monthly ones, each newest first."""
    return [
        sorted((r for r in periods if r.period.kind is kind), key=lambda r: r.period, reverse=True)
        for kind in _ARCHIVED
    ]


def _day_link(profile_id: str, record: DigestRecord) -> DayLink:
    return DayLink(
        day=record.day,
        label=format_day(record.day),
        href=digest_path(profile_id, record.day),
        file=f"{record.day.isoformat()}.html",
        papers=record.papers,
        empty_reason=record.empty_reason,
    )


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


def _digest_view(digest: Digest, previous: date | None, env: Environment) -> DigestView:
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
        previous=format_day(previous) if previous else None,
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


def _rollup_link(profile_id: str, record: RollupRecord) -> RollupLink:
    count, period = record.papers, record.period
    if count:
        summary = f"{count} paper{'' if count == 1 else 's'}"
    else:
        summary = "nothing above the threshold" if record.considered else "no papers listed"
    return RollupLink(
        key=period.key,
        label=period_label(period),
        span=format_span(period.first, period.last),
        href=rollup_path(profile_id, period),
        file=f"{period.key}.html",
        summary=summary,
    )


def _archive(profile_id: str, views: Sequence[DayLink], rollups: Sequence[RollupRecord]) -> list[MonthGroup]:
    """The profile's digests by month, then by ISO week within the month, newest first, with
    the roll-up of each month and week when there is one. A week that straddles two months
    is listed under both, each with its own days; a week with a roll-up but no digest is
    listed under the month of its Thursday (the day ISO 8601 dates a week by)."""
    by_period = {(r.period.kind, r.period.key): _rollup_link(profile_id, r) for r in rollups}
    days: dict[Period, dict[Period, list[DayLink]]] = {}
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
