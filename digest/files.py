"""Writing files so that a reader never sees half of one, and naming them safely.

Every output file of the project goes through `write_atomic`: the data is written to
a temporary file in the same folder (`.NAME.PID.RANDOM.tmp`), flushed to disk, then
renamed over the target; `copy_if_changed` links through `.NAME.PID.link`. A process
killed in between leaves such a file behind: `remove_stale_temporaries` removes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from digest.chars import printable

# A temporary file is stale when it is this old and the process named in it is gone: a
# write takes well under a second, so a younger one may be another process's, in use.
STALE_AFTER = 600.0
# `write_atomic`'s temporary files (tempfile's 8 random characters; names written before
# the PID was added have none) and `copy_if_changed`'s links. Nothing else matches.
_TEMPORARY = re.compile(r"\.(?P<name>.+?)\.(?:(?P<pid>[0-9]+)\.)?[a-z0-9_]{8}\.tmp")
_LINK = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.link")


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o644, durable: bool = True) -> None:
    """Replace `path` with `data` in one rename; create its folder if needed.

    `durable` flushes the data to the disk before the rename, so that after a power cut
    the file holds either the old or the new bytes. Files rebuilt from the store on every
    build (feeds, site, Markdown) skip it: readers still never see half a file, and a
    file a power cut left empty differs from what the next build renders, so
    `write_if_changed` writes it again. That saves a disk flush per file (a third of
    the time of writing a big site).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = _temporary_file(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync_folder(folder: Path) -> None:
    """Flush `folder`'s list of names to the disk: the renames `write_atomic` made in it
    survive a power cut (the files' bytes are flushed by `write_atomic` itself)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary_file(path: Path) -> tuple[int, str]:
    """A new temporary file beside `path` (`.NAME.PID.RANDOM.tmp`), its folder made if missing.

    The folder is made only when the file cannot be: a site is thousands of files in a few
    folders, and asking for each file's folder first was a system call per file."""
    prefix = f".{path.name}.{os.getpid()}."
    try:
        return tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    except (FileNotFoundError, NotADirectoryError):  # mkdir says which part is missing, or a file
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")


def display_path(path: Path, cwd: Path | None = None) -> str:
    """How messages name `path`: relative to `cwd` when it is inside it, else as it is, with
    control and format characters escaped (a file name is text from the outside)."""
    try:
        shown = str(path.resolve().relative_to(cwd.resolve())) if cwd is not None else str(path)
    except ValueError:
        shown = str(path)
    return printable(shown)


# A name kept, with room for what is added to it: `.N`, `.error`, and the temporary file
# `write_atomic` writes first (`.NAME.PID.RANDOM.tmp`), within 255 bytes.
MAX_KEPT_NAME = 200


def free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/name.1`, `.2`, … if that is taken. A name too long to
    take those suffixes is shortened, keeping its start and a hash of the whole."""
    if len(os.fsencode(name)) > MAX_KEPT_NAME:
        digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:12]
        while len(os.fsencode(name)) > MAX_KEPT_NAME - len(digest) - 1:
            name = name[:-1]
        name = f"{name}~{digest}"
    candidate = folder / name
    number = 0
    while candidate.exists() or candidate.with_name(candidate.name + ".error").exists():
        number += 1
        candidate = folder / f"{name}.{number}"
    return candidate


def write_if_changed(path: Path, data: bytes | str, *, mode: int = 0o644, durable: bool = True) -> bool:
    """`write_atomic` unless `path` already holds exactly `data` (then its mtime stays); True if written."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        if path.read_bytes() == payload:
            return False
    except OSError:
        pass
    write_atomic(path, payload, mode=mode, durable=durable)
    return True


def copy_if_changed(source: Path, path: Path, data: bytes) -> bool:
    """`path` made to hold `data`, which `source` holds already: a hard link to `source`
    (no second write) where both are on one file system, else a write. True if changed."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    link = path.with_name(f".{path.name}.{os.getpid()}.link")
    try:
        link.unlink(missing_ok=True)
        _link(source, link)
        os.replace(link, path)
    except OSError:
        with contextlib.suppress(OSError):  # a file where the folder should be: write_atomic says so
            link.unlink(missing_ok=True)
        write_atomic(path, data, durable=False)
    return True


def _link(source: Path, link: Path) -> None:
    """A hard link `link` to `source`, its folder made if missing (see `_temporary_file`)."""
    try:
        os.link(source, link)
    except (FileNotFoundError, NotADirectoryError):
        if not source.exists():
            raise
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, link)


def remove_stale_temporaries(
    folders: Iterable[Path], *, now: float | None = None, older_than: float = STALE_AFTER
) -> list[Path]:
    """Remove the temporary files a killed `write_atomic` or `copy_if_changed` left in
    `folders` (and their subfolders); return them.

    Only files named as those two name them, and only stale ones: last changed over
    `older_than` seconds before `now` (default: the clock) and, when the name holds a
    process id, that process no longer running. So another process publishing at the
    same time keeps the files it is writing.
    """
    moment = time.time() if now is None else now
    removed = []
    for folder in folders:
        for root, _, names in os.walk(folder):
            for name in names:
                match = _TEMPORARY.fullmatch(name) or _LINK.fullmatch(name)
                path = Path(root) / name
                if match is None or not _is_stale(path, match["pid"], moment, older_than):
                    continue
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue  # another process removed it first
                removed.append(path)
    return removed


def _is_stale(path: Path, pid: str | None, now: float, older_than: float) -> bool:
    try:
        if now - path.lstat().st_mtime < older_than:
            return False
    except FileNotFoundError:
        return False
    return pid is None or not _running(int(pid))


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or not a pid at all): keep its file
    return True
