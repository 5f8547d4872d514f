"""The site's digest and roll-up pages: a Markdown document (`digest.md`, `rollup.md`) as HTML.

Python-Markdown, with the inline patterns and block processors no digest uses switched
off. Its output is not sanitised here: the caller runs nh3 over it (`render.site`).

One build converts the same abstracts again and again (a paper is in many profiles'
digests, and in every page that shows it), and they are most of a page's text. So a
document is converted in segments, cut at blank lines: each long plain paragraph on its
own, remembered by its text, and the rest of the document in one piece, with a one-word
paragraph standing in for each long one. That gives the bytes converting the whole
document gives, because Python-Markdown parses such a paragraph the same whatever
precedes it, and nothing after it looks back past it (only lists, quotes and indented
blocks continue a sibling, and a paragraph is none of them);
`tests/test_render_markdown_html.py` holds the two equal on hostile and templated documents.
Nothing here reads or writes a file.
"""

from __future__ import annotations

import re
from functools import lru_cache

import markdown

# What a Markdown digest uses: headings, paragraphs, emphasis, links, entities, escapes,
# lists, quotes and rules. Raw HTML, images, autolinks, reference links, code and hard
# breaks are switched off: dump text never needs them (it is escaped), nh3 would strip
# most of them anyway, and every pattern left out is one less scan of each paragraph
# (the site renders 2x faster: bench/RESULTS.md).
_INLINE_OFF = (
    "html",
    "image_link",
    "image_reference",
    "short_image_ref",
    "reference",
    "short_reference",
    "autolink",
    "automail",
    "linebreak",
    "backtick",
)
# A paragraph this long is an abstract or a summary, worth remembering; shorter blocks
# ("Why: ..." lines, headings) are mostly one profile's own and cheap to convert together.
REMEMBERED_LENGTH = 256
REMEMBERED_BLOCKS = 4096  # about 3 KB each (the text and its HTML): ~12 MB per process at most
# A long paragraph stands in the document as this word and its index while the rest is converted.
_MARK = "pdremembered"
# A block starting with one of these (or with any space) may continue a list or a quote, or be a heading.
_NOT_PLAIN = frozenset(">#-+*=_0123456789")
# Characters Python-Markdown removes or turns into line breaks before it cuts the text into
# blocks: with them, the blocks it sees are not the ones cut here.
_REWRITTEN = re.compile("[\r\x02\x03]")


def _python_markdown() -> markdown.Markdown:
    converter = markdown.Markdown(output_format="html")
    for name in _INLINE_OFF:
        converter.inlinePatterns.deregister(name)
    converter.preprocessors.deregister("html_block")
    converter.parser.blockprocessors.deregister("reference")
    converter.parser.blockprocessors.deregister("code")
    return converter


class MarkdownToHtml:
    """Converts digest documents to HTML (see the module docstring). Not for two threads at
    once: a worker keeps one per thread (`tasks._converter`)."""

    def __init__(self) -> None:
        self._converter = _python_markdown()
        self._remembered = lru_cache(maxsize=REMEMBERED_BLOCKS)(self.whole)

    def whole(self, text: str) -> str:
        """`text` converted in one piece, as Python-Markdown converts it."""
        return self._converter.reset().convert(text)

    def __call__(self, text: str) -> str:
        """`text` converted: the same string as `whole(text)`, with long paragraphs remembered."""
        blocks = text.split("\n\n")
        kept = {i: block for i, block in enumerate(blocks) if _remembered(block)}
        if not kept or _MARK in text or _REWRITTEN.search(text):
            return self.whole(text)
        for i in kept:
            blocks[i] = f"{_MARK}{i}"
        html = self.whole("\n\n".join(blocks))
        for i, block in kept.items():
            stand_in = f"<p>{_MARK}{i}</p>"
            if html.count(stand_in) != 1:  # never seen; but then the slow way is the safe one
                return self.whole(text)
            html = html.replace(stand_in, self._remembered(block))
        return html


def _remembered(block: str) -> bool:
    """Whether `block` is a long plain paragraph: one line that starts no list, quote,
    heading, rule or indented block."""
    return (
        len(block) >= REMEMBERED_LENGTH and not block[0].isspace() and block[0] not in _NOT_PLAIN and "\n" not in block
    )
