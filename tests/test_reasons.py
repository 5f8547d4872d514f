"""Reasons as data: how each kind is worded, stored, loaded from older versions and reworded by a user."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import html as lxml_html
from render_data import HOSTILE_TITLE, digest, papers_about, profile
from test_render_email import parts, render

from digest.models import DigestEntry, PaperPart, Reason, ReasonKind, ScoredPaper
from digest.reason_records import dump_reasons, load_reasons, reason_from_record, reason_record
from digest.render.feeds import render_profile_feeds
from digest.render.links import SiteLinks
from digest.render.markdown import markdown_escape, render_markdown
from digest.render.reasons import shown_reasons, word_reason
from digest.render.site import profile_path, render_site
from digest.render.templates import template_environment
from digest.store import Store, open_store

BUILTIN = template_environment()
SITE = {"links": SiteLinks("https://example.org/paper-digest/"), "site_title": "Paper Digest"}


def why_lines(html: str) -> list[str]:
    """The text of every "Why:" paragraph of an HTML email, as a reader sees it."""
    return [element.text_content() for element in lxml_html.fromstring(html).find_class("why")]


# Every kind, in the words the ranker used when it built its reasons as strings.
WORDED = [
    (
        Reason(ReasonKind.KEYWORDS, terms=("catastrophic forgetting", "replay"), where=PaperPart.TITLE),
        "matches 'catastrophic forgetting', 'replay' in title",
    ),
    (Reason(ReasonKind.KEYWORDS, terms=("quantize",), where=PaperPart.ABSTRACT), "matches 'quantize' in abstract"),
    (
        Reason(ReasonKind.DESCRIPTION, terms=("knowledge distillation", "teacher", "student")),
        "close to your description: knowledge distillation, teacher, student",
    ),
    (Reason(ReasonKind.DESCRIPTION), "close to your description"),
    (
        Reason(ReasonKind.DESCRIPTION, terms=("forgetting",), semantic=True),
        "close in meaning to your description: forgetting",
    ),
    (Reason(ReasonKind.DESCRIPTION, semantic=True), "close in meaning to your description"),
    (
        Reason(ReasonKind.LIKED, paper_id="abc123", title="CODA-Prompt: COntinual Decomposed Prompting"),
        "similar to a paper you liked: CODA-Prompt: COntinual Decomposed Prompting",
    ),
    (Reason(ReasonKind.FOLLOWED, organization="OpenBMB"), "from OpenBMB, which you follow"),
    (Reason(ReasonKind.FOLLOWED_AUTHOR, author="Yann LeCun"), "by Yann LeCun, whom you follow"),
    (Reason(ReasonKind.UPVOTES, count=1), "1 upvote"),
    (Reason(ReasonKind.UPVOTES, count=12), "12 upvotes"),
    (Reason(ReasonKind.UPVOTES, count=42, most_of_day=True), "42 upvotes (the most of its day)"),
    (
        Reason(ReasonKind.MORE_LIKE_THIS, paper_id="p1", title="Replay-Free Learning", count=1),
        "similar to a paper this profile's owner marked 'more like this': Replay-Free Learning",
    ),
    (
        Reason(ReasonKind.MORE_LIKE_THIS, paper_id="p1", title="Replay-Free Learning", count=2),
        "similar to 2 papers this profile's owner marked 'more like this', like: Replay-Free Learning",
    ),
    (
        Reason(ReasonKind.LESS_LIKE_THIS, paper_id="p2", title="Federated Forgetting", count=1),
        "down: like a paper this profile's owner marked 'less like this': Federated Forgetting",
    ),
    (
        Reason(ReasonKind.LESS_LIKE_THIS, paper_id="p2", title="Federated Forgetting", count=3),
        "down: like 3 papers this profile's owner marked 'less like this', such as: Federated Forgetting",
    ),
    (Reason(ReasonKind.LEGACY, text="matches 'x' in title; as an old version wrote it"), None),
]


@pytest.mark.parametrize(("reason", "words"), WORDED, ids=[f"{r.kind}-{i}" for i, (r, _) in enumerate(WORDED)])
def test_every_kind_is_worded_by_the_one_macro(reason: Reason, words: str | None) -> None:
    assert word_reason(reason, BUILTIN) == (words if words is not None else reason.text)


@pytest.mark.parametrize(("reason", "words"), WORDED, ids=[f"{r.kind}-{i}" for i, (r, _) in enumerate(WORDED)])
def test_only_the_reader_who_voted_is_told_they_marked_a_paper(reason: Reason, words: str | None) -> None:
    """Outputs that do not know their reader word a vote as the profile owner's; the reader
    whose votes ranked the digest reads "you marked". Other kinds read the same either way."""
    mine = word_reason(reason, BUILTIN, mine=True)
    if reason.kind in (ReasonKind.MORE_LIKE_THIS, ReasonKind.LESS_LIKE_THIS):
        assert words is not None and mine == words.replace("this profile's owner marked", "you marked")
        assert "you" not in word_reason(reason, BUILTIN)
    else:
        assert mine == word_reason(reason, BUILTIN)


def test_every_kind_has_words_above() -> None:
    assert {reason.kind for reason, _ in WORDED} == set(ReasonKind)


def test_shown_reasons_are_cleaned_clipped_and_at_most_five() -> None:
    long_title = "Learning\x07 to\nforget " + "slowly and carefully " * 12
    reasons = (
        Reason(ReasonKind.LIKED, paper_id="p", title=long_title),
        Reason(ReasonKind.LEGACY, text=" \t\n"),  # words to nothing: left out, and still counts as one of five
        Reason(ReasonKind.FOLLOWED, organization="Evil\u202e Org"),
        Reason(ReasonKind.UPVOTES, count=3),
        Reason(ReasonKind.LEGACY, text="fifth"),
        Reason(ReasonKind.LEGACY, text="sixth"),
    )
    shown = shown_reasons(reasons, BUILTIN)
    assert shown[1:] == ("from Evil Org, which you follow", "3 upvotes", "fifth")
    assert shown[0].startswith("similar to a paper you liked: Learning to forget slowly and carefully slowly")
    assert len(shown[0]) <= 200 and shown[0].endswith("carefully…")


def test_a_structured_reason_round_trips_through_the_store(filled_store: Store, tmp_path: Path) -> None:
    papers = papers_about(list(filled_store.iter_papers()), "continual", limit=2)
    every_kind = tuple(reason for reason, _ in WORDED)
    built = replace(
        digest(profile(), papers[:1]),
        items=(ScoredPaper(papers[0], 0.7, every_kind),),
        runners_up=(ScoredPaper(papers[1], 0.1, every_kind[:2]),),
    )
    assert filled_store.save_digest(built, filled_store.watermark())
    loaded = filled_store.load_digest(built.profile, built.date)
    assert loaded is not None
    assert loaded.items[0].reasons == every_kind and loaded.runners_up[0].reasons == every_kind[:2]
    assert filled_store.digest_entries(built.profile.id, 10)[0].item.reasons == every_kind
    with sqlite3.connect(tmp_path / "state.db") as db:
        (row,) = db.execute("SELECT reasons FROM digest_items WHERE kind = 'item'").fetchall()
    stored = json.loads(row[0])
    assert stored[0] == {"kind": "keywords", "terms": ["catastrophic forgetting", "replay"], "where": "title"}
    assert stored[-1] == "matches 'x' in title; as an old version wrote it"  # LEGACY stays a string


def test_a_reason_record_holds_the_fields_of_its_kind() -> None:
    liked = Reason(ReasonKind.LIKED, paper_id="abc", title="T")
    assert reason_record(liked) == {"kind": "liked", "paper_id": "abc", "title": "T"}
    assert reason_from_record({"kind": "upvotes", "count": 3}) == Reason(ReasonKind.UPVOTES, count=3)
    assert all(reason_from_record(reason_record(r)) == r for r, _ in WORDED)


def test_a_digest_stored_by_an_older_version_renders_as_it_did(filled_store: Store, tmp_path: Path) -> None:
    papers = papers_about(list(filled_store.iter_papers()), "continual", limit=1)
    built = digest(profile(), papers)
    assert filled_store.save_digest(built, filled_store.watermark())
    filled_store.close()
    # What versions before structured reasons wrote: the reasons' words, as JSON strings.
    old = [
        "matches 'catastrophic forgetting' in title",
        "close to your description: continual *learning*, forgetting",
        "similar to a paper you liked: A <b>Closer</b> Look\x07",
        "x" * 250,
        "  ",
        "42 upvotes (the most of its day)",
    ]
    old_json = json.dumps(old, ensure_ascii=False)
    with sqlite3.connect(tmp_path / "state.db") as db:
        db.execute("UPDATE digest_items SET reasons = ?", (old_json,))
    store = open_store(tmp_path / "state.db")
    try:
        loaded = store.load_digest(built.profile, built.date)
    finally:
        store.close()
    assert loaded is not None
    assert loaded.items[0].reasons == tuple(Reason(ReasonKind.LEGACY, text=text) for text in old)
    assert dump_reasons(loaded.items[0].reasons) == old_json  # written back unchanged
    # As the older version showed them: the first five, each cleaned and clipped, the blank one left out.
    shown = [old[0], old[1], "similar to a paper you liked: A <b>Closer</b> Look", "x" * 199 + "…"]
    markdown = render_markdown(loaded)
    assert "**Why:** " + "; ".join(markdown_escape(s) for s in shown) + "\n" in markdown
    text, html = parts(render(loaded))
    why = "Why: " + "; ".join(shown)
    assert why in " ".join(text.split())  # the text part wraps it
    assert why_lines(html) == [why]
    assert "42 upvotes" not in markdown  # the sixth reason was never shown


def test_reason_words_are_escaped_like_any_dump_text(filled_store: Store) -> None:
    papers = papers_about(list(filled_store.iter_papers()), "continual", limit=1)
    hostile = (
        Reason(ReasonKind.LIKED, paper_id="x", title=HOSTILE_TITLE),
        Reason(ReasonKind.FOLLOWED, organization="<img src=x onerror=alert(1)>"),
    )
    built = replace(digest(profile(), papers), items=(ScoredPaper(papers[0], 0.7, hostile),))
    _, html = parts(render(built))
    assert "<script>" not in html and "<img" not in html
    assert why_lines(html) == [
        f"Why: similar to a paper you liked: {HOSTILE_TITLE}; from <img src=x onerror=alert(1)>, which you follow"
    ]
    markdown = render_markdown(built)
    assert "**Why:** " + markdown_escape("similar to a paper you liked: " + HOSTILE_TITLE) in markdown


def test_a_user_template_folder_rewords_every_output(filled_store: Store, tmp_path: Path) -> None:
    (tmp_path / "reasons.txt").write_text(
        '{% macro reason(r) %}[{{ r.kind }}{{ ": " ~ r.terms|join("/") if r.terms else "" }}]{% endmacro %}\n',
        encoding="utf-8",
    )
    env = template_environment(tmp_path)
    papers = papers_about(list(filled_store.iter_papers()), "continual", limit=1)
    reasons = (
        Reason(ReasonKind.KEYWORDS, terms=("continual learning", "replay"), where=PaperPart.TITLE),
        Reason(ReasonKind.FOLLOWED, organization="OpenBMB"),
    )
    built = replace(digest(profile(), papers), items=(ScoredPaper(papers[0], 0.7, reasons),))
    assert word_reason(reasons[0], env) == "[keywords: continual learning/replay]"
    assert "**Why:** \\[keywords: continual learning/replay\\]; \\[followed\\]\n" in render_markdown(built, env=env)
    text, html = parts(render(built, env=env))
    assert "Why: [keywords: continual learning/replay]; [followed]" in " ".join(text.split())
    assert why_lines(html) == ["Why: [keywords: continual learning/replay]; [followed]"]
    feed = render_profile_feeds(
        built.profile, [DigestEntry(built.profile.id, built.date, built.built_at, built.items[0])], **SITE, env=env
    )
    assert "Why:&lt;/strong&gt; [keywords: continual learning/replay]; [followed]" in feed["atom"].decode()
    pages = render_site([built.profile], {built.profile.id: [built]}, **SITE, sender="d@example.org", env=env)
    profile_page = pages[profile_path(built.profile.id)].decode()
    assert '<div class="why">Why: [keywords: continual learning/replay]; [followed]</div>' in profile_page
    # The built-in wording is untouched for everyone else.
    builtin = " ".join(parts(render(built))[0].split())
    assert "Why: matches 'continual learning', 'replay' in title; from OpenBMB, which you follow" in builtin


def test_an_unknown_kind_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="'from-the-future'"):
        load_reasons('[{"kind": "from-the-future", "count": 2}]')
