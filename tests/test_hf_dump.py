"""The dump parser over the real seeds, hostile variations and generated dumps."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from conftest import SEED_COUNTS, SEEDS, TODAY
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.ingest.hf_dump import (
    NotADump,
    content_hash,
    decode_dump,
    format_dump,
    infer_year,
    legacy_content_hash,
    parse_dump,
)
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


def test_year_rule() -> None:
    assert infer_year(12, 31, [2022, 2024], TODAY) == 2025
    assert infer_year(3, 1, [], date(2026, 11, 22)) == 2026
    assert infer_year(12, 31, [], date(2026, 11, 22)) == 2025
    assert infer_year(2, 29, [], date(2026, 11, 22)) == 2024
    assert infer_year(2, 29, [2024], TODAY) == 2028


def test_year_override_moves_undated_years_too() -> None:
    dump = parse_file("004_cb25a22a707906ba.txt", year=2026)
    assert dump.date == date(2026, 11, 17) and not dump.year_inferred
    light = next(e for e in dump.entries if e.title == "Light Schrödinger Bridge")
    assert light.published == date(2023, 10, 2)
    assert any(e.published and e.published.year == 2026 for e in dump.entries)


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
