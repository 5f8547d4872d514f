"""The pipeline: the only place that reads inputs and moves files between stages.

`ingest_files` reads input files, parses them with the first registered source that
recognises each (`digest.ingest.SOURCES`: saved JSON API responses, text dumps), stores
them (`store`) and sets aside files that no source can read. A file that is fine but whose listing the
caller's `year` cannot date (Feb 29 in a common year, or in the future) is reported and
left where it is: the year is wrong, not the file. The stages it calls stay pure; this
module owns the file system side of ingesting.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import NamedTuple

from digest.files import free_name, write_atomic
from digest.ingest import NotADump, ReadContext, Source, source_for
from digest.ingest.hf_dump import WrongYear
from digest.models import Dump, Problem
from digest.store import Store


class QuarantineError(Exception):
    """The quarantine folder cannot be used (a file is in its place, no permission): one line, exit 2."""


class SetAside(NamedTuple):
    """A file no source could read, moved to the quarantine folder: where it was, where it
    went, why (and the line that shows it, 0 for none), and both as messages name them."""

    original: Path
    moved_to: Path
    reason: str
    line: int
    name: str
    moved_name: str

    def __str__(self) -> str:
        where = f"{self.name}:{self.line}" if self.line else self.name
        return f"{where}: {self.reason}; set aside as {self.moved_name}"


@dataclass(slots=True)
class IngestSummary:
    """What one ingest run did, for the command's report and exit code."""

    files: int = 0
    dumps_new: int = 0
    dumps_seen: int = 0
    quarantined: list[SetAside] = field(default_factory=list)
    entries: int = 0
    papers_new: int = 0
    papers_updated: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def rejected(self) -> bool:
        """True when some input was set aside or skipped (exit code 1)."""
        return bool(self.quarantined or self.problems)

    def lines(self) -> list[str]:
        """One line per rejected input: each problem, then each file set aside."""
        found = [str(problem) for problem in self.problems]
        found += [str(aside) for aside in self.quarantined]
        return found


def find_dump_files(paths: Iterable[Path], *, skip: Iterable[Path] = ()) -> list[Path]:
    """Files to ingest: the files given, and every visible file under the folders given."""
    skipped = {p.resolve() for p in skip}
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for candidate in sorted(path.rglob("*")):
                relative = candidate.relative_to(path).parts
                if any(part.startswith(".") for part in relative) or not candidate.is_file():
                    continue
                if any(candidate.resolve().is_relative_to(s) for s in skipped):
                    continue
                found.append(candidate)
        else:
            found.append(path)
    return found


def ingest_files(
    store: Store,
    files: list[Path],
    *,
    quarantine: Path,
    today: date,
    now: datetime,
    year: int | None = None,
    label: Callable[[Path], str] = str,
    on_file: Callable[[Path], None] | None = None,
) -> IngestSummary:
    """Ingest each file in turn, one transaction per dump; bad files go to `quarantine`.

    Raises `QuarantineError`, before anything is ingested, when `quarantine` cannot be a
    folder (a file is in its place), or when a bad file cannot be set aside there.
    """
    summary = IngestSummary()
    if files:
        check_quarantine(quarantine)
    for path in files:
        summary.files += 1
        _ingest_one(store, path, summary, quarantine=quarantine, today=today, now=now, year=year, label=label)
        if on_file:
            on_file(path)
    return summary


def _ingest_one(
    store: Store,
    path: Path,
    summary: IngestSummary,
    *,
    quarantine: Path,
    today: date,
    now: datetime,
    year: int | None,
    label: Callable[[Path], str],
) -> None:
    name = label(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        summary.problems.append(Problem(name, 0, f"cannot read: {exc.strerror or exc}"))
        return
    try:
        parsed = _parse(data, path.name, name, store, today=today, year=year)
    except NotADump as exc:
        moved_to = quarantine_file(path, str(exc), quarantine, now)
        summary.quarantined.append(SetAside(path, moved_to, str(exc), exc.line, name, label(moved_to)))
        return
    except WrongYear as exc:
        summary.problems.append(Problem(name, 0, str(exc)))
        return
    if parsed is None:
        summary.dumps_seen += 1
        return
    source, dump, sha = parsed
    result = store.add_dump(dump, sha, now)
    if not result.new:
        summary.dumps_seen += 1
        return
    summary.dumps_new += 1
    summary.entries += len(dump.entries)
    summary.papers_new += result.papers_new
    summary.papers_updated += result.papers_updated
    summary.problems.extend(dump.problems)
    what = "entry" if source.unit == "line" else "item"
    for duplicate in result.duplicates:
        message = f"same paper as {source.unit} {duplicate.first}; {what} skipped"
        if source.unit == "line":
            summary.problems.append(Problem(name, duplicate.line, message))
        else:
            summary.problems.append(Problem(name, 0, message, item=duplicate.line))


def _parse(
    data: bytes, filename: str, name: str, store: Store, *, today: date, year: int | None
) -> tuple[Source, Dump, str] | None:
    """The source that reads the file, the file as a dump, and its content hash; None when
    that content is already stored.

    Raises `NotADump` for a file that no source reads, and `WrongYear` when `year` cannot
    be a text dump's listing year.
    """
    source = source_for(data, filename)
    reading = source.read(data, ReadContext(filename=filename, label=name, today=today, year=year))
    if any(store.has_dump(sha) for sha in reading.hashes):
        return None
    return source, reading.parse(), reading.hashes[0]


def quarantine_file(path: Path, reason: str, folder: Path, now: datetime) -> Path:
    """Move a file that is not a dump into `folder`, with `<name>.error` beside it saying why.

    Raises `QuarantineError` when the folder cannot be made or written to.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QuarantineError(_cannot_use(folder, exc)) from None
    target = free_name(folder, path.name)
    note = f"{path}: {reason}\nset aside at {now.isoformat()}\n"
    try:
        shutil.move(path, target)
    except FileNotFoundError:
        # Another ingest moved it first; its .error note already says why.
        return target
    except OSError as exc:
        try:
            shutil.copy2(path, target)
        except OSError as copy_exc:
            raise QuarantineError(f"cannot set {path} aside in {folder}: {copy_exc.strerror or copy_exc}") from None
        note += f"the original could not be moved ({exc.strerror or exc}) and was copied instead\n"
    try:
        write_atomic(target.with_name(target.name + ".error"), note)
    except OSError as exc:
        message = f"{_cannot_use(folder, exc)} ({path} was set aside as {target}, without a note)"
        raise QuarantineError(message) from None
    return target


def check_quarantine(folder: Path) -> None:
    """Raise `QuarantineError` if `folder` cannot be a folder: it, or the nearest of its
    parents that exists, is not one. (It is made only when a file is set aside.)"""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == folder else f"cannot be made: {probe} is a file"
        raise QuarantineError(f"cannot use the quarantine folder {folder}: it {where}, not a folder")


def _cannot_use(folder: Path, exc: OSError) -> str:
    return f"cannot use the quarantine folder {folder}: {exc.strerror or exc}"
