"""Benchmark: what publishing costs as the history grows (every build reads the whole history).

    .venv/bin/python bench/history.py [--profiles 50] [--days 1,30,90] [--runs 3]

For each number of days, a state database in a temporary folder holds the five seeds and,
for each of `--profiles` profiles (every format on), one saved digest of 10 seed papers a
day for that many days, and a roll-up of 20 of them (10 in full, 5 "also") for each week
and month that ended. `publish.write_outputs` (one process) writes everything once into
an empty folder, then runs again over the same store: nothing has changed, so no file is
written, and the second run's time is what every later build pays for the history alone
(reading a record of each profile's digests, and rendering the pages whose inputs
changed: none).
Then each profile gets a digest for the next day and publishing runs once more: a day's
build (the new page, the one before it, the archive, the feeds). Each measurement in a
fresh process; median of `--runs`.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import load_config  # noqa: E402
from digest.ingest.hf_dump import content_hash, decode_dump, parse_dump  # noqa: E402
from digest.models import Digest, Paper, PaperPart, Profile, Reason, ReasonKind, Rollup, ScoredPaper  # noqa: E402
from digest.periods import Period, month_of, week_of  # noqa: E402
from digest.publish import write_outputs  # noqa: E402
from digest.rollups import Pool  # noqa: E402
from digest.store import Store, open_store  # noqa: E402

FIRST_DAY = date(2025, 1, 1)
REASONS = (Reason(ReasonKind.KEYWORDS, terms=("keyword",), where=PaperPart.TITLE),)


def measure(profiles: int, days: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = open_store(folder / "state.db")
        for seed in sorted((ROOT / "seeds").iterdir()):
            text = decode_dump(seed.read_bytes())
            moment = datetime(2025, 1, 1, tzinfo=UTC)
            store.add_dump(parse_dump(text, seed.name, today=date(2026, 1, 1)), content_hash(text), moment)
        papers = list(store.iter_papers())
        rng = random.Random(5)
        chosen = tuple(
            Profile(id=f"p{n:03}", title=f"Profile {n}", description="Learning.", subscribers=(f"r{n}@example.org",))
            for n in range(profiles)
        )
        last = []
        started = time.perf_counter()
        for profile in chosen:
            for offset in range(days):
                day = FIRST_DAY + timedelta(days=offset)
                digest = _save_digest(store, profile, day, rng.sample(papers, 10))
                for period in (week_of(day), month_of(day)):
                    if day == period.last:  # each week and month that ended gets its roll-up
                        _save_rollup(store, profile, period, rng.sample(papers, 20))
            last.append(digest)
        filled = time.perf_counter() - started
        config = replace(load_config(None, folder), profiles=chosen, db=folder / "state.db")
        mark = time.perf_counter()
        files = len(write_outputs(config, store, last))
        first = time.perf_counter() - mark
        mark = time.perf_counter()
        again = len(write_outputs(config, store, last))
        second = time.perf_counter() - mark
        day = FIRST_DAY + timedelta(days=days)
        newest = [_save_digest(store, profile, day, rng.sample(papers, 10)) for profile in chosen]
        mark = time.perf_counter()
        changed = len(write_outputs(config, store, newest))
        third = time.perf_counter() - mark
        store.close()
    return {
        "files": files,
        "first": first,
        "again": second,
        "unchanged": again,
        "new_day": third,
        "new_day_files": changed,
        "filled": filled,
    }


def _save_rollup(store: Store, profile: Profile, period: Period, papers: list[Paper]) -> None:
    pool = tuple(ScoredPaper(p, 0.9 - i * 0.02, REASONS) for i, p in enumerate(papers))
    built = datetime.combine(period.last, datetime.min.time(), UTC) + timedelta(days=1, hours=7)
    rollup = Rollup(profile, period, pool[:10], pool[10:15], built, considered=len(papers) * 5, above=len(pool))
    store.save_rollup(rollup, Pool(pool, ()))


def _save_digest(store: Store, profile: Profile, day: date, papers: list[Paper]) -> Digest:
    items = tuple(ScoredPaper(p, 0.9 - i * 0.03, REASONS) for i, p in enumerate(papers))
    built = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=7)
    digest = Digest(profile, day, items, built, candidates=50)
    store.save_digest(digest, store.watermark())
    return digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=50)
    parser.add_argument("--days", default="1,30,90")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; {args.profiles} profiles\n")
    print(
        "| days of history | files | first build s | a build with nothing new s | per profile ms "
        "| a new day's build s | files it writes | per profile ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for days in (int(d) for d in args.days.split(",")):
        runs = [_child(args.profiles, days) for _ in range(args.runs)]
        assert all(r["unchanged"] == 0 for r in runs), "a rebuild with nothing new wrote files"
        first, again, new_day = (statistics.median(r[k] for r in runs) for k in ("first", "again", "new_day"))
        files, changed, each = int(runs[0]["files"]), int(runs[0]["new_day_files"]), 1000 / args.profiles
        print(
            f"| {days} | {files:,} | {first:.2f} | {again:.2f} | {again * each:.1f} "
            f"| {new_day:.2f} | {changed:,} | {new_day * each:.1f} |"
        )


def _child(profiles: int, days: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", str(profiles), str(days)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


if __name__ == "__main__":
    main()
