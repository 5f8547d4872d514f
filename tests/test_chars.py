"""The character classes of `digest.chars`: searched in two parts for speed, found exactly as
one regular expression over the whole class finds them."""

from __future__ import annotations

import random
import re
import sys

import pytest

from digest import chars
from digest.chars import clean, printable, strip_format

CLASSES = {"invalid": chars._INVALID, "format": chars._FORMAT, "unprintable": chars._UNPRINTABLE}


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_every_code_point_is_found_as_the_whole_class_finds_it(name: str) -> None:
    characters = CLASSES[name]
    wrong = [
        hex(code)
        for code in range(sys.maxunicode + 1)
        if characters.found_in(chr(code)) != (characters.pattern.search(chr(code)) is not None)
    ]
    assert wrong == []


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_texts_mixing_plain_and_astral_characters_are_judged_alike(name: str) -> None:
    characters = CLASSES[name]
    pool = ["a", "é", "—", "\t", "\n", "\U0001f600", "\U000e0041", "\U0010fffe", "\u200b", "\x00", "\ufdd5", "\ud800"]
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 6)))
        assert characters.found_in(text) == (characters.pattern.search(text) is not None), repr(text)


def test_a_character_beyond_the_plane_is_still_cleaned_when_the_rest_is_plain() -> None:
    # U+E0041 (a tag character, format) is the only bad character: the second part finds it.
    assert clean("LoRA\U000e0041 adapters \U0001f600") == "LoRA adapters \U0001f600"
    assert strip_format("x\U000e0001y") == "xy"
    assert printable("a\U000e0041") == "a\\U000e0041"
    assert clean("plain ASCII text, tabs\tand\nlines") == "plain ASCII text, tabs\tand\nlines"


def test_a_range_across_the_plane_boundary_is_refused() -> None:
    with pytest.raises(ValueError, match="U\\+FFFF"):
        chars._Characters("\ufff0-\U00010010")
    assert chars._Characters("a-z").pattern == re.compile("[a-z]")
