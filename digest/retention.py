"""How long the state database remembers: `digest prune` and the rule that keeps it safe.

Finished ledger rows and fetch records older than `[digest] retention_days`, and the
31 days a run reaches back to (`LEDGER_REACH`), are deleted;
papers, digests and unsubscribes never are, and neither is a ledger row whose email may
still go out or that belongs to a digest a feed still shows. Because a pruned ledger no
longer knows an old digest was mailed, a digest day older than the retention, or than
the retention of the furthest prune so far (the store records it), is never built or
sent again (`check_day`). This module decides the cutoff; the application
(`App.prune`) says which records feeds still need, and the SQL is the store's.
"""

from __future__ import annotations

from datetime import date, timedelta

from digest.config import Config
from digest.deliver.due import RETRY_DAYS

# A run for day D also finishes the earlier digests of the week before D (`RETRY_DAYS`) and
# sends the roll-ups of the week and the month before D's (`lifecycle.due_periods`): the
# month's row is dated its last day, up to 31 days before D (D = 31 January, December's).
# It reads those ledger rows, so they are kept this much longer than `retention_days`
# (pruned with the retention alone, or 8 days more, a `--date` the rule accepted mailed
# those emails again).
LEDGER_REACH = timedelta(days=max(RETRY_DAYS + 1, 31))


class DayRefused(ValueError):
    """A digest day no command may build or send (too old, or in the future)."""


class TooOld(DayRefused):
    """A digest day older than the retention period: its ledger may be pruned."""


def cutoff(config: Config, today: date) -> date:
    """The oldest digest day a command may build or send (`check_day`)."""
    return today - timedelta(days=config.retention_days)


def prune_before(config: Config, today: date) -> date:
    """Records of days before this one may be pruned: the cutoff, less what a run reaches back to."""
    return cutoff(config, today) - LEDGER_REACH


def check_day(config: Config, day: date, today: date, pruned_before: date | None = None) -> None:
    """Raise `TooOld` for a digest day whose ledger rows may have been pruned: sending it
    again could mail a reader a digest they already had, with nothing to say so. That is a
    day before today's cutoff, or before the cutoff of the furthest `digest prune` so far
    (`pruned_before`, as the store recorded it): raising `retention_days` afterwards does not
    bring the deleted rows back."""
    if day < cutoff(config, today):
        raise TooOld(
            f"{day.isoformat()} is more than retention_days = {config.retention_days} days ago: its delivery "
            "ledger may have been pruned, so that digest is neither built nor sent again"
        )
    if pruned_before is not None and day < pruned_before + LEDGER_REACH:
        raise TooOld(
            f"{day.isoformat()} is before {(pruned_before + LEDGER_REACH).isoformat()}, the oldest day an earlier "
            "`digest prune` kept the delivery ledger of, so that digest is neither built nor sent again"
        )
