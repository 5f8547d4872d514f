"""Runs the service with one slow ingest job, for the signal test: `python tests/serve_script.py EVENTS_LOG`.

The job appends "job started" and, a second later, "job finished" to EVENTS_LOG.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta
from pathlib import Path

from digest.schedule import JobReport, run_service


def main() -> None:
    events = Path(sys.argv[1])
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    def slow_ingest() -> JobReport:
        with events.open("a") as log:
            log.write("job started\n")
        time.sleep(1.0)
        with events.open("a") as log:
            log.write("job finished\n")
        return JobReport(counts={"slept": 1})

    run_service(
        [],
        run_profile=lambda profile, day: JobReport(),
        run_ingest=slow_ingest,
        is_done=lambda profile, day: True,
        ingest_every=timedelta(seconds=0.1),
    )


if __name__ == "__main__":
    main()
