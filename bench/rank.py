"""Benchmark: ranking many synthetic papers against many synthetic profiles.

    .venv/bin/python bench/rank.py [--papers 100000] [--profiles 1000] [--runs 3] [--semantic] [--workers 1,2]

Papers are made of words drawn from a Zipf distribution over a few thousand
pseudo-words (so word rarity and word pairs behave as in real abstracts): a title of
8–12 words and an abstract of 120–200. Profiles have a 15-word description and three
keywords; a third also have three liked papers, some follow an organisation or exclude
a word. `score_papers` ranks all papers for all profiles in one call, keeping each
profile's best 40 (what a digest of 10 needs), each run in a fresh process so the peak
memory is its own. With `--workers N` the profiles are shared out, `[digest] shard_size`
at a time, to N worker processes (`parallel.ProcessRunner`), each of which is sent the
papers once and ranks its shards against all of them; the time is the whole map's, the
papers' transfer included. `--semantic` also times the embedding extra (papers per second).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.models import Keyword, Organization, Paper, Profile  # noqa: E402
from digest.parallel import ProcessRunner, shards  # noqa: E402
from digest.rank import score_papers  # noqa: E402

VOCABULARY = 4000
KEEP = 40


def _words(rng: random.Random, count: int, weights: list[float]) -> str:
    return " ".join(f"w{i}" for i in rng.choices(range(VOCABULARY), weights=weights, k=count))


def make_papers(count: int, seed: int = 3) -> list[Paper]:
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) for rank in range(VOCABULARY)]
    start = date(2025, 1, 1)
    papers = []
    for n in range(count):
        day = start + timedelta(days=n // 100)
        org = Organization(f"org{rng.randrange(40)}", "Lab") if rng.random() < 0.05 else None
        papers.append(
            Paper(
                id=f"p{n:06d}",
                title=_words(rng, rng.randint(8, 12), weights),
                abstract=_words(rng, rng.randint(120, 200), weights),
                authors_count=None if org else rng.randint(1, 20),
                organization=org,
                published=day,
                upvotes=rng.choice([None, rng.randrange(0, 200)]),
                first_seen=day,
                last_seen=day,
                sightings=1,
            )
        )
    return papers


def make_profiles(count: int, papers: list[Paper], seed: int = 5) -> tuple[list[Profile], dict[str, list[Paper]]]:
    rng = random.Random(seed)
    # Profiles ask for the less common words: a profile made of 'the' and 'of' matches everything.
    weights = [1.0 / (rank + 1) if rank > 50 else 0.0 for rank in range(VOCABULARY)]
    profiles, liked = [], {}
    for n in range(count):
        pid = f"profile-{n}"
        keywords = tuple(Keyword(_words(rng, rng.choice([1, 2]), weights)) for _ in range(3))
        has_liked = n % 3 == 0
        profiles.append(
            Profile(
                id=pid,
                title=pid,
                description=_words(rng, 15, weights),
                keywords=keywords,
                exclude=(_words(rng, 1, weights),) if n % 7 == 0 else (),
                follow=(f"org{rng.randrange(40)}",) if n % 5 == 0 else (),
                liked=("x",) if has_liked else (),
            )
        )
        if has_liked:
            liked[pid] = rng.sample(papers, 3)
    return profiles, liked


def rank_profiles(common: tuple[list[Paper], dict[str, list[Paper]]], profiles: list[Profile]) -> int:
    """A worker's shard: its profiles ranked against every paper; how many papers it kept."""
    papers, liked = common
    ranked = score_papers(papers, profiles, liked={p.id: liked[p.id] for p in profiles if p.id in liked}, limit=KEEP)
    return sum(len(v) for v in ranked.values())


def measure(papers_count: int, profiles_count: int, workers: int = 1) -> dict[str, float]:
    papers = make_papers(papers_count)
    profiles, liked = make_profiles(profiles_count, papers)
    started = time.perf_counter()
    if workers == 1:
        ranked = score_papers(papers, profiles, liked=liked, limit=KEEP)
        kept = sum(len(v) for v in ranked.values())
    else:
        size = -(-len(profiles) // workers)  # one shard a worker: each reads the papers once
        kept = sum(ProcessRunner(workers).map(rank_profiles, (papers, liked), shards(profiles, size)))
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": elapsed, "peak_mb": peak_mb, "kept": kept}


def measure_semantic(count: int) -> dict[str, float]:
    from digest.semantic import load_embedder

    started = time.perf_counter()
    embed = load_embedder()
    loaded = time.perf_counter() - started
    texts = [f"{p.title}. {p.abstract}" for p in make_papers(count)]
    started = time.perf_counter()
    embed(texts)
    elapsed = time.perf_counter() - started
    return {"load_seconds": loaded, "papers_per_second": count / elapsed}


def _child(*args: str) -> dict[str, float]:
    # The workers are forked from a server that imports this module as the main one: no side effects here.
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--semantic", action="store_true", help="also time the embedding extra")
    parser.add_argument("--workers", default="1", help="worker processes to rank with, comma-separated")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "semantic":
            print(json.dumps(measure_semantic(int(args.child[1]))))
        else:
            print(json.dumps(measure(int(args.child[0]), int(args.child[1]), int(args.child[2]))))
        return
    print(f"machine: {platform.machine()}, Python {platform.python_version()}\n")
    print("| papers | profiles | workers | median s | min s | max s | peak RSS MB (coordinator) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    counts = [int(n) for n in args.workers.split(",")]
    for papers, profiles in ((args.papers // 10, args.profiles // 10), (args.papers, args.profiles)):
        runs: dict[int, list[dict[str, float]]] = {n: [] for n in counts}
        for _ in range(args.runs):  # interleaved, so that a busy machine slows every setting alike
            for n in counts:
                runs[n].append(_child(str(papers), str(profiles), str(n)))
        for n in counts:
            seconds = [r["seconds"] for r in runs[n]]
            peak = max(r["peak_mb"] for r in runs[n])
            print(
                f"| {papers:,} | {profiles:,} | {n} | {statistics.median(seconds):.2f} | {min(seconds):.2f} | "
                f"{max(seconds):.2f} | {peak:.0f} |"
            )
    if args.semantic:
        result = _child("semantic", "2000")
        print(
            f"\nsemantic extra: model load {result['load_seconds']:.1f} s, "
            f"{result['papers_per_second']:.0f} papers/s to embed (title + abstract)"
        )


if __name__ == "__main__":
    main()
