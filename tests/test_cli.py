"""The `digest` command as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from digest.cli import build_parser


def digest(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "digest", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def subcommands(parser=None, prefix=()) -> list[tuple[str, ...]]:
    parser = parser or build_parser()
    found = []
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += subcommands(sub, (*prefix, name))
    return found


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
    assert "broken.txt: not a dump, moved to" in result.stderr
    assert "315 entries: 309 new papers" in result.stdout
    assert (tmp_path / ".digest" / "quarantine" / "broken.txt.error").exists()


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
    assert digest("ingest", "--year", "2026", str(seeds / "000_9d0724fe38360f6f.txt"), cwd=tmp_path).returncode == 0
    rows = [json.loads(line) for line in digest("export", cwd=tmp_path).stdout.splitlines()]
    assert {r["first_seen"] for r in rows} == {"2026-12-31"}


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
