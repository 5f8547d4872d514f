"""The `digest` command: parses arguments and calls the library, nothing more.

Exit codes: 0 success; 1 some input was rejected (a bad entry skipped, a file set
aside), the rest done; 2 usage or configuration error, nothing done.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from digest import __version__
from digest.config import Config, ConfigError, find_config, load_config
from digest.fetch import FAILED, FETCHED, NOT_AVAILABLE, NOT_MODIFIED, DayResult, FetchError, day_range, fetch_days
from digest.files import write_atomic
from digest.models import Paper
from digest.pipeline import IngestSummary, find_dump_files, ingest_files
from digest.profiles import email_address, find_profile
from digest.store import Delivery, Store, StoreError, open_store
from digest.validate import Invalid

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2

PROGRESS_MIN_FILES = 20
PROGRESS_MIN_DAYS = 7


class UsageError(Exception):
    """A mistake in how the command was called: one line, exit 2."""


@dataclass(frozen=True, slots=True)
class Context:
    """What every command gets: the global options and a way to the config."""

    args: argparse.Namespace
    cwd: Path

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
        return datetime.now(UTC)


Command = Callable[[Context], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digest",
        description="A personal daily digest of new machine-learning papers from Hugging Face Daily Papers.",
        epilog="Exit codes: 0 success, 1 some input rejected (the rest done), 2 usage or configuration error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path, metavar="FILE", help="config file (default: ./digest.toml if present)")
    parser.add_argument("--db", type=Path, metavar="FILE", help="state database (overrides [digest] db)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_ingest(commands)
    _add_fetch(commands)
    _add_export(commands)
    _add_profiles(commands)
    _add_deliveries(commands)
    _add_unsubscribe(commands)
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
        "HF_TOKEN from the environment if set), save each raw response in the inbox as "
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
    for problem in summary.problems:
        print(problem, file=sys.stderr)
    for _, moved_to, reason in summary.quarantined:
        print(f"{moved_to.name}: not a dump, moved to {moved_to}: {reason}", file=sys.stderr)
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
        write_atomic(ctx.args.output, buffer.getvalue())  # type: ignore[union-attr]
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
    print(f"{where}: {len(config.profiles)} profile{_s(len(config.profiles))} OK")
    return EXIT_OK


def run_profiles_list(ctx: Context) -> int:
    config = ctx.config()
    for profile in config.profiles:
        print(f"{profile.id}\t{profile.title}")
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


# -- plumbing ------------------------------------------------------------------------


@contextmanager
def _progress(total: int) -> Iterator[Callable[[Path], None] | None]:
    if total < PROGRESS_MIN_FILES or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("ingesting", total=total)
        yield lambda _path: progress.advance(task)


@contextmanager
def _day_progress(total: int) -> Iterator[Callable[[], None] | None]:
    if total < PROGRESS_MIN_DAYS or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("fetching", total=total)
        yield lambda: progress.advance(task)


def _display(path: Path, cwd: Path) -> str:
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context(args=args, cwd=Path.cwd())
    try:
        return args.run(ctx)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, StoreError, FetchError) as exc:
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
