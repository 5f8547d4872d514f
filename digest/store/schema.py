"""The state database's schema: its migrations, and opening a database at the newest one.

The schema is versioned with `PRAGMA user_version`; opening a database runs the
migrations it lacks, in one transaction, one process at a time. A migration is SQL, or a
function for what SQL cannot say. This module never reads or writes rows of its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from digest.store.base import StoreError
from digest.titles import title_key


def _add_title_keys(db: sqlite3.Connection) -> None:
    """Migration 5: the title rule changed (format characters dropped, a title with no word
    keyed by its text); each stored paper gains its title's key under the rule as an alias,
    so the next dump still finds it. Paper ids never change. The oldest paper keeps a key
    that two stored papers now share."""
    rows = db.execute("SELECT id, title FROM papers ORDER BY first_seen, first_dump, rowid").fetchall()
    db.executemany("INSERT OR IGNORE INTO titles (key, paper_id) VALUES (?, ?)", [(title_key(t), i) for i, t in rows])


def _reasons_as_data(db: sqlite3.Connection) -> None:
    """Migration 6 changes no table (see its comment in `_MIGRATIONS`)."""


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
    # 6: digest items may hold reasons as JSON objects (`reason_records`), which versions
    # before it cannot word: the bump makes them refuse the database instead of printing data
    _reasons_as_data,
    # 7 (issue 18): which batch of senders took a row to hand its message over ('sending'),
    # so that several senders at once (`[smtp] connections`) each take a row only once
    "ALTER TABLE deliveries ADD COLUMN taken_by TEXT;",
)

SCHEMA_VERSION = len(_MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at `path`, its schema brought up to date.

    Raises `StoreError` for a file that is not a database, a newer schema, or a lock held too long.
    """
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
    return db


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
