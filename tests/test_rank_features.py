"""The ranker's feature space (`digest.rank.features`): counting word pairs fast, the same as NumPy.

`_distinct` replaces `np.unique(keys, return_inverse=True, return_counts=True)` for word
pair keys (a plain sort of packed integers instead of an indirect one); NumPy's own
function is the oracle, on random keys of several sizes and on the edges (no key, one
stem, and a vocabulary too large to pack, where it falls back to NumPy).
"""

from __future__ import annotations

import numpy as np
import pytest

from digest.rank.features import _PAIR, Features, Texts, _distinct


def pair_keys(rng: np.random.Generator, stems: int, count: int) -> np.ndarray:
    return rng.integers(0, stems, count) * _PAIR + rng.integers(0, stems, count)


@pytest.mark.parametrize("stems", [1, 2, 7, 300, 40_000, 3_000_000])
@pytest.mark.parametrize("count", [0, 1, 2, 1000, 50_000])
def test_distinct_pairs_are_what_numpy_finds(stems: int, count: int) -> None:
    keys = pair_keys(np.random.default_rng(stems + count), stems, count)
    got = _distinct(keys, stems)
    expected = np.unique(keys, return_inverse=True, return_counts=True)
    for mine, numpys in zip(got, expected, strict=True):
        assert mine.dtype == np.int64
        np.testing.assert_array_equal(mine, numpys)


def test_keys_of_a_vocabulary_too_large_to_pack_are_counted_by_numpy() -> None:
    # 2**31 stems need 62 bits a key: no room for the position, so NumPy counts them.
    stems = 2**31 - 1
    keys = np.array([5 * _PAIR + stems - 1, 3, 5 * _PAIR + stems - 1, 3, 2**40], dtype=np.int64)
    unique, inverse, counts = _distinct(keys, stems)
    assert unique.tolist() == [3, 5 * _PAIR + stems - 1, 2**40]
    assert inverse.tolist() == [1, 0, 1, 0, 2]
    assert counts.tolist() == [2, 2, 1]


def test_a_pair_seen_twice_becomes_a_feature_and_a_pair_seen_once_does_not() -> None:
    # Stems 0..3; texts [0 1 2] and [0 1 3]: the pair (0, 1) is in both, (1, 2) and (1, 3) in one.
    texts = Texts(np.array([0, 1, 2, 0, 1, 3], dtype=np.int64), np.array([0, 3, 6], dtype=np.int64))
    wanted = Texts(np.array([1, 3], dtype=np.int64), np.array([0, 2], dtype=np.int64))  # a query's pair
    features = Features(4, documents=[texts], wanted=[wanted])
    assert features.pair_keys.tolist() == [0 * _PAIR + 1, 1 * _PAIR + 3]
    counts = features.document_counts[0].toarray()
    assert counts.tolist() == [[1, 1, 1, 0, 1, 0], [1, 1, 0, 1, 1, 1]]
