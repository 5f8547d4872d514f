"""Roll-ups rendered: their words (labels, spans, counts), Markdown, and the feeds per cadence.

A roll-up is shown as a digest is (the same paper views, the same escaping), with what a
roll-up adds: the period it covers ("Week 52 of 2025", "22–28 Dec 2025"), a short list of
the next best titles ("also this week") and how many papers were considered and scored
above the threshold. Its email is `render.email.render_rollup_email`; its site page is
`render.site`'s.

The feeds per cadence (`feeds/<profile>.weekly.atom`, `.monthly.json`, ...) hold one entry
per roll-up that has papers: the roll-up as the entry's content, its id
`urn:paper-digest:<profile>:week:2025-W52` (from the profile and the period only, so it
never changes), dated at the roll-up's `built_at`. They are written by the feed formats
of the registry (`digest.formats`), like the daily feeds.

Pure: roll-ups in, strings and bytes out; no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from jinja2 import Environment

from digest.clock import aware
from digest.formats import FormatKind, chosen
from digest.models import Profile, Rollup
from digest.periods import Period, PeriodKind
from digest.render.feeds import ID_PREFIX, NO_ENTRIES_YET, FeedData, FeedItem, entry_moment
from digest.render.links import SiteLinks, rollup_feed_name
from digest.render.templates import template_environment
from digest.render.text import format_date, format_day, one_line
from digest.render.views import PaperView, paper_view

_MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_ALSO = {
    PeriodKind.WEEK: "Also this week",
    PeriodKind.MONTH: "Also this month",
    PeriodKind.MISSED: "Also in those days",
}
_WHEN = {PeriodKind.WEEK: "that week", PeriodKind.MONTH: "that month", PeriodKind.MISSED: "in those days"}
_CADENCE_WORD = {PeriodKind.WEEK: "weekly", PeriodKind.MONTH: "monthly"}
_ONCE = {PeriodKind.WEEK: "once a week (Monday to Sunday)", PeriodKind.MONTH: "once a month"}
RUNNERS_UP_SHOWN = 3


def period_label(period: Period) -> str:
    """'Week 52 of 2025', 'December 2025', or 'What you missed'."""
    if period.kind is PeriodKind.WEEK:
        year, week, _ = period.first.isocalendar()
        return f"Week {week} of {year}"
    if period.kind is PeriodKind.MONTH:
        return f"{_MONTH_NAMES[period.first.month - 1]} {period.first.year}"
    return "What you missed"


def format_span(first: date, last: date) -> str:
    """'22–28 Dec 2025', '29 Sep – 5 Oct 2025', '29 Dec 2025 – 4 Jan 2026', or one day."""
    if first == last:
        return format_day(first)
    if (first.year, first.month) == (last.year, last.month):
        return f"{first.day}–{format_date(last)}"
    if first.year == last.year:
        return f"{format_date(first).rsplit(' ', 1)[0]} – {format_date(last)}"
    return f"{format_date(first)} – {format_date(last)}"


def counts_line(considered: int, above: int, min_score: float, *, whose: str = "the") -> str:
    """'312 papers considered, 24 above the threshold (0.15).'"""
    papers = f"{considered} paper{'' if considered == 1 else 's'} considered"
    return f"{papers}, {above} above {whose} threshold ({min_score})."


@dataclass(frozen=True, slots=True)
class RollupView:
    """What templates see of a roll-up: plain, cleaned text (escaping is the template's job)."""

    key: str
    kind: str
    label: str  # "Week 52 of 2025"
    span: str  # "22–28 Dec 2025"
    when: str  # "that week"
    profile_title: str
    items: tuple[PaperView, ...]
    also: tuple[PaperView, ...]
    also_heading: str  # "Also this week"
    runners_up: tuple[PaperView, ...]
    considered: int
    above: int
    min_score: float
    counts: str  # "312 papers considered, 24 above the threshold (0.15)."


def rollup_view(rollup: Rollup, env: Environment, *, whose: str = "the", mine: bool = False) -> RollupView:
    """The roll-up as templates see it; `whose` threshold the counts name ("your" in an email);
    `mine`: for the reader whose votes ranked its digests (`views.paper_view`)."""
    period = rollup.period
    return RollupView(
        key=period.key,
        kind=period.kind,
        label=period_label(period),
        span=format_span(period.first, period.last),
        when=_WHEN[period.kind],
        profile_title=one_line(rollup.profile.title),
        items=tuple(paper_view(item, env, mine=mine) for item in rollup.items),
        also=tuple(paper_view(item, env, mine=mine) for item in rollup.also),
        also_heading=_ALSO[period.kind],
        runners_up=tuple(paper_view(item, env, mine=mine) for item in rollup.runners_up[:RUNNERS_UP_SHOWN]),
        considered=rollup.considered,
        above=rollup.above,
        min_score=rollup.profile.min_score,
        counts=counts_line(rollup.considered, rollup.above, rollup.profile.min_score, whose=whose),
    )


def render_rollup_markdown(rollup: Rollup, env: Environment | None = None) -> str:
    """The roll-up as a Markdown page (`digests/<profile>/2025-W52.md`): the `markdown`
    format's roll-up renderer (see `digest.formats`)."""
    env = env or template_environment()
    return env.get_template("rollup.md").render(r=rollup_view(rollup, env))


# -- feeds per cadence --------------------------------------------------------------------------


def rollup_entry_id(profile_id: str, period: Period) -> str:
    """`urn:paper-digest:<profile>:week:2025-W52`: from the profile and the period only."""
    return f"{ID_PREFIX}{profile_id}:{period.kind}:{period.key}"


def render_rollup_feeds(
    profile: Profile,
    kind: PeriodKind,
    rollups: Sequence[Rollup],
    *,
    links: SiteLinks,
    site_title: str,
    env: Environment | None = None,
    empty_updated: datetime | None = None,
) -> dict[str, bytes]:
    """The profile's feeds of one cadence, one per feed format in its `formats`.

    `rollups` are its most recent roll-ups of `kind`, newest first; one without papers adds
    no entry. No two entries share a time: one built at the same moment as a newer one is
    dated a second earlier.
    """
    env = env or template_environment()
    template = env.get_template("rollup_entry.html")
    title = one_line(profile.title)
    items: list[FeedItem] = []
    for rollup in rollups:
        if not rollup.items:
            continue
        view = rollup_view(rollup, env)
        page = links.rollup(profile.id, rollup.period)
        moment = entry_moment(aware(rollup.built_at), items)
        count = len(view.items)
        entry = PaperView(
            id=view.key,
            title=f"{view.label}: {count} paper{'' if count == 1 else 's'} for {title}",
            url=page,
            meta="",
            origin="",
            reasons=(),
            summary=f"The best {count} of {view.considered} papers listed {view.span}.",
            abstract="",
            score=None,
        )
        html = template.render(r=view, page=page)
        items.append(FeedItem(rollup_entry_id(profile.id, rollup.period), entry, moment, html))
    name = rollup_feed_name(profile.id, kind)
    feed = FeedData(
        name=name,
        title=f"{title}, {_CADENCE_WORD[kind]} · {one_line(site_title)}",
        description=f"The best papers for “{title}”, {_ONCE[kind]}.",
        home=links.profile(profile.id),
        updated=max((i.moment for i in items), default=empty_updated or NO_ENTRIES_YET),
        items=tuple(items),
    )
    return {output.name: output.render(feed, links) for output in chosen(profile.formats, FormatKind.FEED)}


__all__ = [
    "RollupView",
    "counts_line",
    "format_span",
    "period_label",
    "render_rollup_feeds",
    "render_rollup_markdown",
    "rollup_entry_id",
    "rollup_view",
]
