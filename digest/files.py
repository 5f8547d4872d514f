"""Writing files so that a reader never sees half of one, and naming them safely.

Every output file of the project goes through `write_atomic`: the data is written to
a temporary file in the same folder, flushed to disk, then renamed over the target.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` in one rename; create its folder if needed."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
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


def write_if_changed(path: Path, data: bytes | str, *, mode: int = 0o644) -> bool:
    """`write_atomic` unless `path` already holds exactly `data` (then its mtime stays); True if written."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        if path.read_bytes() == payload:
            return False
    except OSError:
        pass
    write_atomic(path, payload, mode=mode)
    return True
