"""Explaining a score: the structured reasons (`models.Reason`) behind one paper's score for one profile.

Reads the same `BatchMatrices` the score came from: which of the profile's keywords the
paper has as whole phrases (title first, then abstract), the words it shares with the
description, the liked paper it is closest to, a followed organisation or author, its upvotes.
A view is named only when it scored at least `REASON_THRESHOLD`.

Never words a reason (`templates/reasons.txt` does, through `digest.render.reasons`)
and never changes a score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from digest.chars import name_key
from digest.models import Paper, PaperPart, Reason, ReasonKind, Votes
from digest.rank.scoring import BatchMatrices, BestPaper

REASON_THRESHOLD = 0.15
CLOSE = 0.1  # a voted paper at least this close (cosine) counts among those a reason names
SHARED_TERMS = 3  # words shared with the description named in its reason
BULK = 1000  # from this many papers to explain, keywords are matched for all at once


def explain_best(
    batch: BatchMatrices,
    liked: Sequence[list[Paper]],
    votes: Sequence[Votes],
    papers: Sequence[Paper],
    best: Sequence[Sequence[BestPaper]],
) -> list[list[tuple[Reason, ...]]]:
    """`explain` for each profile's best papers (`best[row]`), the keywords each has found
    for all of them at once (a paper holds the keywords of many profiles: looking through
    them paper by paper was most of the time)."""
    rows = np.repeat(np.arange(len(best)), [len(items) for items in best])
    cols = np.array([b.column for items in best for b in items], dtype=np.int64)
    matched = iter(_matched_keywords(batch, rows, cols))
    return [
        [explain(batch, liked[row], votes[row], papers, row, b, next(matched)) for b in items]
        for row, items in enumerate(best)
    ]


def explain(
    batch: BatchMatrices,
    liked: list[Paper],
    votes: Votes,
    papers: Sequence[Paper],
    row: int,
    best: BestPaper,
    keywords: tuple[list[int], list[int]],
) -> tuple[Reason, ...]:
    """Why paper `best.column` scored as it did for profile `row` (whose liked papers,
    "more like this" ones included, are `liked`, whose reader voted `votes`, and whose
    keyword phrases the paper has are `keywords`: in its title, and only in its abstract)."""
    col = best.column
    found = _keyword_reasons(batch, keywords)
    if best.text_view >= REASON_THRESHOLD:
        semantic = batch.semantic_papers is not None
        found.append(Reason(ReasonKind.DESCRIPTION, terms=tuple(_shared_terms(batch, row, col)), semantic=semantic))
    if best.liked_view >= REASON_THRESHOLD and liked:
        found.append(_liked_reason(batch, liked, votes, row, col))
    elif votes.more and (more := _more_reason(batch, liked, votes, row, col)):
        found.append(more)
    if best.unlike >= REASON_THRESHOLD and votes.less:
        found.append(_less_reason(batch, votes, row, col))
    paper = papers[col]
    if paper.organization and _has(batch.followed, row, col):
        found.append(Reason(ReasonKind.FOLLOWED, organization=paper.organization.name))
    if _has(batch.followed_authors, row, col):
        keys = batch.author_keys[row]
        found.extend(Reason(ReasonKind.FOLLOWED_AUTHOR, author=a) for a in paper.authors if name_key(a) in keys)
    if paper.upvotes:
        most = bool(batch.upvotes[col] >= 1.0 and paper.upvotes > 1)
        found.append(Reason(ReasonKind.UPVOTES, count=paper.upvotes, most_of_day=most))
    return tuple(found)


def _liked_reason(batch: BatchMatrices, liked: list[Paper], votes: Votes, row: int, col: int) -> Reason:
    """The liked paper closest to paper `col`; when it is one the reader marked "more like
    this", how many of those are close too."""
    members, _ = _row(batch.liked_owners, row)
    closeness = [_dot(batch.liked, int(member), batch.papers, col) for member in members]
    nearest = liked[int(np.argmax(closeness))]
    voted = {paper.id for paper in votes.more}
    if nearest.id not in voted:
        return Reason(ReasonKind.LIKED, paper_id=nearest.id, title=nearest.title)
    close = sum(1 for paper, cosine in zip(liked, closeness, strict=True) if paper.id in voted and cosine >= CLOSE)
    return Reason(ReasonKind.MORE_LIKE_THIS, paper_id=nearest.id, title=nearest.title, count=max(close, 1))


def _more_reason(batch: BatchMatrices, liked: list[Paper], votes: Votes, row: int, col: int) -> Reason | None:
    """When the liked view did not name one: the paper marked "more like this" that paper
    `col` is closest to, if it is close enough to have moved it (Rocchio's term)."""
    members, _ = _row(batch.liked_owners, row)
    voted = {paper.id for paper in votes.more}
    close = [
        (cosine, paper)
        for paper, member in zip(liked, members, strict=True)
        if paper.id in voted and (cosine := _dot(batch.liked, int(member), batch.papers, col)) >= CLOSE
    ]
    if not close or max(cosine for cosine, _ in close) < REASON_THRESHOLD:
        return None
    _, nearest = max(close, key=lambda pair: pair[0])
    return Reason(ReasonKind.MORE_LIKE_THIS, paper_id=nearest.id, title=nearest.title, count=len(close))


def _less_reason(batch: BatchMatrices, votes: Votes, row: int, col: int) -> Reason:
    members, _ = _row(batch.less_owners, row)
    closeness = [_dot(batch.less, int(member), batch.papers, col) for member in members]
    nearest = votes.less[int(np.argmax(closeness))]
    close = sum(1 for cosine in closeness if cosine >= REASON_THRESHOLD)
    return Reason(ReasonKind.LESS_LIKE_THIS, paper_id=nearest.id, title=nearest.title, count=max(close, 1))


def _matched_keywords(
    batch: BatchMatrices, rows: NDArray[np.int64], cols: NDArray[np.int64]
) -> list[tuple[list[int], list[int]]]:
    """For each (profile `rows[i]`, paper `cols[i]`): the profile's keyword phrases in the
    paper's title, and those only in its abstract, each in phrase order."""
    if len(rows) < BULK:  # a digest's few papers: the products would cost more than looking
        return [_matched_one(batch, row, col) for row, col in zip(rows.tolist(), cols.tolist(), strict=True)]
    mine = sparse.csr_matrix(batch.keywords.owners[rows])
    mine.data = np.ones(len(mine.data))  # owned at any weight
    in_title = sparse.csr_matrix(mine.multiply(batch.title_hits[cols]))
    in_abstract = sparse.csr_matrix(mine.multiply(batch.abstract_hits[cols]))
    in_abstract = sparse.csr_matrix(in_abstract - in_abstract.multiply(in_title))  # not said twice
    lists = []
    for found in (in_title, in_abstract):
        found.eliminate_zeros()
        found.sort_indices()
        phrases, bounds = found.indices.tolist(), found.indptr.tolist()  # sliced as lists: 40,000 items at a time
        lists.append([phrases[bounds[item] : bounds[item + 1]] for item in range(len(rows))])
    return list(zip(*lists, strict=True))


def _matched_one(batch: BatchMatrices, row: int, col: int) -> tuple[list[int], list[int]]:
    mine = set(_row(batch.keywords.owners, row)[0].tolist())
    in_title = [k for k in _row(batch.title_hits, col)[0].tolist() if k in mine]
    in_abstract = [k for k in _row(batch.abstract_hits, col)[0].tolist() if k in mine and k not in in_title]
    return sorted(in_title), sorted(in_abstract)


def _keyword_reasons(batch: BatchMatrices, matched: tuple[list[int], list[int]]) -> list[Reason]:
    labels, (in_title, in_abstract) = batch.keywords.labels, matched
    found = []
    if in_title:
        found.append(Reason(ReasonKind.KEYWORDS, terms=tuple(labels[k] for k in in_title), where=PaperPart.TITLE))
    if in_abstract:
        found.append(Reason(ReasonKind.KEYWORDS, terms=tuple(labels[k] for k in in_abstract), where=PaperPart.ABSTRACT))
    return found


def _shared_terms(batch: BatchMatrices, row: int, col: int) -> list[str]:
    query_cols, query_values = _row(batch.queries, row)
    paper_cols, paper_values = _row(batch.papers, col)
    shared, in_query, in_paper = np.intersect1d(query_cols, paper_cols, assume_unique=True, return_indices=True)
    labels = [batch.features.describe(int(feature), batch.tokenizer) for feature in shared]
    # Terms that weigh the same are named in alphabetical order, not in the order of their
    # columns (which follows the order the texts were read in).
    order = np.lexsort((np.array(labels, dtype=str), -(query_values[in_query] * paper_values[in_paper])))
    chosen: list[str] = []
    for position in order.tolist():
        words = labels[position]
        # A word pair says more than the words in it: keep the pair, drop its words.
        if any(words in kept.split(" ") for kept in chosen):
            continue
        chosen = [kept for kept in chosen if kept not in words.split(" ")] + [words]
        if len(chosen) == SHARED_TERMS:
            break
    return chosen


def _dot(left: sparse.csr_matrix, i: int, right: sparse.csr_matrix, j: int) -> float:
    """Row i of `left` · row j of `right`, without building a matrix."""
    left_cols, left_values = _row(left, i)
    right_cols, right_values = _row(right, j)
    _, at_left, at_right = np.intersect1d(left_cols, right_cols, assume_unique=True, return_indices=True)
    return float(left_values[at_left] @ right_values[at_right])


def _has(matrix: sparse.csr_matrix, row: int, col: int) -> bool:
    """Whether a 0/1 CSR matrix has a 1 at (row, col): scipy's indexing is far slower for one element."""
    return bool((_row(matrix, row)[0] == col).any())


def _row(matrix: sparse.csr_matrix, row: int) -> tuple[NDArray[np.int32], NDArray[np.float64]]:
    """The columns and values of one row of a CSR matrix, without copying."""
    start, end = matrix.indptr[row], matrix.indptr[row + 1]
    return matrix.indices[start:end], matrix.data[start:end]
