"""Writing files so that a reader never sees half of one, and naming them safely.

Every output file of the project goes through `write_atomic`: the data is written to
a temporary file in the same folder, flushed to disk, then renamed over the target.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `folder/name.1`, `.2`, … if that is taken."""
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
    path.parent.mkdir(parents=True, exist_ok=True)
    link = path.with_name(f".{path.name}.{os.getpid()}.link")
    try:
        link.unlink(missing_ok=True)
        os.link(source, link)
        os.replace(link, path)
    except OSError:
        link.unlink(missing_ok=True)
        write_atomic(path, data, durable=False)
    return True
