"""The plain data that crosses stage boundaries: frozen dataclasses only.

Nothing here does I/O or knows about SQLite, HTTP, templates or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from digest.formats import format_names
from digest.periods import Period


class DigestState(StrEnum):
    """How far a saved digest got (`lifecycle` decides every change of it)."""

    BUILT = "built"  # saved; nothing of it has reached anyone
    DELIVERED = "delivered"  # a feed published it, or an email of it was accepted
    FAILED = "failed"  # every email of it failed for good: its papers come back


class DeliveryState(StrEnum):
    """One ledger row's state (`lifecycle` decides every change of it)."""

    PENDING = "pending"  # to send
    SENDING = "sending"  # handed to the server, its answer not yet recorded
    SENT = "sent"
    FAILED = "failed"  # refused for good
    SKIPPED = "skipped"  # unsubscribed
    ROLLED_UP = "rolled-up"  # not sent on its own: its papers went into a "what you missed" message instead


class TransportKind(StrEnum):
    """How an email goes out: over SMTP, or as an `.eml` file in the outbox folder."""

    SMTP = "smtp"
    OUTBOX = "outbox"


class Cadence(StrEnum):
    """How often a reader gets a profile's email: each digest, or a roll-up of a week or a month."""

    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class EmptyReason(StrEnum):
    """Why a digest has no papers."""

    NO_NEW_PAPERS = "no-new-papers"
    BELOW_THRESHOLD = "below-threshold"


@dataclass(frozen=True, slots=True)
class Organization:
    """The organisation that submitted a paper to the listing ("openbmb OpenBMB")."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One paper as one source showed it (a dump entry, or one API item).

    `line` is where the entry starts in its file (1-based); for a JSON API response, which
    has no meaningful lines, it is the item's position in the response's list (1-based).
    `ai_summary` and `ai_keywords` are what Hugging Face's model wrote about the paper (the
    API gives them for some papers; text dumps never do).
    """

    title: str
    abstract: str
    authors_count: int | None = None
    organization: Organization | None = None
    published: date | None = None
    upvotes: int | None = None
    line: int = 0
    arxiv_id: str | None = None
    authors: tuple[str, ...] = ()
    url: str | None = None
    comments: int | None = None
    published_at: datetime | None = None
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one part of an input: reported as `source:line: message`.

    Inputs without lines (a JSON API response) name the item instead: `source:item N: message`.
    """

    source: str
    line: int
    message: str
    item: int = 0

    def __str__(self) -> str:
        if self.item:
            return f"{self.source}:item {self.item}: {self.message}"
        return f"{self.source}:{self.line}: {self.message}" if self.line else f"{self.source}: {self.message}"


@dataclass(frozen=True, slots=True)
class Dump:
    """One listing day from one source: its date and the entries it showed.

    `year_inferred` is False when the year came from the caller (`--year`) or the source.
    `problems` are entries that were skipped; the rest of the dump is still good.
    """

    source: str
    date: date
    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...] = ()
    year_inferred: bool = False
    kind: str = field(kw_only=True)  # which source read it (`digest.ingest.SOURCES`)


@dataclass(frozen=True, slots=True)
class Paper:
    """A paper as the store knows it: one row however many dumps showed it.

    `id` is assigned when the paper is first stored and never changes (feed entry ids
    and delivery records derive from it). `upvotes` is what the latest dump showed;
    `first_seen`/`last_seen` are the dates of the earliest and latest dumps that showed it.
    `ai_summary` and `ai_keywords` are Hugging Face's machine-written summary and keywords,
    when a source gave them (the ranker reads them as more text about the paper).
    """

    id: str
    title: str
    abstract: str
    authors_count: int | None
    organization: Organization | None
    published: date | None
    upvotes: int | None
    first_seen: date
    last_seen: date
    sightings: int
    arxiv_id: str | None = None
    authors: tuple[str, ...] = ()
    url: str | None = None
    comments: int | None = None
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Keyword:
    term: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Profile:
    """One reader's interests and how they want their digest (validated by `profiles`)."""

    id: str
    title: str
    description: str = ""
    keywords: tuple[Keyword, ...] = ()
    exclude: tuple[str, ...] = ()
    liked: tuple[str, ...] = ()
    follow: tuple[str, ...] = ()  # organisation ids
    follow_authors: tuple[str, ...] = ()  # author names, as the profile spells them
    max_items: int = 10
    min_score: float = 0.15
    # Addresses are left out of a profile's repr (logs, page stamps: `render.stamps`).
    subscribers: tuple[str, ...] = field(default=(), repr=False)
    schedule: str = "0 7 * * *"
    timezone: str = "UTC"
    formats: tuple[str, ...] = field(default_factory=format_names)  # every registered format
    # Where the profile is written (for messages), not what it is: left out of its repr, so
    # a page's stamp (`render.stamps`) does not change when a line is added above it.
    line: int = field(default=0, repr=False)
    # The line of each key written in its table, as (key, line) pairs: `line_of`.
    key_lines: tuple[tuple[str, int], ...] = field(default=(), repr=False)
    open: bool = False  # readers may subscribe themselves through the web side
    # Whose votes the profile's feeds and site follow (see `readers.owner_address`).
    owner: str | None = field(default=None, repr=False)
    # How often its subscribers get email by default: each digest, or a weekly or monthly roll-up.
    cadence: Cadence = Cadence.DAILY
    # The subscribers (of `subscribers`) who chose their own cadence, as (address, cadence) pairs.
    subscriber_cadences: tuple[tuple[str, Cadence], ...] = field(default=(), repr=False)

    def line_of(self, key: str) -> int:
        """The line `key` is written on, or the profile's own line when it is not written."""
        return dict(self.key_lines).get(key, self.line)


class ReasonKind(StrEnum):
    """What a reason points at. `templates/reasons.txt` words each kind; `REASON_FIELDS` says
    which fields of a `Reason` each kind uses.

    A new kind is a value here, its fields in `REASON_FIELDS` (new fields get a default on
    `Reason`) and a branch of the macro.
    """

    KEYWORDS = "keywords"  # the profile's keywords, found as whole phrases in the title or abstract
    DESCRIPTION = "description"  # close to the description and keywords (in words, or in meaning)
    LIKED = "liked"  # close to one of the profile's liked papers
    FOLLOWED = "followed"  # from an organisation the profile follows
    FOLLOWED_AUTHOR = "followed-author"  # written by an author the profile follows
    UPVOTES = "upvotes"  # the listing's upvotes
    MORE_LIKE_THIS = "more-like-this"  # close to papers the reader marked "more like this"
    LESS_LIKE_THIS = "less-like-this"  # pushed down: close to papers the reader marked "less like this"
    LEGACY = "legacy"  # a reason an older version stored as words: shown as it was


class PaperPart(StrEnum):
    TITLE = "title"
    ABSTRACT = "abstract"


@dataclass(frozen=True, slots=True)
class Reason:
    """One piece of evidence for a score, as data; its words come from `templates/reasons.txt`.

    Only the fields its kind uses (`REASON_FIELDS`) mean anything; the others keep their
    defaults. `terms` are the keywords matched (KEYWORDS) or the words shared with the
    description, best first (DESCRIPTION); `where` is the part of the paper the keywords
    are in; `semantic` says the description matched by meaning (the embedding extra);
    `paper_id` and `title` name the liked paper (or the closest voted one);
    `organization` is the followed organisation's name; `count` the upvotes, or how many
    voted papers are close; `most_of_day` whether no paper of the same listing day had
    more; `text` the words of a LEGACY reason; `author` the followed author's name, as the
    paper gives it.
    """

    kind: ReasonKind
    terms: tuple[str, ...] = ()
    where: PaperPart | None = None
    semantic: bool = False
    paper_id: str = ""
    title: str = ""
    organization: str = ""
    count: int = 0
    most_of_day: bool = False
    text: str = ""
    author: str = ""


REASON_FIELDS: dict[ReasonKind, tuple[str, ...]] = {
    ReasonKind.KEYWORDS: ("terms", "where"),
    ReasonKind.DESCRIPTION: ("terms", "semantic"),
    ReasonKind.LIKED: ("paper_id", "title"),
    ReasonKind.FOLLOWED: ("organization",),
    ReasonKind.FOLLOWED_AUTHOR: ("author",),
    ReasonKind.UPVOTES: ("count", "most_of_day"),
    ReasonKind.MORE_LIKE_THIS: ("paper_id", "title", "count"),
    ReasonKind.LESS_LIKE_THIS: ("paper_id", "title", "count"),
    ReasonKind.LEGACY: ("text",),
}


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One reader of a profile's emails, as the application sees them (`App.subscribers`):
    named in `digest.toml`, or subscribed through the web side (`web`).

    `id` is their opaque subscriber id once the web side knows them (never an address);
    `paused_until` the first day they get emails again after a pause; `max_items` their
    own number of papers (None: the profile's).
    """

    address: str
    cadence: Cadence = Cadence.DAILY
    id: str | None = None
    paused_until: date | None = None
    max_items: int | None = None
    web: bool = False


class VoteKind(StrEnum):
    """What a reader said about one paper of a digest."""

    MORE = "more"  # more like this: joins the liked papers
    LESS = "less"  # less like this: pushes look-alikes down
    MUTE = "mute"  # leave out the paper's organisation


@dataclass(frozen=True, slots=True)
class Votes:
    """What one reader said about a profile's papers, as the ranker reads it (papers resolved
    by the caller): "more like this" papers count as liked ones, "less like this" papers
    push similar papers down, and papers of a muted organisation are left out."""

    more: tuple[Paper, ...] = ()
    less: tuple[Paper, ...] = ()
    muted: tuple[str, ...] = ()  # organisation ids

    def __bool__(self) -> bool:
        return bool(self.more or self.less or self.muted)


@dataclass(frozen=True, slots=True)
class ScoredPaper:
    """A paper with its score for one profile, in [0, 1], and why it got it."""

    paper: Paper
    score: float
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class Digest:
    """One profile's digest for one day.

    `items` are the recommended papers, best first. When `items` is empty, `empty_reason`
    says why and `runners_up` holds the best papers below the threshold, for the site to
    show as such. `own` marks a reader's own digest (`readers`): ranked with that reader's
    votes, not the profile owner's, so its vote reasons are the reader's.
    """

    profile: Profile
    date: date
    items: tuple[ScoredPaper, ...]
    built_at: datetime
    candidates: int = 0
    empty_reason: EmptyReason | None = None
    runners_up: tuple[ScoredPaper, ...] = field(default=())
    own: bool = field(default=False, repr=False)


@dataclass(frozen=True, slots=True)
class DigestEntry:
    """One paper a profile was given, with the digest it came in: a feed entry's data.

    `day` and `built_at` are the digest's; `built_at` is always time-zone aware.
    """

    profile_id: str
    day: date
    built_at: datetime
    item: ScoredPaper


@dataclass(frozen=True, slots=True)
class Rollup:
    """One profile's roll-up of a period (a week, a month, or the days a reader missed).

    `items` are shown in full, best first (at most `max_items`); `also` are the next best,
    shown by title ("also this week"). `considered` papers were ranked, `above` of them
    scored at least `min_score`. Built for everyone (feeds, site, Markdown), or for one
    subscriber: then the papers they were already sent are left out of all four. When
    nothing is above the threshold, `runners_up` holds the best papers below it.
    """

    profile: Profile
    period: Period
    items: tuple[ScoredPaper, ...]
    also: tuple[ScoredPaper, ...]
    built_at: datetime
    considered: int
    above: int
    runners_up: tuple[ScoredPaper, ...] = ()
