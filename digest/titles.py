"""How a title identifies a paper: the normalised key two sources must share, and the id it gives.

Pure string functions. Nothing here reads the store or any file.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from digest.chars import strip_format


def title_key(title: str) -> str:
    """The normalised title two sources must share to be the same paper: its words, case-
    and width-folded, format characters (zero-width spaces, bidi controls) dropped. A title
    with no word at all ("???") is keyed by its text, normalised the same way and without
    control characters, so two such titles stay two papers.

    Changing this rule needs a migration that adds each stored paper's new key (see
    `store.schema`, migration 5).
    """
    folded = unicodedata.normalize("NFKC", strip_format(title)).casefold()
    words = re.findall(r"\w+", folded)
    if words:
        return " ".join(words)
    return " ".join("".join(c for c in folded if unicodedata.category(c) != "Cc").split())


def paper_id(key: str) -> str:
    """A paper's permanent id: derived from the title it was first stored under."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
