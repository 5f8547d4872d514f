"""The Daily Papers API parser on fixtures in the documented response shape.

`fixtures/daily_papers_2026-01-02.json` follows the shape read by huggingface_hub's
`PaperInfo` (src/huggingface_hub/hf_api.py) for `GET /api/daily_papers`: a list of
`{"paper": {...}, "publishedAt", "title", "summary", "numComments", ...}` objects.
"""

from __future__ import annotations

import copy
import json
import unicodedata
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.ingest.hf_api import (
    PAPER_PAGE,
    NotAnApiResponse,
    api_content_hash,
    api_listing_day,
    arxiv_id,
    decode_api_response,
    looks_like_api_response,
    parse_api_items,
    parse_api_response,
)
from digest.models import Organization

FIXTURE = Path(__file__).parent / "fixtures" / "daily_papers_2026-01-02.json"
DAY = date(2026, 1, 2)


def fixture_items() -> list[dict[str, Any]]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def api_item(arxiv: str, title: str, **paper: Any) -> dict[str, Any]:
    """One item in the documented shape, with `paper` fields overridable."""
    fields: dict[str, Any] = {
        "id": arxiv,
        "title": title,
        "summary": f"Abstract of {title}.",
        "authors": [{"name": "Ada Lovelace", "hidden": False}],
        "publishedAt": "2025-12-30T10:00:00.000Z",
        "upvotes": 3,
    }
    fields.update(paper)
    return {"paper": fields, "title": title, "numComments": 1, "publishedAt": "2026-01-02T01:00:00.000Z"}


def test_fixture_gives_every_field() -> None:
    dump = parse_api_response(FIXTURE.read_bytes(), "f.json", DAY)
    assert (dump.kind, dump.date, len(dump.entries), dump.problems) == ("hf-api", DAY, 3, ())
    light, cfm, sparse = dump.entries
    assert light.title == "Light Schrödinger Bridge"  # the NFD title and its line break, normalised
    assert light.abstract.startswith('Despite the recent advances in the field of computational Schr\\"odinger')
    assert "\n" not in light.abstract
    assert light.arxiv_id == "2310.01174" and light.url == PAPER_PAGE + "2310.01174"
    assert light.authors == ("Alexander Korotin", "Nikita Gushchin", "Evgeny Burnaev") and light.authors_count == 3
    assert light.published == date(2023, 10, 2)
    assert light.published_at == datetime(2023, 10, 2, 13, 6, 45, tzinfo=UTC)
    assert (light.upvotes, light.comments, light.organization, light.line) == (14, 2, None, 1)
    assert cfm.organization == Organization("openbmb", "OpenBMB") and (cfm.upvotes, cfm.comments) == (31, 0)
    assert sparse.title == "Sparse Attention Without Tears: <b>Fast</b> & Exact"  # kept as text, escaped later
    assert (sparse.upvotes, sparse.comments, sparse.line) == (0, 5, 3)
    assert light.ai_summary == "A lightweight, simulation-free Schrödinger Bridge solver."
    assert light.ai_keywords == ("Schrödinger Bridge", "optimal transport")
    assert (cfm.ai_summary, cfm.ai_keywords) == (None, ())


def test_hugging_faces_summary_and_keywords_are_extras() -> None:
    items = [
        api_item("2601.00020", "Tidy", ai_summary="  Two\nlines. ", ai_keywords=["MoE", " ", "MoE", "routing"]),
        api_item("2601.00021", "Odd summary", ai_summary=["not", "text"], ai_keywords="MoE, routing"),
        api_item("2601.00022", "Odd keyword", ai_keywords=["MoE", 7]),
        api_item("2601.00023", "Long", ai_summary="x" * 6000, ai_keywords=[f"k{i}" for i in range(150)]),
    ]
    dump = parse_api_items(items, "f.json", DAY)
    tidy, odd_summary, odd_keyword, long = dump.entries  # a mistyped extra never costs the paper
    assert (tidy.ai_summary, tidy.ai_keywords) == ("Two lines.", ("MoE", "routing"))
    assert (odd_summary.ai_summary, odd_summary.ai_keywords, odd_keyword.ai_keywords) == (None, (), ())
    assert len(long.ai_summary or "") == 5000 and len(long.ai_keywords) == 100
    assert [str(p) for p in dump.problems] == [
        "f.json:item 2: paper.ai_summary: expected a string, got a list; ignored",
        "f.json:item 2: paper.ai_keywords: expected a list of strings, got a string 'MoE, routing'; ignored",
        "f.json:item 3: paper.ai_keywords: expected a list of strings, got a list with an item that is not a "
        "string; ignored",
        "f.json:item 4: paper.ai_summary truncated to 5,000 characters",
        "f.json:item 4: paper.ai_keywords: cut to 100 keywords of at most 200 characters",
    ]


def test_version_suffix_is_dropped_and_old_style_ids_are_accepted() -> None:
    assert arxiv_id("2512.01234v3") == "2512.01234"
    assert arxiv_id("hep-th/9901001v1") == "hep-th/9901001"
    assert arxiv_id("math.GT/0309136") == "math.GT/0309136"
    assert arxiv_id("not-an-id") is None and arxiv_id("2512.123") is None
    (entry,) = parse_api_items([api_item("2512.01234v2", "T")], "f", DAY).entries
    assert entry.arxiv_id == "2512.01234" and entry.url == PAPER_PAGE + "2512.01234"


def test_ids_are_ascii_digits_only() -> None:
    # Fullwidth or Arabic-Indic digits read as an id made a second row of the same paper.
    assert arxiv_id("２５１２.０１２３４") is None and arxiv_id("٢٥١٢.٠١٢٣٤") is None
    dump = parse_api_items([api_item("2512.01234", "A Paper"), api_item("２５１２.０１２３４", "A Paper")], "f", DAY)
    assert [e.arxiv_id for e in dump.entries] == ["2512.01234"]
    assert [(p.item, "not an arXiv id" in p.message) for p in dump.problems] == [(2, True)]


def test_a_lone_surrogate_escape_becomes_a_replacement_character() -> None:
    # JSON can escape half of a UTF-16 pair alone; Python then holds a string no codec writes.
    item = api_item("2512.01234", "Lone \\ud800 title", summary="Abstract \\uDFFF.", extra={"\\ud83d": "x"})
    body = json.dumps([item], ensure_ascii=False).replace("\\\\", "\\").encode("utf-8")
    assert b"\\ud800" in body
    (decoded,) = decode_api_response(body)
    assert decoded["paper"]["title"] == "Lone \ufffd title" and decoded["paper"]["extra"] == {"\ufffd": "x"}
    dump = parse_api_response(body, "f.json", DAY)
    (entry,) = dump.entries
    assert (entry.title, entry.abstract) == ("Lone \ufffd title", "Abstract \ufffd.")
    api_content_hash(decode_api_response(body), DAY)  # hashes: the text can be encoded
    # A whole pair is one character, as ever.
    assert decode_api_response(b'[{"t": "\\ud83d\\ude00"}]') == [{"t": "\U0001f600"}]


def test_empty_list_is_a_day_with_no_papers() -> None:
    dump = parse_api_response(b"[]\n", "f.json", DAY)
    assert dump.entries == () and dump.problems == () and dump.date == DAY


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<!DOCTYPE html><html><body>Daily Papers</body></html>", "HTML"),
        (b'[{"paper": {"id": "2601.00001", "title": "Cut', "truncated JSON"),
        (b'[{"paper": {}}, oops]', "not valid JSON"),
        (b'{"error": "Invalid date"}', "got an object (the API said: 'Invalid date')"),
        (b'"a string"', "expected a JSON list of papers, got a string"),
        (b"", "empty response"),
        (b"\x00\x01[]", "binary"),
        (b"[\xff]", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested too deeply"),
    ],
)
def test_a_body_that_is_not_a_response_is_rejected_whole(body: bytes, why: str) -> None:
    with pytest.raises(NotAnApiResponse) as caught:
        parse_api_response(body, "f.json", DAY)
    assert why in str(caught.value)


def test_bad_items_are_reported_and_the_good_ones_kept() -> None:
    good = api_item("2601.00010", "Good One")
    items: list[Any] = [
        good,
        "not an object",
        {"title": "no paper"},
        api_item("2601.00011", "No id", id=None),
        api_item("12345", "Bad id"),
        api_item("2601.00012", 7),
        api_item("2601.00013", "Upvotes as text", upvotes="12"),
        api_item("2601.00014", "Authors not a list", authors="Ada, Alan"),
        api_item("2601.00015", "Author without name", authors=[{"hidden": False}]),
        api_item("2601.00016", "Bad time", publishedAt="yesterday"),
        {**api_item("2601.00017", "Negative comments"), "numComments": -1},
        api_item("2601.00018", "No summary", summary=None),
        api_item("2601.00019", "Org without name", organization={"fullname": "X"}),
        api_item("2601.00020", "From the future", publishedAt="2026-01-03T00:00:01Z"),
        api_item("2601.00010v2", "Good One again"),
        api_item("2601.00021", "Also good", upvotes=None, authors=[], publishedAt=None),
    ]
    dump = parse_api_items(items, "hf-daily-2026-01-02.json", DAY)
    assert [e.title for e in dump.entries] == ["Good One", "Also good"]
    also = dump.entries[1]
    assert (also.upvotes, also.authors, also.authors_count, also.published, also.comments) == (None, (), None, None, 1)
    assert [str(p) for p in dump.problems] == [
        f"hf-daily-2026-01-02.json:item {n}: {message}; item skipped"
        for n, message in [
            (2, "expected an object, got a string 'not an object'"),
            (3, "paper is missing"),
            (4, "paper.id is missing"),
            (5, "paper.id '12345' is not an arXiv id"),
            (6, "paper.title: expected a string, got a number 7"),
            (7, "paper.upvotes: expected a whole number of at least 0, got a string '12'"),
            (8, "paper.authors: expected a list, got a string 'Ada, Alan'"),
            (9, "paper.authors[0]: expected an object with a name, got null"),
            (10, "paper.publishedAt: 'yesterday' is not an ISO 8601 time"),
            (11, "numComments: expected a whole number of at least 0, got a number -1"),
            (12, "paper.summary is missing"),
            (13, "paper.organization.name is missing"),
            (14, "paper.publishedAt 2026-01-03 is after the listing day 2026-01-02"),
            (15, "same paper as item 1"),
        ]
    ]


def test_every_wrong_field_of_an_item_is_named() -> None:
    item = api_item("2601.00030", "", upvotes=True)
    (problem,) = parse_api_items([item], "f", DAY).problems
    assert problem.item == 1
    assert problem.message == (
        "paper.title is empty; paper.upvotes: expected a whole number of at least 0, got a boolean True; item skipped"
    )


def test_item_level_copies_fill_in_for_the_paper() -> None:
    item = api_item("2601.00040", "Ignored", summary=None)
    item["paper"]["title"] = None
    item.update({"title": "Title  on the\nitem", "summary": "Summary on the item.", "organization": {"name": "acme"}})
    (entry,) = parse_api_items([item], "f", DAY).entries
    assert (entry.title, entry.abstract) == ("Title on the item", "Summary on the item.")
    assert entry.organization == Organization("acme", "acme")


def test_unknown_fields_are_ignored() -> None:
    item = api_item("2601.00050", "Future proof", newField={"x": [1, 2]})
    item["somethingElse"] = None
    assert len(parse_api_items([item], "f", DAY).entries) == 1


def test_listing_day_comes_from_the_name_else_from_the_items() -> None:
    items = fixture_items()
    assert api_listing_day("hf-daily-2025-12-31.json", items, today=DAY) == date(2025, 12, 31)
    assert api_listing_day("renamed.txt", items, today=DAY) == DAY  # every item was submitted on 2026-01-02
    with pytest.raises(NotAnApiResponse, match="cannot tell which listing day"):
        api_listing_day("renamed.json", [], today=DAY)


def test_a_listing_day_in_the_future_or_before_1900_is_refused() -> None:
    items = fixture_items()
    with pytest.raises(NotAnApiResponse, match=r"the listing day 2099-12-31 is in the future \(more than a day after"):
        api_listing_day("hf-daily-2099-12-31.json", items, today=DAY)
    with pytest.raises(NotAnApiResponse, match="the listing day 2026-01-02 is in the future"):
        api_listing_day("renamed.txt", items, today=date(2025, 12, 31))  # the day the items were listed
    assert api_listing_day("renamed.txt", items, today=date(2026, 1, 1)) == DAY  # a day ahead: time zones
    with pytest.raises(NotAnApiResponse, match="the listing day 1899-12-31 is before 1900"):
        api_listing_day("hf-daily-1899-12-31.json", [], today=DAY)


HUGE = 99999999999999999999  # 20 digits: more than SQLite's 64-bit integers hold


def test_numbers_out_of_range_skip_their_item_and_keep_the_rest() -> None:
    items: list[Any] = [
        api_item("2601.00060", "Huge upvotes", upvotes=HUGE),
        {**api_item("2601.00061", "Huge comments"), "numComments": HUGE},
        api_item("2601.00062", "Just too many", upvotes=10_000_001),
        api_item("2601.00063", "Many authors", authors=[{"name": "A"}] * 100_001),
        api_item("2601.00064", "Before 1900", publishedAt="1899-12-31T23:00:00Z"),
        api_item("2601.00065", "Year 1 east of UTC", publishedAt="0001-01-01T00:00:00+01:00"),
        api_item("2601.00066", "Kept", upvotes=10_000_000, authors=[{"name": "A"}] * 100_000),
    ]
    dump = parse_api_items(items, "hf-daily-2026-01-02.json", DAY)
    assert [(e.title, e.upvotes, e.authors_count) for e in dump.entries] == [("Kept", 10_000_000, 100_000)]
    assert [str(p) for p in dump.problems] == [
        f"hf-daily-2026-01-02.json:item {n}: {message}; item skipped"
        for n, message in [
            (1, f"paper.upvotes: a number {HUGE} is out of range (0 to 10,000,000)"),
            (2, f"numComments: a number {HUGE} is out of range (0 to 10,000,000)"),
            (3, "paper.upvotes: a number 10000001 is out of range (0 to 10,000,000)"),
            (4, "paper.authors: 100,001 authors, more than 100,000"),
            (5, "paper.publishedAt: '1899-12-31T23:00:00Z' is before 1900"),
            (6, "paper.publishedAt: '0001-01-01T00:00:00+01:00' is not an ISO 8601 time"),
        ]
    ]


def test_a_number_too_long_for_python_is_a_bad_item_not_a_crash() -> None:
    body = json.dumps([api_item("2601.00070", "Kept")]).encode()
    body = (
        body[:-1] + b', {"paper": {"id": "2601.00071", "title": "T", "summary": "S", "upvotes": ' + b"9" * 5000 + b"}}]"
    )
    items = decode_api_response(body)
    assert api_content_hash(items, DAY) == api_content_hash(decode_api_response(body), DAY)
    dump = parse_api_items(items, "f", DAY)
    assert [e.title for e in dump.entries] == ["Kept"]
    assert [str(p) for p in dump.problems] == [
        "f:item 2: paper.upvotes: a number of 5,000 digits is out of range (0 to 10,000,000); item skipped"
    ]


def test_an_overlong_title_or_summary_is_kept_truncated_and_reported() -> None:
    item = api_item("2601.00080", "Long title " * 150, summary="word " * 12_000)
    dump = parse_api_items([item, api_item("2601.00081", "Short")], "f", DAY)
    long, short = dump.entries
    assert long.title == ("Long title " * 150)[:1000].rstrip() and long.abstract == ("word " * 12_000)[:20_000].rstrip()
    assert (short.title, short.abstract) == ("Short", "Abstract of Short.")
    assert [str(p) for p in dump.problems] == [
        "f:item 1: paper.title truncated to 1,000 characters",
        "f:item 1: paper.summary truncated to 20,000 characters",
    ]


def test_content_hash_ignores_formatting_but_not_the_day() -> None:
    items = fixture_items()
    compact = decode_api_response(json.dumps(items, separators=(",", ":")).encode())
    assert api_content_hash(items, DAY) == api_content_hash(compact, DAY)
    assert api_content_hash([], DAY) != api_content_hash([], date(2026, 1, 3))
    changed = copy.deepcopy(items)
    changed[0]["paper"]["upvotes"] += 1
    assert api_content_hash(changed, DAY) != api_content_hash(items, DAY)


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b'\xef\xbb\xbf  [{"paper": {}}]', "x.txt", True),
        (b'{"error": "x"}', "x", True),
        (b"<html>", "hf-daily-2026-01-02.json", True),
        (b"Daily Papers\n\nDec 31\n", "dump.txt", False),
        (b"<html>", "page.html", False),
    ],
)
def test_json_is_recognised_by_content_or_name(data: bytes, name: str, expected: bool) -> None:
    assert looks_like_api_response(data, name) is expected


_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1)


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=99999),
            _names,
            st.lists(_names, max_size=4),
            st.none() | st.integers(min_value=0, max_value=10_000),
            st.none() | st.integers(min_value=0, max_value=500),
        ),
        max_size=6,
        unique_by=lambda t: t[0],
    )
)
def test_parser_recovers_every_field(papers: list[tuple[int, str, list[str], int | None, int | None]]) -> None:
    items = []
    for number, title, authors, upvotes, comments in papers:
        item = api_item(f"2512.{number:05d}", title, authors=[{"name": a} for a in authors], upvotes=upvotes)
        item["numComments"] = comments
        items.append(item)
    body = json.dumps(items, ensure_ascii=False).encode()
    dump = parse_api_response(body, "f", DAY)
    assert dump.problems == ()
    recovered = [(e.arxiv_id, e.title, list(e.authors), e.upvotes, e.comments) for e in dump.entries]
    nfc = [(f"2512.{n:05d}", _nfc(t), [_nfc(x) for x in a], u, c) for n, t, a, u, c in papers]
    assert recovered == nfc  # text is normalised to NFC, nothing else changes


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)
