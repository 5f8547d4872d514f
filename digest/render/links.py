"""Where every output lives inside the site, and the absolute addresses built from `site_url`;
the web side's signed addresses built from `[web] base_url`.

The site uses these paths relative to the page that links them, so it works under any
GitHub Pages path; emails and feeds, read elsewhere, get absolute http(s) addresses. The
web side's addresses (`WebLinks`) carry signed tokens (`digest.tokens`) and go only into
one reader's own email, page or feed, never into the public site or feeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlsplit

from digest.formats import OUTPUT_FORMATS
from digest.models import Paper
from digest.periods import Period, PeriodKind
from digest.render.text import byline, clean_paper
from digest.tokens import Action, Token, sign

ALL_PAPERS = "all"  # the feed of every paper: feeds/all.atom (no profile may take this id)

INDEX = "index.html"
OPML = "feeds.opml"
UNSUBSCRIBE = "unsubscribe.html"


def feed_path(name: str, kind: str) -> str:
    """Where the feed of format `kind` lives (`feeds/<profile id>.atom`, or `feeds/all.atom`
    for the feed of all papers): the format's own file pattern (`formats`)."""
    return OUTPUT_FORMATS[kind].file(name=name)


def profile_path(profile_id: str) -> str:
    return f"digests/{profile_id}/index.html"


def digest_path(profile_id: str, day: date) -> str:
    return f"digests/{profile_id}/{day.isoformat()}.html"


def rollup_path(profile_id: str, period: Period) -> str:
    """A week's or month's roll-up page: `digests/<profile>/2025-W52.html`, `.../2025-12.html`."""
    return f"digests/{profile_id}/{period.key}.html"


_CADENCE_NAMES = {PeriodKind.WEEK: "weekly", PeriodKind.MONTH: "monthly"}


def rollup_feed_name(profile_id: str, kind: PeriodKind) -> str:
    """The name of a profile's feed of roll-ups, as `feed_path` takes it: `<profile>.weekly`
    (so `feeds/<profile>.weekly.atom`). Profile ids have no dots, so it names no profile."""
    return f"{profile_id}.{_CADENCE_NAMES[kind]}"


@dataclass(frozen=True, slots=True)
class SiteLinks:
    """Absolute addresses on the published site. `base` is `[digest] site_url` (ends in '/')."""

    base: str

    def __post_init__(self) -> None:
        if urlsplit(self.base).scheme not in ("http", "https") or not self.base.endswith("/"):
            raise ValueError(f"site address must be http(s) and end in '/': {self.base!r}")

    @property
    def host(self) -> str:
        return urlsplit(self.base).hostname or "localhost"

    @property
    def https(self) -> bool:
        return self.base.startswith("https://")

    def url(self, path: str) -> str:
        return self.base + path

    def feed(self, name: str, kind: str) -> str:
        return self.url(feed_path(name, kind))

    def profile(self, profile_id: str) -> str:
        return self.url(profile_path(profile_id))

    def digest(self, profile_id: str, day: date) -> str:
        return self.url(digest_path(profile_id, day))

    def rollup(self, profile_id: str, period: Period) -> str:
        return self.url(rollup_path(profile_id, period))

    @property
    def index(self) -> str:
        return self.base


# The web side's paths (`digest.web` serves them): each takes one token.
UNSUBSCRIBE_PATH = "u/"
CONFIRM_PATH = "c/"
VOTE_PATH = "v/"
PREFERENCES_PATH = "p/"
READER_PATH = "r/"
READER_FEED = "/feed.atom"
SUBSCRIBE_PATH = "subscribe"


@dataclass(frozen=True, slots=True)
class PaperFeedback:
    """One paper's feedback links for one reader: "more like this", "less like this", and "mute"
    its organisation (`organization` names it; both None for a paper of no organisation)."""

    more: str
    less: str
    mute: str | None = None
    organization: str | None = None


@dataclass(frozen=True, slots=True)
class ReaderLinks:
    """One reader's signed links for one profile: what their email, page and feed carry."""

    unsubscribe: str
    preferences: str
    page: str
    feed: str
    papers: Mapping[str, PaperFeedback] = field(default_factory=dict)  # by paper id


@dataclass(frozen=True, slots=True)
class WebLinks:
    """Addresses on the web side (`[web] base_url`, ending in '/'), signed with `key`."""

    base: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if urlsplit(self.base).scheme not in ("http", "https") or not self.base.endswith("/"):
            raise ValueError(f"web address must be http(s) and end in '/': {self.base!r}")

    def token(self, action: Action, profile_id: str, reader_id: str, paper_id: str = "") -> str:
        return sign(self.key, Token(action, profile_id, reader_id, paper_id))

    def unsubscribe(self, profile_id: str, reader_id: str) -> str:
        return self.base + UNSUBSCRIBE_PATH + self.token(Action.UNSUBSCRIBE, profile_id, reader_id)

    def preferences(self, profile_id: str, reader_id: str) -> str:
        return self.base + PREFERENCES_PATH + self.token(Action.PREFERENCES, profile_id, reader_id)

    def page(self, profile_id: str, reader_id: str) -> str:
        return self.base + READER_PATH + self.token(Action.READER, profile_id, reader_id)

    def feed(self, profile_id: str, reader_id: str) -> str:
        return self.page(profile_id, reader_id) + READER_FEED

    def vote(self, action: Action, profile_id: str, reader_id: str, paper_id: str) -> str:
        return self.base + VOTE_PATH + self.token(action, profile_id, reader_id, paper_id)

    def confirm(self, profile_id: str, reader_id: str, expires: datetime) -> str:
        token = sign(self.key, Token(Action.CONFIRM, profile_id, reader_id, expires=expires))
        return self.base + CONFIRM_PATH + token

    @property
    def subscribe(self) -> str:
        return self.base + SUBSCRIBE_PATH

    def paper_feedback(self, profile_id: str, reader_id: str, paper: Paper) -> PaperFeedback:
        # Named as the paper's byline names it: cleaned, like every text from a listing.
        organization = byline(clean_paper(paper)) if paper.organization else None
        return PaperFeedback(
            more=self.vote(Action.MORE, profile_id, reader_id, paper.id),
            less=self.vote(Action.LESS, profile_id, reader_id, paper.id),
            mute=self.vote(Action.MUTE, profile_id, reader_id, paper.id) if organization else None,
            organization=organization,
        )

    def reader(self, profile_id: str, reader_id: str, papers: tuple[Paper, ...] = ()) -> ReaderLinks:
        """Everything one reader's email, page or feed links to, with feedback on `papers`."""
        return ReaderLinks(
            unsubscribe=self.unsubscribe(profile_id, reader_id),
            preferences=self.preferences(profile_id, reader_id),
            page=self.page(profile_id, reader_id),
            feed=self.feed(profile_id, reader_id),
            papers={paper.id: self.paper_feedback(profile_id, reader_id, paper) for paper in papers},
        )
