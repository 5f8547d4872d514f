"""Where every output lives inside the site, and the absolute addresses built from `site_url`.

The site uses these paths relative to the page that links them, so it works under any
GitHub Pages path; emails and feeds, read elsewhere, get absolute http(s) addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from urllib.parse import urlsplit

from digest.formats import OUTPUT_FORMATS
from digest.periods import Period, PeriodKind

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
