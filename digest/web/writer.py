"""The web side's writes, committed together (group commit).

Every write is durable before its answer goes out (SQLite with `synchronous = FULL`: an
fsync per commit, a few milliseconds). One commit per request would cap one-click
unsubscribes at a few hundred a second however many clients wait; so the writes that
arrive while a commit is under way wait for the next one, and go in together: one
thread, its own connection, takes every write waiting (up to `MAX_BATCH`), runs each
inside the same transaction (each one a savepoint, so one that fails is undone alone),
commits once, and only then answers each. An answer therefore never comes before its
write is on disk, and a burst costs one fsync instead of a hundred.

Writes that do more than touch the database (the subscribe form sends an email) do not
come here: they would hold the lock while they wait on the network.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from digest.app import App

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BATCH = 256
_STOP = object()


class GroupWriter:
    """One thread committing the web side's writes in batches (see the module docstring)."""

    def __init__(self, root: App) -> None:
        self.root = root
        self.waiting: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="web-writer", daemon=True)
        self.thread.start()

    def submit(self, work: Callable[[App], T]) -> Future[T]:
        """Run `work(app)` in the next batch; the future is set once the batch is committed."""
        done: Future[T] = Future()
        self.waiting.put((work, done))
        return done

    def close(self) -> None:
        self.waiting.put(_STOP)
        self.thread.join(30)

    def _run(self) -> None:
        app = self.root.fresh()
        try:
            while True:
                first = self.waiting.get()
                if first is _STOP:
                    return
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        more = self.waiting.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        self.waiting.put(_STOP)
                        break
                    batch.append(more)
                self._commit(app, batch)
        finally:
            app.close()

    def _commit(self, app: App, batch: list[tuple[Callable[[App], Any], Future[Any]]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with app.store.transaction():
                for work, _ in batch:
                    try:
                        with app.store.transaction():  # a savepoint: a write that fails is undone alone
                            outcomes.append((True, work(app)))
                    except Exception as exc:
                        outcomes.append((False, exc))
        except Exception as exc:
            log.error("a batch of %d writes failed: %s", len(batch), exc)
            for _, done in batch:
                done.set_exception(exc)
            return
        for (ok, value), (_, done) in zip(outcomes, batch, strict=True):
            if ok:
                done.set_result(value)
            else:
                done.set_exception(value)
