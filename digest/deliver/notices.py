"""One-off messages outside the delivery ledger: the confirmation a reader asks for on the web side.

A notice is sent at once, while the reader waits for the page: over SMTP when `[smtp]` is
configured (signed like every message, `open_transport`), tried `NOTICE_ATTEMPTS` times
with a short pause, else written to the outbox folder as `notice_<name>.eml`. It is not
a digest: no ledger row, nothing retried later (the reader can ask again; the rate limits
bound how often). This module never renders a message or touches the store.
"""

from __future__ import annotations

import ssl
import time
from datetime import date
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

from digest.config import SmtpSettings
from digest.deliver.transports import (
    RetryPolicy,
    SendFailure,
    TemporaryFailure,
    message_bytes,
    open_transport,
)
from digest.files import write_atomic
from digest.rows import DeliveryKey

NOTICE_ATTEMPTS = 2
NOTICE_PAUSE = 1.0  # seconds between the two tries


class NoticeError(Exception):
    """The notice could not be handed over. One line."""


def send_notice(
    smtp: SmtpSettings | None,
    message: EmailMessage,
    *,
    outbox: Path,
    name: str,
    day: date,
    tls_context: ssl.SSLContext | None = None,
) -> None:
    """Send `message` to its `To` (over SMTP, or as `outbox/notice_<name>.eml`); `NoticeError` if it failed."""
    payload = message_bytes(message)
    if smtp is None:
        try:
            write_atomic(outbox / f"notice_{name}.eml", payload)
        except OSError as exc:
            raise NoticeError(f"cannot write to the outbox: {exc}") from exc
        return
    recipient = parseaddr(str(message["To"]))[1]
    sender = parseaddr(smtp.sender or str(message["From"]))[1]
    policy = RetryPolicy(attempts=1, backoff=0, jitter=0, max_connection_failures=NOTICE_ATTEMPTS + 1)
    transport = open_transport(smtp, outbox=outbox, policy=policy, tls_context=tls_context)
    key = DeliveryKey(name, day, recipient)
    try:
        for attempt in range(1, NOTICE_ATTEMPTS + 1):
            try:
                transport.send(key, sender, payload, lambda: None)
                return
            except TemporaryFailure as exc:
                if attempt == NOTICE_ATTEMPTS or exc.after_dot:
                    raise NoticeError(str(exc)) from exc
                time.sleep(NOTICE_PAUSE)
            except SendFailure as exc:
                raise NoticeError(str(exc)) from exc
    finally:
        transport.close()
