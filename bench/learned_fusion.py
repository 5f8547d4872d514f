"""Would a fusion learned across profiles beat the ranker? Leave one judged split out at a time.

    .venv/bin/python bench/learned_fusion.py [--splits seen,tune,...,blind6] [--report blind6]

Issue 16 asks whether the ranker can learn. The per-profile classifier (bench/RESULTS.md,
"A learned classifier per profile") had a handful of examples; here the examples are every
judged profile's grades (a few thousand pairs of profile and paper per split), and what is
learned is how to weigh the methods of bench/quality_compare.py against one another.

For each profile and form (text, liked; bench/quality.py), every seed paper gets the score
of each method: ours (core), ours+semantic, TF-IDF, bigram TF-IDF, BM25 and MiniLM alone.
Each score becomes two features, z-scored within the profile and the log of its rank there
(a paper ours leaves out scores 0). For each split in turn, a model is fitted on the other
splits' profiles of that form and ranks the held-out split's papers, so no profile is ranked
by weights fitted on its own grades. Every fusion is listed here, fixed before any was run:

- `lexical`: ours, TF-IDF, bigram TF-IDF, BM25; logistic regression on "graded 2" (the
  default install has these);
- `ours+minilm`: ours and MiniLM; logistic regression on "graded 2";
- `everything`: all six; ridge regression on the grade;
- `z(ours)+z(minilm)`: nothing learned, the two z-scores summed (the floor's way).

Prints, per form, each fusion's pooled mean nDCG@10 and its difference from ours (core) and
from ours+semantic, with a 95 % paired bootstrap interval over profiles (10,000 resamples,
seed 0, as quality_compare.py's pooled table). `--report` prints the same table again for
the profiles of the splits it names alone (each fitted, as always, on the other splits): how
to test the fusions on a split nobody has seen. Needs the `[semantic]` extra.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from quality import cached, embedding_scores, forms, load_papers, ndcg, tfidf_scores
from quality_compare import BOOTSTRAP, SPLIT_NOTES, bm25_scores, load_splits
from sklearn.linear_model import LogisticRegression, Ridge

from digest.models import Paper, Profile
from digest.rank import Embedder, score_papers

METHODS = ("ours", "ours+semantic", "tfidf", "tfidf2", "bm25", "minilm")
Model = Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True, slots=True)
class Judged:
    """One profile in one form: its split, the grade of each paper and each method's scores."""

    split: str
    form: str
    ids: tuple[str, ...]
    grades: np.ndarray
    scores: dict[str, np.ndarray]

    def ndcg(self, scores: np.ndarray) -> float:
        order = np.argsort(-scores, kind="stable")
        return ndcg([self.ids[i] for i in order], dict(zip(self.ids, self.grades.tolist(), strict=True)))


def ours_scores(profile: Profile, pool: Sequence[Paper], liked: Sequence[Paper], embed: Embedder | None) -> np.ndarray:
    ranked = score_papers(pool, [profile], liked={profile.id: liked}, embed=embed, background=pool)[profile.id]
    found = {s.paper.id: s.score for s in ranked}
    return np.array([found.get(p.id, 0.0) for p in pool])


def judged(split_names: Sequence[str], embed: Embedder) -> list[Judged]:
    papers = load_papers()
    by_title = {p.title: p for p in papers}
    found: list[Judged] = []
    for split in load_splits(split_names):
        for profile in split.profiles:
            for form, (variant, liked) in forms(profile, by_title).items():
                mine = {p.id for p in liked}
                pool = [p for p in papers if p.id not in mine]
                scores = {
                    "ours": ours_scores(variant, pool, liked, None),
                    "ours+semantic": ours_scores(variant, pool, liked, embed),
                    "tfidf": tfidf_scores(variant, pool, liked),
                    "tfidf2": tfidf_scores(variant, pool, liked, ngram_range=(1, 2)),
                    "bm25": bm25_scores(variant, pool, liked),
                    "minilm": embedding_scores(embed, variant, pool, liked),
                }
                grades = np.array([split.labels[profile.id].get(p.id, 0) for p in pool])
                found.append(Judged(split.name, form, tuple(p.id for p in pool), grades, scores))
    return found


def zscore(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def features(item: Judged, methods: Sequence[str]) -> np.ndarray:
    columns: list[np.ndarray] = []
    for name in methods:
        values = item.scores[name]
        rank = np.argsort(np.argsort(-values, kind="stable"))
        columns += [zscore(values), np.log1p(rank)]
    return np.column_stack(columns)


def logistic(x: np.ndarray, grades: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return LogisticRegression(C=1.0, max_iter=1000).fit(x, grades == 2).decision_function


def ridge(x: np.ndarray, grades: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return Ridge(alpha=1.0).fit(x, grades).predict


FUSIONS: dict[str, tuple[tuple[str, ...], Model | None]] = {
    "lexical": (("ours", "tfidf", "tfidf2", "bm25"), logistic),
    "ours+minilm": (("ours", "minilm"), logistic),
    "everything": (METHODS, ridge),
    "z(ours)+z(minilm)": (("ours", "minilm"), None),
}


def fused_ndcg(items: list[Judged], methods: Sequence[str], model: Model | None) -> list[float]:
    """Each item's nDCG@10 ranked by a model fitted on the other splits' items."""
    if model is None:
        return [item.ndcg(sum(zscore(item.scores[m]) for m in methods)) for item in items]
    found: list[float] = []
    for split in dict.fromkeys(item.split for item in items):
        train = [item for item in items if item.split != split]
        predict = model(np.vstack([features(i, methods) for i in train]), np.concatenate([i.grades for i in train]))
        found += [item.ndcg(predict(features(item, methods))) for item in items if item.split == split]
    return found


def interval(gap: np.ndarray) -> tuple[float, float]:
    draws = np.random.default_rng(0).integers(0, len(gap), size=(BOOTSTRAP, len(gap)))
    low, high = np.percentile(gap[draws].mean(axis=1), [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", default=",".join(SPLIT_NOTES))
    parser.add_argument("--report", default="", help="comma-separated splits to show alone as well")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from digest.semantic import load_embedder

    every = judged(args.splits.split(","), cached(load_embedder()))
    fused = {name: fused_values(every, methods, model) for name, (methods, model) in FUSIONS.items()}
    print(table(every, fused, lambda item: True, f"every split given ({len(every) // 2} profiles)"))
    for split in filter(None, args.report.split(",")):
        print(table(every, fused, lambda item, split=split: item.split == split, f"`{split}` alone"))


def fused_values(every: list[Judged], methods: Sequence[str], model: Model | None) -> dict[int, float]:
    """Item index -> nDCG@10 of the fusion, each form fitted apart."""
    found: dict[int, float] = {}
    for form in ("text", "liked"):
        chosen = [i for i, item in enumerate(every) if item.form == form]
        found |= dict(zip(chosen, fused_ndcg([every[i] for i in chosen], methods, model), strict=True))
    return found


def table(every: list[Judged], fused: dict[str, dict[int, float]], keep: Callable[[Judged], bool], title: str) -> str:
    lines = [
        f"\n{title}:\n",
        "| form | ranking | mean nDCG@10 | minus ours (95 % CI) | minus ours+semantic (95 % CI) |",
        "|---|---|---:|---:|---:|",
    ]
    for form in ("text", "liked"):
        chosen = [i for i, item in enumerate(every) if item.form == form and keep(item)]
        ours = np.array([every[i].ndcg(every[i].scores["ours"]) for i in chosen])
        semantic = np.array([every[i].ndcg(every[i].scores["ours+semantic"]) for i in chosen])
        lines.append(f"| {form} | ours | {ours.mean():.3f} | | |")
        lines.append(f"| {form} | ours+semantic | {semantic.mean():.3f} | {semantic.mean() - ours.mean():+.3f} | |")
        for name, values_of in fused.items():
            values = np.array([values_of[i] for i in chosen])
            cells = [f"{(values - b).mean():+.3f} ({low:+.3f} to {high:+.3f})" for b in (ours, semantic)
                     for low, high in [interval(values - b)]]  # fmt: skip
            lines.append(f"| {form} | {name} | {values.mean():.3f} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
