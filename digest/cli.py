"""The `digest` command: parses arguments and calls the library, nothing more.

Exit codes: 0 success; 1 some input was rejected (a bad entry skipped, a file set
aside), the rest done; 2 usage or configuration error (an SMTP username without
DIGEST_SMTP_PASSWORD included), nothing done; 3 some emails were not delivered (failed
for good, or left pending for the next run, e.g. because another process was sending);
4 the inbox is stale (`digest run --stale fail`). `digest status` exits 0 when the
deployment is healthy and 1 when something needs attention.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digest import __version__
from digest.config import Config, ConfigError, find_config, load_config
from digest.deliver import (
    SEND_LOCK_TIMEOUT,
    DeliveryError,
    due_digests,
    give_up_stale_emails,
    outgoing_emails,
    plan_deliveries,
)
from digest.fetch import (
    FAILED,
    FETCHED,
    NOT_AVAILABLE,
    NOT_MODIFIED,
    DayResult,
    FetchError,
    day_range,
    fetch_days,
    fetch_recent_days,
    utc_now,
)
from digest.files import write_atomic
from digest.health import Health, assess, read_inputs
from digest.jobs import (
    RunReport,
    check_sending,
    email_digests,
    embedder_for,
    profile_day,
    rank_profile,
    run_profiles,
    serve,
    serve_once,
)
from digest.models import Paper, Profile, ScoredPaper
from digest.pipeline import IngestSummary, QuarantineError, find_dump_files, ingest_files
from digest.profiles import email_address, find_profile
from digest.publish import email_renderer
from digest.reason_records import reason_record
from digest.render.reasons import word_reason
from digest.render.templates import template_environment
from digest.retention import TooOld, check_day, cutoff, prune_old_records
from digest.semantic import SemanticUnavailable
from digest.store import Delivery, Store, StoreError, open_store, title_key
from digest.validate import Invalid

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNDELIVERED = 3
EXIT_STALE = 4

PROGRESS_MIN_FILES = 20
PROGRESS_MIN_DAYS = 7

if TYPE_CHECKING:
    import rich.progress
    from jinja2 import Environment


class UsageError(Exception):
    """A mistake in how the command was called: one line, exit 2."""


@dataclass(frozen=True, slots=True)
class Context:
    """What every command gets: the global options and a way to the config.

    `lock_timeout`: how long a command that sends waits for another process that is sending.
    """

    args: argparse.Namespace
    cwd: Path
    clock: Callable[[], datetime] = utc_now
    lock_timeout: float = SEND_LOCK_TIMEOUT

    def config(self) -> Config:
        path = find_config(self.args.config, self.cwd)
        return load_config(path, self.cwd, db=self.args.db)

    @contextmanager
    def store(self, config: Config) -> Iterator[Store]:
        store = open_store(config.db)
        try:
            yield store
        finally:
            store.close()

    def now(self) -> datetime:
        return self.clock()


Command = Callable[[Context], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digest",
        description="A personal daily digest of new machine-learning papers from Hugging Face Daily Papers.",
        epilog="Exit codes: 0 success, 1 some input rejected (the rest done), 2 usage or configuration error, "
        "3 some emails not delivered, 4 stale inbox (run --stale fail).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path, metavar="FILE", help="config file (default: ./digest.toml if present)")
    parser.add_argument("--db", type=Path, metavar="FILE", help="state database (overrides [digest] db)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_ingest(commands)
    _add_fetch(commands)
    _add_export(commands)
    _add_profiles(commands)
    _add_rank(commands)
    _add_build(commands)
    _add_send(commands)
    _add_serve(commands)
    _add_run(commands)
    _add_deliveries(commands)
    _add_unsubscribe(commands)
    _add_status(commands)
    _add_prune(commands)
    return parser


def _add_ingest(commands: Any) -> None:
    p = commands.add_parser(
        "ingest",
        help="store the papers of dump files",
        description="Parse Daily Papers dumps and store their papers. Dumps already stored (same content) are "
        "skipped; files that are not dumps are moved to the quarantine folder with a .error note.",
    )
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="dump files or folders (default: the inbox)")
    p.add_argument(
        "--year", type=_year, metavar="YYYY", help="the year of the dumps' listing dates (default: inferred)"
    )
    p.set_defaults(run=run_ingest)


def _add_fetch(commands: Any) -> None:
    p = commands.add_parser(
        "fetch",
        help="download days of the Daily Papers API into the inbox and ingest them",
        description="Fetch listing days from the Hugging Face Daily Papers API ([source] in digest.toml; "
        "HF_TOKEN from the environment if set), save each day, every page of it, in the inbox as "
        "hf-daily-YYYY-MM-DD.json and ingest it. Days already fetched and unchanged are not downloaded "
        "again. Default: today (UTC).",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="fetch this one day")
    which.add_argument(
        "--since", type=_date, metavar="YYYY-MM-DD", help="fetch every day from this one on (stops at the latest)"
    )
    p.add_argument("--until", type=_date, metavar="YYYY-MM-DD", help="with --since: the last day (default: today)")
    p.set_defaults(run=run_fetch)


def _add_export(commands: Any) -> None:
    p = commands.add_parser(
        "export",
        help="write every stored paper as JSON lines or CSV",
        description="Write every stored paper, one per line (JSON) or row (CSV), in order of first sighting.",
    )
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="output format (default: jsonl)")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="write to FILE (atomically) instead of stdout")
    p.set_defaults(run=run_export)


def _add_profiles(commands: Any) -> None:
    p = commands.add_parser("profiles", help="list or check the interest profiles", description="Interest profiles.")
    sub = p.add_subparsers(dest="profiles_command", metavar="ACTION", required=True)
    check = sub.add_parser(
        "check",
        help="validate digest.toml and report every problem",
        description="Validate the config file; print every problem as FILE:LINE: field: what is wrong.",
    )
    check.set_defaults(run=run_profiles_check)
    listing = sub.add_parser("list", help="list the profiles", description="List the configured profiles.")
    listing.set_defaults(run=run_profiles_list)


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", metavar="ID", help="only this profile (default: every profile)")
    p.add_argument(
        "--date", type=_date, metavar="YYYY-MM-DD", help="the digest day (default: today in each profile's time zone)"
    )


def _add_rank(commands: Any) -> None:
    p = commands.add_parser(
        "rank",
        help="show how a profile ranks the papers, with scores and reasons",
        description="Rank papers for one profile and show each one's score (0 to 1) and the reasons for it. "
        "By default the papers its next digest would consider (new since its previous digest); --all ranks every "
        "stored paper. Nothing is recorded.",
    )
    p.add_argument("--profile", required=True, metavar="ID", help="the profile to rank for")
    p.add_argument("--all", action="store_true", help="rank every paper in the store, not only the new ones")
    p.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="rank as of this day (default: today)")
    p.add_argument("--limit", type=_positive, default=20, metavar="N", help="show the best N (default: 20)")
    p.add_argument("--json", action="store_true", help="print a JSON array of {id, title, score, reasons, ...}")
    p.set_defaults(run=run_rank)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _add_build(commands: Any) -> None:
    p = commands.add_parser(
        "build",
        help="build, publish and email the digests",
        description="Ingest the inbox, then build each profile's digest for the day (ranking the papers new since "
        "its previous digest), write the feeds, Markdown and site, and email it: into outbox/ as .eml files, or over "
        "SMTP with --send when [smtp] is configured. A day's digest is built once; building it again publishes the "
        "stored one, unless it delivered nothing and new papers for its day came before its deadline (then it is "
        "rebuilt).",
    )
    _add_selection(p)
    p.add_argument("--send", action="store_true", help="send the emails over SMTP (needs [smtp])")
    p.set_defaults(run=run_build)


def _add_send(commands: Any) -> None:
    p = commands.add_parser(
        "send",
        help="send the emails that are due",
        description="Send every email of the built digests that the delivery ledger does not record as done "
        "(of --date, else of the last 7 days): over SMTP when [smtp] is configured, else into outbox/.",
    )
    _add_selection(p)
    p.add_argument("--dry-run", action="store_true", help="show what would be sent, send nothing")
    p.set_defaults(run=run_send)


def _add_serve(commands: Any) -> None:
    p = commands.add_parser(
        "serve",
        help="run the scheduler: ingest and digests on each profile's schedule",
        description="Run until stopped (SIGTERM, Ctrl-C): ingest the inbox every few minutes (fetching from the "
        "live source when [source] enabled = true), and build, publish and send each profile's digest on its "
        "schedule, in its time zone. Missed runs are caught up once. --once runs what is due now and exits.",
    )
    p.add_argument("--once", action="store_true", help="run everything due now, then exit (for cron and CI)")
    p.set_defaults(run=run_serve)


def _add_run(commands: Any) -> None:
    p = commands.add_parser(
        "run",
        help="the whole job: fetch, ingest, build, publish, email (what make run does)",
        description="The whole daily job at once: fetch from the live source when [source] enabled = true, ingest "
        "the inbox, then build, publish and email every profile's digest (as digest build does), and say where "
        "each output went. Warns, or fails with --stale fail, when the newest dump is older than "
        "[digest] stale_after_days.",
    )
    _add_selection(p)
    p.add_argument("--send", action="store_true", help="send the emails over SMTP (needs [smtp])")
    p.add_argument(
        "--stale",
        choices=("warn", "fail"),
        default="warn",
        help="when the newest dump is too old: warn (default) or fail with exit code 4",
    )
    p.set_defaults(run=run_run)


def _add_deliveries(commands: Any) -> None:
    p = commands.add_parser(
        "deliveries",
        help="show the delivery ledger",
        description="Show the delivery ledger: one row per profile, subscriber and digest day, with its state "
        "(pending, sending, sent, failed, skipped), attempts, last error and Message-ID.",
    )
    p.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="only this digest day")
    p.add_argument("--profile", metavar="ID", help="only this profile")
    p.add_argument("--json", action="store_true", help="print JSON (one array of objects) instead of a table")
    p.set_defaults(run=run_deliveries)


def _add_unsubscribe(commands: Any) -> None:
    p = commands.add_parser(
        "unsubscribe",
        help="stop sending digests to an address",
        description="Stop sending digests to ADDRESS: for one profile with --profile, else for all. Takes effect "
        "at once, even for a batch being sent. --undo sends to it again.",
    )
    p.add_argument("address", metavar="ADDRESS", help="the subscriber's email address")
    p.add_argument("--profile", metavar="ID", help="only this profile (default: all profiles)")
    p.add_argument("--undo", action="store_true", help="subscribe the address again (same scope)")
    p.set_defaults(run=run_unsubscribe)


def _add_status(commands: Any) -> None:
    p = commands.add_parser(
        "status",
        help="is the deployment healthy? (exit 0 yes, 1 something needs attention)",
        description="Per profile: the last digest built, published and mailed, the emails pending or failed, and "
        "the next scheduled tick; then the newest dump and its age, and the state database's size. Exit code 0 "
        "when healthy, 1 when something needs attention (a stale inbox, a profile never built or behind its "
        "schedule, emails pending or refused): a health check for cron, systemd or a workflow.",
    )
    p.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    p.set_defaults(run=run_status)


def _add_prune(commands: Any) -> None:
    p = commands.add_parser(
        "prune",
        help="forget old ledger rows and fetch records (past [digest] retention_days)",
        description="Delete the delivery ledger rows and the fetch records of days more than [digest] "
        "retention_days ago (default 400). Papers, digests and unsubscribes are kept, and so are ledger rows of "
        "emails still to go and of digests a feed still shows.",
    )
    p.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    p.set_defaults(run=run_prune)


def _date(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-12-31") from None


def _year(text: str) -> int:
    if not text.isdigit() or not 1990 <= int(text) <= 2999:
        raise argparse.ArgumentTypeError(f"{text!r} is not a year like 2025")
    return int(text)


# -- commands ----------------------------------------------------------------------


def run_ingest(ctx: Context) -> int:
    config = ctx.config()
    paths = ctx.args.paths or [config.inbox]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise UsageError(f"no such file or folder: {missing[0]}")
    files = find_dump_files(paths, skip=[config.quarantine])
    now = ctx.now()
    with ctx.store(config) as store, _progress(len(files)) as advance:
        summary = ingest_files(
            store,
            files,
            quarantine=config.quarantine,
            today=now.date(),
            now=now,
            year=ctx.args.year,
            label=lambda path: _display(path, ctx.cwd),
            on_file=advance,
        )
        totals = (store.paper_count(), store.dump_count())
    _report_ingest(summary, totals, _display(config.db, ctx.cwd))
    return EXIT_REJECTED if summary.rejected else EXIT_OK


def _report_ingest(summary: IngestSummary, totals: tuple[int, int], db: str) -> None:
    for line in summary.lines():
        print(line, file=sys.stderr)
    s = summary
    print(
        f"{s.files} file{_s(s.files)}: {s.dumps_new} dump{_s(s.dumps_new)} new, {s.dumps_seen} already seen, "
        f"{len(s.quarantined)} quarantined"
    )
    print(
        f"{s.entries} entr{'y' if s.entries == 1 else 'ies'}: {s.papers_new} new paper{_s(s.papers_new)}, "
        f"{s.papers_updated} updated, {len(s.problems)} problem{_s(len(s.problems))}"
    )
    print(f"store: {totals[0]} papers from {totals[1]} dumps in {db}")


def run_fetch(ctx: Context) -> int:
    args = ctx.args
    if args.until and not args.since:
        raise UsageError("--until needs --since")
    config = ctx.config()
    today = ctx.now().date()
    if args.date:
        days = [args.date]
    elif args.since:
        until = args.until or today
        if args.since > until:
            raise UsageError(f"--since {args.since} is after --until {until}")
        days = day_range(args.since, until)
    else:
        days = [today]

    def label(path: Path) -> str:
        return _display(path, ctx.cwd)

    with ctx.store(config) as store, _day_progress(len(days)) as advance:

        def show(result: DayResult) -> None:
            _report_day(result, label)
            if advance:
                advance()

        report = fetch_days(config, store, days, label=label, on_day=show)
        totals = (store.paper_count(), store.dump_count())
    for problem in report.problems:
        print(problem, file=sys.stderr)
    n = len(report.days)
    print(
        f"{n} day{_s(n)}: {report.count(FETCHED)} fetched, {report.count(NOT_MODIFIED)} not modified, "
        f"{report.count(NOT_AVAILABLE)} not available yet, {report.count(FAILED)} failed"
    )
    if report.stopped_at and report.stopped_at != days[-1]:
        print(f"stopped at {report.stopped_at}: the API has no later days yet")
    print(f"store: {totals[0]} papers from {totals[1]} dumps in {_display(config.db, ctx.cwd)}")
    return EXIT_REJECTED if report.rejected else EXIT_OK


def _report_day(result: DayResult, label: Callable[[Path], str]) -> None:
    line = f"{result.day}: {result.message}"
    if result.outcome == FETCHED and result.path:
        line += f" -> {label(result.path)}"
    if result.attempts > 1 and result.outcome != FAILED:
        line += f" (after {result.attempts} attempts)"
    print(line, file=sys.stderr if result.outcome == FAILED else sys.stdout, flush=True)


EXPORT_FIELDS = (
    "id",
    "title",
    "abstract",
    "authors_count",
    "organization",
    "published",
    "upvotes",
    "first_seen",
    "sightings",
    "arxiv_id",
    "authors",
    "url",
    "comments",
)
CSV_AUTHOR_SEPARATOR = "; "


def paper_record(paper: Paper) -> dict[str, Any]:
    """A paper as `digest export` writes it (JSON types; dates as ISO strings)."""
    org = paper.organization
    return {
        "id": paper.id,
        "title": paper.title,
        "abstract": paper.abstract,
        "authors_count": paper.authors_count,
        "organization": {"id": org.id, "name": org.name} if org else None,
        "published": paper.published.isoformat() if paper.published else None,
        "upvotes": paper.upvotes,
        "first_seen": paper.first_seen.isoformat(),
        "sightings": paper.sightings,
        "arxiv_id": paper.arxiv_id,
        "authors": list(paper.authors),
        "url": paper.url,
        "comments": paper.comments,
    }


def run_export(ctx: Context) -> int:
    config = ctx.config()
    buffer = io.StringIO() if ctx.args.output else sys.stdout
    with ctx.store(config) as store:
        records = (paper_record(p) for p in store.iter_papers())
        if ctx.args.format == "jsonl":
            for record in records:
                buffer.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            _write_csv(buffer, records)
    if ctx.args.output:
        try:
            write_atomic(ctx.args.output, buffer.getvalue())  # type: ignore[union-attr]
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if isinstance(exc, FileExistsError) and exc.filename:  # a file where a folder of the path must be
                reason = f"{exc.filename} is a file, not a folder"
            raise UsageError(f"cannot write {ctx.args.output}: {reason}") from None
    return EXIT_OK


def _write_csv(out: Any, records: Iterator[dict[str, Any]]) -> None:
    columns = [c for c in EXPORT_FIELDS if c != "organization"]
    columns[columns.index("authors_count") + 1 : columns.index("authors_count") + 1] = [
        "organization_id",
        "organization_name",
    ]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        org = record.pop("organization")
        record["organization_id"] = org["id"] if org else None
        record["organization_name"] = org["name"] if org else None
        record["authors"] = CSV_AUTHOR_SEPARATOR.join(record["authors"])
        writer.writerow(record)


def run_profiles_check(ctx: Context) -> int:
    config = ctx.config()
    where = _display(config.path, ctx.cwd) if config.path else "defaults (no digest.toml)"
    if config.db.exists():
        # Not an error: a liked paper may be ingested later; until then it cannot count.
        with ctx.store(config) as store:
            for index, profile in enumerate(config.profiles):
                found = store.find_papers(profile.liked)
                for reference in profile.liked:
                    if not any(
                        reference in (p.id, p.arxiv_id) or title_key(reference) == title_key(p.title) for p in found
                    ):
                        print(
                            f"{where}:{profile.line}: profiles[{index}].liked: warning: {reference!r} is not a stored "
                            "paper (yet); it counts once ingested",
                            file=sys.stderr,
                        )
    print(f"{where}: {len(config.profiles)} profile{_s(len(config.profiles))} OK")
    return EXIT_OK


def run_profiles_list(ctx: Context) -> int:
    config = ctx.config()
    for profile in config.profiles:
        print(f"{profile.id}\t{profile.title}")
    return EXIT_OK


def _selected(config: Config, profile_id: str | None) -> list[Profile]:
    if profile_id is None:
        return list(config.profiles)
    try:
        return [find_profile(config.profiles, profile_id)]
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def run_rank(ctx: Context) -> int:
    config = ctx.config()
    (profile,) = _selected(config, ctx.args.profile)
    embed = embedder_for(config)
    with ctx.store(config) as store:
        day = ctx.args.date or profile_day(profile, ctx.now())
        papers = list(store.iter_papers()) if ctx.args.all else store.candidate_papers(profile.id, day)
        ranked = rank_profile(
            store, profile, papers, embed=embed, limit=ctx.args.limit, day=None if ctx.args.all else day
        )
    env = template_environment(config.templates)
    if ctx.args.json:
        print(json.dumps([scored_record(s, env) for s in ranked], ensure_ascii=False, indent=1))
        return EXIT_OK
    for position, scored in enumerate(ranked, start=1):
        mark = " " if scored.score >= profile.min_score else "-"
        print(f"{position:3}. {scored.score:.3f}{mark} {scored.paper.title}")
        for reason in scored.reasons:
            print(f"            {word_reason(reason, env)}")
    shown = "every stored paper" if ctx.args.all else f"the papers new for {profile.id} on {day}"
    print(f"{len(ranked)} of {len(papers)} papers ({shown}); '-' marks a score below min_score {profile.min_score}")
    return EXIT_OK


def scored_record(scored: ScoredPaper, env: Environment) -> dict[str, Any]:
    """A ranked paper as `digest rank --json` prints it: `reasons` in words, `why` as data."""
    return {
        **paper_record(scored.paper),
        "score": scored.score,
        "reasons": [word_reason(r, env) for r in scored.reasons],
        "why": [reason_record(r) for r in scored.reasons],
    }


def run_build(ctx: Context) -> int:
    config = ctx.config()
    profiles = _selected(config, ctx.args.profile)
    check_sending(config, smtp=ctx.args.send)
    _check_date(ctx, config)
    with ctx.store(config) as store:
        summary = _read_inbox(ctx, config, store)
        report = run_profiles(
            config,
            store,
            profiles,
            clock=ctx.now,
            day=ctx.args.date,
            smtp=ctx.args.send,
            lock_timeout=ctx.lock_timeout,
        )
    code = EXIT_REJECTED if summary.rejected else EXIT_OK
    return max(code, _report_run(report, config, ctx, smtp_asked=ctx.args.send))


def _read_inbox(ctx: Context, config: Config, store: Store) -> IngestSummary:
    """Ingest every new dump in the inbox (`digest build` and `digest run` start with it) and say what came."""
    now = ctx.now()
    files = find_dump_files([config.inbox], skip=[config.quarantine]) if config.inbox.exists() else []
    with _progress(len(files)) as advance:
        summary = ingest_files(
            store,
            files,
            quarantine=config.quarantine,
            today=now.date(),
            now=now,
            label=lambda path: _display(path, ctx.cwd),
            on_file=advance,
        )
    _report_ingest(summary, (store.paper_count(), store.dump_count()), _display(config.db, ctx.cwd))
    return summary


def run_send(ctx: Context) -> int:
    config = ctx.config()
    profiles = _selected(config, ctx.args.profile)
    _check_date(ctx, config)
    transport = "smtp" if config.smtp else "outbox"
    if not ctx.args.dry_run:
        check_sending(config)
    with ctx.store(config) as store:
        today = ctx.now().date()
        if not ctx.args.dry_run:
            give_up_stale_emails(store, profiles, today=today, at=ctx.now(), transport=transport)
        digests = due_digests(store, profiles, today=today, day=ctx.args.date, transport=transport)
        if ctx.args.dry_run:
            render = email_renderer(config, sender=config.sender, unsubscribe_key=None)
            plans = plan_deliveries(store, outgoing_emails(digests, render), transport)
            for plan in plans:
                item = plan.outgoing
                print(f"{item.day}  {item.profile_id}  {item.subscriber}  {plan.state}")
            to_send = sum(plan.state in ("new", "pending", "sending") for plan in plans)
            print(f"{to_send} of {len(plans)} email{_s(len(plans))} would be sent ({transport})")
            return EXIT_OK
        report = email_digests(
            config, store, digests, smtp=True, clock=ctx.now, catch_up=False, lock_timeout=ctx.lock_timeout
        )
    print(f"{len(digests)} digest{_s(len(digests))} with emails due; {report.summary()}")
    return EXIT_OK if report.complete and not report.failed else EXIT_UNDELIVERED


def run_serve(ctx: Context) -> int:
    config = ctx.config()
    check_sending(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    with ctx.store(config) as store:
        if ctx.args.once:
            runs = serve_once(config, store, clock=ctx.now)
            if any(run.status == "failed" for run in runs):
                return EXIT_UNDELIVERED
            return EXIT_REJECTED if any(run.report and run.report.rejected for run in runs) else EXIT_OK
        serve(config, store, clock=ctx.now)
    return EXIT_OK


def run_run(ctx: Context) -> int:
    config = ctx.config()
    profiles = _selected(config, ctx.args.profile)
    check_sending(config, smtp=ctx.args.send)
    _check_date(ctx, config)
    code = EXIT_OK
    with ctx.store(config) as store:
        if config.source.enabled:
            fetched = fetch_recent_days(config, store, clock=ctx.now, label=lambda path: _display(path, ctx.cwd))
            if fetched is not None:
                for result in fetched.days:
                    _report_day(result, lambda path: _display(path, ctx.cwd))
                for problem in fetched.problems:
                    print(problem, file=sys.stderr)
                code = EXIT_REJECTED if fetched.rejected else code
        summary = _read_inbox(ctx, config, store)
        code = EXIT_REJECTED if summary.rejected else code
        stale = stale_warning(store.latest_listing_date(), ctx.now().date(), config.stale_after_days)
        if stale:
            print(_annotate("error" if ctx.args.stale == "fail" else "warning", stale), file=sys.stderr)
            if ctx.args.stale == "fail":
                return EXIT_STALE
        report = run_profiles(
            config,
            store,
            profiles,
            clock=ctx.now,
            day=ctx.args.date,
            smtp=ctx.args.send,
            lock_timeout=ctx.lock_timeout,
        )
    return max(code, _report_run(report, config, ctx, smtp_asked=ctx.args.send))


def stale_warning(newest: date | None, today: date, limit: int) -> str | None:
    """Why the inbox looks stale (its newest listing is over `limit` days old), or None."""
    if newest is None:
        return "no dumps stored yet: nothing to digest (put dumps in the inbox, or enable [source])"
    age = (today - newest).days
    if age <= limit:
        return None
    return (
        f"the newest dump is from {newest.isoformat()}, {age} days ago (more than stale_after_days = {limit}): "
        "feeds will not change until new dumps arrive (digest fetch, or [source] enabled = true)"
    )


def _annotate(level: str, message: str) -> str:
    # In GitHub Actions, a workflow command makes the message an annotation on the run's page.
    return f"::{level}::{message}" if os.environ.get("GITHUB_ACTIONS") == "true" else f"digest: {level}: {message}"


def _report_run(report: RunReport, config: Config, ctx: Context, *, smtp_asked: bool) -> int:
    for digest in report.digests:
        state = "rebuilt" if digest in report.rebuilt else "built" if digest in report.built else "built before"
        what = f"{len(digest.items)} paper{_s(len(digest.items))}"
        if not digest.items:
            why = "no new papers" if digest.empty_reason == "no-new-papers" else "none above min_score"
            what = f"empty ({why})"
        print(f"digest {digest.profile.id} {digest.date}: {what} [{state}]")
    folders = {
        "feeds": config.feeds,
        "site": config.site,
        "markdown": config.digests,
    }
    for name, folder in folders.items():
        changed = sum(1 for path in report.written if path.is_relative_to(folder))
        print(f"{name}: {_display(folder, ctx.cwd)}/ ({changed} file{_s(changed)} changed)")
    delivery = report.delivery
    if delivery is not None:
        where = _display(config.outbox, ctx.cwd) + "/" if delivery.transport == "outbox" else "SMTP"
        print(f"emails: {delivery.summary()} -> {where}")
        if smtp_asked and config.smtp is None:
            print("note: --send needs an [smtp] table; the emails went to the outbox", file=sys.stderr)
        if not delivery.complete or delivery.failed:
            return EXIT_UNDELIVERED
    return EXIT_OK


def delivery_record(row: Delivery) -> dict[str, Any]:
    """A ledger row as `digest deliveries --json` prints it."""
    return {
        "day": row.day.isoformat(),
        "profile": row.profile_id,
        "subscriber": row.subscriber,
        "transport": row.transport,
        "state": row.state,
        "attempts": row.attempts,
        "message_id": row.message_id,
        "last_error": row.last_error,
        "possible_duplicate": row.possible_duplicate,
        "note": row.note,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
    }


def run_deliveries(ctx: Context) -> int:
    config = ctx.config()
    with ctx.store(config) as store:
        rows = store.deliveries(day=ctx.args.date, profile_id=ctx.args.profile)
    if ctx.args.json:
        print(json.dumps([delivery_record(row) for row in rows], ensure_ascii=False, indent=1))
        return EXIT_OK
    table = [("day", "profile", "subscriber", "state", "tries", "when", "details")]
    for row in rows:
        details = row.last_error or ""
        if row.possible_duplicate:
            details = f"possible duplicate: {row.note}" + (f"; {details}" if details else "")
        when = (row.sent_at or row.updated_at).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.append((row.day.isoformat(), row.profile_id, row.subscriber, row.state, str(row.attempts), when, details))
    widths = [max(len(line[i]) for line in table) for i in range(6)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[6])
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    print(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}" + (f": {states}" if states else ""))
    return EXIT_OK


def run_unsubscribe(ctx: Context) -> int:
    config = ctx.config()
    try:
        address = email_address(ctx.args.address)
    except Invalid as exc:
        raise UsageError(str(exc)) from None
    scope = ctx.args.profile
    if scope is not None:
        try:
            find_profile(config.profiles, scope)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
    where = f"profile {scope}" if scope else "all profiles"
    with ctx.store(config) as store:
        if ctx.args.undo:
            changed = store.resubscribe(address, scope)
            print(f"{address}: {'subscribed again to' if changed else 'was not unsubscribed from'} {where}")
        else:
            changed = store.unsubscribe(address, scope, ctx.now())
            print(f"{address}: {'unsubscribed from' if changed else 'already unsubscribed from'} {where}")
    known = {s.lower() for p in config.profiles for s in p.subscribers}
    if address.lower() not in known:
        print(f"note: {address} is not a subscriber of any configured profile", file=sys.stderr)
    return EXIT_OK


def _check_date(ctx: Context, config: Config) -> None:
    if ctx.args.date is None:
        return
    try:
        check_day(config, ctx.args.date, ctx.now().date())
    except TooOld as exc:
        raise UsageError(f"--date {exc}") from None


def run_status(ctx: Context) -> int:
    config = ctx.config()
    now = ctx.now()
    if config.db.exists():
        with ctx.store(config) as store:
            health = assess(read_inputs(config, store, now))
    else:
        # A health check never creates a database.
        health = assess(read_inputs(config, None, now))
    if ctx.args.json:
        print(json.dumps(health.to_json(), ensure_ascii=False, indent=1))
    else:
        _print_status(health, ctx)
    return EXIT_OK if health.healthy else EXIT_REJECTED


def _print_status(health: Health, ctx: Context) -> None:
    inputs = health.inputs
    size = inputs.database_bytes
    print(f"database: {_display(inputs.database, ctx.cwd)}" + (f" ({_megabytes(size)})" if size is not None else ""))
    if inputs.newest_dump is not None:
        print(
            f"newest dump: {inputs.newest_dump.isoformat()}, {health.dump_age_days} day{_s(health.dump_age_days or 0)} "
            f"old (stale after {inputs.stale_after_days})"
        )
    if inputs.profiles:
        table = [("profile", "built", "published", "mailed", "pending", "failed", "next tick")]
        for profile in inputs.profiles:
            a = profile.activity
            table.append(
                (
                    a.profile_id,
                    f"{a.built.day} ({a.built.papers} paper{_s(a.built.papers)})" if a.built else "never",
                    str(a.published.day) if a.published else "never",
                    f"{a.mailed.day} ({a.mailed.transport})" if a.mailed else "never",
                    str(a.emails_pending),
                    str(a.emails_failed),
                    profile.next_tick.strftime("%Y-%m-%d %H:%M %Z") if profile.next_tick else "none",
                )
            )
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
        for line in table:
            print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[-1])
    for finding in health.findings:
        print(f"attention: {finding.message}")
    n = len(health.findings)
    print("healthy" if health.healthy else f"{n} thing{_s(n)} need{'s' if n == 1 else ''} attention")


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def run_prune(ctx: Context) -> int:
    config = ctx.config()
    today = ctx.now().date()
    with ctx.store(config) as store:
        counts = prune_old_records(config, store, today, dry_run=ctx.args.dry_run)
    verb = "would prune" if ctx.args.dry_run else "pruned"
    print(
        f"{verb} {counts.deliveries} ledger row{_s(counts.deliveries)} and {counts.fetches} fetch "
        f"record{_s(counts.fetches)} from before {cutoff(config, today)} (retention_days = {config.retention_days})"
    )
    return EXIT_OK


# -- plumbing ------------------------------------------------------------------------


@contextmanager
def _progress(total: int) -> Iterator[Callable[[Path], None] | None]:
    if total < PROGRESS_MIN_FILES or not sys.stderr.isatty():
        yield None
        return
    with _progress_bar() as progress:
        task = progress.add_task("ingesting", total=total)
        yield lambda _path: progress.advance(task)


@contextmanager
def _day_progress(total: int) -> Iterator[Callable[[], None] | None]:
    if total < PROGRESS_MIN_DAYS or not sys.stderr.isatty():
        yield None
        return
    with _progress_bar() as progress:
        task = progress.add_task("fetching", total=total)
        yield lambda: progress.advance(task)


def _progress_bar() -> rich.progress.Progress:
    import rich.progress
    from rich.console import Console

    # On stderr, like every message: stdout carries only results, for pipes.
    return rich.progress.Progress(console=Console(stderr=True), transient=True)


def _display(path: Path, cwd: Path) -> str:
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def main(
    argv: list[str] | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    lock_timeout: float = SEND_LOCK_TIMEOUT,
) -> int:
    """Run the command in `argv`. `clock` (aware datetimes) replaces the system clock, e.g. in
    tests; `lock_timeout` as in `Context`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context(args=args, cwd=Path.cwd(), clock=clock or utc_now, lock_timeout=lock_timeout)
    try:
        return args.run(ctx)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, StoreError, FetchError, SemanticUnavailable, QuarantineError, DeliveryError) as exc:
        print(f"digest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("digest: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error. Silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def entry_point() -> None:
    """The console script."""
    raise SystemExit(main())
