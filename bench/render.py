"""Benchmark: rendering 1,000 profiles × 10 papers to every format, and writing it all;
then 1,000 weekly roll-ups of 70 candidate papers each, in the same run.

    .venv/bin/python bench/render.py [--profiles 1000] [--papers 10] [--week 70] [--runs 5] [--workers 1,2]
    .venv/bin/python bench/render.py --compare-inliners   # needs `pip install premailer`

Builds (once, cached in bench/.data/render/) a state database holding the five seeds,
one saved digest of `--papers` papers for each of `--profiles` profiles (a daily and a
weekly subscriber each, every format on), and a week (2026-W02) of `--week` new papers
(the seeds' abstracts under new titles, ten a day). Then measures, each run in a fresh
process:

- render: the pure renderers on data already in memory: one email per profile, one
  Markdown page, Atom + RSS + JSON Feed per profile and for all papers, the whole site;
- write: what `digest build` does after ranking (with `--workers N`, the workers' server
  is started before the clock, as ranking has started it in a build; that start is timed
  on its own): `publish.write_outputs` (store reads,
  rendering, atomic writes of every feed, Markdown and site file into an empty folder)
  and `App.email` (one `.eml` per daily subscriber in the outbox, through the delivery
  ledger of a copy of the database); then, on the same copy, the week's roll-ups as
  `digest build --period week` makes them: `App.build_rollups` (every profile ranks the
  week's papers, each in a batch of its own on `[digest] workers`, and its roll-up is saved), `App.publish`
  (weekly and monthly feeds, Markdown, and the whole site again, roll-up pages included)
  and `App.email` of the roll-ups (each weekly subscriber's copy made and saved, one
  `.eml` each).

Prints Markdown tables for bench/RESULTS.md (median of --runs runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import Config, load_config  # noqa: E402
from digest.ingest.hf_dump import content_hash, decode_dump, format_dump, parse_dump  # noqa: E402
from digest.models import (  # noqa: E402
    Cadence,
    Digest,
    Entry,
    PaperPart,
    Profile,
    Reason,
    ReasonKind,
    ScoredPaper,
)
from digest.periods import week_of  # noqa: E402
from digest.rows import DeliveryKey  # noqa: E402
from digest.store import open_store  # noqa: E402

DATA = ROOT / "bench" / ".data" / "render"
DAY = date(2025, 12, 31)
BUILT_AT = datetime(2025, 12, 31, 7, 0, tzinfo=UTC)
WEEK = week_of(date(2026, 1, 5))  # 2026-W02
ROLLED_AT = datetime(2026, 1, 12, 7, 0, tzinfo=UTC)
KEY = b"bench-key-0123456789abcdef"
REASONS = (
    Reason(ReasonKind.KEYWORDS, terms=("keyword",), where=PaperPart.TITLE),
    Reason(ReasonKind.LIKED, paper_id="liked", title="a liked paper"),
)


def profiles(count: int) -> tuple[Profile, ...]:
    return tuple(
        Profile(
            id=f"profile-{n:04}",
            title=f"Profile {n}",
            description="Papers about learning, models and whatever else this reader likes.",
            subscribers=(f"reader{n}@example.org", f"weekly{n}@example.org"),
            subscriber_cadences=((f"weekly{n}@example.org", Cadence.WEEKLY),),
            formats=("email", "atom", "rss", "json", "markdown"),
            min_score=0.0,  # every paper the description shares a word with is in the roll-up's pool
        )
        for n in range(count)
    )


def make_database(count: int, per_profile: int, week: int) -> Path:
    """The seeds, one saved digest per profile, and a week of `week` new papers; reused
    while the shape is the same."""
    DATA.mkdir(parents=True, exist_ok=True)
    path, stamp = DATA / "state.db", DATA / "shape.json"
    shape = {"profiles": count, "papers": per_profile, "week": week, "version": 3}
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == shape:
        return path
    for old in DATA.glob("state.db*"):
        old.unlink()
    store = open_store(path)
    for seed in sorted((ROOT / "seeds").iterdir()):
        text = decode_dump(seed.read_bytes())
        store.add_dump(parse_dump(text, seed.name, today=date(2026, 1, 1)), content_hash(text), BUILT_AT)
    papers = list(store.iter_papers())
    rng = random.Random(7)
    for profile in profiles(count):
        chosen = rng.sample(papers, per_profile)
        items = tuple(ScoredPaper(p, 0.9 - i * 0.03, REASONS) for i, p in enumerate(chosen))
        store.save_digest(Digest(profile, DAY, items, BUILT_AT, candidates=300), store.watermark())
    # The week: real abstracts under new titles, so they are new papers, ten a day.
    credited = [p for p in papers if p.organization or p.authors_count]
    for offset, day in enumerate(WEEK.days()):
        listed = [
            Entry(f"{p.title} (week paper {n})", p.abstract, p.authors_count, p.organization, day, p.upvotes)
            for n, p in enumerate(credited)
            if n % 7 == offset and n < week
        ]
        text = format_dump(day, listed)
        dump = parse_dump(text, f"week-{day}.txt", today=day, year=day.year)
        store.add_dump(dump, content_hash(text), datetime.combine(day, datetime.min.time(), UTC))
    store.close()
    stamp.write_text(json.dumps(shape))
    return path


def config_in(folder: Path, count: int) -> Config:
    return replace(
        load_config(None, folder), profiles=profiles(count), db=DATA / "state.db", site_url="https://example.org/pd/"
    )


def measure(mode: str, count: int, workers: int = 1, folder: Path | None = None) -> dict[str, float]:
    """One measurement in this process (called in a child process); `workers` render the
    profiles' feeds and pages and the emails (`[digest] workers`). Writes into `folder`
    (left for the caller to remove) or, without one, into a temporary folder."""
    from digest.app import App
    from digest.deliver import make_message_id
    from digest.parallel import open_runner
    from digest.publish import render_settings, site_links, write_outputs
    from digest.render import render_all_papers_feeds, render_email, render_markdown, render_profile_feeds
    from digest.render.site import render_site
    from digest.tasks import publish_shard

    timings: dict[str, float] = {}
    with _output_folder(folder) as tmp:
        config = replace(config_in(Path(tmp), count), workers=workers)
        store = open_store(DATA / "state.db")
        if mode == "write":
            # A copy of the database: the emails go through the delivery ledger, which records them.
            store.close()
            shutil.copy(DATA / "state.db", Path(tmp) / "state.db")
            store = open_store(Path(tmp) / "state.db")
            loaded = [store.load_digest(p, DAY) for p in config.profiles]
            digests = [d for d in loaded if d]
            runner = open_runner(workers)
            # In `digest build` ranking has started the workers' server before anything is
            # written: started here before the clock, and timed on its own.
            mark = time.perf_counter()
            list(runner.map(publish_shard, render_settings(config, store), [[], []]))
            timings["pool_start"] = time.perf_counter() - mark
            started = time.perf_counter()
            written = write_outputs(config, store, digests, runner=runner)
            runner.close()
            timings["files"] = len(written)
            timings["site"] = time.perf_counter() - started
            mark = time.perf_counter()
            environ = {"DIGEST_UNSUBSCRIBE_KEY": KEY.decode()}
            app = App(config, clock=lambda: BUILT_AT, environ=environ, store=store)
            emails = app.email(digests, send=False, catch_up=False)
            timings["emails"] = time.perf_counter() - mark
            timings["total"] = time.perf_counter() - started
            timings["eml"] = len(emails.sent)
            timings |= measure_rollups(App(config, clock=lambda: ROLLED_AT, environ=environ, store=store))
        else:
            links = site_links(config)
            digests = {p.id: store.load_digest(p, DAY) for p in config.profiles}
            entries = {p.id: store.digest_entries(p.id, config.feed_size) for p in config.profiles}
            papers = store.recent_papers(config.feed_size)
            started = time.perf_counter()
            for profile in config.profiles:
                d = digests[profile.id]
                assert d is not None
                render_email(
                    d,
                    subscriber=profile.subscribers[0],
                    sender=config.sender,
                    message_id=make_message_id(DeliveryKey(profile.id, DAY, profile.subscribers[0]), links.host),
                    links=links,
                    unsubscribe_key=KEY,
                )
            timings["email"] = time.perf_counter() - started
            mark = time.perf_counter()
            for profile in config.profiles:
                render_markdown(digests[profile.id])  # type: ignore[arg-type]
            timings["markdown"] = time.perf_counter() - mark
            mark = time.perf_counter()
            for profile in config.profiles:
                render_profile_feeds(profile, entries[profile.id], links=links, site_title=config.title)
            render_all_papers_feeds(papers, links=links, site_title=config.title)
            timings["feeds"] = time.perf_counter() - mark
            mark = time.perf_counter()
            history = {pid: [d] for pid, d in digests.items() if d}
            render_site(config.profiles, history, links=links, site_title=config.title, sender=config.sender)
            timings["site"] = time.perf_counter() - mark
            timings["total"] = time.perf_counter() - started
        store.close()
    timings["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return timings


def measure_rollups(app: object) -> dict[str, float]:
    """The week's roll-ups, as `digest build --period week` makes them, after the daily build."""
    from digest.app import App

    assert isinstance(app, App)
    profiles = app.config.profiles
    timings: dict[str, float] = {}
    started = time.perf_counter()
    built = app.build_rollups([(profile, WEEK) for profile in profiles])
    timings["rollups_build"] = time.perf_counter() - started
    rollups = [rollup for rollup, _ in built]
    timings["rollups_considered"] = sum(r.considered for r in rollups) / len(rollups)
    mark = time.perf_counter()
    timings["rollups_files"] = len(app.publish([], rollups))
    timings["rollups_publish"] = time.perf_counter() - mark
    mark = time.perf_counter()
    report = app.email([], send=False, catch_up=False, rollups=rollups)
    timings["rollups_emails"] = time.perf_counter() - mark
    timings["rollups_eml"] = len(report.sent)
    timings["rollups_total"] = time.perf_counter() - started
    return timings


def compare_inliners(runs: int = 200) -> None:
    """css-inline against premailer on the real email template with ten papers (the choice in pyproject)."""
    import css_inline

    from digest.render import email as email_module
    from digest.render.templates import template_environment
    from digest.render.views import paper_view

    store = open_store(DATA / "state.db")
    config = config_in(Path(tempfile.gettempdir()), 1)
    d = store.load_digest(config.profiles[0], DAY)
    assert d is not None
    # The template before inlining, through the module's own (private) context builder.
    context = email_module._context(d, "reader0@example.org", email_module.SiteLinks(config.site_url), KEY, "P")
    papers = [paper_view(i) for i in d.items]
    raw = template_environment().get_template("email.html").render(c=context, papers=papers, more=0)
    inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
    print(f"email HTML before inlining: {len(raw.encode()):,} bytes")
    started = time.perf_counter()
    for _ in range(runs):
        out = inliner.inline(raw)
    print(f"css-inline: {(time.perf_counter() - started) / runs * 1000:.2f} ms per email, {len(out.encode()):,} bytes")
    try:
        import premailer
    except ImportError:
        print("premailer: not installed (pip install premailer to compare)")
        return
    transformer = premailer.Premailer(raw, keep_style_tags=True, strip_important=False, disable_validation=True)
    started = time.perf_counter()
    for _ in range(runs // 10):
        out = premailer.Premailer(raw, keep_style_tags=True, strip_important=False, disable_validation=True).transform()
    elapsed = (time.perf_counter() - started) / (runs // 10) * 1000
    print(f"premailer: {elapsed:.2f} ms per email, {len(out.encode()):,} bytes ({transformer.__class__.__module__})")


@contextlib.contextmanager
def _output_folder(folder: Path | None) -> Iterator[str]:
    if folder is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield tmp
        return
    folder.mkdir(parents=True)
    yield str(folder)


def _child(mode: str, count: int, workers: int = 1, folder: Path | None = None) -> dict[str, float]:
    where = [str(folder)] if folder else []
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(count), str(workers), *where],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=1000)
    parser.add_argument("--papers", type=int, default=10, help="papers per digest")
    parser.add_argument("--week", type=int, default=70, help="new papers in the week rolled up")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare-inliners", action="store_true")
    parser.add_argument("--workers", default="1", help="comma-separated worker counts for the writing runs")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, count, workers, *folder = args.child
        print(json.dumps(measure(mode, int(count), int(workers), Path(folder[0]) if folder else None)))
        return
    make_database(args.profiles, args.papers, args.week)
    if args.compare_inliners:
        compare_inliners()
        return
    print(f"machine: {platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}")
    print(f"{args.profiles} profiles × {args.papers} papers, median of {args.runs} runs\n")
    runs = [_child("render", args.profiles) for _ in range(args.runs)]
    print("| render (in memory) | median s | per profile ms |")
    print("|---|---:|---:|")
    for part in ("email", "markdown", "feeds", "site", "total"):
        seconds = statistics.median(r[part] for r in runs)
        print(f"| {part} | {seconds:.2f} | {seconds / args.profiles * 1000:.2f} |")
    print(f"\npeak RSS {max(r['peak_mb'] for r in runs):.0f} MB\n")
    counts = [int(w) for w in args.workers.split(",")]
    # The settings interleaved run by run, so that a busy spell of the machine hits them alike.
    by_workers: dict[int, list[dict[str, float]]] = {w: [] for w in counts}
    # Each run's 22,000 files are removed only after the last run: on a file system without
    # a journal, ext4 skips inodes freed in the last minutes when it makes a file
    # (`recently_deleted`), and a run made just after another one's removal paid ~2 s for it
    # (bench/RESULTS.md, 2026-12-02): a cost of the benchmark's cleaning, not of a build.
    scratch = Path(tempfile.mkdtemp(prefix="render-bench-"))
    try:
        for run in range(args.runs):
            for w in counts:
                by_workers[w].append(_child("write", args.profiles, w, scratch / f"{run}-{w}"))
    finally:
        shutil.rmtree(scratch)
    for w, writes in by_workers.items():
        print(f"**{w} worker{'s' if w > 1 else ''}**\n")
        print_writes(writes, args.profiles)


def print_writes(writes: list[dict[str, float]], profiles: int) -> None:
    files, eml = int(writes[0]["files"]), int(writes[0]["eml"])
    print("| written to disk (store reads + render + atomic writes) | files | median s | peak RSS MB |")
    print("|---|---:|---:|---:|")
    for part, label, count in (
        ("site", "`write_outputs`: feeds, Markdown, site", files),
        ("emails", "`App.email` to the outbox, through the ledger", eml),
        ("total", "**the daily build, all formats**", files + eml),
    ):
        seconds = statistics.median(r[part] for r in writes)
        print(f"| {label} | {count:,} | {seconds:.2f} | {max(r['peak_mb'] for r in writes):.0f} |")
    considered = int(writes[0]["rollups_considered"])
    rolled_files, rolled_eml = int(writes[0]["rollups_files"]), int(writes[0]["rollups_eml"])
    start = statistics.median(r["pool_start"] for r in writes)
    print(f"\nstarting the worker processes' server, before the clock (ranking does it in a build): {start:.2f} s")
    print(f"\nthen, in the same runs, {profiles} weekly roll-ups of {considered} candidate papers each:\n")
    print("| weekly roll-ups | files | median s | per roll-up ms |")
    print("|---|---:|---:|---:|")
    for part, label, count in (
        ("rollups_build", "`App.build_rollups`: rank (each profile alone), pool, save", profiles),
        ("rollups_publish", "`App.publish`: roll-up feeds and Markdown, the whole site again", rolled_files),
        ("rollups_emails", "`App.email`: each weekly reader's copy made, saved, sent to the outbox", rolled_eml),
        ("rollups_total", "**the roll-ups, all formats**", rolled_files + rolled_eml),
    ):
        seconds = statistics.median(r[part] for r in writes)
        print(f"| {label} | {count:,} | {seconds:.2f} | {seconds / profiles * 1000:.1f} |")
    print()


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    main()
