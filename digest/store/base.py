"""What every part of the store shares: the open connection, its transactions, its error.

Each write is one transaction taken with `BEGIN IMMEDIATE`, so two processes serialise
on SQLite's own lock instead of racing between a read and a write; a write made inside
another one is a savepoint of it. This module holds no SQL about any table.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

from digest.clock import aware

_SAVEPOINTS = itertools.count(1)


class StoreError(RuntimeError):
    """The database cannot be used (newer schema, not a database, unwritable)."""


class StoreBase:
    """One open connection (see `digest.store.open_store`)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate write transaction: committed on success, rolled back on error.

        Inside another one (a batch of writes committed together, as the web side's group
        commit makes), a savepoint: its writes are undone alone on error, and committed with
        the batch."""
        if self._db.in_transaction:
            name = f"part{next(_SAVEPOINTS)}"
            self._db.execute(f"SAVEPOINT {name}")
            try:
                yield self._db
            except BaseException:
                self._db.execute(f"ROLLBACK TO {name}")
                self._db.execute(f"RELEASE {name}")
                raise
            self._db.execute(f"RELEASE {name}")
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


def moment(text: str) -> datetime:
    """A stored ISO time, time-zone aware."""
    return aware(datetime.fromisoformat(text))


def day_or_none(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def version_of(rows: object) -> str:
    """A version of what `rows` hold: the same rows, the same text (a SHA-256 of their repr)."""
    return hashlib.sha256(repr(rows).encode("utf-8", "surrogatepass")).hexdigest()
