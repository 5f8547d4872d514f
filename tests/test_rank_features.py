"""The ranker's feature space (`digest.rank.features`): counting word pairs fast, the same as NumPy.

Word pairs are counted a block of texts at a time (`_Pairs`: one plain sort of key and row
packed into one integer) and the blocks' distinct keys summed (`_summed`); NumPy's
`np.unique` and plain Python are the oracles, on random texts of several sizes and on the
edges (no text, empty texts, one stem, and a vocabulary too large to pack, where an
indirect sort is used).
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter

import numpy as np
import pytest

from digest.rank import features as features_module
from digest.rank.features import _PAIR, Corpus, Features, Statistics, Texts, _Pairs, _summed


@pytest.mark.parametrize("stems", [1, 2, 7, 300, 40_000, 2**31 - 1])
@pytest.mark.parametrize("count", [0, 1, 2, 300])
def test_a_blocks_pairs_are_sorted_by_key_with_their_rows(stems: int, count: int) -> None:
    # 2**31 - 1 stems need 62 bits a key: no room for the row, so the pairs are sorted indirectly.
    texts = random_texts(np.random.default_rng(stems + count), count, stems)
    start, stop = count // 3, count
    pairs = _Pairs.of(texts, start, stop, stems)
    expected = sorted(
        (first * stems + second, row - start)
        for row in range(start, stop)
        for first, second in itertools.pairwise(texts.text(row).tolist())
        if first != second
    )
    keys = np.repeat(pairs.keys, pairs.counts)
    assert list(zip(keys.tolist(), pairs.rows.tolist(), strict=True)) == expected
    assert pairs.keys.tolist() == sorted(set(pairs.keys.tolist()))
    assert pairs.rows.dtype == pairs.keys.dtype == pairs.counts.dtype == np.int64


@pytest.mark.parametrize("largest", [1, 1000, 2**40, 2**62])
@pytest.mark.parametrize("blocks", [0, 1, 5])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_summed_blocks_count_each_key_as_numpy_does(
    largest: int, blocks: int, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keys up to 2**62 leave no room to pack a count beside them: summed after an indirect
    # sort. On more than one thread, the keys are cut into ranges (here whatever their number).
    monkeypatch.setattr(features_module, "THREADS", threads)
    monkeypatch.setattr(features_module, "THREADED_WORDS", 0)
    rng = np.random.default_rng(blocks + largest.bit_length())
    found = [np.unique(rng.integers(0, largest, int(rng.integers(0, 50))), return_counts=True) for _ in range(blocks)]
    found = [(keys, counts * int(rng.integers(1, 2**20))) for keys, counts in found]
    unique, occurrences = _summed([k for k, _ in found], [c for _, c in found])
    total: Counter[int] = Counter()
    for keys, counts in found:
        total.update(dict(zip(keys.tolist(), counts.tolist(), strict=True)))
    assert unique.tolist() == sorted(total)
    assert occurrences.tolist() == [total[key] for key in sorted(total)]
    assert unique.dtype == occurrences.dtype == np.int64


def test_a_pair_seen_twice_becomes_a_feature_and_a_pair_seen_once_does_not() -> None:
    # Stems 0..3; texts [0 1 2] and [0 1 3]: the pair (0, 1) is in both, (1, 2) and (1, 3) in one.
    texts = Texts(np.array([0, 1, 2, 0, 1, 3], dtype=np.int64), np.array([0, 3, 6], dtype=np.int64))
    wanted = Texts(np.array([1, 3], dtype=np.int64), np.array([0, 2], dtype=np.int64))  # a query's pair
    features = Features(4, documents=[texts], wanted=[wanted])
    assert features.pair_keys.tolist() == [0 * _PAIR + 1, 1 * _PAIR + 3]
    counts = features.document_counts[0].toarray()
    assert counts.tolist() == [[1, 1, 1, 0, 1, 0], [1, 1, 0, 1, 1, 1]]


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_count_rows_are_each_texts_stems_and_kept_pairs_counted(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Built `chunk` rows at a time (empty texts and blocks included) and stacked into one matrix.
    monkeypatch.setattr(features_module, "CHUNK", chunk)
    texts = random_texts(np.random.default_rng(chunk), 40, 25)
    features = Features(25, documents=[texts], wanted=[])
    counts = features.document_counts[0]
    expected = np.zeros((len(texts), features.size))
    column = {int(key): 25 + n for n, key in enumerate(features.pair_keys)}
    for row in range(len(texts)):
        stems = texts.text(row).tolist()
        for stem in stems:
            expected[row, stem] += 1
        for first, second in itertools.pairwise(stems):
            if first != second and first * int(_PAIR) + second in column:
                expected[row, column[first * int(_PAIR) + second]] += 1
    counts.check_format(full_check=True)
    assert counts.has_canonical_format
    assert counts.indices.dtype == np.int32
    np.testing.assert_array_equal(counts.toarray(), expected)


# -- a background read once (`Statistics`, `Corpus`, `background_corpus`) ----------------------


def random_texts(rng: np.random.Generator, count: int, stems: int) -> Texts:
    lengths = rng.integers(0, 30, count)
    flat = rng.zipf(1.3, int(lengths.sum())) % stems
    return Texts(flat.astype(np.int64), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))


def document_frequency(features: Features, parts: list[int]) -> np.ndarray:
    """Per column, the documents (rows of the parts `parts`, summed) holding it, counted as
    scikit-learn counts them."""
    combined = sum(features.document_counts[i] for i in parts)
    return np.bincount(combined.indices, minlength=features.size)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_background_counted_apart_gives_the_feature_space_of_one_read_with_the_rest(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stems = 60
    titles, bodies = random_texts(rng, 80, stems), random_texts(rng, 80, stems)
    own_titles, own_bodies = random_texts(rng, 20, stems), random_texts(rng, 20, stems)
    wanted = random_texts(rng, 5, stems)
    together = Features(stems, documents=[own_titles, own_bodies, titles, bodies], wanted=[wanted])
    apart = Features(stems, documents=[own_titles, own_bodies], wanted=[wanted], base=Statistics.of([titles, bodies]))
    np.testing.assert_array_equal(apart.pair_keys, together.pair_keys)
    for mine, whole in zip(apart.document_counts, together.document_counts[:2], strict=True):
        assert (mine != whole).nnz == 0
    expected = document_frequency(together, [0, 1]) + document_frequency(together, [2, 3])
    np.testing.assert_array_equal(document_frequency(apart, [0, 1]) + apart.base_df, expected)


def test_statistics_without_some_documents_are_those_of_the_others() -> None:
    rng = np.random.default_rng(7)
    titles, bodies = random_texts(rng, 50, 40), random_texts(rng, 50, 40)
    gone = [3, 10, 11, 49]
    kept = [row for row in range(50) if row not in gone]
    whole = Statistics.of([titles, bodies])
    less = whole.without(Statistics.of([titles.subset(gone), bodies.subset(gone)]))
    rest = Statistics.of([titles.subset(kept), bodies.subset(kept)])
    assert less.documents == rest.documents == 46
    np.testing.assert_array_equal(less.stem_df[: len(rest.stem_df)], rest.stem_df)
    assert not less.stem_df[len(rest.stem_df) :].any()
    # `less` keeps every key of the whole, some now occurring nowhere.
    at = np.searchsorted(less.keys, rest.keys)
    np.testing.assert_array_equal(less.occurrences[at], rest.occurrences)
    np.testing.assert_array_equal(less.key_df[at], rest.key_df)
    assert less.occurrences.sum() == rest.occurrences.sum()


def test_a_wanted_pair_no_document_has_gets_no_column_even_when_the_background_had_it() -> None:
    # Pair (0, 1) is only in background document 0; taken out, a query asking for it finds no column.
    titles = Texts(np.array([0, 1, 2, 3], dtype=np.int64), np.array([0, 2, 4], dtype=np.int64))
    bodies = Texts(np.zeros(0, dtype=np.int64), np.array([0, 0, 0], dtype=np.int64))
    whole = Statistics.of([titles, bodies])
    base = whole.without(Statistics.of([titles.subset([0]), bodies.subset([0])]))
    wanted = Texts(np.array([0, 1, 2, 3], dtype=np.int64), np.array([0, 2, 4], dtype=np.int64))
    own = Texts(np.array([2, 3], dtype=np.int64), np.array([0, 2], dtype=np.int64))
    features = Features(4, documents=[own], wanted=[wanted], base=base)
    assert features.pair_keys.tolist() == [2 * _PAIR + 3]
    assert features.base_df.tolist() == [0, 0, 1, 1, 1]


@pytest.mark.parametrize("piece", [4_000_000, 7, 1])
def test_weights_are_scikit_learns_tf_idf_bit_for_bit(piece: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # `piece`: cells counted and weighed in one piece, on threads (7 and 1: many pieces).
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfTransformer

    from digest.rank import scoring
    from digest.rank.scoring import Weights

    monkeypatch.setattr(scoring, "_DF_SLICE", piece)

    rng = np.random.default_rng(11)
    counts = sparse.csr_matrix(rng.poisson(0.3, (200, 70)).astype(np.float64))
    base, rows = counts[:150], counts[150:]
    mine = Weights.of([rows[:20], rows[20:]], np.bincount(base.indices, minlength=70), 150)
    theirs = TfidfTransformer(sublinear_tf=True).fit(counts)
    np.testing.assert_array_equal(mine.idf, theirs.idf_)
    expected = sparse.csr_matrix(theirs.transform(rows))
    assert (mine.transform(rows) != expected).nnz == 0
    # In place: the same weights, and the counts given are the weights now.
    given = rows.copy()
    assert (mine.transform(given, copy=False) != expected).nnz == 0
    assert (given != expected).nnz == 0
    # Rows without a cell (no word the features know) stay empty.
    assert mine.transform(sparse.csr_matrix((3, 70))).nnz == 0


def test_a_background_is_read_once_for_the_same_papers_and_again_for_others() -> None:
    from digest.rank.scoring import _background
    from tests.test_rank import paper

    papers = tuple(paper(f"Paper {i} on sparse attention", "Heads attend to few tokens.", upvotes=i) for i in range(5))
    first = _background(papers)
    assert _background(papers)[0] is first[0]
    assert _background(list(papers))[0] is first[0]  # equal papers, another sequence
    other, best = _background(papers[:4])
    assert other is not first[0] and len(other.rows) == 4
    assert best == {papers[0].last_seen: pytest.approx(np.log1p(3))}
    assert Corpus.of(papers + papers[:1]).rows == first[0].rows  # a paper twice is read once


def test_a_background_paper_ranked_as_such_no_longer_counts_for_how_stems_are_spelled() -> None:
    from tests.test_rank import paper

    ranked = paper("Large models forget", "Large models forget what large models learned, as models and models do.")
    others = [paper(f"Paper {i}", "One large model, then another large model.") for i in range(2)]
    tokenizer, statistics = Corpus.of([ranked, *others]).without({ranked.id})
    model = tokenizer.stems.index("model")
    assert tokenizer.spell(model) == "model"  # 'models' was more frequent only in the paper taken out
    assert statistics.documents == 2
    assert Corpus.of([ranked, *others]).tokenizer.spell(model) == "models"


def test_the_background_without_the_same_papers_is_worked_out_once_and_each_batch_gets_its_own_tokenizer() -> None:
    from tests.test_rank import paper

    papers = [paper(f"Paper {i} on sparse attention", f"Heads attend to {i} tokens, {i % 3} more.") for i in range(8)]
    corpus = Corpus.of(papers)
    ids = {papers[1].id, papers[4].id}
    first_tokenizer, first = corpus.without(ids)
    first_tokenizer.texts(["A word never read before: zygomorphic"])  # a batch reads on from its copy
    second_tokenizer, second = corpus.without(list(ids))
    assert second is first  # the same answer, kept
    assert "zygomorph" in first_tokenizer.stems and "zygomorph" not in second_tokenizer.stems
    fresh_tokenizer, fresh = Corpus.of(papers).without(ids)
    assert second_tokenizer.stems == fresh_tokenizer.stems
    for kept, worked_out in zip(second.arrays(), fresh.arrays(), strict=True):
        np.testing.assert_array_equal(kept, worked_out)
        assert not kept.flags.writeable  # shared by the batches that follow: none may change it
    _, other = corpus.without({papers[2].id})
    assert other.documents == fresh.documents + 1 and other is not first
    assert corpus.without(ids)[1] is not first  # only the last answer is kept


def test_blocks_counted_out_of_order_are_placed_in_order() -> None:
    # Three blocks of rows 0-1, 2-4 and 5; the last is counted first, the first last.
    bounds = np.array([0, 2, 5, 6])
    filled = features_module._Filled(bounds, 4, cells=20)
    given = {
        0: (np.array([0, 5]), np.array([1, 2])),  # row 0 column 0; row 1 column 1
        1: (np.array([3, 4, 11]), np.array([1, 1, 3])),  # row 2 column 3; row 3 column 0; row 4 column 3
        2: (np.array([2]), np.array([4])),
    }
    threads = [threading.Thread(target=filled.place, args=(number, lambda n=number: given[n])) for number in (2, 1, 0)]
    for thread in threads:
        thread.start()
        thread.join(0.05)
    for thread in threads:
        thread.join(10)
    expected = [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 3], [0, 0, 4, 0]]
    assert filled.matrix().toarray().tolist() == expected


def test_a_block_that_fails_raises_its_error_and_leaves_no_block_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    # The first block fails on a thread; the four after it are counted and wait for it to be placed.
    monkeypatch.setattr(features_module, "CHUNK", 2)
    monkeypatch.setattr(features_module, "THREADED_WORDS", 0)
    texts = random_texts(np.random.default_rng(5), 9, 20)
    cells = Features._cells

    def failing(self: Features, texts: Texts, start: int, stop: int, *pairs: np.ndarray) -> tuple[np.ndarray, ...]:
        if start == 0:
            raise RuntimeError("counting failed")
        return cells(self, texts, start, stop, *pairs)

    monkeypatch.setattr(Features, "_cells", failing)
    found: list[BaseException] = []

    def build() -> None:
        try:
            Features(20, documents=[texts], wanted=[])
        except RuntimeError as error:
            found.append(error)

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive()
    assert [str(error) for error in found] == ["counting failed"]


@pytest.mark.parametrize("chunk", [3, 4096])
def test_a_matrix_of_weighted_document_sets_is_their_counts_summed(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # A paper's title twice, its abstract and its extra text: one matrix, as if added up after.
    monkeypatch.setattr(features_module, "CHUNK", chunk)
    rng = np.random.default_rng(chunk)
    titles, abstracts, extras = (random_texts(rng, 20, 30) for _ in range(3))
    alone = Features(30, documents=[titles, abstracts, extras], wanted=[])
    summed = Features(
        30, documents=[titles, abstracts, extras], wanted=[], matrices=[[(0, 2), (1, 1), (2, 1)], [(1, 1)]]
    )
    np.testing.assert_array_equal(summed.pair_keys, alone.pair_keys)  # each text's pairs counted once
    title, abstract, extra = alone.document_counts
    paper, only_abstract = summed.document_counts
    for mine, expected in ((paper, 2 * title + abstract + extra), (only_abstract, abstract)):
        mine.check_format(full_check=True)
        assert mine.has_canonical_format
        assert (mine != expected).nnz == 0


def test_document_sets_summed_into_one_matrix_have_the_same_rows_and_whole_weights() -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match="whole number"):
        Features(30, documents=[random_texts(rng, 5, 30)], wanted=[], matrices=[[(0, 0)]])
    with pytest.raises(ValueError, match="same rows"):
        Features(
            30, documents=[random_texts(rng, 5, 30), random_texts(rng, 6, 30)], wanted=[], matrices=[[(0, 1), (1, 1)]]
        )
