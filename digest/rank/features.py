"""Text to features: the words the ranker reads, as stem ids, word pairs and count matrices.

Title and abstract are lower-cased, split into words, stripped of English stop words and
stemmed (Snowball, so 'quantize' meets 'quantization'); each text also gets its word
pairs (bigrams, so 'knowledge distillation' is one feature). `Features` turns texts into
count rows over one feature space (every stem, and the word pairs that can relate two
texts); `Phrases` finds the profiles' keywords and exclusions in them. A `Corpus` is a
background read once, its counts (`Statistics`) added to each batch's instead of its rows.
A batch of many new texts has half of them split into words by a helper process
(`wordsplit`) while this one splits the rest: the same words, in half the time.

Never weighs anything (no TF-IDF, no scores: `scoring` does) and never looks at profiles
beyond the phrases they own.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import Stemmer
from numpy.typing import NDArray
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from digest.models import Paper, Profile
from digest.rank import wordsplit
from digest.wanted import wanted_text

CHUNK = 4096  # texts tokenised, matrix rows built and papers scored this many at a time
THREADS = max(1, min(4, os.cpu_count() or 1))  # threads building matrices and scoring chunks (memory grows with each)
THREADED_WORDS = 1_000_000  # below this many words a batch's feature space is built in one thread

_WORD = re.compile(r"[a-z0-9]+")
# `_WORD` over many texts at once: lower-cased and UTF-8 encoded, every byte but a word's
# made a space (a character outside [a-z0-9] separates words, and every byte of a non-ASCII
# character is >= 0x80), then split; texts are joined with `_MARK` between them.
_MARK = "\x01"
_WORD_BYTES = bytes(c if chr(c) in "abcdefghijklmnopqrstuvwxyz0123456789" + _MARK else 0x20 for c in range(256))
_PAIR = np.int64(1 << 31)  # a word pair's key: first stem id * _PAIR + second stem id
SPLIT_TEXTS = 20_000  # from this many new texts, a helper process splits half of them (starting it costs ~20 ms)
TEXTS_KEPT = 200_000  # texts whose words a process remembers (a day's and the background's, many times over)

Ids = NDArray[np.int64]
Item = TypeVar("Item")
Result = TypeVar("Result")


def threaded(work: Callable[[Item], Result], items: Iterable[Item], *, worth: bool = True) -> list[Result]:
    """`work` on every item, on `THREADS` threads (for work that releases the GIL), in order;
    in this thread when not `worth` it (a small batch: starting threads would cost more)."""
    items = list(items)
    if THREADS == 1 or len(items) < 2 or not worth:
        return [work(item) for item in items]
    with ThreadPoolExecutor(min(THREADS, len(items))) as pool:
        return list(pool.map(work, items))


class _Words(dict[str, int]):
    """Every word this process has read (word -> the process's id for it), with its stem,
    and the words of each text read before: a profile's ranking reads the same background
    papers as the one before it, so each text goes through the regular expression and the
    stemmer once per process, not once per profile. Word ids here are the process's own; a
    `Tokenizer` numbers words and stems its own way, as if it had read the texts itself."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.words: list[str] = []
        self.stems: list[str | None] = []  # None: a stop word, or a single character
        self.texts: dict[str, NDArray[np.int64]] = {}
        self._stemmer = Stemmer.Stemmer("english")
        self._bytes = _ByBytes(self)

    def __missing__(self, word: str) -> int:
        # Called for a word not read before: numbering every word is then one pass in C.
        with self.lock:
            if word in self:  # another thread numbered it meanwhile
                return dict.__getitem__(self, word)
            content = len(word) > 1 and word not in ENGLISH_STOP_WORDS
            self.stems.append(self._stemmer.stemWord(word) if content else None)
            self.words.append(word)
            self[word] = number = len(self.words) - 1
            return number

    def read(self, texts: Sequence[str]) -> list[NDArray[np.int64]]:
        """Each text's word ids. Texts not read before are read together: one pass of
        `bytes.split` over all of them makes the word strings in a third of the time that a
        regular expression per text takes."""
        found = [self.texts.get(text) for text in texts]
        new = list(dict.fromkeys(text for text, ids in zip(texts, found, strict=True) if ids is None))
        if not new:
            return found  # type: ignore[return-value]
        joined = f" {_MARK} ".join(new)
        if joined.count(_MARK) == len(new) - 1:
            tokens = joined.lower().encode().translate(_WORD_BYTES).split()
            read = _between_marks(np.fromiter(map(self._bytes.__getitem__, tokens), dtype=np.int64, count=len(tokens)))
        else:  # a text holds the mark itself: one at a time
            read = [self._one(text) for text in new]
        with self.lock:
            if len(self.texts) + len(new) > TEXTS_KEPT:
                self.texts.clear()
            self.texts.update(zip(new, read, strict=True))
        by_text = dict(zip(new, read, strict=True))
        return [by_text[text] if ids is None else ids for text, ids in zip(texts, found, strict=True)]

    def read_ahead(self, texts: Sequence[str]) -> None:
        """Read many texts not read before into memory, half of them (by length) in a
        helper process (`wordsplit`) while this one reads the other half: what `read` then
        gives for them is what it would have given, in half the time."""
        if len(texts) < SPLIT_TEXTS:  # most calls: not worth looking for the new ones
            return
        new = [text for text in dict.fromkeys(texts) if text not in self.texts]
        if len(new) < SPLIT_TEXTS or len(self.texts) + len(new) > TEXTS_KEPT or any(_MARK in t for t in new):
            return
        lengths = np.cumsum([len(text) for text in new])
        half = max(1, int(np.searchsorted(lengths, lengths[-1] / 2)))
        theirs = [new[start : start + CHUNK] for start in range(half, len(new), CHUNK)]
        split = wordsplit.start_split([f" {_MARK} ".join(part) for part in theirs], _WORD_BYTES, _MARK)
        try:
            for start in range(0, half, CHUNK):
                self.read(new[start : min(start + CHUNK, half)])
            found = split.result() if split is not None else None
        finally:  # this half failed: no helper is left behind
            if split is not None:
                split.close()
        if found is None:  # no helper: `read` reads them here when asked
            return
        numbers = np.full(1, -1, dtype=np.int64)  # the helper's word n -> ours; its last, -1, is the mark
        for part, (words, tokens) in zip(theirs, found, strict=True):
            ours = np.fromiter(map(self._bytes.__getitem__, words), dtype=np.int64, count=len(words))
            numbers = np.concatenate([numbers[:-1], ours, [-1]])
            read = _between_marks(numbers[tokens])
            if len(read) != len(part):  # not what was sent: leave these to `read`
                return
            with self.lock:
                self.texts.update(zip(part, read, strict=True))

    def _one(self, text: str) -> NDArray[np.int64]:
        words = _WORD.findall(text.lower())
        return np.fromiter(map(self.__getitem__, words), dtype=np.int64, count=len(words))


def _between_marks(flat: NDArray[np.int64]) -> list[NDArray[np.int64]]:
    """Word ids of texts read together, cut at the marks (-1) between them."""
    marks = np.flatnonzero(flat < 0)
    bounds = zip(np.append(0, marks + 1).tolist(), np.append(marks, len(flat)).tolist(), strict=True)
    return [flat[start:stop] for start, stop in bounds]


class _ByBytes(dict[bytes, int]):
    """A word's id in `_Words` by its ASCII bytes (what `_Words.read` splits); the mark
    between two texts is -1."""

    def __init__(self, words: _Words) -> None:
        super().__init__({_MARK.encode(): -1})
        self._words = words

    def __missing__(self, word: bytes) -> int:
        self[word] = number = self._words[word.decode("ascii")]
        return number


_WORDS = _Words()


@dataclass(frozen=True, slots=True)
class Texts:
    """Many texts as stem ids, one after another: text i is `flat[starts[i]:starts[i + 1]]`."""

    flat: Ids
    starts: Ids

    def __len__(self) -> int:
        return len(self.starts) - 1

    def text(self, index: int) -> Ids:
        return self.flat[self.starts[index] : self.starts[index + 1]]

    def rows(self) -> Ids:
        return np.repeat(np.arange(len(self)), np.diff(self.starts))

    def pairs(self, width: int | np.int64 = _PAIR) -> tuple[Ids, Ids]:
        """(row, key) of every word pair inside a text (two equal stems in a row make no
        pair); a pair's key is `first * width + second`."""
        rows = self.rows()
        first, second = self.flat[:-1], self.flat[1:]
        keep = rows[:-1] == rows[1:]
        keep &= first != second
        keys = first[keep]  # in place from here: each new array this size costs its page faults
        keys *= width
        keys += second[keep]
        return rows[:-1][keep], keys

    def subset(self, rows: Sequence[int]) -> Texts:
        """Texts `rows`, in that order."""
        parts = [self.text(row) for row in rows]
        lengths = np.array([len(part) for part in parts], dtype=np.int64)
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return Texts(flat, np.concatenate([[0], np.cumsum(lengths)]))


class Tokenizer:
    """Texts to stem ids, in bulk; remembers how each stem was most often spelled."""

    def __init__(self) -> None:
        self._local = np.zeros(0, dtype=np.int64)  # process word id (`_Words`) -> this tokenizer's, or -1
        self._words: list[str] = []
        self._word_stem = np.zeros(0, dtype=np.int64)  # word id -> stem id, or -1 (stop word)
        self._word_count = np.zeros(0, dtype=np.int64)
        self._stem_index: dict[str, int] = {}
        self.stems: list[str] = []
        self._spelling: NDArray[np.object_] | None = None

    def copy(self) -> Tokenizer:
        """A tokenizer that numbers as this one has so far, and goes on apart from it."""
        twin = Tokenizer()
        twin._local = self._local.copy()
        twin._words = list(self._words)
        twin._word_stem = self._word_stem.copy()
        twin._word_count = self._word_count.copy()
        twin._stem_index = dict(self._stem_index)
        twin.stems = list(self.stems)
        return twin

    def forget(self, texts: Sequence[str]) -> None:
        """Uncount the words of `texts`, read before: they no longer count for `spell`."""
        read = _WORDS.read(texts)
        if read:
            words = self._local[np.concatenate(read)]
            self._word_count -= np.bincount(words, minlength=len(self._word_count))
            self._spelling = None

    def texts(self, texts: Sequence[str]) -> Texts:
        _WORDS.read_ahead(texts)
        # A slice at a time: the word strings of a whole corpus at once would take gigabytes.
        parts = [self._slice(texts[start : start + CHUNK]) for start in range(0, len(texts), CHUNK)]
        if len(parts) <= 1:
            return parts[0] if parts else self._slice([])
        flat = np.concatenate([part.flat for part in parts])
        offsets = np.cumsum([0] + [len(part.flat) for part in parts[:-1]])
        starts = np.concatenate([part.starts[:-1] + offset for part, offset in zip(parts, offsets, strict=True)])
        return Texts(flat, np.concatenate([starts, [len(flat)]]))

    def _slice(self, texts: Sequence[str]) -> Texts:
        self._spelling = None  # counts change: spell anew when asked
        read = _WORDS.read(texts)
        known = np.concatenate(read) if read else np.zeros(0, dtype=np.int64)
        if len(self._local) < len(_WORDS.words):
            self._local = np.concatenate([self._local, np.full(len(_WORDS.words) - len(self._local), -1)])
        self._learn(np.unique(known[self._local[known] < 0]))
        words = self._local[known]
        self._word_count += np.bincount(words, minlength=len(self._words))
        stems = self._word_stem[words]
        kept = stems >= 0
        lengths = np.array([len(ids) for ids in read], dtype=np.int64)
        # Kept words before each text's end (a cumulative sum over a boolean array converts it first: 10x slower).
        kept_before = np.searchsorted(np.flatnonzero(kept), np.cumsum(lengths))
        return Texts(stems[kept], np.concatenate([[0], kept_before]).astype(np.int64))

    def _learn(self, new: NDArray[np.int64]) -> None:
        """Number the words first read now (process word ids), in alphabetical order, and
        their stems in order of first use."""
        if not len(new):
            return
        spelled = _WORDS.words
        order = sorted(new.tolist(), key=spelled.__getitem__)
        self._local[order] = np.arange(len(self._words), len(self._words) + len(order))
        self._words.extend(map(spelled.__getitem__, order))
        stems = list(map(_WORDS.stems.__getitem__, order))
        index, before = self._stem_index, len(self._stem_index)
        # A stem not seen before gets the next number (the index's size) as it is first met.
        ids = [-1 if stem is None else index.setdefault(stem, len(index)) for stem in stems]
        self.stems.extend(dict.fromkeys(s for s, i in zip(stems, ids, strict=True) if s is not None and i >= before))
        self._word_stem = np.concatenate([self._word_stem, np.array(ids, dtype=np.int64)])
        self._word_count = np.concatenate([self._word_count, np.zeros(len(order), dtype=np.int64)])

    def spell(self, stem_id: int) -> str:
        """The stem as the batch spelled it most often (of words as frequent, the first in
        alphabetical order: which texts were read first never changes how a stem is spelled)."""
        if self._spelling is None:
            self._spelling = self._spellings()
        return str(self._spelling[stem_id])

    def _spellings(self) -> NDArray[np.object_]:
        words = np.flatnonzero(self._word_stem >= 0)
        stems, counts = self._word_stem[words], self._word_count[words]
        order = np.lexsort((-counts, stems))  # by stem, the most frequent word first
        words, stems, counts = words[order], stems[order], counts[order]
        first = np.ones(len(words), dtype=bool)
        first[1:] = stems[1:] != stems[:-1]
        spelling = np.array(self.stems, dtype=object)
        spelling[stems[first]] = np.array(self._words, dtype=object)[words[first]]
        most = counts == counts[first][np.cumsum(first) - 1]  # as frequent as the stem's most frequent word
        tied = np.isin(stems, stems[~first & most])
        for stem, word in zip(stems[tied & most].tolist(), words[tied & most].tolist(), strict=True):
            spelling[stem] = min(spelling[stem], self._words[word])
        return spelling


class Features:
    """One feature space for a batch: every stem, and the word pairs that can relate two texts.

    A word pair seen once in all the documents can link no two of them, so it is left out
    (scikit-learn's `min_df=2`, for pairs only) unless a query or keyword has it. `base`
    holds what other documents (a background read once for many batches) add to the count:
    they are not rows of `document_counts`, but they count as documents in `base_df`, each
    column's number of them.

    `document_counts[m]` counts the texts of `matrices[m]`: a list of (document set, weight)
    over the same rows, the counts of each set times its whole weight, summed (a paper's
    title twice and its abstract: one matrix made once, not two added up after); by
    default one matrix per document set.
    """

    def __init__(
        self,
        stem_count: int,
        documents: Sequence[Texts],
        wanted: Sequence[Texts],
        base: Statistics | None = None,
        matrices: Sequence[Sequence[tuple[int, int]]] | None = None,
    ) -> None:
        self.stem_count = stem_count
        matrices = matrices if matrices is not None else [[(number, 1)] for number in range(len(documents))]
        if any(len({len(documents[i]) for i, _ in parts}) > 1 or not parts for parts in matrices):
            raise ValueError("the document sets summed into one matrix must have the same rows")
        if any(weight < 1 for parts in matrices for _, weight in parts):
            raise ValueError("a document set's weight in a matrix is a whole number, at least 1")
        # Each document set is read CHUNK rows at a time, on THREADS threads: small arrays, so
        # memory freed by one block serves the next (fresh memory costs its page faults).
        bounds = [np.append(np.arange(0, len(texts), CHUNK), len(texts)) for texts in documents]
        firsts = np.cumsum([0] + [len(b) - 1 for b in bounds]).tolist()  # each set's first block
        spans = [
            (texts, int(b[i]), int(b[i + 1]))
            for texts, b in zip(documents, bounds, strict=True)
            for i in range(len(b) - 1)
        ]
        worth = sum(len(d.flat) for d in documents) > THREADED_WORDS
        blocks = threaded(lambda span: _Pairs.of(*span, stem_count), spans, worth=worth)
        unique, occurrences = _summed([block.keys for block in blocks], [block.counts for block in blocks])
        base = base or Statistics.empty()
        every, total, base_df, at = base.merged(unique // stem_count * _PAIR + unique % stem_count, occurrences)
        wanted_keys = np.concatenate([w.pairs()[1] for w in wanted]) if wanted else np.zeros(0, dtype=np.int64)
        keep = total >= 2
        # A wanted pair gets a column if some document has it (else it would only lengthen the query).
        keep[_positions(every, wanted_keys)] = True
        keep &= total >= 1
        self.pair_keys = every[keep]
        self.size = stem_count + len(self.pair_keys)
        self.base_df = np.concatenate([_padded(base.stem_df, stem_count), base_df[keep]])
        column_of = np.where(keep, stem_count + np.cumsum(keep) - 1, -1)[at]  # by distinct key of `unique`

        def cells(document: int, number: int) -> Ids:
            (texts, start, stop), block = spans[firsts[document] + number], blocks[firsts[document] + number]
            columns = np.repeat(column_of[np.searchsorted(unique, block.keys)], block.counts)
            kept = columns >= 0
            return self._cells(texts, start, stop, block.rows[kept], columns[kept])

        def counted(parts: Sequence[tuple[int, int]], number: int) -> tuple[Ids, Ids]:
            return _tallied(np.concatenate([part for i, weight in parts for part in [cells(i, number)] * weight]))

        filled = [
            _Filled(
                bounds[parts[0][0]],
                self.size,
                sum(
                    len(documents[i].flat) + sum(len(b.rows) for b in blocks[firsts[i] : firsts[i + 1]])
                    for i, _ in parts
                ),
            )
            for parts in matrices
        ]
        # Matrix by matrix, block by block: a matrix's blocks are placed in the order they are handed out.
        jobs = [(m, number) for m, parts in enumerate(matrices) for number in range(len(bounds[parts[0][0]]) - 1)]
        threaded(
            lambda job: filled[job[0]].place(job[1], lambda: counted(matrices[job[0]], job[1])),
            jobs,
            worth=worth,
        )
        self.document_counts: list[sparse.csr_matrix] = [matrix.matrix() for matrix in filled]

    def counts(self, texts: Texts) -> sparse.csr_matrix:
        """texts × features for texts outside `documents` (queries, keywords, liked papers)."""
        rows, keys = texts.pairs()
        found = self._pair_columns(keys)
        return self._matrix(texts, rows[found >= 0], found[found >= 0])

    def columns(self, phrases: Sequence[Ids]) -> Ids:
        """Per phrase, the feature that finds it: its stem, or its first word pair (-1: none has it)."""
        firsts = np.array([int(p[0]) for p in phrases], dtype=np.int64)
        seconds = np.array([int(p[1]) if len(p) > 1 else 0 for p in phrases], dtype=np.int64)
        single = np.array([len(p) == 1 for p in phrases], dtype=bool)
        return np.where(single, firsts, self._pair_columns(firsts * _PAIR + seconds))

    def _pair_columns(self, keys: Ids) -> Ids:
        if not len(self.pair_keys):
            return np.full(len(keys), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.pair_keys, keys), len(self.pair_keys) - 1)
        return np.where(self.pair_keys[at] == keys, self.stem_count + at, -1)

    def _matrix(self, texts: Texts, pair_rows: Ids, pair_columns: Ids) -> sparse.csr_matrix:
        # Counted CHUNK rows at a time (one pass over a corpus would hold several copies of
        # every (row, column) pair at once), on THREADS threads: NumPy releases the GIL.
        bounds = np.append(np.arange(0, len(texts), CHUNK), len(texts))
        pair_bounds = np.searchsorted(pair_rows, bounds)

        filled = _Filled(bounds, self.size, len(texts.flat) + len(pair_rows))

        def block(number: int) -> None:
            start, stop = int(bounds[number]), int(bounds[number + 1])
            pairs = slice(pair_bounds[number], pair_bounds[number + 1])
            filled.place(
                number, lambda: _tallied(self._cells(texts, start, stop, pair_rows[pairs] - start, pair_columns[pairs]))
            )

        threaded(block, range(len(bounds) - 1))
        return filled.matrix()

    def _cells(self, texts: Texts, start: int, stop: int, pair_rows: Ids, pair_columns: Ids) -> Ids:
        """The cells (`row * size + column`, rows counted from `start`) of texts `start` to
        `stop`, one per word and kept pair: their stems, and their pairs' columns."""
        words = slice(texts.starts[start], texts.starts[stop])
        lengths = np.diff(texts.starts[start : stop + 1])
        rows = np.concatenate([np.repeat(np.arange(stop - start), lengths), pair_rows])
        columns = np.concatenate([texts.flat[words], pair_columns])
        rows *= self.size
        rows += columns
        return rows

    def describe(self, feature: int, tokenizer: Tokenizer) -> str:
        if feature < self.stem_count:
            return tokenizer.spell(feature)
        key = int(self.pair_keys[feature - self.stem_count])
        return f"{tokenizer.spell(key // int(_PAIR))} {tokenizer.spell(key % int(_PAIR))}"


def _tallied(cells: Ids) -> tuple[Ids, Ids]:
    """The distinct values of `cells`, sorted, and how many times each occurs (one plain
    sort: twice as fast as SciPy's COO to CSR, which sorts each row)."""
    cells = np.sort(cells)
    starts = _run_starts(cells)
    return cells[starts], np.diff(np.append(starts, len(cells)))


class _Filled:
    """A CSR matrix of counts filled a block of rows at a time by whichever thread counted
    the block (block i: rows `bounds[i]` to `bounds[i + 1]`), with room for at most `cells`
    cells. Blocks are placed in order, each once the one before has said where it ends, so
    no block's counts wait in memory for the others' (fresh memory costs its page faults)."""

    def __init__(self, bounds: Ids, columns: int, cells: int) -> None:
        self.bounds, self.columns = bounds, columns
        rows = int(bounds[-1])
        index: type[np.signedinteger[Any]] = np.int32 if max(cells, rows, columns) < 2**31 else np.int64
        self.data = np.empty(cells, dtype=np.float64)  # pages past the last cell are never touched
        self.indices = np.empty(cells, dtype=index)
        self.indptr: NDArray[np.signedinteger[Any]] = np.zeros(rows + 1, dtype=index)
        self.ends: list[int] = [0] * len(bounds)
        self.placed = [threading.Event() for _ in range(len(bounds) - 1)]

    def place(self, number: int, count: Callable[[], tuple[Ids, Ids]]) -> None:
        """Block `number`'s distinct cells (`row * columns + column`, rows counted from the
        block's first) and their counts, as `count` finds them; blocks before it are placed,
        or being placed."""
        try:
            cells, counts = count()
            if number:
                self.placed[number - 1].wait()
            begin = self.ends[number]
            self.ends[number + 1] = begin + len(cells)
        finally:  # a block that failed must not leave the next waiting (its error is raised)
            self.placed[number].set()
        start, stop = int(self.bounds[number]), int(self.bounds[number + 1])
        part = slice(begin, begin + len(cells))
        self.data[part] = counts
        self.indices[part] = cells % self.columns
        rows = self.indptr[start + 1 : stop + 1]
        np.cumsum(np.bincount(cells // self.columns, minlength=stop - start), out=rows)
        rows += begin

    def matrix(self) -> sparse.csr_matrix:
        cells = self.ends[-1]
        shape = (int(self.bounds[-1]), self.columns)
        return sparse.csr_matrix((self.data[:cells], self.indices[:cells], self.indptr), shape=shape, copy=False)


@dataclass(frozen=True, slots=True)
class _Pairs:
    """The word pairs of some texts in order of their keys (`first * stems + second`, the
    order of `_PAIR` keys), each pair's row, and the distinct keys with how often each occurs."""

    rows: Ids
    keys: Ids
    counts: Ids

    @classmethod
    def of(cls, texts: Texts, start: int, stop: int, stem_count: int) -> _Pairs:
        """Of texts `start` to `stop` (rows counted from `start`)."""
        offset = texts.starts[start]
        part = Texts(texts.flat[offset : texts.starts[stop]], texts.starts[start : stop + 1] - offset)
        rows, keys = part.pairs(stem_count)
        row_bits = max(1, (stop - start).bit_length())
        if (stem_count * stem_count).bit_length() + row_bits <= 63:
            # Key and row packed into one integer: a plain sort, several times faster than an indirect one.
            keys <<= row_bits
            keys |= rows
            keys.sort()
            rows = keys & ((1 << row_bits) - 1)
            keys >>= row_bits
        else:  # a vocabulary too large to pack
            order = np.lexsort((rows, keys))
            rows, keys = rows[order], keys[order]
        starts = _run_starts(keys)
        return cls(rows, keys[starts], np.diff(np.append(starts, len(keys))))


def _summed(keys: Sequence[Ids], counts: Sequence[Ids]) -> tuple[Ids, Ids]:
    """The distinct keys of blocks (each block's keys distinct and sorted) and how often
    each occurs in all: the keys cut into `THREADS` ranges, each summed on a thread."""
    total = sum(len(k) for k in keys)
    if THREADS == 1 or total <= THREADED_WORDS:
        return _summed_here(keys, counts)
    sample = np.sort(np.concatenate([k[::64] for k in keys]))
    pivots = sample[[len(sample) * n // THREADS for n in range(1, THREADS)]]
    cuts = [np.concatenate([[0], np.searchsorted(k, pivots), [len(k)]]) for k in keys]
    ranges = [
        (
            [k[c[n] : c[n + 1]] for k, c in zip(keys, cuts, strict=True)],
            [o[c[n] : c[n + 1]] for o, c in zip(counts, cuts, strict=True)],
        )
        for n in range(THREADS)
    ]
    found = threaded(lambda part: _summed_here(*part), ranges)
    return np.concatenate([u for u, _ in found]), np.concatenate([o for _, o in found])


def _summed_here(keys: Sequence[Ids], counts: Sequence[Ids]) -> tuple[Ids, Ids]:
    every = np.concatenate([np.zeros(0, dtype=np.int64), *keys])
    often = np.concatenate([np.zeros(0, dtype=np.int64), *counts])
    if not len(every):
        return every, often
    count_bits = int(often.max()).bit_length()
    if int(every.max()).bit_length() + count_bits <= 63:
        every <<= count_bits  # key and count in one integer, as in `_Pairs.of`
        every |= often
        every.sort()
        often = every & ((1 << count_bits) - 1)
        every >>= count_bits
    else:
        order = np.argsort(every, kind="stable")
        every, often = every[order], often[order]
    starts = _run_starts(every)
    return every[starts], np.add.reduceat(often, starts)


def _run_starts(ordered: Ids) -> Ids:
    """Where each run of equal values of `ordered` (sorted) starts."""
    first = np.empty(len(ordered), dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return np.flatnonzero(first)


@dataclass(frozen=True, slots=True)
class Statistics:
    """What a set of documents adds to a feature space: how many there are, how many hold
    each stem (`stem_df`, by stem id) and each word pair (`keys`, sorted, with how often
    each occurs and how many documents hold it). Counts add up, so the statistics of a
    background read once serve every batch ranked against it."""

    documents: int
    stem_df: Ids
    keys: Ids
    occurrences: Ids
    key_df: Ids

    @classmethod
    def empty(cls) -> Statistics:
        none = np.zeros(0, dtype=np.int64)
        return cls(0, none, none, none, none)

    @classmethod
    def of(cls, parts: Sequence[Texts]) -> Statistics:
        """The statistics of documents made of `parts`: text i of every part is document i."""
        if not parts or not len(parts[0]):
            return cls.empty()
        rows = np.concatenate([part.rows() for part in parts])
        stems = np.concatenate([part.flat for part in parts])
        width = int(stems.max()) + 1 if len(stems) else 0
        stem_df = np.bincount(np.unique(rows * width + stems) % max(width, 1), minlength=width)
        found = [part.pairs() for part in parts]
        pair_rows = np.concatenate([r for r, _ in found])
        keys, inverse, occurrences = np.unique(
            np.concatenate([k for _, k in found]), return_inverse=True, return_counts=True
        )
        distinct = len(keys)
        key_df = np.bincount(np.unique(pair_rows * distinct + inverse) % max(distinct, 1), minlength=distinct)
        return cls(len(parts[0]), stem_df, keys, occurrences, key_df)

    def arrays(self) -> tuple[Ids, ...]:
        return self.stem_df, self.keys, self.occurrences, self.key_df

    def without(self, part: Statistics) -> Statistics:
        """These statistics less those of `part`, some of the same documents."""
        at = np.searchsorted(self.keys, part.keys)
        occurrences, key_df, stem_df = self.occurrences.copy(), self.key_df.copy(), self.stem_df.copy()
        occurrences[at] -= part.occurrences
        key_df[at] -= part.key_df
        stem_df[: len(part.stem_df)] -= part.stem_df
        return Statistics(self.documents - part.documents, stem_df, self.keys, occurrences, key_df)

    def merged(self, keys: Ids, occurrences: Ids) -> tuple[Ids, Ids, Ids, Ids]:
        """With more word pairs (`keys`, sorted and distinct, and how often each occurs): every
        key, how often each occurs in all, how many of these documents hold it, and where
        each of `keys` is among them."""
        if not len(self.keys):
            return keys, occurrences, np.zeros(len(keys), dtype=np.int64), np.arange(len(keys))
        at = np.searchsorted(self.keys, keys)
        new = np.ones(len(keys), dtype=bool)
        inside = at < len(self.keys)
        new[inside] = self.keys[at[inside]] != keys[inside]
        places = at[new]
        every = np.insert(self.keys, places, keys[new])
        total = np.insert(self.occurrences, places, 0)
        key_df = np.insert(self.key_df, places, 0)
        # Each key's place moves on by the new keys put before it.
        positions = at + np.cumsum(new) - new
        total[positions] += occurrences
        return every, total, key_df, positions


def _positions(keys: Ids, wanted: Ids) -> Ids:
    """Where each of `wanted` is in `keys` (sorted), for those it holds."""
    if not len(keys) or not len(wanted):
        return np.zeros(0, dtype=np.int64)
    at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return at[keys[at] == wanted]


def _padded(counts: Ids, width: int) -> Ids:
    return np.concatenate([counts[:width], np.zeros(max(0, width - len(counts)), dtype=np.int64)])


@dataclass(frozen=True, slots=True)
class Corpus:
    """Background papers read once: a tokenizer that has read them (each batch goes on from
    a copy of it, so their stems keep their numbers), their texts and `Statistics`, and
    each paper's row. A paper is read as its title and its `body_text`, as the ranker
    reads any paper it does not score."""

    tokenizer: Tokenizer
    papers: tuple[Paper, ...]
    rows: dict[str, int]
    titles: Texts
    bodies: Texts
    statistics: Statistics
    last_without: list[tuple[tuple[int, ...], Tokenizer, Statistics]] = field(default_factory=list, compare=False)

    @classmethod
    def of(cls, papers: Sequence[Paper]) -> Corpus:
        first: dict[str, Paper] = {}
        for paper in papers:
            first.setdefault(paper.id, paper)
        distinct = list(first.values())
        tokenizer = Tokenizer()
        titles = tokenizer.texts([p.title for p in distinct])
        bodies = tokenizer.texts([body_text(p) for p in distinct])
        rows = {paper.id: row for row, paper in enumerate(distinct)}
        statistics = Statistics.of([titles, bodies])
        # Kept for many batches: an array changed in place by one would change the others.
        for array in (titles.flat, titles.starts, bodies.flat, bodies.starts, *statistics.arrays()):
            array.flags.writeable = False
        return cls(tokenizer, tuple(distinct), rows, titles, bodies, statistics)

    def without(self, ids: Collection[str]) -> tuple[Tokenizer, Statistics]:
        """A tokenizer to go on from, and the statistics, as if the papers with `ids` had not
        been read (a batch reads the papers it ranks as such, not as background)."""
        rows = tuple(sorted({self.rows[i] for i in ids if i in self.rows}))
        if not rows:
            return self.tokenizer.copy(), self.statistics
        # The last answer is kept: a build ranks profile after profile the same papers (a
        # roll-up's period, a day's candidates), and working it out was a fifth of each one.
        last = self.last_without[0] if self.last_without else None  # one tuple: threads may replace it
        if last is None or last[0] != rows:
            gone = [self.papers[row] for row in rows]
            tokenizer = self.tokenizer.copy()
            tokenizer.forget([p.title for p in gone] + [body_text(p) for p in gone])
            statistics = self.statistics.without(Statistics.of([self.titles.subset(rows), self.bodies.subset(rows)]))
            for array in statistics.arrays():
                array.flags.writeable = False  # shared by the batches that follow
            last = (rows, tokenizer, statistics)
            self.last_without[:] = [last]
        return last[1].copy(), last[2]


@dataclass(frozen=True, slots=True)
class Phrases:
    """Phrases of stems that profiles own (keywords, exclusions), with a weight per owner."""

    phrases: list[Ids]
    labels: list[str]
    owners: sparse.csr_matrix  # profiles × phrases

    @classmethod
    def of(
        cls,
        profiles: Sequence[Profile],
        terms: Callable[[Profile], Sequence[tuple[str, float]]],
        tokenizer: Tokenizer,
    ) -> Phrases:
        owned = [(row, term, weight) for row, profile in enumerate(profiles) for term, weight in terms(profile)]
        tokens = tokenizer.texts([term for _, term, _ in owned])
        index: dict[tuple[int, ...], int] = {}
        phrases: list[Ids] = []
        labels: list[str] = []
        rows, cols, values = [], [], []
        for position, (row, term, weight) in enumerate(owned):
            ids = tokens.text(position)
            if not len(ids):
                continue
            key = tuple(ids.tolist())
            if key not in index:
                index[key] = len(phrases)
                phrases.append(ids)
                labels.append(term)
            rows.append(row)
            cols.append(index[key])
            values.append(weight)
        owners = sparse.csr_matrix((values, (rows, cols)), shape=(len(profiles), len(phrases)), dtype=np.float64)
        owners.sum_duplicates()
        return cls(phrases, labels, owners)

    def as_texts(self) -> Texts:
        lengths = np.array([len(p) for p in self.phrases], dtype=np.int64)
        flat = np.concatenate(self.phrases) if self.phrases else np.zeros(0, dtype=np.int64)
        return Texts(flat, np.concatenate([[0], np.cumsum(lengths)]))

    def found(self, counts: Sequence[sparse.spmatrix], features: Features) -> list[sparse.csr_matrix]:
        """For each of `counts`, its rows × phrases: how often each phrase's feature occurs.

        A phrase of one stem is that stem's column, of two stems that word pair's column,
        longer phrases their first pair's (`hits` checks the rest). Counts are whole
        numbers, exact in floating point: these can be added and taken away (a paper's
        less its title's are its abstract's).
        """
        wanted = features.columns(self.phrases)
        present = np.flatnonzero(wanted >= 0)
        # Picking columns by a product reads the matrix once, instead of converting it to columns.
        pick = sparse.csr_matrix(
            (np.ones(len(present)), (wanted[present], present)), shape=(features.size, len(self.phrases))
        )
        return [sparse.csr_matrix(part @ pick) for part in counts]

    def hits(self, found: sparse.spmatrix, texts: Sequence[Texts]) -> sparse.csr_matrix:
        """texts × phrases: 1 where the whole phrase occurs in one of `texts`, given `found`,
        those texts' counts of each phrase's feature (from `found`, added and taken away)."""
        shape = found.shape
        rows, cols = found.nonzero()
        lengths = np.array([len(p) for p in self.phrases], dtype=np.int64)
        long = lengths[cols] > 2
        if long.any():
            confirmed = [
                any(_contains(t.text(r), self.phrases[c]) for t in texts)
                for r, c in zip(rows[long], cols[long], strict=True)
            ]
            keep = ~long
            keep[np.flatnonzero(long)[np.array(confirmed, dtype=bool)]] = True
            rows, cols = rows[keep], cols[keep]
        return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)


def _contains(ids: Ids, phrase: Ids) -> bool:
    width = len(phrase)
    if len(ids) < width:
        return False
    return bool((np.lib.stride_tricks.sliding_window_view(ids, width) == phrase).all(axis=1).any())


def paper_text(paper: Paper) -> str:
    """Title and abstract as one text (what the embedding model and the digest's MMR read)."""
    return f"{paper.title}. {paper.abstract}"


def extra_text(paper: Paper) -> str:
    """Hugging Face's machine-written summary and keywords, when a source gave them: more
    words about the paper, read with the abstract (but a keyword found only here is not
    said to be "in abstract")."""
    return " . ".join([paper.ai_summary or "", *paper.ai_keywords]).strip(" .")


def body_text(paper: Paper) -> str:
    """The abstract and the extra text, as the ranker reads a paper it does not score
    (background, liked and voted papers)."""
    extra = extra_text(paper)
    return f"{paper.abstract} . {extra}" if extra else paper.abstract


def query_text(profile: Profile) -> str:
    """The description's wanted parts (`wanted.wanted_text`) and the keywords as one text
    (what the embedding model reads of a profile)."""
    return " ".join([wanted_text(profile.description), *(k.term for k in profile.keywords)])


def dense(matrix: Any) -> NDArray[np.float64]:
    """A sparse or dense matrix (a product of the two kinds can be either) as a float array."""
    if sparse.issparse(matrix):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=np.float64)
