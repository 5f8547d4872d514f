"""Scoring papers against interest profiles, and choosing a digest from the scores.

Pure: papers and profiles in, scores and reasons out. No I/O, no clock, no store.
Every step works on whole matrices (profiles × papers), never on one pair at a time.

**Text.** Title and abstract are lower-cased, split into words, stripped of English stop
words and stemmed (Snowball, so 'quantize' meets 'quantization'); each text also gets
its word pairs (bigrams, so 'knowledge distillation' is one feature). Counts become
TF-IDF vectors (scikit-learn's `TfidfTransformer`: sublinear term frequency, smoothed
IDF, unit length), the title counting `TITLE_WEIGHT` times.

**Views.** A profile is seen two ways, each scored on its own:

- its *text*: the description, and its keywords mixed by weight, counting equally;
- its *liked papers*: their TF-IDF centroid (what arxiv-sanity ranks by).

For each view the raw relevance of a paper is its lexical cosine, plus
`KEYWORD_WEIGHT` per keyword weight matched (a whole phrase of stems in the title counts
1, in the abstract `ABSTRACT_HIT`; text view only). With the `[semantic]` extra it is
the embedding cosine (to the description, or the mean over the liked papers, as
zotero-arxiv-daily does) plus `SEMANTIC_LEXICAL` times that lexical relevance. These
weights were chosen on three of the six labelled profiles in `bench/quality/` and checked
on the other three (`bench/RESULTS.md`).

**Scores.** Raw relevance goes through a fixed log-logistic curve per view and mode
(`CALIBRATION`), never a min-max over the batch, so a score means the same on every day
and for every profile: on the labelled seeds an on-topic paper scores about 0.6 and
95 % of off-topic papers score under 0.1, so the default `min_score = 0.15` separates
them. Word rarity and each day's top upvotes come from the papers ranked plus a
`background` the caller passes (the store's recent papers), so a paper's score does not
hang on which other papers are new that day. A profile's relevance is its best view.
Priors then multiply it, capped at 1: upvotes (log-damped, relative to the most upvoted
paper of the same listing day) up to +`UPVOTE_BOOST`, a followed organisation
+`FOLLOW_BOOST`. A paper matching an `exclude` term, a liked paper itself, and a paper
already delivered score 0 and are left out.

`score_papers` gives every profile its papers, best first, with reasons (papers are
scored `CHUNK` at a time so memory stays flat); `select_digest` turns one profile's
ranked list into the digest's items (at least `min_score`, at most `max_items`,
near-duplicates kept apart by maximal marginal relevance) and the best few below the
threshold.
"""

from __future__ import annotations

import math
import os
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import Stemmer
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfTransformer

from digest.models import Paper, Profile, ScoredPaper

TITLE_WEIGHT = 2
ABSTRACT_HIT = 0.5
KEYWORD_WEIGHT = 0.02
SEMANTIC_KEYWORD_WEIGHT = 0.01
SEMANTIC_LEXICAL = 0.5
UPVOTE_BOOST = 0.01
FOLLOW_BOOST = 0.25
RUNNERS_UP = 3
MIN_SHOWN = 0.0001  # scores are rounded to 4 places; below this a paper is left out
MMR_PENALTY = 0.5
MMR_POOL = 4
CHUNK = 4096
WORKERS = max(1, min(4, os.cpu_count() or 1))  # threads scoring chunks (memory grows with each)
REASON_THRESHOLD = 0.15

# (mode, view) -> (m, s) of the curve raw**s / (raw**s + m**s): m is the raw relevance
# that scores 0.5, s how sharply scores rise around it. Fitted to the labelled seeds.
CALIBRATION: dict[tuple[str, str], tuple[float, float]] = {
    ("lexical", "text"): (0.099, 2.1),
    ("lexical", "liked"): (0.077, 4.5),
    ("semantic", "text"): (0.581, 8.0),
    ("semantic", "liked"): (0.572, 8.0),
}

Embedder = Callable[[Sequence[str]], np.ndarray]
"""Texts to L2-normalised embedding rows (`digest.semantic.load_embedder` gives one)."""

_WORD = re.compile(r"[a-z0-9]+")
_PAIR = np.int64(1 << 31)  # a word pair's key: first stem id * _PAIR + second stem id


# -- text to features ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Texts:
    """Many texts as stem ids, one after another: text i is `flat[starts[i]:starts[i + 1]]`."""

    flat: np.ndarray
    starts: np.ndarray

    def __len__(self) -> int:
        return len(self.starts) - 1

    def text(self, index: int) -> np.ndarray:
        return self.flat[self.starts[index] : self.starts[index + 1]]

    def rows(self) -> np.ndarray:
        return np.repeat(np.arange(len(self)), np.diff(self.starts))

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(row, key) of every word pair inside a text (two equal stems in a row make no pair)."""
        rows = self.rows()
        first, second = self.flat[:-1], self.flat[1:]
        keep = (rows[:-1] == rows[1:]) & (first != second)
        return rows[:-1][keep], first[keep] * _PAIR + second[keep]


class _Tokenizer:
    """Texts to stem ids, in bulk; remembers how each stem was most often spelled."""

    def __init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("english")
        self._word_index: dict[str, int] = {}
        self._words: list[str] = []
        self._word_stem = np.zeros(0, dtype=np.int64)  # word id -> stem id, or -1 (stop word)
        self._word_count = np.zeros(0, dtype=np.int64)
        self._stem_index: dict[str, int] = {}
        self.stems: list[str] = []
        self._spelling: np.ndarray | None = None

    def texts(self, texts: Sequence[str]) -> _Texts:
        # A slice at a time: the word strings of a whole corpus at once would take gigabytes.
        parts = [self._slice(texts[start : start + CHUNK]) for start in range(0, len(texts), CHUNK)]
        if len(parts) <= 1:
            return parts[0] if parts else self._slice([])
        flat = np.concatenate([part.flat for part in parts])
        offsets = np.cumsum([0] + [len(part.flat) for part in parts[:-1]])
        starts = np.concatenate([part.starts[:-1] + offset for part, offset in zip(parts, offsets, strict=True)])
        return _Texts(flat, np.concatenate([starts, [len(flat)]]))

    def _slice(self, texts: Sequence[str]) -> _Texts:
        self._spelling = None  # counts change: spell anew when asked
        found = [_WORD.findall(text.lower()) for text in texts]
        tokens = [word for words in found for word in words]
        self._learn(set(tokens).difference(self._word_index))
        words = np.fromiter(map(self._word_index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        self._word_count += np.bincount(words, minlength=len(self._words))
        stems = self._word_stem[words]
        kept = stems >= 0
        lengths = np.array([len(words) for words in found], dtype=np.int64)
        ends = np.cumsum(lengths)
        kept_before = np.concatenate([[0], np.cumsum(kept)])
        starts = np.concatenate([[0], kept_before[ends]])
        return _Texts(stems[kept], starts)

    def _learn(self, new: set[str]) -> None:
        if not new:
            return
        words = sorted(new)
        content = [w for w in words if len(w) > 1 and w not in ENGLISH_STOP_WORDS]
        stem_of = dict(zip(content, self._stemmer.stemWords(content), strict=True))
        ids = []
        for word in words:
            self._word_index[word] = len(self._words)
            self._words.append(word)
            stem = stem_of.get(word)
            if stem is None:
                ids.append(-1)
                continue
            if stem not in self._stem_index:
                self._stem_index[stem] = len(self.stems)
                self.stems.append(stem)
            ids.append(self._stem_index[stem])
        self._word_stem = np.concatenate([self._word_stem, np.array(ids, dtype=np.int64)])
        self._word_count = np.concatenate([self._word_count, np.zeros(len(words), dtype=np.int64)])

    def spell(self, stem_id: int) -> str:
        """The stem as the batch spelled it most often."""
        if self._spelling is None:
            # For each stem, its most frequent word: words by falling count, first per stem.
            order = np.argsort(-self._word_count, kind="stable")
            stems = self._word_stem[order]
            content = stems >= 0
            found, first = np.unique(stems[content], return_index=True)
            spelling = np.array(self.stems, dtype=object)
            spelling[found] = np.array(self._words, dtype=object)[order[content][first]]
            self._spelling = spelling
        return str(self._spelling[stem_id])


class _Features:
    """One feature space for a batch: every stem, and the word pairs that can relate two texts.

    A word pair seen once in all the documents can link no two of them, so it is left out
    (scikit-learn's `min_df=2`, for pairs only) unless a query or keyword has it.
    """

    def __init__(self, stem_count: int, documents: Sequence[_Texts], wanted: Sequence[_Texts]) -> None:
        self.stem_count = stem_count
        pairs = [d.pairs() for d in documents]
        keys = np.concatenate([k for _, k in pairs]) if pairs else np.zeros(0, dtype=np.int64)
        unique, inverse, occurrences = np.unique(keys, return_inverse=True, return_counts=True)
        wanted_keys = np.concatenate([w.pairs()[1] for w in wanted]) if wanted else np.zeros(0, dtype=np.int64)
        keep = (occurrences >= 2) | np.isin(unique, wanted_keys)
        self.pair_keys = unique[keep]
        self.size = stem_count + len(self.pair_keys)
        column_of = np.where(keep, stem_count + np.cumsum(keep) - 1, -1)
        self.document_counts: list[sparse.csr_matrix] = []
        offset = 0
        for texts, (rows, pair_keys) in zip(documents, pairs, strict=True):
            columns = column_of[inverse[offset : offset + len(pair_keys)]]
            offset += len(pair_keys)
            kept = columns >= 0
            self.document_counts.append(self._matrix(texts, rows[kept], columns[kept]))

    def counts(self, texts: _Texts) -> sparse.csr_matrix:
        """texts × features for texts outside `documents` (queries, keywords, liked papers)."""
        rows, keys = texts.pairs()
        found = self._pair_columns(keys)
        return self._matrix(texts, rows[found >= 0], found[found >= 0])

    def columns(self, phrases: Sequence[np.ndarray]) -> np.ndarray:
        """Per phrase, the feature that finds it: its stem, or its first word pair (-1: none has it)."""
        firsts = np.array([int(p[0]) for p in phrases], dtype=np.int64)
        seconds = np.array([int(p[1]) if len(p) > 1 else 0 for p in phrases], dtype=np.int64)
        single = np.array([len(p) == 1 for p in phrases], dtype=bool)
        return np.where(single, firsts, self._pair_columns(firsts * _PAIR + seconds))

    def _pair_columns(self, keys: np.ndarray) -> np.ndarray:
        if not len(self.pair_keys):
            return np.full(len(keys), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.pair_keys, keys), len(self.pair_keys) - 1)
        return np.where(self.pair_keys[at] == keys, self.stem_count + at, -1)

    def _matrix(self, texts: _Texts, pair_rows: np.ndarray, pair_columns: np.ndarray) -> sparse.csr_matrix:
        # Built CHUNK rows at a time, with 32-bit indices: one pass over a corpus would
        # hold several copies of every (row, column) pair at once.
        bounds = np.append(np.arange(0, len(texts), CHUNK), len(texts))
        pair_bounds = np.searchsorted(pair_rows, bounds)
        blocks = [sparse.csr_matrix((0, self.size), dtype=np.float32)]
        for block in range(len(bounds) - 1):
            start, stop = int(bounds[block]), int(bounds[block + 1])
            words = slice(texts.starts[start], texts.starts[stop])
            pairs = slice(pair_bounds[block], pair_bounds[block + 1])
            lengths = np.diff(texts.starts[start : stop + 1])
            rows = np.concatenate(
                [
                    np.repeat(np.arange(stop - start, dtype=np.int32), lengths),
                    (pair_rows[pairs] - start).astype(np.int32),
                ]
            )
            columns = np.concatenate([texts.flat[words], pair_columns[pairs]]).astype(np.int32)
            blocks.append(
                sparse.csr_matrix(
                    (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(stop - start, self.size)
                )
            )
        return sparse.csr_matrix(sparse.vstack(blocks, format="csr"), dtype=np.float64)

    def describe(self, feature: int, tokenizer: _Tokenizer) -> str:
        if feature < self.stem_count:
            return tokenizer.spell(feature)
        key = int(self.pair_keys[feature - self.stem_count])
        return f"{tokenizer.spell(key // int(_PAIR))} {tokenizer.spell(key % int(_PAIR))}"


@dataclass(frozen=True, slots=True)
class _Phrases:
    """Phrases of stems that profiles own (keywords, exclusions), with a weight per owner."""

    phrases: list[np.ndarray]
    labels: list[str]
    owners: sparse.csr_matrix  # profiles × phrases

    @classmethod
    def of(
        cls,
        profiles: Sequence[Profile],
        terms: Callable[[Profile], Sequence[tuple[str, float]]],
        tokenizer: _Tokenizer,
    ) -> _Phrases:
        owned = [(row, term, weight) for row, profile in enumerate(profiles) for term, weight in terms(profile)]
        tokens = tokenizer.texts([term for _, term, _ in owned])
        index: dict[tuple[int, ...], int] = {}
        phrases: list[np.ndarray] = []
        labels: list[str] = []
        rows, cols, values = [], [], []
        for position, (row, term, weight) in enumerate(owned):
            ids = tokens.text(position)
            if not len(ids):
                continue
            key = tuple(ids.tolist())
            if key not in index:
                index[key] = len(phrases)
                phrases.append(ids)
                labels.append(term)
            rows.append(row)
            cols.append(index[key])
            values.append(weight)
        owners = sparse.csr_matrix((values, (rows, cols)), shape=(len(profiles), len(phrases)), dtype=np.float64)
        owners.sum_duplicates()
        return cls(phrases, labels, owners)

    def as_texts(self) -> _Texts:
        lengths = np.array([len(p) for p in self.phrases], dtype=np.int64)
        flat = np.concatenate(self.phrases) if self.phrases else np.zeros(0, dtype=np.int64)
        return _Texts(flat, np.concatenate([[0], np.cumsum(lengths)]))

    def hits(self, counts: sparse.spmatrix, texts: Sequence[_Texts], features: _Features) -> sparse.csr_matrix:
        """rows of `counts` × phrases: 1 where the whole phrase occurs in one of `texts`.

        A phrase of one stem is that stem's column, of two stems that word pair's column;
        longer phrases are checked word by word where their first pair occurs.
        """
        shape = (counts.shape[0], len(self.phrases))
        wanted = features.columns(self.phrases)
        present = np.flatnonzero(wanted >= 0)
        # Picking columns by a product reads the matrix once, instead of converting it to columns.
        pick = sparse.csr_matrix(
            (np.ones(len(present)), (wanted[present], present)), shape=(counts.shape[1], len(self.phrases))
        )
        rows, cols = (counts @ pick).nonzero()
        lengths = np.array([len(p) for p in self.phrases], dtype=np.int64)
        long = lengths[cols] > 2
        if long.any():
            confirmed = [
                any(_contains(t.text(r), self.phrases[c]) for t in texts)
                for r, c in zip(rows[long], cols[long], strict=True)
            ]
            keep = ~long
            keep[np.flatnonzero(long)[np.array(confirmed, dtype=bool)]] = True
            rows, cols = rows[keep], cols[keep]
        return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)


def _contains(ids: np.ndarray, phrase: np.ndarray) -> bool:
    width = len(phrase)
    if len(ids) < width:
        return False
    return bool((np.lib.stride_tricks.sliding_window_view(ids, width) == phrase).all(axis=1).any())


# -- scoring ------------------------------------------------------------------------------


def calibrate(raw: np.ndarray, mode: str, view: str) -> np.ndarray:
    """Raw relevance to a score in [0, 1) on the fixed scale described above."""
    m, s = CALIBRATION[(mode, view)]
    # 1 / (1 + (m / raw)**s), in single precision: scores are shown to four places.
    ratio = np.float32(m) / np.maximum(raw, 1e-12).astype(np.float32)
    with np.errstate(over="ignore"):  # a tiny raw value makes the ratio overflow: its score is 0
        return 1.0 / (1.0 + ratio ** np.float32(s))


def upvote_prior(papers: Sequence[Paper], background: Sequence[Paper] = ()) -> np.ndarray:
    """Per paper, in [0, 1]: log-damped upvotes over those of the most upvoted paper of
    its listing day (among `papers` and `background`)."""
    best: dict[object, float] = {}
    for paper in [*background, *papers]:
        best[paper.last_seen] = max(best.get(paper.last_seen, 0.0), math.log1p(paper.upvotes or 0))
    damped = np.log1p(np.array([p.upvotes or 0 for p in papers], dtype=np.float64))
    top = np.array([best[p.last_seen] for p in papers])
    return np.divide(damped, top, out=np.zeros_like(damped), where=top > 0)


@dataclass
class _Batch:
    """Everything about one call's texts that scoring and explaining need."""

    tokenizer: _Tokenizer
    features: _Features
    papers: sparse.csr_matrix  # papers × features, TF-IDF
    queries: sparse.csr_matrix  # profiles × features, the text view's query
    centroids: sparse.csr_matrix  # profiles × features, the liked view's query
    liked: sparse.csr_matrix  # liked papers × features
    liked_owners: sparse.csr_matrix  # profiles × liked papers
    keywords: _Phrases
    title_hits: sparse.csr_matrix  # papers × keyword phrases
    abstract_hits: sparse.csr_matrix
    excluded: sparse.csr_matrix  # papers × exclusion phrases
    exclusions: _Phrases
    upvotes: np.ndarray
    followed: sparse.csr_matrix  # profiles × papers
    known: sparse.csr_matrix  # profiles × papers: liked or delivered
    has_text: np.ndarray
    has_liked: np.ndarray
    semantic_papers: np.ndarray | None
    semantic_queries: np.ndarray | None
    semantic_liked: np.ndarray | None


def score_papers(
    papers: Sequence[Paper],
    profiles: Sequence[Profile],
    *,
    liked: Mapping[str, Sequence[Paper]] | None = None,
    delivered: Mapping[str, set[str]] | None = None,
    embed: Embedder | None = None,
    limit: int | None = None,
    background: Sequence[Paper] = (),
) -> dict[str, list[ScoredPaper]]:
    """Every profile's papers, best first, with scores in [0, 1] and reasons.

    `liked` maps a profile id to the papers its `liked` list names (resolved by the
    caller); `delivered` to the ids of papers it was already given. `embed` adds the
    semantic signal. `background` are other papers (e.g. the store's recent ones) that
    only set word rarity (IDF) and each listing day's most upvoted paper: with the same
    background, a paper scores the same whichever other papers are ranked with it.
    Papers scoring 0 are left out; `limit` keeps each profile's best N (reasons are only
    worked out for those).
    """
    if not papers or not profiles:
        return {profile.id: [] for profile in profiles}
    liked_lists = [list((liked or {}).get(p.id, ())) for p in profiles]
    batch = _prepare(papers, profiles, liked_lists, delivered or {}, embed, background)
    best = _Best(len(profiles), min(limit or len(papers), len(papers)))
    for start, scored in _scored_chunks(batch, len(papers)):
        best.merge(start, *scored)
    ranked: dict[str, list[ScoredPaper]] = {}
    for row, profile in enumerate(profiles):
        found = []
        for col, score, text, liked_view in best.of(row):
            reasons = _reasons(batch, profile, liked_lists[row], papers, row, col, text, liked_view)
            found.append(ScoredPaper(papers[col], round(score, 4), reasons))
        ranked[profile.id] = found
    return ranked


def _prepare(
    papers: Sequence[Paper],
    profiles: Sequence[Profile],
    liked_lists: list[list[Paper]],
    delivered: Mapping[str, set[str]],
    embed: Embedder | None,
    background: Sequence[Paper],
) -> _Batch:
    tokenizer = _Tokenizer()
    titles = tokenizer.texts([p.title for p in papers])
    abstracts = tokenizer.texts([p.abstract for p in papers])
    liked_papers = [p for items in liked_lists for p in items]
    # Word rarity comes from every distinct paper known here, so it does not hang on the batch.
    others = _others([*background, *liked_papers], {p.id for p in papers})
    other_titles = tokenizer.texts([p.title for p in others])
    other_abstracts = tokenizer.texts([p.abstract for p in others])
    liked_titles = tokenizer.texts([p.title for p in liked_papers])
    liked_abstracts = tokenizer.texts([p.abstract for p in liked_papers])
    descriptions = tokenizer.texts([p.description for p in profiles])
    keywords = _Phrases.of(profiles, lambda p: [(k.term, k.weight) for k in p.keywords], tokenizer)
    exclusions = _Phrases.of(profiles, lambda p: [(term, 1.0) for term in p.exclude], tokenizer)
    features = _Features(
        len(tokenizer.stems),
        documents=[titles, abstracts, other_titles, other_abstracts],
        wanted=[descriptions, keywords.as_texts()],
    )
    title_counts, abstract_counts, other_title_counts, other_abstract_counts = features.document_counts
    paper_counts = TITLE_WEIGHT * title_counts + abstract_counts
    other_counts = TITLE_WEIGHT * other_title_counts + other_abstract_counts
    tfidf = TfidfTransformer(sublinear_tf=True).fit(sparse.vstack([paper_counts, other_counts]))
    liked_vectors = _weigh(tfidf, TITLE_WEIGHT * features.counts(liked_titles) + features.counts(liked_abstracts))
    queries = _weigh(tfidf, features.counts(descriptions))
    if keywords.phrases:
        mixed = keywords.owners @ _weigh(tfidf, features.counts(keywords.as_texts()))
        queries = _normalised(queries + _normalised(mixed))
    owners = _owners(liked_lists)

    semantic = _embed_all(embed, papers, profiles, liked_papers, owners) if embed else (None, None, None)
    return _Batch(
        tokenizer=tokenizer,
        features=features,
        papers=_weigh(tfidf, paper_counts),
        queries=queries,
        centroids=_normalised(owners @ liked_vectors),
        liked=liked_vectors,
        liked_owners=owners,
        keywords=keywords,
        title_hits=keywords.hits(title_counts, [titles], features),
        abstract_hits=keywords.hits(abstract_counts, [abstracts], features),
        # Title and abstract are looked at apart: an exclusion never spans the two.
        excluded=exclusions.hits(title_counts + abstract_counts, [titles, abstracts], features),
        exclusions=exclusions,
        upvotes=upvote_prior(papers, background),
        followed=_followed(profiles, papers),
        known=_known(profiles, papers, liked_lists, delivered),
        has_text=np.array([bool(p.description.strip() or p.keywords) for p in profiles]),
        has_liked=np.array([bool(items) for items in liked_lists]),
        semantic_papers=semantic[0],
        semantic_queries=semantic[1],
        semantic_liked=semantic[2],
    )


def _embed_all(
    embed: Embedder,
    papers: Sequence[Paper],
    profiles: Sequence[Profile],
    liked_papers: list[Paper],
    owners: sparse.csr_matrix,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vectors = embed([_paper_text(p) for p in papers])
    texts = [_query_text(p) for p in profiles]
    queries = np.zeros((len(profiles), vectors.shape[1]))
    with_text = [i for i, text in enumerate(texts) if text.strip()]
    if with_text:
        queries[with_text] = embed([texts[i] for i in with_text])
    means = np.zeros_like(queries)
    if liked_papers:
        counts = np.maximum(np.asarray(owners.sum(axis=1)).ravel(), 1.0)
        # The mean cosine over the liked papers is the cosine to their (unnormalised) mean.
        means = np.asarray(owners @ embed([_paper_text(p) for p in liked_papers])) / counts[:, None]
    return vectors, queries, means


def _score_chunk(batch: _Batch, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """profiles × papers[start:stop]: final scores, and the two calibrated views."""
    papers = batch.papers[start:stop]
    lexical = _dense(batch.queries @ papers.T)
    hit_strength = batch.title_hits[start:stop].maximum(batch.abstract_hits[start:stop] * ABSTRACT_HIT)
    matched = _dense(batch.keywords.owners @ hit_strength.T)
    liked_lexical = _dense(batch.centroids @ papers.T)
    if batch.semantic_papers is None:
        mode = "lexical"
        raw_text = lexical + KEYWORD_WEIGHT * matched
        raw_liked = liked_lexical
    else:
        mode = "semantic"
        vectors = batch.semantic_papers[start:stop]
        assert batch.semantic_queries is not None and batch.semantic_liked is not None
        raw_text = batch.semantic_queries @ vectors.T + SEMANTIC_LEXICAL * (lexical + SEMANTIC_KEYWORD_WEIGHT * matched)
        raw_liked = batch.semantic_liked @ vectors.T + SEMANTIC_LEXICAL * liked_lexical
    text = np.zeros(raw_text.shape, dtype=np.float32)
    text[batch.has_text] = calibrate(raw_text[batch.has_text], mode, "text")
    liked = np.zeros(raw_liked.shape, dtype=np.float32)
    liked[batch.has_liked] = calibrate(raw_liked[batch.has_liked], mode, "liked")
    boost = (
        1.0
        + UPVOTE_BOOST * batch.upvotes[np.newaxis, start:stop]
        + FOLLOW_BOOST * _dense(batch.followed[:, start:stop])
    )
    scores = np.minimum(1.0, np.maximum(text, liked) * boost)
    excluded = _dense(batch.exclusions.owners @ batch.excluded[start:stop].T) > 0
    scores[excluded | (_dense(batch.known[:, start:stop]) > 0)] = 0.0
    return scores, text, liked


def _scored_chunks(batch: _Batch, count: int) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Every chunk's scores, in order, `WORKERS` chunks at a time: scipy's sparse products
    release the GIL, so threads share the work, and at most `WORKERS` + 1 chunks are held."""
    pending: deque[tuple[int, Future[tuple[np.ndarray, np.ndarray, np.ndarray]]]] = deque()
    with ThreadPoolExecutor(WORKERS) as pool:
        for start in range(0, count, CHUNK):
            pending.append((start, pool.submit(_score_chunk, batch, start, min(start + CHUNK, count))))
            if len(pending) > WORKERS:
                first, scored = pending.popleft()
                yield first, scored.result()
        while pending:
            first, scored = pending.popleft()
            yield first, scored.result()


class _Best:
    """Each profile's best papers so far, with the views that explain them."""

    def __init__(self, profiles: int, keep: int) -> None:
        self.keep = keep
        self.cols = np.zeros((profiles, 0), dtype=np.int64)
        self.values = np.zeros((3, profiles, 0))

    def merge(self, start: int, scores: np.ndarray, text: np.ndarray, liked: np.ndarray) -> None:
        cols = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        all_cols = np.concatenate([self.cols, cols], axis=1)
        all_values = np.concatenate([self.values, np.stack([scores, text, liked])], axis=2)
        if all_cols.shape[1] > self.keep:
            top = np.argpartition(-all_values[0], self.keep - 1, axis=1)[:, : self.keep]
            all_cols = np.take_along_axis(all_cols, top, axis=1)
            all_values = np.take_along_axis(all_values, top[np.newaxis], axis=2)
        self.cols, self.values = all_cols, all_values

    def of(self, row: int) -> list[tuple[int, float, float, float]]:
        scores = self.values[0, row]
        order = np.lexsort((self.cols[row], -scores))
        return [
            (int(self.cols[row, i]), float(scores[i]), float(self.values[1, row, i]), float(self.values[2, row, i]))
            for i in order
            if scores[i] >= MIN_SHOWN
        ]


# -- small matrices -----------------------------------------------------------------------


def _weigh(tfidf: TfidfTransformer, counts: sparse.csr_matrix) -> sparse.csr_matrix:
    """Counts to TF-IDF rows (scikit-learn refuses a matrix with no rows)."""
    if counts.shape[0] == 0:
        return sparse.csr_matrix(counts.shape)
    return sparse.csr_matrix(tfidf.transform(counts))


def _others(papers: Sequence[Paper], excluded: set[str]) -> list[Paper]:
    """Each paper once, leaving out those whose ids are `excluded`."""
    found: dict[str, Paper] = {}
    for paper in papers:
        if paper.id not in excluded:
            found.setdefault(paper.id, paper)
    return list(found.values())


def _query_text(profile: Profile) -> str:
    return " ".join([profile.description, *(k.term for k in profile.keywords)])


def _paper_text(paper: Paper) -> str:
    return f"{paper.title}. {paper.abstract}"


def _dense(matrix: Any) -> np.ndarray:
    """A sparse or dense matrix (a product of the two kinds can be either) as a float array."""
    if sparse.issparse(matrix):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)


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


# -- reasons ------------------------------------------------------------------------------


def _row(matrix: sparse.csr_matrix, row: int) -> tuple[np.ndarray, np.ndarray]:
    start, end = matrix.indptr[row], matrix.indptr[row + 1]
    return matrix.indices[start:end], matrix.data[start:end]


def _reasons(
    batch: _Batch,
    profile: Profile,
    liked: list[Paper],
    papers: Sequence[Paper],
    row: int,
    col: int,
    text: float,
    liked_view: float,
) -> tuple[str, ...]:
    found = _keyword_reasons(batch, row, col)
    if text >= REASON_THRESHOLD:
        terms = _shared_terms(batch, row, col)
        how = (
            "close in meaning to your description" if batch.semantic_papers is not None else "close to your description"
        )
        found.append(f"{how}: {', '.join(terms)}" if terms else how)
    if liked_view >= REASON_THRESHOLD and liked:
        found.append(f"similar to a paper you liked: {liked[_nearest_liked(batch, row, col)].title}")
    paper = papers[col]
    if paper.organization and batch.followed[row, col]:
        found.append(f"from {paper.organization.name}, which you follow")
    if paper.upvotes:
        best = " (the most of its day)" if batch.upvotes[col] >= 1.0 and paper.upvotes > 1 else ""
        found.append(f"{paper.upvotes} upvote{'' if paper.upvotes == 1 else 's'}{best}")
    return tuple(found)


def _keyword_reasons(batch: _Batch, row: int, col: int) -> list[str]:
    mine = set(_row(batch.keywords.owners, row)[0].tolist())
    in_title = [k for k in _row(batch.title_hits, col)[0].tolist() if k in mine]
    in_abstract = [k for k in _row(batch.abstract_hits, col)[0].tolist() if k in mine and k not in in_title]
    found = []
    for where, matched in (("title", sorted(in_title)), ("abstract", sorted(in_abstract))):
        if matched:
            found.append("matches " + ", ".join(f"'{batch.keywords.labels[k]}'" for k in matched) + f" in {where}")
    return found


def _shared_terms(batch: _Batch, row: int, col: int, count: int = 3) -> list[str]:
    query_cols, query_values = _row(batch.queries, row)
    paper_cols, paper_values = _row(batch.papers, col)
    shared, in_query, in_paper = np.intersect1d(query_cols, paper_cols, assume_unique=True, return_indices=True)
    order = np.argsort(-(query_values[in_query] * paper_values[in_paper]), kind="stable")
    chosen: list[str] = []
    for feature in shared[order]:
        words = batch.features.describe(int(feature), batch.tokenizer)
        # A word pair says more than the words in it: keep the pair, drop its words.
        if any(words in kept.split(" ") for kept in chosen):
            continue
        chosen = [kept for kept in chosen if kept not in words.split(" ")] + [words]
        if len(chosen) == count:
            break
    return chosen


def _nearest_liked(batch: _Batch, row: int, col: int) -> int:
    """The index, in the profile's liked list, of the liked paper closest to paper `col`."""
    members, _ = _row(batch.liked_owners, row)
    return int(np.argmax([_dot(batch.liked, int(member), batch.papers, col) for member in members]))


def _dot(left: sparse.csr_matrix, i: int, right: sparse.csr_matrix, j: int) -> float:
    """Row i of `left` · row j of `right`, without building a matrix."""
    left_cols, left_values = _row(left, i)
    right_cols, right_values = _row(right, j)
    _, at_left, at_right = np.intersect1d(left_cols, right_cols, assume_unique=True, return_indices=True)
    return float(left_values[at_left] @ right_values[at_right])


# -- choosing the digest ------------------------------------------------------------------


def select_digest(ranked: Sequence[ScoredPaper], profile: Profile) -> tuple[list[ScoredPaper], list[ScoredPaper]]:
    """The digest's items, and the best few papers below the threshold (runners-up).

    Items score at least `min_score`; at most `max_items` are taken, by maximal marginal
    relevance so the top is not five near-duplicates: each pick is the candidate whose
    score, less `MMR_PENALTY` times its text similarity to the closest paper already
    picked, is highest. Items keep their own scores.
    """
    eligible = [s for s in ranked if s.score >= profile.min_score]
    runners_up = [s for s in ranked if s.score < profile.min_score][:RUNNERS_UP]
    pool = eligible[: profile.max_items * MMR_POOL]
    if len(pool) <= 1:
        return pool[: profile.max_items], runners_up
    similarity = text_similarity([_paper_text(s.paper) for s in pool])
    scores = np.array([s.score for s in pool])
    chosen: list[int] = []
    closest = np.zeros(len(pool))
    available = np.ones(len(pool), dtype=bool)
    while available.any() and len(chosen) < profile.max_items:
        pick = int(np.argmax(np.where(available, scores - MMR_PENALTY * closest, -math.inf)))
        chosen.append(pick)
        available[pick] = False
        closest = np.maximum(closest, similarity[pick])
    return [pool[i] for i in chosen], runners_up


def text_similarity(texts: Sequence[str]) -> np.ndarray:
    """Pairwise TF-IDF cosine of the texts (stems and word pairs, as the ranker reads them)."""
    tokenizer = _Tokenizer()
    ids = tokenizer.texts(texts)
    features = _Features(len(tokenizer.stems), documents=[ids], wanted=[])
    vectors = TfidfTransformer(sublinear_tf=True).fit_transform(features.document_counts[0])
    return _dense(vectors @ vectors.T)
