"""Digests (what each profile was given on each day), their items, and the feed history.

The candidate rule (`lifecycle.is_candidate`) is written here once more as SQL, so that a
store of a hundred thousand papers is filtered where the data is; the tests hold the two
to the same answers. A digest's state changes only as `lifecycle` decides. Nothing here
ranks, renders or sends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from digest.lifecycle import may_be_replaced, previous_digest, state_after_emails
from digest.models import DeliveryState, Digest, DigestEntry, DigestState, EmptyReason, Paper, Profile, ScoredPaper
from digest.reason_records import dump_reasons, load_reasons
from digest.rows import DigestRecord, DigestStatus, PreviousDigest
from digest.store.base import StoreBase, moment, version_of
from digest.store.papers import FIRST_SIGHTING, PAPER_COLUMNS, paper_of, paper_version, read_papers

ITEM = "item"
RUNNER_UP = "runner-up"

# Of a digest `g`: did an email of it reach (or possibly reach) someone; has its profile a later digest?
_REACHED = (
    "EXISTS (SELECT 1 FROM deliveries d WHERE d.profile_id = g.profile_id AND d.day = g.day AND d.period = '' "
    "AND (d.state IN ('sending', 'sent') OR d.possible_duplicate = 1))"
)
_LATER = "EXISTS (SELECT 1 FROM digests h WHERE h.profile_id = g.profile_id AND h.day > g.day)"
# Every digest of a profile, newest first, with its items and each paper's version.
_RECORDS = f"""
    SELECT g.day, g.built_at, g.candidates, g.empty_reason, i.kind, i.rank, i.paper_id, i.score, i.reasons,
           {paper_version("i.paper_id")}
    FROM digests g LEFT JOIN digest_items i ON i.profile_id = g.profile_id AND i.day = g.day
    WHERE g.profile_id = ? ORDER BY g.day DESC, i.kind, i.rank
"""
_STATUS = f"SELECT g.state, g.watermark, {_REACHED}, {_LATER} FROM digests g WHERE g.profile_id = ? AND g.day = ?"
# The entries a profile's feed shows: each paper once, with the digest that first gave it.
_FEED = """
    WITH firsts AS (
        SELECT paper_id, MIN(day) AS day FROM digest_items
        WHERE profile_id = :p AND kind = 'item' GROUP BY paper_id
    )
    SELECT {columns}
    FROM firsts f
    JOIN digest_items i ON i.profile_id = :p AND i.day = f.day AND i.paper_id = f.paper_id
    JOIN digests g ON g.profile_id = :p AND g.day = f.day
    ORDER BY i.day DESC, i.rank ASC LIMIT :n
"""
_FEED_ENTRIES = _FEED.format(columns="i.paper_id, i.day, g.built_at, i.score, i.reasons")
_FEED_VERSION = _FEED.format(
    columns=f"i.paper_id, i.day, g.built_at, i.score, i.reasons, {paper_version('i.paper_id')}"
)


class DigestsMixin(StoreBase):
    """Digests, their items and the feed history (see the module docstring)."""

    def candidate_papers(self, profile_id: str, day: date, *, until: int | None = None) -> list[Paper]:
        """Papers a new digest of `profile_id` for `day` considers (`lifecycle.is_candidate`);
        with `until`, only those stored by dump `until` (what a digest built then considered)."""
        parameters = self._candidate_parameters(profile_id, day) | {"w": until}
        extra = "AND p.first_dump <= :w" if until is not None else ""
        query = _candidate_query(PAPER_COLUMNS, extra) + f" ORDER BY {FIRST_SIGHTING}"
        return [paper_of(row) for row in self._db.execute(query, parameters)]

    def new_candidates(self, profile_id: str, day: date, watermark: int) -> int:
        """How many of the day's candidates (`candidate_papers`) were stored after dump `watermark`."""
        query = _candidate_query("COUNT(*)", "AND p.first_dump > :w")
        parameters = self._candidate_parameters(profile_id, day) | {"w": watermark}
        count: int = self._db.execute(query, parameters).fetchone()[0]
        return count

    def _candidate_parameters(self, profile_id: str, day: date) -> dict[str, Any]:
        rows = self._db.execute("SELECT day, watermark FROM digests WHERE profile_id = ?", (profile_id,))
        previous = previous_digest((PreviousDigest(date.fromisoformat(d), w) for d, w in rows), day)
        return {
            "p": profile_id,
            "d": day.isoformat(),
            "prev_day": previous.day.isoformat() if previous else None,
            "prev_watermark": previous.watermark if previous else None,
        }

    def delivered_paper_ids(self, profile_id: str, *, except_day: date | None = None) -> set[str]:
        """Papers given to this profile in digests that are delivered or still being delivered
        (leaving out the digest of `except_day`, which a rebuild replaces)."""
        rows = self._db.execute(
            "SELECT i.paper_id FROM digest_items i JOIN digests g ON g.profile_id = i.profile_id AND g.day = i.day "
            "WHERE i.profile_id = ? AND i.kind = 'item' AND g.state != 'failed' AND i.day IS NOT ?",
            (profile_id, except_day.isoformat() if except_day else None),
        )
        return {row[0] for row in rows}

    def save_digest(self, digest: Digest, watermark: int) -> bool:
        """Record a digest; False (and nothing written) if one exists for that profile and day."""
        with self.transaction() as db:
            key = (digest.profile.id, digest.date.isoformat())
            if db.execute("SELECT 1 FROM digests WHERE profile_id = ? AND day = ?", key).fetchone():
                return False
            db.execute(
                "INSERT INTO digests (profile_id, day, built_at, watermark, candidates, empty_reason) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (*key, digest.built_at.isoformat(), watermark, digest.candidates, digest.empty_reason),
            )
            _insert_items(db, digest)
            return True

    def digest_status(self, profile_id: str, day: date) -> DigestStatus | None:
        """What the saved digest of `profile_id` for `day` delivered so far, or None if there is none."""
        return _status(self._db.execute(_STATUS, (profile_id, day.isoformat())).fetchone())

    def replace_digest(self, digest: Digest, watermark: int, *, replaces: int) -> bool:
        """Rebuild a saved digest: `digest` takes the place of the one saved with watermark `replaces`.

        Only while nothing of that digest can have reached anyone (`lifecycle.may_be_replaced`),
        checked again inside the transaction, so a digest that another process rebuilt or
        started delivering meanwhile is left as it is (False). Ledger rows keep their
        Message-IDs; rows still pending are dropped when the new digest has no papers (it
        sends no email).
        """
        key = (digest.profile.id, digest.date.isoformat())
        with self.transaction() as db:
            status = _status(db.execute(_STATUS, key).fetchone())
            if status is None or status.watermark != replaces or not may_be_replaced(status):
                return False
            db.execute("DELETE FROM digest_items WHERE profile_id = ? AND day = ?", key)
            db.execute(
                "UPDATE digests SET built_at = ?, watermark = ?, candidates = ?, empty_reason = ? "
                "WHERE profile_id = ? AND day = ?",
                (digest.built_at.isoformat(), watermark, digest.candidates, digest.empty_reason, *key),
            )
            _insert_items(db, digest)
            if not digest.items:
                db.execute(
                    "DELETE FROM deliveries WHERE profile_id = ? AND day = ? AND period = '' AND state = 'pending'", key
                )
            return True

    def load_digest(self, profile: Profile, day: date) -> Digest | None:
        """The digest recorded for this profile and day, with its papers, or None."""
        key = (profile.id, day.isoformat())
        head = self._db.execute(
            "SELECT built_at, candidates, empty_reason FROM digests WHERE profile_id = ? AND day = ?", key
        ).fetchone()
        if head is None:
            return None
        rows = self._db.execute(
            "SELECT paper_id, kind, score, reasons FROM digest_items WHERE profile_id = ? AND day = ? "
            "ORDER BY kind, rank",
            key,
        ).fetchall()
        papers = {p.id: p for p in read_papers(self._db, [r[0] for r in rows])}
        picked: dict[str, list[ScoredPaper]] = {ITEM: [], RUNNER_UP: []}
        for pid, kind, score, reasons in rows:
            picked[kind].append(ScoredPaper(papers[pid], score, load_reasons(reasons)))
        return Digest(
            profile=profile,
            date=day,
            items=tuple(picked[ITEM]),
            built_at=moment(head[0]),
            candidates=head[1],
            empty_reason=EmptyReason(head[2]) if head[2] else None,
            runners_up=tuple(picked[RUNNER_UP]),
        )

    def digest_entries(self, profile_id: str, limit: int) -> list[DigestEntry]:
        """The papers most recently given to a profile, across days: newest digest first, best first.

        A paper given twice (its first digest's delivery failed and it came back) appears
        once, with the digest that first gave it, so a feed entry never moves or repeats.
        """
        rows = self._db.execute(_FEED_ENTRIES, {"p": profile_id, "n": limit}).fetchall()
        papers = {p.id: p for p in read_papers(self._db, [r[0] for r in rows])}
        return [
            DigestEntry(
                profile_id=profile_id,
                day=date.fromisoformat(day),
                built_at=moment(built_at),
                item=ScoredPaper(papers[pid], score, load_reasons(reasons)),
            )
            for pid, day, built_at, score, reasons in rows
        ]

    def feed_version(self, profile_id: str, limit: int) -> str:
        """A version of what `digest_entries` gives (see `digest_records`): the same while
        the profile's feed would show the same, without reading the papers."""
        return version_of(self._db.execute(_FEED_VERSION, {"p": profile_id, "n": limit}).fetchall())

    def feed_oldest_day(self, profile_id: str, limit: int) -> date | None:
        """The oldest digest day among the `limit` entries the profile's feed shows (`digest_entries`)."""
        row = self._db.execute(f"SELECT MIN(day) FROM ({_FEED_ENTRIES})", {"p": profile_id, "n": limit}).fetchone()
        return date.fromisoformat(row[0]) if row[0] else None

    def digest_records(self, profile_id: str) -> list[DigestRecord]:
        """Each digest of the profile, newest first, as its archive lists it, with its version
        (what a site page needs to know whether it changed, without loading the digest)."""
        by_day: dict[str, list[tuple[Any, ...]]] = {}
        for row in self._db.execute(_RECORDS, (profile_id,)):
            by_day.setdefault(row[0], []).append(row)
        return [
            DigestRecord(
                day=date.fromisoformat(day),
                version=version_of(rows),
                papers=sum(row[4] == ITEM for row in rows),
                empty_reason=EmptyReason(rows[0][3]) if rows[0][3] else None,
                candidates=rows[0][2],
            )
            for day, rows in by_day.items()
        ]

    def digest_days(self, profile_id: str) -> list[date]:
        """The days this profile has a digest for, newest first."""
        rows = self._db.execute("SELECT day FROM digests WHERE profile_id = ? ORDER BY day DESC", (profile_id,))
        return [date.fromisoformat(row[0]) for row in rows]

    def digest_state(self, profile_id: str, day: date) -> DigestState | None:
        row = self._db.execute(
            "SELECT state FROM digests WHERE profile_id = ? AND day = ?", (profile_id, day.isoformat())
        ).fetchone()
        return DigestState(row[0]) if row else None

    def set_digest_state(self, profile_id: str, day: date, state: DigestState, at: datetime) -> None:
        """Save a digest's state (as `lifecycle` decided it); `at` is when it was delivered."""
        with self.transaction() as db:
            save_digest_state(db, profile_id, day, state, at)

    def set_digest_states(self, changes: Iterable[tuple[str, date, DigestState]], at: datetime) -> None:
        """`set_digest_state` for many digests (profile id, day, state) in one transaction:
        one disk flush for a whole build's digests instead of one each."""
        with self.transaction() as db:
            for profile_id, day, state in changes:
                save_digest_state(db, profile_id, day, state, at)

    def settle_digest(self, profile_id: str, day: date, at: datetime) -> bool:
        """Save what a digest becomes once its emails ended (`lifecycle.state_after_emails`):
        True when that made it `failed` (nothing delivered it; its papers come back)."""
        return bool(self.settle_digests([(profile_id, day)], at))

    def settle_digests(self, digests: Iterable[tuple[str, date]], at: datetime) -> list[tuple[str, date]]:
        """`settle_digest` for many digests (profile id, day) in one transaction; returns
        those it made `failed`."""
        failed = []
        with self.transaction() as db:
            for profile_id, day in digests:
                key = (profile_id, day.isoformat())
                row = db.execute("SELECT state FROM digests WHERE profile_id = ? AND day = ?", key).fetchone()
                if row is None:
                    continue
                state = DigestState(row[0])
                emails = [DeliveryState(r[0]) for r in db.execute(_LEDGER_STATES, key)]
                after = state_after_emails(state, emails)
                if after == state:
                    continue
                save_digest_state(db, profile_id, day, after, at)
                if after == DigestState.FAILED:
                    failed.append((profile_id, day))
        return failed


_LEDGER_STATES = "SELECT state FROM deliveries WHERE profile_id = ? AND day = ? AND period = ''"


def save_digest_state(db: sqlite3.Connection, profile_id: str, day: date, state: DigestState, at: datetime) -> None:
    """Write a digest's state inside an open transaction (`delivered_at` keeps its first value)."""
    db.execute(
        "UPDATE digests SET state = ?, delivered_at = CASE WHEN ? = 'delivered' "
        "THEN COALESCE(delivered_at, ?) ELSE delivered_at END WHERE profile_id = ? AND day = ?",
        (state, state, at.isoformat(), profile_id, day.isoformat()),
    )


def _status(row: tuple[Any, ...] | None) -> DigestStatus | None:
    if row is None:
        return None
    state, watermark, reached, later = row
    return DigestStatus(DigestState(state), watermark, bool(reached), bool(later))


def _candidate_query(columns: str, extra: str = "") -> str:
    """SELECT `columns` over the candidates of profile :p for day :d, the previous digest
    being (:prev_day, :prev_watermark) or none: `lifecycle.is_candidate` as SQL."""
    given = (
        "SELECT 1 FROM digest_items i JOIN digests g ON g.profile_id = i.profile_id AND g.day = i.day "
        "WHERE i.profile_id = :p AND i.paper_id = p.id AND i.kind = 'item'"
    )
    return f"""
        SELECT {columns} FROM papers p
        WHERE p.first_seen <= :d
          AND NOT EXISTS ({given} AND g.state != 'failed' AND i.day != :d)
          AND (:prev_day IS NULL
            OR p.first_seen > :prev_day
            OR p.first_dump > :prev_watermark
            OR EXISTS ({given} AND g.state = 'failed'))
          {extra}
    """


def _insert_items(db: sqlite3.Connection, digest: Digest) -> None:
    key = (digest.profile.id, digest.date.isoformat())
    rows = [
        (*key, item.paper.id, kind, rank, item.score, dump_reasons(item.reasons))
        for kind, items in ((ITEM, digest.items), (RUNNER_UP, digest.runners_up))
        for rank, item in enumerate(items, start=1)
    ]
    db.executemany(
        "INSERT INTO digest_items (profile_id, day, paper_id, kind, rank, score, reasons) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
