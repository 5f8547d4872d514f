"""What templates see of a paper: plain, cleaned, bounded fields, computed once per render.

Templates never call into the models; they get `PaperView`s. Every text field here is
cleaned of control characters and line breaks (`text.clean_paper`, `reasons.shown_reasons`)
but not escaped: escaping is the template's job (autoescape, or the `md` filter). Reasons
arrive worded by the environment's `reasons.txt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from jinja2 import Environment

from digest.models import Paper, ReasonKind, ScoredPaper
from digest.render.reasons import shown_reasons
from digest.render.text import clean_paper, meta_line, paper_url, shorten

VOTE_KINDS = frozenset({ReasonKind.MORE_LIKE_THIS, ReasonKind.LESS_LIKE_THIS})


@dataclass(frozen=True, slots=True)
class PaperView:
    id: str
    title: str
    url: str  # always an absolute https address (see text.paper_url)
    meta: str  # "OpenBMB · 2 Feb 2024 · 12 upvotes", may be empty
    origin: str  # "OpenBMB · 2 Feb 2024": `meta` without upvotes, which change with every listing (feeds)
    reasons: tuple[str, ...]  # in words, at most `reasons.REASONS_SHOWN`
    summary: str  # the abstract's first sentences
    abstract: str  # the whole abstract on one line
    score: float | None


def paper_view(item: ScoredPaper, env: Environment, *, mine: bool = False) -> PaperView:
    """The scored paper as templates see it, its reasons worded by `env`'s `reasons.txt`
    (`mine`: for the reader whose votes ranked it, `reasons.word_reason`)."""
    # `mine` changes only the words of a vote's reason: without one, every output shares a view.
    return _paper_view(item, env, mine and any(r.kind in VOTE_KINDS for r in item.reasons))


# One build shows each paper in several outputs (email, Markdown, feeds, site): view it once.
@lru_cache(maxsize=8192)
def _paper_view(item: ScoredPaper, env: Environment, mine: bool) -> PaperView:
    return _view(clean_paper(item.paper), shown_reasons(item.reasons, env, mine=mine), item.score)


@lru_cache(maxsize=8192)
def plain_paper_view(paper: Paper) -> PaperView:
    return _view(clean_paper(paper), (), None)


def _view(paper: Paper, reasons: tuple[str, ...], score: float | None) -> PaperView:
    return PaperView(
        id=paper.id,
        title=paper.title,
        url=paper_url(paper),
        meta=meta_line(paper),
        origin=meta_line(paper, upvotes=False),
        reasons=reasons,
        summary=shorten(paper.abstract),
        abstract=paper.abstract,
        score=score,
    )
