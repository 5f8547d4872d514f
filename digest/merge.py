"""Which sighting of a paper may change which stored field: the merge policy.

A paper is one row however many listings show it. When a listing shows a paper the
store already has, `merge_sighting` decides what the row becomes:

- the newest listing's view wins (a listing day on or after the stored `last_seen`): its
  title and abstract replace the stored ones, its other fields replace the stored ones
  where it knows them (upvotes included), and `last_seen` moves to its day;
- a *bare* view (a title and an abstract, no byline, date, upvotes or id: a cut-off or
  byline-less entry) wins only over another bare view: it never replaces a richer title,
  abstract or upvote count;
- an older listing (or a bare view that does not win) only fills what is still unknown,
  and may move `first_seen` earlier;
- Hugging Face's `ai_summary` and `ai_keywords` follow the same rule, with an empty summary
  or keyword list counting as unknown: the newest non-empty one wins, and a listing
  without them never erases them.

Pure: records and entries in, a record out. The store reads the stored record, asks here,
and writes what comes back; nothing here touches SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TypeVar

from digest.models import Entry, Organization

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PaperRecord:
    """What the store keeps of one paper, besides its id and where it was first seen."""

    title: str
    abstract: str
    first_seen: date
    last_seen: date
    arxiv_id: str | None = None
    authors_count: int | None = None
    organization: Organization | None = None
    published: date | None = None
    upvotes: int | None = None
    authors: tuple[str, ...] = ()
    url: str | None = None
    comments: int | None = None
    published_at: datetime | None = None
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()

    @property
    def bare(self) -> bool:
        """True when the record knows no more than a bare entry would (see the module docstring)."""
        return _bare(self)


def new_record(entry: Entry, listed: date) -> PaperRecord:
    """The record of a paper first shown by `entry` on the listing of `listed`."""
    return PaperRecord(
        title=entry.title,
        abstract=entry.abstract,
        first_seen=listed,
        last_seen=listed,
        arxiv_id=entry.arxiv_id,
        authors_count=entry.authors_count,
        organization=entry.organization,
        published=entry.published,
        upvotes=entry.upvotes,
        authors=entry.authors,
        url=entry.url,
        comments=entry.comments,
        published_at=entry.published_at,
        ai_summary=entry.ai_summary or None,
        ai_keywords=entry.ai_keywords,
    )


def merge_sighting(stored: PaperRecord, entry: Entry, listed: date) -> PaperRecord:
    """The record after the listing of `listed` showed `entry` (see the module docstring)."""
    if listed >= stored.last_seen and (not _bare(entry) or stored.bare):
        return PaperRecord(
            title=entry.title,
            abstract=entry.abstract,
            first_seen=stored.first_seen,
            last_seen=listed,
            arxiv_id=_first(entry.arxiv_id, stored.arxiv_id),
            authors_count=_first(entry.authors_count, stored.authors_count),
            organization=_first(entry.organization, stored.organization),
            published=_first(entry.published, stored.published),
            upvotes=_first(entry.upvotes, stored.upvotes),
            authors=entry.authors or stored.authors,
            url=_first(entry.url, stored.url),
            comments=_first(entry.comments, stored.comments),
            published_at=_first(entry.published_at, stored.published_at),
            ai_summary=entry.ai_summary or stored.ai_summary,
            ai_keywords=entry.ai_keywords or stored.ai_keywords,
        )
    return replace(
        stored,
        first_seen=min(stored.first_seen, listed),
        arxiv_id=_first(stored.arxiv_id, entry.arxiv_id),
        authors_count=_first(stored.authors_count, entry.authors_count),
        organization=_first(stored.organization, entry.organization),
        published=_first(stored.published, entry.published),
        upvotes=_first(stored.upvotes, entry.upvotes),
        authors=stored.authors or entry.authors,
        url=_first(stored.url, entry.url),
        comments=_first(stored.comments, entry.comments),
        published_at=_first(stored.published_at, entry.published_at),
        ai_summary=stored.ai_summary or entry.ai_summary or None,
        ai_keywords=stored.ai_keywords or entry.ai_keywords,
    )


def _first(preferred: T | None, fallback: T | None) -> T | None:
    return preferred if preferred is not None else fallback


def _bare(view: Entry | PaperRecord) -> bool:
    return (
        view.published is None
        and view.upvotes is None
        and view.authors_count is None
        and view.organization is None
        and view.arxiv_id is None
        and not view.authors
    )
