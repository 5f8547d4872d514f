"""Benchmark: parsing and ingesting synthetic Daily Papers dumps.

    .venv/bin/python bench/ingest.py [--files 1000] [--entries 100] [--runs 3]

Writes synthetic dumps in the real format (100 entries per file, 1,000 files by
default; a fifth of the titles reappear on later days, as on the real site) to
bench/.data/, then measures, each in a fresh process so peak memory is its own:
parse alone, and parse + store into a new SQLite file, over 1/4, 1/2 and all of the
files. Prints a Markdown table for bench/RESULTS.md (median of --runs runs).
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
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.ingest.hf_dump import decode_dump, format_dump, parse_dump  # noqa: E402
from digest.models import Entry, Organization  # noqa: E402

DATA = ROOT / "bench" / ".data" / "dumps"
WORDS = [
    "learning",
    "model",
    "models",
    "language",
    "large",
    "diffusion",
    "policy",
    "reinforcement",
    "attention",
    "transformer",
    "efficient",
    "quantization",
    "continual",
    "graph",
    "vision",
    "video",
    "generation",
    "reasoning",
    "alignment",
    "preference",
    "reward",
    "sparse",
    "training",
    "inference",
    "robust",
    "adaptive",
    "neural",
    "network",
    "data",
    "benchmark",
    "agents",
    "multimodal",
    "retrieval",
]


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def make_corpus(files: int, per_file: int, seed: int = 7) -> list[Path]:
    """Deterministic synthetic dumps; reuses files already written with the same shape."""
    DATA.mkdir(parents=True, exist_ok=True)
    stamp = DATA / "shape.json"
    shape = {"files": files, "per_file": per_file, "seed": seed}
    paths = [DATA / f"{n:05}.txt" for n in range(files)]
    if stamp.exists() and json.loads(stamp.read_text()) == shape and all(p.exists() for p in paths):
        return paths
    rng = random.Random(seed)
    start = date(2023, 1, 1)
    serial = 0
    recent: list[Entry] = []
    for n, path in enumerate(paths):
        day = start + timedelta(days=n)
        entries: dict[str, Entry] = {}
        while len(entries) < per_file:
            if recent and rng.random() < 0.2:
                again = rng.choice(recent)
                entries[again.title] = again
                continue
            serial += 1
            published = day - timedelta(days=rng.randrange(0, 900))
            org = Organization("lab" + str(rng.randrange(50)), "Lab") if rng.random() < 0.05 else None
            title = f"{_sentence(rng, 8)[:-1]} {serial}"
            entries[title] = Entry(
                title=title,
                abstract=" ".join(_sentence(rng, 18) for _ in range(9)),
                authors_count=None if org else rng.randrange(1, 30),
                organization=org,
                published=published,
                upvotes=rng.choice([None, rng.randrange(1, 300)]),
            )
        recent = (recent + list(entries.values()))[-2000:]
        path.write_text(format_dump(day, list(entries.values())), encoding="utf-8")
    stamp.write_text(json.dumps(shape))
    return paths


def measure(mode: str, files: int) -> dict[str, float]:
    """Run one measurement in this process (called in a child process)."""
    paths = sorted(DATA.glob("*.txt"))[:files]
    today = date(2026, 11, 22)
    started = time.perf_counter()
    entries = 0
    if mode == "parse":
        for path in paths:
            entries += len(parse_dump(decode_dump(path.read_bytes()), path.name, today=today).entries)
    else:
        from digest.pipeline import ingest_files
        from digest.store import open_store

        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(Path(tmp) / "state.db")
            now = datetime.now(UTC)
            summary = ingest_files(store, paths, quarantine=Path(tmp) / "q", today=today, now=now)
            store.close()
            entries = summary.entries
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": elapsed, "entries": entries, "peak_mb": peak_mb}


def _child(mode: str, files: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(files)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--entries", type=int, default=100, help="entries per file")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return
    paths = make_corpus(args.files, args.entries)
    print(f"corpus: {len(paths)} files in {DATA.relative_to(ROOT)}", file=sys.stderr)
    print(f"machine: {platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}\n")
    print("| stage | files | entries | median s | papers/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode in ("parse", "parse+store"):
        for files in (args.files // 4, args.files // 2, args.files):
            runs = [_child(mode, files) for _ in range(args.runs)]
            seconds = statistics.median(r["seconds"] for r in runs)
            entries = int(runs[0]["entries"])
            peak = max(r["peak_mb"] for r in runs)
            print(f"| {mode} | {files} | {entries} | {seconds:.2f} | {entries / seconds:,.0f} | {peak:.0f} |")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
