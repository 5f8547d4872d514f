"""The store on a real SQLite file: deduplication, idempotence, digests, concurrency."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import NOW, SEEDS, TODAY

from digest.chars import strip_format
from digest.ingest.hf_dump import content_hash, decode_dump, format_dump, parse_dump
from digest.models import (
    DeliveryState,
    Digest,
    Dump,
    Entry,
    Organization,
    Profile,
    Reason,
    ReasonKind,
    Rollup,
    ScoredPaper,
    TransportKind,
)
from digest.periods import PeriodKind, parse_period
from digest.rollups import Pool
from digest.rows import DeliveryKey
from digest.store import SCHEMA_VERSION, Store, StoreError, Validators, open_store, paper_id, title_key
from digest.store import schema as store_module


def ingest_text(store: Store, text: str, name: str = "d.txt"):
    dump = parse_dump(text, name, today=TODAY)
    return store.add_dump(dump, content_hash(text), NOW)


def ingest_seed(store: Store, name: str):
    return ingest_text(store, decode_dump((SEEDS / name).read_bytes()), name)


def all_papers(store: Store) -> dict[str, object]:
    return {p.title: p for p in store.iter_papers()}


def test_seeds_give_309_papers_and_315_sightings(store: Store) -> None:
    results = [ingest_seed(store, p.name) for p in sorted(SEEDS.iterdir())]
    assert sum(r.papers_new for r in results) == 309
    assert sum(r.papers_updated for r in results) == 6
    papers = all_papers(store)
    assert len(papers) == 309
    assert sum(p.sightings for p in papers.values()) == 315


def test_first_seen_is_the_earliest_listing_and_never_moves_later(store: Store) -> None:
    ingest_seed(store, "003_c86e26950e2129a1.txt")  # Nov 27
    before = all_papers(store)["Prototype-Sample Relation Distillation: Towards Replay-Free Continual Learning"]
    ingest_seed(store, "000_9d0724fe38360f6f.txt")  # Dec 31 shows it again
    after = all_papers(store)[before.title]
    assert before.first_seen == after.first_seen == date(2025, 11, 27)
    assert after.last_seen == date(2025, 12, 31)
    assert (before.id, after.sightings) == (after.id, 2)


def test_older_dump_ingested_later_moves_first_seen_back_but_keeps_newest_upvotes(store: Store) -> None:
    newer = format_dump(date(2025, 12, 2), [Entry("Same Paper", "A.", 3, None, date(2025, 11, 30), 40)])
    older = format_dump(date(2025, 12, 1), [Entry("Same  paper!", "A.", 3, None, date(2025, 11, 30), 7)])
    ingest_text(store, newer)
    result = ingest_text(store, older)
    assert (result.papers_new, result.papers_updated) == (0, 1)
    (paper,) = store.iter_papers()
    assert (paper.first_seen, paper.last_seen, paper.upvotes, paper.title) == (
        date(2025, 12, 1),
        date(2025, 12, 2),
        40,
        "Same Paper",
    )


def test_an_entry_without_byline_never_replaces_a_richer_view(store: Store) -> None:
    full = " ".join(["A full abstract."] * 80)
    ingest_text(store, format_dump(date(2025, 12, 1), [Entry("Rich Paper", full, 3, None, date(2025, 11, 30), 12)]))
    # A newer listing shows the paper with no byline, date or upvotes (e.g. a dump cut off in it).
    result = ingest_text(store, format_dump(date(2025, 12, 2), [Entry("Rich paper", "A full abs")]))
    assert (result.papers_new, result.papers_updated) == (0, 1)
    (paper,) = store.iter_papers()
    assert (paper.title, paper.abstract, paper.upvotes) == ("Rich Paper", full, 12)
    assert (paper.authors_count, paper.published, paper.sightings) == (3, date(2025, 11, 30), 2)
    assert (paper.first_seen, paper.last_seen) == (date(2025, 12, 1), date(2025, 12, 1))


def test_a_newer_dated_entry_without_upvotes_keeps_the_stored_count(store: Store) -> None:
    ingest_text(store, format_dump(date(2025, 12, 1), [Entry("Counted", "Old.", 3, None, date(2025, 11, 30), 12)]))
    ingest_text(store, format_dump(date(2025, 12, 2), [Entry("Counted", "Revised.", 3, None, date(2025, 11, 30))]))
    (paper,) = store.iter_papers()
    assert (paper.abstract, paper.upvotes, paper.last_seen) == ("Revised.", 12, date(2025, 12, 2))
    ingest_text(store, format_dump(date(2025, 12, 3), [Entry("Counted", "Revised.", 3, None, date(2025, 11, 30), 20)]))
    assert next(store.iter_papers()).upvotes == 20  # a real sighting with upvotes still updates them


def test_entries_without_byline_update_one_another(store: Store) -> None:
    ingest_text(store, format_dump(date(2025, 12, 1), [Entry("Undated", "Old.")]))
    ingest_text(store, format_dump(date(2025, 12, 2), [Entry("Undated", "New.")]))
    (paper,) = store.iter_papers()
    assert (paper.abstract, paper.upvotes, paper.last_seen, paper.sightings) == ("New.", None, date(2025, 12, 2), 2)


def test_same_dump_twice_changes_nothing(store: Store, tmp_path: Path) -> None:
    text = decode_dump((SEEDS / "002_6d046406d792592b.txt").read_bytes())
    assert ingest_text(store, text).new
    before = store._db.execute("SELECT * FROM papers ORDER BY id").fetchall()
    again = ingest_text(store, text, "renamed-copy.txt")
    assert not again.new
    assert store.dump_count() == 1
    assert store._db.execute("SELECT * FROM papers ORDER BY id").fetchall() == before


def test_arxiv_id_enriches_a_title_only_paper(store: Store) -> None:
    ingest_text(store, format_dump(date(2025, 12, 1), [Entry("A Paper About Things", "Short.")]))
    api_view = Entry(
        "A paper about things",
        "Longer abstract.",
        published=date(2025, 11, 30),
        upvotes=12,
        arxiv_id="2511.01234",
        authors=("Ada", "Alan"),
        url="https://huggingface.co/papers/2511.01234",
        comments=3,
    )
    store.add_dump(Dump("api", date(2025, 12, 2), (api_view,), kind="hf-api"), "sha-api", NOW)
    renamed = Entry("A Paper About Things, Revised", "Again.", arxiv_id="2511.01234")
    store.add_dump(Dump("api2", date(2025, 12, 3), (renamed,), kind="hf-api"), "sha-api2", NOW)
    ingest_text(store, format_dump(date(2025, 12, 4), [Entry("A Paper About Things, Revised", "x")]))
    (paper,) = store.iter_papers()
    assert paper.arxiv_id == "2511.01234" and paper.authors == ("Ada", "Alan") and paper.comments == 3
    assert paper.sightings == 4 and paper.id == store.get_papers([paper.id])[0].id


def test_an_older_api_view_fills_every_unknown_field(store: Store) -> None:
    ingest_text(
        store, format_dump(date(2025, 12, 5), [Entry("Late Bloomer", "Text abstract.", 2, None, date(2025, 11, 2), 7)])
    )
    older = Entry(
        "Late bloomer",
        "API abstract.",
        authors_count=2,
        upvotes=1,
        arxiv_id="2511.00001",
        authors=("Ada", "Alan"),
        url="https://huggingface.co/papers/2511.00001",
        comments=6,
        published=date(2025, 11, 1),
        published_at=datetime(2025, 11, 1, 9, 30, tzinfo=UTC),
    )
    store.add_dump(Dump("api", date(2025, 12, 1), (older,), kind="hf-api"), "sha-old", NOW)
    (paper,) = store.iter_papers()
    assert (paper.title, paper.abstract, paper.upvotes) == ("Late Bloomer", "Text abstract.", 7)  # newest view kept
    assert (paper.arxiv_id, paper.authors, paper.comments, paper.url) == (
        "2511.00001",
        ("Ada", "Alan"),
        6,
        "https://huggingface.co/papers/2511.00001",
    )
    assert (paper.authors_count, paper.published, paper.first_seen, paper.last_seen) == (
        2,
        date(2025, 11, 2),
        date(2025, 12, 1),
        date(2025, 12, 5),
    )
    assert store._db.execute("SELECT published_at FROM papers").fetchone()[0] == "2025-11-01T09:30:00+00:00"


def test_hugging_faces_summary_and_keywords_are_kept_until_a_newer_one_comes(store: Store) -> None:
    first = Entry(
        "Routing Experts",
        "Abstract.",
        arxiv_id="2512.00002",
        ai_summary="Routes tokens.",
        ai_keywords=("mixture of experts", "routing"),
    )
    store.add_dump(Dump("api", date(2025, 12, 1), (first,), kind="hf-api"), "sha-ai-1", NOW)
    (paper,) = store.iter_papers()
    assert (paper.ai_summary, paper.ai_keywords) == ("Routes tokens.", ("mixture of experts", "routing"))
    # A newer listing without them (a text dump never has them) keeps them.
    ingest_text(
        store, format_dump(date(2025, 12, 2), [Entry("Routing Experts", "Abstract.", 2, None, date(2025, 11, 2), 5)])
    )
    (paper,) = store.iter_papers()
    assert (paper.ai_summary, paper.ai_keywords, paper.upvotes) == (
        "Routes tokens.",
        ("mixture of experts", "routing"),
        5,
    )
    newer = replace(first, ai_summary="Routes tokens to experts.", ai_keywords=("MoE",))
    store.add_dump(Dump("api", date(2025, 12, 3), (newer,), kind="hf-api"), "sha-ai-2", NOW)
    (paper,) = store.get_papers([paper.id])
    assert (paper.ai_summary, paper.ai_keywords) == ("Routes tokens to experts.", ("MoE",))


def test_a_database_from_before_the_ai_text_gains_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old_database(path, [("Stored Paper", "stored paper")])
    opened = open_store(path)
    try:
        (paper,) = opened.iter_papers()
        assert (paper.title, paper.ai_summary, paper.ai_keywords) == ("Stored Paper", None, ())
        # The migration adds only what is missing, so running it again (at another position) changes nothing.
        store_module._add_ai_text(opened._db)
        assert [p.title for p in opened.iter_papers()] == ["Stored Paper"]
    finally:
        opened.close()


def test_same_title_with_another_arxiv_id_is_another_paper(store: Store) -> None:
    first = Entry("Attention Is All You Need", "A.", arxiv_id="1706.03762")
    second = Entry("Attention is all you need!", "B.", arxiv_id="2401.99999")
    store.add_dump(Dump("a", date(2025, 12, 1), (first,), kind="hf-api"), "sha-a", NOW)
    result = store.add_dump(Dump("b", date(2025, 12, 2), (second, first), kind="hf-api"), "sha-b", NOW)
    assert (result.papers_new, result.papers_updated, result.duplicates) == (1, 1, ())
    papers = {p.arxiv_id: p for p in store.iter_papers()}
    assert set(papers) == {"1706.03762", "2401.99999"} and papers["1706.03762"].sightings == 2
    # A title-only sighting of that title goes to the paper first stored under it.
    ingest_text(store, format_dump(date(2025, 12, 3), [Entry("ATTENTION IS ALL YOU NEED", "C.")]))
    assert {p.arxiv_id: p.sightings for p in store.iter_papers()} == {"1706.03762": 3, "2401.99999": 1}


def test_fetch_validators_are_kept_per_url(store: Store) -> None:
    url = "https://huggingface.co/api/daily_papers?date=2026-01-02"
    assert store.fetch_validators(url) is None
    store.save_fetch(url, date(2026, 1, 2), Validators(etag='"a"'), NOW)
    store.save_fetch(url, date(2026, 1, 2), Validators(etag='"b"', last_modified="Fri, 02 Jan 2026 22:00:00 GMT"), NOW)
    assert store.fetch_validators(url) == Validators('"b"', "Fri, 02 Jan 2026 22:00:00 GMT")
    assert store.fetch_validators(url.replace("02", "03")) is None
    store.save_fetch(url, date(2026, 1, 2), Validators(), NOW)
    assert store.fetch_validators(url) is None


def test_repeated_entry_within_one_dump_is_one_sighting(store: Store) -> None:
    text = format_dump(date(2025, 12, 1), [Entry("Twice", "A."), Entry("Other", "B."), Entry("twice", "C.")])
    result = ingest_text(store, text)
    assert (result.papers_new, len(result.duplicates)) == (2, 1)
    assert (result.duplicates[0].line, result.duplicates[0].first) == (21, 13)


def test_the_first_copy_of_a_paper_in_one_dump_wins(store: Store) -> None:
    ingest_text(store, format_dump(date(2025, 12, 1), [Entry("Stored", "Before.", 2, None, date(2025, 11, 30), 4)]))
    first = Entry("Twice", "First copy.", 3, None, date(2025, 12, 1), 5)
    second = Entry("twice!", "Second copy.", 9, None, date(2025, 12, 2), 99)
    again = Entry("STORED", "Second copy of a stored paper.", 8, None, date(2025, 11, 30), 77)
    entries = [first, Entry("Stored", "Newer view.", 2, None, date(2025, 11, 30), 6), second, again]
    result = ingest_text(store, format_dump(date(2025, 12, 3), entries))
    assert (result.papers_new, result.papers_updated) == (1, 1)
    assert [(d.line, d.first) for d in result.duplicates] == [(29, 13), (37, 21)]
    papers = all_papers(store)
    twice, stored = papers["Twice"], papers["Stored"]
    assert (twice.abstract, twice.authors_count, twice.published, twice.upvotes) == (
        "First copy.",
        3,
        date(2025, 12, 1),
        5,
    )
    assert (stored.abstract, stored.upvotes, stored.sightings) == ("Newer view.", 6, 2)
    sighted = store._db.execute("SELECT upvotes FROM sightings ORDER BY dump_id, position").fetchall()
    assert sighted == [(4,), (5,), (6,)]


def test_title_key_normalises_case_space_and_punctuation() -> None:
    assert title_key("Light  Schrödinger Bridge!") == title_key("light schrödinger bridge")
    assert title_key("Ｆｕｌｌ　width") == "full width"
    assert title_key("A-B") != title_key("AB")


def test_format_characters_never_split_a_title() -> None:
    plain = title_key("LoRA: Low-Rank Adaptation")
    for hidden in ("\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff", "\u202e", "\u2066", "\U000e0041"):
        assert title_key(f"Lo{hidden}RA: Low-Rank Adaptation") == plain, repr(hidden)
    assert title_key("\u202eLoRA: Low-Rank Adaptation\u202c") == plain


def test_titles_with_no_word_are_keyed_by_their_text() -> None:
    assert title_key("???") == "???" and title_key("!!!") == "!!!"
    assert title_key(" ?\u200b?\x01?  ") == "???" and title_key("？？？") == "???"  # format, control, width
    assert title_key("...  ---") == "... ---" and title_key("???") != title_key("")


def test_titles_with_no_word_are_different_papers(store: Store) -> None:
    ingest_text(store, format_dump(date(2025, 12, 1), [Entry("???", "A."), Entry("!!!", "B."), Entry("? ? ?", "C.")]))
    ingest_text(store, format_dump(date(2025, 12, 2), [Entry("???", "A again.")]))
    assert {p.title: (p.abstract, p.sightings) for p in store.iter_papers()} == {
        "???": ("A again.", 2),
        "!!!": ("B.", 1),
        "? ? ?": ("C.", 1),
    }


def test_the_format_characters_are_every_cf_character_python_knows() -> None:
    known = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
    assert len(known) > 150 and strip_format("".join(known)) == ""
    assert strip_format("Lo\u200bRA \u202eé") == "LoRA é"


def old_database(path: Path, papers: list[tuple[str, str]]) -> None:
    """A database as schema 4 left it: each paper stored under the key the old title rule
    gave its title (`papers`: (title, old key)), its id derived from that key."""
    db = sqlite3.connect(path, isolation_level=None)
    for migration in store_module._MIGRATIONS[:4]:
        assert isinstance(migration, str)
        for statement in store_module._split_sql(migration):
            db.execute(statement)
    db.execute(
        "INSERT INTO dumps (id, sha256, source, kind, listing_date, entries, problems, ingested_at) "
        "VALUES (1, 'old', 'old.txt', 'hf-text', '2025-12-01', ?, 0, '2025-12-01T08:00:00+00:00')",
        (len(papers),),
    )
    for position, (title, key) in enumerate(papers):
        db.execute(
            "INSERT INTO papers (id, title, abstract, first_seen, last_seen, first_dump) "
            "VALUES (?, ?, 'Stored before.', '2025-12-01', '2025-12-01', 1)",
            (paper_id(key), title),
        )
        db.execute("INSERT INTO titles (key, paper_id) VALUES (?, ?)", (key, paper_id(key)))
        db.execute("INSERT INTO sightings VALUES (1, ?, ?, NULL)", (paper_id(key), position))
    db.execute("PRAGMA user_version = 4")
    db.close()


def test_papers_stored_under_the_old_title_rule_are_still_found(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    # The old rule split words at a zero-width space and gave every title with no word the key "".
    old_database(path, [("Lo\u200bRA: Low-Rank Adaptation", "lo ra low rank adaptation"), ("???", "")])
    ids = {title: paper_id(key) for title, key in [("lora", "lo ra low rank adaptation"), ("???", "")]}
    opened = open_store(path)
    try:
        shown = [Entry("LoRA: Low-Rank Adaptation", "Newer."), Entry("???", "Newer."), Entry("!!!", "New paper.")]
        result = ingest_text(opened, format_dump(date(2025, 12, 2), shown))
        assert (result.papers_new, result.papers_updated) == (1, 2)
        papers = {p.title: p for p in opened.iter_papers()}
        assert papers["LoRA: Low-Rank Adaptation"].id == ids["lora"] and papers["???"].id == ids["???"]
        assert [p.sightings for p in papers.values()] == [2, 2, 1]
    finally:
        opened.close()


def test_a_ledger_made_before_roll_ups_keeps_its_rows_and_columns_another_migration_added(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    db = sqlite3.connect(path, isolation_level=None)
    # The migrations up to roll-ups (any later one runs after it, when the store opens).
    before = store_module._MIGRATIONS[: store_module._MIGRATIONS.index(store_module._rollups)]
    for migration in before:
        if callable(migration):
            migration(db)
            continue
        for statement in store_module._split_sql(migration):
            db.execute(statement)
    # Another helper's migration, run before this one after a renumbering, added a column.
    db.execute("ALTER TABLE deliveries ADD COLUMN claimed_by TEXT")
    db.execute(
        "INSERT INTO deliveries (profile_id, day, subscriber, transport, state, attempts, message_id, created_at, "
        "updated_at, sent_at, claimed_by) VALUES ('cl', '2025-12-31', 'ada@example.org', 'smtp', 'sent', 1, "
        "'<old@x>', '2025-12-31T07:00:00+00:00', '2025-12-31T07:00:01+00:00', '2025-12-31T07:00:01+00:00', 'w1')"
    )
    db.execute(f"PRAGMA user_version = {len(before)}")
    db.close()
    opened = open_store(path)
    try:
        (row,) = opened.deliveries()
        assert (row.period, row.state, row.message_id, row.key.period) == ("", "sent", "<old@x>", "")
        # A roll-up's email to the same reader, ending the same day, is a row of its own.
        weekly = DeliveryKey("cl", date(2025, 12, 31), "ada@example.org", "2026-W01")
        assert opened.add_deliveries([weekly], lambda key: "<new@x>", TransportKind.SMTP, NOW) == 1
        opened.record_delivery_attempt(weekly, DeliveryState.PENDING, NOW, error="later")
        assert [r.period for r in opened.deliveries()] == ["", "2026-W01"]
        assert opened.get_delivery(weekly) is not None and opened.get_delivery(row.key) == row
    finally:
        opened.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT claimed_by FROM deliveries WHERE period = ''").fetchone() == ("w1",)
    db.execute("UPDATE deliveries SET state = 'rolled-up' WHERE period = ''")  # the new state is allowed
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE deliveries SET state = 'lost' WHERE period = ''")
    assert [r[1] for r in db.execute("PRAGMA index_list(deliveries)")].count("deliveries_day") == 1
    assert db.execute("PRAGMA quick_check").fetchall() == [("ok",)]  # what the state branch checks before a push
    db.close()


def test_schema_is_versioned(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    open_store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this program"):
        open_store(path)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot use the state database"):
        open_store(path)


def test_failed_transaction_leaves_no_trace(store: Store) -> None:
    bad = Dump("bad", date(2025, 12, 1), (Entry("Fine", "A."), Entry(None, "B.")), kind="hf-text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.add_dump(bad, "sha-bad", NOW)
    assert store.dump_count() == 0 and store.paper_count() == 0


# -- digests ----------------------------------------------------------------------------

PROFILE = Profile(id="p", title="P", description="anything")


def day_dump(store: Store, day: date, titles: list[str]) -> None:
    text = format_dump(day, [Entry(t, "Abstract.", 1, None, day, 1) for t in titles])
    ingest_text(store, text, f"{day}.txt")


def make_digest(store: Store, day: date, picked: list[str], state: str | None = "delivered") -> Digest:
    papers = {p.title: p for p in store.iter_papers()}
    digest = Digest(
        PROFILE,
        day,
        tuple(ScoredPaper(papers[t], 0.5, (Reason(ReasonKind.LEGACY, text="r"),)) for t in picked),
        NOW,
        candidates=9,
    )
    assert store.save_digest(digest, store.watermark())
    if state:
        store.set_digest_state(PROFILE.id, day, state, NOW)
    return digest


def titles(papers) -> list[str]:
    return sorted(p.title for p in papers)


def test_candidates_are_new_since_the_previous_digest(store: Store) -> None:
    d1, d2 = date(2025, 12, 1), date(2025, 12, 2)
    day_dump(store, d1, ["A", "B", "C"])
    assert titles(store.candidate_papers("p", d1)) == ["A", "B", "C"]
    make_digest(store, d1, ["A"])
    day_dump(store, d2, ["D", "A"])
    assert titles(store.candidate_papers("p", d2)) == ["D"]
    assert store.delivered_paper_ids("p") == {all_ids(store)["A"]}


def test_late_dump_for_an_old_day_still_reaches_the_next_digest(store: Store) -> None:
    d1, d2, d3 = date(2025, 12, 1), date(2025, 12, 2), date(2025, 12, 3)
    day_dump(store, d2, ["B"])
    make_digest(store, d2, ["B"])
    day_dump(store, d1, ["Late"])
    assert titles(store.candidate_papers("p", d3)) == ["Late"]


def test_papers_of_a_failed_digest_come_back(store: Store) -> None:
    d1, d2 = date(2025, 12, 1), date(2025, 12, 2)
    day_dump(store, d1, ["A", "B"])
    make_digest(store, d1, ["A"], state="failed")
    assert titles(store.candidate_papers("p", d2)) == ["A"]
    assert store.delivered_paper_ids("p") == set()


def test_papers_in_flight_are_not_offered_twice(store: Store) -> None:
    d1, d2 = date(2025, 12, 1), date(2025, 12, 2)
    day_dump(store, d1, ["A"])
    make_digest(store, d1, ["A"], state=None)
    day_dump(store, d2 + timedelta(days=0), ["B"])
    assert titles(store.candidate_papers("p", d2)) == ["B"]


def test_a_digest_is_recorded_once_and_loads_back(store: Store) -> None:
    day = date(2025, 12, 1)
    day_dump(store, day, ["A", "B"])
    saved = make_digest(store, day, ["B", "A"])
    again = Digest(PROFILE, day, (), NOW)
    assert not store.save_digest(again, store.watermark())
    loaded = store.load_digest(PROFILE, day)
    assert loaded is not None
    assert [i.paper.title for i in loaded.items] == ["B", "A"]
    assert loaded.items == saved.items and loaded.candidates == 9
    assert store.digest_days("p") == [day]
    assert store.load_digest(PROFILE, date(2025, 12, 9)) is None


def all_ids(store: Store) -> dict[str, str]:
    return {p.title: p.id for p in store.iter_papers()}


def test_a_rebuild_considers_the_days_own_papers_and_the_new_ones(store: Store) -> None:
    d1, d2 = date(2025, 12, 1), date(2025, 12, 2)
    day_dump(store, d1, ["A"])
    make_digest(store, d1, ["A"])
    day_dump(store, d2, ["B", "C"])
    first = make_digest(store, d2, ["B"], state=None)
    status = store.digest_status("p", d2)
    assert status is not None and status.state == "built" and status.watermark == store.watermark()
    assert store.new_candidates("p", d2, status.watermark) == 0
    day_dump(store, d2, ["B", "D"])  # a fuller listing of the same day: one paper is new
    assert store.new_candidates("p", d2, status.watermark) == 1
    # The day's own digest does not hide its papers from its rebuild; another day's does.
    assert titles(store.candidate_papers("p", d2)) == ["B", "C", "D"]
    assert all_ids(store)["B"] not in store.delivered_paper_ids("p", except_day=d2)
    assert all_ids(store)["A"] in store.delivered_paper_ids("p", except_day=d2)
    papers = {p.title: p for p in store.iter_papers()}
    fuller = Digest(
        PROFILE,
        d2,
        (ScoredPaper(papers["D"], 0.7, (Reason(ReasonKind.LEGACY, text="r"),)),),
        NOW + timedelta(hours=1),
        candidates=3,
    )
    assert not store.replace_digest(fuller, store.watermark(), replaces=status.watermark - 1)  # someone was first
    assert store.replace_digest(fuller, store.watermark(), replaces=status.watermark)
    loaded = store.load_digest(PROFILE, d2)
    assert loaded is not None and [i.paper.title for i in loaded.items] == ["D"] and loaded.candidates == 3
    assert loaded.built_at == NOW + timedelta(hours=1) and store.digest_days("p") == [d2, d1]
    assert first.items != loaded.items


def rebuildable(store: Store) -> tuple[Digest, int]:
    day = date(2025, 12, 2)
    day_dump(store, day, ["B", "C"])
    digest = make_digest(store, day, ["B"], state=None)
    status = store.digest_status("p", day)
    assert status is not None
    for address in ("ada@example.org", "bob@example.org"):
        store.add_deliveries([("p", day, address)], lambda key: f"<{key[2]}>", "smtp", NOW)
    return digest, status.watermark


@pytest.mark.parametrize(
    "reached",
    [
        "sent",  # ada's copy was accepted
        "sending",  # handed to the server, answer not recorded
        "possible-duplicate",  # pending again, but a copy may have arrived
        "delivered",  # the feed published it
        "later",  # the profile's next digest exists
    ],
)
def test_a_digest_that_may_have_reached_someone_is_never_replaced(store: Store, reached: str) -> None:
    digest, watermark = rebuildable(store)
    key = ("p", digest.date, "ada@example.org")
    if reached == "sent":
        store.mark_delivery_sent(key, NOW, delivers=False)
    elif reached == "sending":
        store.mark_delivery_sending(key, NOW)
    elif reached == "possible-duplicate":
        store.record_delivery_attempt(key, "pending", NOW, error="lost", possible_duplicate=True)
    elif reached == "delivered":
        store.set_digest_state("p", digest.date, "delivered", NOW)
    else:
        make_digest(store, digest.date + timedelta(days=1), [], state=None)
    status = store.digest_status("p", digest.date)
    assert status is not None and (status.reached_someone or status.later_digest or status.state != "built")
    other = Digest(PROFILE, digest.date, (), NOW + timedelta(hours=1), empty_reason="below-threshold")
    assert not store.replace_digest(other, watermark + 1, replaces=watermark)
    assert store.load_digest(PROFILE, digest.date) == digest


def test_a_rebuild_keeps_the_message_ids_and_drops_waiting_emails_of_an_empty_digest(store: Store) -> None:
    digest, watermark = rebuildable(store)
    ids = {row.subscriber: row.message_id for row in store.deliveries()}
    store.record_delivery_attempt(("p", digest.date, "bob@example.org"), "failed", NOW, error="550 no such user")
    papers = {p.title: p for p in store.iter_papers()}
    fuller = Digest(
        PROFILE,
        digest.date,
        (ScoredPaper(papers["C"], 0.6, (Reason(ReasonKind.LEGACY, text="r"),)),),
        NOW,
        candidates=2,
    )
    assert store.replace_digest(fuller, watermark, replaces=watermark)
    assert {row.subscriber: row.message_id for row in store.deliveries()} == ids
    empty = Digest(PROFILE, digest.date, (), NOW, candidates=2, empty_reason="below-threshold")
    assert store.replace_digest(empty, watermark, replaces=watermark)
    # No email goes out for an empty digest: the waiting row goes; the refused one stays on record.
    assert [(row.subscriber, row.state) for row in store.deliveries()] == [("bob@example.org", "failed")]


# -- two processes at once ------------------------------------------------------------------


def test_two_ingest_processes_at_once_store_everything_once(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    start = date(2025, 1, 1)
    files = 300
    for n in range(files):
        day = start + timedelta(days=n)
        # Every title appears on three consecutive days, so both processes race on the same papers.
        entries = [Entry(f"Paper {n - k + 2} item {j}", "A.", 2, None, day, j) for k in range(3) for j in range(15)]
        (inbox / f"{n:03}.txt").write_text(format_dump(day, entries), encoding="utf-8")
    db = tmp_path / "state.db"
    command = [sys.executable, "-m", "digest", "--db", str(db), "ingest", str(inbox)]
    procs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    news = [int(out.decode().split(" dump")[0].split(": ")[1]) for out, _ in outputs]
    assert sum(news) == files, news
    store = open_store(db)
    try:
        assert store.dump_count() == files
        papers = list(store.iter_papers())
        assert len(papers) == (files + 2) * 15
        assert sum(p.sightings for p in papers) == files * 45
        assert len({p.id for p in papers}) == len(papers)
    finally:
        store.close()


def test_liked_papers_are_found_by_id_arxiv_id_or_title(store: Store) -> None:
    from digest.ingest.hf_api import parse_api_response

    ingest_seed(store, "000_9d0724fe38360f6f.txt")
    fixture = Path(__file__).parent / "fixtures" / "daily_papers_2026-01-02.json"
    dump = parse_api_response(fixture.read_bytes(), fixture.name, date(2026, 1, 2))
    store.add_dump(dump, "api-fixture", NOW)
    fetched = next(p for p in store.iter_papers() if p.arxiv_id)
    seed = all_papers(store)["Prototype-Sample Relation Distillation: Towards Replay-Free Continual Learning"]
    references = [
        f"  {fetched.arxiv_id} ",  # an arXiv id, spaces around it
        "PROTOTYPE-sample relation distillation:  towards replay-free continual learning",  # a title, loosely
        seed.id,  # the same paper by its id: listed once
        "A Paper Nobody Wrote",
    ]
    assert [p.id for p in store.find_papers(references)] == [fetched.id, seed.id]


# -- what a site page needs to know of a digest or roll-up without loading it ---------------


def _two_digests(store: Store) -> tuple[Profile, Digest, Digest]:
    store.add_dump(
        parse_dump(
            format_dump(date(2025, 12, 1), [Entry(t, "A.", 3, None, date(2025, 11, 30), 5) for t in "ABCD"]),
            "a.txt",
            today=TODAY,
        ),
        "a",
        NOW,
    )
    papers = {p.title: p for p in store.iter_papers()}
    prof = Profile(id="p", title="P")
    given = Digest(prof, date(2025, 12, 1), (ScoredPaper(papers["A"], 0.9), ScoredPaper(papers["B"], 0.8)), NOW, 4)
    empty = Digest(
        prof, date(2025, 12, 2), (), NOW, 4, empty_reason="below-threshold", runners_up=(ScoredPaper(papers["C"], 0.1),)
    )
    for digest in (given, empty):
        assert store.save_digest(digest, store.watermark())
    return prof, given, empty


def test_digest_records_list_each_digest_as_its_archive_shows_it(store: Store) -> None:
    prof, given, empty = _two_digests(store)
    records = store.digest_records(prof.id)
    assert [(r.day, r.papers, r.empty_reason, r.candidates) for r in records] == [
        (empty.date, 0, "below-threshold", 4),
        (given.date, 2, None, 4),
    ]
    assert store.digest_records(prof.id) == records  # the same rows, the same versions
    assert len({r.version for r in records}) == 2


def test_a_digest_changes_version_when_a_dump_shows_one_of_its_papers_again(store: Store) -> None:
    # A paper's row changes only when a dump shows it, so the newest dump that showed each
    # paper is part of a digest's version: its page is rendered again with the new upvotes.
    prof, given, empty = _two_digests(store)
    before = {r.day: r.version for r in store.digest_records(prof.id)}
    feed = store.feed_version(prof.id, 10)  # the feed shows A and B
    ingest_text(store, format_dump(date(2025, 12, 3), [Entry("D", "A.", 3, None, date(2025, 11, 30), 9)]))
    assert {r.day: r.version for r in store.digest_records(prof.id)} == before  # D is in no digest
    assert store.feed_version(prof.id, 10) == feed
    ingest_text(store, format_dump(date(2025, 12, 4), [Entry("B", "A.", 3, None, date(2025, 11, 30), 50)]))
    after = {r.day: r.version for r in store.digest_records(prof.id)}
    assert after[empty.date] == before[empty.date]
    assert after[given.date] != before[given.date]
    assert store.feed_version(prof.id, 10) != feed
    feed = store.feed_version(prof.id, 10)
    assert store.feed_version(prof.id, 1) != feed  # fewer entries shown
    ingest_text(store, format_dump(date(2025, 12, 5), [Entry("C", "A.", 3, None, date(2025, 11, 30), 5)]))
    assert {r.day: r.version for r in store.digest_records(prof.id)}[empty.date] != before[empty.date]  # a runner-up
    assert store.feed_version(prof.id, 10) == feed  # which no feed shows
    changed = {r.day: r.version for r in store.digest_records(prof.id)}
    rebuilt = replace(empty, items=given.items[:1], empty_reason=None, runners_up=())
    status = store.digest_status(prof.id, empty.date)
    assert status is not None and store.replace_digest(rebuilt, store.watermark(), replaces=status.watermark)
    records = {r.day: r for r in store.digest_records(prof.id)}
    assert records[empty.date].version != changed[empty.date] and records[empty.date].papers == 1


def test_rollup_records_list_each_rollup_as_its_archive_shows_it(store: Store) -> None:
    ingest_text(store, format_dump(date(2025, 12, 1), [Entry(t, "A.", 3, None, date(2025, 11, 30), 5) for t in "ABCD"]))
    scored = [ScoredPaper(p, 0.9 - i / 10) for i, p in enumerate(sorted(store.iter_papers(), key=lambda p: p.title))]
    prof = Profile(id="p", title="P")
    week, month = parse_period("2025-W49"), parse_period("2025-12")
    shown = Rollup(prof, week, tuple(scored[:2]), tuple(scored[2:]), NOW, considered=9, above=4)
    nothing = Rollup(prof, month, (), (), NOW, considered=7, above=0, runners_up=tuple(scored[:1]))
    assert store.save_rollup(shown, Pool(tuple(scored), ()))
    assert store.save_rollup(nothing, Pool((), tuple(scored[:1])))
    records = store.rollup_records(prof.id, (PeriodKind.WEEK, PeriodKind.MONTH))
    assert [(r.period, r.papers, r.considered) for r in records] == [(month, 0, 7), (week, 2, 9)]
    for record in records:
        loaded = store.load_rollup(prof, record.period)
        assert loaded is not None and (len(loaded.items), loaded.considered) == (record.papers, record.considered)
    assert store.rollup_records(prof.id, (PeriodKind.WEEK,)) == records[1:]
    ingest_text(store, format_dump(date(2025, 12, 4), [Entry("D", "A.", 3, None, date(2025, 11, 30), 50)]))
    after = store.rollup_records(prof.id, (PeriodKind.WEEK, PeriodKind.MONTH))
    assert after[0] == records[0]  # D is not in the month's pool
    assert after[1].version != records[1].version  # it is in the week's ("also this week")


def test_two_stores_whose_dump_numbers_meet_give_other_versions(tmp_path: Path) -> None:
    # A database restored from a backup and fed other dumps numbers them as the lost one
    # did; the newest dump's content hash tells the two apart, so no page is kept wrongly.
    versions = []
    for name, upvotes in (("a", 7), ("b", 500)):
        store = open_store(tmp_path / f"{name}.db")
        ingest_text(store, format_dump(date(2025, 12, 1), [Entry("A", "A.", 3, None, date(2025, 11, 30), 5)]))
        (paper,) = store.iter_papers()
        prof = Profile(id="p", title="P")
        assert store.save_digest(Digest(prof, date(2025, 12, 1), (ScoredPaper(paper, 0.9),), NOW, 1), 1)
        ingest_text(store, format_dump(date(2025, 12, 2), [Entry("A", "A.", 3, None, date(2025, 11, 30), upvotes)]))
        versions.append(store.digest_records(prof.id)[0].version)
        store.close()
    assert versions[0] != versions[1]


def test_every_dump_that_showed_a_paper_is_in_its_version(tmp_path: Path) -> None:
    # A field one dump left empty keeps what an earlier one said: two stores whose last dump
    # is the same but whose earlier ones differ hold different papers, and say so.
    versions = []
    for name, org in (("a", Organization("org-a", "Org A")), ("b", Organization("org-b", "Org B"))):
        store = open_store(tmp_path / f"{name}.db")
        ingest_text(store, format_dump(date(2025, 12, 1), [Entry("A", "A.", 3, org, date(2025, 11, 30), 5)]))
        (paper,) = store.iter_papers()
        prof = Profile(id="p", title="P")
        assert store.save_digest(Digest(prof, date(2025, 12, 1), (ScoredPaper(paper, 0.9),), NOW, 1), 1)
        ingest_text(store, format_dump(date(2025, 12, 2), [Entry("A", "A.", 3, None, date(2025, 11, 30), 5)]))
        (paper,) = store.iter_papers()
        assert paper.organization == org  # kept from the first dump
        versions.append((store.digest_records(prof.id)[0].version, store.feed_version(prof.id, 10)))
        store.close()
    assert versions[0][0] != versions[1][0] and versions[0][1] != versions[1][1]
