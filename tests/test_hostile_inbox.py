"""Every command that reads the inbox or the live source, on an inbox full of bad input at once.

Each input below once crashed, hung or silently changed stored papers. Together in one
inbox, and served by a loopback stand-in for the Hub, they must leave every command
finishing (a hang fails the test), with one line per rejected input, exit code 1 (input
rejected, the rest done), and every paper stored before unchanged (`digest export`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import ROOT, SEEDS, finishes_within
from hub import gzip_bomb
from pytest_httpserver import HTTPServer

from digest.cli import main

NOW = datetime(2026, 1, 3, 7, 30, tzinfo=UTC)  # after the shipped profiles' 07:00 tick
HUGE = 99999999999999999999  # 20 digits: beyond SQLite's 64-bit integers
SEED_TITLE = "Light Schrödinger Bridge"  # a paper of the seeds: input that names it must not change it
FIXTURE = Path(__file__).parent / "fixtures" / "daily_papers_2026-01-02.json"


def api_items_with_huge_numbers() -> list[dict[str, object]]:
    light, _, sparse = json.loads(FIXTURE.read_text(encoding="utf-8"))
    light["paper"]["upvotes"] = HUGE
    sparse["numComments"] = HUGE
    return [light, sparse]


# name -> (content, what its line on stderr must contain)
HOSTILE_FILES: dict[str, tuple[str | bytes, str]] = {
    "feb30.txt": ("Daily Papers\n\nFeb 30\n\nT\n\nA\n\n  • 2 authors\n·\nFeb 1 3\n", "does not exist in any year"),
    "upvotes.txt": (
        f"Daily Papers\n\nDec 31\n\n{SEED_TITLE}\n\nSpoofed.\n\n  • 3 authors\n·\nOct 2, 2023 {HUGE}\n",
        "is out of range",
    ),
    "authors.txt": (
        f"Daily Papers\n\nDec 31\n\n{SEED_TITLE}\n\nSpoofed.\n\n  • {HUGE} authors\n·\nOct 2, 2023 3\n",
        "is out of range",
    ),
    "hf-daily-2026-01-01.json": (json.dumps(api_items_with_huge_numbers(), ensure_ascii=False), "is out of range"),
    "future.txt": (
        f"Daily Papers\n\nDec 31\n\n{SEED_TITLE}\n\nSpoofed.\n\n  • 3 authors\n·\nDec 29, 2099 5\n",
        "is after the listing date",
    ),
    "huge-abstract.txt": (
        "Daily Papers\n\nDec 31\n\nA Paper With A Long Abstract\n\n"
        + "word " * 200_000
        + "\n\n  • 2 authors\n·\nDec 30 1\n",
        "truncated to",
    ),
    "binary.txt": (b"\x00\xff\x00 not text", "set aside as"),
}


def project(tmp_path: Path, extra: str = "") -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    shipped = (ROOT / "digest.toml").read_text(encoding="utf-8")
    (folder / "digest.toml").write_text(shipped.replace('inbox = "seeds"', 'inbox = "inbox"') + extra)
    return folder


def export(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    assert main(["export"]) == 0
    return {row["id"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}


def stored_seeds(folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict:
    monkeypatch.chdir(folder)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["ingest", str(SEEDS)], clock=lambda: NOW) == 0
    capsys.readouterr()
    return export(capsys)


def fill_inbox(folder: Path) -> None:
    inbox = folder / "inbox"
    inbox.mkdir()
    for name, (content, _) in HOSTILE_FILES.items():
        path = inbox / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize("command", [["ingest"], ["run"], ["serve", "--once"]])
def test_every_command_finishes_on_a_hostile_inbox_and_changes_no_stored_paper(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = project(tmp_path)
    before = stored_seeds(folder, monkeypatch, capsys)
    fill_inbox(folder)
    with finishes_within(120):
        code = main(command, clock=lambda: NOW)
    stderr = capsys.readouterr().err + caplog.text  # `serve` reports through logging
    assert code == 1, stderr
    assert "Traceback" not in stderr
    for name, (_, why) in HOSTILE_FILES.items():
        assert any(name in line and why in line for line in stderr.splitlines()), (name, stderr)
    after = export(capsys)
    assert {pid: after[pid] for pid in before} == before  # every paper stored before, unchanged
    assert max(str(row["first_seen"]) for row in after.values()) <= NOW.date().isoformat()  # nothing from the future
    if command[0] != "ingest":  # the day's job went on: every profile got its digest
        assert len(list((folder / "digests").iterdir())) == 5


FETCHING = [["fetch", "--since", "2026-01-02", "--until", "2026-01-03"], ["run"], ["serve", "--once"]]


@pytest.mark.parametrize("command", FETCHING)
def test_the_live_source_serving_bad_days_changes_no_stored_paper(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    httpserver_ipv4: HTTPServer,
) -> None:
    server = httpserver_ipv4
    base = server.url_for("/").rstrip("/")
    extra = f'\n[source]\nenabled = true\nbase_url = "{base}"\npace = 0\nbackoff = 0\nbackoff_max = 0\nattempts = 1\n'
    folder = project(tmp_path, extra)
    (folder / "inbox").mkdir()
    before = stored_seeds(folder, monkeypatch, capsys)
    api = "/api/daily_papers"
    # `run` and `serve` fetch today (UTC) and the day before.
    server.expect_request(api, query_string={"date": "2026-01-02", "limit": "100", "p": "0"}).respond_with_json(
        api_items_with_huge_numbers()
    )
    server.expect_request(api, query_string={"date": "2026-01-03", "limit": "100", "p": "0"}).respond_with_data(
        gzip_bomb(), content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    with finishes_within(120):
        code = main(command, clock=lambda: NOW)
    stderr = capsys.readouterr().err + caplog.text
    assert code == 1, stderr
    assert "Traceback" not in stderr
    assert "item 1: paper.upvotes" in stderr and "max_response_mb" in stderr
    after = export(capsys)
    assert {pid: after[pid] for pid in before} == before
    assert not any(path.stat().st_size > 5_000_000 for path in (folder / "inbox").iterdir())
