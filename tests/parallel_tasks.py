"""Tasks for the runner tests, importable by worker processes (a test module's own functions
would drag pytest into every worker)."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def double(common: int, shard: list[int]) -> list[int]:
    """Each number times two, plus the common offset; and the worker's process id."""
    return [common + 2 * n for n in shard]


def where(common: None, shard: list[int]) -> int:
    """The process that ran the shard."""
    return os.getpid()


def die_once(common: str, shard: list[int]) -> list[int]:
    """The first process to run the shard holding 13 is killed (SIGKILL) before it returns;
    `common` is a folder where that is remembered."""
    if 13 in shard:
        marker = Path(common) / "killed"
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return [2 * n for n in shard]


def scaled(common: tuple[int, list[int]], shard: list[int]) -> list[int]:
    """Each number times the common factor, plus the sum of the common list."""
    factor, extra = common
    return [factor * n + sum(extra) for n in shard]


def frozen(common: None, shard: list[int]) -> int:
    """How many objects the worker's collector no longer walks (`gc.freeze`)."""
    import gc

    return gc.get_freeze_count()
