"""What the web side's pages show, and a reader's private feed: views in, HTML or XML out.

Every page is a template of `templates/web/` (overridable like the others) extending the
site's `site/base.html`, rendered by the project's one Jinja environment (autoescaped,
strict), so text from dumps and addresses typed into a form stay text. No page carries a
script. The private feed is an Atom feed like a profile's, with each entry's feedback
links; its entry ids are the profile feed's. Nothing here reads the store or a request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jinja2 import Environment

from digest.clock import aware
from digest.models import Cadence, Digest, Paper, Profile, VoteKind
from digest.readers import CONFIRMATION_HOURS, MAX_PAUSE_WEEKS
from digest.render.feeds import NO_ENTRIES_YET, FeedData, FeedItem, atom_feed, entry_id, entry_moment
from digest.render.links import PaperFeedback, ReaderLinks, SiteLinks
from digest.render.text import format_day, one_line
from digest.render.views import PaperView, paper_view, plain_paper_view
from digest.rows import ReaderPreferences, VoteRecord

PAUSE_CHOICES = (1, 2, 4, 8, 12, 26, MAX_PAUSE_WEEKS)
CADENCE_LABELS = {
    Cadence.DAILY: "Every digest",
    Cadence.WEEKLY: "A weekly round-up",
    Cadence.MONTHLY: "A monthly round-up",
}
VOTE_LABELS = {VoteKind.MORE: "More like this", VoteKind.LESS: "Less like this", VoteKind.MUTE: "Mute"}
VOTE_EFFECTS = {
    VoteKind.MORE: "papers like this one now rise in your digest.",
    VoteKind.LESS: "papers like this one now sink in your digest.",
    VoteKind.MUTE: "papers from this organisation are left out of your digest.",
}


@dataclass(frozen=True, slots=True)
class PageLink:
    href: str
    label: str


@dataclass(frozen=True, slots=True)
class DayView:
    label: str
    items: tuple[PaperView, ...]
    feedback: Mapping[str, PaperFeedback]


@dataclass(frozen=True, slots=True)
class VoteView:
    label: str
    title: str
    url: str
    when: str
    undone: bool
    undo_url: str


class Pages:
    """Renders the web side's pages with `env`, in the look of the site at `site_url`."""

    def __init__(self, env: Environment, *, site_title: str, site_url: str, subscribe_url: str) -> None:
        self.env = env
        self.site_title = one_line(site_title)
        self.site_url = site_url
        self.subscribe_url = subscribe_url

    def render(self, template: str, **context: Any) -> str:
        common = {"site_title": self.site_title, "root": self.site_url, "alternates": ()}
        return self.env.get_template(template).render(**(common | context))

    def message(self, heading: str, *lines: str, links: Sequence[PageLink] = ()) -> str:
        return self.render("web/message.html", heading=heading, lines=lines, links=links)

    def not_found(self) -> str:
        return self.message(
            "Not found",
            "There is nothing here. A link from an email works only as it was sent: check that it was copied whole.",
        )

    def index(self, open_profiles: Sequence[Profile]) -> str:
        return self.render(
            "web/index.html", site_url=self.site_url, subscribe_url=self.subscribe_url, open_profiles=open_profiles
        )

    def subscribe(
        self, profiles: Sequence[Profile], *, action: str, error: str = "", address: str = "", chosen: str = ""
    ) -> str:
        shown = [_ProfileChoice(p.id, one_line(p.title), one_line(p.description)) for p in profiles]
        return self.render(
            "web/subscribe.html",
            profiles=shown,
            action=action,
            error=error,
            address=address,
            chosen=chosen,
            hours=CONFIRMATION_HOURS,
            site_url=self.site_url,
        )

    def confirm(self, profile: Profile, address: str) -> str:
        return self.render("web/confirm.html", profile_title=one_line(profile.title), address=address)

    def unsubscribe(self, profile: Profile, address: str, *, unsubscribed: bool, preferences_url: str) -> str:
        return self.render(
            "web/unsubscribe.html",
            profile_title=one_line(profile.title),
            address=address,
            unsubscribed=unsubscribed,
            preferences_url=preferences_url,
            subscribe_url=self.subscribe_url if profile.open else None,
        )

    def vote(
        self, profile: Profile, paper: Paper, kind: VoteKind, links: ReaderLinks, *, vote_url: str, stage: str
    ) -> str:
        """`stage`: 'ask' (confirm the vote), 'recorded', 'ask-undo' or 'undone'."""
        organization = paper.organization.name if paper.organization else ""
        what = f"Mute {organization}" if kind == VoteKind.MUTE else VOTE_LABELS[kind]
        question = {
            VoteKind.MORE: "Show more papers like this one in your digest?",
            VoteKind.LESS: "Show fewer papers like this one in your digest?",
            VoteKind.MUTE: f"Leave papers from {organization} out of your digest?",
        }[kind]
        confirm_label = f"Yes, mute {organization}" if kind == VoteKind.MUTE else f"Yes, {VOTE_LABELS[kind].lower()}"
        return self.render(
            "web/vote.html",
            what=one_line(what),
            confirm_label=one_line(confirm_label),
            question=one_line(question),
            effect=VOTE_EFFECTS[kind],
            paper=plain_paper_view(paper),
            profile_title=one_line(profile.title),
            stage=stage,
            vote_url=vote_url,
            undo_url=vote_url + "/undo",
            page_url=links.page,
            preferences_url=links.preferences,
        )

    def preferences(
        self,
        profile: Profile,
        address: str,
        chosen: ReaderPreferences,
        links: ReaderLinks,
        votes: Sequence[VoteView],
        *,
        unsubscribed: bool,
        notice: str = "",
        error: str = "",
    ) -> str:
        return self.render(
            "web/preferences.html",
            profile_title=one_line(profile.title),
            address=address,
            notice=notice,
            error=error,
            unsubscribed=unsubscribed,
            subscribe_url=self.subscribe_url,
            paused_until=chosen.paused_until,
            pause_choices=PAUSE_CHOICES,
            profile_max_items=profile.max_items,
            max_items=chosen.max_items or profile.max_items,
            cadences=[_CadenceChoice(c.value, CADENCE_LABELS[c]) for c in Cadence],
            current_cadence=(chosen.cadence or Cadence.DAILY).value,
            page_url=links.page,
            feed_url=links.feed,
            votes=votes,
        )

    def reader(self, profile: Profile, digests: Sequence[Digest], links: ReaderLinks, *, owner: bool = False) -> str:
        """The reader's private page; `owner`: the reader owns the profile, so the votes behind
        its digest are theirs as well as those behind their own (`Digest.own`)."""
        days = [
            DayView(
                label=format_day(d.date),
                items=tuple(paper_view(item, self.env, mine=d.own or owner) for item in d.items),
                feedback=links.papers,
            )
            for d in digests
        ]
        return self.render(
            "web/reader.html",
            profile_title=one_line(profile.title),
            digests=days,
            feed_url=links.feed,
            preferences_url=links.preferences,
        )

    def reader_feed(
        self, profile: Profile, digests: Sequence[Digest], links: ReaderLinks, *, owner: bool = False
    ) -> bytes:
        """The reader's private Atom feed: the papers of `digests` (newest first), each with its
        feedback links (`owner` as for `reader`). Dated as the profile's feed is: a digest's
        best paper at its build time, each next one a second earlier."""
        template = self.env.get_template("web/feed_entry.html")
        items: list[FeedItem] = []
        seen: set[str] = set()
        for digest in digests:
            for place, item in enumerate(digest.items):
                if item.paper.id in seen:
                    continue
                seen.add(item.paper.id)
                view = paper_view(item, self.env, mine=digest.own or owner)
                html = template.render(paper=view, day=digest.date, f=links.papers.get(view.id))
                moment = entry_moment(aware(digest.built_at) - timedelta(seconds=place), items)
                items.append(FeedItem(entry_id(profile.id, view.id), view, moment, html))
        title = one_line(profile.title)
        feed = FeedData(
            name=profile.id,
            title=f"{title}: your digest · {self.site_title}",
            description=f"Your papers of “{title}”, with links to say what you want more or less of.",
            home=links.page,
            updated=max((i.moment for i in items), default=NO_ENTRIES_YET),
            items=tuple(items),
        )
        return atom_feed(feed, _OwnFeedLinks(self.site_url, links.feed))

    def vote_views(self, records: Sequence[VoteRecord], papers: Mapping[str, Paper], vote_url: Any) -> list[VoteView]:
        """The reader's votes as the preferences page lists them; `vote_url(record)` is the
        address of the link that cast each one."""
        views = []
        for record in records:
            paper = papers.get(record.paper_id)
            if paper is None:
                continue
            label = VOTE_LABELS[record.kind]
            if record.kind == VoteKind.MUTE and paper.organization:
                label = f"Mute {paper.organization.name}"
            views.append(
                VoteView(
                    label=one_line(label),
                    title=plain_paper_view(paper).title,
                    url=plain_paper_view(paper).url,
                    when=_when(record.at),
                    undone=not record.active,
                    undo_url=vote_url(record) + "/undo",
                )
            )
        return views


@dataclass(frozen=True, slots=True)
class _ProfileChoice:
    id: str
    title: str
    description: str


@dataclass(frozen=True, slots=True)
class _CadenceChoice:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class _OwnFeedLinks(SiteLinks):
    """The site's addresses, but the feed's own address is the reader's private one."""

    own: str = ""

    def feed(self, name: str, kind: str) -> str:
        return self.own


def _when(moment: datetime) -> str:
    return f"{format_day(moment.astimezone(UTC).date())}"
