"""Scoring's products (`digest.rank.scoring`): the dense product of two sparse matrices.

`_dense_product` calls SciPy's own product kernel with room for every cell instead of
counting the cells first; NumPy's dense product and SciPy's sparse one are the oracles
(bit for bit), on random matrices of several shapes and densities, with room reused from a
larger product and grown for a larger one, and on the fallbacks (64-bit indices, another
data type, no kernel to call).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy import sparse

from digest.rank import scoring
from digest.rank.features import dense


def random_csr(rng: np.random.Generator, rows: int, cols: int, density: float) -> sparse.csr_matrix:
    matrix = sparse.random(rows, cols, density=density, format="csr", random_state=rng, dtype=np.float64)
    matrix.indices = matrix.indices.astype(np.int32)
    matrix.indptr = matrix.indptr.astype(np.int32)
    return matrix


SHAPES = [(0, 5, 7), (1, 1, 1), (30, 200, 50), (200, 300, 90), (7, 40, 3)]


@pytest.mark.parametrize("density", [0.0, 0.02, 0.3])
def test_the_dense_product_is_scipys_bit_for_bit(density: float) -> None:
    rng = np.random.default_rng(int(density * 100))
    for rows, inner, cols in SHAPES:  # one thread: the room made for one product serves the next
        left, right = random_csr(rng, rows, inner, density), random_csr(rng, inner, cols, density)
        got = scoring._dense_product(left, right)
        assert got.shape == (rows, cols)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, dense(left @ right))
        np.testing.assert_allclose(got, left.toarray() @ right.toarray(), rtol=1e-12)


def test_each_thread_has_its_own_room() -> None:
    rng = np.random.default_rng(3)
    pairs = [(random_csr(rng, 60, 80, 0.2), random_csr(rng, 80, 70 + n, 0.2)) for n in range(8)]
    found: dict[int, np.ndarray] = {}

    def work(n: int) -> None:
        for _ in range(20):
            found[n] = scoring._dense_product(*pairs[n])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for n, (left, right) in enumerate(pairs):
        np.testing.assert_array_equal(found[n], dense(left @ right))


def test_what_the_kernel_cannot_take_goes_through_scipys_product(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    left, right = random_csr(rng, 20, 30, 0.3), random_csr(rng, 30, 10, 0.3)
    wide = sparse.csr_matrix(left)
    wide.indices, wide.indptr = left.indices.astype(np.int64), left.indptr.astype(np.int64)
    expected = dense(left @ right)
    np.testing.assert_array_equal(scoring._dense_product(wide, right), expected)
    np.testing.assert_array_equal(
        scoring._dense_product(left.astype(np.float32), right), dense(left.astype(np.float32) @ right)
    )
    monkeypatch.setattr(scoring, "_sparsetools", None)
    np.testing.assert_array_equal(scoring._dense_product(left, right), expected)
