"""Feeds: read back by feedparser, Atom checked against RFC 4287's schema, stable ids, identical rebuilds."""

from __future__ import annotations

import calendar
import html
import itertools
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_tz
from functools import lru_cache
from pathlib import Path

import feedparser
import pytest
import rnc2rng
from conftest import ROOT
from lxml import etree
from render_data import (
    BERLIN,
    BUILT_AT,
    DAY,
    HOSTILE_TITLE,
    SHOWN_TITLE,
    config_for,
    digest,
    format_characters_in,
    hidden_paper,
    hostile_papers,
    papers_about,
    profile,
)

from digest import tasks
from digest.config import Config
from digest.ingest.hf_dump import format_dump
from digest.lifecycle import ROLLUP_KINDS
from digest.models import DigestEntry, Entry, Paper, Profile, Reason, ReasonKind, ScoredPaper
from digest.publish import _feeds_to_render, render_settings, write_feeds
from digest.render.feeds import NO_ENTRIES_YET, entry_id, render_all_papers_feeds, render_profile_feeds
from digest.render.links import SiteLinks
from digest.render.stamps import STAMP_TAIL, stamp_in
from digest.render.text import paper_url
from digest.store import Store

KINDS = ("atom", "rss", "json")

LINKS = SiteLinks("https://example.org/paper-digest/")


@lru_cache(maxsize=1)
def atom_schema() -> etree.RelaxNG:
    rng = rnc2rng.dumps(rnc2rng.load(str(ROOT / "tests" / "schemas" / "atom.rnc")))
    # rnc2rng declares `xmlns:local=""`, which XML namespaces forbid; the grammar never uses the prefix.
    return etree.RelaxNG(etree.fromstring(rng.replace('xmlns:local=""', "").encode("utf-8")))


def assert_valid_atom(data: bytes) -> None:
    document = etree.fromstring(data)
    schema = atom_schema()
    assert schema.validate(document), schema.error_log
    assert_plausible_dates("atom", data)


ATOM = "{http://www.w3.org/2005/Atom}"


def assert_plausible_dates(kind: str, data: bytes) -> None:
    """The W3C feed validator's date warnings: two Atom entries with the same `updated`
    (DuplicateUpdated), a date before 1990 (ImplausibleDate)."""
    document = etree.fromstring(data)
    if kind == "atom":
        updated = [e.findtext(f"{ATOM}updated") for e in document.iter(f"{ATOM}entry")]
        assert len(set(updated)) == len(updated), f"entries share an updated time: {updated}"
        dates = [d.text or "" for d in document.iter(f"{ATOM}updated", f"{ATOM}published")]
        assert dates and all(d >= "1990-01-01" for d in dates), dates
    else:
        dates = [d.text or "" for d in document.iter("pubDate", "lastBuildDate")]
        assert dates and all(parsedate_tz(d)[0] >= 1990 for d in dates), dates  # type: ignore[index]


HTML_END_TAG = re.compile(r"</(\w+)>")
HTML_TAGS = {"b", "i", "a", "p", "br", "em", "strong", "script", "span", "div", "img", "code"}


def rss_plain_text_warnings(data: bytes) -> list[tuple[str, str]]:
    """The W3C validator's checks of RSS 2.0 plain-text elements (item and channel titles,
    the channel description), as (warning, text): `ContainsHTML` for an HTML end tag, and
    `CharacterData` ('encode & and < using hexadecimal character references') for `&#`, `&`
    before a name, or `<` before a letter or `/`, unless the line writes `&#x` references."""
    lines = data.decode("utf-8").split("\n")
    found = []
    for number, line in enumerate(lines):
        for element, raw in re.findall(r"<(title|description)>([^<]*)</\1>", line):
            if element == "description" and not _in_channel(lines, number):
                continue  # an item's description is HTML
            text = html.unescape(raw)
            if any(tag.lower() in HTML_TAGS for tag in HTML_END_TAG.findall(text)):
                found.append(("ContainsHTML", text))
            elif re.search(r"&#[x0-9]|&\w+|<[/a-zA-Z]", text) and "&#x" not in line:
                found.append(("CharacterData", text))
    return found


def _in_channel(lines: list[str], number: int) -> bool:
    return not any("<item>" in line for line in lines[:number])


def saved_history(store: Store, prof, papers: list[Paper], days: int = 3, per_day: int = 4) -> list:
    """`days` digests of `per_day` papers each, saved in the store, oldest first."""
    saved = []
    for i in range(days):
        chosen = tuple(papers[i * per_day : (i + 1) * per_day])
        d = digest(prof, chosen, day=DAY + timedelta(days=i), built_at=BUILT_AT + timedelta(days=i))
        assert store.save_digest(d, store.watermark())
        saved.append(d)
    return saved


def parse(data: bytes) -> feedparser.FeedParserDict:
    """An Atom or RSS feed as feedparser reads it (feedparser 6 has no JSON Feed reader: see `read_json`)."""
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def read_json(data: bytes) -> feedparser.FeedParserDict:
    """A JSON Feed checked against the 1.1 spec's requirements, shaped like feedparser's result."""
    document = json.loads(data)
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(document["title"], str) and isinstance(document["items"], list)
    for key in ("home_page_url", "feed_url"):
        assert document[key].startswith("https://")
    entries = []
    for item in document["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert isinstance(item.get("content_html") or item.get("content_text"), str)
        for key in ("date_published", "date_modified"):
            assert datetime.fromisoformat(item[key]).tzinfo is not None  # RFC 3339, with a zone
        entries.append(
            feedparser.FeedParserDict(
                id=item["id"],
                title=item["title"],
                link=item["url"],
                published=item["date_published"],
                updated=item["date_modified"],
                content=[feedparser.FeedParserDict(value=item["content_html"])],
            )
        )
    return feedparser.FeedParserDict(feed=feedparser.FeedParserDict(title=document["title"]), entries=entries)


def read(kind: str, data: bytes) -> feedparser.FeedParserDict:
    return read_json(data) if kind == "json" else parse(data)


def test_every_kind_reads_back_with_the_same_ids_titles_and_links(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())
    prof = profile()
    saved_history(filled_store, prof, papers)
    entries = filled_store.digest_entries(prof.id, 100)
    feeds = render_profile_feeds(prof, entries, links=LINKS, site_title="Paper Digest")
    assert set(feeds) == {"atom", "rss", "json"}
    expected = [(entry_id(prof.id, e.item.paper.id), e.item.paper.title, paper_url(e.item.paper)) for e in entries]
    assert len(expected) == 12 and len({i for i, _, _ in expected}) == 12
    for kind, data in feeds.items():
        parsed = read(kind, data)
        assert [(e.id, e.title, e.link) for e in parsed.entries] == expected, kind
        assert all(e.link.startswith("https://huggingface.co/papers?q=") for e in parsed.entries)
        assert parsed.feed.title == "Continual learning · Paper Digest"
        if kind != "json":
            assert parsed.feed.link == "https://example.org/paper-digest/digests/continual-learning/index.html"
    assert_valid_atom(feeds["atom"])
    assert_plausible_dates("rss", feeds["rss"])
    document = json.loads(feeds["json"])
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["feed_url"] == "https://example.org/paper-digest/feeds/continual-learning.json"


def test_newest_digest_first_and_timestamps_from_built_at(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())
    prof = profile()
    saved_history(filled_store, prof, papers)
    parsed = parse(
        render_profile_feeds(
            prof, filled_store.digest_entries(prof.id, 100), links=LINKS, site_title="Paper Digest", kinds=["atom"]
        )["atom"]
    )
    newest = (BUILT_AT + timedelta(days=2)).astimezone(UTC)
    assert parsed.entries[0].published == (BUILT_AT + timedelta(days=2)).isoformat()
    assert parsed.entries[0].published.endswith("+01:00")  # the zone the digest was built in
    assert parsed.feed.updated_parsed[:6] == newest.timetuple()[:6]
    assert [e.id for e in parsed.entries[:4]] == [entry_id(prof.id, p.id) for p in papers[8:12]]
    # Best first, a second apart: distinct times, in the feed's order, from built_at alone.
    for day in range(3):
        built = BUILT_AT + timedelta(days=2 - day)
        expected = [(built - timedelta(seconds=rank)).isoformat() for rank in range(4)]
        assert [e.updated for e in parsed.entries[day * 4 : day * 4 + 4]] == expected


def test_digests_built_seconds_apart_never_interleave_or_share_a_time(filled_store: Store) -> None:
    """A catch-up run builds several days' digests seconds apart: a reader ordering entries
    by date still sees the newest digest first, best first, and no two entries at one time."""
    papers = list(filled_store.iter_papers())[:8]
    prof = profile()
    older, newer = BUILT_AT, BUILT_AT + timedelta(seconds=2)
    entries = [
        *(DigestEntry(prof.id, DAY + timedelta(days=1), newer, ScoredPaper(p, 0.5)) for p in papers[4:]),
        *(DigestEntry(prof.id, DAY, older, ScoredPaper(p, 0.5)) for p in papers[:4]),
    ]
    feeds = render_profile_feeds(prof, entries, links=LINKS, site_title="Paper Digest")
    for kind, data in feeds.items():
        parsed = read(kind, data)
        times = [
            datetime.fromisoformat(e.published).timestamp() if kind == "json" else calendar.timegm(e.published_parsed)
            for e in parsed.entries
        ]
        assert all(a > b for a, b in itertools.pairwise(times)), (kind, times)
        by_date = [e.id for _, e in sorted(zip(times, parsed.entries, strict=True), key=lambda t: -t[0])]
        assert by_date == [entry_id(prof.id, e.item.paper.id) for e in entries], kind
    # The newest digest's entries keep their times; the older one's move just below them.
    atom = parse(feeds["atom"])
    assert atom.entries[0].published == newer.isoformat()
    assert atom.entries[4].published == (newer - timedelta(seconds=4)).isoformat()


def test_feed_keeps_the_most_recent_n_across_days(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())
    prof = profile()
    saved_history(filled_store, prof, papers, days=4, per_day=3)
    entries = filled_store.digest_entries(prof.id, 5)
    assert [e.item.paper.id for e in entries] == [p.id for p in papers[9:12] + papers[6:8]]
    assert [e.day for e in entries] == [DAY + timedelta(days=3)] * 3 + [DAY + timedelta(days=2)] * 2


def test_a_paper_given_twice_appears_once_with_its_first_digest(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())
    prof = profile()
    first = digest(prof, tuple(papers[:2]))
    filled_store.save_digest(first, filled_store.watermark())
    filled_store.set_digest_state(prof.id, DAY, "failed", BUILT_AT)
    again = digest(prof, tuple(papers[:3]), day=DAY + timedelta(days=1), built_at=BUILT_AT + timedelta(days=1))
    filled_store.save_digest(again, filled_store.watermark())
    entries = filled_store.digest_entries(prof.id, 100)
    assert sorted(e.item.paper.id for e in entries) == sorted(p.id for p in papers[:3])
    assert {e.item.paper.id: e.day for e in entries}[papers[0].id] == DAY


def test_ids_and_bytes_of_old_entries_never_change(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())
    prof = profile()
    saved_history(filled_store, prof, papers, days=1)
    before = parse(
        render_profile_feeds(prof, filled_store.digest_entries(prof.id, 100), links=LINKS, site_title="P")["atom"]
    )
    saved = digest(prof, tuple(papers[20:22]), day=DAY + timedelta(days=1), built_at=BUILT_AT + timedelta(days=1))
    filled_store.save_digest(saved, filled_store.watermark())
    after = parse(
        render_profile_feeds(prof, filled_store.digest_entries(prof.id, 100), links=LINKS, site_title="P")["atom"]
    )
    old = {e.id: (e.title, e.link, e.published, e.updated, e.content[0].value) for e in before.entries}
    new = {e.id: (e.title, e.link, e.published, e.updated, e.content[0].value) for e in after.entries}
    assert {k: new[k] for k in old} == old
    assert len(new) == len(old) + 2
    assert all(i.startswith("urn:paper-digest:continual-learning:") for i in new)


def test_an_old_entry_keeps_its_text_when_a_later_listing_changes_the_papers_upvotes(filled_store: Store) -> None:
    # Upvotes change with every listing: in an entry they changed its text under the same
    # `updated`, and feed readers kept the old text or flagged an edit (README: left out).
    prof = profile()
    filled_store.save_digest(digest(prof, tuple(list(filled_store.iter_papers())[:3])), filled_store.watermark())
    entries = filled_store.digest_entries(prof.id, 100)
    relisted = [
        replace(e, item=replace(e.item, paper=replace(e.item.paper, upvotes=(e.item.paper.upvotes or 0) + 40)))
        for e in entries
    ]
    before = render_profile_feeds(prof, entries, links=LINKS, site_title="P")
    after = render_profile_feeds(prof, relisted, links=LINKS, site_title="P")
    for kind in before:
        assert b"upvote" not in before[kind] and b"upvote" not in after[kind], kind
        assert read(kind, before[kind]).entries == read(kind, after[kind]).entries, kind


def test_hostile_entries_are_escaped_and_control_characters_removed(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())
    prof = profile(title='Evil\x00 "profile" <x>', description="a\x1bb")
    filled_store.save_digest(digest(prof, hostile_papers(papers)), filled_store.watermark())
    feeds = render_profile_feeds(prof, filled_store.digest_entries(prof.id, 100), links=LINKS, site_title="P\x07")
    for kind, data in feeds.items():
        assert not any(chr(c).encode() in data for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
        assert b"<script>" not in data, kind
        parsed = read(kind, data)
        assert parsed.entries[0].title == HOSTILE_TITLE
        content = parsed.entries[0].content[0].value if kind != "rss" else parsed.entries[0].description
        assert "<script>" not in content and "onerror" not in content.replace("onerror=alert(1)&gt;", "")
    etree.fromstring(feeds["rss"])  # well-formed
    assert_valid_atom(feeds["atom"])
    assert "&lt;img src=x onerror=alert(1)&gt;" in json.loads(feeds["json"])["items"][0]["content_html"]


def test_format_characters_never_reach_a_feed(filled_store: Store) -> None:
    prof = profile(title="Continual\u202e learning", description="Bidi\u2067 isolate")
    filled_store.save_digest(digest(prof, (hidden_paper(filled_store),)), filled_store.watermark())
    feeds = render_profile_feeds(prof, filled_store.digest_entries(prof.id, 100), links=LINKS, site_title="P\u200b")
    every = render_all_papers_feeds(filled_store.recent_papers(5), links=LINKS, site_title="P")
    feeds |= {f"all.{kind}": data for kind, data in every.items()}
    for kind, data in feeds.items():
        text = data.decode("utf-8")
        assert format_characters_in(text) == [], kind
        assert "\\u20" not in text.lower() and "\\ufeff" not in text.lower(), kind  # nor as JSON escapes
        assert SHOWN_TITLE in {e.title for e in read(kind.removeprefix("all."), data).entries}, kind


def test_naive_built_at_is_read_as_utc(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())
    prof = profile()
    naive = datetime(2025, 12, 31, 6, 0)
    filled_store.save_digest(digest(prof, tuple(papers[:1]), built_at=naive), filled_store.watermark())
    (entry,) = filled_store.digest_entries(prof.id, 100)
    assert entry.built_at == naive.replace(tzinfo=UTC)
    parsed = parse(render_profile_feeds(prof, [entry], links=LINKS, site_title="P", kinds=["rss"])["rss"])
    assert parsed.entries[0].published == "Wed, 31 Dec 2025 06:00:00 +0000"


def test_a_feed_without_entries_is_valid_and_dated_plausibly() -> None:
    started = datetime(2025, 12, 31, 6, 0, 1, tzinfo=UTC)
    feeds = render_profile_feeds(profile(), [], links=LINKS, site_title="Paper Digest", empty_updated=started)
    assert_valid_atom(feeds["atom"])
    assert_plausible_dates("rss", feeds["rss"])
    for kind, data in feeds.items():
        assert read(kind, data).entries == []
    assert parse(feeds["atom"]).feed.updated == started.isoformat()
    assert parse(feeds["rss"]).feed.updated == "Wed, 31 Dec 2025 06:00:01 +0000"
    unknown = render_profile_feeds(profile(), [], links=LINKS, site_title="Paper Digest")
    assert_valid_atom(unknown["atom"])
    assert parse(unknown["atom"]).feed.updated == NO_ENTRIES_YET.isoformat()
    everything = render_all_papers_feeds([], links=LINKS, site_title="P", empty_updated=started)
    assert_valid_atom(everything["atom"])


def test_empty_feeds_are_dated_by_the_store_and_stay_identical(store: Store, tmp_path: Path) -> None:
    config = config_for(tmp_path, profile(), profile("other", title="Other"))
    assert store.started_at() is None
    write_feeds(config, store)  # nothing stored at all: the fixed date
    assert parse((config.feeds / "other.atom").read_bytes()).feed.updated == NO_ENTRIES_YET.isoformat()
    first = datetime(2026, 1, 2, 7, 30, tzinfo=UTC)
    store.save_digest(digest(profile("other"), (), built_at=first, empty_reason="no-new-papers"), 0)
    assert store.started_at() == first
    written = write_feeds(config, store)
    assert config.feeds / "other.atom" in written
    for name in ("other", "continual-learning", "all"):
        data = (config.feeds / f"{name}.atom").read_bytes()
        assert_valid_atom(data)
        assert parse(data).feed.updated == first.isoformat()
        assert_plausible_dates("rss", (config.feeds / f"{name}.rss").read_bytes())
    later = digest(profile("other"), (), day=DAY + timedelta(days=1), built_at=first + timedelta(days=1))
    store.save_digest(replace(later, empty_reason="no-new-papers"), 0)
    assert write_feeds(config, store) == []  # another empty digest: the same bytes


def test_all_papers_feed_is_newest_first_sighting_first(filled_store: Store) -> None:
    recent = filled_store.recent_papers(20)
    assert len(recent) == 20
    assert [p.first_seen for p in recent] == sorted((p.first_seen for p in recent), reverse=True)
    orders = filled_store.first_day_orders([p.id for p in recent])
    feeds = render_all_papers_feeds(recent, links=LINKS, site_title="Paper Digest", day_orders=orders)
    for kind, data in feeds.items():
        parsed = read(kind, data)
        assert [e.id for e in parsed.entries] == [entry_id("all", p.id) for p in recent]
    assert_valid_atom(feeds["atom"])
    assert_plausible_dates("rss", feeds["rss"])
    atom = parse(feeds["atom"])
    assert len({p.first_seen for p in recent}) < len(recent)  # days with several papers
    # Each paper at its day's midnight plus its place among that day's papers: the feed's order.
    assert atom.entries[0].published == f"{recent[0].first_seen.isoformat()}T00:00:{orders[recent[0].id]:02}+00:00"
    assert [e.updated_parsed for e in atom.entries] == sorted((e.updated_parsed for e in atom.entries), reverse=True)


def test_a_papers_place_in_its_day_never_changes(filled_store: Store) -> None:
    newest = filled_store.recent_papers(1)[0]
    same_day = [p.id for p in filled_store.iter_papers() if p.first_seen == newest.first_seen]
    before = filled_store.first_day_orders(same_day)
    assert sorted(before.values()) == list(range(len(same_day)))
    late = Entry("A Paper Listed Late That Day", "It came in a second dump.", 2, None, newest.first_seen, 1)
    from render_data import ingest

    ingest(filled_store, format_dump(newest.first_seen, [late]), "late.txt")
    (added,) = [p for p in filled_store.iter_papers() if p.title == late.title]
    after = filled_store.first_day_orders([*same_day, added.id])
    assert {pid: after[pid] for pid in same_day} == before and after[added.id] == len(same_day)


def paper_titled(base: Paper, title: str) -> Paper:
    return replace(base, id=f"{abs(hash(title)):016x}"[:16], title=title)


def test_rss_titles_are_plain_text_with_hexadecimal_references(filled_store: Store) -> None:
    base = next(filled_store.iter_papers())
    titles = ["Attention < Convolution & Friends: Why a<b", "AT&T &amp; the <b> Tag, Explained", "Plain"]
    entries = [
        DigestEntry(
            "continual-learning",
            DAY,
            BUILT_AT,
            ScoredPaper(paper_titled(base, t), 0.5, (Reason(ReasonKind.LEGACY, text="r"),)),
        )
        for t in titles
    ]
    prof = profile(title="Papers & <Things>", description="Less < more & so on")
    feeds = render_profile_feeds(prof, entries, links=LINKS, site_title="P & Q")
    rss = feeds["rss"]
    assert rss_plain_text_warnings(rss) == []
    assert b"Attention &#x3C; Convolution &#x26; Friends" in rss
    # The same text as with &lt; and &amp;, for an XML parser and for a feed reader alike.
    channel = etree.fromstring(rss).find("channel")
    assert channel is not None and channel.findtext("description") == "Less < more & so on"
    assert [item.findtext("title") for item in channel.iter("item")] == titles
    assert channel.findtext("title") == "Papers & <Things> · P & Q"
    named = rss.replace(b"&#x26;", b"&amp;").replace(b"&#x3C;", b"&lt;")
    assert rss_plain_text_warnings(named)  # what the validator warned about before
    assert [e.title for e in parse(rss).entries] == [e.title for e in parse(named).entries]
    assert parse(rss).feed == parse(named).feed
    assert [e.title for e in parse(feeds["atom"]).entries] == titles


def test_an_html_end_tag_in_a_title_is_the_one_warning_left(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())
    prof = profile()
    filled_store.save_digest(digest(prof, hostile_papers(papers)), filled_store.watermark())
    feeds = render_profile_feeds(prof, filled_store.digest_entries(prof.id, 100), links=LINKS, site_title="P")
    warnings = rss_plain_text_warnings(feeds["rss"])
    # '<script>…</script>' and '<b>b</b>' are in the papers' real titles: RSS cannot say
    # "plain text", so the validator's ContainsHTML stays unless the title were changed.
    assert sorted(w for w, _ in warnings) == ["ContainsHTML", "ContainsHTML"]
    assert all(HTML_END_TAG.search(text) for _, text in warnings)


def test_profile_formats_choose_the_feed_kinds() -> None:
    assert set(render_profile_feeds(profile(formats=("rss", "email")), [], links=LINKS, site_title="P")) == {"rss"}


def test_organisation_or_authors_and_date_are_in_every_entry_and_upvotes_never(
    filled_store: Store, credited_paper: Paper
) -> None:
    prof = profile()
    (by_authors,) = papers_about(list(filled_store.iter_papers()), "continual", "incremental", limit=1)
    filled_store.save_digest(digest(prof, (credited_paper, by_authors)), filled_store.watermark())
    entries = filled_store.digest_entries(prof.id, 100)
    all_papers = render_all_papers_feeds([credited_paper, by_authors], links=LINKS, site_title="Paper Digest")
    profile_feeds = render_profile_feeds(prof, entries, links=LINKS, site_title="Paper Digest")
    for feeds in (profile_feeds, all_papers):
        for kind, data in feeds.items():
            parsed = read(kind, data)
            credited, other = (e.content[0].value for e in parsed.entries)  # RSS: content:encoded
            assert "<p>OpenBMB · 4 Sep 2024</p>" in credited, kind
            assert "<p>6 authors · 8 Jul 2024</p>" in other, kind


def test_golden_feeds(filled_store: Store, credited_paper: Paper, golden) -> None:
    papers = list(filled_store.iter_papers())
    prof = profile()
    # Three papers credited by author count, one to an organisation (with upvotes).
    chosen = (*papers_about(papers, "continual", "incremental", limit=3), credited_paper)
    filled_store.save_digest(digest(prof, chosen), filled_store.watermark())
    feeds = render_profile_feeds(
        prof, filled_store.digest_entries(prof.id, 100), links=LINKS, site_title="Paper Digest"
    )
    for kind, data in feeds.items():
        golden(f"feeds/continual-learning.{kind}", data)


@pytest.mark.parametrize("tz", [UTC, BERLIN])
def test_write_feeds_twice_writes_nothing_the_second_time(filled_store: Store, tmp_path: Path, tz) -> None:
    papers = list(filled_store.iter_papers())
    prof = profile()
    config = config_for(tmp_path, prof, profile("empty-one", title="Empty"))
    filled_store.save_digest(
        digest(prof, tuple(papers[:3]), built_at=BUILT_AT.astimezone(tz)), filled_store.watermark()
    )
    first = write_feeds(config, filled_store)
    names = sorted(p.relative_to(tmp_path).as_posix() for p in first)
    assert names == sorted(
        f"{folder}/{name}.{kind}"
        for folder in ("feeds", "site/feeds")
        for name in (
            *(
                f"{pid}{cadence}"
                for pid in ("continual-learning", "empty-one")
                for cadence in ("", ".weekly", ".monthly")
            ),
            "all",
        )
        for kind in ("atom", "rss", "json")
    )
    snapshot = {p: p.read_bytes() for p in first}
    assert write_feeds(config, filled_store) == []
    empty = replace(digest(prof, (), day=DAY + timedelta(days=1), candidates=0), empty_reason="no-new-papers")
    filled_store.save_digest(empty, filled_store.watermark())
    assert write_feeds(config, filled_store) == []  # an empty digest leaves every feed byte-identical
    assert {p: p.read_bytes() for p in first} == snapshot


def feeds_of_one_digest(store: Store, tmp_path: Path) -> tuple[list[Paper], Profile, Config]:
    """A profile with one digest of three papers, its feeds written."""
    papers = list(store.iter_papers())
    prof = profile()
    config = config_for(tmp_path, prof)
    store.save_digest(digest(prof, tuple(papers[:3])), store.watermark())
    write_feeds(config, store)
    return papers, prof, config


def test_a_profiles_feeds_end_in_their_stamp_and_stay_valid(filled_store: Store, tmp_path: Path) -> None:
    feeds_of_one_digest(filled_store, tmp_path)
    folder = tmp_path / "site" / "feeds"
    for name in ("continual-learning", "continual-learning.weekly"):
        atom, rss, data = ((folder / f"{name}.{kind}").read_bytes() for kind in ("atom", "rss", "json"))
        stamps = {stamp_in(feed[-STAMP_TAIL:]) for feed in (atom, rss, data)}
        assert len(stamps) == 1 and None not in stamps  # the three formats of one feed share its stamp
        assert_valid_atom(atom)
        assert len(parse(atom).entries) == len(parse(rss).entries) == (3 if "." not in name else 0)
        document = json.loads(data)
        assert list(document)[-1] == "_paper_digest_inputs"  # a JSON Feed extension: readers ignore it
        assert len(read_json(data).entries) == len(document["items"])
    assert stamp_in((folder / "all.atom").read_bytes()[-STAMP_TAIL:]) is None  # the feed of all papers: no stamp


def test_a_new_digest_renders_the_daily_feeds_only(filled_store: Store, tmp_path: Path) -> None:
    papers, prof, config = feeds_of_one_digest(filled_store, tmp_path)
    env = tasks.environment(render_settings(config, filled_store))
    periods = filled_store.rollup_records(prof.id, ROLLUP_KINDS)
    assert _feeds_to_render(config, filled_store, prof, env, periods, filled_store.started_at())[2] == {}
    later = digest(prof, tuple(papers[3:5]), day=DAY + timedelta(days=1), built_at=BUILT_AT + timedelta(days=1))
    filled_store.save_digest(later, filled_store.watermark())
    entries, rollups, todo = _feeds_to_render(config, filled_store, prof, env, periods, filled_store.started_at())
    assert list(todo) == ["daily"] and len(entries) == 5 and rollups == ((), ())
    written = {p.relative_to(tmp_path).as_posix() for p in write_feeds(config, filled_store)}
    # (no paper came in: the feed of all papers is as it was)
    assert written == {f"{where}/continual-learning.{kind}" for where in ("feeds", "site/feeds") for kind in KINDS}
    (tmp_path / "feeds" / "continual-learning.monthly.rss").unlink()  # the kept copy only
    written = {p.relative_to(tmp_path).as_posix() for p in write_feeds(config, filled_store)}
    assert written == {"feeds/continual-learning.monthly.rss"}  # rendered again, the same bytes
