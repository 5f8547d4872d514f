"""The state database's schema: its migrations, and opening a database at the newest one.

The schema is versioned with `PRAGMA user_version`; opening a database runs the
migrations it lacks, in one transaction, one process at a time. A migration is SQL, or a
function for what SQL cannot say. This module never reads or writes rows of its own.
"""

from __future__ import annotations

import re
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


_LEDGER_KEY = re.compile(r"PRIMARY KEY\s*\(\s*profile_id\s*,\s*day\s*,\s*subscriber\s*\)")
_LEDGER_DAY = re.compile(r"(\n(\s*)day\s+TEXT\s+NOT\s+NULL\s*,)")
_LEDGER_STATES = re.compile(r"(CHECK\s*\(\s*state\s+IN\s*\([^)]*'skipped')(\s*\))")
_ROLLUP_TABLES = """
    CREATE TABLE IF NOT EXISTS rollups (
        profile_id TEXT NOT NULL,
        period TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('week', 'month', 'missed')),
        first_day TEXT NOT NULL,
        last_day TEXT NOT NULL,
        built_at TEXT NOT NULL,
        considered INTEGER NOT NULL,
        above INTEGER NOT NULL,
        shown INTEGER NOT NULL,
        PRIMARY KEY (profile_id, period)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS rollups_kind ON rollups(profile_id, kind, first_day);
    CREATE TABLE IF NOT EXISTS rollup_items (
        profile_id TEXT NOT NULL,
        period TEXT NOT NULL,
        paper_id TEXT NOT NULL REFERENCES papers(id),
        kind TEXT NOT NULL CHECK (kind IN ('item', 'runner-up')),
        rank INTEGER NOT NULL,
        score REAL NOT NULL,
        reasons TEXT NOT NULL,
        PRIMARY KEY (profile_id, period, paper_id),
        FOREIGN KEY (profile_id, period) REFERENCES rollups(profile_id, period)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS rollup_mails (
        profile_id TEXT NOT NULL,
        period TEXT NOT NULL,
        subscriber TEXT NOT NULL,
        considered INTEGER NOT NULL,
        above INTEGER NOT NULL,
        made_at TEXT NOT NULL,
        PRIMARY KEY (profile_id, period, subscriber),
        FOREIGN KEY (profile_id, period) REFERENCES rollups(profile_id, period)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS rollup_mail_items (
        profile_id TEXT NOT NULL,
        period TEXT NOT NULL,
        subscriber TEXT NOT NULL,
        paper_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('item', 'also')),
        rank INTEGER NOT NULL,
        PRIMARY KEY (profile_id, period, subscriber, paper_id),
        FOREIGN KEY (profile_id, period, subscriber) REFERENCES rollup_mails(profile_id, period, subscriber),
        FOREIGN KEY (profile_id, period, paper_id) REFERENCES rollup_items(profile_id, period, paper_id)
    ) WITHOUT ROWID
"""


def _rollups(db: sqlite3.Connection) -> None:
    """Migration 7: roll-ups. The ledger's key gains `period` ('' for a daily digest's email,
    `2025-W52`, `2025-12` or a span of missed days for a roll-up's) and its states
    'rolled-up'; the tables of roll-ups (what each holds) and of roll-up emails (what each
    subscriber's copy holds) are added.

    Written to run after any other migration: SQLite cannot change a key in place, so the
    ledger is copied into a table made from its own current definition (columns another
    migration added come along), and every step checks whether it is done already."""
    columns = [row[1] for row in db.execute("PRAGMA table_info(deliveries)")]
    if "period" not in columns:
        (definition,) = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'"
        ).fetchone()
        indexes = [
            row[0]
            for row in db.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deliveries' AND sql IS NOT NULL"
            )
        ]
        # The key's columns lead the table, in the key's order (SQLite's checks of a WITHOUT
        # ROWID table misread its rows otherwise: quick_check reports NULLs in 3.40).
        rebuilt, days = _LEDGER_DAY.subn(r"\1\n\2period TEXT NOT NULL DEFAULT '',", definition, count=1)
        rebuilt, keys = _LEDGER_KEY.subn("PRIMARY KEY (profile_id, day, period, subscriber)", rebuilt)
        rebuilt, states = _LEDGER_STATES.subn(r"\1, 'rolled-up'\2", rebuilt)
        if days != 1 or keys != 1 or states != 1:
            raise StoreError("cannot add roll-ups to the delivery ledger: its table is not as expected")
        rebuilt = rebuilt.replace("CREATE TABLE deliveries", "CREATE TABLE deliveries_by_period", 1)
        listed = ", ".join(columns)
        db.execute(rebuilt)
        db.execute(f"INSERT INTO deliveries_by_period ({listed}) SELECT {listed} FROM deliveries")
        db.execute("DROP TABLE deliveries")
        db.execute("ALTER TABLE deliveries_by_period RENAME TO deliveries")
        for index in indexes:
            db.execute(index)
    for statement in _split_sql(_ROLLUP_TABLES):
        db.execute(statement)


def _add_ai_text(db: sqlite3.Connection) -> None:
    """Papers keep Hugging Face's machine-written summary and keywords (`ai_summary`, and
    `ai_keywords` as a JSON list). Adds only the columns a database lacks, so it does the
    same wherever it sits among the migrations."""
    present = {row[1] for row in db.execute("PRAGMA table_info(papers)")}
    if "ai_summary" not in present:
        db.execute("ALTER TABLE papers ADD COLUMN ai_summary TEXT")
    if "ai_keywords" not in present:
        db.execute("ALTER TABLE papers ADD COLUMN ai_keywords TEXT NOT NULL DEFAULT '[]'")


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
    # 7 (issue 15, the web side): readers and their opaque ids, web subscriptions and the
    # requests waiting for confirmation, votes, preferences, request counters for rate
    # limits, and each reader's own digest when their votes or preferences make one.
    # IF NOT EXISTS: the step may be renumbered when branches merge, and running it twice is harmless.
    """
    CREATE TABLE IF NOT EXISTS readers (
        id TEXT PRIMARY KEY,
        address TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS subscriptions (
        profile_id TEXT NOT NULL,
        reader_id TEXT NOT NULL REFERENCES readers(id),
        confirmed_at TEXT NOT NULL,
        PRIMARY KEY (profile_id, reader_id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS confirmations (
        profile_id TEXT NOT NULL,
        reader_id TEXT NOT NULL REFERENCES readers(id),
        requested_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        PRIMARY KEY (profile_id, reader_id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS votes (
        profile_id TEXT NOT NULL,
        reader_id TEXT NOT NULL REFERENCES readers(id),
        paper_id TEXT NOT NULL REFERENCES papers(id),
        kind TEXT NOT NULL CHECK (kind IN ('more', 'less', 'mute')),
        organization TEXT,
        at TEXT NOT NULL,
        undone_at TEXT,
        PRIMARY KEY (profile_id, reader_id, paper_id, kind)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS preferences (
        profile_id TEXT NOT NULL,
        reader_id TEXT NOT NULL REFERENCES readers(id),
        paused_until TEXT,
        max_items INTEGER,
        cadence TEXT CHECK (cadence IN ('daily', 'weekly', 'monthly')),
        updated_at TEXT NOT NULL,
        PRIMARY KEY (profile_id, reader_id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS request_counts (
        bucket TEXT NOT NULL,
        window INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (bucket, window)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS personal_digests (
        profile_id TEXT NOT NULL,
        day TEXT NOT NULL,
        reader_id TEXT NOT NULL REFERENCES readers(id),
        built_at TEXT NOT NULL,
        source_watermark INTEGER NOT NULL,
        candidates INTEGER NOT NULL,
        empty_reason TEXT,
        PRIMARY KEY (profile_id, day, reader_id)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS personal_items (
        profile_id TEXT NOT NULL,
        day TEXT NOT NULL,
        reader_id TEXT NOT NULL,
        paper_id TEXT NOT NULL REFERENCES papers(id),
        rank INTEGER NOT NULL,
        score REAL NOT NULL,
        reasons TEXT NOT NULL,
        PRIMARY KEY (profile_id, day, reader_id, paper_id),
        FOREIGN KEY (profile_id, day, reader_id) REFERENCES personal_digests(profile_id, day, reader_id)
    ) WITHOUT ROWID;
    """,
    # 8 (issue 17): roll-ups (weekly, monthly, what a reader missed) and the ledger's period
    _rollups,
    # 9: Hugging Face's ai_summary and ai_keywords of each paper (issue 16)
    _add_ai_text,
    # 10 (issue 18): which batch of senders took a row to hand its message over ('sending'),
    # so that several senders at once (`[smtp] connections`) each take a row only once
    "ALTER TABLE deliveries ADD COLUMN taken_by TEXT;",
    # 11: how far `digest prune` went, so that raising `retention_days` afterwards cannot let
    # a `--date` whose ledger rows are gone be mailed again
    """
    CREATE TABLE IF NOT EXISTS prunes (
        pruned_before TEXT NOT NULL,
        pruned_at TEXT NOT NULL
    );
    """,
    # 12: the newest dump when a roll-up read its papers, so the next one takes exactly those
    # stored later (NULL for roll-ups built before: their build time stands in)
    "ALTER TABLE rollups ADD COLUMN watermark INTEGER;",
    # 13: the ledger's addresses as first spelled, found fast (`Store.ledger_spellings`): an
    # address whose capitals changed in digest.toml is the same reader, not a new one
    """
    CREATE INDEX IF NOT EXISTS deliveries_capitals ON deliveries(profile_id, subscriber)
        WHERE subscriber != lower(subscriber);
    CREATE INDEX IF NOT EXISTS deliveries_lower ON deliveries(profile_id, lower(subscriber));
    """,
)

SCHEMA_VERSION = len(_MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at `path`, its schema brought up to date.

    Raises `StoreError` for a file that is not a database, a newer schema, a lock held too
    long, or a folder that cannot be made (a file in its place): nothing was done yet.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path}: cannot make its folder {path.parent}: {exc.strerror or exc}") from None
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
