"""What every source's parser shares: the error for an input that is not one, short quotes.

Pure helpers; nothing here parses a whole input.
"""

from __future__ import annotations


class NotADump(ValueError):
    """The input is not one the source can read at all (binary, empty, another format)."""


def snippet(text: str, limit: int = 60) -> str:
    """`text` cut to at most `limit` characters (with '…'), for quoting input in a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
