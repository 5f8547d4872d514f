"""Simulation: what a day costs for 10^4, 10^5 and 10^6 subscribers, stage by stage, and what finishes in an hour.

    .venv/bin/python bench/scale.py [--sample 40] [--workers 1,2] [--cluster] [--send]

A day of 100 synthetic papers (bench/rank.py's Zipf words) and 5,000 background papers,
and synthetic profiles with one subscriber each. Each stage is timed on a sample of
profiles, with the task functions the build runs (`digest.tasks`), for each number of
local worker processes in `--workers` (and, with `--cluster`, on a `distributed.LocalCluster`
of two worker processes):

- rank: `tasks.rank_shard` (each profile ranked against the day, with the background);
- render: feeds and site pages (`tasks.publish_shard`, as the build's workers render them) with
  the Markdown digest (`render_shard` here), and `tasks.email_shard` (one email per subscriber);
- ledger: the two commits a sent message costs (`sending`, `sent`) with
  `synchronous = FULL`, on one connection and on four at once;
- send (with `--send`): messages a second over 1, 4 and 16 SMTP connections to aiosmtpd
  (bench/send.py, 20 ms a message at the server).

The cost per profile is the sample's time over its size (the sample is run at two sizes
to check it is linear; `--no-half` skips the half); the capacity table multiplies it out:
how many workers and SMTP connections finish each audience within an hour, and where the
ledger's commits alone pass the hour. A fifth of the profiles are also emailed to five
subscribers each (the cost of a subscriber beyond a profile's first), and each stage
reports the peak RSS of the processes that ran its shards (a worker's must stay flat in
the number of profiles). `--sample 10000` and `--sample 100000 --workers 2 --no-half` run
10^4 and 10^5 whole (17 and 21 minutes on two cores, bench/RESULTS.md); 10^6 is multiplied out.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rank import make_papers, make_profiles  # noqa: E402

from digest.lifecycle import ROLLUP_KINDS  # noqa: E402
from digest.models import Digest, DigestEntry, ScoredPaper  # noqa: E402
from digest.parallel import InlineRunner, ProcessRunner, Runner, shards  # noqa: E402
from digest.periods import PeriodKind  # noqa: E402
from digest.render.feeds import plan_profile_feeds  # noqa: E402
from digest.render.links import SiteLinks  # noqa: E402
from digest.render.markdown import render_markdown  # noqa: E402
from digest.render.site import full_history, plan_profile_pages  # noqa: E402
from digest.render.stamps import fingerprint  # noqa: E402
from digest.rows import DeliveryKey, RollupRecord  # noqa: E402
from digest.store import open_store  # noqa: E402
from digest.tasks import (  # noqa: E402
    EmailJob,
    Letter,
    PublishJob,
    RankCommon,
    RankJob,
    RenderSettings,
    email_shard,
    environment,
    publish_shard,
    rank_shard,
)


def render_shard(settings: RenderSettings, digests: list[Digest]) -> int:
    """Each profile's feeds and site pages as the build's workers render them
    (`tasks.publish_shard`, every page and feed planned: a new site), and its Markdown
    digest. The plans (which the coordinator makes in a build) are counted here too."""
    env, made = environment(settings), 0
    links, title = SiteLinks(settings.site_url), settings.site_title
    jobs = []
    for d in digests:
        entries = tuple(DigestEntry(d.profile.id, DAY, NOW, item) for item in d.items)
        history = full_history([d])
        pages = plan_profile_pages(d.profile, history, links=links, site_title=title, env=env, web_url=settings.web_url)
        no_rollups: dict[PeriodKind, tuple[RollupRecord, ...]] = {kind: () for kind in ROLLUP_KINDS}
        version = fingerprint(entries)  # (a build asks the store: `Store.feed_version`)
        feeds = plan_profile_feeds(
            d.profile, version, no_rollups, links=links, site_title=title, env=env, empty_updated=settings.empty_updated
        )
        jobs.append(
            PublishJob(
                d.profile,
                entries=entries,
                feed_rollups=((), ()),
                feed_plan=tuple(feeds.items()),
                history=history,
                pages=tuple(pages.items()),
            )
        )
    for done in publish_shard(settings, jobs):
        made += len(done.feeds) + (len(done.pages.pages) if done.pages else 0)
    for d in digests:
        made += len(render_markdown(d, env=env)) > 0
    return made


DAY = date(2026, 1, 5)
NOW = datetime(2026, 1, 5, 7, tzinfo=UTC)
AUDIENCES = (10_000, 100_000, 1_000_000)
HOUR = 3600.0


def day_data(sample: int) -> tuple[RankCommon, list[RankJob], list[Digest], list[EmailJob]]:
    papers = make_papers(5100)
    background, today = tuple(papers[:5000]), tuple(papers[5000:])
    profiles, liked = make_profiles(sample, papers)
    profiles = [
        p.__class__(**{**{f: getattr(p, f) for f in p.__dataclass_fields__}, "subscribers": (f"r{n}@example.org",)})
        for n, p in enumerate(profiles)
    ]
    ranks = [RankJob(p, today, tuple(liked.get(p.id, ()))) for p in profiles]
    digests = [
        Digest(p, DAY, tuple(ScoredPaper(x, 0.9 - i / 100, ()) for i, x in enumerate(today[:10])), NOW, 100)
        for p in profiles
    ]
    outputs = digests
    emails = [
        EmailJob(d, (Letter(d.profile.subscribers[0], f"<{n}.x@example.org>", "token"),)) for n, d in enumerate(digests)
    ]
    return RankCommon(background), ranks, outputs, emails


def shared_emails(digests: list[Digest], readers: int) -> list[EmailJob]:
    """`readers` subscribers for each digest: the cost of a subscriber beyond a profile's first."""
    return [
        EmailJob(d, tuple(Letter(f"r{n}.{k}@example.org", f"<{n}.{k}.x@example.org>", "token") for k in range(readers)))
        for n, d in enumerate(digests)
    ]


def cpu_timed(common: tuple, shard: list) -> tuple[float, float]:
    """Runs in a worker: the real task on its shard; the CPU seconds it took there, and the
    process's peak RSS so far (MB)."""
    task, data = common
    started = time.process_time()
    task(data, shard)
    return time.process_time() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(runner: Runner, task, common, jobs, shard: int) -> tuple[float, float, float]:
    """Wall seconds of the whole map, CPU seconds the workers spent on the shards, and the
    highest peak RSS of a process that ran a shard (MB)."""
    started = time.perf_counter()
    cpu, peak = 0.0, 0.0
    for seconds, rss in runner.map(cpu_timed, (task, common), shards(jobs, shard)):
        cpu, peak = cpu + seconds, max(peak, rss)
    return time.perf_counter() - started, cpu, peak


def ledger_commits(count: int, threads: int) -> float:
    """Commits a second (synchronous = FULL) for `count` messages marked sending then sent."""
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(Path(folder) / "state.db")
        keys = [DeliveryKey(f"p{n % 97}", DAY, f"r{n}@example.org") for n in range(count)]
        store.add_deliveries(keys, lambda k: f"<{k.subscriber}>", "smtp", NOW)
        parts = [keys[i::threads] for i in range(threads)]

        def mark(part: list[DeliveryKey]) -> None:
            own = open_store(store.path)
            for key in part:
                own.mark_delivery_sending(key, NOW)
                own.mark_delivery_sent(key, NOW)
            own.close()

        started = time.perf_counter()
        workers = [threading.Thread(target=mark, args=(part,)) for part in parts]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - started
        store.close()
    return 2 * count / seconds


def one_of(costs: dict[str, dict[str, float]]) -> dict[str, float]:
    return next(iter(costs.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=40, help="profiles timed per stage")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--shard", type=int, default=10)
    parser.add_argument("--cluster", action="store_true", help="also on a distributed.LocalCluster")
    parser.add_argument("--send", action="store_true", help="also SMTP messages a second (bench/send.py)")
    parser.add_argument("--no-half", action="store_true", help="skip ranking half the sample (the linearity check)")
    args = parser.parse_args()
    common, ranks, outputs, emails = day_data(args.sample)
    # A fifth of the profiles, five subscribers each: the email's cost per subscriber.
    shared = shared_emails(outputs[: max(1, args.sample // 5)], 5)
    settings = RenderSettings("https://example.org/pd/", "Paper Digest", "Paper Digest <d@example.org>")
    runners: list[tuple[str, Runner]] = []
    for n in (int(w) for w in args.workers.split(",")):
        runners.append((f"{n} local", InlineRunner() if n == 1 else ProcessRunner(n)))
    cluster = None
    if args.cluster:
        from distributed import LocalCluster

        from digest.parallel import DaskRunner

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None)
        runners.append(("LocalCluster, 2", DaskRunner(cluster.scheduler_address)))
    costs: dict[str, dict[str, float]] = {}
    half = [] if args.no_half else ranks[: args.sample // 2]
    for name, runner in runners:
        costs[name] = {}
        for stage, task, data, jobs, count in (
            ("rank (half sample)", rank_shard, common, half, len(half)),
            ("rank", rank_shard, common, ranks, len(ranks)),
            ("render", render_shard, settings, outputs, len(outputs)),
            ("email", email_shard, settings, emails, len(emails)),
            ("email, per subscriber of 5", email_shard, settings, shared, 5 * len(shared)),
        ):
            if not jobs:
                continue
            wall, cpu, peak = timed(runner, task, data, jobs, args.shard)
            costs[name][stage] = wall / count
            costs[name][stage + " cpu"] = cpu / count
            costs[name][stage + " peak"] = peak
    if cluster is not None:
        runners[-1][1].close()
        cluster.close()
    commits_1 = ledger_commits(300, 1)
    commits_4 = ledger_commits(300, 4)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"Machine: {machine}; load average {os.getloadavg()[0]:.1f}; sample {args.sample} profiles\n")
    stages = [
        s for s in ("rank (half sample)", "rank", "render", "email", "email, per subscriber of 5") if s in one_of(costs)
    ]
    print("| runner | " + " | ".join(f"{stage} ms each, wall (CPU)" for stage in stages) + " |")
    print("|---|" + "---:|" * len(stages))
    for name, c in costs.items():
        cells = " | ".join(f"{c[stage] * 1000:.1f} ({c[stage + ' cpu'] * 1000:.1f})" for stage in stages)
        print(f"| {name} | {cells} |")
    # The process that ran the shards: the coordinator itself for "1 local" (all the data
    # in it); a worker otherwise, which must stay flat in the number of profiles.
    print("\n| runner | " + " | ".join(f"{stage}: peak RSS MB" for stage in stages) + " |")
    print("|---|" + "---:|" * len(stages))
    for name, c in costs.items():
        print(f"| {name} | " + " | ".join(f"{c[stage + ' peak']:.0f}" for stage in stages) + " |")
    print(f"\nledger commits/s (synchronous = FULL): 1 connection {commits_1:.0f}, 4 connections {commits_4:.0f}")
    send_rate = None
    if args.send:
        import send as send_bench

        port = send_bench.free_port()
        server = send_bench.start_server(port, 20)
        try:
            rates = {}
            for connections in (1, 4, 16):
                seconds, sent = send_bench.run_once(port, 200, 10, 40, connections)
                rates[connections] = sent / seconds
        finally:
            server.terminate()
        print(
            "messages/s over SMTP (20 ms a message at the server): "
            + ", ".join(f"{c}: {r:.0f}" for c, r in rates.items())
        )
        send_rate = rates
    one = costs[runners[0][0]]
    # CPU seconds a profile with one subscriber costs (a worker is one core busy for that long)
    per_profile = one["rank cpu"] + one["render cpu"] + one["email cpu"]
    per_subscriber = one["email, per subscriber of 5 cpu"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nCPU seconds per profile (one subscriber): {per_profile:.4f}; per further subscriber: "
        f"{per_subscriber:.4f}; peak RSS of the coordinator {peak:.0f} MB"
    )
    print(
        "\n| subscribers | CPU hours (rank + render) | workers for 1 hour | ledger commits | "
        "ledger hours at 1 connection | SMTP connections for 1 hour |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for audience in AUDIENCES:
        cpu = audience * per_profile
        commits = 2 * audience
        ledger_hours = commits / commits_1 / HOUR
        if send_rate:
            # Connections do not add up (bench/RESULTS.md, "Send"): the fewest measured
            # connections of one sending process that are enough, not a multiple of one's rate.
            needed = audience / HOUR
            enough = [c for c in sorted(send_rate) if send_rate[c] >= needed]
            smtp = f"{enough[0]} ({needed:.0f}/s needed)" if enough else f"more than one process ({needed:.0f}/s)"
        else:
            smtp = "-"
        print(
            f"| {audience:,} | {cpu / HOUR:.1f} | {math.ceil(cpu / HOUR)} | {commits:,} | {ledger_hours:.2f} | {smtp} |"
        )


if __name__ == "__main__":
    main()
