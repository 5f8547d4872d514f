"""Time as the program reads it: the system clock in UTC, and stored times made time-zone aware.

Every part that needs "now" takes a `Clock` (tests pass a fixed one); only `utc_now`
reads the system clock. Nothing here sleeps or schedules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time, time-zone aware."""


def utc_now() -> datetime:
    """The system clock, in UTC."""
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """`moment`, read as UTC when it carries no time zone (older versions stored some naive times in UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
