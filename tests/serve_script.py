"""Runs the service with one slow ingest job, for the signal test: `python tests/serve_script.py EVENTS_LOG`.

The job appends "job started" and, a second later, "job finished" to EVENTS_LOG.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from apscheduler.triggers.base import BaseTrigger

from digest.app import JobReport
from digest.cron import profile_trigger
from digest.models import Profile
from digest.schedule import run_service


def main() -> None:
    events = Path(sys.argv[1])
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    class SlowIngest:
        """The service with no profile and an ingest job that takes a second."""

        grace = timedelta(hours=12)

        def profiles(self) -> list[Profile]:
            return []

        def ingest_job(self) -> JobReport:
            with events.open("a") as log:
                log.write("job started\n")
            time.sleep(1.0)
            with events.open("a") as log:
                log.write("job finished\n")
            return JobReport(counts={"slept": 1})

        def run_profile(self, profile: Profile, day: date, *, should_stop: object = None) -> JobReport:
            return JobReport()

        def is_done(self, profile: Profile, day: date) -> bool:
            return True

        def rebuild_due(self, profile: Profile, day: date) -> bool:
            return False

        def due_day(self, profile: Profile, now: datetime) -> date | None:
            return None

        def trigger(self, profile: Profile) -> BaseTrigger:
            return profile_trigger(profile)

    run_service(SlowIngest(), ingest_every=timedelta(seconds=0.1))


if __name__ == "__main__":
    main()
