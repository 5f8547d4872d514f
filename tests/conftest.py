"""Shared fixtures: the real seeds, a fresh state database, a config folder."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from digest.models import Paper
from digest.store import Store, open_store

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)

SEED_COUNTS = {
    "000_9d0724fe38360f6f.txt": 38,
    "001_27aa8359c0b590a1.txt": 75,
    "002_6d046406d792592b.txt": 57,
    "003_c86e26950e2129a1.txt": 77,
    "004_cb25a22a707906ba.txt": 68,
}


@contextmanager
def finishes_within(seconds: float) -> Iterator[None]:
    """Turn an endless loop into a failing test instead of a test run that never ends."""

    def stop(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s: an endless loop?")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_digest(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    token: str | None = None,
    clock: Callable[[], datetime] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The `digest` command, run in this process through `main(argv)`, in `cwd`, with `env`
    added to the environment (and `HF_TOKEN` only when `token` is given): its exit code,
    stdout and stderr, as a subprocess would give them. A hang fails the test."""
    from digest.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_environ, saved_cwd = dict(os.environ), Path.cwd()
    os.environ.pop("HF_TOKEN", None)
    os.environ.update((env or {}) | ({"HF_TOKEN": token} if token else {}))
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), finishes_within(120):
            try:
                code = main(list(args), clock=clock)
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)
    return subprocess.CompletedProcess(["digest", *args], code, out.getvalue(), err.getvalue())


def console(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The `digest` command as its own process (`python -m digest`), for what only a
    process shows: the console script itself, signals, an environment set at start."""
    environ = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "digest", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=environ
    )


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """A private copy of the seeds folder (ingest may move files out of an inbox)."""
    target = tmp_path / "seeds"
    shutil.copytree(SEEDS, target)
    return target


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "state.db")
    yield opened
    opened.close()


# -- golden files (rendered output) -------------------------------------------------

GOLDEN = ROOT / "tests" / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the expected files in tests/golden/ from the current output",
    )


_STAMP = re.compile(rb'(<!-- paper-digest inputs |"_paper_digest_inputs": ")[0-9a-f]{64}')


def unstamped(data: bytes) -> bytes:
    """A page or feed with its stamp (`digest.render.stamps`) replaced by a placeholder: a
    stamp covers the program's code, so it changes with every commit; golden copies keep
    where it is."""
    return _STAMP.sub(rb"\1(stamp)", data)


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """`golden(name, actual)`: compare with tests/golden/NAME (stamps aside: `unstamped`), or
    rewrite it under --update-golden."""
    update = request.config.getoption("--update-golden")

    def check(name: str, actual: str | bytes) -> None:
        path = GOLDEN / name
        data = unstamped(actual.encode("utf-8") if isinstance(actual, str) else actual)
        if isinstance(actual, str):
            actual = data.decode("utf-8")
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        assert path.is_file(), f"{path} is missing: run `pytest --update-golden` and review the diff"
        expected = path.read_bytes()
        if isinstance(actual, str):
            assert actual == expected.decode("utf-8"), f"{name} differs (if intended: pytest --update-golden)"
        else:
            assert data == expected, f"{name} differs (if intended: pytest --update-golden)"

    return check


# -- a store holding the seeds and a hostile dump (for the renderers) ---------------


@pytest.fixture(scope="session")
def filled_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file with the five seeds and the hostile dump, built once per session."""
    from render_data import fill_store

    path = tmp_path_factory.mktemp("filled") / "state.db"
    store = open_store(path)
    fill_store(store)
    store.close()
    return path


@pytest.fixture
def filled_store(filled_db: Path, tmp_path: Path) -> Iterator[Store]:
    """A private copy of `filled_db`, open."""
    from render_data import copy_store

    opened = copy_store(filled_db, tmp_path)
    yield opened
    opened.close()


@pytest.fixture
def credited_paper(filled_store: Store) -> Paper:
    """A seed paper credited to an organisation, with upvotes: 'OpenBMB · 4 Sep 2024 · 2 upvotes'.

    Its organisation's display name ('OpenBMB') differs from its id ('openbmb'), so a test
    finding the name knows the renderer shows the name.
    """
    paper = next(p for p in filled_store.iter_papers() if p.organization and p.organization.id == "openbmb")
    assert paper.organization is not None and paper.organization.name == "OpenBMB"
    assert paper.upvotes == 2 and paper.published is not None and paper.published.isoformat() == "2024-09-04"
    return paper


@pytest.fixture(scope="session")
def seed_papers(tmp_path_factory: pytest.TempPathFactory) -> list[Paper]:
    """The seed papers, as a store of the five seeds holds them (for the judged sets of bench/quality)."""
    from digest.pipeline import find_dump_files, ingest_files

    folder = tmp_path_factory.mktemp("calibration")
    store = open_store(folder / "state.db")
    now = datetime(2026, 11, 22, tzinfo=UTC)
    ingest_files(store, find_dump_files([SEEDS]), quarantine=folder / "q", today=now.date(), now=now)
    papers = list(store.iter_papers())
    store.close()
    return papers
