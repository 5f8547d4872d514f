"""What every source's parser shares: the error for an input that is not one, short quotes.

Pure helpers; nothing here parses a whole input.
"""

from __future__ import annotations

import codecs


class NotADump(ValueError):
    """The input is not one the source can read at all (binary, empty, another format).

    `line` is where the input shows it (1-based), when one line does.
    """

    def __init__(self, message: str, *, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


def snippet(text: str, limit: int = 60) -> str:
    """`text` cut to at most `limit` characters (with '…'), for quoting input in a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decode_text(data: bytes, error: type[NotADump], *, empty: str, binary: str) -> str:
    """UTF-8 bytes (a BOM allowed) as text; `error(empty)` for nothing but white space,
    `error(binary)` for NUL bytes, `error` naming the line and offset for bytes that are not UTF-8."""
    if not data.strip():
        raise error(empty)
    if b"\x00" in data:
        raise error(binary)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0)
        before = data[:offset]
        line = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n") + 1  # LF, CR LF or CR
        raise error(f"not UTF-8 text (invalid byte at line {line}, offset {offset})") from None
