"""Delivering digest emails once: SMTP (or `.eml` files in the outbox) through the delivery ledger.

- `due`: which emails are due (one per subscriber of each digest), what the ledger says
  of each, and giving up emails unsent for a week;
- `batch`: sending a batch once each, through the ledger (`send_digests`);
- `transports`: the `Transport` protocol and its SMTP and outbox implementations, chosen
  in one place (`open_transport`).

The ledger (`deliveries` in the store) has one row per profile, subscriber and digest
day, or roll-up period; its states and their changes are `lifecycle`'s. This package never renders, ranks
or builds digests.
"""

from digest.deliver.batch import (
    SEND_LOCK_TIMEOUT,
    DeliveryError,
    DeliveryReport,
    Undelivered,
    make_message_id,
    prepare_message,
    send_digests,
    smtp_login_problem,
)
from digest.deliver.due import (
    RETRY_DAYS,
    Outgoing,
    Planned,
    Prepared,
    digest_emails_done,
    due_digests,
    give_up_stale_emails,
    outgoing_emails,
    plan_deliveries,
    sends_email,
    with_earlier_due,
)
from digest.deliver.transports import (
    RetryPolicy,
    Transport,
    message_bytes,
    open_transport,
    outbox_name,
    transport_kind,
)

__all__ = [
    "RETRY_DAYS",
    "SEND_LOCK_TIMEOUT",
    "DeliveryError",
    "DeliveryReport",
    "Outgoing",
    "Planned",
    "Prepared",
    "RetryPolicy",
    "Transport",
    "Undelivered",
    "digest_emails_done",
    "due_digests",
    "give_up_stale_emails",
    "make_message_id",
    "message_bytes",
    "open_transport",
    "outbox_name",
    "outgoing_emails",
    "plan_deliveries",
    "prepare_message",
    "send_digests",
    "sends_email",
    "smtp_login_problem",
    "transport_kind",
    "with_earlier_due",
]
