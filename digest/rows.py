"""The named rows the store hands out and takes in: frozen dataclasses and named tuples.

Plain data: nothing here touches SQL or decides anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import NamedTuple

from digest.models import Cadence, DeliveryState, DigestState, EmptyReason, TransportKind, VoteKind
from digest.periods import Period


@dataclass(frozen=True, slots=True)
class Duplicate:
    """An entry of a dump that repeated an earlier entry of the same paper (and was skipped).

    Both are the entries' lines, or item numbers in a JSON response (`Entry.line`)."""

    line: int
    first: int


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What adding one dump did. `new` is False when its content was already stored."""

    new: bool
    papers_new: int = 0
    papers_updated: int = 0
    duplicates: tuple[Duplicate, ...] = ()


@dataclass(frozen=True, slots=True)
class Validators:
    """What an HTTP server said identifies a response (for conditional requests)."""

    etag: str | None = None
    last_modified: str | None = None


class DeliveryKey(NamedTuple):
    """Which ledger row: one subscriber's copy of one profile's digest for one day, or of its
    roll-up of a `period` (`2025-W52`, `2025-12`, the days they missed): then `day` is the
    period's last day."""

    profile_id: str
    day: date
    subscriber: str
    period: str = ""


class Accepted(NamedTuple):
    """A message the transport accepted (`Store.mark_deliveries_sent`): when, and whether the
    attempt was counted already (`mark_delivery_sending`)."""

    key: DeliveryKey
    at: datetime
    counted: bool = True


@dataclass(frozen=True, slots=True)
class Delivery:
    """One ledger row: one subscriber's copy of one profile's digest for one day, or of a
    roll-up (`period`, see `DeliveryKey`).

    `possible_duplicate` is set when the message was sent again after an attempt whose
    outcome was unknown, and `note` says when and why.
    """

    profile_id: str
    day: date
    subscriber: str
    transport: TransportKind
    state: DeliveryState
    attempts: int
    message_id: str
    last_error: str | None
    possible_duplicate: bool
    note: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    period: str = ""

    @property
    def key(self) -> DeliveryKey:
        return DeliveryKey(self.profile_id, self.day, self.subscriber, self.period)


@dataclass(frozen=True, slots=True)
class DigestStatus:
    """How far a saved digest got: what decides whether it may still be rebuilt
    (`lifecycle.digest_is_final`).

    `reached_someone`: an email of it is 'sent' or 'sending', or may have reached its
    reader (a possible duplicate). `later_digest`: the profile has a digest of a later day.
    `watermark`: the newest dump it was built from.
    """

    state: DigestState
    watermark: int
    reached_someone: bool
    later_digest: bool


@dataclass(frozen=True, slots=True)
class PreviousDigest:
    """A profile's digest before the day being built: what makes a paper "new" since it."""

    day: date
    watermark: int


@dataclass(frozen=True, slots=True)
class Unsubscription:
    """An address that asked to stop: for one profile, or for all (`profile_id` None)."""

    address: str
    profile_id: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class LastBuilt:
    """A profile's newest digest: its day, when it was built, how many papers it gave."""

    day: date
    at: datetime
    papers: int


@dataclass(frozen=True, slots=True)
class LastEvent:
    """The digest day and the moment of a profile's latest publication (feed or accepted email)."""

    day: date
    at: datetime


@dataclass(frozen=True, slots=True)
class LastMailed:
    """A profile's latest email accepted: its digest day, when, and over what."""

    day: date
    at: datetime
    transport: TransportKind


@dataclass(frozen=True, slots=True)
class ProfileActivity:
    """What `digest status` reads from the store about one profile."""

    profile_id: str
    built: LastBuilt | None
    published: LastEvent | None
    mailed: LastMailed | None
    emails_pending: int
    emails_failed: int


@dataclass(frozen=True, slots=True)
class PruneCounts:
    """What `Store.prune` deleted (or, in a dry run, would delete)."""

    deliveries: int
    fetches: int


@dataclass(frozen=True, slots=True)
class WebSubscription:
    """An address subscribed to a profile through the web side, once it confirmed."""

    profile_id: str
    reader_id: str
    address: str
    confirmed_at: datetime


@dataclass(frozen=True, slots=True)
class PendingConfirmation:
    """A subscription asked for and not confirmed yet: its link works until `expires_at`."""

    profile_id: str
    reader_id: str
    requested_at: datetime
    expires_at: datetime


class Confirmed(StrEnum):
    """What confirming a subscription did."""

    SUBSCRIBED = "subscribed"
    ALREADY = "already"  # confirmed before: nothing changed
    UNKNOWN = "unknown"  # no such request (used, replaced by a newer one, or never made)


@dataclass(frozen=True, slots=True)
class VoteRecord:
    """One vote of one reader on one paper of a profile; `undone_at` when it was taken back.

    `organization` is the paper's organisation id when the vote is a mute."""

    profile_id: str
    reader_id: str
    address: str
    paper_id: str
    kind: VoteKind
    organization: str | None
    at: datetime
    undone_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.undone_at is None


@dataclass(frozen=True, slots=True)
class ReaderPreferences:
    """What a reader chose for one profile on the web side; None: as the profile says."""

    paused_until: date | None = None
    max_items: int | None = None
    cadence: Cadence | None = None


@dataclass(frozen=True, slots=True)
class PersonalDigest:
    """Which build of a profile's digest a reader's own digest of that day was made from
    (`source_watermark`: the profile digest's watermark then)."""

    profile_id: str
    day: date
    reader_id: str
    source_watermark: int


@dataclass(frozen=True, slots=True)
class CarriedPaper:
    """A paper one of a subscriber's ledger rows carries (a daily digest's item, or a paper
    their roll-up email listed), with that row's state and the paper's first listing day."""

    paper_id: str
    first_seen: date
    day: date
    period: str
    state: DeliveryState
    possible_duplicate: bool


@dataclass(frozen=True, slots=True)
class DigestRecord:
    """One digest of a profile as its archive lists it, and its version: a text that changes
    whenever the digest, or a paper it shows, changes (`Store.digest_records`)."""

    day: date
    version: str
    papers: int  # its items
    empty_reason: EmptyReason | None
    candidates: int


@dataclass(frozen=True, slots=True)
class RollupRecord:
    """One weekly or monthly roll-up of a profile as its archive lists it, and its version
    (as `DigestRecord`'s; `Store.rollup_records`)."""

    period: Period
    version: str
    papers: int  # the papers it shows in full
    considered: int
