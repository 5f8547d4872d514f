"""Sharing the daily job out: the runners, and a build in worker processes equal to one in a single process.

The whole-build golden test runs the same build with two workers (`test_build_golden`);
here the runners themselves: results in the order of the shards, shards read only as
far ahead as `in_flight`, a pool whose worker was killed started again, and the outputs
of the seeds compared between one and two workers, store included.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import parallel_tasks
import pytest
from test_build_golden import build, produced

from digest.parallel import InlineRunner, ProcessRunner, open_runner, shards
from digest.store import open_store


def test_shards_are_cut_lazily() -> None:
    pulled = []

    def numbers():
        for n in range(7):
            pulled.append(n)
            yield n

    cut = shards(numbers(), 3)
    assert next(cut) == [0, 1, 2] and pulled == [0, 1, 2]
    assert list(cut) == [[3, 4, 5], [6]]


def test_open_runner_chooses_in_one_place() -> None:
    assert isinstance(open_runner(1), InlineRunner)
    runner = open_runner(3)
    assert isinstance(runner, ProcessRunner) and runner.workers == 3


@pytest.mark.parametrize("runner", [InlineRunner(), ProcessRunner(2)], ids=["inline", "processes"])
def test_results_come_back_in_the_order_of_the_shards(runner) -> None:
    results = list(runner.map(parallel_tasks.double, 100, shards(range(40), 3)))
    assert [n for shard in results for n in shard] == [100 + 2 * n for n in range(40)]


def test_worker_processes_do_the_work() -> None:
    pids = set(ProcessRunner(2).map(parallel_tasks.where, None, shards(range(12), 1)))
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_a_worker_keeps_what_it_was_started_with_out_of_the_collector() -> None:
    # The modules it was forked with and the map's common data are frozen: a collection in
    # the middle of rendering walks only the objects the shard made.
    assert min(ProcessRunner(2).map(parallel_tasks.frozen, None, [[1], [2], [3]])) > 10_000


def test_a_single_shard_runs_in_this_process() -> None:
    # Starting workers for one shard would cost more than it saves.
    assert list(ProcessRunner(2).map(parallel_tasks.where, None, [[1, 2]])) == [os.getpid()]


@pytest.mark.parametrize("runner", [InlineRunner(), ProcessRunner(2, in_flight=3)], ids=["inline", "processes"])
def test_shards_are_streamed_a_few_at_a_time(runner) -> None:
    # What keeps the coordinator's memory flat: the shards (read from the store) are read
    # only as far ahead as the shards in flight, whatever the number of profiles.
    pulled = 0

    def numbers():
        nonlocal pulled
        for n in range(60):
            pulled += 1
            yield [n]

    consumed = 0
    for _ in runner.map(parallel_tasks.double, 0, numbers()):
        consumed += 1
        assert pulled - consumed <= 3, (pulled, consumed)
    assert consumed == 60


def test_a_killed_worker_process_has_its_shard_run_again(tmp_path: Path) -> None:
    # A worker killed (SIGKILL) while it holds the shard with 13: the pool is started again
    # and every shard's result still comes back once, in order.
    results = list(ProcessRunner(2).map(parallel_tasks.die_once, str(tmp_path), shards(range(30), 2)))
    assert (tmp_path / "killed").exists()
    assert [n for shard in results for n in shard] == [2 * n for n in range(30)]


def outputs(folder: Path) -> dict[str, object]:
    """Every file the build wrote, and the store's digests and ledger as the build left them."""
    found: dict[str, object] = dict(produced(folder))
    store = open_store(folder / ".digest" / "state.db")
    try:
        found["ledger"] = [
            (r.profile_id, r.day, r.subscriber, r.state, r.attempts, r.message_id) for r in store.deliveries()
        ]
        # Each digest as saved: its day, items (scores and reasons), runners-up (not the
        # profile, whose line in digest.toml differs between the two configs).
        found["digests"] = [
            (d.profile.id, d.date, d.items, d.runners_up, d.candidates, d.empty_reason, d.built_at)
            for profile in _profiles(folder)
            for day in store.digest_days(profile.id)
            if (d := store.load_digest(profile, day)) is not None
        ]
    finally:
        store.close()
    return found


def _profiles(folder: Path):
    from digest.config import load_config

    return load_config(folder / "digest.toml", folder).profiles


def test_one_and_two_workers_write_the_same_outputs_on_the_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    first = build(one, monkeypatch, capsys, "workers = 1")
    second = build(two, monkeypatch, capsys, "workers = 2\nshard_size = 2")
    assert first[0] == second[0] == 1
    assert first[2] == second[2]
    made_one, made_two = outputs(one), outputs(two)
    assert sorted(made_one) == sorted(made_two)
    assert [name for name in made_one if made_one[name] != made_two[name]] == []
    assert any(digest[2] for digest in made_one["digests"])  # type: ignore[attr-defined]
    assert len(made_one["ledger"]) == 6  # type: ignore[arg-type]


HEAVY = ("numpy", "scipy", "sklearn", "jinja2", "httpx", "apscheduler", "sqlite3", "digest.app", "digest.store")


def test_help_loads_none_of_the_heavy_modules() -> None:
    # What keeps `digest --help` fast: the store, the ranker, the renderers, HTTP and the
    # scheduler load only when a command runs.
    code = (
        "import sys, contextlib, io\n"
        "from digest.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout.strip().replace("'", '"')) == []
