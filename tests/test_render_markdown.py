"""The Markdown digest: golden pages, and escaping that survives GitHub's and Python-Markdown's parsers."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import markdown
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from render_data import (
    HOSTILE_TITLE,
    MARKDOWN_TITLE,
    SHOWN_TITLE,
    digest,
    format_characters_in,
    hidden_paper,
    hostile_papers,
    papers_about,
    profile,
)

from digest.models import Paper
from digest.render.markdown import markdown_escape, render_markdown
from digest.render.text import one_line
from digest.store import Store

# CommonMark plus the GFM table and strikethrough rules: what GitHub adds that could bite.
GITHUB = MarkdownIt("commonmark").enable(["table", "strikethrough"])


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def read(html: str) -> tuple[list[str], str]:
    reader = _Reader()
    reader.feed(html)
    return reader.tags, "".join(reader.text).strip()


def both(source: str) -> list[tuple[list[str], str]]:
    return [read(GITHUB.render(source)), read(markdown.markdown(source))]


def test_golden_digest(filled_store: Store, credited_paper: Paper, golden) -> None:
    papers = list(filled_store.iter_papers())
    # Four papers credited by author count, one to an organisation (with upvotes).
    chosen = (*papers_about(papers, "continual", "incremental", limit=4), credited_paper)
    page = render_markdown(digest(profile(), chosen))
    golden("markdown/continual-learning.md", page)
    assert page.startswith("# Continual learning — Wed 31 Dec 2025\n")
    assert page.count("\n## ") == 5
    assert "\nOpenBMB · 4 Sep 2024 · 2 upvotes\n" in page and "\n6 authors · 8 Jul 2024\n" in page


def test_golden_empty_digests(filled_store: Store, golden) -> None:
    papers = list(filled_store.iter_papers())
    near = papers_about(papers, "diffusion", limit=5)
    below = render_markdown(digest(profile(), (), empty_reason="below-threshold", runners_up=near))
    golden("markdown/below-threshold.md", below)
    assert "Nothing new scored above this profile's threshold (0.15) among 57 new papers" in below
    assert below.count("(below the threshold: score") == 3  # the best three, marked as such
    nothing = render_markdown(digest(profile(), (), candidates=0, empty_reason="no-new-papers"))
    golden("markdown/no-new-papers.md", nothing)
    assert "No new papers since the last digest" in nothing


def test_hostile_titles_stay_text_in_both_renderers(filled_store: Store) -> None:
    papers = hostile_papers(list(filled_store.iter_papers()))
    page = render_markdown(digest(profile(), papers))
    for tags, text in both(page):
        assert "script" not in tags and "img" not in tags and "b" not in tags
        assert "table" not in tags and "em" not in tags and "code" not in tags and "del" not in tags
        assert tags.count("h1") == 1 and tags.count("h2") == 3  # the '#' of a title opened no heading
        assert HOSTILE_TITLE in text and MARKDOWN_TITLE in text
        assert "javascript:alert(1)" in text  # shown as text, never a link
        assert all(c not in text for c in "\x01\x07\x0b\x0c\x1b\x7f")


def test_a_bare_web_address_in_dump_text_is_no_link_on_github(filled_store: Store) -> None:
    # GitHub's renderer links "https://..." and "www..." by itself, and kept our backslash
    # escapes inside the address (RD\\_VIT became RD%5C_VIT).
    import cmarkgfm

    (first, *_) = list(filled_store.iter_papers())
    abstract = "Code: https://github.com/x/RD_VIT_PRUNE (mirror at www.example.org, HTTP://A.B, 2https://c.d) for you."
    title = "See ftp://files.example.org/a_b"
    page = render_markdown(digest(profile(), (replace(first, title=title, abstract=abstract),)))
    html = cmarkgfm.github_flavored_markdown_to_html(page)
    assert [link for link in re.findall(r'href="([^"]*)"', html) if "huggingface.co" not in link] == []
    for _, text in [read(html), *both(page)]:
        assert "https://github.com/x/RD_VIT_PRUNE" in text and "www.example.org" in text and title in text


def test_format_characters_never_reach_the_markdown(filled_store: Store) -> None:
    page = render_markdown(digest(profile(title="Continual\u202e learning"), (hidden_paper(filled_store),)))
    assert format_characters_in(page) == []
    for _, text in both(page):
        assert SHOWN_TITLE in text


def test_paper_links_survive_escaping(filled_store: Store) -> None:
    papers = hostile_papers(list(filled_store.iter_papers()))
    html = GITHUB.render(render_markdown(digest(profile(), papers)))
    assert html.count('href="https://huggingface.co/papers?q=') == 3


MARKUP = st.lists(st.sampled_from([*list("ab1 .*_[]()<>|#!`~$&\\-+=:;/\"'\t\n"), "&amp;", "http://x", "&#124;"])).map(
    "".join
)


@settings(max_examples=300, deadline=None)
@given(MARKUP)
def test_escaped_text_reads_back_as_itself(text: str) -> None:
    contexts = {"{}": "", "## {}": "", "**Why:** {}": "Why: ", "## 1. [{}](https://example.org/)": "1. "}
    for context, prefix in contexts.items():
        source = context.format(markdown_escape(text))
        for tags, shown in both(source):
            assert set(tags) <= {"p", "h2", "strong", "a"}, (source, tags)
            assert shown == (prefix + one_line(text)).strip(), source


def test_leading_markers_are_escaped() -> None:
    for text in ("- item", "+ item", "1. first", "3) third", "> quote", "# title", "=== x", "    code"):
        for tags, shown in both(markdown_escape(text)):
            assert tags == ["p"], (text, tags)
            assert shown == text.strip()


def test_an_equal_digest_is_rendered_once_and_any_digest_still_renders(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())
    first = digest(profile(), papers_about(papers, "continual", limit=3))
    copy = digest(profile(), papers_about(papers, "continual", limit=3))  # equal, another object
    assert copy == first and copy is not first
    assert render_markdown(copy) is render_markdown(first)  # the document and the page share it
    unhashable = replace(first, profile=replace(first.profile, keywords=[]))  # type: ignore[arg-type]
    assert render_markdown(unhashable) == render_markdown(first)
