"""The merge policy as input/expected pairs: a stored record, a sighting, the record it becomes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from digest.merge import PaperRecord, merge_sighting, new_record
from digest.models import Entry, Organization

DEC_1, DEC_2, DEC_3 = date(2025, 12, 1), date(2025, 12, 2), date(2025, 12, 3)
OPENBMB = Organization("openbmb", "OpenBMB")

STORED = PaperRecord(
    title="Stored Title",
    abstract="Stored abstract.",
    first_seen=DEC_2,
    last_seen=DEC_2,
    authors_count=3,
    published=date(2025, 11, 30),
    upvotes=10,
)
BARE = PaperRecord(title="Bare Title", abstract="Bare abstract.", first_seen=DEC_2, last_seen=DEC_2)
AI_STORED = replace(STORED, ai_summary="Stored summary.", ai_keywords=("stored",))

FULL = Entry(
    "New Title",
    "New abstract.",
    authors_count=4,
    organization=OPENBMB,
    published=date(2025, 12, 1),
    upvotes=12,
    arxiv_id="2512.00001",
    authors=("Ada Lovelace",),
    url="https://huggingface.co/papers/2512.00001",
    comments=2,
    published_at=datetime(2025, 12, 1, 9, tzinfo=UTC),
)
NO_UPVOTES = Entry("New Title", "New abstract.", authors_count=4, published=date(2025, 12, 1))
BARE_ENTRY = Entry("Bare View", "Only a title and an abstract.")

CASES = {
    # The newest listing's view wins: title, abstract, and every field it knows.
    "newer full view replaces": (
        STORED,
        FULL,
        DEC_3,
        replace(
            STORED,
            title="New Title",
            abstract="New abstract.",
            last_seen=DEC_3,
            authors_count=4,
            organization=OPENBMB,
            published=date(2025, 12, 1),
            upvotes=12,
            arxiv_id="2512.00001",
            authors=("Ada Lovelace",),
            url="https://huggingface.co/papers/2512.00001",
            comments=2,
            published_at=datetime(2025, 12, 1, 9, tzinfo=UTC),
        ),
    ),
    # The same day counts as newest too.
    "same day replaces": (STORED, NO_UPVOTES, DEC_2, replace(STORED, title="New Title", abstract="New abstract.",
                                                              authors_count=4, published=date(2025, 12, 1))),
    # What the newer view does not know (upvotes here) keeps its stored value.
    "unknown fields keep their value": (
        STORED,
        NO_UPVOTES,
        DEC_3,
        replace(STORED, title="New Title", abstract="New abstract.", last_seen=DEC_3, authors_count=4,
                published=date(2025, 12, 1)),
    ),
    # An older listing only fills what is unknown, and moves first_seen back.
    "older view fills in": (
        STORED,
        FULL,
        DEC_1,
        replace(
            STORED,
            first_seen=DEC_1,
            organization=OPENBMB,
            arxiv_id="2512.00001",
            authors=("Ada Lovelace",),
            url="https://huggingface.co/papers/2512.00001",
            comments=2,
            published_at=datetime(2025, 12, 1, 9, tzinfo=UTC),
        ),
    ),
    # ...upvotes included: a newer listing that showed no count does not hide an older one's
    # (a known count is kept, as in the case above).
    "older upvotes fill in unknown ones": (
        replace(STORED, upvotes=None), FULL, DEC_1, replace(merge_sighting(STORED, FULL, DEC_1), upvotes=12),
    ),
    # A bare view never replaces a richer one, even when newer.
    "bare never replaces rich": (STORED, BARE_ENTRY, DEC_3, STORED),
    # A bare view replaces another bare view when it is newer.
    "bare replaces bare": (
        BARE, BARE_ENTRY, DEC_3, replace(BARE, title="Bare View", abstract=BARE_ENTRY.abstract, last_seen=DEC_3)
    ),
    # A bare view from an older listing moves first_seen back and changes nothing else.
    "older bare moves first_seen": (STORED, BARE_ENTRY, DEC_1, replace(STORED, first_seen=DEC_1)),
    # Hugging Face's summary and keywords: the newest non-empty ones win...
    "newer ai text replaces": (
        AI_STORED, replace(FULL, ai_summary="Newer summary.", ai_keywords=("newer",)), DEC_3,
        replace(merge_sighting(AI_STORED, FULL, DEC_3), ai_summary="Newer summary.", ai_keywords=("newer",)),
    ),
    # ...a newer listing without them (or with empty ones) keeps them...
    "newer without ai text keeps it": (
        AI_STORED, replace(FULL, ai_summary="", ai_keywords=()), DEC_3,
        replace(merge_sighting(STORED, FULL, DEC_3), ai_summary="Stored summary.", ai_keywords=("stored",)),
    ),
    # ...and an older listing only fills them in when they are unknown.
    "older ai text fills in": (
        STORED, replace(FULL, ai_summary="Old summary.", ai_keywords=("old",)), DEC_1,
        replace(merge_sighting(STORED, FULL, DEC_1), ai_summary="Old summary.", ai_keywords=("old",)),
    ),
    "older ai text never replaces": (
        AI_STORED, replace(FULL, ai_summary="Old summary.", ai_keywords=("old",)), DEC_1,
        replace(merge_sighting(STORED, FULL, DEC_1), ai_summary="Stored summary.", ai_keywords=("stored",)),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_merge_pairs(case: str) -> None:
    stored, entry, listed, expected = CASES[case]
    assert merge_sighting(stored, entry, listed) == expected


def test_a_new_record_is_the_entry_on_its_listing_day() -> None:
    record = new_record(FULL, DEC_2)
    assert (record.first_seen, record.last_seen, record.title, record.upvotes) == (DEC_2, DEC_2, "New Title", 12)
    assert new_record(BARE_ENTRY, DEC_2).bare and not record.bare


def test_merging_is_idempotent() -> None:
    for stored, entry, listed, _ in CASES.values():
        once = merge_sighting(stored, entry, listed)
        assert merge_sighting(once, entry, listed) == once
