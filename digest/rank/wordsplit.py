"""Splitting many texts into words in a second process, while this one splits others.

Splitting text into words holds the GIL (threads cannot share it), and a big batch spends
its first seconds on it: a helper process started from the same Python, with nothing but
the standard library (it starts in a few milliseconds), splits part of the texts exactly
as `features._Words.read` does and numbers the words in the order it first met them.

Never decides what a word is (the caller's byte table does), never stems or numbers
words the ranker's way, and never fails a ranking: when the helper cannot start or
breaks, `Split.result` says so and the caller reads the texts itself.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np
from numpy.typing import NDArray

_LENGTH = struct.Struct("<q")  # a frame of text: its length in bytes
_HEADER = struct.Struct("<qq")  # a frame's answer: how many tokens, how many bytes of new words
# Seconds `Split.result` waits for a helper still at work once this process has split its own
# half: a stuck helper must not stop a ranking. Its half takes about as long as this one's
# (seconds for a year's papers), so a minute more means it is stuck, and reading its texts
# here costs less than waiting on.
HELPER_WAIT = 60.0

# Run as `python -I -S -c _SCRIPT TABLE`: reads framed UTF-8 texts (each frame: its length,
# then texts joined by the caller), writes per frame the words' numbers (int32, the
# caller's mark -1) and the words it met first in that frame.
_SCRIPT = """
import array, struct, sys
table = bytes.fromhex(sys.argv[1])
mark = sys.argv[2].encode()
class Numbers(dict):
    def __missing__(self, word):
        self[word] = number = len(self) - 1
        self.order.append(word)
        return number
numbers = Numbers({mark: -1})
source, sink = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = source.read(8)
    if not head:
        break
    text = source.read(struct.unpack("<q", head)[0]).decode("utf-8", "surrogatepass")
    numbers.order = []
    found = array.array("i", map(numbers.__getitem__, text.lower().encode().translate(table).split()))
    words = b" ".join(numbers.order)
    sink.write(struct.pack("<qq", len(found), len(words)))
    sink.write(found.tobytes())
    sink.write(words)
sink.flush()
"""

Frame = tuple[list[bytes], NDArray[np.intc]]  # words first met in the frame, each token's number


@dataclass
class Split:
    """A helper at work on some frames of text; `result` waits for it, `close` stops it."""

    process: subprocess.Popen[bytes]
    output: IO[bytes]
    frames: int

    def result(self, wait: float | None = None) -> list[Frame] | None:
        """Per frame, the words first met in it (in the order met: word n is numbered n, on
        from the frames before) and each token's number; None if the helper failed or has
        not finished within `wait` seconds (`HELPER_WAIT` by default; it is then stopped)."""
        try:
            try:
                if self.process.wait(timeout=HELPER_WAIT if wait is None else wait) != 0:
                    return None
            except subprocess.TimeoutExpired:
                return None
            self.output.seek(0)
            return _frames(self.output.read(), self.frames)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the helper if it still works (its caller gave up) and let go of its output."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.output.close()


def start_split(frames: Sequence[str], table: bytes, mark: str) -> Split | None:
    """Start splitting `frames` (each, texts joined with `mark` between them) in a helper
    process, reading each as lower-cased UTF-8 with every byte mapped by `table` and split
    on spaces; None if it could not be started (no process, no room for its files)."""
    # Through files, not pipes: a pipe fed by a thread of this process would wait on the
    # GIL that the caller's own splitting holds, and the helper with it.
    output = None
    try:
        with tempfile.TemporaryFile() as source:
            for frame in frames:
                encoded = frame.encode("utf-8", "surrogatepass")
                source.write(_LENGTH.pack(len(encoded)))
                source.write(encoded)
            source.flush()
            source.seek(0)
            output = tempfile.TemporaryFile()  # noqa: SIM115 (the helper writes to it until `Split.close`)
            process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _SCRIPT, table.hex(), mark],
                stdin=source,
                stdout=output,
                stderr=subprocess.DEVNULL,
            )
    except OSError:
        if output is not None:
            output.close()
        return None
    return Split(process, output, len(frames))


def _frames(output: bytes, count: int) -> list[Frame] | None:
    """The helper's answer read back, or None if it is not one answer for `count` frames."""
    found: list[Frame] = []
    at, known = 0, 0
    for _ in range(count):
        if at + _HEADER.size > len(output):
            return None
        tokens, size = _HEADER.unpack_from(output, at)
        at += _HEADER.size
        if tokens < 0 or size < 0 or at + 4 * tokens + size > len(output):
            return None
        numbers = np.frombuffer(output, dtype=np.intc, count=tokens, offset=at)  # the helper's C ints
        at += 4 * tokens
        words = output[at : at + size].split(b" ") if size else []
        at += size
        known += len(words)
        if tokens and (int(numbers.min()) < -1 or int(numbers.max()) >= known):
            return None
        found.append((words, numbers))
    return found if at == len(output) else None
