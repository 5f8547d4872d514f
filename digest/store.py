"""The state database: every SQL statement of the project lives here.

SQLite through the standard library, WAL mode, schema versioned with
`PRAGMA user_version` (migrations run on open). Each write is one transaction taken
with `BEGIN IMMEDIATE`, so two processes serialise on SQLite's own lock instead of
racing between a read and a write.

Papers are deduplicated here: a paper is matched by arXiv id when the source gives
one, else by its normalised title (`title_key`); within one dump, the first entry of a
paper wins and a repeat is reported, never stored. The validators (ETag,
Last-Modified) of fetched API responses live here too, beside the dumps they produced,
so a fresh database never answers a conditional request for data it does not hold.
This module never parses, ranks or renders.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from digest.chars import strip_format
from digest.models import Digest, DigestEntry, Dump, Entry, Organization, Paper, Profile, ScoredPaper
from digest.reason_records import dump_reasons, load_reasons


def _add_title_keys(db: sqlite3.Connection) -> None:
    """Migration 5: the title rule changed (format characters dropped, a title with no word
    keyed by its text); each stored paper gains its title's key under the rule as an alias,
    so the next dump still finds it. Paper ids never change. The oldest paper keeps a key
    that two stored papers now share."""
    rows = db.execute("SELECT id, title FROM papers ORDER BY first_seen, first_dump, rowid").fetchall()
    db.executemany("INSERT OR IGNORE INTO titles (key, paper_id) VALUES (?, ?)", [(title_key(t), i) for i, t in rows])


_MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    # 1: dumps, papers, the normalised titles each paper was seen under, sightings
    """
    CREATE TABLE dumps (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        listing_date TEXT NOT NULL,
        entries INTEGER NOT NULL,
        problems INTEGER NOT NULL,
        ingested_at TEXT NOT NULL
    );
    CREATE TABLE papers (
        id TEXT PRIMARY KEY,
        arxiv_id TEXT UNIQUE,
        title TEXT NOT NULL,
        abstract TEXT NOT NULL,
        authors_count INTEGER,
        org_id TEXT,
        org_name TEXT,
        published TEXT,
        upvotes INTEGER,
        authors TEXT NOT NULL DEFAULT '[]',
        url TEXT,
        comments INTEGER,
        published_at TEXT,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        first_dump INTEGER NOT NULL REFERENCES dumps(id)
    );
    CREATE INDEX papers_first_seen ON papers(first_seen);
    CREATE TABLE titles (
        key TEXT PRIMARY KEY,
        paper_id TEXT NOT NULL REFERENCES papers(id)
    ) WITHOUT ROWID;
    CREATE TABLE sightings (
        dump_id INTEGER NOT NULL REFERENCES dumps(id),
        paper_id TEXT NOT NULL REFERENCES papers(id),
        position INTEGER NOT NULL,
        upvotes INTEGER,
        PRIMARY KEY (dump_id, paper_id)
    ) WITHOUT ROWID;
    CREATE INDEX sightings_paper ON sightings(paper_id);
    """,
    # 2: digests (what each profile was given on each day) and their items
    """
    CREATE TABLE digests (
        profile_id TEXT NOT NULL,
        day TEXT NOT NULL,
        built_at TEXT NOT NULL,
        watermark INTEGER NOT NULL,
        candidates INTEGER NOT NULL,
        empty_reason TEXT,
        state TEXT NOT NULL DEFAULT 'built' CHECK (state IN ('built', 'delivered', 'failed')),
        delivered_at TEXT,
        PRIMARY KEY (profile_id, day)
    ) WITHOUT ROWID;
    CREATE TABLE digest_items (
        profile_id TEXT NOT NULL,
        day TEXT NOT NULL,
        paper_id TEXT NOT NULL REFERENCES papers(id),
        kind TEXT NOT NULL CHECK (kind IN ('item', 'runner-up')),
        rank INTEGER NOT NULL,
        score REAL NOT NULL,
        reasons TEXT NOT NULL,
        PRIMARY KEY (profile_id, day, paper_id),
        FOREIGN KEY (profile_id, day) REFERENCES digests(profile_id, day)
    ) WITHOUT ROWID;
    CREATE INDEX digest_items_paper ON digest_items(profile_id, paper_id);
    """,
    # 3: HTTP validators of fetched API responses, so an unchanged day is not downloaded again
    """
    CREATE TABLE fetches (
        url TEXT PRIMARY KEY,
        day TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        fetched_at TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: the delivery ledger (one row per profile, subscriber and digest day) and unsubscribes
    """
    CREATE TABLE deliveries (
        profile_id TEXT NOT NULL,
        day TEXT NOT NULL,
        subscriber TEXT NOT NULL,
        transport TEXT NOT NULL CHECK (transport IN ('smtp', 'outbox')),
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        message_id TEXT NOT NULL UNIQUE,
        last_error TEXT,
        possible_duplicate INTEGER NOT NULL DEFAULT 0,
        note TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        sent_at TEXT,
        PRIMARY KEY (profile_id, day, subscriber)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_day ON deliveries(day);
    CREATE TABLE unsubscribes (
        address TEXT NOT NULL,
        profile_id TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (address, profile_id)
    ) WITHOUT ROWID;
    """,
    # 5: every stored paper findable under the current title rule
    _add_title_keys,
)

DELIVERY_STATES = ("pending", "sending", "sent", "failed", "skipped")
ALL_PROFILES = "*"

SCHEMA_VERSION = len(_MIGRATIONS)

_PAPER_COLUMNS = (
    "p.id, p.title, p.abstract, p.authors_count, p.org_id, p.org_name, p.published, p.upvotes, "
    "p.first_seen, p.last_seen, p.arxiv_id, p.authors, p.url, p.comments, "
    "(SELECT COUNT(DISTINCT d.listing_date) FROM sightings s JOIN dumps d ON d.id = s.dump_id "
    "WHERE s.paper_id = p.id)"
)


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, not a database, unwritable)."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What adding one dump did. `new` is False when its content was already stored."""

    new: bool
    papers_new: int = 0
    papers_updated: int = 0
    duplicates: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Validators:
    """What an HTTP server said identifies a response (for conditional requests)."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One ledger row: one subscriber's copy of one profile's digest for one day.

    `state`: 'pending' (to send), 'sending' (handed to the server, its answer not yet
    recorded), 'sent', 'failed' (refused for good) or 'skipped' (unsubscribed).
    `possible_duplicate` is set when the message was sent again after an attempt whose
    outcome was unknown, and `note` says when and why.
    """

    profile_id: str
    day: date
    subscriber: str
    transport: str
    state: str
    attempts: int
    message_id: str
    last_error: str | None
    possible_duplicate: bool
    note: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None


DeliveryKey = tuple[str, date, str]


@dataclass(frozen=True, slots=True)
class DigestStatus:
    """How far a saved digest got: what decides whether it may still be rebuilt
    (`schedule.digest_is_final`).

    `state`: 'built', 'delivered' (a feed published it or an email was accepted) or
    'failed' (every email failed for good). `reached_someone`: an email of it is 'sent' or
    'sending', or may have reached its reader (a possible duplicate). `later_digest`: the
    profile has a digest of a later day. `watermark`: the newest dump it was built from.
    """

    state: str
    watermark: int
    reached_someone: bool
    later_digest: bool


def subscriber_key(address: str) -> str:
    """How unsubscribes match addresses: trimmed and lower-cased."""
    return address.strip().lower()


def title_key(title: str) -> str:
    """The normalised title two sources must share to be the same paper: its words, case-
    and width-folded, format characters (zero-width spaces, bidi controls) dropped. A title
    with no word at all ("???") is keyed by its text, normalised the same way and without
    control characters, so two such titles stay two papers.

    Changing this rule needs a migration that adds each stored paper's new key (see 5).
    """
    folded = unicodedata.normalize("NFKC", strip_format(title)).casefold()
    words = re.findall(r"\w+", folded)
    if words:
        return " ".join(words)
    return " ".join("".join(c for c in folded if unicodedata.category(c) != "Cc").split())


def paper_id(key: str) -> str:
    """A paper's permanent id: derived from the title it was first stored under."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


class Store:
    """One open state database. Use `open_store` to get one."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate write transaction: committed on success, rolled back on error."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    # -- dumps -----------------------------------------------------------------

    def has_dump(self, sha256: str) -> bool:
        return self._db.execute("SELECT 1 FROM dumps WHERE sha256 = ?", (sha256,)).fetchone() is not None

    def add_dump(self, dump: Dump, sha256: str, ingested_at: datetime) -> IngestResult:
        """Store a dump and its entries in one transaction; a dump already stored changes nothing."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM dumps WHERE sha256 = ?", (sha256,)).fetchone():
                return IngestResult(new=False)
            cursor = db.execute(
                "INSERT INTO dumps (sha256, source, kind, listing_date, entries, problems, ingested_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    sha256,
                    dump.source,
                    dump.kind,
                    dump.date.isoformat(),
                    len(dump.entries),
                    len(dump.problems),
                    ingested_at.isoformat(),
                ),
            )
            dump_id = cursor.lastrowid
            assert dump_id is not None
            new = updated = 0
            seen: dict[str, int] = {}
            duplicates = []
            for position, entry in enumerate(dump.entries):
                key = title_key(entry.title)
                found, title_taken = _find_paper(db, entry, key)
                if found is not None and found[0] in seen:
                    # The dump's first entry of a paper wins: a repeat changes nothing.
                    unit, what = ("line", "entry") if dump.kind == "hf-text" else ("item", "item")
                    duplicates.append((entry.line, f"same paper as {unit} {seen[found[0]]}; {what} skipped"))
                    continue
                pid, created = self._upsert_paper(db, entry, key, found, title_taken, dump.date, dump_id)
                seen[pid] = entry.line
                new += created
                updated += not created
                db.execute(
                    "INSERT INTO sightings (dump_id, paper_id, position, upvotes) VALUES (?, ?, ?, ?)",
                    (dump_id, pid, position, entry.upvotes),
                )
            return IngestResult(new=True, papers_new=new, papers_updated=updated, duplicates=tuple(duplicates))

    def _upsert_paper(
        self,
        db: sqlite3.Connection,
        entry: Entry,
        key: str,
        row: tuple[str, str] | None,
        title_taken: bool,
        listed: date,
        dump_id: int,
    ) -> tuple[str, bool]:
        """Store `entry` as a new paper, or update `row` (its stored paper, see `_find_paper`)."""
        day = listed.isoformat()
        if row is None:
            # A title already used by a paper with another arXiv id names a second paper; its
            # id then derives from the arXiv id, and the title stays an alias of the first one.
            pid = paper_id(f"arxiv:{entry.arxiv_id}" if title_taken else key)
            db.execute(
                "INSERT INTO papers (id, arxiv_id, title, abstract, authors_count, org_id, org_name, "
                "published, upvotes, authors, url, comments, published_at, first_seen, last_seen, first_dump) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (pid, *_entry_values(entry), day, day, dump_id),
            )
            db.execute("INSERT OR IGNORE INTO titles (key, paper_id) VALUES (?, ?)", (key, pid))
            return pid, True
        pid, last_seen = row
        db.execute("INSERT OR IGNORE INTO titles (key, paper_id) VALUES (?, ?)", (key, pid))
        if day >= last_seen and (not _is_bare(entry) or _stored_bare(db, pid)):
            # The newest listing's view wins; fields it does not know (upvotes included) keep
            # their old value. A bare entry (no byline, date, upvotes or id) wins only over
            # another bare view: it never replaces a richer title, abstract or upvotes.
            db.execute(
                "UPDATE papers SET arxiv_id = COALESCE(?, arxiv_id), title = ?, abstract = ?, "
                "authors_count = COALESCE(?, authors_count), org_id = COALESCE(?, org_id), "
                "org_name = COALESCE(?, org_name), published = COALESCE(?, published), "
                "upvotes = COALESCE(?, upvotes), "
                "authors = CASE WHEN ? = '[]' THEN authors ELSE ? END, url = COALESCE(?, url), "
                "comments = COALESCE(?, comments), published_at = COALESCE(?, published_at), last_seen = ? "
                "WHERE id = ?",
                (*_update_values(entry), day, pid),
            )
        else:
            # An older listing, or a bare entry, only fills what is still unknown and may move
            # first_seen earlier.
            (arxiv, _, _, count, org_id, org_name, published, _, authors, url, comments, at) = _entry_values(entry)
            db.execute(
                "UPDATE papers SET arxiv_id = COALESCE(arxiv_id, ?), authors_count = COALESCE(authors_count, ?), "
                "org_id = COALESCE(org_id, ?), org_name = COALESCE(org_name, ?), "
                "published = COALESCE(published, ?), authors = CASE WHEN authors = '[]' THEN ? ELSE authors END, "
                "url = COALESCE(url, ?), comments = COALESCE(comments, ?), "
                "published_at = COALESCE(published_at, ?), first_seen = MIN(first_seen, ?) WHERE id = ?",
                (arxiv, count, org_id, org_name, published, authors, url, comments, at, day, pid),
            )
        return pid, False

    def dump_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM dumps").fetchone()[0]

    def latest_listing_date(self) -> date | None:
        row = self._db.execute("SELECT MAX(listing_date) FROM dumps").fetchone()
        return date.fromisoformat(row[0]) if row[0] else None

    # -- fetches ---------------------------------------------------------------

    def fetch_validators(self, url: str) -> Validators | None:
        """The ETag and Last-Modified of the last response from `url` that was stored, if any."""
        row = self._db.execute("SELECT etag, last_modified FROM fetches WHERE url = ?", (url,)).fetchone()
        return Validators(etag=row[0], last_modified=row[1]) if row else None

    def save_fetch(self, url: str, day: date, validators: Validators, fetched_at: datetime) -> None:
        """Remember a stored response's validators (none: forget them, so the next fetch downloads)."""
        with self.transaction() as db:
            if validators.etag is None and validators.last_modified is None:
                db.execute("DELETE FROM fetches WHERE url = ?", (url,))
                return
            db.execute(
                "INSERT INTO fetches (url, day, etag, last_modified, fetched_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (url) DO UPDATE SET day = excluded.day, etag = excluded.etag, "
                "last_modified = excluded.last_modified, fetched_at = excluded.fetched_at",
                (url, day.isoformat(), validators.etag, validators.last_modified, fetched_at.isoformat()),
            )

    # -- papers ----------------------------------------------------------------

    def paper_count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM papers").fetchone()[0]

    def iter_papers(self) -> Iterator[Paper]:
        """Every paper, in order of first sighting."""
        query = f"SELECT {_PAPER_COLUMNS} FROM papers p ORDER BY p.first_seen, p.first_dump, p.rowid"
        for row in self._db.execute(query):
            yield _paper(row)

    def recent_papers(self, limit: int) -> list[Paper]:
        """The `limit` papers first seen most recently, newest first (the feed of all papers)."""
        query = (
            f"SELECT {_PAPER_COLUMNS} FROM papers p ORDER BY p.first_seen DESC, p.first_dump DESC, p.rowid DESC LIMIT ?"
        )
        return [_paper(row) for row in self._db.execute(query, (limit,))]

    def first_day_orders(self, ids: list[str]) -> dict[str, int]:
        """Each paper's place among the papers first seen on its day, in the order they were
        stored (0 for the first): stable, since later papers come after it."""
        found: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = (
                "SELECT p.id, (SELECT COUNT(*) FROM papers q WHERE q.first_seen = p.first_seen "
                f"AND (q.first_dump, q.rowid) < (p.first_dump, p.rowid)) FROM papers p WHERE p.id IN ({marks})"
            )
            found.update(self._db.execute(query, chunk).fetchall())
        return found

    def started_at(self) -> datetime | None:
        """When the store got its first data (its first dump, else its first digest), or None."""
        row = self._db.execute(
            "SELECT COALESCE((SELECT MIN(ingested_at) FROM dumps), (SELECT MIN(built_at) FROM digests))"
        ).fetchone()
        return _aware(datetime.fromisoformat(row[0])) if row[0] else None

    def find_papers(self, references: tuple[str, ...] | list[str]) -> list[Paper]:
        """The stored papers that references name: a paper id, an arXiv id, or a title
        (matched like ingest matches, by normalised title). Unknown references are left out."""
        ids: list[str] = []
        for reference in references:
            row = self._db.execute(
                "SELECT id FROM papers WHERE id = ?1 OR arxiv_id = ?1 "
                "UNION ALL SELECT paper_id FROM titles WHERE key = ?2 LIMIT 1",
                (reference.strip(), title_key(reference)),
            ).fetchone()
            if row and row[0] not in ids:
                ids.append(row[0])
        return self.get_papers(ids)

    def get_papers(self, ids: list[str]) -> list[Paper]:
        """The papers with these ids, in the order given (unknown ids are left out)."""
        found: dict[str, Paper] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(f"SELECT {_PAPER_COLUMNS} FROM papers p WHERE p.id IN ({marks})", chunk):
                found[row[0]] = _paper(row)
        return [found[i] for i in ids if i in found]

    # -- digests -----------------------------------------------------------------

    def watermark(self) -> int:
        """The newest dump's sequence number: a digest records it to know what it has seen."""
        return self._db.execute("SELECT COALESCE(MAX(id), 0) FROM dumps").fetchone()[0]

    def candidate_papers(self, profile_id: str, day: date) -> list[Paper]:
        """Papers a new digest of `profile_id` for `day` should consider.

        Listed on or before `day`; not given to the profile in a digest of another day that
        was (or is still being) delivered; and new since the profile's previous digest:
        listed after its day, or stored after it was built (a late or back-filled dump).
        Papers of a digest whose delivery failed for good come back. The day's own digest,
        if one is saved, does not count: a rebuild considers its papers again.
        """
        query = _candidate_query(_PAPER_COLUMNS) + " ORDER BY p.first_seen, p.first_dump, p.rowid"
        return [_paper(row) for row in self._db.execute(query, {"p": profile_id, "d": day.isoformat()})]

    def new_candidates(self, profile_id: str, day: date, watermark: int) -> int:
        """How many of the day's candidates (`candidate_papers`) were stored after dump `watermark`."""
        query = _candidate_query("COUNT(*)", "AND p.first_dump > :w")
        return self._db.execute(query, {"p": profile_id, "d": day.isoformat(), "w": watermark}).fetchone()[0]

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
        row = self._db.execute(
            f"SELECT g.state, g.watermark, {_REACHED}, {_LATER} FROM digests g WHERE g.profile_id = ? AND g.day = ?",
            (profile_id, day.isoformat()),
        ).fetchone()
        if row is None:
            return None
        state, watermark, reached, later = row
        return DigestStatus(state, watermark, bool(reached), bool(later))

    def replace_digest(self, digest: Digest, watermark: int, *, replaces: int) -> bool:
        """Rebuild a saved digest: `digest` takes the place of the one saved with watermark `replaces`.

        Only while that digest delivered nothing (still 'built', no email 'sending', 'sent' or
        possibly received, no digest of a later day): checked again inside the transaction,
        so a digest that another process rebuilt or started delivering meanwhile is left as
        it is (False). Ledger rows keep their Message-IDs; rows still pending are dropped when
        the new digest has no papers (it sends no email).
        """
        key = (digest.profile.id, digest.date.isoformat())
        with self.transaction() as db:
            row = db.execute(
                f"SELECT g.state, g.watermark, {_REACHED}, {_LATER} FROM digests g "
                "WHERE g.profile_id = ? AND g.day = ?",
                key,
            ).fetchone()
            if row is None or row[0] != "built" or row[1] != replaces or row[2] or row[3]:
                return False
            db.execute("DELETE FROM digest_items WHERE profile_id = ? AND day = ?", key)
            db.execute(
                "UPDATE digests SET built_at = ?, watermark = ?, candidates = ?, empty_reason = ? "
                "WHERE profile_id = ? AND day = ?",
                (digest.built_at.isoformat(), watermark, digest.candidates, digest.empty_reason, *key),
            )
            _insert_items(db, digest)
            if not digest.items:
                db.execute("DELETE FROM deliveries WHERE profile_id = ? AND day = ? AND state = 'pending'", key)
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
        papers = {p.id: p for p in self.get_papers([r[0] for r in rows])}
        picked: dict[str, list[ScoredPaper]] = {"item": [], "runner-up": []}
        for pid, kind, score, reasons in rows:
            picked[kind].append(ScoredPaper(papers[pid], score, load_reasons(reasons)))
        return Digest(
            profile=profile,
            date=day,
            items=tuple(picked["item"]),
            built_at=_aware(datetime.fromisoformat(head[0])),
            candidates=head[1],
            empty_reason=head[2],
            runners_up=tuple(picked["runner-up"]),
        )

    def digest_entries(self, profile_id: str, limit: int) -> list[DigestEntry]:
        """The papers most recently given to a profile, across days: newest digest first, best first.

        A paper given twice (its first digest's delivery failed and it came back) appears
        once, with the digest that first gave it, so a feed entry never moves or repeats.
        """
        rows = self._db.execute(
            """
            WITH firsts AS (
                SELECT paper_id, MIN(day) AS day FROM digest_items
                WHERE profile_id = :p AND kind = 'item' GROUP BY paper_id
            )
            SELECT i.paper_id, i.day, g.built_at, i.score, i.reasons
            FROM firsts f
            JOIN digest_items i ON i.profile_id = :p AND i.day = f.day AND i.paper_id = f.paper_id
            JOIN digests g ON g.profile_id = :p AND g.day = f.day
            ORDER BY i.day DESC, i.rank ASC LIMIT :n
            """,
            {"p": profile_id, "n": limit},
        ).fetchall()
        papers = {p.id: p for p in self.get_papers([r[0] for r in rows])}
        return [
            DigestEntry(
                profile_id=profile_id,
                day=date.fromisoformat(day),
                built_at=_aware(datetime.fromisoformat(built_at)),
                item=ScoredPaper(papers[pid], score, load_reasons(reasons)),
            )
            for pid, day, built_at, score, reasons in rows
        ]

    def digest_days(self, profile_id: str) -> list[date]:
        """The days this profile has a digest for, newest first."""
        rows = self._db.execute("SELECT day FROM digests WHERE profile_id = ? ORDER BY day DESC", (profile_id,))
        return [date.fromisoformat(row[0]) for row in rows]

    def set_digest_state(self, profile_id: str, day: date, state: str, at: datetime) -> None:
        """Mark a digest 'delivered' (a feed published or an email accepted) or 'failed' (gave up)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE digests SET state = ?, delivered_at = CASE WHEN ? = 'delivered' "
                "THEN COALESCE(delivered_at, ?) ELSE delivered_at END WHERE profile_id = ? AND day = ?",
                (state, state, at.isoformat(), profile_id, day.isoformat()),
            )

    # -- deliveries ---------------------------------------------------------------

    def add_deliveries(
        self, keys: list[DeliveryKey], message_id: Callable[[DeliveryKey], str], transport: str, at: datetime
    ) -> int:
        """Create a 'pending' ledger row for each key that has none; return how many were new.

        A row's Message-ID is made here, once: every later attempt reuses it.
        """
        created = 0
        with self.transaction() as db:
            for key in keys:
                profile_id, day, subscriber = key
                cursor = db.execute(
                    "INSERT OR IGNORE INTO deliveries (profile_id, day, subscriber, transport, message_id, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        profile_id,
                        day.isoformat(),
                        subscriber,
                        transport,
                        message_id(key),
                        at.isoformat(),
                        at.isoformat(),
                    ),
                )
                created += cursor.rowcount
        return created

    def get_delivery(self, key: DeliveryKey) -> Delivery | None:
        """The ledger row as it is now."""
        profile_id, day, subscriber = key
        row = self._db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d WHERE profile_id = ? AND day = ? AND subscriber = ?",
            (profile_id, day.isoformat(), subscriber),
        ).fetchone()
        return _delivery(row) if row else None

    def deliveries(self, *, day: date | None = None, profile_id: str | None = None) -> list[Delivery]:
        """Ledger rows, oldest day first, optionally of one day and/or one profile."""
        where, params = [], []
        if day is not None:
            where.append("day = ?")
            params.append(day.isoformat())
        if profile_id is not None:
            where.append("profile_id = ?")
            params.append(profile_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        query = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d {clause} ORDER BY day, profile_id, subscriber"
        return [_delivery(row) for row in self._db.execute(query, params)]

    def reopen_outbox_delivery(self, key: DeliveryKey, at: datetime) -> None:
        """A message only written to the outbox becomes 'pending' over SMTP, keeping its Message-ID."""
        note = f"written to the outbox on {at.date().isoformat()} before SMTP was configured; sent over SMTP"
        self._update_delivery(
            key,
            "state = 'pending', transport = 'smtp', sent_at = NULL, note = ?, updated_at = ?",
            (note, at.isoformat()),
        )

    def mark_delivery_sending(self, key: DeliveryKey, at: datetime) -> None:
        """Record that the message is about to be handed over (the attempt counts from here)."""
        self._update_delivery(key, "state = 'sending', attempts = attempts + 1, updated_at = ?", (at.isoformat(),))

    def mark_delivery_sent(
        self, key: DeliveryKey, at: datetime, *, counted: bool = True, delivers: bool = True
    ) -> None:
        """Record acceptance; the digest counts as delivered from its first accepted email on
        (unless `delivers` is False: an outbox preview while SMTP is configured)."""
        profile_id, day, _ = key
        with self.transaction() as db:
            self._update_delivery(
                key,
                "state = 'sent', attempts = attempts + ?, last_error = NULL, updated_at = ?, sent_at = ?",
                (0 if counted else 1, at.isoformat(), at.isoformat()),
                db=db,
            )
            if not delivers:
                return
            db.execute(
                "UPDATE digests SET state = 'delivered', delivered_at = COALESCE(delivered_at, ?) "
                "WHERE profile_id = ? AND day = ? AND state != 'delivered'",
                (at.isoformat(), profile_id, day.isoformat()),
            )

    def record_delivery_attempt(
        self,
        key: DeliveryKey,
        state: str,
        at: datetime,
        *,
        error: str | None,
        counted: bool = False,
        possible_duplicate: bool = False,
        note: str | None = None,
    ) -> None:
        """Record a try that did not end in 'sent': 'pending' (retry later), 'failed' or 'skipped'.

        `counted` says the attempt was already counted by `mark_delivery_sending`; a `note`
        (kept once the row is sent) explains a possible duplicate.
        """
        if state not in ("pending", "failed", "skipped"):
            raise ValueError(f"not an outcome of an attempt: {state!r}")
        self._update_delivery(
            key,
            "state = ?, attempts = attempts + ?, last_error = ?, updated_at = ?, "
            "possible_duplicate = MAX(possible_duplicate, ?), note = COALESCE(?, note)",
            (state, 0 if counted else 1, error, at.isoformat(), int(possible_duplicate), note),
        )

    def resume_interrupted_delivery(self, key: DeliveryKey, at: datetime, note: str) -> None:
        """A row left 'sending' by a process that died: pending again, flagged as a possible duplicate."""
        self._update_delivery(
            key,
            "state = 'pending', possible_duplicate = 1, note = ?, updated_at = ?",
            (note, at.isoformat()),
        )

    def fail_undelivered_digest(self, profile_id: str, day: date, at: datetime) -> bool:
        """Mark a digest 'failed' when nothing delivered it and no email of it can still go out.

        Only a digest still 'built' (no feed published, no email accepted) whose ledger rows
        all ended without a send: its papers come back in the profile's next digest.
        """
        key = (profile_id, day.isoformat())
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE digests SET state = 'failed' WHERE profile_id = ?1 AND day = ?2 AND state = 'built' "
                "AND EXISTS (SELECT 1 FROM deliveries WHERE profile_id = ?1 AND day = ?2) "
                "AND NOT EXISTS (SELECT 1 FROM deliveries WHERE profile_id = ?1 AND day = ?2 "
                "AND state IN ('pending', 'sending', 'sent'))",
                key,
            )
            return cursor.rowcount > 0

    def digest_state(self, profile_id: str, day: date) -> str | None:
        row = self._db.execute(
            "SELECT state FROM digests WHERE profile_id = ? AND day = ?", (profile_id, day.isoformat())
        ).fetchone()
        return row[0] if row else None

    def _update_delivery(
        self, key: DeliveryKey, assignments: str, values: tuple, *, db: sqlite3.Connection | None = None
    ) -> None:
        profile_id, day, subscriber = key
        statement = f"UPDATE deliveries SET {assignments} WHERE profile_id = ? AND day = ? AND subscriber = ?"
        params = (*values, profile_id, day.isoformat(), subscriber)
        if db is not None:
            db.execute(statement, params)
            return
        with self.transaction() as own:
            own.execute(statement, params)

    # -- unsubscribes -------------------------------------------------------------

    def unsubscribe(self, address: str, profile_id: str | None, at: datetime) -> bool:
        """Stop sending to `address` (for one profile, or all with None); False if it already was."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO unsubscribes (address, profile_id, at) VALUES (?, ?, ?)",
                (subscriber_key(address), profile_id or ALL_PROFILES, at.isoformat()),
            )
            return cursor.rowcount > 0

    def resubscribe(self, address: str, profile_id: str | None) -> bool:
        """Undo `unsubscribe` for the same scope; False if there was nothing to undo."""
        with self.transaction() as db:
            cursor = db.execute(
                "DELETE FROM unsubscribes WHERE address = ? AND profile_id = ?",
                (subscriber_key(address), profile_id or ALL_PROFILES),
            )
            return cursor.rowcount > 0

    def is_unsubscribed(self, address: str, profile_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM unsubscribes WHERE address = ? AND profile_id IN (?, ?)",
            (subscriber_key(address), profile_id, ALL_PROFILES),
        ).fetchone()
        return row is not None

    def unsubscribes(self) -> list[tuple[str, str | None, datetime]]:
        """(address, profile id or None for all, when) for every unsubscribe."""
        rows = self._db.execute("SELECT address, profile_id, at FROM unsubscribes ORDER BY address, profile_id")
        return [(a, None if p == ALL_PROFILES else p, datetime.fromisoformat(at)) for a, p, at in rows]

    # -- status and retention (digest status, digest prune) ------------------------

    def profile_activity(self, profile_id: str, *, failed_since: date) -> ProfileActivity:
        """What the store knows of a profile's last digest, publication and email, and its
        emails still to go (pending) or refused (failed, for digest days from `failed_since`)."""
        built = self._db.execute(
            "SELECT g.day, g.built_at, (SELECT COUNT(*) FROM digest_items i WHERE i.profile_id = g.profile_id "
            "AND i.day = g.day AND i.kind = 'item') FROM digests g WHERE g.profile_id = ? ORDER BY g.day DESC LIMIT 1",
            (profile_id,),
        ).fetchone()
        published = self._db.execute(
            "SELECT day, COALESCE(delivered_at, built_at) FROM digests WHERE profile_id = ? AND state = 'delivered' "
            "ORDER BY day DESC LIMIT 1",
            (profile_id,),
        ).fetchone()
        mailed = self._db.execute(
            "SELECT day, sent_at, transport FROM deliveries WHERE profile_id = ? AND state = 'sent' "
            "ORDER BY sent_at DESC, day DESC LIMIT 1",
            (profile_id,),
        ).fetchone()
        pending, failed = self._db.execute(
            "SELECT COALESCE(SUM(state IN ('pending', 'sending')), 0), "
            "COALESCE(SUM(state = 'failed' AND day >= ?), 0) FROM deliveries WHERE profile_id = ?",
            (failed_since.isoformat(), profile_id),
        ).fetchone()
        return ProfileActivity(
            profile_id=profile_id,
            built=LastBuilt(date.fromisoformat(built[0]), _moment(built[1]), built[2]) if built else None,
            published=LastEvent(date.fromisoformat(published[0]), _moment(published[1])) if published else None,
            mailed=LastMailed(date.fromisoformat(mailed[0]), _moment(mailed[1]), mailed[2]) if mailed else None,
            emails_pending=pending,
            emails_failed=failed,
        )

    def feed_oldest_day(self, profile_id: str, limit: int) -> date | None:
        """The oldest digest day among the `limit` entries the profile's feed shows (as `digest_entries`)."""
        row = self._db.execute(
            """
            WITH firsts AS (
                SELECT paper_id, MIN(day) AS day FROM digest_items
                WHERE profile_id = :p AND kind = 'item' GROUP BY paper_id
            )
            SELECT MIN(day) FROM (
                SELECT i.day FROM firsts f
                JOIN digest_items i ON i.profile_id = :p AND i.day = f.day AND i.paper_id = f.paper_id
                JOIN digests g ON g.profile_id = :p AND g.day = f.day
                ORDER BY i.day DESC, i.rank ASC LIMIT :n
            )
            """,
            {"p": profile_id, "n": limit},
        ).fetchone()
        return date.fromisoformat(row[0]) if row[0] else None

    def prune(self, before: date, keep_from: Mapping[str, date], *, dry_run: bool = False) -> PruneCounts:
        """Delete the finished ledger rows and the fetch records of days before `before`.

        A ledger row still to go (pending, sending) is never deleted; nor are a profile's
        rows from `keep_from[profile]` on (the digests its feed still shows). Papers,
        digests and unsubscribes are never deleted. With `dry_run`, only counts.
        """
        finished = "state IN ('sent', 'failed', 'skipped')"
        with self.transaction() as db:
            profiles = [
                row[0]
                for row in db.execute("SELECT DISTINCT profile_id FROM deliveries WHERE day < ?", (before.isoformat(),))
            ]
            deliveries = 0
            for profile_id in profiles:
                limit = min(before, keep_from.get(profile_id, before)).isoformat()
                where = f"profile_id = ? AND day < ? AND {finished}"
                deliveries += db.execute(
                    f"SELECT COUNT(*) FROM deliveries WHERE {where}", (profile_id, limit)
                ).fetchone()[0]
                if not dry_run:
                    db.execute(f"DELETE FROM deliveries WHERE {where}", (profile_id, limit))
            fetches = db.execute("SELECT COUNT(*) FROM fetches WHERE day < ?", (before.isoformat(),)).fetchone()[0]
            if not dry_run:
                db.execute("DELETE FROM fetches WHERE day < ?", (before.isoformat(),))
        return PruneCounts(deliveries=deliveries, fetches=fetches)


# -- status and retention rows ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LastBuilt:
    """A profile's newest digest: its day, when it was built, how many papers it gave."""

    day: date
    at: datetime
    papers: int


@dataclass(frozen=True, slots=True)
class LastEvent:
    """The digest day and the moment of a profile's latest publication (feed or accepted email)."""

    day: date
    at: datetime


@dataclass(frozen=True, slots=True)
class LastMailed:
    """A profile's latest email accepted: its digest day, when, and over what ('smtp' or 'outbox')."""

    day: date
    at: datetime
    transport: str


@dataclass(frozen=True, slots=True)
class ProfileActivity:
    """What `digest status` reads from the store about one profile."""

    profile_id: str
    built: LastBuilt | None
    published: LastEvent | None
    mailed: LastMailed | None
    emails_pending: int
    emails_failed: int


@dataclass(frozen=True, slots=True)
class PruneCounts:
    """What `Store.prune` deleted (or, in a dry run, would delete)."""

    deliveries: int
    fetches: int


def _moment(text: str) -> datetime:
    return _aware(datetime.fromisoformat(text))


def _candidate_query(columns: str, extra: str = "") -> str:
    """SELECT `columns` over the candidates of profile :p for day :d (see `Store.candidate_papers`)."""
    return f"""
        WITH prev AS (
            SELECT day, watermark FROM digests WHERE profile_id = :p AND day < :d ORDER BY day DESC LIMIT 1
        )
        SELECT {columns} FROM papers p
        WHERE p.first_seen <= :d
          AND NOT EXISTS (
            SELECT 1 FROM digest_items i JOIN digests g ON g.profile_id = i.profile_id AND g.day = i.day
            WHERE i.profile_id = :p AND i.paper_id = p.id AND i.kind = 'item' AND g.state != 'failed'
              AND i.day != :d)
          AND (NOT EXISTS (SELECT 1 FROM prev)
            OR p.first_seen > (SELECT day FROM prev)
            OR p.first_dump > (SELECT watermark FROM prev)
            OR EXISTS (
              SELECT 1 FROM digest_items i JOIN digests g ON g.profile_id = i.profile_id AND g.day = i.day
              WHERE i.profile_id = :p AND i.paper_id = p.id AND i.kind = 'item' AND g.state = 'failed'))
          {extra}
    """


# Of a digest `g`: did an email of it reach (or possibly reach) someone; has its profile a later digest?
_REACHED = (
    "EXISTS (SELECT 1 FROM deliveries d WHERE d.profile_id = g.profile_id AND d.day = g.day "
    "AND (d.state IN ('sending', 'sent') OR d.possible_duplicate = 1))"
)
_LATER = "EXISTS (SELECT 1 FROM digests h WHERE h.profile_id = g.profile_id AND h.day > g.day)"


def _insert_items(db: sqlite3.Connection, digest: Digest) -> None:
    key = (digest.profile.id, digest.date.isoformat())
    rows = [
        (*key, item.paper.id, kind, rank, item.score, dump_reasons(item.reasons))
        for kind, items in (("item", digest.items), ("runner-up", digest.runners_up))
        for rank, item in enumerate(items, start=1)
    ]
    db.executemany(
        "INSERT INTO digest_items (profile_id, day, paper_id, kind, rank, score, reasons) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


_DELIVERY_COLUMNS = (
    "d.profile_id, d.day, d.subscriber, d.transport, d.state, d.attempts, d.message_id, d.last_error, "
    "d.possible_duplicate, d.note, d.created_at, d.updated_at, d.sent_at"
)


def _delivery(row: tuple) -> Delivery:
    profile_id, day, subscriber, transport, state, attempts, mid, error, dup, note, created, updated, sent = row
    return Delivery(
        profile_id=profile_id,
        day=date.fromisoformat(day),
        subscriber=subscriber,
        transport=transport,
        state=state,
        attempts=attempts,
        message_id=mid,
        last_error=error,
        possible_duplicate=bool(dup),
        note=note,
        created_at=datetime.fromisoformat(created),
        updated_at=datetime.fromisoformat(updated),
        sent_at=datetime.fromisoformat(sent) if sent else None,
    )


def _find_paper(db: sqlite3.Connection, entry: Entry, key: str) -> tuple[tuple[str, str] | None, bool]:
    """The stored paper an entry shows, as (id, last_seen): by arXiv id first, else by title.

    The second value is True when the title belongs to a paper with a different arXiv id.
    """
    if entry.arxiv_id:
        row = db.execute("SELECT id, last_seen FROM papers WHERE arxiv_id = ?", (entry.arxiv_id,)).fetchone()
        if row:
            return (row[0], row[1]), False
    row = db.execute(
        "SELECT p.id, p.last_seen, p.arxiv_id FROM titles t JOIN papers p ON p.id = t.paper_id WHERE t.key = ?",
        (key,),
    ).fetchone()
    if row is None:
        return None, False
    if entry.arxiv_id and row[2] and row[2] != entry.arxiv_id:
        return None, True
    return (row[0], row[1]), False


def _is_bare(entry: Entry) -> bool:
    """True for an entry that shows only a title and an abstract: no byline, date, upvotes or id."""
    return (
        entry.published is None
        and entry.upvotes is None
        and entry.authors_count is None
        and entry.organization is None
        and entry.arxiv_id is None
        and not entry.authors
    )


def _stored_bare(db: sqlite3.Connection, pid: str) -> bool:
    """True when the stored paper knows no more than a bare entry would (see `_is_bare`)."""
    row = db.execute(
        "SELECT published IS NULL AND upvotes IS NULL AND authors_count IS NULL AND org_id IS NULL "
        "AND arxiv_id IS NULL AND authors = '[]' FROM papers WHERE id = ?",
        (pid,),
    ).fetchone()
    return bool(row[0])


def _aware(moment: datetime) -> datetime:
    # A digest saved with a naive built_at was built in UTC (the CLI's clock is UTC).
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _entry_values(entry: Entry) -> tuple:
    org = entry.organization
    return (
        entry.arxiv_id,
        entry.title,
        entry.abstract,
        entry.authors_count,
        org.id if org else None,
        org.name if org else None,
        entry.published.isoformat() if entry.published else None,
        entry.upvotes,
        json.dumps(list(entry.authors), ensure_ascii=False),
        entry.url,
        entry.comments,
        entry.published_at.isoformat() if entry.published_at else None,
    )


def _update_values(entry: Entry) -> tuple:
    (arxiv, title, abstract, count, org_id, org_name, published, upvotes, authors, url, comments, at) = _entry_values(
        entry
    )
    return (arxiv, title, abstract, count, org_id, org_name, published, upvotes, authors, authors, url, comments, at)


def _paper(row: tuple) -> Paper:
    (
        pid,
        title,
        abstract,
        count,
        org_id,
        org_name,
        published,
        upvotes,
        first,
        last,
        arxiv,
        authors,
        url,
        comments,
        n,
    ) = row
    return Paper(
        id=pid,
        title=title,
        abstract=abstract,
        authors_count=count,
        organization=Organization(org_id, org_name or org_id) if org_id else None,
        published=date.fromisoformat(published) if published else None,
        upvotes=upvotes,
        first_seen=date.fromisoformat(first),
        last_seen=date.fromisoformat(last),
        sightings=n,
        arxiv_id=arxiv,
        authors=tuple(json.loads(authors)),
        url=url,
        comments=comments,
    )


def open_store(path: Path) -> Store:
    """Open (creating if needed) the state database and bring its schema up to date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 60000")
        # Switching a new file to WAL takes an exclusive lock without waiting on SQLite's busy
        # handler, so two processes opening a fresh database at once would fail: take turns.
        with FileLock(f"{path}.lock", timeout=60):
            db.execute("PRAGMA journal_mode = WAL")
            _migrate(db, path)
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
    except Timeout:
        raise StoreError(f"{path}: another process has held {path}.lock for over a minute") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot use the state database: {exc}") from None
    return Store(db, path)


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {version} is newer than this program ({SCHEMA_VERSION}); upgrade")
    if version == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        # Re-read inside the lock: another process may have migrated meanwhile.
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, SCHEMA_VERSION):
            step = _MIGRATIONS[number]
            if callable(step):
                step(db)
                continue
            for statement in _split_sql(step):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _split_sql(script: str) -> list[str]:
    # executescript() would commit our open transaction; run statements one by one instead.
    return [s.strip() for s in script.split(";") if s.strip()]
