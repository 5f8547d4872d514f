"""What the commands print as data: papers, ranked papers and ledger rows as JSON-ready records, and CSV.

Plain functions from named rows to dicts of JSON types (dates as ISO strings). Nothing
here reads the store or prints: the CLI writes what these return.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO, Any

from digest.chars import clean
from digest.models import Paper, ScoredPaper
from digest.reason_records import reason_record
from digest.rows import Delivery, VoteRecord

EXPORT_FIELDS = (
    "id",
    "title",
    "abstract",
    "authors_count",
    "organization",
    "published",
    "upvotes",
    "first_seen",
    "sightings",
    "arxiv_id",
    "authors",
    "url",
    "comments",
)
CSV_AUTHOR_SEPARATOR = "; "


def vote_record(vote: VoteRecord, title: str) -> dict[str, Any]:
    """A vote as `digest feedback --json` prints it (`title`: the paper's)."""
    return {
        "profile": vote.profile_id,
        "reader": vote.address,
        "reader_id": vote.reader_id,
        "vote": str(vote.kind),
        "paper_id": vote.paper_id,
        "title": title,
        "organization": vote.organization,
        "at": vote.at.isoformat(),
        "undone_at": vote.undone_at.isoformat() if vote.undone_at else None,
    }


def paper_record(paper: Paper) -> dict[str, Any]:
    """A paper as `digest export` writes it (JSON types; dates as ISO strings). Its text
    without the characters no output carries (`chars.clean`: control, format and
    non-characters), which a terminal showing the export would act on."""
    org = paper.organization
    return {
        "id": paper.id,
        "title": clean(paper.title),
        "abstract": clean(paper.abstract),
        "authors_count": paper.authors_count,
        "organization": {"id": clean(org.id), "name": clean(org.name)} if org else None,
        "published": paper.published.isoformat() if paper.published else None,
        "upvotes": paper.upvotes,
        "first_seen": paper.first_seen.isoformat(),
        "sightings": paper.sightings,
        "arxiv_id": paper.arxiv_id,
        "authors": [clean(author) for author in paper.authors],
        "url": paper.url,
        "comments": paper.comments,
    }


def scored_record(scored: ScoredPaper, words: list[str]) -> dict[str, Any]:
    """A ranked paper as `digest rank --json` prints it: `reasons` in `words` (as the
    templates word them), `why` as data."""
    return {
        **paper_record(scored.paper),
        "score": scored.score,
        "reasons": [clean(word) for word in words],
        "why": [_cleaned(reason_record(r)) for r in scored.reasons],
    }


def _cleaned(record: dict[str, Any]) -> dict[str, Any]:
    """A reason's record with its text (an author's, an organisation's name, a title) cleaned."""
    return {
        key: clean(value) if isinstance(value, str) else [clean(v) for v in value] if isinstance(value, list) else value
        for key, value in record.items()
    }


def delivery_record(row: Delivery) -> dict[str, Any]:
    """A ledger row as `digest deliveries --json` prints it."""
    return {
        "day": row.day.isoformat(),
        "period": row.period or None,
        "profile": row.profile_id,
        "subscriber": row.subscriber,
        "transport": row.transport,
        "state": row.state,
        "attempts": row.attempts,
        "message_id": row.message_id,
        "last_error": row.last_error,
        "possible_duplicate": row.possible_duplicate,
        "note": row.note,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
    }


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula, with a `'` before it (shown as text)."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def write_csv(out: IO[str], records: Iterable[dict[str, Any]]) -> None:
    """Records of `paper_record` as CSV: the organisation in two columns, the authors in one
    cell, and no text that a spreadsheet would run as a formula (`spreadsheet_safe`)."""
    columns = [c for c in EXPORT_FIELDS if c != "organization"]
    columns[columns.index("authors_count") + 1 : columns.index("authors_count") + 1] = [
        "organization_id",
        "organization_name",
    ]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        org = record.pop("organization")
        record["organization_id"] = org["id"] if org else None
        record["organization_name"] = org["name"] if org else None
        record["authors"] = CSV_AUTHOR_SEPARATOR.join(record["authors"])
        writer.writerow({key: spreadsheet_safe(value) for key, value in record.items()})
