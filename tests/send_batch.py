"""Sends the kill test's digest (profile 'kill-test', saved by the test) to 127.0.0.1:PORT.

    python tests/send_batch.py STATE_DB PORT

Run as its own process by tests/test_deliver.py, which kills it in the middle of the batch.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import TODAY
from mailserver import outgoing_for, profile

from digest.config import SmtpSettings
from digest.deliver import RetryPolicy, send_digests
from digest.store import open_store

SUBSCRIBERS = [f"reader{n}@example.org" for n in range(8)]


def main() -> None:
    db, port = Path(sys.argv[1]), int(sys.argv[2])
    store = open_store(db)
    digest = store.load_digest(profile("kill-test", SUBSCRIBERS), TODAY)
    assert digest is not None
    settings = SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=10)
    report = send_digests(
        store,
        settings,
        outgoing_for([digest]),
        outbox=db.parent / "outbox",
        clock=lambda: datetime.now(UTC),
        retry=RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.05, jitter=0.0),
    )
    print(report.summary())


if __name__ == "__main__":
    main()
