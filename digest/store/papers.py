"""Papers, the titles they were seen under, the dumps that showed them, and fetch validators.

Papers are deduplicated here: a paper is matched by arXiv id when the source gives one,
else by its normalised title (`titles.title_key`); within one dump, the first entry of a
paper wins and a repeat is reported, never stored. What a later sighting may change is
decided by `merge.merge_sighting`; this module only reads the stored record and writes
what comes back. The validators (ETag, Last-Modified) of fetched API responses live here
too, beside the dumps they produced, so a fresh database never answers a conditional
request for data it does not hold. Nothing here parses, ranks or renders.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from digest.merge import PaperRecord, merge_sighting, new_record
from digest.models import Dump, Entry, Organization, Paper
from digest.rows import Duplicate, IngestResult, Validators
from digest.store.base import StoreBase, day_or_none, moment
from digest.titles import paper_id, title_key

PAPER_COLUMNS = (
    "p.id, p.title, p.abstract, p.authors_count, p.org_id, p.org_name, p.published, p.upvotes, "
    "p.first_seen, p.last_seen, p.arxiv_id, p.authors, p.url, p.comments, p.ai_summary, p.ai_keywords, "
    "(SELECT COUNT(DISTINCT d.listing_date) FROM sightings s JOIN dumps d ON d.id = s.dump_id "
    "WHERE s.paper_id = p.id)"
)
FIRST_SIGHTING = "p.first_seen, p.first_dump, p.rowid"


def paper_version(column: str) -> str:
    """A column that changes whenever the paper `column` names may have: every dump that
    showed it (number and content hash), in the order they came. A paper's row changes only
    when a dump shows it (`add_dump`), and what it holds depends on every such dump (a field
    one left empty keeps another's), so two stores whose dump numbers met (a database
    restored from a backup, then fed other dumps) tell their papers apart."""
    return (
        "(SELECT group_concat(h, ' ') FROM (SELECT s.dump_id || ':' || d.sha256 AS h FROM sightings s "
        f"JOIN dumps d ON d.id = s.dump_id WHERE s.paper_id = {column} ORDER BY s.dump_id))"
    )


_RECORD_COLUMNS = (
    "title, abstract, first_seen, last_seen, arxiv_id, authors_count, org_id, org_name, published, upvotes, "
    "authors, url, comments, published_at, ai_summary, ai_keywords"
)


@dataclass(frozen=True, slots=True)
class _Match:
    """The stored paper an entry shows, and what the store keeps of it."""

    id: str
    record: PaperRecord


class PapersMixin(StoreBase):
    """Dumps, papers, titles and fetch validators (see the module docstring)."""

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
                match, title_taken = _find_paper(db, entry, key)
                if match is not None and match.id in seen:
                    # The dump's first entry of a paper wins: a repeat changes nothing.
                    duplicates.append(Duplicate(entry.line, seen[match.id]))
                    continue
                if match is None:
                    # A title already used by a paper with another arXiv id names a second paper; its
                    # id then derives from the arXiv id, and the title stays an alias of the first one.
                    pid = paper_id(f"arxiv:{entry.arxiv_id}" if title_taken else key)
                    _insert_paper(db, pid, new_record(entry, dump.date), dump_id)
                    new += 1
                else:
                    pid = match.id
                    merged = merge_sighting(match.record, entry, dump.date)
                    if merged != match.record:
                        _update_paper(db, pid, merged)
                    updated += 1
                db.execute("INSERT OR IGNORE INTO titles (key, paper_id) VALUES (?, ?)", (key, pid))
                seen[pid] = entry.line
                db.execute(
                    "INSERT INTO sightings (dump_id, paper_id, position, upvotes) VALUES (?, ?, ?, ?)",
                    (dump_id, pid, position, entry.upvotes),
                )
            return IngestResult(new=True, papers_new=new, papers_updated=updated, duplicates=tuple(duplicates))

    def dump_count(self) -> int:
        count: int = self._db.execute("SELECT COUNT(*) FROM dumps").fetchone()[0]
        return count

    def latest_listing_date(self) -> date | None:
        return day_or_none(self._db.execute("SELECT MAX(listing_date) FROM dumps").fetchone()[0])

    def api_listing_days(self, first: date, last: date) -> set[date]:
        """The listing days from `first` to `last` that a stored API response holds (fetched,
        or a saved response ingested)."""
        rows = self._db.execute(
            "SELECT DISTINCT listing_date FROM dumps WHERE kind = 'hf-api' AND listing_date BETWEEN ? AND ?",
            (first.isoformat(), last.isoformat()),
        )
        return {date.fromisoformat(row[0]) for row in rows}

    def api_listing_papers(self, day: date) -> set[str]:
        """The arXiv ids of the papers that the stored API responses of listing day `day` show."""
        rows = self._db.execute(
            "SELECT DISTINCT p.arxiv_id FROM dumps d JOIN sightings s ON s.dump_id = d.id "
            "JOIN papers p ON p.id = s.paper_id "
            "WHERE d.kind = 'hf-api' AND d.listing_date = ? AND p.arxiv_id IS NOT NULL",
            (day.isoformat(),),
        )
        return {row[0] for row in rows}

    def watermark(self) -> int:
        """The newest dump's sequence number: a digest records it to know what it has seen."""
        newest: int = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM dumps").fetchone()[0]
        return newest

    def started_at(self) -> datetime | None:
        """When the store got its first data (its first dump, else its first digest), or None."""
        row = self._db.execute(
            "SELECT COALESCE((SELECT MIN(ingested_at) FROM dumps), (SELECT MIN(built_at) FROM digests))"
        ).fetchone()
        return moment(row[0]) if row[0] else None

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
        count: int = self._db.execute("SELECT COUNT(*) FROM papers").fetchone()[0]
        return count

    def iter_papers(self) -> Iterator[Paper]:
        """Every paper, in order of first sighting."""
        for row in self._db.execute(f"SELECT {PAPER_COLUMNS} FROM papers p ORDER BY {FIRST_SIGHTING}"):
            yield paper_of(row)

    def recent_papers(self, limit: int) -> list[Paper]:
        """The `limit` papers first seen most recently, newest first (the feed of all papers)."""
        query = (
            f"SELECT {PAPER_COLUMNS} FROM papers p ORDER BY p.first_seen DESC, p.first_dump DESC, p.rowid DESC LIMIT ?"
        )
        return [paper_of(row) for row in self._db.execute(query, (limit,))]

    def first_day_orders(self, ids: Sequence[str]) -> dict[str, int]:
        """Each paper's place among the papers first seen on its day, in the order they were
        stored (0 for the first): stable, since later papers come after it."""
        found: dict[str, int] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            query = (
                "SELECT p.id, (SELECT COUNT(*) FROM papers q WHERE q.first_seen = p.first_seen "
                f"AND (q.first_dump, q.rowid) < (p.first_dump, p.rowid)) FROM papers p WHERE p.id IN ({marks})"
            )
            found.update(self._db.execute(query, chunk).fetchall())
        return found

    def find_papers(self, references: Sequence[str]) -> list[Paper]:
        """The stored papers that references name: a paper id, an arXiv id, or a title
        (matched like ingest matches, by normalised title, through every title the paper was
        seen under). Unknown references are left out; see `resolve_references` for which."""
        found = self.resolve_references(references)
        return self.get_papers(list(dict.fromkeys(pid for pid in found.values() if pid is not None)))

    def resolve_references(self, references: Sequence[str]) -> dict[str, str | None]:
        """Each reference (a paper id, an arXiv id or a title) with the id of the stored paper
        it names, or None: the one matching rule for liked papers, wherever they are used."""
        found: dict[str, str | None] = {}
        for reference in references:
            row = self._db.execute(
                "SELECT id FROM papers WHERE id = ?1 OR arxiv_id = ?1 "
                "UNION ALL SELECT paper_id FROM titles WHERE key = ?2 LIMIT 1",
                (reference.strip(), title_key(reference)),
            ).fetchone()
            found[reference] = row[0] if row else None
        return found

    def get_papers(self, ids: Sequence[str]) -> list[Paper]:
        """The papers with these ids, in the order given (unknown ids are left out)."""
        return read_papers(self._db, ids)


def read_papers(db: sqlite3.Connection, ids: Sequence[str]) -> list[Paper]:
    """The papers with these ids, in the order given (unknown ids are left out)."""
    found: dict[str, Paper] = {}
    for chunk in _chunks(ids):
        marks = ",".join("?" * len(chunk))
        for row in db.execute(f"SELECT {PAPER_COLUMNS} FROM papers p WHERE p.id IN ({marks})", chunk):
            found[row[0]] = paper_of(row)
    return [found[i] for i in ids if i in found]


def paper_of(row: Sequence[Any]) -> Paper:
    """A row of `PAPER_COLUMNS` as a `Paper`."""
    (pid, title, abstract, count, org_id, org_name, published, upvotes, first, last, arxiv, authors, url, comments) = (
        row[:14]
    )
    ai_summary, ai_keywords, n = row[14:]
    return Paper(
        id=pid,
        title=title,
        abstract=abstract,
        authors_count=count,
        organization=Organization(org_id, org_name or org_id) if org_id else None,
        published=day_or_none(published),
        upvotes=upvotes,
        first_seen=date.fromisoformat(first),
        last_seen=date.fromisoformat(last),
        sightings=n,
        arxiv_id=arxiv,
        authors=tuple(json.loads(authors)),
        url=url,
        comments=comments,
        ai_summary=ai_summary,
        ai_keywords=tuple(json.loads(ai_keywords)),
    )


def _chunks(ids: Sequence[str], size: int = 500) -> Iterator[list[str]]:
    # SQLite limits the number of parameters of one statement.
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _find_paper(db: sqlite3.Connection, entry: Entry, key: str) -> tuple[_Match | None, bool]:
    """The stored paper an entry shows: by arXiv id first, else by title.

    The second value is True when the title belongs to a paper with a different arXiv id.
    """
    if entry.arxiv_id:
        row = db.execute(f"SELECT id, {_RECORD_COLUMNS} FROM papers WHERE arxiv_id = ?", (entry.arxiv_id,)).fetchone()
        if row:
            return _Match(row[0], _record(row[1:])), False
    row = db.execute(
        f"SELECT p.id, {', '.join('p.' + c for c in _RECORD_COLUMNS.split(', '))} "
        "FROM titles t JOIN papers p ON p.id = t.paper_id WHERE t.key = ?",
        (key,),
    ).fetchone()
    if row is None:
        return None, False
    match = _Match(row[0], _record(row[1:]))
    if entry.arxiv_id and match.record.arxiv_id and match.record.arxiv_id != entry.arxiv_id:
        return None, True
    return match, False


def _record(row: Sequence[Any]) -> PaperRecord:
    title, abstract, first, last, arxiv, count, org_id, org_name, published, upvotes, authors, url, comments, at = row[
        :14
    ]
    ai_summary, ai_keywords = row[14:]
    return PaperRecord(
        title=title,
        abstract=abstract,
        first_seen=date.fromisoformat(first),
        last_seen=date.fromisoformat(last),
        arxiv_id=arxiv,
        authors_count=count,
        organization=Organization(org_id, org_name or org_id) if org_id else None,
        published=day_or_none(published),
        upvotes=upvotes,
        authors=tuple(json.loads(authors)),
        url=url,
        comments=comments,
        published_at=datetime.fromisoformat(at) if at else None,
        ai_summary=ai_summary,
        ai_keywords=tuple(json.loads(ai_keywords)),
    )


def _values(record: PaperRecord) -> tuple[Any, ...]:
    """The record in the order of `_RECORD_COLUMNS`."""
    org = record.organization
    return (
        record.title,
        record.abstract,
        record.first_seen.isoformat(),
        record.last_seen.isoformat(),
        record.arxiv_id,
        record.authors_count,
        org.id if org else None,
        org.name if org else None,
        record.published.isoformat() if record.published else None,
        record.upvotes,
        json.dumps(list(record.authors), ensure_ascii=False),
        record.url,
        record.comments,
        record.published_at.isoformat() if record.published_at else None,
        record.ai_summary,
        json.dumps(list(record.ai_keywords), ensure_ascii=False),
    )


def _insert_paper(db: sqlite3.Connection, pid: str, record: PaperRecord, dump_id: int) -> None:
    marks = ", ".join("?" * (len(_RECORD_COLUMNS.split(", ")) + 2))
    db.execute(
        f"INSERT INTO papers (id, {_RECORD_COLUMNS}, first_dump) VALUES ({marks})",
        (pid, *_values(record), dump_id),
    )


def _update_paper(db: sqlite3.Connection, pid: str, record: PaperRecord) -> None:
    assignments = ", ".join(f"{column} = ?" for column in _RECORD_COLUMNS.split(", "))
    db.execute(f"UPDATE papers SET {assignments} WHERE id = ?", (*_values(record), pid))
