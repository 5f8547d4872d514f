"""The `digest` command: parses arguments, calls the application (`digest.app.App`), prints.

Every command builds one `App` from the config and calls its verbs; nothing here reads
the store, ranks, renders or sends, and nothing below the facade is called.

Exit codes: 0 success; 1 some input was rejected (a bad entry skipped, a file set
aside), the rest done; 2 usage or configuration error (an SMTP username without
DIGEST_SMTP_PASSWORD included), nothing done; 3 some emails were not delivered (failed
for good, or left pending for the next run, e.g. because another process was sending);
4 the inbox is stale (`digest run --stale fail`). `digest status` exits 0 when the
deployment is healthy and 1 when something needs attention. `digest serve` that cannot
start its web side (the extra missing, an address in use) exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digest import __version__
from digest.chars import printable
from digest.clock import Clock, utc_now
from digest.models import EmptyReason, Profile, TransportKind
from digest.periods import Period, PeriodKind, parse_period
from digest.records import delivery_record, scored_record, vote_record
from digest.validate import Invalid

# The rest loads when a command runs (`digest --help` and a usage error load none of it):
# the store, the ranker, the renderers, HTTP and the scheduler take a second to import.
if TYPE_CHECKING:
    import rich.progress

    from digest.app import App, BuildReport, Refresh
    from digest.deliver import DeliveryReport
    from digest.fetch import DayResult, FetchReport
    from digest.health import Health
    from digest.pipeline import IngestSummary
    from digest.rows import Delivery

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNDELIVERED = 3
EXIT_STALE = 4
EXIT_FAILED = 5  # stopped partway: an output could not be written, or a template failed
EXIT_BUG = 70  # an error nobody foresaw (sysexits' EX_SOFTWARE): never 1, which means "input rejected, the rest done"

PROGRESS_MIN_FILES = 20
PROGRESS_MIN_DAYS = 7


class UsageError(Exception):
    """A mistake in how the command was called: one line, exit 2."""


@dataclass(frozen=True, slots=True)
class Context:
    """What every command gets: the global options, the working folder, the clock.

    `lock_timeout`: how long a command that sends waits for another process that is sending
    (None: `deliver.SEND_LOCK_TIMEOUT`).
    """

    args: argparse.Namespace
    cwd: Path
    clock: Clock = utc_now
    lock_timeout: float | None = None

    def app(self) -> App:
        """The application over the config the options name (`ConfigError` when it is wrong)."""
        from dataclasses import replace

        from digest.app import App
        from digest.config import find_config, load_config

        path = find_config(self.args.config, self.cwd)
        config = load_config(path, self.cwd, db=self.args.db)
        if getattr(self.args, "scheduler", None):
            config = replace(config, scheduler=self.args.scheduler)
        if self.lock_timeout is None:
            return App(config, clock=self.clock, label=self.display)
        return App(config, clock=self.clock, label=self.display, lock_timeout=self.lock_timeout)

    def display(self, path: Path) -> str:
        """How messages name a path: relative to the working folder when it is inside it."""
        from digest.files import display_path

        return display_path(path, self.cwd)


Command = Callable[[Context], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digest",
        description="A personal daily digest of new machine-learning papers from Hugging Face Daily Papers.",
        epilog="Exit codes: 0 success, 1 some input rejected (the rest done), 2 usage or configuration error, "
        "3 some emails not delivered, 4 stale inbox (run --stale fail), 5 stopped partway (an output could not "
        "be written, or a template failed), 70 a bug (with its traceback).",
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
    _add_feedback(commands)
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
        "again. --week and --month backfill a whole period with the API's own query, saved one file per "
        "listing day; days already fetched are not asked for again. Default: today (UTC).",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--date", type=_date, metavar="YYYY-MM-DD", help="fetch this one day")
    which.add_argument(
        "--since", type=_date, metavar="YYYY-MM-DD", help="fetch every day from this one on (stops at the latest)"
    )
    which.add_argument("--week", type=_week, metavar="YYYY-Www", help="fetch an ISO week, like 2025-W52")
    which.add_argument("--month", type=_month, metavar="YYYY-MM", help="fetch a month, like 2025-12")
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
        "its previous digest) and the roll-ups of the week and month just ended, write the feeds, Markdown and site, "
        "and email them: into outbox/ as .eml files, or over SMTP with --send when [smtp] is configured. A day's "
        "digest is built once; building it again publishes the stored one, unless it delivered nothing and new "
        "papers for its day came before its deadline (then it is rebuilt). With --period week or month, build the "
        "roll-up of the period holding the day instead (once: a roll-up is never rebuilt).",
    )
    _add_selection(p)
    p.add_argument("--send", action="store_true", help="send the emails over SMTP (needs [smtp])")
    p.add_argument(
        "--period",
        choices=("week", "month"),
        help="build the roll-up of the week (ISO, Monday to Sunday) or month holding --date instead of the day's "
        "digest, and email it to the subscribers of that cadence",
    )
    _add_scheduler(p)
    p.set_defaults(run=run_build)


def _add_scheduler(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scheduler",
        type=_scheduler,
        metavar="tcp://HOST:PORT",
        help="rank and render on this Dask cluster instead of local worker processes (overrides [digest] "
        "scheduler; needs the cluster extra)",
    )


def _scheduler(text: str) -> str:
    from digest.config import scheduler_address
    from digest.validate import Invalid

    try:
        return scheduler_address(text)
    except Invalid as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
        help="run the scheduler (ingest and digests on each profile's schedule) and the web side",
        description="Run until stopped (SIGTERM, Ctrl-C): ingest the inbox every few minutes (fetching from the "
        "live source when [source] enabled = true), and build, publish and send each profile's digest on its "
        "schedule, in its time zone. Missed runs are caught up once. --once runs what is due now and exits. "
        "With [web] listen (or --http), the web side (unsubscribe, subscribe, votes, preferences) runs in the "
        "same process.",
    )
    p.add_argument("--once", action="store_true", help="run everything due now, then exit (for cron and CI)")
    p.add_argument(
        "--http",
        type=_listen,
        metavar="ADDR",
        help="serve the web side on ADDR (HOST:PORT; overrides [web] listen)",
    )
    p.add_argument(
        "--no-schedule",
        action="store_true",
        help="run the web side alone, without the scheduler (needs --http or [web] listen)",
    )
    p.set_defaults(run=run_serve)


def _listen(text: str) -> str:
    from digest.config import listen_address

    try:
        return listen_address(text)
    except Invalid as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    _add_scheduler(p)
    p.set_defaults(run=run_run)


def _add_deliveries(commands: Any) -> None:
    p = commands.add_parser(
        "deliveries",
        help="show the delivery ledger",
        description="Show the delivery ledger: one row per profile, subscriber and digest day, with its state "
        "(pending, sending, sent, failed, skipped, rolled-up), attempts, last error and Message-ID.",
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
    p.add_argument(
        "--undo",
        action="store_true",
        help="subscribe the address again: to the profile, or (without --profile) to every profile",
    )
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


def _add_feedback(commands: Any) -> None:
    p = commands.add_parser(
        "feedback",
        help="list the votes readers cast on papers (more like this, less like this, mute)",
        description="List every vote readers cast through the web side, oldest first: when, profile, reader, "
        "the vote, the paper, and when it was taken back.",
    )
    p.add_argument("--profile", metavar="ID", help="only this profile")
    p.add_argument("--json", action="store_true", help="print JSON (one array of objects) instead of a table")
    p.set_defaults(run=run_feedback)


def _date(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-12-31") from None


def _week(text: str) -> Period:
    return _period(text, PeriodKind.WEEK, "an ISO week like 2025-W52")


def _month(text: str) -> Period:
    return _period(text, PeriodKind.MONTH, "a month like 2025-12")


def _period(text: str, kind: PeriodKind, like: str) -> Period:
    try:
        period = parse_period(text)
    except ValueError:
        period = None
    if period is None or period.kind is not kind:
        raise argparse.ArgumentTypeError(f"{text!r} is not {like}")
    return period


def _year(text: str) -> int:
    if not text.isdigit() or not 1990 <= int(text) <= 2999:
        raise argparse.ArgumentTypeError(f"{text!r} is not a year like 2025")
    return int(text)


# -- commands ----------------------------------------------------------------------


def run_ingest(ctx: Context) -> int:
    with ctx.app() as app:
        paths = ctx.args.paths or [app.config.inbox]
        missing = [p for p in paths if not p.exists()]
        if missing:
            raise UsageError(f"no such file or folder: {missing[0]}")
        files = app.dump_files(paths)
        with _progress(len(files)) as advance:
            summary = app.ingest(files, year=ctx.args.year, on_file=advance)
        _report_ingest(summary, app, ctx)
    return EXIT_REJECTED if summary.rejected else EXIT_OK


def _report_ingest(summary: IngestSummary, app: App, ctx: Context) -> None:
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
    papers, dumps = app.totals()
    print(f"store: {papers} papers from {dumps} dumps in {ctx.display(app.config.db)}")


def run_fetch(ctx: Context) -> int:

    args = ctx.args
    if args.until and not args.since:
        raise UsageError("--until needs --since")
    if args.week or args.month:
        return _fetch_period(ctx, args.week or args.month)
    today = ctx.clock().astimezone(UTC).date()
    for option in ("date", "since", "until"):
        asked = getattr(args, option)
        if asked is not None and asked > today + timedelta(days=1):
            raise UsageError(f"--{option} {asked} is in the future: the API has no listing for it yet")
    if args.date:
        since, until = args.date, args.date
    elif args.since:
        since, until = args.since, args.until or today
        if since > until:
            raise UsageError(f"--since {since} is after --until {until}")
    else:
        since, until = today, today
    days = (until - since).days + 1
    with ctx.app() as app, _day_progress(days) as advance:

        def show(result: DayResult) -> None:
            _report_day(result, ctx)
            if advance:
                advance()

        report = app.fetch(since, until, on_day=show)
        for problem in report.problems:
            print(problem, file=sys.stderr)
        _report_fetch_counts(report)
        if report.stopped_at and report.stopped_at != until:
            print(f"stopped at {report.stopped_at}: the API has no later days yet")
        papers, dumps = app.totals()
        print(f"store: {papers} papers from {dumps} dumps in {ctx.display(app.config.db)}")
    return EXIT_REJECTED if report.rejected else EXIT_OK


def _fetch_period(ctx: Context, period: Period) -> int:
    with ctx.app() as app:
        report = app.fetch_period(period, on_day=lambda result: _report_day(result, ctx))
        for problem in report.problems:
            print(problem, file=sys.stderr)
        _report_fetch_counts(report)
        papers, dumps = app.totals()
        print(f"store: {papers} papers from {dumps} dumps in {ctx.display(app.config.db)}")
    return EXIT_REJECTED if report.rejected else EXIT_OK


def _report_fetch_counts(report: FetchReport) -> None:
    from digest.fetch import ALREADY_FETCHED, FAILED, FETCHED, NOT_AVAILABLE, NOT_MODIFIED

    n = len(report.days)
    already = report.count(ALREADY_FETCHED)
    print(
        f"{n} day{_s(n)}: {report.count(FETCHED)} fetched, {report.count(NOT_MODIFIED)} not modified, "
        f"{report.count(NOT_AVAILABLE)} not available yet, {report.count(FAILED)} failed"
        + (f", {already} already fetched" if already else "")
    )


def _report_day(result: DayResult, ctx: Context) -> None:
    from digest.fetch import FAILED, FETCHED

    line = f"{result.day}: {result.message}"
    if result.outcome == FETCHED and result.path:
        line += f" -> {ctx.display(result.path)}"
    if result.attempts > 1 and result.outcome != FAILED:
        line += f" (after {result.attempts} attempts)"
    print(line, file=sys.stderr if result.outcome == FAILED else sys.stdout, flush=True)


def run_export(ctx: Context) -> int:
    from digest.files import write_atomic

    with ctx.app() as app:
        if not ctx.args.output:
            for text in app.export(ctx.args.format):
                sys.stdout.write(text)
            return EXIT_OK
        whole = "".join(app.export(ctx.args.format))
    try:
        write_atomic(ctx.args.output, whole)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError) and exc.filename:  # a file where a folder of the path must be
            reason = f"{exc.filename} is a file, not a folder"
        raise UsageError(f"cannot write {ctx.args.output}: {reason}") from None
    return EXIT_OK


def run_profiles_check(ctx: Context) -> int:
    with ctx.app() as app:
        config = app.config
        where = ctx.display(config.path) if config.path else "defaults (no digest.toml)"
        # Not errors: a liked paper may be ingested later; until then it cannot count. A
        # description asking for nothing, or liked papers far apart, are valid, but likely
        # not what their writer meant.
        for warning in [*app.unknown_liked(), *app.descriptions_asking_nothing(), *app.liked_papers_apart()]:
            print(warning, file=sys.stderr)
    print(f"{where}: {len(config.profiles)} profile{_s(len(config.profiles))} OK")
    return EXIT_OK


def run_profiles_list(ctx: Context) -> int:
    with ctx.app() as app:
        for profile in app.config.profiles:
            print(f"{profile.id}\t{profile.title}")
    return EXIT_OK


def _selected(app: App, profile_id: str | None) -> list[Profile]:
    try:
        return app.profiles(profile_id)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def run_rank(ctx: Context) -> int:

    with ctx.app() as app:
        (profile,) = _selected(app, ctx.args.profile)
        ranking = app.rank(profile, day=ctx.args.date, every_paper=ctx.args.all, limit=ctx.args.limit)
        worded = [app.reason_words(scored) for scored in ranking.ranked]
    if ctx.args.json:
        records = [scored_record(s, words) for s, words in zip(ranking.ranked, worded, strict=True)]
        print(json.dumps(records, ensure_ascii=False, indent=1))
        return EXIT_OK
    for position, (scored, words) in enumerate(zip(ranking.ranked, worded, strict=True), start=1):
        mark = " " if scored.score >= profile.min_score else "-"
        # A title is the listing's text: its controls are shown escaped, never sent to the terminal.
        print(f"{position:3}. {scored.score:.3f}{mark} {printable(scored.paper.title)}")
        for reason in words:
            print(f"            {printable(reason)}")
    shown = "every stored paper" if ctx.args.all else f"the papers new for {profile.id} on {ranking.day}"
    print(
        f"{len(ranking.ranked)} of {ranking.considered} papers ({shown}); "
        f"'-' marks a score below min_score {profile.min_score}"
    )
    return EXIT_OK


def run_build(ctx: Context) -> int:
    with ctx.app() as app:
        profiles = _selected(app, ctx.args.profile)
        _check(app, ctx, send=ctx.args.send)
        refresh = _refresh(app, ctx, fetch=False)
        if ctx.args.period:
            kind = PeriodKind(ctx.args.period)
            report = app.build_period(profiles, kind, day=ctx.args.date, send=ctx.args.send)
        else:
            report = app.build(profiles, day=ctx.args.date, send=ctx.args.send)
        code = _report_build(report, app, ctx, smtp_asked=ctx.args.send)
    return max(EXIT_REJECTED if refresh.rejected else EXIT_OK, code)


def run_run(ctx: Context) -> int:
    with ctx.app() as app:
        profiles = _selected(app, ctx.args.profile)
        _check(app, ctx, send=ctx.args.send)
        refresh = _refresh(app, ctx, fetch=True)
        stale = app.stale()
        if stale:
            print(_annotate("error" if ctx.args.stale == "fail" else "warning", stale), file=sys.stderr)
            if ctx.args.stale == "fail":
                return EXIT_STALE
        report = app.build(profiles, day=ctx.args.date, send=ctx.args.send)
        code = _report_build(report, app, ctx, smtp_asked=ctx.args.send)
    return max(EXIT_REJECTED if refresh.rejected else EXIT_OK, code)


def _check(app: App, ctx: Context, *, send: bool) -> None:
    """What stops a command before it does anything: sending that cannot work, a quarantine
    folder that cannot be one, a Dask cluster that cannot be used, a day too old or in the future."""
    from digest.retention import DayRefused

    app.check_ready(send=send)
    app.check_cluster()
    try:
        app.check_day(ctx.args.date)
    except DayRefused as exc:
        raise UsageError(f"--date {exc}") from None


def _refresh(app: App, ctx: Context, *, fetch: bool) -> Refresh:
    """Read the live source (with `fetch`, when enabled) and the inbox, and say what came."""
    with _progress(len(app.dump_files())) as advance:
        refresh = app.refresh(fetch=fetch, on_file=advance)
    if refresh.fetched is not None:
        for result in refresh.fetched.days:
            _report_day(result, ctx)
        for problem in refresh.fetched.problems:
            print(problem, file=sys.stderr)
    _report_ingest(refresh.ingested, app, ctx)
    return refresh


def _annotate(level: str, message: str) -> str:
    # In GitHub Actions, a workflow command makes the message an annotation on the run's page.
    return f"::{level}::{message}" if os.environ.get("GITHUB_ACTIONS") == "true" else f"digest: {level}: {message}"


def _report_build(report: BuildReport, app: App, ctx: Context, *, smtp_asked: bool) -> int:

    config = app.config
    for digest in report.digests:
        state = "rebuilt" if digest in report.rebuilt else "built" if digest in report.built else "built before"
        what = f"{len(digest.items)} paper{_s(len(digest.items))}"
        if not digest.items:
            why = "no new papers" if digest.empty_reason == EmptyReason.NO_NEW_PAPERS else "none above min_score"
            what = f"empty ({why})"
        print(f"digest {digest.profile.id} {digest.date}: {what} [{state}]")
    for rollup in report.rollups:
        state = "built" if rollup in report.rollups_built else "built before"
        considered = f"{rollup.considered} considered, {rollup.above} above min_score"
        if rollup.items:
            what = f"{len(rollup.items)} paper{_s(len(rollup.items))} ({considered})"
        else:
            what = f"empty ({considered})" if rollup.considered else "empty (no papers listed)"
        print(f"rollup {rollup.profile.id} {rollup.period.key}: {what} [{state}]")
    folders = {"feeds": config.feeds, "site": config.site, "markdown": config.digests}
    for name, folder in folders.items():
        changed = sum(1 for path in report.written if path.is_relative_to(folder))
        print(f"{name}: {ctx.display(folder)}/ ({changed} file{_s(changed)} changed)")
    delivery = report.delivery
    if delivery is None:
        return EXIT_OK
    _report_emails(delivery, app, ctx)
    if smtp_asked and config.smtp is None:
        print("note: --send needs an [smtp] table; the emails went to the outbox", file=sys.stderr)
    return EXIT_OK if delivery.complete and not delivery.failed else EXIT_UNDELIVERED


def _report_emails(delivery: DeliveryReport, app: App, ctx: Context) -> None:

    where = ctx.display(app.config.outbox) + "/" if delivery.transport == TransportKind.OUTBOX else "SMTP"
    print(f"emails: {delivery.summary()} -> {where}")


def run_send(ctx: Context) -> int:

    with ctx.app() as app:
        profiles = _selected(app, ctx.args.profile)
        from digest.retention import DayRefused

        try:
            app.check_day(ctx.args.date)
        except DayRefused as exc:
            raise UsageError(f"--date {exc}") from None
        if ctx.args.dry_run:
            from digest.app import CAUGHT_UP

            plans = app.plan_send(profiles, day=ctx.args.date)
            for plan in plans:
                item = plan.outgoing
                print(f"{item.period or item.day}  {item.profile_id}  {item.subscriber}  {plan.state}")
            to_send = sum(plan.to_send for plan in plans)
            summary = f"{to_send} of {len(plans)} email{_s(len(plans))} would be sent ({app.transport(True)})"
            rolled = [plan for plan in plans if plan.state == CAUGHT_UP]
            readers = {(plan.outgoing.profile_id, plan.outgoing.subscriber) for plan in rolled}
            if readers:  # each reader's stale emails go as one message, made when sending
                summary += f", and {len(readers)} 'what you missed' message{_s(len(readers))} instead of the "
                summary += f"{len(rolled)} marked {CAUGHT_UP}"
            print(summary)
            return EXIT_OK
        digests, report = app.send(profiles, day=ctx.args.date)
    print(f"{digests} digest{_s(digests)} with emails due; {report.summary()}")
    return EXIT_OK if report.complete and not report.failed else EXIT_UNDELIVERED


def run_serve(ctx: Context) -> int:
    from digest.schedule import serve, serve_once

    if ctx.args.once and (ctx.args.http or ctx.args.no_schedule):
        raise UsageError("--once runs the scheduled jobs and exits: it takes neither --http nor --no-schedule")
    with ctx.app() as app, _logging_to_stderr():
        if ctx.args.no_schedule and not (ctx.args.http or app.config.web.listen):
            raise UsageError("--no-schedule runs the web side alone: give --http ADDR or set [web] listen")
        if not ctx.args.once:
            serve(app, http=ctx.args.http, schedule=not ctx.args.no_schedule)
            return EXIT_OK
        runs = serve_once(app)
    if any(run.status == "failed" or (run.report and run.report.undelivered) for run in runs):
        return EXIT_UNDELIVERED
    return EXIT_REJECTED if any(run.report and run.report.rejected for run in runs) else EXIT_OK


@contextmanager
def _logging_to_stderr() -> Iterator[None]:
    """The service's log lines on stderr (as it is now: tests replace it), for this command only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    root = logging.getLogger()
    # APScheduler's own lines ("Running job ...", "executed successfully") around each of ours:
    # one line per run, as the README promises; its warnings (a run missed) still show.
    scheduler = logging.getLogger("apscheduler")
    previous, previous_scheduler = root.level, scheduler.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    scheduler.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        scheduler.setLevel(previous_scheduler)


def run_deliveries(ctx: Context) -> int:

    with ctx.app() as app:
        try:
            rows = app.deliveries(day=ctx.args.date, profile_id=ctx.args.profile)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
        transport = app.transport(send=True)
    if ctx.args.json:
        print(json.dumps([delivery_record(row) for row in rows], ensure_ascii=False, indent=1))
        return EXIT_OK
    table = [("day", "profile", "subscriber", "state", "tries", "when", "details")]
    for row in rows:
        details = row.last_error or ""
        if row.possible_duplicate:
            details = f"possible duplicate: {row.note}" + (f"; {details}" if details else "")
        when = (row.sent_at or row.updated_at).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        day = row.period or row.day.isoformat()  # a roll-up's email: its week, month or the days missed
        table.append(
            (day, row.profile_id, row.subscriber, _state_shown(row, transport), str(row.attempts), when, details)
        )
    widths = [max(len(line[i]) for line in table) for i in range(6)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[6])
    counts: dict[str, int] = {}
    for row in rows:
        counts[_state_shown(row, transport)] = counts.get(_state_shown(row, transport), 0) + 1
    states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    print(f"{len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}" + (f": {states}" if states else ""))
    return EXIT_OK


def _state_shown(row: Delivery, transport: TransportKind) -> str:
    """A row's state as `deliveries` shows it: with `[smtp]` set, a message only written to the
    outbox (a run without --send) is a preview, not sent: `outbox`, until `send` sends it."""
    from digest.lifecycle import is_preview

    return "outbox" if is_preview(row, transport) else str(row.state)


def run_unsubscribe(ctx: Context) -> int:
    scope = ctx.args.profile
    where = f"profile {scope}" if scope else "all profiles"
    with ctx.app() as app:
        try:
            address, changed = app.unsubscribe(ctx.args.address, scope, undo=ctx.args.undo)
        except Invalid as exc:
            raise UsageError(str(exc)) from None
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
        if ctx.args.undo:
            print(f"{address}: {'subscribed again to' if changed else 'was not unsubscribed from'} {where}")
            if scope and app.is_address_unsubscribed(address, scope):
                print(
                    f"note: {address} is still unsubscribed from all profiles (undo without --profile)", file=sys.stderr
                )
        else:
            print(f"{address}: {'unsubscribed from' if changed else 'already unsubscribed from'} {where}")
        if not app.is_subscriber(address):
            print(f"note: {address} is not a subscriber of any configured profile", file=sys.stderr)
    return EXIT_OK


def run_feedback(ctx: Context) -> int:
    with ctx.app() as app:
        try:
            votes = app.feedback(ctx.args.profile)
        except KeyError as exc:
            raise UsageError(exc.args[0]) from None
        titles = {paper.id: paper.title for paper in app.papers_named([v.paper_id for v in votes])} if votes else {}
    records = [vote_record(vote, titles.get(vote.paper_id, "")) for vote in votes]
    if ctx.args.json:
        print(json.dumps(records, ensure_ascii=False, indent=1))
        return EXIT_OK
    table = [("when", "profile", "reader", "vote", "paper", "title")]
    for vote, record in zip(votes, records, strict=True):
        what = f"{vote.kind} {vote.organization}" if vote.organization else str(vote.kind)
        title = record["title"] + (f" (taken back {_utc(vote.undone_at)})" if vote.undone_at else "")
        table.append((_utc(vote.at), vote.profile_id, vote.address, what, vote.paper_id, title))
    widths = [max(len(line[i]) for line in table) for i in range(5)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[5])
    counts: dict[str, int] = {}
    for vote in votes:
        if vote.active:
            counts[vote.kind] = counts.get(vote.kind, 0) + 1
    undone = sum(not vote.active for vote in votes)
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    summary = f"{len(votes)} vote{_s(len(votes))}" + (f": {kinds}" if kinds else "")
    print(summary + (f" ({undone} taken back)" if undone else ""))
    return EXIT_OK


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def run_status(ctx: Context) -> int:
    with ctx.app() as app:
        health = app.status()
    if ctx.args.json:
        print(json.dumps(health.to_json(), ensure_ascii=False, indent=1))
    else:
        _print_status(health, ctx)
    return EXIT_OK if health.healthy else EXIT_REJECTED


def _print_status(health: Health, ctx: Context) -> None:
    inputs = health.inputs
    size = inputs.database_bytes
    print(f"database: {ctx.display(inputs.database)}" + (f" ({_megabytes(size)})" if size is not None else ""))
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
    with ctx.app() as app:
        before, counts = app.prune(dry_run=ctx.args.dry_run)
        retention = app.config.retention_days
    verb = "would prune" if ctx.args.dry_run else "pruned"
    print(
        f"{verb} {counts.deliveries} ledger row{_s(counts.deliveries)} and {counts.fetches} fetch "
        f"record{_s(counts.fetches)} from before {before} (retention_days = {retention})"
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


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def main(
    argv: list[str] | None = None,
    *,
    clock: Clock | None = None,
    lock_timeout: float | None = None,
) -> int:
    """Run the command in `argv`. `clock` (aware datetimes) replaces the system clock, e.g. in
    tests; `lock_timeout` as in `Context`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context(args=args, cwd=Path.cwd(), clock=clock or utc_now, lock_timeout=lock_timeout)
    from digest.config import ConfigError
    from digest.deliver import DeliveryError
    from digest.fetch import FetchError
    from digest.parallel import ClusterUnavailable
    from digest.pipeline import QuarantineError
    from digest.semantic import SemanticUnavailable
    from digest.store import StoreError
    from digest.web import WebUnavailable

    try:
        return int(args.run(ctx))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except (
        UsageError,
        StoreError,
        FetchError,
        SemanticUnavailable,
        QuarantineError,
        DeliveryError,
        WebUnavailable,
        ClusterUnavailable,
    ) as exc:
        print(f"digest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("digest: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (`| head`) went away: not an error. Silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a full disk, a read-only folder, a file where a folder should be
        where = f" {exc.filename}" if exc.filename else ""
        print(f"digest: error: cannot use{where}: {exc.strerror or exc}; stopped partway", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        return _unforeseen(exc)


def _unforeseen(exc: Exception) -> int:
    """A template that fails is the owner's to fix: one line naming it. Anything else is a
    bug: its traceback, and an exit code the publish workflow never takes for success."""
    from jinja2 import TemplateError, TemplateSyntaxError

    from digest.render.templates import template_location

    where = template_location(exc)
    if isinstance(exc, TemplateSyntaxError):
        where = (exc.filename or exc.name or "?", exc.lineno)
    if isinstance(exc, TemplateError) or where is not None:
        place = f"template {where[0]}, line {where[1]}: " if where else "a template failed: "
        detail = exc.message if isinstance(exc, TemplateSyntaxError) else f"{type(exc).__name__}: {exc}"
        print(f"digest: error: {place}{detail}; stopped partway", file=sys.stderr)
        return EXIT_FAILED
    traceback.print_exc()
    print("digest: error: this is a bug (the traceback above says where); nothing after it was done", file=sys.stderr)
    return EXIT_BUG


def entry_point() -> None:
    """The console script."""
    raise SystemExit(main())
