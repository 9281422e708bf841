"""Tests of dmlkeras.index: NearestNeighbors and Index against loop-based brute force,
persistence (checksums), approximate FAISS indexes (recall), and the Matcher."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmlkeras.index
from dmlkeras.index import Index, Matcher, NearestNeighbors

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


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 30), q=st.integers(1, 6), data=st.data())
def test_dot_ties_and_signs_keep_smaller_indices(seed, n, q, data):
    # Integer coordinates: exact inner products of both signs, many ties, and zero queries
    # (every product 0, which the float32 keys must not split into -0.0 and +0.0).
    rng = np.random.default_rng(seed)
    gallery = rng.integers(-2, 3, size=(n, 3)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(q, 3)).astype(np.float32)
    queries[0] = 0.0
    k = data.draw(st.integers(1, n))
    dist, idx = NearestNeighbors(metric="dot", block_size=2).fit(gallery).search(queries, k)
    products = queries.astype(np.int64) @ gallery.astype(np.int64).T
    for r in range(q):
        order = sorted(range(n), key=lambda j: (-products[r, j], j))[:k]
        assert idx[r].tolist() == order
        np.testing.assert_array_equal(dist[r], -products[r, order])


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


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [5, 11, 20, 119])
def test_rounding_below_zero_ties_by_index(monkeypatch, metric, k):
    # Copies of vectors of norm ~40: the float32 product gives a copy a distance of a few ulps,
    # of either sign. Below 0 it is 0 after the clamp, where items tie by index: with k = 5 more
    # than k copies are at 0 (the row is selected again), with k = 20 a prefix is reordered.
    rng = np.random.default_rng(3)
    distinct = 10 * rng.normal(size=(10, 16)).astype(np.float32)
    x = distinct[rng.permutation(np.repeat(np.arange(10), 12))]
    calls = []
    clamp_row = NearestNeighbors._clamp_row
    monkeypatch.setattr(NearestNeighbors, "_clamp_row", lambda self, *a: calls.append(a) or clamp_row(self, *a))
    nn = NearestNeighbors(metric=metric).fit(x)
    dist, idx = nn.search(x, k, exclude_self=True)
    assert calls, "no row had a distance below 0: the test data no longer exercises the fix-up"
    # Reference: the same float32 products, clamped at 0, each row sorted by (value, index) in a loop.
    queries = dmlkeras.index._normalize(x) if metric == "cosine" else x.copy()  # as search() prepares them
    surrogate = np.maximum(nn._distance_block(queries).astype(np.float64), 0.0)
    for r in range(len(x)):
        order = sorted((j for j in range(len(x)) if j != r), key=lambda j: (surrogate[r, j], j))[:k]
        assert idx[r].tolist() == order
    assert np.all(dist >= 0) and np.all(np.diff(dist, axis=1) >= 0)
    np.testing.assert_array_equal(nn.search(x, k, exclude_self=True, return_distance=False), idx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("metric", METRICS)
def test_return_distance_false_gives_the_same_indices(backend, metric):
    x = np.random.default_rng(0).normal(size=(60, 5))
    nn = NearestNeighbors(metric=metric, backend=backend, block_size=7).fit(x)
    _, idx = nn.search(x[:20], 9, exclude=np.arange(20))
    only = nn.search(x[:20], 9, exclude=np.arange(20), return_distance=False)
    assert only.dtype == np.int64
    np.testing.assert_array_equal(only, idx)


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


# ------------------------------------------------------------------ Index
def clustered(n, d=16, n_classes=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    centres = rng.normal(size=(n_classes, d)) * 3
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


def recall_at(found, exact):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found.tolist(), exact.tolist())])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_index_exact_equals_nearest_neighbors_across_adds(metric, backend):
    x, labels = clustered(300)
    q = x[:40] + 0.01
    index = Index(metric=metric, backend=backend)
    for start in (0, 100, 250):  # three adds
        stop = {0: 100, 100: 250, 250: 300}[start]
        index.add(x[start:stop], labels=labels[start:stop], payloads=[f"item{i}" for i in range(start, stop)])
    assert len(index) == 300 and index.dim == 16 and index.exact
    found = index.search(q, k=7)
    ref_d, ref_i = NearestNeighbors(metric=metric, backend="numpy").fit(x).search(q, 7)
    np.testing.assert_array_equal(found.indices, ref_i)
    # float32 cancellation in |q|^2 + |g|^2 - 2 q.g differs between the two at small distances
    np.testing.assert_allclose(found.distances, ref_d, rtol=1e-5, atol=2e-3 if backend == "faiss" else 1e-6)
    np.testing.assert_array_equal(found.labels, labels[ref_i])
    assert found.payloads == [[f"item{j}" for j in row] for row in ref_i.tolist()]
    distances, indices, _, _ = found  # a named tuple
    assert distances is found.distances and indices is found.indices


def test_index_dot_metric_is_negative_inner_product():
    x, _ = clustered(50, d=4)
    index = Index(metric="dot").add(x)
    found = index.search(x[:5], k=50)
    ref = -(x[:5].astype(np.float64) @ x.T.astype(np.float64))
    np.testing.assert_allclose(found.distances, np.sort(ref, axis=1), rtol=1e-5, atol=1e-4)
    assert found.labels is None and found.payloads is None


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_visiting_every_list_is_exact(metric):
    x, _ = clustered(2000, seed=1)
    q = clustered(50, seed=2)[0]
    exact = Index(metric=metric).add(x).search(q, k=10)
    ivf = Index(metric=metric, backend="faiss", factory="IVF16,Flat", nprobe=16).add(x)
    assert not ivf.exact
    found = ivf.search(q, k=10)
    np.testing.assert_array_equal(found.indices, exact.indices)
    np.testing.assert_allclose(found.distances, exact.distances, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "factory, params, min_recall",
    [("HNSW32", {"ef_search": 64}, 0.95), ("IVF32,Flat", {"nprobe": 4}, 0.7), ("IVF16,PQ8", {"nprobe": 4}, 0.3)],
)
def test_approximate_indexes_recall(factory, params, min_recall):
    x, labels = clustered(3100, seed=3)
    x, q, labels = x[:3000], x[3000:], labels[:3000]  # queries from the same distribution
    exact = Index().add(x).search(q, k=10)
    approx = Index(backend="faiss", factory=factory, **params).add(x, labels=labels)
    found = approx.search(q, k=10)
    r = recall_at(found.indices, exact.indices)
    assert min_recall <= r <= 1.0, r
    assert np.all(np.diff(found.distances, axis=1) >= 0)
    ok = found.indices >= 0
    np.testing.assert_array_equal(found.labels[ok], labels[found.indices[ok]])


def test_training_needs_enough_vectors_and_can_use_a_sample():
    x, _ = clustered(100)
    with pytest.raises(ValueError, match="needs at least 256 training vectors; got 100"):
        Index(backend="faiss", factory="IVF256,Flat").add(x)
    with pytest.raises(ValueError, match="needs at least 256 training vectors"):
        Index(backend="faiss", factory="IVF4,PQ8").add(x)
    big, _ = clustered(1000, seed=5)
    index = Index(backend="faiss", factory="IVF4,PQ8").train(big).add(x)
    assert len(index) == 100 and index.search(x[:3], k=1).indices.shape == (3, 1)
    with pytest.raises(ValueError, match="multiple of the number of subquantizers|cannot build"):
        Index(backend="faiss", factory="PQ5").add(x)


@pytest.mark.parametrize(
    "backend, factory, params",
    [("numpy", "Flat", {}), ("faiss", "Flat", {}), ("faiss", "HNSW16", {"ef_search": 40}),
     ("faiss", "IVF8,PQ4", {"nprobe": 3})],
)
def test_save_load_round_trip(tmp_path, backend, factory, params):
    x, labels = clustered(600, d=8)
    names = np.array([f"person_{v}" for v in labels])
    index = Index(metric="cosine", backend=backend, factory=factory, **params)
    index.add(x[:300], labels=names[:300], payloads=np.arange(300)[:, None] * [1, 10])
    index.add(x[300:], labels=names[300:], payloads=np.arange(300, 600)[:, None] * [1, 10])
    before = index.search(x[:20], k=5)
    path = index.save(tmp_path / "gallery")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["size"] == 600 and manifest["metric"] == "cosine"
    stored = {"vectors.npy" if factory == "Flat" else "index.faiss", "labels.npy", "payloads.npy"}
    assert set(manifest["files"]) == stored
    for name, meta in manifest["files"].items():
        assert (path / name).stat().st_size == meta["bytes"] and len(meta["sha256"]) == 64
    loaded = Index.load(path)
    assert (loaded.metric, loaded.backend, loaded.factory, len(loaded)) == ("cosine", backend, factory, 600)
    assert (loaded.ef_search, loaded.nprobe) == (params.get("ef_search"), params.get("nprobe"))
    after = loaded.search(x[:20], k=5)
    np.testing.assert_array_equal(after.indices, before.indices)
    np.testing.assert_array_equal(after.distances, before.distances)
    np.testing.assert_array_equal(after.labels, before.labels)
    np.testing.assert_array_equal(after.payloads, before.payloads)
    loaded.add(x[:2], labels=names[:2], payloads=np.zeros((2, 2), dtype=int))  # still usable
    assert len(loaded) == 602
    with pytest.raises(ValueError, match="exists and is not empty"):
        index.save(path)
    index.save(path, overwrite=True)
    assert len(Index.load(path)) == 600


def test_load_refuses_truncated_edited_or_missing_files(tmp_path):
    x, labels = clustered(50, d=4)
    index = Index().add(x, labels=labels, payloads=[{"file": f"{i}.jpg"} for i in range(50)])
    path = index.save(tmp_path / "a")
    assert Index.load(path).search(x[:1], k=1).payloads == [[{"file": "0.jpg"}]]

    vectors = path / "vectors.npy"
    good = vectors.read_bytes()
    vectors.write_bytes(good[:-10])
    with pytest.raises(ValueError, match=r"vectors\.npy has \d+ bytes, the manifest says \d+: truncated"):
        Index.load(path)
    edited = bytearray(good)
    edited[-1] ^= 0xFF
    vectors.write_bytes(bytes(edited))
    with pytest.raises(ValueError, match=r"vectors\.npy does not match its SHA-256"):
        Index.load(path)
    vectors.write_bytes(good)
    (path / "payloads.json").write_text((path / "payloads.json").read_text().replace("0.jpg", "X.jpg"))
    with pytest.raises(ValueError, match=r"payloads\.json does not match its SHA-256"):
        Index.load(path)
    (path / "payloads.json").unlink()
    with pytest.raises(ValueError, match=r"payloads\.json is missing"):
        Index.load(path)
    manifest = path / "manifest.json"
    text = manifest.read_text()
    manifest.write_text(text.replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(ValueError, match="version 99 is not readable"):
        Index.load(path)
    manifest.write_text(text[:-20])
    with pytest.raises(ValueError, match="not a valid index manifest"):
        Index.load(path)
    with pytest.raises(ValueError, match="manifest.json not found"):
        Index.load(tmp_path / "nothing")


def test_index_errors():
    x, labels = clustered(20, d=4)
    with pytest.raises(ValueError, match="needs backend='faiss'"):
        Index(factory="HNSW32")
    with pytest.raises(ValueError, match="metric must be one of"):
        Index(metric="manhattan")
    with pytest.raises(ValueError, match="is empty"):
        Index().search(x, k=1)
    index = Index().add(x, labels=labels)
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        index.add(np.zeros((2, 3)), labels=[0, 1])
    with pytest.raises(ValueError, match="pass labels= to every add"):
        index.add(x)
    with pytest.raises(ValueError, match=r"labels must have shape \(20,\)"):
        Index().add(x, labels=labels[:3])
    with pytest.raises(ValueError, match="not Python objects"):
        Index().add(x[:2], labels=np.array([object(), object()]))
    with pytest.raises(ValueError, match="without labels"):
        Index().add(x).add(x, labels=labels)
    with pytest.raises(ValueError, match="JSON-serialisable"):
        Index().add(x[:1], payloads=[object()])
    with pytest.raises(ValueError, match="one entry per vector"):
        Index().add(x, payloads=["a"])
    with pytest.raises(ValueError, match="same kind"):
        Index().add(x[:1], payloads=["a"]).add(x[:1], payloads=np.zeros(1))
    with pytest.raises(ValueError, match=r"k must be in \[1, 20\]"):
        index.search(x, k=21)
    with pytest.raises(ValueError, match="k must be an integer"):
        index.search(x, k=2.5)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, 4), np.nan), k=1)


# ---------------------------------------------------------------- Matcher
def reference_match(gallery, labels, queries, threshold, vote, k, unknown):
    out = []
    for q in queries:
        dist = sorted((float(np.linalg.norm(q - g)), j) for j, g in enumerate(gallery))[:k]
        inside = [(d, labels[j]) for d, j in dist if d <= threshold]
        if not inside:
            out.append(unknown)
        elif vote == "nearest":
            out.append(inside[0][1])
        else:
            counts = {}
            for _, lab in inside:
                counts[lab] = counts.get(lab, 0) + 1
            best = max(counts.values())
            out.append(next(lab for _, lab in inside if counts[lab] == best))  # first met among the most voted
    return out


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 30),
    vote=st.sampled_from(["nearest", "majority"]),
    k=st.integers(1, 7),
    threshold=st.sampled_from([0.0, 0.5, 1.0, 3.0]),
)
def test_matcher_matches_loop_reference(seed, n, vote, k, threshold):
    rng = np.random.default_rng(seed)
    # multiples of 1/4: distances (and their ties) are exact in both
    gallery = np.round(rng.normal(size=(n, 2)) * 4) / 4
    labels = rng.integers(0, 4, n)
    queries = np.round(rng.normal(size=(10, 2)) * 4) / 4
    k = 1 if vote == "nearest" else k
    matcher = Matcher(Index().add(gallery, labels=labels), threshold, vote=vote, k=k)
    got = matcher.match(queries)
    ref = reference_match(gallery, labels, queries, threshold, vote, min(k, n), -1)
    assert got.tolist() == ref and got.dtype == labels.dtype


def test_matcher_open_set_with_string_labels():
    gallery = np.array([[0.0, 0.0], [0.0, 0.2], [5.0, 5.0]])
    index = Index().add(gallery, labels=np.array(["ann", "ann", "bob"]))
    m = Matcher(index, threshold=1.0, unknown_label="unknown")
    assert m.match(np.array([[0.1, 0.1], [5.0, 4.5], [2.5, 2.5]])).tolist() == ["ann", "bob", "unknown"]
    ints = Index().add(gallery, labels=np.array([1, 1, 2]))
    out = Matcher(ints, threshold=1.0, unknown_label="unknown").match(np.array([[0.0, 0.1], [9.0, 9.0]]))
    assert out.tolist() == [1, "unknown"] and out.dtype == object
    with pytest.raises(ValueError, match="has no labels"):
        Matcher(Index().add(gallery), 1.0)
    with pytest.raises(ValueError, match="vote must be one of"):
        Matcher(index, 1.0, vote="mean")
    with pytest.raises(ValueError, match="uses one neighbour"):
        Matcher(index, 1.0, k=3)
    with pytest.raises(ValueError, match="threshold must be a finite number"):
        Matcher(index, float("nan"))


def test_calibrated_matcher_end_to_end():
    # Calibrate on validation pairs of known people, then identify probes of
    # known and unknown people. An unknown probe is falsely accepted when any
    # of the 40 gallery items is within the threshold: about 40 times the
    # pair FAR, hence a pair FAR of 1e-3 for a few % of false identifications.
    from dmlkeras.evaluation import calibrate  # noqa: PLC0415

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 8)) * 2
    known, unknown = np.arange(40), np.arange(40, 60)
    gallery = centres[known] + 0.3 * rng.normal(size=(40, 8))
    index = Index().add(gallery, labels=known)
    val = centres[known] + 0.3 * rng.normal(size=(40, 8))
    d, i = NearestNeighbors().fit(gallery).search(val, k=40)
    same = known[i] == known[:, None]
    cal = calibrate(d.ravel(), same.ravel(), target=1e-3, metric="far")
    matcher = Matcher(index, cal.threshold)
    probes_known = matcher.match(centres[known] + 0.3 * rng.normal(size=(40, 8)))
    probes_unknown = matcher.match(centres[unknown] + 0.3 * rng.normal(size=(20, 8)))
    assert np.mean(probes_known == known) > 0.8
    assert np.mean(probes_unknown != -1) <= 0.1
