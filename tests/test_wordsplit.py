"""The helper process that splits texts into words (`digest.rank.wordsplit`), on its own
and as `features._Words.read_ahead` uses it: the same words as the regular expression, and
when the helper cannot start or breaks, the texts are read here."""

from __future__ import annotations

import re
import sys
import tempfile

import numpy as np
import pytest
from test_tokenizer import ODD_TEXTS, ReferenceTokenizer, seed_texts

from digest.rank import features, wordsplit
from digest.rank.features import Tokenizer

_WORD = re.compile(r"[a-z0-9]+")
MARK = features._MARK


def test_words_are_numbered_in_the_order_first_met_across_frames() -> None:
    split = wordsplit.start_split([f"A b {MARK} c a", "b D\u00e9j\u00e0"], features._WORD_BYTES, MARK)
    assert split is not None
    found = split.result()
    assert found is not None
    assert [(words, numbers.tolist()) for words, numbers in found] == [
        ([b"a", b"b", b"c"], [0, 1, -1, 2, 0]),
        ([b"d", b"j"], [1, 3, 4]),
    ]


def test_a_frame_of_odd_text_splits_as_the_regular_expression() -> None:
    texts = [t for t in ODD_TEXTS if MARK not in t]
    split = wordsplit.start_split([f" {MARK} ".join(texts)], features._WORD_BYTES, MARK)
    assert split is not None
    found = split.result()
    assert found is not None
    ((words, numbers),) = found
    expected = [word for text in texts for word in [*_WORD.findall(text.lower()), MARK]][:-1]
    assert [MARK if n < 0 else words[n].decode() for n in numbers.tolist()] == expected


@pytest.mark.parametrize(
    "script",
    [
        "import sys; sys.exit(3)",  # fails
        "import sys; sys.stdin.buffer.read(); sys.stdout.buffer.write(b'\\x05\\x00')",  # answers short
        "import sys; sys.stdin.buffer.read(); sys.stdout.buffer.write(bytes(16) + b'extra')",  # answers too much
        # a frame claiming more numbers than it holds; a number naming no word it sent
        "import struct, sys; sys.stdin.buffer.read(); sys.stdout.buffer.write(struct.pack('<qq', 5, 0))",
        "import struct, sys; sys.stdin.buffer.read(); sys.stdout.buffer.write(struct.pack('<qqi', 1, 0, 7))",
        "import struct, sys; sys.stdin.buffer.read(); sys.stdout.buffer.write(struct.pack('<qq', -1, 0))",
    ],
)
def test_a_helper_that_breaks_gives_no_result(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wordsplit, "_SCRIPT", script)
    split = wordsplit.start_split(["a b"], features._WORD_BYTES, MARK)
    assert split is not None
    assert split.result() is None


def test_a_helper_that_never_answers_is_stopped_and_gives_no_result(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wordsplit, "_SCRIPT", "import time; time.sleep(600)")
    split = wordsplit.start_split(["a b"], features._WORD_BYTES, MARK)
    assert split is not None
    assert split.result(wait=0.2) is None
    assert split.process.returncode is not None and split.output.closed


def test_a_helper_that_cannot_start_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert wordsplit.start_split(["a b"], features._WORD_BYTES, MARK) is None


def test_a_helper_without_room_for_its_files_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", "/nonexistent-folder")
    assert wordsplit.start_split(["a b"], features._WORD_BYTES, MARK) is None


def test_a_helper_is_stopped_and_let_go_when_this_half_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "SPLIT_TEXTS", 2)
    started: list[wordsplit.Split] = []
    start = wordsplit.start_split

    def keep(frames: list[str], table: bytes, mark: str) -> wordsplit.Split | None:
        split = start(frames, table, mark)
        assert split is not None
        started.append(split)
        return split

    monkeypatch.setattr(wordsplit, "start_split", keep)
    words = features._Words()

    def fails(texts: object) -> None:
        raise MemoryError

    monkeypatch.setattr(words, "read", fails)
    with pytest.raises(MemoryError):
        words.read_ahead(_made_up(40))
    (split,) = started
    assert split.process.returncode is not None  # waited for: no process left behind
    assert split.output.closed


def _spied(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each helper started gave a result."""
    answered: list[bool] = []
    start = wordsplit.start_split

    def spy(frames: list[str], table: bytes, mark: str) -> wordsplit.Split | None:
        split = start(frames, table, mark)
        if split is None:
            answered.append(False)
            return None
        result = split.result

        def recorded() -> list[wordsplit.Frame] | None:
            found = result()
            answered.append(found is not None)
            return found

        split.result = recorded  # type: ignore[method-assign]
        return split

    monkeypatch.setattr(wordsplit, "start_split", spy)
    return answered


def _made_up(count: int) -> list[str]:
    return [f"w{n}x z{n % 7} Shared{n % 3} wörd{n}" for n in range(count)]


def test_texts_read_ahead_give_the_words_of_the_regular_expression(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "SPLIT_TEXTS", 2)
    monkeypatch.setattr(features, "CHUNK", 7)  # several frames for the helper
    answered = _spied(monkeypatch)
    texts = [t for t in ODD_TEXTS if MARK not in t] + seed_texts()[:80] + _made_up(40)
    words = features._Words()
    words.read_ahead(texts)
    assert answered == [True]
    assert set(words.texts) == set(texts)  # all read now, half of them by the helper
    for text, ids in zip(texts, words.read(texts), strict=True):
        assert [words.words[i] for i in ids.tolist()] == _WORD.findall(text.lower())
    assert len(set(words.words)) == len(words.words)


@pytest.mark.parametrize("helper", ["works", "fails", "stuck", "absent", "no room"])
def test_the_tokenizer_gives_the_tokens_as_before_whatever_the_helper_does(
    helper: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features, "_WORDS", features._Words())
    monkeypatch.setattr(features, "SPLIT_TEXTS", 2)
    answered = _spied(monkeypatch)
    if helper == "fails":
        monkeypatch.setattr(wordsplit, "_SCRIPT", "import sys; sys.exit(1)")
    if helper == "stuck":
        monkeypatch.setattr(wordsplit, "_SCRIPT", "import time; time.sleep(600)")
        monkeypatch.setattr(wordsplit, "HELPER_WAIT", 0.2)
    if helper == "absent":
        monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    if helper == "no room":
        monkeypatch.setattr(tempfile, "tempdir", "/nonexistent-folder")
    texts = seed_texts()[:300] + _made_up(50)
    new, old = Tokenizer(), ReferenceTokenizer(features.CHUNK)
    made, expected = new.texts(texts), old.texts(texts)
    assert made.flat.tolist() == [n for e in expected for n in e.flat.tolist()]
    assert np.diff(made.starts).tolist() == [n for e in expected for n in np.diff(e.starts).tolist()]
    assert new.stems == old.stems
    assert new._word_count.tolist() == old._word_count.tolist()
    assert answered == [helper == "works"]


def test_texts_holding_the_mark_are_read_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "SPLIT_TEXTS", 2)
    answered = _spied(monkeypatch)
    texts = ODD_TEXTS + _made_up(10)
    words = features._Words()
    words.read_ahead(texts)
    assert answered == []
    for text, ids in zip(texts, words.read(texts), strict=True):
        assert [words.words[i] for i in ids.tolist()] == _WORD.findall(text.lower())
