"""Unicode format characters (category Cf): invisible, and never meaningful in a paper's text.

A zero-width space inside a word makes two spellings of one title; U+202E (right-to-left
override) and the other bidirectional controls make text read differently from what it
says. Title matching (`store.title_key`) and the text cleaning every renderer uses
(`clean`, here) drop them, as they drop control characters; messages that name
something from the outside (a file name) escape them (`printable`).

The ranges are those of Unicode 15.1 (Python 3.11 ships 14.0, 3.13 ships 15.1);
tests/test_store.py checks they cover every Cf character the running Python knows.
`name_key` folds a person's name for comparison (followed authors).
Pure: string functions only.
"""

from __future__ import annotations

import re
import unicodedata

FORMAT_CHARACTERS = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
"""The body of a regular expression character class matching every format character."""

NONCHARACTERS = "\ufdd0-\ufdef" + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17))
"""The body of a character class matching Unicode's 66 non-characters (never meant for interchange)."""

_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")


class _Characters:
    """A character class that is quick to search for.

    `re` compiles a class holding characters beyond U+FFFF into a list it tries one item
    at a time, for every character of the text: 67 µs to find nothing in a 1,500-character
    abstract, against 4 µs for a class of characters up to U+FFFF (a lookup table). The
    renderers clean every text they show, so the class is searched in two parts: its
    characters up to U+FFFF, then, in a text that has a character beyond (rare), all of it.
    """

    def __init__(self, body: str) -> None:
        self.pattern = re.compile(f"[{body}]")
        parts = re.findall(r".-.|.", body, re.DOTALL)
        if any(part[0] <= "\uffff" < part[-1] for part in parts):
            raise ValueError("a range across U+FFFF: split it in two")
        self._bmp = re.compile("[" + "".join(part for part in parts if part[-1] <= "\uffff") + "]")

    def found_in(self, text: str) -> bool:
        if self._bmp.search(text) is not None:
            return True
        return not text.isascii() and _BEYOND_BMP.search(text) is not None and self.pattern.search(text) is not None


_FORMAT = _Characters(FORMAT_CHARACTERS)
_UNPRINTABLE = _Characters(f"\x00-\x1f\x7f-\x9f\ud800-\udfff{FORMAT_CHARACTERS}")


_INVALID = _Characters(f"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff{NONCHARACTERS}{FORMAT_CHARACTERS}")


def clean(text: str) -> str:
    """`text` without the characters no output should carry (control and format characters,
    NUL, lone surrogates, non-characters); tabs and line breaks stay."""
    return _INVALID.pattern.sub("", text) if _INVALID.found_in(text) else text


def strip_format(text: str) -> str:
    """`text` without format characters (zero-width spaces and joiners, bidi controls, soft hyphens...)."""
    return _FORMAT.pattern.sub("", text) if _FORMAT.found_in(text) else text


def printable(text: str) -> str:
    """`text` with every control, format or undecodable character written as an escape
    (`\\n`, `\\x1b`, `\\u202e`), so that a name from the outside (a file in the inbox)
    stays one line on a terminal and cannot move its cursor or reverse its text."""
    if not _UNPRINTABLE.found_in(text):
        return text
    return _UNPRINTABLE.pattern.sub(lambda match: repr(match.group())[1:-1], text)


_NOT_A_LETTER = re.compile(r"[^\w]+|_")
# Letters that are not a base letter plus an accent (NFKD keeps them whole), as the Latin
# letters names are also written with ('Łukasz' is often 'Lukasz' on arXiv).
_PLAIN_LETTERS = str.maketrans(
    {"ł": "l", "ø": "o", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ı": "i", "ħ": "h", "ŧ": "t", "ŀ": "l"}
)


def name_key(name: str) -> str:
    """A person's name as compared, not as shown: case, accents, format characters and
    punctuation set aside, so 'Yann LeCun', 'YANN LECUN' and 'Yánn  LeCun' are one name,
    and 'Łukasz' and 'Søren' are 'Lukasz' and 'Soren'."""
    # The plain letters first: NFKD would take 'ŀ' apart into 'l' and a middle dot.
    decomposed = unicodedata.normalize("NFKD", strip_format(name).casefold().translate(_PLAIN_LETTERS))
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NOT_A_LETTER.sub(" ", letters.casefold()).split())
