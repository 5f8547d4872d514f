"""Which emails are due: one per subscriber of each digest, and the ledger's say on each.

An email is due until its ledger row is done (`lifecycle.is_done`); a digest's emails are
due until each is done or its subscriber unsubscribed (`lifecycle.emails_done`). Emails
still unsent `RETRY_DAYS` after their digest's day (a roll-up's: its period's last day) are
given up, so the papers of a digest nobody got come back in the next digest. This module
reads the ledger and records give-ups; it never sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from functools import partial

from digest.formats import FormatKind, wants
from digest.lifecycle import DONE_STATES, emails_done, is_done
from digest.models import DeliveryState, Digest, Profile, Rollup, TransportKind
from digest.rows import DeliveryKey
from digest.store import Store

log = logging.getLogger(__name__)

RETRY_DAYS = 7  # an email not accepted this many days after its digest's day is given up


@dataclass(frozen=True, slots=True)
class Prepared:
    """A message made before the batch reached it (by a worker process), for one Message-ID:
    its bytes as they go on the wire and its From, or why it could not be made (`error`)."""

    message_id: str
    payload: bytes = b""
    sender: str = ""  # the message's From header
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One subscriber's copy of one profile's digest for one day, or of its roll-up of a
    `period` (then `day` is the period's last day; see `DeliveryKey`).

    `render(message_id)` returns the message to send; it is called only when the message
    is actually due, with the ledger's Message-ID (the same on every retry). `prepared`,
    when it was made for the ledger's Message-ID, is sent instead of calling `render`.
    """

    profile_id: str
    day: date
    subscriber: str
    render: Callable[[str], EmailMessage | None]
    period: str = ""
    prepared: Prepared | None = None
    digest: Digest | Rollup | None = None  # what `render` renders, for a renderer in another process

    @property
    def key(self) -> DeliveryKey:
        return DeliveryKey(self.profile_id, self.day, self.subscriber, self.period)


@dataclass(frozen=True, slots=True)
class Planned:
    """What `send_digests` would do with one outgoing message (`digest send --dry-run`)."""

    outgoing: Outgoing
    state: str  # 'new', a ledger state, or 'unsubscribed'
    message_id: str | None

    @property
    def to_send(self) -> bool:
        return self.state in ("new", DeliveryState.PENDING, DeliveryState.SENDING)


def sends_email(digest: Digest) -> bool:
    """Whether a digest has emails at all: papers, and a profile that asks for email."""
    return bool(digest.items) and wants(digest.profile.formats, FormatKind.EMAIL)


Audience = Callable[[Profile], Sequence[str]]
"""Who gets a profile's digest emails (`App.audience`); by default its `subscribers`."""


def profile_subscribers(profile: Profile) -> Sequence[str]:
    return profile.subscribers


def outgoing_emails(
    digests: Sequence[Digest],
    render: Callable[[Digest, str, str], EmailMessage | None],
    audience: Audience = profile_subscribers,
) -> list[Outgoing]:
    """One `Outgoing` per address of each digest that sends email (`sends_email`), to its
    profile's `audience`.

    `render(digest, subscriber, message_id)` makes the message, e.g. a call of
    `render_email(digest, subscriber=..., sender=..., message_id=..., ...)`.
    """
    return [
        Outgoing(digest.profile.id, digest.date, subscriber, partial(render, digest, subscriber), digest=digest)
        for digest in digests
        if sends_email(digest)
        for subscriber in audience(digest.profile)
    ]


def digest_emails_done(
    store: Store, digest: Digest, transport: TransportKind, audience: Audience = profile_subscribers
) -> bool:
    """True when no email of `digest` is still to go to its profile's `audience` (an empty
    digest, or a profile without email, has none)."""
    if not sends_email(digest):
        return True
    profile = digest.profile
    addresses = audience(profile)
    rows = {row.subscriber: row for row in store.deliveries(day=digest.date, profile_id=profile.id, period="")}
    return emails_done(
        addresses,
        rows,
        transport=transport,
        unsubscribed=store.unsubscribed(addresses, profile.id),
        digest_state=store.digest_state(profile.id, digest.date),
    )


def due_digests(
    store: Store,
    profiles: Sequence[Profile],
    *,
    today: date,
    transport: TransportKind,
    day: date | None = None,
    days: int = RETRY_DAYS,
    audience: Audience = profile_subscribers,
) -> list[Digest]:
    """Built digests whose emails are still to go: of `day`, or of the `days` days up to `today`, oldest first."""
    found = []
    for profile in profiles:
        for built in store.digest_days(profile.id):
            in_range = built == day if day is not None else today - timedelta(days=days) < built <= today
            digest = store.load_digest(profile, built) if in_range else None
            if digest is not None and not digest_emails_done(store, digest, transport, audience):
                found.append(digest)
    return sorted(found, key=lambda d: d.date)


def with_earlier_due(
    store: Store, digests: Sequence[Digest], *, transport: TransportKind, audience: Audience = profile_subscribers
) -> list[Digest]:
    """`digests`, after their profiles' earlier digests whose emails are still due (left
    pending by a failed run): each scheduled run also finishes what an earlier one could not."""
    found: dict[tuple[str, date], Digest] = {}
    for digest in digests:
        for earlier in due_digests(store, [digest.profile], today=digest.date, transport=transport, audience=audience):
            found.setdefault((earlier.profile.id, earlier.date), earlier)
    for digest in digests:
        found.setdefault((digest.profile.id, digest.date), digest)
    return sorted(found.values(), key=lambda d: d.date)


def give_up_stale_emails(
    store: Store,
    profiles: Sequence[Profile],
    *,
    today: date,
    at: datetime,
    transport: TransportKind,
    days: int = RETRY_DAYS,
) -> list[tuple[DeliveryKey, str]]:
    """Mark 'failed' every email still unsent `days` days after its digest's day.

    A digest that nothing delivered then becomes 'failed' too (`lifecycle.state_after_emails`),
    so its papers come back in the profile's next digest instead of waiting forever.
    Returns the emails given up, with why: the caller counts them as failed.
    """
    given_up = []
    last_day = today - timedelta(days=days)
    for profile in profiles:
        rows = store.deliveries(profile_id=profile.id)  # one read per profile, not one per day
        stale = [r for r in rows if r.day <= last_day and not is_done(r, transport)]
        for row in stale:
            error = f"not accepted within {days} days: given up"
            if row.state == DeliveryState.SENDING:  # a process died handing it over, and no run resumed it
                error = f"left half-sent by a process that died, and not confirmed within {days} days: given up"
            store.record_delivery_attempt(row.key, DeliveryState.FAILED, at, error=error, counted=True)
            log.warning("%s %s %s: %s", profile.id, row.day, row.subscriber, error)
            given_up.append((row.key, error))
        for day in dict.fromkeys(row.day for row in stale if not row.period):
            store.settle_digest(profile.id, day, at)
    return given_up


def plan_deliveries(store: Store, outgoing: Sequence[Outgoing], transport: TransportKind) -> list[Planned]:
    """The state of each message in the ledger, changing nothing."""
    plans = []
    for item in outgoing:
        row = store.get_delivery(item.key)
        state: str = "new" if row is None else (DeliveryState.PENDING if not is_done(row, transport) else row.state)
        if state not in DONE_STATES and store.is_unsubscribed(item.subscriber, item.profile_id):
            state = "unsubscribed"
        plans.append(Planned(item, state, row.message_id if row else None))
    return plans
