"""The life of a digest and of each of its emails: every rule that decides a state, in one place.

A digest is `built`, then `delivered` (a feed published it or an email of it was
accepted) or `failed` (every email failed for good: its papers come back). Each email is
one ledger row: `pending`, `sending` (handed to the server, its answer not recorded yet),
then `sent`, `failed` (refused for good), `skipped` (unsubscribed) or `rolled-up` (a
daily email that was not sent on its own: its papers went into a "what you missed"
message). The rules here decide what a digest considers, what to do next with a ledger
row, when a digest's emails are done, what a digest becomes after its emails, whether a
saved digest is final or may still be rebuilt, which roll-ups are due, which papers a
subscriber counts as sent, and when stale daily emails become one catch-up message.

Pure: states, rows and dates in, decisions out. The store saves states and asks here
what they become; nothing here reads the store, the clock or the network.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from digest.cron import DEFAULT_GRACE, profile_trigger
from digest.models import Cadence, DeliveryState, DigestState, Profile, TransportKind
from digest.periods import Period, PeriodKind, parse_period, period_of
from digest.rows import Delivery, DeliveryKey, DigestStatus, PreviousDigest

DONE_STATES = frozenset({DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.SKIPPED, DeliveryState.ROLLED_UP})


# -- what a digest considers -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CandidateFacts:
    """What the candidate rule looks at for one paper and one profile.

    `given`: the paper was an item of a digest of another day that was (or is still being)
    delivered. `returned`: it was an item of a digest whose delivery failed for good.
    `first_dump`: the sequence number of the first dump that showed it.
    """

    first_seen: date
    first_dump: int
    given: bool = False
    returned: bool = False


def is_candidate(paper: CandidateFacts, day: date, previous: PreviousDigest | None) -> bool:
    """Whether a new digest for `day` considers the paper.

    It must be listed on or before `day`; not given to the profile in a digest of another
    day (the day's own digest does not count: a rebuild considers its papers again); and
    new since the profile's previous digest: listed after its day, or stored after it was
    built (a late or back-filled dump). Papers of a digest whose delivery failed come back.
    """
    if paper.first_seen > day or paper.given:
        return False
    if previous is None or paper.returned:
        return True
    return paper.first_seen > previous.day or paper.first_dump > previous.watermark


def previous_digest(digests: Iterable[PreviousDigest], day: date) -> PreviousDigest | None:
    """The profile's latest digest before `day` (of any state): papers are new since it."""
    earlier = [d for d in digests if d.day < day]
    return max(earlier, key=lambda d: d.day, default=None)


# -- what to do with a ledger row --------------------------------------------------------------


class Step(StrEnum):
    """What a sender does next with one ledger row."""

    DONE = "done"  # nothing more: sent, refused for good or unsubscribed
    SKIP = "skip"  # the subscriber unsubscribed: record it, send nothing
    REOPEN = "reopen"  # only written to the outbox, now SMTP is configured: send it over SMTP
    RESUME = "resume"  # left 'sending' by a process that died: send again, flagged a possible duplicate
    LEAVE = "leave"  # due over SMTP, and this run has none: left pending for one that has
    SEND = "send"


def is_preview(row: Delivery, transport: TransportKind) -> bool:
    """A message only written to the outbox while SMTP is configured (a run without --send):
    a preview, still to go over SMTP (`store.profile_activity` counts these in SQL)."""
    return transport == TransportKind.SMTP and row.transport == TransportKind.OUTBOX and row.state == DeliveryState.SENT


def is_done(row: Delivery, transport: TransportKind) -> bool:
    """True when a ledger row needs nothing more over `transport`.

    A message only written to the outbox is not done once SMTP is configured: it is then
    sent over SMTP, with the same Message-ID. A message due over SMTP is never done by an
    outbox file: a run without SMTP (the publish workflow's build step, which holds no
    SMTP secret) leaves it pending for the next run that has SMTP.
    """
    if is_preview(row, transport):
        return False
    if transport == TransportKind.OUTBOX and row.transport == TransportKind.SMTP:
        return True
    return row.state in DONE_STATES


def next_step(row: Delivery, transport: TransportKind, *, unsubscribed: bool) -> Step:
    """What to do with `row` now (see `Step`)."""
    if transport == TransportKind.OUTBOX and row.transport == TransportKind.SMTP and row.state not in DONE_STATES:
        return Step.LEAVE
    if is_done(row, transport):
        return Step.DONE
    if unsubscribed:
        return Step.SKIP
    if row.state == DeliveryState.SENT:
        return Step.REOPEN
    if row.state == DeliveryState.SENDING:
        return Step.RESUME
    return Step.SEND


def emails_done(
    subscribers: Iterable[str],
    rows: Mapping[str, Delivery],
    *,
    transport: TransportKind,
    unsubscribed: Collection[str],
    digest_state: DigestState | None = None,
) -> bool:
    """True when no email of a digest is still to go: each subscriber's row is done, or the
    subscriber unsubscribed; or the digest failed for good (its papers come back instead)."""
    if digest_state == DigestState.FAILED:
        return True
    return all(
        (address in rows and is_done(rows[address], transport)) or address in unsubscribed for address in subscribers
    )


# -- what a digest becomes ----------------------------------------------------------------------


def state_after_acceptance(state: DigestState, *, delivers: bool) -> DigestState:
    """A digest's state once one of its emails was accepted: delivered from the first one on,
    unless the email does not deliver (an outbox preview while SMTP is configured)."""
    return DigestState.DELIVERED if delivers else state


def state_after_publishing(state: DigestState, *, has_items: bool, in_a_feed: bool) -> DigestState:
    """A digest's state once its outputs were written: a feed entry delivers its papers."""
    return DigestState.DELIVERED if has_items and in_a_feed else state


def state_after_emails(state: DigestState, rows: Collection[DeliveryState]) -> DigestState:
    """A digest's state once its emails ended: `failed` when nothing delivered it (still
    `built`) and every email of it ended without a send, so its papers come back."""
    if state != DigestState.BUILT or not rows:
        return state
    # A rolled-up email's papers went on in a "what you missed" message: they did not fail.
    unsent = {DeliveryState.PENDING, DeliveryState.SENDING, DeliveryState.SENT, DeliveryState.ROLLED_UP}
    return state if any(row in unsent for row in rows) else DigestState.FAILED


# -- whether a saved digest may still be rebuilt -------------------------------------------------


def digest_is_final(status: DigestStatus, *, now: datetime, deadline: datetime) -> bool:
    """Whether a saved digest stands for good, or is still open to papers that arrive late.

    A digest is final once anything of it may have reached a reader: a feed published its
    entries or an email was accepted (state 'delivered'), an email is 'sending' or may have
    arrived (a possible duplicate), or every email failed for good ('failed'). It is final
    too once the profile has a digest of a later day, and after `deadline`
    (`rebuild_deadline`): later papers go into the profile's next digest. Until then a
    digest that delivered nothing (an empty one, or one whose emails all still wait) is
    rebuilt when new papers for its day arrive: nobody saw it, so the new one, sent under
    the same Message-IDs, is still that day's digest delivered once, only fuller.
    """
    return not may_be_replaced(status) or now > deadline


def may_be_replaced(status: DigestStatus) -> bool:
    """Whether nothing of a saved digest can have reached anyone yet (the part of
    `digest_is_final` that does not depend on the time; the store checks it again inside
    the transaction that replaces a digest)."""
    return status.state == DigestState.BUILT and not status.reached_someone and not status.later_digest


def rebuild_deadline(profile: Profile, day: date, grace: timedelta = DEFAULT_GRACE) -> datetime:
    """Until when a digest of `day` that delivered nothing may still be rebuilt.

    The end of the day's catch-up window: its last tick plus `grace` (`[digest]
    catch_up_hours`), or the end of the day plus `grace` when the schedule has no tick that
    day; and never later than the profile's next tick, so one digest at most is open.
    """
    zone = ZoneInfo(profile.timezone)
    trigger = profile_trigger(profile)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=zone).astimezone(UTC)
    last = None
    tick = trigger.get_next_fire_time(None, start)
    while tick is not None and tick.astimezone(UTC) < end:
        last = tick
        tick = trigger.get_next_fire_time(tick, tick)
    closes = (last.astimezone(UTC) if last else end) + grace
    return min(closes, tick.astimezone(UTC)) if tick is not None else closes


# -- roll-ups ----------------------------------------------------------------------------------

ROLLUP_KINDS = (PeriodKind.WEEK, PeriodKind.MONTH)
PERIOD_CADENCE = {PeriodKind.WEEK: Cadence.WEEKLY, PeriodKind.MONTH: Cadence.MONTHLY, PeriodKind.MISSED: Cadence.DAILY}
CATCH_UP_FROM = 2  # stale daily emails of one reader that become one "what you missed" message


def due_periods(day: date) -> list[Period]:
    """The roll-ups due on a profile's tick of `day`: the week and the month that ended
    before the ones holding `day`. Each is due on every tick of the next period and built
    once, so the first tick of a new week (or month) builds it."""
    return [period_of(kind, day).previous() for kind in ROLLUP_KINDS]


def rollup_deadline(profile: Profile, period: Period, built_at: datetime, grace: timedelta = DEFAULT_GRACE) -> datetime:
    """Until when a roll-up of `period` is made for its readers on its own: the catch-up
    window (`grace`) of the profile's first tick after the period ended, or of the roll-up's
    build when that came later (a service that was down then). A reader whose copy was not
    made by then (they took this cadence later) gets none: their first roll-up is the next
    one, without what they were sent meanwhile. By hand (`digest build --period`), a
    roll-up is made for its readers whenever it is asked for."""
    following = period.last + timedelta(days=1)
    start = datetime(following.year, following.month, following.day, tzinfo=ZoneInfo(profile.timezone))
    tick = profile_trigger(profile).get_next_fire_time(None, start)
    return max((tick or start).astimezone(UTC), built_at.astimezone(UTC)) + grace


def row_cadence(period: str) -> Cadence:
    """The cadence of the readers a ledger row's email is for: a daily digest's and a "what
    you missed" message's go to daily readers, a week's or a month's roll-up to weekly or
    monthly ones."""
    return PERIOD_CADENCE[parse_period(period).kind] if period else Cadence.DAILY


def carries_papers(state: DeliveryState, possible_duplicate: bool, *, still_due: bool) -> bool:
    """Whether the papers of a subscriber's ledger row count as sent to them, so that no
    roll-up or catch-up offers them again.

    They do once the message may have reached them (sent, being sent, or a possible
    duplicate), and while it is on its way (pending) to a reader whose cadence still takes
    it (`still_due`). A row given up (failed), skipped (unsubscribed) or rolled up into
    another message carries nothing: its papers are offered again.
    """
    if possible_duplicate or state in (DeliveryState.SENT, DeliveryState.SENDING):
        return True
    return state == DeliveryState.PENDING and still_due


@dataclass(frozen=True, slots=True)
class Waiting:
    """One of a daily reader's emails still to go: a daily digest's (`row` None when not even
    its ledger row exists yet) or an earlier "what you missed" message's. `first` and `last`
    are the days it covers; after `deadline` it is stale."""

    key: DeliveryKey
    first: date
    last: date
    deadline: datetime
    row: Delivery | None = None


def may_have_arrived(row: Delivery | None, transport: TransportKind) -> bool:
    """A ledger row whose message may be with its reader already: it is resent as it is."""
    return row is not None and not nobody_got(row.state, row.possible_duplicate, row.transport, transport)


def nobody_got(
    state: DeliveryState, possible_duplicate: bool, written: TransportKind, transport: TransportKind
) -> bool:
    """Whether a ledger row's message cannot have reached its reader: it is still to go
    (pending), or it was only written to the outbox as a preview while it is to go over
    SMTP (`transport`); never a possible duplicate."""
    if possible_duplicate:
        return False
    preview = transport == TransportKind.SMTP and written == TransportKind.OUTBOX and state == DeliveryState.SENT
    return state == DeliveryState.PENDING or preview


def to_catch_up(waiting: Sequence[Waiting], now: datetime, transport: TransportKind) -> list[Waiting]:
    """The emails of one daily reader that go out as one "what you missed" message instead
    of a burst of stale mails: those stale at `now` (past their catch-up window, the rule
    `digest serve` runs a missed tick by) that cannot have arrived, when there are at least
    `CATCH_UP_FROM` of them. One stale email alone goes out as it is, late."""
    stale = [w for w in waiting if now > w.deadline and not may_have_arrived(w.row, transport)]
    return stale if len(stale) >= CATCH_UP_FROM else []


def rollup_emails_done(
    subscribers: Iterable[str],
    mails: Mapping[str, int],
    rows: Mapping[str, Delivery],
    *,
    transport: TransportKind,
    unsubscribed: Collection[str],
) -> bool:
    """True when no email of a roll-up is still to go: each subscriber's copy was made
    (`mails` maps them to how many papers it holds) and holds nothing, or its row is done,
    or they unsubscribed."""
    return all(
        address in unsubscribed
        or (address in mails and (mails[address] == 0 or (address in rows and is_done(rows[address], transport))))
        for address in subscribers
    )
