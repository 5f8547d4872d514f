"""Do liked papers far apart predict a poor ranking from liked papers alone?

    .venv/bin/python bench/liked_apart.py [--splits seen,tune,...,blind5]

For each judged profile (the splits of bench/quality_compare.py): each of its three liked
papers scored from the other two alone (`rank.scores_from_other_liked`, the rule behind
`digest profiles check`'s warning, against all seed papers as the background), and the
core ranker's nDCG@10 from the liked papers alone (the `liked` form of quality_compare).
Prints, by how many liked papers score under the profile's `min_score` from the others,
the number of profiles and their mean nDCG@10, and the rank correlation (Spearman) of the
mean such score with nDCG@10. The threshold is `min_score` itself: nothing is fitted.
"""

from __future__ import annotations

import argparse
import statistics

from quality import forms, load_papers, ours
from quality_compare import SPLIT_NOTES, evaluate, load_splits
from scipy.stats import spearmanr

from digest.rank import scores_from_other_liked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", default=",".join(SPLIT_NOTES))
    args = parser.parse_args()
    papers = load_papers()
    by_title = {p.title: p for p in papers}
    rows: list[tuple[str, str, int, float, float]] = []  # split, profile, under, mean score, nDCG@10
    for split in load_splits(args.splits.split(",")):
        results = evaluate(split, papers, {"ours": ours()})["ours"]
        for profile in split.profiles:
            _, liked = forms(profile, by_title)["liked"]
            scores = scores_from_other_liked(profile, liked, background=papers)
            under = sum(score < profile.min_score for score in scores)
            rows.append((split.name, profile.id, under, statistics.mean(scores), results[(profile.id, "liked")].ndcg10))
    print("| liked papers scoring under min_score from the others | profiles | mean nDCG@10, liked papers alone |")
    print("|---:|---:|---:|")
    for under in sorted({row[2] for row in rows}):
        chosen = [row[4] for row in rows if row[2] == under]
        print(f"| {under} | {len(chosen)} | {statistics.mean(chosen):.3f} |")
    rho = spearmanr([row[3] for row in rows], [row[4] for row in rows])
    print(f"\n{len(rows)} profiles; Spearman of the mean score from the others with nDCG@10: {rho.statistic:.2f}")
    print("\n| split | profile | under | mean score from the others | nDCG@10 |\n|---|---|---:|---:|---:|")
    for split_name, profile_id, under, score, value in rows:
        print(f"| {split_name} | {profile_id} | {under} | {score:.3f} | {value:.3f} |")


if __name__ == "__main__":
    main()
