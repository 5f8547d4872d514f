"""Scoring: every profile against every paper, as whole matrices, down to each profile's best papers.

`prepare_batch` turns one call's papers and profiles into a `BatchMatrices` (TF-IDF rows,
keyword hits, priors, embeddings); `best_papers` scores it `CHUNK` papers at a time on
`WORKERS` threads and keeps each profile's best. How a score is made (the two views,
the calibration curve, the priors) is told in the package's docstring (`digest.rank`).

Never explains a score (`explain` does, from the same `BatchMatrices`) and never chooses
a digest (`choose` does).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2

try:  # SciPy's own kernel for the sparse product, called without its first pass (`_dense_product`)
    from scipy.sparse import _sparsetools
except ImportError:  # pragma: no cover - a SciPy that moved it: the public product is used
    _sparsetools = None

from digest.chars import name_key
from digest.models import Paper, Profile, Votes
from digest.rank.features import (
    CHUNK,
    THREADS,
    Corpus,
    Features,
    Phrases,
    Tokenizer,
    body_text,
    dense,
    extra_text,
    paper_text,
    query_text,
    threaded,
)
from digest.wanted import wanted_text

TITLE_WEIGHT = 2
ABSTRACT_HIT = 0.5
KEYWORD_WEIGHT = 0.02
SEMANTIC_KEYWORD_WEIGHT = 0.01
# With the embedding extra, the raw relevance is the embedding cosine plus this times the
# lexical one. Mean nDCG@10 over 42 judged profiles rose up to 3-4 (measured beside a liked-view
# change since taken out), but from 3 on a paper that shares no word with a description
# (tests/test_semantic.py) no longer passes the default `min_score`; bench/RESULTS.md
# "Choosing on every judged split".
SEMANTIC_LEXICAL = 2.5
UPVOTE_BOOST = 0.01
FOLLOW_BOOST = 0.25
# A paper as close as a near-duplicate (cosine 1) to a paper marked "less like this" scores
# nothing; at cosine 0.3 it keeps 70 % of its score.
LESS_WEIGHT = 1.0
# Rocchio's terms, in both views: the raw relevance gains MORE_ROCCHIO times the paper's
# mean likeness to the papers marked "more like this" and loses LESS_ROCCHIO times its mean
# likeness to those marked "less like this" (chosen on the `tune` split, bench/feedback.py).
# The negative term is off: on `tune` it gained nothing (0.744 vs 0.736 at day 5 without
# it), and one "less like this" then cost every paper on the voted paper's topic a quarter
# of its score; LESS_WEIGHT's near-duplicate push is how a "less" vote acts. Re-checked after
# the second pass: 0.15 did a little better on `tune` (day 5: 0.751 against 0.745), within
# noise, but then one vote no longer lifts a paper like it past one that is not
# (tests/test_rank.py), so 0.25 stays.
MORE_ROCCHIO = 0.25
LESS_ROCCHIO = 0.0
# The text view's query is the description plus KEYWORD_MIX times the keywords (each part
# of unit length): keywords are a few words, and at equal weight they drowned a long
# description (chosen on `tune`, bench/RESULTS.md "Issue 16, second pass").
KEYWORD_MIX = 0.5
MIN_SHOWN = 0.0001  # scores are rounded to 4 places; below this a paper is left out
WORKERS = THREADS  # threads scoring chunks
_DF_SLICE = 4_000_000  # cells weighed or counted in one piece (a big matrix is shared out to threads)

# (mode, view) -> (m, s) of the curve raw**s / (raw**s + m**s): m is the raw relevance
# that scores 0.5, s how sharply scores rise around it. Fitted to the judged `seen` and `tune`
# profiles by bench/calibration.py: the median on-topic paper scores 0.6, 95 % of off-topic
# papers score under 0.1.
CALIBRATION: dict[tuple[str, str], tuple[float, float]] = {
    ("lexical", "text"): (0.142, 2.4),
    ("lexical", "liked"): (0.127, 7.6),
    ("semantic", "text"): (0.830, 4.4),
    ("semantic", "liked"): (0.863, 11.4),
}

Floats = NDArray[np.float64]
Embedder = Callable[[Sequence[str]], Floats]
"""Texts to L2-normalised embedding rows (`digest.semantic.load_embedder` gives one)."""

ChunkScores = tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]
"""profiles × a chunk of papers: the final scores, the text view's, the liked view's, and
the likeness to papers marked "less like this" that pushed the score down."""


def calibrate(raw: NDArray[Any], mode: str, view: str) -> NDArray[np.float32]:
    """Raw relevance to a score in [0, 1) on the fixed scale described in `digest.rank`."""
    m, s = CALIBRATION[(mode, view)]
    # 1 / (1 + (m / raw)**s), in single precision: scores are shown to four places. (Rounding
    # keeps order, so the floor after the rounding is the floor before it; in place, one array.)
    ratio = np.asarray(raw).astype(np.float32)
    np.maximum(ratio, np.float32(1e-12), out=ratio)
    np.divide(np.float32(m), ratio, out=ratio)
    with np.errstate(over="ignore"):  # a tiny raw value makes the ratio overflow: its score is 0
        np.power(ratio, np.float32(s), out=ratio)
    ratio += np.float32(1.0)
    scores: NDArray[np.float32] = np.divide(np.float32(1.0), ratio, out=ratio)
    return scores


def upvote_prior(papers: Sequence[Paper], background: Sequence[Paper] = ()) -> Floats:
    """Per paper, in [0, 1]: log-damped upvotes over those of the most upvoted paper of
    its listing day (among `papers` and `background`)."""
    return _upvote_prior(papers, _best_upvotes(background))


def _best_upvotes(papers: Sequence[Paper]) -> dict[object, float]:
    """Listing day -> the log-damped upvotes of its most upvoted paper among `papers`."""
    best: dict[object, float] = {}
    for paper in papers:
        best[paper.last_seen] = max(best.get(paper.last_seen, 0.0), math.log1p(paper.upvotes or 0))
    return best


def _upvote_prior(papers: Sequence[Paper], background_best: Mapping[object, float]) -> Floats:
    best = dict(background_best)
    for day, value in _best_upvotes(papers).items():
        best[day] = max(best.get(day, 0.0), value)
    damped = np.log1p(np.array([p.upvotes or 0 for p in papers], dtype=np.float64))
    top = np.array([best[p.last_seen] for p in papers])
    return np.divide(damped, top, out=np.zeros_like(damped), where=top > 0)


@dataclass
class BatchMatrices:
    """One call's papers and profiles as the matrices that scoring and explaining read."""

    tokenizer: Tokenizer
    features: Features
    papers: sparse.csr_matrix  # papers × features, TF-IDF
    queries: sparse.csr_matrix  # profiles × features, the text view's query
    centroids: sparse.csr_matrix  # profiles × features, the liked view's query
    liked: sparse.csr_matrix  # liked papers × features ("more like this" ones included)
    liked_owners: sparse.csr_matrix  # profiles × liked papers
    more_means: sparse.csr_matrix  # profiles × features: the mean of each profile's "more" papers (Rocchio)
    keywords: Phrases
    title_hits: sparse.csr_matrix  # papers × keyword phrases
    abstract_hits: sparse.csr_matrix
    excluded: sparse.csr_matrix  # papers × exclusion phrases
    exclusions: Phrases
    upvotes: Floats
    followed: sparse.csr_matrix  # profiles × papers: from a followed organisation
    followed_authors: sparse.csr_matrix  # profiles × papers: by a followed author
    author_keys: list[frozenset[str]]  # per profile, its followed authors' `name_key`s
    known: sparse.csr_matrix  # profiles × papers: liked, voted on or delivered
    muted: sparse.csr_matrix  # profiles × papers: from an organisation the reader muted
    less: sparse.csr_matrix  # papers marked "less like this" × features
    less_owners: sparse.csr_matrix  # profiles × those papers
    less_means: sparse.csr_matrix  # profiles × features: the mean of each profile's "less" papers
    has_text: NDArray[np.bool_]
    has_liked: NDArray[np.bool_]
    semantic_papers: Floats | None
    semantic_queries: Floats | None
    semantic_liked: Floats | None
    semantic_more: Floats | None
    semantic_less: Floats | None  # profiles × dimensions: the mean of each profile's "less" papers


def prepare_batch(
    papers: Sequence[Paper],
    profiles: Sequence[Profile],
    liked_lists: list[list[Paper]],
    delivered: Mapping[str, set[str]],
    embed: Embedder | None,
    background: Sequence[Paper],
    votes: Sequence[Votes] = (),
) -> BatchMatrices:
    """The matrices of one call. `liked_lists` holds each profile's liked papers, its
    "more like this" papers included (see `score_papers`); `votes` each profile's votes."""
    votes = list(votes) or [Votes() for _ in profiles]
    less_lists = [list(v.less) for v in votes]
    corpus, background_best = _background(background)
    ranked = {p.id for p in papers}
    tokenizer, base = corpus.without(ranked)
    titles = tokenizer.texts([p.title for p in papers])
    abstracts = tokenizer.texts([p.abstract for p in papers])
    # Most papers (all from text dumps) have no extra text: then it costs nothing.
    extras = tokenizer.texts([extra_text(p) for p in papers]) if any(extra_text(p) for p in papers) else None
    liked_papers = [p for items in liked_lists for p in items]
    less_papers = [p for items in less_lists for p in items]
    # Word rarity comes from every distinct paper known here, so it does not hang on the
    # batch: the background (but the papers ranked, read as such) and the liked papers.
    others = _others(liked_papers, ranked | corpus.rows.keys())
    other_titles = tokenizer.texts([p.title for p in others])
    other_abstracts = tokenizer.texts([body_text(p) for p in others])
    liked_titles = tokenizer.texts([p.title for p in liked_papers])
    liked_abstracts = tokenizer.texts([body_text(p) for p in liked_papers])
    # Read before the feature space is made, so every word of a voted paper has a column
    # (an old vote need not be among the papers known here; it never changes word rarity).
    less_titles = tokenizer.texts([p.title for p in less_papers])
    less_abstracts = tokenizer.texts([body_text(p) for p in less_papers])
    wanted = [wanted_text(p.description) for p in profiles]
    descriptions = tokenizer.texts(wanted)
    keywords = Phrases.of(profiles, lambda p: [(k.term, k.weight) for k in p.keywords], tokenizer)
    exclusions = Phrases.of(profiles, lambda p: [(term, 1.0) for term in p.exclude], tokenizer)
    # A paper's counts: its title TITLE_WEIGHT times, its abstract and its extra text, as one
    # matrix (no abstract matrix: its keyword hits are what the paper has less its title's).
    extra = [(4, 1)] if extras is not None else []
    features = Features(
        len(tokenizer.stems),
        documents=[titles, abstracts, other_titles, other_abstracts, *([extras] if extras is not None else [])],
        wanted=[descriptions, keywords.as_texts()],
        base=base,
        matrices=[
            [(0, 1)],
            [(0, TITLE_WEIGHT), (1, 1), *extra],
            [(2, TITLE_WEIGHT), (3, 1)],
            *([extra] if extra else []),
        ],
    )
    title_counts, paper_counts, other_counts = features.document_counts[:3]
    extra_counts = features.document_counts[3:]  # the extra text, when there is one: not the abstract
    tfidf = Weights.of([paper_counts, other_counts], features.base_df, base.documents)
    liked_vectors = tfidf.transform(TITLE_WEIGHT * features.counts(liked_titles) + features.counts(liked_abstracts))
    less_vectors = tfidf.transform(TITLE_WEIGHT * features.counts(less_titles) + features.counts(less_abstracts))
    queries = tfidf.transform(features.counts(descriptions))
    if keywords.phrases:
        mixed = keywords.owners @ tfidf.transform(features.counts(keywords.as_texts()))
        queries = _normalised(queries + KEYWORD_MIX * _normalised(mixed))
    owners = _owners(liked_lists)
    # "More like this" papers move both views toward them (Rocchio). A profile with neither
    # words nor liked papers of its own has only them: they are its liked view instead.
    more_ids = [{p.id for p in v.more} for v in votes]
    has_text = np.array([bool(text.strip() or p.keywords) for text, p in zip(wanted, profiles, strict=True)])
    own = [any(p.id not in ids for p in items) for items, ids in zip(liked_lists, more_ids, strict=True)]
    by_votes = [not (own[row] or has_text[row]) for row in range(len(profiles))]
    in_centroid = [p.id not in more_ids[row] or by_votes[row] for row, items in enumerate(liked_lists) for p in items]
    in_more = [p.id in more_ids[row] and not by_votes[row] for row, items in enumerate(liked_lists) for p in items]
    centroid_owners = sparse.csr_matrix(owners.multiply(np.array(in_centroid, dtype=np.float64)))
    more_owners = sparse.csr_matrix(owners.multiply(np.array(in_more, dtype=np.float64)))
    author_keys = [frozenset(filter(None, map(name_key, p.follow_authors))) for p in profiles]

    less_owners = _owners(less_lists)

    def keyword_hits() -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
        in_title, in_paper, *in_extra = keywords.found([title_counts, paper_counts, *extra_counts], features)
        in_abstract = in_paper - TITLE_WEIGHT * in_title
        for part in in_extra:
            in_abstract = in_abstract - part
        return keywords.hits(in_title, [titles]), keywords.hits(in_abstract, [abstracts])

    def excluded_hits() -> sparse.csr_matrix:
        # Title and abstract are looked at apart: an exclusion never spans the two.
        in_title, in_paper, *in_extra = exclusions.found([title_counts, paper_counts, *extra_counts], features)
        in_either = in_paper - (TITLE_WEIGHT - 1) * in_title
        for part in in_extra:
            in_either = in_either - part
        return exclusions.hits(in_either, [titles, abstracts])

    (title_hits, abstract_hits), excluded = threaded(
        lambda find: find(), [keyword_hits, excluded_hits], worth=len(papers) > CHUNK
    )
    semantic = (
        _embed_all(embed, papers, profiles, liked_papers, (centroid_owners, more_owners), less_papers, less_owners)
        if embed
        else (None, None, None, None, None)
    )
    return BatchMatrices(
        tokenizer=tokenizer,
        features=features,
        papers=tfidf.transform(paper_counts, copy=False),  # made here, used for nothing else
        queries=queries,
        centroids=_normalised(centroid_owners @ liked_vectors),
        liked=liked_vectors,
        liked_owners=owners,
        more_means=_means(more_owners) @ liked_vectors,
        keywords=keywords,
        title_hits=title_hits,
        abstract_hits=abstract_hits,
        excluded=excluded,
        exclusions=exclusions,
        upvotes=_upvote_prior(papers, background_best),
        followed=_followed(profiles, papers),
        followed_authors=_followed_authors(author_keys, papers),
        author_keys=author_keys,
        known=_known(profiles, papers, [a + b for a, b in zip(liked_lists, less_lists, strict=True)], delivered),
        muted=_muted(votes, papers),
        less=less_vectors,
        less_owners=less_owners,
        less_means=_means(less_owners) @ less_vectors,
        has_text=has_text,
        has_liked=np.asarray(centroid_owners.sum(axis=1)).ravel() > 0,
        semantic_papers=semantic[0],
        semantic_queries=semantic[1],
        semantic_liked=semantic[2],
        semantic_more=semantic[3],
        semantic_less=semantic[4],
    )


_BACKGROUND: list[tuple[tuple[Paper, ...], Corpus, dict[object, float]]] = []  # the last one read
_BACKGROUND_LOCK = threading.Lock()


def _background(papers: Sequence[Paper]) -> tuple[Corpus, dict[object, float]]:
    """The background's `Corpus` and best upvotes of each listing day, read once for the
    same papers in a row: a build ranks every profile against one background, and reading
    it for each was most of a profile's time."""
    key = tuple(papers)
    with _BACKGROUND_LOCK:
        if _BACKGROUND and (_BACKGROUND[0][0] is key or _BACKGROUND[0][0] == key):
            return _BACKGROUND[0][1], _BACKGROUND[0][2]
    # Read outside the lock: a caller with another background does not wait for this one.
    found = (key, Corpus.of(key), _best_upvotes(key))
    with _BACKGROUND_LOCK:
        _BACKGROUND[:] = [found]
    return found[1], found[2]


def _embed_all(
    embed: Embedder,
    papers: Sequence[Paper],
    profiles: Sequence[Profile],
    liked_papers: list[Paper],
    owners: tuple[sparse.csr_matrix, sparse.csr_matrix],
    less_papers: list[Paper],
    less_owners: sparse.csr_matrix,
) -> tuple[Floats, Floats, Floats, Floats, Floats]:
    """Embeddings of the papers and queries, and per profile the means over its liked
    papers, its "more like this" papers (`owners`: which liked papers are which) and its
    "less like this" papers."""
    vectors = embed([paper_text(p) for p in papers])
    texts = [query_text(p) for p in profiles]
    queries = np.zeros((len(profiles), vectors.shape[1]))
    with_text = [i for i, text in enumerate(texts) if text.strip()]
    if with_text:
        queries[with_text] = embed([texts[i] for i in with_text])
    means, more, less = np.zeros_like(queries), np.zeros_like(queries), np.zeros_like(queries)
    if liked_papers:
        # The mean cosine over the liked papers is the cosine to their (unnormalised) mean.
        liked = embed([paper_text(p) for p in liked_papers])
        means, more = (np.asarray(_means(which) @ liked) for which in owners)
    if less_papers:
        less = np.asarray(_means(less_owners) @ embed([paper_text(p) for p in less_papers]))
    return vectors, queries, means, more, less


@dataclass(frozen=True, slots=True)
class BestPaper:
    """One of a profile's best papers: its column in the batch, its score, the two views'
    scores, and how like it is to a paper marked "less like this" (0: not at all)."""

    column: int
    score: float
    text_view: float
    liked_view: float
    unlike: float = 0.0


def best_papers(batch: BatchMatrices, profiles: int, papers: int, keep: int) -> list[list[BestPaper]]:
    """Per profile (row), its `keep` best papers scoring at least `MIN_SHOWN`, best first."""
    best = _Best(profiles, keep)
    for found in _scored_chunks(batch, papers, best):
        best.merge(found)
    return [best.of(row) for row in range(profiles)]


@dataclass(frozen=True, slots=True)
class _Found:
    """What a chunk offers each profile's best papers: `values` (final score, text view,
    liked view, "less like this" likeness) of the papers `cols`. Without `rows`, each
    profile's best of the chunk (profiles × n); with, single papers (row i, column i)."""

    cols: NDArray[Any]
    values: NDArray[Any]
    rows: NDArray[Any] | None = None


def _chunk_best(batch: BatchMatrices, start: int, stop: int, keep: int, floor: NDArray[Any] | None) -> _Found:
    """Papers `start` to `stop` that can be among each profile's best `keep`: the chunk's best
    of each, or, given `floor` (each profile's lowest held score when the chunk was given
    out: it can only rise since), the papers scoring above it. Worked out here, on the
    scoring thread, so that the one thread merging reads a few papers, not every score."""
    views = _score_chunk(batch, start, stop)
    scores = views[0]
    if floor is None:
        top = _top(scores, keep, np.broadcast_to(np.arange(start, stop), scores.shape))
        return _Found(start + top, np.stack([np.take_along_axis(view, top, axis=1) for view in views]))
    rows, cols = np.nonzero(scores > floor[:, np.newaxis])
    return _Found(start + cols, np.stack([view[rows, cols] for view in views]), rows)


def _score_chunk(batch: BatchMatrices, start: int, stop: int) -> ChunkScores:
    """profiles × papers[start:stop]: final scores, and the two calibrated views."""
    # features × papers, made once for the chunk's products (each would transpose it again).
    papers = sparse.csr_matrix(batch.papers[start:stop].T)
    lexical = _dense_product(batch.queries, papers)
    hit_strength = batch.title_hits[start:stop].maximum(batch.abstract_hits[start:stop] * ABSTRACT_HIT)
    matched = sparse.coo_matrix(batch.keywords.owners @ hit_strength.T)
    # Only profiles with liked papers have a liked view (the others' rows would be zeros).
    liked_rows = np.flatnonzero(batch.has_liked)
    liked_lexical = _dense_product(batch.centroids[liked_rows], papers)
    # Rocchio: each view's query moves toward the mean of the papers marked "more like this"
    # and away from the mean of those marked "less like this" (for a profile without votes
    # nothing moves, so its scores are unchanged).
    voted = batch.more_means.nnz > 0 or batch.less.shape[0] > 0
    rocchio = (
        dense(MORE_ROCCHIO * batch.more_means @ papers - LESS_ROCCHIO * batch.less_means @ papers)
        if voted
        else np.zeros((0, 0))  # never read
    )
    if batch.semantic_papers is None:
        mode = "lexical"
        raw_text = lexical  # plus the keyword hits, only where there are some (+ 0.0 changes nothing)
        raw_text[matched.row, matched.col] += KEYWORD_WEIGHT * matched.data
        raw_liked = liked_lexical
    else:
        mode = "semantic"
        vectors = batch.semantic_papers[start:stop]
        assert batch.semantic_queries is not None and batch.semantic_liked is not None
        assert batch.semantic_more is not None and batch.semantic_less is not None
        raw_text = batch.semantic_queries @ vectors.T + SEMANTIC_LEXICAL * (
            lexical + SEMANTIC_KEYWORD_WEIGHT * dense(matched)
        )
        raw_liked = (batch.semantic_liked @ vectors.T)[liked_rows] + SEMANTIC_LEXICAL * liked_lexical
        if voted:
            toward = MORE_ROCCHIO * batch.semantic_more - LESS_ROCCHIO * batch.semantic_less
            rocchio = toward @ vectors.T + SEMANTIC_LEXICAL * rocchio
    # A profile with words ranks by them, its liked papers moving them as "more like this"
    # votes do (Rocchio); the liked view decides only for a profile with no words. (As the
    # better of two views, the liked one's near-misses outranked what the words asked for.)
    # The mean, weighted, of the two raw relevances (not their sum): the two curves put "on
    # topic" at about the same raw value, so the text view's curve keeps its meaning.
    worded = np.flatnonzero(batch.has_text & batch.has_liked)
    if len(worded):
        own = raw_liked[np.searchsorted(liked_rows, worded)]
        raw_text[worded] = (raw_text[worded] + MORE_ROCCHIO * own) / (1.0 + MORE_ROCCHIO)
    if voted:
        raw_text = raw_text + rocchio
        raw_liked = raw_liked + rocchio[liked_rows]
    text = _calibrated(raw_text, batch.has_text, mode, "text")
    liked = np.zeros(raw_text.shape, dtype=np.float32)
    liked[liked_rows] = calibrate(raw_liked, mode, "liked")
    # The priors, element by element as 1 + UPVOTE_BOOST * upvotes + FOLLOW_BOOST * followed,
    # but only the few followed papers get the second term (one pass over the chunk, not three).
    base = 1.0 + UPVOTE_BOOST * batch.upvotes[np.newaxis, start:stop]
    best = text if batch.has_text.all() else np.where(batch.has_text[:, np.newaxis], text, liked)
    # Into the text view's raw relevance, no longer needed: a new array this size costs its page faults.
    scores = np.multiply(best, base, out=raw_text)
    # Following a paper's organisation and one of its authors boosts it once, not twice.
    rows, cols = batch.followed[:, start:stop].maximum(batch.followed_authors[:, start:stop]).nonzero()
    scores[rows, cols] = best[rows, cols] * (base[0, cols] + FOLLOW_BOOST)
    np.minimum(scores, 1.0, out=scores)
    unlike = _likeness(batch.less, batch.less_owners, papers)
    if batch.less.shape[0]:  # without "less like this" papers the factor is 1 everywhere
        scores *= 1.0 - LESS_WEIGHT * unlike
    excluded = batch.exclusions.owners @ batch.excluded[start:stop].T
    left_out = excluded + batch.known[:, start:stop] + batch.muted[:, start:stop]  # all counts: none cancels
    scores[left_out.nonzero()] = 0.0
    return scores, text, liked, unlike


_ROOM = threading.local()  # per scoring thread: room for a product's cells, reused chunk after chunk


def _dense_product(left: sparse.csr_matrix, right: sparse.csr_matrix) -> Floats:
    """`left @ right` as a dense array. The scoring products are nearly dense: SciPy's
    product first walks both operands to count the answer's cells (a third of its time),
    then fills it; here the same kernel fills room kept for every cell, so it walks once.
    The same sums in the same order: the same bits."""
    rows, cols = left.shape[0], right.shape[1]
    cells = rows * cols
    small = cells < 2**31 and all(m.indices.dtype == m.indptr.dtype == np.int32 for m in (left, right))
    if _sparsetools is None or not small or not left.dtype == right.dtype == np.float64:
        return dense(left @ right)
    room = getattr(_ROOM, "cells", None)
    if room is None or len(room[0]) < cells:
        room = _ROOM.cells = (np.empty(cells, dtype=np.int32), np.empty(cells, dtype=np.float64))
    indptr = np.empty(rows + 1, dtype=np.int32)
    indices, data = room
    _sparsetools.csr_matmat(
        rows, cols, left.indptr, left.indices, left.data, right.indptr, right.indices, right.data, indptr, indices, data
    )
    found = int(indptr[-1])
    return sparse.csr_matrix((data[:found], indices[:found], indptr), shape=(rows, cols)).toarray()


def _calibrated(raw: Floats, rows: NDArray[np.bool_], mode: str, view: str) -> NDArray[np.float32]:
    """`calibrate` on the profiles (`rows`) that have the view, 0 for the others."""
    if rows.all():  # the usual case: no copy of the rows in and out
        return calibrate(raw, mode, view)
    found = np.zeros(raw.shape, dtype=np.float32)
    found[rows] = calibrate(raw[rows], mode, view)
    return found


def _scored_chunks(batch: BatchMatrices, count: int, best: _Best) -> Iterator[_Found]:
    """What every chunk offers `best`, in order, `WORKERS` chunks at a time: scipy's sparse
    products release the GIL, so threads share the work, and at most `WORKERS` + 1 chunks
    are held."""
    if count <= CHUNK:  # one chunk (a day's or a period's papers): a thread would only cost its start
        yield _chunk_best(batch, 0, count, best.keep, best.floor())
        return
    pending: deque[Future[_Found]] = deque()
    with ThreadPoolExecutor(WORKERS) as pool:
        for start in range(0, count, CHUNK):
            stop = min(start + CHUNK, count)
            pending.append(pool.submit(_chunk_best, batch, start, stop, best.keep, best.floor()))
            if len(pending) > WORKERS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class _Best:
    """Each profile's best papers so far, with the views that explain them."""

    def __init__(self, profiles: int, keep: int) -> None:
        self.keep = keep
        self.cols = np.zeros((profiles, 0), dtype=np.int64)
        self.values = np.zeros((4, profiles, 0))

    def floor(self) -> NDArray[Any] | None:
        """Each profile's lowest held score, once `keep` are held (a paper must beat it to come in)."""
        return self.values[0].min(axis=1) if self.keep and self.cols.shape[1] == self.keep else None

    def merge(self, found: _Found) -> None:
        """Chunks come in order: a paper found has a later column than every paper held."""
        if found.rows is not None:
            self._merge_above(found.rows, found.cols, found.values)
            return
        all_cols = np.concatenate([self.cols, found.cols], axis=1)
        all_values = np.concatenate([self.values, found.values], axis=2)
        if all_cols.shape[1] > self.keep:
            top = _top(all_values[0], self.keep, all_cols)
            all_cols = np.take_along_axis(all_cols, top, axis=1)
            all_values = np.take_along_axis(all_values, top[np.newaxis], axis=2)
        self.cols, self.values = all_cols, all_values

    def _merge_above(self, rows: NDArray[Any], cols: NDArray[Any], values: NDArray[Any]) -> None:
        """With `keep` held in every row, only a paper scoring above a row's lowest can come
        in (at equal scores the paper held, an earlier one, stays)."""
        profiles = self.cols.shape[0]
        above = values[0] > self.values[0].min(axis=1)[rows]
        if not above.any():
            return
        every_row = np.concatenate([np.repeat(np.arange(profiles), self.keep), rows[above]])
        every_col = np.concatenate([self.cols.ravel(), cols[above]])
        every_value = np.concatenate([self.values.reshape(len(values), -1), values[:, above]], axis=1)
        order = np.lexsort((every_col, -every_value[0], every_row))
        place = np.arange(len(order)) - np.searchsorted(every_row[order], every_row[order])
        kept = order[place < self.keep]  # row by row, each row's best `keep` first
        self.cols = every_col[kept].reshape(profiles, self.keep)
        self.values = every_value[:, kept].reshape(len(values), profiles, self.keep)

    def of(self, row: int) -> list[BestPaper]:
        scores = self.values[0, row]
        order = np.lexsort((self.cols[row], -scores))
        return [
            BestPaper(
                int(self.cols[row, i]),
                float(scores[i]),
                float(self.values[1, row, i]),
                float(self.values[2, row, i]),
                float(self.values[3, row, i]),
            )
            for i in order
            if scores[i] >= MIN_SHOWN
        ]


def _top(scores: NDArray[Any], keep: int, cols: NDArray[Any]) -> NDArray[np.intp]:
    """Per row, the positions of its `keep` highest scores (all of them when there are no
    more); of scores tied at the cut, those of the earliest papers (`cols`: each score's
    paper). Scores under `MIN_SHOWN` are never shown, so which of those are kept does not
    matter."""
    width = scores.shape[1]
    if width <= keep:
        return np.broadcast_to(np.arange(width), scores.shape).copy()
    top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
    # argpartition keeps any of the scores tied at the cut: where it had a choice, sort the row.
    kept = np.take_along_axis(scores, top, axis=1)
    cut = kept.min(axis=1, keepdims=True)
    tied = (scores == cut).sum(axis=1) > (kept == cut).sum(axis=1)
    for row in np.flatnonzero(tied & (cut[:, 0] >= MIN_SHOWN)):
        top[row] = np.lexsort((cols[row], -scores[row]))[:keep]
    return top


# -- small matrices -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Weights:
    """TF-IDF as scikit-learn's `TfidfTransformer(sublinear_tf=True)` weighs (smoothed idf,
    1 + log(tf), rows of unit length), from document counts that need not all be rows of
    one matrix: a background's are counted once and added (`Features.base_df`)."""

    idf: Floats

    @classmethod
    def of(cls, counts: Sequence[sparse.csr_matrix], base_df: NDArray[np.int64], base_documents: int) -> Weights:
        """From the counts of every document (as rows of `counts`, and `base_df`: how many
        other documents, `base_documents` of them, hold each feature)."""
        # Counted a slice at a time on THREADS threads (NumPy releases the GIL; each slice's
        # indices are widened for `bincount` into memory the next one reuses).
        pieces = [part.indices[start : start + _DF_SLICE] for part in counts for start in range(0, part.nnz, _DF_SLICE)]
        found = threaded(lambda ids: np.bincount(ids, minlength=len(base_df)), pieces, worth=len(pieces) > THREADS)
        df = base_df + sum(found, np.zeros(len(base_df), dtype=np.int64))
        samples = sum(part.shape[0] for part in counts) + base_documents + 1
        idf = np.full_like(df, samples, dtype=np.float64)
        idf /= df.astype(np.float64) + 1.0
        np.log(idf, out=idf)
        idf += 1.0
        return cls(idf)

    def transform(self, counts: sparse.csr_matrix, *, copy: bool = True) -> sparse.csr_matrix:
        """`counts` weighed; with `copy=False`, in place (`counts` is then no longer counts)."""
        if not counts.shape[0] or not counts.shape[1]:  # scikit-learn refuses an empty matrix
            return sparse.csr_matrix(counts.shape)
        weighted = sparse.csr_matrix(counts, dtype=np.float64, copy=copy)
        data, indices = weighted.data, weighted.indices

        def weigh(part: slice) -> None:  # on THREADS threads: NumPy releases the GIL
            cells = data[part]
            np.log(cells, out=cells)
            cells += 1.0
            cells *= self.idf[indices[part]]

        size = max(1, -(-len(data) // THREADS))
        threaded(weigh, [slice(start, start + size) for start in range(0, len(data), size)], worth=size > _DF_SLICE)
        # What `sklearn.preprocessing.normalize` runs for CSR rows, without its argument
        # checks (~1 ms a call, five calls for each profile the build ranks).
        inplace_csr_row_normalize_l2(weighted)
        return weighted


def _others(papers: Sequence[Paper], excluded: set[str]) -> list[Paper]:
    """Each paper once, leaving out those whose ids are `excluded`."""
    found: dict[str, Paper] = {}
    for paper in papers:
        if paper.id not in excluded:
            found.setdefault(paper.id, paper)
    return list(found.values())


def _normalised(matrix: Any) -> sparse.csr_matrix:
    matrix = sparse.csr_matrix(matrix)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sparse.csr_matrix(sparse.diags(scale) @ matrix)


def _owners(liked_lists: list[list[Paper]]) -> sparse.csr_matrix:
    """profiles × liked papers: which profile each liked paper belongs to."""
    rows = [row for row, items in enumerate(liked_lists) for _ in items]
    total = len(rows)
    return sparse.csr_matrix((np.ones(total), (rows, range(total))), shape=(len(liked_lists), total))


def _means(owners: sparse.csr_matrix) -> sparse.csr_matrix:
    """`owners` with each row summing to 1 (a product with it averages each profile's papers)."""
    counts = np.asarray(owners.sum(axis=1)).ravel()
    scale = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    return sparse.csr_matrix(sparse.diags(scale) @ owners)


def _incidence(pairs: list[tuple[int, int]], shape: tuple[int, int]) -> sparse.csr_matrix:
    rows = [r for r, _ in pairs]
    cols = [c for _, c in pairs]
    matrix = sparse.csr_matrix((np.ones(len(pairs)), (rows, cols)), shape=shape)
    matrix.data[:] = 1.0
    return matrix


def _followed(profiles: Sequence[Profile], papers: Sequence[Paper]) -> sparse.csr_matrix:
    """profiles × papers: 1 where the paper's organisation is one the profile follows."""
    by_org: dict[str, list[int]] = {}
    for col, paper in enumerate(papers):
        if paper.organization:
            by_org.setdefault(paper.organization.id.lower(), []).append(col)
    pairs = [(row, col) for row, p in enumerate(profiles) for org in p.follow for col in by_org.get(org.lower(), ())]
    return _incidence(pairs, (len(profiles), len(papers)))


def _followed_authors(author_keys: list[frozenset[str]], papers: Sequence[Paper]) -> sparse.csr_matrix:
    """profiles × papers: 1 where one of the paper's authors is one the profile follows."""
    wanted = set().union(*author_keys) if author_keys else set()
    by_author: dict[str, list[int]] = {}
    if wanted:
        for col, paper in enumerate(papers):
            for key in {name_key(author) for author in paper.authors} & wanted:
                by_author.setdefault(key, []).append(col)
    pairs = [(row, col) for row, keys in enumerate(author_keys) for key in keys for col in by_author.get(key, ())]
    return _incidence(pairs, (len(author_keys), len(papers)))


def _muted(votes: Sequence[Votes], papers: Sequence[Paper]) -> sparse.csr_matrix:
    """profiles × papers: 1 where the paper's organisation is one the reader muted."""
    by_org: dict[str, list[int]] = {}
    for col, paper in enumerate(papers):
        if paper.organization:
            by_org.setdefault(paper.organization.id.lower(), []).append(col)
    pairs = [(row, col) for row, v in enumerate(votes) for org in v.muted for col in by_org.get(org.lower(), ())]
    return _incidence(pairs, (len(votes), len(papers)))


def _likeness(less: sparse.csr_matrix, owners: sparse.csr_matrix, papers: sparse.csr_matrix) -> Floats:
    """profiles × papers: each paper's cosine to the closest paper its profile marked "less
    like this" (`papers`: features × papers)."""
    found = np.zeros((owners.shape[0], papers.shape[1]))
    if not less.shape[0]:
        return found
    cosines = dense(less @ papers)
    for row in np.flatnonzero(np.diff(owners.indptr)):
        members = owners.indices[owners.indptr[row] : owners.indptr[row + 1]]
        found[row] = np.clip(cosines[members].max(axis=0), 0.0, 1.0)
    return found


def _known(
    profiles: Sequence[Profile],
    papers: Sequence[Paper],
    liked_lists: list[list[Paper]],
    delivered: Mapping[str, set[str]],
) -> sparse.csr_matrix:
    """profiles × papers: 1 for a paper the profile liked or was already given."""
    column = {paper.id: i for i, paper in enumerate(papers)}
    pairs: list[tuple[int, int]] = []
    for row, profile in enumerate(profiles):
        known = {p.id for p in liked_lists[row]} | delivered.get(profile.id, set())
        pairs.extend((row, column[pid]) for pid in known if pid in column)
    return _incidence(pairs, (len(profiles), len(papers)))
