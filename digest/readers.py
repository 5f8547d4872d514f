"""The rules about readers that the web side brings: who reads a profile, whose votes count, who
gets a digest of their own, pauses, confirmations and rate limits.

- **Subscribers** are `digest.toml`'s addresses, then the addresses confirmed on the web
  side, each once (compared without regard to case), with the preferences they chose.
- **The owner** of a profile is its `owner` address, else the one address its
  `digest.toml` `subscribers` list when it lists exactly one, else nobody. A profile's
  own digest (its feeds, its site pages, and the emails of readers without votes) is
  ranked with the owner's votes; a reader who subscribed on the web never becomes the
  owner, so strangers never steer a public feed.
- **A digest of one's own.** A reader whose votes (other than the owner's, which the
  profile's digest already follows) or whose own number of papers make their digest
  differ gets one: the profile's candidates of that day, ranked with their votes and cut
  at their number. Whether a reader gets one is decided when their email of the day is
  first due, and the digest is stored, so a retry or resend sends the same message.
- **Votes.** "More like this" and "less like this" on the same paper replace each other;
  a mute covers the paper's organisation; a second press changes nothing.
- **Pauses** run until a day: no email from the day the pause is saved to the day before
  `paused_until`.
- **Confirmations** expire after `CONFIRMATION_HOURS`; rate limits count requests per
  client, per address and overall, in fixed windows.

Pure: plain data in, decisions out; nothing here reads the store, the clock or the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from digest.models import Cadence, DeliveryState, Paper, Profile, Subscriber, VoteKind, Votes
from digest.rows import Delivery, ReaderPreferences, VoteRecord, WebSubscription
from digest.tokens import Action, Token

CONFIRMATION_HOURS = 48
MAX_PAUSE_WEEKS = 52
PAGE_DAYS = 14  # digests shown on a reader's private page and feed


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` requests in each window of `seconds`."""

    name: str
    limit: int
    seconds: int

    def window(self, now: datetime) -> int:
        return int(now.timestamp()) // self.seconds


# Per client (its address as the server sees it): subscribe forms sent. Per address:
# confirmation emails to one mailbox, so the form cannot bomb a stranger. Overall:
# confirmation emails an hour, so a crowd of clients cannot either.
CLIENT_LIMIT = RateLimit("client", 10, 3600)
ADDRESS_LIMIT = RateLimit("address", 3, 86_400)
OVERALL_LIMIT = RateLimit("overall", 300, 3600)
SUBADDRESS = "+"  # what most mail services read as "the same mailbox, a tag after this"


def mailbox_of(address: str) -> str:
    """The mailbox `ADDRESS_LIMIT` counts for an address: lower-cased, a `+tag` of the local
    part left out (`ada+1@example.org` and `Ada+2@example.org` reach one inbox)."""
    local, _, domain = address.lower().rpartition("@")
    return f"{local.split(SUBADDRESS, 1)[0] or local}@{domain}"


@dataclass(frozen=True, slots=True)
class Link:
    """A link a reader followed, checked: its token, the profile and reader it names (the
    reader's address), and the paper when it names one."""

    token: Token
    profile: Profile
    address: str
    paper: Paper | None = None

    @property
    def reader_id(self) -> str:
        return self.token.subscriber_id

    @property
    def vote(self) -> VoteKind | None:
        """The vote the link casts, if it is a vote link."""
        return VOTES.get(self.token.action)


VOTES = {Action.MORE: VoteKind.MORE, Action.LESS: VoteKind.LESS, Action.MUTE: VoteKind.MUTE}


class Requested(StrEnum):
    """What asking to subscribe did (the page says the same for SENT and QUIET, so nobody
    learns from it whether an address is subscribed)."""

    SENT = "sent"  # the confirmation email went out (or, from `ask_subscription`, is to go out)
    QUIET = "quiet"  # nothing sent: already subscribed, or this address asked too often
    BUSY = "busy"  # this client (or everybody together) asked too often: try later
    INVALID = "invalid"  # not an email address
    CLOSED = "closed"  # no such profile open for subscription
    FAILED = "failed"  # the confirmation email could not be sent


class Confirmation(StrEnum):
    """Where a confirmation link stands."""

    WAITING = "waiting"  # the request is there: a POST confirms it
    SUBSCRIBED = "subscribed"  # confirmed now
    ALREADY = "already"  # confirmed before (a second press)
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # used, replaced by a newer request, or never made


def owner_address(profile: Profile) -> str | None:
    """Whose votes the profile's own digest follows (see the module docstring)."""
    if profile.owner:
        return profile.owner
    return profile.subscribers[0] if len(profile.subscribers) == 1 else None


def is_owner(profile: Profile, address: str) -> bool:
    """Whether `address` is the profile's owner (compared without regard to case): its
    digest's votes, and their reasons, are that reader's own."""
    owner = owner_address(profile)
    return owner is not None and owner.lower() == address.lower()


def merge_subscribers(
    listed: Sequence[str],
    web: Sequence[WebSubscription],
    ids: Mapping[str, str],
    preferences: Mapping[str, ReaderPreferences],
    *,
    cadences: Mapping[str, Cadence] | None = None,
    default: Cadence = Cadence.DAILY,
) -> list[Subscriber]:
    """`digest.toml`'s addresses, then the web subscriptions not among them, each once, with
    their id (`ids`, by address as written) and preferences (by reader id). A cadence is the
    one chosen on the web side, else the one `digest.toml` gives the address (`cadences`, by
    lower-cased address), else the profile's (`default`)."""
    listed_cadences = cadences or {}
    found: dict[str, Subscriber] = {}
    for address in listed:
        own = listed_cadences.get(address.lower(), default)
        found.setdefault(address.lower(), _subscriber(address, ids.get(address), preferences, own, web=False))
    for subscription in web:
        found.setdefault(
            subscription.address.lower(),
            _subscriber(subscription.address, subscription.reader_id, preferences, default, web=True),
        )
    return list(found.values())


def _subscriber(
    address: str,
    reader_id: str | None,
    preferences: Mapping[str, ReaderPreferences],
    cadence: Cadence,
    *,
    web: bool,
) -> Subscriber:
    chosen = preferences.get(reader_id, ReaderPreferences()) if reader_id else ReaderPreferences()
    return Subscriber(
        address=address,
        cadence=chosen.cadence or cadence,
        id=reader_id,
        paused_until=chosen.paused_until,
        max_items=chosen.max_items,
        web=web,
    )


def is_paused(subscriber: Subscriber, day: date) -> bool:
    return subscriber.paused_until is not None and day < subscriber.paused_until


def pause_until(today: date, weeks: int) -> date | None:
    """The first day of emails again after a pause of `weeks` from `today` (0: no pause)."""
    return today + timedelta(weeks=weeks) if weeks > 0 else None


def confirmation_expiry(now: datetime) -> datetime:
    """When a confirmation link made now stops working (whole seconds: the token carries them)."""
    return now.astimezone(UTC).replace(microsecond=0) + timedelta(hours=CONFIRMATION_HOURS)


def reader_votes(records: Iterable[VoteRecord], papers: Mapping[str, Paper]) -> Votes:
    """The active votes of one reader as the ranker reads them (papers resolved by `papers`)."""
    more: list[Paper] = []
    less: list[Paper] = []
    muted: list[str] = []
    for record in records:
        if not record.active:
            continue
        if record.kind == VoteKind.MUTE:
            if record.organization and record.organization not in muted:
                muted.append(record.organization)
        elif record.paper_id in papers:
            (more if record.kind == VoteKind.MORE else less).append(papers[record.paper_id])
    return Votes(more=tuple(more), less=tuple(less), muted=tuple(muted))


def replaced_by(kind: VoteKind) -> tuple[VoteKind, ...]:
    """The votes on the same paper that a new vote of `kind` takes back."""
    return {VoteKind.MORE: (VoteKind.LESS,), VoteKind.LESS: (VoteKind.MORE,)}.get(kind, ())


def wants_own_digest(profile: Profile, votes: Votes, max_items: int | None, *, owner: bool) -> bool:
    """Whether a reader's digest differs from the profile's: their votes (unless they are the
    owner, whose votes the profile's digest follows) or their own number of papers."""
    return (bool(votes) and not owner) or (max_items is not None and max_items != profile.max_items)


def may_choose_digest(row: Delivery | None) -> bool:
    """Whether which digest a reader's email of a day carries may still be chosen: nothing of
    it was tried yet. Once a try was made, a retry sends what that try rendered."""
    return row is None or (row.state == DeliveryState.PENDING and row.attempts == 0 and not row.possible_duplicate)


__all__ = [
    "ADDRESS_LIMIT",
    "CLIENT_LIMIT",
    "CONFIRMATION_HOURS",
    "MAX_PAUSE_WEEKS",
    "OVERALL_LIMIT",
    "PAGE_DAYS",
    "VOTES",
    "Confirmation",
    "Link",
    "RateLimit",
    "Requested",
    "confirmation_expiry",
    "is_owner",
    "is_paused",
    "may_choose_digest",
    "merge_subscribers",
    "owner_address",
    "pause_until",
    "reader_votes",
    "replaced_by",
    "wants_own_digest",
]
