"""The profile as a reader writes it: description, keywords and liked papers together.

    .venv/bin/python bench/quality_whole.py [--semantic] [--splits seen,tune,report,final]

`bench/quality_compare.py` ranks each judged profile in two forms apart (its words; its
liked papers), which is how the two peers work. A real profile has both, and the ranker
scores it by its better view, so the two views' scores must mean the same: this script
measures that case, for our ranker only (no peer reads both). Liked papers are left out
of the ranking and of the judged set, as in the other scripts. Prints mean nDCG@10 and
P@5 per split, and each profile's nDCG@10.

To compare with another version of the ranker, run this file from a copy of that
version's tree with this `bench/` folder in it (each script puts its own checkout first
on `sys.path`).
"""

from __future__ import annotations

import argparse
import statistics

from quality import cached, load_papers, ndcg, precision
from quality_compare import load_splits

from digest.rank import Embedder, score_papers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--semantic", action="store_true", help="with the embedding extra")
    parser.add_argument("--splits", default="seen,tune,report,final")
    args = parser.parse_args()
    embed: Embedder | None = None
    if args.semantic:
        from digest.semantic import load_embedder

        embed = cached(load_embedder())
    papers = load_papers()
    by_title = {p.title: p for p in papers}
    print("| split | mean nDCG@10 | mean P@5 | per profile nDCG@10 |")
    print("|---|---:|---:|---|")
    for split in load_splits(args.splits.split(",")):
        found: dict[str, tuple[float, float]] = {}
        for profile in split.profiles:
            liked = [by_title[title] for title in profile.liked]
            left_out = {p.id for p in liked}
            pool = [p for p in papers if p.id not in left_out]
            ranked = score_papers(pool, [profile], liked={profile.id: liked}, embed=embed, background=papers)
            order = [s.paper.id for s in ranked[profile.id]]
            order += [p.id for p in pool if p.id not in set(order)]
            grades = {pid: g for pid, g in split.labels[profile.id].items() if pid not in left_out}
            found[profile.id] = (ndcg(order, grades), precision(order, grades))
        each = ", ".join(f"{pid} {n:.3f}" for pid, (n, _) in found.items())
        mean_ndcg = statistics.mean(n for n, _ in found.values())
        mean_p5 = statistics.mean(p for _, p in found.values())
        print(f"| {split.name} | {mean_ndcg:.3f} | {mean_p5:.3f} | {each} |")


if __name__ == "__main__":
    main()
