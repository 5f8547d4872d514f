"""Ingesting folders: quarantine of files that are not dumps, and nothing lost."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import NOW, SEEDS, TODAY, finishes_within

from digest.ingest.hf_dump import decode_dump, parse_dump
from digest.pipeline import QuarantineError, find_dump_files, ingest_files, quarantine_file
from digest.store import Store


def run(store: Store, paths: list[Path], quarantine: Path):
    return ingest_files(store, find_dump_files(paths, skip=[quarantine]), quarantine=quarantine, today=TODAY, now=NOW)


def test_seed_folder(store: Store, seeds: Path, tmp_path: Path) -> None:
    summary = run(store, [seeds], tmp_path / "q")
    assert (summary.files, summary.dumps_new, summary.entries, summary.papers_new, summary.papers_updated) == (
        5,
        5,
        315,
        309,
        6,
    )
    assert not summary.rejected
    again = run(store, [seeds], tmp_path / "q")
    assert (again.dumps_new, again.dumps_seen, again.papers_new) == (0, 5, 0)


def test_bad_files_are_set_aside_and_nothing_is_lost(store: Store, seeds: Path, tmp_path: Path) -> None:
    quarantine = tmp_path / "quarantine"
    run(store, [seeds], quarantine)
    before = list(store.iter_papers())
    (seeds / "zz_binary.txt").write_bytes(b"\x00\x01\x02PK\x03\x04")
    (seeds / "zz_empty.txt").write_bytes(b"")
    (seeds / "zz_page.html").write_text("<html><body>Daily Papers</body></html>")
    (seeds / ".hidden").write_text("ignored")
    summary = run(store, [seeds], quarantine)
    assert summary.rejected and len(summary.quarantined) == 3
    assert sorted(p.name for p in quarantine.iterdir()) == [
        "zz_binary.txt",
        "zz_binary.txt.error",
        "zz_empty.txt",
        "zz_empty.txt.error",
        "zz_page.html",
        "zz_page.html.error",
    ]
    assert "binary" in (quarantine / "zz_binary.txt.error").read_text()
    assert "empty" in (quarantine / "zz_empty.txt.error").read_text()
    assert not (seeds / "zz_binary.txt").exists() and (seeds / ".hidden").exists()
    assert list(store.iter_papers()) == before


def test_same_name_in_quarantine_twice_keeps_both(store: Store, tmp_path: Path) -> None:
    inbox, quarantine = tmp_path / "in", tmp_path / "q"
    inbox.mkdir()
    for content in (b"", b"\x00"):
        (inbox / "bad.txt").write_bytes(content)
        run(store, [inbox], quarantine)
    assert sorted(p.name for p in quarantine.iterdir()) == ["bad.txt", "bad.txt.1", "bad.txt.1.error", "bad.txt.error"]


def test_a_quarantine_path_that_is_a_file_stops_before_anything_is_ingested(
    store: Store, seeds: Path, tmp_path: Path
) -> None:
    (tmp_path / "q").write_text("not a folder")
    (seeds / "zz_binary.txt").write_bytes(b"\x00\x01")
    with pytest.raises(QuarantineError, match=r"cannot use the quarantine folder .*/q: it is a file, not a folder"):
        run(store, [seeds], tmp_path / "q")
    assert store.dump_count() == 0 and (seeds / "zz_binary.txt").exists()


def test_a_quarantine_folder_that_cannot_be_made_is_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\x00")
    (tmp_path / "file").write_text("")
    with pytest.raises(QuarantineError, match=r"cannot use the quarantine folder .*/file/q: Not a directory"):
        quarantine_file(bad, "binary", tmp_path / "file" / "q", NOW)
    assert bad.exists()


def test_a_dump_stored_under_its_old_hash_is_already_seen(store: Store, tmp_path: Path) -> None:
    # Older versions hashed the text with its final newline; such a dump must not come back as new.
    path = tmp_path / "with-newline.txt"
    path.write_bytes((SEEDS / "002_6d046406d792592b.txt").read_bytes() + b"\n")
    text = decode_dump(path.read_bytes())
    store.add_dump(parse_dump(text, path.name, today=TODAY), hashlib.sha256(text.encode()).hexdigest(), NOW)
    summary = run(store, [path], tmp_path / "q")
    assert (summary.dumps_new, summary.dumps_seen, store.dump_count()) == (0, 1, 1)


def test_bad_entries_are_reported_with_file_and_line(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "bad-entry.txt"
    path.write_text("Daily Papers\n\nDec 31\n\nT\n\nA\n\n  • 2 authors\n·\n\nGood\n\nB\n\n  • 1 author\n·\nDec 1\n")
    summary = ingest_files(store, [path], quarantine=tmp_path / "q", today=TODAY, now=NOW, label=lambda p: p.name)
    expected = "bad-entry.txt:10: byline and '·' with no date after them; entry skipped"
    assert [str(p) for p in summary.problems] == [expected]
    assert summary.papers_new == 1 and summary.rejected


def test_unreadable_path_is_a_problem_not_a_crash(store: Store, tmp_path: Path) -> None:
    summary = ingest_files(store, [tmp_path / "gone.txt"], quarantine=tmp_path / "q", today=TODAY, now=NOW)
    assert summary.rejected and "cannot read" in summary.problems[0].message


FIXTURE = Path(__file__).parent / "fixtures" / "daily_papers_2026-01-02.json"


def test_saved_api_responses_are_told_apart_by_content(store: Store, seeds: Path, tmp_path: Path) -> None:
    (seeds / "saved-without-extension").write_bytes(FIXTURE.read_bytes())
    (seeds / "hf-daily-2026-01-05.json").write_text(
        '[{"paper": {"id": "2601.09999", "title": "Kept", "summary": "S."}}, {"paper": {"id": 5}}]'
    )
    summary = ingest_files(
        store, find_dump_files([seeds]), quarantine=tmp_path / "q", today=TODAY, now=NOW, label=lambda p: p.name
    )
    assert (summary.dumps_new, summary.entries, summary.papers_new, summary.papers_updated) == (7, 319, 311, 8)
    assert [str(p) for p in summary.problems] == [
        "hf-daily-2026-01-05.json:item 2: paper.id: expected a string, got a number 5; paper.title is missing; "
        "paper.summary is missing; item skipped"
    ]
    kinds = dict(store._db.execute("SELECT source, kind FROM dumps WHERE kind = 'hf-api'").fetchall())
    assert kinds == {"saved-without-extension": "hf-api", "hf-daily-2026-01-05.json": "hf-api"}


def test_a_json_file_that_is_not_a_response_is_quarantined(store: Store, tmp_path: Path) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "hf-daily-2026-01-02.json").write_text('{"error": "Invalid date"}')
    (inbox / "list.json").write_text("[]")  # a valid empty day, but which day?
    summary = run(store, [inbox], tmp_path / "q")
    reasons = sorted(aside.reason for aside in summary.quarantined)
    assert reasons == [
        "cannot tell which listing day this response is for: no date in the file name (like "
        "hf-daily-2025-12-31.json) and no paper says when it was listed",
        "expected a JSON list of papers, got an object (the API said: 'Invalid date')",
    ]
    assert store.dump_count() == 0


def test_inputs_that_crashed_or_hung_are_rejected_and_the_rest_ingested(store: Store, tmp_path: Path) -> None:
    inbox, quarantine = tmp_path / "in", tmp_path / "q"
    inbox.mkdir()
    (inbox / "feb30.txt").write_text("Daily Papers\n\nFeb 30\n\nT\n\nA\n\n  • 2 authors\n·\nFeb 1 3\n")
    (inbox / "huge.txt").write_text(
        "Daily Papers\n\nDec 31\n\nHuge\n\nA\n\n  • 2 authors\n·\nDec 1 99999999999999999999\n\n"
        "Fine\n\nB\n\n  • 99999999999999999999 authors\n·\nDec 2 3\n\nKept\n\nC\n\n  • 1 author\n·\nDec 3 4\n"
    )
    response = FIXTURE.read_text(encoding="utf-8").replace('"upvotes": 14', '"upvotes": 99999999999999999999')
    (inbox / "hf-daily-2026-01-02.json").write_text(response, encoding="utf-8")
    (inbox / "hf-daily-2099-12-31.json").write_text(FIXTURE.read_text(encoding="utf-8"), encoding="utf-8")
    with finishes_within(10):
        summary = ingest_files(
            store, find_dump_files([inbox]), quarantine=quarantine, today=TODAY, now=NOW, label=lambda p: p.name
        )
    assert sorted((aside.moved_to.name, aside.reason) for aside in summary.quarantined) == [
        ("feb30.txt", "the listing date Feb 30 does not exist in any year"),
        ("hf-daily-2099-12-31.json", "the listing day 2099-12-31 is in the future (more than a day after 2026-11-22)"),
    ]
    assert [str(p) for p in summary.problems] == [
        "hf-daily-2026-01-02.json:item 1: paper.upvotes: a number 99999999999999999999 is out of range "
        "(0 to 10,000,000); item skipped",
        "huge.txt:11: upvotes 99999999999999999999 is out of range (0 to 10,000,000); entry skipped",
        "huge.txt:17: author count 99999999999999999999 is out of range (1 to 100,000); entry skipped",
    ]
    assert sorted(p.title for p in store.iter_papers()) == [
        "Configurable Foundation Models: Building LLMs from a Modular Perspective",
        "Kept",
        "Sparse Attention Without Tears: <b>Fast</b> & Exact",
    ]


def test_a_year_that_puts_the_listing_in_the_future_leaves_the_file_in_place(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "dump.txt"
    path.write_text("Daily Papers\n\nDec 31\n\nT\n\nA\n\n  • 1 author\n·\nDec 1\n")
    quarantine = tmp_path / "q"
    summary = ingest_files(
        store, [path], quarantine=quarantine, today=TODAY, now=NOW, year=2027, label=lambda p: p.name
    )
    assert [str(p) for p in summary.problems] == [
        "dump.txt: the year given (2027) dates the listing 2027-12-31, more than a day after today (2026-11-22); "
        "file not ingested"
    ]
    assert summary.rejected and path.exists() and not quarantine.exists() and store.dump_count() == 0
    again = ingest_files(store, [path], quarantine=quarantine, today=TODAY, now=NOW)  # the year inferred: fine
    assert (again.dumps_new, again.papers_new, again.rejected) == (1, 1, False)


def test_a_file_whose_name_is_too_long_to_mark_is_still_set_aside(store: Store, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    long_name = "x" * 251 + ".txt"  # 255 bytes: no room for ".error" beside it
    (inbox / long_name).write_bytes(b"\x00\xff not text")
    (inbox / "good.txt").write_text("Daily Papers\n\nDec 30\n\nFresh Paper\n\nNew.\n\n  • 2 authors\n·\nDec 29 1\n")
    quarantine = tmp_path / "quarantine"
    summary = ingest_files(store, find_dump_files([inbox]), quarantine=quarantine, today=TODAY, now=NOW)
    assert summary.dumps_new == 1 and len(summary.quarantined) == 1
    moved = summary.quarantined[0].moved_to
    assert moved.exists() and moved.with_name(moved.name + ".error").exists() and not (inbox / long_name).exists()
    assert len(moved.name.encode()) <= 200 and moved.name.startswith("xxxx")
    again = ingest_files(store, find_dump_files([inbox]), quarantine=quarantine, today=TODAY, now=NOW)
    assert again.dumps_seen == 1 and not again.quarantined
