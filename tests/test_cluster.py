"""The Dask runner: a real `distributed.LocalCluster` of worker processes on 127.0.0.1.

`digest run` with `[digest] scheduler` (the same as `--scheduler`) sends the shards to the
cluster and writes what the one-process build writes (the golden copy), including when a
worker process is killed in the middle of the build: its shard runs again elsewhere and
nothing is written or sent twice. Without the extra, or without a reachable scheduler,
`--scheduler` is a one-line error and nothing is done.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import parallel_tasks
import pytest
from conftest import run_digest
from distributed import Client, LocalCluster
from test_build_golden import build, check_against_golden

from digest import parallel
from digest.models import DeliveryState
from digest.store import open_store


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as local:
        yield local


def test_a_build_on_a_cluster_matches_the_golden_copy(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built = build(tmp_path, monkeypatch, capsys, f'scheduler = "{cluster.scheduler_address}"\nshard_size = 1')
    check_against_golden(built, tmp_path, update=False)


def test_a_worker_killed_in_the_middle_of_the_build_has_its_shard_run_again(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The first shard's result is waiting on the worker that made it when that worker's
    # process is killed (SIGKILL): Dask runs the shard again on the other worker, and the
    # coordinator writes what comes back, once.
    killed: list[int] = []
    gather = parallel.DaskRunner._gather

    def kill_then_gather(self: parallel.DaskRunner, future: Any) -> Any:
        if not killed:
            while future.status != "finished":  # done, its result held by the worker that made it
                time.sleep(0.01)
            pids = self.client.run(os.getpid)
            (holder,) = self.client.who_has(future)[future.key]
            os.kill(pids[holder], signal.SIGKILL)
            killed.append(pids[holder])
            result = gather(self, future)
            assert holder not in self.client.who_has(future)[future.key]  # made again, elsewhere
            return result
        return gather(self, future)

    monkeypatch.setattr(parallel.DaskRunner, "_gather", kill_then_gather)
    built = build(tmp_path, monkeypatch, capsys, f'scheduler = "{cluster.scheduler_address}"\nshard_size = 1')
    assert killed
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # the worker's process is gone
    check_against_golden(built, tmp_path, update=False)
    store = open_store(tmp_path / ".digest" / "state.db")
    try:
        rows = store.deliveries()
    finally:
        store.close()
    assert len(rows) == 6 and {(r.state, r.attempts, r.possible_duplicate) for r in rows} == {
        (DeliveryState.SENT, 1, False)
    }
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=30)  # the nanny replaced the killed worker, for the next test


def test_a_shard_whose_task_the_scheduler_forgot_is_sent_again(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen once in many runs of the test above: the worker holding a result died and the
    # scheduler answered "cancelled: already forgotten". A shard is pure, so it goes again.
    from concurrent.futures import CancelledError

    forgotten: list[Any] = []
    gather = parallel.DaskRunner._gather

    def forget_the_first(self: parallel.DaskRunner, future: Any) -> Any:
        if not forgotten:
            forgotten.append(future)
            future.cancel()
            raise CancelledError(f"{future.key} cancelled for reason: already forgotten.")
        return gather(self, future)

    monkeypatch.setattr(parallel.DaskRunner, "_gather", forget_the_first)
    runner = parallel.DaskRunner(cluster.scheduler_address)
    try:
        got = list(runner.map(parallel_tasks.scaled, (3, []), parallel.shards(list(range(5)), 2)))
    finally:
        runner.close()
    assert forgotten and got == [[0, 3], [6, 9], [12]]


@pytest.mark.parametrize("common", [(3, [1, 2]), [3, [1, 2]]])
def test_common_data_that_is_a_tuple_or_a_list_reaches_every_shard_whole(
    cluster: LocalCluster, common: tuple[int, list[int]] | list[Any]
) -> None:
    # Dask scatters a tuple or a list item by item; the runner's common data is one value.
    runner = parallel.DaskRunner(cluster.scheduler_address)
    try:
        got = list(runner.map(parallel_tasks.scaled, common, parallel.shards(list(range(5)), 2)))
    finally:
        runner.close()
    assert got == [[3, 6], [9, 12], [15]]


def test_scheduler_without_the_extra_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # what `import distributed` does without the extra
    done = run_digest("build", "--scheduler", "tcp://127.0.0.1:8786", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "digest: error: --scheduler tcp://127.0.0.1:8786: the cluster extra is not installed: "
        "pip install 'paper-digest[cluster]'"
    ]
    assert not (tmp_path / ".digest").exists()  # nothing was done


def test_a_scheduler_that_cannot_be_reached_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT", 0.5)
    done = run_digest("run", "--scheduler", "tcp://127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("digest: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert not (tmp_path / ".digest").exists()


def test_a_scheduler_address_is_checked(tmp_path: Path) -> None:
    done = run_digest("build", "--scheduler", "http://example.org", cwd=tmp_path)
    assert done.returncode == 2 and "is not a Dask scheduler address like 'tcp://HOST:8786'" in done.stderr
