"""Benchmark: the state database and its `digest-state` branch after a year of daily digests.

    .venv/bin/python bench/state_year.py [--days 365] [--no-git]

Simulates what the publish workflow stores in a year with the example profiles of
digest.toml (5 profiles, 6 subscribers) and the live source on: each day one listing of
the size of a seed dump (38 to 77 papers, cycling through the five seeds) with the
fields the Daily Papers API gives (arXiv id, authors, URL); each seed paper's words are
shuffled per day, so that no day repeats an earlier one's text (a repeat would compress
and delta unrealistically well). Each day, every profile gets a digest of up to
`max_items` new papers, every subscriber's email a ledger row marked sent, and the day
and the day before a fetch record, as `digest run` with `[source] enabled = true` makes.
Ranking is skipped (which papers are picked does not change the size of the rows).

Each day's state is snapshotted as the workflow's save does (VACUUM INTO) and, unless
--no-git, committed on an orphan branch of a scratch repository as `.github/digest-state.sh
save` does (in parts of 45 MiB); at the end the repository is packed (git gc) and
measured. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import load_config  # noqa: E402
from digest.ingest.hf_dump import content_hash, decode_dump, format_dump, parse_dump  # noqa: E402
from digest.models import Digest, Dump, Entry, PaperPart, Reason, ReasonKind, ScoredPaper  # noqa: E402
from digest.retention import prune_old_records  # noqa: E402
from digest.store import Store, Validators, open_store  # noqa: E402

START = date(2026, 1, 1)
PART_BYTES = 47_185_920  # .github/digest-state.sh's STATE_PART_BYTES
SEEDS = sorted((ROOT / "seeds").glob("*.txt"))
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.org",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.org",
}


def seed_entries() -> list[list[Entry]]:
    today = date(2026, 1, 1)
    return [list(parse_dump(decode_dump(p.read_bytes()), p.name, today=today).entries) for p in SEEDS]


def shuffled(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def day_listing(day: date, number: int, seeds: list[list[Entry]]) -> Dump:
    """A listing day shaped like a seed, with new papers and API fields."""
    rng = random.Random(number)
    entries = []
    for position, entry in enumerate(seeds[number % len(seeds)], start=1):
        arxiv = f"{day:%y%m}.{number:03d}{position:02d}"
        authors = tuple(f"{rng.choice('ABCDEFGHJKLMNPRSTW')}. Author{rng.randrange(10_000)}" for _ in range(6))
        entries.append(
            Entry(
                title=f"{shuffled(entry.title, rng)} {number}-{position}",
                abstract=shuffled(entry.abstract, rng),
                authors_count=len(authors),
                published=day - timedelta(days=rng.randrange(3)),
                upvotes=rng.randrange(60),
                line=position,
                arxiv_id=arxiv,
                authors=authors,
                url=f"https://huggingface.co/papers/{arxiv}",
                comments=rng.randrange(5),
            )
        )
    # The text format cannot carry the API's fields, so the dump is kept as made; its
    # text (format_dump) only names it, as the hash of a file would.
    return Dump(source=f"hf-daily-{day}.json", date=day, entries=tuple(entries), kind="hf-api")


def simulate_day(store: Store, config, day: date, number: int, seeds: list[list[Entry]]) -> None:
    dump = day_listing(day, number, seeds)
    at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=6, minutes=17)
    store.add_dump(dump, content_hash(format_dump(day, dump.entries)) + f"-{number}", at)
    for offset in (1, 0):
        listed = day - timedelta(days=offset)
        url = f"https://huggingface.co/api/daily_papers?date={listed}"
        store.save_fetch(url, listed, Validators(etag=f'W/"{number}-{offset}"', last_modified=None), at)
    # The day's papers are the candidates (what candidate_papers finds, without its cost,
    # which grows with the store and is measured by bench/rank.py).
    candidates = store.recent_papers(len(dump.entries))
    for number_in_day, profile in enumerate(config.profiles):
        watermark = store.watermark()
        picked = candidates[number_in_day : number_in_day + profile.max_items]
        items = tuple(
            ScoredPaper(
                p, round(0.9 - 0.05 * i, 3), (Reason(ReasonKind.KEYWORDS, terms=("x",), where=PaperPart.TITLE),)
            )
            for i, p in enumerate(picked)
        )
        digest = Digest(profile=profile, date=day, items=items, built_at=at, candidates=len(candidates))
        store.save_digest(digest, watermark)
        store.set_digest_state(profile.id, day, "delivered", at)
        keys = [(profile.id, day, s) for s in profile.subscribers]
        store.add_deliveries(keys, lambda key: f"<{key[0]}.{key[1]}.{hash(key[2]) & 0xFFFF}@example.org>", "smtp", at)
        for key in keys:
            store.mark_delivery_sending(key, at)
            store.mark_delivery_sent(key, at + timedelta(seconds=2))


def snapshot(db: Path, target: Path) -> int:
    target.unlink(missing_ok=True)
    source = sqlite3.connect(db)
    source.execute("VACUUM INTO ?", (str(target),))
    source.close()
    return target.stat().st_size


def count_rows(db: Path) -> dict[str, int]:
    connection = sqlite3.connect(db)
    tables = ("papers", "sightings", "digests", "digest_items", "deliveries", "fetches")
    counts = {table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in tables}
    connection.close()
    return counts


def git(repo: Path, *args: str, data: bytes | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    result = subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True, check=True, env=env)
    return result.stdout.decode().strip()


def commit_snapshot(repo: Path, path: Path, parent: str | None, number: int) -> str:
    """As digest-state.sh save commits: the snapshot cut into state.db.000, .001, ... of PART_BYTES."""
    data = path.read_bytes()
    lines = []
    for index, start in enumerate(range(0, len(data), PART_BYTES)):
        part = path.with_name(f"state.db.{index:03d}")
        part.write_bytes(data[start : start + PART_BYTES])
        lines.append(f"100644 blob {git(repo, 'hash-object', '-w', str(part))}\tstate.db.{index:03d}\n")
    tree = git(repo, "mktree", data="".join(lines).encode())
    return git(repo, "commit-tree", tree, *(["-p", parent] if parent else []), "-m", f"day {number}")


def pack_bytes(repo: Path) -> int:
    git(repo, "gc", "--quiet")
    stats = dict(line.split(": ") for line in git(repo, "count-objects", "-v").splitlines())
    return (int(stats["size-pack"]) + int(stats["size"])) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--no-git", action="store_true", help="measure the database only")
    args = parser.parse_args()
    config = load_config(ROOT / "digest.toml", ROOT)
    seeds = seed_entries()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        store = open_store(folder / "state.db")
        repo = folder / "state.git"
        if not args.no_git:
            subprocess.run(["git", "init", "--quiet", "--bare", str(repo)], check=True)
        tip = None
        for number in range(args.days):
            simulate_day(store, config, START + timedelta(days=number), number, seeds)
            if not args.no_git:
                snapshot(folder / "state.db", folder / "snapshot.db")
                tip = commit_snapshot(repo, folder / "snapshot.db", tip, number)
            if (number + 1) % 30 == 0:
                print(f"day {number + 1}: {time.monotonic() - started:.0f} s", file=sys.stderr)
                if tip:  # pack as a server would, instead of keeping a year of loose objects
                    git(repo, "update-ref", "refs/heads/digest-state", tip)
                    git(repo, "gc", "--quiet")
        last = START + timedelta(days=args.days - 1)
        size = snapshot(folder / "state.db", folder / "snapshot.db")
        rows = count_rows(folder / "snapshot.db")
        packed = zlib.compress((folder / "snapshot.db").read_bytes(), 6)
        pruned_default = prune_old_records(config, store, last, dry_run=True)
        pruned_short = prune_old_records(replace(config, retention_days=30), store, last)
        after_prune = snapshot(folder / "state.db", folder / "snapshot.db")
        if tip:
            git(repo, "update-ref", "refs/heads/digest-state", tip)
        history = pack_bytes(repo) if tip else None
        store.close()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {date.today()}.")
    print(f"{args.days} days, {time.monotonic() - started:.0f} s.\n")
    print("| what | value |\n|---|---:|")
    for table, count in rows.items():
        print(f"| rows in `{table}` | {count:,} |")
    print(f"| state.db (compacted, as pushed) | {size / 1e6:.1f} MB |")
    print(f"| state.db compressed (what a run downloads) | {len(packed) / 1e6:.1f} MB |")
    if history is not None:
        print(f"| `digest-state` branch, all {args.days} commits, packed | {history / 1e6:.1f} MB |")
    print(
        f"| `digest prune` (retention 400 days) would delete | {pruned_default.deliveries} ledger rows, "
        f"{pruned_default.fetches} fetch records |"
    )
    print(
        f"| with retention 30 days: deleted | {pruned_short.deliveries:,} ledger rows, {pruned_short.fetches} fetch "
        f"records; state.db {after_prune / 1e6:.1f} MB |"
    )


if __name__ == "__main__":
    main()
