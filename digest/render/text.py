"""Text helpers every renderer shares: cleaning untrusted dump text, shortening it, naming links.

Pure functions over strings and `Paper`s. Escaping for a particular format (HTML, XML,
Markdown, mail headers) is not done here: each renderer escapes with its own tool
(Jinja autoescape, lxml, `markdown_escape`, the email package). This module only makes
text safe to hand to those tools: no control characters, no format characters (bidi
controls such as U+202E, zero-width spaces: see `digest.chars`), no line breaks where
none belong.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from urllib.parse import quote, urlsplit

from digest.chars import clean
from digest.models import Organization, Paper

# Characters XML 1.0 forbids (feedgen fails a whole feed on one), plus DEL and the C1
# controls (U+009B is a terminal's escape), the non-characters and the invisible format
# characters (a bidi override makes a title read backwards); none of them is ever
# meaningful in a title or an abstract.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'“(\[])")
_NEW_ARXIV = re.compile(r"\d{4}\.\d{4,5}")
_OLD_ARXIV = re.compile(r"[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7}")

HF_PAPERS = "https://huggingface.co/papers/"
HF_SEARCH = "https://huggingface.co/papers?q="

TITLE_LIMIT = 300

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def one_line(text: str) -> str:
    """`text` cleaned, every run of whitespace (line breaks included) made one space."""
    return " ".join(clean(text).split())


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when there is one, with '…'."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def shorten(text: str, *, sentences: int = 3, limit: int = 480) -> str:
    """The first few sentences of an abstract, at most `limit` characters."""
    # Only the start can matter: the first sentences, cut at `limit` characters anyway.
    flat = one_line(text)[: limit + 2]
    parts = _SENTENCE_END.split(flat)
    return clip(" ".join(parts[:sentences]), limit)


def clean_paper(paper: Paper) -> Paper:
    """The paper with every text field cleaned and bounded, ready for any renderer."""
    org = paper.organization
    return replace(
        paper,
        title=clip(one_line(paper.title), TITLE_LIMIT) or "(untitled)",
        abstract=one_line(paper.abstract),
        organization=Organization(one_line(org.id), clip(one_line(org.name), 120)) if org else None,
    )


def paper_url(paper: Paper) -> str:
    """The paper's Hugging Face page when its arXiv id is known, else a search for its title."""
    arxiv = (paper.arxiv_id or "").strip()
    if _NEW_ARXIV.fullmatch(arxiv) or _OLD_ARXIV.fullmatch(arxiv):
        return HF_PAPERS + quote(arxiv, safe="/.")
    return HF_SEARCH + quote(one_line(paper.title), safe="")


def byline(paper: Paper) -> str | None:
    """Who the listing credits: the organisation's name, or the number of authors."""
    if paper.organization:
        return paper.organization.name or paper.organization.id
    if paper.authors_count is not None:
        return f"{paper.authors_count} author{'' if paper.authors_count == 1 else 's'}"
    return None


def upvotes_label(paper: Paper) -> str | None:
    if paper.upvotes is None:
        return None
    return f"{paper.upvotes} upvote{'' if paper.upvotes == 1 else 's'}"


def meta_line(paper: Paper, *, upvotes: bool = True) -> str:
    """'OpenBMB · 2 Feb 2024 · 12 upvotes': the parts the listing gave (without the upvotes
    when `upvotes` is False)."""
    parts = [byline(paper), format_date(paper.published) if paper.published else None]
    parts.append(upvotes_label(paper) if upvotes else None)
    return " · ".join(p for p in parts if p)


def format_date(day: date) -> str:
    """'31 Dec 2025', the same in every locale."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def format_day(day: date) -> str:
    """'Wed 31 Dec 2025', the same in every locale."""
    return f"{_WEEKDAYS[day.weekday()]} {format_date(day)}"


def is_http_url(url: str) -> bool:
    """True for an absolute http(s) address with a host: the only links we emit."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and clean(url) == url


def papers_count(n: int) -> str:
    return f"{n} new paper{'' if n == 1 else 's'}"
