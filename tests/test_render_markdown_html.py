"""Digest documents to HTML: converting in segments gives the bytes of converting the whole document."""

from __future__ import annotations

import random

import pytest
from render_data import digest, hostile_papers, papers_about, profile

from digest.render.markdown import render_markdown
from digest.render.markdown_html import REMEMBERED_LENGTH, MarkdownToHtml
from digest.store import Store

LONG = "An abstract long enough to be remembered, with *emphasis*, a [link](https://example.org) and &amp; " * 4

# Blocks a user's own `digest.md` could make, around and inside long paragraphs: lists that
# continue across blank lines, quotes, headings, rules, indented blocks, whitespace-only lines.
BLOCKS = [
    LONG,
    LONG.replace("An abstract", "Another abstract"),
    "- an item",
    "* another item",
    "1. a numbered item",
    "2) and another",
    "    an indented block",
    "\tindented by a tab",
    "> a quote",
    "> " + LONG,
    "# a heading",
    "## 1. [A title](https://example.org/p)",
    "Setext heading\n===",
    "---",
    "***",
    "a short paragraph",
    "two lines\nof one paragraph",
    "- " + LONG,
    "1. " + LONG,
    "   " + LONG,
    LONG + "\n" + LONG,
    "",
    " ",
    "\n",
    "<div>raw html</div>",
    "**Why:** matches 'RLHF' in title; similar to a paper you liked: *x*",
    "3 authors · 8 Jul 2024",
    "pdremembered0",  # what stands in for a long paragraph while the rest is converted
    "<p>pdremembered1</p>",
    # What Python-Markdown removes or rewrites before cutting blocks (found by a review).
    "\x02- " + LONG,
    "\r- " + LONG,
    "\x02    " + LONG,
    LONG + "\r\r- b",
    "\xa0" * 300,
    "\x02" * 300,
    "\u2003" + LONG,
]


def test_segments_give_the_whole_documents_bytes_on_the_seed_digests(filled_store: Store) -> None:
    papers = list(filled_store.iter_papers())
    documents = [
        render_markdown(digest(profile(), papers_about(papers, "continual", limit=10))),
        render_markdown(digest(profile(), hostile_papers(papers))),
        render_markdown(digest(profile(), (), empty_reason="below-threshold", runners_up=papers[:5])),
        render_markdown(digest(profile(), tuple(papers[:40]))),
    ]
    converter = MarkdownToHtml()
    for text in documents:
        assert sum(len(block) >= REMEMBERED_LENGTH for block in text.split("\n\n")) >= 1
        assert converter(text) == converter.whole(text)
        assert converter(text) == converter.whole(text)  # again, from what it remembered


@pytest.mark.parametrize("seed", range(4))
def test_segments_give_the_whole_documents_bytes_on_any_mix_of_blocks(seed: int) -> None:
    rng = random.Random(seed)
    converter = MarkdownToHtml()
    for _ in range(250):
        text = "\n\n".join(rng.choice(BLOCKS) for _ in range(rng.randint(1, 8)))
        if rng.random() < 0.2:
            text = "\n" * rng.randint(1, 3) + text + "\n" * rng.randint(0, 3)
        assert converter(text) == converter.whole(text), text


def test_every_pair_of_blocks_around_a_long_paragraph() -> None:
    converter = MarkdownToHtml()
    for before in BLOCKS:
        for after in BLOCKS:
            text = f"{before}\n\n{LONG}\n\n{after}"
            assert converter(text) == converter.whole(text), text
