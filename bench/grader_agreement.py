"""How far apart two graders of one subject are: the ceiling of nDCG@10 against one grader.

    .venv/bin/python bench/grader_agreement.py

For each pair of judged profiles on one subject by graders who worked apart, the seed
papers ranked by one grader's grades (ties in random order, the mean over `ORDERS` orders,
a fixed seed) are scored with the other's grades: nDCG@10 over every paper, the judged set
of quality_compare's text form. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import numpy as np
from quality import load_papers, ndcg
from quality_compare import SPLIT_NOTES, load_splits

# Judged profiles on one subject by two graders working apart (their splits' READMEs).
PAIRS = (("nn-optimizers", "dl-optimizers"), ("llm-math-problem-solving", "machine-math"))
ORDERS = 500


def main() -> None:
    ids = [p.id for p in load_papers()]
    splits = load_splits(list(SPLIT_NOTES))
    labels = {profile.id: split.labels[profile.id] for split in splits for profile in split.profiles}
    rng = np.random.default_rng(0)
    print("| ranked by the grades of | scored with the grades of | nDCG@10 |\n|---|---|---:|")
    for first, second in PAIRS:
        for ranked_by, scored_with in ((first, second), (second, first)):
            grades = labels[ranked_by]
            found = []
            for _ in range(ORDERS):
                tie = rng.random(len(ids))
                order = sorted(range(len(ids)), key=lambda i: (-grades.get(ids[i], 0), tie[i]))
                found.append(ndcg([ids[i] for i in order], labels[scored_with]))
            print(f"| {ranked_by} | {scored_with} | {float(np.mean(found)):.3f} |")


if __name__ == "__main__":
    main()
