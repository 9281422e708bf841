"""Tests of dmlkeras.index.NearestNeighbors against loop-based brute force."""

from __future__ import annotations

import doctest
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmlkeras.index
from dmlkeras.index import NearestNeighbors

BACKENDS = ["numpy", "faiss"]
METRICS = ["euclidean", "cosine", "dot"]


def reference_search(gallery, queries, k, metric, exclude=None):
    """Loop-based exact search: sort by (distance, index) in float64."""
    g = np.asarray(gallery, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float64)
    out_d, out_i = [], []
    for r, qv in enumerate(q):
        dists = []
        for j, gv in enumerate(g):
            if exclude is not None and exclude[r] == j:
                continue
            if metric == "euclidean":
                dist = float(np.sqrt(np.sum((qv - gv) ** 2)))
            elif metric == "dot":
                dist = -float(qv @ gv)
            else:
                nq, ng = np.linalg.norm(qv), np.linalg.norm(gv)
                cos = 0.0 if nq == 0 or ng == 0 else float(qv @ gv / (nq * ng))
                dist = 1.0 - cos
            dists.append((dist, j))
        dists.sort()
        out_d.append([d for d, _ in dists[:k]])
        out_i.append([j for _, j in dists[:k]])
    return np.array(out_d), np.array(out_i)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 25),
    q=st.integers(1, 8),
    d=st.integers(1, 6),
    metric=st.sampled_from(METRICS),
    backend=st.sampled_from(BACKENDS),
    block_size=st.sampled_from([None, 1, 3]),
    data=st.data(),
)
def test_matches_bruteforce_on_random_data(seed, n, q, d, metric, backend, block_size, data):
    rng = np.random.default_rng(seed)
    gallery = rng.normal(size=(n, d))
    queries = rng.normal(size=(q, d))
    k = data.draw(st.integers(1, n))
    nn = NearestNeighbors(metric=metric, backend=backend, block_size=block_size).fit(gallery)
    dist, idx = nn.search(queries, k)
    ref_d, ref_i = reference_search(gallery, queries, k, metric)
    assert dist.dtype == np.float32 and idx.dtype == np.int64
    assert dist.shape == idx.shape == (q, k)
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-4, atol=2e-3 if backend == "faiss" else 1e-5)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 25),
    metric=st.sampled_from(METRICS),
    backend=st.sampled_from(BACKENDS),
    data=st.data(),
)
def test_exclude_self_matches_bruteforce(seed, n, metric, backend, data):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    k = data.draw(st.integers(1, n - 1))
    dist, idx = NearestNeighbors(metric=metric, backend=backend, block_size=4).fit(x).search(x, k, exclude_self=True)
    ref_d, ref_i = reference_search(x, x, k, metric, exclude=np.arange(n))
    np.testing.assert_array_equal(idx, ref_i)
    assert not np.any(idx == np.arange(n)[:, None])
    np.testing.assert_allclose(dist, ref_d, rtol=1e-4, atol=2e-3)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 30),
    q=st.integers(1, 6),
    backend=st.sampled_from(BACKENDS),
    exclude_self=st.booleans(),
    data=st.data(),
)
def test_exact_ties_keep_smaller_indices(seed, n, q, backend, exclude_self, data):
    # Small integer coordinates: many exactly equal squared distances,
    # computed exactly in float32 and float64.
    rng = np.random.default_rng(seed)
    gallery = rng.integers(-2, 3, size=(n, 2)).astype(np.float32)
    if exclude_self:
        if n < 2:
            return
        queries, exclude = gallery, np.arange(n)
    else:
        queries, exclude = rng.integers(-2, 3, size=(q, 2)).astype(np.float32), None
    k = data.draw(st.integers(1, n - 1 if exclude_self else n))
    dist, idx = NearestNeighbors(backend=backend, block_size=2).fit(gallery).search(queries, k, exclude_self=exclude_self)
    # integer squared distances: an exact reference ordering
    gi = gallery.astype(np.int64)
    for r, qv in enumerate(queries.astype(np.int64)):
        sq = ((gi - qv) ** 2).sum(axis=1)
        order = [j for j in sorted(range(n), key=lambda j: (sq[j], j)) if exclude is None or j != exclude[r]]
        assert idx[r].tolist() == order[:k]
        np.testing.assert_allclose(dist[r], np.sqrt(sq[order[:k]]), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])  # dot: a duplicate is not the nearest
def test_duplicates_sorted_by_index_and_self_excluded(backend, metric):
    base = np.array([[1.0, 2.0], [3.0, -1.0]], dtype=np.float32)
    x = base[[0, 1, 0, 0, 1, 0]]  # rows 0, 2, 3, 5 identical; 1, 4 identical
    dist, idx = NearestNeighbors(metric=metric, backend=backend).fit(x).search(x, 3, exclude_self=True)
    expected = [[2, 3, 5], [4, 0, 2], [0, 3, 5], [0, 2, 5], [1, 0, 2], [0, 2, 3]]
    assert idx.tolist() == expected
    np.testing.assert_allclose(dist[:, :1], 0.0, atol=1e-3)
    dist, idx = NearestNeighbors(metric=metric, backend=backend).fit(x).search(base, 6)
    assert idx.tolist() == [[0, 2, 3, 5, 1, 4], [1, 4, 0, 2, 3, 5]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_identical_points(backend):
    x = np.ones((40, 3), dtype=np.float32)
    _, idx = NearestNeighbors(backend=backend).fit(x).search(x, 5, exclude_self=True)
    for r in range(40):
        assert idx[r].tolist() == [j for j in range(40) if j != r][:5]


@pytest.mark.parametrize("metric", METRICS)
def test_faiss_equals_numpy_on_clustered_data(metric):
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(20, 16))
    x = (centers[rng.integers(0, 20, 600)] + 0.3 * rng.normal(size=(600, 16))).astype(np.float32)
    a = NearestNeighbors(metric, "numpy").fit(x).search(x, 15, exclude_self=True)
    b = NearestNeighbors(metric, "faiss").fit(x).search(x, 15, exclude_self=True)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], rtol=1e-4, atol=1e-3)


def test_distance_values_and_dtype_precision():
    g = np.array([[0.0, 0.0], [3.0, 4.0]])
    d, i = NearestNeighbors().fit(g).search(np.array([[0.0, 0.0]]), 2)
    assert i.tolist() == [[0, 1]]
    np.testing.assert_allclose(d, [[0.0, 5.0]])
    d, i = NearestNeighbors("cosine").fit(g).search(np.array([[-3.0, -4.0], [0.0, 0.0]]), 2)
    # opposite direction: cosine distance 2; zero row: cosine 0 -> distance 1
    np.testing.assert_allclose(d[0], [1.0, 2.0], atol=1e-6)
    assert i[0].tolist() == [0, 1]
    np.testing.assert_allclose(d[1], [1.0, 1.0], atol=1e-6)


def test_blocks_bound_memory():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 8))
    full_matrix_bytes = 3000 * 3000 * 8
    nn = NearestNeighbors(block_size=64).fit(x)
    tracemalloc.start()
    try:
        _, idx = nn.search(x, 5, exclude_self=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < full_matrix_bytes / 10
    _, idx_default = NearestNeighbors().fit(x).search(x, 5, exclude_self=True)
    np.testing.assert_array_equal(idx, idx_default)


def test_exclude_argument_generalises_exclude_self():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 3))
    nn = NearestNeighbors().fit(x)
    full = nn.search(x, 4, exclude_self=True)
    part = nn.search(x[10:20], 4, exclude=np.arange(10, 20))
    np.testing.assert_array_equal(part[1], full[1][10:20])
    mixed = nn.search(x[:2], 2, exclude=np.array([-1, 1]))
    assert mixed[1][0, 0] == 0 and 1 not in mixed[1][1]


def test_errors():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="metric"):
        NearestNeighbors(metric="manhattan")
    with pytest.raises(ValueError, match="backend"):
        NearestNeighbors(backend="annoy")
    with pytest.raises(ValueError, match="block_size"):
        NearestNeighbors(block_size=0)
    with pytest.raises(ValueError, match="not fitted"):
        NearestNeighbors().search(x, 1)
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        NearestNeighbors().fit(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        NearestNeighbors().fit(np.array([[np.nan, 1.0]]))
    nn = NearestNeighbors().fit(x)
    with pytest.raises(ValueError, match=r"shape \(q, 3\)"):
        nn.search(np.zeros((2, 4)), 1)
    with pytest.raises(ValueError, match=r"k must be in \[1, 5\]"):
        nn.search(x, 6)
    with pytest.raises(ValueError, match=r"k must be in \[1, 4\]"):
        nn.search(x, 5, exclude_self=True)
    with pytest.raises(ValueError, match="k must be an int"):
        nn.search(x, 1.5)
    with pytest.raises(ValueError, match="exclude_self=True requires"):
        nn.search(x[:3], 1, exclude_self=True)
    with pytest.raises(ValueError, match="exclude_self=True requires"):
        nn.search(x + 1, 1, exclude_self=True)
    with pytest.raises(ValueError, match="exclude must be an int array"):
        nn.search(x, 1, exclude=np.arange(4))
    with pytest.raises(ValueError, match=r"exclude values must be in \[-1, 4\]"):
        nn.search(x, 1, exclude=np.full(5, 7))


def test_docstring_examples():
    result = doctest.testmod(dmlkeras.index, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
