"""Choosing a digest: one profile's ranked papers to the digest's items and runners-up.

Items score at least the profile's `min_score`, at most `max_items` are taken, and
near-duplicates are kept apart by maximal marginal relevance over `text_similarity`.

Never scores a paper against a profile (`scoring` does) and never changes a score or
its reasons: an item keeps both as ranked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from digest.models import Profile, ScoredPaper
from digest.rank.features import Features, Tokenizer, dense, paper_text
from digest.rank.scoring import Weights

RUNNERS_UP = 3
MMR_PENALTY = 0.5
MMR_POOL = 4


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
    similarity = text_similarity([paper_text(s.paper) for s in pool])
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


def text_similarity(texts: Sequence[str]) -> NDArray[np.float64]:
    """Pairwise TF-IDF cosine of the texts (stems and word pairs, as the ranker reads them)."""
    tokenizer = Tokenizer()
    ids = tokenizer.texts(texts)
    features = Features(len(tokenizer.stems), documents=[ids], wanted=[])
    counts = features.document_counts[0]
    vectors = Weights.of([counts], np.zeros(counts.shape[1], dtype=np.int64), 0).transform(counts)
    return dense(vectors @ vectors.T)
