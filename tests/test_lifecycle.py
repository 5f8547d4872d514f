"""The life of a digest and its emails: every state rule, as input/expected pairs, and the
candidate rule held to the store's SQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from mailserver import profile

from digest.cron import due_day
from digest.lifecycle import digest_is_final, rebuild_deadline
from digest.models import DigestState
from digest.rows import DigestStatus

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
