"""Shared fixtures: the real seeds, a fresh state database, a config folder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

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
