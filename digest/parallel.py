"""Running the daily job's pure work on shards of profiles: here, in local worker processes, or on a Dask cluster.

The daily job is parallel by profile: each profile is ranked, and its feeds, pages and
emails rendered, from data that no other profile changes. `App` cuts the profiles into
shards (`shards`), reads what each shard needs from the store, and hands the shards to a
`Runner`, which runs a task (a pure function of `digest.tasks`) on each and gives the
results back in the order of the shards. The coordinator alone touches the store, the
ledger and the files; a task gets plain data and returns plain data.

- `InlineRunner`: in this process, one shard after another (`[digest] workers = 1`).
- `ProcessRunner`: a pool of local worker processes (`[digest] workers`, default one per
  CPU). Forked from a clean server process (`forkserver`), never from the coordinator,
  which may have threads. A map of a single shard runs in this process: starting workers
  would cost more than it saves.
- `DaskRunner`: the tasks of a Dask distributed cluster (`[digest] scheduler`, or
  `digest build --scheduler tcp://HOST:8786`); needs the `cluster` extra. Dask re-runs the
  task of a worker that is lost; the coordinator writes each result once, as it arrives.

`open_runner` is the one place that chooses. Each map sends its `common` data (the same
for every shard: the day's background papers, the render settings) once per worker, and
keeps at most `in_flight` shards out at a time, so the coordinator's and each worker's
memory stay flat however many profiles there are.

This module never reads the store, renders, ranks or sends: it only moves data.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from typing import Any, Protocol, TypeVar

Common = TypeVar("Common")
Shard = TypeVar("Shard")
Result = TypeVar("Result")
Item = TypeVar("Item")

CLUSTER_HINT = "the cluster extra is not installed: pip install 'paper-digest[cluster]'"
CONNECT_TIMEOUT = 10.0  # seconds to reach a Dask scheduler
RESUBMITS = 2  # times a shard whose task the scheduler forgot is sent again
POOL_RESTARTS = 2  # times a local pool whose worker died is started again before the map gives up
# Modules a worker needs, imported once by the process the workers are forked from (NumPy,
# SciPy and scikit-learn take seconds: a worker forked with them starts at once).
PRELOAD = ["digest.tasks", "digest.rank"]


class ClusterUnavailable(RuntimeError):
    """The Dask runner cannot be used: the extra is missing, or the scheduler cannot be reached. One line."""


class Runner(Protocol):
    """Runs `task(common, shard)` for each shard, giving the results in the order of the shards."""

    workers: int

    def map(
        self, task: Callable[[Common, Shard], Result], common: Common, shards: Iterable[Shard]
    ) -> Iterator[Result]: ...

    def close(self) -> None: ...


def shards(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    """`items` in lists of `size` (the last one shorter), read lazily."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def prefetched(items: Iterable[Item], depth: int = 2) -> Iterator[Item]:
    """`items`, read `depth` ahead by a thread of this process: the coordinator reads the next
    shards from the store while it writes what the workers returned. Only for reads that
    nothing else does on the same connection meanwhile."""
    ahead: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                ahead.put((True, item))
        except BaseException as exc:  # handed to the reader, raised there
            ahead.put((False, exc))
            return
        ahead.put((False, None))

    reader = threading.Thread(target=read, name="prefetch", daemon=True)
    reader.start()
    try:
        while True:
            more, item = ahead.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # let a reader blocked on a full queue see the stop
            with contextlib.suppress(queue.Empty):
                ahead.get(timeout=0.05)
        reader.join()


def open_runner(workers: int, scheduler: str = "", *, in_flight: int | None = None) -> Runner:
    """The runner for these settings: a Dask cluster when `scheduler` is given, else local
    worker processes when `workers` > 1, else this process. Raises `ClusterUnavailable`."""
    if scheduler:
        return DaskRunner(scheduler, in_flight=in_flight)
    if workers > 1:
        return ProcessRunner(workers, in_flight=in_flight)
    return InlineRunner()


class InlineRunner:
    """Every shard in this process, one after another: today's single process."""

    workers = 1

    def map(self, task: Callable[[Common, Shard], Result], common: Common, shards: Iterable[Shard]) -> Iterator[Result]:
        for shard in shards:
            yield task(common, shard)

    def close(self) -> None:
        """Nothing to release."""


# -- local worker processes ---------------------------------------------------------------

_common: Any = None  # in a worker process: the map's common data, sent once when the worker starts


def _install(common: Any) -> None:
    global _common
    _common = common
    # What the worker was forked with (NumPy, SciPy, the templates) and the map's common data
    # live as long as it does: out of the collector's reach, a collection no longer walks them.
    gc.freeze()


def _call(task: Callable[[Any, Any], Any], shard: Any) -> Any:
    return task(_common, shard)


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


class ProcessRunner:
    """A pool of `workers` local processes per map (see the module docstring).

    A worker process that dies (killed, out of memory) breaks the pool: the pool is
    started again and the shards it had not returned are run again, at most
    `POOL_RESTARTS` times. Tasks are pure, so running a shard twice changes nothing.
    """

    def __init__(self, workers: int, *, in_flight: int | None = None) -> None:
        self.workers = workers
        self.in_flight = in_flight or 2 * workers

    def map(self, task: Callable[[Common, Shard], Result], common: Common, shards: Iterable[Shard]) -> Iterator[Result]:
        iterator = iter(shards)
        first = list(islice(iterator, 2))
        if len(first) < 2:  # one shard: no processes to start
            yield from (task(common, shard) for shard in first)
            return
        yield from self._pooled(task, common, _chain(first, iterator))

    def _pooled(self, task: Callable[[Any, Any], Any], common: Any, shards: Iterator[Any]) -> Iterator[Any]:
        waiting: deque[tuple[Any, Future[Any] | None]] = deque()  # shards out, oldest first
        restarts = 0
        pool = self._pool(common)
        try:
            while True:
                while len(waiting) < self.in_flight and (shard := next(shards, _END)) is not _END:
                    waiting.append((shard, _submit(pool, task, shard)))
                if not waiting:
                    return
                shard, future = waiting[0]
                try:
                    if future is None:
                        raise BrokenProcessPool("the pool broke before this shard was sent")
                    result = future.result()
                except BrokenProcessPool:
                    restarts += 1
                    if restarts > POOL_RESTARTS:
                        raise
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._pool(common)
                    waiting = deque((s, f if _returned(f) else _submit(pool, task, s)) for s, f in waiting)
                    continue
                waiting.popleft()
                yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _pool(self, common: Any) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=_context(), initializer=_install, initargs=(common,))

    def close(self) -> None:
        """Pools live for one map: nothing to release."""


_END: Any = object()


def _submit(pool: ProcessPoolExecutor, task: Callable[[Any, Any], Any], shard: Any) -> Future[Any] | None:
    try:
        return pool.submit(_call, task, shard)
    except BrokenProcessPool:
        return None


def _returned(future: Future[Any] | None) -> bool:
    """Whether a shard's result came back before its pool broke (then it is kept)."""
    return future is not None and future.done() and not future.cancelled() and future.exception() is None


def _chain(first: Sequence[Any], rest: Iterator[Any]) -> Iterator[Any]:
    yield from first
    yield from rest


# -- a Dask cluster ------------------------------------------------------------------------


class DaskRunner:
    """The tasks of a Dask distributed cluster (see the module docstring).

    The common data is scattered to every worker once per map; each shard is one task.
    A worker that dies takes its tasks with it and the scheduler runs them again on
    another (up to its `allowed-failures`), so each shard's result still arrives once.
    """

    def __init__(self, address: str, *, in_flight: int | None = None) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ClusterUnavailable(f"--scheduler {address}: {CLUSTER_HINT}") from None
        try:
            self.client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterUnavailable(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self.address = address
        self.workers = max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))
        self.in_flight = in_flight or 2 * self.workers

    def map(self, task: Callable[[Common, Shard], Result], common: Common, shards: Iterable[Shard]) -> Iterator[Result]:
        client = self.client
        # Wrapped: Dask scatters a tuple or a list item by item, and `common` is one value.
        [shared] = client.scatter([common], broadcast=True, hash=False)
        waiting: deque[tuple[Any, Shard]] = deque()
        iterator = iter(shards)
        try:
            while True:
                while len(waiting) < self.in_flight and (shard := next(iterator, _END)) is not _END:
                    waiting.append((client.submit(task, shared, shard, pure=False), shard))
                if not waiting:
                    return
                future, shard = waiting.popleft()
                for attempt in range(RESUBMITS + 1):
                    try:
                        result = self._gather(future)
                        break
                    except CancelledError:
                        # The scheduler forgot the task when the worker holding it died (seen
                        # once in many runs): a shard is pure, so it is sent again.
                        if attempt == RESUBMITS:
                            raise
                        future = client.submit(task, shared, shard, pure=False)
                future.release()
                yield result
        finally:
            for future, _ in waiting:
                future.cancel()
            shared.release()

    def _gather(self, future: Any) -> Any:
        """The task's result: held by a worker until fetched (a worker lost first means it runs again)."""
        return future.result()

    def close(self) -> None:
        self.client.close()
