"""What a roll-up holds: its papers in order, and each subscriber's copy of it.

A roll-up of a period (a week, a month, or the days a daily reader missed) ranks the
period's papers as the profile's digests rank theirs, except for the community signal:
upvotes settle over days, so every paper of the period is weighed by its latest count
relative to the most upvoted paper of the whole period, not of its own listing day
(`period_view`). The ranked papers become the roll-up's *pool*: those scoring at least
`min_score`, the best `MMR_POOL` times `max_items` of them ordered by maximal marginal
relevance (the pool a digest picks its items from, the same way, so the top is not five
versions of one paper), the rest by score. Everyone's roll-up (feeds, site, Markdown) shows the first
`max_items` of the pool in full and the next `ALSO_SHOWN` by title ("also this week").

A subscriber's copy (`for_subscriber`) is the same pool without the papers they were
already sent: the first `max_items` of what is left, the next `ALSO_SHOWN`, and counts
that leave those papers out too. Which papers count as sent is `lifecycle.carries_papers`.

Pure: ranked papers in, roll-ups out. Never ranks (`digest.rank` does, through `App`),
reads the store or renders.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from digest.models import Paper, Profile, Reason, ReasonKind, Rollup, ScoredPaper
from digest.periods import Period

ALSO_SHOWN = 5  # titles under "also this week"
# The listing day every paper of a period is given while it is ranked, so that upvotes are
# compared across the whole period. No real listing is dated before 1900 (`ingest.limits`).
PERIOD_DAY = date.min


@dataclass(frozen=True, slots=True)
class Pool:
    """A roll-up's ranked papers: `eligible` (at least `min_score`, in the order shown) and
    `runners_up` (the best few below it)."""

    eligible: tuple[ScoredPaper, ...]
    runners_up: tuple[ScoredPaper, ...]


def period_view(papers: Sequence[Paper]) -> list[Paper]:
    """The papers as the ranker should see them for a roll-up: all on one listing day, so
    that each one's upvotes count relative to the most upvoted paper of the period."""
    return [replace(paper, last_seen=PERIOD_DAY) for paper in papers]


def as_listed(ranked: Sequence[ScoredPaper], papers: Sequence[Paper]) -> list[ScoredPaper]:
    """Ranked papers of `period_view` back with the papers as stored, and their reasons
    fit for a roll-up (the upvotes' "most of its day" means nothing over a period)."""
    stored = {paper.id: paper for paper in papers}
    return [ScoredPaper(stored[s.paper.id], s.score, _period_reasons(s.reasons)) for s in ranked]


def _period_reasons(reasons: tuple[Reason, ...]) -> tuple[Reason, ...]:
    return tuple(replace(r, most_of_day=False) if r.kind == ReasonKind.UPVOTES else r for r in reasons)


def order_pool(ranked: Sequence[ScoredPaper], profile: Profile) -> Pool:
    """The roll-up's pool from the profile's ranked papers, best first (see the module docstring)."""
    from digest.rank import MMR_POOL, select_digest  # numpy, SciPy and scikit-learn: imported when a roll-up is built

    eligible = [s for s in ranked if s.score >= profile.min_score]
    below = [s for s in ranked if s.score < profile.min_score]
    depth = min(len(eligible), profile.max_items * MMR_POOL)
    # Only the head goes to the picker, which orders all of it: the papers a digest would pick from.
    head, runners_up = select_digest([*eligible[:depth], *below], replace(profile, max_items=max(depth, 1)))
    return Pool(tuple(head) + tuple(eligible[depth:]), tuple(runners_up))


def public_rollup(profile: Profile, period: Period, pool: Pool, *, built_at: datetime, considered: int) -> Rollup:
    """Everyone's roll-up: the pool's first `max_items`, the next `ALSO_SHOWN`."""
    shown = profile.max_items
    return Rollup(
        profile=profile,
        period=period,
        items=pool.eligible[:shown],
        also=pool.eligible[shown : shown + ALSO_SHOWN],
        built_at=built_at,
        considered=considered,
        above=len(pool.eligible),
        runners_up=() if pool.eligible else pool.runners_up,
    )


def for_subscriber(everyone: Rollup, pool: Pool, sent: Collection[str], sent_in_period: int) -> Rollup:
    """One subscriber's copy of a roll-up: the pool without the papers in `sent` (the ids
    they were already sent), and counts without them (`sent_in_period`: how many of the
    sent papers are among the period's papers)."""
    left = [s for s in pool.eligible if s.paper.id not in sent]
    shown = everyone.profile.max_items
    return replace(
        everyone,
        items=tuple(left[:shown]),
        also=tuple(left[shown : shown + ALSO_SHOWN]),
        considered=max(everyone.considered - sent_in_period, len(left)),
        above=len(left),
        runners_up=(),
    )
