"""The tokenizer reads each text once per process (issue 18) and gives the tokens it gave before.

`ReferenceTokenizer` is the tokenizer as it was before (every text through the regular
expression and the stemmer on every call): on the seeds, read in slices of every size
and in two orders, the new one gives the same stem ids, the same stems and the same
spellings, whether or not the process read the texts before.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import Stemmer
from conftest import SEEDS, TODAY
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from digest.ingest.hf_dump import decode_dump, parse_dump
from digest.rank import features
from digest.rank.features import Texts, Tokenizer

_WORD = re.compile(r"[a-z0-9]+")


class ReferenceTokenizer:
    """`features.Tokenizer` before issue 18, kept here to hold the new one to its tokens."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self._stemmer = Stemmer.Stemmer("english")
        self._word_index: dict[str, int] = {}
        self._words: list[str] = []
        self._word_stem = np.zeros(0, dtype=np.int64)
        self._word_count = np.zeros(0, dtype=np.int64)
        self._stem_index: dict[str, int] = {}
        self.stems: list[str] = []

    def texts(self, texts: Sequence[str]) -> list[Texts]:
        return [self._slice(texts[start : start + self.chunk]) for start in range(0, len(texts), self.chunk)]

    def _slice(self, texts: Sequence[str]) -> Texts:
        found = [_WORD.findall(text.lower()) for text in texts]
        tokens = [word for words in found for word in words]
        self._learn(set(tokens).difference(self._word_index))
        words = np.fromiter(map(self._word_index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        self._word_count += np.bincount(words, minlength=len(self._words))
        stems = self._word_stem[words]
        kept = stems >= 0
        ends = np.cumsum(np.array([len(w) for w in found], dtype=np.int64))
        kept_before = np.concatenate([[0], np.cumsum(kept)])
        return Texts(stems[kept], np.concatenate([[0], kept_before[ends]]))

    def _learn(self, new: set[str]) -> None:
        if not new:
            return
        words = sorted(new)
        content = [w for w in words if len(w) > 1 and w not in ENGLISH_STOP_WORDS]
        stem_of = dict(zip(content, self._stemmer.stemWords(content), strict=True))
        ids = []
        for word in words:
            self._word_index[word] = len(self._words)
            self._words.append(word)
            stem = stem_of.get(word)
            if stem is None:
                ids.append(-1)
                continue
            if stem not in self._stem_index:
                self._stem_index[stem] = len(self.stems)
                self.stems.append(stem)
            ids.append(self._stem_index[stem])
        self._word_stem = np.concatenate([self._word_stem, np.array(ids, dtype=np.int64)])
        self._word_count = np.concatenate([self._word_count, np.zeros(len(words), dtype=np.int64)])


# Texts that read apart and read together could split differently: the mark between two
# texts inside one, characters whose lower case is ASCII (KELVIN SIGN, Turkish dotted I),
# letters of other scripts and accents inside words, control characters, a final sigma.
ODD_TEXTS = [
    "one\x01two \x01 three",
    "\u212aelvin \u0130stanbul caf\u00e9s na\u00efve\u2013RLHF \u00d7 NeRF\u00b2",
    "\x00nul\ttab\nnew\rline\x0bvt\x0cff\x1cfs\x85nel\xa0nbsp\u2028ls",
    "\u039f\u0394\u039f\u03a3 \u03a3 word\u03a3 x\u0301y \U0001f600emoji\U0001f600",
    "",
    "UPPER lower MiXeD 3DGS GRPO-RLVR a1b2 _under_score_",
]


@pytest.mark.parametrize("marked", [False, True])
def test_texts_read_together_give_the_words_of_the_regular_expression(marked: bool) -> None:
    # Without the text holding the mark, the texts are read in one pass; with it, one by one.
    texts = [t for t in ODD_TEXTS if marked or "\x01" not in t] + seed_texts()[:60]
    words = features._Words()
    read = words.read(texts)
    assert len(read) == len(texts)
    for text, ids in zip(texts, read, strict=True):
        assert [words.words[i] for i in ids.tolist()] == _WORD.findall(text.lower())
    assert [ids.tolist() for ids in words.read(texts)] == [ids.tolist() for ids in read]  # the second time, remembered


def seed_texts() -> list[str]:
    texts = []
    for path in sorted(SEEDS.iterdir()):
        dump = parse_dump(decode_dump(path.read_bytes()), path.name, today=TODAY)
        texts += [text for entry in dump.entries for text in (entry.title, entry.abstract)]
    return texts


@pytest.mark.parametrize(("chunk", "count", "shuffled"), [(7, 300, False), (4096, None, False), (4096, None, True)])
def test_the_same_tokens_as_before_on_the_seeds(
    chunk: int, count: int | None, shuffled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = seed_texts()[:count]
    if shuffled:
        random.Random(chunk).shuffle(texts)
    monkeypatch.setattr(features, "CHUNK", chunk)
    halves = [texts[: len(texts) // 2], texts[len(texts) // 2 :], ["", "a the of", "Ünïcode ΑΒΓ x2 x2"], ODD_TEXTS]
    for _ in range(2):  # the second time, every text was read before by this process
        new, old = Tokenizer(), ReferenceTokenizer(chunk)
        for part in halves:
            made, expected = new.texts(part), old.texts(part)
            flat = np.concatenate([e.flat for e in expected]) if expected else np.zeros(0)
            assert made.flat.tolist() == flat.tolist()
            assert np.diff(made.starts).tolist() == [n for e in expected for n in np.diff(e.starts).tolist()]
        assert new.stems == old.stems
        assert new._words == old._words
        assert new._word_stem.tolist() == old._word_stem.tolist()
        assert new._word_count.tolist() == old._word_count.tolist()
        assert [new.spell(i) for i in range(len(new.stems))] == _spellings(old)


def _spellings(old: ReferenceTokenizer) -> list[str]:
    """`Tokenizer.spell` of every stem: its most frequent word, and of words as frequent the
    first in alphabetical order (before 2026-12-01: the first read, which made a reason's
    words hang on which papers were read first)."""
    best: dict[int, tuple[int, str]] = {}
    for word, stem, count in zip(old._words, old._word_stem.tolist(), old._word_count.tolist(), strict=True):
        if stem >= 0 and (stem not in best or (-count, word) < best[stem]):
            best[stem] = (-count, word)
    return [best[stem][1] if stem in best else old.stems[stem] for stem in range(len(old.stems))]


def test_threads_reading_new_words_at_once_get_the_tokens_each_would_get_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fresh process word list: every word is new, so the threads number words at once.
    monkeypatch.setattr(features, "_WORDS", features._Words())
    rng = random.Random(4)
    made_up = [" ".join(f"z{rng.randrange(5000)}q" for _ in range(40)) for _ in range(300)]
    orders = [rng.sample(seed_texts()[:400] + made_up, 700) for _ in range(4)]
    start = threading.Barrier(len(orders))

    def read(texts: list[str]) -> tuple[list[int], list[str]]:
        tokenizer = Tokenizer()
        start.wait()
        made = tokenizer.texts(texts)
        return made.flat.tolist(), tokenizer.stems

    with ThreadPoolExecutor(len(orders)) as pool:
        results = list(pool.map(read, orders))
    for texts, (flat, stems) in zip(orders, results, strict=True):
        old = ReferenceTokenizer(features.CHUNK)
        expected = old.texts(texts)
        assert flat == np.concatenate([e.flat for e in expected]).tolist()
        assert stems == old.stems
    assert len(set(features._WORDS.words)) == len(features._WORDS.words) == len(features._WORDS)


def test_threaded_work_comes_back_in_the_order_of_its_items(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(features, "THREADS", 3)
    gate = threading.Barrier(3)

    def slow_first(item: int) -> int:
        if item < 3:
            gate.wait(timeout=10)  # the first three run at once, on three threads
        return item * item

    assert features.threaded(slow_first, range(10)) == [n * n for n in range(10)]
