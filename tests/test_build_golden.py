"""The whole build as a user runs it, compared file by file with `tests/golden/build/`.

The five seeds and a hostile dump go through `digest run` (in process, through
`main(argv)`) with a fixed clock, the shipped profiles, a fixed signing key and 25
entries a feed (to keep the copy small); every file it writes under `site/`, `feeds/`,
`digests/` and `outbox/`, and what it prints, must equal the stored copy. This is the
safety net for reshaping the code: a change that alters any output byte shows here.
Regenerate with `pytest --update-golden` after an intended change, and review the diff.

Message-IDs are random in production; here `secrets.token_hex` counts instead, so the
emails (whose MIME boundary derives from the Message-ID) are byte-for-byte stable.
"""

from __future__ import annotations

import itertools
import re
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import GOLDEN, ROOT, SEEDS, unstamped
from render_data import hostile_dump

from digest.cli import main

NOW = datetime(2026, 1, 3, 6, 30, tzinfo=UTC)
OUTPUTS = ("site", "feeds", "digests", "outbox")
EXPECTED = GOLDEN / "build"
KEY = "golden-build-signing-key-0123456789"


def build(
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: str = "",
    *,
    tables: str = "",
    args: tuple[str, ...] = ("run",),
) -> tuple[int, str, str]:
    """`digest run` (or `args`) in `folder`; `settings` are more lines for the `[digest]`
    table, `tables` more tables at the end of the config."""
    inbox = folder / "inbox"
    shutil.copytree(SEEDS, inbox)
    (inbox / "hostile.txt").write_text(hostile_dump(), encoding="utf-8")
    shipped = (ROOT / "digest.toml").read_text(encoding="utf-8")
    config = shipped.replace('inbox = "seeds"', f'inbox = "inbox"\nfeed_size = 25\n{settings}')
    (folder / "digest.toml").write_text(config + tables, encoding="utf-8")
    counter = itertools.count(1)
    monkeypatch.setattr(secrets, "token_hex", lambda n=32: f"{next(counter):0{2 * n}x}")
    monkeypatch.setenv("DIGEST_UNSUBSCRIBE_KEY", KEY)
    for variable in ("DIGEST_SITE_URL", "GITHUB_ACTIONS", "HF_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(folder)
    code = main(list(args), clock=lambda: NOW)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def produced(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for name in OUTPUTS
        for path in sorted((folder / name).rglob("*"))
        if path.is_file() and (not path.name.startswith(".") or path.name == ".nojekyll")
    }


def test_the_whole_build_matches_the_golden_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    # One process: every profile ranked and rendered here, one after another.
    check_against_golden(build(tmp_path, monkeypatch, capsys, "workers = 1"), tmp_path, request)


def test_the_whole_build_in_two_worker_processes_matches_the_golden_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest
) -> None:
    # Two worker processes, one profile a shard: ranking, pages, feeds and emails all made there.
    check_against_golden(build(tmp_path, monkeypatch, capsys, "workers = 2\nshard_size = 1"), tmp_path, update=False)


def check_against_golden(
    built: tuple[int, str, str], tmp_path: Path, request: pytest.FixtureRequest | None = None, *, update: bool = True
) -> None:
    """The build's files and messages equal the golden copy (or, with --update-golden, become it)."""
    code, stdout, stderr = built
    # 1: the hostile dump ends with an entry that has no byline, which is reported as looking truncated.
    assert code == 1, stdout + stderr
    files = {name: unstamped(data) for name, data in produced(tmp_path).items()}
    files["stdout.txt"] = re.sub(r" in \d+\.\d s", " in N s", stdout).encode("utf-8")  # the send's duration
    files["stderr.txt"] = stderr.encode("utf-8")
    assert any(name.startswith("outbox/") for name in files) and any(name.startswith("feeds/") for name in files)
    if update and request is not None and request.config.getoption("--update-golden"):
        shutil.rmtree(EXPECTED, ignore_errors=True)
        for name, data in files.items():
            (EXPECTED / name).parent.mkdir(parents=True, exist_ok=True)
            (EXPECTED / name).write_bytes(data)
        return
    expected = {
        str(path.relative_to(EXPECTED)): path.read_bytes() for path in sorted(EXPECTED.rglob("*")) if path.is_file()
    }
    assert sorted(files) == sorted(expected), "a file appeared or disappeared (if intended: pytest --update-golden)"
    differing = [name for name in files if files[name] != expected[name]]
    assert not differing, f"these outputs differ from tests/golden/build/ (if intended: --update-golden): {differing}"
