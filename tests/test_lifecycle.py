"""The life of a digest and its emails: every state rule, as input/expected pairs, and the
candidate rule held to the store's SQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from mailserver import profile, save_digests

from digest.cron import due_day
from digest.lifecycle import (
    CandidateFacts,
    Step,
    digest_is_final,
    emails_done,
    is_candidate,
    next_step,
    previous_digest,
    rebuild_deadline,
    state_after_acceptance,
    state_after_emails,
    state_after_publishing,
)
from digest.models import DeliveryState, DigestState, TransportKind
from digest.rows import Delivery, DigestStatus, PreviousDigest
from digest.store import Store

BERLIN = "Europe/Berlin"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# -- when a digest that delivered nothing may still be rebuilt ---------------------------------


def status(**changes: object) -> DigestStatus:
    base = DigestStatus(DigestState.BUILT, 3, reached_someone=False, later_digest=False)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_digest_is_final_once_anything_of_it_may_have_reached_someone() -> None:
    deadline = utc(2026, 3, 29, 17)
    before, after = utc(2026, 3, 29, 9), utc(2026, 3, 29, 17, 0, 1)
    assert not digest_is_final(status(), now=before, deadline=deadline)  # empty, or every email still waiting
    assert not digest_is_final(status(), now=deadline, deadline=deadline)
    assert digest_is_final(status(), now=after, deadline=deadline)
    assert digest_is_final(status(state=DigestState.DELIVERED), now=before, deadline=deadline)  # a feed or an email
    assert digest_is_final(
        status(state=DigestState.FAILED), now=before, deadline=deadline
    )  # given up: papers come back
    assert digest_is_final(status(reached_someone=True), now=before, deadline=deadline)  # 'sending', or maybe sent
    assert digest_is_final(status(later_digest=True), now=before, deadline=deadline)  # the next one has begun


def test_the_rebuild_deadline_is_the_end_of_the_days_catch_up_window() -> None:
    berlin = profile("b", [], schedule="0 7 * * *", timezone=BERLIN)
    # 07:00 CEST plus 12 hours; with a week of catch-up, the next day's tick comes first.
    assert rebuild_deadline(berlin, date(2026, 3, 29)) == utc(2026, 3, 29, 17)
    assert rebuild_deadline(berlin, date(2026, 3, 29), timedelta(hours=168)) == utc(2026, 3, 30, 5)
    # The window matches the scheduler's: the day is due exactly until its deadline.
    assert due_day(berlin, utc(2026, 3, 29, 17, 0)) == date(2026, 3, 29)
    assert due_day(berlin, utc(2026, 3, 29, 17, 0, 1)) is None
    # Several ticks a day: from the last one; a day without a tick (a manual build): from its end.
    twice = profile("t", [], schedule="0 6,18 * * *", timezone="UTC")
    assert rebuild_deadline(twice, date(2026, 3, 29), timedelta(hours=3)) == utc(2026, 3, 29, 21)
    mondays = profile("m", [], schedule="0 7 * * mon", timezone="UTC")  # 2026-04-01 is a Wednesday
    assert rebuild_deadline(mondays, date(2026, 4, 1)) == utc(2026, 4, 2, 12)
    assert rebuild_deadline(mondays, date(2026, 4, 4), timedelta(hours=168)) == utc(2026, 4, 6, 7)


# -- what to do with a ledger row ------------------------------------------------------------------

SMTP, OUTBOX = TransportKind.SMTP, TransportKind.OUTBOX


def row(state: DeliveryState, transport: TransportKind = SMTP) -> Delivery:
    at = utc(2026, 1, 1)
    return Delivery(
        "p", date(2026, 1, 1), "a@example.org", transport, state, 1, "<m@x>", None, False, None, at, at, None
    )


@pytest.mark.parametrize(
    ("state", "via", "transport", "unsubscribed", "step"),
    [
        (DeliveryState.PENDING, SMTP, SMTP, False, Step.SEND),
        (DeliveryState.PENDING, SMTP, SMTP, True, Step.SKIP),
        (DeliveryState.SENDING, SMTP, SMTP, False, Step.RESUME),
        (DeliveryState.SENDING, SMTP, SMTP, True, Step.SKIP),
        (DeliveryState.SENT, SMTP, SMTP, False, Step.DONE),
        (DeliveryState.SENT, SMTP, SMTP, True, Step.DONE),  # sent is sent: an unsubscribe does not undo it
        (DeliveryState.FAILED, SMTP, SMTP, False, Step.DONE),
        (DeliveryState.SKIPPED, SMTP, SMTP, False, Step.DONE),
        (DeliveryState.SENT, OUTBOX, OUTBOX, False, Step.DONE),
        (DeliveryState.SENT, OUTBOX, SMTP, False, Step.REOPEN),  # an outbox preview, now SMTP is configured
        (DeliveryState.PENDING, OUTBOX, OUTBOX, False, Step.SEND),
        (DeliveryState.PENDING, SMTP, OUTBOX, False, Step.LEAVE),  # a run without SMTP leaves it for one with
        (DeliveryState.SENDING, SMTP, OUTBOX, False, Step.LEAVE),
        (DeliveryState.SENT, SMTP, OUTBOX, False, Step.DONE),
    ],
)
def test_next_step_for_a_ledger_row(
    state: DeliveryState, via: TransportKind, transport: TransportKind, unsubscribed: bool, step: Step
) -> None:
    assert next_step(row(state, via), transport, unsubscribed=unsubscribed) == step


def test_a_digests_emails_are_done_when_each_is_done_or_unsubscribed() -> None:
    rows = {"a": row(DeliveryState.SENT), "b": row(DeliveryState.PENDING)}
    assert not emails_done(["a", "b"], rows, transport=SMTP, unsubscribed=set())
    assert emails_done(["a", "b"], rows, transport=SMTP, unsubscribed={"b"})
    assert not emails_done(["a", "c"], rows, transport=SMTP, unsubscribed=set())  # no row yet: still to go
    assert emails_done(["b"], rows, transport=SMTP, unsubscribed=set(), digest_state=DigestState.FAILED)


@pytest.mark.parametrize(
    ("state", "rows", "after"),
    [
        (DigestState.BUILT, [DeliveryState.FAILED, DeliveryState.SKIPPED], DigestState.FAILED),
        (DigestState.BUILT, [DeliveryState.FAILED, DeliveryState.PENDING], DigestState.BUILT),
        (DigestState.BUILT, [DeliveryState.FAILED, DeliveryState.SENDING], DigestState.BUILT),
        (DigestState.BUILT, [DeliveryState.FAILED, DeliveryState.SENT], DigestState.BUILT),
        (DigestState.BUILT, [], DigestState.BUILT),  # no email at all: nothing to give up
        (DigestState.DELIVERED, [DeliveryState.FAILED], DigestState.DELIVERED),  # a feed delivered it
        (DigestState.FAILED, [DeliveryState.FAILED], DigestState.FAILED),
    ],
)
def test_what_a_digest_becomes_after_its_emails(
    state: DigestState, rows: list[DeliveryState], after: DigestState
) -> None:
    assert state_after_emails(state, rows) == after


def test_acceptance_and_publishing_deliver_a_digest() -> None:
    assert state_after_acceptance(DigestState.BUILT, delivers=True) == DigestState.DELIVERED
    assert state_after_acceptance(DigestState.BUILT, delivers=False) == DigestState.BUILT  # an outbox preview
    assert state_after_publishing(DigestState.BUILT, has_items=True, in_a_feed=True) == DigestState.DELIVERED
    assert state_after_publishing(DigestState.BUILT, has_items=False, in_a_feed=True) == DigestState.BUILT
    assert state_after_publishing(DigestState.BUILT, has_items=True, in_a_feed=False) == DigestState.BUILT


# -- what a digest considers -------------------------------------------------------------------------

DAY = date(2026, 1, 10)
PREVIOUS = PreviousDigest(date(2026, 1, 9), watermark=4)


@pytest.mark.parametrize(
    ("paper", "previous", "expected"),
    [
        (CandidateFacts(date(2026, 1, 10), 5), PREVIOUS, True),  # listed after the previous digest
        (CandidateFacts(date(2026, 1, 11), 5), PREVIOUS, False),  # listed after the day
        (CandidateFacts(date(2026, 1, 8), 4), PREVIOUS, False),  # seen by the previous digest
        (CandidateFacts(date(2026, 1, 8), 5), PREVIOUS, True),  # a late dump for an old day
        (CandidateFacts(date(2026, 1, 8), 4, returned=True), PREVIOUS, True),  # its digest failed: back
        (CandidateFacts(date(2026, 1, 10), 5, given=True), PREVIOUS, False),  # given in another digest
        (CandidateFacts(date(2025, 1, 1), 1), None, True),  # the profile's first digest takes everything
    ],
)
def test_the_candidate_rule(paper: CandidateFacts, previous: PreviousDigest | None, expected: bool) -> None:
    assert is_candidate(paper, DAY, previous) == expected


def test_the_previous_digest_is_the_latest_before_the_day() -> None:
    digests = [PreviousDigest(date(2026, 1, d), d) for d in (3, 9, 10, 12)]
    assert previous_digest(digests, DAY) == PreviousDigest(date(2026, 1, 9), 9)
    assert previous_digest(digests, date(2026, 1, 3)) is None


def test_the_store_filters_candidates_as_the_rule_says(store: Store) -> None:
    """The candidate rule is written twice, as Python and as SQL: they give the same papers."""
    stored = save_digests(store, [profile("cl", ["a@example.org"])], date(2026, 1, 2), papers=4)[0]
    given = {item.paper.id for item in stored.items}
    failed = save_digests(store, [profile("cl", ["a@example.org"])], date(2026, 1, 5), papers=4)[0]
    store.set_digest_state("cl", failed.date, DigestState.FAILED, utc(2026, 1, 5))
    returned = {item.paper.id for item in failed.items} - given
    rows = store._db.execute("SELECT id, first_seen, first_dump FROM papers").fetchall()  # the test reads the facts
    for day in (date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 4), date(2026, 1, 9)):
        previous = previous_digest([PreviousDigest(date(2026, 1, 2), 1), PreviousDigest(date(2026, 1, 5), 1)], day)
        expected = {
            pid
            for pid, first_seen, first_dump in rows
            if is_candidate(
                CandidateFacts(
                    date.fromisoformat(first_seen),
                    first_dump,
                    given=pid in given and day != date(2026, 1, 2),
                    returned=pid in returned,
                ),
                day,
                previous,
            )
        }
        assert {p.id for p in store.candidate_papers("cl", day)} == expected, day
