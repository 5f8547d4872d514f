"""Benchmark: a day's digests for 1,000 profiles, ranked, chosen and saved, as `digest build` makes them.

    .venv/bin/python bench/build.py [--profiles 1000] [--runs 3] [--workers 1,2]

Uses bench/render.py's state database (built once and cached in bench/.data/render/: the
five seeds and a week of 70 new papers, 379 papers in all, and its 1,000 profiles) and
times `App.build_digests` for every profile on 2026-01-07: each profile's candidates of
that day ranked against the store's recent papers (the background), its digest chosen and
saved, on `[digest] workers` = each of `--workers` (the pool is started inside the timing).
Each run is a fresh process on a fresh copy of the database, the settings interleaved run
by run. Prints the runs, their median, and a hash of every digest's items (paper ids,
scores, reasons): the same hash for every setting, or the build is not the same build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from datetime import time as day_time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import render  # noqa: E402

DAY = render.WEEK.days()[2]


def measure(count: int, workers: int) -> dict[str, float | str]:
    """One build in this process (called in a child process)."""
    from digest.app import App

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(render.DATA / "state.db", Path(tmp) / "state.db")
        config = replace(render.config_in(Path(tmp), count), db=Path(tmp) / "state.db", workers=workers)
        app = App(config, clock=lambda: datetime.combine(DAY, day_time(8), UTC))
        started = time.perf_counter()
        built = list(app.build_digests([(profile, DAY) for profile in config.profiles]))
        seconds = time.perf_counter() - started
        app.close()
    items = [[d.profile.id, [[s.paper.id, s.score, [repr(r) for r in s.reasons]] for s in d.items]] for d, _ in built]
    return {
        "seconds": seconds,
        "items": sum(len(d.items) for d, _ in built),
        "hash": hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16],
    }


def _child(count: int, workers: int) -> dict[str, float | str]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(count), str(workers)], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), int(args.child[1]))))
        return
    render.make_database(args.profiles, 10, 70)
    settings = [int(w) for w in args.workers.split(",")]
    found: dict[int, list[dict[str, float | str]]] = {w: [] for w in settings}
    for _ in range(args.runs):
        for workers in settings:
            found[workers].append(_child(args.profiles, workers))
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"load average {os.getloadavg()[0]:.1f}; {args.profiles} profiles, {DAY}\n")
    print("| workers | runs s | median s | items | digests' hash |")
    print("|---:|---|---:|---:|---|")
    for workers, runs in found.items():
        seconds = [float(r["seconds"]) for r in runs]
        hashes = sorted({str(r["hash"]) for r in runs})
        print(
            f"| {workers} | {', '.join(f'{s:.2f}' for s in seconds)} | {statistics.median(seconds):.2f} "
            f"| {runs[0]['items']} | {', '.join(hashes)} |"
        )


if __name__ == "__main__":
    main()
