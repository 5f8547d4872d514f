"""The dump parser over the real seeds, hostile variations and generated dumps."""

from __future__ import annotations

import calendar
import hashlib
from datetime import date, timedelta

import pytest
from conftest import SEED_COUNTS, SEEDS, TODAY, finishes_within
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.ingest.hf_dump import (
    NotADump,
    WrongYear,
    content_hash,
    decode_dump,
    format_dump,
    infer_year,
    latest_listing,
    legacy_content_hash,
    parse_dump,
)
from digest.ingest.limits import ABSTRACT_CAP, EARLIEST_YEAR, MAX_AUTHORS, MAX_UPVOTES, TITLE_CAP
from digest.models import Entry, Organization


def parse_file(name: str, **kwargs) -> object:
    """A seed parsed as ingest parses files (`from_file`: a last entry with no byline is suspect)."""
    data = (SEEDS / name).read_bytes()
    return parse_dump(decode_dump(data), name, today=kwargs.pop("today", TODAY), from_file=True, **kwargs)


def seed_entries() -> dict[str, Entry]:
    found = {}
    for name in SEED_COUNTS:
        for entry in parse_file(name).entries:
            found.setdefault(entry.title, entry)
    return found


@pytest.mark.parametrize(("name", "count"), SEED_COUNTS.items())
def test_seed_entry_counts(name: str, count: int) -> None:
    dump = parse_file(name)
    assert len(dump.entries) == count
    assert dump.problems == ()
    assert dump.date.year == 2025 and dump.year_inferred


def test_seeds_hold_309_distinct_titles_and_six_repeats() -> None:
    titles = [e.title for name in SEED_COUNTS for e in parse_file(name).entries]
    assert len(titles) == 315
    assert len(set(titles)) == 309
    repeated = {t for t in titles if titles.count(t) == 2}
    assert "Light Schrödinger Bridge" not in repeated
    assert repeated == {
        "Prototype-Sample Relation Distillation: Towards Replay-Free Continual Learning",
        "T-JEPA: Augmentation-Free Self-Supervised Learning for Tabular Data",
        "Fire Together Wire Together: A Dynamic Pruning Approach with Self-Supervised Mask Prediction",
        "Provable Scaling Laws of Feature Emergence from Learning Dynamics of Grokking",
        "8-bit Optimizers via Block-wise Quantization",
        "Attentive WaveBlock: Complementarity-enhanced Mutual Networks for Unsupervised Domain Adaptation in "
        "Person Re-identification and Beyond",
    }


def test_listing_dates() -> None:
    assert [parse_file(n).date.isoformat() for n in SEED_COUNTS] == [
        "2025-12-31",
        "2025-11-05",
        "2025-12-11",
        "2025-11-27",
        "2025-11-17",
    ]


def test_organisation_entry() -> None:
    entry = seed_entries()["Configurable Foundation Models: Building LLMs from a Modular Perspective"]
    assert entry.organization == Organization("openbmb", "OpenBMB")
    assert entry.authors_count is None
    assert entry.published == date(2024, 9, 4)
    assert entry.upvotes == 2


def test_organisation_with_one_word_byline() -> None:
    entry = seed_entries()["Differentiable Evolutionary Reinforcement Learning"]
    assert entry.organization == Organization("DERL_Group", "DERL_Group")
    assert (entry.published, entry.upvotes) == (date(2025, 12, 15), 1)


def test_entry_with_upvotes_and_no_year() -> None:
    entry = seed_entries()[
        "Zero-Shot Multi-Spectral Learning: Reimagining a Generalist Multimodal Gemini 2.5 Model for "
        "Remote Sensing Applications"
    ]
    assert (entry.authors_count, entry.published, entry.upvotes) == (7, date(2025, 9, 23), 2)


def test_entry_without_upvotes_keeps_none() -> None:
    entry = seed_entries()["Exemplar-Free Continual Transformer with Convolutions"]
    assert (entry.authors_count, entry.published, entry.upvotes) == (6, date(2023, 8, 22), None)


def test_single_author() -> None:
    entry = seed_entries()["Provable Scaling Laws of Feature Emergence from Learning Dynamics of Grokking"]
    assert entry.authors_count == 1


def test_entries_without_byline_are_papers_without_date() -> None:
    entries = seed_entries()
    knapsack = entries["Knapsack RL: Unlocking Exploration of LLMs via Optimizing Budget Allocation"]
    assert knapsack.published is None and knapsack.authors_count is None and knapsack.organization is None
    assert knapsack.abstract.startswith("Large Language Models (LLMs) can self-improve")
    assert sum(1 for e in entries.values() if e.published is None) == 8
    # None of the eight ends its file, so reading a file's last undated entry as truncated loses none.
    assert all(parse_file(name).entries[-1].published is not None for name in SEED_COUNTS)


def test_non_ascii_title() -> None:
    entry = seed_entries()["Light Schrödinger Bridge"]
    assert entry.authors_count == 3 and entry.published == date(2023, 10, 2)
    assert "Φeat: Physically-Grounded Feature Representation" in seed_entries()


def test_no_date_is_after_its_listing() -> None:
    for name in SEED_COUNTS:
        dump = parse_file(name)
        assert all(e.published <= dump.date for e in dump.entries if e.published)


def test_content_hash_ignores_line_ends_and_blank_lines_at_either_end() -> None:
    raw = (SEEDS / "002_6d046406d792592b.txt").read_bytes()
    seed = content_hash(decode_dump(raw))
    for copy in (raw + b"\n", raw.replace(b"\n", b"\r\n") + b"\r\n", raw + b"\n\n  \n", b"\n\n" + raw + b"\n"):
        assert content_hash(decode_dump(copy)) == seed
    assert content_hash(decode_dump(raw.replace(b"Dec 11", b"Dec 12", 1))) != seed


def test_seed_hashes_are_what_older_versions_stored() -> None:
    # Databases hold hashes computed before blank lines at the ends were ignored: the
    # sha256 of the normalised text. For text without them (every seed) nothing changed.
    for name in SEED_COUNTS:
        text = decode_dump((SEEDS / name).read_bytes())
        assert content_hash(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()
        assert legacy_content_hash(text) is None
    with_newline = decode_dump((SEEDS / "000_9d0724fe38360f6f.txt").read_bytes() + b"\n")
    assert legacy_content_hash(with_newline) == hashlib.sha256(with_newline.encode("utf-8")).hexdigest()


def test_crlf_bom_and_trailing_whitespace_change_nothing() -> None:
    raw = (SEEDS / "001_27aa8359c0b590a1.txt").read_bytes()
    mangled = b"\xef\xbb\xbf" + raw.replace(b"\n", b"  \t\r\n")
    clean = parse_dump(decode_dump(raw), "a", today=TODAY)
    dirty = parse_dump(decode_dump(mangled), "a", today=TODAY)
    assert dirty.entries == clean.entries and dirty.date == clean.date


def test_line_numbers_point_at_the_title() -> None:
    text = decode_dump((SEEDS / "003_c86e26950e2129a1.txt").read_bytes())
    lines = text.split("\n")
    for entry in parse_dump(text, "x", today=TODAY).entries:
        assert lines[entry.line - 1] == entry.title


def _dump(*blocks: str, listing: str = "Dec 31") -> str:
    return "\n\n".join(["Daily Papers", listing, *blocks]) + "\n"


GOOD = "Good Paper\n\nAn abstract.\n\n  • 3 authors\n·\nDec 3"


def test_byline_without_date_is_reported_and_skipped() -> None:
    text = _dump("Bad Paper", "Its abstract.", "  • 2 authors\n·", GOOD)
    dump = parse_dump(text, "inbox/x.txt", today=TODAY)
    assert [e.title for e in dump.entries] == ["Good Paper"]
    assert [str(p) for p in dump.problems] == ["inbox/x.txt:10: byline and '·' with no date after them; entry skipped"]


def test_date_that_is_not_a_date_is_reported() -> None:
    text = _dump("Bad Paper", "Its abstract.", "  • 2 authors\n·\nFoo 99", GOOD)
    dump = parse_dump(text, "x.txt", today=TODAY)
    assert [e.title for e in dump.entries] == ["Good Paper"]
    assert len(dump.problems) == 1
    assert dump.problems[0].line == 11 and "'Foo 99' is not a date" in dump.problems[0].message


def test_impossible_day_is_reported() -> None:
    text = _dump("Bad Paper", "Its abstract.", "  • 2 authors\n·\nFeb 30", GOOD)
    dump = parse_dump(text, "x.txt", today=TODAY)
    assert dump.problems[0].line == 11 and "Feb 30" in dump.problems[0].message
    assert len(dump.entries) == 1


def test_date_after_listing_is_reported() -> None:
    text = _dump("Future Paper", "Abstract.", "  • 2 authors\n·\nMar 3, 2031", GOOD, listing="Nov 5")
    dump = parse_dump(text, "x.txt", today=TODAY, year=2025)
    assert [e.title for e in dump.entries] == []
    assert [str(p) for p in dump.problems] == [
        "x.txt:11: date 2031-03-03 is after the listing date 2025-11-05; entry skipped",
        "x.txt:19: date 2025-12-03 is after the listing date 2025-11-05; entry skipped",
    ]


def test_malformed_author_count() -> None:
    dump = parse_dump(_dump("T", "A", "  • many authors\n·\nDec 1", GOOD), "x", today=TODAY)
    assert dump.problems[0].line == 9 and "author count" in dump.problems[0].message
    assert len(dump.entries) == 1


def test_truncated_file_keeps_complete_entries() -> None:
    raw = (SEEDS / "000_9d0724fe38360f6f.txt").read_bytes()
    cut = raw[: raw.index(b"OrigamiNet: Weakly") + 20]
    dump = parse_dump(decode_dump(cut), "cut.txt", today=TODAY)
    assert [e.title for e in dump.entries] == ["Preference-free Alignment Learning with Regularized Relevance Reward"]
    assert len(dump.problems) == 1 and "truncated" in dump.problems[0].message
    cut_in_byline = raw[: raw.index(b"Jun 12, 2020")]
    dump = parse_dump(decode_dump(cut_in_byline), "cut.txt", today=TODAY)
    assert len(dump.entries) == 1
    assert "no date after them" in dump.problems[0].message


def test_file_cut_inside_an_abstract_is_reported_not_taken_as_an_undated_paper() -> None:
    raw = (SEEDS / "000_9d0724fe38360f6f.txt").read_bytes()
    title = b"Full Page Text Recognition by learning to unfold"  # the end of the title of the second entry
    abstract = raw.index(title) + len(title) + 2
    for cut in (raw[: abstract + 80], raw[: abstract + 80] + b"\n", raw[: raw.index(b"  \xe2\x80\xa2 ", abstract)]):
        dump = parse_dump(decode_dump(cut), "cut.txt", today=TODAY, from_file=True)
        assert [e.title for e in dump.entries] == [
            "Preference-free Alignment Learning with Regularized Relevance Reward"
        ]
        assert [str(p) for p in dump.problems] == [
            "cut.txt:21: the file ends after title 'OrigamiNet: Weakly-Supervised, Segmentation-Free, One-Step,…' "
            "and its abstract with no byline or date (looks truncated); entry skipped"
        ]


def test_undated_entries_before_the_last_one_are_kept() -> None:
    text = _dump(GOOD, "Undated", "Its abstract.", "Cut Off", "Its abstr")
    dump = parse_dump(text, "x.txt", today=TODAY, from_file=True)
    assert [(e.title, e.published) for e in dump.entries] == [("Good Paper", date(2025, 12, 3)), ("Undated", None)]
    assert [p.line for p in dump.problems] == [17] and "looks truncated" in dump.problems[0].message
    # Text that is not read from a file (what `format_dump` writes) keeps a last undated entry.
    assert [e.title for e in parse_dump(text, "x.txt", today=TODAY).entries][-1] == "Cut Off"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"\xff\xfe\xfa garbage", "not UTF-8"),
        (b'[{"paper": {"id": "2501.00001"}}]', "not a Daily Papers dump"),
        (b"<!doctype html><html><body>Daily Papers</body></html>", "not a Daily Papers dump"),
        (b"Daily Papers\n\nbyAK and the research community\n", "no listing date"),
    ],
)
def test_not_a_dump(data: bytes, why: str) -> None:
    with pytest.raises(NotADump, match=why):
        parse_dump(decode_dump(data), "x", today=TODAY)


def test_a_byte_that_is_not_utf8_is_named_by_its_line() -> None:
    data = b"Daily Papers\n\nDec 31\n\nCaf" + b"\xe9 Paper\n"
    with pytest.raises(NotADump, match=r"^not UTF-8 text \(invalid byte at line 5, offset 25\)$"):
        decode_dump(data)
    # Counted in the file as it is: after a byte order mark, and with CR or CR LF line ends.
    with pytest.raises(NotADump, match=r"^not UTF-8 text \(invalid byte at line 3, offset 9\)$"):
        decode_dump(b"\xef\xbb\xbfa\r\nb\rc\xff")


def test_year_rule() -> None:
    assert infer_year(12, 31, [2022, 2024], TODAY) == 2025
    assert infer_year(3, 1, [], date(2026, 11, 22)) == 2026
    assert infer_year(12, 31, [], date(2026, 11, 22)) == 2025
    assert infer_year(2, 29, [], date(2026, 11, 22)) == 2024
    assert infer_year(2, 29, [2019], TODAY) == 2020
    assert infer_year(2, 29, [2024], date(2028, 3, 1)) == 2028
    # 2028 would be in the future: an entry dated 2024 cannot be from before this listing.
    assert infer_year(2, 29, [2024], TODAY) == 2024
    # A listing's day may begin a day before the caller's (time zones), not more.
    assert infer_year(11, 23, [], TODAY) == 2026 and infer_year(11, 24, [], TODAY) == 2025


def test_year_override_moves_undated_years_too() -> None:
    dump = parse_file("004_cb25a22a707906ba.txt", year=2026)
    assert dump.date == date(2026, 11, 17) and not dump.year_inferred
    light = next(e for e in dump.entries if e.title == "Light Schrödinger Bridge")
    assert light.published == date(2023, 10, 2)
    assert any(e.published and e.published.year == 2026 for e in dump.entries)


@pytest.mark.parametrize("listing", ["Feb 30", "Feb 31", "Apr 31", "Jun 31", "Sep 31", "Nov 31"])
@pytest.mark.parametrize("entry_date", ["Feb 1 3", "Jan 5, 2024", "Mar 3, 2099"])
def test_a_listing_date_that_never_exists_is_not_a_dump(listing: str, entry_date: str) -> None:
    text = _dump("T", "A", f"  • 2 authors\n·\n{entry_date}", listing=listing)
    with finishes_within(5), pytest.raises(NotADump, match=f"the listing date {listing} does not exist in any year"):
        parse_dump(text, "x.txt", today=TODAY)


def test_a_listing_date_in_no_year_of_the_window_is_not_a_dump() -> None:
    with finishes_within(5), pytest.raises(NotADump, match="falls in no year from 1900 to 1900-02-27"):
        infer_year(2, 28, [], date(1900, 2, 26))
    with finishes_within(5), pytest.raises(NotADump, match="falls in no year"):
        infer_year(12, 31, [2024], date(1899, 12, 31))
    assert infer_year(12, 31, [9999], date.max) == 9999  # the last day there is: no overflow


def _occurs(year: int, month: int, day: int, latest: date) -> bool:
    """Month/day exists in `year` and is not after `latest`."""
    return 1 <= year <= 9999 and day <= calendar.monthrange(year, month)[1] and date(year, month, day) <= latest


_todays = st.dates() | st.dates(date(2020, 1, 1), date(2030, 12, 31)) | st.dates(date(1890, 1, 1), date(1910, 1, 1))
_years = st.integers(0, 9999) | st.integers(2015, 2035) | st.integers(1895, 1905)


@settings(max_examples=2000, deadline=None)
@given(st.integers(1, 12), st.integers(1, 31), st.lists(_years, max_size=5), _todays)
def test_year_inference_always_ends_with_a_year_of_the_rule_or_a_rejection(
    month: int, day: int, written: list[int], today: date
) -> None:
    check_year_rule(month, day, written, today)


@pytest.mark.parametrize("today", [date(2026, 11, 30), date(2028, 2, 28), date(2028, 2, 29), date(2024, 12, 31)])
def test_year_inference_for_every_listing_date_and_every_entry_year(today: date) -> None:
    """Every (month, day) a listing can name, 1-12 and 1-31 (impossible days included),
    with no written year, or one written year from a decade before `today` to two years after."""
    for month in range(1, 13):
        for day in range(1, 32):
            check_year_rule(month, day, [], today)
            for year in range(today.year - 10, today.year + 3):
                check_year_rule(month, day, [year], today)


def check_year_rule(month: int, day: int, written: list[int], today: date) -> None:
    """`infer_year` ends, with a year of the rule (module docstring) or a clean rejection."""
    latest = latest_listing(today)
    with finishes_within(5):
        try:
            year = infer_year(month, day, written, today)
        except NotADump:
            # Rejected only when month/day falls in no year of the window: every day that
            # exists at all comes back within 8 years (Feb 29: 1896, then 1904).
            first = max(EARLIEST_YEAR, latest.year - 8)
            assert not any(_occurs(y, month, day, latest) for y in range(first, latest.year + 1))
            return
    assert year >= EARLIEST_YEAR and _occurs(year, month, day, latest)
    earlier = [y for y in written if EARLIEST_YEAR <= y < year]
    if earlier:
        # One after the latest year written (or the first year after it with this day)...
        assert not any(_occurs(y, month, day, latest) for y in range(max(earlier) + 1, year))
    else:
        # ...else the latest year in which the listing date is not in the future...
        assert not any(_occurs(y, month, day, latest) for y in range(year + 1, latest.year + 1))
    for later in (y for y in written if y >= year):
        # ...and a year that would put the listing in the future is disregarded.
        assert not any(_occurs(y, month, day, latest) for y in range(later + 1, latest.year + 1))


_month_names = st.sampled_from(calendar.month_abbr[1:])
_date_text = st.builds(
    lambda name, day, year, upvotes: f"{name} {day}" + (f", {year:04d}" if year is not None else "") + upvotes,
    _month_names,
    st.integers(1, 31),
    st.none() | _years,
    st.just("") | st.integers(0, 10**25).map(lambda n: f" {n}"),
)
_byline = st.integers(0, 10**25).map(lambda n: f"  • {n} authors") | st.just("openbmb OpenBMB")


@settings(max_examples=500, deadline=None)
@given(
    _month_names,
    st.integers(1, 31),
    st.lists(st.tuples(_byline, _date_text), max_size=6),
    _todays,
    st.none() | st.integers(1990, 2999),
)
def test_any_dates_and_numbers_give_a_dump_within_the_rules_or_a_clean_rejection(
    month: str, day: int, bylines: list[tuple[str, str]], today: date, year: int | None
) -> None:
    blocks = [block for i, (byline, when) in enumerate(bylines) for block in (f"T{i}", "A", f"{byline}\n·\n{when}")]
    text = _dump(*blocks, listing=f"{month} {day}")
    with finishes_within(5):
        try:
            dump = parse_dump(text, "x.txt", today=today, year=year)
        except (NotADump, WrongYear):
            return
    assert dump.date.year >= EARLIEST_YEAR and dump.date <= latest_listing(today)
    for entry in dump.entries:
        assert entry.published is not None and entry.published.year >= EARLIEST_YEAR and entry.published <= dump.date
        assert entry.upvotes is None or 0 <= entry.upvotes <= MAX_UPVOTES
        assert entry.authors_count is None or 1 <= entry.authors_count <= MAX_AUTHORS
    # Every entry is stored or reported, never silently dropped.
    assert len(dump.entries) + sum(p.message.endswith("entry skipped") for p in dump.problems) == len(bylines)


def test_a_far_future_year_on_one_entry_does_not_move_the_listing() -> None:
    text = _dump(
        "Old Paper",
        "A.",
        "  • 2 authors\n·\nMar 3, 2024 4",
        "Spoof",
        "Another abstract.",
        "  • 1 author\n·\nDec 29, 2099 7",
        GOOD,
    )
    dump = parse_dump(text, "x.txt", today=TODAY)
    assert dump.date == date(2025, 12, 31)
    assert [(e.title, e.published) for e in dump.entries] == [
        ("Old Paper", date(2024, 3, 3)),
        ("Good Paper", date(2025, 12, 3)),
    ]
    assert [str(p) for p in dump.problems] == [
        "x.txt:19: date 2099-12-29 is after the listing date 2025-12-31; entry skipped"
    ]


def test_a_year_written_as_0000_or_before_1900_is_reported_not_taken_for_the_listing_year() -> None:
    text = _dump("Zero", "A.", "  • 2 authors\n·\nDec 1, 0000", "Old", "B.", "  • 2 authors\n·\nJan 2, 1899", GOOD)
    dump = parse_dump(text, "x.txt", today=TODAY)
    assert [e.title for e in dump.entries] == ["Good Paper"] and dump.date == date(2025, 12, 31)
    assert [str(p) for p in dump.problems] == [
        "x.txt:11: the year 0000 in 'Dec 1, 0000' is before 1900; entry skipped",
        "x.txt:19: the year 1899 in 'Jan 2, 1899' is before 1900; entry skipped",
    ]


def test_a_given_year_that_cannot_be_the_listings_is_refused() -> None:
    with pytest.raises(WrongYear, match=r"the year given \(2099\) dates the listing 2099-12-31, more than a day"):
        parse_dump(_dump(GOOD), "x.txt", today=TODAY, year=2099)
    tomorrow = TODAY + timedelta(days=1)
    assert parse_dump(_dump(listing="Nov 23"), "x.txt", today=TODAY, year=2026).date == tomorrow
    with pytest.raises(WrongYear):
        parse_dump(_dump(listing="Nov 24"), "x.txt", today=TODAY, year=2026)
    with pytest.raises(WrongYear, match=r"the year given \(2025\) cannot be the listing's: Feb 29 does not exist"):
        parse_dump(_dump(listing="Feb 29"), "x.txt", today=TODAY, year=2025)
    with pytest.raises(NotADump, match="the listing date Feb 30 does not exist in any year"):
        parse_dump(_dump(listing="Feb 30"), "x.txt", today=TODAY, year=2024)


@pytest.mark.parametrize(
    ("byline", "when", "line", "message"),
    [
        (
            "  • 2 authors",
            "Dec 1 99999999999999999999",
            11,
            "upvotes 99999999999999999999 is out of range (0 to 10,000,000)",
        ),
        ("  • 2 authors", "Dec 1 10000001", 11, "upvotes 10000001 is out of range (0 to 10,000,000)"),
        (
            "  • 2 authors",
            "Dec 1 " + "9" * 5000,
            11,
            "upvotes 99999999… (5,000 digits) is out of range (0 to 10,000,000)",
        ),
        (
            "  • 99999999999999999999 authors",
            "Dec 1",
            9,
            "author count 99999999999999999999 is out of range (1 to 100,000)",
        ),
        ("  • 100001 authors", "Dec 1", 9, "author count 100001 is out of range (1 to 100,000)"),
        ("  • 0 authors", "Dec 1", 9, "author count 0 is out of range (1 to 100,000)"),
    ],
)
def test_a_number_out_of_range_skips_its_entry_and_keeps_the_rest(
    byline: str, when: str, line: int, message: str
) -> None:
    dump = parse_dump(_dump("Huge", "A.", f"{byline}\n·\n{when}", GOOD), "x.txt", today=TODAY)
    assert [e.title for e in dump.entries] == ["Good Paper"]
    assert [p.line for p in dump.problems] == [line] and dump.problems[0].message.startswith(message)
    assert dump.problems[0].message.endswith("; entry skipped")


def test_the_largest_plausible_numbers_are_kept() -> None:
    text = _dump(
        "Big",
        "A.",
        f"  • {MAX_AUTHORS} authors\n·\nDec 1 {MAX_UPVOTES}",
        "Padded",
        "B.",
        "  • 007 authors\n·\nDec 2 0012",
    )
    dump = parse_dump(text, "x.txt", today=TODAY)
    assert dump.problems == ()
    assert [(e.authors_count, e.upvotes) for e in dump.entries] == [(MAX_AUTHORS, MAX_UPVOTES), (7, 12)]


def test_an_overlong_title_or_abstract_is_kept_truncated_and_reported() -> None:
    title, abstract = "Long title " * 150, "word " * 12_000
    dump = parse_dump(
        _dump(title.strip(), abstract.strip(), "  • 2 authors\n·\nDec 1", "Undated", "x" * 30_000), "x.txt", today=TODAY
    )
    long, undated = dump.entries
    assert long.title == title[:TITLE_CAP].rstrip() and long.abstract == abstract[:ABSTRACT_CAP].rstrip()
    assert (long.published, undated.title, undated.abstract) == (date(2025, 12, 1), "Undated", "x" * ABSTRACT_CAP)
    assert [str(p) for p in dump.problems] == [
        "x.txt:5: title truncated to 1,000 characters",
        "x.txt:7: abstract truncated to 20,000 characters",
        "x.txt:15: abstract truncated to 20,000 characters",
    ]


# -- generated dumps --------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Zs")) | st.just(" "), min_size=1
).map(lambda s: " ".join(s.split()))
# A paragraph starting with '•' or '·' reads as a byline in this format, so none are generated.
_paragraph = _text.filter(lambda s: bool(s) and not s.startswith(("•", "·")))
_title = _paragraph.filter(lambda s: s not in ("new", "Subscribe", "Daily Papers"))


@st.composite
def entries(draw: st.DrawFn, listing: date) -> Entry:
    title = draw(_title)
    abstract = draw(_paragraph)
    if draw(st.integers(0, 9)) == 0:
        return Entry(title=title, abstract=abstract)
    published = draw(st.dates(min_value=date(2015, 1, 1), max_value=listing))
    org = None
    count = None
    if draw(st.booleans()):
        oid = draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True))
        org = Organization(oid, draw(st.just(oid) | _text.filter(bool)))
    else:
        count = draw(st.integers(1, 3000))
    upvotes = draw(st.none() | st.integers(0, 5000))
    return Entry(title, abstract, count, org, published, upvotes)


@st.composite
def dumps(draw: st.DrawFn) -> tuple[date, list[Entry]]:
    listing = draw(st.dates(min_value=date(2016, 1, 1), max_value=TODAY))
    return listing, draw(st.lists(entries(listing), max_size=12))


@settings(max_examples=300, deadline=None)
@given(dumps())
def test_parser_recovers_every_field(generated: tuple[date, list[Entry]]) -> None:
    listing, written = generated
    dump = parse_dump(decode_dump(format_dump(listing, written).encode()), "gen", today=TODAY, year=listing.year)
    assert dump.problems == ()
    assert dump.date == listing
    assert [e.__class__(**{**_fields(e), "line": 0}) for e in dump.entries] == written


def _fields(entry: Entry) -> dict:
    return {name: getattr(entry, name) for name in entry.__slots__}


@settings(max_examples=100, deadline=None)
@given(dumps())
def test_inferred_year_is_right_when_an_older_year_is_written(generated: tuple[date, list[Entry]]) -> None:
    listing, written = generated
    older = [e for e in written if e.published and e.published.year == listing.year - 1]
    current = [e for e in written if e.published and e.published.year == listing.year]
    if not older or not current:
        return
    dump = parse_dump(format_dump(listing, written), "gen", today=TODAY)
    assert dump.date == listing
