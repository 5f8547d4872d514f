"""Fit the calibration curves (`digest.rank.CALIBRATION`) to the labelled seeds.

    .venv/bin/python bench/calibration.py [--semantic] [--splits seen]

For each mode (lexical; semantic with `--semantic`) and view (text: description +
keywords; liked: the three liked papers), every profile of the splits ranks the seed
papers with the curve switched off, and the raw relevance of the papers graded 2 and 0
is pooled. The curve raw**s / (raw**s + m**s) is then fitted so that the median paper
graded 2 scores `ON_TOPIC` and the 95th percentile of the papers graded 0 scores
`OFF_TOPIC` (what `min_score = 0.15` relies on). It prints the fitted (m, s) next to the
ones in use, and what the papers score with each.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np
from quality import cached, forms, load_papers
from quality_compare import load_splits

from digest.models import Paper, Profile
from digest.rank import CALIBRATION, Embedder, score_papers, scoring

ON_TOPIC = 0.6
OFF_TOPIC = 0.1


def raw_relevance(
    profile: Profile, papers: Sequence[Paper], liked: Sequence[Paper], embed: Embedder | None
) -> dict[str, float]:
    """Each paper's raw relevance (before the curve; the priors' tiny factor included)."""
    original = scoring.calibrate

    def identity(raw: np.ndarray, mode: str, view: str) -> np.ndarray:
        # Squeezed into (0, 1) without saturating, so that scores keep their order and
        # can be turned back into raw relevance.
        positive = np.maximum(raw, 1e-12)
        return (positive / (positive + 1.0)).astype(np.float64)

    scoring.calibrate = identity  # type: ignore[assignment]
    try:
        ranked = score_papers(papers, [profile], liked={profile.id: liked}, embed=embed, background=papers)
    finally:
        scoring.calibrate = original
    return {s.paper.id: s.score / max(1.0 - s.score, 1e-9) for s in ranked[profile.id]}


def fit(on: float, off: float) -> tuple[float, float]:
    """(m, s) so that raw `on` scores ON_TOPIC and raw `off` scores OFF_TOPIC."""
    odds_on, odds_off = ON_TOPIC / (1 - ON_TOPIC), OFF_TOPIC / (1 - OFF_TOPIC)
    s = math.log(odds_on / odds_off) / math.log(on / off)
    return on / odds_on ** (1 / s), s


def score(raw: float, m: float, s: float) -> float:
    return raw**s / (raw**s + m**s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--semantic", action="store_true", help="fit the semantic mode (needs the extra)")
    parser.add_argument("--splits", default="seen", help="comma-separated judged splits to pool (default: seen)")
    args = parser.parse_args()
    embed: Embedder | None = None
    mode = "lexical"
    if args.semantic:
        from digest.semantic import load_embedder

        embed, mode = cached(load_embedder()), "semantic"
    papers = load_papers()
    by_title = {p.title: p for p in papers}
    pooled: dict[str, dict[int, list[float]]] = {"text": {0: [], 2: []}, "liked": {0: [], 2: []}}
    for split in load_splits(args.splits.split(",")):
        for profile in split.profiles:
            for view, (variant, liked) in forms(profile, by_title).items():
                left_out = {p.id for p in liked}
                raw = raw_relevance(variant, [p for p in papers if p.id not in left_out], liked, embed)
                for pid, grade in split.labels[profile.id].items():
                    if pid not in left_out and grade in (0, 2):
                        pooled[view][grade].append(raw.get(pid, 0.0))
    for view, grades in pooled.items():
        on, off = float(np.median(grades[2])), float(np.percentile(grades[0], 95))
        m, s = fit(on, off)
        old_m, old_s = CALIBRATION[(mode, view)]
        print(f"({mode!r}, {view!r}): fitted ({m:.3f}, {s:.1f}), in use ({old_m}, {old_s})")
        for name, (mm, ss) in (("fitted", (m, s)), ("in use", (old_m, old_s))):
            twos = np.median([score(r, mm, ss) for r in grades[2]])
            zeros = np.mean([score(r, mm, ss) < 0.15 for r in grades[0]])
            print(f"    {name}: median grade-2 score {twos:.2f}, grade-0 papers under 0.15: {zeros:.1%}")


if __name__ == "__main__":
    main()
