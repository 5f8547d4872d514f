"""The state database: every SQL statement of the project lives in this package.

SQLite through the standard library, WAL mode, the schema versioned and migrated on
open (`schema`). The store is split by topic, as one class made of one part per topic:

- `papers`: dumps, papers and the titles they were seen under, fetch validators;
- `digests`: digests, their items, the feed history;
- `ledger`: the delivery ledger and the unsubscribes;
- `readers`: what readers tell the web side (web subscriptions, votes, preferences, rate
  limits) and their own digests;
- `rollups`: roll-ups, each subscriber's copy of one, and the papers ledger rows carry;
- `upkeep`: what `digest status` reads and `digest prune` deletes.

Rows come and go as named types (`digest.rows`). The store saves states and stores what
the pure rules decide (`merge` for papers, `lifecycle` for digests and emails); it never
parses, ranks or renders.
"""

from __future__ import annotations

from pathlib import Path

from digest.rows import (
    Delivery,
    DeliveryKey,
    DigestStatus,
    Duplicate,
    IngestResult,
    LastBuilt,
    LastEvent,
    LastMailed,
    ProfileActivity,
    PruneCounts,
    Unsubscription,
    Validators,
)
from digest.store.base import StoreError
from digest.store.digests import DigestsMixin
from digest.store.ledger import ALL_PROFILES, LedgerMixin, subscriber_key
from digest.store.papers import PapersMixin
from digest.store.readers import ReadersMixin
from digest.store.rollups import RollupsMixin
from digest.store.schema import SCHEMA_VERSION, connect
from digest.store.upkeep import UpkeepMixin
from digest.titles import paper_id, title_key


class Store(PapersMixin, DigestsMixin, LedgerMixin, UpkeepMixin, ReadersMixin, RollupsMixin):
    """One open state database. Use `open_store` to get one."""


def open_store(path: Path) -> Store:
    """Open (creating if needed) the state database and bring its schema up to date."""
    return Store(connect(path), path)


__all__ = [
    "ALL_PROFILES",
    "SCHEMA_VERSION",
    "Delivery",
    "DeliveryKey",
    "DigestStatus",
    "Duplicate",
    "IngestResult",
    "LastBuilt",
    "LastEvent",
    "LastMailed",
    "ProfileActivity",
    "PruneCounts",
    "Store",
    "StoreError",
    "Unsubscription",
    "Validators",
    "open_store",
    "paper_id",
    "subscriber_key",
    "title_key",
]
