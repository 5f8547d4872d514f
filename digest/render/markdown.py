"""A digest as GitHub-flavoured Markdown (`digests/<profile>/<date>.md`), readable as-is on GitHub.

Pure: a `Digest` in, a string out. Every piece of dump text goes through
`markdown_escape`, so a title full of `*`, `_`, `[`, `<`, `|` or backticks stays text:
it can start no emphasis, link, raw HTML, table, heading, list or code span, in GitHub's
renderer and in Python-Markdown (which the site uses) alike; nor can a bare web address
become a link on GitHub.
"""

from __future__ import annotations

import re
from functools import lru_cache

from jinja2 import Environment

from digest.models import Digest
from digest.render.templates import template_environment
from digest.render.text import format_day, one_line, papers_count
from digest.render.views import paper_view

# Entities for what both renderers read as markup but not both unescape with a backslash;
# backslash escapes for the rest (both CommonMark and Python-Markdown honour these).
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "~": "&#126;", "$": "&#36;"} | {
    char: "\\" + char for char in "\\`*_[]#!"
}
# A regex finds the few special characters fast; str.translate is slow on non-ASCII text.
_SPECIAL = re.compile("[" + re.escape("".join(_ESCAPES)) + "]")
_LIST_START = re.compile(r"^(\d+)([.)])")
# GitHub links a bare address by itself ("https://...", "www."): its ':' or '.' as an
# entity keeps it text there, and Python-Markdown shows it as it was. (An email address
# GitHub still links: as a mailto: link, it runs nothing.)
_BARE_LINK = re.compile(r"(?i)(?<![a-z])(?:(https?|ftp):|(www)\.)")
RUNNERS_UP_SHOWN = 3


def markdown_escape(text: str) -> str:
    """`text` on one line, with every character that Markdown could read as markup escaped."""
    escaped = _SPECIAL.sub(lambda match: _ESCAPES[match.group()], one_line(text))
    escaped = _BARE_LINK.sub(lambda m: f"{m[1]}&#58;" if m[1] else f"{m[2]}&#46;", escaped)
    if escaped[:1] in ("-", "+"):
        escaped = "\\" + escaped
    return _LIST_START.sub(r"\1\\\2", escaped)


def render_markdown(digest: Digest, *, env: Environment | None = None) -> str:
    """The digest as a Markdown page: a heading, then one section per paper (or why there are none)."""
    env = env or template_environment()
    try:
        return _remembered_markdown(digest, env)
    except TypeError:  # a digest that cannot be hashed (a profile built by hand with a list in it)
        return _markdown(digest, env)


# A build renders each digest's Markdown twice: for its document and for its site page.
@lru_cache(maxsize=64)
def _remembered_markdown(digest: Digest, env: Environment) -> str:
    return _markdown(digest, env)


def _markdown(digest: Digest, env: Environment) -> str:
    items = [paper_view(item, env) for item in digest.items]
    return env.get_template("digest.md").render(
        profile_title=one_line(digest.profile.title),
        day=format_day(digest.date),
        headline=papers_count(len(items)),
        items=items,
        candidates=digest.candidates,
        empty_reason=digest.empty_reason,
        min_score=digest.profile.min_score,
        runners_up=[paper_view(item, env) for item in digest.runners_up[:RUNNERS_UP_SHOWN]],
    )


def render_markdown_document(digest: Digest, env: Environment) -> str:
    """The `markdown` format's renderer (see `digest.formats`)."""
    return render_markdown(digest, env=env)
