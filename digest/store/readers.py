"""What readers tell the web side: who they are, what they subscribed to, their votes and preferences.

- `readers`: one row per address the web side knows, with its opaque id (random, never
  derived from the address, so no URL can be turned back into one);
- `subscriptions` and `confirmations`: addresses subscribed through the web side, and
  requests waiting for their confirmation link to be followed;
- `votes`: "more like this", "less like this" and "mute" per profile, reader and paper,
  with the time they were made and taken back;
- `preferences`: a reader's pause, number of papers and cadence per profile;
- `request_counts`: counters per bucket and time window, for rate limits;
- `personal_digests` and their items: a reader's own digest of a day, when their votes or
  preferences make one differ from the profile's.

Each write is one short transaction. Which vote replaces which, when a reader gets their
own digest and what a confirmation undoes are decided by the caller (`digest.readers`,
`App`); nothing here ranks, renders or sends.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from digest.models import Cadence, Digest, EmptyReason, Profile, ScoredPaper, VoteKind
from digest.reason_records import dump_reasons, load_reasons
from digest.rows import (
    Confirmed,
    PendingConfirmation,
    PersonalDigest,
    ReaderPreferences,
    VoteRecord,
    WebSubscription,
)
from digest.store.base import StoreBase, day_or_none, moment
from digest.store.ledger import ALL_PROFILES, subscriber_key
from digest.store.papers import read_papers

READER_ID_BYTES = 12  # 16 URL-safe characters
_VOTE_COLUMNS = "v.profile_id, v.reader_id, r.address, v.paper_id, v.kind, v.organization, v.at, v.undone_at"


class ReadersMixin(StoreBase):
    """Readers, web subscriptions, votes, preferences, rate-limit counters and personal digests."""

    # -- readers ------------------------------------------------------------------------------

    def reader_id(self, address: str, *, create: bool = False, at: datetime | None = None) -> str | None:
        """The opaque id of `address` (matched without regard to case); with `create`, made
        (at `at`) when the address has none yet."""
        key = subscriber_key(address)
        row = self._db.execute("SELECT id FROM readers WHERE address = ?", (key,)).fetchone()
        if row is not None or not create:
            return row[0] if row else None
        assert at is not None, "a new reader needs the time it was made"
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO readers (id, address, created_at) VALUES (?, ?, ?)",
                (secrets.token_urlsafe(READER_ID_BYTES), key, at.isoformat()),
            )
            made: str = db.execute("SELECT id FROM readers WHERE address = ?", (key,)).fetchone()[0]
        return made

    def reader_ids(self, addresses: Iterable[str]) -> dict[str, str]:
        """The ids of those of `addresses` the store knows, keyed by the address as given."""
        found = {}
        for address in addresses:
            row = self._db.execute("SELECT id FROM readers WHERE address = ?", (subscriber_key(address),)).fetchone()
            if row is not None:
                found[address] = row[0]
        return found

    def reader_address(self, reader_id: str) -> str | None:
        row = self._db.execute("SELECT address FROM readers WHERE id = ?", (reader_id,)).fetchone()
        return row[0] if row else None

    # -- subscriptions and confirmations -----------------------------------------------------------

    def web_subscriptions(self, profile_id: str | None = None) -> list[WebSubscription]:
        """Confirmed web subscriptions (of one profile), oldest first."""
        query = (
            "SELECT s.profile_id, s.reader_id, r.address, s.confirmed_at FROM subscriptions s "
            "JOIN readers r ON r.id = s.reader_id"
        )
        params: tuple[str, ...] = ()
        if profile_id is not None:
            query += " WHERE s.profile_id = ?"
            params = (profile_id,)
        rows = self._db.execute(query + " ORDER BY s.confirmed_at, r.address", params)
        return [WebSubscription(p, r, a, moment(at)) for p, r, a, at in rows]

    def request_confirmation(self, profile_id: str, reader_id: str, at: datetime, expires_at: datetime) -> None:
        """Record a subscription request waiting for its link (replacing an earlier request)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO confirmations (profile_id, reader_id, requested_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (profile_id, reader_id, at.isoformat(), expires_at.isoformat()),
            )

    def pending_confirmation(self, profile_id: str, reader_id: str) -> PendingConfirmation | None:
        row = self._db.execute(
            "SELECT requested_at, expires_at FROM confirmations WHERE profile_id = ? AND reader_id = ?",
            (profile_id, reader_id),
        ).fetchone()
        return PendingConfirmation(profile_id, reader_id, moment(row[0]), moment(row[1])) if row else None

    def confirm_subscription(
        self, profile_id: str, reader_id: str, *, expires_at: datetime, at: datetime, other_profiles: Sequence[str]
    ) -> Confirmed:
        """Turn the request that expires at `expires_at` into a subscription, in one transaction.

        The request is used up. The address's unsubscribe from this profile is lifted; one
        from every profile becomes one from each of `other_profiles`, so confirming one
        profile subscribes to that profile only. A request that is no longer there (used,
        or replaced by a newer one) changes nothing.
        """
        with self.transaction() as db:
            row = db.execute(
                "SELECT expires_at FROM confirmations WHERE profile_id = ? AND reader_id = ?", (profile_id, reader_id)
            ).fetchone()
            if row is None or moment(row[0]) != expires_at:
                subscribed = db.execute(
                    "SELECT 1 FROM subscriptions WHERE profile_id = ? AND reader_id = ?", (profile_id, reader_id)
                ).fetchone()
                unsubscribed = _unsubscribed(db, reader_id, profile_id)
                return Confirmed.ALREADY if subscribed and not unsubscribed else Confirmed.UNKNOWN
            db.execute("DELETE FROM confirmations WHERE profile_id = ? AND reader_id = ?", (profile_id, reader_id))
            db.execute(
                "INSERT OR IGNORE INTO subscriptions (profile_id, reader_id, confirmed_at) VALUES (?, ?, ?)",
                (profile_id, reader_id, at.isoformat()),
            )
            address = db.execute("SELECT address FROM readers WHERE id = ?", (reader_id,)).fetchone()[0]
            db.execute("DELETE FROM unsubscribes WHERE address = ? AND profile_id = ?", (address, profile_id))
            everything = db.execute(
                "SELECT at FROM unsubscribes WHERE address = ? AND profile_id = ?", (address, ALL_PROFILES)
            ).fetchone()
            if everything is not None:
                db.execute("DELETE FROM unsubscribes WHERE address = ? AND profile_id = ?", (address, ALL_PROFILES))
                db.executemany(
                    "INSERT OR IGNORE INTO unsubscribes (address, profile_id, at) VALUES (?, ?, ?)",
                    [(address, other, everything[0]) for other in other_profiles if other != profile_id],
                )
            return Confirmed.SUBSCRIBED

    def forget_expired_confirmations(self, now: datetime) -> int:
        """Delete the requests whose link expired, and the addresses only they had brought (no
        subscription, vote, preference, own digest or email of theirs): an address typed into
        the form and never confirmed is not kept. Returns how many requests were deleted."""
        kept_by = " OR ".join(
            f"EXISTS (SELECT 1 FROM {table} t WHERE t.reader_id = r.id)"
            for table in ("confirmations", "subscriptions", "votes", "preferences", "personal_digests")
        )
        with self.transaction() as db:
            expired = [
                row[0]
                for row in db.execute("SELECT reader_id FROM confirmations WHERE expires_at <= ?", (now.isoformat(),))
            ]
            db.execute("DELETE FROM confirmations WHERE expires_at <= ?", (now.isoformat(),))
            for reader in dict.fromkeys(expired):
                row = db.execute(f"SELECT r.address, {kept_by} FROM readers r WHERE r.id = ?", (reader,)).fetchone()
                if row is None or row[1]:
                    continue
                mailed = db.execute(
                    "SELECT 1 FROM deliveries WHERE lower(subscriber) = ? LIMIT 1", (row[0],)
                ).fetchone()
                if mailed is None:
                    db.execute("DELETE FROM readers WHERE id = ?", (reader,))
            return len(expired)

    # -- votes ------------------------------------------------------------------------------------

    def record_vote(
        self,
        profile_id: str,
        reader_id: str,
        paper_id: str,
        kind: VoteKind,
        at: datetime,
        *,
        organization: str | None = None,
        replaces: Sequence[VoteKind] = (),
    ) -> bool:
        """Record a vote (again, if it was undone); the reader's active votes of the kinds in
        `replaces` on the same paper are undone with it. False when it was already recorded."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT undone_at FROM votes WHERE profile_id = ? AND reader_id = ? AND paper_id = ? AND kind = ?",
                (profile_id, reader_id, paper_id, kind),
            ).fetchone()
            if row is not None and row[0] is None:
                return False
            db.execute(
                "INSERT OR REPLACE INTO votes (profile_id, reader_id, paper_id, kind, organization, at, undone_at) "
                "VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (profile_id, reader_id, paper_id, kind, organization, at.isoformat()),
            )
            for other in replaces:
                db.execute(
                    "UPDATE votes SET undone_at = ? WHERE profile_id = ? AND reader_id = ? AND paper_id = ? "
                    "AND kind = ? AND undone_at IS NULL",
                    (at.isoformat(), profile_id, reader_id, paper_id, other),
                )
            return True

    def undo_vote(
        self, profile_id: str, reader_id: str, paper_id: str, kind: VoteKind, at: datetime, *, organization: str | None
    ) -> bool:
        """Take back a vote; a mute is taken back for its organisation, whichever paper muted
        it. False when there was nothing to take back."""
        with self.transaction() as db:
            if kind == VoteKind.MUTE and organization:
                where = "organization = ?"
                subject: str = organization
            else:
                where = "paper_id = ?"
                subject = paper_id
            cursor = db.execute(
                f"UPDATE votes SET undone_at = ? WHERE profile_id = ? AND reader_id = ? AND kind = ? AND {where} "
                "AND undone_at IS NULL",
                (at.isoformat(), profile_id, reader_id, kind, subject),
            )
            return cursor.rowcount > 0

    def votes(
        self, profile_id: str | None = None, reader_id: str | None = None, *, active: bool = False
    ) -> list[VoteRecord]:
        """Votes, oldest first: of one profile and/or one reader; with `active`, only those not taken back."""
        where, params = [], []
        if profile_id is not None:
            where.append("v.profile_id = ?")
            params.append(profile_id)
        if reader_id is not None:
            where.append("v.reader_id = ?")
            params.append(reader_id)
        if active:
            where.append("v.undone_at IS NULL")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            f"SELECT {_VOTE_COLUMNS} FROM votes v JOIN readers r ON r.id = v.reader_id {clause} "
            "ORDER BY v.at, v.profile_id, r.address, v.paper_id, v.kind",
            params,
        )
        return [_vote(row) for row in rows]

    def vote(self, profile_id: str, reader_id: str, paper_id: str, kind: VoteKind) -> VoteRecord | None:
        row = self._db.execute(
            f"SELECT {_VOTE_COLUMNS} FROM votes v JOIN readers r ON r.id = v.reader_id "
            "WHERE v.profile_id = ? AND v.reader_id = ? AND v.paper_id = ? AND v.kind = ?",
            (profile_id, reader_id, paper_id, kind),
        ).fetchone()
        return _vote(row) if row else None

    def muted(self, profile_id: str, reader_id: str, organization: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM votes WHERE profile_id = ? AND reader_id = ? AND kind = 'mute' AND organization = ? "
            "AND undone_at IS NULL",
            (profile_id, reader_id, organization),
        ).fetchone()
        return row is not None

    # -- preferences ------------------------------------------------------------------------------

    def preferences(self, profile_id: str, reader_id: str) -> ReaderPreferences:
        row = self._db.execute(
            "SELECT paused_until, max_items, cadence FROM preferences WHERE profile_id = ? AND reader_id = ?",
            (profile_id, reader_id),
        ).fetchone()
        return _preferences(row) if row else ReaderPreferences()

    def all_preferences(self, profile_id: str) -> dict[str, ReaderPreferences]:
        """Every reader's preferences for a profile, by reader id."""
        rows = self._db.execute(
            "SELECT reader_id, paused_until, max_items, cadence FROM preferences WHERE profile_id = ?", (profile_id,)
        )
        return {row[0]: _preferences(row[1:]) for row in rows}

    def set_preferences(self, profile_id: str, reader_id: str, preferences: ReaderPreferences, at: datetime) -> bool:
        """Save a reader's preferences for a profile; False when they were already these."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT paused_until, max_items, cadence FROM preferences WHERE profile_id = ? AND reader_id = ?",
                (profile_id, reader_id),
            ).fetchone()
            if (_preferences(row) if row else ReaderPreferences()) == preferences:
                return False
            paused = preferences.paused_until.isoformat() if preferences.paused_until else None
            db.execute(
                "INSERT OR REPLACE INTO preferences (profile_id, reader_id, paused_until, max_items, cadence, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (profile_id, reader_id, paused, preferences.max_items, preferences.cadence, at.isoformat()),
            )
            return True

    # -- rate limits ------------------------------------------------------------------------------

    def count_request(self, bucket: str, window: int) -> int:
        """Count one more request in `bucket` during time window `window`; the count so far."""
        with self.transaction() as db:
            count: int = db.execute(
                "INSERT INTO request_counts (bucket, window, count) VALUES (?, ?, 1) "
                "ON CONFLICT (bucket, window) DO UPDATE SET count = count + 1 RETURNING count",
                (bucket, window),
            ).fetchone()[0]
        return count

    def request_count(self, bucket: str, window: int) -> int:
        row = self._db.execute(
            "SELECT count FROM request_counts WHERE bucket = ? AND window = ?", (bucket, window)
        ).fetchone()
        return int(row[0]) if row else 0

    def forget_request_counts(self, prefix: str, before_window: int) -> int:
        """Delete the counts of buckets named `prefix`... of windows before `before_window`."""
        with self.transaction() as db:
            return db.execute(
                "DELETE FROM request_counts WHERE substr(bucket, 1, ?) = ? AND window < ?",
                (len(prefix), prefix, before_window),
            ).rowcount

    # -- personal digests -------------------------------------------------------------------------

    def personal_digest(self, profile_id: str, day: date, reader_id: str) -> PersonalDigest | None:
        row = self._db.execute(
            "SELECT source_watermark FROM personal_digests WHERE profile_id = ? AND day = ? AND reader_id = ?",
            (profile_id, day.isoformat(), reader_id),
        ).fetchone()
        return PersonalDigest(profile_id, day, reader_id, row[0]) if row else None

    def save_personal_digest(self, digest: Digest, reader_id: str, source_watermark: int) -> None:
        """Record (or replace) a reader's own digest of a profile's day, built from the profile
        digest saved with `source_watermark`."""
        key = (digest.profile.id, digest.date.isoformat(), reader_id)
        with self.transaction() as db:
            db.execute("DELETE FROM personal_items WHERE profile_id = ? AND day = ? AND reader_id = ?", key)
            db.execute(
                "INSERT OR REPLACE INTO personal_digests (profile_id, day, reader_id, built_at, source_watermark, "
                "candidates, empty_reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*key, digest.built_at.isoformat(), source_watermark, digest.candidates, digest.empty_reason),
            )
            db.executemany(
                "INSERT INTO personal_items (profile_id, day, reader_id, paper_id, rank, score, reasons) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (*key, item.paper.id, rank, item.score, dump_reasons(item.reasons))
                    for rank, item in enumerate(digest.items, start=1)
                ],
            )

    def forget_personal_digest(self, profile_id: str, day: date, reader_id: str) -> None:
        key = (profile_id, day.isoformat(), reader_id)
        with self.transaction() as db:
            db.execute("DELETE FROM personal_items WHERE profile_id = ? AND day = ? AND reader_id = ?", key)
            db.execute("DELETE FROM personal_digests WHERE profile_id = ? AND day = ? AND reader_id = ?", key)

    def load_personal_digest(self, profile: Profile, day: date, reader_id: str) -> Digest | None:
        """A reader's own digest of `profile`'s `day`, or None when they have none."""
        key = (profile.id, day.isoformat(), reader_id)
        head = self._db.execute(
            "SELECT built_at, candidates, empty_reason FROM personal_digests "
            "WHERE profile_id = ? AND day = ? AND reader_id = ?",
            key,
        ).fetchone()
        if head is None:
            return None
        rows = self._db.execute(
            "SELECT paper_id, score, reasons FROM personal_items WHERE profile_id = ? AND day = ? AND reader_id = ? "
            "ORDER BY rank",
            key,
        ).fetchall()
        papers = {p.id: p for p in read_papers(self._db, [r[0] for r in rows])}
        return Digest(
            profile=profile,
            date=day,
            items=tuple(ScoredPaper(papers[pid], score, load_reasons(reasons)) for pid, score, reasons in rows),
            built_at=moment(head[0]),
            candidates=head[1],
            empty_reason=EmptyReason(head[2]) if head[2] else None,
            own=True,
        )


def _unsubscribed(db: sqlite3.Connection, reader_id: str, profile_id: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM unsubscribes u JOIN readers r ON r.address = u.address "
        "WHERE r.id = ? AND u.profile_id IN (?, ?)",
        (reader_id, profile_id, ALL_PROFILES),
    ).fetchone()
    return row is not None


def _vote(row: Sequence[Any]) -> VoteRecord:
    profile_id, reader_id, address, paper_id, kind, organization, at, undone = row
    return VoteRecord(
        profile_id,
        reader_id,
        address,
        paper_id,
        VoteKind(kind),
        organization,
        moment(at),
        moment(undone) if undone else None,
    )


def _preferences(row: Sequence[Any]) -> ReaderPreferences:
    paused, max_items, cadence = row
    return ReaderPreferences(day_or_none(paused), max_items, Cadence(cadence) if cadence else None)
