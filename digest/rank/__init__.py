"""Scoring papers against interest profiles, and choosing a digest from the scores.

Pure: papers and profiles in, scores and structured reasons out. No I/O, no clock, no
store, and no words: a reason is data (`models.Reason`), worded by `templates/reasons.txt`.
Every step works on whole matrices (profiles × papers), never on one pair at a time.

**Text.** Title and abstract (with Hugging Face's `ai_summary` and
`ai_keywords` when a paper has them) are lower-cased, split into words, stripped of English stop
words and stemmed (Snowball, so 'quantize' meets 'quantization'); each text also gets
its word pairs (bigrams, so 'knowledge distillation' is one feature). Counts become
TF-IDF vectors (as scikit-learn's `TfidfTransformer` makes them: sublinear term frequency,
smoothed IDF, unit length), the title counting `TITLE_WEIGHT` times.

**Views.** A profile is seen two ways:

- its *text*: the description, and its keywords mixed by weight, counting `KEYWORD_MIX`
  (a half) as much as the description;
- its *liked papers*: their TF-IDF centroid (what arxiv-sanity ranks by). In a profile
  with words they move the text view toward them as "more like this" votes do (the raw
  relevance gains `MORE_ROCCHIO` times the liked view's); only a profile without words
  is ranked by the liked view itself.

For each view the raw relevance of a paper is its lexical cosine, plus
`KEYWORD_WEIGHT` per keyword weight matched (a whole phrase of stems in the title counts
1, in the abstract `ABSTRACT_HIT`; text view only). With the `[semantic]` extra it is
the embedding cosine (to the description, or the mean over the liked papers, as
zotero-arxiv-daily does) plus `SEMANTIC_LEXICAL` times that lexical relevance. The
first weights were chosen on the six labelled profiles in `bench/quality/`; `KEYWORD_MIX` and
the calibration on the held-out `tune` profiles; `SEMANTIC_LEXICAL` on all 42 judged
profiles of six splits; each checked on profiles never used to choose (`bench/RESULTS.md`).

**Scores.** Raw relevance goes through a fixed log-logistic curve per view and mode
(`CALIBRATION`), never a min-max over the batch, so a score means the same on every day
and for every profile: on the judged seeds the median on-topic paper scores 0.6 and
95 % of off-topic papers score under 0.1, so the default `min_score = 0.15` separates
them. Word rarity and each day's top upvotes come from the papers ranked plus a
`background` the caller passes (the store's recent papers), so a paper's score does not
hang on which other papers are new that day. A process reads a background once and keeps
what it counted (the last one only): the build ranks every profile against the same one.
A profile's relevance is its text view, or its liked view when it has no words (as the
better of the two, the liked view's near-misses outranked what the words asked for:
`bench/RESULTS.md`).
Priors then multiply it, capped at 1: upvotes (log-damped, relative to the most upvoted
paper of the same listing day) up to +`UPVOTE_BOOST`, a followed organisation or author
(names compared without case, accents or punctuation) +`FOLLOW_BOOST`, once. A paper
matching an `exclude` term, a liked paper itself, and a paper already delivered score 0
and are left out.

`score_papers` gives every profile its papers, best first, with reasons (papers are
scored `CHUNK` at a time so memory stays flat); `select_digest` turns one profile's
ranked list into the digest's items (at least `min_score`, at most `max_items`,
near-duplicates kept apart by maximal marginal relevance) and the best few below the
threshold.

The modules, one concern each: `features` (text to stems, word pairs, count matrices,
phrases), `scoring` (the batch's matrices, the views, calibration, priors, chunked
scoring, each profile's best N), `explain` (the reasons for a score), `choose` (the
digest from a ranked list). This package's names below are the API; the modules'
others are the package's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from digest.models import Paper, Profile, ScoredPaper, Votes
from digest.rank.choose import MMR_PENALTY, MMR_POOL, RUNNERS_UP, select_digest, text_similarity
from digest.rank.explain import REASON_THRESHOLD, explain_best
from digest.rank.features import CHUNK
from digest.rank.scoring import (
    ABSTRACT_HIT,
    CALIBRATION,
    FOLLOW_BOOST,
    KEYWORD_MIX,
    KEYWORD_WEIGHT,
    LESS_ROCCHIO,
    LESS_WEIGHT,
    MIN_SHOWN,
    MORE_ROCCHIO,
    SEMANTIC_KEYWORD_WEIGHT,
    SEMANTIC_LEXICAL,
    TITLE_WEIGHT,
    UPVOTE_BOOST,
    WORKERS,
    Embedder,
    best_papers,
    calibrate,
    prepare_batch,
    upvote_prior,
)

__all__ = [
    "ABSTRACT_HIT",
    "CALIBRATION",
    "CHUNK",
    "FOLLOW_BOOST",
    "KEYWORD_MIX",
    "KEYWORD_WEIGHT",
    "LESS_ROCCHIO",
    "LESS_WEIGHT",
    "MIN_SHOWN",
    "MMR_PENALTY",
    "MMR_POOL",
    "MORE_ROCCHIO",
    "REASON_THRESHOLD",
    "RUNNERS_UP",
    "SEMANTIC_KEYWORD_WEIGHT",
    "SEMANTIC_LEXICAL",
    "TITLE_WEIGHT",
    "UPVOTE_BOOST",
    "WORKERS",
    "Embedder",
    "calibrate",
    "score_papers",
    "scores_from_other_liked",
    "select_digest",
    "text_similarity",
    "upvote_prior",
]


def score_papers(
    papers: Sequence[Paper],
    profiles: Sequence[Profile],
    *,
    liked: Mapping[str, Sequence[Paper]] | None = None,
    delivered: Mapping[str, set[str]] | None = None,
    embed: Embedder | None = None,
    limit: int | None = None,
    background: Sequence[Paper] = (),
    votes: Mapping[str, Votes] | None = None,
) -> dict[str, list[ScoredPaper]]:
    """Every profile's papers, best first, with scores in [0, 1] and reasons.

    `liked` maps a profile id to the papers its `liked` list names (resolved by the
    caller); `delivered` to the ids of papers it was already given. `embed` adds the
    semantic signal. `background` are other papers (e.g. the store's recent ones) that
    only set word rarity (IDF) and each listing day's most upvoted paper: with the same
    background, a paper scores the same whichever other papers are ranked with it.
    Papers scoring 0 are left out; `limit` keeps each profile's best N (reasons are only
    worked out for those).

    `votes` maps a profile id to what its reader said through the digest (`Votes`), read
    as Rocchio's relevance feedback in both views: the raw relevance gains `MORE_ROCCHIO`
    times a paper's mean likeness to the papers marked "more like this" and loses
    `LESS_ROCCHIO` (now 0: off, see `scoring`) times its mean likeness to those marked
    "less like this", before the same calibration curve, so a score means what it meant
    and `min_score` keeps its meaning. (A profile with neither words nor liked papers of its own ranks by its "more
    like this" papers as its liked view.) A near-duplicate of a "less like this" paper is
    also pushed down: its score is multiplied by one less `LESS_WEIGHT` times the cosine to
    the closest one. Papers of a muted organisation are left out; papers voted on are never
    ranked again. Without votes nothing of this changes a score.
    """
    if not papers or not profiles:
        return {profile.id: [] for profile in profiles}
    reader = [(votes or {}).get(p.id, Votes()) for p in profiles]
    liked_lists = [_distinct([*(liked or {}).get(p.id, ()), *v.more]) for p, v in zip(profiles, reader, strict=True)]
    batch = prepare_batch(papers, profiles, liked_lists, delivered or {}, embed, background, reader)
    best = best_papers(batch, len(profiles), len(papers), min(limit or len(papers), len(papers)))
    reasons = explain_best(batch, liked_lists, reader, papers, best)
    return {
        profile.id: [
            ScoredPaper(papers[b.column], round(b.score, 4), why)
            for b, why in zip(best[row], reasons[row], strict=True)
        ]
        for row, profile in enumerate(profiles)
    }


def scores_from_other_liked(
    profile: Profile, liked: Sequence[Paper], *, embed: Embedder | None = None, background: Sequence[Paper] = ()
) -> list[float]:
    """Each liked paper's score from the profile's other liked papers alone (its liked view,
    without the paper itself, `exclude`, a followed organisation's boost or anything
    delivered), in the order of `liked`: how well they speak for it. A liked paper scoring
    under `min_score` here is one whose like a digest ranked by the liked papers alone
    seldom brings (bench/RESULTS.md "Liked papers far apart")."""
    alone = replace(profile, description="", keywords=(), exclude=(), follow=(), follow_authors=())
    found = []
    for paper in liked:
        others = [p for p in liked if p.id != paper.id]
        view = replace(alone, liked=tuple(p.title for p in others))
        ranked = score_papers([paper], [view], liked={profile.id: others}, embed=embed, background=background)
        found.append(ranked[profile.id][0].score if ranked[profile.id] else 0.0)
    return found


def _distinct(papers: Sequence[Paper]) -> list[Paper]:
    return list({paper.id: paper for paper in papers}.values())
