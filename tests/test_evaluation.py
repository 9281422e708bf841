"""Tests of dmlkeras.evaluation against hand-computed cases and loop references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dmlkeras.evaluation as ev
from dmlkeras.evaluation import (
    best_threshold,
    calibrate,
    correlation_difference,
    correlation_metrics,
    hardest_errors,
    kfold_verification_accuracy,
    ranking_metrics,
    retrieval_metrics,
    roc_curve,
    sampled_ranking_metrics,
    verification_metrics,
)


# ------------------------------------------------------------- retrieval
def reference_retrieval(q, ql, g=None, gl=None, ks=(1, 5, 10), metric="euclidean"):
    """Musgrave et al. definitions, one query at a time.

    Labels of shape (n, L) are multi-hot sets: relevant = shares a label.
    """
    loo = g is None
    if loo:
        g, gl = q, ql
    per = {"precision_at_1": [], "r_precision": [], "map_at_r": []}
    n_queries = 0
    for kk in ks:
        per[f"recall_at_{kk}"] = []
        per[f"precision_at_{kk}"] = []
    for i in range(len(q)):
        cand = []
        for j in range(len(g)):
            if loo and i == j:
                continue
            if metric == "euclidean":
                dist = float(np.linalg.norm(q[i] - g[j]))
            elif metric == "dot":
                dist = -float(q[i] @ g[j])
            else:
                dist = 1.0 - float(q[i] @ g[j] / (np.linalg.norm(q[i]) * np.linalg.norm(g[j])))
            cand.append((dist, j))
        cand.sort()
        if np.ndim(ql) == 2:
            rel = [int(np.any(np.logical_and(gl[j], ql[i]))) for _, j in cand]
        else:
            rel = [int(gl[j] == ql[i]) for _, j in cand]
        r = sum(rel)
        if r == 0:
            continue
        n_queries += 1
        if 1 not in ks:
            per["precision_at_1"].append(rel[0])
        for kk in ks:
            per[f"recall_at_{kk}"].append(float(sum(rel[:kk]) > 0))
            per[f"precision_at_{kk}"].append(sum(rel[:kk]) / kk)
        per["r_precision"].append(sum(rel[:r]) / r)
        ap = 0.0
        for pos in range(1, r + 1):
            if rel[pos - 1]:
                ap += sum(rel[:pos]) / pos
        per["map_at_r"].append(ap / r)
    if n_queries == 0:
        return {"n_queries": 0}
    out = {key: float(np.mean(v)) for key, v in per.items()}
    out["n_queries"] = n_queries
    return out


def test_retrieval_hand_computed_leave_one_out():
    emb = np.array([[0.0], [1.0], [4.0], [5.0], [3.0]])
    labels = np.array(["a", "a", "b", "b", "b"])
    m = retrieval_metrics(emb, labels, k=(1, 2, 3), clustering=False)
    # query 4 (3.0): 4.0 (b, relevant), then 1.0 and 5.0 tie at distance 2,
    # 1.0 (a) first by smaller index; R = 2 -> AP = 1/2, R-precision 1/2.
    assert m["precision_at_1"] == 1.0
    assert m["r_precision"] == pytest.approx(0.9)
    assert m["map_at_r"] == pytest.approx(0.9)
    assert m["recall_at_2"] == 1.0
    # precision@3: q0 (0): 1,3,4 -> 1/3; q1: 0,3,4 -> 1/3; q2 (4): 3,5,1 -> 2/3;
    # q3 (5): 4,3,1 -> 2/3; q4 (3): 4,1,5 -> 2/3
    assert m["precision_at_3"] == pytest.approx((1 / 3 + 1 / 3 + 2 / 3 + 2 / 3 + 2 / 3) / 5)
    assert m["n_queries"] == 5


def test_retrieval_hand_computed_map_at_r():
    # One query, R = 3 relevant gallery items ranked 1, 3 and 5:
    # MAP@R = (1/3) (1/1 + 0 + 2/3) = 5/9; R-precision = 2/3.
    gallery = np.array([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0]])
    gallery_labels = np.array([1, 0, 1, 0, 1, 0])
    m = retrieval_metrics(np.array([[0.0]]), [1], gallery, gallery_labels, k=(1, 2, 4), clustering=False)
    assert m["map_at_r"] == pytest.approx(5 / 9)
    assert m["r_precision"] == pytest.approx(2 / 3)
    assert m["precision_at_2"] == pytest.approx(0.5)
    assert m["precision_at_4"] == pytest.approx(0.5)
    assert m["recall_at_1"] == 1.0


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(4, 30),
    n_classes=st.integers(1, 5),
    separate_gallery=st.booleans(),
    metric=st.sampled_from(["euclidean", "cosine", "dot"]),
    backend=st.sampled_from(["numpy", "faiss"]),
)
def test_retrieval_matches_loop_reference(seed, n, n_classes, separate_gallery, metric, backend):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 3))
    ql = rng.integers(0, n_classes, n)
    g = gl = None
    if separate_gallery:
        g = rng.normal(size=(n + 2, 3))
        gl = rng.integers(0, n_classes, n + 2)
    ks = (1, 2, 3)
    ref = reference_retrieval(q, ql, g, gl, ks, metric)
    if ref["n_queries"] == 0:
        with pytest.raises(ValueError, match="R = 0"):
            retrieval_metrics(q, ql, g, gl, k=ks, metric=metric, clustering=False, backend=backend)
        return
    m = retrieval_metrics(q, ql, g, gl, k=ks, metric=metric, clustering=False, backend=backend)
    assert set(m) == set(ref)
    for key, value in ref.items():
        assert m[key] == pytest.approx(value, abs=1e-12), key


def test_retrieval_chunks_and_large_r(monkeypatch):
    # Few classes: R (~100) exceeds max(k); a tiny chunk forces many searches.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    emb = rng.normal(size=(300, 4)) + labels[:, None]
    ref = reference_retrieval(emb, labels, ks=(1, 5))
    whole = retrieval_metrics(emb, labels, k=(1, 5), clustering=False)
    monkeypatch.setattr(ev, "_BLOCK_ELEMENTS", 500)
    chunked = retrieval_metrics(emb, labels, k=(1, 5), clustering=False)
    for key in ref:
        assert whole[key] == pytest.approx(ref[key], abs=1e-12)
        assert chunked[key] == pytest.approx(ref[key], abs=1e-12)


# The implementation of retrieval_metrics before it was made fast (dmlkeras
# 0.1.0, commit f4d8d5f): its exact search (partition, mask, stable argsort
# of the k nearest) and its per-chunk metric loop, single labels only. The
# fast one must give the same values.
def _old_search(q, g, k, metric, exclude):
    dtype = np.float64 if g.dtype == np.float64 else np.float32
    g = np.array(g, dtype=dtype)
    q = np.asarray(q, dtype=dtype)
    if metric == "cosine":
        g = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12).astype(dtype)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12).astype(dtype)
    d = q @ g.T
    if metric == "euclidean":
        d *= -2.0
        d += np.einsum("ij,ij->i", q, q)[:, None]
        d += np.einsum("ij,ij->i", g, g)[None, :]
    else:
        np.subtract(1.0, d, out=d)
    if exclude is not None:
        d[np.arange(len(q)), exclude] = np.inf
    b = d.shape[0]
    kth = np.partition(d, k - 1, axis=1)[:, k - 1]
    mask = d <= kth[:, None]
    tied = np.flatnonzero(mask.sum(axis=1) > k)
    if tied.size:
        sub = d[tied]
        below = sub < kth[tied, None]
        need = k - below.sum(axis=1)
        equal = sub == kth[tied, None]
        mask[tied] = below | (equal & (np.cumsum(equal, axis=1) <= need[:, None]))
    _, cols = np.nonzero(mask)
    idx = cols.reshape(b, k)
    order = np.argsort(np.take_along_axis(d, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)


def old_retrieval_metrics(q, ql, g=None, gl=None, ks=(1, 5, 10), metric="euclidean"):
    loo = g is None
    if loo:
        g, gl = q, ql
    _, codes = np.unique(np.concatenate([ql, gl]), return_inverse=True)
    q_codes, g_codes = codes[: len(ql)], codes[len(ql):]
    r_all = np.bincount(g_codes, minlength=int(codes.max()) + 1)[q_codes] - (1 if loo else 0)
    evaluated = np.flatnonzero(r_all > 0)
    cuts = tuple(sorted(set(ks) | {1}))
    k_all = max(ks[-1], int(r_all[evaluated].max()))
    chunk = max(1, (1 << 22) // k_all)
    rp = ap_sum = 0.0
    hits = dict.fromkeys(cuts, 0.0)
    correct = dict.fromkeys(cuts, 0.0)
    for start in range(0, evaluated.size, chunk):
        rows = evaluated[start : start + chunk]
        r = r_all[rows]
        kc = max(ks[-1], int(r.max()))
        idx = _old_search(q[rows], g, kc, metric, rows if loo else None)
        rel = g_codes[idx] == q_codes[rows, None]
        cum = np.cumsum(rel, axis=1, dtype=np.int64)
        for kk in cuts:
            hits[kk] += float(np.count_nonzero(cum[:, kk - 1]))
            correct[kk] += float(cum[:, kk - 1].sum()) / kk
        rp += float(np.sum(cum[np.arange(rows.size), r - 1] / r))
        ranks = np.arange(1, kc + 1)
        within_r = ranks[None, :] <= r[:, None]
        ap_sum += float((np.sum(np.where(rel & within_r, cum / ranks[None, :], 0.0), axis=1) / r).sum())
    n = evaluated.size
    out = {"precision_at_1": correct[1] / n, "r_precision": rp / n, "map_at_r": ap_sum / n, "n_queries": n}
    for kk in ks:
        out[f"recall_at_{kk}"] = hits[kk] / n
        out[f"precision_at_{kk}"] = correct[kk] / n
    return out


@pytest.mark.parametrize(
    "metric, dtype, grid",
    [("euclidean", "float32", True), ("euclidean", "float64", True), ("euclidean", "float64", False),
     ("cosine", "float64", False)],
)
@pytest.mark.parametrize("separate_gallery", [False, True])
def test_retrieval_equals_previous_implementation(metric, dtype, grid, separate_gallery, monkeypatch):
    # MNIST-like: few large classes (R >> k), many blocks (small ones) with
    # class boundaries inside them. On the grid (multiples of 1/4) every
    # distance is computed exactly, so there are many exact ties (and
    # duplicates) whose order must be the same. Off the grid, float64
    # only: float32 matrix products round differently with the block shape
    # (BLAS kernels), so either implementation reorders float32 near-ties
    # with its block size.
    rng = np.random.default_rng(3)
    n, n_classes = 1500, 6
    labels = rng.integers(0, n_classes, n)

    def points(m, lab=None):
        x = rng.normal(size=(m, 8)) + (0.0 if lab is None else 1.5 * np.eye(8)[lab])
        return (np.round(x * 4) / 4 if grid else x).astype(dtype)

    emb = points(n, labels)
    emb[100:110] = emb[0]
    g = gl = None
    if separate_gallery:
        g = points(700)
        gl = rng.integers(0, n_classes, 700)
    ks = (1, 4, 10)
    old = old_retrieval_metrics(emb, labels, g, gl, ks, metric)
    monkeypatch.setattr(ev, "_BLOCK_ELEMENTS", 50_000)
    new = retrieval_metrics(emb, labels, g, gl, k=ks, metric=metric, clustering=False)
    assert set(new) == set(old)
    for key in old:
        assert new[key] == pytest.approx(old[key], abs=1e-7), key


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(3, 25),
    n_labels=st.integers(2, 12),  # (n, 1) is a column of single labels
    separate_gallery=st.booleans(),
    backend=st.sampled_from(["numpy", "faiss"]),
)
def test_retrieval_multi_hot_matches_loop_reference(seed, n, n_labels, separate_gallery, backend):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 3))
    ql = rng.random((n, n_labels)) < 0.3
    g = gl = None
    if separate_gallery:
        g = rng.normal(size=(n + 3, 3))
        gl = (rng.random((n + 3, n_labels)) < 0.3).astype(np.int64)
    ks = (1, 2)
    ref = reference_retrieval(q, ql, g, gl, ks)
    if ref["n_queries"] == 0:
        with pytest.raises(ValueError, match="R = 0"):
            retrieval_metrics(q, ql, g, gl, k=ks, clustering=False, backend=backend)
        return
    m = retrieval_metrics(q, ql, g, gl, k=ks, clustering=False, backend=backend)
    for key, value in ref.items():
        assert m[key] == pytest.approx(value, abs=1e-12), key


def test_retrieval_multi_hot_one_label_equals_single_labels():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 60)
    emb = rng.normal(size=(60, 5)) + np.eye(5)[labels]
    single = retrieval_metrics(emb, labels, k=(1, 3), clustering=False)
    multi = retrieval_metrics(emb, np.eye(4, dtype=bool)[labels], k=(1, 3), clustering=False)
    assert single == pytest.approx(multi, abs=1e-15)
    with pytest.raises(ValueError, match="clustering=True needs one label"):
        retrieval_metrics(emb, np.eye(4)[labels], k=1)
    with pytest.raises(ValueError, match="multi-hot 0/1"):
        retrieval_metrics(emb, np.eye(4)[labels] * 2, k=1, clustering=False)
    with pytest.raises(ValueError, match="same kind"):
        retrieval_metrics(emb, np.eye(4)[labels], emb, labels, k=1, clustering=False)


def test_retrieval_lone_queries_and_reported_keys():
    emb = np.array([[0.0], [0.2], [5.0], [9.0]])
    labels = np.array([0, 0, 1, 2])  # labels 1 and 2 have no other member
    m = retrieval_metrics(emb, labels, k=(1, 3), clustering=False)
    assert m["n_queries"] == 2
    assert m["precision_at_1"] == 1.0 and m["map_at_r"] == 1.0
    assert m["precision_at_3"] == pytest.approx(1 / 3)
    m = retrieval_metrics(emb, labels, k=3, clustering=False)
    assert "recall_at_3" in m and "recall_at_1" not in m and m["precision_at_1"] == 1.0


def test_retrieval_clustering_scores():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 25)
    separated = rng.normal(size=(100, 5)) * 0.05 + 10 * np.eye(5)[labels]
    m = retrieval_metrics(separated, labels, k=1)
    assert m["nmi"] == pytest.approx(1.0) and m["ami"] == pytest.approx(1.0)
    noise = rng.normal(size=(100, 5))
    m = retrieval_metrics(noise, labels, k=1)
    assert 0.0 <= m["nmi"] < 0.3 and m["ami"] < 0.1


@pytest.mark.parametrize("labels_kind", ["single", "multi_hot"])
@pytest.mark.parametrize("separate_gallery", [False, True])
def test_retrieval_threads_give_the_reference_values(labels_kind, separate_gallery, monkeypatch):
    # Blocks searched by 1, 2 or 3 threads (tiny blocks: many of them, with
    # class boundaries inside) on grid points, where every float32 distance
    # is exact: many ties and duplicates, whose (distance, index) order must
    # not depend on which thread ranked them.
    from threadpoolctl import threadpool_info

    rng = np.random.default_rng(7)
    n = 160
    labels = rng.integers(0, 4, n)
    emb = (np.round((rng.normal(size=(n, 3)) + np.eye(3)[labels % 3]) * 2) / 2).astype(np.float32)
    emb[40:46] = emb[5]
    ql = labels if labels_kind == "single" else rng.random((n, 5)) < 0.3
    g = gl = None
    if separate_gallery:
        g = (np.round(rng.normal(size=(90, 3)) * 2) / 2).astype(np.float32)
        gl = rng.integers(0, 4, 90) if labels_kind == "single" else rng.random((90, 5)) < 0.3
    ks = (1, 3, 7)
    ref = reference_retrieval(emb.astype(np.float64), ql, None if g is None else g.astype(np.float64), gl, ks)
    blas_threads = [info["num_threads"] for info in threadpool_info()]
    monkeypatch.setattr(ev, "_BLOCK_ELEMENTS", 2_000)
    for n_jobs in (1, 2, 3):
        m = retrieval_metrics(emb, ql, g, gl, k=ks, clustering=False, n_jobs=n_jobs)
        assert set(m) == set(ref)
        for key, value in ref.items():
            assert m[key] == pytest.approx(value, abs=1e-12), (n_jobs, key)
    # The one-thread BLAS limit is lifted after the call.
    assert [info["num_threads"] for info in threadpool_info()] == blas_threads


def test_retrieval_n_jobs_errors():
    emb = np.array([[0.0], [1.0], [4.0], [5.0]])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n_jobs must be an integer >= 1"):
            retrieval_metrics(emb, [0, 0, 1, 1], k=1, clustering=False, n_jobs=bad)


def test_retrieval_errors():
    emb = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"query_emb must be a 2-D array of shape \(n, d\)"):
        retrieval_metrics(np.zeros(4), [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        retrieval_metrics(emb, [0, 0, 1])
    with pytest.raises(ValueError, match="k=10 is larger than the 3"):
        retrieval_metrics(emb, [0, 0, 1, 1])
    with pytest.raises(ValueError, match="positive int"):
        retrieval_metrics(emb, [0, 0, 1, 1], k=0)
    for bad in (2.5, (1, 2.5), "5", True, ()):
        with pytest.raises(ValueError, match="k must be a positive int"):
            retrieval_metrics(emb, [0, 0, 1, 1], k=bad)
    with pytest.raises(ValueError, match="without gallery_labels"):
        retrieval_metrics(emb, [0, 0, 1, 1], emb, k=1)
    with pytest.raises(ValueError, match=r"shape \(n_gallery, 2\)"):
        retrieval_metrics(emb, [0, 0, 1, 1], np.zeros((4, 3)), [0, 0, 1, 1], k=1)
    with pytest.raises(ValueError, match="R = 0"):
        retrieval_metrics(emb, [0, 1, 2, 3], k=1)


# ---------------------------------------------------------- verification
def roc_points(d, s):
    """(FAR, TAR) at every threshold 'distance <= t', including t = -inf."""
    pts = [(0.0, 0.0)]
    for t in np.unique(d):
        pts.append((float(np.mean(d[~s] <= t)), float(np.mean(d[s] <= t))))
    return pts


pair_data = st.integers(0, 2**31 - 1).flatmap(
    lambda seed: st.tuples(st.just(seed), st.integers(2, 40), st.sampled_from([2, 5, 1000]))
)


@settings(max_examples=40, deadline=None)
@given(pair_data)
def test_verification_matches_loop_reference(args):
    seed, n, levels = args
    rng = np.random.default_rng(seed)
    s = rng.random(n) < 0.5
    s[0], s[1] = True, False
    d = rng.integers(0, levels, n) / levels + 0.3 * ~s  # ties when levels is small
    m = verification_metrics(d, s)
    pos, neg = d[s], d[~s]
    auc = np.mean([(p < q_) + 0.5 * (p == q_) for p in pos for q_ in neg])
    assert m["roc_auc"] == pytest.approx(auc)
    pts = roc_points(d, s)
    # EER: crossing of FAR and FRR, so between these two bounds
    upper = min(max(far, 1 - tar) for far, tar in pts)
    lower = max(min(far, 1 - tar) for far, tar in pts)
    assert lower - 1e-12 <= m["eer"] <= upper + 1e-12
    for far_max in (1e-3, 1e-2):
        tar = max(tar for far, tar in pts if far <= far_max)
        assert m[f"tar_at_far_{far_max:g}"] == pytest.approx(tar)
    best = max(np.mean((d <= t) == s) for t in np.concatenate([[-np.inf], np.unique(d)]))
    assert m["accuracy"] == pytest.approx(best)
    assert np.mean((d <= m["best_threshold"]) == s) == pytest.approx(best)


def test_verification_hand_computed():
    d = np.array([1.0, 2.0, 3.0, 4.0])
    s = np.array([True, False, True, False])
    m = verification_metrics(d, s)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["eer"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["best_threshold"] == pytest.approx(1.5)
    assert m["tar_at_far_0.001"] == pytest.approx(0.5)
    m = verification_metrics([0.0, 0.2, 0.4, 0.6], [1, 0, 1, 0])
    assert m["eer"] == pytest.approx(0.5)
    m = verification_metrics([0.0, 0.1, 0.5, 0.6], [1, 1, 0, 0])
    assert (m["roc_auc"], m["eer"], m["accuracy"], m["tar_at_far_0.01"]) == (1.0, 0.0, 1.0, 1.0)


def test_best_threshold_edges_and_ties():
    # all predicted different is best: threshold just below the minimum
    thr, acc = best_threshold([0.5, 0.6, 0.1], [False, False, False])
    assert acc == 1.0 and thr < 0.1 and np.nextafter(thr, np.inf) == 0.1
    thr, acc = best_threshold([0.5, 0.6], [True, True])
    assert (thr, acc) == (0.6, 1.0)
    # equal distances cannot be split
    thr, acc = best_threshold([0.3, 0.3, 0.3], [True, False, True])
    assert acc == pytest.approx(2 / 3) and thr == 0.3
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        best_threshold([0.1, 0.2, 0.3], [True, False])
    with pytest.raises(ValueError, match="boolean"):
        best_threshold([0.1, 0.2], [2, 0])
    with pytest.raises(ValueError, match="NaN"):
        best_threshold([np.nan, 0.2], [1, 0])
    with pytest.raises(ValueError, match="both same"):
        verification_metrics([0.1, 0.2], [1, 1])


def test_kfold_uses_other_folds_only():
    # fold 0 alone would be separated perfectly at 0.75, but folds 1-2
    # choose a threshold near 0.35, which misclassifies half of fold 0.
    d = np.array([0.6, 0.9, 0.2, 0.5, 0.3, 0.4])
    s = np.array([True, False, True, False, True, False])
    mean, std, thr = kfold_verification_accuracy(d, s, n_folds=3)
    assert thr.shape == (3,)
    assert thr[0] == pytest.approx(0.35)
    accs = [np.mean((d[f * 2 : f * 2 + 2] <= thr[f]) == s[f * 2 : f * 2 + 2]) for f in range(3)]
    assert accs[0] == 0.5
    assert mean == pytest.approx(np.mean(accs)) and std == pytest.approx(np.std(accs))


def test_kfold_explicit_folds_match_reference():
    rng = np.random.default_rng(2)
    s = rng.random(60) < 0.5
    d = rng.random(60) + 0.4 * ~s
    folds = np.repeat([3, 1, 2], 20)[rng.permutation(60)]
    mean, std, thr = kfold_verification_accuracy(d, s, folds=folds)
    accs = []
    for f, t in zip([1, 2, 3], thr):
        train = folds != f
        t_ref, _ = best_threshold(d[train], s[train])
        assert t == t_ref
        accs.append(np.mean((d[~train] <= t) == s[~train]))
    assert mean == pytest.approx(np.mean(accs)) and std == pytest.approx(np.std(accs))
    # default folds are consecutive equal blocks
    m_default = kfold_verification_accuracy(d, s, n_folds=3)
    m_explicit = kfold_verification_accuracy(d, s, folds=np.repeat([0, 1, 2], 20))
    assert m_default[0] == m_explicit[0]
    with pytest.raises(ValueError, match="n_folds"):
        kfold_verification_accuracy(d, s, n_folds=1)
    with pytest.raises(ValueError, match=r"folds must have shape \(60,\)"):
        kfold_verification_accuracy(d, s, folds=[0, 1])


def test_hardest_errors():
    d = np.array([0.1, 0.45, 0.2, 0.9, 0.7, 0.05, 0.6, 0.3])
    s = np.array([False, False, False, True, True, True, True, False])
    e = hardest_errors(d, s, threshold=0.5, k=3)
    assert e["false_accepts"].tolist() == [0, 2, 7]  # distances 0.1, 0.2, 0.3
    assert e["false_rejects"].tolist() == [3, 4, 6]  # distances 0.9, 0.7, 0.6
    assert e["n_false_accepts"] == 4 and e["n_false_rejects"] == 3
    e = hardest_errors(d, s, threshold=0.0, k=10)
    assert e["false_accepts"].size == 0 and e["false_rejects"].tolist() == [3, 4, 6, 5]
    with pytest.raises(ValueError, match="threshold"):
        hardest_errors(d, s, threshold=np.nan)


# ---------------------------------------------------------------- ranking
def reference_ranking(scores, pos, k):
    out = {"hit_rate_at_k": [], "recall_at_k": [], "ndcg_at_k": [], "mrr": []}
    for u in range(scores.shape[0]):
        p = set(np.flatnonzero(pos[u]).tolist())
        if not p:
            continue
        order = sorted(range(scores.shape[1]), key=lambda i: (-scores[u, i], i))
        top = order[:k]
        hits = [int(i in p) for i in top]
        out["hit_rate_at_k"].append(float(any(hits)))
        out["recall_at_k"].append(sum(hits) / len(p))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(p))))
        out["ndcg_at_k"].append(dcg / idcg)
        first = next(r for r, i in enumerate(order) if i in p)
        out["mrr"].append(1 / (first + 1))
    return {key: float(np.mean(v)) for key, v in out.items()}


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), users=st.integers(1, 8), items=st.integers(1, 12), data=st.data())
def test_ranking_matches_loop_reference(seed, users, items, data):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, (users, items)).astype(float)  # many ties
    scores[rng.random((users, items)) < 0.1] = -np.inf
    pos = rng.random((users, items)) < 0.3
    pos[0, rng.integers(items)] = True
    k = data.draw(st.integers(1, items))
    m = ranking_metrics(scores, pos, k=k)
    ref = reference_ranking(scores, pos, k)
    for key, value in ref.items():
        assert m[key] == pytest.approx(value), key
    as_lists = ranking_metrics(scores, [np.flatnonzero(row) for row in pos], k=k)
    assert as_lists == m
    assert m["n_users"] == int(pos.any(axis=1).sum())


def test_ranking_hand_computed_and_errors():
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.3, 0.1]])
    m = ranking_metrics(scores, np.array([[False, True, False, True], [True, False, False, False]]), k=2)
    # user 0: ranking 0,2,3,1 -> no hit in top 2, first positive at rank 3;
    # user 1: ranking 1,2,0,3 -> no hit, first positive at rank 3.
    assert m["hit_rate_at_k"] == 0.0 and m["ndcg_at_k"] == 0.0 and m["mrr"] == pytest.approx(1 / 3)
    m = ranking_metrics(scores, [[1, 3], [1]], k=3)
    assert m["hit_rate_at_k"] == 1.0
    assert m["recall_at_k"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["ndcg_at_k"] == pytest.approx(((1 / math.log2(4)) / (1 + 1 / math.log2(3)) + 1) / 2)
    with pytest.raises(ValueError, match=r"shape \(n_users, n_items\)"):
        ranking_metrics(np.zeros(3), [[0]])
    with pytest.raises(ValueError, match=r"k must be an int in \[1, n_items=4\]"):
        ranking_metrics(scores, [[0], [1]], k=5)
    with pytest.raises(ValueError, match="sequence of 2 index arrays"):
        ranking_metrics(scores, [[0]], k=1)
    with pytest.raises(ValueError, match="outside"):
        ranking_metrics(scores, [[0], [4]], k=1)
    with pytest.raises(ValueError, match="NaN"):
        ranking_metrics(np.array([[np.nan, 1.0]]), [[0]], k=1)
    with pytest.raises(ValueError, match="No user"):
        ranking_metrics(scores, [[], []], k=1)


def test_sampled_ranking_metrics():
    pos = np.array([0.9, 0.5, 0.5, 0.1])
    neg = np.array([[0.1, 0.2, 0.3], [0.6, 0.1, 0.2], [0.5, 0.1, 0.2], [0.2, 0.3, 0.4]])
    # ranks: 0, 1, 1 (a tie counts against the positive), 3
    m = sampled_ranking_metrics(pos, neg, k=2)
    assert m["hit_rate_at_k"] == pytest.approx(3 / 4)
    assert m["ndcg_at_k"] == pytest.approx((1 + 2 / math.log2(3)) / 4)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 2 + 1 / 4) / 4)
    # constant scores: every negative ties, so nothing is a hit
    assert sampled_ranking_metrics(np.ones(3), np.ones((3, 5)), k=5)["hit_rate_at_k"] == 0.0
    # without ties it agrees with the full ranking of [positive, negatives]
    rng = np.random.default_rng(0)
    p, n_ = rng.random(50), rng.random((50, 20))
    full = ranking_metrics(np.column_stack([p, n_]), [[0]] * 50, k=5)
    sampled = sampled_ranking_metrics(p, n_, k=5)
    for key in sampled:
        assert sampled[key] == pytest.approx(full[key])
    with pytest.raises(ValueError, match=r"shape \(4, n_negatives\)"):
        sampled_ranking_metrics(pos, neg[:3])
    with pytest.raises(ValueError, match="positive int"):
        sampled_ranking_metrics(pos, neg, k=0)


def test_correlation_metrics():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    m = correlation_metrics(x, x**3)
    assert m["spearman"] == pytest.approx(1.0)
    assert 0.9 < m["pearson"] < 1.0
    expected = np.corrcoef(x, x**3)[0, 1]
    assert m["pearson"] == pytest.approx(expected)
    assert correlation_metrics(-x, x)["spearman"] == pytest.approx(-1.0)
    assert math.isnan(correlation_metrics(np.ones(5), x)["pearson"])
    with pytest.raises(ValueError, match="same shape"):
        correlation_metrics(x, x[:3])


# ------------------------------------------------------------ calibrate
def reference_calibrate(d, s, target, metric):
    """Brute force: every candidate threshold, one at a time."""
    points = []
    for t in sorted(set(d.tolist())):
        acc = [i for i in range(len(d)) if d[i] <= t]
        tp = sum(1 for i in acc if s[i])
        fp = len(acc) - tp
        n_same, n_diff = int(s.sum()), int((~s).sum())
        precision, recall, far = tp / len(acc), tp / n_same, fp / n_diff
        f1 = 2 * tp / (len(acc) + n_same)  # = 2PR / (P + R), without its rounding at exact targets
        points.append((t, {"precision": precision, "recall": recall, "far": far, "f1": f1}))
    values = [p[metric] for _, p in points]
    if metric == "far":
        ok = [i for i, v in enumerate(values) if v <= target]
    elif target is None:
        best = max(values)
        ok = [min(i for i, v in enumerate(values) if v == best)]
    else:
        ok = [i for i, v in enumerate(values) if v >= target]
    if ok:
        return points[ok[-1]][0], values[ok[-1]], points
    if metric == "far":
        return float(np.nextafter(min(d), -np.inf)), 0.0, points
    return None, None, points


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 40),
    levels=st.sampled_from([3, 10, 1000]),
    metric=st.sampled_from(["precision", "far", "f1"]),
    target=st.sampled_from([None, 0.0, 0.05, 0.3, 0.5, 0.8, 1.0]),
)
def test_calibrate_matches_brute_force(seed, n, levels, metric, target):
    rng = np.random.default_rng(seed)
    s = rng.random(n) < 0.5
    s[0], s[1] = True, False
    d = np.round(rng.random(n) * levels + (~s) * rng.random() * levels) / levels  # ties when levels is small
    if target is None and metric != "f1":
        with pytest.raises(ValueError, match="needs a target"):
            calibrate(d, s, target, metric)
        return
    thr, value, points = reference_calibrate(d, s, target, metric)
    if thr is None:
        with pytest.raises(ValueError, match="No threshold reaches"):
            calibrate(d, s, target, metric)
        return
    c = calibrate(d, s, target, metric)
    assert c.threshold == thr and c.value == pytest.approx(value, abs=1e-12)
    assert c.metric == metric and c.target == target
    np.testing.assert_array_equal(c.thresholds, [t for t, _ in points])
    for name in ("precision", "recall", "far", "f1"):
        np.testing.assert_allclose(getattr(c, name), [p[name] for _, p in points], atol=1e-12)
    # the rule holds on the data: accepting d <= threshold
    accepted = d <= c.threshold
    if metric == "far":
        assert np.sum(accepted & ~s) / np.sum(~s) <= target


def test_calibrate_far_operating_point_and_errors():
    rng = np.random.default_rng(0)
    same = rng.normal(0.4, 0.1, 2000)
    diff = rng.normal(1.0, 0.15, 20000)
    d = np.concatenate([same, diff])
    s = np.arange(d.size) < same.size
    c = calibrate(d, s, target=1e-3, metric="far")
    far = np.mean(diff <= c.threshold)
    assert far <= 1e-3 and far > 5e-4  # the largest threshold within budget: 20 of 20,000 at most
    assert c.value == pytest.approx(far)
    # the smallest distance is a false accept: nothing can be accepted at FAR 0
    c = calibrate([0.1, 0.2, 0.3], [False, True, True], target=0.0, metric="far")
    assert c.threshold < 0.1 and c.value == 0.0
    with pytest.raises(ValueError, match="metric must be one of"):
        calibrate(d, s, 0.1, metric="recall")
    with pytest.raises(ValueError, match="target must be a finite number"):
        calibrate(d, s, 1.5, metric="precision")
    with pytest.raises(ValueError, match="both same"):
        calibrate([0.1, 0.2], [True, True], 0.1, metric="far")


def test_roc_curve_points_and_verification_agree():
    rng = np.random.default_rng(1)
    s = rng.random(300) < 0.4
    d = np.round(rng.random(300) + 0.5 * ~s, 2)
    roc = roc_curve(d, s)
    ref = roc_points(d, s)
    np.testing.assert_allclose(roc.far, [p[0] for p in ref])
    np.testing.assert_allclose(roc.tar, [p[1] for p in ref])
    assert roc.thresholds[0] == -np.inf
    np.testing.assert_array_equal(roc.thresholds[1:], np.unique(d))
    m = verification_metrics(d, s)
    assert (m["roc_auc"], m["eer"]) == (roc.auc, roc.eer)
    assert 0.0 < roc.eer < 0.5


# ---------------------------------------------------------------- compare_runs
def _compare_runs_reference(runs, higher_is_better=True, ties_within=2.0):
    """Plain loops: mean, s.e., paired gap to the best and the tie rule."""
    methods = sorted({m for m, _, _ in runs})
    values = {m: {s: v for mm, s, v in runs if mm == m} for m in methods}
    sign = 1.0 if higher_is_better else -1.0
    means = {m: sum(values[m].values()) / len(values[m]) for m in methods}
    best = max(methods, key=lambda m: sign * means[m])
    out = {}
    for m in methods:
        xs = list(values[m].values())
        se = (sum((x - means[m]) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 / len(xs) ** 0.5
        gaps = [sign * (values[best][s] - values[m][s]) for s in values[m] if s in values[best]]
        gap = sum(gaps) / len(gaps)
        gap_se = (sum((g - gap) ** 2 for g in gaps) / (len(gaps) - 1)) ** 0.5 / len(gaps) ** 0.5
        out[m] = (means[m], se, gap, gap_se, m == best or gap <= ties_within * gap_se)
    return best, out


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_compare_runs_matches_loop_reference(higher_is_better):
    rng = np.random.default_rng(3)
    runs = [(m, s, float(rng.normal(0.5 + 0.05 * i, 0.03))) for i, m in enumerate("abcde") for s in range(4)]
    table = ev.compare_runs(
        {"method": [r[0] for r in runs], "seed": [r[1] for r in runs], "score": [r[2] for r in runs]},
        "score", higher_is_better=higher_is_better,
    )
    best, ref = _compare_runs_reference(runs, higher_is_better)
    assert table.index[0] == best
    means = table["mean"].to_numpy()
    assert np.all(np.diff(means) <= 0) if higher_is_better else np.all(np.diff(means) >= 0)
    for m, (mean, se, gap, gap_se, tied) in ref.items():
        row = table.loc[m]
        np.testing.assert_allclose([row["mean"], row["se"], row["gap"]], [mean, se, gap], atol=1e-12)
        if m != best:
            np.testing.assert_allclose(row["gap_se"], gap_se, atol=1e-12)
        assert bool(row["tied"]) == tied
    assert not table["tied"].all() and table.loc[best, "tied"]


def test_compare_runs_one_seed_only_the_best_ties():
    table = ev.compare_runs({"method": ["a", "b"], "seed": [0, 0], "m": [0.4, 0.6]}, "m")
    assert table.index.tolist() == ["b", "a"]
    assert table["tied"].tolist() == [True, False]
    assert np.isnan(table.loc["a", "se"])


@pytest.mark.parametrize(
    "runs, kwargs, match",
    [
        ({"method": ["a"], "seed": [0]}, {}, "missing"),
        ({"method": ["a", "a"], "seed": [0, 0], "m": [1.0, 2.0]}, {}, "one row per"),
        ({"method": ["a"], "seed": [0], "m": [1.0]}, {"ties_within": -1.0}, "ties_within"),
    ],
)
def test_compare_runs_bad_input(runs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ev.compare_runs(runs, "m", **kwargs)


# ------------------------------------------------------ correlation_difference
def reference_correlation_difference(a, b, gold, method, n_boot, seed):
    """Loop reference: the same resampled pairs for both predictions, scipy's correlation per replicate."""
    from scipy import stats

    corr = stats.spearmanr if method == "spearman" else stats.pearsonr
    draws = np.random.default_rng(seed).integers(0, len(gold), size=(n_boot, len(gold)))
    replicates = []
    for row in draws:
        replicates.append(corr(a[row], gold[row]).statistic - corr(b[row], gold[row]).statistic)
    return corr(a, gold).statistic - corr(b, gold).statistic, np.std(replicates, ddof=1)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_correlation_difference_matches_the_loop_reference(method):
    rng = np.random.default_rng(5)
    gold = np.round(rng.random(60) * 5, 1)  # ties in the gold scores, as in STS
    a = gold + rng.standard_normal(60)
    b = np.round(gold + 2 * rng.standard_normal(60))  # ties in a prediction too
    got = correlation_difference(a, b, gold, method=method, n_boot=200, seed=3)
    want = reference_correlation_difference(a, b, gold, method, 200, 3)
    assert got.difference == pytest.approx(want[0], abs=1e-12)
    assert got.se == pytest.approx(want[1], rel=1e-9)
    assert got.difference == pytest.approx(
        correlation_metrics(a, gold)[method] - correlation_metrics(b, gold)[method], abs=1e-12
    )


def test_correlation_difference_is_paired_and_checks_its_inputs():
    rng = np.random.default_rng(0)
    gold = rng.random(300)
    a = gold + 0.5 * rng.standard_normal(300)
    assert correlation_difference(a, a, gold) == (0.0, 0.0)  # the same pairs for both: no spread
    b = a + 0.05 * rng.standard_normal(300)  # nearly the same predictions: a small paired error
    paired = correlation_difference(a, b, gold, n_boot=500).se
    unpaired = np.hypot(*(correlation_difference(x, gold, gold, n_boot=500).se for x in (a, b)))
    assert paired < unpaired / 3
    assert correlation_difference(a, b, gold, seed=1) != correlation_difference(a, b, gold, seed=2)
    with pytest.raises(ValueError, match=r"same shape \(n,\)"):
        correlation_difference(a, b[:5], gold)
    with pytest.raises(ValueError, match="method"):
        correlation_difference(a, b, gold, method="kendall")
    with pytest.raises(ValueError, match="NaN"):
        correlation_difference(np.r_[a[:-1], np.nan], b, gold)
    assert np.isnan(correlation_difference(np.ones(300), b, gold).difference)


# ------------------------------------------------------------- per-query retrieval
@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(4, 30),
    n_classes=st.integers(1, 5),
    separate_gallery=st.booleans(),
    metric=st.sampled_from(["euclidean", "cosine", "dot"]),
)
def test_retrieval_per_query_matches_loop_reference(seed, n, n_classes, separate_gallery, metric):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 3))
    ql = rng.integers(0, n_classes, n)
    g = gl = None
    if separate_gallery:
        g = rng.normal(size=(n + 2, 3))
        gl = rng.integers(0, n_classes, n + 2)
    expected = {"precision_at_1": [], "map_at_r": []}
    for i in range(n):  # one query at a time: the reference of the means
        gal, gal_l = (q, ql) if g is None else (g, gl)
        keep = [j for j in range(len(gal)) if not (g is None and j == i)]
        r = sum(int(gal_l[j] == ql[i]) for j in keep)
        if r == 0:
            expected["precision_at_1"].append(np.nan)
            expected["map_at_r"].append(np.nan)
            continue
        if metric == "euclidean":
            dist = [float(np.linalg.norm(q[i] - gal[j])) for j in keep]
        elif metric == "dot":
            dist = [-float(q[i] @ gal[j]) for j in keep]
        else:
            dist = [1.0 - float(q[i] @ gal[j] / (np.linalg.norm(q[i]) * np.linalg.norm(gal[j]))) for j in keep]
        ranked = [j for _, j in sorted(zip(dist, keep))]
        rel = [int(gal_l[j] == ql[i]) for j in ranked]
        expected["precision_at_1"].append(float(rel[0]))
        expected["map_at_r"].append(sum(sum(rel[:p]) / p for p in range(1, r + 1) if rel[p - 1]) / r)
    if np.all(np.isnan(expected["map_at_r"])):
        with pytest.raises(ValueError, match="R = 0"):
            ev.retrieval_per_query(q, ql, g, gl, metric=metric)
        return
    per_query = ev.retrieval_per_query(q, ql, g, gl, metric=metric)
    means = retrieval_metrics(q, ql, g, gl, k=1, metric=metric, clustering=False)
    for key, values in expected.items():
        np.testing.assert_allclose(per_query[key], values, atol=1e-12, err_msg=key)
        assert np.nanmean(per_query[key]) == pytest.approx(means[key], abs=1e-12)


def test_retrieval_per_query_errors():
    emb = np.zeros((3, 2))
    with pytest.raises(ValueError, match="metric must be one of"):
        ev.retrieval_per_query(emb, [0, 0, 1], metric="manhattan")
    with pytest.raises(ValueError, match="R = 0"):
        ev.retrieval_per_query(emb, [0, 1, 2])
    with pytest.raises(ValueError, match=r"shape \(n_gallery, 2\)"):
        ev.retrieval_per_query(emb, [0, 0, 1], np.zeros((3, 3)), [0, 0, 1])
