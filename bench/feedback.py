"""Learning from votes, measured: a simulated reader per judged profile, day by day over the seed days.

    .venv/bin/python bench/feedback.py [--splits seen,tune,report,final] [--weights 0.25:0.25,0:0]
        [--forms text,liked,whole] [--shown digest|top] [--semantic] [--json PATH]

Every judged profile (the splits of bench/quality_compare.py), in both forms (`text`:
description + keywords; `liked`: its three liked papers alone; with `--forms`, also
`whole`: the profile as written, words and liked papers), reads a digest on each of
the five seed days. The seed papers are cut once, by a fixed hash of their ids, into
*held-out* papers (a third: never shown, never voted on, the only ones measured) and
*daily* papers (the rest, each on the day it was first listed). Each day the ranker scores
that day's papers with the votes so far, the reader is shown that day's digest of at most 10
(`--shown digest`, the default: what `select_digest` picks and the email gives vote links to,
so only papers scoring at least the profile's `min_score`; `--shown top`: the best 10
whatever their score, as the first passes of this benchmark did), and votes "more like this"
on those graded 2 and "less like this" on those graded 0 (grade 1: no vote). The `half`
reader casts each of those votes with probability 1/2 (`SEEDS` random readers per profile
and form, averaged), as real readers do. After each day the held-out papers are ranked
with the votes so far and nDCG@10 is measured on them (day 0: before any vote). Word
rarity and upvotes come from all seed papers (`background`).

`--weights` lists `MORE_ROCCHIO:LESS_ROCCHIO` pairs of `digest.rank.scoring` to compare
(default: the shipped ones); nothing else of the ranker is changed. To measure the ranker of
another checkout (e.g. main's, where "more like this" papers joined the liked view and "less
like this" only multiplied a score by one less the cosine to the closest such paper), run
this file with that checkout's package first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from quality import cached, forms, load_papers, ndcg
from quality_compare import SPLIT_NOTES, Split, load_splits

import digest.rank.scoring as scoring
from digest.models import Paper, Profile, Votes
from digest.rank import Embedder, score_papers, select_digest

DIGEST_SIZE = 10
SHOWN = ["digest"]  # `--shown`: "digest" (what the email shows) or "top" (the best 10, any score)
HELD_OUT_EVERY = 3  # one paper in three is held out
SEEDS = 5  # random half-voting readers per profile and form
READERS = {"all": 1.0, "half": 0.5}
EMBED: list[Embedder | None] = [None]  # `--semantic`: the embedding extra's model, cached


@dataclass(frozen=True, slots=True)
class Curve:
    """nDCG@10 on the held-out papers: before any vote, then after each day's votes."""

    ndcg10: tuple[float, ...]
    more: int  # votes cast over all days
    less: int
    judged: tuple[int, int] = (0, 0)  # held-out papers graded 2 and 1: what nDCG@10 is measured on


def held_out(paper: Paper) -> bool:
    return int(hashlib.sha256(paper.id.encode()).hexdigest(), 16) % HELD_OUT_EVERY == 0


def measure(profile: Profile, liked: Sequence[Paper], votes: Votes, pool: Sequence[Paper], every: Sequence[Paper],
            grades: dict[str, int]) -> float:  # fmt: skip
    ranked = score_papers(
        pool, [profile], liked={profile.id: liked}, votes={profile.id: votes}, background=every, embed=EMBED[0]
    )
    ids = [s.paper.id for s in ranked[profile.id]]
    seen = set(ids)
    ranking = ids + [p.id for p in pool if p.id not in seen]  # papers scoring 0 keep their order, last
    return ndcg(ranking, grades)


def simulate(
    profile: Profile,
    liked: Sequence[Paper],
    papers: Sequence[Paper],
    labels: dict[str, int],
    fraction: float,
    rng: random.Random,
) -> Curve:
    mine = {p.id for p in liked}
    test = [p for p in papers if held_out(p) and p.id not in mine]
    grades = {p.id: labels.get(p.id, 0) for p in test}
    days = sorted({p.first_seen for p in papers})
    more: list[Paper] = []
    less: list[Paper] = []
    curve = [measure(profile, liked, Votes(), test, papers, grades)]
    for day in days:
        todays = [p for p in papers if p.first_seen == day and not held_out(p) and p.id not in mine]
        votes = Votes(more=tuple(more), less=tuple(less))
        ranked = score_papers(
            todays, [profile], liked={profile.id: liked}, votes={profile.id: votes}, background=papers, embed=EMBED[0]
        )[profile.id]
        if SHOWN[0] == "top":
            shown = ranked[:DIGEST_SIZE]
        else:
            shown, _ = select_digest(ranked, replace(profile, max_items=DIGEST_SIZE))
        for item in shown:
            grade = labels.get(item.paper.id, 0)
            if grade == 1 or rng.random() >= fraction:
                continue
            (more if grade == 2 else less).append(item.paper)
        curve.append(measure(profile, liked, Votes(more=tuple(more), less=tuple(less)), test, papers, grades))
    judged = (sum(g == 2 for g in grades.values()), sum(g == 1 for g in grades.values()))
    return Curve(tuple(curve), len(more), len(less), judged)


def reader_forms(
    profile: Profile, by_title: dict[str, Paper], wanted: Sequence[str]
) -> dict[str, tuple[Profile, list[Paper]]]:
    """The profile in each form asked for: `text` and `liked` (bench/quality.py), and `whole`,
    the profile as written (words and liked papers)."""
    found = forms(profile, by_title) | {"whole": (profile, [by_title[title] for title in profile.liked])}
    return {form: found[form] for form in wanted}


def run(
    split: Split, papers: list[Paper], reader: str, wanted: Sequence[str] = ("text", "liked")
) -> dict[tuple[str, str], Curve]:
    by_title = {p.title: p for p in papers}
    found: dict[tuple[str, str], Curve] = {}
    for profile in split.profiles:
        for form, (variant, liked) in reader_forms(profile, by_title, wanted).items():
            fraction = READERS[reader]
            seeds = range(SEEDS) if fraction < 1 else range(1)
            curves = [
                simulate(variant, liked, papers, split.labels[profile.id], fraction, random.Random(f"{profile.id}/{s}"))
                for s in seeds
            ]
            found[(profile.id, form)] = Curve(
                tuple(statistics.mean(c.ndcg10[d] for c in curves) for d in range(len(curves[0].ndcg10))),
                round(statistics.mean(c.more for c in curves)),
                round(statistics.mean(c.less for c in curves)),
                curves[0].judged,
            )
    return found


def _in(form: str, chosen: str | None) -> bool:
    """`chosen` None: the two peers' forms together (`both`), as in the tables before `whole`."""
    return form in ("text", "liked") if chosen is None else form == chosen


def _rows(present: set[str]) -> list[str | None]:
    """The forms a table shows: each one run, and `both` when text and liked both were."""
    rows: list[str | None] = [f for f in ("text", "liked") if f in present]
    if {"text", "liked"} <= present:
        rows.append(None)
    return rows + (["whole"] if "whole" in present else [])


def mean_curve(curves: dict[tuple[str, str], Curve], form: str | None) -> list[float]:
    chosen = [c for (_, f), c in curves.items() if _in(f, form)]
    return [statistics.mean(c.ndcg10[d] for c in chosen) for d in range(len(chosen[0].ndcg10))]


def markdown(results: dict[str, dict[str, dict[str, dict[tuple[str, str], Curve]]]], splits: list[Split]) -> str:
    lines: list[str] = []
    for split in splits:
        lines += [
            f"Split `{split.name}` ({SPLIT_NOTES[split.name]}; {', '.join(p.id for p in split.profiles)}).",
            "",
            "| MORE:LESS_ROCCHIO | reader | form | day 0 | day 1 | day 2 | day 3 | day 4 | day 5 | worst day-to-day |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for rocchio, by_reader in results.items():
            for reader, by_split in by_reader.items():
                curves = by_split[split.name]
                for form in _rows({f for _, f in curves}):
                    values = mean_curve(curves, form)
                    drops = [
                        min(b - a for a, b in zip(c.ndcg10, c.ndcg10[1:], strict=False))
                        for (_, f), c in curves.items()
                        if _in(f, form)
                    ]
                    cells = " | ".join(f"{v:.3f}" for v in values)
                    lines.append(f"| {rocchio} | {reader} | {form or 'both'} | {cells} | {min(drops):+.3f} |")
        first = next(iter(next(iter(results.values())).values()))[split.name]
        counts = ", ".join(f"{pid} ({form}) {c.judged[0]} / {c.judged[1]}" for (pid, form), c in first.items())
        lines += ["", f"Held-out papers graded 2 / 1, what each nDCG@10 is measured on: {counts}."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--splits", default="seen,tune,report")
    shipped = f"{getattr(scoring, 'MORE_ROCCHIO', '-')}:{getattr(scoring, 'LESS_ROCCHIO', '-')}"
    parser.add_argument("--weights", default=shipped, help="comma-separated MORE_ROCCHIO:LESS_ROCCHIO pairs")
    parser.add_argument("--readers", default="all,half")
    parser.add_argument("--forms", default="text,liked", help="comma-separated: text, liked, whole (as written)")
    parser.add_argument("--semantic", action="store_true", help="rank with the embedding extra")
    parser.add_argument("--shown", choices=("digest", "top"), default="digest", help="what the reader votes on")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    SHOWN[0] = args.shown
    if args.semantic:
        from digest.semantic import load_embedder

        EMBED[0] = cached(load_embedder())
    splits = load_splits(args.splits.split(","))
    papers = load_papers()
    started = time.perf_counter()
    results: dict[str, dict[str, dict[str, dict[tuple[str, str], Curve]]]] = {}
    for value in args.weights.split(","):
        more, less = value.split(":")
        if more != "-":  # a checkout without the Rocchio terms runs as it is
            scoring.MORE_ROCCHIO, scoring.LESS_ROCCHIO = float(more), float(less)
        results[value] = {
            reader: {split.name: run(split, papers, reader, args.forms.split(",")) for split in splits}
            for reader in args.readers.split(",")
        }
    print(markdown(results, splits))
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    rocchio: {
                        reader: {
                            split: [
                                {
                                    "profile": pid,
                                    "form": form,
                                    "ndcg10": c.ndcg10,
                                    "more": c.more,
                                    "less": c.less,
                                    "held_out_judged_2_1": c.judged,
                                }
                                for (pid, form), c in curves.items()
                            ]
                            for split, curves in by_split.items()
                        }
                        for reader, by_split in by_reader.items()
                    }
                    for rocchio, by_reader in results.items()
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
